//! The layers import only downwards (docs/ARCHITECTURE.md, "Layers"):
//! held here against the sources, so a new upward import fails a test
//! rather than waiting for a reviewer.
//!
//! Read as text: a file under the folder (or the file) on the left may
//! not name `crate::<module>` for any module on the right.

/// (where, what it may not import).
fn rules() -> Vec<(&'static str, Vec<&'static str>)> {
    // What composes workloads: the CLI, the comparison, the manifest, the
    // dispatcher and what swaps and reports apps.
    let above_workloads = [
        "app", "commands", "compare", "dispatch", "mirror", "reload", "admin",
    ];
    let and = |more: &[&'static str]| -> Vec<&'static str> {
        above_workloads.iter().chain(more).copied().collect()
    };
    let mut rules = vec![
        // The workloads know neither the manifest nor the CLI, nor each
        // other.
        ("wasm", and(&["container"])),
        ("container", and(&["wasm", "services"])),
        // What guests are given, below the engine that gives it.
        ("services", and(&["wasm", "container", "oci"])),
        // Artifacts: below every workload and the manifest.
        ("oci", and(&["wasm", "container", "services"])),
        // The front door knows the Backend trait only.
        ("frontdoor", and(&["wasm", "container", "oci", "services"])),
        ("app", vec!["commands", "compare"]),
        // The containerd shim runs `wasmhost serve` as a process: it links
        // no workload, no manifest, no front door (a small binary).
        (
            "shim",
            and(&["wasm", "container", "services", "frontdoor", "oci"]),
        ),
        ("compare", vec!["commands"]),
        // `serve --workers`: processes and descriptors, below the command
        // that runs it; it knows the admin listener, no workload and no
        // manifest.
        (
            "workers",
            and(&["wasm", "container", "oci", "services", "rollout"])
                .into_iter()
                .filter(|&m| m != "admin")
                .collect(),
        ),
        // Routing across backends, whatever they are.
        (
            "dispatch.rs",
            vec!["app", "commands", "compare", "wasm", "container"],
        ),
        (
            "mirror.rs",
            vec!["app", "commands", "compare", "wasm", "container"],
        ),
        // A rollout watches counters and sets a weight: it knows no
        // backend, no manifest and no dispatcher.
        (
            "rollout",
            and(&["wasm", "container", "oci", "services", "frontdoor"]),
        ),
        // An upstream component proxies as a container's requests are
        // proxied, and is otherwise a workload like the others.
        ("upstream.rs", and(&["wasm", "services", "oci"])),
    ];
    // The ground floor: the trait, the limits, the pure pieces.
    for base in [
        "backend.rs",
        "limits.rs",
        "parse.rs",
        "volume.rs",
        "router.rs",
        "metrics.rs",
        "telemetry.rs",
        "overrun.rs",
        "shutdown.rs",
        "inherited_fds.rs",
        "cgroup_wait.rs",
    ] {
        rules.push((
            base,
            and(&["wasm", "container", "oci", "services", "frontdoor"]),
        ));
    }
    rules
}

/// Every `.rs` file at or under `path`.
fn sources(path: &std::path::Path) -> Vec<std::path::PathBuf> {
    if path.is_file() {
        return vec![path.to_owned()];
    }
    let mut found = Vec::new();
    for entry in std::fs::read_dir(path).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
    found
}

#[test]
fn layers_import_only_downwards() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut broken = Vec::new();
    for (place, forbidden) in rules() {
        let files = sources(&src.join(place));
        assert!(!files.is_empty(), "no sources at src/{place}");
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            for module in &forbidden {
                for needle in [format!("crate::{module}::"), format!("crate::{module};")] {
                    if text.contains(&needle) {
                        broken.push(format!(
                            "{} names `{needle}`",
                            file.strip_prefix(&src).unwrap().display()
                        ));
                    }
                }
            }
        }
    }
    assert!(broken.is_empty(), "upward imports:\n{}", broken.join("\n"));
}
