#!/usr/bin/env bash
# The main job on a fresh machine: installs the wasm targets and libseccomp
# if missing,
# builds the guest components and wasmhost (release), and serves
# examples/hello on 127.0.0.1:3000 (extra arguments go to `wasmhost serve`).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-build-deps.sh
bash scripts/build-guests.sh
cargo build --release --locked -p wasmhost
exec target/release/wasmhost serve target/guest/wasm32-wasip2/release/hello_example.wasm "$@"
