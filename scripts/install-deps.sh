#!/usr/bin/env bash
# Installs the system packages Brickyard's lab and tests use (Debian 12, as root). Idempotent:
# does nothing when everything is already there.
set -euo pipefail
packages=(glusterfs-server glusterfs-client parted xfsprogs e2fsprogs iptables iproute2 util-linux
  psmisc rpm rpmlint cloud-init
  # packaging tests: systemd-analyze (unit check), readelf (GLIBC versions)
  systemd binutils)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
