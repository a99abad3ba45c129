//! Native containers end to end, as root: a busybox httpd image built by
//! the harness (busybox-static, umoci, skopeo), pulled from a real
//! registry, run by the embedded runtime (or runc) in its own namespaces
//! behind the front door, and probed from inside through its CGI scripts.

mod common;

use std::time::{Duration, Instant};

use common::images::{BusyboxFixture, DebianFixture};
use common::registry::TestRegistry;
use common::runtime::{assert_gone, containers, has_container, logged_id};
use common::{get_text, http1, wait_for, wait_until, Server};

fn fixture(repository: &str) -> BusyboxFixture {
    BusyboxFixture::new(repository)
}

/// Stops `server` as a user would (SIGTERM), so its container is stopped
/// and removed rather than left for the next start's sweep.
fn stop(mut server: Server) {
    server.signal("TERM");
    assert_eq!(
        server.wait_exit(Duration::from_secs(15)),
        Some(0),
        "{}",
        server.log()
    );
    assert!(server.log().contains("stopped"), "{}", server.log());
}

#[tokio::test]
async fn a_busybox_httpd_image_is_served_in_its_own_namespaces() {
    let fixture = fixture("test/httpd:1");
    let server = fixture.run(&["--env", "GREETING=hi"]);
    let client = http1();
    let page = client.get(server.url("/index.html")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    // busybox closes every connection; that is between it and wasmhost.
    assert!(page.headers().get("connection").is_none(), "{page:?}");
    assert_eq!(page.text().await.unwrap(), "hello from busybox\n");
    assert_eq!(
        two_requests_on_one_connection(&server),
        ["hello from busybox\n"; 2]
    );

    // From inside: its own pid namespace (httpd is pid 1, no host process)...
    let ps = get_text(&client, server.url("/cgi-bin/ps")).await;
    let pids: Vec<&str> = ps.lines().skip(1).collect();
    assert!(
        pids.iter().any(|l| l.trim_start().starts_with("1 ")),
        "{ps}"
    );
    assert!(pids.len() <= 6, "only the container's processes: {ps}");
    assert!(!ps.contains("wasmhost-runtime"), "{ps}");
    // ...whose pid 1 is wasmhost's init in front of the image's command
    // (`--init`, the default), mounted from the host...
    assert_eq!(
        get_text(&client, server.url("/cgi-bin/init")).await,
        "/.wasmhost-init /bin/busybox httpd -f -p 8080 -h /www "
    );
    // ...holding nothing of the host's: /dev/null and the pipes its
    // output goes through (CVE-2024-21626); the listening socket is
    // httpd's, not the init's...
    let fds = get_text(&client, server.url("/cgi-bin/fds")).await;
    let targets: Vec<&str> = fds.lines().collect();
    assert!(!targets.is_empty(), "{fds}");
    assert!(
        targets
            .iter()
            .all(|t| *t == "/dev/null" || t.starts_with("pipe:[")),
        "{fds}"
    );
    // ...and which nothing inside can kill (the kernel drops a SIGKILL
    // from inside to a namespace's init).
    let init = container_init_pid(&format!("wasmhost-{}-httpd", server.pid()));
    let crash = client
        .get(server.url("/cgi-bin/crash"))
        .send()
        .await
        .unwrap();
    assert_eq!(crash.status(), 200);
    assert_eq!(
        get_text(&client, server.url("/index.html")).await,
        "hello from busybox\n"
    );
    assert!(std::path::Path::new(&format!("/proc/{init}")).exists());
    assert!(!server.log().contains("exited"), "{}", server.log());
    // ...loopback only...
    let net = get_text(&client, server.url("/cgi-bin/net")).await;
    let interfaces: Vec<&str> = net
        .lines()
        .skip(2)
        .map(|l| l.trim().split(':').next().unwrap())
        .collect();
    assert_eq!(interfaces, ["lo"], "{net}");
    // ...the image's user and its own hostname, and the deployment's env.
    let whoami = get_text(&client, server.url("/cgi-bin/whoami")).await;
    assert!(
        whoami.contains("uid=33(www)") && whoami.contains("httpd"),
        "{whoami}"
    );
    assert_eq!(
        get_text(&client, server.url("/cgi-bin/env")).await,
        "GREETING=hi\n"
    );
    // The root is an overlay: the host's files are not there.
    let mounts = get_text(&client, server.url("/cgi-bin/mounts")).await;
    assert!(
        mounts
            .lines()
            .next()
            .unwrap()
            .starts_with("overlay / overlay"),
        "{mounts}"
    );
    stop(server);
}

/// Two GETs of /index.html, one after the other, on one client
/// connection: the second is answered only if the proxy kept the
/// connection open.
fn two_requests_on_one_connection(server: &Server) -> Vec<String> {
    use std::io::{BufRead as _, BufReader, Read as _, Write as _};
    let address = server
        .url("")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut bodies = Vec::new();
    for _ in 0..2 {
        stream
            .write_all(b"GET /index.html HTTP/1.1\r\nHost: wasmhost\r\n\r\n")
            .unwrap();
        let mut length = 0;
        loop {
            let mut line = String::new();
            assert!(
                reader.read_line(&mut line).unwrap() > 0,
                "connection closed"
            );
            if line == "\r\n" {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap();
                }
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        bodies.push(String::from_utf8(body).unwrap());
    }
    bodies
}

/// Docker's default capabilities as `/proc/PID/status` shows them:
/// CHOWN, DAC_OVERRIDE, FOWNER, FSETID, KILL, SETGID, SETUID, SETPCAP,
/// NET_BIND_SERVICE, NET_RAW, SYS_CHROOT, MKNOD, AUDIT_WRITE, SETFCAP.
const DOCKER_DEFAULT_CAPABILITIES: &str = "00000000a80425fb";

#[tokio::test]
async fn seccomp_capabilities_and_the_pids_limit_hold_inside_a_running_container() {
    let fixture = fixture("test/limits:1");
    let server = fixture.run(&["--memory-limit", "64MiB", "--pids-limit", "32"]);
    let client = http1();
    // The cgroup limits, as the container's own cgroup files show them.
    let limits = get_text(&client, server.url("/cgi-bin/limits")).await;
    assert_eq!(limits, format!("{}\n32\n", 64 << 20), "{limits}");
    // A seccomp filter in force, no new privileges, and Docker's default
    // set in the bounding set (`CapBnd: 00000000a80425fb` under Docker
    // too); the image's user (uid 33) holds none of them, not even
    // inheritable (CVE-2022-24769).
    let status = get_text(&client, server.url("/cgi-bin/status")).await;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:")))
            .map(str::trim)
            .unwrap_or_else(|| panic!("no {name}: {status}"))
    };
    assert_eq!(field("Seccomp"), "2", "filter mode: {status}");
    assert_eq!(field("NoNewPrivs"), "1", "{status}");
    assert_eq!(field("CapBnd"), DOCKER_DEFAULT_CAPABILITIES, "{status}");
    for set in ["CapEff", "CapPrm", "CapInh", "CapAmb"] {
        assert_eq!(field(set), format!("{:016x}", 0), "{set}: {status}");
    }
    // A call Docker's profile refuses fails with EPERM: unshare(2) of a
    // user namespace, which any process may make outside the filter
    // (`unshare -U`), but the profile allows only with CAP_SYS_ADMIN.
    let denied = get_text(&client, server.url("/cgi-bin/seccomp")).await;
    assert!(
        denied.contains("Operation not permitted") && !denied.contains("exit=0"),
        "{denied}"
    );
    // The pids limit stops a fork loop short of 32 processes, counting
    // httpd and the CGI's own; last, as the loop's sleepers hold their
    // pids for two seconds.
    let forks = get_text(&client, server.url("/cgi-bin/forks")).await;
    let started: u32 = forks
        .lines()
        .filter_map(|l| l.strip_prefix("started="))
        .filter_map(|n| n.parse().ok())
        .max()
        .unwrap_or(0);
    assert!((20..32).contains(&started), "{forks}");
    stop(server);
}

/// With wasmhost's init as pid 1 (the default), SIGTERM reaches busybox
/// httpd, which has no handler and ends at once: the stop never needs
/// SIGKILL, however long the grace. With `--no-init`, httpd is pid 1, the
/// kernel drops the SIGTERM, and only SIGKILL after the grace ends it.
#[tokio::test]
async fn the_init_forwards_the_stop_signal_so_no_stop_waits_for_sigkill() {
    let fixture = fixture("test/stopping:1");
    for (init, grace) in [("--init", "60s"), ("--no-init", "300ms")] {
        let mut server = fixture.run(&[init, "--stop-grace", grace]);
        assert_eq!(
            get_text(&http1(), server.url("/index.html")).await,
            "hello from busybox\n"
        );
        server.signal("TERM");
        assert_eq!(
            server.wait_exit(Duration::from_secs(15)),
            Some(0),
            "{init}: {}",
            server.log()
        );
        let log = server.log();
        assert!(log.contains("stopped"), "{init}: {log}");
        match init {
            // The init exits as httpd did: killed by SIGTERM.
            "--init" => assert!(
                !log.contains("SIGKILL") && log.contains("stopped (exit status: 143)"),
                "{log}"
            ),
            _ => assert!(log.contains("ignored SIGTERM for 300ms: SIGKILL"), "{log}"),
        }
    }
}

#[tokio::test]
async fn a_container_not_listening_within_the_ready_timeout_gets_503_and_a_log_line_saying_why() {
    let fixture = fixture("test/unready:1");
    // httpd listens on 8080; nothing ever listens on 9999.
    let mut server = fixture.run(&["--lazy", "--port", "9999", "--ready-timeout", "500ms"]);
    let started = Instant::now();
    let response = http1().get(server.url("/index.html")).send().await.unwrap();
    assert_eq!(response.status(), 503);
    assert!(started.elapsed() >= Duration::from_millis(500));
    let why = "did not listen on port 9999 within 500ms";
    assert!(response.text().await.unwrap().contains(why));
    server.wait_for_log(why, Duration::from_secs(5));
    server.signal("TERM");
    assert_eq!(server.wait_exit(Duration::from_secs(15)), Some(0));
    let tag = format!("wasmhost-{}-unready", server.pid());
    assert!(
        !has_container("embedded", &tag),
        "{:?}",
        containers("embedded")
    );
}

#[tokio::test]
async fn a_container_the_embedded_runtime_runs_is_listed_by_it_and_not_by_runc() {
    // Why the tests ask the runtime that ran a container: runc, under its
    // own state directory, says "gone" about every embedded container.
    let fixture = fixture("test/whose:1");
    let server = fixture.run(&[]);
    let client = http1();
    assert_eq!(
        get_text(&client, server.url("/index.html")).await,
        "hello from busybox\n"
    );
    let id = logged_id(&server.wait_for_log("ready in", Duration::from_secs(5)));
    assert!(
        has_container("embedded", &id),
        "{:?}",
        containers("embedded")
    );
    assert!(!has_container("runc", &id), "{:?}", containers("runc"));
    stop(server);
    assert_gone("embedded", &id);
}

#[tokio::test]
async fn the_memory_limit_holds_under_pressure() {
    let fixture = fixture("oom");
    let server = fixture.run(&["--memory-limit", "32MiB"]);
    let client = http1();
    // A process that needs ~200 MB inside a 32 MiB container is killed by
    // the kernel (in the container's cgroup), and only it.
    let hog = get_text(&client, server.url("/cgi-bin/hog")).await;
    let status = hog
        .lines()
        .find_map(|l| l.strip_prefix("exit="))
        .unwrap_or_else(|| panic!("{hog}"));
    assert_ne!(status, "0", "the hog was not stopped: {hog}");
    let kills: u64 = hog
        .lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no oom_kill count: {hog}"));
    assert!(kills >= 1, "{hog}");
    // The service itself (pid 1) lives on.
    assert_eq!(
        get_text(&client, server.url("/index.html")).await,
        "hello from busybox\n"
    );
    stop(server);
}

/// The host pid of the init process of the running container whose id
/// contains `tag`, from the embedded runtime. Its `list` skips a container
/// whose state it cannot read at that instant (another test's runtime may
/// be writing the same state directory), so it is asked until it answers.
fn container_init_pid(tag: &str) -> u32 {
    wait_for(
        &format!("a running container `{tag}`"),
        Duration::from_secs(5),
        || {
            containers("embedded")
                .iter()
                .find(|c| {
                    c["id"].as_str().unwrap_or_default().contains(tag)
                        && c["status"]
                            .as_str()
                            .unwrap_or_default()
                            .eq_ignore_ascii_case("running")
                })
                .and_then(|c| c["pid"].as_u64())
                .and_then(|pid| u32::try_from(pid).ok())
        },
        || format!("{:?}", containers("embedded")),
    )
}

/// The README's first restart backoff.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);

#[tokio::test]
async fn a_crashed_container_answers_503_then_restarts_after_its_backoff() {
    let fixture = fixture("test/crashing:1");
    let server = fixture.run(&[]);
    let client = http1();
    assert_eq!(
        get_text(&client, server.url("/index.html")).await,
        "hello from busybox\n"
    );
    // The service dies (its init process is killed from the host).
    let tag = format!("wasmhost-{}-crashing", server.pid());
    let pid = container_init_pid(&tag);
    let killed = Instant::now();
    assert!(std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap()
        .success());
    server.wait_for_log("exited", Duration::from_secs(10));
    let during = client.get(server.url("/index.html")).send().await.unwrap();
    assert_eq!(during.status(), 503, "no hang while it restarts");
    let text = during.text().await.unwrap();
    let restarts_in: f64 = text
        .split("restarts in ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|seconds| seconds.parse().ok())
        .unwrap_or_else(|| panic!("{text}"));
    assert!(restarts_in <= FIRST_BACKOFF.as_secs_f64(), "{text}");
    // Back only after the backoff (counted from its exit, which came
    // after the kill), and not long after it.
    let back = common::wait_for_async("the restart", Duration::from_secs(10), || {
        let request = client.get(server.url("/index.html")).send();
        async move {
            let response = request.await.unwrap();
            match response.status().as_u16() {
                200 => Some(killed.elapsed()),
                503 => None,
                other => panic!("only 503 until it is back, got {other}"),
            }
        }
    })
    .await;
    assert!(back >= FIRST_BACKOFF, "restarted {back:?} after the crash");
    assert!(
        back < FIRST_BACKOFF + Duration::from_secs(5),
        "restarted {back:?} after the crash"
    );
    assert_eq!(
        server.log().matches("ready in").count(),
        2,
        "{}",
        server.log()
    );
    stop(server);
}

#[tokio::test]
async fn an_idle_container_is_stopped_and_cold_started_by_the_next_request() {
    let fixture = fixture("test/idle:1");
    let server = fixture.run(&["--idle-timeout", "500ms", "--stop-grace", "500ms"]);
    let client = http1();
    assert_eq!(
        get_text(&client, server.url("/index.html")).await,
        "hello from busybox\n"
    );
    let first = logged_id(&server.wait_for_log("ready in", Duration::from_secs(5)));
    assert!(
        has_container("embedded", &first),
        "{:?}",
        containers("embedded")
    );
    server.wait_for_log("container idle", Duration::from_secs(10));
    let stopped = server.wait_for_log("stopped", Duration::from_secs(10));
    assert_eq!(logged_id(&stopped), first, "{stopped}");
    assert_gone("embedded", &first);
    // Stopped, the next container is created ahead (its init waits), so
    // that the cold start only starts the workload.
    let tag = format!("wasmhost-{}-idle", server.pid());
    let created = |tag: &str| {
        containers("embedded")
            .iter()
            .filter(|c| {
                c["id"].as_str().unwrap_or_default().contains(tag)
                    && c["status"]
                        .as_str()
                        .unwrap_or_default()
                        .eq_ignore_ascii_case("created")
            })
            .count()
    };
    let wait_until_created = || {
        wait_until("a container created ahead", Duration::from_secs(10), || {
            created(&tag) > 0
        })
    };
    wait_until_created();
    let cold = client.get(server.url("/index.html")).send().await.unwrap();
    assert_eq!(cold.status(), 200);
    // The start logs from its own task: the line may follow the answer.
    server.wait_for_log_count("ready in", 2, Duration::from_secs(5));
    assert_eq!(server.log_count("ready in"), 2, "{}", server.log());
    assert!(
        server.log().contains("(created ahead) ready in"),
        "{}",
        server.log()
    );
    // Stopping wasmhost deletes the one created ahead after that start too.
    server.wait_for_log_count("container idle", 2, Duration::from_secs(10));
    wait_until_created();
    stop(server);
    assert!(
        !has_container("embedded", &tag),
        "{:?}",
        containers("embedded")
    );
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    assert!(!mounts.contains(&tag), "{mounts}");
}

#[tokio::test]
async fn containers_a_killed_wasmhost_left_behind_are_swept_at_the_next_start() {
    let fixture = fixture("test/sweep:1");
    let mut first = fixture.run(&[]);
    let client = http1();
    assert_eq!(
        get_text(&client, first.url("/index.html")).await,
        "hello from busybox\n"
    );
    let tag = format!("wasmhost-{}-sweep", first.pid());
    let orphan = container_init_pid(&tag);
    let id = logged_id(&first.wait_for_log("ready in", Duration::from_secs(5)));
    first.signal("KILL");
    assert_eq!(first.wait_exit(Duration::from_secs(10)), None, "killed");
    // The container outlived the host...
    assert!(std::path::Path::new(&format!("/proc/{orphan}")).exists());
    assert!(
        has_container("embedded", &id),
        "{:?}",
        containers("embedded")
    );
    // ...until the next start sweeps it: process, runtime state, mount.
    let second = fixture.run(&[]);
    assert_eq!(
        get_text(&client, second.url("/index.html")).await,
        "hello from busybox\n"
    );
    assert_gone("embedded", &id);
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    assert!(!mounts.contains(&tag), "its root is unmounted");
    let helper_mount = format!("/run/wasmhost/exe/{}-", first.pid());
    assert!(!mounts.contains(&helper_mount), "its helper mount is swept");
    wait_until(
        &format!("the orphaned container process {orphan} to end"),
        Duration::from_secs(2),
        || !std::path::Path::new(&format!("/proc/{orphan}")).exists(),
    );
    stop(second);
}

#[tokio::test]
async fn a_spin_manifest_routes_to_a_container_and_a_wasm_component_side_by_side() {
    let fixture = fixture("test/legacy:1");
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("spin.toml");
    std::fs::write(
        &manifest,
        format!(
            r#"spin_manifest_version = 2
[application]
name = "hybrid"
[[trigger.http]]
route = "/hello"
component = "hello"
[[trigger.http]]
route = "/legacy/..."
component = "legacy"
[component.hello]
source = "{hello}"
[component.legacy]
container = {{ image = "{image}", port = 8080, start = "eager", memory_limit = "64MiB", stop_grace = "1s" }}
"#,
            hello = common::guest("hello").display(),
            image = fixture.reference,
        ),
    )
    .unwrap();
    let server = Server::start(&[
        "serve",
        manifest.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--cache-dir",
        fixture.cache.path().to_str().unwrap(),
    ]);
    // Eager: started before the address was printed (its log line may
    // still be on its way through the pipe).
    server.wait_for_log("ready in", Duration::from_secs(5));
    let client = http1();
    assert_eq!(
        get_text(&client, server.url("/hello")).await,
        "Hello, world!\n"
    );
    assert_eq!(
        get_text(&client, server.url("/legacy/index.html")).await,
        "legacy page\n"
    );
    stop(server);
}

fn busybox_bytes() -> Vec<u8> {
    let path = std::process::Command::new("sh")
        .args(["-c", "command -v busybox"])
        .output()
        .unwrap();
    std::fs::read(String::from_utf8(path.stdout).unwrap().trim()).unwrap()
}

#[tokio::test]
async fn whiteouts_and_opaque_directories_of_upper_layers_hide_lower_files() {
    use common::images::{push_image, tar_layer, Entry};
    let registry = TestRegistry::start();
    let busybox = busybox_bytes();
    let base = tar_layer(&[
        Entry::Dir("bin"),
        Entry::File("bin/busybox", &busybox, 0o755),
        Entry::Dir("www"),
        Entry::File("www/index.html", b"index\n", 0o644),
        Entry::File("www/gone.txt", b"lower\n", 0o644),
        Entry::Dir("www/dir"),
        Entry::File("www/dir/x", b"x\n", 0o644),
        Entry::File("www/dir/y", b"y\n", 0o644),
        Entry::Symlink("www/link", "index.html"),
    ]);
    let upper = tar_layer(&[
        Entry::File("www/.wh.gone.txt", b"", 0o644),
        Entry::Dir("www/dir"),
        Entry::File("www/dir/.wh..wh..opq", b"", 0o644),
        Entry::File("www/dir/z", b"z\n", 0o644),
        Entry::File("www/new.txt", b"upper\n", 0o644),
    ]);
    let entrypoint = ["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/www"];
    let reference = push_image(
        &registry,
        "test/layers",
        "1",
        &[base, upper],
        &entrypoint,
        8080,
    )
    .await;
    let cache = tempfile::tempdir().unwrap();
    let server = Server::start(&[
        "run",
        &reference,
        "--listen",
        "127.0.0.1:0",
        "--cache-dir",
        cache.path().to_str().unwrap(),
        "--stop-grace",
        "1s",
    ]);
    let client = http1();
    let status = |path: &'static str| {
        let request = client.get(server.url(path)).send();
        async move {
            let response = request.await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    assert_eq!(status("/index.html").await, (200, "index\n".into()));
    assert_eq!(status("/link").await, (200, "index\n".into()));
    assert_eq!(status("/new.txt").await, (200, "upper\n".into()));
    assert_eq!(status("/dir/z").await, (200, "z\n".into()));
    assert_eq!(status("/gone.txt").await.0, 404, "whited out");
    assert_eq!(
        status("/dir/x").await.0,
        404,
        "hidden by the opaque directory"
    );
    assert_eq!(
        status("/dir/y").await.0,
        404,
        "hidden by the opaque directory"
    );
    // The layers are shared: unpacked once each, by chain id.
    let unpacked = std::fs::read_dir(cache.path().join("layers"))
        .unwrap()
        .count();
    assert_eq!(unpacked, 2);
    stop(server);
}

#[tokio::test]
async fn a_hostile_layer_fails_the_pull_naming_its_entry_and_writes_nothing_outside() {
    use common::images::{push_image, tar_layer, Entry};
    let registry = TestRegistry::start();
    let hostile = tar_layer(&[
        Entry::Dir("www"),
        Entry::RawFile("../../wasmhost-escape-marker", b"pwned"),
    ]);
    let reference = push_image(
        &registry,
        "test/hostile",
        "1",
        &[hostile],
        &["/bin/sh"],
        8080,
    )
    .await;
    let cache = tempfile::tempdir().unwrap();
    let out = common::run(
        &[
            "pull",
            &reference,
            "--cache-dir",
            cache.path().to_str().unwrap(),
        ],
        &[],
    );
    assert_ne!(out.code, Some(0));
    assert!(
        out.stderr.contains("../../wasmhost-escape-marker"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains(&reference), "{}", out.stderr);
    // Nothing next to the layer cache, nor anywhere up the tree.
    for dir in [
        cache.path().to_path_buf(),
        cache.path().join("layers"),
        std::env::temp_dir(),
    ] {
        assert!(
            !dir.join("wasmhost-escape-marker").exists(),
            "escaped into {}",
            dir.display()
        );
    }
    let leftovers: Vec<_> = std::fs::read_dir(cache.path().join("layers"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        leftovers.is_empty(),
        "no half-unpacked layer is kept: {leftovers:?}"
    );
}

#[tokio::test]
async fn the_same_image_runs_under_runc() {
    let fixture = fixture("test/runc:1");
    let server = fixture.run(&["--oci-runtime", "runc"]);
    let client = http1();
    assert_eq!(
        get_text(&client, server.url("/index.html")).await,
        "hello from busybox\n"
    );
    let whoami = get_text(&client, server.url("/cgi-bin/whoami")).await;
    assert!(whoami.contains("uid=33(www)"), "{whoami}");
    let tag = format!("wasmhost-{}-runc", server.pid());
    assert!(
        has_container("runc", &tag),
        "run by runc: {:?}",
        containers("runc")
    );
    stop(server);
    assert!(!has_container("runc", &tag));
}

#[tokio::test]
async fn in_a_user_namespace_root_inside_is_an_unprivileged_host_user() {
    let fixture = fixture("test/userns:1");
    let server = fixture.run(&["--user-namespace"]);
    let client = http1();
    // The front door reaches it through the network namespace the
    // container made for itself (owned by its user namespace)...
    assert_eq!(
        get_text(&client, server.url("/index.html")).await,
        "hello from busybox\n"
    );
    let net = get_text(&client, server.url("/cgi-bin/net")).await;
    assert!(net.contains("lo:") && net.lines().count() == 3, "{net}");
    // ...its users are the image's inside...
    let whoami = get_text(&client, server.url("/cgi-bin/whoami")).await;
    assert!(whoami.contains("uid=33(www)"), "{whoami}");
    let map = get_text(&client, server.url("/cgi-bin/uidmap")).await;
    assert_eq!(
        map.split_whitespace().collect::<Vec<_>>(),
        ["0", "1000000000", "65536"]
    );
    // ...and unprivileged ids on the host, in a user namespace of its own.
    let init = container_init_pid(&format!("wasmhost-{}-userns", server.pid()));
    let status = std::fs::read_to_string(format!("/proc/{init}/status")).unwrap();
    let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert_eq!(
        uid.split_whitespace().skip(1).collect::<Vec<_>>(),
        ["1000000033"; 4],
        "{uid}"
    );
    assert_ne!(
        std::fs::read_link(format!("/proc/{init}/ns/user")).unwrap(),
        std::fs::read_link("/proc/self/ns/user").unwrap()
    );
    stop(server);
}

#[tokio::test]
async fn the_embedded_runtime_runs_from_a_read_only_wasmhost_binary() {
    // CVE-2019-5736: a container can reach the executable of the process
    // that creates it through /proc/<pid>/exe. The embedded runtime's
    // helper (the container init's parent) runs from a read-only bind
    // mount wasmhost makes once; the mount goes when wasmhost exits.
    let fixture = fixture("test/sealed:1");
    let server = fixture.run(&[]);
    let client = http1();
    assert_eq!(
        get_text(&client, server.url("/index.html")).await,
        "hello from busybox\n"
    );
    let init = container_init_pid(&format!("wasmhost-{}-sealed", server.pid()));
    let status = std::fs::read_to_string(format!("/proc/{init}/status")).unwrap();
    let helper: u32 = status
        .lines()
        .find_map(|l| l.strip_prefix("PPid:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let exe = std::fs::read_link(format!("/proc/{helper}/exe")).unwrap();
    assert_eq!(
        exe,
        std::path::Path::new(&format!(
            "/run/wasmhost/exe/{}-wasmhost-runtime",
            server.pid()
        ))
    );
    let mountinfo = std::fs::read_to_string(format!("/proc/{helper}/mountinfo")).unwrap();
    let line = mountinfo
        .lines()
        .find(|l| l.split(' ').nth(4) == Some(exe.to_str().unwrap()))
        .unwrap_or_else(|| {
            panic!("no mount of the binary in the helper's namespace:\n{mountinfo}")
        });
    let options = line.split(' ').nth(5).unwrap();
    assert!(options.split(',').any(|o| o == "ro"), "{line}");
    let write = std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/proc/{helper}/exe"));
    assert!(
        write.is_err(),
        "the helper's binary must not be writable through /proc"
    );
    // The helper was started ahead of the container and took its order on
    // stdin; the next one waits already, and goes when wasmhost does.
    let standby = standby_helpers(server.pid());
    assert!(standby.contains(&helper), "{standby:?} vs {helper}");
    let waiting: Vec<u32> = standby.into_iter().filter(|&p| p != helper).collect();
    assert_eq!(waiting.len(), 1, "one helper waits for the next start");
    stop(server);
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    assert!(!mounts.contains(exe.to_str().unwrap()), "{mounts}");
    assert!(!exe.exists());
    wait_until(
        "the waiting helper to end with wasmhost",
        Duration::from_secs(5),
        || {
            std::fs::read_to_string(format!("/proc/{}/status", waiting[0]))
                .map_or(true, |status| status.contains("State:\tZ"))
        },
    );
}

/// Children of `parent` that are runtime helpers started ahead.
fn standby_helpers(parent: u32) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let (Ok(status), Ok(cmdline)) = (
            std::fs::read_to_string(format!("/proc/{pid}/status")),
            std::fs::read(format!("/proc/{pid}/cmdline")),
        ) else {
            continue;
        };
        let ppid = status
            .lines()
            .find_map(|l| l.strip_prefix("PPid:"))
            .and_then(|p| p.trim().parse::<u32>().ok());
        let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
        if ppid == Some(parent) && args.contains(&&b"standby"[..]) {
            found.push(pid);
        }
    }
    found
}

/// One field of `/proc/PID/status` text (`CapEff`, `Seccomp`, ...).
fn status_field<'a>(status: &'a str, name: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {name}: {status}"))
}

/// Every unpacked layer directory of `cache` that holds `path`.
fn in_layer_cache(cache: &std::path::Path, path: &str) -> Vec<std::path::PathBuf> {
    let layers = cache.join("layers");
    std::fs::read_dir(&layers)
        .unwrap_or_else(|e| panic!("{}: {e}", layers.display()))
        .map(|dir| dir.unwrap().path().join("fs").join(path))
        .filter(|p| std::fs::symlink_metadata(p).is_ok())
        .collect()
}

/// A Debian bookworm root filesystem as mmdebstrap makes it (with its
/// `/dev` nodes), a second layer deleting files, user `nobody`: it
/// unpacks, runs, and has from inside what Docker gives such an image.
#[tokio::test]
async fn a_debian_rootfs_image_runs_as_nobody_with_dockers_defaults_and_stops_on_its_stop_signal() {
    use std::os::unix::fs::FileTypeExt as _;
    let fixture = DebianFixture::new();
    let mut server = fixture.run(&fixture.nobody, &["--stop-grace", "60s"]);
    let client = http1();
    assert_eq!(
        get_text(&client, server.url("/")).await,
        "hello from debian\n"
    );
    // The first layer's device nodes were made, as containerd makes them
    // (inside, the runtime's own /dev is mounted over them).
    let consoles = in_layer_cache(fixture.cache.path(), "dev/console");
    assert_eq!(consoles.len(), 1, "{consoles:?}");
    let console = std::fs::symlink_metadata(&consoles[0]).unwrap();
    assert!(console.file_type().is_char_device(), "{console:?}");
    // The second layer's whiteouts hide the first's files; python3 and
    // the user database come from the first.
    assert_eq!(
        get_text(&client, server.url("/files")).await,
        "/etc/motd False\n/usr/share/doc/apt False\n/usr/share/doc/kept True\n/usr/bin/python3 True\n"
    );
    assert_eq!(
        get_text(&client, server.url("/whoami")).await,
        "uid=65534 user=nobody\n"
    );
    // A non-root user holds no capability in any set; the bounding set is
    // Docker's; seccomp in force, io_uring refused as in Docker's profile.
    let status = get_text(&client, server.url("/status")).await;
    assert_eq!(status_field(&status, "CapBnd"), DOCKER_DEFAULT_CAPABILITIES, "{status}");
    for set in ["CapEff", "CapPrm", "CapInh", "CapAmb"] {
        assert_eq!(status_field(&status, set), "0000000000000000", "{set}: {status}");
    }
    assert_eq!(status_field(&status, "Seccomp"), "2", "{status}");
    assert_eq!(status_field(&status, "NoNewPrivs"), "1", "{status}");
    assert_eq!(get_text(&client, server.url("/io_uring")).await, "EPERM\n");
    // Stopped with the image's StopSignal (SIGINT), which wasmhost's init
    // passes to python: it ends at once, long before the 60 s grace.
    server.signal("TERM");
    assert_eq!(server.wait_exit(Duration::from_secs(30)), Some(0), "{}", server.log());
    let log = server.log();
    assert!(log.contains("app: stopping on SIGINT"), "{log}");
    assert!(!log.contains("SIGKILL"), "{log}");
}

/// Root in the container holds Docker's default set, changed by
/// `--cap-drop` and `--cap-add`; CAP_MKNOD makes a device node, which the
/// device cgroup will not let it open; `--read-only` keeps even root from
/// writing to the image's files.
#[tokio::test]
async fn root_in_a_debian_image_holds_dockers_default_capabilities_as_changed_by_cap_add_and_drop() {
    let fixture = DebianFixture::new();
    let server = fixture.run(
        &fixture.root,
        &["--cap-drop", "NET_RAW", "--cap-add", "CAP_SYS_PTRACE", "--read-only"],
    );
    let client = http1();
    assert_eq!(get_text(&client, server.url("/whoami")).await, "uid=0 user=root\n");
    assert_eq!(get_text(&client, server.url("/write")).await, "EROFS\n");
    let status = get_text(&client, server.url("/status")).await;
    let default = u64::from_str_radix(DOCKER_DEFAULT_CAPABILITIES, 16).unwrap();
    const NET_RAW: u64 = 1 << 13;
    const SYS_PTRACE: u64 = 1 << 19;
    let expected = format!("{:016x}", (default & !NET_RAW) | SYS_PTRACE);
    for set in ["CapBnd", "CapEff", "CapPrm"] {
        assert_eq!(status_field(&status, set), expected, "{set}: {status}");
    }
    for set in ["CapInh", "CapAmb"] {
        assert_eq!(status_field(&status, set), "0000000000000000", "{set}: {status}");
    }
    assert_eq!(
        get_text(&client, server.url("/mknod")).await,
        "mknod: ok, open: EPERM\n"
    );
    stop(server);
}

/// Debian's nginx as its package installs it: the master starts as root and
/// chowns its temporary directories for its `www-data` workers (which needs
/// Docker's default capabilities), serves its default page on port 80, and
/// stops gracefully on the image's StopSignal, SIGQUIT.
#[tokio::test]
async fn debians_nginx_image_serves_its_default_page_and_stops_on_sigquit() {
    let fixture = DebianFixture::new();
    let mut server = fixture.run(&fixture.nginx, &["--stop-grace", "60s"]);
    let client = http1();
    let response = client.get(server.url("/")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["server"].to_str().unwrap(),
        "nginx/1.22.1",
        "the answer comes from Debian's nginx"
    );
    // Without CAP_CHOWN nginx exits at start ("chown(\"/var/lib/nginx/body\",
    // 33) failed"), and no page would come.
    assert!(response.text().await.unwrap().contains("Welcome to nginx!"));
    server.signal("TERM");
    assert_eq!(server.wait_exit(Duration::from_secs(30)), Some(0), "{}", server.log());
    let log = server.log();
    assert!(!log.contains("SIGKILL"), "nginx ignored SIGQUIT: {log}");
}

/// This host's address on its default route (not loopback: the
/// container's `127.0.0.1` is its own). No packet is sent.
fn host_address() -> std::net::IpAddr {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    socket
        .connect("192.0.2.1:9")
        .expect("a default route, for the host's own address");
    socket.local_addr().unwrap().ip()
}

/// A plain HTTP service on `ip`, answering every connection; its port.
fn host_service(ip: std::net::IpAddr) -> u16 {
    use std::io::Write as _;
    let listener = std::net::TcpListener::bind((ip, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let _ = stream.write_all(b"HTTP/1.0 200 OK\r\n\r\nfrom the host\n");
        }
    });
    port
}

/// `--network outbound`: the container reaches the host service its
/// `--allowed-outbound-host` names and no other (refused at once, in the
/// namespace's filter, whatever the image does); by default it has no
/// route out at all.
#[tokio::test]
async fn outbound_network_reaches_the_allowed_host_only_and_is_off_by_default() {
    let fixture = DebianFixture::new();
    let ip = host_address();
    let (allowed, denied) = (host_service(ip), host_service(ip));
    let entry = format!("http://{ip}:{allowed}");
    let connect = |port: u16| format!("/connect?host={ip}&port={port}");
    let server = fixture.run(
        &fixture.nobody,
        &["--network", "outbound", "--allowed-outbound-host", &entry],
    );
    let client = http1();
    assert_eq!(
        get_text(&client, server.url(&connect(allowed))).await,
        "connected: HTTP/1.0 200 OK\n"
    );
    let refused = get_text(&client, server.url(&connect(denied))).await;
    assert!(refused.starts_with("refused: ") && refused.contains("Connection refused"), "{refused}");
    stop(server);

    let server = fixture.run(&fixture.nobody, &[]);
    let unreachable = get_text(&client, server.url(&connect(allowed))).await;
    assert!(unreachable.contains("Network is unreachable"), "{unreachable}");
    stop(server);
}

/// Outbound in a user namespace: the container makes its network
/// namespace itself; wasmhost adopts it, loads the filter and opens the
/// way out (slirp4netns joining the container's user namespace). Checked
/// from inside: the allowed host service answers, another is refused at
/// once.
#[tokio::test]
async fn outbound_network_in_a_user_namespace_reaches_the_allowed_host_only() {
    let fixture = DebianFixture::new();
    let ip = host_address();
    let (allowed, denied) = (host_service(ip), host_service(ip));
    let entry = format!("http://{ip}:{allowed}");
    let connect = |port: u16| format!("/connect?host={ip}&port={port}");
    let server = fixture.run(
        &fixture.nobody,
        &["--user-namespace", "--network", "outbound", "--allowed-outbound-host", &entry],
    );
    let client = http1();
    assert_eq!(
        get_text(&client, server.url(&connect(allowed))).await,
        "connected: HTTP/1.0 200 OK\n"
    );
    let refused = get_text(&client, server.url(&connect(denied))).await;
    assert!(refused.starts_with("refused: ") && refused.contains("Connection refused"), "{refused}");
    // It is in a user namespace of its own: `nobody` inside is an
    // unprivileged id on the host.
    let init = container_init_pid(&format!("wasmhost-{}-", server.pid()));
    assert_ne!(
        std::fs::read_link(format!("/proc/{init}/ns/user")).unwrap(),
        std::fs::read_link("/proc/self/ns/user").unwrap()
    );
    stop(server);
}

/// IPv6 through the way out: an allowed IPv6 literal (`[2001:db8::7]`, as
/// Spin writes it) passes the container's IPv6 filter, and any other IPv6
/// destination is refused by it at once. This host has an IPv6 default
/// route but no IPv6 service a container can reach (its own address,
/// `fd00::2`, is slirp4netns' gateway inside), so the allowed connection
/// can only be seen to leave: it waits for an answer that never comes.
#[tokio::test]
async fn outbound_ipv6_is_filtered_like_ipv4() {
    let fixture = DebianFixture::new();
    let server = fixture.run(
        &fixture.nobody,
        &["--network", "outbound", "--allowed-outbound-host", "http://[2001:db8::7]:80"],
    );
    let client = http1();
    let connect = |host: &str| server.url(&format!("/connect?host={host}&port=80"));
    // Once its address is configured (router advertisement, duplicate
    // address detection), a denied destination is refused at once...
    let refused = common::wait_for_async("an IPv6 route in the container", Duration::from_secs(15), || {
        let request = get_text(&client, connect("2001:db8::8"));
        async move {
            let answer = request.await;
            (!answer.contains("Network is unreachable")).then_some(answer)
        }
    })
    .await;
    assert!(refused.starts_with("refused: ") && refused.contains("Connection refused"), "{refused}");
    // ...and the allowed one gets through the filter, to wait for an
    // answer (the app gives up after 5 s).
    let started = Instant::now();
    let allowed = get_text(&client, connect("2001:db8::7")).await;
    assert_eq!(allowed, "refused: timed out\n");
    assert!(started.elapsed() >= Duration::from_secs(4), "{:?}", started.elapsed());
    stop(server);
}

/// A name in the allow-list is resolved again while the container runs:
/// when its address changes, the filter follows, both ways. The name is
/// this test's own: wasmhost runs in a mount namespace of its own where a
/// file of the test's is bind-mounted over `/etc/hosts` (glibc reads it
/// at every lookup).
#[tokio::test]
async fn outbound_names_are_resolved_again_while_the_container_runs() {
    let fixture = DebianFixture::new();
    let ip = host_address();
    let port = host_service(ip);
    let hosts = tempfile::NamedTempFile::new().unwrap();
    let name = "moving.wasmhost.test";
    let point = |address: &str| {
        std::fs::write(hosts.path(), format!("127.0.0.1 localhost\n{address} {name}\n")).unwrap()
    };
    // TEST-NET-2: nothing there.
    point("198.51.100.7");
    let entry = format!("http://{name}:{port}");
    let mut command = std::process::Command::new("unshare");
    command
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg("mount --bind \"$0\" /etc/hosts && exec \"$@\"")
        .arg(hosts.path())
        .arg(env!("CARGO_BIN_EXE_wasmhost"))
        .args(["run", &fixture.nobody, "--listen", "127.0.0.1:0", "--cache-dir"])
        .arg(fixture.cache.path())
        .args(["--network", "outbound", "--allowed-outbound-host", &entry])
        .args(["--outbound-resolve-interval", "200ms"])
        .env("WASMHOST_LOG", "info")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let server = Server::from_command(command);
    let client = http1();
    let connect = || get_text(&client, server.url(&format!("/connect?host={ip}&port={port}")));
    let refused = connect().await;
    assert!(refused.contains("Connection refused"), "{refused}");
    point(&ip.to_string());
    let wait = |what: &'static str, want: &'static str| {
        common::wait_for_async(what, Duration::from_secs(10), move || {
            let answer = connect();
            async move { answer.await.contains(want).then_some(()) }
        })
    };
    wait("the new address allowed", "connected: HTTP/1.0 200 OK").await;
    assert!(server.log().contains(&format!("`{entry}` now allows {ip}")), "{}", server.log());
    point("198.51.100.8");
    wait("the old address no longer allowed", "Connection refused").await;
    stop(server);
}

/// A DNS server on loopback for the test: `api.test-wasmhost.example`
/// and `elsewhere.wasmhost-other.example` both at `address` (A, TTL 60),
/// no AAAA, NXDOMAIN for the rest. Records the names it was asked.
fn test_dns_server(
    on: std::net::IpAddr,
    address: std::net::Ipv4Addr,
) -> std::sync::Arc<std::sync::Mutex<Vec<String>>> {
    use hickory_proto::op::{Message, MessageType, ResponseCode};
    use hickory_proto::rr::{rdata::A, RData, Record, RecordType};
    let socket = std::net::UdpSocket::bind((on, 53)).expect("bind the test's DNS server on port 53");
    let asked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = asked.clone();
    std::thread::spawn(move || {
        let mut buffer = [0u8; 1500];
        while let Ok((length, from)) = socket.recv_from(&mut buffer) {
            let Ok(query) = Message::from_vec(&buffer[..length]) else { continue };
            let Some(question) = query.queries.first().cloned() else { continue };
            let name = question.name().to_ascii().trim_end_matches('.').to_ascii_lowercase();
            seen.lock().unwrap().push(name.clone());
            let mut reply = Message::new(query.metadata.id, MessageType::Response, query.metadata.op_code);
            reply.metadata.recursion_desired = query.metadata.recursion_desired;
            reply.metadata.recursion_available = true;
            reply.add_query(question.clone());
            let known = ["api.test-wasmhost.example", "elsewhere.wasmhost-other.example"];
            if !known.contains(&name.as_str()) {
                reply.metadata.response_code = ResponseCode::NXDomain;
            } else if question.query_type() == RecordType::A {
                reply.add_answer(Record::from_rdata(question.name().clone(), 60, RData::A(A(address))));
            }
            let _ = socket.send_to(&reply.to_vec().unwrap(), from);
        }
    });
    asked
}

/// wasmhost running the Debian image with `--network outbound` and
/// `entry` allowed, its host resolver the test's DNS server (see
/// [`test_dns_server`], answering `address`) through a resolv.conf
/// bind-mounted for wasmhost alone; the names that server was asked.
struct WithTestDns {
    server: Server,
    asked: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    _resolv_conf: tempfile::NamedTempFile,
}

/// `dns_on`: the test's DNS server's loopback address, one of its own
/// per test (port 53 is free there, and tests run side by side).
fn run_with_test_dns(
    fixture: &DebianFixture,
    dns_on: [u8; 4],
    address: std::net::Ipv4Addr,
    entry: &str,
) -> WithTestDns {
    let dns_on = std::net::IpAddr::from(dns_on);
    let asked = test_dns_server(dns_on, address);
    let resolv_conf = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(resolv_conf.path(), format!("nameserver {dns_on}\n")).unwrap();
    let mut command = std::process::Command::new("unshare");
    command
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg("mount --bind \"$0\" /etc/resolv.conf && exec \"$@\"")
        .arg(resolv_conf.path())
        .arg(env!("CARGO_BIN_EXE_wasmhost"))
        .args(["run", &fixture.nobody, "--listen", "127.0.0.1:0", "--cache-dir"])
        .arg(fixture.cache.path())
        .args(["--network", "outbound", "--allowed-outbound-host", entry])
        .env("WASMHOST_LOG", "info")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    WithTestDns { server: Server::from_command(command), asked, _resolv_conf: resolv_conf }
}

/// `*.domain` in the allow-list: every DNS query of the container goes to
/// wasmhost's resolver, which asks the host's (here the test's own DNS
/// server, named by a resolv.conf bind-mounted for wasmhost alone) and
/// allows the addresses answered for names under the pattern before the
/// container has them. The container reaches the service by such a name;
/// the same address by itself, before the lookup, is refused; a name
/// outside the pattern resolves (to that address too) but is refused.
#[tokio::test]
async fn outbound_subdomain_patterns_allow_what_the_containers_resolver_answered() {
    let fixture = DebianFixture::new();
    let ip = host_address();
    let std::net::IpAddr::V4(v4) = ip else { panic!("an IPv4 host address: {ip}") };
    let port = host_service(ip);
    let entry = format!("http://*.test-wasmhost.example:{port}");
    let WithTestDns { server, asked, _resolv_conf } = run_with_test_dns(&fixture, [127, 0, 83, 53], v4, &entry);
    let client = http1();
    let connect = |host: &str| get_text(&client, server.url(&format!("/connect?host={host}&port={port}")));
    // Not looked up through the resolver: refused at once.
    let by_address = connect(&ip.to_string()).await;
    assert!(by_address.starts_with("refused: ") && by_address.contains("Connection refused"), "{by_address}");
    // Outside the pattern: resolved (no name error), to the very same
    // address, and refused.
    let outside = connect("elsewhere.wasmhost-other.example").await;
    assert!(outside.starts_with("refused: ") && outside.contains("Connection refused"), "{outside}");
    // Under the pattern: allowed by the answer, before the container had it.
    assert_eq!(connect("api.test-wasmhost.example").await, "connected: HTTP/1.0 200 OK\n");
    let log = server.log();
    assert!(
        log.contains(&format!("`{entry}` allows {ip} (answered for `api.test-wasmhost.example`)")),
        "{log}"
    );
    assert!(!log.contains("wasmhost-other"), "nothing allowed for the other name: {log}");
    let asked = asked.lock().unwrap().clone();
    for name in ["elsewhere.wasmhost-other.example", "api.test-wasmhost.example"] {
        assert!(asked.iter().any(|a| a == name), "{name} not asked: {asked:?}");
    }
    stop(server);
}

/// Runs `work` on a thread that has entered the network namespace of
/// `server`'s container (started by a request first): what the container
/// sends, the namespace's filter sees alike.
async fn in_containers_netns<T: Send + 'static>(
    server: &Server,
    work: impl FnOnce() -> T + Send + 'static,
) -> T {
    assert_eq!(get_text(&http1(), server.url("/")).await, "hello from debian\n");
    let init = container_init_pid(&format!("wasmhost-{}-", server.pid()));
    let netns = std::fs::File::open(format!("/proc/{init}/ns/net")).unwrap();
    tokio::task::spawn_blocking(move || {
        nix::sched::setns(&netns, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        work()
    })
    .await
    .unwrap()
}

/// An A query for `name` over UDP to `server` from this thread's
/// namespace; the addresses answered, or why there is no answer.
fn query_a(server: std::net::SocketAddr, name: &str) -> Result<Vec<std::net::IpAddr>, String> {
    use hickory_proto::op::{Message, MessageType, OpCode, Query};
    use hickory_proto::rr::{Name, RData, RecordType};
    let mut query = Message::new(0x5151, MessageType::Query, OpCode::Query);
    query.metadata.recursion_desired = true;
    query.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
    let local = if server.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
    let socket = std::net::UdpSocket::bind(local).map_err(|e| e.to_string())?;
    socket.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    socket.connect(server).map_err(|e| format!("connect: {e}"))?;
    socket.send(&query.to_vec().unwrap()).map_err(|e| format!("send: {e}"))?;
    let mut buffer = [0u8; 1500];
    let length = socket.recv(&mut buffer).map_err(|e| format!("receive: {e}"))?;
    let answer = Message::from_vec(&buffer[..length]).map_err(|e| e.to_string())?;
    Ok(answer
        .answers
        .iter()
        .filter_map(|record| match &record.data {
            RData::A(a) => Some(std::net::IpAddr::V4(a.0)),
            _ => None,
        })
        .collect())
}

/// DNS over IPv6: a query the container sends to an IPv6 nameserver (any
/// off loopback; here not slirp4netns' `fd00::3` but an address nothing
/// answers at) is redirected by the IPv6 `nat` table to wasmhost's
/// resolver on `::1`, which asks the host's and allows the answer under
/// the pattern, as over IPv4.
#[tokio::test]
async fn outbound_dns_over_ipv6_reaches_wasmhosts_resolver() {
    if !std::path::Path::new("/proc/net/if_inet6").exists() {
        eprintln!("skipped: this kernel has no IPv6");
        return;
    }
    let routes = std::process::Command::new("ip").args(["-6", "route", "show", "default"]).output().unwrap();
    if routes.stdout.is_empty() {
        // slirp4netns then gives the container no IPv6 address or route:
        // a query to an IPv6 nameserver cannot leave its socket.
        eprintln!("skipped: this host has no IPv6 default route");
        return;
    }
    let fixture = DebianFixture::new();
    let ip = host_address();
    let std::net::IpAddr::V4(v4) = ip else { panic!("an IPv4 host address: {ip}") };
    let entry = "http://*.test-wasmhost.example:80";
    let WithTestDns { server, asked, _resolv_conf } = run_with_test_dns(&fixture, [127, 0, 83, 54], v4, entry);
    let answer = in_containers_netns(&server, || {
        let nameserver: std::net::SocketAddr = "[2001:db8::53]:53".parse().unwrap();
        // Until the container's IPv6 address is configured (router
        // advertisement, then duplicate address detection), there is no
        // route, then only a link-local source (a query from it goes
        // unanswered: see dns.rs). Connecting a UDP socket sends nothing.
        let source = || {
            let socket = std::net::UdpSocket::bind("[::]:0").ok()?;
            socket.connect(nameserver).ok()?;
            let std::net::IpAddr::V6(source) = socket.local_addr().ok()?.ip() else { return None };
            (!source.is_unicast_link_local()).then_some(source)
        };
        let started = Instant::now();
        while source().is_none() {
            assert!(started.elapsed() < Duration::from_secs(15), "no IPv6 address in the container");
            std::thread::sleep(Duration::from_millis(100));
        }
        query_a(nameserver, "api.test-wasmhost.example")
    })
    .await;
    assert_eq!(answer, Ok(vec![ip]), "{}", server.log());
    assert!(
        server.log().contains(&format!("`{entry}` allows {ip} (answered for `api.test-wasmhost.example`)")),
        "{}",
        server.log()
    );
    assert!(asked.lock().unwrap().iter().any(|a| a == "api.test-wasmhost.example"));
    stop(server);
}

/// A DNS server the container runs for itself on `127.0.0.1:53` (as an
/// image with its own dnsmasq does) gets its queries: loopback DNS is not
/// redirected when the image's resolv.conf names a nameserver (this one
/// names the build host's). A query that leaves loopback still goes to
/// wasmhost's resolver.
#[tokio::test]
async fn outbound_a_containers_own_dns_server_on_loopback_keeps_its_queries() {
    let fixture = DebianFixture::new();
    let ip = host_address();
    let std::net::IpAddr::V4(v4) = ip else { panic!("an IPv4 host address: {ip}") };
    let WithTestDns { server, _resolv_conf, .. } = run_with_test_dns(&fixture, [127, 0, 83, 55], v4, "http://*.test-wasmhost.example:80");
    let own: std::net::IpAddr = "192.0.2.99".parse().unwrap();
    let (from_own, from_slirp) = in_containers_netns(&server, move || {
        // The container's own server: answers one query, with `own`.
        let socket = std::net::UdpSocket::bind("127.0.0.1:53").expect("127.0.0.1:53 free in the container");
        let serving = std::thread::spawn(move || {
            use hickory_proto::op::{Message, MessageType};
            use hickory_proto::rr::{rdata::A, RData, Record};
            let std::net::IpAddr::V4(own) = own else { unreachable!() };
            socket.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut buffer = [0u8; 1500];
            let (length, from) = socket.recv_from(&mut buffer).unwrap();
            let query = Message::from_vec(&buffer[..length]).unwrap();
            let question = query.queries[0].clone();
            let mut reply = Message::new(query.metadata.id, MessageType::Response, query.metadata.op_code);
            reply.add_answer(Record::from_rdata(question.name().clone(), 60, RData::A(A(own))));
            reply.add_query(question);
            socket.send_to(&reply.to_vec().unwrap(), from).unwrap();
        });
        let from_own = query_a("127.0.0.1:53".parse().unwrap(), "api.test-wasmhost.example");
        serving.join().unwrap();
        // slirp4netns' resolver, as its resolv.conf would name it.
        let from_slirp = query_a("10.0.2.3:53".parse().unwrap(), "api.test-wasmhost.example");
        (from_own, from_slirp)
    })
    .await;
    assert_eq!(from_own, Ok(vec![own]), "the container's own server answered");
    assert_eq!(from_slirp, Ok(vec![ip]), "wasmhost's resolver answered: {}", server.log());
    stop(server);
}

/// `--health-path`: a container whose health check fails `retries` times
/// in a row is restarted (its replacement is healthy again).
#[tokio::test]
async fn an_unhealthy_container_is_restarted() {
    let fixture = DebianFixture::new();
    let server = fixture.run(
        &fixture.nobody,
        &["--health-path", "/healthz", "--health-interval", "200ms", "--health-retries", "2"],
    );
    let client = http1();
    assert_eq!(get_text(&client, server.url("/healthz")).await, "ok\n");
    let first = logged_id(&server.wait_for_log("ready in", Duration::from_secs(5)));
    assert_eq!(get_text(&client, server.url("/sicken")).await, "sick\n");
    server.wait_for_log("is unhealthy: restarting it", Duration::from_secs(10));
    assert!(server.log().contains("health check 2/2 of `/healthz` failed: answered 500"), "{}", server.log());
    // 503 while it restarts (after the crash backoff), then healthy.
    common::wait_for_async("the restart", Duration::from_secs(15), || {
        let request = client.get(server.url("/healthz")).send();
        async move { (request.await.unwrap().status() == 200).then_some(()) }
    })
    .await;
    server.wait_for_log_count("ready in", 2, Duration::from_secs(5));
    let log = server.log();
    let second = logged_id(log.lines().filter(|l| l.contains("ready in")).nth(1).unwrap());
    assert_ne!(first, second, "{log}");
    stop(server);
}

/// Docker's JSON for `HEALTHCHECK --interval=… --retries=2 CMD-SHELL
/// <command>` (durations in nanoseconds).
fn shell_healthcheck(command: &str, interval: Duration) -> serde_json::Value {
    serde_json::json!({
        "Test": ["CMD-SHELL", command],
        "Interval": interval.as_nanos() as u64,
        "Retries": 2,
    })
}

/// `/readyz` of `server`'s admin listener: its status and body.
fn readyz(server: &common::Server) -> (u16, String) {
    common::get_blocking(&format!("http://{}/readyz", server.admin_address()))
}

/// Waits until `/readyz` answers `status` and returns its body.
fn wait_for_readyz(server: &common::Server, status: u16, timeout: Duration) -> String {
    wait_for(
        &format!("/readyz answering {status}"),
        timeout,
        || {
            let (now, body) = readyz(server);
            (now == status).then_some(body)
        },
        || format!("/readyz: {:?}\n{}", readyz(server), server.log()),
    )
}

/// The image's HEALTHCHECK runs inside the running container as its own
/// process runs (the image's user, no capabilities, seccomp and
/// no_new_privs in force, the container's namespaces and filesystem);
/// once it passes, the container is ready and the metrics say healthy.
/// The same under runc's and crun's `exec`.
#[tokio::test]
async fn an_image_healthcheck_runs_inside_the_container_confined_as_its_user_and_makes_it_ready() {
    let fixture = checked_fixture(None);
    checked_under(&fixture, "embedded", "www", false).await;
}

#[tokio::test]
async fn an_image_healthcheck_runs_the_same_under_runc_and_crun() {
    let fixture = checked_fixture(None);
    checked_under(&fixture, "runc", "www", false).await;
    checked_under(&fixture, "crun", "www", false).await;
}

/// In a user namespace the embedded runtime's exec joins it first (as
/// runc's nsexec does), then the others: the check runs with the
/// container's mapped ids, not the host's, and as confined as above; as
/// root inside, with the capabilities root has in the container.
#[tokio::test]
async fn an_image_healthcheck_in_a_user_namespace_runs_inside_it_as_the_containers_user() {
    let fixture = checked_fixture(None);
    checked_under(&fixture, "embedded", "www", true).await;
    let root = checked_fixture(Some("root"));
    checked_under(&root, "embedded", "root", true).await;
}

/// What a check reports on itself: its user, ids, capabilities and
/// confinement, its user namespace's uid map, its namespaces and the
/// container's pid 1; and (the `wget`) that it reaches the container's
/// port on the container's loopback. The image's user is `user` if given
/// (else `www`).
fn checked_fixture(user: Option<&str>) -> BusyboxFixture {
    let check = shell_healthcheck(
        "{ id -un; grep -E '^(Uid|Gid|CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status; \
         cat /proc/self/uid_map; \
         for n in net user mnt pid; do /bin/busybox readlink /proc/self/ns/$n; done; \
         cat /proc/1/cmdline; } > /tmp/checked \
         && /bin/busybox wget -q -O /dev/null http://127.0.0.1:8080/index.html",
        Duration::from_millis(200),
    );
    let mut config = vec![("Healthcheck", check)];
    config.extend(user.map(|user| ("User", serde_json::json!(user))));
    BusyboxFixture::with_config(&format!("test/checked:{}", user.unwrap_or("www")), &config)
}

/// Runs `fixture` (whose image's user is `user`) under `runtime` and
/// checks what its HEALTHCHECK saw.
async fn checked_under(fixture: &BusyboxFixture, runtime: &str, user: &str, user_namespace: bool) {
    let mut args = vec!["--admin-listen", "127.0.0.1:0", "--oci-runtime", runtime];
    if user_namespace {
        args.push("--user-namespace");
    }
    let server = fixture.run(&args);
    wait_for_readyz(&server, 200, Duration::from_secs(20));
    server.wait_for_log("is healthy", Duration::from_secs(5));
    assert!(
        server.metrics().contains("wasmhost_container_health{component=\"checked\",health=\"healthy\"} 1"),
        "{}",
        server.metrics()
    );
    let client = http1();
    assert_eq!(
        get_text(&client, server.url("/index.html")).await,
        "hello from busybox\n"
    );
    // What the check saw (it wrote it into the container's /tmp, which the
    // container's own process reads back): the image's user with the
    // container's ids, Docker's confinement, and the container's pid 1
    // (wasmhost's init): it ran in the container's pid namespace.
    let checked = get_text(&client, server.url("/cgi-bin/checked")).await;
    let lines: Vec<&str> = checked.lines().collect();
    let id = if user == "root" { 0 } else { 33 };
    assert_eq!(lines.first(), Some(&user), "{checked}");
    assert!(checked.contains(&format!("Uid:\t{id}\t{id}\t{id}\t{id}\n")), "{checked}");
    assert!(checked.contains(&format!("Gid:\t{id}\t{id}\t{id}\t{id}\n")), "{checked}");
    assert!(checked.contains("NoNewPrivs:\t1"), "{checked}");
    assert!(checked.contains("Seccomp:\t2"), "{checked}");
    assert!(checked.contains("/.wasmhost-init"), "{checked}");
    // Its user namespace: the container's, whose root is an unprivileged
    // host uid; or, without one, the host's.
    let map = if user_namespace {
        ["0", "1000000000", "65536"]
    } else {
        ["0", "0", "4294967295"]
    };
    let map_line = lines
        .iter()
        .find(|l| l.split_whitespace().count() == 3 && l.trim_start().starts_with('0'))
        .unwrap_or_else(|| panic!("no uid map in {checked}"));
    assert_eq!(map_line.split_whitespace().collect::<Vec<_>>(), map, "{checked}");
    // The same network, user, mount and pid namespaces and the same
    // bounding set as the container's own processes (a CGI script of its
    // httpd).
    let own = get_text(&client, server.url("/cgi-bin/ns")).await;
    let namespaces: Vec<&str> = own.lines().collect();
    assert_eq!(namespaces.len(), 4, "{own}");
    for namespace in &namespaces {
        assert!(lines.contains(namespace), "{namespace} not in {checked}");
    }
    // Its capabilities: a non-root user's none; root's, as the container's
    // own root process holds them (Docker's default set).
    let status = get_text(&client, server.url("/cgi-bin/status")).await;
    let set = |name: &str| status.lines().find(|l| l.starts_with(name)).unwrap().to_owned();
    assert!(lines.contains(&set("CapBnd:").as_str()), "{status} vs {checked}");
    let effective = set("CapEff:");
    assert_eq!(effective == "CapEff:\t0000000000000000", user == "www", "{status}");
    assert!(lines.contains(&effective.as_str()), "{status} vs {checked}");
    stop(server);
}

/// A container whose health check fails `retries` times in a row: not
/// ready in `/readyz`, unhealthy in the metrics, stopped with its stop
/// signal (which busybox as pid 1 ignores, so the unhealthy container
/// stays for the grace), then restarted — a new container, ready again
/// once healthy.
async fn unhealthy_is_not_ready_then_restarted(fixture: &BusyboxFixture, check: &[&str], failed: &str) {
    let mut args = vec!["--admin-listen", "127.0.0.1:0", "--no-init", "--stop-grace", "5s"];
    args.extend_from_slice(check);
    let server = fixture.run(&args);
    let client = http1();
    wait_for_readyz(&server, 200, Duration::from_secs(20));
    let first = logged_id(&server.wait_for_log("ready in", Duration::from_secs(5)));
    assert_eq!(get_text(&client, server.url("/cgi-bin/sicken")).await, "sick\n");
    let body = wait_for_readyz(&server, 503, Duration::from_secs(10));
    assert!(body.contains("is unhealthy (health: unhealthy)"), "{body}");
    let metrics = server.metrics();
    assert!(metrics.contains("state=\"unhealthy\"} 1"), "{metrics}");
    assert!(metrics.contains("health=\"unhealthy\"} 1"), "{metrics}");
    server.wait_for_log("is unhealthy: restarting it", Duration::from_secs(5));
    assert!(server.log().contains(failed), "{}", server.log());
    // SIGKILL after the grace, the backoff, then a request starts the next.
    server.wait_for_log("SIGKILL", Duration::from_secs(10));
    common::wait_for_async("the restart", Duration::from_secs(20), || {
        let request = client.get(server.url("/index.html")).send();
        let started = server.log_count("ready in") == 2;
        async move { (request.await.unwrap().status() == 200 && started).then_some(()) }
    })
    .await;
    let log = server.log();
    let second = logged_id(log.lines().filter(|l| l.contains("ready in")).nth(1).unwrap());
    assert_ne!(first, second, "{log}");
    wait_for_readyz(&server, 200, Duration::from_secs(20));
    assert!(server.metrics().contains("health=\"healthy\"} 1"), "{}", server.metrics());
    stop(server);
}

#[tokio::test]
async fn an_image_healthcheck_failing_makes_the_container_not_ready_and_restarts_it() {
    unhealthy_is_not_ready_then_restarted(&sickening_fixture(), &[], SICKENED).await;
}

#[tokio::test]
async fn an_image_healthcheck_failing_in_a_user_namespace_makes_the_container_not_ready_and_restarts_it() {
    unhealthy_is_not_ready_then_restarted(&sickening_fixture(), &["--user-namespace"], SICKENED).await;
}

/// An image whose check fails once `/cgi-bin/sicken` made `/tmp/sick`.
fn sickening_fixture() -> BusyboxFixture {
    BusyboxFixture::with_healthcheck(
        "test/sickening:1",
        shell_healthcheck("test ! -e /tmp/sick", Duration::from_millis(200)),
    )
}

/// The log line of its second failure in a row.
const SICKENED: &str = "health check 2/2 of `/bin/sh -c test ! -e /tmp/sick` failed: exit code 1";

#[tokio::test]
async fn an_http_health_check_failing_makes_the_container_not_ready_and_restarts_it() {
    let fixture = fixture("test/http-health:1");
    unhealthy_is_not_ready_then_restarted(
        &fixture,
        &["--health-path", "/cgi-bin/health", "--health-interval", "200ms", "--health-retries", "2"],
        "health check 2/2 of `/cgi-bin/health` failed: answered 500",
    )
    .await;
}

/// Until an image's check first passes the container is `starting`, not
/// ready (here: its first check is an hour away); `--no-healthcheck`
/// and `HEALTHCHECK NONE` leave readiness to the port alone.
#[tokio::test]
async fn an_image_healthcheck_keeps_the_container_starting_unless_none_or_turned_off() {
    let hour = BusyboxFixture::with_healthcheck(
        "test/slow-check:1",
        shell_healthcheck("true", Duration::from_secs(3600)),
    );
    let server = hour.run(&["--admin-listen", "127.0.0.1:0"]);
    let (status, body) = readyz(&server);
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("is running (health: starting)"), "{body}");
    assert!(server.metrics().contains("health=\"starting\"} 1"), "{}", server.metrics());
    // Served meanwhile: readiness is for the deployment, not a gate.
    assert_eq!(get_text(&http1(), server.url("/index.html")).await, "hello from busybox\n");
    stop(server);

    let server = hour.run(&["--admin-listen", "127.0.0.1:0", "--no-healthcheck"]);
    assert_eq!(readyz(&server), (200, "ready\n".to_owned()));
    assert!(!server.metrics().contains("wasmhost_container_health{"), "{}", server.metrics());
    stop(server);

    let none = BusyboxFixture::with_healthcheck("test/none:1", serde_json::json!({ "Test": ["NONE"] }));
    let server = none.run(&["--admin-listen", "127.0.0.1:0"]);
    assert_eq!(readyz(&server), (200, "ready\n".to_owned()));
    assert!(!server.metrics().contains("wasmhost_container_health{"), "{}", server.metrics());
    stop(server);
}

/// A check still running at its timeout is killed (as Docker kills it)
/// and counts as a failure, with what it printed.
#[tokio::test]
async fn a_healthcheck_past_its_timeout_is_killed_and_counts_as_a_failure() {
    let fixture = BusyboxFixture::with_healthcheck(
        "test/stuck-check:1",
        serde_json::json!({
            "Test": ["CMD-SHELL", "echo waiting; exec /bin/busybox sleep 601"],
            "Interval": 5_000_000_000u64,
            "Timeout": 300_000_000u64,
            "Retries": 2,
        }),
    );
    let server = fixture.run(&[]);
    let line = server.wait_for_log("health check 1/2", Duration::from_secs(20));
    assert!(
        line.contains("still running after 300ms (killed), output \"waiting\""),
        "{line}"
    );
    // The next check is five seconds away: no check runs now, and the
    // killed one left nothing behind.
    let left = std::process::Command::new("pgrep")
        .args(["-a", "-f", "busybox sleep 601"])
        .output()
        .unwrap();
    assert!(!left.status.success(), "{}", String::from_utf8_lossy(&left.stdout));
    assert_eq!(
        get_text(&http1(), server.url("/index.html")).await,
        "hello from busybox\n"
    );
    stop(server);
}
