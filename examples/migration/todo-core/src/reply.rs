//! The transport-neutral response that [`crate::handle`] returns.

use http::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use http::StatusCode;
use serde::Serialize;

/// `content-type` of every JSON reply.
pub const JSON: &str = "application/json";

/// `content-type` of the health check's plain `ok`.
pub const TEXT: &str = "text/plain; charset=utf-8";

/// A response for a transport to send as it is: status, the two headers the
/// API decides, and the exact body bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The HTTP status code.
    pub status: u16,
    /// The `content-type` header; `None` when there is no body.
    pub content_type: Option<&'static str>,
    /// The `allow` header; set on `405` replies only.
    pub allow: Option<&'static str>,
    /// The body, empty for `204`.
    pub body: Vec<u8>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
}

impl Reply {
    /// `{"error": message}` with `status`. Public so that a transport that
    /// fails before [`crate::handle`] runs answers in the same shape.
    pub fn error(status: u16, message: &str) -> Reply {
        Reply::json(status, &ErrorBody { error: message })
    }

    /// The `400` for a request body the transport could not read. Its text is
    /// fixed, not the transport's error, so both forms send the same bytes;
    /// the transport logs the detail.
    pub fn unreadable_body() -> Reply {
        Reply::error(400, "the request body could not be read")
    }

    /// The [`http`] response for this reply, with `body` turning the bytes
    /// into the transport's body type. One conversion for both forms, so
    /// they cannot differ in status or headers; each adds only its own
    /// `x-served-by`.
    pub fn into_response<B>(self, body: impl FnOnce(Vec<u8>) -> B) -> http::Response<B> {
        let mut response = http::Response::new(body(self.body));
        // Every status this crate produces is a valid one.
        *response.status_mut() =
            StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let headers = response.headers_mut();
        // `from_static` panics on bytes a header may not hold; both values
        // are this crate's own constants, which hold none.
        if let Some(content_type) = self.content_type {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        }
        if let Some(allow) = self.allow {
            headers.insert(ALLOW, HeaderValue::from_static(allow));
        }
        response
    }

    /// `value` as [`to_json`], with the JSON content type.
    pub(crate) fn json(status: u16, value: &impl Serialize) -> Reply {
        Reply {
            status,
            content_type: Some(JSON),
            allow: None,
            body: to_json(value),
        }
    }

    pub(crate) fn text(status: u16, text: &str) -> Reply {
        Reply {
            status,
            content_type: Some(TEXT),
            allow: None,
            body: text.as_bytes().to_vec(),
        }
    }

    pub(crate) fn no_content() -> Reply {
        Reply {
            status: 204,
            content_type: None,
            allow: None,
            body: Vec::new(),
        }
    }
}

/// `value` serialised compactly: the one serialisation of this API, for
/// replies and stored values alike.
pub(crate) fn to_json(value: &impl Serialize) -> Vec<u8> {
    // Cannot fail: every value passed here is a struct (or list of them) of
    // strings, integers and booleans, with no maps and no custom `Serialize`
    // impls, which is everything serde_json can refuse.
    serde_json::to_vec(value).expect("API values always serialise")
}
