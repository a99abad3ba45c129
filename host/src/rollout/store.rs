//! A rollout's state on disk: one JSON file per route in the app's state
//! directory (`<state dir>/rollouts/<hash of the route>.json`), written to
//! a temporary file and renamed, so a crash leaves the old state or the
//! new one, never half of either. It is what makes a rollout survive a
//! restart; a reload keeps the state in memory.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use sha2::{Digest as _, Sha256};

use super::state::RouteState;

/// The file of `route`'s rollout under `state_dir`.
pub fn path(state_dir: &Path, route: &str) -> PathBuf {
    let hash = Sha256::digest(route.as_bytes());
    let name: String = hash[..8].iter().map(|b| format!("{b:02x}")).collect();
    state_dir.join("rollouts").join(format!("{name}.json"))
}

/// The state kept at `path`, if any (a file that does not parse is
/// reported and ignored: the rollout starts again rather than not at all).
pub fn load(path: &Path) -> Option<RouteState> {
    let text = match std::fs::read(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!("cannot read the rollout state `{}`: {e}", path.display());
            return None;
        }
    };
    match serde_json::from_slice(&text) {
        Ok(state) => Some(state),
        Err(e) => {
            tracing::warn!(
                "the rollout state `{}` does not parse ({e}); starting the rollout again",
                path.display()
            );
            None
        }
    }
}

/// Writes `state` to `path`, atomically.
pub fn save(path: &Path, state: &RouteState) -> Result<()> {
    let dir = path.parent().context("a state file has a directory")?;
    std::fs::create_dir_all(dir).with_context(|| {
        format!(
            "cannot create the rollout state directory `{}`",
            dir.display()
        )
    })?;
    let text = serde_json::to_vec_pretty(state).context("cannot encode the rollout state")?;
    let partial = path.with_extension("json.partial");
    std::fs::write(&partial, text)
        .with_context(|| format!("cannot write `{}`", partial.display()))?;
    std::fs::rename(&partial, path)
        .with_context(|| format!("cannot rename `{}` into place", partial.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::policy::Policy;

    #[test]
    fn a_saved_state_loads_back_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let file = path(dir.path(), "/todos/...");
        assert_eq!(load(&file), None);
        let state = RouteState::start("/todos/...", &Policy::new("old", "new"));
        save(&file, &state).unwrap();
        assert_eq!(load(&file), Some(state));
        assert_ne!(file, path(dir.path(), "/other"));
    }

    #[test]
    fn a_state_file_that_does_not_parse_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let file = path(dir.path(), "/");
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, "{ half").unwrap();
        assert_eq!(load(&file), None);
    }
}
