#!/usr/bin/env bash
# ci-systemd.sh: check payterm.service as the Debian package installs it.
#
#   bash scripts/ci-systemd.sh [PACKAGE.deb]
#
# 1. `systemd-analyze verify` in a scratch root holding the package's files (dpkg-deb -x) plus the
#    host's own system units: the unit is checked as installed, so ExecStart= must really name
#    the packaged /usr/bin/payterm, every directive must be known to this systemd, and the
#    dependencies (network.target, ...) must resolve. Any complaint fails the check.
# 2. `systemd-analyze security --offline=yes` on the packaged unit: prints the exposure score and
#    fails above MAX_EXPOSURE (default 2.0; the unit scores 1.5, docs/deploy.md).
# Without an argument it takes the newest package under target-cross/*/debian or target/debian
# (scripts/ci-cross.sh --deb or scripts/build-deb.sh make one). Installs systemd if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
max=${MAX_EXPOSURE:-2.0}

if ! command -v systemd-analyze >/dev/null; then
  echo "ci-systemd: installing systemd (for systemd-analyze)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends systemd >/dev/null
fi
echo "ci-systemd: $(systemctl --version | head -1)"

deb=${1:-$(ls -t target-cross/*/debian/payterm_*.deb target/debian/payterm_*.deb 2>/dev/null | head -1 || true)}
[ -n "$deb" ] && [ -f "$deb" ] || { echo "ci-systemd: no package; run scripts/ci-cross.sh --deb or scripts/build-deb.sh first" >&2; exit 1; }
echo "ci-systemd: checking $deb"

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
dpkg-deb -x "$deb" "$root"
unit=$root/lib/systemd/system/payterm.service
[ -f "$unit" ] || { echo "ci-systemd: the package has no lib/systemd/system/payterm.service" >&2; exit 1; }
[ -x "$root/usr/bin/payterm" ] || { echo "ci-systemd: the package has no executable usr/bin/payterm" >&2; exit 1; }

# The rest of a system for the unit to live in: the host's units (targets, slices) and the
# commands the unit names outside the package (/bin/kill for ExecReload). The packaged unit
# stays where the package puts it (/lib/systemd/system), which systemd searches too.
mkdir -p "$root/usr/lib/systemd/system" "$root/usr/bin" "$root/etc/systemd/system"
for d in /usr/lib/systemd/system /lib/systemd/system; do
  [ -d "$d" ] && cp -an "$d/." "$root/usr/lib/systemd/system/" 2>/dev/null || true
done
[ -e "$root/bin" ] || ln -s usr/bin "$root/bin"
cp /bin/kill "$root/usr/bin/kill"

out=$(systemd-analyze verify --man=no --generators=no --root="$root" payterm.service 2>&1) && rc=0 || rc=$?
if [ "$rc" -ne 0 ] || [ -n "$out" ]; then
  echo "$out"
  echo "ci-systemd: systemd-analyze verify FAILED (rc $rc)" >&2
  exit 1
fi
echo "ci-systemd: systemd-analyze verify: OK (no warnings)"

# The score, and the settings that still cost exposure (the ✗ lines).
sec=$(systemd-analyze security --offline=yes --no-pager "$unit" 2>&1) || true
grep -a '✗' <<<"$sec" | sed 's/  */ /g' || true
score=$(grep -ao 'Overall exposure level for [^:]*: [0-9.]*' <<<"$sec" | awk '{print $NF}')
[ -n "$score" ] || { echo "$sec"; echo "ci-systemd: no exposure score in the output" >&2; exit 1; }
echo "ci-systemd: exposure score $score (lower is better; threshold $max)"
awk -v s="$score" -v m="$max" 'BEGIN { exit !(s <= m) }' || { echo "ci-systemd: exposure $score is above $max" >&2; exit 1; }
echo "ci-systemd: 2 passed, 0 failed"
