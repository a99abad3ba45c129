#!/usr/bin/env python3
"""wasmhost vs `wasmtime serve` on the same component, in the same run.

Every scenario is run in alternating rounds (A, B, A, B, ...) so that drift
on this shared 2-core machine hits both sides alike; the table reports the
median of the rounds and the ratio of medians.

Usage: bench/http_bench.py [--rounds N] [--duration S] [--only NAME...] [--component X.wasm]
Prints a Markdown table and writes bench/last-run.json.
"""

import argparse
import json
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WASMHOST = os.path.abspath(os.environ.get("WASMHOST_BIN", os.path.join(ROOT, "target/release/wasmhost")))
HELLO = os.path.join(ROOT, "target/guest/wasm32-wasip2/release/hello.wasm")
WASMTIME = os.environ.get("WASMTIME", "wasmtime")

# wasmtime serve's best pooling flags, as the issue names them.
BEST_POOLING = ("pooling-allocator=y,pooling-memory-keep-resident=4194304,"
                "pooling-table-keep-resident=65536,pooling-max-memory-size=67108864,"
                "pooling-pagemap-scan=y")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_status(port, timeout=1.0, path="/"):
    """One HTTP/1.1 GET on a fresh connection; the status code or None."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nhost: bench\r\nconnection: close\r\n\r\n".encode())
            head = s.recv(64)
            m = re.match(rb"HTTP/1\.[01] (\d{3})", head)
            return int(m.group(1)) if m else None
    except OSError:
        return None


class Server:
    def __init__(self, argv, port, env=None):
        self.argv = argv
        self.port = port
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     env={**os.environ, **(env or {})})

    def wait_first_200(self, limit=60.0, path="/"):
        """Polls until the first 200; returns seconds since the spawn."""
        while time.perf_counter() - self.started < limit:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.argv} exited with {self.proc.returncode}")
            if get_status(self.port, timeout=0.2, path=path) == 200:
                return time.perf_counter() - self.started
            time.sleep(0.0005)
        raise RuntimeError(f"{self.argv} never answered 200")

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def wasmhost(extra=(), cache_dir=None, env=None):
    port = free_port()
    argv = [WASMHOST, "serve", HELLO, "--listen", f"127.0.0.1:{port}"]
    if cache_dir:
        argv += ["--cache-dir", cache_dir]
    return Server(argv + list(extra), port, env={"WASMHOST_LOG": "warn", **(env or {})})


def wasmtime(extra=(), env=None):
    port = free_port()
    argv = [WASMTIME, "serve", "-Scli", "--addr", f"127.0.0.1:{port}"] + list(extra) + [HELLO]
    return Server(argv, port, env=env)


def wrk(port, duration, connections):
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", f"http://127.0.0.1:{port}/"],
        check=True, capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    lat = {}
    for pct in ("50", "90", "99"):
        m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        value = float(m.group(1))
        lat[pct] = value * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
    return {"rps": rps, "requests": total, "non2xx": int(errors.group(1)) if errors else 0,
            "p50_ms": lat["50"], "p90_ms": lat["90"], "p99_ms": lat["99"]}


def throughput(make_a, make_b, rounds, duration, connections):
    results = {"a": [], "b": []}
    for _ in range(rounds):
        for side, make in (("a", make_a), ("b", make_b)):
            server = make()
            try:
                server.wait_first_200()
                wrk(server.port, 1, connections)  # warm-up
                results[side].append(wrk(server.port, duration, connections))
            finally:
                server.stop()
    return results


def startup(make_a, make_b, rounds):
    results = {"a": [], "b": []}
    for _ in range(rounds):
        for side, make in (("a", make_a), ("b", make_b)):
            server = make()
            try:
                results[side].append(server.wait_first_200() * 1000.0)
            finally:
                server.stop()
    return results


def median(rows, key):
    return statistics.median(r[key] for r in rows)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--only", nargs="*")
    ap.add_argument("--component", help="serve this .wasm instead of components/hello")
    args = ap.parse_args()
    global HELLO
    if args.component:
        HELLO = os.path.abspath(args.component)
    for path in (WASMHOST, HELLO):
        if not os.path.exists(path):
            sys.exit(f"missing {path}: run bench/run.sh")

    report = {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "machine": machine(),
              "wasmtime": subprocess.run([WASMTIME, "--version"], capture_output=True, text=True).stdout.strip(),
              "args": vars(args), "scenarios": {}}
    tput = {
        "fresh vs wasmtime defaults": (lambda: wasmhost(), lambda: wasmtime()),
        "fresh vs wasmtime best pooling": (lambda: wasmhost(), lambda: wasmtime(["-O", BEST_POOLING])),
        "reuse vs wasmtime reuse": (lambda: wasmhost(["--reuse", "1000000"]),
                                    lambda: wasmtime(["-O", BEST_POOLING, "--max-instance-reuse-count", "1000000"])),
    }
    print(f"| scenario | wasmhost req/s | peer req/s | ratio | wasmhost p50/p99 ms | peer p50/p99 ms |")
    print(f"|---|---|---|---|---|---|")
    for name, (a, b) in tput.items():
        if args.only and not any(o in name for o in args.only):
            continue
        r = throughput(a, b, args.rounds, args.duration, args.connections)
        report["scenarios"][name] = r
        ra, rb = median(r["a"], "rps"), median(r["b"], "rps")
        print(f"| {name} | {ra:,.0f} | {rb:,.0f} | {ra / rb:.2f}x | "
              f"{median(r['a'], 'p50_ms'):.2f}/{median(r['a'], 'p99_ms'):.2f} | "
              f"{median(r['b'], 'p50_ms'):.2f}/{median(r['b'], 'p99_ms'):.2f} |", flush=True)

    if not args.only or any("start" in o for o in args.only):
        warm = tempfile.mkdtemp(prefix="wasmhost-bench-cache-")
        wasmhost(cache_dir=warm).stop()  # fill the cache
        wt_cache = tempfile.mkdtemp(prefix="wasmtime-bench-cache-")
        starts = {
            "start to first 200, warm cache": (lambda: wasmhost(cache_dir=warm),
                                               lambda: wasmtime(["-C", "cache=y"], env={"XDG_CACHE_HOME": wt_cache})),
            "start to first 200, cold (no cache)": (lambda: wasmhost(["--no-cache"]),
                                                    lambda: wasmtime(["-C", "cache=n"])),
            # With a request timeout wasmtime compiles epoch checks into the
            # code too, as wasmhost always does: the same generated code.
            "start to first 200, cold, peer with -W timeout=30s": (
                lambda: wasmhost(["--no-cache"]),
                lambda: wasmtime(["-C", "cache=n", "-W", "timeout=30s"])),
        }
        # Fill wasmtime's cache too.
        s = wasmtime(["-C", "cache=y"], env={"XDG_CACHE_HOME": wt_cache})
        s.wait_first_200()
        s.stop()
        print("\n| scenario | wasmhost ms | wasmtime serve ms | ratio |\n|---|---|---|---|")
        for name, (a, b) in starts.items():
            r = startup(a, b, max(args.rounds, 5))
            report["scenarios"][name] = r
            ma, mb = statistics.median(r["a"]), statistics.median(r["b"])
            print(f"| {name} | {ma:.1f} | {mb:.1f} | {ma / mb:.2f}x |", flush=True)

    if not args.only or any("app" in o for o in args.only):
        app_start(max(args.rounds, 5))

    if not args.only or any("rss" in o for o in args.only):
        server = wasmhost()
        try:
            server.wait_first_200()
            first = server.rss_kib()
            served = 0
            while served < 100_000:
                served += wrk(server.port, 5, args.connections)["requests"]
            after = server.rss_kib()
        finally:
            server.stop()
        report["scenarios"]["rss"] = {"first_kib": first, "after_kib": after, "requests": served}
        print(f"\nRSS: {first / 1024:.1f} MiB at the first response, {after / 1024:.1f} MiB after "
              f"{served:,} requests ({(after - first) * 100 / first:+.1f}%)")

    with open(os.path.join(ROOT, "bench/last-run.json"), "w") as f:
        json.dump(report, f, indent=1)


def app_start(rounds, components=20):
    """A Spin app of `components` components (copies of hello, one route
    each): spawn to the first 200 from the last route, warm compile cache."""
    app = tempfile.mkdtemp(prefix="wasmhost-bench-app-")
    lines = ["spin_manifest_version = 2", "[application]", 'name = "bench"']
    for i in range(components):
        dest = os.path.join(app, f"c{i}.wasm")
        with open(HELLO, "rb") as src, open(dest, "wb") as dst:
            dst.write(src.read())
        lines += ["[[trigger.http]]", f'route = "/c{i}"', f'component = "c{i}"',
                  f"[component.c{i}]", f'source = "c{i}.wasm"']
    manifest = os.path.join(app, "spin.toml")
    with open(manifest, "w") as f:
        f.write("\n".join(lines) + "\n")
    cache = tempfile.mkdtemp(prefix="wasmhost-bench-cache-")
    last = f"/c{components - 1}"

    def start():
        port = free_port()
        argv = [WASMHOST, "serve", manifest, "--listen", f"127.0.0.1:{port}", "--cache-dir", cache]
        server = Server(argv, port, env={"WASMHOST_LOG": "warn"})
        server.path = last
        return server

    s = start()
    s.wait_first_200(path=last)
    s.stop()
    times = []
    for _ in range(rounds):
        s = start()
        try:
            times.append(s.wait_first_200(path=last) * 1000.0)
        finally:
            s.stop()
    print(f"\n{components}-component app, start to first 200 (warm cache): median {statistics.median(times):.1f} ms "
          f"(runs: {', '.join(f'{t:.1f}' for t in times)})", flush=True)


def machine():
    cpu = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{cpu}, {os.cpu_count()} cores, {platform.release()}"


if __name__ == "__main__":
    main()
