//! Test harness: builds the guest components from source, starts the real
//! `wasmhost` binary on port 0 (it prints the address it bound), collects
//! its log, and waits for conditions (a log line, a metric, an exit) with
//! a deadline, never for a fixed time.

#![allow(dead_code)]

pub mod containerd;
pub mod images;
pub mod registry;
pub mod runtime;
pub mod services;
pub mod tls;
pub mod upstream;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ has a parent")
        .to_path_buf()
}

/// Builds every guest once per test process (cargo makes this a no-op
/// when nothing changed) and returns the path of `name` built for `target`.
pub fn guest_for(target: &str, name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let status = Command::new("bash")
            .arg(repo_root().join("scripts/build-guests.sh"))
            .stdout(Stdio::null())
            .status()
            .expect("run scripts/build-guests.sh");
        assert!(status.success(), "building the guest components failed");
    });
    let path = repo_root()
        .join("target/guest")
        .join(target)
        .join("release")
        .join(format!("{}.wasm", name.replace('-', "_")));
    assert!(path.exists(), "guest `{}` was not built", path.display());
    path
}

/// A fixture built by `scripts/build-fixtures.sh` from the language
/// registries' packages (Python: componentize-py and spin-sdk), e.g.
/// `python/spin-py.wasm`; the script caches what it built under
/// `target/fixtures`.
pub fn fixture(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let status = Command::new("bash")
            .arg(repo_root().join("scripts/build-fixtures.sh"))
            .stdout(Stdio::null())
            .status()
            .expect("run scripts/build-fixtures.sh");
        assert!(status.success(), "building the fixtures failed");
    });
    let path = repo_root().join("target/fixtures").join(name);
    assert!(path.exists(), "fixture `{}` was not built", path.display());
    path
}

/// A guest built for wasm32-wasip2.
pub fn guest(name: &str) -> PathBuf {
    guest_for("wasm32-wasip2", name)
}

/// A compile cache shared by the tests, so each component compiles once.
pub fn shared_cache() -> PathBuf {
    repo_root().join("target/test-compile-cache")
}

/// A running `wasmhost` process.
pub struct Server {
    pub child: Child,
    pub addr: String,
    log: Arc<Mutex<Vec<String>>>,
    /// The thread reading stderr into `log`: finished once wasmhost and
    /// everything that inherited its stderr have closed it.
    log_reader: std::thread::JoinHandle<()>,
}

/// The outcome of a start that was expected to fail.
pub struct Failed {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

fn command(args: &[&str]) -> Command {
    command_with_limit(args, None)
}

/// `wasmhost <args>`, optionally under an address-space limit in KiB
/// (`ulimit -v`), to exercise what happens when memory cannot be reserved.
fn command_with_limit(args: &[&str], address_space_kib: Option<u64>) -> Command {
    let mut cmd = match address_space_kib {
        None => Command::new(env!("CARGO_BIN_EXE_wasmhost")),
        Some(kib) => {
            let mut cmd = Command::new("bash");
            cmd.arg("-c")
                .arg(format!("ulimit -v {kib} && exec \"$0\" \"$@\""))
                .arg(env!("CARGO_BIN_EXE_wasmhost"));
            cmd
        }
    };
    cmd.args(args)
        .env("WASMHOST_LOG", "info")
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

impl Server {
    /// `wasmhost serve <component> --listen 127.0.0.1:0 <extra>` with the
    /// shared compile cache unless `extra` names another.
    pub fn serve(component: &Path, extra: &[&str]) -> Server {
        let cache = shared_cache();
        let mut args = vec![
            "serve",
            component.to_str().expect("utf-8 path"),
            "--listen",
            "127.0.0.1:0",
        ];
        if !extra
            .iter()
            .any(|a| *a == "--cache-dir" || *a == "--no-cache")
        {
            args.extend(["--cache-dir", cache.to_str().expect("utf-8 path")]);
        }
        args.extend_from_slice(extra);
        Server::start(&args)
    }

    /// Starts `wasmhost <args>` and waits for it to print its address.
    pub fn start(args: &[&str]) -> Server {
        Server::start_env(args, &[])
    }

    /// As [`Server::start`], with extra environment variables.
    pub fn start_env(args: &[&str], env: &[(&str, &str)]) -> Server {
        Server::spawn(command(args), env)
    }

    /// As [`Server::start`], with `dir` as the working directory.
    pub fn start_in(dir: &Path, args: &[&str]) -> Server {
        let mut cmd = command(args);
        cmd.current_dir(dir);
        Server::spawn(cmd, &[])
    }

    /// As [`Server::start`], under `ulimit -v <kib>`.
    pub fn start_with_address_space_limit(args: &[&str], kib: u64) -> Server {
        Server::spawn(command_with_limit(args, Some(kib)), &[])
    }

    fn spawn(mut cmd: Command, env: &[(&str, &str)]) -> Server {
        cmd.envs(env.iter().copied());
        let mut child = cmd.spawn().expect("spawn wasmhost");
        let (log, log_reader) = collect(child.stderr.take().expect("stderr piped"));
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout piped"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("read wasmhost stdout");
        // `http://ADDR/` or, with TLS, `https://ADDR/`.
        let addr = line
            .split("://")
            .nth(1)
            .map(|rest| rest.trim().trim_end_matches('/').to_string())
            .unwrap_or_else(|| {
                let _ = child.kill();
                panic!(
                    "wasmhost did not print its address; stdout: {line:?}; log:\n{}",
                    log.lock().unwrap().join("\n")
                )
            });
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in stdout.lines() {});
        Server {
            child,
            addr,
            log,
            log_reader,
        }
    }

    /// Starts a prepared command (a wrapper around `wasmhost`, say) and
    /// waits for the address it prints.
    pub fn from_command(cmd: Command) -> Server {
        Server::spawn(cmd, &[])
    }

    /// Runs `wasmhost <args>` expecting it to exit before serving.
    pub fn start_failing(args: &[&str]) -> Failed {
        run(args, &[])
    }
}

/// Runs `wasmhost <args>` to completion with extra environment variables.
pub fn run(args: &[&str], env: &[(&str, &str)]) -> Failed {
    let out = command(args)
        .envs(env.iter().copied())
        .output()
        .expect("run wasmhost");
    Failed {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Waits until a log line contains `needle`; panics with the log after
    /// `timeout`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> String {
        wait_for(
            &format!("a log line containing {needle:?}"),
            timeout,
            || {
                let log = self.log.lock().unwrap();
                log.iter().find(|l| l.contains(needle)).cloned()
            },
            || format!("log:\n{}", self.log()),
        )
    }

    /// How many log lines contain `needle` so far.
    pub fn log_count(&self, needle: &str) -> usize {
        let log = self.log.lock().unwrap();
        log.iter().filter(|l| l.contains(needle)).count()
    }

    /// Waits until `n` log lines contain `needle`.
    pub fn wait_for_log_count(&self, needle: &str, n: usize, timeout: Duration) {
        wait_for(
            &format!("{n} log lines containing {needle:?}"),
            timeout,
            || (self.log_count(needle) >= n).then_some(()),
            || format!("log:\n{}", self.log()),
        )
    }

    /// Sends a signal to the server.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args(["-s", signal, &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
    }

    /// Waits for the process to exit and returns its exit code (`None`
    /// when a signal ended it).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let log = self.log.clone();
        let child = &mut self.child;
        let status = wait_for(
            "wasmhost to exit",
            timeout,
            || child.try_wait().expect("try_wait"),
            || format!("log:\n{}", log.lock().unwrap().join("\n")),
        );
        // Its last lines may still be in the pipe: read to the end (a
        // process that inherited stderr may hold it open; not for long).
        let deadline = Instant::now() + Duration::from_secs(2);
        while !self.log_reader.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        status.code()
    }

    /// `/proc/<pid>/status` field in kB (VmRSS, VmHWM, ...).
    pub fn status_kb(&self, field: &str) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).expect("read status");
        status
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{field}:")))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {field} in /proc status"))
    }

    /// User plus system CPU time of the process so far, in clock ticks.
    pub fn cpu_ticks(&self) -> u64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).expect("read stat");
        // Fields after the command name, which is in parentheses.
        let rest = &stat[stat.rfind(')').expect("stat has a command") + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // utime and stime are fields 14 and 15 of the full line.
        fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
    }
}

/// How long a dropped server gets to shut down on SIGTERM before it is
/// killed: its drain plus its containers' stop, so a suite leaves no
/// container behind (a SIGKILLed wasmhost leaves them to its next start).
const DROP_GRACE: Duration = Duration::from_secs(15);

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = Command::new("kill")
                .args(["-s", "TERM", &self.pid().to_string()])
                .status();
            let deadline = Instant::now() + DROP_GRACE;
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn collect(
    stderr: std::process::ChildStderr,
) -> (Arc<Mutex<Vec<String>>>, std::thread::JoinHandle<()>) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let sink = log.clone();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    (log, reader)
}

/// A plain HTTP/1.1 client.
pub fn http1() -> reqwest::Client {
    reqwest::Client::builder()
        .http1_only()
        .build()
        .expect("client")
}

/// An HTTP/2 client that speaks h2c with prior knowledge.
pub fn http2() -> reqwest::Client {
    reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .expect("client")
}

/// The sending side of a request body that arrives as the test says.
pub type BodySender = tokio::sync::mpsc::Sender<Result<Vec<u8>, std::io::Error>>;

/// A request body fed through the returned sender, chunk by chunk; it ends
/// when the sender is dropped.
pub fn body_channel() -> (BodySender, reqwest::Body) {
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    let stream = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
    (tx, reqwest::Body::wrap_stream(stream))
}

/// A POST to `url` (an echo route) whose body starts with `first` and goes
/// on as the returned sender says; returns once the response head is back.
/// Echo answers at once and streams the body back as it comes, so the
/// request is then in flight, holding its instance until the body ends.
pub async fn in_flight_echo(url: String, first: &[u8]) -> (BodySender, reqwest::Response) {
    let (tx, body) = body_channel();
    tx.send(Ok(first.to_vec())).await.expect("the body is open");
    let response = http1()
        .post(url)
        .body(body)
        .send()
        .await
        .expect("the response head");
    assert_eq!(response.status(), 200);
    (tx, response)
}

/// GET `url` and return the body as text (panics on any failure: tests).
pub async fn get_text(client: &reqwest::Client, url: String) -> String {
    client.get(url).send().await.unwrap().text().await.unwrap()
}

/// How often the waits below look again.
const POLL: Duration = Duration::from_millis(20);

/// Polls `probe` until it gives a value, and returns it; panics after
/// `timeout`, naming `what` and the last state `describe` gives. Tests
/// wait for a condition this way, never for a fixed time.
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Option<T>,
    describe: impl Fn() -> String,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        if Instant::now() >= deadline {
            panic!("{what}: not within {timeout:?}; {}", describe());
        }
        std::thread::sleep(POLL);
    }
}

/// [`wait_for`] a condition that holds or not.
pub fn wait_until(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    wait_for(what, timeout, || condition().then_some(()), String::new)
}

/// [`wait_for`] from an async test: the probe is a future, and the
/// runtime keeps running the test's other tasks between looks.
pub async fn wait_for_async<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        tokio::time::sleep(POLL).await;
    }
}

/// A GET of `url` (`http://host:port/path`) on a connection of its own,
/// blocking: status and body. For the admin endpoint, from sync waits.
pub fn get_blocking(url: &str) -> (u16, String) {
    use std::io::{Read as _, Write as _};
    let rest = url.strip_prefix("http://").expect("an http:// URL");
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let mut stream = std::net::TcpStream::connect(host).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    // HTTP/1.0: the server closes the connection after a plain body.
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").expect("send request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read response");
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head from {url}: {response:?}"));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status from {url}: {head:?}"));
    (status, body.to_owned())
}

impl Server {
    /// The metrics URL of a server started with `--admin-listen
    /// 127.0.0.1:0`, from the log line naming the address it bound.
    pub fn metrics_url(&self) -> String {
        format!("http://{}/metrics", self.admin_address())
    }

    /// The admin listener's address, from the log line naming it (`admin
    /// on http://ADDR/ (...)`).
    pub fn admin_address(&self) -> String {
        let line = self.wait_for_log("admin on http://", Duration::from_secs(10));
        line.split("admin on http://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .expect("the admin line names its address")
            .to_owned()
    }

    /// The Prometheus text of the admin endpoint now.
    pub fn metrics(&self) -> String {
        let (status, body) = get_blocking(&self.metrics_url());
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Waits until series `name{route,component}` reads `expected`, and
    /// returns the metrics it was seen in; panics with the last metrics
    /// after `timeout` (an absent series never matches).
    pub fn wait_for_metric(
        &self,
        name: &str,
        route: &str,
        component: &str,
        expected: u64,
        timeout: Duration,
    ) -> String {
        let last = Mutex::new(String::new());
        wait_for(
            &format!("{name}{{route={route:?},component={component:?}}} == {expected}"),
            timeout,
            || {
                let text = self.metrics();
                let found = metric(&text, name, route, component) == Some(expected);
                *last.lock().unwrap() = text.clone();
                found.then_some(text)
            },
            || format!("metrics:\n{}", last.lock().unwrap()),
        )
    }
}

/// The value of series `name{route,component}` in Prometheus text, or
/// `None` when the text has no such series: a counter that is never
/// exported must not read as 0.
pub fn metric(metrics: &str, name: &str, route: &str, component: &str) -> Option<u64> {
    let prefix = format!("{name}{{route=\"{route}\",component=\"{component}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|v| {
            v.trim()
                .parse()
                .unwrap_or_else(|_| panic!("series {prefix}is not a count: {v:?}"))
        })
}

/// Whether `count` successes of `n` draws with probability `p` are within
/// five binomial standard deviations of the mean: a weighted split that
/// fails this is off, not unlucky (a false alarm about once in 1.7
/// million runs).
pub fn within_five_sigma(count: u64, n: u64, p: f64) -> bool {
    let mean = n as f64 * p;
    let sigma = (n as f64 * p * (1.0 - p)).sqrt();
    (count as f64 - mean).abs() <= 5.0 * sigma
}

/// The processes whose parent is `pid` (from `/proc/*/stat`).
pub fn children_of(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|child| {
            let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
            // The command name may hold spaces: the fields follow its `)`.
            let parent = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|ppid| ppid.parse::<u32>().ok());
            parent == Some(pid)
        })
        .collect()
}

/// The CPUs process `pid` may run on (`Cpus_allowed_list`), as written.
pub fn cpus_allowed(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("Cpus_allowed_list:"))
        .map(|list| list.trim().to_owned())
        .unwrap_or_default()
}
