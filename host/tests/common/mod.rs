//! Test harness: builds the guest components from source, starts the real
//! `wasmhost` binary on a free port, and collects its log.

#![allow(dead_code)]

pub mod images;
pub mod registry;
pub mod services;

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
        let log = collect(child.stderr.take().expect("stderr piped"));
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout piped"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("read wasmhost stdout");
        let addr = line
            .split("http://")
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
        Server { child, addr, log }
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
        let start = Instant::now();
        loop {
            if let Some(line) = self.log.lock().unwrap().iter().find(|l| l.contains(needle)) {
                return line.clone();
            }
            if start.elapsed() > timeout {
                panic!(
                    "no log line contains {needle:?} after {timeout:?}; log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends a signal to the server.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args(["-s", signal, &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
    }

    /// Waits for the process to exit and returns its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status.code();
            }
            if start.elapsed() > timeout {
                panic!(
                    "wasmhost did not exit within {timeout:?}; log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
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

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn collect(stderr: std::process::ChildStderr) -> Arc<Mutex<Vec<String>>> {
    let log = Arc::new(Mutex::new(Vec::new()));
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    log
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

/// GET `url` and return the body as text (panics on any failure: tests).
pub async fn get_text(client: &reqwest::Client, url: String) -> String {
    client.get(url).send().await.unwrap().text().await.unwrap()
}

/// A free address for `--admin-listen`.
pub fn admin_address() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// The value of series `name{route,component}` in Prometheus text; 0 when
/// absent.
pub fn metric(metrics: &str, name: &str, route: &str, component: &str) -> u64 {
    let prefix = format!("{name}{{route=\"{route}\",component=\"{component}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |v| v.parse().unwrap())
}
