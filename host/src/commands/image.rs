//! `wasmhost image build BINARY --output DIR`: a container image from one
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
                if json {
                    super::print_json(&built)?;
                } else {
                    println!(
                        "built `{}` ({} bytes): {}",
                        built.reference, built.size, built.digest
                    );
                }
                Ok(())
            }
        }
    }
}
