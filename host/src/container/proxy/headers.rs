//! The request as the container should see it and the response as the
//! client should: what a proxy owes both sides (RFC 9110 §7.6).

#![forbid(unsafe_code)]

use http::header::{HeaderName, HeaderValue, HOST};

use crate::backend::{RequestBody, RequestContext};

/// The request as the container should see it: origin-form target, a
/// `Host` header, HTTP/1.1, no hop-by-hop headers, `X-Forwarded-For`
/// appended.
pub fn upstream_request(
    mut req: http::Request<RequestBody>,
    ctx: &RequestContext,
) -> http::Request<RequestBody> {
    if req.headers().get(HOST).is_none() {
        if let Some(authority) = req.uri().authority().map(|a| a.as_str().to_owned()) {
            if let Ok(value) = HeaderValue::from_str(&authority) {
                req.headers_mut().insert(HOST, value);
            }
        }
    }
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".to_owned());
    if let Ok(uri) = path.parse() {
        *req.uri_mut() = uri;
    }
    *req.version_mut() = http::Version::HTTP_11;
    strip_hop_by_hop(req.headers_mut());
    let forwarded = HeaderName::from_static("x-forwarded-for");
    let client = ctx.client_addr.ip().to_string();
    let value = match req.headers().get(&forwarded).and_then(|v| v.to_str().ok()) {
        Some(existing) => format!("{existing}, {client}"),
        None => client,
    };
    if let Ok(value) = HeaderValue::from_str(&value) {
        req.headers_mut().insert(forwarded, value);
    }
    req
}

/// Whether the container closes the connection after this response (an
/// HTTP/1.0 one, or `Connection: close`): then there is nothing to keep.
pub fn closes<B>(response: &http::Response<B>) -> bool {
    response.version() == http::Version::HTTP_10
        || response
            .headers()
            .get_all(http::header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|token| token.trim().eq_ignore_ascii_case("close"))
}

/// The container's response as the client should see it.
pub fn downstream_response<B>(mut response: http::Response<B>) -> http::Response<B> {
    strip_hop_by_hop(response.headers_mut());
    response
}

/// Removes the headers that describe one connection, not the message
/// (RFC 9110 §7.6.1): the fixed hop-by-hop set and any header the
/// `Connection` header names. A proxy that passed on the container's
/// `Connection: close` would make every client reconnect per request.
pub fn strip_hop_by_hop(headers: &mut http::HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        // `Connection: host` must not cost the message its Host.
        if name != HOST {
            headers.remove(name);
        }
    }
    for name in [
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    ] {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_are_stripped() {
        let response = http::Response::builder()
            .header("connection", "close, x-hop")
            .header("keep-alive", "timeout=5")
            .header("x-hop", "1")
            .header("transfer-encoding", "chunked")
            .header("content-type", "text/html")
            .header("x-end-to-end", "kept")
            .body(())
            .unwrap();
        assert!(closes(&response));
        let response = downstream_response(response);
        let names: Vec<&str> = response.headers().keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["content-type", "x-end-to-end"]);

        let mut headers = http::HeaderMap::new();
        headers.insert(HOST, HeaderValue::from_static("example.com"));
        headers.insert("connection", HeaderValue::from_static("host"));
        strip_hop_by_hop(&mut headers);
        assert_eq!(headers.get(HOST).unwrap(), "example.com");
    }

    #[test]
    fn only_a_close_or_http_1_0_ends_the_connection() {
        let with = |connection: Option<&str>, version| {
            let mut response = http::Response::builder().version(version);
            if let Some(value) = connection {
                response = response.header("connection", value);
            }
            closes(&response.body(()).unwrap())
        };
        assert!(!with(None, http::Version::HTTP_11));
        assert!(!with(Some("keep-alive"), http::Version::HTTP_11));
        assert!(with(Some("Close"), http::Version::HTTP_11));
        assert!(with(Some("x-a, close"), http::Version::HTTP_11));
        assert!(with(None, http::Version::HTTP_10));
    }
}
