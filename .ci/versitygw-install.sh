#!/usr/bin/env bash
# Builds the versitygw S3 gateway (the S3 server the tests talk to) into
# CACHE_DIR/bin when it is not there yet. The build takes a few minutes, so
# the binary is cached; a second run does nothing. Either way it prints one
# line: "versitygw: built v1.8.0 in 5m12s" or "versitygw: cached (0.0s)".
#
#   usage: versitygw-install.sh CACHE_DIR
set -euo pipefail
. "$(dirname "$0")/timing.sh"
timing_start
VERSION=v1.8.0
cache=${1:?usage: versitygw-install.sh CACHE_DIR}
mkdir -p "$cache/bin"
cache=$(cd "$cache" && pwd)
bin="$cache/bin/versitygw"
stamp="$cache/bin/versitygw.version"
if [ -x "$bin" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$VERSION" ]; then
  timing_kept versitygw "cached in $bin"
  exit 0
fi
echo "versitygw: building $VERSION into $bin (a few minutes, once)"
# Build in a scratch GOBIN and move into place, so an interrupted build
# never leaves a half-written binary behind.
tmp=$(mktemp -d "$cache/bin/.versitygw-build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# Quiet on success: go's download and build messages are shown only when
# the build fails.
if ! GOBIN="$tmp" GOFLAGS=-buildvcs=false go install "github.com/versity/versitygw/cmd/versitygw@$VERSION" >"$tmp/build.log" 2>&1; then
  echo "versitygw-install: building versitygw $VERSION failed:" >&2
  cat "$tmp/build.log" >&2
  exit 1
fi
mv -f "$tmp/versitygw" "$bin"
echo "$VERSION" >"$stamp"
timing_done versitygw "built $VERSION"
