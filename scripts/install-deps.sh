#!/usr/bin/env bash
# Installs the system packages Brickyard's lab and tests use (Debian 12, as root). Idempotent:
# does nothing when everything is already there.
set -euo pipefail
packages=(glusterfs-server glusterfs-client parted xfsprogs e2fsprogs iptables iproute2 util-linux
  psmisc rpm rpmlint cloud-init
  # packaging (packaging/build.sh and its tests): systemd-analyze (unit checks), readelf and
  # objcopy (GLIBC versions, .comment), dpkg-gencontrol, lintian, systemd-nspawn (a root
  # booted with systemd as PID 1)
  systemd binutils dpkg-dev lintian systemd-container
  # firewall test: a real firewalld (nftables backend) on its own D-Bus inside a lab host
  firewalld dbus)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
# firewalld runs only inside lab hosts, never on this machine: keep it from starting at boot
# (its package enables it; lab hosts see this machine's /etc and must find it disabled).
if [[ -e /etc/systemd/system/multi-user.target.wants/firewalld.service ]]; then
  systemctl disable firewalld.service
fi
