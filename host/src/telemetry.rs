//! OpenTelemetry, switched on the way Spin switches it on: by the standard
//! environment variables.
//!
//! When `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`)
//! is set, traces are exported over OTLP; when it (or
//! `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`) is set, metrics are too. The
//! protocol is `OTEL_EXPORTER_OTLP_PROTOCOL` (per signal:
//! `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`, `..._METRICS_PROTOCOL`): `grpc` or
//! `http/protobuf` (the default, as the specification says). The service
//! name is `OTEL_SERVICE_NAME`, else `wasmhost`; the batch and export
//! intervals follow `OTEL_BSP_SCHEDULE_DELAY` and
//! `OTEL_METRIC_EXPORT_INTERVAL`.
//!
//! Spans are `tracing` spans with target [`TARGET`], turned into
//! OpenTelemetry spans by `tracing-opentelemetry`: a server span per
//! request (continuing an incoming W3C `traceparent`), and children for
//! instance start, outbound HTTP (with `traceparent` injected), key-value
//! calls, proxying to a container (`traceparent` forwarded) and container
//! cold starts. Without the variables no layer listens to that target, so
//! those spans are never built: the cost is a disabled-callsite check.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use opentelemetry::metrics::{Counter, Histogram, MeterProvider as _};
use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry::KeyValue;
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

use crate::backend::{RequestContext, Served};

/// The `tracing` target of every span exported as an OpenTelemetry span.
pub const TARGET: &str = "wasmhost::otel";

/// The service name when `OTEL_SERVICE_NAME` is not set.
pub const DEFAULT_SERVICE_NAME: &str = "wasmhost";

/// Whether traces are exported (decided once at start).
static TRACING: AtomicBool = AtomicBool::new(false);

/// The request instruments, when metrics are exported.
static METRICS: OnceLock<Instruments> = OnceLock::new();

struct Instruments {
    requests: Counter<u64>,
    duration: Histogram<f64>,
}

/// The exporters, kept until shutdown so the last batch is flushed.
pub struct Telemetry {
    tracer: Option<SdkTracerProvider>,
    meter: Option<SdkMeterProvider>,
}

/// An OTLP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Grpc,
    HttpProtobuf,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The protocol for one signal (`TRACES` or `METRICS`).
fn protocol(signal: &str) -> Result<Protocol> {
    let var = format!("OTEL_EXPORTER_OTLP_{signal}_PROTOCOL");
    let (name, value) = match env(&var) {
        Some(value) => (var, value),
        None => match env("OTEL_EXPORTER_OTLP_PROTOCOL") {
            Some(value) => ("OTEL_EXPORTER_OTLP_PROTOCOL".to_owned(), value),
            None => return Ok(Protocol::HttpProtobuf),
        },
    };
    match value.trim() {
        "grpc" => Ok(Protocol::Grpc),
        "http/protobuf" => Ok(Protocol::HttpProtobuf),
        other => bail!("{name}=`{other}` is not supported: use `grpc` or `http/protobuf`"),
    }
}

/// Whether a signal has an endpoint: its own variable or the shared one.
fn wanted(signal: &str) -> bool {
    env("OTEL_EXPORTER_OTLP_ENDPOINT").is_some()
        || env(&format!("OTEL_EXPORTER_OTLP_{signal}_ENDPOINT")).is_some()
}

fn resource() -> Resource {
    let name = env("OTEL_SERVICE_NAME").unwrap_or_else(|| DEFAULT_SERVICE_NAME.to_owned());
    Resource::builder().with_service_name(name).build()
}

impl Telemetry {
    /// The exporters the environment asks for, or `None` when it asks for
    /// none. Must be called inside the tokio runtime (the gRPC client
    /// starts a task of its own).
    pub fn from_env() -> Result<Option<Self>> {
        let traces = wanted("TRACES");
        let metrics = wanted("METRICS");
        if !traces && !metrics {
            return Ok(None);
        }
        let tracer = traces.then(tracer_provider).transpose()?;
        let meter = metrics.then(meter_provider).transpose()?;
        if tracer.is_some() {
            opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
            TRACING.store(true, Ordering::Relaxed);
        }
        if let Some(meter) = &meter {
            let m = meter.meter("wasmhost");
            let _ = METRICS.set(Instruments {
                requests: m
                    .u64_counter("wasmhost.requests")
                    .with_description("Requests answered, by route, component and status")
                    .build(),
                duration: m
                    .f64_histogram("http.server.request.duration")
                    .with_unit("s")
                    .with_description("Time to the response head")
                    .build(),
            });
        }
        Ok(Some(Self { tracer, meter }))
    }

    /// What is exported, for the start-up log.
    pub fn describe(&self) -> String {
        match (&self.tracer, &self.meter) {
            (Some(_), Some(_)) => "exporting traces and metrics over OTLP".to_owned(),
            (Some(_), None) => "exporting traces over OTLP".to_owned(),
            (None, _) => "exporting metrics over OTLP".to_owned(),
        }
    }

    /// The `tracing` layer that turns [`TARGET`] spans into OpenTelemetry
    /// spans (and warnings and errors inside them into span events).
    pub fn layer<S>(&self) -> Option<impl Layer<S> + Send + Sync + 'static>
    where
        S: tracing::Subscriber + for<'span> LookupSpan<'span> + Send + Sync,
    {
        let tracer = self.tracer.as_ref()?.tracer("wasmhost");
        // Spans are INFO, events WARN and up: the hint keeps every finer
        // callsite statically off.
        let only_ours = tracing_subscriber::filter::filter_fn(|meta| {
            if meta.is_span() {
                meta.target() == TARGET
            } else {
                *meta.level() <= tracing::Level::WARN
            }
        })
        .with_max_level_hint(tracing::level_filters::LevelFilter::INFO);
        Some(
            tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_filter(only_ours),
        )
    }

    /// Flushes and stops the exporters. Call it before the tokio runtime
    /// goes away.
    pub fn shutdown(self) {
        if let Some(tracer) = self.tracer {
            if let Err(e) = tracer.shutdown() {
                eprintln!("OpenTelemetry: flushing traces failed: {e}");
            }
        }
        if let Some(meter) = self.meter {
            if let Err(e) = meter.shutdown() {
                eprintln!("OpenTelemetry: flushing metrics failed: {e}");
            }
        }
    }
}

fn tracer_provider() -> Result<SdkTracerProvider> {
    let exporter = match protocol("TRACES")? {
        Protocol::Grpc => opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .build(),
        Protocol::HttpProtobuf => opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .build(),
    }
    .context("cannot set up the OTLP trace exporter")?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource())
        .build())
}

fn meter_provider() -> Result<SdkMeterProvider> {
    let exporter = match protocol("METRICS")? {
        Protocol::Grpc => opentelemetry_otlp::MetricExporter::builder()
            .with_tonic()
            .build(),
        Protocol::HttpProtobuf => opentelemetry_otlp::MetricExporter::builder()
            .with_http()
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .build(),
    }
    .context("cannot set up the OTLP metric exporter")?;
    Ok(SdkMeterProvider::builder()
        .with_periodic_exporter(exporter)
        .with_resource(resource())
        .build())
}

/// Whether traces are exported: worth injecting `traceparent`.
pub fn tracing_enabled() -> bool {
    TRACING.load(Ordering::Relaxed)
}

/// The server span of one request, continuing the trace of an incoming
/// `traceparent`. Disabled (free) when traces are not exported.
pub fn request_span<B>(req: &http::Request<B>, ctx: &RequestContext) -> tracing::Span {
    let span = tracing::info_span!(
        target: TARGET,
        "request",
        otel.name = %req.method(),
        otel.kind = "server",
        otel.status_code = Empty,
        http.request.method = %req.method(),
        url.path = req.uri().path(),
        network.protocol.version = ?req.version(),
        client.address = %ctx.client_addr.ip(),
        http.route = Empty,
        http.response.status_code = Empty,
        wasmhost.component = Empty,
        wasmhost.request_id = %ctx.id,
        wasmhost.instance_us = Empty,
    );
    if !span.is_disabled() {
        let parent = opentelemetry::global::get_text_map_propagator(|propagator| {
            propagator.extract(&HeaderExtractor(req.headers()))
        });
        if parent.span().span_context().is_valid() {
            // The span is fresh: it has no children yet, so this cannot fail.
            let _ = span.set_parent(parent);
        }
    }
    span
}

/// Records the outcome of a request on its span, and in the request
/// metrics when they are exported.
pub fn record_response(
    span: &tracing::Span,
    status: http::StatusCode,
    served: Option<&Served>,
    method: &http::Method,
    elapsed: Duration,
) {
    if !span.is_disabled() {
        span.record("http.response.status_code", status.as_u16());
        if let Some(served) = served {
            span.record("wasmhost.component", &*served.component);
            if let Some(route) = &served.route {
                span.record("http.route", &**route);
                span.record("otel.name", format!("{method} {route}"));
            }
        }
        if status.is_server_error() {
            span.record("otel.status_code", "ERROR");
        }
    }
    if let Some(metrics) = METRICS.get() {
        let mut attributes = vec![
            KeyValue::new("http.request.method", method.to_string()),
            KeyValue::new("http.response.status_code", i64::from(status.as_u16())),
        ];
        if let Some(served) = served {
            attributes.push(KeyValue::new(
                "wasmhost.component",
                served.component.to_string(),
            ));
            if let Some(route) = &served.route {
                attributes.push(KeyValue::new("http.route", route.to_string()));
            }
        }
        metrics.requests.add(1, &attributes);
        metrics.duration.record(elapsed.as_secs_f64(), &attributes);
    }
}

/// Records the time a request spent in its instance on the current
/// request span.
pub fn record_instance_time(elapsed: Duration) {
    if tracing_enabled() {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        tracing::Span::current().record("wasmhost.instance_us", micros);
    }
}

/// Puts the W3C `traceparent` (and `tracestate`) of `span` into `headers`,
/// replacing any the guest set: the host decides which trace a request it
/// sends belongs to.
pub fn inject(span: &tracing::Span, headers: &mut http::HeaderMap) {
    if !tracing_enabled() || span.is_disabled() {
        return;
    }
    let cx = span.context();
    if !cx.span().span_context().is_valid() {
        return;
    }
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&cx, &mut HeaderInjector(headers));
    });
}

/// A client span for an outgoing HTTP request (`kind` names what is
/// called: `http` for a guest's request, `container` for proxying).
pub fn client_span(method: &http::Method, uri: &http::Uri, kind: &'static str) -> tracing::Span {
    tracing::info_span!(
        target: TARGET,
        "outbound",
        otel.name = %method,
        otel.kind = "client",
        otel.status_code = Empty,
        http.request.method = %method,
        url.full = %uri,
        server.address = uri.host().unwrap_or_default(),
        wasmhost.call = kind,
        http.response.status_code = Empty,
    )
}

/// Records a client span's answer.
pub fn record_client_status(span: &tracing::Span, status: Option<http::StatusCode>) {
    if span.is_disabled() {
        return;
    }
    match status {
        Some(status) => {
            span.record("http.response.status_code", status.as_u16());
            if status.is_server_error() {
                span.record("otel.status_code", "ERROR");
            }
        }
        None => {
            span.record("otel.status_code", "ERROR");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_protocol_defaults_to_http_protobuf_and_refuses_others() {
        // Only this test touches these variables.
        std::env::remove_var("OTEL_EXPORTER_OTLP_PROTOCOL");
        std::env::remove_var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL");
        assert_eq!(protocol("TRACES").ok(), Some(Protocol::HttpProtobuf));
        std::env::set_var("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc");
        assert_eq!(protocol("TRACES").ok(), Some(Protocol::Grpc));
        std::env::set_var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json");
        let error = protocol("TRACES").expect_err("http/json is not built in");
        assert!(
            error
                .to_string()
                .contains("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=`http/json`"),
            "{error}"
        );
        std::env::remove_var("OTEL_EXPORTER_OTLP_PROTOCOL");
        std::env::remove_var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL");
    }
}
