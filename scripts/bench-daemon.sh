#!/usr/bin/env bash
# The daemon's cost per payment and at idle, beside a plain Python agent (scripts/bench_daemon.py
# says what is measured). Usage: scripts/bench-daemon.sh [N] [IDLE_SECONDS]   (defaults 1000, 60)
# Builds the release binary unless PAYTERM_BIN names one. Loopback only; cleans up after itself.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
N="${1:-1000}"
IDLE="${2:-60}"
BIN="${PAYTERM_BIN:-$ROOT/target/release/payterm}"
if [[ -z "${PAYTERM_BIN:-}" ]]; then
    (cd "$ROOT" && cargo build --release --bin payterm >&2)
fi
PAYTERM_BIN="$BIN" exec python3 "$ROOT/scripts/bench_daemon.py" --n "$N" --idle-s "$IDLE" "${@:3}"
