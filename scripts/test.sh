#!/usr/bin/env bash
# Runs every test: builds the guest components from source, then the host's
# unit and end-to-end tests with cargo-nextest, the runner
# `.config/nextest.toml` configures (the measuring test runs alone). Works
# on a fresh machine: installs the wasm targets, the Debian packages the
# tests drive (a registry, skopeo, umoci, zstd, ...) and cargo-nextest
# (from crates.io, once: it stays in ~/.cargo/bin). A missing tool is a
# failure, never a silent skip. `.ci/run` calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

# The version installed when none is: the one this suite was last run with.
NEXTEST_VERSION=0.9.143

bash scripts/install-build-deps.sh
bash scripts/install-test-deps.sh
if ! cargo nextest --version >/dev/null 2>&1; then
    echo "installing cargo-nextest" >&2
    cargo install --locked cargo-nextest --version "$NEXTEST_VERSION"
fi
bash scripts/build-guests.sh
# No doc tests to run: the crates' examples are marked `ignore` (they are
# guest code, built for wasm32-wasip2 by scripts/build-guests.sh).
cargo nextest run --locked --no-fail-fast -p wasmhost -p todo-core -p todo-native "$@"
