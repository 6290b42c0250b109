#!/usr/bin/env bash
# Runs the web mirror's real-browser test (tests/ui_browser.rs) with headless Chromium.
#
# The test starts the mirror on 127.0.0.1:0 with a fake terminal loop, drives Chromium through
# the DevTools protocol over --remote-debugging-pipe (clicks keypad keys, types a payment code
# and presses Enter) and checks the page shows exactly the frames the terminal drew.
# Screenshots of each step land in target/tmp/ui-browser/.
#
# Usage: tools/browser-test/run.sh [--install]
#   --install   apt-get install Debian's chromium first (needs root; CI does this in .ci/run)
# Env: PAYTERM_CHROMIUM=/path/to/chromium to use another binary.
set -euo pipefail
cd "$(dirname "$0")/../.."

if [[ "${1:-}" == "--install" ]]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium >/dev/null
fi

if [[ -z "${PAYTERM_CHROMIUM:-}" ]] && ! command -v chromium >/dev/null 2>&1; then
  echo "chromium not found: run with --install, or set PAYTERM_CHROMIUM" >&2
  exit 1
fi

# PAYTERM_BROWSER_TEST=1 turns a missing browser into a failure instead of a skip.
PAYTERM_BROWSER_TEST=1 cargo test --test ui_browser -- --nocapture
