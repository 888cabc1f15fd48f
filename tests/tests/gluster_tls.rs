//! GlusterFS TLS from the pool CA, for real (lab: 2 servers, replica 2, client1 in the spec;
//! `brickyard apply` from the control namespace; TLS is the default). The volume carries
//! client.ssl/server.ssl on and `auth.ssl-allow` = the pool's names; every host has its own
//! Brickyard certificate and key as gluster's (key 0600) and management TLS; a file written on
//! the client has the same sha256 on both bricks; a re-apply changes nothing. client2 is left
//! out of the spec (the intruder) while gluV1's `auth_allow` admits its address, and the test
//! opens the servers' firewall to it: only TLS stands in its way. It cannot mount, neither
//! without any certificate (plain TCP: glusterd logs "wrong version number") nor with the
//! pool CA plus a self-made certificate naming client1 (glusterd logs "certificate verify
//! failed"); both mount logs show glusterd dropping them before any volfile. The member's
//! file is unchanged afterwards. Root.

use std::process::Output;

use brickyard_tests::lab::{assert_success, TestLab};

const MOUNT: &str = "/dataShare";
const PROBE_MOUNT: &str = "/mnt/gtls";
const BRICK: &str = "/vdisk/brick1";
/// Seconds a connection attempt may take.
const CONNECT_TIMEOUT: &str = "3";

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Runs `script` with bash on `host`; asserts it succeeded and returns its stdout.
fn sh(lab: &TestLab, host: &str, script: &str) -> String {
    let out = lab.exec(host, &["bash", "-c", script]);
    assert_success(&format!("{script:?} on {host}"), &out);
    stdout(&out)
}

/// The lab's spec without client2, whose address gluV1's `auth_allow` admits all the same.
fn spec_with_intruder_admitted(text: &str, intruder: &str) -> String {
    let (head, _) = text.split_once("\n[[client]]\nname = \"client2\"").expect("the lab spec lists client2 last");
    let brick_dir = "brick_dir = \"brick1\"\n";
    assert!(head.contains(brick_dir), "the lab spec's volume: {head}");
    head.replace(brick_dir, &format!("{brick_dir}auth_allow = [\"{intruder}\"]\n"))
}

/// Whether `host` opens a TCP connection to `address:port` within CONNECT_TIMEOUT.
fn reaches(lab: &TestLab, host: &str, address: &str, port: u16) -> bool {
    let connect = "exec 3<>/dev/tcp/$0/$1";
    lab.exec(host, &["timeout", CONNECT_TIMEOUT, "bash", "-c", connect, address, &port.to_string()]).status.success()
}

/// Tries `mount -t glusterfs SERVER:/gluV1` on `host`, logging to a new file named by
/// `attempt`; returns (mounted, the mount log).
fn try_mount(lab: &TestLab, host: &str, server: &str, attempt: &str) -> (bool, String) {
    sh(lab, host, &format!("mkdir -p {PROBE_MOUNT}"));
    let log = format!("/var/log/glusterfs/{host}-{attempt}.log");
    let options = format!("log-file={log}");
    let out = lab.exec(host, &["mount", "-t", "glusterfs", "-o", &options, &format!("{server}:/gluV1"), PROBE_MOUNT]);
    let mounted = lab.exec(host, &["mountpoint", "-q", PROBE_MOUNT]).status.success();
    if mounted {
        lab.exec(host, &["umount", PROBE_MOUNT]);
    }
    (out.status.success() && mounted, stdout(&lab.exec(host, &["cat", &log])))
}

/// The mount log says glusterd at `server` dropped the connection before any volfile came.
/// (The client side says no more: "Connection reset by peer" shows only now and then; the
/// reason is in glusterd's log.)
fn assert_no_volfile(log: &str, server: &str, who: &str) {
    assert!(
        log.contains(&format!("disconnected from remote-host: {server}"))
            && log.contains("Exhausted all volfile servers"),
        "{who}'s mount log:\n{log}"
    );
}

/// How many lines of `server`'s glusterd log contain `needle`.
fn glusterd_log_count(lab: &TestLab, server: &str, needle: &str) -> usize {
    let log = lab.exec(server, &["cat", "/var/log/glusterfs/glusterd.log"]);
    String::from_utf8_lossy(&log.stdout).lines().filter(|l| l.contains(needle)).count()
}

#[test]
fn a_tls_pool_serves_its_members_only() {
    let lab = TestLab::up("gtls", 2, 2);
    let intruder = lab.spec().clients.iter().find(|c| c.name == "client2").expect("client2").address.clone();
    let text = std::fs::read_to_string(lab.spec_path()).unwrap();
    std::fs::write(lab.spec_path(), spec_with_intruder_admitted(&text, &intruder)).unwrap();
    let spec = lab.spec();
    assert!(spec.pool.tls, "TLS is the default for a new pool");
    assert_eq!(spec.clients.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["client1"]);
    let spec_path = lab.spec_path().to_string_lossy().into_owned();

    let started = std::time::Instant::now();
    let apply = lab.brickyard(&["apply", "-f", &spec_path]);
    assert_success("brickyard apply", &apply);
    eprintln!("apply with TLS converged in {:.1} s", started.elapsed().as_secs_f64());
    let applied = stdout(&apply);
    for line in
        ["gluster tls: install /etc/ssl/glusterfs.key from /etc/brickyard/agent.key (mode 0600)", "set server.ssl = on"]
    {
        assert!(applied.contains(line), "apply shows no {line:?}:\n{applied}");
    }

    let server = &spec.servers[0];
    let info = sh(&lab, &server.name, "gluster --mode=script volume info gluV1");
    for option in [
        "client.ssl: on".to_owned(),
        "server.ssl: on".to_owned(),
        "ssl.certificate-depth: 1".to_owned(),
        "auth.ssl-allow: gluServer1,gluServer2,client1".to_owned(),
        format!(
            "auth.allow: {},{},{},{intruder}",
            spec.servers[0].address, spec.servers[1].address, spec.clients[0].address
        ),
    ] {
        assert!(info.lines().any(|l| l.trim() == option), "volume info of gluV1 lacks {option:?}:\n{info}");
    }

    // Each host's gluster files are its own agent's key material; the key stays private.
    for host in ["gluServer1", "gluServer2", "client1"] {
        let files = sh(
            &lab,
            host,
            "stat -c '%a %n' /etc/ssl/glusterfs.key /etc/ssl/glusterfs.pem && cat /var/lib/glusterd/secure-access && \
             cmp /etc/ssl/glusterfs.key /etc/brickyard/agent.key && cmp /etc/ssl/glusterfs.pem /etc/brickyard/agent.pem \
             && cmp /etc/ssl/glusterfs.ca /etc/brickyard/ca.pem && echo same",
        );
        assert_eq!(
            files,
            "600 /etc/ssl/glusterfs.key\n644 /etc/ssl/glusterfs.pem\noption transport.socket.ssl-cert-depth 1\nsame",
            "{host}"
        );
    }

    // Data over TLS: the client's file and both bricks' copies have one checksum.
    let written = sh(
        &lab,
        "client1",
        &format!("head -c 1048576 /dev/urandom > {MOUNT}/tls-data && sha256sum < {MOUNT}/tls-data"),
    );
    assert_eq!(written.len(), 64 + 3, "sha256sum on client1: {written}");
    for brick_server in &spec.servers {
        let on_brick = sh(&lab, &brick_server.name, &format!("sha256sum < {BRICK}/tls-data"));
        assert_eq!(on_brick, written, "gluV1's brick on {}", brick_server.name);
    }

    let reapply = lab.brickyard(&["apply", "-f", &spec_path]);
    assert_success("the second brickyard apply", &reapply);
    let summary = stdout(&reapply);
    assert!(summary.contains(" 0 changed,"), "the second apply changed something:\n{summary}");

    // The intruder: its address is in auth.allow and (for this test) the servers' firewalls
    // admit it, so only TLS stands in its way.
    for s in &spec.servers {
        sh(&lab, &s.name, &format!("iptables -I BRICKYARD 1 -s {intruder}/32 -p tcp -j ACCEPT"));
    }
    assert!(reaches(&lab, "client2", &server.address, 24007), "the test's firewall hole for the intruder");

    // Without any certificate: it speaks plain TCP to a glusterd that wants TLS.
    let refused_plain = glusterd_log_count(&lab, &server.name, "SSL routines::wrong version number");
    let (mounted, log) = try_mount(&lab, "client2", &server.address, "plain");
    assert!(!mounted, "the intruder mounted gluV1 without a certificate");
    assert_no_volfile(&log, &server.address, "the plain intruder");
    assert!(
        glusterd_log_count(&lab, &server.name, "SSL routines::wrong version number") > refused_plain,
        "glusterd on {} logged no TLS refusal of the plain connection",
        server.name
    );

    // With TLS on, the pool CA (public) to check the servers by, and a self-made certificate
    // claiming to be client1, which no pool CA signed.
    sh(
        &lab,
        "client2",
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=client1 -days 1 \
         -keyout /etc/ssl/glusterfs.key -out /etc/ssl/glusterfs.pem 2>/dev/null && \
         cp /etc/brickyard/ca.pem /etc/ssl/glusterfs.ca && mkdir -p /var/lib/glusterd && \
         touch /var/lib/glusterd/secure-access && \
         for f in pem key ca; do ln -sf /etc/ssl/glusterfs.$f /usr/lib/ssl/glusterfs.$f; done",
    );
    let refused_cert = glusterd_log_count(&lab, &server.name, "SSL routines::certificate verify failed");
    let (mounted, log) = try_mount(&lab, "client2", &server.address, "self-signed");
    assert!(!mounted, "the intruder mounted gluV1 with a self-made certificate");
    assert_no_volfile(&log, &server.address, "the self-signed intruder");
    assert!(
        glusterd_log_count(&lab, &server.name, "SSL routines::certificate verify failed") > refused_cert,
        "glusterd on {} logged no refusal of the self-made certificate",
        server.name
    );

    let after = sh(&lab, "client1", &format!("sha256sum < {MOUNT}/tls-data"));
    assert_eq!(after, written, "client1's file changed");
}

/// The lab's spec with `line` added under [pool].
fn with_pool_line(text: &str, line: &str) -> String {
    let pki = "pki_dir = \"pki\"\n";
    assert!(text.contains(pki), "the lab spec's [pool]: {text}");
    text.replacen(pki, &format!("{pki}{line}\n"), 1)
}

#[test]
fn tls_is_turned_on_for_a_running_pool_only_when_the_spec_says_so() {
    let lab = TestLab::up("gtlson", 2, 1);
    let lab_spec = std::fs::read_to_string(lab.spec_path()).unwrap();
    let spec_path = lab.spec_path().to_string_lossy().into_owned();
    std::fs::write(lab.spec_path(), with_pool_line(&lab_spec, "tls = false")).unwrap();
    assert_success("brickyard apply without TLS", &lab.brickyard(&["apply", "-f", &spec_path]));
    let server = lab.spec().servers[0].name.clone();
    let info = sh(&lab, &server, "gluster --mode=script volume info gluV1");
    assert!(!info.contains("server.ssl"), "tls = false set TLS options:\n{info}");
    let written = sh(
        &lab,
        "client1",
        &format!("head -c 1048576 /dev/urandom > {MOUNT}/before-tls && sha256sum < {MOUNT}/before-tls"),
    );

    // The default (TLS) on this pool: plan refuses on the servers and for the volume, naming
    // what to set, and changes nothing.
    std::fs::write(lab.spec_path(), &lab_spec).unwrap();
    let plan = lab.brickyard(&["plan", "-f", &spec_path]);
    let shown = format!("{}{}", stdout(&plan), String::from_utf8_lossy(&plan.stderr));
    assert_eq!(plan.status.code(), Some(1), "plan must refuse:\n{shown}");
    for needle in [
        "glusterd runs without management TLS",
        "volume gluV1 is started without TLS (server.ssl is",
        "`tls_restart = true` under [pool]",
    ] {
        assert!(shown.contains(needle), "plan does not say {needle:?}:\n{shown}");
    }
    assert!(!sh(&lab, &server, "gluster --mode=script volume info gluV1").contains("server.ssl"));

    // With the operator's word: glusterd restarted, the volume stopped and started with TLS,
    // the client remounted; the data is intact and a re-apply changes nothing.
    std::fs::write(lab.spec_path(), with_pool_line(&lab_spec, "tls_restart = true")).unwrap();
    let plan = stdout(&lab.brickyard(&["plan", "-f", &spec_path]));
    assert!(plan.contains("stop volume gluV1 so that its bricks start again with TLS"), "{plan}");
    let started = std::time::Instant::now();
    let apply = lab.brickyard(&["apply", "-f", &spec_path]);
    assert_success("brickyard apply turning TLS on", &apply);
    eprintln!("turning TLS on took {:.1} s:\n{}", started.elapsed().as_secs_f64(), stdout(&apply));
    let info = sh(&lab, &server, "gluster --mode=script volume info gluV1");
    assert!(info.contains("server.ssl: on") && info.contains("client.ssl: on"), "{info}");
    assert_eq!(sh(&lab, "client1", &format!("sha256sum < {MOUNT}/before-tls")), written, "the file after TLS");
    let mount_log = sh(&lab, "client1", "cat /var/log/glusterfs/dataShare.log");
    assert!(mount_log.contains("SSL support for MGMT is ENABLED IO path is ENABLED"), "client1's mount log");
    let reapply = lab.brickyard(&["apply", "-f", &spec_path]);
    assert_success("the second brickyard apply", &reapply);
    assert!(stdout(&reapply).contains(" 0 changed,"), "the second apply changed something:\n{}", stdout(&reapply));
}
