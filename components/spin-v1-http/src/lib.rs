//! Test fixture: a component calling Spin 1's outbound HTTP
//! (`fermyon:spin/http`, unversioned), as components built with Spin SDK 1
//! and early 2.x do; its HTTP handler is Spin SDK 5.2's.
//!
//! `GET /...?<url>`: `send-request` of a GET to `<url>`; answers
//! `<status> <body>`, or the error's name.

use spin_sdk::http::{IntoResponse, Request, Response};
use spin_sdk::http_component;

mod v1 {
    wit_bindgen::generate!({
        inline: "
            package fermyon:spin;

            interface http-types {
                type http-status = u16;
                type body = list<u8>;
                type headers = list<tuple<string, string>>;
                type params = list<tuple<string, string>>;
                type uri = string;
                enum method { get, post, put, delete, patch, head, options }
                record request {
                    method: method,
                    uri: uri,
                    headers: headers,
                    params: params,
                    body: option<body>,
                }
                record response {
                    status: http-status,
                    headers: option<headers>,
                    body: option<body>,
                }
                enum http-error {
                    success,
                    destination-not-allowed,
                    invalid-url,
                    request-error,
                    runtime-error,
                    too-many-requests,
                }
            }

            interface http {
                use http-types.{request, response, http-error};
                send-request: func(req: request) -> result<response, http-error>;
            }

            world v1 {
                import http;
            }
        ",
        world: "fermyon:spin/v1",
    });
}

use v1::fermyon::spin::http::send_request;
use v1::fermyon::spin::http_types::{Method, Request as V1Request};

#[http_component]
fn handle(req: Request) -> anyhow::Result<impl IntoResponse> {
    let url = req.query().to_owned();
    let text = match send_request(&V1Request {
        method: Method::Get,
        uri: url,
        headers: vec![],
        params: vec![],
        body: None,
    }) {
        Ok(response) => format!(
            "{} {}",
            response.status,
            String::from_utf8_lossy(&response.body.unwrap_or_default())
        ),
        Err(e) => format!("error: {e:?}"),
    };
    Ok(Response::builder().status(200).body(text).build())
}
