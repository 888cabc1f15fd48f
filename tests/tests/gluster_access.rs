//! Who may mount a volume, for real (lab: 1 server, 3 clients; `brickyard apply` from the
//! control namespace). client1 is in the spec and mounts gluV1; client2 is in the spec but
//! mounts nothing, so the firewall admits it and only gluV1's `auth.allow` stands in its way;
//! client3 is left out of the spec (the intruder): it cannot reach glusterd, the brick port or
//! the agent, and cannot mount. A file written by the member is unchanged (checksum) after the
//! refused attempts. Root.

use std::process::Output;

use brickyard_tests::lab::{assert_success, TestLab};

const MOUNT: &str = "/dataShare";
const PROBE_MOUNT: &str = "/mnt/gacc";
/// Seconds an intruder's connection attempt may take before it counts as blocked.
const CONNECT_TIMEOUT: &str = "3";

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The lab's spec with client2 mounting nothing and client3 gone.
fn spec_without_intruder(text: &str) -> String {
    let (head, _) = text.split_once("\n[[client]]\nname = \"client2\"").expect("the lab spec lists client2");
    let client2 = text.split("\n[[client]]\n").find(|c| c.starts_with("name = \"client2\"")).unwrap();
    let client2 = client2.lines().filter(|l| !l.starts_with("mounts")).collect::<Vec<_>>().join("\n");
    format!("{head}\n[[client]]\n{client2}\nmounts = []\n")
}

/// Whether `host` opens a TCP connection to `address:port` within CONNECT_TIMEOUT.
fn reaches(lab: &TestLab, host: &str, address: &str, port: u16) -> bool {
    let connect = "exec 3<>/dev/tcp/$0/$1";
    lab.exec(host, &["timeout", CONNECT_TIMEOUT, "bash", "-c", connect, address, &port.to_string()]).status.success()
}

/// Tries `mount -t glusterfs SERVER:/gluV1` on `host`; returns (succeeded, the client log).
fn try_mount(lab: &TestLab, host: &str, server: &str) -> (bool, String) {
    assert_success("mkdir", &lab.exec(host, &["mkdir", "-p", PROBE_MOUNT]));
    let log = format!("/var/log/glusterfs/{host}-probe.log");
    let source = format!("{server}:/gluV1");
    let options = format!("log-file={log}");
    let out = lab.exec(host, &["mount", "-t", "glusterfs", "-o", &options, &source, PROBE_MOUNT]);
    let mounted = lab.exec(host, &["mountpoint", "-q", PROBE_MOUNT]).status.success();
    if mounted {
        lab.exec(host, &["umount", PROBE_MOUNT]);
    }
    let log_text = stdout(&lab.exec(host, &["cat", &log]));
    (out.status.success() && mounted, log_text)
}

#[test]
fn only_the_volumes_clients_mount_it() {
    let lab = TestLab::up("gacc", 1, 3);
    let text = std::fs::read_to_string(lab.spec_path()).unwrap();
    std::fs::write(lab.spec_path(), spec_without_intruder(&text)).unwrap();
    let spec = lab.spec();
    assert_eq!(spec.clients.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["client1", "client2"]);
    let server = &spec.servers[0];

    let apply = lab.brickyard(&["apply", "-f", &lab.spec_path().to_string_lossy()]);
    assert_success("brickyard apply", &apply);
    let info = stdout(&lab.exec(&server.name, &["gluster", "volume", "get", "gluV1", "auth.allow"]));
    let client1 = spec.clients[0].address.as_str();
    assert!(info.contains(&format!("{},{client1}", server.address)), "auth.allow of gluV1: {info}");

    // The member writes; its checksum must survive the refused attempts below.
    let write = format!("head -c 1048576 /dev/urandom > {MOUNT}/data && sha256sum {MOUNT}/data");
    let before = stdout(&lab.exec("client1", &["bash", "-c", &write]));
    assert!(before.ends_with("/data"), "sha256sum on client1: {before}");

    // client2: the firewall admits it (it is in the spec), gluV1's auth.allow does not.
    assert!(reaches(&lab, "client2", &server.address, 24007), "client2 is a pool member and reaches glusterd");
    let (mounted, log) = try_mount(&lab, "client2", &server.address);
    assert!(!mounted, "client2 mounted gluV1 although auth.allow leaves it out");
    assert!(log.contains("Authentication failed"), "client2's mount log names no authentication failure:\n{log}");

    // client3, the intruder: blocked by the firewall before gluster sees it.
    for port in [24007, 49152, 7420] {
        assert!(!reaches(&lab, "client3", &server.address, port), "the intruder reaches {}:{port}", server.address);
    }
    let (mounted, _) = try_mount(&lab, "client3", &server.address);
    assert!(!mounted, "the intruder mounted gluV1");

    let after = stdout(&lab.exec("client1", &["sha256sum", &format!("{MOUNT}/data")]));
    assert_eq!(before, after, "client1's file changed");
}
