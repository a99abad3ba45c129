//! Volumes: host directories mounted into a workload, the same way for a
//! container (a bind mount) and a Wasm component (a WASI preopen). They
//! are the state a workload keeps across restarts and instances, and the
//! way a service's container and Wasm forms can share one data directory
//! while its routes move from one to the other.

use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Result};

/// A host directory mounted into a workload (`HOST:PATH[:ro]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    /// The directory on the host (absolute; created if missing).
    pub host: PathBuf,
    /// Where it appears inside the container or guest (absolute).
    pub container: String,
    /// Mounted read-only.
    pub read_only: bool,
}

impl Volume {
    /// Creates the host directory if it is missing (as Docker does for a
    /// bind mount), before anything is started that needs it.
    pub fn create_host_dir(&self) -> Result<()> {
        std::fs::create_dir_all(&self.host)
            .map_err(|e| anyhow::anyhow!("cannot create the volume `{}`: {e}", self.host.display()))
    }

    /// Parses `HOST:PATH` or `HOST:PATH:ro`; a relative `HOST` is taken
    /// relative to `base`.
    pub fn parse(text: &str, base: &Path) -> Result<Self> {
        let (rest, read_only) = match text.strip_suffix(":ro") {
            Some(rest) => (rest, true),
            None => (text.strip_suffix(":rw").unwrap_or(text), false),
        };
        let Some((host, container)) = rest.split_once(':') else {
            bail!("`{text}` is not HOST:PATH[:ro]");
        };
        if host.is_empty() {
            bail!("`{text}`: the host directory is empty");
        }
        let inside = Path::new(container);
        if !inside.is_absolute()
            || inside
                .components()
                .any(|c| matches!(c, Component::ParentDir))
        {
            bail!("`{text}`: the path inside must be absolute, without `..`");
        }
        Ok(Volume {
            host: base.join(host),
            container: container.to_owned(),
            read_only,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volumes_parse_relative_to_a_base() {
        let v = Volume::parse("data:/data", Path::new("/app")).unwrap();
        assert_eq!(v.host, PathBuf::from("/app/data"));
        assert_eq!((v.container.as_str(), v.read_only), ("/data", false));
        let v = Volume::parse("/etc/conf:/conf:ro", Path::new("/app")).unwrap();
        assert_eq!(
            (v.host.as_path(), v.read_only),
            (Path::new("/etc/conf"), true)
        );
        assert!(Volume::parse("data", Path::new("/")).is_err());
        assert!(Volume::parse("data:relative", Path::new("/")).is_err());
        assert!(Volume::parse("data:/a/../b", Path::new("/")).is_err());
        assert!(Volume::parse(":/data", Path::new("/")).is_err());
    }
}
