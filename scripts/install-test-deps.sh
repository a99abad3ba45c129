#!/usr/bin/env bash
# Installs the Debian packages the tests drive for real: a registry
# (docker-registry), the tools whose output we must interoperate with
# (skopeo, umoci, zstd: the reference encoder of zstd layers), htpasswd for
# the basic-auth registry and openssl for the token service of the
# bearer-auth one (and the keys of signed precompiled code), runc and
# busybox-static for the container tests (a busybox httpd image), ab for
# bench/compare-vs-ab.sh, redis-server and postgresql for outbound Redis
# and PostgreSQL, MariaDB for MySQL (the
# -core packages: mariadb-server's server and install script and the
# `mariadb` client, without the system service mariadb-server would start),
# mosquitto for MQTT (each
# test starts its own server on a free port, in a scratch directory), and
# python3-venv for the Python fixtures (scripts/build-fixtures.sh),
# mmdebstrap for the Debian image (scripts/build-images.sh), slirp4netns
# and iptables for containers' outbound network, containerd (with ctr)
# for the containerd shim's tests, CNI's plugins for its CRI test. A tool
# missing here fails its tests; none is skipped. Idempotent: does nothing
# when every tool is already present. Needs root (CI runs as root) and the
# Debian package mirrors.
set -euo pipefail

missing=()
need() { command -v "$1" >/dev/null 2>&1 || missing+=("$2"); }
need docker-registry docker-registry
need skopeo skopeo
need umoci umoci
need htpasswd apache2-utils
need openssl openssl
need runc runc
# crun: the image HEALTHCHECK test runs under runc's and crun's exec too.
need crun crun
need pgrep procps
need busybox busybox-static
need zstd zstd
need ab apache2-utils
need redis-server redis-server
need mosquitto mosquitto
need mmdebstrap mmdebstrap
need mariadbd mariadb-server-core
need mariadb-install-db mariadb-server-core
need mariadb mariadb-client-core
# The containerd shim's tests start a private containerd and drive it with
# ctr; they enter network namespaces (nsenter, unshare) and curl inside.
need containerd containerd
need ctr containerd
need nsenter util-linux
need ip iproute2
need curl curl
need slirp4netns slirp4netns
need iptables-restore iptables
# The CRI test: containerd's CRI plugin sets a pod's network up through CNI
# (ptp and host-local, from a containerd in a namespace of its own).
[ -x /usr/lib/cni/ptp ] || missing+=(containernetworking-plugins)
# The admin dashboard's test loads the page in a real browser (headless).
need chromium chromium
# PostgreSQL's server binaries live outside PATH.
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
# scripts/build-fixtures.sh: componentize-py runs in a venv of Debian's
# python3.
if ! /usr/bin/python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    missing+=(python3-venv)
fi

# scripts/build-fixtures.sh: the JavaScript fixture builds with Node.js
# and npm (this machine kind ships Node.js 20; Debian's is the fallback).
need node nodejs
need npm npm

# crun refuses a hybrid cgroup layout (v1 controllers under /sys/fs/cgroup,
# cgroup2 at /sys/fs/cgroup/unified) while any controller is attached to
# the cgroup2 side: "cgroups in hybrid mode not supported, drop all
# controllers from cgroupv2"; runc and wasmhost's own runtime accept it.
# Some hosts boot that way with one controller (hugetlb, seen here) left on
# cgroup2. Each such controller gets a v1 hierarchy of its own, which
# detaches it from cgroup2 (the kernel allows that while no cgroup2
# subtree enables it); where it cannot, the crun test fails with crun's
# message.
unified=/sys/fs/cgroup/unified
if [ "$(stat -fc %T /sys/fs/cgroup 2>/dev/null)" = tmpfs ] && [ -r "$unified/cgroup.controllers" ]; then
    for controller in $(cat "$unified/cgroup.controllers"); do
        if ! mkdir -p "/sys/fs/cgroup/$controller" \
            || ! mount -t cgroup -o "$controller" "$controller" "/sys/fs/cgroup/$controller"; then
            echo "warning: cannot move the $controller cgroup controller off cgroup2: crun will refuse to run" >&2
        fi
    done
fi

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
echo "installing test dependencies: ${missing[*]}" >&2
if [ "$(id -u)" -ne 0 ]; then
    echo "error: installing ${missing[*]} needs root; run as root or install them yourself" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2046 # one package may be named by several tools
apt-get install -y -qq --no-install-recommends $(printf '%s\n' "${missing[@]}" | sort -u) >/dev/null
# The packages start system services (a registry on :5000, PostgreSQL's
# `main` cluster on :5432, Redis on :6379); the tests run their own.
if command -v systemctl >/dev/null 2>&1; then
    systemctl disable --now docker-registry redis-server postgresql mosquitto >/dev/null 2>&1 || true
    # containerd too, when this script installed it (the tests run their
    # own, with its own root, state and socket).
    if [[ " ${missing[*]} " == *" containerd "* ]]; then
        systemctl disable --now containerd >/dev/null 2>&1 || true
    fi
fi
if command -v pg_lsclusters >/dev/null 2>&1; then
    pg_lsclusters --no-header 2>/dev/null | while read -r version cluster _; do
        pg_ctlcluster "$version" "$cluster" stop >/dev/null 2>&1 || true
    done
fi
