//! A real OTLP receiver for the tests, built from the OTLP protobuf
//! definitions (`opentelemetry-proto`): gRPC (tonic) and http/protobuf
//! (hyper), keeping every span and metric it is sent. The OpenTelemetry
//! Collector is not in Debian's archive; this speaks the same protocol.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use prost::Message as _;
use tokio::net::TcpListener;

use super::common::{guest, http1, Server};

/// How the receiver is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Grpc,
    HttpProtobuf,
}

/// A received span, flattened.
#[derive(Debug, Clone)]
pub struct Span {
    pub service: String,
    pub name: String,
    pub trace_id: String,
    pub span_id: String,
    pub parent: String,
    pub attributes: HashMap<String, String>,
}

#[derive(Clone, Default)]
pub struct Sink {
    spans: Arc<Mutex<Vec<Span>>>,
    metrics: Arc<Mutex<Vec<String>>>,
}

fn text(value: &Option<opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::DoubleValue(d)) => d.to_string(),
        _ => String::new(),
    }
}

fn attributes(list: &[KeyValue]) -> HashMap<String, String> {
    list.iter().map(|kv| (kv.key.clone(), text(&kv.value))).collect()
}

impl Sink {
    fn take_traces(&self, request: ExportTraceServiceRequest) {
        let mut spans = self.spans.lock().unwrap();
        for resource in request.resource_spans {
            let service = resource
                .resource
                .as_ref()
                .map(|r| attributes(&r.attributes))
                .and_then(|a| a.get("service.name").cloned())
                .unwrap_or_default();
            for scope in resource.scope_spans {
                for span in scope.spans {
                    spans.push(Span {
                        service: service.clone(),
                        name: span.name,
                        trace_id: hex::encode(&span.trace_id),
                        span_id: hex::encode(&span.span_id),
                        parent: hex::encode(&span.parent_span_id),
                        attributes: attributes(&span.attributes),
                    });
                }
            }
        }
    }

    fn take_metrics(&self, request: ExportMetricsServiceRequest) {
        let mut metrics = self.metrics.lock().unwrap();
        for resource in request.resource_metrics {
            for scope in resource.scope_metrics {
                metrics.extend(scope.metrics.into_iter().map(|m| m.name));
            }
        }
    }

    /// Waits until spans of every kind in `kinds` (see [`kind`]) arrived
    /// for `trace`, returning every span received.
    pub async fn wait_trace(&self, trace: &str, kinds: &[&str]) -> Vec<Span> {
        let within = Duration::from_secs(20);
        let start = Instant::now();
        loop {
            let spans = self.spans.lock().unwrap().clone();
            let done = kinds
                .iter()
                .all(|k| spans.iter().any(|s| s.trace_id == trace && kind(s) == *k));
            if done {
                return spans;
            }
            assert!(
                start.elapsed() < within,
                "the receiver did not get the spans expected within {within:?}; it got:\n{spans:#?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tonic::async_trait]
impl TraceService for Sink {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.take_traces(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

#[tonic::async_trait]
impl MetricsService for Sink {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        self.take_metrics(request.into_inner());
        Ok(tonic::Response::new(ExportMetricsServiceResponse {
            partial_success: None,
        }))
    }
}

/// Starts a receiver on a free loopback port; returns its endpoint URL.
pub async fn receiver(transport: Transport, sink: Sink) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    match transport {
        Transport::Grpc => {
            let incoming = tonic::transport::server::TcpIncoming::from(listener);
            tokio::spawn(
                tonic::transport::Server::builder()
                    .add_service(TraceServiceServer::new(sink.clone()))
                    .add_service(MetricsServiceServer::new(sink))
                    .serve_with_incoming(incoming),
            );
        }
        Transport::HttpProtobuf => {
            tokio::spawn(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let sink = sink.clone();
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                            let sink = sink.clone();
                            async move {
                                let path = req.uri().path().to_owned();
                                let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                                match path.as_str() {
                                    "/v1/traces" => {
                                        if let Ok(r) = ExportTraceServiceRequest::decode(body) {
                                            sink.take_traces(r);
                                        }
                                    }
                                    "/v1/metrics" => {
                                        if let Ok(r) = ExportMetricsServiceRequest::decode(body) {
                                            sink.take_metrics(r);
                                        }
                                    }
                                    _ => {}
                                }
                                Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::new())))
                            }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                            .await;
                    });
                }
            });
        }
    }
    endpoint
}

/// An HTTP server that answers every request with the `traceparent` it
/// received; returns its address.
async fn traceparent_echo() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|req: http::Request<hyper::body::Incoming>| async move {
                    let seen = req
                        .headers()
                        .get("traceparent")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("none")
                        .to_owned();
                    Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from(seen))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

fn env(transport: Transport, endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.to_owned()),
        (
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            match transport {
                Transport::Grpc => "grpc",
                Transport::HttpProtobuf => "http/protobuf",
            }
            .to_owned(),
        ),
        ("OTEL_SERVICE_NAME", "frontdoor-test".to_owned()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100".to_owned()),
        ("OTEL_METRIC_EXPORT_INTERVAL", "200".to_owned()),
    ]
}

fn serve_outbound(env: &[(&'static str, String)]) -> Server {
    let component = guest("outbound");
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Server::start_env(
        &[
            "serve",
            component.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--cache-dir",
            super::common::shared_cache().to_str().unwrap(),
        ],
        &env,
    )
}

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID: &str = "00f067aa0ba902b7";

/// A request carrying a `traceparent` to the outbound guest, which calls
/// an echo server: the server span continues the trace, instantiation and
/// the outbound call are its children, and the echo server sees a
/// `traceparent` naming the outbound span.
pub async fn check_trace(transport: Transport) {
    let sink = Sink::default();
    let endpoint = receiver(transport, sink.clone()).await;
    let echo = traceparent_echo().await;
    let server = serve_outbound(&env(transport, &endpoint));
    let resp = http1()
        .get(server.url(&format!("/?url=http://{echo}/")))
        .header("traceparent", format!("00-{TRACE_ID}-{PARENT_ID}-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen = resp.text().await.unwrap();
    let spans = sink
        .wait_trace(TRACE_ID, &["request", "instantiate", "outbound"])
        .await;
    let find = |name| find(&spans, TRACE_ID, name);
    let request = find("request");
    assert_eq!(request.parent, PARENT_ID, "the incoming traceparent is continued");
    assert_eq!(request.service, "frontdoor-test");
    assert_eq!(request.attributes.get("http.response.status_code").map(String::as_str), Some("200"));
    assert_eq!(request.attributes.get("wasmhost.component").map(String::as_str), Some("outbound"));
    assert!(request.attributes.contains_key("wasmhost.instance_us"), "{request:?}");
    let instantiate = find("instantiate");
    assert_eq!(instantiate.parent, request.span_id);
    let outbound = find("outbound");
    assert_eq!(outbound.parent, request.span_id);
    assert_eq!(seen, format!("00-{TRACE_ID}-{}-01", outbound.span_id), "traceparent injected");
}

/// The span of `trace` of kind `name`.
pub fn find<'a>(spans: &'a [Span], trace: &str, name: &str) -> &'a Span {
    spans
        .iter()
        .find(|s| s.trace_id == trace && kind(s) == name)
        .unwrap_or_else(|| panic!("no {name} span of trace {trace} in {spans:#?}"))
}

/// What a span is: by the attributes only wasmhost's request and client
/// spans carry, else by name (`otel.name` renames request and client
/// spans after their method and route).
pub fn kind(span: &Span) -> &str {
    if span.attributes.contains_key("wasmhost.request_id") {
        "request"
    } else if span.attributes.contains_key("wasmhost.call") {
        "outbound"
    } else {
        &span.name
    }
}

/// Request metrics arrive at the receiver.
pub async fn check_metrics() {
    let sink = Sink::default();
    let endpoint = receiver(Transport::Grpc, sink.clone()).await;
    let server = serve_outbound(&env(Transport::Grpc, &endpoint));
    let resp = http1().get(server.url("/")).send().await.unwrap();
    assert_eq!(resp.status(), 400);
    let start = Instant::now();
    loop {
        let names = sink.metrics.lock().unwrap().clone();
        if names.iter().any(|n| n == "wasmhost.requests")
            && names.iter().any(|n| n == "http.server.request.duration")
        {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no request metrics received; got {names:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
