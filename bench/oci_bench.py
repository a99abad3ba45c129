#!/usr/bin/env python3
"""OCI figures, each side by side with its reference in the same run.

1. Pull of a 10 MiB component from a local docker-registry: `wasmhost pull`
   into an empty store vs `skopeo copy` into an empty OCI layout.
2. Start to first 200 of a component pinned by digest with the registry
   stopped vs the same component from a local file (same warm compile
   cache).

Rounds alternate (A, B, A, B, ...); the medians and their ratio/difference
are printed and written to bench/last-oci-run.json.

Usage: bench/oci_bench.py [--rounds N]
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time

import http_bench as hb

ROOT = hb.ROOT
WASMHOST = hb.WASMHOST
HELLO = hb.HELLO


def leb128(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def big_component(path, size):
    """hello.wasm plus a custom section of random bytes: a valid component
    of about `size` bytes that still serves."""
    with open(HELLO, "rb") as f:
        wasm = f.read()
    name = b"bench-padding"
    payload = leb128(len(name)) + name + os.urandom(max(0, size - len(wasm) - 32))
    with open(path, "wb") as f:
        f.write(wasm + b"\x00" + leb128(len(payload)) + payload)


class Registry:
    def __init__(self, root):
        self.port = hb.free_port()
        self.host = f"127.0.0.1:{self.port}"
        config = os.path.join(root, "registry.yml")
        with open(config, "w") as f:
            f.write(f"version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
                    f"storage:\n  filesystem:\n    rootdirectory: {root}/data\n"
                    f"http:\n  addr: {self.host}\n")
        self.proc = subprocess.Popen(["docker-registry", "serve", config],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while hb.get_status(self.port, path="/v2/") != 200:
            if time.time() > deadline:
                raise RuntimeError("docker-registry did not start")
            time.sleep(0.02)

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def timed(argv):
    started = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return (time.perf_counter() - started) * 1000.0


def pull_rounds(reference, work, rounds):
    rows = {"wasmhost": [], "skopeo": []}
    for i in range(rounds):
        store = os.path.join(work, f"store-{i}")
        layout = os.path.join(work, f"layout-{i}")
        rows["wasmhost"].append(timed([WASMHOST, "pull", reference, "--cache-dir", store, "--json"]))
        rows["skopeo"].append(timed(["skopeo", "copy", "--quiet", "--src-tls-verify=false",
                                     f"docker://{reference}", f"oci:{layout}:bench"]))
        shutil.rmtree(store)
        shutil.rmtree(layout)
    return rows


def start_rounds(pinned, cache, rounds):
    rows = {"pinned": [], "file": []}
    for _ in range(rounds):
        for side, app in (("pinned", pinned), ("file", HELLO)):
            port = hb.free_port()
            server = hb.Server([WASMHOST, "serve", app, "--listen", f"127.0.0.1:{port}",
                                "--cache-dir", cache], port, env={"WASMHOST_LOG": "warn"})
            try:
                rows[side].append(server.wait_first_200() * 1000.0)
            finally:
                server.stop()
    return rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        registry = Registry(work)
        try:
            big = os.path.join(work, "big.wasm")
            big_component(big, 10 << 20)
            reference = f"{registry.host}/bench/big:1"
            subprocess.run([WASMHOST, "push", big, reference, "--json"], check=True,
                           stdout=subprocess.DEVNULL)
            pulls = pull_rounds(reference, work, args.rounds)

            cache = os.path.join(work, "cache")
            hello_ref = f"{registry.host}/bench/hello:1"
            pushed = json.loads(subprocess.run(
                [WASMHOST, "push", HELLO, hello_ref, "--json"], check=True,
                capture_output=True, text=True).stdout)
            pinned = f"{registry.host}/bench/hello@{pushed['digest']}"
            subprocess.run([WASMHOST, "pull", pinned, "--cache-dir", cache, "--json"], check=True,
                           stdout=subprocess.DEVNULL)
        finally:
            registry.stop()
        # Warm the compile cache for both sides, then measure with the
        # registry down.
        start_rounds(pinned, cache, 1)
        starts = start_rounds(pinned, cache, args.rounds)

    size_mib = os.path.getsize(HELLO) / 1048576
    w, s = statistics.median(pulls["wasmhost"]), statistics.median(pulls["skopeo"])
    p, f = statistics.median(starts["pinned"]), statistics.median(starts["file"])
    print(f"machine: {hb.machine()}; rounds: {args.rounds}")
    print("| scenario | wasmhost | reference | ratio / difference |")
    print("|---|---|---|---|")
    print(f"| pull 10 MiB component, median ms | {w:.1f} | skopeo copy {s:.1f} | "
          f"speed {s / w:.2f}x of skopeo |")
    print(f"| start to first 200, ms | pinned digest, registry down {p:.1f} | local file {f:.1f} | "
          f"{p - f:+.1f} ms |")
    with open(os.path.join(ROOT, "bench/last-oci-run.json"), "w") as out:
        json.dump({"machine": hb.machine(), "rounds": args.rounds, "pull_ms": pulls,
                   "start_ms": starts, "hello_mib": size_mib}, out, indent=1)


if __name__ == "__main__":
    main()
