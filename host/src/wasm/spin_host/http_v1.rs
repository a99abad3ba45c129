//! Spin 1's outbound HTTP, `fermyon:spin/http` (unversioned: the package
//! before `@2.0.0`), which components built with Spin SDK 1 and early 2.x
//! import beside WASI's: `send-request` with the whole request and response
//! as values. Allowed by the same `allowed_outbound_hosts` as wasi:http
//! (`destination-not-allowed` otherwise); the response body is buffered
//! up to [`MAX_BODY_BYTES`] (`runtime-error` past it, as in Spin).

use crate::wasm::state::GuestState;

mod generated {
    wasmtime::component::bindgen!({
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

            world host {
                import http;
            }
        ",
        world: "fermyon:spin/host",
        imports: { default: async },
    });
}

use generated::fermyon::spin::{http, http_types};
use http_types::{HttpError, Method, Request, Response};

/// The most of a response body buffered for the guest: Spin's
/// `MAX_HOST_BUFFERED_BYTES` (128 MiB), so a guest that works under Spin
/// works here and one that asks for more gets Spin's error.
const MAX_BODY_BYTES: usize = 128 << 20;

/// Adds `fermyon:spin/http` to `linker`.
pub fn add_to_linker(linker: &mut wasmtime::component::Linker<GuestState>) -> anyhow::Result<()> {
    use wasmtime::component::HasSelf;
    http::add_to_linker::<GuestState, HasSelf<GuestState>>(linker, |state| state)?;
    Ok(())
}

impl http_types::Host for GuestState {}

fn method(m: Method) -> reqwest::Method {
    match m {
        Method::Get => reqwest::Method::GET,
        Method::Post => reqwest::Method::POST,
        Method::Put => reqwest::Method::PUT,
        Method::Delete => reqwest::Method::DELETE,
        Method::Patch => reqwest::Method::PATCH,
        Method::Head => reqwest::Method::HEAD,
        Method::Options => reqwest::Method::OPTIONS,
    }
}

impl http::Host for GuestState {
    async fn send_request(&mut self, req: Request) -> Result<Response, HttpError> {
        // Only absolute URLs: a relative one (Spin's `self` request) has no
        // origin to resolve against here.
        let url = reqwest::Url::parse(&req.uri).map_err(|_| HttpError::InvalidUrl)?;
        if !self.outbound_allows_address(&req.uri) {
            tracing::info!(
                "fermyon:spin/http request to `{}` denied: not in the component's allowed outbound hosts",
                req.uri
            );
            return Err(HttpError::DestinationNotAllowed);
        }
        // One client per TLS configuration (the component's for the host,
        // `[[client_tls]]`): connections are pooled across requests.
        let client = self
            .client_tls()
            .for_host(url.host_str().unwrap_or_default())
            .reqwest();
        let mut builder = client.request(method(req.method), url);
        for (name, value) in req.headers {
            builder = builder.header(name, value);
        }
        if let Some(body) = req.body {
            builder = builder.body(body);
        }
        let mut response = builder.send().await.map_err(|e| {
            tracing::info!("fermyon:spin/http request failed: {e}");
            HttpError::RequestError
        })?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| {
            tracing::info!("fermyon:spin/http response body failed: {e}");
            HttpError::RuntimeError
        })? {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                tracing::info!(
                    "fermyon:spin/http response body exceeds {MAX_BODY_BYTES} bytes: refused"
                );
                return Err(HttpError::RuntimeError);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Response {
            status,
            headers: Some(headers),
            body: Some(body),
        })
    }
}
