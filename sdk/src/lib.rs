//! Guest SDK (v0) for wasmhost: write an HTTP component as one plain function
//! over the [`http`] crate's types.
//!
//! The raw `wasi:http@0.2` interface makes every handler juggle resources,
//! out-parameters and stream chunking, and getting any of it wrong shows up
//! only at run time as a hung or truncated response. This crate does that part
//! once, on top of the generated bindings of the [`wasi`] crate, so that a
//! component reads like an ordinary Rust function:
//!
//! ```ignore
//! use wasmhost_sdk::{http_component, Request, Response};
//!
//! #[http_component]
//! fn handle(req: Request) -> Response {
//!     let greeting = format!("Hello from {}\n", req.uri().path());
//!     Response::new(greeting.into())
//! }
//! ```
//!
//! Build it with `cargo build --release --target wasm32-wasip2` (crate type
//! `cdylib`) and serve the `.wasm` with `wasmhost serve`.
//!
//! Beyond HTTP: [`outbound::send`] makes outgoing requests (to hosts the
//! manifest's `allowed_outbound_hosts` allows), [`variables::get`] reads the
//! component's Spin variables and [`key_value::Store`] the key-value stores
//! its `key_value_stores` names. They use the same host interfaces as the
//! Spin SDK, so a component also runs under `spin up`.
//!
//! The handler may also return `Result<Response, E>` for any `E: Display`
//! (`anyhow::Error` included): an `Err` becomes a `500` whose body is the
//! error message, so `?` can be used freely. A panic is not an error but a
//! trap: the host aborts the instance and answers on the guest's behalf.

#![deny(missing_docs)]

use std::fmt;
use std::io::{self, Read};

use http::header::{HeaderName, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use http::StatusCode;
use wasi::http::types::{
    self as wasi_http, Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};
use wasi::io::streams::{InputStream, OutputStream, StreamError};

pub use http;
pub use wasmhost_sdk_macros::http_component;

pub mod key_value;
pub mod outbound;
mod spin;
pub mod variables;

/// The request a handler receives: the [`http`] crate's type, so handlers can
/// use the whole ecosystem built around it instead of a bespoke API.
pub type Request = http::Request<IncomingBody>;

/// The response a handler returns; see [`Body`] for what the body can be.
pub type Response = http::Response<Body>;

/// `wasi:http` caps one `blocking-write-and-flush` at 4096 bytes, and reading
/// in the same size keeps a streamed body's memory use flat.
const CHUNK: usize = 4096;

/// The request body, read lazily from the host.
///
/// It is a reader rather than bytes so that a large upload can be processed
/// (or passed on, see [`Body::from`]) without holding it all in guest memory,
/// which the host caps.
///
/// `IncomingBody::default()` is an empty body, so that handlers can be
/// unit-tested natively with a hand-built [`Request`].
#[derive(Default)]
pub struct IncomingBody {
    inner: Option<IncomingBodyInner>,
}

/// The WASI resources behind a request body. They are parent and child (the
/// stream belongs to the body, the body to the request) and a child must be
/// dropped first, so the field order here, which is the drop order, matters.
struct IncomingBodyInner {
    stream: InputStream,
    _body: wasi_http::IncomingBody,
    _request: IncomingRequest,
}

impl IncomingBody {
    /// Takes ownership of the request so that it outlives its body stream.
    /// A request whose body cannot be taken reads as empty rather than
    /// failing: it can only happen if something consumed it already.
    fn from_request(request: IncomingRequest) -> IncomingBody {
        let Ok(body) = request.consume() else {
            return IncomingBody::default();
        };
        let Ok(stream) = body.stream() else {
            return IncomingBody::default();
        };
        IncomingBody {
            inner: Some(IncomingBodyInner {
                stream,
                _body: body,
                _request: request,
            }),
        }
    }

    /// Reads the whole body, for handlers that need all of it at once (to
    /// parse JSON, say). Prefer [`Read`] for anything that can be large.
    pub fn bytes(mut self) -> io::Result<Vec<u8>> {
        let mut buf = Vec::new();
        self.read_to_end(&mut buf)?;
        Ok(buf)
    }
}

impl fmt::Debug for IncomingBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IncomingBody")
    }
}

impl Read for IncomingBody {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(inner) = &self.inner else {
            return Ok(0);
        };
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            match inner.stream.blocking_read(buf.len() as u64) {
                // `Ok(0)` means end of body to a `Read` caller, so an empty
                // chunk (allowed by WASI) must not be passed on as one.
                Ok(chunk) if chunk.is_empty() => continue,
                Ok(chunk) if chunk.len() > buf.len() => {
                    return Err(io::Error::other("host returned more bytes than asked for"))
                }
                Ok(chunk) => {
                    buf[..chunk.len()].copy_from_slice(&chunk);
                    return Ok(chunk.len());
                }
                Err(StreamError::Closed) => return Ok(0),
                Err(StreamError::LastOperationFailed(e)) => {
                    return Err(io::Error::other(e.to_debug_string()))
                }
            }
        }
    }
}

/// A response body.
///
/// Fixed content is the common case, but a body can also be a reader that is
/// drained after the status and headers are sent, which is how a proxy or
/// echo handler answers without buffering.
#[derive(Default)]
pub enum Body {
    /// No body at all.
    #[default]
    Empty,
    /// Content known up front; the SDK sets `content-length` from it unless
    /// the handler did, so the host need not fall back to chunked encoding.
    Bytes(Vec<u8>),
    /// Content produced while the response is being sent. A read error after
    /// the headers are out can no longer change the status, so it ends the
    /// response abruptly, which the host reports to the client as a failure.
    Stream(Box<dyn Read>),
}

impl Body {
    /// Streams `reader` as the body; see [`Body::Stream`].
    pub fn stream(reader: impl Read + 'static) -> Body {
        Body::Stream(Box::new(reader))
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Body::Empty => f.write_str("Body::Empty"),
            Body::Bytes(b) => write!(f, "Body::Bytes({} bytes)", b.len()),
            Body::Stream(_) => f.write_str("Body::Stream(..)"),
        }
    }
}

impl From<Vec<u8>> for Body {
    fn from(bytes: Vec<u8>) -> Self {
        Body::Bytes(bytes)
    }
}

impl From<String> for Body {
    fn from(text: String) -> Self {
        Body::Bytes(text.into_bytes())
    }
}

impl From<&str> for Body {
    fn from(text: &str) -> Self {
        Body::Bytes(text.as_bytes().to_vec())
    }
}

/// Sends a request body straight back out as it arrives.
impl From<IncomingBody> for Body {
    fn from(body: IncomingBody) -> Self {
        Body::stream(body)
    }
}

/// What an `#[http_component]` function may return.
///
/// It exists so that handlers can use `?` (by returning a `Result`) without
/// each of them having to turn errors into responses by hand.
pub trait IntoResponse {
    /// Converts the handler's return value into the response to send.
    fn into_response(self) -> Response;
}

impl IntoResponse for Response {
    fn into_response(self) -> Response {
        self
    }
}

/// An error becomes a `500` carrying its message. It is also printed to
/// stderr, which the host logs, because the client may not show bodies.
impl<E: fmt::Display> IntoResponse for Result<Response, E> {
    fn into_response(self) -> Response {
        self.unwrap_or_else(|e| {
            // `{:#}` shows anyhow's whole context chain and is the same as
            // `{}` for most other error types.
            let message = format!("{e:#}");
            eprintln!("wasmhost-sdk: handler failed: {message}");
            text_response(StatusCode::INTERNAL_SERVER_ERROR, message)
        })
    }
}

/// Glue for the code `#[http_component]` generates; not a public API.
#[doc(hidden)]
pub mod __private {
    pub use wasi;
    pub use wasi::exports::http::incoming_handler::Guest;
    pub use wasi::http::types::{IncomingRequest, ResponseOutparam};

    /// Runs one request through `handler` and sends what it returns.
    pub fn run<R: super::IntoResponse>(
        request: IncomingRequest,
        response_out: ResponseOutparam,
        handler: impl FnOnce(super::Request) -> R,
    ) {
        let response = match super::to_http_request(request) {
            Ok(request) => handler(request).into_response(),
            Err(message) => super::text_response(http::StatusCode::BAD_REQUEST, message),
        };
        super::send(response, response_out);
    }
}

/// A plain-text response built without the fallible `http` builder, so error
/// paths cannot themselves fail.
fn text_response(status: StatusCode, mut message: String) -> Response {
    if !message.ends_with('\n') {
        message.push('\n');
    }
    let mut response = Response::new(message.into());
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Converts the WASI request; an `Err` is a message for a `400`, since the
/// handler cannot be given a request that `http` refuses to represent.
fn to_http_request(incoming: IncomingRequest) -> Result<Request, String> {
    use wasi_http::{Method as M, Scheme};

    let method = match incoming.method() {
        M::Get => http::Method::GET,
        M::Head => http::Method::HEAD,
        M::Post => http::Method::POST,
        M::Put => http::Method::PUT,
        M::Delete => http::Method::DELETE,
        M::Connect => http::Method::CONNECT,
        M::Options => http::Method::OPTIONS,
        M::Trace => http::Method::TRACE,
        M::Patch => http::Method::PATCH,
        M::Other(other) => http::Method::from_bytes(other.as_bytes())
            .map_err(|e| format!("invalid method {other:?}: {e}"))?,
    };

    let path_and_query = incoming.path_with_query().unwrap_or_else(|| "/".to_owned());
    let mut uri = http::Uri::builder().path_and_query(path_and_query);
    // `http::Uri` accepts a scheme only together with an authority and vice
    // versa, so the URI is absolute only when the host gave both (hosts strip
    // the `host` header, so this is where the authority is found).
    if let (Some(scheme), Some(authority)) = (incoming.scheme(), incoming.authority()) {
        let scheme = match scheme {
            Scheme::Http => "http".to_owned(),
            Scheme::Https => "https".to_owned(),
            Scheme::Other(other) => other,
        };
        uri = uri.scheme(scheme.as_str()).authority(authority);
    }
    let uri = uri
        .build()
        .map_err(|e| format!("invalid request URI: {e}"))?;

    let mut headers = http::HeaderMap::new();
    {
        // `headers()` is a child resource of the request and must be dropped
        // before the request is moved into the body below.
        let fields = incoming.headers();
        for (name, value) in fields.entries() {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| format!("invalid header name {name:?}: {e}"))?;
            let value = HeaderValue::from_bytes(&value)
                .map_err(|e| format!("invalid value for header {name}: {e}"))?;
            headers.append(name, value);
        }
    }

    let mut request = Request::new(IncomingBody::from_request(incoming));
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.headers_mut() = headers;
    Ok(request)
}

/// Sends the response: status and headers through the out-parameter, then the
/// body. Anything wrong with the status or headers is still answerable with a
/// `500`; once they are sent, a failure can only cut the body short.
fn send(response: Response, response_out: ResponseOutparam) {
    let (parts, body) = response.into_parts();

    let mut entries: Vec<(String, Vec<u8>)> = parts
        .headers
        .iter()
        .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec()))
        .collect();
    if let Body::Bytes(bytes) = &body {
        if !parts.headers.contains_key(CONTENT_LENGTH) {
            entries.push((
                CONTENT_LENGTH.as_str().to_owned(),
                bytes.len().to_string().into_bytes(),
            ));
        }
    }

    let fields = match Fields::from_list(&entries) {
        Ok(fields) => fields,
        Err(e) => return send_error(response_out, format!("response headers refused: {e:?}")),
    };
    let outgoing = OutgoingResponse::new(fields);
    if outgoing.set_status_code(parts.status.as_u16()).is_err() {
        return send_error(
            response_out,
            format!("response status {} refused", parts.status),
        );
    }
    let Ok(outgoing_body) = outgoing.body() else {
        return send_error(response_out, "response body unavailable".to_owned());
    };

    // Set before writing: the host only starts reading the body once it has
    // the response, so a body larger than its buffer would otherwise block.
    ResponseOutparam::set(response_out, Ok(outgoing));

    if let Err(e) = write_body(&outgoing_body, body) {
        // Dropping the body without `finish` tells the host the response is
        // incomplete, so it is not mistaken for a short but valid one.
        eprintln!("wasmhost-sdk: response body cut short: {e}");
        return;
    }
    if let Err(e) = OutgoingBody::finish(outgoing_body, None) {
        eprintln!("wasmhost-sdk: finishing the response body failed: {e:?}");
    }
}

/// Answers with a `500` when the handler's own response cannot be sent,
/// because leaving the out-parameter unset gives the client a less useful
/// error from the host instead.
fn send_error(response_out: ResponseOutparam, message: String) {
    eprintln!("wasmhost-sdk: {message}");
    send(
        text_response(StatusCode::INTERNAL_SERVER_ERROR, message),
        response_out,
    );
}

/// Writes `body` to the outgoing body's stream in chunks the host accepts.
fn write_body(target: &OutgoingBody, body: Body) -> io::Result<()> {
    // The stream is a child of `target`, dropped here before `finish`.
    let stream = target
        .write()
        .map_err(|()| io::Error::other("response body stream already taken"))?;
    match body {
        Body::Empty => Ok(()),
        Body::Bytes(bytes) => bytes
            .chunks(CHUNK)
            .try_for_each(|chunk| write_chunk(&stream, chunk)),
        Body::Stream(mut reader) => {
            let mut buf = vec![0u8; CHUNK];
            loop {
                match reader.read(&mut buf) {
                    Ok(0) => return Ok(()),
                    Ok(n) => write_chunk(&stream, &buf[..n])?,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            }
        }
    }
}

fn write_chunk(stream: &OutputStream, chunk: &[u8]) -> io::Result<()> {
    stream.blocking_write_and_flush(chunk).map_err(|e| match e {
        StreamError::Closed => io::Error::new(io::ErrorKind::BrokenPipe, "client went away"),
        StreamError::LastOperationFailed(e) => io::Error::other(e.to_debug_string()),
    })
}
