#!/usr/bin/env bash
# MinIO, the S3 server the customer named, built on this machine from its Go module (no MinIO
# package exists on PyPI or Debian; its release binaries are not reachable from these machines).
# The module version is pinned below; `go install` checks every module it fetches against the Go
# checksum database (go.sum of the module plus sum.golang.org), and the binary lands in a cache
# outside the repository. Nothing of MinIO is committed: it is a separate server the S3 tests
# start (MinIO is AGPL-3.0; the project only talks to it over its S3 API).
#
#   deploy/local/minio.sh install   build into the cache once (idempotent; ~3.5 min on 2 cores);
#                                   prints the binary's path
#   deploy/local/minio.sh path      print the binary's path if built, else exit 1
#
# The tests start it themselves (tests/s3server.py: `minio server DIR --address 127.0.0.1:PORT`,
# root credentials from the environment). Environment: LAKEHOUSE_CACHE (default
# ${XDG_CACHE_HOME:-~/.cache}/lakehouse), GOPROXY/GOFLAGS as usual.
set -euo pipefail

# the newest version the Go module proxy serves (MinIO stopped tagging module releases)
MINIO_MODULE=github.com/minio/minio
MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c

CACHE=${LAKEHOUSE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/lakehouse}
INSTALL="$CACHE/minio-$MINIO_VERSION"
BINARY="$INSTALL/minio"

log() { printf 'minio: %s\n' "$*" >&2; }

install() {
    if [[ -x "$BINARY" ]]; then
        echo "$BINARY"
        return
    fi
    command -v go >/dev/null || { log "no Go toolchain (go) on PATH: cannot build MinIO"; exit 1; }
    mkdir -p "$CACHE"
    exec 9>"$CACHE/minio.lock"
    flock 9  # one build at a time (CI starts it early in the background; the tests wait here)
    if [[ ! -x "$BINARY" ]]; then
        log "building $MINIO_MODULE@$MINIO_VERSION (once) into $INSTALL"
        local work
        work=$(mktemp -d "$CACHE/minio-build.XXXXXX")
        # the module's own go.mod decides the dependencies; the binary goes to a staging folder and
        # is moved in place only when complete (an interrupted build leaves no half binary)
        GOBIN="$work" GOFLAGS=-mod=mod CGO_ENABLED=0 go install "$MINIO_MODULE@$MINIO_VERSION"
        mkdir -p "$INSTALL"
        mv "$work/minio" "$BINARY"
        rm -rf "$work"
    fi
    echo "$BINARY"
}

case "${1:-}" in
    install) install ;;
    path) [[ -x "$BINARY" ]] && echo "$BINARY" ;;
    *) echo "usage: $0 install|path" >&2; exit 2 ;;
esac
