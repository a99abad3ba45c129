#!/usr/bin/env python3
"""`serve --workers 2` on an empty compile cache (issue 17): how many
optimising compiles, first 200, when every worker runs optimised code, and
the CPU the whole process tree used until then, for two wasmhost binaries
(before and after one compile per cache entry), rounds alternating.

CPU is the supervisor's rusage after it exits (os.wait4): it reaps its
workers, so their CPU is included. The server is stopped (SIGTERM) as soon
as every worker has logged optimised code (switched to it, or found it in
the cache at load).

Usage: bench/workers_compile_bench.py BEFORE_BIN AFTER_BIN [--rounds N]
       [--component FILE --path /js/hello]
"""

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import http_bench as hb  # noqa: E402

JS = os.path.join(hb.ROOT, "target/fixtures/js/spin-js.wasm")


def one(binary, component, path, workers):
    """(first 200 s, all optimised s, CPU s, compiles) for one start."""
    cache = tempfile.mkdtemp(prefix="bench-cache-")
    log = tempfile.NamedTemporaryFile(prefix="bench-log-", delete=False)
    port = hb.free_port()
    argv = [binary, "serve", component, "--listen", f"127.0.0.1:{port}",
            "--cache-dir", cache, "--workers", str(workers)]
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=log,
                            env={**os.environ, "WASMHOST_LOG": "info"})
    first = None
    while first is None:
        if hb.get_status(port, path=path) == 200:
            first = time.perf_counter() - started
        elif time.perf_counter() - started > 120:
            raise SystemExit(f"no 200 from {binary}")
        else:
            time.sleep(0.005)
    while True:
        with open(log.name, errors="replace") as f:
            text = f.read()
        done = text.count("optimised code ready in") + text.count("compiled code loaded from cache")
        if done >= workers:
            optimised = time.perf_counter() - started
            break
        if time.perf_counter() - started > 600:
            raise SystemExit(f"{binary}: the workers never ran optimised code")
        time.sleep(0.02)
    compiles = text.count("optimised code ready in") - text.count("compiled by another process")
    proc.send_signal(signal.SIGTERM)
    _, _, usage = os.wait4(proc.pid, 0)
    proc.returncode = 0  # reaped by wait4
    subprocess.run(["rm", "-rf", cache], check=True)
    os.unlink(log.name)
    return first, optimised, usage.ru_utime + usage.ru_stime, compiles


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("before")
    ap.add_argument("after")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--component", default=JS)
    ap.add_argument("--path", default="/js/hello")
    a = ap.parse_args()
    rows = {"before": [], "after": []}
    for _ in range(a.rounds):
        for side in ("before", "after"):
            binary = a.before if side == "before" else a.after
            rows[side].append(one(binary, a.component, a.path, a.workers))
            print(side, rows[side][-1], file=sys.stderr)
    print("| binary | compiles | first 200 (s) | all workers optimised (s) | CPU (s) |")
    print("|---|---|---|---|---|")
    for side, runs in rows.items():
        med = [statistics.median(r[i] for r in runs) for i in range(3)]
        compiles = sorted({r[3] for r in runs})
        print(f"| {side} | {'/'.join(map(str, compiles))} | {med[0]:.2f} | {med[1]:.2f} | {med[2]:.1f} |")


if __name__ == "__main__":
    main()
