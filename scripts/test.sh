#!/usr/bin/env bash
# The whole test suite (README's test command): system packages, style gates, every test.
# Must run as root: the OS tests attach loop devices and build namespaced lab hosts.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "scripts/test.sh must run as root (loop devices, namespaces)" >&2; exit 1; }
bash scripts/install-deps.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo build --workspace --bins  # the tests run the built binaries (tests/src/bins.rs)
cargo test --workspace --exclude brickyard-tests  # every crate's unit and doc tests
cargo test -p brickyard-tests --lib               # the test helpers' own tests
bash scripts/e2e.sh                               # the end-to-end binaries, a few at a time
# the benchmark's one-round mode, so scripts/bench.sh keeps working (budgets not enforced here)
BRICKYARD_BIN="${CARGO_TARGET_DIR:-target}/debug/brickyard" bash scripts/bench.sh --quick
