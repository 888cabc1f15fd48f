//! A pool of systemd hosts converged by the coordinator (issue #13): a lab (`brickyard-lab up
//! --bare`: PKI, loop disks, network namespaces, spec) whose hosts are then replaced by
//! [`Booted`] roots: each lab host's own agent is stopped (its lab init then ends), and an
//! isolated root with the .debs installed (maintainer scripts and all) is booted with systemd
//! as PID 1 inside that host's network namespace (`--network-namespace-path`), the server's
//! loop disk bound in (`--bind=/dev/loopN`; nspawn's /dev is a tmpfs without udev, so the
//! agent makes the partition's node itself) and /dev/fuse for the client. The packaged unit
//! starts the agent at boot (the key material is there); `apply` from the lab's control
//! namespace must converge with glusterd enabled and started by systemctl.
//!
//! Cleanup by name, also on failure: the containers die with their roots' PID namespaces
//! (their mounts with them), then `brickyard-lab down` removes namespaces, loop devices and
//! files.

use std::process::Output;
use std::time::Instant;

use brickyard_lab::LabName;
use brickyard_proto::DEFAULT_AGENT_PORT;
use brickyard_tests::lab::TestLab;

use super::isolated_root::IsolatedRoot;
use super::systemd_boot::{wait_for, Booted, Network, STATE_TIMEOUT};
use super::{packages, succeeded, write_in, Format, CONFIG, KEY, PKI_DIR};

fn text(out: &Output) -> String {
    format!("stdout:\n{}\nstderr:\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// Whether anything listens on TCP `port` in network namespace `netns`.
fn listening(netns: &str, port: u16) -> bool {
    let out = super::run("ip", &["netns", "exec", netns, "ss", "--no-header", "--listening", "--tcp", "--numeric"]);
    out.contains(&format!(":{port} "))
}

/// A root for lab host `host` of `lab`: the .debs installed as on an image (the postinst
/// enables the agent), glusterd's state reduced to what its package ships, and the lab's
/// key material and address in the packaged agent.toml (`service_manager = "auto"`: the
/// facts then show the agent finding systemd as PID 1).
fn host_root(lab: &TestLab, host: &str, address: &str) -> IsolatedRoot {
    let root = IsolatedRoot::new();
    // This machine's policy-rc.d forbids maintainer scripts to start services (see
    // `packaged_agent_runs_under_systemd_in_a_booted_root`).
    let _ = std::fs::remove_file(root.path("/usr/sbin/policy-rc.d"));
    // The lower layer is this machine's root: a glusterd that ever ran here left its UUID,
    // which every host would then share.
    for entry in std::fs::read_dir(root.path("/var/lib/glusterd")).expect("read /var/lib/glusterd") {
        let entry = entry.expect("dir entry");
        if !["hooks", "groups"].contains(&&*entry.file_name().to_string_lossy()) {
            let path = entry.path();
            let removed = if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
            removed.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
    }
    succeeded(&format!("dpkg -i in {host}'s root"), &Format::Deb.install(&root, &[]));
    let conf = lab.dir().join("hosts").join(host).join("conf");
    let read = |f: &str| std::fs::read_to_string(conf.join(f)).unwrap_or_else(|e| panic!("{host}'s {f}: {e}"));
    write_in(&root, &format!("{PKI_DIR}/ca.pem"), &read("ca.pem"), 0o644);
    write_in(&root, &format!("{PKI_DIR}/agent.pem"), &read("agent.pem"), 0o644);
    write_in(&root, KEY, &read("agent.key"), 0o600);
    let mut config = std::fs::read_to_string(root.path(CONFIG)).expect("read the packaged config");
    for (packaged, ours) in [
        ("listen = \"0.0.0.0:7420\"".to_owned(), format!("listen = \"{address}:{DEFAULT_AGENT_PORT}\"")),
        ("service_manager = \"systemd\"".to_owned(), "service_manager = \"auto\"".to_owned()),
    ] {
        assert!(config.contains(&packaged), "the packaged agent.toml no longer says {packaged}");
        config = config.replace(&packaged, &ours);
    }
    write_in(&root, CONFIG, &config, 0o644);
    root
}

/// Two servers (replica 2 over their loop disks) and a client, each booted with systemd.
#[test]
fn coordinator_converges_a_pool_of_systemd_hosts() {
    let packages_ready = Instant::now();
    packages();
    let started = Instant::now();
    eprintln!("packages ready in {:.1?}", packages_ready.elapsed());
    let lab = TestLab::up("sdpool", 2, 1);
    let lab_name = LabName::new(lab.name()).expect("lab name");
    let spec = lab.spec();
    let spec_path = lab.spec_path();
    let spec_arg = spec_path.to_str().expect("utf-8 path");
    let logs = tempfile::tempdir().expect("tempdir");

    let mut hosts: Vec<(String, String, Option<String>)> = Vec::new();
    for server in &spec.servers {
        let disk = server.disk.as_ref().and_then(|d| d.device.clone()).expect("lab servers have a disk device");
        hosts.push((server.name.clone(), server.address.clone(), Some(disk)));
    }
    for client in &spec.clients {
        hosts.push((client.name.clone(), client.address.clone(), None));
    }

    let mut booted = Vec::new();
    for (host, address, disk) in &hosts {
        let netns = lab_name.host_netns(host);
        // Asked to stop (from outside its PID namespace), the lab host's init ends it all.
        super::run("kill", &["-TERM", &lab.init_pid(host).to_string()]);
        wait_for(&format!("{host}'s lab agent to free port {DEFAULT_AGENT_PORT}"), STATE_TIMEOUT, || {
            if listening(&netns, DEFAULT_AGENT_PORT) {
                Err("still listening".into())
            } else {
                Ok(())
            }
        });
        let root = host_root(&lab, host, address);
        // nspawn runs in the root's holder, whose /run is its own: reach the real /run/netns
        // through this process's root.
        let netns_path = format!("/proc/{}/root/run/netns/{netns}", std::process::id());
        // CAP_NET_ADMIN for the firewall task: nspawn keeps it with --private-network only, and
        // this namespace is the host's own as well.
        let mut nspawn_args = vec![
            format!("--network-namespace-path={netns_path}"),
            "--capability=CAP_NET_ADMIN".to_owned(),
            format!("--hostname={host}"),
            // Every host mounts the volume (servers too, for `verify`).
            "--bind=/dev/fuse".to_owned(),
        ];
        nspawn_args.extend(disk.iter().map(|disk| format!("--bind={disk}")));
        let network = Network { nspawn_args, agent_addr: format!("{address}:{DEFAULT_AGENT_PORT}") };
        let host_booted = Booted::boot_with(root, &logs.path().join(format!("{host}.log")), network);
        host_booted.wait_running("0");
        booted.push((host.clone(), host_booted));
    }
    eprintln!("{} systemd hosts up in {:.1?}", booted.len(), started.elapsed());

    let facts = lab.brickyard(&["facts", "--json", "-f", spec_arg]);
    let facts: serde_json::Value =
        serde_json::from_str(&succeeded("brickyard facts", &facts)).expect("facts --json is JSON");
    for answer in facts.as_array().expect("one answer per host") {
        assert_eq!(answer["facts"]["service_manager"], "SERVICE_MANAGER_SYSTEMD", "{answer}");
    }

    let apply = lab.brickyard(&["apply", "-f", spec_arg]);
    assert!(apply.status.success(), "apply:\n{}", text(&apply));
    eprintln!("applied at {:.1?}", started.elapsed());
    for (host, container) in booted.iter().filter(|(h, _)| spec.servers.iter().any(|s| &s.name == h)) {
        for (query, want) in [("is-enabled", "enabled"), ("is-active", "active")] {
            let out = container.exec(&["systemctl", query, "glusterd"]);
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), want, "{host}: systemctl {query} glusterd");
        }
    }

    let verify = lab.brickyard(&["verify", "-f", spec_arg]);
    assert!(verify.status.success(), "verify:\n{}", text(&verify));

    // A file written on the client lands on both bricks, byte for byte.
    let client = &booted.iter().find(|(h, _)| h == &spec.clients[0].name).expect("the client").1;
    let mount = &spec.clients[0].mounts[0].path;
    let file = format!("{mount}/systemd-pool.bin");
    client.exec_ok(&["sh", "-c", "head -c 3000000 /dev/urandom >\"$1\" && sync \"$1\"", "sh", &file]);
    let sum = |c: &Booted, path: &str| c.exec_ok(&["sha256sum", path]).split_whitespace().next().unwrap().to_owned();
    let written = sum(client, &file);
    for (host, container) in booted.iter().filter(|(h, _)| spec.servers.iter().any(|s| &s.name == h)) {
        let bricks = container.exec_ok(&["gluster", "volume", "info", &spec.volumes[0].name]);
        let brick = bricks
            .lines()
            .filter_map(|l| l.split_once(": ").map(|(_, b)| b.trim()))
            .find_map(|b| b.strip_prefix(&format!("{host}:")))
            .unwrap_or_else(|| panic!("{host} has no brick in:\n{bricks}"))
            .to_owned();
        let on_brick = sum(container, &format!("{brick}/systemd-pool.bin"));
        assert_eq!(on_brick, written, "{host}'s brick {brick} holds other bytes than the client wrote");
    }

    // Converged: a second apply changes nothing.
    let again = lab.brickyard(&["apply", "--json", "-f", spec_arg]);
    assert!(again.status.success(), "second apply:\n{}", text(&again));
    let done: Vec<serde_json::Value> = String::from_utf8_lossy(&again.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON event: {l:?}: {e}")))
        .filter(|e: &serde_json::Value| e["event"] == "task_done")
        .collect();
    assert!(done.len() > 20, "the second apply ran only {} tasks:\n{}", done.len(), text(&again));
    let changed: Vec<&serde_json::Value> = done.iter().filter(|e| e["status"] != "unchanged").collect();
    assert!(changed.is_empty(), "the second apply changed: {changed:#?}");
    eprintln!("second apply: {} tasks, all unchanged", done.len());
    eprintln!("systemd pool test took {:.1?}", started.elapsed());
}
