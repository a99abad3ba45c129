//! The open-files limit, raised at start, and the connection limit derived
//! from it.
//!
//! Every connection is a file descriptor. With the usual soft limit of
//! 1,024, ~1,100 idle connections used to exhaust it: `accept` then fails
//! and new clients wait in the backlog until they time out. The soft limit
//! is only a default the process may raise up to the hard limit, as nginx
//! (`worker_rlimit_nofile`), Go's runtime and systemd services do; the
//! connection limit then keeps a reserve of descriptors below it for
//! what requests themselves open.

use nix::sys::resource::{getrlimit, setrlimit, Resource};

/// Descriptors kept back from connections whatever the instance count:
/// the listeners, the compile cache and content store, log pipes, the
/// epoch and runtime threads' files, container helpers and their pipes.
pub const RESERVED_FDS: u64 = 256;

/// Descriptors kept back per instance slot: an instance may hold open a
/// few files of its own (preopened directories, files it opens) and an
/// outgoing connection or two.
pub const FDS_PER_INSTANCE: u64 = 4;

/// The smallest connection limit derived, however low the file limit: a
/// server that can hold fewer connections than this is misconfigured, and
/// says so in its log.
pub const MIN_CONNECTIONS: u64 = 64;

/// The open-files limits before and after [`raise`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileLimits {
    /// The soft limit found at start.
    pub soft_before: u64,
    /// The soft limit in force now.
    pub soft: u64,
    /// The hard limit (the ceiling for `soft`).
    pub hard: u64,
}

/// The soft open-files limit in force (1024, the usual default, if it
/// cannot be read).
pub fn current_soft_limit() -> u64 {
    getrlimit(Resource::RLIMIT_NOFILE).map_or(1024, |(soft, _)| soft)
}

/// Raises the soft open-files limit to the hard limit and logs both.
/// Failure leaves the limit as it was, with a warning: serving with fewer
/// connections beats not serving.
pub fn raise() -> FileLimits {
    let (soft, hard) = match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok(limits) => limits,
        Err(e) => {
            tracing::warn!("cannot read the open-files limit: {e}; assuming 1024");
            return FileLimits {
                soft_before: 1024,
                soft: 1024,
                hard: 1024,
            };
        }
    };
    let mut limits = FileLimits {
        soft_before: soft,
        soft,
        hard,
    };
    if soft < hard {
        match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => limits.soft = hard,
            Err(e) => tracing::warn!(
                "cannot raise the open-files limit from {soft} to {hard}: {e}; keeping {soft}"
            ),
        }
    }
    tracing::info!(
        "open files: soft limit {} (was {}), hard limit {}",
        limits.soft,
        limits.soft_before,
        limits.hard
    );
    limits
}

/// The default connection limit for `soft` open files and
/// `instance_slots` instances: the file limit minus the reserve (at most
/// half the limit: instances rarely hold what the reserve allows them),
/// never below [`MIN_CONNECTIONS`].
pub fn default_max_connections(soft: u64, instance_slots: u32) -> usize {
    let reserve = (RESERVED_FDS + FDS_PER_INSTANCE * u64::from(instance_slots)).min(soft / 2);
    let max = soft.saturating_sub(reserve);
    if max < MIN_CONNECTIONS {
        tracing::warn!(
            "only {soft} open files allowed: {MIN_CONNECTIONS} connections at most; raise the \
             hard limit (`ulimit -Hn`, LimitNOFILE=) to serve more"
        );
    }
    usize::try_from(max.max(MIN_CONNECTIONS)).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_connection_limit_keeps_a_reserve_for_instances() {
        assert_eq!(
            default_max_connections(1_048_576, 256),
            1_048_576 - 256 - 1024
        );
        assert_eq!(default_max_connections(20_000, 256), 20_000 - 1280);
    }

    #[test]
    fn a_small_file_limit_keeps_half_for_connections() {
        assert_eq!(default_max_connections(1024, 256), 512);
    }

    #[test]
    fn a_tiny_file_limit_still_allows_some_connections() {
        assert_eq!(default_max_connections(100, 256), MIN_CONNECTIONS as usize);
    }
}
