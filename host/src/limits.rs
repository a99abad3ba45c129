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
/// instance (503 after [`QUEUE_TIMEOUT`]). Setting up the pool costs about 1 ms
/// per 250 slots at start-up (each slot's fiber stack gets its own guard
/// page), so the default stays well above what 2 cores can run at once
/// without paying for 1000 slots nobody uses.
pub const MAX_CONCURRENCY: u32 = 256;

/// Longest a request waits for a free instance slot when all
/// `--max-concurrency` are busy; then it gets 503 with `Retry-After`. 5 s is
/// HAProxy's usual `timeout queue` (its `timeout connect`): a burst of
/// a few times the pool's size of ordinary requests still drains through
/// the queue, while under real overload a client hears "busy" in seconds,
/// not at the 30 s request deadline.
pub const QUEUE_TIMEOUT: Duration = Duration::from_secs(5);

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

/// How often the names in a container's `allowed_outbound_hosts` are
/// resolved again while it runs, so a service that moves stays reachable.
/// 30 s is the shortest TTL commonly given to records that move (AWS's
/// load balancers and Kubernetes' headless services); a move is followed
/// within about a TTL, at one lookup per name per interval.
pub const CONTAINER_OUTBOUND_RESOLVE_INTERVAL: Duration = Duration::from_secs(30);

/// Addresses (each with the ports of the `*.domain` entry that allowed
/// it) a container's resolver may have learned at once. A service looks
/// up a few dozen names within a TTL; a hostile or buggy one resolving
/// endless names under an allowed domain would otherwise grow the filter
/// (a rule each, matched in turn by every new connection, reloaded whole
/// at every change) and wasmhost's memory without bound. 1024 is the
/// order of Cilium's `--tofqdns-max-ips-per-restored-rule` (1000), and a
/// filter that size still reloads in tens of milliseconds.
pub const CONTAINER_OUTBOUND_MAX_LEARNED: usize = 1024;

/// DNS queries a container's resolver works on at once (a TCP connection
/// counts as one while it is open); a UDP query past it is dropped and a
/// TCP connection closed, as a loaded resolver does, and the client's
/// retry comes later. dnsmasq's `--dns-forward-max` default: 150.
pub const CONTAINER_DNS_MAX_IN_FLIGHT: usize = 150;

/// A rollout's steps (percent of requests to the new form) when the
/// manifest gives none: Argo Rollouts' and Flagger's usual canary ladder,
/// a first step small enough that a bad release reaches few users.
pub const ROLLOUT_STEPS: [f64; 5] = [1.0, 5.0, 25.0, 50.0, 100.0];

/// How long a rollout's step is watched before it advances: Flagger's
/// default analysis interval. Tests write `step_time = "1s"`.
pub const ROLLOUT_STEP_TIME: Duration = Duration::from_secs(60);

/// The new form's 5xx share a step tolerates: 1 %, Flagger's usual
/// request-success-rate check of 99 %.
pub const ROLLOUT_MAX_ERROR_RATE: f64 = 0.01;

/// The new form's p99 over the old one's a step tolerates: 1.5, the bound
/// the example gives; Wasm should be faster, not just as fast.
pub const ROLLOUT_MAX_P99_RATIO: f64 = 1.5;

/// Mirrored reads that may differ: none, by default. The two forms of one
/// service should answer alike; a tolerance is for known differences.
pub const ROLLOUT_MAX_MISMATCH_RATE: f64 = 0.0;

/// Samples a figure needs before it is judged, and requests the new form
/// must serve before a step advances: below 20, one 5xx is already 5 % and
/// a p99 is the maximum of a handful of requests.
pub const ROLLOUT_MIN_REQUESTS: u64 = 20;

/// Latencies below this count as this much when a rollout compares p99s:
/// under 5 ms the difference between two forms on one host is scheduling
/// noise no user sees, and a ratio of two tiny numbers swings wildly
/// (0.3 ms against 0.1 ms is "3×").
pub const ROLLOUT_P99_FLOOR: Duration = Duration::from_millis(5);

/// Decisions a rollout keeps (in its state file and status): enough to
/// show every step of a ladder and the rollbacks between them.
pub const ROLLOUT_DECISIONS_KEPT: usize = 100;

/// Mismatches the admin dashboard lists: the latest ones are what an
/// operator watching a rollout needs; older ones are in the log.
pub const DASHBOARD_MISMATCHES_KEPT: usize = 20;

/// How often the admin dashboard samples the counters for its charts: a
/// step of a rollout in a test lasts one second, in production minutes.
pub const DASHBOARD_SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// Samples the dashboard keeps: five minutes at one a second, a few
/// kilobytes per series.
pub const DASHBOARD_SAMPLES_KEPT: usize = 300;

/// Wait before a worker process that died (`serve --workers`) is started
/// again: long enough that a worker failing at once does not spin the
/// supervisor, short enough that the port keeps its other workers' share
/// of capacity only briefly (nginx's master restarts a worker at once;
/// systemd's `RestartSec` defaults to 100 ms).
pub const WORKER_RESTART_DELAY: Duration = Duration::from_secs(1);

/// Longest the supervisor's admin listener waits for one worker's
/// `/metrics` or `/readyz`: a worker too busy to answer this fast is
/// reported as not ready rather than holding the scrape.
pub const WORKER_SCRAPE_TIMEOUT: Duration = Duration::from_secs(2);

/// Connections a worker's listening socket queues before they are
/// accepted (`serve --workers`): what tokio's `TcpListener::bind` gives the
/// single-process server, so both queue alike.
pub const LISTEN_BACKLOG: u32 = 1024;

/// Signature layers read from one cosign signature manifest before
/// giving up (`serve --precompiled-signer`): cosign adds one per signing,
/// so a handful is usual; each costs a blob fetch, and a registry that
/// lists thousands should not make a start wait on them.
pub const MAX_SIGNATURES_CHECKED: usize = 16;

/// Largest signature payload fetched: cosign's simple-signing JSON is a
/// few hundred bytes (more with `-a` annotations); anything near this is
/// not one.
pub const MAX_SIGNATURE_PAYLOAD_BYTES: u64 = 64 << 10;
