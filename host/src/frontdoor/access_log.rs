//! The access log: one line per request on stdout, in the common log
//! format (with wasmhost's fields appended) or as JSON.
//!
//! Lines go through a non-blocking sink ([`crate::logging::sink`]): a
//! reader that stops reading stdout loses lines (counted), never holds a
//! request up.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::backend::RequestId;
use crate::logging::sink::Sink;

/// The line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// NCSA common log format, then duration in seconds, route, component
    /// and request id:
    /// `127.0.0.1 - - [06/Dec/2026:16:20:00 +0000] "GET /hi HTTP/1.1" 200 12 0.000431 "/hi" "hello" 0000002a`
    Common,
    /// One JSON object per line with the same fields, named.
    Json,
}

/// Where access lines go.
pub struct AccessLog {
    format: Format,
    sink: Option<&'static Sink>,
}

/// What is known of a request when its response ends.
#[derive(Debug)]
pub struct Entry<'a> {
    /// When the request head arrived.
    pub time: DateTime<Utc>,
    /// The peer.
    pub client: SocketAddr,
    /// Method.
    pub method: &'a http::Method,
    /// Request target: path and query.
    pub target: &'a str,
    /// Protocol version.
    pub version: http::Version,
    /// Response status.
    pub status: u16,
    /// Response body bytes sent.
    pub bytes: u64,
    /// Head arrival to the end of the response body.
    pub duration: Duration,
    /// The route as written in the manifest, if one matched.
    pub route: Option<&'a str>,
    /// The component that served it, if one did.
    pub component: Option<&'a str>,
    /// The request id (also in the host log's lines for this request).
    pub request: RequestId,
    /// Whether the response body ended early (deadline, guest failure,
    /// client gone).
    pub aborted: bool,
}

impl AccessLog {
    /// An access log in `format` into `sink` (none: stdout is closed).
    pub fn new(format: Format, sink: Option<&'static Sink>) -> Self {
        Self { format, sink }
    }

    /// Writes one line; never blocks.
    pub fn write(&self, entry: &Entry<'_>) {
        let Some(sink) = self.sink else {
            return;
        };
        let mut line = match self.format {
            Format::Common => common(entry),
            Format::Json => json(entry),
        };
        line.push('\n');
        sink.write_line(line.as_bytes());
    }
}

fn version(version: http::Version) -> &'static str {
    match version {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_11 => "HTTP/1.1",
        http::Version::HTTP_2 => "HTTP/2.0",
        http::Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/?",
    }
}

/// `"` and control characters escaped, as nginx does, so a request
/// target cannot forge fields or lines.
fn escaped(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => {
                let _ = write!(out, "\\x{:02X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

fn common(e: &Entry<'_>) -> String {
    format!(
        "{} - - [{}] \"{} {} {}\" {} {} {:.6} \"{}\" \"{}\" {}{}",
        e.client.ip(),
        e.time.format("%d/%b/%Y:%H:%M:%S %z"),
        e.method,
        escaped(e.target),
        version(e.version),
        e.status,
        e.bytes,
        e.duration.as_secs_f64(),
        escaped(e.route.unwrap_or("-")),
        escaped(e.component.unwrap_or("-")),
        e.request,
        if e.aborted { " aborted" } else { "" },
    )
}

fn json(e: &Entry<'_>) -> String {
    serde_json::json!({
        "time": e.time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "client": e.client.to_string(),
        "method": e.method.as_str(),
        "target": e.target,
        "protocol": version(e.version),
        "status": e.status,
        "bytes": e.bytes,
        "duration_ms": e.duration.as_secs_f64() * 1e3,
        "route": e.route,
        "component": e.component,
        "request_id": e.request.to_string(),
        "aborted": e.aborted,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(target: &str) -> (http::Method, String) {
        (http::Method::GET, target.to_owned())
    }

    fn sample<'a>(method: &'a http::Method, target: &'a str) -> Entry<'a> {
        Entry {
            time: DateTime::parse_from_rfc3339("2026-12-06T16:20:00Z")
                .expect("valid time")
                .with_timezone(&Utc),
            client: "127.0.0.1:40000".parse().expect("valid address"),
            method,
            target,
            version: http::Version::HTTP_11,
            status: 200,
            bytes: 12,
            duration: Duration::from_micros(431),
            route: Some("/hi"),
            component: Some("hello"),
            request: RequestId::from_u64(42),
            aborted: false,
        }
    }

    #[test]
    fn common_lines_follow_ncsa_then_wasmhost_fields() {
        let (method, target) = entry("/hi?x=1");
        assert_eq!(
            common(&sample(&method, &target)),
            "127.0.0.1 - - [06/Dec/2026:16:20:00 +0000] \"GET /hi?x=1 HTTP/1.1\" 200 12 0.000431 \"/hi\" \"hello\" 0000002a"
        );
    }

    #[test]
    fn a_target_cannot_forge_fields_or_lines() {
        let (method, target) = entry("/a\" 500 0\n127.0.0.2 - - x");
        let line = common(&sample(&method, &target));
        assert!(!line.contains('\n'), "{line}");
        assert!(line.contains("/a\\\" 500 0\\x0A127.0.0.2"), "{line}");
    }

    #[test]
    fn json_lines_carry_every_field() {
        let (method, target) = entry("/hi");
        let value: serde_json::Value =
            serde_json::from_str(&json(&sample(&method, &target))).expect("valid JSON");
        assert_eq!(value["status"], 200);
        assert_eq!(value["route"], "/hi");
        assert_eq!(value["component"], "hello");
        assert_eq!(value["request_id"], "0000002a");
        assert_eq!(value["client"], "127.0.0.1:40000");
        assert_eq!(value["time"], "2026-12-06T16:20:00.000Z");
    }
}
