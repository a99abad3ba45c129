//! Test guest: the hello component for `wasi:http/handler@0.3.0` (WASIp3),
//! written against the `wasip3` bindings directly since the SDK is p2 only.

use wasip3::exports::http::handler::Guest;
use wasip3::http::types::{ErrorCode, Fields, Response};
use wasip3::{wit_bindgen, wit_future, wit_stream};

struct HelloP3;

impl Guest for HelloP3 {
    async fn handle(_request: wasip3::http::types::Request) -> Result<Response, ErrorCode> {
        let headers = Fields::from_list(&[("content-type".to_owned(), b"text/plain".to_vec())])
            .map_err(|e| ErrorCode::InternalError(Some(format!("headers refused: {e:?}"))))?;
        let (mut body_tx, body_rx) = wit_stream::new();
        // The trailers future doubles as the "body complete" signal; dropping
        // its writer resolves it to the default, Ok(None): done, no trailers.
        let (trailers_tx, trailers_rx) = wit_future::new(|| Ok(None));
        let (response, _sent) = Response::new(headers, Some(body_rx), trailers_rx);

        // The host reads the body only once it has the response, so the body
        // is written by a task that outlives this call.
        wit_bindgen::spawn_local(async move {
            let unwritten = body_tx.write_all(b"Hello from p3\n".to_vec()).await;
            if !unwritten.is_empty() {
                eprintln!("hello-p3: client went away before the body was sent");
            }
            drop(trailers_tx);
        });
        Ok(response)
    }
}

wasip3::http::service::export!(HelloP3);
