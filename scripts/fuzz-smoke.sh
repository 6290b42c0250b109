#!/usr/bin/env bash
# Builds every fuzz target and runs each for N seconds (default 10) from its seed corpus.
# Exits non-zero when a target crashes (its input is left in fuzz/artifacts/<target>/) or
# does not build. CI calls it; see fuzz/README.md.
#
#   scripts/fuzz-smoke.sh [SECONDS]     SANITIZER=none to build without AddressSanitizer
#
# The machine has the stable toolchain only: cargo-fuzz's nightly flags are accepted through
# RUSTC_BOOTSTRAP=1. New inputs the fuzzer finds go to a scratch folder, not the seed corpus.
set -euo pipefail

secs="${1:-10}"
sanitizer="${SANITIZER:-address}"
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root/fuzz"

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1

start=$(date +%s)
cargo fuzz build --sanitizer "$sanitizer"
echo "fuzz-smoke: built in $(( $(date +%s) - start )) s"

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
failed=()
for t in $(cargo fuzz list); do
    mkdir -p "$scratch/$t" "corpus/$t"
    log="$scratch/$t.log"
    # One process, not -jobs=1: in jobs mode libFuzzer's parent exits 0 whatever the child did.
    if cargo fuzz run --sanitizer "$sanitizer" "$t" "$scratch/$t" "corpus/$t" -- \
        -max_total_time="$secs" -print_final_stats=1 >"$log" 2>&1 &&
        ! find "artifacts/$t" -type f -newer "$scratch" 2>/dev/null | grep -q .; then
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
        echo "fuzz-smoke: $t ok, ${runs:-?} executions in ${secs} s"
    else
        echo "fuzz-smoke: $t FAILED"
        tail -40 "$log"
        failed+=("$t")
    fi
done
echo "fuzz-smoke: done in $(( $(date +%s) - start )) s"
if ((${#failed[@]})); then
    echo "fuzz-smoke: crashes or errors in: ${failed[*]}" >&2
    exit 1
fi
