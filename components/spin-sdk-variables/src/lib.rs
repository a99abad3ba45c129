//! Test fixture: a Spin SDK 5.2 component that answers with the variable
//! named by the last path segment (`/var/greeting`), through the SDK's own
//! `spin_sdk::variables::get`; an error becomes 404 with its debug text.

use spin_sdk::http::{IntoResponse, Request, Response};
use spin_sdk::{http_component, variables};

#[http_component]
fn handle(req: Request) -> anyhow::Result<impl IntoResponse> {
    let name = req.path().rsplit('/').next().unwrap_or_default().to_owned();
    Ok(match variables::get(&name) {
        Ok(value) => Response::builder().status(200).body(value).build(),
        Err(e) => Response::builder()
            .status(404)
            .body(format!("{e:?}"))
            .build(),
    })
}
