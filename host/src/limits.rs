//! Default limits, each a named constant whose doc says where the number
//! came from. The CLI exposes every one of them as a flag.

use std::time::Duration;

/// Wall-clock budget for one request, guest time and body streaming
/// included. 30 s is what most reverse proxies (nginx `proxy_read_timeout`
/// is 60 s, AWS ALB 60 s, Cloudflare 100 s) comfortably sit above, so a
/// request that times out here is answered by us with a 504 rather than cut
/// by the proxy in front.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Linear-memory cap per instance. 128 MiB matches Spin's and Fastly's
/// Compute defaults: generous for request handlers, small enough that a
/// thousand concurrent instances fit in this machine's memory.
pub const MEMORY_LIMIT: usize = 128 << 20;

/// Largest request head (request line plus headers) accepted. 64 KiB is
/// above every browser's cookie budget and matches hyper's own default read
/// buffer ceiling order of magnitude; larger heads get 431.
pub const MAX_HEADER_BYTES: usize = 64 << 10;

/// Largest request body accepted. 1 GiB lets the streaming echo test prove
/// bodies are never buffered; operators lower it with `--max-body-size`.
pub const MAX_BODY_BYTES: u64 = 1 << 30;

/// How long shutdown waits for in-flight requests before it exits anyway.
/// Kubernetes' default termination grace period is 30 s; 10 s leaves the
/// rest of that budget to whatever runs before and after us.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Epoch tick: how often the engine-wide ticker bumps the epoch. A looping
/// guest yields its thread at most this long after each tick, and is stopped
/// within one tick of its deadline.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Requests one component serves at once, and so the instances the
/// pooling allocator reserves slots for; more requests wait for a free
/// instance (503 at their deadline). Setting up the pool costs about 1 ms
/// per 250 slots at start-up (each slot's fiber stack gets its own guard
/// page), so the default stays well above what 2 cores can run at once
/// without paying for 1000 slots nobody uses.
pub const MAX_CONCURRENCY: u32 = 256;

/// Time from accept to a complete first request head, TLS handshake
/// included; past it the connection is cut. This is the slowloris bound: a
/// client trickling header lines, or connecting and saying nothing, holds a
/// descriptor this long at most. 10 s is the `ReadHeaderTimeout` Go's
/// servers are usually given and well above any honest client's head
/// (nginx's 60 s `client_header_timeout` is what slowloris was written
/// against). Bodies are not affected: a slow upload's head is in.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a connection may sit with no request in flight before it is
/// closed: HTTP/1.1 keep-alive (until its next head completes) and HTTP/2
/// alike. hyper's own default for HTTP/1.1 heads; nginx keeps idle
/// keep-alive connections 75 s.
pub const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(30);

/// HTTP/2 streams one connection may have open at once, as advertised in
/// SETTINGS_MAX_CONCURRENT_STREAMS. 100 is the floor RFC 9113 recommends
/// and what nginx and Envoy advertise; h2's own default (unlimited,
/// hyper's 200) lets one connection take every instance slot.
pub const H2_MAX_CONCURRENT_STREAMS: u32 = 100;

/// Streams a client may open and reset before the server has accepted
/// them, after which the connection is closed with ENHANCE_YOUR_CALM: the
/// rapid-reset (CVE-2023-44487) guard. h2's default, set here so it is
/// explicit and tested.
pub const H2_MAX_PENDING_ACCEPT_RESETS: usize = 20;

/// Streams the server may reset because of a client's protocol errors
/// before it closes the connection: the MadeYouReset (CVE-2025-8671) guard.
/// hyper's default since the fix, set here so it is explicit and tested.
pub const H2_MAX_LOCAL_ERROR_RESETS: usize = 1024;

/// HTTP/2 ping interval and the time to wait for the answer, so dead peers
/// do not hold connections open. 20 s is gRPC's and Envoy's common choice.
pub const H2_KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(20);

/// Memory a container may use (cgroup memory limit; swap is held to the
/// same figure, so it cannot page its way past it). Twice a Wasm
/// instance's [`MEMORY_LIMIT`]: a container carries a whole process (libc,
/// its allocator, often a language runtime) where an instance carries one
/// linear memory.
pub const CONTAINER_MEMORY_LIMIT: u64 = 256 << 20;

/// Processes and threads a container may have at once (cgroup pids
/// limit): a fork bomb stops there, long before the host's own limit,
/// while a threaded server (a thread per core, a pool) has room. Docker
/// sets none by default; this bound is ours.
pub const CONTAINER_PIDS_LIMIT: i64 = 256;

/// CPU a container may use, in thousandths of a CPU (CFS quota over a
/// 100 ms period): one core, so one busy container cannot take every core
/// from the front door and the Wasm components beside it.
pub const CONTAINER_MILLICPUS: u32 = 1000;

/// How long a container's start may take before its port accepts
/// connections; past it the start fails (503, and a log line saying why).
/// The same as [`REQUEST_TIMEOUT`]: a lazy start happens inside a request.
pub const CONTAINER_READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Between SIGTERM and SIGKILL when a container stops: `docker stop`'s
/// default, and the same as [`DRAIN_TIMEOUT`], so a shutdown's two waits
/// are of one size.
pub const CONTAINER_STOP_GRACE: Duration = Duration::from_secs(10);

/// A container that crashes within this long of its start continues its
/// failures in a row, so a crash loop's restarts back off (0.5 s, 1 s,
/// 2 s, … at most 30 s); one that ran longer restarts after 0.5 s again.
/// Docker's restart policy resets its delay after the same 10 s.
pub const CONTAINER_CRASH_STREAK_RESET: Duration = Duration::from_secs(10);
