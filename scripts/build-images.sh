#!/usr/bin/env bash
# Builds the legacy container images the tests run, from Debian's packages
# with mmdebstrap (as a user would build a Debian-based image without
# Docker), into target/fixtures/images/. Cached, keyed by a hash of their
# sources and this script: a re-run with nothing changed does nothing.
# Concurrent runs (test processes) wait for each other. Needs root
# (mmdebstrap runs the packages' maintainer scripts in a chroot) and the
# Debian mirror this machine's apt uses.
#
#   target/fixtures/images/debian   an OCI layout, tags `bookworm-python`
#                                   (user nobody), `bookworm-python-root`, and
#                                   `bookworm-http-server` (`python3 -m
#                                   http.server` as nobody, no StopSignal: a
#                                   service with no signal handler), and
#                                   `bookworm-nginx` (Debian's nginx-light
#                                   as its package installs it, as root,
#                                   StopSignal SIGQUIT as nginx's own image)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

out=target/fixtures/images
mkdir -p "$out"
exec 9>"$out/.lock"
flock 9

# A Debian bookworm image as such images are in the wild, two layers:
#  1. the root filesystem mmdebstrap makes (minbase and python3; /dev nodes,
#     setuid binaries, hard links, xattrs as Debian's packages leave them),
#     gzip-compressed;
#  2. the service (host/tests/images/debian/app.py) and deletions: a
#     whiteout (/etc/motd) and an opaque /usr/share/doc that keeps only a
#     file of this layer.
# Four configs over the same layers: the app as user `nobody`, and as
# root, with StopSignal SIGINT (the app says which signal stopped it);
# Python's own `http.server`, which has no signal handler (bench/stop_bench.py);
# and nginx, whose master starts as root and chowns its directories for its
# `www-data` workers (Docker's default capabilities), on port 80.
debian_image() {
    local dir="$out"
    local key
    key="$(cat host/tests/images/debian/* "${BASH_SOURCE[0]}" | sha256sum | cut -c1-16)"
    local layout="$dir/debian-$key"
    if [ ! -f "$layout/index.json" ]; then
        rm -rf "$dir"/debian-* "$dir/work"
        local work="$dir/work"
        mkdir -p "$work/top/srv" "$work/top/etc" "$work/top/usr/share/doc" "$layout/blobs/sha256"
        # The mirror this machine's apt uses; mmdebstrap fetches the
        # packages and runs their maintainer scripts in a chroot (root).
        mmdebstrap --quiet --variant=minbase --include=python3,nginx-light \
            --aptopt='Acquire::Retries "3"' bookworm "$work/rootfs.tar"
        cp host/tests/images/debian/app.py "$work/top/srv/app.py"
        : > "$work/top/etc/.wh.motd"
        : > "$work/top/usr/share/doc/.wh..wh..opq"
        echo kept > "$work/top/usr/share/doc/kept"
        tar --create --file "$work/top.tar" --owner=0 --group=0 --numeric-owner \
            --mtime=@1700000000 --sort=name -C "$work/top" srv etc usr
        blob() { # FILE -> prints the digest's hex, the file moved into the layout
            local hex
            hex="$(sha256sum "$1" | cut -d' ' -f1)"
            mv "$1" "$layout/blobs/sha256/$hex"
            echo "$hex"
        }
        local base_diff top_diff base_gz top_gz base_size top_size
        base_diff="$(sha256sum "$work/rootfs.tar" | cut -d' ' -f1)"
        top_diff="$(sha256sum "$work/top.tar" | cut -d' ' -f1)"
        gzip -6 --no-name "$work/rootfs.tar"
        gzip -6 --no-name "$work/top.tar"
        base_size="$(stat -c %s "$work/rootfs.tar.gz")"
        top_size="$(stat -c %s "$work/top.tar.gz")"
        base_gz="$(blob "$work/rootfs.tar.gz")"
        top_gz="$(blob "$work/top.tar.gz")"
        local manifests=""
        for variant in nobody root plain nginx; do
            local user='"User":"nobody",' tag=bookworm-python
            local run='"Cmd":["python3","/srv/app.py"],"StopSignal":"SIGINT"' port=8080
            case "$variant" in
                root) user='' tag=bookworm-python-root ;;
                plain) tag=bookworm-http-server
                       run='"Cmd":["python3","-m","http.server","8080"]' ;;
                nginx) user='' tag=bookworm-nginx port=80
                       run='"Cmd":["nginx","-g","daemon off;"],"StopSignal":"SIGQUIT"' ;;
            esac
            printf '%s' '{"architecture":"amd64","os":"linux","config":{'"$user"'"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],'"$run"',"WorkingDir":"/srv","ExposedPorts":{"'"$port"'/tcp":{}}},"rootfs":{"type":"layers","diff_ids":["sha256:'"$base_diff"'","sha256:'"$top_diff"'"]}}' > "$work/config"
            local config_size config
            config_size="$(stat -c %s "$work/config")"
            config="$(blob "$work/config")"
            printf '%s' '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:'"$config"'","size":'"$config_size"'},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:'"$base_gz"'","size":'"$base_size"'},{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:'"$top_gz"'","size":'"$top_size"'}]}' > "$work/manifest"
            local manifest_size manifest
            manifest_size="$(stat -c %s "$work/manifest")"
            manifest="$(blob "$work/manifest")"
            manifests="$manifests${manifests:+,}"'{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:'"$manifest"'","size":'"$manifest_size"',"annotations":{"org.opencontainers.image.ref.name":"'"$tag"'"}}'
        done
        printf '%s' '{"imageLayoutVersion":"1.0.0"}' > "$layout/oci-layout"
        printf '%s' '{"schemaVersion":2,"manifests":['"$manifests"']}' > "$layout/index.json"
        rm -rf "$work"
    fi
    ln -sfn "debian-$key" "$dir/debian"
}

debian_image
echo "images built in $PWD/$out (debian)"
