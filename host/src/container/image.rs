//! An image ready to run: what its config says about running it (the
//! process: Entrypoint, Cmd, Env, WorkingDir, User; the ports it exposes;
//! the diff_ids its layers must unpack to), and [`PreparedImage`], the one
//! way from a pulled image to its unpacked layers.

#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Context as _, Result};
use serde::Deserialize;

use super::healthcheck::{HealthcheckError, ImageHealthcheck};
use super::rootfs::LayerCache;
use super::runtime::protocol::Signal;
use crate::oci::media::Descriptor;
use crate::oci::store::ContentStore;

/// The image, unpacked, ready to start containers from.
pub struct PreparedImage {
    /// Its config.
    pub config: ImageConfig,
    /// Its layers, unpacked, lowest first.
    pub lower: Vec<PathBuf>,
    /// Its layer descriptors (for the copy fallback).
    pub layers: Vec<Descriptor>,
    /// The store holding the layer blobs.
    pub store: ContentStore,
}

impl PreparedImage {
    /// The pulled image `reference` (its `config` and `layers` in `store`),
    /// its config read and checked and its layers unpacked, or found
    /// unpacked, in the store's layer cache. `run`, `pull`, a manifest's
    /// container and `compare` all come through here.
    pub fn prepare(
        store: &ContentStore,
        reference: &str,
        config: &Descriptor,
        layers: &[Descriptor],
    ) -> Result<Self> {
        let prepare = || -> Result<Self> {
            let config = ImageConfig::parse(&store.read(&config.digest)?)?;
            let lower = LayerCache::of(store).unpack(store, layers, &config.rootfs.diff_ids)?;
            Ok(Self {
                config,
                lower,
                layers: layers.to_vec(),
                store: store.clone(),
            })
        };
        prepare().with_context(|| format!("cannot unpack `{reference}`"))
    }
}

/// The parts of an OCI (or Docker) image config wasmhost uses.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ImageConfig {
    /// `linux` for everything wasmhost runs.
    #[serde(default)]
    pub os: String,
    /// `amd64` here.
    #[serde(default)]
    pub architecture: String,
    /// The container defaults.
    #[serde(default)]
    pub config: ContainerConfig,
    /// The layers' uncompressed digests, in order.
    pub rootfs: RootFs,
}

/// `config` of an image config.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    /// `Entrypoint`.
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    /// `Cmd`.
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    /// `Env`, `NAME=value` each.
    #[serde(default)]
    pub env: Option<Vec<String>>,
    /// `WorkingDir`.
    #[serde(default)]
    pub working_dir: Option<String>,
    /// `User`: `uid`, `uid:gid`, `name` or `name:group`.
    #[serde(default)]
    pub user: Option<String>,
    /// `ExposedPorts`: `"8080/tcp": {}`.
    #[serde(default)]
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    /// `StopSignal`: what asks the image's command to stop (`SIGQUIT`
    /// for nginx); SIGTERM when absent.
    #[serde(default)]
    pub stop_signal: Option<String>,
    /// `Healthcheck` (Docker's HEALTHCHECK): a command run inside. Kept
    /// as written and read by [`ImageConfig::healthcheck`], so a malformed
    /// one costs the check, not the image.
    #[serde(default)]
    pub healthcheck: Option<serde_json::Value>,
    /// `Shell` (Docker's SHELL): what runs a `CMD-SHELL` health check.
    #[serde(default)]
    pub shell: Option<Vec<String>>,
}

/// `rootfs` of an image config.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RootFs {
    /// Always `layers`.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// One per layer.
    #[serde(default)]
    pub diff_ids: Vec<String>,
}

impl ImageConfig {
    /// Parses and checks an image config blob.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let config: ImageConfig =
            serde_json::from_slice(bytes).context("the image config is not valid JSON")?;
        if !config.os.is_empty() && config.os != "linux" {
            bail!("the image is for `{}`, not linux", config.os);
        }
        if config.rootfs.kind != "layers" {
            bail!(
                "the image's rootfs type is `{}`, expected `layers`",
                config.rootfs.kind
            );
        }
        Ok(config)
    }

    /// The process to run: Entrypoint then Cmd, as Docker combines them.
    pub fn args(&self) -> Result<Vec<String>> {
        let mut args = self.config.entrypoint.clone().unwrap_or_default();
        args.extend(self.config.cmd.clone().unwrap_or_default());
        if args.is_empty() {
            bail!("the image has neither Entrypoint nor Cmd: nothing to run");
        }
        Ok(args)
    }

    /// The port to proxy to: the one given, else the image's only exposed
    /// TCP port.
    pub fn service_port(&self, port: Option<u16>) -> Result<u16> {
        if let Some(port) = port {
            return Ok(port);
        }
        match self.exposed_tcp_ports().as_slice() {
            [port] => Ok(*port),
            [] => bail!("the image exposes no TCP port: give the port"),
            ports => bail!("the image exposes ports {ports:?}: choose one"),
        }
    }

    /// The signal that stops the image's command: its `StopSignal`, else
    /// SIGTERM.
    pub fn stop_signal(&self) -> Result<Signal> {
        match self.config.stop_signal.as_deref() {
            None | Some("") => Ok(Signal::Term),
            Some(text) => Signal::parse(text).map_err(|e| anyhow::anyhow!("the image's StopSignal: {e}")),
        }
    }

    /// The health check the image declares: `None` without one or for
    /// `NONE`; an error for a malformed one.
    pub fn healthcheck(&self) -> Result<Option<ImageHealthcheck>, HealthcheckError> {
        match &self.config.healthcheck {
            None => Ok(None),
            Some(value) => ImageHealthcheck::parse(value, self.config.shell.as_deref()),
        }
    }

    /// The TCP ports the image exposes, sorted.
    pub fn exposed_tcp_ports(&self) -> Vec<u16> {
        let mut ports: Vec<u16> = self
            .config
            .exposed_ports
            .iter()
            .flatten()
            .filter_map(|(spec, _)| {
                let (port, proto) = spec.split_once('/').unwrap_or((spec, "tcp"));
                (proto == "tcp").then(|| port.parse().ok()).flatten()
            })
            .collect();
        ports.sort_unstable();
        ports
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entrypoint_and_cmd_combine_and_ports_are_read() {
        let config = ImageConfig::parse(
            br#"{"os":"linux","architecture":"amd64",
                "config":{"Entrypoint":["/bin/busybox"],"Cmd":["httpd","-f"],
                          "ExposedPorts":{"8080/tcp":{},"53/udp":{}},"StopSignal":"SIGQUIT"},
                "rootfs":{"type":"layers","diff_ids":["sha256:00"]}}"#,
        )
        .unwrap();
        assert_eq!(config.args().unwrap(), ["/bin/busybox", "httpd", "-f"]);
        assert_eq!(config.exposed_tcp_ports(), [8080]);
        assert_eq!(
            config.stop_signal().unwrap(),
            Signal::Other(nix::sys::signal::Signal::SIGQUIT)
        );
        assert_eq!(ImageConfig::default().stop_signal().unwrap(), Signal::Term);
        let err =
            ImageConfig::parse(br#"{"os":"windows","rootfs":{"type":"layers"}}"#).unwrap_err();
        assert!(err.to_string().contains("windows"), "{err}");
    }
}
