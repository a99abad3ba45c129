#!/usr/bin/env python3
"""Legacy images (issue 15), each figure side by side with its peers in the
same run.

1. Process start to first 200 with the layers already unpacked, for the
   busybox httpd image and Debian's nginx image (scripts/build-images.sh,
   tag `bookworm-nginx`):
   - `wasmhost run REF@DIGEST` (pinned: no registry round trip; its cache
     already holds the unpacked layers from a warm-up run): a container in
     its own network namespace behind wasmhost's front door;
   - `podman run --rm --network host IMAGE` (Debian's podman, a private
     store under the bench's directory, the image pulled beforehand);
   - `runc run` of the same image unpacked by umoci into a bundle.
   podman and runc run in the host's network namespace (no port mapping,
   no bridge: nothing on the machine's network changes), which spares them
   the namespace set-up and the proxy hop wasmhost pays: the comparison
   favours them.
2. Pull + unpack of the Debian bookworm image (mmdebstrap rootfs, ~190 MB
   unpacked): `wasmhost pull` (which unpacks, as containerd does) into an
   empty store vs `skopeo copy` + `umoci unpack`, from the same local
   registry.

Rounds alternate; medians are reported. Needs root, docker-registry,
umoci, skopeo, busybox-static, mmdebstrap, runc, podman; ports 8080 and 80
free on the host (podman and runc bind them).

Usage: bench/legacy_bench.py [--rounds N] [--wasmhost PATH] [--also PATH] [--no-pull]
Writes bench/last-legacy-run.json.
"""

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import tempfile
import time

import containers_bench as cb
import http_bench as hb
import oci_bench as ob

RESULTS = os.path.join(hb.ROOT, "bench", "last-legacy-run.json")
# host/src/container/capabilities.rs DOCKER_DEFAULT.
DOCKER_DEFAULT_CAPABILITIES = ["CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW",
                               "SETGID", "SETUID", "SETFCAP", "SETPCAP", "NET_BIND_SERVICE",
                               "SYS_CHROOT", "KILL", "AUDIT_WRITE"]
DEBIAN_LAYOUT = os.path.join(hb.ROOT, "target/fixtures/images/debian")


def pinned(ref):
    """`ref` pinned to its manifest digest, as the registry reports it."""
    out = subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--format", "{{.Digest}}",
                          f"docker://{ref}"], check=True, capture_output=True, text=True).stdout
    return f"{ref.rsplit(':', 1)[0]}@{out.strip()}"


def debian_images(registry):
    subprocess.run(["bash", os.path.join(hb.ROOT, "scripts/build-images.sh")], check=True,
                   stdout=subprocess.DEVNULL)
    refs = {}
    for tag in ("bookworm-nginx", "bookworm-python-root"):
        ref = f"{registry.host}/bench/debian:{tag}"
        cb.sh(f"skopeo copy --quiet --dest-tls-verify=false oci:{DEBIAN_LAYOUT}:{tag} docker://{ref}")
        refs[tag] = ref
    return refs


def wait_200(proc, started, port, path, limit=60.0):
    while time.perf_counter() - started < limit:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode}")
        if hb.get_status(port, timeout=0.2, path=path) == 200:
            return (time.perf_counter() - started) * 1000.0
        time.sleep(0.0005)
    raise RuntimeError(f"{proc.args} never answered 200")


def stop(proc):
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def first_200(argv, port, path, stop, env=None):
    """Milliseconds from starting `argv` to its first 200 on `port`; then
    `stop(proc)`. A start that fails says what the process printed."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, env=env)
    try:
        return wait_200(proc, started, port, path)
    except RuntimeError as e:
        raise RuntimeError(f"{e}: {proc.stderr.read().decode()}") from None
    finally:
        stop(proc)


def run_wasmhost(wasmhost, ref, cache, path):
    port = hb.free_port()
    return first_200([wasmhost, "run", ref, "--listen", f"127.0.0.1:{port}", "--cache-dir", cache],
                     port, path, stop, env={**os.environ, "WASMHOST_LOG": "warn"})


def podman_argv(store):
    return ["podman", "--root", os.path.join(store, "root"), "--runroot",
            os.path.join(store, "run"), "--tmpdir", os.path.join(store, "tmp")]


def host_ulimits():
    """podman asks for more open files and processes (1048576, 4194304)
    than this sandbox's hard limits allow, and the runtime may not raise
    them (no CAP_SYS_RESOURCE here): `setrlimit: Operation not permitted`.
    The host's open-files limit, and a process limit below the one podman's
    own helpers run under (they do not inherit ours); neither changes a
    start's time."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return ["--ulimit", f"nofile={soft}:{hard}", "--ulimit", "nproc=32768:32768"]


def run_podman(store, image, port, path, name):
    def kill(proc):
        subprocess.run(podman_argv(store) + ["kill", name], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        proc.wait(30)
    argv = podman_argv(store) + ["run", "--rm", "--name", name, "--network", "host",
                                 *host_ulimits(), image]
    return first_200(argv, port, path, kill)


def runc_bundle(work, ref, name):
    """`ref` copied by skopeo and unpacked by umoci into a runc bundle that
    runs in the host's network namespace."""
    layout, bundle = os.path.join(work, f"layout-{name}"), os.path.join(work, f"bundle-{name}")
    cb.sh(f"skopeo copy --quiet --src-tls-verify=false docker://{ref} oci:{layout}:x && "
          f"umoci unpack --image {layout}:x {bundle}")
    path = os.path.join(bundle, "config.json")
    config = json.load(open(path))
    config["process"]["terminal"] = False
    # Docker's default set for root, as wasmhost and podman give it (runc's
    # example spec has three: nginx's master could not chown at start).
    caps = [f"CAP_{c}" for c in DOCKER_DEFAULT_CAPABILITIES]
    config["process"]["capabilities"] = {"bounding": caps, "effective": caps,
                                         "permitted": caps}
    config["linux"]["namespaces"] = [ns for ns in config["linux"]["namespaces"]
                                     if ns["type"] != "network"]
    json.dump(config, open(path, "w"))
    return bundle


def run_runc(root, bundle, port, path, cid):
    def kill(proc):
        subprocess.run(["runc", "--root", root, "kill", cid, "KILL"], stderr=subprocess.DEVNULL)
        proc.wait(30)
        subprocess.run(["runc", "--root", root, "delete", "--force", cid],
                       stderr=subprocess.DEVNULL)
    return first_200(["runc", "--root", root, "run", "--bundle", bundle, cid], port, path, kill)


def timed(argv):
    started = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return (time.perf_counter() - started) * 1000.0


def pull_unpack(wasmhost, ref, work, rounds):
    rows = {"wasmhost pull": [], "skopeo copy + umoci unpack": []}
    for i in range(rounds):
        store = os.path.join(work, f"pull-store-{i}")
        rows["wasmhost pull"].append(timed([wasmhost, "pull", ref, "--cache-dir", store, "--json"]))
        shutil.rmtree(store)
        layout, bundle = os.path.join(work, f"pull-layout-{i}"), os.path.join(work, f"pull-b-{i}")
        rows["skopeo copy + umoci unpack"].append(timed(
            ["sh", "-ec", f"skopeo copy --quiet --src-tls-verify=false docker://{ref} oci:{layout}:x"
                          f" && umoci unpack --image {layout}:x {bundle}"]))
        shutil.rmtree(layout)
        shutil.rmtree(bundle)
    return rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--wasmhost", default=hb.WASMHOST)
    parser.add_argument("--also", metavar="PATH",
                        help="a second wasmhost binary (an earlier build) measured in the same rounds")
    parser.add_argument("--no-pull", action="store_true", help="skip the pull + unpack figure")
    args = parser.parse_args()
    starts, pulls = {}, {}
    with tempfile.TemporaryDirectory(dir="/var/tmp") as work:
        registry = ob.Registry(work)
        store = os.path.join(work, "podman")
        runc_root = os.path.join(work, "runc")
        try:
            debian = debian_images(registry)
            images = {
                "busybox httpd": (cb.httpd_image(work, registry), 8080, "/index.html"),
                "Debian nginx": (debian["bookworm-nginx"], 80, "/"),
            }
            prepared = {}
            for name, (ref, port, path) in images.items():
                cache = os.path.join(work, f"cache-{len(prepared)}")
                pin = pinned(ref)
                run_wasmhost(args.wasmhost, pin, cache, path)  # unpacks the layers
                subprocess.run(podman_argv(store) + ["pull", "--quiet", "--tls-verify=false",
                                                     f"docker://{ref}"],
                               check=True, stdout=subprocess.DEVNULL)
                prepared[name] = (pin, cache, runc_bundle(work, ref, str(len(prepared))))
            for i in range(args.rounds):
                for name, (ref, port, path) in images.items():
                    pin, cache, bundle = prepared[name]
                    row = starts.setdefault(name, {"wasmhost run": [], "podman run": [],
                                                   "runc run": []})
                    row["wasmhost run"].append(run_wasmhost(args.wasmhost, pin, cache, path))
                    if args.also:
                        row.setdefault(f"wasmhost run ({args.also})", []).append(
                            run_wasmhost(args.also, pin, cache, path))
                    row["podman run"].append(run_podman(store, ref, port, path, f"bench-{i}"))
                    row["runc run"].append(run_runc(runc_root, bundle, port, path, f"bench-{i}"))
            if not args.no_pull:
                pulls = pull_unpack(args.wasmhost, debian["bookworm-python-root"], work, args.rounds)
        finally:
            registry.stop()
            subprocess.run(podman_argv(store) + ["system", "reset", "--force"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    machine = hb.machine()
    json.dump({"machine": machine, "rounds": args.rounds, "wasmhost": args.wasmhost, "also": args.also,
               "starts": starts, "pulls": pulls}, open(RESULTS, "w"), indent=1)
    print(f"machine: {machine}; rounds: {args.rounds}; {args.wasmhost}")
    print("| image | runtime | start to first 200, median ms | min | max | wasmhost ÷ this |")
    print("|---|---|---|---|---|---|")
    for name, row in starts.items():
        ours = statistics.median(row["wasmhost run"])
        for runtime, times in row.items():
            med = statistics.median(times)
            print(f"| {name} | {runtime} | {med:.1f} | {min(times):.1f} | {max(times):.1f} | "
                  f"{ours / med:.2f} |")
    print("| image | tool | pull + unpack, median ms | min | max |")
    print("|---|---|---|---|---|")
    for tool, times in pulls.items():
        print(f"| Debian bookworm (python3, nginx-light) | {tool} | {statistics.median(times):.0f} |"
              f" {min(times):.0f} | {max(times):.0f} |")


if __name__ == "__main__":
    main()
