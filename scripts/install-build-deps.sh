#!/usr/bin/env bash
# Installs the Debian packages building wasmhost needs: libseccomp (the
# embedded container runtime applies seccomp filters through it),
# pkg-config to find it, and protoc for the tests' CRI client (k8s-cri
# generates it from Kubernetes' CRI protobufs at build time). Idempotent; needs root and the package mirrors
# only when something is missing.
set -euo pipefail

missing=()
dpkg -s libseccomp-dev >/dev/null 2>&1 || missing+=(libseccomp-dev)
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
command -v protoc >/dev/null 2>&1 || missing+=(protobuf-compiler)
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
echo "installing build dependencies: ${missing[*]}" >&2
if [ "$(id -u)" -ne 0 ]; then
    echo "error: installing ${missing[*]} needs root; run as root or install them yourself" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
