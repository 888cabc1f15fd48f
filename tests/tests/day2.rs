//! Day 2 on a real pool (issue #12), through the agents of a lab (4 servers, 1 client; glusterd
//! in direct mode): a replica-2 volume on two servers holding 200 files grows to 2 x 2 when
//! `EnsureVolume` is given the two more servers' bricks (`add-brick`), and every file reads back
//! with its checksum. Root. Bricks live on a tmpfs per server (the lab root is an overlay).

use brickyard::client::connect;
use brickyard::spec::HostTarget;
use brickyard_proto::v1::{self, task::Kind};
use brickyard_tests::agent::{converge, replica2_volume, task};
use brickyard_tests::lab::{assert_success, TestLab};

const VOLUME: &str = "grow";
const BRICKS: &str = "/bricks";
const BRICK: &str = "/bricks/b1";
const MOUNT: &str = "/dataShare";
/// Writes 200 files of random content, then prints their checksums.
const WRITE_FILES: &str = "for i in $(seq 1 200); do head -c 2048 /dev/urandom > /dataShare/f$i || exit 1; done";
const CHECKSUMS: &str = "cd /dataShare && sha256sum f* | sort";

#[test]
fn replica2_grows_to_two_sets_with_add_brick_and_keeps_every_file() {
    let lab = TestLab::up("day2grow", 4, 1);
    let spec = lab.spec();
    let hosts = spec.hosts();
    let by_name = |name: &str| hosts.iter().find(|h| h.name == name).unwrap_or_else(|| panic!("lab host {name}"));
    let servers: Vec<&HostTarget> = spec.servers.iter().map(|s| by_name(&s.name)).collect();
    let client = by_name(&spec.clients[0].name);
    let pki = spec.pki_dir();
    let entries: Vec<v1::HostEntry> =
        hosts.iter().map(|h| v1::HostEntry { name: h.name.clone(), address: h.address.clone() }).collect();
    lab.tmpfs_bricks(&servers, BRICKS);
    let rt = || tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let hosts_task = task("hosts", Kind::EnsureHosts(v1::EnsureHosts { entries }));

    // Two servers' replica-2 volume, mounted on the client, 200 files written.
    lab.in_control_ns(|| {
        rt().block_on(async {
            for s in &servers {
                let mut c = connect(&pki, s).await.expect("server agent answers");
                converge(&mut c, &[hosts_task.clone(), task("glusterd", Kind::EnsureGlusterd(v1::EnsureGlusterd {}))])
                    .await;
            }
            let mut first = connect(&pki, servers[0]).await.expect("first server answers");
            let peers = servers[1..].iter().map(|s| s.name.clone()).collect();
            converge(&mut first, &[task("probe", Kind::ProbePeers(v1::ProbePeers { peers, timeout_seconds: 60 }))])
                .await;
            converge(&mut first, &[replica2_volume(VOLUME, &servers[..2], BRICK, &[], true)]).await;
            let mut c = connect(&pki, client).await.expect("client agent answers");
            let mount = task(
                "mount",
                Kind::MountGlusterVolume(v1::MountGlusterVolume {
                    volume: VOLUME.into(),
                    servers: servers.iter().map(|s| s.name.clone()).collect(),
                    mount_point: MOUNT.into(),
                }),
            );
            converge(&mut c, &[hosts_task.clone(), mount]).await;
        })
    });
    assert_success("writing 200 files", &lab.exec(&client.name, &["sh", "-c", WRITE_FILES]));
    let before = lab.exec(&client.name, &["sh", "-c", CHECKSUMS]);
    assert_success("checksums before", &before);
    assert_eq!(String::from_utf8_lossy(&before.stdout).lines().count(), 200);

    // Grow: the four servers' bricks, the first two unchanged, in one more set.
    lab.in_control_ns(|| {
        rt().block_on(async {
            let mut first = connect(&pki, servers[0]).await.expect("first server answers");
            converge(&mut first, &[replica2_volume(VOLUME, &servers, BRICK, &[], true)]).await;
            let status = first
                .get_gluster_status(v1::GlusterStatusRequest { volumes: v1::VolumeDetail::Full.into() })
                .await
                .expect("status")
                .into_inner();
            let vol = status.volumes.iter().find(|v| v.name == VOLUME).expect("volume in status");
            let bricks: Vec<String> = vol.bricks.iter().map(|b| format!("{}:{}", b.host, b.path)).collect();
            let want: Vec<String> = servers.iter().map(|s| format!("{}:{BRICK}", s.name)).collect();
            assert_eq!((vol.r#type.as_str(), vol.replica, bricks), ("Distributed-Replicate", 2, want), "{vol:#?}");
        })
    });
    let after = lab.exec(&client.name, &["sh", "-c", CHECKSUMS]);
    assert_success("checksums after", &after);
    assert_eq!(String::from_utf8_lossy(&after.stdout), String::from_utf8_lossy(&before.stdout));
}
