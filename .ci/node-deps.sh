#!/usr/bin/env bash
# Installs the Node packages the tests drive (jose, playwright-core) from
# e2e/testdata/node/package-lock.json. Installs Node.js and npm with apt when absent.
set -euo pipefail
cd "$(dirname "$0")/../e2e/testdata/node"
if ! command -v npm >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null
fi
if [ ! -d node_modules/jose ] || [ ! -d node_modules/playwright-core ] || [ package-lock.json -nt node_modules ]; then
  npm ci --no-audit --no-fund --loglevel=error
  touch node_modules
fi
