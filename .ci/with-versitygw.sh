#!/usr/bin/env bash
# Runs a command with a throwaway versitygw S3 server (posix storage in a
# temporary directory) on a free loopback port, with one bucket, hookd-test,
# and tells the command where it is:
#
#   HOOKD_TEST_S3_URL   s3://hookd-test?endpoint=http://127.0.0.1:PORT&...
#   AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY   the server's root credentials
#   HOOKD_TEST_VERSITYGW   the versitygw binary, for tests that run (and
#                          stop and restart) a server of their own
#
# The server is stopped and its directory removed when the command ends; the
# script exits with the command's status. When the versitygw binary
# ($HOOKD_CACHE/bin/versitygw, built by versitygw-install.sh) is absent, the
# command runs without HOOKD_TEST_S3_URL, and the S3 tests skip (or fail
# under HOOKD_REQUIRE_EXTERNAL=1).
#
#   usage: HOOKD_CACHE=.cache with-versitygw.sh CMD [ARGS...]
set -euo pipefail
if [ $# -eq 0 ]; then
  echo "usage: with-versitygw.sh CMD [ARGS...]" >&2
  exit 2
fi

cache=${HOOKD_CACHE:-"$(cd "$(dirname "$0")/.." && pwd)/.cache"}
bin="$cache/bin/versitygw"
if [ ! -x "$bin" ]; then
  echo "with-versitygw: $bin not found (run .ci/versitygw-install.sh); running without S3" >&2
  exec "$@"
fi

bucket=hookd-test
access=hookdtestroot
secret=hookd-test-secret-key-0123456789

dir=$(mktemp -d "${TMPDIR:-/tmp}/hookd-versitygw.XXXXXX")
pid=
cleanup() {
  if [ -n "$pid" ]; then
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# port_in_use PORT: whether something already listens on 127.0.0.1:PORT.
port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# start: launches versitygw on a free port and waits until it accepts
# connections; fails when it exits first (for instance, lost the port race).
start() {
  port=$((20000 + RANDOM % 40000))
  while port_in_use "$port"; do
    port=$((20000 + RANDOM % 40000))
  done
  rm -rf "$dir/root" && mkdir -p "$dir/root"
  "$bin" --port "127.0.0.1:$port" --access "$access" --secret "$secret" \
    --region us-east-1 --quiet posix "$dir/root" >"$dir/log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do
    if ! kill -0 "$pid" 2>/dev/null; then
      wait "$pid" 2>/dev/null || true
      pid=
      return 1
    fi
    if port_in_use "$port"; then
      return 0
    fi
    sleep 0.1
  done
  return 1
}

started=
for _ in 1 2 3; do
  if start; then
    started=1
    break
  fi
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; pid=; fi
done
if [ -z "$started" ]; then
  echo "with-versitygw: versitygw did not start; its log:" >&2
  cat "$dir/log" >&2
  exit 1
fi

# The bucket is created through the gateway's admin API (served on the S3
# port), so it carries the owner and ACL that versitygw expects.
if ! "$bin" admin --access "$access" --secret "$secret" --region us-east-1 \
  --endpoint-url "http://127.0.0.1:$port" \
  create-bucket --owner "$access" --bucket "$bucket" >"$dir/admin.log" 2>&1; then
  echo "with-versitygw: creating bucket $bucket failed:" >&2
  cat "$dir/admin.log" "$dir/log" >&2
  exit 1
fi

export HOOKD_TEST_S3_URL="s3://$bucket?endpoint=http://127.0.0.1:$port&use_path_style=true&region=us-east-1&disable_https=true"
export AWS_ACCESS_KEY_ID="$access"
export AWS_SECRET_ACCESS_KEY="$secret"
export AWS_EC2_METADATA_DISABLED=true
export HOOKD_TEST_VERSITYGW="$bin"
unset AWS_SESSION_TOKEN AWS_PROFILE AWS_DEFAULT_PROFILE

set +e
"$@"
status=$?
set -e
exit "$status"
