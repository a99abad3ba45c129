#!/usr/bin/env python3
"""Memory at scale (issue 17, part 4): 10,000 requests in flight at once to
a component that waits 1 s per request, wasmhost vs `wasmtime serve`
48.0.8 on the same component, same run, sides alternated.

The component is components/sleep (built by scripts/build-guests.sh): a
plain wasi:http/proxy handler that blocks on a `wasi:clocks` timer
(`subscribe-duration(1 s)` then `pollable.block`), which both hosts serve
asynchronously, so an instance waiting holds memory, not a core.

Load: wrk with 10,000 connections (`-c 10000 -t 2 --latency`), each
keeping one request in flight, for `--duration` seconds. Every request is
a fresh instance on both sides (wasmhost's default `--reuse 1`; wasmtime
serve's default for a WASI 0.2 component).

What each side needs to hold 10,000:
- wasmhost: `--max-concurrency 10000` (default 256: the pooling
  allocator's slots; requests beyond it queue for a free instance and get
  503 at their deadline) and room for 10,000 connections: the front
  door's `--max-connections` defaults to the open-files limit minus a
  reserve of 256 + 4 per instance slot, capped at half the limit (here a
  hard limit of 20,000 with 10,000 slots gives exactly 10,000, no room
  for a probe), so the bench passes `--max-connections 11024`; past the
  limit the longest-idle connection is closed, or a new one gets 503.
- wasmtime serve: the pooling allocator sized the same way wasmhost sizes
  its own (per instance slot: 2 memories, 4 tables, 8 core instances, one
  stack; 128 MiB memory cap; 4 MiB of memory and 64 KiB of table kept
  resident; PAGEMAP_SCAN), so both hosts reserve and keep alike; and
  `--max-concurrent-requests 10000 --max-concurrent-connections 11024`
  (both default to 1,000: without them it holds 1,000 requests in flight
  and the rest of wrk's connections wait unaccepted).
This script raises the soft RLIMIT_NOFILE to the hard one for itself, wrk
and both servers.

Memory, sampled from /proc every 0.25 s while wrk runs: VmRSS, VmHWM
(peak) and Pss (smaps_rollup). Idle = after the first answer and a few
requests, before the load. Steady = median of the samples from 25 % to
90 % of the run. In flight = Little's law from wrk's figures (requests/s ×
mean latency; 10,000 when every connection always has one outstanding).
Per instance = (steady RSS − idle RSS) / in flight. CPU: the server's
user + system time during the load (/proc/PID/stat) per completed
request, wrk's own, and the 1-minute load average (this machine is
shared: other builds run beside the bench).

wasmhost runs twice: one process, and `--workers auto` (one process per
CPU, each with its own `--max-concurrency`; memory and CPU are the sums
over the supervisor and its workers).

Two loads (`--load`):
- `burst` (the default): wrk as above, a closed loop. wrk opens all its
  connections and writes every first request within a few milliseconds,
  so the first second is a burst of 10,000 new connections and fresh
  instances at once, and the p99 mostly says how long a host takes to
  work through that burst.
- `open`: host/benches/open_loop.rs, an open loop: requests due at a fixed
  rate of `--connections` per second (so, with a 1 s wait, that many in
  flight once the first second has passed), each timed from when it was
  due, on idle keep-alive connections or new ones; the first 3 s (the
  ramp) are sent but left out of the latency figures. Clients arriving at
  a rate rather than all in one millisecond.

Usage: bench/scale_bench.py [--rounds N] [--duration S] [--connections C]
       [--wasmhost PATH] [--load burst|open] [--rate R] [--client PATH]
Prints Markdown tables, writes bench/last-scale-run.json.
"""

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import http_bench as hb  # noqa: E402

ROOT = hb.ROOT
SLEEP = os.path.join(ROOT, "target/guest/wasm32-wasip2/release/sleep.wasm")
WASMTIME = hb.WASMTIME

# Descriptors beyond the connections each process needs: the server's
# listener, engine and log files; wrk's own.
SPARE_FDS = 1024

# The open loop's ramp, left out of its latency figures: requests in
# flight grow from 0 to the full count over the first second (the wait).
OPEN_WARM_UP_S = 3

# The memory cap per instance on both sides: wasmhost's default
# (limits::MEMORY_LIMIT).
MEMORY_LIMIT = 128 << 20


def raise_nofile(connections):
    """Raises this process's soft open-files limit to the hard one (wrk and
    both servers inherit it); the hard limit must hold `connections` plus
    a spare (raising it takes CAP_SYS_RESOURCE, which this machine's root
    lacks: its hard limit is 20,000)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = connections + SPARE_FDS
    if hard != resource.RLIM_INFINITY and hard < need:
        sys.exit(f"the open-files hard limit is {hard}; {connections} connections need {need}: "
                 f"raise `ulimit -Hn` (or LimitNOFILE=)")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def wasmhost_server(binary, connections, extra=()):
    port = hb.free_port()
    argv = [binary, "serve", SLEEP, "--listen", f"127.0.0.1:{port}",
            "--max-concurrency", str(connections),
            "--max-connections", str(connections + SPARE_FDS), "--no-cache"] + list(extra)
    return hb.Server(argv, port, env={"WASMHOST_LOG": "warn"})


def tree(pid):
    """`pid` and its children (a `--workers` supervisor's workers)."""
    pids = [pid]
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                    pids.append(int(entry))
        except (OSError, ValueError, IndexError):
            pass
    return pids


def wasmtime_pooling(connections):
    """wasmtime serve's pooling allocator, sized as wasmhost sizes its own
    (host/src/wasm/engine.rs `pooling`)."""
    n = connections
    return ",".join([
        "pooling-allocator=y",
        f"pooling-total-component-instances={n}",
        f"pooling-total-memories={2 * n}",
        f"pooling-total-tables={4 * n}",
        f"pooling-total-core-instances={8 * n}",
        f"pooling-total-stacks={n}",
        f"pooling-max-memory-size={MEMORY_LIMIT}",
        "pooling-memory-keep-resident=4194304",
        "pooling-table-keep-resident=65536",
        "pooling-pagemap-scan=y",
    ])


def wasmtime_server(connections):
    port = hb.free_port()
    argv = [WASMTIME, "serve", "-Scli", "-C", "cache=n", "-O", wasmtime_pooling(connections),
            "--max-concurrent-requests", str(connections),
            "--max-concurrent-connections", str(connections + SPARE_FDS),
            "--addr", f"127.0.0.1:{port}", SLEEP]
    return hb.Server(argv, port)


def memory_kib(pid):
    """VmRSS, VmHWM and Pss of `pid` and its children in KiB, summed."""
    out = {"rss": 0, "hwm": 0, "pss": 0}
    for one in tree(pid):
        for key, value in process_memory_kib(one).items():
            out[key] += value
    return out


def process_memory_kib(pid):
    """VmRSS, VmHWM and Pss of `pid` in KiB (Pss 0 if unreadable)."""
    out = {"rss": 0, "hwm": 0, "pss": 0}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                out["rss"] = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                out["hwm"] = int(line.split()[1])
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    out["pss"] = int(line.split()[1])
    except OSError:
        pass
    return out


class Sampler(threading.Thread):
    """Samples a process's memory every `every` seconds until stopped."""

    def __init__(self, pid, every=0.25):
        super().__init__(daemon=True)
        self.pid, self.every = pid, every
        self.samples = []  # (seconds since start, memory_kib)
        self.stopping = threading.Event()

    def run(self):
        start = time.perf_counter()
        while not self.stopping.is_set():
            try:
                self.samples.append((time.perf_counter() - start, memory_kib(self.pid)))
            except OSError:
                return
            self.stopping.wait(self.every)

    def steady(self, key, duration):
        """Median of `key` over 25–90 % of the run."""
        window = [m[key] for t, m in self.samples if 0.25 * duration <= t <= 0.9 * duration]
        return statistics.median(window) if window else 0


def cpu_seconds(pid):
    """User + system CPU time `pid` and its children have used so far."""
    total = 0
    for one in tree(pid):
        try:
            with open(f"/proc/{one}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def to_ms(value, unit):
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def parse_wrk(out):
    """wrk --latency's figures: percentiles, mean and max latency, request
    count and rate, and every kind of failure it reports."""
    lat = re.search(r"^\s+Latency\s+([\d.]+)(us|ms|s|m)\s+([\d.]+)(us|ms|s|m)\s+([\d.]+)(us|ms|s|m)",
                    out, re.M)
    result = {
        "mean_ms": to_ms(lat.group(1), lat.group(2)),
        "max_ms": to_ms(lat.group(5), lat.group(6)),
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "non2xx": 0, "connect": 0, "read": 0, "write": 0, "timeout": 0,
    }
    for pct in ("50", "75", "90", "99"):
        m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M)
        result[f"p{pct}_ms"] = to_ms(m.group(1), m.group(2))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        result["non2xx"] = int(non2xx.group(1))
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if errors:
        for key, value in zip(("connect", "read", "write", "timeout"), errors.groups()):
            result[key] = int(value)
    result["errors"] = sum(result[k] for k in ("non2xx", "connect", "read", "write", "timeout"))
    return result


def parse_open_loop(out):
    """The open-loop client's JSON, under the names parse_wrk gives; its
    latency and rate are over the measured part (after the warm-up), its
    errors over the whole run."""
    r = json.loads(out)
    result = {key: r[key] for key in ("mean_ms", "max_ms", "p50_ms", "p75_ms", "p90_ms",
                                           "p99_ms", "p999_ms", "non2xx", "connect", "timeout")}
    result.update({
        "requests": r["measured_ok"] + r["warm_up_ok"], "rps": r["measured_rps"],
        "read": r["io"], "write": 0, "open_loop": r,
    })
    result["errors"] = sum(result[k] for k in ("non2xx", "connect", "read", "write", "timeout"))
    return result


def one_run(server, connections, duration, client=None, rate=None):
    """Idle memory, then the load (wrk with `connections`, or the open-loop
    `client` at `rate` requests per second) while sampling; the figures."""
    try:
        server.wait_first_200(limit=120, path="/?ms=0")
        # A few requests so both sides have compiled, linked and run the
        # guest once before "idle" is read.
        for _ in range(20):
            hb.get_status(server.port, path="/?ms=0")
        time.sleep(1.0)
        idle = memory_kib(server.proc.pid)
        sampler = Sampler(server.proc.pid)
        sampler.start()
        cpu_before, wrk_before = cpu_seconds(server.proc.pid), children_cpu_seconds()
        load_before = os.getloadavg()[0]
        url = f"http://127.0.0.1:{server.port}/"
        if client:
            out = subprocess.run(
                [client, "--url", url, "--rate", str(rate), "--duration", str(duration),
                 "--warm-up", str(OPEN_WARM_UP_S), "--timeout", "10"],
                check=True, capture_output=True, text=True).stdout
        else:
            out = subprocess.run(
                ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--timeout", "10s", "--latency",
                 url], check=True, capture_output=True, text=True).stdout
        server_cpu = cpu_seconds(server.proc.pid) - cpu_before
        wrk_cpu = children_cpu_seconds() - wrk_before
        load = max(load_before, os.getloadavg()[0])
        sampler.stopping.set()
        sampler.join()
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.argv[0]} exited under load ({server.proc.returncode})")
        after = memory_kib(server.proc.pid)
    finally:
        server.stop()
    figures = parse_open_loop(out) if client else parse_wrk(out)
    in_flight = figures["rps"] * figures["mean_ms"] / 1000.0
    steady_rss = sampler.steady("rss", duration)
    figures.update({
        "idle_rss_kib": idle["rss"], "idle_pss_kib": idle["pss"],
        "steady_rss_kib": steady_rss, "steady_pss_kib": sampler.steady("pss", duration),
        "peak_rss_kib": after["hwm"],
        "in_flight": in_flight,
        "server_cpu_s": server_cpu, "wrk_cpu_s": wrk_cpu, "load_avg_1m": load,
        "server_cpu_us_per_request": server_cpu / figures["requests"] * 1e6 if figures["requests"] else 0.0,
        "per_instance_kib": (steady_rss - idle["rss"]) / in_flight if in_flight else 0.0,
        "wrk": out,
    })
    return figures


def mib(kib):
    return f"{kib / 1024:.0f}"


def table(results, label, duration):
    print(f"| {label}, 1 s wait, {duration} s | p50 ms | p99 ms | max ms | req/s "
          f"| errors (non-2xx/connect/read/write/timeout) | in flight | RSS idle MiB | RSS steady MiB "
          f"| RSS peak MiB | PSS steady MiB | per instance KiB | server CPU s (µs/request) | wrk CPU s "
          f"| load avg |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, runs in results.items():
        for r in runs:
            errors = f"{r['errors']} ({r['non2xx']}/{r['connect']}/{r['read']}/{r['write']}/{r['timeout']})"
            print(f"| {name} | {r['p50_ms']:.0f} | {r['p99_ms']:.0f} | {r['max_ms']:.0f} | {r['rps']:.0f} "
                  f"| {errors} | {r['in_flight']:.0f} | {mib(r['idle_rss_kib'])} "
                  f"| {mib(r['steady_rss_kib'])} | {mib(r['peak_rss_kib'])} "
                  f"| {mib(r['steady_pss_kib'])} | {r['per_instance_kib']:.0f} "
                  f"| {r['server_cpu_s']:.1f} ({r['server_cpu_us_per_request']:.0f}) | {r['wrk_cpu_s']:.1f} "
                  f"| {r['load_avg_1m']:.1f} |", flush=True)


def build_client():
    """Builds the open-loop client with `cargo bench --no-run`; its path."""
    out = subprocess.run(["cargo", "bench", "--locked", "-p", "wasmhost", "--bench", "open_loop",
                          "--no-run", "--message-format", "json"],
                         cwd=ROOT, check=True, capture_output=True, text=True).stdout
    for line in out.splitlines():
        message = json.loads(line)
        if message.get("target", {}).get("name") == "open_loop" and message.get("executable"):
            return message["executable"]
    sys.exit("cargo bench built no open_loop executable")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--duration", type=int, default=20)
    ap.add_argument("--connections", type=int, default=10_000)
    ap.add_argument("--wasmhost", default=os.environ.get("WASMHOST_BIN", hb.WASMHOST))
    ap.add_argument("--only", choices=["wasmhost", "wasmhost --workers auto", "wasmtime serve"])
    ap.add_argument("--load", choices=["burst", "open"], default="burst")
    ap.add_argument("--rate", type=int, help="the open loop's requests per second "
                                             "(default: --connections, i.e. that many in flight)")
    ap.add_argument("--client", help="the open-loop client already built (benches/open_loop.rs); "
                                     "else `cargo bench` builds it")
    args = ap.parse_args()
    client = None
    if args.load == "open":
        client = args.client or build_client()
    binary = os.path.abspath(args.wasmhost)
    for path, hint in ((SLEEP, "run scripts/build-guests.sh"), (binary, "build it or pass --wasmhost")):
        if not os.path.exists(path):
            sys.exit(f"missing {path}: {hint} (bench/run.sh scale does both)")
    try:
        version = subprocess.run([WASMTIME, "--version"], capture_output=True, text=True).stdout.strip()
    except FileNotFoundError:
        sys.exit(f"missing {WASMTIME} (wasmtime-cli 48.0.8): run bench/run.sh scale")
    raise_nofile(args.connections)
    date = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(f"date: {date}; machine: {hb.machine()}; peer: {version}; wasmhost: {binary}\n")
    sides = {
        "wasmhost": lambda: wasmhost_server(binary, args.connections),
        "wasmhost --workers auto": lambda: wasmhost_server(binary, args.connections,
                                                           ["--workers", "auto"]),
        "wasmtime serve": lambda: wasmtime_server(args.connections),
    }
    if args.only:
        sides = {args.only: sides[args.only]}
    results = {name: [] for name in sides}
    for _ in range(args.rounds):
        for name, make in sides.items():
            results[name].append(one_run(make(), args.connections, args.duration, client,
                                         args.rate or args.connections))
    label = (f"{args.connections:,} connections (wrk)" if args.load == "burst"
             else f"open loop, {args.rate or args.connections:,} req/s")
    table(results, label, args.duration)
    report = {"date": date, "machine": hb.machine(), "wasmtime": version, "wasmhost": binary,
              "connections": args.connections, "duration_s": args.duration, "load": args.load,
              "rate": args.rate or args.connections if args.load == "open" else None,
              "results": results}
    name = "last-scale-run.json" if args.load == "burst" else "last-scale-open-run.json"
    with open(os.path.join(ROOT, "bench", name), "w") as f:
        json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
