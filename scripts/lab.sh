#!/usr/bin/env bash
# README's main-job command: builds Brickyard and starts a lab on this machine (2 servers with a
# loop disk each + 2 clients, each host a set of namespaces running brickyard-agent), then runs
# the seed end to end on it: `apply` (disks, glusterd, pool, replica-2 volume, client mounts),
# `verify` (the file tests) and `status`, and shows the volume as gluster sees it. Extra
# arguments go to `brickyard-lab up` (e.g. --name, --servers, --clients, --dir; --bare builds the
# hosts only). Must run as root. Remove the lab with `target/release/brickyard-lab down`.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "scripts/lab.sh must run as root (namespaces, mounts, loop devices)" >&2; exit 1; }
bash scripts/install-deps.sh
cargo build --release --bins  # brickyard-lab runs the brickyard and brickyard-agent next to it
exec "${CARGO_TARGET_DIR:-target}/release/brickyard-lab" up "$@"
