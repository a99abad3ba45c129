#!/usr/bin/env bash
# Builds every guest component (release) into target/guest.
#
# target/guest is a target directory of its own so that a guest build started
# by a test never waits for the lock that `cargo test` holds on target/.
# Re-running is cheap: cargo rebuilds only what changed.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

targets=(wasm32-wasip2 wasm32-wasip1)
installed="$(rustup target list --installed)"
for target in "${targets[@]}"; do
    if ! grep -qx "$target" <<<"$installed"; then
        rustup target add "$target"
    fi
done

# Components for tests and benches (hello-p3 exports wasi:http@0.3.0), plus
# the examples (todo-wasm is examples/migration's Wasm form).
guests=(hello echo headers static-files outbound sdk-spin spin-sdk-hello spin-sdk-variables spin-sdk-kv spin-sdk-sqlite spin-sdk-pg spin-sdk-mysql spin-sdk-mqtt spin-v1-http spin-sdk-outbound trap spin memhog noresponse command missing-import hello-p3 sleep spin-sdk7 hello-example spin-app-api todo-wasm)
packages=()
for guest in "${guests[@]}"; do
    packages+=(-p "$guest")
done

target_dir=target/guest
# Guests build as a user's release build would: without the debug line
# tables the workspace keeps for profiling the host (they would make each
# component 3 MB instead of ~200 KB).
export CARGO_PROFILE_RELEASE_DEBUG=false
cargo build --release --target wasm32-wasip2 --target-dir "$target_dir" "${packages[@]}"
# hello and the Spin SDK 5.2 fixture again as core modules (wasip1): the
# host's componentize path; wagi only as a core module (a `_start` command,
# as WAGI programs are); the Spin SDK 2 fixture only as a core module, as
# Spin 2 built it (its bindings are WASI 0.2.0-rc-2023-10-18).
cargo build --release --target wasm32-wasip1 --target-dir "$target_dir" -p hello -p spin-sdk-hello -p wagi -p spin-sdk2

echo "guests built in $PWD/$target_dir/wasm32-wasip2/release (hello, spin-sdk-hello, wagi and spin-sdk2 in $PWD/$target_dir/wasm32-wasip1/release)"
