//! `wasmhost image build BINARY --output DIR` (and `image app APP`, an app
//! for the containerd shim): a container image from one
//! static binary, written as an OCI image layout that `wasmhost run`, a
//! manifest's `container.image` (`oci:DIR:TAG`) and skopeo (which copies it
//! to a registry) read. No Docker, no daemon, the same digest every time.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::oci::image_build::{self, ImageSpec};

/// Build container images.
#[derive(Debug, Parser)]
pub struct ImageCommand {
    /// What to do.
    #[command(subcommand)]
    pub action: ImageAction,
}

/// `image` subcommands.
#[derive(Debug, Subcommand)]
pub enum ImageAction {
    /// Package a static Linux binary as a container image (OCI layout).
    Build {
        /// The static x86-64 binary; it becomes the entrypoint.
        binary: PathBuf,
        /// The OCI image layout directory to write (created if missing).
        #[arg(long, short)]
        output: PathBuf,
        /// The tag inside the layout.
        #[arg(long, default_value = "latest")]
        tag: String,
        /// A TCP port the service listens on (`ExposedPorts`). Repeatable.
        #[arg(long = "port")]
        ports: Vec<u16>,
        /// `NAME=value` for the image's `Env`. Repeatable.
        #[arg(long = "env", value_name = "NAME=VALUE", value_parser = super::run::parse_env)]
        environment: Vec<(String, String)>,
        /// Run as this user (`name`, `uid` or `uid:gid`; `nobody` exists).
        #[arg(long)]
        user: Option<String>,
        /// Arguments after the binary (`Cmd`).
        #[arg(last = true)]
        args: Vec<String>,
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Package an app (a `.wasm` component or a `spin.toml`) as a container
    /// image for the containerd shim (`io.containerd.wasmhost.v1`): its
    /// files in one layer, an OCI layout, and with `--archive` an OCI
    /// archive that `ctr images import` reads.
    App {
        /// The component or the Spin manifest (v2).
        app: PathBuf,
        /// The OCI image layout directory to write (created if missing).
        #[arg(long, short)]
        output: PathBuf,
        /// The tag inside the layout.
        #[arg(long, default_value = "latest")]
        tag: String,
        /// A runtime config to ship as `/runtime-config.toml`.
        #[arg(long, value_name = "FILE")]
        runtime_config_file: Option<PathBuf>,
        /// `NAME=value` for the image's `Env` (`SPIN_HTTP_LISTEN_ADDR`,
        /// `SPIN_VARIABLE_<NAME>`). Repeatable.
        #[arg(long = "env", value_name = "NAME=VALUE", value_parser = super::run::parse_env)]
        environment: Vec<(String, String)>,
        /// Also write the image as an OCI archive (tar) here.
        #[arg(long, value_name = "FILE", requires = "name")]
        archive: Option<PathBuf>,
        /// The archive's image name, a full reference
        /// (`docker.io/library/hello:latest`).
        #[arg(long)]
        name: Option<String>,
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
}

impl ImageCommand {
    /// Runs the action.
    pub async fn execute(self) -> Result<()> {
        match self.action {
            ImageAction::Build {
                binary,
                output,
                tag,
                ports,
                environment,
                user,
                args,
                json,
            } => {
                let spec = ImageSpec {
                    binary,
                    args,
                    ports,
                    environment,
                    user,
                };
                let built = image_build::build(&spec, &output, &tag)?;
                report(&built, json)
            }
            ImageAction::App {
                app,
                output,
                tag,
                runtime_config_file,
                environment,
                archive,
                name,
                json,
            } => {
                let contents = crate::app::image::contents(&app, runtime_config_file.as_deref())?;
                let spec = image_build::FilesSpec {
                    files: contents.files,
                    entrypoint: contents.entrypoint,
                    environment,
                    ports: vec![80],
                };
                let built = image_build::build_files(&spec, &output, &tag)?;
                if let (Some(archive), Some(name)) = (&archive, &name) {
                    image_build::write_archive(&output, &tag, name, archive)?;
                }
                report(&built, json)
            }
        }
    }
}

fn report(built: &image_build::Built, json: bool) -> Result<()> {
    if json {
        super::print_json(built)?;
    } else {
        println!(
            "built `{}` ({} bytes): {}",
            built.reference, built.size, built.digest
        );
    }
    Ok(())
}
