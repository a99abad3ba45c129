//! Outgoing HTTP from a handler: one blocking call over
//! `wasi:http/outgoing-handler`, with the [`http`] crate's types.
//!
//! The host decides where requests may go (for a Spin app, the component's
//! `allowed_outbound_hosts`); a refused request comes back as
//! [`OutboundError::Denied`] rather than hanging or trapping, so a handler
//! can answer sensibly.

use std::fmt;

use wasi::http::outgoing_handler;
use wasi::http::types::{ErrorCode, Fields, Method, OutgoingBody, OutgoingRequest, Scheme};
use wasi::io::streams::StreamError;

/// Why an outgoing request failed.
#[derive(Debug)]
pub enum OutboundError {
    /// The host does not allow this destination.
    Denied,
    /// The request could not be expressed in `wasi:http` (bad URL, header).
    Invalid(String),
    /// The host or the peer failed it; the `wasi:http` error code.
    Failed(String),
}

impl fmt::Display for OutboundError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OutboundError::Denied => f.write_str("the host denied this outgoing request"),
            OutboundError::Invalid(why) => write!(f, "invalid outgoing request: {why}"),
            OutboundError::Failed(why) => write!(f, "outgoing request failed: {why}"),
        }
    }
}

impl std::error::Error for OutboundError {}

fn failed(code: ErrorCode) -> OutboundError {
    match code {
        ErrorCode::HttpRequestDenied => OutboundError::Denied,
        other => OutboundError::Failed(format!("{other:?}")),
    }
}

/// Sends `request` (its URI must be absolute) and reads the whole response.
pub fn send(request: http::Request<Vec<u8>>) -> Result<http::Response<Vec<u8>>, OutboundError> {
    let (parts, body) = request.into_parts();
    let headers = Fields::new();
    for (name, value) in &parts.headers {
        headers
            .append(name.as_str(), value.as_bytes())
            .map_err(|e| OutboundError::Invalid(format!("header `{name}`: {e:?}")))?;
    }
    let outgoing = OutgoingRequest::new(headers);
    let method = match parts.method.as_str() {
        "GET" => Method::Get,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        "HEAD" => Method::Head,
        "PATCH" => Method::Patch,
        "OPTIONS" => Method::Options,
        other => Method::Other(other.to_owned()),
    };
    let invalid = |what: &str| OutboundError::Invalid(format!("{what} of `{}`", parts.uri));
    outgoing
        .set_method(&method)
        .map_err(|()| invalid("method"))?;
    let scheme = match parts.uri.scheme_str() {
        Some("http") => Scheme::Http,
        Some("https") => Scheme::Https,
        Some(other) => Scheme::Other(other.to_owned()),
        None => return Err(invalid("no scheme in the URI")),
    };
    outgoing
        .set_scheme(Some(&scheme))
        .map_err(|()| invalid("scheme"))?;
    let authority = parts
        .uri
        .authority()
        .ok_or_else(|| invalid("no host in the URI"))?;
    outgoing
        .set_authority(Some(authority.as_str()))
        .map_err(|()| invalid("authority"))?;
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    outgoing
        .set_path_with_query(Some(path))
        .map_err(|()| invalid("path"))?;

    let out_body = outgoing.body().map_err(|()| invalid("body"))?;
    let future = outgoing_handler::handle(outgoing, None).map_err(failed)?;
    {
        let stream = out_body.write().map_err(|()| invalid("body stream"))?;
        for chunk in body.chunks(4096) {
            stream
                .blocking_write_and_flush(chunk)
                .map_err(|e| OutboundError::Failed(format!("writing the body: {e:?}")))?;
        }
    }
    OutgoingBody::finish(out_body, None).map_err(failed)?;

    future.subscribe().block();
    let incoming = match future.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(code))) => return Err(failed(code)),
        Some(Err(())) | None => return Err(OutboundError::Failed("no response".into())),
    };
    let mut response = http::Response::builder().status(incoming.status());
    for (name, value) in incoming.headers().entries() {
        response = response.header(name, value);
    }
    let body = incoming
        .consume()
        .map_err(|()| OutboundError::Failed("response body".into()))?;
    let mut bytes = Vec::new();
    {
        let stream = body
            .stream()
            .map_err(|()| OutboundError::Failed("response body stream".into()))?;
        loop {
            match stream.blocking_read(64 << 10) {
                Ok(chunk) => bytes.extend_from_slice(&chunk),
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(e)) => {
                    return Err(OutboundError::Failed(e.to_debug_string()))
                }
            }
        }
    }
    response
        .body(bytes)
        .map_err(|e| OutboundError::Failed(format!("response head: {e}")))
}
