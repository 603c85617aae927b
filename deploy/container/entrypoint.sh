#!/bin/sh
# The image's entrypoint: make sure BCC finds kernel headers, then run the given command.
#
# BCC compiles the probe against /lib/modules/$(uname -r)/build. When the host's modules
# directory is mounted and has them, nothing happens here. When it is missing or has no headers
# and the directory is writable (not a read-only host mount), link the image's Debian headers
# in, as scripts/setup.sh does on a host. Otherwise say so once; `bytewatch doctor` and
# `bytewatch run` report it precisely.
#
# MODULES_DIR and HEADERS_DIR (defaults /lib/modules and /usr/src) exist for tests.
set -eu

modules_dir="${MODULES_DIR:-/lib/modules}"
headers_dir="${HEADERS_DIR:-/usr/src}"
release="$(uname -r)"
build="$modules_dir/$release/build"

if [ ! -e "$build/include" ]; then
    arch="$(dpkg --print-architecture 2>/dev/null || echo amd64)"
    headers="$(ls -d "$headers_dir"/linux-headers-*-"$arch" 2>/dev/null | sort -V | tail -n 1 || true)"
    common="${headers%-"$arch"}-common"
    if [ -n "$headers" ] && [ -d "$common" ] \
        && mkdir -p "$modules_dir/$release" 2>/dev/null \
        && ln -sfn "$headers" "$build" 2>/dev/null; then
        ln -sfn "$common" "$modules_dir/$release/source" 2>/dev/null || true
        echo "bytewatch-entrypoint: no kernel headers for $release; using $headers" >&2
    else
        echo "bytewatch-entrypoint: no kernel headers at $build (mount the host's /lib/modules and /usr/src)" >&2
    fi
fi

exec "$@"
