#!/usr/bin/env python3
"""The containerd shim against containerd's runc shim, same containerd, same run.

1. Task start to first 200: `ctr run -d` of the hello component under
   `io.containerd.wasmhost.v1` vs busybox httpd (a static native server)
   under `io.containerd.runc.v2`, alternating, each task killed and deleted
   before the next; the wasmhost runs start with the node's compile cache
   warm (a second pod of the app).
2. The first pod of an app on a node (empty compile cache) vs the second.
3. N tasks of each at once: PSS per task (shim + its task's processes).

Runs as root against a private containerd (Debian's package) under a
temporary directory; needs ctr, umoci, skopeo, busybox-static. Usage:

    bench/containerd_bench.py [--profile debug|release] [--rounds 20] [--tasks 100]
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def sh(cmd, **kw):
    return subprocess.run(cmd, shell=True, check=True, capture_output=True, text=True, **kw).stdout


class Containerd:
    def __init__(self, work, bindir, also=None, cri=False):
        """`cri`: the CRI plugin on, as the kubelet's containerd has it (its
        own network namespace, CNI's ptp plugin for pods, handlers `runc`,
        `wasmhost` and, with `also`, `wasmhostb`); images then go to the
        `k8s.io` namespace, where CRI looks."""
        self.work = work
        self.sock = os.path.join(work, "c.sock")
        self.namespace = "k8s.io" if cri else "default"
        os.makedirs(os.path.join(work, "bin"))
        for name in ("containerd-shim-wasmhost-v1",):
            os.symlink(os.path.join(bindir, name), os.path.join(work, "bin", name))
        # A second build as runtime `io.containerd.wasmhostb.v1`, for an
        # A/B in the same run: the shim runs the `wasmhost` beside its
        # real path, so each build serves with its own.
        if also:
            os.symlink(os.path.join(also, "containerd-shim-wasmhost-v1"),
                       os.path.join(work, "bin", "containerd-shim-wasmhostb-v1"))
        with open(os.path.join(work, "config.toml"), "w") as f:
            f.write(f"""version = 2
root = "{work}/root"
state = "{work}/state"
{"" if cri else 'disabled_plugins = ["io.containerd.grpc.v1.cri"]'}
[grpc]
  address = "{self.sock}"
""")
            if cri:
                f.write(cri_config(work, also))
        env = dict(os.environ, PATH=f"{work}/bin:" + os.environ["PATH"],
                   WASMHOST_SHIM_CACHE_DIR=f"{work}/cache")
        command = ["containerd", "--config", f"{work}/config.toml"]
        if cri:
            # Its own network namespace: CNI sets pods up from there, the
            # host's network is never touched (as the tests do).
            command = ["unshare", "--net", "sh", "-c",
                       'ip link set lo up && exec containerd --config "$0"', f"{work}/config.toml"]
        self.log = open(os.path.join(work, "containerd.log"), "w")
        self.proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                                     stderr=self.log)
        for _ in range(200):
            if subprocess.run(["ctr", "-a", self.sock, "version"], capture_output=True).returncode == 0:
                return
            time.sleep(0.05)
        raise SystemExit("containerd did not start")

    def ctr(self, *args):
        return subprocess.run(["ctr", "-a", self.sock, "-n", self.namespace, *args], check=True,
                              capture_output=True, text=True).stdout

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def first_200(port, deadline=30):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as r:
                if r.status == 200:
                    return
        except Exception:
            time.sleep(0.002)
    raise SystemExit(f"no 200 on {port}")


# Per runtime, the part of each start spent until `ctr run -d` returned
# (ctr, containerd, the shim's create and start); the rest is the app
# getting to its first answer.
SPLITS = {}


def run_task(ctd, runtime, image, tid, port, args=()):
    flags = ["run", "-d", "--runtime", runtime, "--net-host", "--log-uri", f"file://{ctd.work}/{tid}.log"]
    if runtime.startswith("io.containerd.wasmhost"):
        flags += ["--env", f"SPIN_HTTP_LISTEN_ADDR=127.0.0.1:{port}"]
    t0 = time.monotonic()
    ctd.ctr(*flags, image, tid, *args)
    SPLITS.setdefault(runtime, []).append((time.monotonic() - t0) * 1000)
    first_200(port)
    return (time.monotonic() - t0) * 1000


def wait_for_cache(compiled, deadline=60):
    """Seconds until the node's compile cache holds compiled code."""
    start = time.monotonic()
    while time.monotonic() - start < deadline:
        if os.path.isdir(compiled) and any(n.endswith(".cwasm") for n in os.listdir(compiled)):
            return time.monotonic() - start
        time.sleep(0.02)
    raise SystemExit(f"no compiled code in {compiled} after {deadline} s")


def remove(ctd, tid):
    subprocess.run(["ctr", "-a", ctd.sock, "tasks", "kill", "-s", "SIGKILL", tid], capture_output=True)
    for _ in range(500):
        out = subprocess.run(["ctr", "-a", ctd.sock, "tasks", "delete", tid], capture_output=True)
        if out.returncode == 0:
            break
        time.sleep(0.01)
    subprocess.run(["ctr", "-a", ctd.sock, "containers", "rm", tid], capture_output=True)


def pss_kb(pid):
    total = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
    except OSError:
        pass
    return total


def pids_with(needle):
    found = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                cmd = open(f"/proc/{p}/cmdline", "rb").read().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if needle in cmd:
                found.append(int(p))
    return found


def task_pids(ctd):
    pids = {}
    for line in ctd.ctr("tasks", "ls").splitlines()[1:]:
        cols = line.split()
        if len(cols) >= 2:
            pids[cols[0]] = int(cols[1])
    return pids


def cri_config(work, also):
    """The CRI plugin's part of the config, and CNI's files under `work`."""
    os.makedirs(f"{work}/cni-bin")
    os.makedirs(f"{work}/cni-conf")
    for plugin in ("loopback", "ptp", "host-local"):
        os.symlink(f"/usr/lib/cni/{plugin}", f"{work}/cni-bin/{plugin}")
    with open(f"{work}/cni-conf/10-pods.conflist", "w") as f:
        f.write(f"""{{"cniVersion": "0.4.0", "name": "pods", "plugins": [{{"type": "ptp",
  "ipMasq": false, "ipam": {{"type": "host-local", "dataDir": "{work}/cni-ipam",
  "ranges": [[{{"subnet": "10.88.0.0/24"}}]]}}}}]}}""")
    also_runtime = """  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.wasmhostb]
    runtime_type = "io.containerd.wasmhostb.v1"
""" if also else ""
    # restrict_oom_score_adj: CRI gives a sandbox -998, which only a
    # process with CAP_SYS_RESOURCE may set; where the bench runs without it
    # (this machine), runc's nsexec fails on it. The wasmhost shim does not
    # set it.
    return f"""[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "docker.io/bench/pause:1"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{work}/cni-bin"
    conf_dir = "{work}/cni-conf"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.wasmhost]
    runtime_type = "io.containerd.wasmhost.v1"
{also_runtime}"""


def images(ctd, work, wasmhost):
    hello = os.path.join(REPO, "target/guest/wasm32-wasip2/release/hello.wasm")
    sh(f"{wasmhost} image app {hello} -o {work}/hello --archive {work}/hello.tar --name docker.io/bench/hello:1")
    ctd.ctr("images", "import", f"{work}/hello.tar")
    sh(f"""set -e
cd {work}
umoci init --layout httpd
umoci new --image httpd:x
umoci unpack --image httpd:x bundle
mkdir -p bundle/rootfs/bin bundle/rootfs/www
cp "$(command -v busybox)" bundle/rootfs/bin/busybox
echo hello > bundle/rootfs/www/index.html
umoci repack --image httpd:x bundle
umoci config --image httpd:x --os linux --architecture amd64 --config.entrypoint /bin/busybox
skopeo copy --quiet oci:httpd:x oci-archive:httpd.tar:docker.io/bench/httpd:1
umoci config --image httpd:x --tag pause --config.cmd sleep --config.cmd 2147483647
skopeo copy --quiet oci:httpd:pause oci-archive:pause.tar:docker.io/bench/pause:1
""")
    ctd.ctr("images", "import", f"{work}/httpd.tar")
    # CRI's sandbox image: runc runs it (busybox `sleep`, a static binary
    # like Kubernetes' pause); the wasmhost shim never looks into it.
    ctd.ctr("images", "import", f"{work}/pause.tar")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--profile", default="debug")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--tasks", type=int, default=100)
    a = ap.parse_args()
    bindir = os.path.join(REPO, "target", a.profile)
    wasmhost = os.path.join(bindir, "wasmhost")
    work = tempfile.mkdtemp(prefix="ctdb", dir="/tmp")
    ctd = Containerd(work, bindir)
    try:
        images(ctd, work, wasmhost)
        WASM, RUNC = "io.containerd.wasmhost.v1", "io.containerd.runc.v2"
        httpd = lambda port: ("/bin/busybox", "httpd", "-f", "-p", f"127.0.0.1:{port}", "-h", "/www")
        # First pod of the app on the node: empty cache; then warm.
        first = run_task(ctd, WASM, "docker.io/bench/hello:1", "first", 18900)
        # The first pod answers from baseline (Winch) code while Cranelift
        # compiles in the background; only the optimised code goes to the
        # node's cache. A pod killed before that finishes leaves nothing
        # for the next one, so the first lives until its code is cached,
        # as a real pod does.
        cached = wait_for_cache(os.path.join(work, "cache", "compiled"))
        remove(ctd, "first")
        wasm, runc = [], []
        for i in range(a.rounds):
            port = 19000 + i
            wasm.append(run_task(ctd, WASM, "docker.io/bench/hello:1", f"w{i}", port))
            remove(ctd, f"w{i}")
            runc.append(run_task(ctd, RUNC, "docker.io/bench/httpd:1", f"r{i}", port + 500, httpd(port + 500)))
            remove(ctd, f"r{i}")
        # N at once, then PSS per task.
        for i in range(a.tasks):
            run_task(ctd, WASM, "docker.io/bench/hello:1", f"mw{i}", 20000 + i)
            run_task(ctd, RUNC, "docker.io/bench/httpd:1", f"mr{i}", 21000 + i, httpd(21000 + i))
        pids = task_pids(ctd)
        def per_task(prefix, shim):
            totals = []
            for i in range(a.tasks):
                tid = f"{prefix}{i}"
                # The daemon is forked from `start` (wasmhost's) or executed
                # with its own flags (runc's): "-id ID " is in both.
                shims = set(pids_with(f"-id {tid} ")) & set(pids_with(shim))
                totals.append(sum(pss_kb(p) for p in shims) + pss_kb(pids[tid]))
            return statistics.mean(totals) / 1024
        mem_wasm = per_task("mw", "containerd-shim-wasmhost-v1")
        mem_runc = per_task("mr", "containerd-shim-runc-v2")
        for i in range(a.tasks):
            remove(ctd, f"mw{i}")
            remove(ctd, f"mr{i}")
        result = {
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "containerd": ctd.ctr("version").split("Server:")[1].split("\n")[1].split()[-1],
            "profile": a.profile,
            "rounds": a.rounds,
            "start_to_200_ms": {
                "wasmhost_shim_p50": statistics.median(wasm), "runc_shim_p50": statistics.median(runc),
                "wasmhost_shim_min": min(wasm), "runc_shim_min": min(runc),
                "ratio_p50": statistics.median(wasm) / statistics.median(runc),
            },
            "first_pod_cold_cache_ms": first,
            "first_pod_optimised_code_cached_after_s": cached,
            "ctr_run_returned_p50_ms": {
                "wasmhost_shim": statistics.median(SPLITS[WASM][1:a.rounds + 1]),
                "runc_shim": statistics.median(SPLITS[RUNC][:a.rounds]),
            },
            "tasks": a.tasks,
            "pss_mib_per_task": {"wasmhost_shim": mem_wasm, "runc_shim": mem_runc},
        }
        print(json.dumps(result, indent=2))
        with open(os.path.join(REPO, "bench", "last-containerd-run.json"), "w") as f:
            json.dump(result, f, indent=2)
    finally:
        ctd.stop()
        subprocess.run(f"grep {work} /proc/self/mountinfo | cut -d' ' -f5 | xargs -r -n1 umount -l", shell=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
