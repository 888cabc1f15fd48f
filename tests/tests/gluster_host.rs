//! Host-level GlusterFS tasks for real, through the agent of a lab server (its own network,
//! mount and UTS namespaces and overlay root; the agent runs glusterd in direct mode): packages
//! and FUSE already there (nothing runs), the /etc/hosts block, glusterd started and answering,
//! and a glusterd UUID reset (the firewall task has its own test, `firewall.rs`). Every task:
//! check → apply → check reports nothing to do. Needs root (the lab).

use std::time::Instant;

use brickyard::client::connect;
use brickyard_proto::v1::{self, task::Kind};
use brickyard_tests::agent::{apply, plan, starts, task};
use brickyard_tests::lab::{assert_success, TestLab};

#[test]
fn host_tasks_on_a_lab_server() {
    let lab = TestLab::up("ghost", 1, 0);
    let spec = lab.spec();
    let server = spec.hosts().into_iter().next().expect("one lab server");
    let pki = spec.pki_dir();
    let entries =
        spec.hosts().iter().map(|h| v1::HostEntry { name: h.name.clone(), address: h.address.clone() }).collect();
    let tasks = [
        task(
            "packages",
            Kind::EnsurePackages(v1::EnsurePackages { role: v1::PackageRole::Server as i32, ..Default::default() }),
        ),
        task("fuse", Kind::EnsureFuse(v1::EnsureFuse {})),
        task("hosts", Kind::EnsureHosts(v1::EnsureHosts { entries })),
        task("glusterd", Kind::EnsureGlusterd(v1::EnsureGlusterd {})),
    ];
    let exec = |argv: &[&str]| {
        let out = lab.exec(&server.name, argv);
        assert_success(&format!("{argv:?} on {}", server.name), &out);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let uuid_of = |info: &str| info.lines().find_map(|l| l.strip_prefix("UUID=")).expect("UUID= line").to_owned();

    let rt = || tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    lab.in_control_ns(|| {
        rt().block_on(async {
            let mut client = connect(&pki, &server).await.expect("agent answers");
            let before = plan(&mut client, &tasks).await;
            let verdicts: Vec<String> = before.iter().map(|(v, _)| v.clone()).collect();
            starts(
                &verdicts,
                &["packages: unchanged", "fuse: unchanged", "hosts: would change", "glusterd: would change"],
            );
            assert!(before[3].1.iter().any(|w| w.contains("not enabled at boot")), "{before:#?}");

            let started = Instant::now();
            starts(
                &apply(&mut client, &tasks).await,
                &["packages: unchanged", "fuse: unchanged", "hosts: changed", "glusterd: changed"],
            );
            eprintln!("first apply took {:?}", started.elapsed());
            starts(
                &apply(&mut client, &tasks).await,
                &["packages: unchanged", "fuse: unchanged", "hosts: unchanged", "glusterd: unchanged"],
            );
            let after: Vec<String> = plan(&mut client, &tasks).await.into_iter().map(|(v, _)| v).collect();
            starts(&after, &["packages: unchanged", "fuse: unchanged", "hosts: unchanged", "glusterd: unchanged"]);
        })
    });

    let hosts = exec(&["cat", "/etc/hosts"]);
    assert_eq!(hosts.matches("# BEGIN brickyard pool\n").count(), 1, "{hosts}");
    assert!(hosts.contains(&format!("{} {}\n", server.address, server.name)), "{hosts}");
    let pool = exec(&["gluster", "--mode=script", "--xml", "pool", "list"]);
    let old_uuid = uuid_of(&exec(&["cat", "/var/lib/glusterd/glusterd.info"]));
    assert!(pool.contains(&old_uuid), "{pool}");

    // A cloned image's UUID: reset while glusterd runs alone, then nothing left to do.
    let reset = [task("uuid", Kind::ResetGlusterdUuid(v1::ResetGlusterdUuid { current_uuid: old_uuid.clone() }))];
    lab.in_control_ns(|| {
        rt().block_on(async {
            let mut client = connect(&pki, &server).await.expect("agent answers");
            starts(&apply(&mut client, &reset).await, &["uuid: changed"]);
            let again = plan(&mut client, &reset).await;
            assert!(again[0].0 == "uuid: unchanged" && again[0].1[0].contains("nothing to reset"), "{again:#?}");
        })
    });
    let new_uuid = uuid_of(&exec(&["cat", "/var/lib/glusterd/glusterd.info"]));
    assert_ne!(new_uuid, old_uuid);
    let pool = exec(&["gluster", "--mode=script", "--xml", "pool", "list"]);
    assert!(pool.contains(&new_uuid), "glusterd runs again with the new UUID: {pool}");
}
