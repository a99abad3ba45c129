"""The test service of the Debian image (scripts/build-fixtures.sh): an
HTTP server on port 8080 that reports on its container from inside, as a
legacy Python service would run there.

GET /            the page
GET /whoami      uid, user name (from the image's /etc/passwd)
GET /status      the capability, no_new_privs and seccomp lines of /proc/self/status
GET /io_uring    what io_uring_setup(2) answers (Docker's profile: EPERM)
GET /files       which of the files the second layer deleted are there
GET /mknod       root only: make a block device node (in the runtime's /dev,
                 writable even with a read-only root), then open it
GET /write       write a file into the image's /srv
GET /connect?host=H&port=P   open a TCP connection and read what it says
GET /healthz     200, or 500 once /sicken was asked for
GET /sicken      makes /healthz fail from now on (in this container)
"""

import ctypes
import errno
import http.server
import os
import pwd
import signal
import socket
import stat
import sys
import urllib.parse

libc = ctypes.CDLL(None, use_errno=True)
SYS_IO_URING_SETUP = 425


def io_uring():
    params = ctypes.create_string_buffer(120)
    fd = libc.syscall(SYS_IO_URING_SETUP, 1, params)
    if fd >= 0:
        os.close(fd)
        return "allowed"
    return errno.errorcode.get(ctypes.get_errno(), str(ctypes.get_errno()))


def mknod():
    path = "/dev/wasmhost-test-disk"
    try:
        os.mknod(path, stat.S_IFBLK | 0o600, os.makedev(8, 0))
    except OSError as e:
        return f"mknod: {errno.errorcode[e.errno]}"
    try:
        os.close(os.open(path, os.O_RDONLY))
        return "mknod: ok, open: ok"
    except OSError as e:
        return f"mknod: ok, open: {errno.errorcode[e.errno]}"
    finally:
        os.unlink(path)


def write():
    try:
        with open("/srv/written", "w") as f:
            f.write("x")
        return "ok"
    except OSError as e:
        return errno.errorcode[e.errno]


def connect(query):
    host = query["host"][0]
    port = int(query["port"][0])
    try:
        with socket.create_connection((host, port), timeout=5) as conn:
            conn.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
            data = conn.recv(200)
            return "connected: " + data.decode(errors="replace").splitlines()[0]
    except OSError as e:
        return f"refused: {e}"


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        if url.path == "/":
            body = "hello from debian\n"
        elif url.path == "/whoami":
            uid = os.getuid()
            body = f"uid={uid} user={pwd.getpwuid(uid).pw_name}\n"
        elif url.path == "/status":
            with open("/proc/self/status") as f:
                body = "".join(
                    l for l in f if l.startswith(("Cap", "NoNewPrivs", "Seccomp:"))
                )
        elif url.path == "/io_uring":
            body = io_uring() + "\n"
        elif url.path == "/files":
            paths = ["/etc/motd", "/usr/share/doc/apt", "/usr/share/doc/kept", "/usr/bin/python3"]
            body = "".join(f"{p} {os.path.exists(p)}\n" for p in paths)
        elif url.path == "/mknod":
            body = mknod() + "\n"
        elif url.path == "/healthz":
            if os.path.exists("/dev/shm/sick"):
                self.send_error(500)
                return
            body = "ok\n"
        elif url.path == "/sicken":
            open("/dev/shm/sick", "w").close()
            body = "sick\n"
        elif url.path == "/write":
            body = write() + "\n"
        elif url.path == "/connect":
            body = connect(query) + "\n"
        else:
            self.send_error(404)
            return
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def stop(signum, _frame):
    print(f"app: stopping on {signal.Signals(signum).name}", flush=True)
    sys.exit(0)


signal.signal(signal.SIGINT, stop)
signal.signal(signal.SIGTERM, stop)
print("app: listening on 8080", flush=True)
http.server.ThreadingHTTPServer(("0.0.0.0", 8080), Handler).serve_forever()
