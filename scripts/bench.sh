#!/usr/bin/env bash
# Brickyard against the seed's commands run by hand, on fresh labs of this machine (#15's budgets).
#
#   bash scripts/bench.sh [--rounds N] [--no-100] [--quick]
#
# Each round builds two fresh 2+2 labs (2 servers with a loop disk, replica 2, 2 clients), in
# alternating order: on one the seed's commands run by hand (`brickyard-lab exec`, per-host work
# in parallel, phases in sequence, as a careful operator would script it); on the other
# `brickyard apply`, then on the converged pool a re-apply, `plan`, `status` and `verify`. Then
# one 100-host lab (2 servers + 98 clients) gets the same commands plus `facts`. Agent size: the
# binary, and VmRSS/VmHWM of the agents (idle on a fresh host, peak after the work).
# Prints medians and the cold-apply ratio against by hand, and exits 1 when a budget is missed.
# --quick: one round, no 100-host lab, budgets shown but not enforced (CI runs it so this script
# cannot rot). Needs root and built binaries: BRICKYARD_BIN (default target/release/brickyard),
# with brickyard-lab and brickyard-agent next to it. Touches only the labs it makes (bench-*),
# removed at exit, also on failure.
set -euo pipefail

rounds=3 big=1 quick=0
while [ $# -gt 0 ]; do
    case $1 in
        --rounds) rounds=$2; shift 2 ;;
        --no-100) big=0; shift ;;
        --quick) quick=1 rounds=1 big=0; shift ;;
        *) echo "bench: unknown argument $1 (see the header of $0)" >&2; exit 2 ;;
    esac
done
case $rounds in '' | *[!0-9]* | 0) echo "bench: --rounds needs a positive number, got '$rounds'" >&2; exit 2 ;; esac

root=$(cd "$(dirname "$0")/.." && pwd)
bin=${BRICKYARD_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/brickyard}
lab_bin=$(dirname "$bin")/brickyard-lab
agent_bin=$(dirname "$bin")/brickyard-agent
for b in "$bin" "$lab_bin" "$agent_bin"; do
    [ -x "$b" ] || { echo "bench: $b missing: cargo build --release --bins first (or set BRICKYARD_BIN)" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "bench: must run as root (namespaces, loop devices)" >&2; exit 1; }
dir=$(mktemp -d /tmp/brickyard-bench.XXXXXX)
labs=()

cleanup() {
    status=$?
    for l in "${labs[@]}"; do "$lab_bin" down --name "$l" >/dev/null 2>&1 || true; done
    [ "$status" -eq 0 ] || [ "$status" -eq 1 ] || echo "bench: failed ($status); logs were in $dir" >&2
    rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now() { date +%s.%N; }
# timed FILE CMD...: runs CMD (output to $dir/log), appends its wall time in seconds to FILE.
# Exit 1 of `status` (degraded, e.g. a heal still running right after apply) is an answer too.
timed() {
    local file=$1 t0 t1 code=0
    shift
    t0=$(now)
    "$@" >>"$dir/log" 2>&1 || code=$?
    if [ "$code" -ne 0 ] && ! { [ "$code" -eq 1 ] && [ "$3" = status ]; }; then
        echo "bench: failed ($code): $*" >&2; tail -30 "$dir/log" >&2; exit 3
    fi
    t1=$(now)
    echo "$t1 - $t0" | bc >>"$dir/$file"
}
median() { sort -n "$dir/$1" | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

up() { # up LAB SERVERS CLIENTS: a fresh bare lab (raw disks, agents running, nothing applied)
    labs+=("$1")
    "$lab_bin" up --bare --name "$1" --servers "$2" --clients "$3" --dir "$dir/$1" --agent-bin "$agent_bin" >>"$dir/log" 2>&1 \
        || { echo "bench: lab up $1 failed" >&2; tail -30 "$dir/log" >&2; exit 3; }
}
down() { "$lab_bin" down --name "$1" >>"$dir/log" 2>&1; }
by() { local lab=$1; shift; "$lab_bin" run --name "$lab" -- "$@" -f "$dir/$lab/cluster.toml"; }

# agent_kib LAB HOST FIELD: VmRSS or VmHWM (KiB) of the host's agent.
agent_kib() {
    "$lab_bin" exec --name "$1" "$2" -- sh -c "awk '/^$3:/ { print \$2 }' /proc/\$(cat /run/brickyard-lab/agent.pid)/status"
}
record_agent_memory() { # record_agent_memory LAB FIELD FILE: the largest value over the lab's 4 hosts
    local max=0 v h
    for h in gluServer1 gluServer2 client1 client2; do
        v=$(agent_kib "$1" "$h" "$2")
        [ "$v" -gt "$max" ] && max=$v
    done
    echo "$max" >>"$dir/$3"
}

brickyard_round() {
    local lab=bench-by$1
    up "$lab" 2 2
    record_agent_memory "$lab" VmRSS idle_kib
    timed cold by "$lab" apply
    timed reapply by "$lab" apply
    timed plan by "$lab" plan --detailed-exitcode
    timed status by "$lab" status
    timed verify by "$lab" verify
    record_agent_memory "$lab" VmHWM peak_kib
    down "$lab"
}

# --- the seed's commands by hand on a 2+2 lab -------------------------------------------------
field() { # field SPEC HOST KEY: a value of [[server]]/[[client]] HOST in a lab's spec
    awk -v host="$2" -v key="$3" '
        /^name = / { gsub(/"/, "", $3); cur = $3 }
        cur == host && $1 == key { gsub(/[",}]/, "", $3); print $3; exit }
        cur == host && key == "device" && /disk = / { for (i = 1; i <= NF; i++) if ($i == "device") { gsub(/[",]/, "", $(i+2)); print $(i+2); exit } }
    ' "$1"
}
byhand_round() {
    local lab=bench-hand$1 spec s1=gluServer1 s2=gluServer2 hosts
    up "$lab" 2 2
    spec=$dir/$lab/cluster.toml
    hosts=$(for h in $s1 $s2 client1 client2; do echo "$(field "$spec" $h address) $h"; done)
    x() { local h=$1; shift; "$lab_bin" exec --name "$lab" "$h" -- sh -euc "$*" >>"$dir/log" 2>&1; }
    server_setup() {
        local dev part
        dev=$(field "$spec" "$1" device)
        part=$(case "$dev" in *[0-9]) echo "${dev}p1" ;; *) echo "${dev}1" ;; esac)
        x "$1" "
            printf '%s\n' '$hosts' >>/etc/hosts
            iptables -A INPUT -p tcp --dport 24007:24008 -j ACCEPT
            iptables -A INPUT -p tcp --dport 49152:60999 -j ACCEPT
            parted -s $dev mklabel gpt mkpart primary xfs 0% 100%
            while [ ! -b $part ]; do sleep 0.01; done
            mkfs.xfs -q -i size=512 $part
            mkdir -p /vdisk && mount -o inode64,noatime $part /vdisk
            echo \"UUID=\$(blkid -s UUID -o value $part) /vdisk xfs inode64,noatime,nofail 0 0\" >>/etc/fstab
            mkdir -p /vdisk/brick1
            glusterd -p /run/glusterd.pid
            until gluster --mode=script pool list >/dev/null 2>&1; do sleep 0.05; done"
    }
    client_setup() {
        x "$1" "
            printf '%s\n' '$hosts' >>/etc/hosts
            test -c /dev/fuse
            mkdir -p /dataShare
            mount -t glusterfs -o backup-volfile-servers=$s2 $s1:/gluV1 /dataShare
            echo '$s1:/gluV1 /dataShare glusterfs defaults,_netdev,backup-volfile-servers=$s2 0 0' >>/etc/fstab"
    }
    local t0 t1
    t0=$(now)
    server_setup $s1 & local p1=$!
    server_setup $s2 & local p2=$!
    wait $p1 && wait $p2
    x $s1 "gluster --mode=script peer probe $s2
        until gluster --mode=script peer status | grep -q 'Peer in Cluster (Connected)'; do sleep 0.05; done"
    x $s2 "gluster --mode=script peer probe $s1"
    x $s1 "gluster --mode=script volume create gluV1 replica 2 $s1:/vdisk/brick1 $s2:/vdisk/brick1
        gluster --mode=script volume start gluV1
        gluster --mode=script volume set gluV1 performance.cache-size 512MB"
    client_setup client1 & p1=$!
    client_setup client2 & p2=$!
    wait $p1 && wait $p2
    t1=$(now)
    echo "$t1 - $t0" | bc >>"$dir/byhand"
    down "$lab"
}

big_round() {
    local lab=bench-100
    up "$lab" 2 98
    timed big_cold by "$lab" apply
    timed big_reapply by "$lab" apply
    timed big_plan by "$lab" plan --detailed-exitcode
    timed big_status by "$lab" status
    timed big_verify by "$lab" verify
    timed big_facts by "$lab" facts
    down "$lab"
}

for r in $(seq 1 "$rounds"); do
    echo "bench: round $r of $rounds" >&2
    if [ $((r % 2)) -eq 1 ]; then byhand_round "$r"; brickyard_round "$r"; else brickyard_round "$r"; byhand_round "$r"; fi
done
[ "$big" -eq 1 ] && { echo "bench: 100 hosts (2 servers + 98 clients)" >&2; big_round; }

# --- table ------------------------------------------------------------------------------------
missed=0
# row WHAT VALUE UNIT BUDGET: a table line; VALUE above BUDGET is a miss (BUDGET '-': none).
row() {
    local verdict=
    if [ "$4" != - ]; then
        if [ "$(echo "$2 <= $4" | bc)" = 1 ]; then verdict=ok; else verdict=MISSED missed=1; fi
    fi
    printf '| %-44s | %9.2f %-5s | %8s | %-6s |\n' "$1" "$2" "$3" "$4" "$verdict"
}
byhand=$(median byhand) cold=$(median cold)
build=$(case $bin in */release/*) echo release ;; *) echo "debug (budgets are for release)" ;; esac)
printf '\nBrickyard vs the seed by hand, %s build, %s round(s), medians (%s, %s cores)\n\n' "$build" "$rounds" "$(date -u +%F)" "$(nproc)"
printf '| %-44s | %15s | %8s | %-6s |\n' what measured budget ""
printf '|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..46})" "$(printf -- '-%.0s' {1..17})" "$(printf -- '-%.0s' {1..10})" "--------"
row "by hand, 2+2 (the seed's commands)" "$byhand" s -
row "cold apply, 2+2" "$cold" s -
row "cold apply / by hand" "$(echo "scale=2; $cold / $byhand" | bc)" x 0.90
row "re-apply, converged 2+2" "$(median reapply)" s 0.20
row "plan, converged 2+2" "$(median plan)" s -
row "status, 2+2" "$(median status)" s 0.40
row "verify, 2+2" "$(median verify)" s 0.40
if [ "$big" -eq 1 ]; then
    row "cold apply, 100 hosts" "$(median big_cold)" s 8.0
    row "re-apply, 100 hosts" "$(median big_reapply)" s 1.0
    row "plan, 100 hosts" "$(median big_plan)" s 1.0
    row "status, 100 hosts" "$(median big_status)" s 1.5
    row "verify, 100 hosts" "$(median big_verify)" s 2.0
    row "facts, 100 hosts" "$(median big_facts)" s -
fi
row "agent binary" "$(echo "scale=1; $(stat -c %s "$agent_bin") / 1048576" | bc)" MiB 15
row "agent RSS idle (largest of 4 hosts)" "$(echo "scale=1; $(median idle_kib) / 1024" | bc)" MiB 8
row "agent RSS peak after apply+verify (VmHWM)" "$(echo "scale=1; $(sort -n "$dir/peak_kib" | tail -1) / 1024" | bc)" MiB 8
if [ "$quick" -eq 1 ]; then
    echo
    echo "quick mode: one round, budgets shown but not enforced"
    exit 0
fi
exit "$missed"
