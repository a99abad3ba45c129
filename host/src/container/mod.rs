//! Native containers: OCI images run in their own namespaces behind the
//! same front door as Wasm components.
//!
//! - [`layers`]: applying image layers to a root, safely (hostile layers
//!   never reach outside it).
//! - [`rootfs`]: layers unpacked once by chain id, and a container's root
//!   as an overlay of them.
//! - [`image`]: what the image config says about running it.
//! - [`spec`]: the OCI runtime spec under the host's policy.
//! - [`netns`]: the container's private network namespace and the way in.
//! - [`runtime`]: running the bundle with runc, crun or youki.
//! - [`backend`]: the container as a [`crate::backend::Backend`]: start,
//!   readiness, idle stop, restart, proxying.
//! - [`upstream`]: a fresh connection to the container, driven by the
//!   request that uses it.

pub mod backend;
pub mod image;
pub mod layers;
pub mod netns;
pub mod rootfs;
pub mod runtime;
pub mod spec;
pub mod upstream;
