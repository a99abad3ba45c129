#!/usr/bin/env bash
# What a rollout's bookkeeping costs per request (issue 18): keep-alive
# req/s and p99 of one route served by hello.wasm, the same route three ways,
# in alternating rounds (A B C A B C ..., so drift on this shared machine
# hits all alike), medians at the end:
#
#   plain     `component = "hello"`
#   rollout   `rollout = { to = "hello-too", steps = [50], step_time = "60m",
#             mirror_methods = [] }` (hello-too is the same file): the
#             weight read, the random pick, the window's counters, the
#             controller's task — what every request under a rollout pays
#   mirrored  the same rollout copying every GET to the other form (the
#             copy is a second request's work, not bookkeeping: shown apart)
#
#   bench/rollout_bench.sh [ROUNDS] [SECONDS]     (default 5 rounds of 5 s)
#
# WASMHOST names the wasmhost binary [default: target/release/wasmhost,
# built if missing]. wrk: 2 threads, 8 connections, loopback.
set -euo pipefail
cd "$(dirname "$0")/.."

rounds="${1:-5}"
seconds="${2:-5}"
if ! command -v wrk >/dev/null; then
    apt-get update -qq && apt-get install -y -qq wrk
fi
wasmhost="${WASMHOST:-}"
if [[ -z "$wasmhost" ]]; then
    cargo build --release --locked -p wasmhost
    wasmhost="$PWD/target/release/wasmhost"
fi
bash scripts/build-guests.sh >/dev/null
hello="$PWD/target/guest/wasm32-wasip2/release/hello.wasm"

work="$(mktemp -d)"
server=""
cleanup() {
    if [[ -n "$server" ]]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
unset RUST_BACKTRACE

manifest() { # NAME TRIGGER-EXTRA
    mkdir -p "$work/$1"
    cat >"$work/$1/spin.toml" <<TOML
spin_manifest_version = 2
[application]
name = "bench"
[[trigger.http]]
route = "/..."
component = "hello"
$2
[component.hello]
source = "$hello"
[component.hello-too]
source = "$hello"
TOML
}
manifest plain ""
manifest rollout 'rollout = { to = "hello-too", steps = [50], step_time = "60m", mirror_methods = [] }'
manifest mirrored 'rollout = { to = "hello-too", steps = [50], step_time = "60m", mirror_methods = ["GET"] }'

# Starts `serve` on VARIANT's manifest; sets $server and $url.
start() {
    "$wasmhost" serve "$work/$1/spin.toml" --listen 127.0.0.1:0 --cache-dir "$work/cache" \
        >"$work/serve.out" 2>"$work/serve.log" &
    server=$!
    for _ in $(seq 300); do
        grep -q 'http://' "$work/serve.out" && break
        sleep 0.1
    done
    url="$(sed -n 's|.*\(http://[^/]*/\).*|\1|p' "$work/serve.out")hello"
    [[ -n "$url" ]] || { cat "$work/serve.log" >&2; exit 1; }
}

stop() {
    kill "$server"
    wait "$server" 2>/dev/null || true
    server=""
}

declare -A rps p99
echo "| round | variant | req/s | p99 (ms) |"
echo "|---|---|---|---|"
for round in $(seq "$rounds"); do
    for variant in plain rollout mirrored; do
        start "$variant"
        wrk -t2 -c8 -d1s "$url" >/dev/null   # warm-up: compiled, pooled
        out="$(wrk -t2 -c8 -d"${seconds}s" --latency "$url")"
        stop
        if grep -q 'Non-2xx' <<<"$out"; then
            echo "$variant answered errors:" >&2; echo "$out" >&2; exit 1
        fi
        r="$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")"
        p="$(awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us$/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v=v*1000}; print v}' <<<"$out")"
        rps[$variant]+="$r "
        p99[$variant]+="$p "
        echo "| $round | $variant | $r | $p |"
    done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
echo
echo "| variant | median req/s | vs plain | median p99 (ms) |"
echo "|---|---|---|---|"
base="$(median <<<"${rps[plain]}")"
for variant in plain rollout mirrored; do
    m="$(median <<<"${rps[$variant]}")"
    echo "| $variant | $m | $(awk -v a="$m" -v b="$base" 'BEGIN {printf "%.3f", a/b}') | $(median <<<"${p99[$variant]}") |"
done
echo
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, $(uname -r), wasmhost $("$wasmhost" --version)"
