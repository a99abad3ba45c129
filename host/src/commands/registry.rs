//! `wasmhost registry login|logout HOST`: credentials in Docker's
//! `config.json`, where docker, podman, skopeo, oras and Spin also look.

use std::io::{BufRead as _, Write as _};
use std::path::PathBuf;

use anyhow::{bail, Context as _, Result};
use base64::Engine as _;
use clap::{Parser, Subcommand};

use crate::oci::registry::{credential_key, is_loopback};

/// Manage registry credentials.
#[derive(Debug, Parser)]
pub struct RegistryCommand {
    #[command(subcommand)]
    pub action: RegistryAction,
}

/// `registry` subcommands.
#[derive(Debug, Subcommand)]
pub enum RegistryAction {
    /// Check credentials against a registry and store them.
    Login(LoginCommand),
    /// Forget the stored credentials for a registry.
    Logout {
        /// The registry host (and port).
        host: String,
    },
}

/// `registry login`.
#[derive(Debug, Parser)]
pub struct LoginCommand {
    /// The registry host (and port), e.g. `ghcr.io` or `127.0.0.1:5000`.
    pub host: String,

    /// User name.
    #[arg(short, long)]
    pub username: String,

    /// Read the password from stdin (one line) instead of the prompt-free
    /// `--password`.
    #[arg(long, conflicts_with = "password")]
    pub password_stdin: bool,

    /// The password (visible to other users in the process list: prefer
    /// `--password-stdin`).
    #[arg(short, long)]
    pub password: Option<String>,

    /// Use plain HTTP (and accept any certificate) for a non-loopback
    /// registry.
    #[arg(long)]
    pub insecure: bool,
}

impl RegistryCommand {
    /// Runs the action.
    pub async fn execute(self) -> Result<()> {
        match self.action {
            RegistryAction::Login(login) => login.execute().await,
            RegistryAction::Logout { host } => {
                let path = config_path()?;
                let mut config = read_config(&path)?;
                let removed = config
                    .get_mut("auths")
                    .and_then(|a| a.as_object_mut())
                    .and_then(|a| a.remove(credential_key(&host)))
                    .is_some();
                if removed {
                    write_config(&path, &config)?;
                    println!(
                        "removed the credentials for `{host}` from `{}`",
                        path.display()
                    );
                } else {
                    println!("no credentials for `{host}` in `{}`", path.display());
                }
                Ok(())
            }
        }
    }
}

impl LoginCommand {
    async fn execute(self) -> Result<()> {
        let password = match (&self.password, self.password_stdin) {
            (Some(p), _) => p.clone(),
            (None, true) => {
                let mut line = String::new();
                std::io::stdin().lock().read_line(&mut line)?;
                line.trim_end_matches(['\r', '\n']).to_owned()
            }
            (None, false) => bail!("give the password with --password-stdin (or --password)"),
        };
        verify(&self.host, &self.username, &password, self.insecure)
            .await
            .with_context(|| format!("cannot log in to `{}`", self.host))?;
        let path = config_path()?;
        let mut config = read_config(&path)?;
        let auth = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{password}", self.username));
        let root = config
            .as_object_mut()
            .context("`config.json` is not a JSON object")?;
        let auths = root
            .entry("auths")
            .or_insert_with(|| serde_json::json!({}))
            .as_object_mut()
            .context("`auths` in `config.json` is not an object")?;
        auths.insert(
            credential_key(&self.host).to_owned(),
            serde_json::json!({ "auth": auth }),
        );
        write_config(&path, &config)?;
        println!(
            "logged in to `{}`; credentials stored in `{}`",
            self.host,
            path.display()
        );
        Ok(())
    }
}

/// Asks the registry whether it accepts the credentials: `GET /v2/` with
/// them, and for token registries a token request.
async fn verify(host: &str, user: &str, password: &str, insecure: bool) -> Result<()> {
    let scheme = if insecure || is_loopback(host) {
        "http"
    } else {
        "https"
    };
    let client = reqwest::Client::builder()
        .danger_accept_invalid_certs(insecure)
        .connect_timeout(std::time::Duration::from_secs(10))
        .build()?;
    let url = format!("{scheme}://{host}/v2/");
    let response = client
        .get(&url)
        .basic_auth(user, Some(password))
        .send()
        .await
        .with_context(|| format!("the registry is unreachable at `{url}`"))?;
    if response.status().is_success() {
        return Ok(());
    }
    let challenge = response
        .headers()
        .get(reqwest::header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if response.status() == reqwest::StatusCode::UNAUTHORIZED
        && challenge.to_ascii_lowercase().starts_with("bearer")
    {
        let reference =
            crate::oci::registry::parse_reference(&format!("{host}/wasmhost/login-check:latest"))?;
        let options = crate::oci::registry::RegistryOptions {
            insecure,
            credentials: Some((user.to_owned(), password.to_owned())),
        };
        return crate::oci::registry::Registry::for_reference(&reference, &options)
            .authenticate_pull(&reference)
            .await;
    }
    bail!(
        "the registry answered {} to `{url}`: wrong user name or password?",
        response.status()
    )
}

/// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
fn config_path() -> Result<PathBuf> {
    let dir = std::env::var_os("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")))
        .context("set DOCKER_CONFIG or HOME to say where credentials go")?;
    Ok(dir.join("config.json"))
}

fn read_config(path: &std::path::Path) -> Result<serde_json::Value> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .with_context(|| format!("`{}` is not valid JSON", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(serde_json::json!({})),
        Err(e) => Err(e).with_context(|| format!("cannot read `{}`", path.display())),
    }
}

/// Writes atomically, readable by the owner only (it holds passwords).
fn write_config(path: &std::path::Path, config: &serde_json::Value) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = path.parent().context("config path has no directory")?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create `{}`", dir.display()))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o600))?;
    tmp.write_all(&serde_json::to_vec_pretty(config)?)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path)
        .with_context(|| format!("cannot write `{}`", path.display()))?;
    Ok(())
}
