//! How a container component runs, as the user chose it: one type for
//! `wasmhost run`'s flags, a manifest's `container = { ... }` and
//! `compare`'s container form, every setting with its default from
//! [`crate::limits`]. What the image says (its port) and what the host
//! decides (where bundles go, the user namespace's ids) are resolved when
//! the backend is made.

#![forbid(unsafe_code)]

use std::time::Duration;

use crate::limits;
use crate::volume::Volume;

/// The runtimes a container can run under; the first is the default.
pub const RUNTIMES: &[&str] = &["embedded", "runc", "crun", "youki"];

/// The default runtime: youki's libcontainer in wasmhost's own helper.
pub const DEFAULT_RUNTIME: &str = RUNTIMES[0];

/// When a container starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Start {
    /// On the first request (a manifest's default).
    #[default]
    Lazy,
    /// With the server, before it listens (`wasmhost run`'s default).
    Eager,
}

/// CPUs, in thousandths: `0.5` is half a core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cpus(pub u32);

impl Cpus {
    /// The most a container may be given: far more than any host has,
    /// small enough that the CFS quota cannot overflow.
    pub const MAX: f64 = 1024.0;

    /// `cpus` as written (`0.5`); `None` unless above 0 and at most
    /// [`Self::MAX`].
    pub fn from_f64(cpus: f64) -> Option<Self> {
        (cpus > 0.0 && cpus <= Self::MAX).then(|| Self((cpus * 1000.0).round() as u32))
    }

    /// As a number of CPUs.
    pub fn as_f64(self) -> f64 {
        f64::from(self.0) / 1000.0
    }
}

impl std::str::FromStr for Cpus {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        text.trim()
            .parse::<f64>()
            .ok()
            .and_then(Self::from_f64)
            .ok_or_else(|| format!("`{text}` is not a number of CPUs above 0, such as `0.5`"))
    }
}

impl std::fmt::Display for Cpus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.as_f64())
    }
}

/// A container's health check (`health = { path, interval, timeout,
/// retries }`): `GET path` every `interval`; `retries` failures in a row
/// (no 2xx/3xx within `timeout`) make it unhealthy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    pub path: String,
    pub interval: Duration,
    pub timeout: Duration,
    pub retries: u32,
}

impl Health {
    /// Docker's HEALTHCHECK defaults: every 30 s, 30 s to answer, 3 tries.
    pub const DEFAULT_INTERVAL: Duration = super::healthcheck::DEFAULT_INTERVAL;
    pub const DEFAULT_TIMEOUT: Duration = super::healthcheck::DEFAULT_TIMEOUT;
    pub const DEFAULT_RETRIES: u32 = super::healthcheck::DEFAULT_RETRIES;
}

/// How one container component runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The port the service listens on inside the container; `None`: the
    /// image's only exposed TCP port.
    pub port: Option<u16>,
    /// The runtime, one of [`RUNTIMES`].
    pub runtime: String,
    /// Memory limit in bytes.
    pub memory_limit: u64,
    /// Most processes and threads at once.
    pub pids_limit: i64,
    /// CPU share.
    pub cpus: Cpus,
    /// When it starts.
    pub start: Start,
    /// Stop after this long without requests; `None`: never.
    pub idle_timeout: Option<Duration>,
    /// How long a start may take to accept connections.
    pub ready_timeout: Duration,
    /// Between SIGTERM and SIGKILL on stop.
    pub stop_grace: Duration,
    /// Environment added to the image's.
    pub environment: Vec<(String, String)>,
    /// Host directories mounted into the container.
    pub volumes: Vec<Volume>,
    /// Run in a user namespace (root inside is an unprivileged host id,
    /// [`super::spec::IdMap::DEFAULT`]) rather than as host root in the
    /// other namespaces only.
    pub user_namespace: bool,
    /// Capabilities added to Docker's default set for root (canonical
    /// names, [`super::capabilities::canonical`]; `ALL` for every one).
    pub cap_add: Vec<String>,
    /// Capabilities taken from it (`ALL` for every one).
    pub cap_drop: Vec<String>,
    /// Mount the image's root read-only (volumes keep their own mode).
    pub read_only_rootfs: bool,
    /// Run wasmhost's init as pid 1 in front of the image's command, so
    /// signals reach the command and orphans are reaped.
    pub init: bool,
    /// The HTTP health check; `None`: the image's HEALTHCHECK if it has
    /// one (and [`Self::healthcheck`]), else none. Given, it wins over the
    /// image's.
    pub health: Option<Health>,
    /// Run the image's HEALTHCHECK (`--no-healthcheck`, `healthcheck =
    /// false`: not, as Docker's `--no-healthcheck`).
    pub healthcheck: bool,
    /// Outbound network ([`super::outbound`]); false: loopback only.
    pub outbound: bool,
    /// Where outbound connections may go (Spin's `allowed_outbound_hosts`
    /// entries, templates rendered); enforced in the container's network
    /// namespace.
    pub allowed_outbound_hosts: Vec<String>,
    /// How often the names among them are resolved again while the
    /// container runs.
    pub outbound_resolve_interval: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            port: None,
            runtime: DEFAULT_RUNTIME.to_owned(),
            memory_limit: limits::CONTAINER_MEMORY_LIMIT,
            pids_limit: limits::CONTAINER_PIDS_LIMIT,
            cpus: Cpus(limits::CONTAINER_MILLICPUS),
            start: Start::default(),
            idle_timeout: None,
            ready_timeout: limits::CONTAINER_READY_TIMEOUT,
            stop_grace: limits::CONTAINER_STOP_GRACE,
            environment: Vec::new(),
            volumes: Vec::new(),
            user_namespace: false,
            cap_add: Vec::new(),
            cap_drop: Vec::new(),
            read_only_rootfs: false,
            init: true,
            outbound: false,
            allowed_outbound_hosts: Vec::new(),
            outbound_resolve_interval: limits::CONTAINER_OUTBOUND_RESOLVE_INTERVAL,
            health: None,
            healthcheck: true,
        }
    }
}

impl Settings {
    /// The `wasmhost run` flags that give these settings (besides the
    /// image): only those that differ from the defaults, so a command line
    /// built from them (`compare`'s) stays readable.
    pub fn run_args(&self) -> Vec<String> {
        let default = Self::default();
        let mut args = Vec::new();
        let mut flag = |name: &str, value: String| {
            args.push(format!("--{name}"));
            args.push(value);
        };
        if let Some(port) = self.port {
            flag("port", port.to_string());
        }
        if self.runtime != default.runtime {
            flag("oci-runtime", self.runtime.clone());
        }
        if self.memory_limit != default.memory_limit {
            flag(
                "memory-limit",
                crate::parse::SizeArg(self.memory_limit).to_string(),
            );
        }
        if self.pids_limit != default.pids_limit {
            flag("pids-limit", self.pids_limit.to_string());
        }
        if self.cpus != default.cpus {
            flag("cpus", self.cpus.to_string());
        }
        if let Some(idle) = self.idle_timeout {
            flag("idle-timeout", crate::parse::DurationArg(idle).to_string());
        }
        if self.ready_timeout != default.ready_timeout {
            flag(
                "ready-timeout",
                crate::parse::DurationArg(self.ready_timeout).to_string(),
            );
        }
        if self.stop_grace != default.stop_grace {
            flag(
                "stop-grace",
                crate::parse::DurationArg(self.stop_grace).to_string(),
            );
        }
        for (name, value) in &self.environment {
            flag("env", format!("{name}={value}"));
        }
        for volume in &self.volumes {
            let mut text = format!("{}:{}", volume.host.display(), volume.container);
            if volume.read_only {
                text.push_str(":ro");
            }
            flag("volume", text);
        }
        if let Some(health) = &self.health {
            flag("health-path", health.path.clone());
            flag(
                "health-interval",
                crate::parse::DurationArg(health.interval).to_string(),
            );
            flag(
                "health-timeout",
                crate::parse::DurationArg(health.timeout).to_string(),
            );
            flag("health-retries", health.retries.to_string());
        }
        for capability in &self.cap_add {
            flag("cap-add", capability.clone());
        }
        for capability in &self.cap_drop {
            flag("cap-drop", capability.clone());
        }
        if self.outbound_resolve_interval != default.outbound_resolve_interval {
            flag(
                "outbound-resolve-interval",
                crate::parse::DurationArg(self.outbound_resolve_interval).to_string(),
            );
        }
        if self.user_namespace {
            args.push("--user-namespace".to_owned());
        }
        if self.read_only_rootfs {
            args.push("--read-only".to_owned());
        }
        if !self.init {
            args.push("--no-init".to_owned());
        }
        if !self.healthcheck {
            args.push("--no-healthcheck".to_owned());
        }
        if self.outbound {
            args.push("--network".to_owned());
            args.push("outbound".to_owned());
        }
        for entry in &self.allowed_outbound_hosts {
            args.push("--allowed-outbound-host".to_owned());
            args.push(entry.clone());
        }
        // `run` starts eagerly unless told otherwise.
        if self.start == Start::Lazy {
            args.push("--lazy".to_owned());
        }
        args
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpus_are_read_and_shown_as_written() {
        assert_eq!("0.5".parse::<Cpus>(), Ok(Cpus(500)));
        assert_eq!("2".parse::<Cpus>(), Ok(Cpus(2000)));
        assert_eq!(Cpus(1500).to_string(), "1.5");
        assert_eq!(Cpus(limits::CONTAINER_MILLICPUS).to_string(), "1");
        for bad in ["0", "-1", "2000", "many"] {
            assert!(bad.parse::<Cpus>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_defaults_need_no_flags_but_the_start() {
        assert_eq!(Settings::default().run_args(), ["--lazy"]);
        let eager = Settings {
            start: Start::Eager,
            ..Settings::default()
        };
        assert!(eager.run_args().is_empty());
    }
}
