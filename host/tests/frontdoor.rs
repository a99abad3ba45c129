//! The front door facing hostile and heavy traffic: guests that loop,
//! connection floods, slow clients, HTTP/2 abuse, TLS, OpenTelemetry,
//! access log and health endpoints — each through the real binary, real
//! sockets and real clients, bounded in connections and seconds.

mod common;
mod otlp;

use std::io::Write as _;
use std::net::TcpStream as StdTcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{guest, http1, http2, Server};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// `serve <guest> --admin-listen 127.0.0.1:0 <extra>`, and the admin
/// address it logged.
fn serve_with_admin(component: &str, extra: &[&str]) -> (Server, String) {
    let mut args = vec!["--admin-listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let server = Server::serve(&guest(component), &args);
    let admin = server.admin_address();
    (server, admin)
}

/// The value of an unlabelled (or fully labelled) series in the admin
/// listener's Prometheus text; panics when the series is absent, so a
/// metric that is never exported cannot pass for 0.
async fn admin_metric(admin: &str, series: &str) -> f64 {
    let text = http1()
        .get(format!("http://{admin}/metrics"))
        .send()
        .await
        .expect("admin answers")
        .text()
        .await
        .expect("metrics text");
    let prefix = format!("{series} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("series `{series}` is not exported:\n{text}"))
        .trim()
        .parse()
        .expect("a number")
}

/// Waits until `series` reads `value`, for at most `within`.
async fn wait_for_metric(admin: &str, series: &str, value: f64, within: Duration) {
    let start = Instant::now();
    loop {
        let now = admin_metric(admin, series).await;
        if now == value {
            return;
        }
        assert!(
            start.elapsed() < within,
            "`{series}` is {now}, not {value}, after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

const SLOTS_IN_USE: &str = "wasmhost_instance_slots{state=\"in_use\"}";

// ---------------------------------------------------------------- fairness

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthy_requests_are_answered_while_every_core_runs_a_looping_guest() {
    let (server, admin) = serve_with_admin("spin", &["--timeout", "6s"]);
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let loops: Vec<_> = (0..cores)
        .map(|_| {
            let url = server.url("/loop");
            tokio::spawn(async move { http1().get(url).send().await.map(|r| r.status()) })
        })
        .collect();
    wait_for_metric(&admin, SLOTS_IN_USE, cores as f64, Duration::from_secs(5)).await;
    // Each healthy request on a new connection: accept, read, instantiate
    // all happen while the loops hold every core's worth of guests.
    for _ in 0..20 {
        let client = http1();
        let resp = client.get(server.url("/")).send().await.expect("answered");
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.text().await.unwrap(), "not looping\n");
    }
    assert!(
        loops.iter().all(|l| !l.is_finished()),
        "the loops ended before the healthy requests were answered"
    );
    for handle in loops {
        let status = handle.await.unwrap().expect("the loop is answered");
        assert_eq!(status, 504);
    }
    // Stopped at the deadline: no instance left running.
    wait_for_metric(&admin, SLOTS_IN_USE, 0.0, Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_client_that_closes_its_connection_cancels_its_looping_guest() {
    let (server, admin) = serve_with_admin("spin", &["--timeout", "60s"]);
    let mut stream = StdTcpStream::connect(&server.addr).unwrap();
    write!(stream, "GET /loop HTTP/1.1\r\nhost: x\r\n\r\n").unwrap();
    wait_for_metric(&admin, SLOTS_IN_USE, 1.0, Duration::from_secs(5)).await;
    drop(stream);
    // Freed long before the 60 s deadline.
    wait_for_metric(&admin, SLOTS_IN_USE, 0.0, Duration::from_secs(10)).await;
    wait_for_metric(
        &admin,
        "wasmhost_requests_in_flight",
        0.0,
        Duration::from_secs(5),
    )
    .await;
}

#[tokio::test]
async fn an_http2_stream_reset_by_the_client_cancels_its_guest() {
    let (server, admin) = serve_with_admin("spin", &["--timeout", "60s"]);
    let client = http2();
    let request = tokio::spawn({
        let url = server.url("/loop");
        async move { client.get(url).send().await }
    });
    wait_for_metric(&admin, SLOTS_IN_USE, 1.0, Duration::from_secs(5)).await;
    // Dropping the request resets its stream (RST_STREAM CANCEL).
    request.abort();
    wait_for_metric(&admin, SLOTS_IN_USE, 0.0, Duration::from_secs(10)).await;
    // The same server keeps answering.
    let resp = http2().get(server.url("/")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
}

// ------------------------------------------------------------- connections

/// `wasmhost serve` under a soft open-files limit of `soft`.
fn serve_with_file_limit(soft: u32, extra: &[&str]) -> Server {
    let hello = guest("hello");
    let mut args = vec![
        "-c".to_owned(),
        format!("ulimit -Sn {soft} && exec \"$0\" \"$@\""),
        env!("CARGO_BIN_EXE_wasmhost").to_owned(),
        "serve".to_owned(),
        hello.to_str().unwrap().to_owned(),
        "--listen".to_owned(),
        "127.0.0.1:0".to_owned(),
        "--cache-dir".to_owned(),
        common::shared_cache().to_str().unwrap().to_owned(),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    let mut cmd = Command::new("bash");
    cmd.args(&args)
        .env("WASMHOST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    Server::from_command(cmd)
}

#[tokio::test]
async fn the_open_files_limit_is_raised_to_the_hard_limit_and_logged() {
    let hard = String::from_utf8(
        Command::new("bash")
            .args(["-c", "ulimit -Hn"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let server = serve_with_file_limit(256, &[]);
    let line = server.wait_for_log("open files:", Duration::from_secs(10));
    assert!(
        line.contains(&format!("soft limit {} (was 256)", hard.trim())),
        "{line}"
    );
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", server.pid())).unwrap();
    let open_files = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    assert!(
        open_files.split_whitespace().nth(3) == Some(hard.trim()),
        "{open_files}"
    );
}

/// A keep-alive connection that has served one request and sits idle.
async fn idle_connection(addr: &str) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 512];
    let n = stream.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    stream
}

#[tokio::test]
async fn past_the_connection_limit_idle_connections_make_room_for_new_clients() {
    let (server, admin) = serve_with_admin("hello", &["--max-connections", "8"]);
    let mut idle = Vec::new();
    for _ in 0..8 {
        idle.push(idle_connection(&server.addr).await);
    }
    // Every new client gets its answer at once, each evicting an idle one
    // (the clients stay, keeping their connections open).
    let mut clients = Vec::new();
    for _ in 0..5 {
        let client = http1();
        let resp = tokio::time::timeout(Duration::from_secs(5), client.get(server.url("/")).send())
            .await
            .expect("a new client is never left waiting")
            .unwrap();
        assert_eq!(resp.status(), 200);
        clients.push(client);
    }
    let evicted = admin_metric(&admin, "wasmhost_connections_evicted_total").await;
    assert!(evicted >= 5.0, "{evicted} evicted; log:\n{}", server.log());
    assert_eq!(
        admin_metric(&admin, "wasmhost_connections_refused_total").await,
        0.0
    );
    // The evicted connections were closed by the server.
    let mut closed = 0;
    for stream in &mut idle {
        let mut buf = [0u8; 16];
        if let Ok(Ok(0)) = tokio::time::timeout(Duration::from_secs(3), stream.read(&mut buf)).await
        {
            closed += 1;
        }
    }
    assert!(closed >= 5, "only {closed} idle connections were closed");
}

#[tokio::test]
async fn when_every_connection_is_busy_a_new_one_gets_503_at_once() {
    let (server, admin) = serve_with_admin("spin", &["--max-connections", "2", "--timeout", "20s"]);
    let mut busy = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(&server.addr).await.unwrap();
        stream
            .write_all(b"GET /loop HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        busy.push(stream);
    }
    wait_for_metric(&admin, SLOTS_IN_USE, 2.0, Duration::from_secs(5)).await;
    let mut refused = TcpStream::connect(&server.addr).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), refused.read_to_end(&mut answer))
        .await
        .expect("refused at once, not left waiting")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("connection limit"), "{answer}");
    assert_eq!(
        admin_metric(&admin, "wasmhost_connections_refused_total").await,
        1.0
    );
    drop(busy);
    // Once the busy connections are gone, new clients are served again.
    wait_for_metric(&admin, SLOTS_IN_USE, 0.0, Duration::from_secs(10)).await;
    let resp = http1().get(server.url("/")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_after_the_header_timeout() {
    let (server, admin) = serve_with_admin("hello", &["--header-timeout", "1s"]);
    let mut silent = TcpStream::connect(&server.addr).await.unwrap();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut buf))
        .await
        .expect("closed by the server");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert_eq!(
        admin_metric(&admin, "wasmhost_connections_slow_head_total").await,
        1.0
    );
}

#[tokio::test]
async fn slowloris_is_cut_at_the_header_timeout_while_a_slow_upload_finishes() {
    let server = Server::serve(&guest("echo"), &["--header-timeout", "1s"]);
    // A head trickled one header line at a time, never completed.
    let mut slowloris = TcpStream::connect(&server.addr).await.unwrap();
    // A complete head, then a body trickled over three seconds.
    let mut upload = TcpStream::connect(&server.addr).await.unwrap();
    upload
        .write_all(
            b"POST /buffered HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: 6\r\n\r\n",
        )
        .await
        .unwrap();
    slowloris
        .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    let mut cut = false;
    for i in 0..6u8 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        upload.write_all(&[b'a' + i]).await.unwrap();
        if slowloris.write_all(b"x-trickle: 1\r\n").await.is_err() {
            cut = true;
        }
    }
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), upload.read_to_end(&mut answer))
        .await
        .expect("the upload is answered")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("abcdef"), "{answer}");
    if !cut {
        let mut buf = [0u8; 16];
        let read = tokio::time::timeout(Duration::from_secs(5), slowloris.read(&mut buf))
            .await
            .expect("the slowloris connection is closed");
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    }
}

// ------------------------------------------------------------------ HTTP/2

#[tokio::test]
async fn http2_settings_advertise_the_stream_limit() {
    let server = Server::serve(&guest("hello"), &["--h2-max-concurrent-streams", "7"]);
    let mut conn = h2raw::Conn::open(&server.addr).await;
    let settings = conn
        .read_until(h2raw::SETTINGS, Duration::from_secs(5))
        .await;
    assert!(
        h2raw::setting(&settings, h2raw::SETTINGS_MAX_CONCURRENT_STREAMS) == Some(7),
        "{settings:?}"
    );
}

#[tokio::test]
async fn rapid_reset_is_stopped_and_leaves_no_guest_running() {
    let (server, admin) = serve_with_admin("hello", &[]);
    let conn = h2raw::Conn::open(&server.addr).await;
    let mut burst = Vec::new();
    for stream in (1..4000u32).step_by(2) {
        burst.extend(h2raw::get_headers(stream, true));
        burst.extend(h2raw::rst_stream(stream, 0x8));
    }
    calmed_down(&server, &admin, conn, &burst).await;
}

/// Sends `burst` (the server may close the connection midway: that is the
/// point), expects GOAWAY with ENHANCE_YOUR_CALM, no guest or request left
/// running, and the server answering others.
async fn calmed_down(server: &Server, admin: &str, mut conn: h2raw::Conn, burst: &[u8]) {
    let _ = conn.stream.write_all(burst).await;
    let goaway = conn
        .read_until(h2raw::GOAWAY, Duration::from_secs(10))
        .await;
    assert_eq!(
        h2raw::goaway_error(&goaway),
        Some(0xb),
        "ENHANCE_YOUR_CALM expected"
    );
    wait_for_metric(admin, SLOTS_IN_USE, 0.0, Duration::from_secs(5)).await;
    wait_for_metric(
        admin,
        "wasmhost_requests_in_flight",
        0.0,
        Duration::from_secs(5),
    )
    .await;
    let resp = http2().get(server.url("/")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn a_continuation_flood_closes_the_connection_before_it_costs_memory() {
    let server = Server::serve(&guest("hello"), &[]);
    let mut conn = h2raw::Conn::open(&server.addr).await;
    conn.stream
        .write_all(&h2raw::headers_without_end(1))
        .await
        .unwrap();
    let mut sent = 0usize;
    let chunk = h2raw::continuation_junk(1, 16_000);
    let mut closed = false;
    while sent < 16 << 20 {
        if conn.stream.write_all(&chunk).await.is_err() {
            closed = true;
            break;
        }
        sent += chunk.len();
        if conn.closed_or_goaway().await {
            closed = true;
            break;
        }
    }
    assert!(
        closed,
        "the server took {sent} bytes of CONTINUATION frames"
    );
    assert!(sent < 1 << 20, "closed only after {sent} bytes");
    let resp = http2().get(server.url("/")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn made_you_reset_stream_errors_close_the_connection() {
    let (server, admin) = serve_with_admin("hello", &[]);
    let conn = h2raw::Conn::open(&server.addr).await;
    // Each stream is opened, then given a WINDOW_UPDATE that overflows its
    // window, a stream error the server answers with RST_STREAM: the
    // server resets it, not the client (CVE-2025-8671).
    let mut burst = Vec::new();
    for stream in (1..2400u32).step_by(2) {
        burst.extend(h2raw::get_headers_open(stream));
        burst.extend(h2raw::window_update(stream, 0x7fff_ffff));
    }
    calmed_down(&server, &admin, conn, &burst).await;
}

#[tokio::test]
async fn a_zero_window_update_closes_the_connection_at_once() {
    // h2 treats it as a connection error, stricter than RFC 9113's stream
    // error: the cheapest MadeYouReset variant costs the attacker the
    // connection on its first frame.
    let server = Server::serve(&guest("hello"), &[]);
    let mut conn = h2raw::Conn::open(&server.addr).await;
    let mut frames = h2raw::get_headers_open(1);
    frames.extend(h2raw::window_update(1, 0));
    conn.stream.write_all(&frames).await.unwrap();
    let goaway = conn.read_until(h2raw::GOAWAY, Duration::from_secs(5)).await;
    assert_eq!(
        h2raw::goaway_error(&goaway),
        Some(0x1),
        "PROTOCOL_ERROR expected"
    );
}

// --------------------------------------------------------------------- TLS

struct Pair {
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
    pem: String,
}

/// A self-signed certificate for 127.0.0.1 and localhost, valid from
/// `not_before` to `not_after` (years), written into `dir` as `name`.
fn certificate(dir: &Path, name: &str, years: (i32, i32)) -> Pair {
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    params.not_before = rcgen::date_time_ymd(years.0, 1, 1);
    params.not_after = rcgen::date_time_ymd(years.1, 1, 1);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let pair = Pair {
        cert: dir.join(format!("{name}.crt")),
        key: dir.join(format!("{name}.key")),
        pem: cert.pem(),
    };
    std::fs::write(&pair.cert, &pair.pem).unwrap();
    std::fs::write(&pair.key, key.serialize_pem()).unwrap();
    pair
}

fn valid(dir: &Path, name: &str) -> Pair {
    certificate(dir, name, (2020, 2120))
}

fn serve_tls(pair: &Pair, extra: &[&str]) -> Server {
    let mut args = vec![
        "--tls-cert",
        pair.cert.to_str().unwrap(),
        "--tls-key",
        pair.key.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    Server::serve(&guest("hello"), &args)
}

fn curl(args: &[&str]) -> String {
    let out = Command::new("curl").args(args).output().expect("curl runs");
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn s_client(addr: &str, extra: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(["s_client", "-connect", addr])
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .expect("openssl runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn https_serves_http2_and_http1_to_curl() {
    let dir = tempfile::tempdir().unwrap();
    let pair = valid(dir.path(), "server");
    let server = serve_tls(&pair, &[]);
    let url = format!("https://{}/", server.addr);
    let cacert = pair.cert.to_str().unwrap();
    for (flag, version) in [("--http2", "2"), ("--http1.1", "1.1")] {
        let out = curl(&[
            "-sS",
            "--cacert",
            cacert,
            flag,
            "-w",
            "\n%{http_version}",
            &url,
        ]);
        assert!(out.ends_with(&format!("\n{version}")), "{flag}: {out}");
        assert!(out.starts_with("Hello, world!"), "{out}");
    }
    // Plain HTTP on the TLS port is refused, not served.
    let plain = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "5",
            &format!("http://{}/", server.addr),
        ])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&plain.stdout).contains("Hello"));
}

#[tokio::test]
async fn openssl_negotiates_h2_and_http1_by_alpn_over_tls_1_2_and_1_3() {
    let dir = tempfile::tempdir().unwrap();
    let pair = valid(dir.path(), "server");
    let server = serve_tls(&pair, &[]);
    let ca = pair.cert.to_str().unwrap();
    for alpn in ["h2", "http/1.1"] {
        for version in ["-tls1_2", "-tls1_3"] {
            let out = s_client(&server.addr, &["-alpn", alpn, version, "-CAfile", ca]);
            assert!(
                out.contains(&format!("ALPN protocol: {alpn}")),
                "{alpn} {version}:\n{out}"
            );
            assert!(out.contains("Verify return code: 0 (ok)"), "{out}");
        }
    }
}

#[tokio::test]
async fn a_changed_certificate_is_served_to_new_handshakes_and_a_bad_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let first = valid(dir.path(), "first");
    let live = Pair {
        cert: dir.path().join("live.crt"),
        key: dir.path().join("live.key"),
        pem: first.pem.clone(),
    };
    std::fs::copy(&first.cert, &live.cert).unwrap();
    std::fs::copy(&first.key, &live.key).unwrap();
    let server = serve_tls(&live, &[]);
    // A client trusting only the first certificate keeps its connection.
    let kept = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(first.pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    let url = format!(
        "https://127.0.0.1:{}/",
        server.addr.rsplit(':').next().unwrap()
    );
    assert_eq!(kept.get(&url).send().await.unwrap().status(), 200);

    let second = valid(dir.path(), "second");
    std::fs::copy(&second.key, &live.key).unwrap();
    std::fs::copy(&second.cert, &live.cert).unwrap();
    server.wait_for_log("TLS certificate reloaded", Duration::from_secs(10));
    let out = s_client(&server.addr, &["-CAfile", second.cert.to_str().unwrap()]);
    assert!(out.contains("CN = second"), "{out}");
    assert!(out.contains("Verify return code: 0 (ok)"), "{out}");
    // The connection opened before the reload carries on.
    assert_eq!(kept.get(&url).send().await.unwrap().status(), 200);

    // A key that does not belong to the certificate: logged, old one kept.
    let third = valid(dir.path(), "third");
    std::fs::copy(&third.cert, &live.cert).unwrap();
    server.wait_for_log("TLS certificate reload failed", Duration::from_secs(10));
    let out = s_client(&server.addr, &["-CAfile", second.cert.to_str().unwrap()]);
    assert!(out.contains("CN = second"), "{out}");
}

#[test]
fn a_key_that_does_not_match_the_certificate_stops_the_start_before_listening() {
    let dir = tempfile::tempdir().unwrap();
    let one = valid(dir.path(), "one");
    let other = valid(dir.path(), "other");
    let failed = Server::start_failing(&[
        "serve",
        guest("hello").to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--tls-cert",
        one.cert.to_str().unwrap(),
        "--tls-key",
        other.key.to_str().unwrap(),
    ]);
    assert_ne!(failed.code, Some(0));
    assert!(failed.stdout.is_empty(), "it listened: {}", failed.stdout);
    assert!(
        failed.stderr.contains("does not belong to the certificate"),
        "{}",
        failed.stderr
    );
}

#[test]
fn a_missing_key_file_is_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let one = valid(dir.path(), "one");
    let failed = Server::start_failing(&[
        "serve",
        guest("hello").to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--tls-cert",
        one.cert.to_str().unwrap(),
        "--tls-key",
        "/nonexistent/key.pem",
    ]);
    assert_ne!(failed.code, Some(0));
    assert!(
        failed.stderr.contains("/nonexistent/key.pem"),
        "{}",
        failed.stderr
    );
}

#[tokio::test]
async fn an_expired_certificate_is_served_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let expired = certificate(dir.path(), "expired", (2020, 2021));
    let server = serve_tls(&expired, &[]);
    let line = server.wait_for_log("expired on", Duration::from_secs(10));
    assert!(line.contains("expired.crt"), "{line}");
}

#[tokio::test]
async fn spin_tls_variables_turn_tls_on_as_in_spin() {
    let dir = tempfile::tempdir().unwrap();
    let pair = valid(dir.path(), "server");
    let server = Server::start_env(
        &[
            "serve",
            guest("hello").to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--cache-dir",
            common::shared_cache().to_str().unwrap(),
        ],
        &[
            ("SPIN_TLS_CERT", pair.cert.to_str().unwrap()),
            ("SPIN_TLS_KEY", pair.key.to_str().unwrap()),
        ],
    );
    let out = curl(&[
        "-sS",
        "--cacert",
        pair.cert.to_str().unwrap(),
        &format!("https://{}/", server.addr),
    ]);
    assert!(out.starts_with("Hello, world!"), "{out}");
}

// ------------------------------------------------------- logs and health

#[tokio::test]
async fn the_access_log_has_a_line_per_request_in_common_and_json_formats() {
    for format in ["common", "json"] {
        let server = Capture::serve(&guest("hello"), &["--access-log", format]);
        let resp = http1()
            .get(server.url("/hi?x=1"))
            .header("user-agent", "test")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let body_len = resp.bytes().await.unwrap().len();
        let line = server.wait_for_stdout("/hi?x=1", Duration::from_secs(5));
        match format {
            "common" => {
                assert!(line.starts_with("127.0.0.1 - - ["), "{line}");
                assert!(
                    line.contains(&format!("\"GET /hi?x=1 HTTP/1.1\" 200 {body_len} ")),
                    "{line}"
                );
                assert!(line.contains("\"hello\""), "{line}");
            }
            _ => {
                let entry: serde_json::Value = serde_json::from_str(&line).unwrap();
                assert_eq!(entry["status"], 200);
                assert_eq!(entry["method"], "GET");
                assert_eq!(entry["target"], "/hi?x=1");
                assert_eq!(entry["bytes"], body_len as u64);
                assert_eq!(entry["component"], "hello");
                assert!(entry["duration_ms"].as_f64().unwrap() >= 0.0);
                // The request id matches the host log's lines.
                assert_eq!(entry["request_id"].as_str().unwrap().len(), 8);
            }
        }
    }
}

#[tokio::test]
async fn a_log_reader_that_stops_reading_never_stalls_requests() {
    // The guest writes a line to stdout per request; the server's stderr
    // and stdout pipes are never read, so they fill after ~64 KiB.
    let server = Capture::serve_unread(&guest("hello"), &["--access-log", "common"]);
    let client = http1();
    for _ in 0..3000 {
        let resp = tokio::time::timeout(Duration::from_secs(5), client.get(server.url("/")).send())
            .await
            .expect("a request never waits for the log reader")
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.bytes().await.unwrap();
    }
}

#[tokio::test]
async fn healthz_and_readyz_answer_and_readyz_turns_503_while_draining() {
    let (server, admin) = serve_with_admin("spin", &["--drain-timeout", "10s", "--timeout", "3s"]);
    let get = |path: &'static str| {
        let admin = admin.clone();
        async move {
            let resp = http1()
                .get(format!("http://{admin}{path}"))
                .send()
                .await
                .unwrap();
            (resp.status().as_u16(), resp.text().await.unwrap())
        }
    };
    assert_eq!(get("/healthz").await, (200, "ok\n".to_owned()));
    assert_eq!(get("/readyz").await, (200, "ready\n".to_owned()));
    // A request in flight keeps the drain going.
    let looping = tokio::spawn({
        let url = server.url("/loop");
        async move { http1().get(url).send().await.map(|r| r.status()) }
    });
    wait_for_metric(&admin, SLOTS_IN_USE, 1.0, Duration::from_secs(5)).await;
    assert_eq!(
        admin_metric(&admin, "wasmhost_requests_in_flight").await,
        1.0
    );
    assert!(admin_metric(&admin, "wasmhost_connections_open").await >= 1.0);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(server.pid() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let start = Instant::now();
    loop {
        let (status, body) = get("/readyz").await;
        if status == 503 {
            assert!(body.contains("draining"), "{body}");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "readyz still {status}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(get("/healthz").await.0, 200);
    assert_eq!(looping.await.unwrap().unwrap(), 504);
}

/// A server whose stdout (the access log) the test reads, or never reads.
struct Capture {
    child: std::process::Child,
    addr: String,
    stdout: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    /// Pipes kept open and unread (`serve_unread`).
    _unread: Option<(
        std::io::BufReader<std::process::ChildStdout>,
        std::process::ChildStderr,
    )>,
}

impl Capture {
    fn spawn(
        component: &Path,
        extra: &[&str],
    ) -> (
        std::process::Child,
        std::io::BufReader<std::process::ChildStdout>,
        String,
    ) {
        use std::io::BufRead as _;
        let mut child = Command::new(env!("CARGO_BIN_EXE_wasmhost"))
            .args([
                "serve",
                component.to_str().unwrap(),
                "--listen",
                "127.0.0.1:0",
            ])
            .args(["--cache-dir", common::shared_cache().to_str().unwrap()])
            .args(extra)
            .env("WASMHOST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn wasmhost");
        let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let addr = line
            .split("://")
            .nth(1)
            .map(|rest| rest.trim().trim_end_matches('/').to_owned())
            .unwrap_or_else(|| panic!("no address printed: {line:?}"));
        (child, stdout, addr)
    }

    /// Serves, collecting stdout lines; stderr is drained.
    fn serve(component: &Path, extra: &[&str]) -> Capture {
        use std::io::BufRead as _;
        let (mut child, stdout, addr) = Capture::spawn(component, extra);
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let mut stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
        Capture {
            child,
            addr,
            stdout: lines,
            _unread: None,
        }
    }

    /// Serves with stdout and stderr never read after the address.
    fn serve_unread(component: &Path, extra: &[&str]) -> Capture {
        let (mut child, stdout, addr) = Capture::spawn(component, extra);
        let stderr = child.stderr.take().unwrap();
        Capture {
            child,
            addr,
            stdout: Default::default(),
            _unread: Some((stdout, stderr)),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn wait_for_stdout(&self, needle: &str, within: Duration) -> String {
        let start = Instant::now();
        loop {
            if let Some(line) = self
                .stdout
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.contains(needle))
            {
                return line.clone();
            }
            assert!(start.elapsed() < within, "no stdout line has {needle:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// --------------------------------------------------------- OpenTelemetry

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_reach_an_otlp_grpc_receiver_with_parents_and_traceparent_injected() {
    otlp::check_trace(otlp::Transport::Grpc).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_reach_an_otlp_http_protobuf_receiver() {
    otlp::check_trace(otlp::Transport::HttpProtobuf).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_metrics_reach_an_otlp_receiver() {
    otlp::check_metrics().await;
}

// -------------------------------------------------------------- containers

fn image() -> common::images::BusyboxFixture {
    common::images::BusyboxFixture::new("test/frontdoor:1")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_container_gets_504_at_the_deadline_while_its_other_requests_are_served() {
    let image = image();
    let server = Server::start(&image.args(&["--timeout", "2s"]));
    let started = Instant::now();
    let hung = tokio::spawn({
        let url = server.url("/cgi-bin/stall");
        async move { http1().get(url).send().await.map(|r| r.status()) }
    });
    // The same container keeps answering its other requests meanwhile.
    for _ in 0..5 {
        let resp = http1().get(server.url("/index.html")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
    }
    if hung.is_finished() {
        panic!(
            "the stalled request ended early: {:?}\n{}",
            hung.await,
            server.log()
        );
    }
    let status = tokio::time::timeout(Duration::from_secs(20), hung)
        .await
        .expect("answered by the deadline, not left hanging")
        .unwrap()
        .unwrap();
    assert_eq!(status, 504);
    assert!(started.elapsed() >= Duration::from_secs(2));
    server.wait_for_log(
        "did not answer before the request deadline",
        Duration::from_secs(5),
    );
    // A container that sends its head and then stalls: the body is cut at
    // the deadline, an error for the client, not an endless wait.
    let resp = http1()
        .get(server.url("/cgi-bin/stall-body"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body = tokio::time::timeout(Duration::from_secs(20), resp.bytes())
        .await
        .expect("the body ends by the deadline");
    assert!(
        body.is_err(),
        "a cut-off body must not look complete: {body:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_proxying_and_cold_starts_are_traced_with_traceparent_forwarded() {
    let image = image();
    let sink = otlp::Sink::default();
    let endpoint = otlp::receiver(otlp::Transport::Grpc, sink.clone()).await;
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ];
    let server = Server::start_env(&image.args(&["--lazy"]), &env);
    let trace = "0af7651916cd43dd8448eb211c80319c";
    let resp = http1()
        .get(server.url("/cgi-bin/traceparent"))
        .header("traceparent", format!("00-{trace}-b7ad6b7169203331-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen = resp.text().await.unwrap();
    let spans = sink
        .wait_trace(trace, &["request", "container.start", "outbound"])
        .await;
    let find = |name| otlp::find(&spans, trace, name);
    let request = find("request");
    assert_eq!(
        find("container.start").parent,
        request.span_id,
        "the cold start is a child"
    );
    let proxy = find("outbound");
    assert_eq!(proxy.parent, request.span_id);
    assert_eq!(
        proxy.attributes.get("wasmhost.call").map(String::as_str),
        Some("container")
    );
    assert_eq!(
        seen.trim(),
        format!("traceparent=00-{trace}-{}-01", proxy.span_id),
        "the container sees the proxy span as its parent"
    );
}

/// Raw HTTP/2 frames, for the attacks no well-behaved client library will
/// send.
mod h2raw {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpStream;

    pub const SETTINGS: u8 = 0x4;
    pub const GOAWAY: u8 = 0x7;
    const HEADERS: u8 = 0x1;
    const RST_STREAM: u8 = 0x3;
    const WINDOW_UPDATE: u8 = 0x8;
    const CONTINUATION: u8 = 0x9;
    const END_STREAM: u8 = 0x1;
    const END_HEADERS: u8 = 0x4;
    pub const SETTINGS_MAX_CONCURRENT_STREAMS: u16 = 0x3;

    pub struct Conn {
        pub stream: TcpStream,
        buffer: Vec<u8>,
    }

    /// One frame: type, flags, stream, payload.
    #[derive(Debug)]
    pub struct Frame {
        pub kind: u8,
        pub payload: Vec<u8>,
    }

    pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
        out.extend_from_slice(&stream.to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    /// `GET /` for `host: x`, HPACK with static-table indexes and one
    /// literal, so no encoder state is needed.
    fn get_block() -> Vec<u8> {
        // :method GET (2), :scheme http (6), :path / (4), :authority x.
        vec![0x82, 0x86, 0x84, 0x01, 0x01, b'x']
    }

    pub fn get_headers(stream: u32, end_stream: bool) -> Vec<u8> {
        let flags = END_HEADERS | if end_stream { END_STREAM } else { 0 };
        frame(HEADERS, flags, stream, &get_block())
    }

    /// Headers complete, stream left open (a body may follow).
    pub fn get_headers_open(stream: u32) -> Vec<u8> {
        get_headers(stream, false)
    }

    pub fn rst_stream(stream: u32, code: u32) -> Vec<u8> {
        frame(RST_STREAM, 0, stream, &code.to_be_bytes())
    }

    pub fn window_update(stream: u32, increment: u32) -> Vec<u8> {
        frame(WINDOW_UPDATE, 0, stream, &increment.to_be_bytes())
    }

    /// A HEADERS frame without END_HEADERS would be followed by these:
    /// one CONTINUATION of `size` bytes of a literal header, never ending.
    pub fn continuation_junk(stream: u32, size: usize) -> Vec<u8> {
        // Literal without indexing, new name "x" and a long value: each
        // frame carries whole header fields.
        let mut block = Vec::with_capacity(size);
        while block.len() + 140 < size {
            block.extend_from_slice(&[0x00, 0x01, b'x', 0x7f, 0x00]);
            block.extend(std::iter::repeat_n(b'a', 127));
        }
        frame(CONTINUATION, 0, stream, &block)
    }

    /// The first frame of a header block that never ends.
    pub fn headers_without_end(stream: u32) -> Vec<u8> {
        frame(HEADERS, END_STREAM, stream, &get_block())
    }

    impl Conn {
        /// Connects and sends the client preface and an empty SETTINGS.
        pub async fn open(addr: &str) -> Conn {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            stream
                .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
                .await
                .unwrap();
            stream.write_all(&frame(SETTINGS, 0, 0, &[])).await.unwrap();
            Conn {
                stream,
                buffer: Vec::new(),
            }
        }

        async fn next(&mut self, within: Duration) -> Option<Frame> {
            let deadline = tokio::time::Instant::now() + within;
            loop {
                if self.buffer.len() >= 9 {
                    let len = (usize::from(self.buffer[0]) << 16)
                        | (usize::from(self.buffer[1]) << 8)
                        | usize::from(self.buffer[2]);
                    if self.buffer.len() >= 9 + len {
                        let kind = self.buffer[3];
                        let payload = self.buffer[9..9 + len].to_vec();
                        self.buffer.drain(..9 + len);
                        return Some(Frame { kind, payload });
                    }
                }
                let mut chunk = [0u8; 16384];
                match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
                    Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return None,
                    Ok(Ok(n)) => self.buffer.extend_from_slice(&chunk[..n]),
                }
            }
        }

        /// Reads frames until one of `kind`; panics if the connection ends
        /// or `within` passes first.
        pub async fn read_until(&mut self, kind: u8, within: Duration) -> Frame {
            let deadline = tokio::time::Instant::now() + within;
            loop {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                match self.next(left).await {
                    Some(frame) if frame.kind == kind => return frame,
                    Some(_) => continue,
                    None => {
                        panic!("no frame of type {kind} before the connection ended or {within:?}")
                    }
                }
            }
        }

        /// Whether the server has sent GOAWAY or closed, judging by what
        /// is readable right now.
        pub async fn closed_or_goaway(&mut self) -> bool {
            loop {
                match self.next(Duration::from_millis(1)).await {
                    Some(frame) if frame.kind == GOAWAY => return true,
                    Some(_) => continue,
                    None => {
                        let mut probe = [0u8; 1];
                        return matches!(
                            tokio::time::timeout(
                                Duration::from_millis(1),
                                self.stream.peek(&mut probe)
                            )
                            .await,
                            Ok(Ok(0)) | Ok(Err(_))
                        );
                    }
                }
            }
        }
    }

    /// A setting's value in a SETTINGS frame.
    pub fn setting(frame: &Frame, id: u16) -> Option<u32> {
        frame.payload.chunks_exact(6).find_map(|entry| {
            (u16::from_be_bytes([entry[0], entry[1]]) == id)
                .then(|| u32::from_be_bytes([entry[2], entry[3], entry[4], entry[5]]))
        })
    }

    /// A GOAWAY frame's error code.
    pub fn goaway_error(frame: &Frame) -> Option<u32> {
        let code = frame.payload.get(4..8)?;
        Some(u32::from_be_bytes([code[0], code[1], code[2], code[3]]))
    }
}
