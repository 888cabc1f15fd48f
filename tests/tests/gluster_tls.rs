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

/// The serial (hex) of the certificate `address:port` presents to `host` in a TLS handshake,
/// `host` authenticating with its own gluster certificate.
fn served_serial(lab: &TestLab, host: &str, address: &str, port: &str) -> String {
    let handshake = format!(
        "echo | timeout {CONNECT_TIMEOUT} openssl s_client -connect {address}:{port} -cert /etc/ssl/glusterfs.pem \
         -key /etc/ssl/glusterfs.key -CAfile /etc/ssl/glusterfs.ca 2>/dev/null | openssl x509 -noout -serial"
    );
    let serial = sh(lab, host, &handshake);
    serial.strip_prefix("serial=").unwrap_or_else(|| panic!("{address}:{port} to {host}: {serial:?}")).to_owned()
}

/// `server`'s brick of gluV1: (TCP port, pid), from `volume status`.
fn brick_port_and_pid(lab: &TestLab, server: &str) -> (String, String) {
    let line = sh(
        lab,
        server,
        &format!("gluster --mode=script volume status gluV1 | awk '$2 == \"{server}:{BRICK}\" {{print $3, $6}}'"),
    );
    let (port, pid) = line.split_once(' ').unwrap_or_else(|| panic!("no brick of {server} in volume status: {line:?}"));
    (port.to_owned(), pid.to_owned())
}

/// The serial of host `name`'s certificate in the pool PKI.
fn pki_serial(lab: &TestLab, name: &str) -> String {
    let cert = lab.spec().pki_dir().join(format!("hosts/{name}.pem"));
    brickyard::pki::revoke::hex(&brickyard::pki::revoke::serial_of(&cert).unwrap())
}

/// Writes 64 KiB files on client1's mount until /root/stop-writer exists (at most 4000), each
/// read back and checked at once; every checksum goes to /root/manifest. Fails at the first
/// write or read that fails or differs, naming it.
const WRITER: &str = "set -u; mkdir -p /dataShare/rot; : > /root/manifest; i=0
while [ ! -e /root/stop-writer ] && [ $i -lt 4000 ]; do
  i=$((i+1)); head -c 65536 /dev/urandom > /root/chunk; sum=$(sha256sum < /root/chunk)
  cp /root/chunk /dataShare/rot/f$i || { echo \"write of f$i failed\"; exit 1; }
  back=$(sha256sum < /dataShare/rot/f$i) || { echo \"read of f$i failed\"; exit 1; }
  [ \"$back\" = \"$sum\" ] || { echo \"f$i read back differs\"; exit 1; }
  echo \"$sum f$i\" >> /root/manifest; sleep 0.05
done
echo \"wrote $i files\"";

/// `pki rotate` on a converged TLS pool (2 servers, replica 2, client1 and client2) while
/// client1 writes and reads back without pause: gluster's TLS files are refreshed on every
/// host and the servers restarted one at a time, each waited for until the pool is healthy;
/// afterwards every brick port and glusterd present the NEW certificate, glusterd and the
/// brick processes are new processes, and every file client1 wrote reads back with its
/// checksum. Then client2's certificate is revoked and `pki push-crl` installs the CRL for
/// gluster and restarts the servers again: client2's mount loses the volume, a new mount is
/// refused ("first lookup on root failed"), a brick refuses its certificate in the handshake
/// ("certificate revoked"), and client1 goes on writing and reading.
#[test]
fn rotation_restarts_gluster_server_by_server_and_a_revoked_client_is_refused() {
    let lab = TestLab::up("grot", 2, 2);
    let spec = lab.spec();
    let spec_path = lab.spec_path().to_string_lossy().into_owned();
    let pki_dir = spec.pki_dir().to_string_lossy().into_owned();
    let apply = lab.brickyard(&["apply", "-f", &spec_path]);
    assert_success("brickyard apply", &apply);
    let servers: Vec<(String, String)> = spec.servers.iter().map(|s| (s.name.clone(), s.address.clone())).collect();

    // The pool CRL (`pki init` wrote an empty one) is where ssl.crl-path points, on every host.
    let info = sh(&lab, &servers[0].0, "gluster --mode=script volume info gluV1");
    assert!(info.lines().any(|l| l.trim() == "ssl.crl-path: /etc/ssl/glusterfs-crl"), "{info}");
    for host in spec.hosts() {
        let crl = sh(&lab, &host.name, "cd /etc/ssl/glusterfs-crl && ls && openssl crl -hash -noout -in *.r0");
        let (file, hash) = crl.split_once('\n').unwrap_or_else(|| panic!("{}: {crl}", host.name));
        assert_eq!(file, format!("{hash}.r0"), "{}: the CRL's file name is its issuer's hash", host.name);
    }

    let before =
        sh(&lab, "client1", &format!("head -c 1048576 /dev/urandom > {MOUNT}/before && sha256sum < {MOUNT}/before"));
    let old: Vec<(String, String)> = servers
        .iter()
        .map(|(name, address)| {
            let (port, _) = brick_port_and_pid(&lab, name);
            (served_serial(&lab, "client1", address, &port), served_serial(&lab, "client1", address, "24007"))
        })
        .collect();
    for ((name, _), (brick, glusterd)) in servers.iter().zip(&old) {
        assert_eq!((brick, glusterd), (&pki_serial(&lab, name), &pki_serial(&lab, name)), "{name} before");
    }
    let old_pids: Vec<(String, String)> = servers
        .iter()
        .map(|(name, _)| (brick_port_and_pid(&lab, name).1, sh(&lab, name, "cat /run/glusterd.pid")))
        .collect();

    std::thread::scope(|scope| {
        let writer = scope.spawn(|| lab.exec("client1", &["bash", "-c", WRITER]));
        let started = std::time::Instant::now();
        let rotate = lab.brickyard(&["pki", "rotate", "-f", &spec_path]);
        let took = started.elapsed();
        let shown = format!("{}{}", stdout(&rotate), String::from_utf8_lossy(&rotate.stderr));
        assert_success(&format!("brickyard pki rotate:\n{shown}"), &rotate);
        eprintln!("pki rotate with gluster restarts took {:.1} s:\n{shown}", took.as_secs_f64());
        let position =
            |needle: &str| shown.find(needle).unwrap_or_else(|| panic!("rotate does not say {needle:?}:\n{shown}"));
        for host in ["gluServer1", "gluServer2", "client1", "client2"] {
            position(&format!("{host}: gluster TLS files refreshed: install /etc/ssl/glusterfs.pem"));
        }
        // One server at a time: the second restarts only once the first is healthy again.
        let first_healthy = position("gluServer1: pool healthy again");
        let second_restart = position("gluServer2: restart glusterd, this server's bricks and self-heal daemon");
        assert!(first_healthy < second_restart, "gluServer2 restarted before gluServer1 was healthy:\n{shown}");
        position("gluServer2: pool healthy again");
        position("client1: mounts not remounted");

        // Every brick port and glusterd present the new certificate; the processes are new.
        for (i, (name, address)) in servers.iter().enumerate() {
            let new = pki_serial(&lab, name);
            assert_ne!(new, old[i].0, "{name} was not re-issued");
            let (port, pid) = brick_port_and_pid(&lab, name);
            assert_eq!(served_serial(&lab, "client1", address, &port), new, "{name}'s brick port {port}");
            assert_eq!(served_serial(&lab, "client1", address, "24007"), new, "{name}'s glusterd");
            assert_ne!(pid, old_pids[i].0, "{name}'s brick process was not restarted");
            assert_ne!(sh(&lab, name, "cat /run/glusterd.pid"), old_pids[i].1, "{name}'s glusterd was not restarted");
            let files = sh(&lab, name, "cmp /etc/ssl/glusterfs.pem /etc/brickyard/agent.pem && echo same");
            assert_eq!(files, "same", "{name}'s gluster certificate is its agent's new one");
        }

        // Revoke client2: the CRL reaches every host's gluster, the servers restart again.
        let revoke = lab.brickyard(&["pki", "revoke", "--dir", &pki_dir, "client2"]);
        assert_success("brickyard pki revoke client2", &revoke);
        let push = lab.brickyard(&["pki", "push-crl", "-f", &spec_path]);
        let pushed = format!("{}{}", stdout(&push), String::from_utf8_lossy(&push.stderr));
        assert_success(&format!("brickyard pki push-crl:\n{pushed}"), &push);
        eprintln!("pki push-crl:\n{pushed}");
        for needle in [
            "client2: its current certificate is revoked: not contacted",
            "gluServer1: gluster TLS files refreshed: install the pool CRL (1 revoked)",
            "gluServer2: pool healthy again",
        ] {
            assert!(pushed.contains(needle), "push-crl does not say {needle:?}:\n{pushed}");
        }

        sh(&lab, "client1", "touch /root/stop-writer");
        let written = writer.join().expect("the writer thread");
        let report = format!("{}{}", stdout(&written), String::from_utf8_lossy(&written.stderr));
        assert!(written.status.success(), "client1's writer failed during the rotation: {report}");
        let count: usize = report.trim_start_matches("wrote ").trim_end_matches(" files").parse().unwrap_or(0);
        assert!(count > 20, "client1 wrote only {count} files during rotation and revocation: {report}");
        eprintln!("client1 {report} while rotating and revoking");
    });

    // Everything client1 wrote reads back with its checksum, as does the file from before.
    let checked = sh(
        &lab,
        "client1",
        "cd /dataShare/rot && awk '{print $1\"  \"$3}' /root/manifest | sha256sum -c --quiet && echo ok",
    );
    assert_eq!(checked, "ok", "client1's files after rotation and revocation");
    assert_eq!(sh(&lab, "client1", &format!("sha256sum < {MOUNT}/before")), before, "the file from before");

    // client2, revoked: its mount lost the volume, it cannot mount again, and a brick
    // refuses its certificate in the handshake.
    let stale = lab.exec("client2", &["touch", &format!("{MOUNT}/after-revocation")]);
    let refused = String::from_utf8_lossy(&stale.stderr);
    assert!(
        !stale.status.success() && refused.contains("Transport endpoint is not connected"),
        "client2's mount still answers after its revocation: {refused}"
    );
    let (mounted, log) = try_mount(&lab, "client2", &servers[0].1, "revoked");
    assert!(!mounted, "client2 mounted gluV1 with a revoked certificate");
    assert!(
        log.contains("first lookup on root failed (Transport endpoint is not connected)"),
        "client2's mount log:\n{log}"
    );
    let (port, _) = brick_port_and_pid(&lab, &servers[0].0);
    let handshake = lab.exec(
        "client2",
        &[
            "bash",
            "-c",
            &format!(
                "echo | timeout {CONNECT_TIMEOUT} openssl s_client -tls1_2 -connect {}:{port} -cert /etc/ssl/glusterfs.pem \
                 -key /etc/ssl/glusterfs.key -CAfile /etc/ssl/glusterfs.ca 2>&1",
                servers[0].1
            ),
        ],
    );
    let said = stdout(&handshake);
    assert!(said.contains("alert certificate revoked"), "the brick's answer to client2's certificate:\n{said}");
    assert_eq!(sh(&lab, "client1", &format!("sha256sum < {MOUNT}/before")), before, "client1 after the revocation");
}
