#!/usr/bin/env python3
"""Container figures, each side by side with its reference in the same run.

1. Cold start to first 200 of busybox httpd, on one and the same bundle
   (`config.json` + root), with the same command line for every runtime
   (`<runtime> --root R run --bundle B ID`): wasmhost's embedded runtime
   (`wasmhost runtime`, youki's libcontainer) vs `runc` vs `crun`.
2. Warm proxy overhead: `wasmhost run` of the busybox httpd image, wrk
   through wasmhost's front door vs wrk started inside the container's
   network namespace talking to httpd directly.

Rounds alternate; medians are reported. Needs root, runc, crun, wrk,
docker-registry, umoci, skopeo, busybox-static, iproute2.

crun 1.8 refuses this machine's hybrid cgroup layout while the hugetlb
controller sits on the cgroup2 mount; the script moves it to a v1
hierarchy first (`mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb`),
which lasts until reboot and does not disturb runc or libcontainer.

Usage: bench/containers_bench.py [--rounds N] [--duration S]
Writes bench/last-containers-run.json.
"""

import argparse
import ctypes
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import tempfile
import time

import http_bench as hb
import oci_bench as ob

ROOT = hb.ROOT
WASMHOST = hb.WASMHOST
NETNS = "wasmhost-bench"
CLONE_NEWNET = 0x40000000


def sh(script):
    subprocess.run(["sh", "-ec", script], check=True, stdout=subprocess.DEVNULL)


def hugetlb_to_v1():
    unified = "/sys/fs/cgroup/unified/cgroup.controllers"
    if os.path.exists(unified) and "hugetlb" in open(unified).read():
        os.makedirs("/sys/fs/cgroup/hugetlb", exist_ok=True)
        sh("mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb")


def enter_netns():
    subprocess.run(["ip", "netns", "del", NETNS], stderr=subprocess.DEVNULL)
    sh(f"ip netns add {NETNS} && ip netns exec {NETNS} ip link set lo up")
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    fd = os.open(f"/run/netns/{NETNS}", os.O_RDONLY)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "setns")
    os.close(fd)


def make_bundle(work):
    bundle = os.path.join(work, "bundle")
    rootfs = os.path.join(bundle, "rootfs")
    os.makedirs(os.path.join(rootfs, "bin"))
    os.makedirs(os.path.join(rootfs, "www"))
    shutil.copy(shutil.which("busybox"), os.path.join(rootfs, "bin", "busybox"))
    with open(os.path.join(rootfs, "www", "index.html"), "w") as f:
        f.write("hello\n")
    subprocess.run(["runc", "spec"], cwd=bundle, check=True)
    path = os.path.join(bundle, "config.json")
    config = json.load(open(path))
    config["process"]["args"] = ["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/www"]
    config["process"]["terminal"] = False
    config["root"] = {"path": rootfs, "readonly": False}
    for ns in config["linux"]["namespaces"]:
        if ns["type"] == "network":
            ns["path"] = f"/run/netns/{NETNS}"
    json.dump(config, open(path, "w"))
    return bundle


SEALED = "/run/wasmhost-bench/exe/wasmhost-runtime"


def seal_helper():
    """What wasmhost does once per process: its runtime helper (installed
    beside it) bind-mounted read-only, so that the helper need not
    re-execute itself from a read-only mount at every start."""
    helper = os.path.join(os.path.dirname(WASMHOST), "wasmhost-runtime")
    os.makedirs(os.path.dirname(SEALED), exist_ok=True)
    subprocess.run(["umount", SEALED], stderr=subprocess.DEVNULL)
    open(SEALED, "a").close()
    sh(f"mount --bind {helper} {SEALED} && mount -o remount,bind,ro {SEALED}")


def runtime_argv(name):
    if name == "wasmhost":
        return [SEALED, "--root", "/run/wasmhost-bench/embedded"]
    return [name, "--root", f"/run/wasmhost-bench/{name}"]


def http_ok(port=8080):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
            s.sendall(b"GET /index.html HTTP/1.0\r\n\r\n")
            return re.match(rb"HTTP/1\.[01] 200", s.recv(16)) is not None
    except OSError:
        return False


def cold_start(name, bundle, n):
    argv = runtime_argv(name)
    cid = f"bench-{name}-{n}"
    started = time.perf_counter()
    proc = subprocess.Popen(argv + ["run", "--bundle", bundle, cid],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    while not http_ok():
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited: {proc.stderr.read().decode()}")
        if time.perf_counter() - started > 10:
            raise RuntimeError(f"{name}: no 200 within 10 s")
        time.sleep(0.0005)
    elapsed = (time.perf_counter() - started) * 1000.0
    subprocess.run(argv + ["kill", cid, "KILL"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    proc.wait(10)
    subprocess.run(argv + ["delete", "--force", cid], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while http_ok():
        time.sleep(0.001)
    return elapsed


def wrk(url, duration, netns_pid=None, connections=8):
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", url]
    if netns_pid:
        argv = ["nsenter", "-t", str(netns_pid), "-n"] + argv
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    m = re.search(r"^\s+50%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    p50 = float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
    return {"rps": rps, "p50_ms": p50}


def proxy_overhead(work, rounds, duration):
    registry = ob.Registry(work)
    try:
        layout, bundle = os.path.join(work, "layout"), os.path.join(work, "ibundle")
        ref = f"{registry.host}/bench/httpd:1"
        sh(f"""
umoci init --layout {layout}
umoci new --image {layout}:x
umoci unpack --image {layout}:x {bundle}
mkdir -p {bundle}/rootfs/bin {bundle}/rootfs/www
cp "$(command -v busybox)" {bundle}/rootfs/bin/busybox
echo hello > {bundle}/rootfs/www/index.html
umoci repack --image {layout}:x {bundle}
umoci config --image {layout}:x --os linux --architecture amd64 --config.entrypoint /bin/busybox \
  --config.cmd httpd --config.cmd -f --config.cmd -p --config.cmd 8080 --config.cmd -h --config.cmd /www \
  --config.exposedports 8080/tcp
skopeo copy --quiet --dest-tls-verify=false oci:{layout}:x docker://{ref}
""")
        port = hb.free_port()
        server = hb.Server([WASMHOST, "run", ref, "--listen", f"127.0.0.1:{port}", "--cache-dir",
                            os.path.join(work, "cache"), "--stop-grace", "1s"], port,
                           env={"WASMHOST_LOG": "warn"})
        try:
            server.wait_first_200(path="/index.html")
            listed = json.loads(subprocess.run(
                [WASMHOST, "runtime", "--root", "/run/wasmhost/embedded", "list"],
                check=True, capture_output=True, text=True).stdout)
            pid = next(c["pid"] for c in listed if f"-{server.proc.pid}-" in c["id"])
            rows = {}
            wrk(f"http://127.0.0.1:{port}/index.html", 1)
            for connections in (1, 8):
                through, inside = f"c{connections} through wasmhost", f"c{connections} inside the netns"
                rows[through], rows[inside] = [], []
                for _ in range(rounds):
                    rows[through].append(wrk(f"http://127.0.0.1:{port}/index.html", duration,
                                             connections=connections))
                    rows[inside].append(wrk("http://127.0.0.1:8080/index.html", duration, pid,
                                            connections=connections))
            return rows
        finally:
            server.stop()
    finally:
        registry.stop()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--duration", type=int, default=5)
    args = parser.parse_args()
    hugetlb_to_v1()
    with tempfile.TemporaryDirectory() as work:
        # The warm proxy test first, in the host's network namespace.
        proxy = proxy_overhead(work, max(3, args.rounds // 5), args.duration)
        bundle = make_bundle(work)
        seal_helper()
        enter_netns()
        cold = {"wasmhost": [], "runc": [], "crun": []}
        for name in cold:  # warm-up: page cache, binaries
            cold_start(name, bundle, "warm")
        for n in range(args.rounds):
            for name in cold:
                cold[name].append(cold_start(name, bundle, n))
    subprocess.run(["ip", "netns", "del", NETNS], stderr=subprocess.DEVNULL)
    med = {k: statistics.median(v) for k, v in cold.items()}
    print(f"machine: {hb.machine()}; rounds: {args.rounds}")
    print("| cold start to first 200 (same bundle) | median ms | vs crun |")
    print("|---|---|---|")
    for name, value in med.items():
        print(f"| {name} | {value:.1f} | {value / med['crun']:.2f}x |")
    print("| warm busybox httpd | p50 ms | req/s |")
    print("|---|---|---|")
    for connections in (1, 8):
        a = proxy[f"c{connections} through wasmhost"]
        b = proxy[f"c{connections} inside the netns"]
        p50a, p50b = statistics.median(r["p50_ms"] for r in a), statistics.median(r["p50_ms"] for r in b)
        rpsa, rpsb = statistics.median(r["rps"] for r in a), statistics.median(r["rps"] for r in b)
        print(f"| wrk -c{connections}, through wasmhost's front door | {p50a:.3f} | {rpsa:.0f} |")
        print(f"| wrk -c{connections}, inside the network namespace, direct | {p50b:.3f} | {rpsb:.0f} |")
        print(f"| wrk -c{connections}, added by wasmhost | {(p50a - p50b) * 1000:+.0f} us | {rpsa / rpsb:.2f}x |")
    with open(os.path.join(ROOT, "bench/last-containers-run.json"), "w") as out:
        json.dump({"machine": hb.machine(), "rounds": args.rounds, "cold_ms": cold, "proxy": proxy},
                  out, indent=1)


if __name__ == "__main__":
    main()
