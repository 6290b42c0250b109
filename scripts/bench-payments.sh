#!/usr/bin/env bash
# Measures what one payment costs payterm: N `payterm pay` runs against `payterm sandbox` on
# loopback (scenario "paid at once"), reporting
#   - CPU time per payment of payterm's own work: the pay runs' user+system time minus that of
#     the same number of runs of a baseline command that starts the process, loads the
#     configuration and opens the journal (`payterm journal list --open`);
#   - fsync/fdatasync calls per payment (strace -c -f), and per baseline run;
#   - durable commits per payment (history rows per attempt in the journal);
#   - peak resident memory of a pay process (/usr/bin/time -v).
# Goals (issue 3): at most 2 fsyncs per paid payment, well under 1 ms of CPU of our own work.
#
# Usage: scripts/bench-payments.sh [N]      (default 200)
#        PAYTERM_BIN=target/debug/payterm scripts/bench-payments.sh 50
# Needs strace and GNU time (apt-get install strace time). Binds 127.0.0.1 only; cleans up.
set -euo pipefail

N="${1:-200}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${PAYTERM_BIN:-$ROOT/target/release/payterm}"
if [[ ! -x "$BIN" ]]; then
    echo "building the release binary ..." >&2
    (cd "$ROOT" && cargo build --release --bin payterm)
fi
for tool in strace /usr/bin/time; do
    command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install strace time" >&2; exit 1; }
done

WORK="$(mktemp -d)"
SANDBOX_PID=""
cleanup() {
    [[ -n "$SANDBOX_PID" ]] && kill "$SANDBOX_PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

printf 'bench-md5-key-0000000000000000\n' > "$WORK/agg.key"
config() { # $1 = gateway URL, $2 = journal file
    cat <<EOF
[terminal]
id = "T01"
sandbox = true
device_key_file = "device.key"

[journal]
path = "$2"

[limits]
max_amount = "5000.00"
max_open = 100000
max_uncertain = "10000000.00"

[gateways.aggregator]
base_url = "$1"
agent_id = "130000000000000000"
mch_id = "00000001"
key_file = "agg.key"
op_user_id = "cashier01"
connect_timeout_ms = 1000
timeout_ms = 5000
EOF
}
config "http://127.0.0.1:1" boot.db > "$WORK/boot.toml"
"$BIN" --json --config "$WORK/boot.toml" sandbox --listen 127.0.0.1:0 > "$WORK/sandbox.out" 2>/dev/null &
SANDBOX_PID=$!
for _ in $(seq 100); do
    grep -q '"url"' "$WORK/sandbox.out" 2>/dev/null && break
    sleep 0.05
done
URL="$(sed -n 's/.*"url":"\([^"]*\)".*/\1/p' "$WORK/sandbox.out" | head -1)"
[[ -n "$URL" ]] || { echo "the sandbox did not start" >&2; exit 1; }
config "$URL" journal.db > "$WORK/payterm.toml"
export PAYTERM_CONFIG="$WORK/payterm.toml"
unset PAYTERM_JOURNAL PAYTERM_FAILPOINT

# Warm up (creates the journal and the device key), then the measured loops.
"$BIN" pay --amount 1.00 --code 134567890100000000 >/dev/null
pay_loop() { # $1 = first code number
    for i in $(seq "$1" $(( $1 + N - 1 ))); do
        "$BIN" pay --amount 12.00 --code "1345678901$(printf %08d "$i")" >/dev/null 2>&1
    done
}
base_loop() {
    for _ in $(seq "$N"); do "$BIN" journal list --open >/dev/null 2>&1; done
}
export -f pay_loop base_loop
export BIN N

cpu() { # runs "$@" under GNU time; prints "user+sys seconds" of all children
    /usr/bin/time -f '%U %S' -o "$WORK/t" "$@"
    awk '{ printf "%.4f", $1 + $2 }' "$WORK/t"
}
pay_cpu="$(cpu bash -c 'pay_loop 1')"
base_cpu="$(cpu bash -c 'base_loop')"

# -y names the file of each fsync: the WAL (a commit), the database (a checkpoint), or the
# directory (SQLite syncs it on a process's first WAL write: once per process, once per daemon).
strace -f -y -e trace=fsync,fdatasync -o "$WORK/pay.strace" bash -c "pay_loop $((N + 1))" 2>/dev/null
strace -f -y -e trace=fsync,fdatasync -o "$WORK/base.strace" bash -c 'base_loop' 2>/dev/null
syncs() { grep -cE '(fsync|fdatasync)\(' "$1" || true; }
pay_syncs="$(syncs "$WORK/pay.strace")"
base_syncs="$(syncs "$WORK/base.strace")"
wal_syncs="$(grep -cE 'sync\([0-9]+<[^>]*-wal>' "$WORK/pay.strace" || true)"
db_syncs="$(grep -cE 'sync\([0-9]+<[^>]*\.db>' "$WORK/pay.strace" || true)"
dir_syncs=$(( pay_syncs - wal_syncs - db_syncs ))

/usr/bin/time -v -o "$WORK/mem" "$BIN" pay --amount 12.00 --code 134567890199999999 >/dev/null
peak_kb="$(awk -F: '/Maximum resident set size/ { gsub(/ /, "", $2); print $2 }' "$WORK/mem")"

rows="$("$BIN" --json journal export | wc -l)"
events="$(sqlite3 "$WORK/journal.db" 'SELECT COUNT(*) FROM events' 2>/dev/null || echo '')"

awk -v n="$N" -v pc="$pay_cpu" -v bc="$base_cpu" -v ps="$pay_syncs" -v bs="$base_syncs" \
    -v ws="$wal_syncs" -v ds="$db_syncs" -v rs="$dir_syncs" \
    -v kb="$peak_kb" -v rows="$rows" -v ev="$events" -v bin="$BIN" 'BEGIN {
    printf "payterm payments against the sandbox on loopback (%s), N = %d\n", bin, n
    printf "  CPU per pay process          %8.3f ms (user+sys, process start included)\n", pc * 1000 / n
    printf "  CPU per baseline process     %8.3f ms (start, config, journal open: journal list --open)\n", bc * 1000 / n
    printf "  CPU of the payment itself    %8.3f ms (difference)\n", (pc - bc) * 1000 / n
    printf "  fsync+fdatasync per payment  %8.2f (pay runs)  %6.2f (baseline runs)\n", ps / n, bs / n
    printf "    of which WAL (commits)     %8.2f\n", ws / n
    printf "    database (checkpoints)     %8.2f\n", ds / n
    printf "    directory (process start)  %8.2f\n", rs / n
    if (ev != "") printf "  journal commits per payment  %8.2f (history rows per attempt)\n", ev / rows
    printf "  peak RSS of a pay process    %8.1f MiB\n", kb / 1024
}'
