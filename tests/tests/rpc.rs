//! The agent's RPC layer end to end over real mutual TLS, with the trivial real task
//! (`BrickDir`) on a tmpfs this test mounts in a temp dir (root, as in CI; unmounted in all
//! cases): Plan reports without changing anything, Apply streams started/changed then
//! unchanged on a re-run, an invalid batch is rejected whole before anything runs, and tasks
//! after a failed one are skipped.

use std::path::{Path, PathBuf};
use std::process::Command;

use brickyard::spec::HostTarget;
use brickyard_proto::v1;
use brickyard_tests::bins::AgentProcess;
use brickyard_tests::pki::TestPki;
use v1::task_event::Event;
use v1::task_verdict::Verdict;

/// A tmpfs mounted on a directory; lazily unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path) -> Tmpfs {
        let status = Command::new("mount").args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"]).arg(dir).status().unwrap();
        assert!(status.success(), "mount -t tmpfs {} failed: this test needs root (CAP_SYS_ADMIN)", dir.display());
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn brick_dir(id: &str, mount_point: &Path, dir: &str) -> v1::Task {
    v1::Task {
        id: id.into(),
        kind: Some(v1::task::Kind::BrickDir(v1::BrickDir {
            mount_point: mount_point.to_str().unwrap().into(),
            dir: dir.into(),
        })),
    }
}

/// Applies `tasks` and collects the event stream as `(id, event)`.
async fn apply(
    client: &mut v1::agent_client::AgentClient<tonic::transport::Channel>,
    tasks: Vec<v1::Task>,
) -> Vec<(String, Event)> {
    let mut stream = client.apply(v1::TaskBatch { tasks }).await.unwrap().into_inner();
    let mut events = Vec::new();
    while let Some(event) = stream.message().await.unwrap() {
        events.push((event.id, event.event.expect("event without a kind")));
    }
    events
}

#[tokio::test]
async fn plan_apply_and_refusals_with_brick_dir() {
    let pki = TestPki::new().unwrap();
    let agent = AgentProcess::start(&pki.agent_config("agent1", "127.0.0.1:0", "").unwrap()).unwrap();
    let host = HostTarget { name: "agent1".into(), address: "127.0.0.1".into(), port: agent.addr.port() };
    let mut client = brickyard::client::connect(&pki.dir, &host).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mnt = tmp.path().join("vdisk");
    std::fs::create_dir(&mnt).unwrap();
    let _tmpfs = Tmpfs::mount(&mnt);
    let brick = mnt.join("brick1");

    // Plan: would change, and nothing changed.
    let plan = client.plan(v1::TaskBatch { tasks: vec![brick_dir("b", &mnt, "brick1")] }).await.unwrap().into_inner();
    match &plan.verdicts[0].verdict {
        Some(Verdict::WouldChange(c)) => assert_eq!(c.changes, [format!("create brick directory {}", brick.display())]),
        other => panic!("expected would_change, got {other:?}"),
    }
    assert!(!brick.exists(), "Plan changed the host");

    // Apply, then apply again: changed, then unchanged.
    let events = apply(&mut client, vec![brick_dir("b", &mnt, "brick1")]).await;
    assert!(matches!(&events[..], [(_, Event::Started(_)), (id, Event::Changed(_))] if id == "b"), "{events:?}");
    assert!(brick.is_dir());
    let events = apply(&mut client, vec![brick_dir("b", &mnt, "brick1")]).await;
    assert!(matches!(&events[..], [(_, Event::Started(_)), (_, Event::Unchanged(_))]), "{events:?}");

    // An invalid task rejects the whole batch before anything runs.
    let status = client
        .apply(v1::TaskBatch { tasks: vec![brick_dir("first", &mnt, "brick2"), brick_dir("evil", &mnt, "../etc")] })
        .await
        .expect_err("invalid batch accepted");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().contains("\"evil\"") && status.message().contains("../etc"), "{status}");
    assert!(!mnt.join("brick2").exists(), "a task ran although the batch was invalid");
    let status = client.plan(v1::TaskBatch { tasks: vec![v1::Task { id: "empty".into(), kind: None }] }).await;
    assert_eq!(status.unwrap_err().code(), tonic::Code::InvalidArgument);

    // A failing task (not a mount point) stops the batch; the rest are skipped.
    let events = apply(&mut client, vec![brick_dir("bad", tmp.path(), "b"), brick_dir("after", &mnt, "brick3")]).await;
    match &events[..] {
        [(_, Event::Started(_)), (bad, Event::Failed(e)), (after, Event::Skipped(_))] => {
            assert_eq!((bad.as_str(), after.as_str()), ("bad", "after"));
            assert_eq!(e.kind(), v1::ErrorKind::NotReady);
            assert!(e.message.contains("not a mount point"), "{}", e.message);
        }
        other => panic!("unexpected events {other:?}"),
    }
    assert!(!mnt.join("brick3").exists());
}
