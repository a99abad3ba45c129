#!/usr/bin/env bash
# Builds the guest fixtures written in Python into target/fixtures/, from
# the Python registry's packages: componentize-py and the Spin Python SDK
# (spin-sdk), in a virtual environment of their own.
#
# Slow steps are cached under target/fixtures, keyed by their inputs: the
# venv by the package versions, each component by a hash of its sources,
# the versions and this script. A re-run with nothing changed does nothing.
#
#   target/fixtures/python/spin-py.wasm   components/python/app (spin-sdk 3.4, WASI 0.2)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# componentize-py 0.17.2 is the release whose bindings match spin-sdk
# 3.4.1's (`spin_sdk.wit.types`); 0.18 and later generate another layout.
COMPONENTIZE_PY=0.17.2
SPIN_SDK_PY=3.4.1

out=target/fixtures
mkdir -p "$out/python"

python_fixtures() {
    local venv="$out/python/venv-$COMPONENTIZE_PY-$SPIN_SDK_PY"
    if [ ! -x "$venv/bin/componentize-py" ]; then
        # Debian's python3 first: pyenv's may lack the venv module's ensurepip.
        local python=python3
        [ -x /usr/bin/python3 ] && python=/usr/bin/python3
        rm -rf "$venv"
        "$python" -m venv "$venv"
        "$venv/bin/pip" install --quiet --disable-pip-version-check \
            "componentize-py==$COMPONENTIZE_PY" "spin-sdk==$SPIN_SDK_PY"
    fi
    local site
    site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    local key
    key="$(cat components/python/app/*.py "${BASH_SOURCE[0]}" | sha256sum | cut -c1-16)"
    local dest="$out/python/spin-py-$key.wasm"
    if [ ! -f "$dest" ]; then
        local tmp="$dest.tmp"
        "$venv/bin/componentize-py" -d "$site/spin_sdk/wit" -w spin-http componentize app \
            -p components/python/app -p "$site" -o "$tmp" >/dev/null
        mv "$tmp" "$dest"
    fi
    ln -sfn "spin-py-$key.wasm" "$out/python/spin-py.wasm"
}

python_fixtures
echo "fixtures built in $PWD/$out (python/spin-py.wasm)"
