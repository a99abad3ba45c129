#!/usr/bin/env bash
# Builds todo-native as a static x86_64 Linux binary, for a container image
# with nothing else in it (FROM scratch).
#
# crt-static links glibc statically. RUSTFLAGS applies only to the --target
# build, not to build scripts and proc macros, which run on this machine and
# stay dynamic. The binary does no DNS lookups and loads nothing at run time,
# the things static glibc cannot do. target/native is a target directory of
# its own, so this never waits for (or invalidates) a build in target/.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."

target=x86_64-unknown-linux-gnu
target_dir=target/native
# As scripts/build-guests.sh does: no debug line tables (the workspace keeps
# them for profiling the host), which make the binary four times larger
# (11 MB instead of 2.7 MB).
export CARGO_PROFILE_RELEASE_DEBUG=false
RUSTFLAGS="-C target-feature=+crt-static" \
    cargo build --release --locked --target "$target" --target-dir "$target_dir" -p todo-native

binary="$PWD/$target_dir/$target/release/todo-native"
# A dynamic binary would fail in the image with a confusing "no such file".
if ! ldd "$binary" 2>&1 | grep -Eq 'not a dynamic executable|statically linked'; then
    echo "error: $binary is dynamically linked:" >&2
    ldd "$binary" >&2
    exit 1
fi
echo "$binary"
