#!/usr/bin/env bash
# `wasmhost compare`'s request rate against an independent load generator
# (`ab`, apache2-utils) on the same load: the todo component answering
# `GET /todos/999`, 4 keep-alive workers, 3 s. A unit or counting error in
# compare's load phase shows as a ratio far from 1; the two clients differ
# (and the machine is shared), so expect some spread. Moved here from the
# migration tests: it is a measurement, not a pass/fail property.
#
#   bench/compare-vs-ab.sh [ROUNDS]     (as root; default 3 rounds)
#
# WASMHOST names the wasmhost binary [default: the release build, built if
# missing].
set -euo pipefail
cd "$(dirname "$0")/.."

rounds="${1:-3}"
bash scripts/install-test-deps.sh >/dev/null
wasmhost="${WASMHOST:-}"
if [[ -z "$wasmhost" ]]; then
    cargo build --release --locked -p wasmhost
    wasmhost="$PWD/target/release/wasmhost"
fi
WASMHOST="$wasmhost" bash examples/migration/build.sh >/dev/null
wasm="$PWD/target/guest/wasm32-wasip2/release/todo_wasm.wasm"
image="oci:$PWD/examples/migration/build/todo-image:latest"

work="$(mktemp -d)"
server=""
cleanup() {
    [[ -n "$server" ]] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

# RUST_BACKTRACE would make wasmtime capture a backtrace per dropped store.
unset RUST_BACKTRACE
mkdir -p "$work/data"
"$wasmhost" serve "$wasm" --listen 127.0.0.1:0 --volume "$work/data:/data" \
    --cache-dir "$work/cache" >"$work/serve.out" 2>"$work/serve.log" &
server=$!
for _ in $(seq 100); do
    grep -q 'http://' "$work/serve.out" && break
    sleep 0.1
done
url="$(sed -n 's|.*\(http://[^/]*/\).*|\1|p' "$work/serve.out")todos/999"
echo "round compare_rps ab_rps ratio"
for round in $(seq "$rounds"); do
    "$wasmhost" compare --container "$image" --container-state /data \
        --wasm "$wasm" --wasm-state /data --request 'GET /todos/999' \
        --concurrency 4 --duration 3s --warmup 1s --cold-starts 1 --mismatch-requests 1 \
        --json "$work/compare.json" --html "$work/compare.html" --cache-dir "$work/cache" >/dev/null
    compare_rps="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["wasm"]["load"]["rps"])' "$work/compare.json")"
    ab_out="$(ab -q -k -c 4 -t 3 -n 10000000 "$url")"
    grep -q 'Failed requests:        0' <<<"$ab_out" || { echo "ab saw failures:"; echo "$ab_out"; exit 1; }
    ab_rps="$(sed -n 's/^Requests per second: *\([0-9.]*\).*/\1/p' <<<"$ab_out")"
    python3 -c 'import sys; c, a = map(float, sys.argv[2:]); print(sys.argv[1], f"{c:.0f}", f"{a:.0f}", f"{c / a:.2f}")' \
        "$round" "$compare_rps" "$ab_rps"
done
