//! Start-up: every bad input is a clear error and a non-zero exit before
//! anything listens; the compile cache makes the second start compile
//! nothing, and processes sharing it compile a missing component once.

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

/// How many times `server` (all its workers) ran the optimising compile
/// in the background, as against switching to code another process
/// compiled.
fn optimised_here(server: &Server) -> usize {
    server.log_count("optimised code ready in")
        - server.log_count("compiled by another process")
}

#[tokio::test]
async fn workers_starting_on_an_empty_cache_compile_a_component_once_and_each_switches_to_its_code()
{
    let cache = tempfile::tempdir().unwrap();
    let dir = cache.path().to_str().unwrap();
    let server = Server::serve(&guest("hello"), &["--cache-dir", dir, "--workers", "2"]);
    // A worker is done once it runs optimised code: switched to it, or
    // (started after the compile ended) found it in the cache at load.
    common::wait_for(
        "both workers on optimised code",
        OPTIMISED_WITHIN,
        || {
            let done = server.log_count("optimised code ready in")
                + server.log_count("compiled code loaded from cache");
            (done >= 2).then_some(())
        },
        || format!("log:\n{}", server.log()),
    );
    assert_eq!(optimised_here(&server), 1, "log:\n{}", server.log());
    // One entry, and no lock file left beside it.
    let entries = cache_entries(cache.path());
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert!(entries[0].ends_with(".cwasm"), "{entries:?}");
    // New connections spread over both workers: every one answers.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    for _ in 0..10 {
        let answer = client.get(server.url("/")).send().await.unwrap();
        assert_eq!(answer.status(), 200);
        assert_eq!(answer.text().await.unwrap(), "Hello, world!\n");
    }
}

#[test]
fn two_servers_started_together_on_an_empty_cache_compile_a_component_once() {
    let cache = tempfile::tempdir().unwrap();
    let dir = cache.path().to_str().unwrap();
    let hello = guest("hello");
    // Compiled before serving (no baseline), so each `loaded` line says
    // whether that process compiled; started on threads, as each start
    // returns only once it serves.
    let servers: Vec<Server> = std::thread::scope(|scope| {
        let starts: Vec<_> = (0..2)
            .map(|_| scope.spawn(|| Server::serve(&hello, &["--cache-dir", dir, "--no-baseline"])))
            .collect();
        starts.into_iter().map(|s| s.join().unwrap()).collect()
    });
    let lines: Vec<String> = servers
        .iter()
        .map(|s| s.wait_for_log("loaded `", Duration::from_secs(5)))
        .collect();
    let compiled = lines
        .iter()
        .filter(|l| !l.contains("loaded from cache"))
        .count();
    assert_eq!(compiled, 1, "{lines:#?}");
    for server in &servers {
        let (status, body) = common::get_blocking(&server.url("/"));
        assert_eq!((status, body.as_str()), (200, "Hello, world!\n"));
    }
    assert_eq!(cache_entries(cache.path()).len(), 1);
}

#[test]
fn a_server_whose_compiling_peer_dies_compiles_the_component_itself() {
    use std::io::BufRead as _;
    let hello = guest("hello");
    // The entry's name (content hash and engine key), from a compile in a
    // scratch cache.
    let scratch = tempfile::tempdir().unwrap();
    let scratch_dir = scratch.path().to_str().unwrap();
    drop(Server::serve(&hello, &["--cache-dir", scratch_dir, "--no-baseline"]));
    let entry = cache_entries(scratch.path()).pop().expect("a compiled entry");

    // A peer holding the entry's compile lock (as a compiling wasmhost
    // does), which will die without storing anything.
    let cache = tempfile::tempdir().unwrap();
    let compiled = cache.path().join("compiled");
    std::fs::create_dir(&compiled).unwrap();
    let lock = compiled.join(format!("{entry}.lock"));
    let mut peer = std::process::Command::new("sh")
        .args(["-c", r#"exec 9>"$0" && flock 9 && echo locked && exec sleep 120"#])
        .arg(&lock)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut said = String::new();
    std::io::BufReader::new(peer.stdout.take().unwrap())
        .read_line(&mut said)
        .unwrap();
    assert_eq!(said, "locked\n");

    let server = Server::serve(&hello, &["--cache-dir", cache.path().to_str().unwrap()]);
    let line = server.wait_for_log("loaded `", Duration::from_secs(5));
    assert!(line.contains("serving baseline (Winch) code"), "{line}");
    server.wait_for_log("another process is compiling", Duration::from_secs(30));
    // Waiting for the peer does not hold up answers, and stores nothing.
    let (status, body) = common::get_blocking(&server.url("/"));
    assert_eq!((status, body.as_str()), (200, "Hello, world!\n"));
    assert_eq!(cache_entries(cache.path()), vec![format!("{entry}.lock")]);

    // Its lock dies with it: the server compiles and stores the code.
    peer.kill().unwrap();
    peer.wait().unwrap();
    let ready = server.wait_for_log("optimised code ready in", OPTIMISED_WITHIN);
    assert!(!ready.contains("another process"), "{ready}");
    assert_eq!(optimised_here(&server), 1);
    assert_eq!(cache_entries(cache.path()), vec![entry]);
    let (status, _) = common::get_blocking(&server.url("/"));
    assert_eq!(status, 200);
}
