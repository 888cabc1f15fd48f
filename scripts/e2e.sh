#!/usr/bin/env bash
# The end-to-end test binaries of tests/ (built by `cargo test --no-run`), E2E_JOBS at a time
# (default 3): each builds its own labs under names unique to its process, so binaries are
# independent; most of their time is spent waiting on glusterd, mounts and timeouts, not CPU.
# The longest run first. Each binary's output goes to its own log; a line per binary as it ends
# (result, seconds); the logs of the failed ones at the end. Exit 1 when any failed.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${E2E_JOBS:-3}
logs=$(mktemp -d /tmp/brickyard-e2e.XXXXXX)
trap 'rm -rf "$logs"' EXIT

# The longest binaries (measured, about 1.5-5 min each) start first, so the last to finish is short.
first="packaging day2_heal gluster_pool faults_net faults_reboot day2_migrate coordinator day2_retire agent_pressure gluster_tls"

mapfile -t built < <(cargo test -p brickyard-tests --no-run 2>&1 \
    | sed -n 's/^ *Executable tests\/\([^ /]*\)\/main\.rs (\(.*\))$/\1 \2/p; s/^ *Executable tests\/\([^ /]*\)\.rs (\(.*\))$/\1 \2/p')
[ "${#built[@]}" -gt 0 ] || { echo "e2e: no test binaries found (cargo test -p brickyard-tests --no-run)" >&2; exit 1; }
ordered=()
for name in $first; do
    for entry in "${built[@]}"; do [ "${entry%% *}" = "$name" ] && ordered+=("$entry"); done
done
for entry in "${built[@]}"; do
    case " $first " in *" ${entry%% *} "*) ;; *) ordered+=("$entry") ;; esac
done

run_one() { # run_one NAME EXE: runs one binary from tests/ (as cargo test does), logs, reports
    local name=$1 exe=$2 start status=0
    start=$(date +%s)
    case $exe in /*) ;; *) exe=$PWD/$exe ;; esac
    (cd tests && "$exe") >"$logs/$name.log" 2>&1 || status=$?
    local seconds=$(($(date +%s) - start))
    if [ "$status" -eq 0 ]; then
        echo "e2e: ok     $name ($seconds s): $(grep -h '^test result' "$logs/$name.log" | tail -1)"
    else
        echo "e2e: FAILED $name ($seconds s, exit $status)"
        touch "$logs/$name.failed"
    fi
}
export -f run_one
export logs

start=$(date +%s)
printf '%s\n' "${ordered[@]}" | xargs -P "$jobs" -L 1 bash -c 'run_one "$0" "$1"'
failed=$(cd "$logs" && ls -- *.failed 2>/dev/null | sed 's/\.failed$//' || true)
echo "e2e: ${#ordered[@]} binaries, $jobs at a time, in $(($(date +%s) - start)) s"
if [ -n "$failed" ]; then
    for name in $failed; do
        echo "===== $name ====="
        cat "$logs/$name.log"
    done
    echo "e2e: failed: $failed" >&2
    exit 1
fi
