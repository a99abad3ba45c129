//! Rollouts end to end: a real `wasmhost serve` whose route moves from one
//! upstream component to another, both real HTTP services on loopback run
//! by the test (`common::upstream`), under bounded load; the controller's
//! decisions read through the admin listener's rollout API and the
//! `wasmhost rollout` CLI. No timing is asserted: the tests wait for
//! decisions, with deadlines.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::upstream::Service;
use common::{http1, run, wait_for_async, Server};

/// Requests the load sends at most, and how long it runs at most: bounded,
/// whatever the rollout does.
const LOAD_REQUESTS: u64 = 20_000;
const LOAD_TIME: Duration = Duration::from_secs(60);

/// An app in `dir` whose route `/...` rolls out from `old` to `new`, with
/// `keys` added to the rollout table. Tests about another bound than
/// latency set `max_p99_ratio = 1000.0`: two loopback services' p99s
/// differ by several times on a loaded machine, which would roll back for
/// the wrong reason.
fn manifest(dir: &Path, old: &Service, new: &Service, keys: &str) -> PathBuf {
    let path = dir.join("spin.toml");
    std::fs::write(
        &path,
        format!(
            r#"spin_manifest_version = 2

[application]
name = "rollout"

[[trigger.http]]
route = "/..."
component = "old"
rollout = {{ to = "new", step_time = "1s", min_requests = 5, {keys} }}

[component.old]
upstream = "{}"

[component.new]
upstream = "{}"
"#,
            old.url(),
            new.url()
        ),
    )
    .unwrap();
    path
}

/// The token file for `dir`.
fn token_file(dir: &Path, token: &str) -> PathBuf {
    let path = dir.join("admin-token");
    std::fs::write(&path, format!("{token}\n")).unwrap();
    path
}

fn serve(manifest: &Path, token: &Path) -> Server {
    Server::start(&[
        "serve",
        manifest.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
        "--admin-token-file",
        token.to_str().unwrap(),
    ])
}

/// Every rollout's status, through the admin API.
async fn status(server: &Server, token: &str) -> serde_json::Value {
    let response = http1()
        .get(format!("http://{}/rollouts", server.admin_address()))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let all: serde_json::Value = response.json().await.unwrap();
    all[0].clone()
}

/// Waits until the rollout's phase is `phase`, and returns its status.
async fn wait_for_phase(server: &Server, token: &str, phase: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = status(server, token).await;
        if s["phase"] == phase {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "no `{phase}` within 60 s: {s:#}\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Traffic to the route until stopped, bounded by [`LOAD_REQUESTS`] and
/// [`LOAD_TIME`]: two workers, each on its keep-alive connection.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(server: &Server) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let sent = Arc::new(AtomicU64::new(0));
        let until = Instant::now() + LOAD_TIME;
        let workers = (0..2)
            .map(|_| {
                let (stop, ok, failed, sent) =
                    (stop.clone(), ok.clone(), failed.clone(), sent.clone());
                let (client, url) = (http1(), server.url("/items"));
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed)
                        && Instant::now() < until
                        && sent.fetch_add(1, Ordering::Relaxed) < LOAD_REQUESTS
                    {
                        match client.get(&url).send().await {
                            Ok(r) if r.status().is_success() => ok.fetch_add(1, Ordering::Relaxed),
                            _ => failed.fetch_add(1, Ordering::Relaxed),
                        };
                    }
                })
            })
            .collect();
        Load {
            stop,
            ok,
            failed,
            workers,
        }
    }

    /// Stops it; (answered 2xx, not).
    async fn stop(self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        for worker in self.workers {
            worker.await.unwrap();
        }
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }
}

/// Who serves the next `n` requests: (by `old`, by `new`).
async fn served_by(server: &Server, n: usize) -> (usize, usize) {
    let client = http1();
    let (mut old, mut new) = (0, 0);
    for _ in 0..n {
        let r = client.get(server.url("/items")).send().await.unwrap();
        match r.headers()["x-served-by"].to_str().unwrap() {
            "old" => old += 1,
            _ => new += 1,
        }
    }
    (old, new)
}

fn actions(status: &serde_json::Value) -> Vec<String> {
    status["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["action"].as_str().unwrap().to_owned())
        .collect()
}

/// What the rollout tests start from: the old and new services (the old
/// answering `same`, the new `new_says`), a directory with the app (rollout
/// `keys`) and its admin token file (holding `token`). Kept whole by the
/// test: dropping a service stops it.
struct Setup {
    old: Service,
    new: Service,
    dir: tempfile::TempDir,
    app: PathBuf,
    token: PathBuf,
}

async fn setup(new_says: &str, keys: &str, token: &str) -> Setup {
    let (old, new) = (
        Service::start("old", "same").await,
        Service::start("new", new_says).await,
    );
    let dir = tempfile::tempdir().unwrap();
    let app = manifest(dir.path(), &old, &new, keys);
    let token = token_file(dir.path(), token);
    Setup {
        old,
        new,
        dir,
        app,
        token,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_advances_step_by_step_under_load_and_completes() {
    let Setup {
        old: _old,
        new,
        dir: _dir,
        app,
        token,
    } = setup(
        "same",
        "steps = [10, 50, 100], max_error_rate = 0.01, max_p99_ratio = 1000.0",
        "t0ken",
    )
    .await;
    let server = serve(&app, &token);
    let first = status(&server, "t0ken").await;
    assert_eq!(first["phase"], "progressing");
    assert_eq!(first["weight_percent"], 10.0);

    let load = Load::start(&server);
    let done = wait_for_phase(&server, "t0ken", "complete").await;
    let (ok, failed) = load.stop().await;

    assert_eq!(
        actions(&done),
        ["advance", "advance", "complete"],
        "{done:#}"
    );
    assert_eq!(done["weight_percent"], 100.0);
    assert_eq!(failed, 0, "{}", server.log());
    assert!(ok > 0);
    // Each advance rests on the figures of a window: enough requests to
    // `new`, none failed, mirrored reads that matched.
    for decision in done["decisions"].as_array().unwrap() {
        let f = &decision["figures"];
        assert!(f["to_requests"].as_u64().unwrap() >= 5, "{decision}");
        assert_eq!(f["to_errors"], 0, "{decision}");
        assert_eq!(f["mismatches"], 0, "{decision}");
    }
    assert!(new.behaviour.requests.load(Ordering::SeqCst) > 0);
    // All traffic on `new` now (reads still copied to `old`).
    assert_eq!(served_by(&server, 20).await, (0, 20));
    let metrics = server.metrics();
    assert_eq!(
        common::metric(&metrics, "wasmhost_rollout_step", "/...", "new"),
        Some(3),
        "{metrics}"
    );
    assert!(server
        .log()
        .contains("rollout of `new` advanced to 50 % (step 2 of 3)"));
}

/// A breach of `bound` rolls the rollout back to 0 % and holds it there:
/// the reason logged, counted and kept in the status.
async fn breach_rolls_back(new_behaves: impl FnOnce(&Service), keys: &str, bound: &str, why: &str) {
    let Setup {
        old: _old,
        new,
        dir: _dir,
        app,
        token,
    } = setup("same", keys, "t0ken").await;
    new_behaves(&new);
    let server = serve(&app, &token);
    let load = Load::start(&server);
    let held = wait_for_phase(&server, "t0ken", "rolled_back").await;
    load.stop().await;
    assert_eq!(held["weight_percent"], 0.0, "{held:#}");
    assert_eq!(actions(&held), ["rollback"], "{held:#}");
    let reason = held["reason"].as_str().unwrap();
    assert!(reason.contains(why), "{reason}");
    assert_eq!(held["rollbacks"][bound], 1, "{held:#}");
    server.wait_for_log("rolled back to 0 % and held", Duration::from_secs(5));
    // Held: every request now goes to `old`.
    assert_eq!(served_by(&server, 50).await, (50, 0));
    let metrics = server.metrics();
    assert!(
        metrics.contains(&format!(
            "wasmhost_rollout_rollbacks_total{{route=\"/...\",component=\"new\",bound=\"{bound}\"}} 1"
        )),
        "{metrics}"
    );
    assert!(metrics.contains("phase=\"rolled_back\"} 1"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_form_answering_5xx_is_rolled_back_by_its_error_rate() {
    breach_rolls_back(
        |new| new.behaviour.status.store(500, Ordering::SeqCst),
        // Reads not copied: the mismatch would be found first.
        "steps = [50, 100], max_error_rate = 0.05, max_p99_ratio = 1000.0, mirror_methods = []",
        "error_rate",
        "error rate",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_form_much_slower_than_the_old_is_rolled_back_by_its_p99_ratio() {
    breach_rolls_back(
        |new| new.behaviour.delay_ms.store(40, Ordering::SeqCst),
        "steps = [50, 100], max_error_rate = 1.0, max_p99_ratio = 1.5, mirror_methods = []",
        "p99_ratio",
        "p99 ratio",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_form_answering_differently_is_rolled_back_by_its_mismatch_rate() {
    breach_rolls_back(
        |new| *new.behaviour.body.lock().unwrap() = "different".to_owned(),
        "steps = [1, 100], max_mismatch_rate = 0.0, max_p99_ratio = 1000.0",
        "mismatch_rate",
        "mismatch rate",
    )
    .await;
}

/// `wasmhost rollout <args> --admin ADDR --token-file FILE`.
fn cli(server: &Server, token: &Path, args: &[&str]) -> common::Failed {
    let admin = server.admin_address();
    let mut all = vec!["rollout"];
    all.extend_from_slice(args);
    all.extend(["--admin", &admin, "--token-file", token.to_str().unwrap()]);
    run(&all, &[])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_steers_a_rollout_and_a_wrong_token_is_refused() {
    // Windows of an hour: only commands change anything here.
    let Setup {
        old: _old,
        new: _new,
        dir,
        app,
        token,
    } = setup("same", "steps = [10, 100], step_time = \"60m\"", "right").await;
    let text = std::fs::read_to_string(&app)
        .unwrap()
        .replace("step_time = \"1s\", ", "");
    std::fs::write(&app, text).unwrap();
    let wrong = dir.path().join("wrong-token");
    std::fs::write(&wrong, "wrong").unwrap();
    let server = serve(&app, &token);

    let refused = cli(&server, &wrong, &["abort"]);
    assert_eq!(refused.code, Some(1), "{}", refused.stdout);
    assert!(refused.stderr.contains("401"), "{}", refused.stderr);
    assert_eq!(status(&server, "right").await["phase"], "progressing");

    let shown = cli(&server, &token, &["status"]);
    assert_eq!(shown.code, Some(0), "{}", shown.stderr);
    assert!(
        shown
            .stdout
            .contains("/...: old → new: progressing at 10.0 % (step 1 of 2)"),
        "{}",
        shown.stdout
    );

    let promoted = cli(&server, &token, &["promote", "--route", "/..."]);
    assert_eq!(promoted.code, Some(0), "{}", promoted.stderr);
    assert!(
        promoted.stdout.contains("promoted at 100.0 %"),
        "{}",
        promoted.stdout
    );
    assert_eq!(served_by(&server, 20).await, (0, 20));

    let aborted = cli(&server, &token, &["abort"]);
    assert_eq!(aborted.code, Some(0), "{}", aborted.stderr);
    assert_eq!(served_by(&server, 20).await, (20, 0));

    // A command that means nothing now is refused, saying why.
    let again = cli(&server, &token, &["pause"]);
    assert_eq!(again.code, Some(1));
    assert!(
        again
            .stderr
            .contains("cannot pause a rollout that is aborted"),
        "{}",
        again.stderr
    );
    let unknown = cli(&server, &token, &["resume", "--route", "/nope"]);
    assert!(
        unknown.stderr.contains("no rollout on route `/nope`"),
        "{}",
        unknown.stderr
    );

    let resumed = cli(&server, &token, &["resume", "--json"]);
    assert_eq!(resumed.code, Some(0), "{}", resumed.stderr);
    let json: serde_json::Value = serde_json::from_str(&resumed.stdout).unwrap();
    assert_eq!(
        (json["phase"].as_str(), json["weight_percent"].as_f64()),
        (Some("progressing"), Some(10.0))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_is_taken_up_where_it_was_after_a_reload_and_a_restart() {
    let Setup {
        old: _old,
        new: _new,
        dir,
        app,
        token,
    } = setup(
        "same",
        "steps = [10, 50, 100], max_p99_ratio = 1000.0",
        "t0ken",
    )
    .await;
    let mut server = serve(&app, &token);

    // One step under load, then paused there.
    let load = Load::start(&server);
    wait_for_async("the first advance", Duration::from_secs(60), || async {
        (status(&server, "t0ken").await["step"] == 1).then_some(())
    })
    .await;
    let paused = cli(&server, &token, &["pause"]);
    load.stop().await;
    assert_eq!(paused.code, Some(0), "{}", paused.stderr);
    let before = status(&server, "t0ken").await;
    assert_eq!(
        (before["phase"].as_str(), before["step"].as_u64()),
        (Some("paused"), Some(1)),
        "{before:#}"
    );

    // A reload keeps it as it was.
    server.signal("HUP");
    server.wait_for_log("reloaded `", Duration::from_secs(30));
    let reloaded = status(&server, "t0ken").await;
    assert_eq!(reloaded["phase"], "paused");
    assert_eq!(reloaded["decisions"], before["decisions"]);

    // So does a restart: the state lives in the app's state directory.
    server.signal("TERM");
    assert_eq!(server.wait_exit(Duration::from_secs(20)), Some(0));
    assert!(dir.path().join(".wasmhost/rollouts").is_dir());
    let server = serve(&app, &token);
    let restarted = status(&server, "t0ken").await;
    assert_eq!(restarted["phase"], "paused", "{restarted:#}");
    assert_eq!(restarted["step"], 1);
    assert_eq!(restarted["weight_percent"], 50.0);
    assert_eq!(restarted["decisions"], before["decisions"]);
    server.wait_for_log(
        "taken up where it was: paused at 50 %",
        Duration::from_secs(5),
    );
    let (old_count, new_count) = served_by(&server, 200).await;
    assert!(old_count > 0 && new_count > 0, "{old_count} / {new_count}");

    // A reload that takes the rollout away ends it: no status, all traffic
    // to the route's component.
    let text = std::fs::read_to_string(&app).unwrap();
    let without: String = text
        .lines()
        .filter(|line| !line.starts_with("rollout = "))
        .map(|line| format!("{line}\n"))
        .collect();
    std::fs::write(&app, without).unwrap();
    server.signal("HUP");
    server.wait_for_log(
        "rollout ended: the route no longer has one",
        Duration::from_secs(30),
    );
    // The rollout ends while the new version loads; the new version serves
    // once it is swapped in, which the reload's own line says.
    server.wait_for_log("reloaded `", Duration::from_secs(30));
    let all: serde_json::Value = http1()
        .get(format!("http://{}/rollouts", server.admin_address()))
        .bearer_auth("t0ken")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(all, serde_json::json!([]));
    assert_eq!(served_by(&server, 50).await, (50, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_component_serves_over_kept_connections_within_the_deadline() {
    let service = Service::start("legacy", "from elsewhere").await;
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("spin.toml");
    std::fs::write(
        &app,
        format!(
            r#"spin_manifest_version = 2
[application]
name = "upstream"
[[trigger.http]]
route = "/..."
component = "legacy"
[component.legacy]
upstream = "{}"
allowed_outbound_hosts = ["http://127.0.0.1:*"]
"#,
            service.url()
        ),
    )
    .unwrap();
    let server = Server::start(&[
        "serve",
        app.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--timeout",
        "2s",
    ]);
    let client = http1();
    for _ in 0..20 {
        let r = client.get(server.url("/x")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-served-by"], "legacy");
        assert_eq!(r.text().await.unwrap(), "from elsewhere");
    }
    // One after the other, over kept connections: a connection whose last
    // answer is still being finished is not taken (a second one may be
    // opened then), but nowhere near one per request.
    let connections = service.behaviour.connections.load(Ordering::SeqCst);
    assert!(
        connections < 10,
        "{connections} connections for 20 requests"
    );

    // Past the request deadline: 504, said by wasmhost.
    service.behaviour.delay_ms.store(5_000, Ordering::SeqCst);
    let r = client.get(server.url("/slow")).send().await.unwrap();
    assert_eq!(r.status(), 504);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("the upstream service did not answer in time"));

    // An upstream the component's allow-list does not allow is refused at
    // start, naming the fix.
    let text = std::fs::read_to_string(&app)
        .unwrap()
        .replace("http://127.0.0.1:*", "http://example.com");
    std::fs::write(&app, text).unwrap();
    let refused = run(
        &["serve", app.to_str().unwrap(), "--listen", "127.0.0.1:0"],
        &[],
    );
    assert_eq!(refused.code, Some(1));
    assert!(
        refused.stderr.contains("do not allow its upstream"),
        "{}",
        refused.stderr
    );
}

/// `chromium --headless <args> <url>`: stdout. A missing browser fails
/// the test (scripts/install-test-deps.sh installs Debian's `chromium`).
fn chromium(args: &[&str], url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(url)
        .output()
        .expect("run chromium (scripts/install-test-deps.sh installs it)");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_the_rollout_and_its_mismatches_in_a_real_browser() {
    let Setup {
        old: _old,
        new: _new,
        dir: _dir,
        app,
        token,
    } = setup(
        "different",
        "steps = [1, 100], max_p99_ratio = 1000.0",
        "t0ken",
    )
    .await;
    let server = serve(&app, &token);
    let load = Load::start(&server);
    wait_for_phase(&server, "t0ken", "rolled_back").await;
    load.stop().await;

    let url = format!("http://{}/", server.admin_address());
    let dom = chromium(&["--dump-dom"], &url);
    for expected in [
        "/...: old → new",
        "rolled_back",
        "why: mismatch rate",
        "Recent mismatches",
        "body (4 vs 9 bytes)",
        "<svg",
        "<polyline",
        "http-equiv=\"refresh\"",
    ] {
        assert!(dom.contains(expected), "no {expected:?} in:\n{dom}");
    }
    assert!(!dom.contains("<script"), "no scripts");
    // The screenshot stays under target/ as the test's artifact.
    let shots = common::repo_root().join("target/dashboard");
    std::fs::create_dir_all(&shots).unwrap();
    let shot = shots.join("rolled-back.png");
    let _ = std::fs::remove_file(&shot);
    chromium(
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1280,1800",
            "--hide-scrollbars",
        ],
        &url,
    );
    let png = std::fs::read(&shot).expect("the screenshot was written");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
}
