//! Test guest: answers with the request body. By default it streams the body
//! back chunk by chunk as it arrives, so tests can send bodies larger than
//! the guest's memory cap. Under `/buffered` it reads the whole body first,
//! the way a JSON handler would, so a body the host cuts off makes the
//! handler fail before any response is sent.

use wasmhost_sdk::http::header::CONTENT_TYPE;
use wasmhost_sdk::{http_component, Request, Response};

#[http_component]
fn handle(req: Request) -> Result<Response, std::io::Error> {
    let (parts, body) = req.into_parts();
    let mut response = if parts.uri.path().starts_with("/buffered") {
        Response::new(body.bytes()?.into())
    } else {
        Response::new(body.into())
    };
    if let Some(content_type) = parts.headers.get(CONTENT_TYPE) {
        response
            .headers_mut()
            .insert(CONTENT_TYPE, content_type.clone());
    }
    Ok(response)
}
