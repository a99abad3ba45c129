#!/usr/bin/env python3
"""Runs Spin's own runtime tests (the suite Spin uses to check that a runtime
is Spin compliant) against wasmhost.

Takes a checkout of the spin repository (outside this repository: the
tests are Spin's code, so they stay out of ours and out of CI), builds its
`tests/test-components` for wasm32-wasip1 as its build script does, and
runs every test in `tests/runtime-tests/tests` with Spin's protocol: the
test's `spin.toml` with `%{source=NAME}` and `%{port=N}` filled in, served by
`wasmhost serve`, then `GET /` (or the requests of its `test.json5`); it
passes on a 200, or on a 500 whose body contains its `error.txt`.

Services a test names (`services`: redis, postgres, mysql, http-echo) are
started here from Debian packages on 127.0.0.1 at free ports
(scripts/install-test-deps.sh installs redis-server, postgresql and
MariaDB for mysql);
tests needing one this script cannot start are reported as skipped.

Usage: scripts/spin-runtime-tests.py SPIN_CHECKOUT [--wasmhost PATH] [--only NAME...]
Environment: BUILD_LOCK=FILE runs the component build under `flock FILE`.
Prints a Markdown table; exits 0 whatever the results.
"""

import argparse
import http.server
import os
import pwd
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
READY_TIMEOUT = 30.0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc=None, limit=READY_TIMEOUT):
    start = time.time()
    while time.time() - start < limit:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listened on {port}")


def build_components(checkout):
    """cargo build of Spin's test components; name -> .wasm path.

    Components that need sources outside the registries (a `git`
    dependency) are left out of the checkout's workspace: they cannot be
    fetched here, and one of them would stop the whole build."""
    components = os.path.join(checkout, "tests/test-components/components")
    outside = []
    for name in sorted(os.listdir(components)):
        manifest = os.path.join(components, name, "Cargo.toml")
        if os.path.exists(manifest) and re.search(r"\bgit\s*=", open(manifest).read()):
            outside.append(name)
    workspace = os.path.join(components, "Cargo.toml")
    text = open(workspace).read()
    if outside and "# excluded by wasmhost" not in text:
        listed = ", ".join(f'"{n}"' for n in ["target"] + outside)
        text = re.sub(r"exclude\s*=\s*\[[^\]]*\]", f"exclude = [{listed}]  # excluded by wasmhost", text)
        with open(workspace, "w") as f:
            f.write(text)
        print(f"left out (sources outside the registries): {', '.join(outside)}", file=sys.stderr)
    target = os.path.join(checkout, "target-test-components")
    cmd = ["cargo", "build", "--target", "wasm32-wasip1", "--workspace"]
    if os.environ.get("BUILD_LOCK"):
        cmd = ["flock", os.environ["BUILD_LOCK"]] + cmd
    env = {**os.environ, "CARGO_TARGET_DIR": target}
    env.pop("RUSTFLAGS", None)
    subprocess.run(cmd, cwd=components, env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    paths = {}
    for name in sorted(os.listdir(components)):
        manifest = os.path.join(components, name, "Cargo.toml")
        if not os.path.exists(manifest):
            continue
        with open(manifest, "rb") as f:
            package = tomllib.load(f)["package"]["name"]
        wasm = os.path.join(target, "wasm32-wasip1/debug", package.replace("-", "_") + ".wasm")
        if os.path.exists(wasm):
            paths[name] = wasm
    return paths


class Services:
    """The services tests ask for, started once and shared."""

    def __init__(self):
        self.procs, self.dirs, self.ports = [], [], {}

    def port(self, service, guest_port):
        if service not in self.ports:
            self.ports[service] = getattr(self, "start_" + service.replace("-", "_"))()
        return self.ports[service]

    def start_redis(self):
        port = free_port()
        d = tempfile.mkdtemp(prefix="spin-rt-redis-")
        self.dirs.append(d)
        p = subprocess.Popen(["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                              "--appendonly", "no", "--dir", d],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(p)
        wait_port(port, p)
        return port

    def start_postgres(self):
        user = pwd.getpwnam("postgres")
        bins = sorted(os.path.join("/usr/lib/postgresql", v, "bin") for v in os.listdir("/usr/lib/postgresql"))[-1]
        d = tempfile.mkdtemp(prefix="spin-rt-pg-")
        self.dirs.append(d)
        data = os.path.join(d, "data")
        os.mkdir(data)
        for path in (d, data):
            os.chown(path, user.pw_uid, user.pw_gid)
        demote = lambda: (os.setgid(user.pw_gid), os.setuid(user.pw_uid))  # noqa: E731
        subprocess.run([os.path.join(bins, "initdb"), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                        "--no-sync", "-D", data], preexec_fn=demote, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port = free_port()
        p = subprocess.Popen([os.path.join(bins, "postgres"), "-D", data, "-p", str(port), "-k", d,
                              "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"],
                             preexec_fn=demote, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(p)
        wait_port(port, p)
        start = time.time()
        while subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-c",
                              "CREATE DATABASE spin_dev"], capture_output=True).returncode != 0:
            if time.time() - start > READY_TIMEOUT:
                raise RuntimeError("postgres never accepted queries")
            time.sleep(0.1)
        return port

    def start_mysql(self):
        """MariaDB with database `spin_dev` for user `spin` (password
        `spin`), as Spin's MySQL tests expect."""
        d = tempfile.mkdtemp(prefix="spin-rt-mysql-")
        self.dirs.append(d)
        data = os.path.join(d, "data")
        subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={data}", "--user=root",
                        "--auth-root-authentication-method=normal", "--skip-test-db",
                        "--skip-name-resolve"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port = free_port()
        server = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
        p = subprocess.Popen([server, "--no-defaults", f"--datadir={data}", f"--port={port}",
                              f"--socket={d}/mysqld.sock", f"--pid-file={d}/mysqld.pid", "--user=root",
                              "--bind-address=127.0.0.1", "--skip-name-resolve", "--skip-log-bin",
                              "--innodb-flush-log-at-trx-commit=0", "--innodb-buffer-pool-size=16M"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(p)
        wait_port(port, p)
        setup = ("CREATE DATABASE spin_dev; CREATE USER 'spin'@'%' IDENTIFIED BY 'spin'; "
                 "GRANT ALL ON spin_dev.* TO 'spin'@'%';")
        start = time.time()
        while subprocess.run(["mariadb", "--no-defaults", "-h", "127.0.0.1", f"--port={port}", "-u", "root",
                              "-e", setup], capture_output=True).returncode != 0:
            if time.time() - start > READY_TIMEOUT:
                raise RuntimeError("mariadbd never accepted the setup statements")
            time.sleep(0.1)
        return port

    def start_http_echo(self):
        class Echo(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                self.send_response(200)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_PUT = do_POST

            def do_GET(self):
                # Spin's echo service: `how-many-bytes: N` asks for N bytes.
                many = self.headers.get("how-many-bytes")
                if many is None:
                    return self.do_POST()
                left = int(many)
                self.send_response(200)
                self.send_header("content-length", str(left))
                self.end_headers()
                chunk = b"x" * (1 << 20)
                try:
                    while left > 0:
                        self.wfile.write(chunk[:left])
                        left -= min(left, len(chunk))
                except OSError:
                    pass  # the client stopped reading

            def log_message(self, *args):
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Echo)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server.server_address[1]

    def stop(self):
        for p in self.procs:
            p.kill()
            p.wait()
        for d in self.dirs:
            shutil.rmtree(d, ignore_errors=True)


def requests_of(test_dir):
    """The test's requests: `test.json5`'s invocations (path and headers
    only), else `GET /`."""
    path = os.path.join(test_dir, "test.json5")
    if not os.path.exists(path):
        return [("/", {})]
    text = open(path).read()
    paths = re.findall(r'"path"\s*:\s*"([^"]*)"', text) or ["/"]
    hosts = re.findall(r'"name"\s*:\s*"Host",\s*"value"\s*:\s*"([^"]*)"', text)
    return [(p, {"Host": hosts[0]} if hosts else {}) for p in paths]


def run_test(name, test_dir, wasmhost, components, services):
    with open(os.path.join(test_dir, "spin.toml")) as f:
        manifest = f.read()
    missing = [s for s in re.findall(r"%\{source=([^}]+)\}", manifest) if s not in components]
    if missing:
        return "fail", f"component(s) {', '.join(missing)} did not build"
    wanted = []
    if os.path.exists(os.path.join(test_dir, "services")):
        wanted = [w.strip() for w in open(os.path.join(test_dir, "services")) if w.strip()]
    for service in wanted:
        if not hasattr(services, "start_" + service.replace("-", "_")):
            return "skip", f"needs a `{service}` server (not started by this script)"
    manifest = re.sub(r"%\{source=([^}]+)\}", lambda m: components[m.group(1)], manifest)

    def port(m):
        return str(services.port(wanted[0], int(m.group(1)))) if wanted else m.group(1)
    manifest = re.sub(r"%\{port=(\d+)\}", port, manifest)
    work = tempfile.mkdtemp(prefix=f"spin-rt-{name}-")
    try:
        for extra in os.listdir(test_dir):
            if extra != "spin.toml" and os.path.isfile(os.path.join(test_dir, extra)):
                shutil.copy(os.path.join(test_dir, extra), work)
        with open(os.path.join(work, "spin.toml"), "w") as f:
            f.write(manifest)
        proc = subprocess.Popen([wasmhost, "serve", "spin.toml", "--listen", "127.0.0.1:0"], cwd=work,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            line = proc.stdout.readline()
            m = re.search(r"127\.0\.0\.1:(\d+)", line)
            if not m:
                proc.kill()
                err = proc.stderr.read().strip().splitlines()
                return "fail", "did not start: " + (err[-1] if err else "no output")
            port = int(m.group(1))
            expected = None
            if os.path.exists(os.path.join(test_dir, "error.txt")):
                expected = open(os.path.join(test_dir, "error.txt")).read().strip()
            for path, headers in requests_of(test_dir):
                req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers)
                try:
                    with urllib.request.urlopen(req, timeout=30) as resp:
                        status, body = resp.status, resp.read().decode(errors="replace")
                except urllib.error.HTTPError as e:
                    status, body = e.code, e.read().decode(errors="replace")
                if expected is None and status != 200:
                    return "fail", f"{path}: {status} {body.strip()[:200]}"
                if expected is not None and (status != 500 or expected not in body):
                    return "fail", f"{path}: {status} `{body.strip()[:200]}`, expected 500 with `{expected}`"
            return "pass", ""
        finally:
            proc.kill()
            proc.wait()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("checkout")
    ap.add_argument("--wasmhost", default=os.path.join(ROOT, "target/debug/wasmhost"))
    ap.add_argument("--only", nargs="*")
    args = ap.parse_args()
    args.wasmhost = os.path.abspath(args.wasmhost)
    components = build_components(os.path.abspath(args.checkout))
    tests_dir = os.path.join(args.checkout, "tests/runtime-tests/tests")
    services = Services()
    counts = {"pass": 0, "fail": 0, "skip": 0}
    print("| test | result | why |\n|---|---|---|", flush=True)
    try:
        for name in sorted(os.listdir(tests_dir)):
            if args.only and name not in args.only:
                continue
            try:
                result, why = run_test(name, os.path.join(tests_dir, name), args.wasmhost, components, services)
            except Exception as e:  # a harness problem is that test's failure
                result, why = "fail", f"harness: {e}"
            counts[result] += 1
            print(f"| {name} | {result} | {why.replace('|', '/')} |", flush=True)
    finally:
        services.stop()
    print(f"\n{counts['pass']} passed, {counts['fail']} failed, {counts['skip']} skipped")


if __name__ == "__main__":
    sys.exit(main())
