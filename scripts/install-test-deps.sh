#!/usr/bin/env bash
# Installs the Debian packages the tests drive for real: a registry
# (docker-registry), the tools whose output we must interoperate with
# (skopeo, umoci, zstd: the reference encoder of zstd layers), htpasswd for
# the basic-auth registry and openssl for the token service of the
# bearer-auth one, runc and busybox-static for the container tests (a
# busybox httpd image), and ab for bench/compare-vs-ab.sh. A tool missing
# here fails its tests; none is skipped. Idempotent: does nothing when
# every tool is already present. Needs root (CI runs as root) and the
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
need busybox busybox-static
need zstd zstd
need ab apache2-utils

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
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The package starts a system registry on :5000; the tests run their own.
if command -v systemctl >/dev/null 2>&1; then
    systemctl disable --now docker-registry >/dev/null 2>&1 || true
fi
