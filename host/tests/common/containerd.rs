//! A private containerd (Debian's package) for the shim's tests: its own
//! root, state, sockets and config under a temporary directory, the CRI
//! plugin as the test asks, the shim found on its PATH (a symlink to the
//! built `containerd-shim-wasmhost-v1`, which finds `wasmhost` beside
//! itself). Nothing of the machine's containerd is touched. Driven with
//! `ctr` (and, for CRI, the protobufs over gRPC).

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::wait_until;

/// The shim's runtime name.
pub const RUNTIME: &str = "io.containerd.wasmhost.v1";

/// A running private containerd.
pub struct Containerd {
    pub dir: tempfile::TempDir,
    child: Child,
    log: Arc<Mutex<String>>,
}

impl Containerd {
    /// Starts containerd; `cri` turns its CRI plugin on.
    pub fn start(cri: bool) -> Containerd {
        // Short: the shim's socket path (`<dir>/s/<64 hex>`) must fit a
        // socket address.
        let dir = tempfile::Builder::new()
            .prefix("ctd")
            .tempdir_in("/tmp")
            .unwrap();
        let d = dir.path();
        let bin = d.join("bin");
        std::fs::create_dir(&bin).unwrap();
        std::os::unix::fs::symlink(
            env!("CARGO_BIN_EXE_containerd-shim-wasmhost-v1"),
            bin.join("containerd-shim-wasmhost-v1"),
        )
        .unwrap();
        let disabled = if cri {
            String::new()
        } else {
            r#"disabled_plugins = ["io.containerd.grpc.v1.cri"]"#.to_owned()
        };
        let config = format!(
            r#"version = 2
root = "{root}"
state = "{state}"
{disabled}
[grpc]
  address = "{sock}"
[ttrpc]
  address = ""
[debug]
  level = "debug"
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "docker.io/wasmhost/pause:test"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{d}/cni-bin"
    conf_dir = "{d}/cni-conf"
  # Naming any runtime replaces the default table: runc (the default
  # handler) must be named too, or the CRI plugin does not load.
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.wasmhost]
    runtime_type = "{RUNTIME}"
"#,
            root = d.join("root").display(),
            state = d.join("state").display(),
            sock = d.join("c.sock").display(),
            d = d.display(),
        );
        std::fs::write(d.join("config.toml"), config).unwrap();
        if cri {
            pod_network_cni(d);
        }
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        // With CRI, containerd runs in a network namespace of its own (`lo`
        // up, for CRI's stream server): the CNI plugins it runs set pods up
        // from there, so the host's network is never touched.
        let mut command = if cri {
            let mut command = Command::new("unshare");
            command.args([
                "--net",
                "sh",
                "-c",
                r#"ip link set lo up && exec containerd --config "$0""#,
            ]);
            command
        } else {
            let mut command = Command::new("containerd");
            command.arg("--config");
            command
        };
        let mut child = command
            .arg(d.join("config.toml"))
            .env("PATH", path)
            .env("WASMHOST_SHIM_CACHE_DIR", d.join("cache"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("containerd (Debian package `containerd`, scripts/install-test-deps.sh)");
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let ctd = Containerd { dir, child, log };
        wait_until("containerd answers", Duration::from_secs(20), || {
            ctd.ctr_output(&["version"]).status.success()
        });
        ctd
    }

    /// The gRPC socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("c.sock")
    }

    /// containerd's log so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// `ctr` against this containerd.
    pub fn ctr_command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("ctr");
        command.arg("--address").arg(self.socket()).args(args);
        command
    }

    /// `ctr ARGS`, whatever its outcome.
    pub fn ctr_output(&self, args: &[&str]) -> Output {
        self.ctr_command(args)
            .stdin(Stdio::null())
            .output()
            .expect("ctr")
    }

    /// `ctr ARGS`, which must succeed; its stdout.
    pub fn ctr(&self, args: &[&str]) -> String {
        let out = self.ctr_output(args);
        assert!(
            out.status.success(),
            "ctr {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Builds `app` into an image named `name` (`wasmhost image app`) and
    /// imports it (`ctr images import`) into ctr's `default` namespace.
    pub fn import_app(&self, app: &Path, name: &str, extra: &[&str]) {
        self.import_app_into("default", app, name, extra);
    }

    /// [`Containerd::import_app`] into containerd namespace `namespace`
    /// (`k8s.io` is CRI's).
    pub fn import_app_into(&self, namespace: &str, app: &Path, name: &str, extra: &[&str]) {
        let work = self
            .dir
            .path()
            .join("images")
            .join(name.replace(['/', ':'], "_"));
        std::fs::create_dir_all(&work).unwrap();
        let archive = work.join("image.tar");
        let out = Command::new(env!("CARGO_BIN_EXE_wasmhost"))
            .arg("image")
            .arg("app")
            .arg(app)
            .arg("--output")
            .arg(work.join("layout"))
            .arg("--archive")
            .arg(&archive)
            .arg("--name")
            .arg(name)
            .args(extra)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.ctr(&[
            "--namespace",
            namespace,
            "images",
            "import",
            archive.to_str().unwrap(),
        ]);
    }

    /// The bundle directories containerd keeps for running tasks.
    pub fn bundles(&self) -> PathBuf {
        self.dir
            .path()
            .join("state/io.containerd.runtime.v2.task/default")
    }

    /// The shim sockets that exist.
    pub fn shim_sockets(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.dir.path().join("s"))
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default()
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
        // What a test that failed midway left running: shims (daemonized,
        // so containerd's exit does not end them) and the processes they
        // started, found by a command line or a root under the directory.
        kill_processes_under(self.dir.path());
        for netns in pod_netns(self.dir.path()) {
            kill_processes_in(&netns);
            let _ = Command::new("umount").arg(&netns).status();
            let _ = std::fs::remove_file(&netns);
        }
        // Whatever a failed test left mounted under the directory.
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let prefix = self.dir.path().display().to_string();
        for line in mounts.lines() {
            if let Some(target) = line.split(' ').nth(4) {
                if target.starts_with(&prefix) {
                    let _ = Command::new("umount").arg("-l").arg(target).status();
                }
            }
        }
    }
}

/// SIGKILLs every process (but this one) whose command line names `dir`
/// or whose root directory is under it, until none is left (bounded).
fn kill_processes_under(dir: &Path) {
    let prefix = format!("{}/", dir.display());
    let me = std::process::id().to_string();
    for _ in 0..10 {
        let mut found = false;
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let pid = entry.file_name().to_string_lossy().into_owned();
            if pid == me || !pid.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let root = std::fs::read_link(entry.path().join("root")).unwrap_or_default();
            let named = String::from_utf8_lossy(&cmdline).contains(&prefix);
            if named || root.starts_with(dir) {
                found = true;
                let _ = Command::new("kill").args(["-KILL", &pid]).status();
            }
        }
        if !found {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The network namespaces the CRI plugin made for pods of this
/// containerd (`/var/run/netns/cni-…`, named in its metadata database under
/// `dir`), which outlive containerd when a test fails before
/// RemovePodSandbox.
fn pod_netns(dir: &Path) -> Vec<PathBuf> {
    let db = dir.join("root/io.containerd.metadata.v1.bolt/meta.db");
    let bytes = std::fs::read(db).unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes);
    let marker = "/var/run/netns/cni-";
    let mut found = Vec::new();
    for (at, _) in text.match_indices(marker) {
        let name: String = text[at + marker.len()..]
            .chars()
            .take_while(|c| c.is_ascii_hexdigit() || *c == '-')
            .collect();
        let path = PathBuf::from(format!("{marker}{name}"));
        if name.len() >= 8 && path.exists() && !found.contains(&path) {
            found.push(path);
        }
    }
    found
}

/// SIGKILLs every process in the network namespace bound at `netns` (the
/// sandbox's pause, whose command line names nothing of the test's).
fn kill_processes_in(netns: &Path) {
    use std::os::unix::fs::MetadataExt as _;
    let Ok(inode) = std::fs::metadata(netns).map(|m| m.ino()) else {
        return;
    };
    let namespace = PathBuf::from(format!("net:[{inode}]"));
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let in_it = std::fs::read_link(entry.path().join("ns/net")).is_ok_and(|ns| ns == namespace);
        if in_it {
            let pid = entry.file_name().to_string_lossy().into_owned();
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
        }
    }
}

/// CNI for the CRI plugin: a point-to-point link (`ptp`) from each pod's
/// namespace (its `eth0`, which CRI requires) into containerd's own
/// namespace, addresses from `host-local` with its state under `dir`; CNI
/// plugins of Debian's containernetworking-plugins.
fn pod_network_cni(dir: &Path) {
    let bin = dir.join("cni-bin");
    let conf = dir.join("cni-conf");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&conf).unwrap();
    for plugin in ["loopback", "ptp", "host-local"] {
        std::os::unix::fs::symlink(Path::new("/usr/lib/cni").join(plugin), bin.join(plugin))
            .unwrap();
    }
    let ipam = dir.join("cni-ipam");
    std::fs::write(
        conf.join("10-pods.conflist"),
        format!(
            r#"{{"cniVersion": "0.4.0", "name": "pods", "plugins": [{{"type": "ptp",
  "ipMasq": false, "ipam": {{"type": "host-local", "dataDir": "{}",
  "ranges": [[{{"subnet": "10.88.0.0/24"}}]]}}}}]}}"#,
            ipam.display()
        ),
    )
    .unwrap();
}

/// `ctr events` running in the background: the lines it printed.
pub struct Events {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Events {
    /// Starts listening.
    pub fn listen(ctd: &Containerd) -> Events {
        let mut child = ctd
            .ctr_command(&["events"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        // `ctr events` subscribes as it starts; give it a moment to.
        std::thread::sleep(Duration::from_millis(300));
        Events { child, lines }
    }

    /// The `/tasks/*` topics seen for container `id`, in order.
    pub fn task_topics(&self, id: &str) -> Vec<String> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(&format!("\"{id}\"")) || l.contains(id))
            .filter_map(|l| l.split_whitespace().find(|w| w.starts_with("/tasks/")))
            .map(str::to_owned)
            .collect()
    }

    /// Every line, for failure messages.
    pub fn all(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A network namespace the test makes (bound on a file in `dir`), with
/// `lo` up.
pub struct NetNs {
    pub path: PathBuf,
}

impl NetNs {
    /// Creates it.
    pub fn create(dir: &Path) -> NetNs {
        let path = dir.join("netns");
        std::fs::write(&path, b"").unwrap();
        let status = Command::new("unshare")
            .arg(format!("--net={}", path.display()))
            .args(["ip", "link", "set", "lo", "up"])
            .status()
            .unwrap();
        assert!(status.success(), "unshare --net");
        NetNs { path }
    }

    /// `curl URL` inside the namespace: see [`curl_in`].
    pub fn curl(&self, url: &str) -> (u16, String) {
        curl_in(&self.path, url)
    }
}

/// `curl -s -w '\n%{http_code}' URL` inside the network namespace at
/// `netns` (a bound namespace or `/proc/<pid>/ns/net`): (status, body);
/// status 0 when nothing answered.
pub fn curl_in(netns: &Path, url: &str) -> (u16, String) {
    let out = Command::new("nsenter")
        .arg(format!("--net={}", netns.display()))
        .args(["curl", "-s", "-m", "10", "-w", "\n%{http_code}", url])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}

/// A TCP port free on the host's loopback now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Processes whose command line contains `needle`.
pub fn processes_with(needle: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(needle) {
            found.push(pid);
        }
    }
    found
}

/// Mount points under `dir`.
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let prefix = dir.display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|t| t.starts_with(&prefix))
        .map(str::to_owned)
        .collect()
}
