//! What a pod runs: the app found in the container's root filesystem, and
//! the `wasmhost serve` command line that serves it.
//!
//! As containerd-shim-spin does: the first entrypoint or command argument
//! naming a `.wasm` component or a `.toml` manifest, else `/spin.toml`.
//! `SPIN_HTTP_LISTEN_ADDR` (default `0.0.0.0:80`: a pod's port) and
//! `SPIN_VARIABLE_*` come from the container's environment; a
//! `/runtime-config.toml` in the image is the runtime config. Compiled
//! code goes to one cache per node, so a second pod of the same app does
//! not compile again.

#![forbid(unsafe_code)]

use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context as _, Result};

/// Where a pod's app listens unless its environment says otherwise.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:80";

/// The manifest looked for when no argument names the app.
pub const DEFAULT_MANIFEST: &str = "spin.toml";

/// The runtime config read when the image has one.
pub const RUNTIME_CONFIG: &str = "runtime-config.toml";

/// The node's compile cache unless `WASMHOST_SHIM_CACHE_DIR` says
/// otherwise.
pub const DEFAULT_CACHE_DIR: &str = "/var/lib/wasmhost/cache";

/// What is the same for every pod on the node.
#[derive(Debug, Clone)]
pub struct Node {
    /// The `wasmhost` binary.
    pub wasmhost: PathBuf,
    /// The compile cache shared by the node's pods.
    pub cache_dir: PathBuf,
}

impl Node {
    /// From the shim's environment (containerd passes its own on):
    /// `WASMHOST_BIN`, else `wasmhost` beside the shim; the cache from
    /// `WASMHOST_SHIM_CACHE_DIR`.
    pub fn from_env() -> Result<Node> {
        let wasmhost = match std::env::var_os("WASMHOST_BIN") {
            Some(path) => PathBuf::from(path),
            None => std::env::current_exe()
                .context("cannot find the shim's own binary")?
                .with_file_name("wasmhost"),
        };
        if !wasmhost.is_file() {
            bail!(
                "`{}` is not there: install `wasmhost` beside the shim, or set WASMHOST_BIN",
                wasmhost.display()
            );
        }
        let cache_dir = std::env::var_os("WASMHOST_SHIM_CACHE_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CACHE_DIR));
        Ok(Node {
            wasmhost,
            cache_dir,
        })
    }
}

/// The process the task runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The app: a component or a manifest, inside the root filesystem.
    pub app: PathBuf,
    /// `wasmhost`.
    pub program: PathBuf,
    /// argv (program name first).
    pub argv: Vec<String>,
    /// The environment.
    pub env: Vec<String>,
    /// The working directory: the app's directory.
    pub cwd: PathBuf,
    /// Started at Create and held at [`START_GATE_FD`] until Start
    /// (`wasmhost serve --start-gate-fd`), rather than executed at Start.
    pub preload: bool,
}

/// The descriptor a preloaded process waits on for Start.
pub const START_GATE_FD: i32 = 3;

/// The app named by `args` (the spec's process arguments: entrypoint, then
/// command) in `rootfs`, relative ones against `cwd` (the spec's).
pub fn find_app(args: &[String], cwd: &str, rootfs: &Path) -> Result<PathBuf> {
    let named = args.iter().find(|arg| {
        let lower = arg.to_ascii_lowercase();
        lower.ends_with(".wasm") || lower.ends_with(".toml")
    });
    let inside = match named {
        Some(arg) if arg.starts_with('/') => PathBuf::from(arg),
        Some(arg) => Path::new(if cwd.is_empty() { "/" } else { cwd }).join(arg),
        None => PathBuf::from("/").join(DEFAULT_MANIFEST),
    };
    if inside
        .components()
        .any(|c| matches!(c, Component::ParentDir))
    {
        bail!("the app path `{}` leaves the image", inside.display());
    }
    let path = rootfs.join(inside.strip_prefix("/").unwrap_or(&inside));
    if !path.is_file() {
        match named {
            Some(arg) => bail!("the image has no `{arg}`"),
            None => bail!(
                "the image has no `/{DEFAULT_MANIFEST}`, and no entrypoint or argument names a \
                 `.wasm` component or a `.toml` manifest"
            ),
        }
    }
    Ok(path)
}

/// The `wasmhost serve` process for the container `args`/`env`/`cwd` of
/// the spec, with its root filesystem at `rootfs`.
pub fn plan(
    args: &[String],
    env: &[String],
    cwd: &str,
    rootfs: &Path,
    node: &Node,
) -> Result<Plan> {
    let app = find_app(args, cwd, rootfs)?;
    let listen = env
        .iter()
        .find_map(|e| e.strip_prefix("SPIN_HTTP_LISTEN_ADDR="))
        .filter(|v| !v.is_empty())
        .unwrap_or(DEFAULT_LISTEN)
        .to_owned();
    let mut argv = vec![
        "wasmhost".to_owned(),
        "serve".to_owned(),
        app.display().to_string(),
        "--listen".to_owned(),
        listen,
        "--cache-dir".to_owned(),
        node.cache_dir.display().to_string(),
        "--start-gate-fd".to_owned(),
        START_GATE_FD.to_string(),
    ];
    let runtime_config = rootfs.join(RUNTIME_CONFIG);
    if runtime_config.is_file() {
        argv.push("--runtime-config-file".to_owned());
        argv.push(runtime_config.display().to_string());
    }
    let cwd = app.parent().unwrap_or(rootfs).to_owned();
    Ok(Plan {
        app,
        program: node.wasmhost.clone(),
        argv,
        env: env.to_vec(),
        cwd,
        preload: true,
    })
}

/// The process of a pod sandbox: the shim's own `pause` (see
/// [`super::sandbox`]), whatever the sandbox image holds.
pub fn sandbox_plan(rootfs: &Path) -> Result<Plan> {
    let shim = std::env::current_exe().context("cannot find the shim's own binary")?;
    Ok(Plan {
        app: rootfs.to_owned(),
        program: shim,
        argv: vec!["containerd-shim-wasmhost-v1".to_owned(), "pause".to_owned()],
        env: Vec::new(),
        cwd: PathBuf::from("/"),
        preload: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node() -> Node {
        Node {
            wasmhost: "/usr/bin/wasmhost".into(),
            cache_dir: "/var/cache/w".into(),
        }
    }

    #[test]
    fn spin_toml_by_default_and_a_named_component_otherwise() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        let err = find_app(&[], "/", r).unwrap_err().to_string();
        assert!(err.contains("/spin.toml"), "{err}");
        std::fs::write(r.join("spin.toml"), "").unwrap();
        assert_eq!(
            find_app(&["/".into()], "/", r).unwrap(),
            r.join("spin.toml")
        );
        std::fs::create_dir(r.join("app")).unwrap();
        std::fs::write(r.join("app/hello.wasm"), "").unwrap();
        assert_eq!(
            find_app(&["/app/hello.wasm".into()], "/", r).unwrap(),
            r.join("app/hello.wasm")
        );
        assert_eq!(
            find_app(&["hello.wasm".into()], "/app", r).unwrap(),
            r.join("app/hello.wasm")
        );
        assert!(find_app(&["../../etc/x.toml".into()], "/", r).is_err());
        assert!(find_app(&["/missing.wasm".into()], "/", r)
            .unwrap_err()
            .to_string()
            .contains("/missing.wasm"));
    }

    #[test]
    fn listen_address_runtime_config_and_cache() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        std::fs::write(r.join("spin.toml"), "").unwrap();
        let p = plan(&[], &["SPIN_VARIABLE_X=1".into()], "/", r, &node()).unwrap();
        assert_eq!(p.argv[3..5], ["--listen", "0.0.0.0:80"]);
        assert_eq!(p.argv[5..7], ["--cache-dir", "/var/cache/w"]);
        assert_eq!(p.argv[7..9], ["--start-gate-fd", "3"]);
        assert!(p.preload);
        assert_eq!(p.env, ["SPIN_VARIABLE_X=1"]);
        assert_eq!(p.cwd, r);
        std::fs::write(r.join(RUNTIME_CONFIG), "").unwrap();
        let p = plan(
            &[],
            &["SPIN_HTTP_LISTEN_ADDR=127.0.0.1:8080".into()],
            "/",
            r,
            &node(),
        )
        .unwrap();
        assert_eq!(p.argv[4], "127.0.0.1:8080");
        assert_eq!(p.argv[9], "--runtime-config-file");
    }
}
