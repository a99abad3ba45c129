//! Where log lines go: stderr for the host log (guest stdout and stderr
//! included), stdout for the access log, both through non-blocking
//! writers, and the OpenTelemetry layer when it is switched on.
//!
//! A log write used to happen on the request's own thread: a reader that
//! stopped reading the pipe (a stuck log shipper, a full terminal) stalled
//! every request that logged. Now each line is queued for a writer thread;
//! when the queue is full the line is dropped and counted
//! (`wasmhost_log_lines_dropped_total`), and the request goes on.

use std::sync::OnceLock;

use tracing_appender::non_blocking::{ErrorCounter, NonBlocking, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

use crate::telemetry::Telemetry;

/// Lines queued per stream before new ones are dropped. At ~200 bytes a
/// line, about 3 MiB held for a reader that fell behind: enough to ride
/// out a pause, small enough not to matter when it never comes back.
pub const QUEUED_LINES: usize = 16_384;

/// Keeps the writer threads alive; dropping it flushes what is queued.
pub struct LogGuard {
    _stderr: WorkerGuard,
    stdout: Option<WorkerGuard>,
}

static DROPPED: OnceLock<Vec<ErrorCounter>> = OnceLock::new();

/// The access log's writer, once [`init`] or [`stdout`] made it.
static STDOUT: OnceLock<NonBlocking> = OnceLock::new();

fn non_blocking<W: std::io::Write + Send + 'static>(
    writer: W,
    thread: &str,
) -> (NonBlocking, WorkerGuard) {
    NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(QUEUED_LINES)
        .thread_name(thread)
        .finish(writer)
}

/// Installs the global subscriber: the host log on stderr at the level
/// `filter_var` names (else `default`), plus the OpenTelemetry layer when
/// `telemetry` exports traces. Keep the guard until the end of `main`.
pub fn init(filter_var: &str, default: &str, telemetry: Option<&Telemetry>) -> LogGuard {
    let (stderr, stderr_guard) = non_blocking(std::io::stderr(), "wasmhost-log");
    let (stdout, stdout_guard) = non_blocking(std::io::stdout(), "wasmhost-access-log");
    let _ = DROPPED.set(vec![stderr.error_counter(), stdout.error_counter()]);
    let _ = STDOUT.set(stdout);
    let filter = EnvFilter::try_from_env(filter_var).unwrap_or_else(|_| EnvFilter::new(default));
    // Spans are for OpenTelemetry only: the host log's lines stay as they
    // were, without span prefixes, and with no exporter no layer wants a
    // span, so none is ever built.
    let events_only = tracing_subscriber::filter::filter_fn(|meta| meta.is_event());
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(stderr)
        .with_filter(filter)
        .with_filter(events_only);
    let otel = telemetry.and_then(|t| t.layer());
    tracing_subscriber::registry().with(fmt).with(otel).init();
    LogGuard {
        _stderr: stderr_guard,
        stdout: Some(stdout_guard),
    }
}

/// The non-blocking stdout writer for the access log: the one [`init`]
/// made, else (a server started in-process, by a test) a new one whose
/// thread lives as long as the process.
pub fn stdout() -> NonBlocking {
    STDOUT
        .get_or_init(|| {
            let (writer, guard) = non_blocking(std::io::stdout(), "wasmhost-access-log");
            std::mem::forget(guard);
            writer
        })
        .clone()
}

/// Installs a plain blocking subscriber on stderr: for the embedded
/// container runtime's helper, which must stay single-threaded (its
/// stderr is the container's, read line by line by the server).
pub fn init_blocking(filter_var: &str, default: &str) {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            EnvFilter::try_from_env(filter_var).unwrap_or_else(|_| EnvFilter::new(default)),
        )
        .init();
}

impl LogGuard {
    /// Flushes the access log's queue now (the host log's is flushed when
    /// the guard is dropped).
    pub fn flush_stdout(&mut self) {
        self.stdout = None;
    }
}

/// Lines dropped so far because a log reader fell behind.
pub fn dropped_lines() -> u64 {
    DROPPED
        .get()
        .map_or(0, |counters| counters.iter().map(|c| c.dropped_lines() as u64).sum())
}
