#!/usr/bin/env python3
"""Container figures, each side by side with its reference in the same run.

1. Cold start to first 200 of busybox httpd, on one and the same bundle
   (`config.json` + root), with the same command line for every runtime
   (`<runtime> --root R run --bundle B ID`): wasmhost's embedded runtime
   (`wasmhost-runtime`, youki's libcontainer) vs `runc` vs `crun`; and the
   embedded runtime as wasmhost drives it, its helper started one
   container ahead (`wasmhost-runtime standby`, the order on stdin; the
   clock starts at the order). The `-created` rows time the start of a
   container created beforehand, as wasmhost does after an idle stop:
   wasmhost's helper told `wait_for_start` then `start`, runc and crun
   `create` then `start` (the clock starts at the start).
2. Cold starts as `wasmhost run --lazy --idle-timeout 300ms` does them:
   after each idle stop the next container is created ahead; one request
   wakes it, timed from the client to its 200.
3. Warm proxy overhead: `wasmhost run` of the busybox httpd image, wrk
   through wasmhost's front door vs wrk started inside the container's
   network namespace talking to httpd directly, and, as the peer, wrk
   through HAProxy (installed if missing) started inside that namespace
   in front of httpd: what one mature HTTP proxy hop costs on this load.

Rounds alternate; medians are reported. Needs root, runc, crun, wrk,
docker-registry, umoci, skopeo, busybox-static, iproute2, haproxy.

crun 1.8 refuses this machine's hybrid cgroup layout while the hugetlb
controller sits on the cgroup2 mount; the script moves it to a v1
hierarchy first (`mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb`),
which lasts until reboot and does not disturb runc or libcontainer.

Usage: bench/containers_bench.py [--rounds N] [--duration S] [--only proxy|cold]
       (`proxy` runs parts 2 and 3, `cold` part 1)
       [--seccomp x86_64|docker] [--favordynmods]
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


FAVOR = "/run/wasmhost-bench/favordynmods"


def favor_dynmods():
    """Takes the kernel's wait out of every cold start: the first write to
    a cgroup v1 `cgroup.procs` after a quiet spell waits for an RCU grace
    period (`cgroup_threadgroup_rwsem`), 0 to 25 ms here depending on what
    the CPUs did just before; every runtime pays it. Mounting any hierarchy
    with `favordynmods` (Linux >= 6.0) keeps that lock in its writer-ready
    state while the mount exists; here an empty named hierarchy, unmounted
    at the end."""
    os.makedirs(FAVOR, exist_ok=True)
    sh(f"mount -t cgroup -o none,name=wasmhost-bench,favordynmods cgroup {FAVOR}")


def enter_netns():
    subprocess.run(["ip", "netns", "del", NETNS], stderr=subprocess.DEVNULL)
    sh(f"ip netns add {NETNS} && ip netns exec {NETNS} ip link set lo up")
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    fd = os.open(f"/run/netns/{NETNS}", os.O_RDONLY)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "setns")
    os.close(fd)


SECCOMP_ARCHES = {
    "x86_64": ["SCMP_ARCH_X86_64"],
    "docker": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
}


def wasmhost_seccomp(arches):
    """wasmhost's seccomp allowlist (read from host/src/container/spec.rs)
    for the given architectures: `x86_64` as wasmhost uses it, `docker`
    with x86 and x32 too, as Docker's profile does."""
    source = open(os.path.join(ROOT, "host/src/container/spec.rs")).read()
    block = source[source.index("const ALLOWED_SYSCALLS"):]
    names = re.findall(r'"([a-z0-9_]+)"', block[:block.index("];")])
    return {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
            "architectures": SECCOMP_ARCHES[arches],
            "syscalls": [{"names": names, "action": "SCMP_ACT_ALLOW"}]}


def make_bundle(work, seccomp=None):
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
    if seccomp:
        config["linux"]["seccomp"] = wasmhost_seccomp(seccomp)
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


def listed_status(argv, cid):
    out = subprocess.run(argv + ["list", "--format", "json"], capture_output=True, text=True).stdout
    for c in json.loads(out or "[]") or []:
        if c.get("id") == cid:
            return c.get("status", "").lower()
    return None


def create_ahead(runtime, argv, bundle, cid):
    """The container created, its init waiting: wasmhost's helper told
    with `wait_for_start`, runc and crun with `create`. Returns what starts
    it and the process to reap."""
    if runtime == "wasmhost":
        proc = subprocess.Popen(argv + ["standby"], stdin=subprocess.PIPE,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        order = {"bundle": bundle, "id": cid, "wait_for_start": True}
        proc.stdin.write(json.dumps(order).encode() + b"\n")
        proc.stdin.flush()

        def start():
            proc.stdin.write(b"start\n")
            proc.stdin.close()
    else:
        proc = subprocess.Popen(argv + ["create", "--bundle", bundle, cid],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        proc.wait(10)

        def start():
            subprocess.run(argv + ["start", cid], check=True)
    deadline = time.time() + 10
    while listed_status(argv, cid) != "created":
        if time.time() > deadline:
            raise RuntimeError(f"{runtime}: {cid} not created")
        time.sleep(0.01)
    time.sleep(0.05)
    return start, proc


def cold_start(name, bundle, n):
    ahead = name == "wasmhost-ahead"
    created = name.endswith("-created")
    runtime = name.split("-")[0]
    argv = runtime_argv(runtime)
    cid = f"bench-{name}-{n}"
    if created:
        start, proc = create_ahead(runtime, argv, bundle, cid)
        started = time.perf_counter()
        start()
    elif ahead:
        # As wasmhost does: the helper was started one container ahead
        # and waits for its order; the start is the order.
        proc = subprocess.Popen(argv + ["standby"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(0.05)
        started = time.perf_counter()
        proc.stdin.write(json.dumps({"bundle": bundle, "id": cid}).encode() + b"\n")
        proc.stdin.close()
    else:
        started = time.perf_counter()
        proc = subprocess.Popen(argv + ["run", "--bundle", bundle, cid],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    while not http_ok():
        if proc.poll() is not None and not (created and runtime != "wasmhost"):
            raise RuntimeError(f"{name} exited")
        if time.perf_counter() - started > 10:
            raise RuntimeError(f"{name}: no 200 within 10 s")
        time.sleep(0.0005)
    elapsed = (time.perf_counter() - started) * 1000.0
    for _ in range(50):
        # A `kill` that reads the container's state while its runtime is
        # still writing it fails: ask again until the container is gone.
        subprocess.run(argv + ["kill", cid, "KILL"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        try:
            proc.wait(0.2)
            break
        except subprocess.TimeoutExpired:
            continue
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


HAPROXY_CONFIG = """global
  maxconn 1024
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend front
  bind 127.0.0.1:8081
  default_backend container
backend container
  server httpd 127.0.0.1:8080
"""


def haproxy_in(work, pid):
    """HAProxy, the reference HTTP proxy, started inside the container's
    network namespace in front of httpd (127.0.0.1:8081 -> 8080): the cost
    of one mature HTTP proxy hop on the same load, measured in the same
    run."""
    if not shutil.which("haproxy"):
        sh("DEBIAN_FRONTEND=noninteractive apt-get install -y -q haproxy")
    config = os.path.join(work, "haproxy.cfg")
    with open(config, "w") as f:
        f.write(HAPROXY_CONFIG)
    log = open(os.path.join(work, "haproxy.log"), "w+")
    proc = subprocess.Popen(["nsenter", "-t", str(pid), "-n", "haproxy", "-db", "-f", config],
                            stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.time() + 10
    while subprocess.run(["nsenter", "-t", str(pid), "-n", "bash", "-c",
                          "exec 3<>/dev/tcp/127.0.0.1/8081"],
                         stderr=subprocess.DEVNULL).returncode != 0:
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            log.seek(0)
            raise RuntimeError(f"haproxy did not start: {log.read()}")
        time.sleep(0.05)
    return proc


def httpd_image(work, registry):
    """The busybox httpd image, pushed to `registry`; its reference."""
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
    return ref


def proxy_overhead(work, rounds, duration):
    registry = ob.Registry(work)
    try:
        ref = httpd_image(work, registry)
        port = hb.free_port()
        server = hb.Server([WASMHOST, "run", ref, "--listen", f"127.0.0.1:{port}", "--cache-dir",
                            os.path.join(work, "cache"), "--stop-grace", "1s"], port,
                           env={"WASMHOST_LOG": "warn"})
        try:
            server.wait_first_200(path="/index.html")
            pid = None
            for _ in range(100):
                # `list` skips a container whose state it cannot read at
                # that instant (being written): ask again.
                listed = json.loads(subprocess.run(
                    [WASMHOST, "runtime", "--root", "/run/wasmhost/embedded", "list"],
                    check=True, capture_output=True, text=True).stdout)
                pid = next((c["pid"] for c in listed if f"-{server.proc.pid}-" in c["id"]), None)
                if pid:
                    break
                time.sleep(0.05)
            haproxy = haproxy_in(work, pid)
            try:
                rows = {}
                wrk(f"http://127.0.0.1:{port}/index.html", 1)
                wrk("http://127.0.0.1:8081/index.html", 1, pid)
                for connections in (1, 8):
                    through = f"c{connections} through wasmhost"
                    inside = f"c{connections} inside the netns"
                    peer = f"c{connections} through haproxy"
                    rows[through], rows[inside], rows[peer] = [], [], []
                    for _ in range(rounds):
                        rows[through].append(wrk(f"http://127.0.0.1:{port}/index.html", duration,
                                                 connections=connections))
                        rows[inside].append(wrk("http://127.0.0.1:8080/index.html", duration, pid,
                                                connections=connections))
                        rows[peer].append(wrk("http://127.0.0.1:8081/index.html", duration, pid,
                                              connections=connections))
                return rows
            finally:
                haproxy.kill()
                haproxy.wait()
        finally:
            server.stop()
    finally:
        registry.stop()


def wasmhost_cold_starts(work, rounds):
    """Cold starts as wasmhost's own lifecycle does them: `wasmhost run
    IMAGE --lazy --idle-timeout 300ms`. Each round waits until the
    container was stopped for idleness and the next one created ahead (the
    embedded runtime lists it `created`), then times one request from the
    client: the request's start of the container, its proxying, its 200."""
    work = os.path.join(work, "lifecycle")
    os.makedirs(work)
    registry = ob.Registry(work)
    try:
        ref = httpd_image(work, registry)
        port = hb.free_port()
        server = hb.Server([WASMHOST, "run", ref, "--listen", f"127.0.0.1:{port}", "--cache-dir",
                            os.path.join(work, "cache"), "--stop-grace", "1s", "--lazy",
                            "--idle-timeout", "300ms"], port, env={"WASMHOST_LOG": "warn"})
        argv = [WASMHOST, "runtime", "--root", "/run/wasmhost/embedded"]
        mine = f"-{server.proc.pid}-"
        try:
            times = []
            for n in range(rounds + 1):
                deadline = time.time() + 20
                while not any(mine in c["id"] and c.get("status", "").lower() == "created"
                              for c in json.loads(subprocess.run(
                                  argv + ["list"], capture_output=True, text=True).stdout
                                  or "[]") or []):
                    if time.time() > deadline:
                        raise RuntimeError("nothing created ahead")
                    time.sleep(0.02)
                time.sleep(0.05)
                started = time.perf_counter()
                status = hb.get_status(port, timeout=10, path="/index.html")
                elapsed = (time.perf_counter() - started) * 1000.0
                if status != 200:
                    raise RuntimeError(f"cold request answered {status}")
                if n > 0:  # the first is the warm-up
                    times.append(elapsed)
            return {"wasmhost-lifecycle-created": times}
        finally:
            server.stop()
    finally:
        registry.stop()


def cold_starts(work, rounds, seccomp=None):
    bundle = make_bundle(work, seccomp)
    seal_helper()
    enter_netns()
    cold = {"wasmhost": [], "wasmhost-ahead": [], "runc": [], "crun": [],
            "wasmhost-created": [], "runc-created": [], "crun-created": []}
    for name in cold:  # warm-up: page cache, binaries
        cold_start(name, bundle, "warm")
    for n in range(rounds):
        for name in cold:
            cold[name].append(cold_start(name, bundle, n))
    subprocess.run(["ip", "netns", "del", NETNS], stderr=subprocess.DEVNULL)
    return cold


def print_cold(cold):
    med = {k: statistics.median(v) for k, v in cold.items()}
    print("| cold start to first 200 (same bundle) | median ms | vs crun |")
    print("|---|---|---|")
    for name, value in med.items():
        peer = "crun-created" if name.endswith("-created") else "crun"
        print(f"| {name} | {value:.1f} | {value / med[peer]:.2f}x {peer} |")


def print_proxy(proxy):
    print("| warm busybox httpd | p50 ms | req/s | added p50 | req/s vs direct |")
    print("|---|---|---|---|---|")
    for connections in (1, 8):
        direct = proxy[f"c{connections} inside the netns"]
        p50d = statistics.median(r["p50_ms"] for r in direct)
        rpsd = statistics.median(r["rps"] for r in direct)
        for how in ("through wasmhost", "through haproxy", "inside the netns"):
            rows = proxy[f"c{connections} {how}"]
            p50 = statistics.median(r["p50_ms"] for r in rows)
            rps = statistics.median(r["rps"] for r in rows)
            print(f"| wrk -c{connections}, {how} | {p50:.3f} | {rps:.0f} | "
                  f"{(p50 - p50d) * 1000:+.0f} us | {rps / rpsd:.2f}x |")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--only", choices=["proxy", "cold"],
                        help="run one of the two parts (quick checks; RESULTS.md takes both)")
    parser.add_argument("--seccomp", choices=sorted(SECCOMP_ARCHES),
                        help="cold starts with wasmhost's seccomp allowlist in the bundle "
                             "(x86_64 only, as wasmhost uses it, or with x86 and x32 as Docker's)")
    parser.add_argument("--favordynmods", action="store_true",
                        help="cold starts without the kernel's cgroup grace-period wait, for all runtimes")
    args = parser.parse_args()
    hugetlb_to_v1()
    if args.favordynmods:
        favor_dynmods()
    proxy, cold, lifecycle = None, None, None
    try:
        with tempfile.TemporaryDirectory() as work:
            # The tests of `wasmhost run` first, in the host's network
            # namespace (the cold starts below enter one of their own).
            if args.only != "cold":
                proxy = proxy_overhead(work, max(3, args.rounds // 5), args.duration)
                lifecycle = wasmhost_cold_starts(work, args.rounds)
            if args.only != "proxy":
                cold = cold_starts(work, args.rounds, args.seccomp)
    finally:
        if args.favordynmods:
            subprocess.run(["umount", FAVOR])
    print(f"machine: {hb.machine()}; rounds: {args.rounds}; favordynmods: {args.favordynmods}; "
          f"seccomp: {args.seccomp}")
    if cold:
        print_cold(cold)
    if proxy:
        print_proxy(proxy)
    if lifecycle:
        for name, times in lifecycle.items():
            print(f"| {name}: request to 200 | median {statistics.median(times):.2f} ms | "
                  f"min {min(times):.2f} | max {max(times):.2f} |")
    with open(os.path.join(ROOT, "bench/last-containers-run.json"), "w") as out:
        json.dump({"machine": hb.machine(), "rounds": args.rounds, "favordynmods": args.favordynmods,
                   "seccomp": args.seccomp,
                   "cold_ms": cold, "proxy": proxy, "lifecycle_cold_ms": lifecycle},
                  out, indent=1)


if __name__ == "__main__":
    main()
