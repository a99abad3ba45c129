//! The containerd shim end to end, as root, against Debian's containerd
//! (1.6.20 on Debian 12) started privately by the harness: images built
//! by `wasmhost image app` and imported with `ctr images import`, run with
//! `ctr run --runtime io.containerd.wasmhost.v1`, in the host's network
//! namespace and in one the test makes; requests, SIGTERM drains, SIGKILL,
//! exit statuses, the task events in order, cgroup figures, and nothing
//! left behind (processes, mounts, cgroups, shim sockets), also after the
//! shim itself is killed.

mod common;

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::containerd::{
    curl_in, free_port, mounts_under, processes_with, Containerd, Events, NetNs, RUNTIME,
};
use common::{get_blocking, guest, in_flight_echo, wait_for, wait_until};

const WAIT: Duration = Duration::from_secs(60);

/// `ctr run` in the foreground (its stdout is the task's, through
/// containerd's FIFOs), collected as it comes.
struct Run {
    child: Child,
    output: Arc<Mutex<String>>,
}

impl Run {
    fn start(ctd: &Containerd, flags: &[&str], image: &str, id: &str) -> Run {
        let mut args = vec!["run", "--runtime", RUNTIME];
        args.extend_from_slice(flags);
        args.push(image);
        args.push(id);
        let mut child = ctd
            .ctr_command(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let output = Arc::new(Mutex::new(String::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let sink = output.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let mut out = sink.lock().unwrap();
                    out.push_str(&line);
                    out.push('\n');
                }
            });
        }
        Run { child, output }
    }

    fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// `ctr run`'s exit code (the task's exit status, as ctr reports it).
    fn wait_exit(&mut self) -> i32 {
        let child = &mut self.child;
        let code = wait_for(
            "ctr run exits",
            WAIT,
            || child.try_wait().unwrap().map(|s| s.code().unwrap_or(-1)),
            String::new,
        );
        // The last lines of output may still be on their way.
        std::thread::sleep(Duration::from_millis(100));
        code
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// (Task ids are unique across the tests: cgroups are the machine's, and
/// the tests run at once.)
///
/// Whatever the task `id` had is gone: its shim and wasmhost processes,
/// its mounts, its cgroup, the shim's socket.
fn assert_nothing_left(ctd: &Containerd, id: &str) {
    let bundle = ctd.bundles().join(id);
    wait_until("the shim and the app exit", WAIT, || {
        processes_with(&format!("-id {id} ")).is_empty()
            && processes_with(&bundle.display().to_string()).is_empty()
    });
    // (The test's own network namespace is bound under the directory too.)
    assert_eq!(
        mounts_under(&ctd.dir.path().join("state")),
        Vec::<String>::new()
    );
    for hierarchy in ["memory/", "pids/", "cpu/", ""] {
        let cgroup = Path::new("/sys/fs/cgroup")
            .join(hierarchy)
            .join("default")
            .join(id);
        assert!(!cgroup.exists(), "{} is left", cgroup.display());
    }
    assert_eq!(ctd.shim_sockets(), Vec::<std::path::PathBuf>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_component_image_serves_drains_on_sigterm_and_leaves_nothing() {
    let ctd = Containerd::start(false);
    let events = Events::listen(&ctd);
    ctd.import_app(&guest("echo"), "docker.io/wasmhost/echo:test", &[]);
    let port = free_port();
    let listen = format!("SPIN_HTTP_LISTEN_ADDR=127.0.0.1:{port}");
    let mut run = Run::start(
        &ctd,
        &["--net-host", "--env", &listen],
        "docker.io/wasmhost/echo:test",
        "echo1",
    );
    let url = format!("http://127.0.0.1:{port}/");
    wait_until("the task answers", WAIT, || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    // wasmhost's stdout reached ctr through containerd's FIFO.
    wait_until("wasmhost's stdout reaches ctr", WAIT, || {
        run.output().contains("serving `")
    });
    let tasks = ctd.ctr(&["tasks", "ls"]);
    assert!(
        tasks.contains("echo1") && tasks.contains("RUNNING"),
        "{tasks}"
    );
    // Cgroup figures, as CRI reads them for pod metrics.
    let metrics = ctd.ctr(&["tasks", "metrics", "echo1"]);
    assert!(metrics.contains("memory.usage_in_bytes"), "{metrics}");

    // The optimised code is compiled in the background (the task served
    // from baseline code meanwhile) into the node's cache.
    wait_until("the node's compile cache is written", WAIT, || {
        ctd.dir.path().join("cache/compiled").is_dir()
    });
    // A request in flight when SIGTERM arrives is answered in full.
    let (tx, response) = in_flight_echo(url.clone(), b"first ").await;
    ctd.ctr(&["tasks", "kill", "echo1"]);
    // Draining: no new connection is served.
    wait_until("the listener closes", WAIT, || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
    });
    tx.send(Ok(b"and last".to_vec())).await.unwrap();
    drop(tx);
    assert_eq!(response.text().await.unwrap(), "first and last");
    assert_eq!(run.wait_exit(), 0, "{}", run.output());

    wait_until("the task events arrive", WAIT, || {
        events.task_topics("echo1").len() >= 4
    });
    assert_eq!(
        events.task_topics("echo1"),
        [
            "/tasks/create",
            "/tasks/start",
            "/tasks/exit",
            "/tasks/delete"
        ],
        "{}",
        events.all()
    );
    assert_nothing_left(&ctd, "echo1");
    ctd.ctr(&["containers", "rm", "echo1"]);
    // The compile cache is the node's, not the pod's.
    assert!(ctd.dir.path().join("cache/compiled").is_dir());
}

#[test]
fn a_spin_app_image_serves_in_a_network_namespace_and_sigkill_stops_it() {
    // The example's sources are the built guests.
    for name in ["static_files", "spin_sdk_kv", "spin_app_api"] {
        guest(name);
    }
    let ctd = Containerd::start(false);
    let manifest = common::repo_root().join("examples/spin-app/spin.toml");
    ctd.import_app(&manifest, "docker.io/wasmhost/spin-app:test", &[]);
    let netns = NetNs::create(ctd.dir.path());
    let ns = format!("network:{}", netns.path.display());
    let mut run = Run::start(
        &ctd,
        &["--with-ns", &ns],
        "docker.io/wasmhost/spin-app:test",
        "app1",
    );
    // Port 80 (the default) inside the namespace.
    let (status, body) = wait_for(
        "the app answers inside its namespace",
        WAIT,
        || {
            let (status, body) = netns.curl("http://127.0.0.1/api/greet/pod");
            (status == 200).then_some((status, body))
        },
        || {
            let log = ctd.log();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            format!(
                "ctr run: {}\ntasks: {}\ncontainerd: {}",
                run.output(),
                String::from_utf8_lossy(&ctd.ctr_output(&["tasks", "ls"]).stdout),
                tail.join("\n")
            )
        },
    );
    assert_eq!(status, 200);
    assert!(body.contains("Hello, pod"), "{body}");
    assert_eq!(netns.curl("http://127.0.0.1/count"), (200, "1".into()));
    assert_eq!(netns.curl("http://127.0.0.1/count"), (200, "2".into()));
    let (status, _) = netns.curl("http://127.0.0.1/static/index.html");
    assert_eq!(status, 200);
    ctd.ctr(&["tasks", "kill", "--signal", "SIGKILL", "app1"]);
    assert_eq!(run.wait_exit(), 137, "{}", run.output());
    assert_nothing_left(&ctd, "app1");
}

#[test]
fn spin_variables_come_from_the_containers_environment() {
    let ctd = Containerd::start(false);
    let dir = ctd.dir.path().join("vars-app");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("spin.toml"),
        format!(
            r#"spin_manifest_version = 2
[application]
name = "vars"
[variables]
greeting = {{ required = true }}
[[trigger.http]]
route = "/var/..."
component = "vars"
[component.vars]
source = "{}"
variables = {{ greeting = "{{{{ greeting }}}}" }}
"#,
            guest("spin_sdk_variables").display()
        ),
    )
    .unwrap();
    ctd.import_app(&dir.join("spin.toml"), "docker.io/wasmhost/vars:test", &[]);
    let port = free_port();
    let listen = format!("SPIN_HTTP_LISTEN_ADDR=127.0.0.1:{port}");
    let mut run = Run::start(
        &ctd,
        &[
            "--net-host",
            "--env",
            &listen,
            "--env",
            "SPIN_VARIABLE_GREETING=from the pod",
        ],
        "docker.io/wasmhost/vars:test",
        "vars1",
    );
    let url = format!("http://127.0.0.1:{port}/var/greeting");
    let (status, body) = wait_for(
        "the app answers",
        WAIT,
        || std::panic::catch_unwind(|| get_blocking(&url)).ok(),
        || run.output(),
    );
    assert_eq!((status, body.as_str()), (200, "from the pod"));
    ctd.ctr(&["tasks", "kill", "vars1"]);
    assert_eq!(run.wait_exit(), 0, "{}", run.output());
    assert_nothing_left(&ctd, "vars1");
}

#[test]
fn an_app_that_fails_is_reported_exited() {
    let ctd = Containerd::start(false);
    let events = Events::listen(&ctd);
    let bad = ctd.dir.path().join("broken.wasm");
    std::fs::write(&bad, b"not a component").unwrap();
    ctd.import_app(&bad, "docker.io/wasmhost/broken:test", &[]);
    let port = free_port();
    let listen = format!("SPIN_HTTP_LISTEN_ADDR=127.0.0.1:{port}");
    let mut run = Run::start(
        &ctd,
        &["--net-host", "--env", &listen],
        "docker.io/wasmhost/broken:test",
        "broken1",
    );
    let code = run.wait_exit();
    assert_ne!(code, 0, "{}", run.output());
    // wasmhost's error reached ctr through the stderr FIFO.
    assert!(run.output().contains("error"), "{}", run.output());
    wait_until("the exit event arrives", WAIT, || {
        events
            .task_topics("broken1")
            .contains(&"/tasks/exit".to_owned())
    });
    assert_nothing_left(&ctd, "broken1");
}

#[test]
fn a_killed_shim_is_cleaned_up_by_containerd() {
    let ctd = Containerd::start(false);
    ctd.import_app(&guest("hello"), "docker.io/wasmhost/hello:test", &[]);
    let port = free_port();
    let listen = format!("SPIN_HTTP_LISTEN_ADDR=127.0.0.1:{port}");
    let log = ctd.dir.path().join("hello.log");
    let log_uri = format!("file://{}", log.display());
    ctd.ctr(&[
        "run",
        "-d",
        "--runtime",
        RUNTIME,
        "--net-host",
        "--log-uri",
        &log_uri,
        "--env",
        &listen,
        "docker.io/wasmhost/hello:test",
        "hello1",
    ]);
    let url = format!("http://127.0.0.1:{port}/");
    let (status, _) = wait_for(
        "the task answers",
        WAIT,
        || std::panic::catch_unwind(|| get_blocking(&url)).ok(),
        || std::fs::read_to_string(&log).unwrap_or_default(),
    );
    assert_eq!(status, 200);
    // The log file (`--log-uri file://`) has wasmhost's stdout.
    assert!(std::fs::read_to_string(&log).unwrap().contains("serving `"));
    let shims = processes_with("-id hello1 ");
    assert_eq!(shims.len(), 1, "{shims:?}");
    std::process::Command::new("kill")
        .arg("-KILL")
        .arg(shims[0].to_string())
        .status()
        .unwrap();
    // containerd sees its connection to the shim close, runs the shim's
    // `delete`, which stops the app and removes what it had.
    wait_until("the task is gone", WAIT, || {
        !ctd.ctr(&["tasks", "ls"]).contains("RUNNING")
    });
    assert_nothing_left(&ctd, "hello1");
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}

/// The pid and status `ctr tasks ls` gives for task `id`.
fn task_row(ctd: &Containerd, id: &str) -> Option<(u32, String)> {
    ctd.ctr(&["tasks", "ls"]).lines().find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        (cols.first() == Some(&id)).then(|| (cols[1].parse().unwrap_or(0), cols[2].to_owned()))
    })
}

/// `ctr run -d` with a `file://` log in the containerd's directory.
fn run_detached(ctd: &Containerd, flags: &[&str], image: &str, id: &str) {
    let log_uri = format!(
        "file://{}",
        ctd.dir.path().join(format!("{id}.log")).display()
    );
    let mut args = vec!["run", "-d", "--runtime", RUNTIME, "--log-uri", &log_uri];
    args.extend_from_slice(flags);
    args.push(image);
    args.push(id);
    ctd.ctr(&args);
}

/// Kills task `id` with `signal`, waits until it stopped, deletes it;
/// returns `ctr tasks delete`'s output (the exit status).
fn stop_and_delete(ctd: &Containerd, id: &str, signal: &str) -> String {
    ctd.ctr(&["tasks", "kill", "--signal", signal, id]);
    wait_until("the task stops", WAIT, || {
        task_row(ctd, id).is_some_and(|(_, status)| status == "STOPPED")
    });
    ctd.ctr(&["tasks", "delete", id])
}

/// Waits until sandbox process `pid` runs the shim's own `pause`: it is
/// forked by the shim daemon (whose command line it shows for a moment)
/// and then executes `containerd-shim-wasmhost-v1 pause`, nothing of its
/// image.
fn wait_for_native_pause(pid: u64) {
    let cmdline = || {
        let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        String::from_utf8_lossy(&raw)
            .replace('\0', " ")
            .trim()
            .to_owned()
    };
    wait_until("the sandbox executes the shim's pause", WAIT, || {
        cmdline() == "containerd-shim-wasmhost-v1 pause"
    });
}

#[test]
fn a_pod_sandbox_holds_the_pods_network_namespace_for_its_app() {
    let ctd = Containerd::start(false);
    ctd.import_app(&guest("hello"), "docker.io/wasmhost/hello:test", &[]);
    let netns = NetNs::create(ctd.dir.path());
    // The sandbox as CRI creates it: CRI's annotation, the namespace CRI
    // made. Its image is not looked into.
    let pod_ns = format!("network:{}", netns.path.display());
    run_detached(
        &ctd,
        &[
            "--annotation",
            "io.kubernetes.cri.container-type=sandbox",
            "--with-ns",
            &pod_ns,
        ],
        "docker.io/wasmhost/hello:test",
        "pod1",
    );
    let (pid, status) = task_row(&ctd, "pod1").expect("the sandbox task");
    assert_eq!(status, "RUNNING");
    wait_for_native_pause(u64::from(pid));
    // The pod's container joins the sandbox's namespace through its pid,
    // as CRI's containers do.
    let app_ns = format!("network:/proc/{pid}/ns/net");
    run_detached(
        &ctd,
        &[
            "--annotation",
            "io.kubernetes.cri.container-type=container",
            "--with-ns",
            &app_ns,
        ],
        "docker.io/wasmhost/hello:test",
        "sbapp1",
    );
    let (status, body) = wait_for(
        "the app answers in the pod's namespace",
        WAIT,
        || {
            let (status, body) = netns.curl("http://127.0.0.1/");
            (status == 200).then_some((status, body))
        },
        || std::fs::read_to_string(ctd.dir.path().join("sbapp1.log")).unwrap_or_default(),
    );
    assert_eq!(status, 200, "{body}");
    // Not on the host's port 80.
    assert!(std::net::TcpStream::connect(("127.0.0.1", 80)).is_err());
    // Stopped as the kubelet stops a pod: the app, then the sandbox.
    stop_and_delete(&ctd, "sbapp1", "SIGTERM");
    stop_and_delete(&ctd, "pod1", "SIGTERM");
    assert_nothing_left(&ctd, "sbapp1");
    assert_nothing_left(&ctd, "pod1");
}

/// A CRI client on containerd's gRPC socket, as the kubelet holds one.
async fn cri_client(
    socket: &Path,
) -> k8s_cri::v1::runtime_service_client::RuntimeServiceClient<tonic::transport::Channel> {
    let socket = socket.to_owned();
    let channel = tonic::transport::Endpoint::try_from("http://[::]:50051")
        .unwrap()
        .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
            let socket = socket.clone();
            async move {
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                    tokio::net::UnixStream::connect(socket).await?,
                ))
            }
        }))
        .await
        .expect("containerd's gRPC socket");
    k8s_cri::v1::runtime_service_client::RuntimeServiceClient::new(channel)
}

/// CRI's ContainerStatus of `id`.
async fn container_status(
    cri: &mut k8s_cri::v1::runtime_service_client::RuntimeServiceClient<tonic::transport::Channel>,
    id: &str,
) -> k8s_cri::v1::ContainerStatus {
    cri.container_status(k8s_cri::v1::ContainerStatusRequest {
        container_id: id.to_owned(),
        verbose: false,
    })
    .await
    .unwrap()
    .into_inner()
    .status
    .expect("a container status")
}

/// The kubelet's path: containerd's CRI plugin, called over gRPC as the
/// kubelet calls it, runs a pod with runtime handler `wasmhost` — its
/// sandbox (the pause container) and its app both through the shim — in
/// a network namespace CNI made; the app answers inside it; stopping and
/// removing the pod leaves nothing behind.
#[tokio::test(flavor = "multi_thread")]
async fn the_cri_plugin_runs_a_pod_through_the_wasmhost_runtime_handler() {
    use k8s_cri::v1::*;
    let ctd = Containerd::start(true);
    ctd.import_app_into(
        "k8s.io",
        &guest("hello"),
        "docker.io/wasmhost/hello:test",
        &[],
    );
    // The sandbox image containerd's config names must be present (else CRI
    // pulls it); the shim runs a sandbox natively and never looks into its
    // image, so a locally built image under that name is the whole pause
    // image.
    ctd.import_app_into(
        "k8s.io",
        &guest("hello"),
        "docker.io/wasmhost/pause:test",
        &[],
    );
    let mut cri = cri_client(&ctd.socket()).await;
    let logs = ctd.dir.path().join("pods");
    std::fs::create_dir_all(&logs).unwrap();
    let sandbox_config = PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: "hello".into(),
            uid: "hello-uid".into(),
            namespace: "default".into(),
            attempt: 0,
        }),
        hostname: "hello".into(),
        log_directory: logs.display().to_string(),
        linux: Some(LinuxPodSandboxConfig {
            security_context: Some(LinuxSandboxSecurityContext {
                namespace_options: Some(NamespaceOption {
                    network: NamespaceMode::Pod as i32,
                    pid: NamespaceMode::Container as i32,
                    ipc: NamespaceMode::Pod as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let pod = cri
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(sandbox_config.clone()),
            runtime_handler: "wasmhost".into(),
        })
        .await
        .unwrap_or_else(|e| panic!("RunPodSandbox: {e}\n{}", ctd.log()))
        .into_inner()
        .pod_sandbox_id;
    let sandbox = cri
        .pod_sandbox_status(PodSandboxStatusRequest {
            pod_sandbox_id: pod.clone(),
            verbose: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        sandbox.status.as_ref().unwrap().state,
        PodSandboxState::SandboxReady as i32
    );
    let info: serde_json::Value = serde_json::from_str(&sandbox.info["info"]).unwrap();
    let sandbox_pid = info["pid"].as_u64().expect("the sandbox's pid");
    wait_for_native_pause(sandbox_pid);
    // The pause joins its cgroup in the background (the shim's task.rs):
    // it gets there (memory and pids, on v1 or v2).
    wait_until("the sandbox's pause is in its cgroup", WAIT, || {
        let cgroups =
            std::fs::read_to_string(format!("/proc/{sandbox_pid}/cgroup")).unwrap_or_default();
        let of = |controller: &str| {
            cgroups.lines().find(|l| {
                let controllers = l.split(':').nth(1).unwrap_or_default();
                controllers.is_empty() || controllers.split(',').any(|c| c == controller)
            })
        };
        [of("memory"), of("pids")]
            .iter()
            .all(|line| line.is_some_and(|l| l.contains(&pod)))
    });

    let container = cri
        .create_container(CreateContainerRequest {
            pod_sandbox_id: pod.clone(),
            config: Some(ContainerConfig {
                metadata: Some(ContainerMetadata {
                    name: "app".into(),
                    attempt: 0,
                }),
                image: Some(ImageSpec {
                    image: "docker.io/wasmhost/hello:test".into(),
                    ..Default::default()
                }),
                log_path: "app.log".into(),
                ..Default::default()
            }),
            sandbox_config: Some(sandbox_config),
        })
        .await
        .unwrap_or_else(|e| panic!("CreateContainer: {e}\n{}", ctd.log()))
        .into_inner()
        .container_id;
    cri.start_container(StartContainerRequest {
        container_id: container.clone(),
    })
    .await
    .unwrap_or_else(|e| panic!("StartContainer: {e}\n{}", ctd.log()));
    let state = container_status(&mut cri, &container).await.state;
    assert_eq!(state, ContainerState::ContainerRunning as i32);

    // The app listens on SPIN_HTTP_LISTEN_ADDR's default, port 80, in the
    // pod's namespace (reached through the sandbox's pid), not the host's.
    let pod_netns = std::path::PathBuf::from(format!("/proc/{sandbox_pid}/ns/net"));
    let (status, body) = wait_for(
        "the app answers in the pod's network namespace",
        WAIT,
        || {
            let (status, body) = curl_in(&pod_netns, "http://127.0.0.1/");
            (status == 200).then_some((status, body))
        },
        || std::fs::read_to_string(logs.join("app.log")).unwrap_or_default(),
    );
    assert_eq!(status, 200, "{body}");
    assert!(std::net::TcpStream::connect(("127.0.0.1", 80)).is_err());
    // The app's output reached CRI's log file, in CRI's log format.
    let log = std::fs::read_to_string(logs.join("app.log")).unwrap();
    assert!(log.contains(" stdout F serving `"), "{log}");

    // Stopped as the kubelet stops a pod: SIGTERM with a grace period, the
    // exit seen, then the sandbox stopped and removed.
    cri.stop_container(StopContainerRequest {
        container_id: container.clone(),
        timeout: 10,
    })
    .await
    .unwrap();
    let status = container_status(&mut cri, &container).await;
    assert_eq!(status.state, ContainerState::ContainerExited as i32);
    assert_eq!(status.exit_code, 0, "a drained stop exits 0");
    cri.stop_pod_sandbox(StopPodSandboxRequest {
        pod_sandbox_id: pod.clone(),
    })
    .await
    .unwrap();
    cri.remove_pod_sandbox(RemovePodSandboxRequest {
        pod_sandbox_id: pod.clone(),
    })
    .await
    .unwrap();
    assert!(cri
        .list_pod_sandbox(ListPodSandboxRequest::default())
        .await
        .unwrap()
        .into_inner()
        .items
        .is_empty());
    wait_until("the shims exit", WAIT, || {
        processes_with(&format!("-id {pod} ")).is_empty()
            && processes_with(&format!("-id {container} ")).is_empty()
    });
    assert!(
        !Path::new(&format!("/proc/{sandbox_pid}")).exists(),
        "the sandbox's process is gone"
    );
    assert_eq!(ctd.shim_sockets(), Vec::<std::path::PathBuf>::new());
}
