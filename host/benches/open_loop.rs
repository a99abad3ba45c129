//! Open-loop HTTP load for the memory-at-scale bench (issue 17, part 4):
//! requests sent at a fixed rate whatever the server does, each timed from
//! the moment it was due (wrk2's model, so a server that falls behind is
//! charged for the wait), on an idle keep-alive connection when one is free,
//! else on a new one while fewer than `--connections` are open, else on the
//! first connection to come free.
//!
//! wrk (closed loop, `bench/scale_bench.py`'s other load) opens every
//! connection and writes every first request in the same few
//! milliseconds: with 10,000 connections that is a burst of 10,000 new
//! connections and instances at once, and the p99 it reports is mostly how
//! long the server takes to work through that burst. Clients that arrive at
//! a rate are the other half of the picture: at R requests per second to a
//! handler that waits 1 s, R requests are in flight (Little's law), and the
//! latency shows whether the host keeps up with them.
//!
//! ```text
//! open_loop --url http://127.0.0.1:PORT/PATH --rate R --duration S
//!           [--connections N] [--warm-up S] [--timeout S] [--threads N]
//! ```
//!
//! Requests due in the first `--warm-up` seconds (the ramp, while the
//! number in flight grows from zero) are sent and checked but left out of
//! the latency figures. One JSON object on stdout.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;

type Sender = SendRequest<Empty<Bytes>>;

struct Args {
    addr: SocketAddr,
    path: String,
    rate: f64,
    duration: Duration,
    warm_up: Duration,
    timeout: Duration,
    threads: usize,
    /// Most connections open at once (default: the rate, times 1.1).
    connections: Option<u64>,
}

fn parse_args() -> Args {
    let mut url = None;
    let mut args = Args {
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        path: "/".into(),
        rate: 0.0,
        duration: Duration::from_secs(20),
        warm_up: Duration::from_secs(3),
        timeout: Duration::from_secs(10),
        threads: 2,
        connections: None,
    };
    let mut argv = std::env::args().skip(1);
    while let Some(flag) = argv.next() {
        let value = argv
            .next()
            .unwrap_or_else(|| usage(&format!("{flag} needs a value")));
        let seconds = || {
            Duration::from_secs_f64(
                value
                    .parse()
                    .unwrap_or_else(|_| usage(&format!("{flag}: not a number"))),
            )
        };
        match flag.as_str() {
            "--url" => url = Some(value.clone()),
            "--rate" => {
                args.rate = value
                    .parse()
                    .unwrap_or_else(|_| usage("--rate: not a number"))
            }
            "--duration" => args.duration = seconds(),
            "--warm-up" => args.warm_up = seconds(),
            "--timeout" => args.timeout = seconds(),
            "--connections" => {
                args.connections = Some(
                    value
                        .parse()
                        .unwrap_or_else(|_| usage("--connections: not a number")),
                )
            }
            "--threads" => {
                args.threads = value
                    .parse()
                    .unwrap_or_else(|_| usage("--threads: not a number"))
            }
            // `cargo bench` passes `--bench`.
            "--bench" => {}
            other => usage(&format!("unknown flag {other}")),
        }
    }
    let url = url.unwrap_or_else(|| usage("--url is required"));
    let rest = url
        .strip_prefix("http://")
        .unwrap_or_else(|| usage("--url must be http://HOST:PORT/PATH"));
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    args.addr = authority
        .parse()
        .unwrap_or_else(|_| usage("--url: HOST:PORT must be an IP address and port"));
    if !path.is_empty() {
        args.path = path.to_string();
    }
    if args.path.parse::<hyper::Uri>().is_err() {
        usage("--url: the path is not a valid request target");
    }
    if args.rate <= 0.0 {
        usage("--rate must be above 0");
    }
    args
}

fn usage(why: &str) -> ! {
    eprintln!("open_loop: {why}\nusage: open_loop --url http://IP:PORT/PATH --rate R --duration S [--connections N] [--warm-up S] [--timeout S] [--threads N]");
    std::process::exit(2)
}

/// How one request ended.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Ok,
    /// Answered, but not 2xx.
    Status,
    Connect,
    /// The connection failed after it was open (reset, closed early).
    Io,
    Timeout,
}

struct Record {
    /// Whether it was due after the warm-up.
    measured: bool,
    /// When it ended, since the start.
    finished: Duration,
    latency: Duration,
    outcome: Outcome,
}

/// Idle keep-alive connections, and counts shared by every request.
struct Shared {
    addr: SocketAddr,
    path: String,
    /// Connections back from a request, ready for the next; a request that
    /// finds none and no room for a new one waits here, in turn.
    idle_tx: mpsc::UnboundedSender<Sender>,
    idle_rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<Sender>>,
    /// Connections open now, and the most allowed.
    open: AtomicU64,
    max_open: u64,
    opened: AtomicU64,
    in_flight: AtomicU64,
    most_in_flight: AtomicU64,
    records: Mutex<Vec<Record>>,
}

impl Shared {
    /// An idle connection, a new one, or the first to come free.
    async fn connection(&self) -> Result<Sender, Outcome> {
        if let Ok(mut idle) = self.idle_rx.try_lock() {
            while let Ok(sender) = idle.try_recv() {
                if sender.is_ready() {
                    return Ok(sender);
                }
                self.closed();
            }
        }
        if self.open.fetch_add(1, Ordering::Relaxed) < self.max_open {
            return self.connect().await.inspect_err(|_| self.closed());
        }
        self.closed();
        let mut idle = self.idle_rx.lock().await;
        loop {
            match idle.recv().await {
                Some(sender) if sender.is_ready() => return Ok(sender),
                Some(_) => self.closed(),
                None => return Err(Outcome::Io),
            }
        }
    }

    /// A connection was dropped (or never opened).
    fn closed(&self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }

    async fn connect(&self) -> Result<Sender, Outcome> {
        let stream = TcpStream::connect(self.addr)
            .await
            .map_err(|_| Outcome::Connect)?;
        let _ = stream.set_nodelay(true);
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|_| Outcome::Connect)?;
        tokio::spawn(connection);
        self.opened.fetch_add(1, Ordering::Relaxed);
        Ok(sender)
    }

    /// One request on an idle connection or a new one; the connection goes
    /// back to the pool once its answer has been read whole.
    async fn request(&self) -> Outcome {
        let mut conn = match self.connection().await {
            Ok(sender) => InUse {
                shared: self,
                sender: Some(sender),
            },
            Err(outcome) => return outcome,
        };
        let Some(sender) = conn.sender.as_mut() else {
            return Outcome::Io;
        };
        let request = hyper::Request::get(&self.path)
            .header(hyper::header::HOST, self.addr.to_string())
            .body(Empty::new())
            .expect("a GET with a path checked by parse_args");
        let Ok(response) = sender.send_request(request).await else {
            return Outcome::Io;
        };
        let ok = response.status().is_success();
        if response.into_body().collect().await.is_err() {
            return Outcome::Io;
        }
        if sender.ready().await.is_ok() {
            if let Some(sender) = conn.sender.take() {
                if self.idle_tx.send(sender).is_err() {
                    self.closed();
                }
            }
        }
        if ok {
            Outcome::Ok
        } else {
            Outcome::Status
        }
    }

    fn record(&self, record: Record) {
        self.records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(record);
    }
}

/// A connection a request holds: dropped with the request (an error, a
/// timeout) it is counted closed; a request that finishes well hands it
/// back to the idle queue instead.
struct InUse<'a> {
    shared: &'a Shared,
    sender: Option<Sender>,
}

impl Drop for InUse<'_> {
    fn drop(&mut self) {
        if self.sender.is_some() {
            self.shared.closed();
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    ms(sorted[rank.clamp(1, sorted.len()) - 1])
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

async fn run(args: Args) -> serde_json::Value {
    let (idle_tx, idle_rx) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared {
        addr: args.addr,
        path: args.path.clone(),
        idle_tx,
        idle_rx: tokio::sync::Mutex::new(idle_rx),
        open: AtomicU64::new(0),
        max_open: args
            .connections
            .unwrap_or((args.rate * 1.1).ceil() as u64)
            .max(1),
        opened: AtomicU64::new(0),
        in_flight: AtomicU64::new(0),
        most_in_flight: AtomicU64::new(0),
        records: Mutex::new(Vec::new()),
    });
    let start = Instant::now();
    let total = (args.rate * args.duration.as_secs_f64()) as u64;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..total {
        let offset = Duration::from_secs_f64(i as f64 / args.rate);
        let due = start + offset;
        if due > Instant::now() {
            tokio::time::sleep_until(due).await;
        }
        let shared = shared.clone();
        let measured = offset >= args.warm_up;
        let timeout = args.timeout;
        tasks.spawn(async move {
            let now = shared.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
            shared.most_in_flight.fetch_max(now, Ordering::Relaxed);
            let outcome = tokio::time::timeout(timeout, shared.request())
                .await
                .unwrap_or(Outcome::Timeout);
            shared.in_flight.fetch_sub(1, Ordering::Relaxed);
            shared.record(Record {
                measured,
                finished: start.elapsed(),
                latency: due.elapsed(),
                outcome,
            });
        });
        // Reap finished tasks as we go so the set stays small.
        while tasks.try_join_next().is_some() {}
    }
    let sent_for = start.elapsed();
    while tasks.join_next().await.is_some() {}
    let records = std::mem::take(&mut *shared.records.lock().unwrap_or_else(|e| e.into_inner()));
    summary(&args, total, sent_for, &shared, &records)
}

fn summary(
    args: &Args,
    total: u64,
    sent_for: Duration,
    shared: &Shared,
    records: &[Record],
) -> serde_json::Value {
    let count = |measured: Option<bool>, outcome: Outcome| {
        records
            .iter()
            .filter(|r| measured.is_none_or(|m| r.measured == m) && r.outcome == outcome)
            .count()
    };
    let mut latencies: Vec<Duration> = records
        .iter()
        .filter(|r| r.measured && r.outcome == Outcome::Ok)
        .map(|r| r.latency)
        .collect();
    latencies.sort_unstable();
    let mean = if latencies.is_empty() {
        0.0
    } else {
        ms(latencies.iter().sum::<Duration>()) / latencies.len() as f64
    };
    let measured_s = (args.duration.saturating_sub(args.warm_up)).as_secs_f64();
    // Throughput: answers that arrived (not fell due) in the measured part.
    let answered = records
        .iter()
        .filter(|r| {
            r.outcome == Outcome::Ok && r.finished >= args.warm_up && r.finished < args.duration
        })
        .count();
    serde_json::json!({
        "rate": args.rate,
        "duration_s": args.duration.as_secs_f64(),
        "warm_up_s": args.warm_up.as_secs_f64(),
        "scheduled": total,
        // How long sending the schedule took: above the duration when
        // this client could not keep to the rate itself.
        "sent_for_s": sent_for.as_secs_f64(),
        "measured_ok": latencies.len(),
        // Requests due in the measured part that were answered 2xx (their
        // latencies are the figures below), and answers per second that
        // arrived in it: below the rate when the server falls behind.
        "measured_rps": answered as f64 / measured_s.max(f64::MIN_POSITIVE),
        "mean_ms": mean,
        "p50_ms": percentile(&latencies, 50.0),
        "p75_ms": percentile(&latencies, 75.0),
        "p90_ms": percentile(&latencies, 90.0),
        "p99_ms": percentile(&latencies, 99.0),
        "p999_ms": percentile(&latencies, 99.9),
        "max_ms": latencies.last().map(|d| ms(*d)).unwrap_or(0.0),
        "non2xx": count(None, Outcome::Status),
        "connect": count(None, Outcome::Connect),
        "io": count(None, Outcome::Io),
        "timeout": count(None, Outcome::Timeout),
        "warm_up_ok": count(Some(false), Outcome::Ok),
        "connections_opened": shared.opened.load(Ordering::Relaxed),
        "max_connections": shared.max_open,
        "most_in_flight": shared.most_in_flight.load(Ordering::Relaxed),
    })
}

fn main() {
    let args = parse_args();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let report = runtime.block_on(run(args));
    println!("{report}");
}
