#!/usr/bin/env bash
# packaging/build.sh: the one command that builds all of Brickyard's packages (x86_64) from ONE
# release build of the binaries:
#   target/rpm/brickyard-VERSION-1.x86_64.rpm, brickyard-agent-VERSION-1.x86_64.rpm
#     (RHEL, CentOS, Rocky, Alma, Oracle Linux 7 and later)
#   target/deb/brickyard_VERSION-1_amd64.deb, brickyard-agent_VERSION-1_amd64.deb
#     (Debian 12, Ubuntu 22.04 and 24.04)
#
# 1. `cargo zigbuild --release` against glibc 2.17 (installs ziglang + cargo-zigbuild from
#    PyPI with pip when missing), in its own target dir, `zig/` inside the usual one, so it
#    never invalidates the normal debug builds (override with BRICKYARD_ZIG_TARGET_DIR);
# 2. checks that no binary needs a GLIBC symbol version newer than 2.17;
# 3. rpmbuild -bb packaging/brickyard.spec from those binaries, then rpmlint with
#    packaging/rpmlintrc: any warning not explained there fails the build;
# 4. the .debs from the same binaries and files: packaging/deb/control through
#    dpkg-gencontrol, the maintainer scripts of packaging/deb/, dpkg-deb; then lintian:
#    any tag (error, warning or info) not overridden, with its reason, in
#    packaging/deb/*.lintian-overrides fails the build.
#
# Touches: target/rpm, target/deb, the zig target dir, a temp dir; pip's site-packages when
# installing.
set -euo pipefail
umask 022

repo=$(cd "$(dirname "$0")/.." && pwd)
packaging=$repo/packaging
rpm_out=$repo/target/rpm
deb_out=$repo/target/deb
zig_target_dir=${BRICKYARD_ZIG_TARGET_DIR:-${CARGO_TARGET_DIR:-$repo/target}/zig}
triple=x86_64-unknown-linux-gnu
glibc_max=2.17
# Versions this script was last checked with.
zig_pip=(ziglang==0.17.1 cargo-zigbuild==0.24.1)

say() { echo "build.sh: $*"; }
die() { echo "build.sh: $*" >&2; exit 1; }

for tool in cargo rpmbuild rpmlint readelf objcopy python3 dpkg-deb dpkg-gencontrol dpkg-parsechangelog lintian; do
  command -v "$tool" >/dev/null || die "'$tool' is not installed (scripts/install-deps.sh installs it)"
done

# pip installs console scripts here; make sure they are found even when it is not on PATH.
PATH=$PATH:$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')
if ! command -v cargo-zigbuild >/dev/null || ! python3 -c 'import ziglang' 2>/dev/null; then
  say "installing ${zig_pip[*]} from PyPI"
  python3 -m pip install --quiet --disable-pip-version-check "${zig_pip[@]}"
  command -v cargo-zigbuild >/dev/null || die "cargo-zigbuild is still not on PATH after pip install"
fi

cd "$repo"
version=$(cargo pkgid -p brickyard-agent | sed 's/.*[@#]//')
[[ $version =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "cannot read the workspace version (got '$version')"
# The packages' own changelogs must have an entry for this version (the RPM's %changelog and
# packaging/deb/changelog are written by hand, like any distribution's).
deb_version=$(dpkg-parsechangelog -l "$packaging/deb/changelog" -S Version)
[ "${deb_version%-*}" = "$version" ] ||
  die "packaging/deb/changelog's latest entry is $deb_version, the workspace version is $version: add an entry"

start=$SECONDS
# A GNU build-id lets debuggers and coredump tools match the binaries (zig's linker omits
# it unless asked); set only for this target dir, so other builds are not affected.
CARGO_TARGET_DIR=$zig_target_dir \
CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C link-arg=-Wl,--build-id=sha1" \
  cargo zigbuild --release --locked --target "$triple.$glibc_max" \
  -p brickyard-agent -p brickyard
say "cargo zigbuild took $((SECONDS - start)) s"
built=$zig_target_dir/$triple/release

# The highest GLIBC_x.y symbol version each binary needs must be <= 2.17, and glibc must be
# all they link: the packages' only dependency is on it (rpm finds that itself; the .debs
# say libc6 (>= that version): dpkg-shlibdeps would say 2.34, from Debian 12's libpthread
# and libdl, which since glibc 2.34 are empty stubs the binaries take nothing from).
glibc_libs=" ld-linux-x86-64.so.2 libc.so.6 libdl.so.2 libm.so.6 libpthread.so.0 librt.so.1 "
declare -A glibc_needed
for bin in brickyard brickyard-agent; do
  highest=$(readelf -V --wide "$built/$bin" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n1)
  [ -n "$highest" ] || die "$bin: no GLIBC symbol versions found (not a dynamically linked glibc binary?)"
  [ "$(printf '%s\n%s\n' "$highest" "$glibc_max" | sort -V | tail -n1)" = "$glibc_max" ] ||
    die "$bin needs GLIBC_$highest, newer than $glibc_max (RHEL/CentOS 7)"
  for lib in $(readelf -d "$built/$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
    [[ $glibc_libs == *" $lib "* ]] || die "$bin links $lib, which is not part of glibc: the packages do not depend on it"
  done
  glibc_needed[$bin]=$highest
  say "$bin needs at most GLIBC_$highest"
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Both package formats carry these same bytes: the release binaries without their .comment
# section, which only names the toolchain's versions (dropped as Debian's dh_strip does;
# lintian: binary-has-unneeded-section).
bindir=$work/bin
mkdir "$bindir"
for bin in brickyard brickyard-agent; do
  objcopy --remove-section=.comment "$built/$bin" "$bindir/$bin"
done

# Reproducible: timestamps from the last commit, not the clock.
SOURCE_DATE_EPOCH=$(git -C "$repo" log -1 --format=%ct 2>/dev/null || date +%s)
export SOURCE_DATE_EPOCH

# ---- RPMs ------------------------------------------------------------------------------
start=$SECONDS
mkdir -p "$work/rpm/SOURCES"
cp "$bindir/brickyard" "$bindir/brickyard-agent" "$packaging/brickyard-agent.service" \
  "$packaging/agent.toml" "$packaging/80-brickyard-agent.preset" "$packaging/README-agent.md" \
  "$work/rpm/SOURCES/"
rm -rf "$rpm_out"
mkdir -p "$rpm_out"
rpmbuild -bb --target x86_64-redhat-linux \
  --define "_topdir $work/rpm" \
  --define "_sourcedir $work/rpm/SOURCES" \
  --define "_rpmdir $rpm_out" \
  --define "_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm" \
  --define "_buildhost brickyard-build" \
  --define "use_source_date_epoch_as_buildtime 1" \
  --define "clamp_mtime_to_source_date_epoch 1" \
  --define "brickyard_version $version" \
  "$packaging/brickyard.spec"
rpmlint --rpmlintrc "$packaging/rpmlintrc" "$packaging/brickyard.spec" "$rpm_out"/*.rpm
say "RPMs built and linted in $((SECONDS - start)) s"

# ---- .debs -----------------------------------------------------------------------------
start=$SECONDS
# dpkg-gencontrol reads ./debian/control and ./debian/changelog: give it a source tree that
# is just those two files. Each package is staged in debian/PACKAGE.
deb=$work/deb
mkdir -p "$deb/debian"
cp "$packaging/deb/control" "$packaging/deb/changelog" "$deb/debian/"

# stage PACKAGE MODE SOURCE DEST: installs SOURCE as DEST (absolute) into PACKAGE's tree.
stage() {
  install -D -p -m "$2" "$3" "$deb/debian/$1$4"
}
# Files of both packages: the same paths and modes as the spec's %install.
stage brickyard 0755 "$bindir/brickyard" /usr/bin/brickyard
stage brickyard-agent 0755 "$bindir/brickyard-agent" /usr/bin/brickyard-agent
stage brickyard-agent 0644 "$packaging/brickyard-agent.service" /usr/lib/systemd/system/brickyard-agent.service
stage brickyard-agent 0644 "$packaging/80-brickyard-agent.preset" /usr/lib/systemd/system-preset/80-brickyard-agent.preset
stage brickyard-agent 0644 "$packaging/agent.toml" /etc/brickyard/agent.toml
install -d -m 0700 "$deb/debian/brickyard-agent/etc/brickyard/pki"
stage brickyard-agent 0644 "$packaging/README-agent.md" /usr/share/doc/brickyard-agent/README.md
# What Debian policy adds to every package: copyright and changelog in the doc dir, the
# lintian overrides (each with its reason) where lintian looks for them.
gzip -9n -c "$packaging/deb/changelog" >"$work/changelog.Debian.gz"
touch -d "@$SOURCE_DATE_EPOCH" "$work/changelog.Debian.gz"
for pkg in brickyard brickyard-agent; do
  stage "$pkg" 0644 "$packaging/deb/copyright" "/usr/share/doc/$pkg/copyright"
  stage "$pkg" 0644 "$work/changelog.Debian.gz" "/usr/share/doc/$pkg/changelog.Debian.gz"
  stage "$pkg" 0644 "$packaging/deb/$pkg.lintian-overrides" "/usr/share/lintian/overrides/$pkg"
done
install -d -m 0755 "$deb/debian/brickyard-agent/DEBIAN"
for script in postinst prerm postrm; do
  install -p -m 0755 "$packaging/deb/brickyard-agent.$script" "$deb/debian/brickyard-agent/DEBIAN/$script"
done
install -p -m 0644 "$packaging/deb/brickyard-agent.conffiles" "$deb/debian/brickyard-agent/DEBIAN/conffiles"

rm -rf "$deb_out"
mkdir -p "$deb_out"
(
  cd "$deb"
  for pkg in brickyard brickyard-agent; do
    root=debian/$pkg
    install -d -m 0755 "$root/DEBIAN"
    dpkg-gencontrol -p"$pkg" -P"$root" -V"shlibs:Depends=libc6 (>= ${glibc_needed[$pkg]})"
    # md5sums of everything but the conffiles (dpkg records theirs itself), as dh_md5sums.
    (
      cd "$root"
      find . -type f ! -path './DEBIAN/*' -printf '%P\n' | LC_ALL=C sort |
        grep -vxF -f <([ ! -f DEBIAN/conffiles ] || sed 's|^/||' DEBIAN/conffiles) | xargs -r md5sum
    ) >"$root/DEBIAN/md5sums"
    find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
    # xz: Debian 12's dpkg cannot unpack zstd members.
    dpkg-deb --root-owner-group -Zxz --build "$root" "$deb_out"
  done
)
# Info tags fail the build too. spelling-error-in-binary is not checked: it runs on the
# `strings` of the whole binary, where compressed and table data always holds some
# three-letter "typos" (it found "wtH"), which change with every code change.
lintian --fail-on error,warning,info --display-info --suppress-tags spelling-error-in-binary "$deb_out"/*.deb
say ".debs built and linted in $((SECONDS - start)) s"

ls -l "$rpm_out" "$deb_out"
