#!/usr/bin/env bash
# Installs the system packages Brickyard's lab and tests use (Debian 12, as root). Idempotent:
# does nothing when everything is already there.
set -euo pipefail
packages=(glusterfs-server glusterfs-client parted xfsprogs e2fsprogs iptables iproute2 util-linux
  psmisc rpm rpmlint cloud-init
  # packaging (packaging/build.sh and its tests): systemd-analyze (unit checks), readelf and
  # objcopy (GLIBC versions, .comment), dpkg-gencontrol, lintian, systemd-nspawn (a root
  # booted with systemd as PID 1)
  systemd binutils dpkg-dev lintian systemd-container)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
