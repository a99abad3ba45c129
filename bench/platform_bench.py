#!/usr/bin/env python3
"""The Spin platform's figures (issue 13), same run, same machine:

1. SQLite: a request whose Rust component (components/spin-sdk-sqlite,
   `GET /sql/bench`) does one insert and one select on `default`, served by
   `wasmhost serve spin.toml` (wrk, one connection: time per request, and
   16 connections: req/s), against the floor: the same two statements from
   native Rust on a file with the same settings (criterion bench
   `sqlite_floor`, run by this script).
2. Python hello (target/fixtures/python/spin-py.wasm, `GET /`) and
   JavaScript hello (target/fixtures/js/spin-js.wasm, `GET /js/hello`):
   req/s of wasmhost vs `wasmtime serve -Scli` with its best pooling flags
   on the same file (`--trap-unknown-imports`: the Spin SDKs import Spin
   interfaces wasmtime does not provide), alternating rounds; and process
   start to first 200 with a warm and a cold compile cache.

Usage: bench/platform_bench.py [--rounds N] [--duration S]
(bench/run.sh platform builds everything first, release profile.)
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from http_bench import (BEST_POOLING, ROOT, WASMHOST, WASMTIME, Server,  # noqa: E402
                        free_port, median)

SQLITE = os.path.join(ROOT, "target/guest/wasm32-wasip2/release/spin_sdk_sqlite.wasm")
PYTHON = os.path.join(ROOT, "target/fixtures/python/spin-py.wasm")
JS = os.path.join(ROOT, "target/fixtures/js/spin-js.wasm")


def wrk(port, path, duration, connections):
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", f"http://127.0.0.1:{port}{path}"],
        check=True, capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    m = re.search(r"Latency\s+([\d.]+)(us|ms|s)", out)
    avg_ms = float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
    return {"rps": rps, "avg_ms": avg_ms, "non2xx": int(errors.group(1)) if errors else 0}


def sqlite(rounds, duration):
    app = tempfile.mkdtemp(prefix="wasmhost-bench-sqlite-")
    with open(os.path.join(app, "spin.toml"), "w") as f:
        f.write(f'spin_manifest_version = 2\n[application]\nname = "sqlite-bench"\n'
                f'[[trigger.http]]\nroute = "/sql/..."\ncomponent = "db"\n'
                f'[component.db]\nsource = "{SQLITE}"\nsqlite_databases = ["default"]\n')
    one, many = [], []
    for _ in range(rounds):
        port = free_port()
        server = Server([WASMHOST, "serve", os.path.join(app, "spin.toml"), "--listen", f"127.0.0.1:{port}"],
                        port, env={"WASMHOST_LOG": "warn"})
        try:
            server.wait_first_200(path="/sql/bench")
            one.append(wrk(port, "/sql/bench", duration, 1))
            many.append(wrk(port, "/sql/bench", duration, 16))
        finally:
            server.stop()
    floor = subprocess.run(
        ["cargo", "bench", "--locked", "-p", "wasmhost", "--bench", "sqlite_floor", "--",
         "--warm-up-time", "2", "--measurement-time", str(duration)],
        check=True, capture_output=True, text=True, cwd=ROOT).stdout
    m = re.search(r"time:\s+\[[\d.]+ \w+ ([\d.]+) (ns|µs|us|ms)", floor)
    floor_ms = float(m.group(1)) * {"ns": 1e-6, "µs": 1e-3, "us": 1e-3, "ms": 1.0}[m.group(2)]
    w1 = median(one, "avg_ms")
    print("| SQLite insert + select per request | ms |\n|---|---|")
    print(f"| wasmhost, Rust component, 1 connection (avg latency) | {w1:.3f} |")
    print(f"| native rusqlite, same statements and settings (floor) | {floor_ms:.3f} |")
    print(f"| ratio | {w1 / floor_ms:.2f}x |")
    print(f"| wasmhost req/s at 16 connections | {median(many, 'rps'):,.0f} |\n", flush=True)


def hello(title, wasm, path, rounds, duration):
    """req/s and start to first 200 of `wasm` answering `path`, wasmhost
    vs wasmtime serve."""
    def ours(extra=(), cache=None):
        port = free_port()
        argv = [WASMHOST, "serve", wasm, "--listen", f"127.0.0.1:{port}"] + list(extra)
        if cache:
            argv += ["--cache-dir", cache]
        return Server(argv, port, env={"WASMHOST_LOG": "warn"})

    def peer(extra=(), env=None):
        port = free_port()
        argv = [WASMTIME, "serve", "-Scli", "--trap-unknown-imports", "--addr", f"127.0.0.1:{port}"]
        return Server(argv + list(extra) + [wasm], port, env=env)

    warm = tempfile.mkdtemp(prefix="wasmhost-bench-cache-")
    s = ours(cache=warm)
    s.wait_first_200(path=path, limit=120)
    s.stop()
    rows = {"a": [], "b": []}
    for _ in range(rounds):
        for side, make in (("a", lambda: ours(cache=warm)), ("b", lambda: peer(["-O", BEST_POOLING]))):
            server = make()
            try:
                server.wait_first_200(path=path, limit=120)
                wrk(server.port, path, 1, 16)
                rows[side].append(wrk(server.port, path, duration, 16))
            finally:
                server.stop()
    ra, rb = median(rows["a"], "rps"), median(rows["b"], "rps")
    print(f"| {title} | wasmhost req/s | wasmtime serve best pooling req/s | ratio |\n|---|---|---|---|")
    print(f"| fresh instance per request, 16 connections | {ra:,.0f} | {rb:,.0f} | {ra / rb:.2f}x |\n", flush=True)
    wt_cache = tempfile.mkdtemp(prefix="wasmtime-bench-cache-")
    s = peer(["-C", "cache=y"], env={"XDG_CACHE_HOME": wt_cache})
    s.wait_first_200(path=path, limit=120)
    s.stop()
    starts = {
        "warm compile cache": (lambda: ours(cache=warm),
                               lambda: peer(["-C", "cache=y"], env={"XDG_CACHE_HOME": wt_cache})),
        "cold (no cache)": (lambda: ours(["--no-cache"]), lambda: peer(["-C", "cache=n"])),
    }
    print(f"| {title}, start to first 200 | wasmhost ms | wasmtime serve ms |\n|---|---|---|")
    for name, (a, b) in starts.items():
        times = {"a": [], "b": []}
        for _ in range(max(rounds, 3)):
            for side, make in (("a", a), ("b", b)):
                server = make()
                try:
                    times[side].append(server.wait_first_200(path=path, limit=120) * 1000.0)
                finally:
                    server.stop()
        print(f"| {name} | {statistics.median(times['a']):.0f} | {statistics.median(times['b']):.0f} |", flush=True)
    print()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=8)
    args = ap.parse_args()
    for path in (WASMHOST, SQLITE, PYTHON, JS):
        if not os.path.exists(path):
            sys.exit(f"missing {path}: run bench/run.sh platform")
    sqlite(args.rounds, args.duration)
    hello("Python hello (spin-sdk 3.4.1)", PYTHON, "/", args.rounds, args.duration)
    hello("JavaScript hello (build-tools 1.0.7)", JS, "/js/hello", args.rounds, args.duration)


if __name__ == "__main__":
    main()
