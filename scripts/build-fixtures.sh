#!/usr/bin/env bash
# Builds the guest fixtures written in Python and JavaScript into
# target/fixtures/, from the registries' packages: componentize-py and the
# Spin Python SDK (spin-sdk) in a virtual environment of their own; the Spin
# JS SDK's build tools (@spinframework/build-tools: esbuild bundle, then
# componentize-js through its `j2w`) with the machine's Node.js and npm.
#
# Slow steps are cached under target/fixtures, keyed by their inputs: the
# venv by the package versions, each component by a hash of its sources,
# the versions and this script. A re-run with nothing changed does nothing.
#
#   target/fixtures/python/spin-py.wasm   components/python/app (spin-sdk 3.4, WASI 0.2)
#   target/fixtures/js/spin-js.wasm       components/js/app (build-tools 1.0.7, WASI 0.2)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# componentize-py 0.17.2 is the release whose bindings match spin-sdk
# 3.4.1's (`spin_sdk.wit.types`); 0.18 and later generate another layout.
COMPONENTIZE_PY=0.17.2
SPIN_SDK_PY=3.4.1

out=target/fixtures
mkdir -p "$out/python"
# Tests build the fixtures on first use, and nextest runs each test in a
# process of its own: one build at a time (two at once removed each
# other's venv), the others wait and then find it done.
exec 9>"$out/.build.lock"
flock 9

python_fixtures() {
    local venv="$out/python/venv-$COMPONENTIZE_PY-$SPIN_SDK_PY"
    # A venv copied from another checkout has scripts naming its old path:
    # rebuild unless it runs here.
    if ! "$venv/bin/componentize-py" --version >/dev/null 2>&1; then
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

js_fixtures() {
    local app=components/js/app
    local wit=host/src/wasm/spin_host/wit/deps/fermyon-spin/package.wit
    local key
    key="$(cat "$app/package.json" "$app/package-lock.json" "$app/build.mjs" "$app"/src/*.js \
        "$app"/wit/*.wit "$wit" "${BASH_SOURCE[0]}" | sha256sum | cut -c1-16)"
    local dest="$out/js/spin-js-$key.wasm"
    mkdir -p "$out/js"
    if [ ! -f "$dest" ]; then
        # A work directory of its own (node_modules stays out of the source
        # tree), kept between builds: `npm ci` runs only when the lock file
        # changed.
        local work="$out/js/work"
        mkdir -p "$work/wit"
        cp "$app/package.json" "$app/package-lock.json" "$app/build.mjs" "$work/"
        rm -rf "$work/src" && cp -r "$app/src" "$work/src"
        cp "$app"/wit/*.wit "$work/wit/"
        # Spin's interfaces, as the host restates them, beside the world.
        cp "$wit" "$work/wit/fermyon-spin.wit"
        if ! cmp -s "$app/package-lock.json" "$work/node_modules/.wasmhost-lock"; then
            (cd "$work" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
            cp "$app/package-lock.json" "$work/node_modules/.wasmhost-lock"
        fi
        (cd "$work" && node build.mjs && npx --no-install j2w -i build/bundle.js -o component.wasm >/dev/null)
        mv "$work/component.wasm" "$dest"
    fi
    ln -sfn "spin-js-$key.wasm" "$out/js/spin-js.wasm"
}

python_fixtures
js_fixtures
echo "fixtures built in $PWD/$out (python/spin-py.wasm, js/spin-js.wasm)"
