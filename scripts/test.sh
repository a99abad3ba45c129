#!/usr/bin/env bash
# Runs every test: builds the guest components from source, then the host's
# unit and end-to-end tests. Works on a fresh machine (installs the wasm
# targets and the Debian packages the tests drive: a registry, skopeo,
# umoci). `.ci/run` calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-build-deps.sh
bash scripts/install-test-deps.sh
bash scripts/build-guests.sh
if cargo nextest --version >/dev/null 2>&1; then
    # No doc tests to run: the crates' examples are marked `ignore` (they
    # are guest code, built for wasm32-wasip2 by scripts/build-guests.sh).
    cargo nextest run --locked --no-fail-fast -p wasmhost -p todo-core -p todo-native "$@"
else
    cargo test --locked --no-fail-fast -p wasmhost -p todo-core -p todo-native "$@"
fi
