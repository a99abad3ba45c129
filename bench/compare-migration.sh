#!/usr/bin/env bash
# `wasmhost compare` of examples/migration's two forms (the static binary in
# its container, the component), as recorded in bench/RESULTS.md; writes
# bench/compare-migration.json and bench/compare-migration.html. As root.
# The workload is a quarter writes (each one fsyncs, in both forms) and
# three quarters reads.
#
#   bench/compare-migration.sh [extra compare flags]
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-test-deps.sh >/dev/null
cargo build --release --locked -p wasmhost
WASMHOST="$PWD/target/release/wasmhost" bash examples/migration/build.sh >/dev/null
# Same as the tests: RUST_BACKTRACE would make wasmtime capture a backtrace
# per dropped store.
env -u RUST_BACKTRACE target/release/wasmhost compare \
    --container oci:examples/migration/build/todo-image:latest --container-state /data \
    --wasm target/guest/wasm32-wasip2/release/todo_wasm.wasm --wasm-state /data \
    --request 'POST /todos {"title":"compare"}' \
    --request 'GET /todos/1' --request 'GET /todos/2' --request 'GET /todos/3' \
    --request 'PUT /todos/1 {"done":true}' \
    --request 'GET /todos/1' --request 'GET /todos/2' --request 'GET /todos/3' \
    --compare-header content-type \
    --concurrency 8 --duration 15s --warmup 3s --cold-starts 10 --mismatch-requests 400 \
    --json bench/compare-migration.json --html bench/compare-migration.html "$@"
