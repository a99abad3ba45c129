//! A closed-loop load generator: `concurrency` workers, each on its own
//! keep-alive HTTP/1.1 connection, each sending its next request as soon
//! as the previous answer has been read in full. Records every latency,
//! and completions per interval for throughput over time.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::SendRequest;
use tokio::net::TcpStream;

/// One request of the workload.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RequestSpec {
    /// `GET`, `POST`, …
    pub method: String,
    /// Path and query.
    pub path: String,
    /// The body; sent with `content-type: application/json` when not empty.
    pub body: String,
}

impl RequestSpec {
    /// Parses `METHOD PATH [BODY]` (`GET /todos`, `POST /todos {"title":"a"}`).
    pub fn parse(text: &str) -> Result<Self> {
        let mut parts = text.trim().splitn(3, ' ');
        let (Some(method), Some(path)) = (parts.next(), parts.next()) else {
            bail!("`{text}` is not `METHOD PATH [BODY]`");
        };
        if !path.starts_with('/') {
            bail!("`{text}`: the path must start with `/`");
        }
        http::Method::from_bytes(method.as_bytes())
            .with_context(|| format!("`{text}`: `{method}` is not an HTTP method"))?;
        Ok(Self {
            method: method.to_owned(),
            path: path.to_owned(),
            body: parts.next().unwrap_or("").to_owned(),
        })
    }

    /// The request, for `authority`.
    pub fn build(&self, authority: &str) -> Result<http::Request<Full<Bytes>>> {
        let mut builder = http::Request::builder()
            .method(self.method.as_str())
            .uri(&self.path)
            .header(http::header::HOST, authority);
        if !self.body.is_empty() {
            builder = builder.header(http::header::CONTENT_TYPE, "application/json");
        }
        Ok(builder.body(Full::new(Bytes::from(self.body.clone())))?)
    }
}

/// One answer, read in full.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// Status code.
    pub status: u16,
    /// Headers, names lowercase.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Bytes,
}

/// A keep-alive HTTP/1.1 connection to one server.
pub struct Connection {
    addr: SocketAddr,
    authority: String,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Connection {
    /// A connection to `addr`, opened on first use (and again after the
    /// server closes it).
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            authority: addr.to_string(),
            sender: None,
        }
    }

    /// Sends `request` and reads the whole answer; on a closed connection
    /// reconnects once.
    pub async fn send(&mut self, request: &RequestSpec) -> Result<Answer> {
        let sender = match self.sender.as_mut() {
            Some(sender) if !sender.is_closed() => sender,
            _ => self.sender.insert(connect(self.addr).await?),
        };
        sender.ready().await.context("the connection closed")?;
        let response = match sender.send_request(request.build(&self.authority)?).await {
            Ok(response) => response,
            Err(e) => {
                self.sender = None;
                return Err(e).context("the request failed");
            }
        };
        let (parts, body) = response.into_parts();
        let body = body
            .collect()
            .await
            .context("the body broke off")?
            .to_bytes();
        let keep_alive = !parts
            .headers
            .get(http::header::CONNECTION)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
        if !keep_alive {
            self.sender = None;
        }
        Ok(Answer {
            status: parts.status.as_u16(),
            headers: parts
                .headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_owned(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body,
        })
    }
}

async fn connect(addr: SocketAddr) -> Result<SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("cannot connect to {addr}"))?;
    stream.set_nodelay(true)?;
    let (sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

/// What a load run measured.
#[derive(Debug, Clone, Default)]
pub struct LoadResult {
    /// Latency of every completed request, in microseconds, sorted.
    pub latencies_us: Vec<u32>,
    /// Requests that failed: no answer, or a 5xx.
    pub errors: u64,
    /// Completions per [`INTERVAL`], from the start of the run.
    pub per_interval: Vec<u64>,
    /// The measured wall time.
    pub elapsed: Duration,
}

/// Throughput-over-time resolution.
pub const INTERVAL: Duration = Duration::from_millis(250);

/// Runs `concurrency` closed-loop workers against `addr` for `duration`,
/// cycling through `workload` (each worker from its own offset).
pub async fn run(
    addr: SocketAddr,
    workload: Arc<Vec<RequestSpec>>,
    concurrency: usize,
    duration: Duration,
) -> LoadResult {
    let start = Instant::now();
    let deadline = start + duration;
    let workers: Vec<_> = (0..concurrency)
        .map(|worker| {
            let workload = workload.clone();
            tokio::spawn(async move { work(addr, &workload, worker, start, deadline).await })
        })
        .collect();
    let mut result = LoadResult::default();
    for worker in workers {
        let Ok(part) = worker.await else {
            result.errors += 1;
            continue;
        };
        result.latencies_us.extend(part.latencies_us);
        result.errors += part.errors;
        if result.per_interval.len() < part.per_interval.len() {
            result.per_interval.resize(part.per_interval.len(), 0);
        }
        for (total, n) in result.per_interval.iter_mut().zip(part.per_interval) {
            *total += n;
        }
    }
    result.elapsed = start.elapsed().min(duration);
    // Intervals at the end without a completion are part of the run too
    // (a stall must show as zeros, not as a shorter run).
    let intervals = duration.as_nanos().div_ceil(INTERVAL.as_nanos()) as usize;
    result
        .per_interval
        .resize(intervals.max(result.per_interval.len()), 0);
    result.per_interval.truncate(intervals);
    result.latencies_us.sort_unstable();
    result
}

async fn work(
    addr: SocketAddr,
    workload: &[RequestSpec],
    worker: usize,
    start: Instant,
    deadline: Instant,
) -> LoadResult {
    let mut connection = Connection::new(addr);
    let mut result = LoadResult::default();
    let mut next = worker;
    loop {
        let sent = Instant::now();
        if sent >= deadline {
            break;
        }
        let request = &workload[next % workload.len()];
        next += 1;
        let outcome = connection.send(request).await;
        let done = Instant::now();
        if done > deadline {
            // Only requests that completed inside the window count.
            break;
        }
        match outcome {
            Ok(answer) if answer.status < 500 => {
                let micros = (done - sent).as_micros();
                result
                    .latencies_us
                    .push(u32::try_from(micros).unwrap_or(u32::MAX));
                let slot = ((done - start).as_nanos() / INTERVAL.as_nanos()) as usize;
                // (`done` is inside the window, so `slot` is below the
                // number of intervals the run reports.)
                if result.per_interval.len() <= slot {
                    result.per_interval.resize(slot + 1, 0);
                }
                result.per_interval[slot] += 1;
            }
            Ok(_) => result.errors += 1,
            Err(_) => {
                result.errors += 1;
                // A refused connection would otherwise spin.
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }
    result
}

/// The `q`-quantile (0..=1) of sorted `values`, or 0 when empty.
pub fn quantile(sorted: &[u32], q: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((sorted.len() as f64) * q).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines_parse_with_and_without_bodies() {
        let get = RequestSpec::parse("GET /todos").unwrap();
        assert_eq!(
            (get.method.as_str(), get.path.as_str(), get.body.as_str()),
            ("GET", "/todos", "")
        );
        let post = RequestSpec::parse(r#"POST /todos {"title": "a b"}"#).unwrap();
        assert_eq!(post.body, r#"{"title": "a b"}"#);
        assert!(RequestSpec::parse("GET").is_err());
        assert!(RequestSpec::parse("GET todos").is_err());
        assert!(RequestSpec::parse("G(T /").is_err());
    }

    #[test]
    fn quantiles_are_nearest_rank() {
        let values: Vec<u32> = (1..=100).collect();
        assert_eq!(quantile(&values, 0.5), 50);
        assert_eq!(quantile(&values, 0.99), 99);
        assert_eq!(quantile(&values, 1.0), 100);
        assert_eq!(quantile(&[], 0.5), 0);
    }
}
