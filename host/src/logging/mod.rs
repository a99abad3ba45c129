//! Where log lines go: stderr for the host log (guest stdout and stderr
//! included), stdout for the access log, both through non-blocking sinks
//! ([`sink`]), and the OpenTelemetry layer when it is switched on.
//!
//! A log write used to block the request's own thread when the reader of
//! the pipe stopped reading (a stuck log shipper, a full terminal): every
//! request that logged then stalled. Now a line that cannot be written at
//! once is dropped and counted (`wasmhost_log_lines_dropped_total`), and
//! the request goes on.

pub mod sink;

use std::sync::OnceLock;

use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

pub use self::sink::dropped_lines;
use self::sink::{Sink, SinkWriter};
use crate::telemetry::Telemetry;

static STDERR: OnceLock<Sink> = OnceLock::new();
static STDOUT: OnceLock<Sink> = OnceLock::new();

/// The sink on inherited descriptor `fd`, made on first use; `None` when
/// the descriptor is unusable (closed), in which case nothing is written.
fn sink(cell: &'static OnceLock<Sink>, fd: impl std::os::fd::AsFd) -> Option<&'static Sink> {
    if let Some(sink) = cell.get() {
        return Some(sink);
    }
    let sink = Sink::for_fd(fd).ok()?;
    Some(cell.get_or_init(|| sink))
}

/// The access log's sink (stdout).
pub fn stdout() -> Option<&'static Sink> {
    sink(&STDOUT, std::io::stdout())
}

/// Installs the global subscriber: the host log on stderr at the level
/// `filter_var` names (else `default`), plus the OpenTelemetry layer when
/// `telemetry` exports traces.
pub fn init(filter_var: &str, default: &str, telemetry: Option<&Telemetry>) {
    let filter = EnvFilter::try_from_env(filter_var).unwrap_or_else(|_| EnvFilter::new(default));
    // Spans are for OpenTelemetry only: the host log's lines stay as they
    // were, without span prefixes, and with no exporter no layer wants a
    // span, so none is ever built. The level hint matters as much: a
    // filter without one lets every `debug!`/`trace!` callsite in h2,
    // hyper and wasmtime be checked at run time (measured: −18 % req/s).
    let max_level = filter.max_level_hint().unwrap_or(LevelFilter::TRACE);
    let events_only = tracing_subscriber::filter::filter_fn(|meta| meta.is_event())
        .with_max_level_hint(max_level);
    let stderr = sink(&STDERR, std::io::stderr());
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(move || Writer(stderr))
        .with_filter(filter)
        .with_filter(events_only);
    // Two branches, not an `Option` layer: a `None` layer says it wants
    // every span, and spans would be built for nobody.
    match telemetry.and_then(|t| t.layer()) {
        Some(otel) => tracing_subscriber::registry().with(fmt).with(otel).init(),
        None => tracing_subscriber::registry().with(fmt).init(),
    }
}

/// Installs a plain blocking subscriber on stderr: for the embedded
/// container runtime's helper, which must stay single-threaded and whose
/// stderr is the container's, read line by line by the server.
pub fn init_blocking(filter_var: &str, default: &str) {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            EnvFilter::try_from_env(filter_var).unwrap_or_else(|_| EnvFilter::new(default)),
        )
        .init();
}

/// The host log's writer: the stderr sink, or nowhere.
struct Writer(Option<&'static Sink>);

impl std::io::Write for Writer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.0 {
            Some(sink) => SinkWriter(sink).write(buf),
            None => Ok(buf.len()),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
