//! The task's cgroup: created at the spec's `cgroupsPath` with the spec's
//! limits (memory, CPU, pids...), the task's process put in it, its
//! figures read for `Stats` (containerd's `io.containerd.cgroups.v1` or
//! `v2` `Metrics`, as CRI reads them for pod metrics), removed at
//! `Delete`. v1 and v2 hierarchies both, through libcgroups (what the
//! embedded runtime uses); the systemd driver (`slice:prefix:name`) is not
//! supported.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use containerd_shim_protos::cgroups::metrics as v1;
use containerd_shim_protos::cgroups_v2::metrics as v2;
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use libcgroups::common::{
    create_cgroup_manager, AnyCgroupManager, CgroupConfig, CgroupManager as _, ControllerOpt,
};
use libcgroups::stats::Stats;
use nix::unistd::Pid;
use oci_spec::runtime::LinuxResources;

use super::events::to_any;

/// One task's cgroup.
pub struct Cgroup {
    manager: AnyCgroupManager,
    path: PathBuf,
}

impl Cgroup {
    /// The cgroup at `path` (relative to the hierarchy roots); nothing is
    /// created until [`Cgroup::apply`] or [`Cgroup::add`].
    pub fn open(path: &str, id: &str) -> Result<Self> {
        if path.contains(':') {
            bail!(
                "cgroupsPath `{path}` is for the systemd driver, which the wasmhost shim does \
                 not support: set `SystemdCgroup = false` for its runtime"
            );
        }
        let path = PathBuf::from(path);
        let manager = create_cgroup_manager(CgroupConfig {
            cgroup_path: path.clone(),
            systemd_cgroup: false,
            container_name: id.to_owned(),
        })
        .map_err(|e| anyhow!("cannot open the cgroup `{}`: {e}", path.display()))?;
        Ok(Cgroup { manager, path })
    }

    /// Creates the cgroup with `resources` as its limits.
    fn apply(&self, resources: Option<&LinuxResources>) -> Result<()> {
        let none = LinuxResources::default();
        self.manager
            .apply(&ControllerOpt {
                resources: resources.unwrap_or(&none),
                disable_oom_killer: false,
                oom_score_adj: None,
                freezer_state: None,
            })
            .map_err(|e| anyhow!("cannot apply the limits to `{}`: {e}", self.path.display()))
    }

    /// Puts process `pid` in the cgroup, then sets `resources` as its
    /// limits (libcgroups creates some controllers' directories only when
    /// a process joins).
    pub fn join(&self, pid: i32, resources: Option<&LinuxResources>) -> Result<()> {
        self.add(pid)?;
        self.apply(resources)
    }

    /// Puts process `pid` in the cgroup.
    fn add(&self, pid: i32) -> Result<()> {
        self.manager
            .add_task(Pid::from_raw(pid))
            .map_err(|e| anyhow!("cannot put the task in `{}`: {e}", self.path.display()))
    }

    /// Every process in the cgroup.
    pub fn pids(&self) -> Vec<i32> {
        self.manager
            .get_all_pids()
            .map(|pids| pids.into_iter().map(Pid::as_raw).collect())
            .unwrap_or_default()
    }

    /// SIGKILLs whatever is left in the cgroup, then removes it.
    pub fn remove(&self) {
        for _ in 0..50 {
            let pids = self.pids();
            for pid in &pids {
                let _ = nix::sys::signal::kill(Pid::from_raw(*pid), nix::sys::signal::SIGKILL);
            }
            if pids.is_empty() && self.manager.remove().is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.manager.remove();
    }

    /// The figures, as containerd's `Metrics` of the hierarchy in use.
    pub fn metrics(&self) -> Result<Any> {
        let stats = self
            .manager
            .stats()
            .map_err(|e| anyhow!("cannot read the cgroup's figures: {e}"))?;
        Ok(match &self.manager {
            AnyCgroupManager::V2(_) => to_any(&metrics_v2(&stats)),
            _ => to_any(&metrics_v1(&stats)),
        })
    }
}

fn stat(stats: &Stats, name: &str) -> u64 {
    stats.memory.stats.get(name).copied().unwrap_or(0)
}

/// cgroup v1 figures (`io.containerd.cgroups.v1.Metrics`).
pub fn metrics_v1(stats: &Stats) -> v1::Metrics {
    let mut m = v1::Metrics::new();
    let mut cpu = v1::CPUStat::new();
    let mut usage = v1::CPUUsage::new();
    usage.total = stats.cpu.usage.usage_total;
    usage.user = stats.cpu.usage.usage_user;
    usage.kernel = stats.cpu.usage.usage_kernel;
    usage.per_cpu = stats.cpu.usage.per_core_usage_total.clone();
    cpu.usage = Some(usage).into();
    let mut throttling = v1::Throttle::new();
    throttling.periods = stats.cpu.throttling.periods;
    throttling.throttled_periods = stats.cpu.throttling.throttled_periods;
    throttling.throttled_time = stats.cpu.throttling.throttled_time;
    cpu.throttling = Some(throttling).into();
    m.cpu = Some(cpu).into();
    let mut memory = v1::MemoryStat::new();
    let entry = |d: &libcgroups::stats::MemoryData| {
        let mut e = v1::MemoryEntry::new();
        e.usage = d.usage;
        e.max = d.max_usage;
        e.limit = d.limit;
        e.failcnt = d.fail_count;
        e
    };
    memory.usage = Some(entry(&stats.memory.memory)).into();
    memory.swap = Some(entry(&stats.memory.memswap)).into();
    memory.kernel = Some(entry(&stats.memory.kernel)).into();
    memory.kernel_tcp = Some(entry(&stats.memory.kernel_tcp)).into();
    memory.cache = stat(stats, "cache");
    memory.rss = stat(stats, "rss");
    memory.mapped_file = stat(stats, "mapped_file");
    memory.inactive_file = stat(stats, "inactive_file");
    memory.active_file = stat(stats, "active_file");
    memory.total_cache = stat(stats, "total_cache");
    memory.total_rss = stat(stats, "total_rss");
    memory.total_mapped_file = stat(stats, "total_mapped_file");
    memory.total_inactive_file = stat(stats, "total_inactive_file");
    memory.total_active_file = stat(stats, "total_active_file");
    memory.total_pg_fault = stat(stats, "total_pgfault");
    memory.total_pg_maj_fault = stat(stats, "total_pgmajfault");
    memory.hierarchical_memory_limit = stat(stats, "hierarchical_memory_limit");
    m.memory = Some(memory).into();
    let mut pids = v1::PidsStat::new();
    pids.current = stats.pids.current;
    pids.limit = stats.pids.limit;
    m.pids = Some(pids).into();
    m
}

/// cgroup v2 figures (`io.containerd.cgroups.v2.Metrics`).
pub fn metrics_v2(stats: &Stats) -> v2::Metrics {
    let mut m = v2::Metrics::new();
    let mut cpu = v2::CPUStat::new();
    // libcgroups reads cpu.stat as it is: microseconds.
    cpu.usage_usec = stats.cpu.usage.usage_total;
    cpu.user_usec = stats.cpu.usage.usage_user;
    cpu.system_usec = stats.cpu.usage.usage_kernel;
    cpu.nr_periods = stats.cpu.throttling.periods;
    cpu.nr_throttled = stats.cpu.throttling.throttled_periods;
    cpu.throttled_usec = stats.cpu.throttling.throttled_time;
    m.cpu = Some(cpu).into();
    let mut memory = v2::MemoryStat::new();
    memory.usage = stats.memory.memory.usage;
    memory.usage_limit = stats.memory.memory.limit;
    memory.max_usage = stats.memory.memory.max_usage;
    memory.swap_usage = stats.memory.memswap.usage;
    memory.swap_limit = stats.memory.memswap.limit;
    memory.anon = stat(stats, "anon");
    memory.file = stat(stats, "file");
    memory.inactive_file = stat(stats, "inactive_file");
    memory.active_file = stat(stats, "active_file");
    memory.file_mapped = stat(stats, "file_mapped");
    memory.pgfault = stat(stats, "pgfault");
    memory.pgmajfault = stat(stats, "pgmajfault");
    m.memory = Some(memory).into();
    let mut pids = v2::PidsStat::new();
    pids.current = stats.pids.current;
    pids.limit = stats.pids.limit;
    m.pids = Some(pids).into();
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_carry_containerds_type_names() {
        let mut stats = Stats::default();
        stats.memory.memory.usage = 4096;
        stats
            .memory
            .stats
            .insert("total_inactive_file".into(), 1024);
        stats.cpu.usage.usage_total = 7;
        let any = to_any(&metrics_v1(&stats));
        assert_eq!(any.type_url, "io.containerd.cgroups.v1.Metrics");
        let m = metrics_v1(&stats);
        assert_eq!(m.memory.usage.usage, 4096);
        assert_eq!(m.memory.total_inactive_file, 1024);
        assert_eq!(m.cpu.usage.total, 7);
        assert_eq!(
            to_any(&metrics_v2(&stats)).type_url,
            "io.containerd.cgroups.v2.Metrics"
        );
    }

    #[test]
    fn the_systemd_driver_is_refused_by_name() {
        let err = Cgroup::open("kubepods.slice:cri-containerd:abc", "abc")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("SystemdCgroup"), "{err}");
    }
}
