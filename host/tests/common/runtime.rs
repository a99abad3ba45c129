//! What the OCI runtimes know about wasmhost's containers, asked the way
//! wasmhost asks them: each under its own state directory,
//! `/run/wasmhost/<runtime>`. A container is asked about by the runtime
//! that ran it (the embedded one unless `--oci-runtime` said otherwise):
//! any other answers "not here" whatever happened.

use std::path::PathBuf;
use std::process::Command;

/// `runtime`'s state directory for wasmhost's containers.
pub fn root(runtime: &str) -> PathBuf {
    PathBuf::from("/run/wasmhost").join(runtime)
}

/// The containers `runtime` (`embedded`, `runc`, ...) lists, as JSON
/// objects (`id`, `pid`, `status`, ...). A listing that fails is a failed
/// check, never an empty list.
pub fn containers(runtime: &str) -> Vec<serde_json::Value> {
    let root = root(runtime);
    let mut command = if runtime == "embedded" {
        let mut command = Command::new(env!("CARGO_BIN_EXE_wasmhost"));
        command.arg("runtime");
        command
    } else {
        Command::new(runtime)
    };
    let out = command
        .arg("--root")
        .arg(&root)
        .args(["list", "--format", "json"])
        .output()
        .unwrap_or_else(|e| panic!("cannot list containers with `{runtime}`: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "cannot list containers with `{runtime}` ({}): {stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    // runc prints `null` for no containers.
    match serde_json::from_str(&stdout) {
        Ok(serde_json::Value::Array(list)) => list,
        Ok(serde_json::Value::Null) => Vec::new(),
        _ => panic!("`{runtime} list` printed no JSON list: {stdout:?}"),
    }
}

/// Whether `runtime` lists a container whose id contains `tag`.
pub fn has_container(runtime: &str, tag: &str) -> bool {
    containers(runtime)
        .iter()
        .any(|c| c["id"].as_str().unwrap_or_default().contains(tag))
}

/// Asserts that container `id` is gone from `runtime`: not listed, and no
/// state left (a listing skips a container whose state it cannot read, so
/// the listing alone could miss one).
pub fn assert_gone(runtime: &str, id: &str) {
    let listed = containers(runtime);
    assert!(
        !listed.iter().any(|c| c["id"] == id),
        "`{runtime}` still lists `{id}`: {listed:?}"
    );
    let state = root(runtime).join(id);
    assert!(!state.exists(), "`{}` is left", state.display());
}

/// The container id (`wasmhost-…`) a log line names in backticks.
pub fn logged_id(line: &str) -> String {
    line.split('`')
        .find(|part| part.starts_with("wasmhost-"))
        .unwrap_or_else(|| panic!("no container id in {line:?}"))
        .to_owned()
}
