//! Host facts over real mutual TLS from the `brickyard-agent` binary on 127.0.0.1: a loop
//! device this test attaches (sparse file) shows up with its size and no filesystem, and after
//! mkfs.ext4 with its type and UUID; `brickyard facts` lists a reachable and an unreachable
//! host. Needs root (losetup); attaches one loop device and detaches it in all cases.

use std::path::{Path, PathBuf};
use std::process::Command;

use brickyard::spec::HostTarget;
use brickyard_proto::v1;
use brickyard_tests::bins::{bin, AgentProcess};
use brickyard_tests::pki::TestPki;

const DISK_SIZE: u64 = 64 << 20;

/// Runs `program args`, fails with its stderr unless it exits 0; returns stdout.
fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {} failed ({}): {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A loop device over a sparse file; detached on drop.
struct LoopDevice {
    path: PathBuf,
}

impl LoopDevice {
    fn attach(file: &Path) -> LoopDevice {
        let out = Command::new("losetup").args(["--find", "--show"]).arg(file).output().expect("running losetup");
        assert!(
            out.status.success(),
            "losetup --find --show failed (this test needs root and loop device support): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        LoopDevice { path: PathBuf::from(String::from_utf8(out.stdout).unwrap().trim()) }
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.path).status();
    }
}

async fn facts(pki: &TestPki, agent: &AgentProcess) -> v1::Facts {
    let host = HostTarget { name: "agent1".into(), address: "127.0.0.1".into(), port: agent.addr.port() };
    let mut client = brickyard::client::connect(&pki.dir, &host).await.unwrap();
    client.get_facts(v1::GetFactsRequest { block_devices: true }).await.unwrap().into_inner()
}

fn find<'a>(devices: &'a [v1::BlockDevice], path: &str) -> Option<&'a v1::BlockDevice> {
    devices.iter().find_map(|d| if d.path == path { Some(d) } else { find(&d.children, path) })
}

#[tokio::test]
async fn facts_see_a_loop_device_before_and_after_mkfs() {
    let pki = TestPki::new().unwrap();
    let agent = AgentProcess::start(&pki.agent_config("agent1", "127.0.0.1:0", "").unwrap()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let image = tmp.path().join("disk.img");
    std::fs::File::create(&image).unwrap().set_len(DISK_SIZE).unwrap();
    let disk = LoopDevice::attach(&image);
    let path = disk.path.to_str().unwrap();

    let before = facts(&pki, &agent).await;
    let dev = find(&before.block_devices, path)
        .unwrap_or_else(|| panic!("{path} missing from facts: {:#?}", before.block_devices));
    assert_eq!(dev.size_bytes, DISK_SIZE, "{dev:?}");
    assert_eq!(dev.r#type(), v1::DeviceType::Loop, "{dev:?}");
    assert_eq!((dev.filesystem.as_str(), dev.uuid.as_str()), ("", ""), "{dev:?}");
    assert!(!dev.carries_root && !dev.carries_boot);
    assert!(before.block_devices.iter().any(|d| d.carries_root), "no device carries /: {:#?}", before.block_devices);

    run("mkfs.ext4", &["-q", "-F", "-L", "bytest", path]);
    let uuid = run("blkid", &["-p", "-o", "value", "-s", "UUID", path]);
    let after = facts(&pki, &agent).await;
    let dev = find(&after.block_devices, path).unwrap_or_else(|| panic!("{path} missing after mkfs"));
    assert_eq!(dev.filesystem, "ext4", "{dev:?}");
    assert_eq!(dev.uuid, uuid.trim(), "{dev:?}");
    assert_eq!(dev.label, "bytest", "{dev:?}");
}

#[test]
fn facts_command_lists_unreachable_hosts_and_fails() {
    let pki = TestPki::new().unwrap();
    let agent = AgentProcess::start(&pki.agent_config("agent1", "127.0.0.1:0", "").unwrap()).unwrap();
    // Nothing listens on 127.0.0.2 at this port (the agent is bound to 127.0.0.1 only).
    let port = agent.addr.port();
    let spec = pki.dir.parent().unwrap().join("spec.toml");
    std::fs::write(
        &spec,
        format!(
            "version = 1\n[pool]\nname = \"t\"\npki_dir = \"pki\"\n\
             [[server]]\nname = \"agent1\"\naddress = \"127.0.0.1\"\nport = {port}\n\
             [[client]]\nname = \"gone\"\naddress = \"127.0.0.2\"\nport = {port}\n"
        ),
    )
    .unwrap();

    let out = Command::new(bin("brickyard")).arg("facts").arg("-f").arg(&spec).arg("--json").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "facts succeeded with an unreachable host: {stdout}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(json[0]["name"], "agent1");
    assert!(json[0]["facts"]["kernel"].as_str().is_some_and(|k| !k.is_empty()), "{json:#}");
    let err = json[1]["error"].as_str().unwrap_or_else(|| panic!("no error for the unreachable host: {json:#}"));
    assert!(err.contains("gone") && err.contains("127.0.0.2"), "{err}");

    let out = Command::new(bin("brickyard")).arg("facts").arg("-f").arg(&spec).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(text.starts_with("HOST") && text.contains("agent1") && text.contains("unreachable:\n  gone"), "{text}");
}
