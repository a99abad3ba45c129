#!/usr/bin/env python3
"""How long `wasmhost run IMAGE` takes to stop (SIGTERM to wasmhost, to its
exit, the container stopped and removed), for images whose command runs
as pid 1 without a SIGTERM handler: busybox httpd, and `python3 -m
http.server` in the Debian bookworm image (scripts/build-images.sh, tag
`bookworm-http-server`). Before: `--no-init` (the command is pid 1; the
kernel drops the signal; SIGKILL after the 10 s grace), as wasmhost did
before it had an init. After: wasmhost's init (the default) passes the
stop signal on.

Rounds alternate between the two; medians are reported. Needs root,
docker-registry, umoci, skopeo, busybox-static, mmdebstrap.

Usage: bench/stop_bench.py [--rounds N] [--wasmhost PATH]
"""

import argparse
import os
import statistics
import subprocess
import tempfile
import time

import containers_bench as cb
import http_bench as hb
import oci_bench as ob

GRACE = "10s"


def debian_image(registry):
    subprocess.run(["bash", os.path.join(hb.ROOT, "scripts/build-images.sh")], check=True,
                   stdout=subprocess.DEVNULL)
    ref = f"{registry.host}/bench/debian:1"
    layout = os.path.join(hb.ROOT, "target/fixtures/images/debian")
    cb.sh(f"skopeo copy --quiet --dest-tls-verify=false oci:{layout}:bookworm-http-server docker://{ref}")
    return ref


def stop_time(wasmhost, ref, cache, init, path):
    port = hb.free_port()
    server = hb.Server([wasmhost, "run", ref, "--listen", f"127.0.0.1:{port}", "--cache-dir", cache,
                        "--stop-grace", GRACE, init], port, env={"WASMHOST_LOG": "warn"})
    server.wait_first_200(path=path)
    started = time.perf_counter()
    server.proc.terminate()
    server.proc.wait(60)
    return (time.perf_counter() - started) * 1000.0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--wasmhost", default=hb.WASMHOST)
    args = parser.parse_args()
    rows = {}
    with tempfile.TemporaryDirectory() as work:
        registry = ob.Registry(work)
        try:
            images = {"busybox httpd": (cb.httpd_image(work, registry), "/index.html"),
                      "debian python3 -m http.server": (debian_image(registry), "/")}
            cache = os.path.join(work, "cache")
            for _ in range(args.rounds):
                for name, (ref, path) in images.items():
                    for init in ["--no-init", "--init"]:
                        ms = stop_time(args.wasmhost, ref, cache, init, path)
                        rows.setdefault((name, init), []).append(ms)
        finally:
            registry.stop()
    print(f"machine: {hb.machine()}; rounds: {args.rounds}; stop grace {GRACE}; {args.wasmhost}")
    print("| image | pid 1 | stop, median ms | min | max |")
    print("|---|---|---|---|---|")
    for (name, init), times in rows.items():
        who = "the command (`--no-init`)" if init == "--no-init" else "wasmhost's init"
        print(f"| {name} | {who} | {statistics.median(times):.0f} | {min(times):.0f} | "
              f"{max(times):.0f} |")


if __name__ == "__main__":
    main()
