#!/usr/bin/env python3
"""The Spin platform's figures (issue 13), same run, same machine:

1. SQLite: a request whose Rust component (components/spin-sdk-sqlite,
   `GET /sql/bench`) does one insert and one select on `default`, served by
   `wasmhost serve spin.toml` (wrk, one connection: time per request, and
   16 connections: req/s), against the floor: the same two statements from
   native Rust on a file with the same settings (criterion bench
   `sqlite_floor`, run by this script).
2. Python hello (target/fixtures/python/spin-py.wasm, `GET /`) and
   JavaScript hello (target/fixtures/js/spin-js.wasm, `GET /js/hello`),
   built with the Spin SDKs: req/s (fresh instance per request) and
   process start to first 200 with a warm and a cold compile cache.
   `wasmtime serve` cannot run these: the Spin SDKs' worlds import Spin's
   interfaces (and wasi:config, wasi:keyvalue), which wasmtime does not
   provide (and wasmtime 48 has no `--trap-unknown-imports` for
   components); the script says why and measures wasmhost alone.
3. The same figures for the Python and JavaScript hellos built without an
   SDK for the plain wasi:http/proxy world (target/fixtures/python/
   py-proxy.wasm, target/fixtures/js/js-proxy.wasm), which
   `wasmtime serve -Scli` with its best pooling flags runs too: both
   hosts on the same file, rounds alternating sides, same run (issues 13
   and 17). wasmhost's req/s is measured twice: one process, and
   `--workers auto` (one process per CPU, each pinned).

Cold start is measured twice for wasmhost: as it starts by default (a
baseline Winch compile serves while Cranelift compiles in the
background) and with `--no-baseline` (Cranelift before serving, as
wasmtime does); the peer's column is `wasmtime serve -C cache=n` in both
rows.

Usage: [WASMHOST_BIN=...] bench/platform_bench.py [--rounds N] [--duration S]
       [--floor-profile bench|dev] [--only sqlite|spin-py|spin-js|py-proxy|js-proxy ...]
(bench/run.sh platform builds everything first, release profile.)
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from http_bench import (BEST_POOLING, ROOT, WASMHOST, WASMTIME, Server,  # noqa: E402
                        free_port, get_status, median)

SQLITE = os.path.join(ROOT, "target/guest/wasm32-wasip2/release/spin_sdk_sqlite.wasm")
PYTHON = os.path.join(ROOT, "target/fixtures/python/spin-py.wasm")
JS = os.path.join(ROOT, "target/fixtures/js/spin-js.wasm")
PY_PROXY = os.path.join(ROOT, "target/fixtures/python/py-proxy.wasm")
JS_PROXY = os.path.join(ROOT, "target/fixtures/js/js-proxy.wasm")


def wrk(port, path, duration, connections):
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", f"http://127.0.0.1:{port}{path}"],
        check=True, capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    m = re.search(r"Latency\s+([\d.]+)(us|ms|s)", out)
    avg_ms = float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
    return {"rps": rps, "avg_ms": avg_ms, "non2xx": int(errors.group(1)) if errors else 0}


def sqlite(rounds, duration, floor_profile="bench"):
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
        ["cargo", "bench", "--locked", "--profile", floor_profile, "-p", "wasmhost",
         "--bench", "sqlite_floor", "--",
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


def peer_refusal(wasm, path, limit=120.0):
    """Why `wasmtime serve` cannot serve `wasm`, or None when it can. The
    Spin SDKs' worlds import Spin's interfaces (and wasi:config,
    wasi:keyvalue), which wasmtime does not provide, and wasmtime 48 has no
    `--trap-unknown-imports` for components: such a component does not
    start there at all."""
    port = free_port()
    proc = subprocess.Popen([WASMTIME, "serve", "-Scli", "--addr", f"127.0.0.1:{port}", wasm],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + limit
    try:
        while time.time() < deadline and proc.poll() is None:
            if get_status(port, timeout=0.2, path=path) == 200:
                return None
            time.sleep(0.05)
        proc.terminate()
        return " ".join(proc.communicate()[1].split())[:300] or "no answer"
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait()


# The cold row where wasmhost, like wasmtime, compiles with Cranelift
# before serving.
COLD_CRANELIFT = "cold, Cranelift before serving (wasmhost --no-baseline)"


def hello(title, wasm, path, rounds, duration):
    """req/s and start to first 200 of `wasm` answering `path`, wasmhost
    vs wasmtime serve (wasmhost alone when wasmtime cannot run it)."""
    def ours(extra=(), cache=None):
        port = free_port()
        argv = [WASMHOST, "serve", wasm, "--listen", f"127.0.0.1:{port}"] + list(extra)
        if cache:
            argv += ["--cache-dir", cache]
        return Server(argv, port, env={"WASMHOST_LOG": "warn"})

    def peer(extra=(), env=None):
        port = free_port()
        argv = [WASMTIME, "serve", "-Scli", "--addr", f"127.0.0.1:{port}"]
        return Server(argv + list(extra) + [wasm], port, env=env)

    refusal = peer_refusal(wasm, path)
    if refusal:
        print(f"{title}: wasmtime serve cannot run it: {refusal}\n", flush=True)
    print(f"{title}: load average before {load()}", flush=True)
    # The warm cache gets Cranelift's code: --no-baseline compiles it
    # before serving (by default the first run would stop at its first 200,
    # before the background compile wrote the cache).
    warm = tempfile.mkdtemp(prefix="wasmhost-bench-cache-")
    s = ours(["--no-baseline"], cache=warm)
    s.wait_first_200(path=path, limit=300)
    s.stop()
    wt_cache = tempfile.mkdtemp(prefix="wasmtime-bench-cache-")
    sides = {"wasmhost": {"rps": lambda: ours(cache=warm),
                          "warm compile cache": lambda: ours(cache=warm),
                          "cold (no cache)": lambda: ours(["--no-cache"]),
                          COLD_CRANELIFT: lambda: ours(["--no-cache", "--no-baseline"])}}
    if not refusal:
        s = peer(["-C", "cache=y"], env={"XDG_CACHE_HOME": wt_cache})
        s.wait_first_200(path=path, limit=300)
        s.stop()
        cold = lambda: peer(["-C", "cache=n"])  # noqa: E731
        sides["wasmtime serve"] = {
            "rps": lambda: peer(["-O", BEST_POOLING]),
            "warm compile cache": lambda: peer(["-C", "cache=y"], env={"XDG_CACHE_HOME": wt_cache}),
            "cold (no cache)": cold,
            COLD_CRANELIFT: cold}
    # One process per CPU (`serve --workers auto`): req/s only.
    rps_makers = {side: makers["rps"] for side, makers in sides.items()}
    rps_makers[WORKERS] = lambda: ours(["--workers", "auto"], cache=warm)
    rows = {side: [] for side in rps_makers}
    for _ in range(rounds):
        for side, make in rps_makers.items():
            server = make()
            try:
                server.wait_first_200(path=path, limit=300)
                wrk(server.port, path, 1, 16)
                rows[side].append(wrk(server.port, path, duration, 16))
            finally:
                server.stop()
    rps = {side: median(r, "rps") for side, r in rows.items()}
    print(f"| {title}, fresh instance per request, 16 connections | req/s (median of {rounds}) "
          f"| rounds | non-2xx |\n|---|---|---|---|")
    for side, value in rps.items():
        flags = " (best pooling flags)" if side.startswith("wasmtime") else ""
        each = ", ".join(f"{r['rps']:,.0f}" for r in rows[side])
        print(f"| {side}{flags} | {value:,.0f} | {each} | {sum(r['non2xx'] for r in rows[side])} |")
    if "wasmtime serve" in rps:
        for side in ("wasmhost", WORKERS):
            print(f"| ratio, {side} / wasmtime serve | {rps[side] / rps['wasmtime serve']:.2f}x | | |")
    print(flush=True)
    print(f"| {title}, start to first 200 (median of {max(rounds, 3)}) | "
          + " | ".join(f"{side} ms" for side in sides)
          + " |\n|---|" + "---|" * len(sides))
    for name in ("warm compile cache", "cold (no cache)", COLD_CRANELIFT):
        times = {side: [] for side in sides}
        for _ in range(max(rounds, 3)):
            for side, makers in sides.items():
                server = makers[name]()
                try:
                    times[side].append(server.wait_first_200(path=path, limit=300) * 1000.0)
                finally:
                    server.stop()
        print(f"| {name} | " + " | ".join(f"{statistics.median(t):.0f}" for t in times.values())
              + " |", flush=True)
    print(f"\n{title}: load average after {load()}\n", flush=True)


WORKERS = "wasmhost --workers auto"


def load():
    """The 1, 5 and 15 minute load averages, as `uptime` prints them."""
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=8)
    # `dev` reuses the test build (dependencies, SQLite's C included, at
    # opt-level 2) instead of a release build of every dev-dependency; the
    # floor is the commits' fsyncs either way.
    ap.add_argument("--floor-profile", default="bench", choices=["bench", "dev"])
    ap.add_argument("--only", nargs="+", choices=list(BENCHES), default=list(BENCHES),
                    help="run only these parts")
    args = ap.parse_args()
    for name in args.only:
        for path in (WASMHOST,) + BENCHES[name][0]:
            if not os.path.exists(path):
                sys.exit(f"missing {path}: set WASMHOST_BIN, or run bench/run.sh platform")
    for name in args.only:
        BENCHES[name][1](args)


# Each part: the files it needs, and how it runs.
BENCHES = {
    "sqlite": ((SQLITE,), lambda a: sqlite(a.rounds, a.duration, a.floor_profile)),
    "spin-py": ((PYTHON,), lambda a: hello("Python hello (spin-sdk 3.4.1)", PYTHON, "/",
                                           a.rounds, a.duration)),
    "spin-js": ((JS,), lambda a: hello("JavaScript hello (build-tools 1.0.7)", JS, "/js/hello",
                                       a.rounds, a.duration)),
    "py-proxy": ((PY_PROXY,), lambda a: hello(
        "Python hello, no SDK (componentize-py 0.17.2, wasi:http/proxy)", PY_PROXY, "/",
        a.rounds, a.duration)),
    "js-proxy": ((JS_PROXY,), lambda a: hello(
        "JavaScript hello, no SDK (componentize-js 0.19.3, wasi:http/proxy)", JS_PROXY, "/",
        a.rounds, a.duration)),
}


if __name__ == "__main__":
    main()
