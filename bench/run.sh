#!/usr/bin/env bash
# Runs every benchmark of `wasmhost serve` and prints the figures that go
# into bench/RESULTS.md. Installs what it needs when missing: wrk (Debian),
# wasmtime-cli 48.0.8 (the peer, from crates.io; a ~10 minute build).
#
#   bench/run.sh              everything
#   bench/run.sh criterion    the in-process per-request benchmark only
#   bench/run.sh http [ARGS]  the HTTP comparison only (ARGS go to http_bench.py)
#   bench/run.sh oci [ARGS]   pull vs skopeo, pinned start vs local file (oci_bench.py)
#   bench/run.sh frontdoor [ARGS]  fairness, floods, TLS vs nginx, overhead vs a
#                             baseline binary (frontdoor_bench.py --baseline PATH)
#   bench/run.sh platform [ARGS]  SQLite per request vs native; Python and JS hellos (Spin SDK: wasmhost alone; no SDK: vs wasmtime serve) (platform_bench.py)
#   bench/run.sh legacy [ARGS]    legacy images: start vs podman and runc, pull vs skopeo+umoci (legacy_bench.py)
#   bench/run.sh first-answer [ARGS]  first 200 with an empty cache (baseline code),
#                             and from a registry with precompiled code (first_answer_bench.py)
#   bench/run.sh scale [ARGS]  10,000 requests in flight to a component waiting 1 s:
#                             latency, RSS, per-instance memory vs wasmtime serve (scale_bench.py;
#                             `--load open --rate R`: an open loop at R requests/s instead of wrk)
set -euo pipefail
cd "$(dirname "$0")/.."

what="${1:-all}"
[ $# -gt 0 ] && shift

bash scripts/install-test-deps.sh
if ! command -v wrk >/dev/null; then
    apt-get update -qq && apt-get install -y -qq wrk
fi
if ! command -v wasmtime >/dev/null || ! wasmtime --version | grep -q '^wasmtime 48\.0\.8'; then
    cargo install wasmtime-cli --version 48.0.8 --locked
fi

bash scripts/build-guests.sh >/dev/null
bash scripts/build-fixtures.sh >/dev/null
cargo build --release --locked -p wasmhost

if [ "$what" = all ] || [ "$what" = criterion ]; then
    cargo bench --locked -p wasmhost --bench instantiate -- --warm-up-time 2 --measurement-time 10
fi
if [ "$what" = all ] || [ "$what" = http ]; then
    # RUST_BACKTRACE makes wasmtime capture a backtrace per dropped store
    # (4-5 us per request on both sides); keep it out of the measurement.
    env -u RUST_BACKTRACE python3 bench/http_bench.py "$@"
fi
if [ "$what" = all ] || [ "$what" = oci ]; then
    python3 bench/oci_bench.py "$@"
fi
if [ "$what" = all ] || [ "$what" = frontdoor ]; then
    # nginx is the TLS peer; Debian's package starts no server here (no
    # systemd), and the bench runs its own with a private config.
    if ! command -v nginx >/dev/null; then
        apt-get update -qq && apt-get install -y -qq nginx-light
    fi
    env -u RUST_BACKTRACE python3 bench/frontdoor_bench.py "$@"
fi
if [ "$what" = all ] || [ "$what" = platform ]; then
    env -u RUST_BACKTRACE python3 bench/platform_bench.py "$@"
fi
if [ "$what" = all ] || [ "$what" = legacy ]; then
    # podman is the peer; Debian's package, installed here only (the tests
    # do not need it).
    if ! command -v podman >/dev/null; then
        apt-get update -qq && apt-get install -y -qq podman
    fi
    env -u RUST_BACKTRACE python3 bench/legacy_bench.py --wasmhost target/release/wasmhost "$@"
fi
if [ "$what" = all ] || [ "$what" = first-answer ]; then
    env -u RUST_BACKTRACE python3 bench/first_answer_bench.py "$@"
fi
if [ "$what" = all ] || [ "$what" = scale ]; then
    env -u RUST_BACKTRACE python3 bench/scale_bench.py --wasmhost target/release/wasmhost "$@"
fi
