//! One form of the service, run as its own `wasmhost` process: started,
//! probed until it answers, measured, stopped.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

use super::load::{Connection, RequestSpec};
use super::process::{self, Usage};
use super::report::SizeReport;
use crate::app::{manifest, sources};
use crate::container::image::PreparedImage;
use crate::container::settings::Settings;
use crate::oci::access::Access;
use crate::oci::media::Kind;
use crate::oci::progress::Progress;
use crate::oci::pull;
use crate::oci::store::digest_of;

/// The registry and cache flags both forms pass on to their `wasmhost`
/// process.
fn access_args(access: &Access) -> Vec<String> {
    let mut args = Vec::new();
    if let Some(dir) = &access.cache_dir {
        args.extend(["--cache-dir".to_owned(), dir.display().to_string()]);
    }
    if access.insecure {
        args.push("--insecure".to_owned());
    }
    args
}

/// How one form runs.
#[derive(Debug, Clone)]
pub enum Form {
    /// `wasmhost run IMAGE`.
    Container {
        /// Registry reference or `oci:DIR:TAG`.
        image: String,
        /// How it runs (as `run`'s flags give it).
        settings: Settings,
        /// A path in the container backed by a fresh directory per start.
        state_path: Option<String>,
        /// Registries and cache, shared.
        access: Access,
    },
    /// `wasmhost serve APP` (a `.wasm`, a manifest or a reference).
    Wasm {
        /// What to serve.
        app: String,
        /// A path every instance sees, backed by a fresh directory per start.
        state_path: Option<String>,
        /// Registries and cache, shared.
        access: Access,
    },
}

impl Form {
    /// `container` or `wasm`.
    pub fn label(&self) -> &'static str {
        match self {
            Form::Container { .. } => "container",
            Form::Wasm { .. } => "wasm",
        }
    }

    /// Whether this is the container form.
    pub fn is_container(&self) -> bool {
        matches!(self, Form::Container { .. })
    }

    /// The image or app.
    pub fn artifact(&self) -> &str {
        match self {
            Form::Container { image, .. } => image,
            Form::Wasm { app, .. } => app,
        }
    }

    /// The `wasmhost` arguments, with state under `state`.
    fn args(&self, state: &Path) -> Vec<String> {
        let mut args: Vec<String> = match self {
            Form::Container {
                image,
                settings,
                state_path,
                access,
            } => {
                let mut args = vec!["run".to_owned(), image.clone()];
                args.extend(settings.run_args());
                if let Some(inside) = state_path {
                    args.extend([
                        "--volume".to_owned(),
                        format!("{}:{inside}", state.join("data").display()),
                    ]);
                }
                args.extend(access_args(access));
                args
            }
            Form::Wasm {
                app,
                state_path,
                access,
            } => {
                let mut args = vec!["serve".to_owned(), app.clone()];
                args.extend([
                    "--state-dir".to_owned(),
                    state.join("kv").display().to_string(),
                ]);
                if let Some(inside) = state_path {
                    args.extend([
                        "--volume".to_owned(),
                        format!("{}:{inside}", state.join("data").display()),
                    ]);
                }
                args.extend(access_args(access));
                args
            }
        };
        args.extend(["--listen".to_owned(), "127.0.0.1:0".to_owned()]);
        args
    }

    /// The command line, for the report (`STATE` stands for the fresh
    /// directory each start gets).
    pub fn command_line(&self) -> Vec<String> {
        let mut line = vec!["wasmhost".to_owned()];
        line.extend(self.args(Path::new("STATE")));
        line
    }

    /// Sizes of the artifact: what a pull transfers (config and layers)
    /// and what it takes on disk once unpacked.
    pub async fn size(&self) -> Result<SizeReport> {
        match self {
            Form::Container { image, access, .. } => {
                let store = access.store()?;
                let pulled =
                    pull::pull_named(image, &store, &access.options(), &Progress::hidden()).await?;
                if pulled.kind != Kind::Image {
                    bail!(
                        "`{image}` is a {}, not a container image",
                        pulled.kind.describe()
                    );
                }
                let prepared =
                    PreparedImage::prepare(&store, image, &pulled.config, &pulled.layers)?;
                Ok(SizeReport {
                    registry_bytes: pulled_bytes(&pulled),
                    disk_bytes: prepared.lower.iter().map(|dir| tree_size(dir)).sum(),
                })
            }
            Form::Wasm { app, access, .. } => wasm_size(app, access).await,
        }
    }
}

async fn wasm_size(app: &str, access: &Access) -> Result<SizeReport> {
    let path = Path::new(app);
    if path.extension().is_some_and(|e| e == "toml") {
        let mut loaded = manifest::load(path)?;
        let store = access.store()?;
        sources::resolve(&mut loaded, &store, &access.options()).await?;
        let packed = crate::app::pack::pack(&loaded)?;
        let disk = loaded
            .manifest
            .components
            .values()
            .filter_map(|c| match &c.source {
                manifest::Source::Local(p) => std::fs::metadata(loaded.dir.join(p)).ok(),
                _ => None,
            })
            .map(|m| m.len())
            .sum();
        return Ok(SizeReport {
            registry_bytes: packed.config.len() as u64
                + packed
                    .layers
                    .iter()
                    .map(|(b, _)| b.len() as u64)
                    .sum::<u64>(),
            disk_bytes: disk,
        });
    }
    if path.exists() {
        let wasm = std::fs::read(path).with_context(|| format!("cannot read `{app}`"))?;
        let config = crate::oci::component::config_for(&wasm, &digest_of(&wasm))?;
        return Ok(SizeReport {
            registry_bytes: (wasm.len() + serde_json::to_vec(&config)?.len()) as u64,
            disk_bytes: wasm.len() as u64,
        });
    }
    let store = access.store()?;
    let pulled = pull::pull_named(app, &store, &access.options(), &Progress::hidden()).await?;
    let local = pulled
        .local_path(&store)?
        .context("a Wasm artifact has a local path")?;
    Ok(SizeReport {
        registry_bytes: pulled_bytes(&pulled),
        disk_bytes: tree_size(&local),
    })
}

/// Config and layers, as the registry (or layout) describes them.
fn pulled_bytes(pulled: &pull::Pulled) -> u64 {
    pulled.config.size + pulled.layers.iter().map(|l| l.size).sum::<u64>()
}

/// Bytes of regular files under `path` (or of `path` itself).
fn tree_size(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return if meta.is_file() { meta.len() } else { 0 };
    }
    std::fs::read_dir(path)
        .map(|entries| entries.flatten().map(|e| tree_size(&e.path())).sum())
        .unwrap_or(0)
}

/// A running form.
pub struct Server {
    child: Child,
    addr: SocketAddr,
    form: Form,
    log: PathBuf,
}

/// How long a start may take before the comparison gives up on it.
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// How long a stopping form gets between SIGTERM and SIGKILL: past the
/// container's own grace period (10 s), so it stops its container.
const STOP_GRACE: Duration = Duration::from_secs(20);

/// Pause between probes of a starting form.
const PROBE_EVERY: Duration = Duration::from_millis(1);

impl Server {
    /// Starts `form` with its state in `state` and waits until it answers
    /// `GET` on `probe`'s path.
    pub async fn start(form: &Form, state: &Path, probe: &RequestSpec) -> Result<Self> {
        Ok(Self::start_cold(form, state, probe).await?.0)
    }

    /// Starts `form` and measures from the spawn to the first answer (any
    /// status below 500) to `GET` on `probe`'s path. A form that fails to
    /// start is stopped (its container too) before the error returns.
    pub async fn start_cold(
        form: &Form,
        state: &Path,
        probe: &RequestSpec,
    ) -> Result<(Self, Duration)> {
        std::fs::create_dir_all(state)
            .with_context(|| format!("cannot create `{}`", state.display()))?;
        let log = state.with_extension("log");
        let stderr = std::fs::File::create(&log)
            .with_context(|| format!("cannot create `{}`", log.display()))?;
        let exe = std::env::current_exe().context("cannot find the wasmhost binary")?;
        let started = Instant::now();
        let mut command = Command::new(exe);
        command
            .args(form.args(state))
            .env("WASMHOST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true);
        // SAFETY: prctl is async-signal-safe and touches only the child.
        // If compare dies, the form is asked to stop (and stops its
        // container) instead of serving on.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = command.spawn().context("cannot start wasmhost")?;
        match wait_until_answering(&mut child, form, probe, started, &log).await {
            Ok(addr) => Ok((
                Self {
                    child,
                    addr,
                    form: form.clone(),
                    log,
                },
                started.elapsed(),
            )),
            Err(e) => {
                terminate(&mut child, form.label(), &log).await;
                Err(e)
            }
        }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Which form it is.
    pub fn form(&self) -> &Form {
        &self.form
    }

    /// The wasmhost process, while it runs.
    pub fn pid(&self) -> Option<i32> {
        self.child.id().and_then(|id| i32::try_from(id).ok())
    }

    /// CPU and memory of it and everything it started.
    pub fn usage(&self) -> Usage {
        self.pid().map(process::usage).unwrap_or_default()
    }

    /// SIGTERM, then SIGKILL if it has not exited after a grace period.
    pub async fn stop(mut self) {
        terminate(&mut self.child, self.form.label(), &self.log).await;
    }
}

/// Reads the address the form prints, then probes it until it answers.
async fn wait_until_answering(
    child: &mut Child,
    form: &Form,
    probe: &RequestSpec,
    started: Instant,
    log: &Path,
) -> Result<SocketAddr> {
    let stdout = child.stdout.take().context("stdout is piped")?;
    let addr = match tokio::time::timeout(START_TIMEOUT, listening_address(stdout)).await {
        Ok(Ok(addr)) => addr,
        Ok(Err(e)) => bail!("{} form did not start: {e:#}\n{}", form.label(), tail(log)),
        Err(_) => bail!(
            "{} form did not start within {START_TIMEOUT:?}\n{}",
            form.label(),
            tail(log)
        ),
    };
    let probe = RequestSpec {
        method: "GET".to_owned(),
        path: probe.path.clone(),
        body: String::new(),
    };
    let mut connection = Connection::new(addr);
    loop {
        match connection.send(&probe).await {
            Ok(answer) if answer.status < 500 => return Ok(addr),
            _ if started.elapsed() > START_TIMEOUT => bail!(
                "{} form never answered `GET {}`\n{}",
                form.label(),
                probe.path,
                tail(log)
            ),
            _ => tokio::time::sleep(PROBE_EVERY).await,
        }
    }
}

/// SIGTERM, then SIGKILL after [`STOP_GRACE`].
async fn terminate(child: &mut Child, label: &str, log: &Path) {
    if let Some(pid) = child.id().and_then(|id| i32::try_from(id).ok()) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    if tokio::time::timeout(STOP_GRACE, child.wait())
        .await
        .is_err()
    {
        tracing::warn!("{label} form did not stop; killing it\n{}", tail(log));
        let _ = child.kill().await;
    }
}

/// Reads stdout until wasmhost prints `… on http://ADDR/`.
async fn listening_address(stdout: tokio::process::ChildStdout) -> Result<SocketAddr> {
    let mut lines = BufReader::new(stdout).lines();
    while let Some(line) = lines.next_line().await? {
        if let Some(rest) = line.split("http://").nth(1) {
            let addr = rest.trim_end().trim_end_matches('/');
            return addr
                .parse()
                .with_context(|| format!("unexpected address in `{line}`"));
        }
    }
    bail!("it exited before listening")
}

/// The end of a form's log, for errors.
fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(20);
    format!("log ({}):\n{}", log.display(), lines[start..].join("\n"))
}
