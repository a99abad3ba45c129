//! OCI registries and what comes out of them.
//!
//! - [`access`]: the cache directory and registry options, built in one
//!   place from whatever flags a command has.
//! - [`store`]: blobs by digest, verified before they become visible, and
//!   what each reference last resolved to.
//! - [`component`]: one component as a CNCF Wasm artifact.
//! - [`media`]: media types, manifests, and what kind of artifact a
//!   manifest holds.
//! - [`registry`]: the registry client: references, credentials, blobs.
//! - [`reference`]: references parsed without a Unicode automaton.
//! - [`pull`]: a reference or layout into the store, with the offline
//!   fallbacks.
//! - [`spin_app`]: Spin's registry format for whole apps, both ways.
//! - [`push`]: pushing components and apps.
//! - [`precompiled`]: compiled code attached to a component as a referrer,
//!   and found again, tied to it by digests.
//! - [`signature`]: cosign's key-based signatures of a manifest (the
//!   `sha256-<hex>.sig` tag), written and checked.
//! - [`layout`]: OCI image layouts (`oci:DIR:TAG`), written and read.
//! - [`image_build`]: an image from one static binary.
//! - [`progress`]: progress bars on a terminal.

pub mod access;
pub mod component;
pub mod image_build;
pub mod layout;
pub mod media;
pub mod precompiled;
pub mod progress;
pub mod pull;
pub mod push;
pub mod reference;
pub mod registry;
pub mod signature;
pub mod spin_app;
pub mod store;
