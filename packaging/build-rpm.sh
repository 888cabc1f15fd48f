#!/usr/bin/env bash
# packaging/build-rpm.sh: the one command that builds Brickyard's RPMs for RHEL-family 7+
# (x86_64) into target/rpm/: brickyard-VERSION-1.x86_64.rpm (CLI) and
# brickyard-agent-VERSION-1.x86_64.rpm.
#
# 1. `cargo zigbuild --release` against glibc 2.17 (installs ziglang + cargo-zigbuild from
#    PyPI with pip when missing), in its own target dir, `zig/` inside the usual one, so it
#    never invalidates the normal debug builds (override with BRICKYARD_ZIG_TARGET_DIR);
# 2. checks that no binary needs a GLIBC symbol version newer than 2.17;
# 3. rpmbuild -bb packaging/brickyard.spec from those binaries;
# 4. rpmlint with packaging/rpmlintrc: any warning not explained there fails the build.
#
# Touches: target/rpm, the zig target dir, a temp dir; pip's site-packages when installing.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
packaging=$repo/packaging
out=$repo/target/rpm
zig_target_dir=${BRICKYARD_ZIG_TARGET_DIR:-${CARGO_TARGET_DIR:-$repo/target}/zig}
triple=x86_64-unknown-linux-gnu
glibc_max=2.17
# Versions this script was last checked with.
zig_pip=(ziglang==0.17.1 cargo-zigbuild==0.24.1)

die() { echo "build-rpm.sh: $*" >&2; exit 1; }

for tool in cargo rpmbuild rpmlint readelf python3; do
  command -v "$tool" >/dev/null || die "'$tool' is not installed (scripts/install-deps.sh installs it)"
done

# pip installs console scripts here; make sure they are found even when it is not on PATH.
PATH=$PATH:$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')
if ! command -v cargo-zigbuild >/dev/null || ! python3 -c 'import ziglang' 2>/dev/null; then
  echo "build-rpm.sh: installing ${zig_pip[*]} from PyPI"
  python3 -m pip install --quiet --disable-pip-version-check "${zig_pip[@]}"
  command -v cargo-zigbuild >/dev/null || die "cargo-zigbuild is still not on PATH after pip install"
fi

cd "$repo"
version=$(cargo pkgid -p brickyard-agent | sed 's/.*[@#]//')
[[ $version =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "cannot read the workspace version (got '$version')"

start=$SECONDS
# A GNU build-id lets debuggers and coredump tools match the binaries (zig's linker omits
# it unless asked); set only for this target dir, so other builds are not affected.
CARGO_TARGET_DIR=$zig_target_dir \
CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C link-arg=-Wl,--build-id=sha1" \
  cargo zigbuild --release --locked --target "$triple.$glibc_max" \
  -p brickyard-agent -p brickyard
echo "build-rpm.sh: cargo zigbuild took $((SECONDS - start)) s"
bindir=$zig_target_dir/$triple/release

# The highest GLIBC_x.y symbol version each binary needs must be <= 2.17.
for bin in brickyard brickyard-agent; do
  highest=$(readelf -V --wide "$bindir/$bin" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n1)
  [ -n "$highest" ] || die "$bin: no GLIBC symbol versions found (not a dynamically linked glibc binary?)"
  [ "$(printf '%s\n%s\n' "$highest" "$glibc_max" | sort -V | tail -n1)" = "$glibc_max" ] ||
    die "$bin needs GLIBC_$highest, newer than $glibc_max (RHEL/CentOS 7)"
  echo "build-rpm.sh: $bin needs at most GLIBC_$highest"
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/SOURCES"
cp "$bindir/brickyard" "$bindir/brickyard-agent" "$packaging/brickyard-agent.service" \
  "$packaging/agent.toml" "$packaging/80-brickyard-agent.preset" "$packaging/README-agent.md" \
  "$work/SOURCES/"

rm -rf "$out"
mkdir -p "$out"
# Reproducible: timestamps from the last commit, not the clock.
SOURCE_DATE_EPOCH=$(git -C "$repo" log -1 --format=%ct 2>/dev/null || date +%s)
export SOURCE_DATE_EPOCH
rpmbuild -bb --target x86_64-redhat-linux \
  --define "_topdir $work" \
  --define "_sourcedir $work/SOURCES" \
  --define "_rpmdir $out" \
  --define "_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm" \
  --define "_buildhost brickyard-build" \
  --define "use_source_date_epoch_as_buildtime 1" \
  --define "clamp_mtime_to_source_date_epoch 1" \
  --define "brickyard_version $version" \
  "$packaging/brickyard.spec"

rpmlint --rpmlintrc "$packaging/rpmlintrc" "$packaging/brickyard.spec" "$out"/*.rpm
ls -l "$out"
