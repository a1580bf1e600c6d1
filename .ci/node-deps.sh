#!/usr/bin/env bash
# Installs the Node packages the tests drive (jose, playwright-core) from
# e2e/testdata/node/package-lock.json. Installs Node.js and npm with apt when absent.
# Prints one line for Node.js and one for the packages, with how long each
# took.
set -euo pipefail
. "$(dirname "$0")/timing.sh"
cd "$(dirname "$0")/../e2e/testdata/node"
timing_start
if ! command -v npm >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null
  timing_done node "installed $(node --version) with apt"
else
  timing_kept node "$(node --version) present"
fi
timing_start
if [ ! -d node_modules/jose ] || [ ! -d node_modules/playwright-core ] || [ package-lock.json -nt node_modules ]; then
  npm ci --no-audit --no-fund --loglevel=error
  touch node_modules
  timing_done "node packages" "installed (jose, playwright-core)"
else
  timing_kept "node packages" "cached in e2e/testdata/node/node_modules"
fi
