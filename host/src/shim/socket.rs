//! Where a shim listens: `<dir of containerd's socket>/s/<sha256 of
//! "address/namespace/id">`, which for `/run/containerd/containerd.sock`
//! is containerd's own `/run/containerd/s/...` and for a private
//! containerd stays in its directory. A path too long for a socket
//! address falls back to `/run/containerd/s`.

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

/// The longest path `sockaddr_un` holds, less its NUL.
const MAX_PATH: usize = 107;

/// The socket path of the shim for `id` in `namespace` under containerd
/// at `address`.
pub fn path(address: &str, namespace: &str, id: &str) -> PathBuf {
    let joined = Path::new(address).join(namespace).join(id);
    let hash = hex::encode(Sha256::digest(joined.as_os_str().as_encoded_bytes()));
    let dir = Path::new(address)
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("/run/containerd"))
        .join("s");
    let path = dir.join(&hash);
    if path.as_os_str().len() <= MAX_PATH {
        path
    } else {
        Path::new("/run/containerd/s").join(hash)
    }
}

/// The address as containerd reads it.
pub fn address(path: &Path) -> String {
    format!("unix://{}", path.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beside_containerds_socket_and_short_enough() {
        let p = path("/run/containerd/containerd.sock", "k8s.io", &"a".repeat(64));
        assert!(p.starts_with("/run/containerd/s/"));
        assert_eq!(p.file_name().unwrap().len(), 64);
        let private = path("/tmp/x/containerd.sock", "default", "t1");
        assert!(private.starts_with("/tmp/x/s/"));
        assert_ne!(private, path("/tmp/x/containerd.sock", "default", "t2"));
        let long = path(&format!("/{}/c.sock", "d".repeat(60)), "n", "i");
        assert!(long.starts_with("/run/containerd/s/"));
        assert_eq!(address(&private), format!("unix://{}", private.display()));
    }
}
