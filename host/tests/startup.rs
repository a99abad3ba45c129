//! Start-up: every bad input is a clear error and a non-zero exit before
//! anything listens; the compile cache makes the second start compile
//! nothing.

mod common;

use std::time::Duration;

use common::{guest, Server};

fn serve_args(component: &str) -> Vec<String> {
    ["serve", component, "--listen", "127.0.0.1:0", "--no-cache"]
        .map(String::from)
        .to_vec()
}

fn start_failing(component: &str) -> common::Failed {
    let args = serve_args(component);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let failed = Server::start_failing(&args);
    assert_ne!(failed.code, Some(0), "exited 0; stderr: {}", failed.stderr);
    assert!(
        !failed.stdout.contains("serving"),
        "it listened: {}",
        failed.stdout
    );
    failed
}

#[test]
fn a_missing_file_is_named_in_the_error() {
    let failed = start_failing("/nonexistent/app.wasm");
    assert!(
        failed
            .stderr
            .contains("error: cannot read `/nonexistent/app.wasm`: No such file or directory"),
        "{}",
        failed.stderr
    );
}

#[test]
fn a_file_that_is_not_wasm_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.wasm");
    std::fs::write(&path, "just text").unwrap();
    let failed = start_failing(path.to_str().unwrap());
    assert!(
        failed.stderr.contains("is not a WebAssembly file"),
        "{}",
        failed.stderr
    );
}

#[test]
fn a_component_without_an_http_handler_lists_what_it_exports() {
    let failed = start_failing(guest("command").to_str().unwrap());
    assert!(
        failed.stderr.contains("exports no HTTP handler"),
        "{}",
        failed.stderr
    );
    assert!(
        failed.stderr.contains("`wasi:cli/run@0.2"),
        "{}",
        failed.stderr
    );
}

#[test]
fn an_import_the_host_does_not_provide_is_named() {
    let failed = start_failing(guest("missing-import").to_str().unwrap());
    assert!(
        failed
            .stderr
            .contains("needs an import wasmhost does not provide"),
        "{}",
        failed.stderr
    );
    assert!(
        failed.stderr.contains("acme:missing/greeter"),
        "{}",
        failed.stderr
    );
}

#[test]
fn an_address_in_use_is_reported_before_serving() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let hello = guest("hello");
    let failed = Server::start_failing(&[
        "serve",
        hello.to_str().unwrap(),
        "--listen",
        &addr,
        "--no-cache",
    ]);
    assert_ne!(failed.code, Some(0));
    assert!(
        failed
            .stderr
            .contains(&format!("cannot listen on `{addr}`"))
            && failed.stderr.contains("in use"),
        "{}",
        failed.stderr
    );
}

/// How long a background Cranelift compile of a Rust guest may take in a
/// debug build on a loaded 2-core machine; a bound for waiting, not a
/// figure (those are in bench/RESULTS.md).
const OPTIMISED_WITHIN: Duration = Duration::from_secs(120);

fn cache_entries(cache: &std::path::Path) -> Vec<String> {
    match std::fs::read_dir(cache.join("compiled")) {
        Ok(entries) => entries
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[test]
fn an_uncached_component_answers_from_baseline_code_and_then_from_cached_optimised_code() {
    let cache = tempfile::tempdir().unwrap();
    let dir = cache.path().to_str().unwrap();
    let hello = guest("hello");
    let first = Server::serve(&hello, &["--cache-dir", dir]);
    let line = first.wait_for_log("loaded `", Duration::from_secs(5));
    assert!(line.contains("serving baseline (Winch) code"), "{line}");
    let (status, body) = common::get_blocking(&first.url("/"));
    assert_eq!((status, body.as_str()), (200, "Hello, world!\n"));
    first.wait_for_log("optimised code ready", OPTIMISED_WITHIN);
    // Only the optimised code is cached, and requests still answer.
    let entries = cache_entries(cache.path());
    assert_eq!(entries.len(), 1, "one compiled entry expected: {entries:?}");
    for _ in 0..3 {
        let (status, body) = common::get_blocking(&first.url("/"));
        assert_eq!((status, body.as_str()), (200, "Hello, world!\n"));
    }
    drop(first);
    // The entry is Cranelift code for the serving engine: the next start
    // loads it (baseline code would be refused: other engine settings).
    let second = Server::serve(&hello, &["--cache-dir", dir]);
    let line = second.wait_for_log("loaded `", Duration::from_secs(5));
    assert!(line.contains("compiled code loaded from cache"), "{line}");
    assert_eq!(cache_entries(cache.path()), entries);
    let (status, _) = common::get_blocking(&second.url("/"));
    assert_eq!(status, 200);
}

#[test]
fn no_baseline_compiles_with_cranelift_before_serving() {
    let cache = tempfile::tempdir().unwrap();
    let dir = cache.path().to_str().unwrap();
    let server = Server::serve(&guest("hello"), &["--cache-dir", dir, "--no-baseline"]);
    let line = server.wait_for_log("loaded `", Duration::from_secs(5));
    assert!(
        line.contains(", compiled") && !line.contains("baseline"),
        "{line}"
    );
    // Stored before the first request, not in the background.
    assert_eq!(cache_entries(cache.path()).len(), 1);
    let (status, body) = common::get_blocking(&server.url("/"));
    assert_eq!((status, body.as_str()), (200, "Hello, world!\n"));
}

#[test]
fn no_cache_compiles_and_writes_nothing_to_the_default_cache() {
    let xdg = tempfile::tempdir().unwrap();
    let hello = guest("hello");
    let args = [
        "serve",
        hello.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--no-cache",
    ];
    let server = Server::start_env(&args, &[("XDG_CACHE_HOME", xdg.path().to_str().unwrap())]);
    let line = server.wait_for_log("loaded `", Duration::from_secs(5));
    assert!(line.contains("serving baseline (Winch) code"), "{line}");
    // Not even the background compile writes anything.
    server.wait_for_log("optimised code ready", OPTIMISED_WITHIN);
    assert_eq!(std::fs::read_dir(xdg.path()).unwrap().count(), 0);
    // Without --no-cache the same start fills the default location.
    drop(server);
    let args = ["serve", hello.to_str().unwrap(), "--listen", "127.0.0.1:0"];
    let server = Server::start_env(&args, &[("XDG_CACHE_HOME", xdg.path().to_str().unwrap())]);
    server.wait_for_log("optimised code ready", OPTIMISED_WITHIN);
    assert_eq!(cache_entries(&xdg.path().join("wasmhost")).len(), 1);
}
