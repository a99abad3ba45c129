//! Test fixture: an unmodified Spin SDK 5.2 component publishing over MQTT
//! (`fermyon:spin/mqtt@2.0.0`) to the broker in its variable
//! `mqtt_address`: `POST /mqtt/<topic>` publishes the body at least once
//! and answers `published`, or the error.

use spin_sdk::http::{IntoResponse, Request, Response};
use spin_sdk::http_component;
use spin_sdk::mqtt::{Connection, Qos};

#[http_component]
fn handle(req: Request) -> anyhow::Result<impl IntoResponse> {
    let address = spin_sdk::variables::get("mqtt_address")?;
    let topic = req
        .path()
        .rsplit('/')
        .next()
        .unwrap_or("wasmhost")
        .to_owned();
    let outcome = Connection::open(&address, "", "", 30)
        .and_then(|conn| conn.publish(&topic, &req.body().to_vec(), Qos::AtLeastOnce))
        .map_or_else(|e| format!("{e:?}"), |()| "published".to_owned());
    Ok(Response::builder().status(200).body(outcome).build())
}
