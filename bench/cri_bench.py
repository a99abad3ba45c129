#!/usr/bin/env python3
"""Pod start to first 200 as the kubelet starts a pod (issue 16).

`containerd_bench.py` times `ctr run -d`: a task without a pod sandbox,
and ctr's own start in every round. The kubelet holds one gRPC connection
to containerd's CRI plugin and starts a pod as RunPodSandbox,
CreateContainer, StartContainer. This script sets up a private containerd
with CRI on (its own network namespace, CNI's ptp plugin, images in
`k8s.io`) and runs `host/benches/cri_pod_start.rs`, which makes those
calls on one connection and polls the app inside the pod's network
namespace, for each runtime handler in alternating rounds:

- `wasmhost`: the sandbox runs natively in the shim, the app is the hello
  component (`wasmhost image app`), the node's compile cache warm;
- `runc`: the sandbox is busybox `sleep` (a static binary, as Kubernetes'
  pause) and the app busybox httpd, both under runc;
- `wasmhostb` with `--also DIR`: another build of the shim and wasmhost.

Needs root, containerd, runc, umoci, skopeo, containernetworking-plugins.

    bench/cri_bench.py [--profile debug|release|DIR] [--rounds 15] [--also DIR] [--client PATH]
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile

import containerd_bench as cb


def client(args, target_dir, binary=None):
    """Runs the CRI client (`binary`, else through cargo bench), its JSON
    lines parsed."""
    env = dict(os.environ)
    if target_dir:
        env["CARGO_TARGET_DIR"] = target_dir
    command = [binary] if binary else [
        "cargo", "bench", "--locked", "-q", "-p", "wasmhost", "--bench", "cri_pod_start", "--"]
    run = subprocess.run([*command, *args], cwd=cb.REPO, env=env, capture_output=True, text=True)
    if run.returncode != 0:
        raise SystemExit(f"the CRI client failed:\n{run.stderr[:3000]}\ncontainerd's log:\n"
                         + open(os.path.join(args[1].rsplit("/", 1)[0], "containerd.log")).read()[-4000:])
    return [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--profile", default="debug")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--also", help="another build's directory, as handler `wasmhostb`")
    ap.add_argument("--target-dir", help="CARGO_TARGET_DIR for the client's build")
    ap.add_argument("--client", help="the CRI client already built (benches/cri_pod_start.rs)")
    a = ap.parse_args()
    bindir = a.profile if os.path.isabs(a.profile) else os.path.join(cb.REPO, "target", a.profile)
    work = tempfile.mkdtemp(prefix="ctdc", dir="/tmp")
    ctd = cb.Containerd(work, bindir, a.also, cri=True)
    try:
        cb.images(ctd, work, os.path.join(bindir, "wasmhost"))
        handlers = ["--handler", "wasmhost=docker.io/bench/hello:1",
                    "--handler", "runc=docker.io/bench/httpd:1,/bin/busybox,httpd,-f,-p,80,-h,/www"]
        if a.also:
            handlers += ["--handler", "wasmhostb=docker.io/bench/hello:1"]
        common = ["--socket", ctd.sock, "--logs", os.path.join(work, "pods")]
        os.makedirs(os.path.join(work, "pods"))
        # The first pod of the app on the node compiles it; it lives until
        # its optimised code is in the node's cache, as a real pod does.
        first = client([*common, *handlers, "--warm-up", "wasmhost"], a.target_dir, a.client)
        cb.wait_for_cache(os.path.join(work, "cache", "compiled"))
        pods = client([*common, *handlers, "--rounds", str(a.rounds)], a.target_dir, a.client)
        print(f"containerd {ctd.ctr('version').split('Server:')[1].split()[3]}, CRI, "
              f"{a.rounds} rounds, load {os.getloadavg()[0]:.1f}; first pod of the app on the "
              f"node (empty cache): {first[0]['first_200_ms']:.1f} ms\n")
        print("| handler | pod start to first 200, p50 ms | best | RunPodSandbox returned, p50 "
              "| CreateContainer returned | StartContainer returned |")
        print("|---|---|---|---|---|---|")
        p50 = {}
        for name in dict.fromkeys(p["handler"] for p in pods):
            rows = [p for p in pods if p["handler"] == name]
            med = lambda k: statistics.median(r[k] for r in rows)
            p50[name] = med("first_200_ms")
            print(f"| {name} | {p50[name]:.1f} | {min(r['first_200_ms'] for r in rows):.1f} "
                  f"| {med('sandbox_ms'):.1f} | {med('created_ms'):.1f} | {med('started_ms'):.1f} |")
        print(f"\nwasmhost / runc: {p50['wasmhost'] / p50['runc']:.2f}x")
        if a.also:
            print(f"wasmhostb ({a.also}) / runc: {p50['wasmhostb'] / p50['runc']:.2f}x")
        with open(os.path.join(cb.REPO, "bench", "last-cri-run.json"), "w") as f:
            json.dump({"first": first, "pods": pods}, f, indent=1)
    finally:
        ctd.stop()
        # Whatever a failed run left: shims and their tasks, mounts.
        subprocess.run(f"pkill -f 'containerd-shim.*{work}'; "
                       f"grep {work} /proc/self/mountinfo | cut -d' ' -f5 | xargs -r -n1 umount -l",
                       shell=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
