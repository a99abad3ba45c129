//! examples/migration end to end, as root: the todo service built twice
//! from one source (a static binary packaged by `wasmhost image build`, and
//! a component), moved from the container to Wasm through the example's
//! own four manifests with reloads under traffic; and `wasmhost compare`
//! of the two forms. (How its request rate agrees with an independent load
//! generator is a measurement: `bench/compare-vs-ab.sh`.)

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use common::{
    get_text, guest, http1, metric, repo_root, run, wait_until, within_five_sigma, Server,
};

/// The native binary, built static by the example's script (once).
fn native_binary() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let out = Command::new("bash")
                .arg(repo_root().join("examples/migration/build-native.sh"))
                .output()
                .expect("run build-native.sh");
            assert!(
                out.status.success(),
                "build-native.sh failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let stdout = String::from_utf8_lossy(&out.stdout);
            PathBuf::from(stdout.lines().last().expect("the script prints the binary"))
        })
        .clone()
}

/// `wasmhost image build --json` of the native binary into `layout`.
fn image_build(layout: &Path) -> serde_json::Value {
    let out = run(
        &[
            "image",
            "build",
            native_binary().to_str().unwrap(),
            "--output",
            layout.to_str().unwrap(),
            "--port",
            "8080",
            "--json",
        ],
        &[],
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    serde_json::from_str(out.stdout.trim()).unwrap()
}

/// The image built into `layout`; returns the `oci:` reference.
fn build_image(layout: &Path) -> String {
    let built = image_build(layout);
    assert!(built["digest"].as_str().unwrap().starts_with("sha256:"));
    // Reproducible: the same binary gives the same digest.
    let again = image_build(layout);
    assert_eq!(built["digest"], again["digest"]);
    built["reference"].as_str().unwrap().to_owned()
}

/// A copy of examples/migration's manifests in `root/examples/migration`,
/// with `root/target` pointing at the real one, so that the manifests'
/// relative paths (`build/todo-image`, `../../target/guest/…`) hold as
/// written while their `data/` stays out of the source tree.
fn example_copy(root: &Path) -> PathBuf {
    let dir = root.join("examples/migration");
    std::fs::create_dir_all(&dir).unwrap();
    for step in ["1-container", "2-mirror", "3-split", "4-wasm", "5-rollout"] {
        let name = format!("{step}.toml");
        std::fs::copy(
            repo_root().join("examples/migration").join(&name),
            dir.join(&name),
        )
        .unwrap();
    }
    std::os::unix::fs::symlink(repo_root().join("target"), root.join("target")).unwrap();
    build_image(&dir.join("build/todo-image"));
    guest("todo-wasm");
    dir
}

/// Waits until the log says `spin.toml` was reloaded `n` times.
fn wait_for_reloads(server: &Server, n: usize) {
    server.wait_for_log_count("reloaded `", n, Duration::from_secs(30));
}

async fn post(client: &reqwest::Client, server: &Server, title: &str) -> serde_json::Value {
    let response = client
        .post(server.url("/todos"))
        .body(format!(r#"{{"title":"{title}"}}"#))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    response.json().await.unwrap()
}

async fn served_by(client: &reqwest::Client, server: &Server, path: &str) -> String {
    let response = client.get(server.url(path)).send().await.unwrap();
    assert_eq!(response.status(), 200, "{path}");
    response.headers()["x-served-by"]
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_moves_its_route_from_the_container_to_wasm_without_a_failed_request() {
    let work = tempfile::tempdir().unwrap();
    let dir = example_copy(work.path());
    let manifest = dir.join("spin.toml");
    let step = |name: &str| std::fs::copy(dir.join(format!("{name}.toml")), &manifest).unwrap();
    step("1-container");
    let cache = tempfile::tempdir().unwrap();
    let server = Server::start(&[
        "serve",
        manifest.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--watch",
        "--admin-listen",
        "127.0.0.1:0",
        "--cache-dir",
        cache.path().to_str().unwrap(),
        // A replaced version drains for this long before it stops.
        "--timeout",
        "3s",
    ]);
    let client = http1();

    // Traffic all along: not one request may fail across the reloads. (On
    // a path that reads no todos: a mirrored copy runs after the served
    // request, so a read racing the test's writes could differ honestly.)
    // Paused, it says so once its last request is answered.
    let stop = Arc::new(AtomicBool::new(false));
    let paused = Arc::new(AtomicBool::new(false));
    let idle = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let background = {
        let (stop, paused, idle) = (stop.clone(), paused.clone(), idle.clone());
        let (ok, failed) = (ok.clone(), failed.clone());
        let (client, url) = (client.clone(), server.url("/healthz"));
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                if paused.load(Ordering::SeqCst) {
                    idle.store(true, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                }
                idle.store(false, Ordering::SeqCst);
                match client.get(&url).send().await {
                    Ok(r) if r.status() == 200 => ok.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        })
    };
    let pause = |on: bool| {
        paused.store(on, Ordering::SeqCst);
        if on {
            wait_until("the traffic to pause", Duration::from_secs(10), || {
                idle.load(Ordering::SeqCst)
            });
        }
    };

    // Step 1: the container serves, its data in ./data.
    assert_eq!(post(&client, &server, "from the container").await["id"], 1);
    assert_eq!(served_by(&client, &server, "/todos/1").await, "container");
    assert!(dir.join("data/todo:1").exists());

    // Step 2: reads mirrored to the component, which reads the same data:
    // no mismatches; writes are not mirrored (they would apply twice).
    // (The reloaded app starts its own `legacy` container beside the
    // running one: container ids must be unique per process, not per
    // backend, or the new start takes over and kills the old container.)
    // Counted exactly: the traffic pauses for this step (steps 3 and 4
    // reload under it), so the only mirrored requests are the test's.
    pause(true);
    step("2-mirror");
    wait_for_reloads(&server, 1);
    let mirrored = "wasmhost_mirror_requests_total";
    assert_eq!(
        metric(&server.metrics(), mirrored, "/...", "todo"),
        None,
        "nothing mirrored yet"
    );
    assert_eq!(post(&client, &server, "second").await["id"], 2);
    for id in [1, 2, 1, 2] {
        assert_eq!(
            served_by(&client, &server, &format!("/todos/{id}")).await,
            "container"
        );
    }
    // The four GETs above, not the POST (which would also have made a
    // second todo 2 in the shared data: see the id sequence below).
    let metrics = server.wait_for_metric(mirrored, "/...", "todo", 4, Duration::from_secs(10));
    assert_eq!(
        metric(&metrics, "wasmhost_mirror_mismatches_total", "/...", "todo"),
        Some(0),
        "{}",
        server.log()
    );
    pause(false);

    // Step 3: one in ten to Wasm, writes included, on the same data.
    step("3-split");
    wait_for_reloads(&server, 2);
    let total = 1000;
    let mut wasm = 0;
    for _ in 0..total {
        if served_by(&client, &server, "/todos").await == "wasm" {
            wasm += 1;
        }
    }
    // 10 % of 1000 = 100, binomial standard deviation ~9.5.
    assert!(
        within_five_sigma(wasm, total, 0.1),
        "{wasm} of {total} served by Wasm"
    );
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(
            post(&client, &server, &format!("canary {i}")).await["id"]
                .as_u64()
                .unwrap(),
        );
    }
    assert_eq!(
        ids,
        (3..23).collect::<Vec<u64>>(),
        "one id sequence across both forms"
    );

    // Step 4: all Wasm, serving everything the container wrote.
    step("4-wasm");
    wait_for_reloads(&server, 3);
    assert_eq!(served_by(&client, &server, "/todos/1").await, "wasm");
    let todos: Vec<serde_json::Value> = client
        .get(server.url("/todos"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(todos.len(), 22);
    assert_eq!(todos[0]["title"], "from the container");

    stop.store(true, Ordering::Relaxed);
    background.await.unwrap();
    assert_eq!(failed.load(Ordering::Relaxed), 0, "{}", server.log());
    assert!(ok.load(Ordering::Relaxed) > 50);
    // The container of steps 1-3 was stopped when step 4 replaced them.
    server.wait_for_log("stopped", Duration::from_secs(20));
    let mut server = server;
    server.signal("TERM");
    assert_eq!(
        server.wait_exit(Duration::from_secs(20)),
        Some(0),
        "{}",
        server.log()
    );
}

/// The rollout's status through the admin API.
async fn rollout_status(client: &reqwest::Client, server: &Server) -> serde_json::Value {
    let all: serde_json::Value = client
        .get(format!("http://{}/rollouts", server.admin_address()))
        .bearer_auth("walkthrough")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    all[0].clone()
}

/// Waits for the rollout to reach `phase` (reads keep flowing meanwhile).
async fn wait_for_phase(
    client: &reqwest::Client,
    server: &Server,
    phase: &str,
) -> serde_json::Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        let status = rollout_status(client, server).await;
        if status["phase"] == phase {
            return status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no `{phase}` within 90 s: {status:#}\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rollout_walkthrough_stops_the_buggy_port_at_its_first_step_and_promotes_the_fixed_one()
{
    let work = tempfile::tempdir().unwrap();
    let dir = example_copy(work.path());
    let manifest = dir.join("spin.toml");
    // The example's windows, shortened; its p99 bound out of reach: on a
    // loaded machine the component's p99 (its optimised code compiling in
    // the background meanwhile) was 11× the container's once, and what this
    // test shows is the mismatch rule (rollout.rs tests the latency one).
    let example = std::fs::read_to_string(dir.join("5-rollout.toml"))
        .unwrap()
        .replace(
            "step_time = \"30s\"",
            "step_time = \"1s\", min_requests = 5",
        )
        .replace("max_p99_ratio = 1.5", "max_p99_ratio = 1000.0");
    assert!(example.contains("TODO_DELIBERATE_BUG"));
    std::fs::write(&manifest, &example).unwrap();
    let token = work.path().join("admin-token");
    std::fs::write(&token, "walkthrough\n").unwrap();
    let cache = tempfile::tempdir().unwrap();
    let server = Server::start(&[
        "serve",
        manifest.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--watch",
        "--admin-listen",
        "127.0.0.1:0",
        "--admin-token-file",
        token.to_str().unwrap(),
        "--cache-dir",
        cache.path().to_str().unwrap(),
        "--timeout",
        "3s",
    ]);
    let client = http1();
    post(&client, &server, "watched").await;

    // Reads, bounded in count and time, on the todo the bug shows in.
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (stop, client, url) = (stop.clone(), client.clone(), server.url("/todos/1"));
        tokio::spawn(async move {
            let until = std::time::Instant::now() + Duration::from_secs(180);
            for _ in 0..100_000 {
                if stop.load(Ordering::Relaxed) || std::time::Instant::now() > until {
                    break;
                }
                let _ = client.get(&url).send().await;
            }
        })
    };

    // The bug: stopped at the first step, by mismatch, everything back on
    // the container.
    let held = wait_for_phase(&client, &server, "rolled_back").await;
    assert_eq!(held["step"], 0, "{held:#}");
    assert_eq!(held["weight_percent"], 0.0);
    assert!(
        held["reason"].as_str().unwrap().contains("mismatch rate"),
        "{held:#}"
    );
    assert!(
        server.log().contains("mirror mismatch: body"),
        "{}",
        server.log()
    );

    // Fixed (the bug's switch removed), reloaded, resumed: to 100 % alone.
    let fixed: String = example
        .lines()
        .filter(|l| !l.contains("TODO_DELIBERATE_BUG"))
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&manifest, fixed).unwrap();
    wait_for_reloads(&server, 1);
    let resumed = run(
        &[
            "rollout",
            "resume",
            "--admin",
            &server.admin_address(),
            "--token-file",
            token.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(resumed.code, Some(0), "{}", resumed.stderr);
    let done = wait_for_phase(&client, &server, "complete").await;
    stop.store(true, Ordering::Relaxed);
    reader.await.unwrap();
    let actions: Vec<&str> = done["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["rollback", "resume", "advance", "advance", "advance", "advance", "complete"],
        "{done:#}"
    );
    assert_eq!(done["weight_percent"], 100.0);
    assert_eq!(served_by(&client, &server, "/todos/1").await, "wasm");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_reports_every_figure_of_both_forms() {
    let work = tempfile::tempdir().unwrap();
    let image = build_image(&work.path().join("todo-image"));
    let wasm = guest("todo-wasm");
    let cache = tempfile::tempdir().unwrap();
    let (json, html) = (
        work.path().join("compare.json"),
        work.path().join("compare.html"),
    );
    let out = run(
        &[
            "compare",
            "--container",
            &image,
            "--container-state",
            "/data",
            "--wasm",
            wasm.to_str().unwrap(),
            "--wasm-state",
            "/data",
            "--request",
            r#"POST /todos {"title":"compare"}"#,
            "--request",
            "GET /todos/1",
            "--request",
            "GET /todos/999",
            "--concurrency",
            "4",
            "--duration",
            "3s",
            "--warmup",
            "1s",
            "--cold-starts",
            "2",
            "--mismatch-requests",
            "30",
            // Differs by design (`container` / `wasm`): the injected
            // difference compare must find, alone.
            "--compare-header",
            "x-served-by",
            "--compare-header",
            "content-type",
            "--json",
            json.to_str().unwrap(),
            "--html",
            html.to_str().unwrap(),
            "--cache-dir",
            cache.path().to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.code, Some(0), "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("requests/s"), "{}", out.stdout);
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    for form in ["container", "wasm"] {
        let f = &report[form];
        let cold = &f["cold_start_ms"];
        assert_eq!(cold["samples"].as_array().unwrap().len(), 2, "{f}");
        assert!(cold["median"].as_f64().unwrap() > 0.0, "{f}");
        let load = &f["load"];
        assert!(load["requests"].as_u64().unwrap() > 100, "{f}");
        assert_eq!(load["errors"], 0, "{f}");
        for q in ["p50", "p90", "p99", "max", "mean"] {
            assert!(
                load["latency_ms"][q].as_f64().unwrap() > 0.0,
                "{form} {q}: {f}"
            );
        }
        assert!(load["latency_ms"]["p50"].as_f64() <= load["latency_ms"]["p99"].as_f64());
        let counted: u64 = load["histogram"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["count"].as_u64().unwrap())
            .sum();
        assert_eq!(counted, load["requests"].as_u64().unwrap(), "{f}");
        assert!(
            load["throughput_rps"].as_array().unwrap().len() >= 10,
            "{f}"
        );
        assert!(f["cpu_ms_per_request"].as_f64().unwrap() > 0.0, "{f}");
        assert!(f["memory"]["peak_bytes"].as_u64().unwrap() > 1 << 20, "{f}");
        assert!(
            f["size"]["registry_bytes"].as_u64().unwrap() > 100_000,
            "{f}"
        );
        assert!(f["size"]["disk_bytes"].as_u64().unwrap() > 100_000, "{f}");
    }
    assert!(
        report["container"]["memory"]["container_bytes"]
            .as_u64()
            .unwrap()
            > 0
    );
    // Four live instances at the peak, none before the warm-up.
    assert!(
        report["wasm"]["memory"]["per_instance_bytes"]
            .as_u64()
            .unwrap()
            > 0
    );
    // Same source, same answers: only the header that names the form differs.
    let mismatch = &report["mismatch"];
    assert_eq!(mismatch["requests"], 30);
    assert_eq!(mismatch["mismatches"], 30, "{mismatch}");
    for sample in mismatch["samples"].as_array().unwrap() {
        let differences = sample["differences"].as_array().unwrap();
        assert_eq!(differences.len(), 1, "{sample}");
        assert!(
            differences[0]
                .as_str()
                .unwrap()
                .starts_with("header x-served-by"),
            "{sample}"
        );
    }
    for ratio in [
        "cold_start",
        "rps",
        "p50",
        "p99",
        "cpu_per_request",
        "peak_memory",
        "registry_size",
    ] {
        assert!(report["ratios"][ratio].as_f64().unwrap() > 0.0, "{ratio}");
    }
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.matches("<svg").count() >= 2 && page.contains("polyline"));
    assert!(!page.contains("<script"), "self-contained, no scripts");
}

#[tokio::test]
async fn a_read_only_volume_lets_the_component_read_but_not_write() {
    let data = tempfile::tempdir().unwrap();
    std::fs::write(
        data.path().join("todo:4"),
        br#"{"id":4,"title":"kept","done":true}"#,
    )
    .unwrap();
    let volume = format!("{}:/data:ro", data.path().display());
    let server = Server::serve(&guest("todo-wasm"), &["--volume", &volume]);
    let client = http1();
    let todo = get_text(&client, server.url("/todos/4")).await;
    assert!(todo.contains("kept"), "{todo}");
    let response = client
        .post(server.url("/todos"))
        .body(r#"{"title":"x"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 500);
    assert_eq!(
        std::fs::read_dir(data.path()).unwrap().count(),
        1,
        "nothing written"
    );
}

#[test]
fn a_missing_tag_in_an_image_layout_is_an_error_that_lists_the_tags() {
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("img");
    build_image(&layout);
    let reference = format!("oci:{}:nope", layout.display());
    let out = run(
        &[
            "run",
            &reference,
            "--listen",
            "127.0.0.1:0",
            "--cache-dir",
            work.path().to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr.contains("no image tagged `nope` (tags: latest)"),
        "{}",
        out.stderr
    );
}
