//! wasmhost: serve HTTP from WebAssembly components and native containers
//! behind one front door.
//!
//! # Layout
//!
//! - [`app`]: the Spin application manifest (`spin.toml` v2), loaded and
//!   checked before anything is bound or compiled.
//! - [`commands`]: one struct per CLI subcommand; `main.rs` only parses.
//! - [`compare`]: a service's container and Wasm forms measured side by
//!   side (`wasmhost compare`).
//! - [`frontdoor`]: the listener, HTTP/1.1 + HTTP/2, request limits,
//!   graceful drain.
//! - [`backend`]: the one trait every kind of workload implements.
//! - [`container`]: native containers: image layers to a root filesystem,
//!   runtime specs, runtimes, private network namespaces, the lifecycle as
//!   a state machine, proxying.
//! - [`dispatch`]: routes the requests of a multi-component app to its
//!   components, with Spin's `spin-*` headers.
//! - [`wasm`]: the wasmtime engine, component loading, the compile cache and
//!   the component backend.
//! - [`metrics`]: per-route, per-component counters, Prometheus text.
//! - [`mirror`]: serving a route from one component while comparing
//!   another's answers.
//! - [`oci`]: registries, the digest-verified content store and the
//!   artifact formats (Wasm components, Spin apps, container images).
//! - [`reload`]: swapping a running app for its reloaded manifest.
//! - [`router`]: Spin's HTTP route table and `spin-*` request headers, pure.
//! - [`services`]: what the host gives guests beyond WASI (key-value
//!   stores, the outbound allow-list, service chaining).
//! - [`parse`]: sizes and durations as users write them.
//! - [`shutdown`]: shutdown as a value handed to the server.
//! - [`limits`]: every default limit, with why.
//! - [`logging`]: the host log and access log writers (non-blocking), and
//!   the OpenTelemetry layer.
//! - [`overrun`]: requests whose guest overruns its time slice move off
//!   the front door's threads.
//! - [`telemetry`]: OpenTelemetry traces and metrics over OTLP.
//! - [`admin`]: the admin listener: metrics, liveness and readiness.
//! - [`workers`]: `serve --workers N`: one process per CPU behind one
//!   listening socket, supervised.
//! - [`upstream`]: upstream components, HTTP services that run elsewhere.
//! - [`rollout`]: a route moved from one component to another step by
//!   step while the figures hold, rolled back when not.
//! - [`volume`]: host directories mounted into containers and components.
//! - [`inherited_fds`]: descriptors wasmhost inherited are not passed on.
//! - [`cgroup_wait`]: the kernel's wait before a process moves between
//!   cgroups, taken early by the processes that move others (a standby
//!   container helper, the containerd shim's daemon).

pub mod admin;
pub mod app;
pub mod backend;
pub mod cgroup_wait;
pub mod commands;
pub mod compare;
pub mod container;
pub mod dispatch;
pub mod frontdoor;
#[cfg(test)]
mod import_rule;
pub mod inherited_fds;
pub mod limits;
pub mod logging;
pub mod metrics;
pub mod mirror;
pub mod oci;
pub mod overrun;
pub mod parse;
pub mod reload;
pub mod rollout;
pub mod router;
pub mod services;
pub mod shim;
pub mod shutdown;
pub mod telemetry;
pub mod upstream;
pub mod volume;
pub mod wasm;
pub mod workers;
