//! A pod sandbox under CRI: containerd's CRI plugin starts the pod's pause
//! image through the pod's runtime handler, so through this shim, before
//! any container. The sandbox task only has to be a process that lives in
//! the pod's network namespace (CRI made it and names it in the spec; the
//! pod's containers then join `/proc/<its pid>/ns/net`) until it is
//! stopped. The shim's own `pause` is that process: no image content is
//! read or run, nothing is compiled, it costs one small idle process.

#![forbid(unsafe_code)]

use anyhow::{Context as _, Result};
use nix::sys::signal::{SigSet, Signal};
use oci_spec::runtime::Spec;

/// The annotation CRI puts on its containers' specs.
pub const CONTAINER_TYPE: &str = "io.kubernetes.cri.container-type";

/// Whether `spec` is a CRI pod sandbox's.
pub fn is_sandbox(spec: &Spec) -> bool {
    spec.annotations()
        .as_ref()
        .and_then(|a| a.get(CONTAINER_TYPE))
        .is_some_and(|t| t == "sandbox")
}

/// Waits for SIGTERM or SIGINT (as the pause image does), then exits 0;
/// SIGKILL ends it as any process.
pub fn pause() -> Result<()> {
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGTERM);
    signals.add(Signal::SIGINT);
    signals.thread_block().context("cannot block signals")?;
    signals.wait().context("cannot wait for a signal")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sandbox_is_known_by_cris_annotation() {
        let mut spec = Spec::default();
        assert!(!is_sandbox(&spec));
        spec.set_annotations(Some(
            [(CONTAINER_TYPE.to_owned(), "sandbox".to_owned())].into(),
        ));
        assert!(is_sandbox(&spec));
        spec.set_annotations(Some(
            [(CONTAINER_TYPE.to_owned(), "container".to_owned())].into(),
        ));
        assert!(!is_sandbox(&spec));
    }
}
