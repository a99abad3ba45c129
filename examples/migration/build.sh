#!/usr/bin/env bash
# Builds both forms of the todo service from the same source:
#   - the Wasm component (target/guest/wasm32-wasip2/release/todo_wasm.wasm);
#   - the static native binary, packaged as an OCI image in build/todo-image
#     by `wasmhost image build` (no Docker).
# WASMHOST names the wasmhost binary to use [default: the release build,
# built if missing].
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

if ! rustup target list --installed | grep -qx wasm32-wasip2; then
    rustup target add wasm32-wasip2
fi
CARGO_PROFILE_RELEASE_DEBUG=false \
    cargo build --release --locked --target wasm32-wasip2 --target-dir target/guest -p todo-wasm
binary="$(bash "$here/build-native.sh" | tail -n 1)"

wasmhost="${WASMHOST:-}"
if [[ -z "$wasmhost" ]]; then
    cargo build --release --locked -p wasmhost
    wasmhost="$root/target/release/wasmhost"
fi
"$wasmhost" image build "$binary" --output "$here/build/todo-image" --tag latest \
    --port 8080 --env TODO_DATA_DIR=/data
