//! CPU time and memory of a server and everything it started, read from
//! `/proc`. Processes in another pid namespace than ours are the
//! container's; the rest (wasmhost itself, the runtime helper) are the
//! host's. Memory is PSS (proportional set size): pages shared between
//! processes (the wasmhost binary, mapped by the server and by its runtime
//! helper) are split between them instead of counted once per process, so
//! the parts add up to what the form really occupies.

use std::path::Path;

/// CPU time and memory at one moment, split between host and container.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// CPU time of the host's processes, in clock ticks.
    pub host_ticks: u64,
    /// CPU time of the container's processes, in clock ticks.
    pub container_ticks: u64,
    /// PSS of the host's processes, in bytes.
    pub host_memory: u64,
    /// PSS of the container's processes, in bytes.
    pub container_memory: u64,
    /// Memory private to the host's processes (USS), in bytes: what grows
    /// with load, unaffected by how many other processes share the binary.
    pub host_private: u64,
}

impl Usage {
    /// All CPU time, in milliseconds.
    pub fn cpu_ms(&self) -> f64 {
        (self.host_ticks + self.container_ticks) as f64 * 1000.0 / ticks_per_second()
    }

    /// All memory.
    pub fn memory(&self) -> u64 {
        self.host_memory + self.container_memory
    }
}

/// Clock ticks per second, as `/proc/<pid>/stat` counts CPU time.
fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).unwrap_or(4096)
}

/// `(ppid, utime + stime)` from `/proc/<pid>/stat`. The command name is
/// in parentheses and may itself contain spaces or `)`, so fields are
/// counted from the last `)`.
fn stat(pid: i32) -> Option<(i32, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = text.get(text.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split(' ').collect();
    // After the name: state(0) ppid(1) … utime(11) stime(12).
    let ppid = fields.get(1)?.parse().ok()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((ppid, utime + stime))
}

/// `(PSS, private)` from `smaps_rollup` (Linux 4.14+), else RSS from
/// `statm` for both.
fn memory(pid: i32) -> (u64, u64) {
    if let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")) {
        let kib = |field: &str| -> Option<u64> {
            text.lines()
                .find_map(|line| line.strip_prefix(field))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        };
        if let Some(pss) = kib("Pss:") {
            let private = kib("Private_Clean:").unwrap_or(0) + kib("Private_Dirty:").unwrap_or(0);
            return (pss * 1024, private * 1024);
        }
    }
    let rss = std::fs::read_to_string(format!("/proc/{pid}/statm"))
        .ok()
        .and_then(|t| t.split(' ').nth(1).and_then(|v| v.parse::<u64>().ok()))
        .map_or(0, |pages| pages * page_size());
    (rss, rss)
}

fn pid_namespace(pid: &str) -> Option<std::path::PathBuf> {
    std::fs::read_link(Path::new("/proc").join(pid).join("ns/pid")).ok()
}

/// `root` and all its descendants, as `(pid, ticks)`.
fn tree(root: i32) -> Vec<(i32, u64)> {
    let mut all = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<i32>().ok())
            else {
                continue;
            };
            if let Some((ppid, ticks)) = stat(pid) {
                all.push((pid, ppid, ticks));
            }
        }
    }
    let mut found: Vec<(i32, u64)> = all
        .iter()
        .filter(|(pid, _, _)| *pid == root)
        .map(|&(pid, _, ticks)| (pid, ticks))
        .collect();
    let mut i = 0;
    while i < found.len() {
        let parent = found[i].0;
        found.extend(
            all.iter()
                .filter(|(_, ppid, _)| *ppid == parent)
                .map(|&(pid, _, ticks)| (pid, ticks)),
        );
        i += 1;
    }
    found
}

/// The usage of `root` and its descendants now.
pub fn usage(root: i32) -> Usage {
    let ours = pid_namespace("self");
    let mut usage = Usage::default();
    for (pid, ticks) in tree(root) {
        let (memory, private) = memory(pid);
        if pid_namespace(&pid.to_string()) == ours {
            usage.host_ticks += ticks;
            usage.host_memory += memory;
            usage.host_private += private;
        } else {
            usage.container_ticks += ticks;
            usage.container_memory += memory;
        }
    }
    usage
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_process_has_cpu_time_and_memory() {
        let mut spin = 0u64;
        for i in 0..20_000_000u64 {
            spin = spin.wrapping_add(i * i);
        }
        assert!(spin > 0);
        let me = usage(std::process::id() as i32);
        assert!(me.host_memory > 1 << 20, "{me:?}");
        assert_eq!(me.container_memory, 0);
        assert!(me.cpu_ms() > 0.0, "{me:?}");
    }
}
