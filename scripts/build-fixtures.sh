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
#
# and, with no Spin SDK, for the plain `wasi:http/proxy` world that
# `wasmtime serve` runs too (the peer's column in bench/platform_bench.py):
#
#   target/fixtures/python/py-proxy.wasm  components/python/proxy (componentize-py
#                                          only; wasi:http@0.2.0 WIT from spin-sdk's wheel)
#   target/fixtures/js/js-proxy.wasm      components/js/proxy (componentize-js 0.19.3
#                                          only; wasi:http@0.2.3 WIT from npm)
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

# The venv with componentize-py and spin-sdk; prints its site-packages.
python_venv() {
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
    "$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'
}

# componentize-py's output for the app in $1 and world $2, with WIT from
# $3 and Python path $4 (empty: the app alone), to $out/python/$5-<key>.wasm
# and the link $5.wasm; the key hashes the app and this script.
python_component() {
    local app=$1 world=$2 wit=$3 path=$4 name=$5
    local venv="$out/python/venv-$COMPONENTIZE_PY-$SPIN_SDK_PY"
    local key
    key="$(cat "$app"/*.py "${BASH_SOURCE[0]}" | sha256sum | cut -c1-16)"
    local dest="$out/python/$name-$key.wasm"
    if [ ! -f "$dest" ]; then
        local tmp="$dest.tmp"
        "$venv/bin/componentize-py" -d "$wit" -w "$world" componentize app \
            -p "$app" ${path:+-p "$path"} -o "$tmp" >/dev/null
        mv "$tmp" "$dest"
    fi
    ln -sfn "$name-$key.wasm" "$out/python/$name.wasm"
}

python_fixtures() {
    local site
    site="$(python_venv)"
    python_component components/python/app spin-http "$site/spin_sdk/wit" "$site" spin-py
    # The SDK-free hello: spin-sdk's wheel is only where the wasi:http@0.2.0
    # WIT comes from (componentize-py 0.17 ships none); the app imports
    # nothing of the SDK, and the SDK is not on its Python path.
    python_component components/python/proxy wasi:http/proxy@0.2.0 "$site/spin_sdk/wit" "" py-proxy
}

# Installs the npm lock file of the app in $1 into the work directory $2
# (node_modules stays out of the source tree), kept between builds: `npm
# ci` runs only when the lock file changed.
npm_work() {
    local app=$1 work=$2
    mkdir -p "$work"
    cp "$app/package.json" "$app/package-lock.json" "$work/"
    [ -f "$app/.npmrc" ] && cp "$app/.npmrc" "$work/"
    rm -rf "$work/src" && cp -r "$app/src" "$work/src"
    if ! cmp -s "$app/package-lock.json" "$work/node_modules/.wasmhost-lock"; then
        (cd "$work" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
        cp "$app/package-lock.json" "$work/node_modules/.wasmhost-lock"
    fi
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
        local work="$out/js/work"
        npm_work "$app" "$work"
        cp "$app/build.mjs" "$work/"
        mkdir -p "$work/wit"
        cp "$app"/wit/*.wit "$work/wit/"
        # Spin's interfaces, as the host restates them, beside the world.
        cp "$wit" "$work/wit/fermyon-spin.wit"
        (cd "$work" && node build.mjs && npx --no-install j2w -i build/bundle.js -o component.wasm >/dev/null)
        mv "$work/component.wasm" "$dest"
    fi
    ln -sfn "spin-js-$key.wasm" "$out/js/spin-js.wasm"
}

# The SDK-free hello: componentize-js alone, the fetch event bound to the
# world's wasi:http/incoming-handler export. componentize-js 0.19.3 needs
# the world's WASI version to be its engine's (0.2.3) and
# @bytecodealliance/preview2-shim 0.17 beside it (undeclared: with the
# 0.26 that jco brings, its splicer cannot open the WIT directory), both
# pinned in components/js/proxy/package.json.
js_proxy_fixture() {
    local app=components/js/proxy
    local key
    key="$(cat "$app/package.json" "$app/package-lock.json" "$app/.npmrc" "$app"/src/*.js \
        "$app"/wit/*.wit "${BASH_SOURCE[0]}" | sha256sum | cut -c1-16)"
    local dest="$out/js/js-proxy-$key.wasm"
    mkdir -p "$out/js"
    if [ ! -f "$dest" ]; then
        local work="$out/js/proxy-work"
        npm_work "$app" "$work"
        rm -rf "$work/wit" && mkdir -p "$work/wit/deps"
        cp "$app"/wit/*.wit "$work/wit/"
        cp "$work/node_modules/@spinframework/wasi-http-proxy/wit/wasi-http@0.2.3.wit" \
            "$work/wit/deps/wasi-http.wit"
        (cd "$work" && npx --no-install componentize-js --wit wit --world-name hello \
            -o component.wasm src/index.js >/dev/null)
        mv "$work/component.wasm" "$dest"
    fi
    ln -sfn "js-proxy-$key.wasm" "$out/js/js-proxy.wasm"
}

python_fixtures
js_fixtures
js_proxy_fixture
echo "fixtures built in $PWD/$out (python/spin-py.wasm, python/py-proxy.wasm, js/spin-js.wasm, js/js-proxy.wasm)"
