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

/// How long a connection may take to deliver a request head, and how long
/// an idle HTTP/1.1 keep-alive connection is kept. hyper's own default;
/// nginx uses 60 s for the head and 75 s for keep-alive.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// HTTP/2 ping interval and the time to wait for the answer, so dead peers
/// do not hold connections open. 20 s is gRPC's and Envoy's common choice.
pub const H2_KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(20);
