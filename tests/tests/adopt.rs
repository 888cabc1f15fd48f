//! `brickyard adopt` on a pool built by hand (issue #12): in a lab of 4 servers and 1 client,
//! the seed's own commands (no Brickyard) build gluV1 on the first two servers — /etc/hosts
//! lines, iptables rules, `parted` msdos + `mkfs.ext4` + `mount` + an fstab line, `glusterd`,
//! `peer probe`, `volume create replica 2` + `start` + `set performance.cache-size 512MB`, a
//! client `mount -t glusterfs` + fstab line — and 200 files with checksums. Adopt writes a spec
//! and changes nothing on any host (every host's fstab, hosts, firewall rules, mounts and
//! gluster's view compared before and after); `plan --detailed-exitcode` on it exits 0 and
//! `status` finds the pool healthy; a pool it cannot describe (a peer left out) is refused and
//! nothing is written. Then Brickyard grows the adopted pool: two more servers in the spec →
//! `apply` → 2 x 2, every file intact. Root; real glusterd, loop disks.

use std::process::Output;

use brickyard::spec::Spec;
use brickyard_tests::lab::{assert_success, TestLab};

const FILES: &str = "for i in $(seq 1 200); do head -c 4096 /dev/urandom > /dataShare/f$i || exit 1; done";
const CHECKSUMS: &str = "cd /dataShare && sha256sum f* | sort";
/// A poll with a deadline, in the seed's shell: `until COND` for at most 60 s.
const UNTIL: &str = "deadline=$(($(date +%s) + 60)); until";
const OR_GIVE_UP: &str =
    "do [ $(date +%s) -lt $deadline ] || { echo \"gave up waiting\" >&2; exit 1; }; sleep 0.1; done";
/// What adopt must not change on a host: its fstab, hosts, firewall rules, mounts and (on a
/// server) gluster's pool and volumes.
const STATE: &str = "cat /etc/fstab /etc/hosts; iptables -S; grep -v '^proc ' /proc/self/mounts | sort; \
    if command -v gluster >/dev/null && [ -e /run/glusterd.pid ]; then gluster --mode=script volume info; \
    gluster --mode=script peer status; fi";

fn sh(lab: &TestLab, host: &str, what: &str, script: &str) -> String {
    let out = lab.exec(host, &["sh", "-euc", script]);
    assert_success(&format!("{what} on {host}"), &out);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// The seed's server steps on one host (disk `device`): hosts, firewall, disk, glusterd.
fn server_by_hand(lab: &TestLab, host: &str, device: &str, hosts_lines: &str) {
    let part = format!("{device}p1");
    sh(
        lab,
        host,
        "the seed's server steps",
        &format!(
            "printf '%s\\n' {hosts_lines} >>/etc/hosts
            iptables -A INPUT -m state --state NEW -m tcp -p tcp --dport 24007:24008 -j ACCEPT
            iptables -A INPUT -m state --state NEW -m tcp -p tcp --dport 49152:60999 -j ACCEPT
            parted -s {device} mklabel msdos
            parted -s {device} mkpart primary 0% 100%
            {UNTIL} [ -b {part} ]; {OR_GIVE_UP}
            mkfs.ext4 -q {part}
            mkdir -p /vdisk && mount -t ext4 {part} /vdisk
            echo '{part} /vdisk ext4 defaults 0 0' >>/etc/fstab
            glusterd -p /run/glusterd.pid
            {UNTIL} gluster --mode=script pool list >/dev/null 2>&1; {OR_GIVE_UP}"
        ),
    );
}

#[test]
fn a_pool_built_by_hand_is_adopted_unchanged_then_grown() {
    let lab = TestLab::up("adopt", 4, 1);
    let spec = lab.spec();
    let (s1, s2) = (&spec.servers[0], &spec.servers[1]);
    let client = &spec.clients[0];
    let hosts_lines = format!("'{} {}' '{} {}'", s1.address, s1.name, s2.address, s2.name);
    let device = |s: &brickyard::spec::Server| s.disk.as_ref().and_then(|d| d.device.clone()).expect("lab disk");

    // --- the pool, by hand ---------------------------------------------------------------
    server_by_hand(&lab, &s1.name, &device(s1), &hosts_lines);
    server_by_hand(&lab, &s2.name, &device(s2), &hosts_lines);
    sh(
        &lab,
        &s1.name,
        "peer probe",
        &format!(
            "gluster --mode=script peer probe {s2}
            {UNTIL} gluster --mode=script peer status | grep -q 'Peer in Cluster (Connected)'; {OR_GIVE_UP}",
            s2 = s2.name
        ),
    );
    sh(
        &lab,
        &s1.name,
        "volume create, start, set",
        &format!(
            "gluster --mode=script volume create gluV1 replica 2 {a}:/vdisk/brick1 {b}:/vdisk/brick1
            gluster --mode=script volume start gluV1
            gluster --mode=script volume set gluV1 performance.cache-size 512MB",
            a = s1.name,
            b = s2.name
        ),
    );
    sh(
        &lab,
        &client.name,
        "the seed's client steps",
        &format!(
            "printf '%s\\n' {hosts_lines} >>/etc/hosts
            mkdir -p /dataShare
            mount -t glusterfs -o defaults {a}:/gluV1 /dataShare
            echo '{a}:/gluV1 /dataShare glusterfs defaults,_netdev 0 0' >>/etc/fstab",
            a = s1.name
        ),
    );
    sh(&lab, &client.name, "writing 200 files", FILES);
    let checksums = sh(&lab, &client.name, "checksums", CHECKSUMS);
    assert_eq!(checksums.lines().count(), 200);

    // --- adopt: a spec, nothing changed --------------------------------------------------
    let adopted_hosts = [&s1.name, &s2.name, &client.name];
    let state = || adopted_hosts.map(|h| sh(&lab, h, "reading the host's state", STATE));
    let before = state();
    // The specs live outside the lab directory (which `down` removes only when it holds no
    // files but the lab's own), with the lab's PKI named explicitly.
    let specs = tempfile::tempdir().expect("a directory for the specs");
    let out_path = specs.path().join("adopted.toml");
    let out = out_path.to_string_lossy().into_owned();
    let pki = lab.dir().join("pki").to_string_lossy().into_owned();
    let server_arg = |s: &brickyard::spec::Server| format!("{}={}", s.name, s.address);
    let client_arg = format!("{}={}", client.name, client.address);

    // A peer left out: refused, naming it; nothing written.
    let partial =
        lab.brickyard(&["adopt", "--server", &server_arg(s1), "--client", &client_arg, "--pki-dir", &pki, "-o", &out]);
    assert!(!partial.status.success(), "adopt without gluServer2 succeeded: {}", text(&partial));
    assert!(
        text(&partial).contains(&format!("server {} has peer {}", s1.name, s2.name))
            && text(&partial).contains("which is not given with --server"),
        "{}",
        text(&partial)
    );
    assert!(!out_path.exists(), "a refused adopt wrote {out}");

    let started = std::time::Instant::now();
    let adopt = lab.brickyard(&[
        "adopt",
        "--server",
        &server_arg(s1),
        "--server",
        &server_arg(s2),
        "--client",
        &client_arg,
        "--name",
        "seed",
        "--pki-dir",
        &pki,
        "-o",
        &out,
    ]);
    assert_success("brickyard adopt", &adopt);
    eprintln!("adopt took {:.2} s", started.elapsed().as_secs_f64());
    assert!(text(&adopt).contains("plan: nothing to do"), "{}", text(&adopt));
    assert_eq!(state(), before, "adopt changed a host");
    let again = lab.brickyard(&["adopt", "--server", &server_arg(s1), "-o", &out]);
    assert!(text(&again).contains("exists; adopt writes a new spec only"), "{}", text(&again));

    let written = std::fs::read_to_string(&out_path).expect("adopted spec");
    assert!(written.starts_with("# Written by `brickyard adopt`"), "{written}");
    let adopted: Spec = brickyard::validate::load(&out_path).expect("the adopted spec loads");
    let disk = adopted.servers[0].disk.as_ref().expect("adopted disk");
    assert_eq!(
        (disk.device.as_deref(), disk.filesystem.as_deref(), disk.mount.as_str(), disk.table.as_deref()),
        (Some(device(s1).as_str()), Some("ext4"), "/vdisk", Some("msdos"))
    );
    let volume = &adopted.volumes[0];
    assert_eq!(
        (volume.name.as_str(), volume.kind.as_str(), volume.replica, volume.brick_dir.as_str()),
        ("gluV1", "replicate", Some(2), "brick1")
    );
    assert_eq!(volume.servers.as_deref(), Some(&[s1.name.clone(), s2.name.clone()][..]));
    assert_eq!(
        volume.options.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
        ["performance.cache-size=512MB"]
    );
    assert_eq!(volume.auth_allow, ["*"]);
    assert_eq!((adopted.pool.firewall, adopted.clients[0].mounts[0].path.as_str()), (false, "/dataShare"));

    let plan = lab.brickyard(&["plan", "--detailed-exitcode", "-f", &out]);
    assert_eq!(plan.status.code(), Some(0), "plan on the adopted spec:\n{}", text(&plan));
    let status = lab.brickyard(&["status", "-f", &out]);
    assert_eq!(status.status.code(), Some(0), "status on the adopted spec:\n{}", text(&status));
    assert_eq!(state(), before, "plan or status changed a host");
    assert_eq!(sh(&lab, &client.name, "checksums after adopt", CHECKSUMS), checksums);

    // --- grow it with Brickyard: two more servers ----------------------------------------
    let (s3, s4) = (&spec.servers[2], &spec.servers[3]);
    let mut grown = written.replace(
        &format!("servers = [\"{}\", \"{}\"]", s1.name, s2.name),
        &format!("servers = [\"{}\", \"{}\", \"{}\", \"{}\"]", s1.name, s2.name, s3.name, s4.name),
    );
    let volume_at = grown.find("\n[[volume]]").expect("a volume in the adopted spec");
    let new_servers: String = [s3, s4]
        .iter()
        .map(|s| {
            format!(
                "\n[[server]]\nname = \"{}\"\naddress = \"{}\"\ndisk = {{ device = \"{}\", filesystem = \"ext4\", mount = \
                 \"/vdisk\", table = \"msdos\" }}\n",
                s.name,
                s.address,
                device(s)
            )
        })
        .collect();
    grown.insert_str(volume_at, &new_servers);
    let grown_path = specs.path().join("grown.toml");
    std::fs::write(&grown_path, &grown).expect("writing the grown spec");
    let grown_file = grown_path.to_string_lossy().into_owned();
    let started = std::time::Instant::now();
    let apply = lab.brickyard(&["apply", "-f", &grown_file]);
    assert_success("apply on the grown spec", &apply);
    eprintln!("apply (grow 2 -> 4 servers) took {:.2} s", started.elapsed().as_secs_f64());
    let info = sh(&lab, &s1.name, "volume info", "gluster --mode=script volume info gluV1");
    assert!(info.contains("Number of Bricks: 2 x 2 = 4"), "{info}");
    for s in [s3, s4] {
        assert!(info.contains(&format!("{}:/vdisk/brick1", s.name)), "{info}");
    }
    assert_eq!(sh(&lab, &client.name, "checksums after the grow", CHECKSUMS), checksums);
    let replan = lab.brickyard(&["plan", "--detailed-exitcode", "-f", &grown_file]);
    assert_eq!(replan.status.code(), Some(0), "plan after the grow:\n{}", text(&replan));
}
