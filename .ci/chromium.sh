#!/usr/bin/env bash
# Installs Debian's Chromium for the console's browser test when absent,
# and prints one line saying so, with how long it took.
set -euo pipefail
. "$(dirname "$0")/timing.sh"
timing_start
if [ -x /usr/bin/chromium ]; then
  timing_kept chromium "present"
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq chromium >/dev/null
timing_done chromium "installed with apt"
