#!/usr/bin/env python3
"""The production front door under load, against its peers in the same run.

Scenarios (each in alternating rounds, A B A B ..., so drift on this shared
2-core machine hits both sides alike; medians and ratios of medians):

  fairness   as many looping guest requests in flight as there are cores;
             time to first byte of healthy requests, each on a new
             connection: this build vs --baseline (a wasmhost binary from
             before the change). Also: the loops end in 504 at the deadline
             and stop burning CPU.
  floods     10,000 idle keep-alive connections and 2,000 slowloris
             connections held open, then new clients' requests: this build
             vs --baseline, both started under `ulimit -Sn 1024`. Memory per
             idle connection from the server's RSS.
  tls        keep-alive req/s over TLS vs plain HTTP (this build, same
             run); new TLS connections per second vs Debian's nginx serving
             a static file with the same certificate.
  overhead   keep-alive req/s of this build vs --baseline, OpenTelemetry
             off (what the instrumentation and the new front door cost).

Usage: bench/frontdoor_bench.py [--baseline PATH] [--rounds N] [--only NAME...]
Prints Markdown and writes bench/last-frontdoor-run.json.
"""

import argparse
import asyncio
import json
import os
import platform
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import http_bench  # noqa: E402  (the same server handling as the HTTP bench)
from http_bench import free_port  # noqa: E402
WASMHOST = os.path.join(ROOT, "target/release/wasmhost")
GUESTS = os.path.join(ROOT, "target/guest/wasm32-wasip2/release")
HELLO = os.path.join(GUESTS, "hello.wasm")
SPIN = os.path.join(GUESTS, "spin.wasm")


def pct(values, p):
    values = sorted(values)
    if not values:
        return float("nan")
    k = min(len(values) - 1, max(0, int(round(p / 100 * (len(values) - 1)))))
    return values[k]


class Server(http_bench.Server):
    """A wasmhost (or nginx) process, ready once its port accepts; stopped
    on exit."""

    def __init__(self, argv, port, soft_files=None, env=None):
        if soft_files:
            argv = ["bash", "-c", f'ulimit -Sn {soft_files} && exec "$0" "$@"'] + argv
        super().__init__(argv, port, env)
        self.wait_ready()

    def wait_ready(self, limit=60.0):
        start = time.monotonic()
        while time.monotonic() - start < limit:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.01)
        raise RuntimeError("server never listened")

    def cpu_ticks(self):
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])


def wasmhost(binary, component, extra=(), soft_files=None, env=None):
    port = free_port()
    argv = [binary, "serve", component, "--listen", f"127.0.0.1:{port}", *extra]
    return Server(argv, port, soft_files=soft_files, env=env)


def first_byte(port, path="/", timeout=10.0):
    """Seconds from connect to the first byte of the answer on a new
    connection, and the status; (None, None) on failure."""
    start = time.perf_counter()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nhost: bench\r\nconnection: close\r\n\r\n".encode())
            head = s.recv(64)
            elapsed = time.perf_counter() - start
            m = re.match(rb"HTTP/1\.[01] (\d{3})", head)
            return elapsed, int(m.group(1)) if m else None
    except OSError:
        return None, None


def wrk(url, seconds, connections=16, threads=2, headers=()):
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency"]
    for header in headers:
        argv += ["-H", header]
    out = subprocess.run(argv + [url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    return {"rps": rps, "non_2xx": int(errors.group(1)) if errors else 0,
            "socket_errors": socket_errors.group(1) if socket_errors else ""}


# ------------------------------------------------------------------ fairness

def fairness_round(binary, timeout_s=8, healthy=100):
    cores = os.cpu_count() or 2
    server = wasmhost(binary, SPIN, ["--timeout", f"{timeout_s}s"])
    try:
        for _ in range(10):
            first_byte(server.port)
        loops = []
        results = []

        def loop():
            elapsed, status = first_byte(server.port, "/loop", timeout=timeout_s + 20)
            results.append(status)

        for _ in range(cores):
            t = threading.Thread(target=loop)
            t.start()
            loops.append(t)
        time.sleep(0.5)
        times = []
        failures = 0
        for _ in range(healthy):
            elapsed, status = first_byte(server.port)
            if status == 200:
                times.append(elapsed * 1e3)
            else:
                failures += 1
        for t in loops:
            t.join()
        # After the deadline: is anything still burning CPU?
        before = server.cpu_ticks()
        time.sleep(1.0)
        idle_cpu = (server.cpu_ticks() - before) / os.sysconf("SC_CLK_TCK")
        return {"p50_ms": pct(times, 50), "p99_ms": pct(times, 99), "max_ms": max(times) if times else None,
                "failures": failures, "loop_statuses": results, "cpu_s_per_s_after_deadline": idle_cpu}
    finally:
        server.stop()


# -------------------------------------------------------------------- floods

async def open_idle(port, n, batch=500):
    """n keep-alive connections that each served one request."""
    conns = []

    async def one():
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 3)
            writer.write(b"GET / HTTP/1.1\r\nhost: b\r\n\r\n")
            await writer.drain()
            head = await asyncio.wait_for(reader.read(256), 3)
            if head.startswith(b"HTTP/1.1 200"):
                conns.append(writer)
            else:
                writer.close()
        except (OSError, asyncio.TimeoutError):
            pass

    for start in range(0, n, batch):
        await asyncio.gather(*(one() for _ in range(min(batch, n - start))))
    return conns


async def open_slowloris(port, n, batch=500):
    conns = []

    async def one():
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 3)
            writer.write(b"GET / HTTP/1.1\r\nhost: b\r\n")
            await writer.drain()
            conns.append(writer)
        except (OSError, asyncio.TimeoutError):
            pass

    for start in range(0, n, batch):
        await asyncio.gather(*(one() for _ in range(min(batch, n - start))))
    return conns


async def trickle(conns, stop):
    while not stop.is_set():
        for writer in conns:
            try:
                writer.write(b"x-trickle: 1\r\n")
            except OSError:
                pass
        await asyncio.sleep(2)


async def new_clients(port, n):
    times, failures = [], 0
    for _ in range(n):
        start = time.perf_counter()
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
            writer.write(b"GET / HTTP/1.1\r\nhost: b\r\nconnection: close\r\n\r\n")
            await writer.drain()
            head = await asyncio.wait_for(reader.read(64), 5)
            writer.close()
            if head.startswith(b"HTTP/1.1 200"):
                times.append((time.perf_counter() - start) * 1e3)
            else:
                failures += 1
        except (OSError, asyncio.TimeoutError):
            failures += 1
    return times, failures


def floods_round(binary, idle=10_000, slow=2_000, clients=200):
    server = wasmhost(binary, HELLO, soft_files=1024)
    try:
        for _ in range(10):
            first_byte(server.port)
        rss_before = server.rss_kib()

        async def run():
            held = await open_idle(server.port, idle)
            rss_idle = server.rss_kib()
            slowloris = await open_slowloris(server.port, slow)
            stop = asyncio.Event()
            trickler = asyncio.create_task(trickle(slowloris, stop))
            times, failures = await new_clients(server.port, clients)
            stop.set()
            await trickler
            for w in held + slowloris:
                w.close()
            return len(held), len(slowloris), rss_idle, times, failures

        held, slowloris, rss_idle, times, failures = asyncio.run(run())
        per_conn = (rss_idle - rss_before) * 1024 / held if held else None
        return {"idle_held": held, "slowloris_held": slowloris, "p50_ms": pct(times, 50),
                "p99_ms": pct(times, 99), "failures": failures,
                "rss_per_idle_connection_bytes": per_conn}
    finally:
        server.stop()


# ----------------------------------------------------------------------- TLS

def make_certificate(directory):
    cert = os.path.join(directory, "cert.pem")
    key = os.path.join(directory, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-days", "2", "-subj", "/CN=localhost", "-addext",
                    "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", key, "-out", cert],
                   check=True, capture_output=True)
    return cert, key


def nginx(directory, cert, key):
    port = free_port()
    www = os.path.join(directory, "www")
    os.makedirs(www, exist_ok=True)
    with open(os.path.join(www, "index.html"), "w") as f:
        f.write("Hello, world!\n")
    os.chmod(directory, 0o755)
    os.chmod(www, 0o755)
    conf = os.path.join(directory, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""
worker_processes {os.cpu_count() or 2};
pid {directory}/nginx.pid;
error_log {directory}/error.log;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        root {www};
        keepalive_requests 1000000;
    }}
}}
""")
    return Server(["nginx", "-p", directory, "-c", conf, "-g", "daemon off;"], port)


def tls_rounds(rounds, seconds):
    out = {"plain_rps": [], "tls_rps": [], "wasmhost_new_tls_cps": [], "nginx_new_tls_cps": []}
    with tempfile.TemporaryDirectory() as directory:
        cert, key = make_certificate(directory)
        for _ in range(rounds):
            plain = wasmhost(WASMHOST, HELLO)
            try:
                out["plain_rps"].append(wrk(f"http://127.0.0.1:{plain.port}/", seconds)["rps"])
            finally:
                plain.stop()
            tls = wasmhost(WASMHOST, HELLO, ["--tls-cert", cert, "--tls-key", key])
            try:
                out["tls_rps"].append(wrk(f"https://127.0.0.1:{tls.port}/", seconds)["rps"])
                out["wasmhost_new_tls_cps"].append(
                    wrk(f"https://127.0.0.1:{tls.port}/", seconds, headers=["Connection: close"])["rps"])
            finally:
                tls.stop()
            nginx_dir = tempfile.mkdtemp(dir=directory)
            peer = nginx(nginx_dir, cert, key)
            try:
                out["nginx_new_tls_cps"].append(
                    wrk(f"https://127.0.0.1:{peer.port}/", seconds, headers=["Connection: close"])["rps"])
            finally:
                peer.stop()
    med = {k: statistics.median(v) for k, v in out.items()}
    med["tls_over_plain"] = med["tls_rps"] / med["plain_rps"]
    med["new_tls_wasmhost_over_nginx"] = med["wasmhost_new_tls_cps"] / med["nginx_new_tls_cps"]
    return {"rounds": out, "median": med}


# ------------------------------------------------------------------ overhead

def overhead_rounds(baseline, rounds, seconds):
    out = {"baseline_rps": [], "current_rps": []}
    for _ in range(rounds):
        for name, binary in (("baseline_rps", baseline), ("current_rps", WASMHOST)):
            server = wasmhost(binary, HELLO)
            try:
                wrk(f"http://127.0.0.1:{server.port}/", 2)
                out[name].append(wrk(f"http://127.0.0.1:{server.port}/", seconds)["rps"])
            finally:
                server.stop()
    med = {k: statistics.median(v) for k, v in out.items()}
    med["current_over_baseline"] = med["current_rps"] / med["baseline_rps"]
    return {"rounds": out, "median": med}


def alternate(sides, rounds, run):
    """`run(binary)` for each side in turn, `rounds` times: A B A B ..."""
    results = {name: [] for name, _ in sides}
    for _ in range(rounds):
        for name, binary in sides:
            results[name].append(run(binary))
    return results


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--baseline", default=os.environ.get("WASMHOST_BASELINE"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--only", nargs="*")
    args = parser.parse_args()
    wanted = lambda name: not args.only or name in args.only
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    report = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "machine": f"{platform.node()} {os.cpu_count()} cores, {platform.release()}"}
    sides = [("current", WASMHOST)] + ([("baseline", args.baseline)] if args.baseline else [])
    if wanted("fairness"):
        rounds = alternate(sides, args.rounds, fairness_round)
        report["fairness"] = rounds
        for name, rs in rounds.items():
            print(f"fairness {name}: p99 first byte "
                  f"{statistics.median(r['p99_ms'] for r in rs):.1f} ms, p50 "
                  f"{statistics.median(r['p50_ms'] for r in rs):.1f} ms, max "
                  f"{max(r['max_ms'] for r in rs):.1f} ms, loops {rs[0]['loop_statuses']}, "
                  f"CPU after deadline {max(r['cpu_s_per_s_after_deadline'] for r in rs):.2f} s/s")
    if wanted("floods"):
        rounds = alternate(sides, args.rounds, floods_round)
        report["floods"] = rounds
        for name, rs in rounds.items():
            print(f"floods {name}: held {rs[0]['idle_held']} idle + {rs[0]['slowloris_held']} slowloris; "
                  f"new clients p99 {statistics.median(r['p99_ms'] for r in rs):.1f} ms, failures "
                  f"{[r['failures'] for r in rs]}, RSS per idle connection "
                  f"{rs[0]['rss_per_idle_connection_bytes']}")
    if wanted("tls"):
        report["tls"] = tls_rounds(args.rounds, args.duration)
        print("tls:", json.dumps(report["tls"]["median"], indent=1))
    if wanted("overhead") and args.baseline:
        report["overhead"] = overhead_rounds(args.baseline, args.rounds, args.duration)
        print("overhead:", json.dumps(report["overhead"]["median"], indent=1))
    with open(os.path.join(ROOT, "bench/last-frontdoor-run.json"), "w") as f:
        json.dump(report, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
