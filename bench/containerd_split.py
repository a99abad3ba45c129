#!/usr/bin/env python3
"""Where a task start's time goes under containerd, per runtime (issue 16).

`containerd_bench.py` times `ctr run -d` to the first 200: that includes
ctr's own start, containerd's container and snapshot work and its task
calls, which are the same for both runtimes. This script splits each start
at the moment containerd executes the runtime's shim binary (the kernel's
`sched_process_exec` event, recorded by `perf record -a -k
CLOCK_MONOTONIC`, so its timestamps share this script's clock):

- before: ctr and containerd (common to both runtimes),
- after: the shim, its task and the app, up to the first 200.

Same private containerd, images and alternating rounds as
containerd_bench.py, whose helpers it uses; the wasmhost rounds start with
the node's compile cache warm. Needs root and perf.

    bench/containerd_split.py [--profile debug|release|DIR] [--rounds 15] [--also DIR]

`--also DIR` adds a third column, another build of the shim and wasmhost
(runtime `io.containerd.wasmhostb.v1`), in the same alternating rounds.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time

import containerd_bench as cb

WASM, RUNC = "io.containerd.wasmhost.v1", "io.containerd.runc.v2"
ALSO = "io.containerd.wasmhostb.v1"


def shim_execs(perf_data):
    """Monotonic seconds of every exec of a containerd shim binary."""
    out = subprocess.run(
        ["perf", "script", "-i", perf_data, "-F", "time,trace"],
        check=True, capture_output=True, text=True).stdout
    times = []
    for line in out.splitlines():
        if "filename=" in line and "containerd-shim-" in line:
            times.append(float(line.split(":", 1)[0]))
    return sorted(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--profile", default="debug")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--also", help="another build's directory, as a third column")
    a = ap.parse_args()
    bindir = os.path.join(cb.REPO, "target", a.profile)
    work = tempfile.mkdtemp(prefix="ctds", dir="/tmp")
    ctd = cb.Containerd(work, bindir, a.also)
    perf = None
    try:
        cb.images(ctd, work, os.path.join(bindir, "wasmhost"))
        cb.run_task(ctd, WASM, "docker.io/bench/hello:1", "first", 18900)
        cb.wait_for_cache(os.path.join(work, "cache", "compiled"))
        cb.remove(ctd, "first")
        perf_data = os.path.join(work, "exec.data")
        perf = subprocess.Popen(
            ["perf", "record", "-a", "-k", "CLOCK_MONOTONIC", "-e", "sched:sched_process_exec",
             "-o", perf_data], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)
        runs = {WASM: [], RUNC: []}
        if a.also:
            runs[ALSO] = []
        for i in range(a.rounds):
            port = 19000 + i
            tasks = [
                (WASM, "docker.io/bench/hello:1", f"w{i}", ()),
                (RUNC, "docker.io/bench/httpd:1", f"r{i}",
                 ("/bin/busybox", "httpd", "-f", "-p", f"127.0.0.1:{port + 500}", "-h", "/www")),
            ]
            if a.also:
                tasks.append((ALSO, "docker.io/bench/hello:1", f"b{i}", ()))
            for runtime, image, tid, args in tasks:
                p = {WASM: port, RUNC: port + 500, ALSO: port + 1000}[runtime]
                t0 = time.monotonic()
                total = cb.run_task(ctd, runtime, image, tid, p, args)
                runs[runtime].append((t0, total))
                cb.remove(ctd, tid)
        perf.send_signal(2)
        perf.wait()
        perf = None
        execs = shim_execs(perf_data)
        print(f"containerd {ctd.ctr('version').split('Server:')[1].split()[3]}, "
              f"{a.rounds} rounds, load {os.getloadavg()[0]:.1f}\n")
        print("| runtime | start to first 200, p50 ms | ctr + containerd until the shim runs, p50 ms "
              "| shim + task + app to first 200, p50 ms |")
        print("|---|---|---|---|")
        after = {}
        for runtime, rows in runs.items():
            before, rest = [], []
            for t0, total in rows:
                shim = next((t for t in execs if t >= t0), None)
                if shim is None or (shim - t0) * 1000 > total:
                    continue
                before.append((shim - t0) * 1000)
                rest.append(total - (shim - t0) * 1000)
            after[runtime] = statistics.median(rest)
            print(f"| {runtime} | {statistics.median(t for _, t in rows):.1f} "
                  f"| {statistics.median(before):.1f} | {after[runtime]:.1f} |")
        print(f"\nshim + task + app, wasmhost / runc: {after[WASM] / after[RUNC]:.2f}x")
        if a.also:
            print(f"shim + task + app, {a.also} / runc: {after[ALSO] / after[RUNC]:.2f}x")
    finally:
        if perf:
            perf.kill()
        ctd.stop()
        subprocess.run(f"grep {work} /proc/self/mountinfo | cut -d' ' -f5 | xargs -r -n1 umount -l",
                       shell=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
