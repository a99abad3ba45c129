//! Sending a guest's outgoing HTTP request over a connection of its own,
//! with the component's TLS configuration for the host (`[[client_tls]]`:
//! its CA roots and client certificate; webpki's roots for hosts it does
//! not name). wasmtime-wasi-http's own sender trusts webpki's roots only,
//! with no way to give it others, hence this one. It keeps that sender's
//! contract: HTTP/1.1, the request's connect, first-byte and
//! between-bytes timeouts (10 minutes when the guest sets none), the same
//! error variants, and a future that ends with the connection.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body::{Body, Frame, SizeHint};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::{timeout, Instant, Sleep};
use wasmtime_wasi_http::{Error, RequestOptions};

use crate::services::client_tls::{self, ComponentTls};

/// A timeout the guest did not set: wasmtime's default for each of them.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// What a response may come back over: TCP, or TLS over TCP.
trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// What [`send_request`] answers: the response, and a future that ends
/// when its connection does (with the connection's error, if any).
pub type Sent = (
    Response<ResponseBody>,
    Pin<Box<dyn Future<Output = Result<(), Error>> + Send>>,
);

/// The three timeouts of one request.
struct Timeouts {
    connect: Duration,
    first_byte: Duration,
    between_bytes: Duration,
}

impl Timeouts {
    fn of(options: Option<RequestOptions>) -> Self {
        let or_default = |d: Option<Duration>| d.unwrap_or(DEFAULT_TIMEOUT);
        Self {
            connect: or_default(options.and_then(|o| o.connect_timeout)),
            first_byte: or_default(options.and_then(|o| o.first_byte_timeout)),
            between_bytes: or_default(options.and_then(|o| o.between_bytes_timeout)),
        }
    }
}

/// Sends `request` (an absolute URI) over a new connection; `https` uses
/// `tls`'s configuration for the URI's host.
pub async fn send_request(
    mut request: Request<impl Body<Data = Bytes, Error = Error> + Send + 'static>,
    options: Option<RequestOptions>,
    tls: &ComponentTls,
) -> Result<Sent, Error> {
    let timeouts = Timeouts::of(options);
    let uri = request.uri();
    let host = uri.host().ok_or(Error::HttpRequestUriInvalid)?.to_owned();
    let secure = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
    let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
    let tcp = timeout(timeouts.connect, TcpStream::connect(format!("{host}:{port}")))
        .await
        .map_err(|_| Error::ConnectionTimeout)?
        .map_err(Error::Connect)?;
    let io: Box<dyn Io> = if secure {
        Box::new(timeout(timeouts.connect, tls_handshake(tcp, &host, tls))
            .await
            .map_err(|_| Error::ConnectionTimeout)??)
    } else {
        Box::new(tcp)
    };
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    // The connection runs on a task of its own: it carries the request
    // body out and the response body in for as long as either lasts.
    let (ended, ended_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let _ = ended.send(connection.await);
    });
    *request.uri_mut() = origin_form(request.uri());
    let response = timeout(timeouts.first_byte, sender.send_request(request))
        .await
        .map_err(|_| Error::ConnectionReadTimeout)?
        .map_err(Error::from)?;
    let connection_end = Box::pin(async move {
        match ended_rx.await {
            Ok(Err(e)) => Err(hyper_error(e)),
            Ok(Ok(())) | Err(_) => Ok(()),
        }
    });
    let response =
        response.map(|incoming| ResponseBody::new(incoming, timeouts.between_bytes));
    Ok((response, connection_end))
}

/// TLS over `tcp` to `host` with the configuration the component has for
/// it. A refused handshake is logged with its reason (and, for a server
/// certificate not trusted, what to configure) and answered as Spin does.
async fn tls_handshake(
    tcp: TcpStream,
    host: &str,
    tls: &ComponentTls,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, Error> {
    let name = server_name(host).map_err(|e| {
        tracing::info!("outgoing request to `{host}`: not a name TLS can check: {e}");
        Error::DnsError {
            rcode: Some("invalid dns name".to_owned()),
            info_code: None,
        }
    })?;
    let connector = tokio_rustls::TlsConnector::from(Arc::clone(tls.for_host(host).rustls()));
    connector.connect(name, tcp).await.map_err(|e| {
        let hint = client_tls::untrusted_hint(&e)
            .map(|h| format!(" ({h})"))
            .unwrap_or_default();
        tracing::info!(
            "outgoing request to `{host}`: TLS handshake failed: {}{hint}",
            client_tls::chain(&e)
        );
        Error::TlsProtocolError
    })
}

/// The name a server certificate is checked against: an IP address, or a
/// DNS name (`host` as a URI has it, an IPv6 address in brackets).
fn server_name(host: &str) -> Result<ServerName<'static>, rustls::pki_types::InvalidDnsNameError> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<IpAddr>() {
        Ok(ip) => Ok(ServerName::IpAddress(ip.into())),
        Err(_) => Ok(ServerName::try_from(bare)?.to_owned()),
    }
}

/// The request line's target: path and query only (the authority goes
/// in `host`; a full URI is for proxies).
fn origin_form(uri: &Uri) -> Uri {
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    Uri::try_from(path).unwrap_or_else(|_| Uri::from_static("/"))
}

fn hyper_error(e: hyper::Error) -> Error {
    if e.is_timeout() {
        Error::HttpResponseTimeout
    } else {
        Error::from(e)
    }
}

/// A response body that fails when no data arrives for the request's
/// between-bytes timeout.
pub struct ResponseBody {
    incoming: hyper::body::Incoming,
    limit: Duration,
    silence: Pin<Box<Sleep>>,
}

impl ResponseBody {
    fn new(incoming: hyper::body::Incoming, limit: Duration) -> Self {
        Self {
            incoming,
            limit,
            silence: Box::pin(tokio::time::sleep(limit)),
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.incoming).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.silence.as_mut().reset(Instant::now() + this.limit);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(hyper_error(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match this.silence.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(Error::ConnectionReadTimeout))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.incoming.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names_are_ip_addresses_when_they_parse_as_one_and_dns_names_otherwise() {
        assert_eq!(
            server_name("example.com").unwrap(),
            ServerName::try_from("example.com").unwrap()
        );
        assert_eq!(
            server_name("127.0.0.1").unwrap(),
            ServerName::from(std::net::Ipv4Addr::LOCALHOST)
        );
        assert_eq!(
            server_name("[::1]").unwrap(),
            ServerName::from(std::net::Ipv6Addr::LOCALHOST)
        );
        assert!(server_name("not a name").is_err());
    }

    #[test]
    fn the_request_line_carries_the_path_and_query_only() {
        let uri: Uri = "https://example.com:8443/a/b?c=d".parse().unwrap();
        assert_eq!(origin_form(&uri), "/a/b?c=d");
        let bare: Uri = "http://example.com".parse().unwrap();
        assert_eq!(origin_form(&bare), "/");
    }
}
