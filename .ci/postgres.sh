#!/usr/bin/env bash
# Installs Debian's PostgreSQL server for the PostgreSQL store tests when no
# server of version 15 or newer is installed, and prints one line saying so,
# with how long it took. The tests start throw-away clusters of their own
# (store/pgtest), so the package's service is never started.
set -euo pipefail
. "$(dirname "$0")/timing.sh"
timing_start
MIN_VERSION=15

# newest prints the version of the newest server >= MIN_VERSION under
# /usr/lib/postgresql (the layout of Debian's packages), or fails.
newest() {
  local v
  for v in $(ls /usr/lib/postgresql 2>/dev/null | grep -E '^[0-9]+$' | sort -rn); do
    if [ "$v" -ge "$MIN_VERSION" ] && [ -x "/usr/lib/postgresql/$v/bin/initdb" ] &&
      [ -x "/usr/lib/postgresql/$v/bin/postgres" ]; then
      echo "$v"
      return 0
    fi
  done
  return 1
}

if v=$(newest); then
  timing_kept postgresql "$v present in /usr/lib/postgresql/$v/bin"
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
# A policy-rc.d that answers 101 forbids the package's scripts to start the
# service; an existing one is left as it is.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  trap 'rm -f "$policy"' EXIT
fi
apt-get update -qq
apt-get install -y -qq postgresql >/dev/null
if ! v=$(newest); then
  echo "postgresql: apt installed no server >= $MIN_VERSION under /usr/lib/postgresql" >&2
  exit 1
fi
timing_done postgresql "installed $v with apt"
