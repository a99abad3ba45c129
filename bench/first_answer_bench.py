#!/usr/bin/env python3
"""First answer of a component a node has never compiled (issue 17, parts
1 and 2), same run, same machine, wasmtime serve 48.0.8 as the peer.

1. Empty compile cache, process start to first 200, for the JavaScript and
   Python Spin fixtures and the Rust hello: wasmhost (baseline Winch code
   first, Cranelift in the background; the default) vs wasmhost
   `--no-baseline` (Cranelift before serving) vs `wasmtime serve -C
   cache=n`. Also when the optimised code took over (wasmhost's log line
   "optimised code ready in ...").
2. Warm cache: wasmhost with a filled cache vs `wasmtime serve -C cache=y`.
3. From a registry on an empty node (a fresh cache directory each round):
   `serve REF` of a component pushed with `--precompiled`, with
   `--trust-precompiled` (loads the registry's code) vs without (compiles;
   baseline first).

Rounds alternate the sides; medians are printed as Markdown tables and
written to bench/last-first-answer-run.json.

Usage: WASMHOST_BIN=target/release/wasmhost bench/first_answer_bench.py [--rounds N]
(bench/run.sh first-answer builds everything first, release profile.)
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import http_bench as hb  # noqa: E402
from oci_bench import Registry  # noqa: E402

ROOT = hb.ROOT
WASMHOST = os.path.abspath(os.environ.get("WASMHOST_BIN", hb.WASMHOST))
WASMTIME = hb.WASMTIME
COMPONENTS = [
    # (title, file, path answering 200)
    ("JavaScript hello (12.8 MB)", os.path.join(ROOT, "target/fixtures/js/spin-js.wasm"), "/js/hello"),
    ("Python hello (37.5 MB)", os.path.join(ROOT, "target/fixtures/python/spin-py.wasm"), "/"),
    ("Rust hello", hb.HELLO, "/"),
]


class Logged(hb.Server):
    """A server whose stderr goes to a file, to read its log lines."""

    def __init__(self, argv, port, env=None):
        self.log = tempfile.NamedTemporaryFile(prefix="bench-log-", delete=False)
        self.argv = argv
        self.port = port
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=self.log,
                                     env={**os.environ, **(env or {})})

    def optimised_after(self, limit=180.0):
        """Seconds from spawn until the log says the optimised code took
        over (polls the log; None if it never does within `limit`)."""
        while time.perf_counter() - self.started < limit:
            with open(self.log.name, errors="replace") as f:
                if "optimised code ready" in f.read():
                    return time.perf_counter() - self.started
            time.sleep(0.01)
        return None

    def stop(self):
        super().stop()
        os.unlink(self.log.name)


def ours(wasm, extra=(), cache=None, env=None):
    port = hb.free_port()
    argv = [WASMHOST, "serve", wasm, "--listen", f"127.0.0.1:{port}"] + list(extra)
    argv += ["--cache-dir", cache] if cache else ["--no-cache"]
    return Logged(argv, port, env={"WASMHOST_LOG": "info", **(env or {})})


def peer(wasm, extra=(), env=None):
    port = hb.free_port()
    argv = [WASMTIME, "serve", "-Scli", "--addr", f"127.0.0.1:{port}"]
    return hb.Server(argv + list(extra) + [wasm], port, env=env)


def peer_refusal(wasm, path):
    """None if `wasmtime serve` answers 200 for `wasm`; else why not (its
    first error line). The Spin SDK fixtures import Spin's interfaces,
    which wasmtime does not provide (and wasmtime 48 has no
    --trap-unknown-imports for components): it cannot serve them."""
    port = hb.free_port()
    proc = subprocess.Popen([WASMTIME, "serve", "-Scli", "--addr", f"127.0.0.1:{port}", wasm],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        started = time.perf_counter()
        while time.perf_counter() - started < 180:
            if proc.poll() is not None:
                lines = [l.strip() for l in proc.stderr.read().splitlines()]
                errors = [l for l in lines if l.startswith("Error:")]
                return errors[0] if errors else f"exit {proc.returncode}"
            if hb.get_status(port, timeout=0.2, path=path) == 200:
                return None
            time.sleep(0.01)
        return "no 200 within 180 s"
    finally:
        proc.kill()
        proc.wait()


class Compile:
    """`wasmtime compile` of `wasm` (no cache): the compile `wasmtime
    serve -C cache=n` does before it can answer, its lower bound where it
    cannot serve the component at all. Duck-types the server interface
    rounds_of uses."""

    def __init__(self, wasm):
        self.wasm = wasm

    def wait_first_200(self, path="/", limit=180):
        out = tempfile.mktemp(suffix=".cwasm")
        started = time.perf_counter()
        subprocess.run([WASMTIME, "compile", "-C", "cache=n", self.wasm, "-o", out], check=True,
                       timeout=limit)
        elapsed = time.perf_counter() - started
        os.unlink(out)
        return elapsed

    def stop(self):
        pass


def rounds_of(sides, path, rounds):
    """Alternating rounds of `sides` ({name: make}); ms to first 200."""
    times = {name: [] for name in sides}
    optimised = []
    for _ in range(rounds):
        for name, make in sides.items():
            server = make()
            try:
                times[name].append(server.wait_first_200(path=path, limit=180) * 1000.0)
                if name == "wasmhost" and isinstance(server, Logged):
                    after = server.optimised_after()
                    if after is not None:
                        optimised.append(after * 1000.0)
            finally:
                server.stop()
    return times, optimised


def cold_and_warm(rounds, report):
    print("| empty cache, start to first 200 | wasmhost ms | wasmhost --no-baseline ms "
          "| wasmtime serve -C cache=n ms | ratio (wasmhost / wasmtime) | optimised code in use after ms |")
    print("|---|---|---|---|---|---|")
    refusals = {}
    for title, wasm, path in COMPONENTS:
        refusals[title] = peer_refusal(wasm, path)
        refused = refusals[title]
        sides = {
            "wasmhost": lambda: ours(wasm),
            "wasmhost --no-baseline": lambda: ours(wasm, ["--no-baseline"]),
            "wasmtime": (lambda: Compile(wasm)) if refused else (lambda: peer(wasm, ["-C", "cache=n"])),
        }
        times, optimised = rounds_of(sides, path, rounds)
        m = {k: statistics.median(v) for k, v in times.items()}
        opt = f"{statistics.median(optimised):.0f}" if optimised else "n/a"
        peer_ms = f"≥ {m['wasmtime']:.0f} (`wasmtime compile` alone: serve cannot run it)" if refused \
            else f"{m['wasmtime']:.0f}"
        print(f"| {title} | {m['wasmhost']:.0f} | {m['wasmhost --no-baseline']:.0f} | "
              f"{peer_ms} | {m['wasmhost'] / m['wasmtime']:.2f}x | {opt} |", flush=True)
        report[f"cold {title}"] = {"times_ms": times, "optimised_ms": optimised,
                                   "wasmtime_serve_refusal": refused}
    for title, refused in refusals.items():
        if refused:
            print(f"\n`wasmtime serve` cannot serve {title}: {refused}")
    print()
    print("| warm cache, start to first 200 | wasmhost ms | wasmtime serve -C cache=y ms | ratio |")
    print("|---|---|---|---|")
    for title, wasm, path in COMPONENTS:
        if refusals[title]:
            print(f"| {title} | | n/a: wasmtime serve cannot run it | |")
            continue
        warm = tempfile.mkdtemp(prefix="wasmhost-bench-cache-")
        wt_cache = tempfile.mkdtemp(prefix="wasmtime-bench-cache-")
        for fill in (lambda: ours(wasm, ["--no-baseline"], cache=warm),
                     lambda: peer(wasm, ["-C", "cache=y"], env={"XDG_CACHE_HOME": wt_cache})):
            s = fill()
            s.wait_first_200(path=path, limit=180)
            s.stop()
        sides = {
            "wasmhost": lambda: ours(wasm, cache=warm),
            "wasmtime": lambda: peer(wasm, ["-C", "cache=y"], env={"XDG_CACHE_HOME": wt_cache}),
        }
        times, _ = rounds_of(sides, path, rounds)
        m = {k: statistics.median(v) for k, v in times.items()}
        print(f"| {title} | {m['wasmhost']:.0f} | {m['wasmtime']:.0f} | "
              f"{m['wasmhost'] / m['wasmtime']:.2f}x |", flush=True)
        report[f"warm {title}"] = {"times_ms": times}
        shutil.rmtree(warm)
        shutil.rmtree(wt_cache)
    print()


def from_registry(rounds, report):
    work = tempfile.mkdtemp(prefix="wasmhost-bench-precompiled-")
    registry = Registry(work)
    try:
        print("| registry ref, empty node, start to first 200 | with precompiled code ms "
              "| without (compiles, baseline first) ms |")
        print("|---|---|---|")
        for title, wasm, path in COMPONENTS:
            name = re.sub(r"[^a-z]+", "-", title.lower()).strip("-")
            reference = f"{registry.host}/bench/{name}:1"
            subprocess.run([WASMHOST, "push", wasm, reference, "--precompiled", "--json"],
                           check=True, stdout=subprocess.DEVNULL)
            times = {"precompiled": [], "compiled": []}
            for _ in range(rounds):
                for side, extra in (("precompiled", ["--trust-precompiled", registry.host]),
                                    ("compiled", [])):
                    cache = tempfile.mkdtemp(prefix="wasmhost-bench-node-")
                    server = ours(reference, extra, cache=cache)
                    try:
                        times[side].append(server.wait_first_200(path=path, limit=180) * 1000.0)
                    finally:
                        server.stop()
                        shutil.rmtree(cache)
            m = {k: statistics.median(v) for k, v in times.items()}
            print(f"| {title} | {m['precompiled']:.0f} | {m['compiled']:.0f} |", flush=True)
            report[f"registry {title}"] = times
    finally:
        registry.stop()
        shutil.rmtree(work, ignore_errors=True)
    print()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", choices=["local", "registry"])
    args = ap.parse_args()
    for _, path, _ in COMPONENTS:
        if not os.path.exists(path):
            sys.exit(f"missing {path}: run bench/run.sh first-answer")
    if not os.path.exists(WASMHOST):
        sys.exit(f"missing {WASMHOST}: set WASMHOST_BIN or run bench/run.sh first-answer")
    try:
        version = subprocess.run([WASMTIME, "--version"], capture_output=True, text=True).stdout.strip()
    except FileNotFoundError:
        if args.only != "registry":
            sys.exit(f"missing {WASMTIME} (wasmtime-cli 48.0.8): run bench/run.sh first-answer")
        version = "(not needed)"
    print(f"machine: {hb.machine()}; peer: {version}; wasmhost: {WASMHOST}\n")
    report = {"machine": hb.machine(), "wasmtime": version, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    if args.only in (None, "local"):
        cold_and_warm(args.rounds, report)
    if args.only in (None, "registry"):
        from_registry(args.rounds, report)
    with open(os.path.join(ROOT, "bench/last-first-answer-run.json"), "w") as f:
        json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
