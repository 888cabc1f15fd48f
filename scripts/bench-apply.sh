#!/bin/sh
# Measures `brickyard apply` on the seed's 2+2 lab (2 servers, replica 2, 2 clients):
#   1. cold apply on a fresh lab, wall time;
#   2. re-apply on the converged lab (target < 1 s), best and median of 5;
#   3. the same work done "by hand" on a second fresh lab: the seed's commands run with
#      `brickyard-lab exec`, per-host work in parallel, phases in sequence; the coordinator's
#      overhead is (cold apply - by hand) / by hand (target < 10%).
# Needs root and the built binaries (default target/debug; BRICKYARD_BIN=path/to/brickyard, with
# brickyard-lab and brickyard-agent next to it).
# Touches only the two labs it makes (removed at exit, also on failure).
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
bin=${BRICKYARD_BIN:-${CARGO_TARGET_DIR:-$root/target}/debug/brickyard}
lab_bin=$(dirname "$bin")/brickyard-lab
for b in "$bin" "$lab_bin"; do
    [ -x "$b" ] || { echo "bench-apply: $b missing: cargo build --bins first" >&2; exit 1; }
done
lab=benchapply
hand=benchhand
dir=$(mktemp -d /tmp/bench-apply.XXXXXX)

cleanup() {
    status=$?
    [ "$status" -eq 0 ] || { echo "bench-apply failed ($status); by-hand log:" >&2; cat "$dir/hand.log" >&2 2>/dev/null; }
    "$lab_bin" down --name "$lab" >/dev/null 2>&1 || true
    "$lab_bin" down --name "$hand" >/dev/null 2>&1 || true
    rm -rf "$dir"
}
trap cleanup EXIT INT TERM

now() { date +%s.%N; }
elapsed() { echo "$2 - $1" | bc; }

# --- coordinator ------------------------------------------------------------------------------
"$lab_bin" up --bare --name "$lab" --servers 2 --clients 2 --dir "$dir/$lab" >/dev/null
spec="$dir/$lab/cluster.toml"
t0=$(now)
"$lab_bin" run --name "$lab" -- apply -f "$spec" >"$dir/cold.log"
t1=$(now)
cold=$(elapsed "$t0" "$t1")

: >"$dir/re.txt"
for _ in 1 2 3 4 5; do
    t0=$(now)
    "$lab_bin" run --name "$lab" -- apply -f "$spec" >/dev/null
    t1=$(now)
    elapsed "$t0" "$t1" >>"$dir/re.txt"
done
re_best=$(sort -n "$dir/re.txt" | head -1)
re_median=$(sort -n "$dir/re.txt" | sed -n 3p)

# --- by hand ----------------------------------------------------------------------------------
"$lab_bin" up --bare --name "$hand" --servers 2 --clients 2 --dir "$dir/$hand" >/dev/null
hspec="$dir/$hand/cluster.toml"
field() { # field HOST KEY: a value of [[server]]/[[client]] HOST in the lab's spec
    awk -v host="$1" -v key="$2" '
        /^name = / { gsub(/"/, "", $3); cur = $3 }
        cur == host && $1 == key { gsub(/[",}]/, "", $3); print $3; exit }
        cur == host && key == "device" && /disk = / { for (i = 1; i <= NF; i++) if ($i == "device") { gsub(/[",]/, "", $(i+2)); print $(i+2); exit } }
    ' "$hspec"
}
s1=gluServer1 s2=gluServer2 c1=client1 c2=client2
a_s1=$(field $s1 address) a_s2=$(field $s2 address) a_c1=$(field $c1 address) a_c2=$(field $c2 address)
hosts="$a_s1 $s1
$a_s2 $s2
$a_c1 $c1
$a_c2 $c2"
x() { h=$1; shift; "$lab_bin" exec --name "$hand" "$h" -- sh -euc "$*" >>"$dir/hand.log" 2>&1; }

server_setup() { # the seed's server steps on one host
    dev=$(field "$1" device)
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

t0=$(now)
server_setup $s1 & p1=$!
server_setup $s2 & p2=$!
wait $p1 && wait $p2
x $s1 "gluster --mode=script peer probe $s2
    until gluster --mode=script peer status | grep -q 'Peer in Cluster (Connected)'; do sleep 0.05; done"
x $s2 "gluster --mode=script peer probe $s1"
x $s1 "gluster --mode=script volume create gluV1 replica 2 $s1:/vdisk/brick1 $s2:/vdisk/brick1
    gluster --mode=script volume start gluV1"
client_setup $c1 & p1=$!
client_setup $c2 & p2=$!
wait $p1 && wait $p2
t1=$(now)
byhand=$(elapsed "$t0" "$t1")

overhead=$(echo "scale=1; ($cold - $byhand) * 100 / $byhand" | bc)
printf 'cold apply (2+2, replica 2): %6.2f s\n' "$cold"
printf 'by hand, parallel per host:  %6.2f s\n' "$byhand"
printf 'coordinator overhead:        %6s %%\n' "$overhead"
printf 're-apply, converged:         %6.2f s best, %.2f s median of 5\n' "$re_best" "$re_median"
