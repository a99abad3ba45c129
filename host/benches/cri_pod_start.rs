//! Pod start to first 200 through containerd's CRI plugin, as the kubelet
//! starts a pod (issue 16): RunPodSandbox, PodSandboxStatus,
//! CreateContainer, StartContainer on one gRPC connection, then HTTP
//! polled inside the pod's network namespace until it answers 200.
//!
//! `ctr run` (bench/containerd_bench.py) times a Go client's own start and
//! a task without a sandbox; the kubelet holds one connection and starts a
//! sandbox first. This client is what `bench/cri_bench.py` runs against a
//! private containerd it set up (CRI on, CNI, images imported into
//! `k8s.io`); run alone it needs that setup.
//!
//! ```text
//! cri_pod_start --socket PATH --rounds N --handler NAME=IMAGE[,ARG...] ...
//!               [--warm-up HANDLER]
//! ```
//!
//! Each round starts one pod per handler, alternating, and removes it
//! before the next. `--warm-up` starts one pod of that handler and leaves
//! it running (the caller waits for the node's compile cache, then runs
//! the rounds, which first remove every pod left). One JSON object per
//! pod on stdout: the handler and the milliseconds from the start to the
//! end of each call and to the first 200.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::*;
use tonic::transport::Channel;

/// How long a pod may take to answer before the bench gives up.
const FIRST_200_DEADLINE: Duration = Duration::from_secs(30);
/// Between two tries of the pod's port.
const POLL: Duration = Duration::from_micros(250);
/// Where both the component (SPIN_HTTP_LISTEN_ADDR's default) and the
/// native server listen, inside the pod's network namespace.
const POD_ADDR: &str = "127.0.0.1:80";

struct Handler {
    name: String,
    image: String,
    args: Vec<String>,
}

struct Args {
    socket: PathBuf,
    rounds: usize,
    handlers: Vec<Handler>,
    warm_up: Option<String>,
    logs: PathBuf,
}

fn parse_args() -> Args {
    let mut args = Args {
        socket: PathBuf::new(),
        rounds: 10,
        handlers: Vec::new(),
        warm_up: None,
        logs: std::env::temp_dir(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--socket" => args.socket = value().into(),
            "--rounds" => args.rounds = value().parse().expect("--rounds N"),
            "--logs" => args.logs = value().into(),
            "--warm-up" => args.warm_up = Some(value()),
            "--handler" => {
                let spec = value();
                let (name, rest) = spec.split_once('=').expect("--handler NAME=IMAGE[,ARG...]");
                let mut parts = rest.split(',').map(str::to_owned);
                args.handlers.push(Handler {
                    name: name.to_owned(),
                    image: parts.next().expect("an image"),
                    args: parts.collect(),
                });
            }
            // cargo bench adds `--bench`.
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    args
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = parse_args();
    let mut cri = client(&args.socket).await;
    if let Some(name) = &args.warm_up {
        let handler = args
            .handlers
            .iter()
            .find(|h| &h.name == name)
            .expect("--warm-up names a --handler");
        let pod = start_pod(&mut cri, handler, "warm-up", &args.logs).await;
        println!("{}", pod.json());
        return;
    }
    remove_all(&mut cri).await;
    for round in 0..args.rounds {
        for handler in &args.handlers {
            let pod = start_pod(&mut cri, handler, &format!("r{round}"), &args.logs).await;
            println!("{}", pod.json());
            remove_pod(&mut cri, &pod.id).await;
        }
    }
}

/// One pod's start, in milliseconds since RunPodSandbox was called.
struct Started {
    handler: String,
    id: String,
    /// CLOCK_MONOTONIC seconds at the start, to line a pod up with a
    /// `perf record -k CLOCK_MONOTONIC` timeline.
    t0_monotonic: f64,
    sandbox: f64,
    status: f64,
    created: f64,
    started: f64,
    first_200: f64,
}

impl Started {
    fn json(&self) -> String {
        format!(
            r#"{{"handler": "{}", "t0_monotonic": {:.6}, "sandbox_ms": {:.2}, "status_ms": {:.2}, "created_ms": {:.2}, "started_ms": {:.2}, "first_200_ms": {:.2}}}"#,
            self.handler,
            self.t0_monotonic,
            self.sandbox,
            self.status,
            self.created,
            self.started,
            self.first_200
        )
    }
}

async fn start_pod(
    cri: &mut RuntimeServiceClient<Channel>,
    handler: &Handler,
    suffix: &str,
    logs: &Path,
) -> Started {
    let name = format!("{}-{suffix}", handler.name);
    let config = PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: name.clone(),
            uid: format!("{name}-uid"),
            namespace: "bench".into(),
            attempt: 0,
        }),
        hostname: name.clone(),
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
    let ms = |t: Instant| t.elapsed().as_secs_f64() * 1000.0;
    let t0_monotonic = monotonic_now();
    let t0 = Instant::now();
    let id = cri
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: handler.name.clone(),
        })
        .await
        .unwrap_or_else(|e| panic!("RunPodSandbox ({}): {e}", handler.name))
        .into_inner()
        .pod_sandbox_id;
    let sandbox = ms(t0);
    let status = cri
        .pod_sandbox_status(PodSandboxStatusRequest {
            pod_sandbox_id: id.clone(),
            verbose: true,
        })
        .await
        .expect("PodSandboxStatus")
        .into_inner();
    let info: serde_json::Value =
        serde_json::from_str(&status.info["info"]).expect("the sandbox's info");
    let pid = info["pid"].as_u64().expect("the sandbox's pid");
    let status = ms(t0);
    let container = cri
        .create_container(CreateContainerRequest {
            pod_sandbox_id: id.clone(),
            config: Some(ContainerConfig {
                metadata: Some(ContainerMetadata {
                    name: "app".into(),
                    attempt: 0,
                }),
                image: Some(ImageSpec {
                    image: handler.image.clone(),
                    ..Default::default()
                }),
                args: handler.args.clone(),
                log_path: format!("{name}.log"),
                ..Default::default()
            }),
            sandbox_config: Some(config),
        })
        .await
        .unwrap_or_else(|e| panic!("CreateContainer ({}): {e}", handler.name))
        .into_inner()
        .container_id;
    let created = ms(t0);
    cri.start_container(StartContainerRequest {
        container_id: container,
    })
    .await
    .unwrap_or_else(|e| panic!("StartContainer ({}): {e}", handler.name));
    let started = ms(t0);
    let netns = PathBuf::from(format!("/proc/{pid}/ns/net"));
    tokio::task::spawn_blocking(move || first_200_in(&netns))
        .await
        .expect("the poller");
    Started {
        handler: handler.name.clone(),
        id,
        t0_monotonic,
        sandbox,
        status,
        created,
        started,
        first_200: ms(t0),
    }
}

/// Polls `POD_ADDR` from inside network namespace `netns` until it
/// answers 200 (on a thread of its own: `setns` moves only the caller).
fn first_200_in(netns: &Path) {
    let netns = netns.to_owned();
    std::thread::spawn(move || {
        let file = std::fs::File::open(&netns).expect("the pod's network namespace");
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
            .expect("setns into the pod's network namespace");
        let addr: SocketAddr = POD_ADDR.parse().unwrap();
        let end = Instant::now() + FIRST_200_DEADLINE;
        while Instant::now() < end {
            if answers_200(&addr) {
                return;
            }
            std::thread::sleep(POLL);
        }
        panic!("no 200 from {POD_ADDR} in {}", netns.display());
    })
    .join()
    .expect("the poller thread");
}

fn answers_200(addr: &SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(addr, Duration::from_secs(1)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    if stream
        .write_all(b"GET / HTTP/1.0\r\nHost: pod\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.") && &head[9..12] == b"200"
}

async fn remove_pod(cri: &mut RuntimeServiceClient<Channel>, id: &str) {
    let _ = cri
        .stop_pod_sandbox(StopPodSandboxRequest {
            pod_sandbox_id: id.to_owned(),
        })
        .await;
    let _ = cri
        .remove_pod_sandbox(RemovePodSandboxRequest {
            pod_sandbox_id: id.to_owned(),
        })
        .await;
}

/// Removes every pod (a warm-up pod left running).
async fn remove_all(cri: &mut RuntimeServiceClient<Channel>) {
    let pods = cri
        .list_pod_sandbox(ListPodSandboxRequest::default())
        .await
        .expect("ListPodSandbox")
        .into_inner()
        .items;
    for pod in pods {
        remove_pod(cri, &pod.id).await;
    }
}

/// A CRI client on containerd's gRPC socket, as the kubelet holds one.
async fn client(socket: &Path) -> RuntimeServiceClient<Channel> {
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
    RuntimeServiceClient::new(channel)
}

/// CLOCK_MONOTONIC now, in seconds (perf's `-k CLOCK_MONOTONIC` clock).
fn monotonic_now() -> f64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid timespec for the call to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t) };
    t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
}
