#!/usr/bin/env bash
# ci-cross.sh: cross-build payterm for an ARM board without Docker, run the library's unit tests
# on the target architecture under qemu-user, and build the stripped release binary.
#
#   bash scripts/ci-cross.sh                     # aarch64: lib tests under qemu + release binary
#   bash scripts/ci-cross.sh --target armv7      # the same for armv7-unknown-linux-gnueabihf
#   bash scripts/ci-cross.sh --no-test           # release binary only
#   bash scripts/ci-cross.sh --no-release        # tests only
#   bash scripts/ci-cross.sh --deb               # also package the .deb (cargo-deb, else dpkg-deb)
#   bash scripts/ci-cross.sh -- FILTER --skip X  # arguments after -- go to the test harness
#                                                (instead of the default qemu skips below)
#
# Needs scripts/setup-cross.sh (run once, as root; add --armv7 for armv7). Builds go to
# target-cross/ (CARGO_TARGET_DIR, overridable) so they never contend with the native target/
# directory: the cross compiler is Debian's rustc-web 1.96, not rustup's, and mixing the two in
# one target directory would rebuild the host build scripts every time.
# Prints how long each step took and the stripped binary's size.
set -euo pipefail
cd "$(dirname "$0")/.."

target=aarch64-unknown-linux-gnu
do_test=1 do_release=1 do_deb=0
harness=()
while [ $# -gt 0 ]; do
  case "$1" in
    --target)
      case "${2:-}" in
        aarch64|arm64|aarch64-unknown-linux-gnu) target=aarch64-unknown-linux-gnu ;;
        armv7|armhf|armv7-unknown-linux-gnueabihf) target=armv7-unknown-linux-gnueabihf ;;
        *) echo "ci-cross: --target takes aarch64 or armv7" >&2; exit 1 ;;
      esac
      shift 2 ;;
    --no-test) do_test=0; shift ;;
    --no-release) do_release=0; shift ;;
    --deb) do_deb=1; shift ;;
    --) shift; harness=("$@"); break ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "ci-cross: unknown argument $1 (see --help)" >&2; exit 1 ;;
  esac
done

case "$target" in
  aarch64-*) triplet=aarch64-linux-gnu qemu=qemu-aarch64-static debarch=arm64 ;;
  armv7-*) triplet=arm-linux-gnueabihf qemu=qemu-arm-static debarch=armhf ;;
esac

# The toolchain of scripts/setup-cross.sh. rustup's cargo is fine; its rustc is not (no ARM std).
export RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target-cross}
for tool in "$RUSTC" "$triplet-gcc" "$triplet-strip" "$qemu"; do
  command -v "$tool" >/dev/null || { echo "ci-cross: $tool is missing; run: sudo bash scripts/setup-cross.sh$([ "$debarch" = armhf ] && echo ' --armv7')" >&2; exit 1; }
done
[ -d "/usr/lib/rustlib/$target/lib" ] || { echo "ci-cross: no std for $target in /usr/lib/rustlib; run scripts/setup-cross.sh$([ "$debarch" = armhf ] && echo ' --armv7')" >&2; exit 1; }

echo "ci-cross: $target with $($RUSTC -V), target dir $CARGO_TARGET_DIR, $(nproc) cores"
timings=()
step() { # step NAME CMD... : run and record the wall time
  local name=$1; shift
  local t0=$(date +%s)
  echo "ci-cross: >>> $name: $*"
  "$@"
  local dt=$(( $(date +%s) - t0 ))
  timings+=("$(printf '%-28s %4dm%02ds' "$name" $((dt / 60)) $((dt % 60)))")
}

if [ "$do_test" = 1 ]; then
  # Build first, run second, so the two costs are reported apart.
  step "lib tests: build" cargo test --locked --lib --target "$target" --no-run
  # Each test binary runs through cargo's runner, plain $qemu (.cargo/config.toml).
  # qemu-user 7.2 does not implement the termios2 ioctls (TCGETS2/TCSETS2) that serialport uses
  # to set a baud rate, so every test that opens a serial port on a pty fails with "Function not
  # implemented" (one hangs) under qemu, while passing natively and on boards. The hotplug test
  # (FIFOs watched through inotify) times out under qemu too; not investigated further. They are
  # skipped here; the native test run covers them. Everything else (state machine, journal,
  # signatures, gateways, sandbox, UI, evdev decoding) runs on the target architecture.
  # consume_scenarios_through_the_sandbox gives its HTTP exchange 300 ms: it passes alone under
  # qemu (2 s) but timed out in the parallel run on a loaded machine; skipped until that margin is
  # widened.
  if [ ${#harness[@]} -eq 0 ]; then
    harness=(--skip device::serial:: --skip device::face:: --skip device::scantest::
             --skip device::hotplug::tests::hotplug_two_scanners
             --skip device::printer::tests::the_printer_gets_the_receipt
             --skip gateway::unionpay::gateway::tests::consume_scenarios_through_the_sandbox)
  fi
  step "lib tests: run under qemu" cargo test --locked --lib --target "$target" -- "${harness[@]}"
fi

if [ "$do_release" = 1 ]; then
  step "release build" cargo build --locked --release --target "$target" --bin payterm
  bin="$CARGO_TARGET_DIR/$target/release/payterm"
  # The release profile already strips symbols; strip again with the target's binutils to be sure
  # (and to drop .comment), keeping the original for comparison.
  "$triplet-strip" --strip-all -R .comment -o "$bin.stripped" "$bin"
  size_raw=$(stat -c %s "$bin") size=$(stat -c %s "$bin.stripped")
  glibc=$("$triplet-objdump" -T "$bin.stripped" | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1)
  needed=$("$triplet-objdump" -p "$bin.stripped" | awk '/NEEDED/ {print $2}' | paste -sd' ')
  # Does it start on the target architecture at all? (qemu, no device needed.)
  "$qemu" "$bin.stripped" --help >/dev/null
  ver=$("$qemu" "$bin.stripped" --version 2>/dev/null || true)
  echo "ci-cross: $bin.stripped: $size bytes ($(awk "BEGIN {printf \"%.2f\", $size/1048576}") MiB; $size_raw before strip)"
  echo "ci-cross: needs $needed; newest glibc symbol $glibc; '${ver:-payterm}' starts under $qemu"
fi

if [ "$do_deb" = 1 ]; then
  # The package is declared in Cargo.toml's [package.metadata.deb]. cargo-deb builds it (pinned;
  # compiling it took 1m45s here); without it (offline, or its install failed),
  # scripts/build-deb.sh makes the same package with dpkg-deb from the same declaration.
  if ! cargo deb --version >/dev/null 2>&1; then
    # Its own target dir and rustup's compiler: it is a host tool, not part of the cross build.
    step "install cargo-deb" env -u RUSTC -u RUSTDOC CARGO_TARGET_DIR="$(mktemp -d)" \
      cargo install --locked cargo-deb --version 3.8.0 || echo "ci-cross: cargo-deb did not install; using dpkg-deb"
  fi
  if cargo deb --version >/dev/null 2>&1; then
    step "deb package (cargo-deb)" cargo deb --locked --no-build --target "$target"
  else
    step "deb package (dpkg-deb)" bash scripts/build-deb.sh --target "$target" --no-build
  fi
  ls -l "$CARGO_TARGET_DIR/$target/debian/"*.deb
fi

echo "ci-cross: timings ($target, $(nproc) cores):"
printf '  %s\n' "${timings[@]}"
