//! The harness's own checks can fail, and the scripts install and run
//! what the suite needs. Each test pins a way a check once passed whatever
//! wasmhost did, or a way the suite once ran less than it says (issue 19).

mod common;

use std::time::Duration;

use common::registry::TestRegistry;
use common::{metric, repo_root, wait_until, within_five_sigma};

fn read(path: &str) -> String {
    std::fs::read_to_string(repo_root().join(path)).expect(path)
}

#[test]
fn a_metric_series_that_is_not_exported_reads_as_absent_not_as_zero() {
    let text = "# TYPE wasmhost_mirror_requests_total counter\n\
                wasmhost_mirror_requests_total{route=\"/a\",component=\"b\"} 0\n";
    let series = |name: &str, component: &str| metric(text, name, "/a", component);
    assert_eq!(series("wasmhost_mirror_requests_total", "b"), Some(0));
    assert_eq!(series("wasmhost_mirror_requests_total", "c"), None);
    assert_eq!(series("wasmhost_mirror_mismatches_total", "b"), None);
}

#[test]
#[should_panic(expected = "a condition that never holds: not within")]
fn a_wait_whose_condition_never_holds_fails_at_its_deadline() {
    wait_until(
        "a condition that never holds",
        Duration::from_millis(50),
        || false,
    );
}

#[test]
fn a_weighted_split_must_land_within_five_standard_deviations() {
    // 1000 draws at 10 %: mean 100, standard deviation ~9.5.
    assert!(within_five_sigma(100, 1000, 0.1));
    assert!(within_five_sigma(53, 1000, 0.1) && within_five_sigma(147, 1000, 0.1));
    assert!(!within_five_sigma(52, 1000, 0.1) && !within_five_sigma(148, 1000, 0.1));
    // What the old bound let through (2.7 % and 20 % for 10 %).
    assert!(!within_five_sigma(27, 1000, 0.1) && !within_five_sigma(200, 1000, 0.1));
}

#[test]
#[should_panic(expected = "cannot list containers with `wasmhost-no-such-runtime`")]
fn a_container_listing_that_fails_is_an_error_not_an_empty_list() {
    common::runtime::containers("wasmhost-no-such-runtime");
}

#[tokio::test]
async fn a_test_registry_is_reached_at_the_address_it_bound_itself() {
    // Not a port probed free beforehand and taken later (by then anything
    // may listen there), and not "something accepts connections there":
    // the registry itself answers at the address it logged.
    let registry = TestRegistry::start();
    let response = reqwest::get(format!("{}/v2/", registry.base()))
        .await
        .expect("the registry answers");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["docker-distribution-api-version"],
        "registry/2.0"
    );
}

#[test]
fn every_tool_the_tests_run_is_installed_by_the_test_scripts() {
    // `need TOOL PACKAGE` lines: a tool missing on a fresh machine would
    // otherwise make its tests fail there (or, worse, skip).
    let script = read("scripts/install-test-deps.sh");
    for tool in [
        "docker-registry",
        "skopeo",
        "umoci",
        "htpasswd",
        "openssl",
        "runc",
        "busybox",
        "zstd",
        "ab",
    ] {
        assert!(
            script
                .lines()
                .any(|line| line.trim_start().starts_with(&format!("need {tool} "))),
            "scripts/install-test-deps.sh does not install `{tool}`"
        );
    }
}

#[test]
fn the_test_script_runs_the_suite_with_nextest_and_never_falls_back_to_cargo_test() {
    // Only nextest reads .config/nextest.toml (the measuring test alone).
    let script = read("scripts/test.sh");
    let commands: Vec<&str> = script
        .lines()
        .map(str::trim_start)
        .filter(|line| !line.starts_with('#'))
        .collect();
    assert!(
        commands.iter().any(|l| l.contains("cargo nextest run")),
        "{script}"
    );
    assert!(
        !commands.iter().any(|l| l.contains("cargo test")),
        "{script}"
    );
    assert!(
        commands
            .iter()
            .any(|l| l.contains("cargo install --locked cargo-nextest")),
        "nextest is installed when missing: {script}"
    );
}

#[test]
fn every_test_the_nextest_config_singles_out_exists() {
    let config = read(".config/nextest.toml");
    let mut sources = String::new();
    for dir in ["host/tests", "host/src"] {
        for entry in walk(&repo_root().join(dir)) {
            sources.push_str(&std::fs::read_to_string(entry).expect("read a source"));
        }
    }
    let filters: Vec<&str> = config
        .lines()
        .filter_map(|line| line.trim().strip_prefix("filter = "))
        .collect();
    assert!(!filters.is_empty(), "{config}");
    for filter in filters {
        for name in filter.split("test(").skip(1) {
            let name = name.split(')').next().unwrap_or_default();
            assert!(
                sources.contains(&format!("fn {name}")),
                "`{filter}` matches no test"
            );
        }
    }
}

/// Every `.rs` file below `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)
        .expect("read a source directory")
        .flatten()
    {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            files.push(path);
        }
    }
    files
}
