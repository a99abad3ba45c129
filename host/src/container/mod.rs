//! Native containers: OCI images run in their own namespaces behind the
//! same front door as Wasm components.
//!
//! From a request inwards:
//!
//! - [`backend`]: the container as a [`crate::backend::Backend`]: the
//!   running container from the lifecycle, then the request proxied, both
//!   under the request's deadline.
//! - [`lifecycle`]: start, readiness, idle stop, restart with backoff,
//!   create-ahead, shutdown, as a state machine with typed transitions.
//! - [`proxy`]: forwarding, the keep-alive pool, hop-by-hop headers, the
//!   connection driven by the request's task.
//! - [`runtime`]: the runtime driver (runc's command line), the protocol
//!   with the embedded runtime's helper, the helper started ahead, its
//!   sealed binary, and the helper process itself.
//!
//! What a container is made of:
//!
//! - [`settings`]: how a component runs, as the user chose it, with the
//!   defaults.
//! - [`image`]: what the image config says, and the image unpacked;
//!   [`healthcheck`]: its HEALTHCHECK, read as Docker reads it.
//! - [`layers`]: applying image layers to a root, safely (hostile layers
//!   never reach outside it).
//! - [`rootfs`]: layers unpacked once by chain id, and a container's root
//!   as an overlay of them.
//! - [`spec`]: the OCI runtime spec under the host's policy;
//!   [`capabilities`] (Docker's default set, `cap_add`/`cap_drop`) and
//!   [`seccomp`] (Docker's default profile) are parts of it.
//! - [`init`]: wasmhost's init, pid 1 in front of the image's command.
//! - [`bundle`]: one container's id, root, namespace and `config.json`.
//! - [`netns`]: the container's private network namespace and the way in;
//!   [`outbound`]: the way out, allow-listed (`network = "outbound"`).
//! - [`sweep`]: what a killed wasmhost left behind.
//! - [`sys`]: every system call std does not wrap, behind a trait with a
//!   fake for unit tests; the only `unsafe` code here (every other file
//!   says `#![forbid(unsafe_code)]`, and a test holds them to it).

pub mod backend;
pub mod bundle;
pub mod capabilities;
pub mod healthcheck;
pub mod image;
pub mod init;
pub mod layers;
pub mod lifecycle;
pub mod netns;
pub mod outbound;
pub mod proxy;
pub mod rootfs;
pub mod runtime;
pub mod seccomp;
pub mod settings;
pub mod spec;
pub mod sweep;
pub mod sys;

#[cfg(test)]
mod tests {
    /// Every file of `container/` but `sys.rs` forbids `unsafe` code, so a
    /// new system call has one place to go.
    #[test]
    fn unsafe_code_lives_in_sys_only() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/container");
        let mut dirs = vec![root.clone()];
        let mut checked = 0;
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    dirs.push(path);
                    continue;
                }
                let name = path
                    .strip_prefix(&root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                if !name.ends_with(".rs") || name == "sys.rs" || name == "mod.rs" && dir == root {
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap();
                let forbids = text.contains("#![forbid(unsafe_code)]");
                // A sibling test file is a child of its module, under the
                // module's own forbid.
                let tests_of_a_module = name.ends_with("tests.rs");
                assert!(
                    forbids || tests_of_a_module,
                    "container/{name} does not forbid unsafe code"
                );
                checked += 1;
            }
        }
        assert!(checked > 10, "only {checked} files checked");
    }
}
