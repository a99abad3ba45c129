//! Settings, all from the environment as containers pass them.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use anyhow::bail;

/// Port when `PORT` is unset: the usual one for an HTTP app in a container.
pub const DEFAULT_PORT: u16 = 8080;

/// Data directory when `TODO_DATA_DIR` is unset: a top-level path so that a
/// volume can be mounted on it (`-v todos:/data`).
pub const DEFAULT_DATA_DIR: &str = "/data";

/// The server's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `PORT`; `0` picks a free one, which the start-up line reports.
    pub port: u16,
    /// `TODO_DATA_DIR`, created if missing.
    pub data_dir: PathBuf,
}

impl Config {
    /// Reads `PORT` and `TODO_DATA_DIR`.
    pub fn from_env() -> anyhow::Result<Config> {
        Config::from_vars(|name| std::env::var_os(name).map(|v| v.to_string_lossy().into_owned()))
    }

    /// Reads the settings through `var`, so tests need not touch the
    /// process environment.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> anyhow::Result<Config> {
        let port = match var("PORT") {
            None => DEFAULT_PORT,
            Some(text) => parse_port(&text)?,
        };
        let data_dir = match var("TODO_DATA_DIR") {
            None => PathBuf::from(DEFAULT_DATA_DIR),
            Some(dir) if dir.is_empty() => {
                bail!("TODO_DATA_DIR is empty; unset it to use `{DEFAULT_DATA_DIR}`")
            }
            Some(dir) => PathBuf::from(dir),
        };
        Ok(Config { port, data_dir })
    }

    /// Every interface: in a container, the runtime decides what reaches it.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::UNSPECIFIED, self.port))
    }
}

fn parse_port(text: &str) -> anyhow::Result<u16> {
    match text.trim().parse() {
        Ok(port) => Ok(port),
        Err(_) => {
            bail!("PORT=`{text}` is not a port number (0-65535); unset it to use {DEFAULT_PORT}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> anyhow::Result<Config> {
        Config::from_vars(|name| {
            vars.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value.to_string())
        })
    }

    #[test]
    fn nothing_set_means_port_8080_and_data_in_slash_data() {
        let config = config(&[]).expect("defaults are valid");
        assert_eq!(config.port, 8080);
        assert_eq!(config.data_dir, PathBuf::from("/data"));
        assert_eq!(config.addr().to_string(), "0.0.0.0:8080");
    }

    #[test]
    fn port_and_data_dir_come_from_the_environment() {
        let config = config(&[("PORT", "18080"), ("TODO_DATA_DIR", "/tmp/t")]).expect("valid");
        assert_eq!(config.port, 18080);
        assert_eq!(config.data_dir, PathBuf::from("/tmp/t"));
    }

    #[test]
    fn a_bad_port_is_refused_with_what_was_typed() {
        for bad in ["http", "65536", "-1", ""] {
            let error = config(&[("PORT", bad)]).expect_err(bad).to_string();
            assert!(error.contains(&format!("PORT=`{bad}`")), "{error}");
        }
    }

    #[test]
    fn an_empty_data_dir_is_refused() {
        let error = config(&[("TODO_DATA_DIR", "")])
            .expect_err("empty")
            .to_string();
        assert!(error.contains("TODO_DATA_DIR is empty"), "{error}");
    }
}
