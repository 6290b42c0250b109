#!/usr/bin/env bash
# setup-cross.sh: install what payterm needs to cross-build for ARM boards and to run the
# aarch64 (and optionally armv7) binaries and test binaries under qemu-user, on Debian 12 amd64,
# without Docker and without rustup targets.
#
#   sudo bash scripts/setup-cross.sh            # aarch64 only (what CI uses)
#   sudo bash scripts/setup-cross.sh --armv7    # aarch64 and armv7 (armhf)
#
# Idempotent: a second run installs nothing and only re-runs the smoke test.
#
# The toolchain is Debian's rustc-web (1.96 in bookworm-security), whose std for a foreign
# architecture is the multiarch package libstd-rust-web-dev:<arch>. It lands in /usr/bin/rustc,
# which rustup's ~/.cargo/bin shadows on PATH, so cross builds must set RUSTC=/usr/bin/rustc
# (scripts/ci-cross.sh does). Native builds keep using rustup's toolchain untouched.
#
# Traps handled here (research/CROSS.md):
#  * The security mirror has served a stale binary-armhf/Packages.xz ("File has unexpected size
#    ... Mirror sync in progress?"); apt then drops the whole bookworm-security update, arm64
#    included, and libstd-rust-web-dev:arm64 falls back to main's 1.85, which cannot co-install
#    with rustc-web 1.96 (Multi-Arch: same needs equal versions). We refresh without armhf first.
#  * Versions are pinned to rustc-web's candidate so a missing security list fails loudly.
#  * The qemu runner must be plain qemu-aarch64-static, never with -L /usr/aarch64-linux-gnu:
#    that pairs the cross package's ld.so with the multiarch libc.so.6 and every program that
#    starts a thread spins forever (aarch64) or segfaults (armhf).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

want_armv7=0
for a in "$@"; do
  case "$a" in
    --armv7) want_armv7=1 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "setup-cross: unknown argument $a" >&2; exit 1 ;;
  esac
done
if [ "$(id -u)" -ne 0 ]; then
  echo "setup-cross: run as root (it installs Debian packages)" >&2
  exit 1
fi
host=$(dpkg --print-architecture)
[ "$host" = amd64 ] || { echo "setup-cross: written for an amd64 host, this is $host" >&2; exit 1; }

archs=(arm64)
[ "$want_armv7" = 1 ] && archs+=(armhf)

have_pkg() { # have_pkg PKG[:ARCH] VERSION -> installed at exactly VERSION?
  [ "$(dpkg-query -W -f='${db:Status-Abbrev}${Version}' "$1" 2>/dev/null || true)" = "ii $2" ]
}

# Fast path: everything present at the candidate version already -> skip apt entirely.
# (Checked against the installed rustc-web, so an up-to-date machine needs no network.)
installed_v=$(dpkg-query -W -f='${Version}' rustc-web 2>/dev/null || true)
ready=0
if [ -n "$installed_v" ] && have_pkg "libstd-rust-web-dev:arm64" "$installed_v" \
   && command -v aarch64-linux-gnu-gcc >/dev/null && command -v qemu-aarch64-static >/dev/null; then
  ready=1
  if [ "$want_armv7" = 1 ] && ! { have_pkg "libstd-rust-web-dev:armhf" "$installed_v" \
       && command -v arm-linux-gnueabihf-gcc >/dev/null; }; then
    ready=0
  fi
fi

if [ "$ready" = 0 ]; then
  # 1. Multiarch.
  for a in "${archs[@]}"; do
    dpkg --print-foreign-architectures | grep -qx "$a" || dpkg --add-architecture "$a"
  done

  # 2. Package lists (see the armhf trap above).
  if ! apt-get update; then
    echo "setup-cross: apt-get update failed; retrying without armhf" >&2
    apt-get update -o APT::Architectures::="$host" -o APT::Architectures::=arm64
    apt-get update || echo "setup-cross: armhf security index unusable; armhf debs come from the pool" >&2
  fi

  # 3. Compiler, aarch64 std, cross gcc and libc, qemu. All std pieces pinned to rustc-web's version.
  V=$(apt-cache policy rustc-web | awk '/Candidate:/ {print $2}')
  case "$V" in ''|'(none)') echo "setup-cross: no rustc-web candidate (is bookworm-security in sources?)" >&2; exit 1 ;; esac
  echo "setup-cross: rustc-web $V"
  pkgs=("rustc-web=$V" "libstd-rust-web-dev:arm64=$V" gcc-aarch64-linux-gnu libc6-dev-arm64-cross
        qemu-user-static binutils-aarch64-linux-gnu)
  [ "$want_armv7" = 1 ] && pkgs+=(gcc-arm-linux-gnueabihf libc6-dev-armhf-cross binutils-arm-linux-gnueabihf curl)
  apt-get install -y --no-install-recommends "${pkgs[@]}"

  # 4. armv7 std, only on request.
  if [ "$want_armv7" = 1 ] && ! have_pkg "libstd-rust-web-dev:armhf" "$V"; then
    if apt-cache madison libstd-rust-web-dev:armhf | awk -F'|' '{gsub(/ /,"",$2); print $2}' | grep -qxF "$V"; then
      apt-get install -y --no-install-recommends "libstd-rust-web-dev:armhf=$V"
    else
      # The armhf security index is broken: fetch, from the security pool, the armhf build of each
      # package in libstd-rust-web-dev's dependency closure whose installed amd64 version apt
      # cannot offer for armhf, check what each file is, and let apt resolve the rest from main.
      # These .debs are not covered by a signed index (that index is exactly what is broken).
      sec=$(apt-cache policy rustc-web | awk '/debian-security/ && /http/ {print $2; exit}')
      [ -n "$sec" ] || { echo "setup-cross: no security archive in apt-cache policy" >&2; exit 1; }
      tmp=$(mktemp -d)
      trap 'rm -rf "$tmp"' EXIT
      debs=()
      for p in $(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts \
                   --no-breaks --no-replaces --no-enhances --no-pre-depends \
                   "libstd-rust-web-dev:$host" | grep -v '^ ' | sort -u); do
        iv=$(dpkg-query -W -f='${Version}' "$p:$host" 2>/dev/null) || continue
        apt-cache madison "$p:armhf" | awk -F'|' '{gsub(/ /,"",$2); print $2}' | grep -qxF "$iv" && continue
        src=$(dpkg-query -W -f='${source:Package}' "$p:$host")
        case "$src" in lib*) pre=${src:0:4} ;; *) pre=${src:0:1} ;; esac
        f="${p}_${iv#*:}_armhf.deb"
        curl -fsSL -o "$tmp/$f" "$sec/pool/updates/main/$pre/$src/$f"
        got="$(dpkg-deb -f "$tmp/$f" Package) $(dpkg-deb -f "$tmp/$f" Version) $(dpkg-deb -f "$tmp/$f" Architecture)"
        [ "$got" = "$p $iv armhf" ] || { echo "setup-cross: $f is '$got', expected '$p $iv armhf'" >&2; exit 1; }
        echo "setup-cross: fetched $f from the security pool"
        debs+=("$tmp/$f")
      done
      apt-get install -y --no-install-recommends "${debs[@]}"
    fi
  fi
else
  echo "setup-cross: toolchain already installed (rustc-web $installed_v); nothing to install"
fi

# 5. Smoke test: compile, link, start a thread (the case the -L trap breaks) and run under qemu.
t=$(mktemp -d)
printf 'fn main() { let h = std::thread::spawn(|| 6 * 7); println!("{} {}", std::env::consts::ARCH, h.join().unwrap()); }\n' > "$t/smoke.rs"
/usr/bin/rustc --edition 2021 --target aarch64-unknown-linux-gnu -C linker=aarch64-linux-gnu-gcc "$t/smoke.rs" -o "$t/a64"
out=$(timeout 60 qemu-aarch64-static "$t/a64")
[ "$out" = "aarch64 42" ] || { echo "setup-cross: aarch64 smoke test printed '$out'" >&2; exit 1; }
echo "setup-cross: aarch64 smoke test OK ($out)"
if [ "$want_armv7" = 1 ]; then
  /usr/bin/rustc --edition 2021 --target armv7-unknown-linux-gnueabihf -C linker=arm-linux-gnueabihf-gcc "$t/smoke.rs" -o "$t/a32"
  out=$(timeout 60 qemu-arm-static "$t/a32")
  [ "$out" = "arm 42" ] || { echo "setup-cross: armv7 smoke test printed '$out'" >&2; exit 1; }
  echo "setup-cross: armv7 smoke test OK ($out)"
fi
rm -rf "$t"
echo "setup-cross: ready. Build with: bash scripts/ci-cross.sh   (or --target armv7, see docs/deploy.md)"
