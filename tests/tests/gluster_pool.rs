//! The seed's pool for real, through the agents of a lab (2 servers, 2 clients; glusterd in
//! direct mode): the servers probe each other by name and each then sees the other in the pool
//! (the barrier); a replica-2 volume (opt-in) is refused without the opt-in, a brick on the root
//! filesystem is refused by the brick check, then the volume is created, started and tuned;
//! both clients mount it; a file appended by one client is read by the other and is present on
//! both bricks; status reports bricks online with ports. Every task: check → apply → check
//! reports nothing to do. Root. Bricks live on a tmpfs per server (the lab root is an overlay).

use std::time::Instant;

use brickyard::client::connect;
use brickyard::spec::HostTarget;
use brickyard_proto::v1::{self, task::Kind};
use brickyard_tests::agent::{apply, converge, plan, replica2_volume, starts, task, Client};
use brickyard_tests::lab::TestLab;

const VOLUME: &str = "gpool";
/// A tmpfs per server; the brick is a directory in it.
const BRICKS: &str = "/bricks";
const BRICK: &str = "/bricks/b1";
const MOUNT: &str = "/dataShare";
const VERIFY_FILE: &str = ".brickyard-verify-gpool";
const CACHE_SIZE: &[(&str, &str)] = &[("performance.cache-size", "64MB")];

/// The brick check of `volume`'s brick `path` on the filesystem mounted at `mount_point`.
fn bricks(path: &str, mount_point: &str) -> v1::Task {
    let brick =
        v1::LocalBrick { volume: VOLUME.into(), path: path.into(), mount_point: mount_point.into(), force: false };
    task("bricks", Kind::EnsureBricks(v1::EnsureBricks { bricks: vec![brick] }))
}

fn probe(peers: &[&HostTarget]) -> v1::Task {
    let peers = peers.iter().map(|p| p.name.clone()).collect();
    task("probe", Kind::ProbePeers(v1::ProbePeers { peers, timeout_seconds: 30 }))
}

async fn verify(client: &mut Client, op: v1::VerifyOp, dir: &str, line: &str) -> v1::VerifyFileResponse {
    let req =
        v1::VerifyFileRequest { op: op as i32, dir: dir.into(), file_name: VERIFY_FILE.into(), line: line.into() };
    client.verify_file(req).await.unwrap_or_else(|e| panic!("VerifyFile {op:?} {dir}: {e}")).into_inner()
}

#[test]
fn two_servers_one_replica_volume_two_clients() {
    let lab = TestLab::up("gpool", 2, 2);
    let spec = lab.spec();
    let hosts = spec.hosts();
    let by_name = |name: &str| hosts.iter().find(|h| h.name == name).unwrap_or_else(|| panic!("lab host {name}"));
    let servers: Vec<&HostTarget> = spec.servers.iter().map(|s| by_name(&s.name)).collect();
    let clients: Vec<&HostTarget> = spec.clients.iter().map(|c| by_name(&c.name)).collect();
    let (s1, s2) = (servers[0], servers[1]);
    let pki = spec.pki_dir();
    let entries: Vec<v1::HostEntry> =
        hosts.iter().map(|h| v1::HostEntry { name: h.name.clone(), address: h.address.clone() }).collect();

    // Brick filesystems: a tmpfs per server, so the bricks are off the (overlay) root.
    lab.tmpfs_bricks(&servers, BRICKS);

    let rt = || tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    lab.in_control_ns(|| {
        rt().block_on(async {
            let mut c1 = connect(&pki, s1).await.expect("gluServer1's agent answers");
            let mut c2 = connect(&pki, s2).await.expect("gluServer2's agent answers");
            let hosts_task = task("hosts", Kind::EnsureHosts(v1::EnsureHosts { entries: entries.clone() }));
            let glusterd = task("glusterd", Kind::EnsureGlusterd(v1::EnsureGlusterd {}));
            for c in [&mut c1, &mut c2] {
                converge(c, &[hosts_task.clone(), glusterd.clone()]).await;
            }

            // Pool: gluServer1 probes gluServer2, then gluServer2 probes gluServer1 back.
            let started = Instant::now();
            converge(&mut c1, &[probe(&[s1, s2])]).await;
            starts(&apply(&mut c2, &[probe(&[s1])]).await, &["probe: "]);
            starts(
                &plan(&mut c2, &[probe(&[s1])]).await.into_iter().map(|(v, _)| v).collect::<Vec<_>>(),
                &["probe: unchanged"],
            );
            eprintln!("pool formed in {:?}", started.elapsed());
            // The barrier: each server sees the other (by name or address), connected.
            for (c, other) in [(&mut c1, s2), (&mut c2, s1)] {
                let entry = v1::HostEntry { name: other.name.clone(), address: other.address.clone() };
                let barrier =
                    task("barrier", Kind::AwaitPeers(v1::AwaitPeers { peers: vec![entry], timeout_seconds: 30 }));
                starts(&apply(c, &[barrier]).await, &["barrier: unchanged"]);
            }
            for (c, other) in [(&mut c1, s2), (&mut c2, s1)] {
                let status = c
                    .get_gluster_status(v1::GlusterStatusRequest { volumes: v1::VolumeDetail::Full.into() })
                    .await
                    .expect("status")
                    .into_inner();
                let peer = status.peers.iter().find(|p| !p.is_local).expect("a remote peer");
                assert!(
                    peer.connected
                        && peer.state == "Peer in Cluster"
                        && (peer.hostname == other.name || peer.other_names.contains(&other.name)),
                    "{other:?} not known by name: {status:#?}"
                );
            }

            // Refusals: replica 2 without the opt-in (validated before anything runs: the whole
            // batch is rejected); a brick on the root filesystem without force (the brick check).
            let batch = v1::TaskBatch { tasks: vec![replica2_volume(VOLUME, &servers, BRICK, CACHE_SIZE, false)] };
            let refused = c1.apply(batch).await.expect_err("replica 2 without the opt-in is refused");
            assert!(refused.message().contains("split-brain"), "{refused:?}");
            let on_root = plan(&mut c1, &[bricks("/srv/gpool-root", "/")]).await;
            assert!(
                on_root[0].0.starts_with("bricks: refused brick ") && on_root[0].0.contains("root filesystem"),
                "{on_root:?}"
            );
            // On its tmpfs and fresh: nothing to do.
            for c in [&mut c1, &mut c2] {
                starts(&apply(c, &[bricks(BRICK, BRICKS)]).await, &["bricks: unchanged"]);
            }

            let started = Instant::now();
            converge(&mut c1, &[replica2_volume(VOLUME, &servers, BRICK, CACHE_SIZE, true)]).await;
            eprintln!("volume created, started and tuned in {:?}", started.elapsed());
            let status = c1
                .get_gluster_status(v1::GlusterStatusRequest { volumes: v1::VolumeDetail::Full.into() })
                .await
                .expect("status")
                .into_inner();
            let vol = status.volumes.iter().find(|v| v.name == VOLUME).expect("volume in status");
            assert_eq!((vol.status.as_str(), vol.replica), ("Started", 2), "{vol:#?}");
            assert!(vol.bricks.iter().all(|b| b.online && b.port > 0), "{vol:#?}");
            assert_eq!(vol.options.get("performance.cache-size").map(String::as_str), Some("64MB"));
            // Tagged with the volume's own id now: still nothing to do.
            starts(&apply(&mut c1, &[bricks(BRICK, BRICKS)]).await, &["bricks: unchanged"]);

            // The same name with another layout: refused, naming the difference.
            let mut other = replica2_volume(VOLUME, &servers, BRICK, CACHE_SIZE, true);
            if let Some(Kind::EnsureVolume(v)) = &mut other.kind {
                v.layout = Some(v1::VolumeLayout { r#type: v1::VolumeType::Distribute as i32, ..Default::default() });
            }
            let differs = apply(&mut c1, &[other]).await;
            assert!(differs[0].contains("its layout is replica 2, the task asks for distribute"), "{differs:?}");
        })
    });

    lab.in_control_ns(|| {
        rt().block_on(async {
            let servers_names: Vec<String> = servers.iter().map(|s| s.name.clone()).collect();
            let mount = task(
                "mount",
                Kind::MountGlusterVolume(v1::MountGlusterVolume {
                    volume: VOLUME.into(),
                    servers: servers_names,
                    mount_point: MOUNT.into(),
                }),
            );
            let hosts_task = task("hosts", Kind::EnsureHosts(v1::EnsureHosts { entries: entries.clone() }));
            let mut agents = Vec::new();
            for c in &clients {
                let mut agent = connect(&pki, c).await.expect("client agent answers");
                converge(&mut agent, &[hosts_task.clone(), mount.clone()]).await;
                let status = agent
                    .get_gluster_status(v1::GlusterStatusRequest { volumes: v1::VolumeDetail::Full.into() })
                    .await
                    .expect("status")
                    .into_inner();
                let m = status.mounts.iter().find(|m| m.mount_point == MOUNT).expect("mount in status");
                assert!(m.source == format!("{}:/{VOLUME}", s1.name) && m.size_total > 0, "{m:?}");
                agents.push(agent);
            }

            // The seed's file test: client1 writes, client2 reads, both bricks hold it.
            let line = "written by client1";
            let wrote = verify(&mut agents[0], v1::VerifyOp::Append, MOUNT, line).await;
            assert!(wrote.exists && wrote.content == format!("{line}\n"), "{wrote:?}");
            let read = verify(&mut agents[1], v1::VerifyOp::Read, MOUNT, "").await;
            assert_eq!(read.content, format!("{line}\n"));
            for s in &servers {
                let mut agent = connect(&pki, s).await.expect("server agent answers");
                let on_brick = verify(&mut agent, v1::VerifyOp::Read, BRICK, "").await;
                assert_eq!(on_brick.content, format!("{line}\n"), "brick of {}", s.name);
                let refused = agent
                    .verify_file(v1::VerifyFileRequest {
                        op: v1::VerifyOp::Append as i32,
                        dir: BRICK.into(),
                        file_name: VERIFY_FILE.into(),
                        line: "x".into(),
                    })
                    .await;
                assert!(refused.is_err(), "append on a brick must be refused");
            }
            let removed = verify(&mut agents[1], v1::VerifyOp::Remove, MOUNT, "").await;
            assert!(!removed.exists);
        })
    });
    let fstab = lab.exec(&clients[0].name, &["cat", "/etc/fstab"]);
    let fstab = String::from_utf8_lossy(&fstab.stdout);
    let want = format!(
        "{}:/{VOLUME} {MOUNT} glusterfs defaults,_netdev,nofail,backup-volfile-servers={} 0 0",
        s1.name, s2.name
    );
    assert_eq!(fstab.matches(&want).count(), 1, "{fstab}");
}
