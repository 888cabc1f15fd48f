//! Server disk preparation (issue #4) on real loop devices: PartitionDisk, MakeFilesystem and
//! MountFilesystem as the agent runs them, with the real parted, wipefs, mkfs and mount.
//!
//! The last two tests send them through a real agent in a lab host (`TestLab`), one of them
//! SIGKILLing the agent between mkfs and mount (the lab host's init restarts it). The others
//! call the tasks directly; each re-runs itself inside a private mount namespace (`unshare -m`, all mounts
//! private) where /etc is an overlay on a tmpfs (so /etc/fstab is a private copy that rename()
//! can replace) and /mnt is a tmpfs holding the mount points. Its disks are sparse files on
//! loop devices attached with partition scanning. Touches only: loop devices it attaches (and
//! detaches, even on failure), temp files, and mounts that die with the namespace. Needs root,
//! util-linux, parted, xfsprogs and e2fsprogs; a missing capability fails the test naming it.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use brickyard_agent::host::blockdev::{self, HostPaths};
use brickyard_agent::host::runner::SystemRunner;
use brickyard_agent::host::{Context, ServiceManager};
use brickyard_agent::tasks;
use brickyard_proto::v1::{self, task::Kind};
use brickyard_tests::agent::{self as rpc, starts};
use brickyard_tests::lab::{assert_success, TestLab};

/// Set in the re-executed test process that runs inside the private mount namespace.
const INSIDE: &str = "BRICKYARD_DISK_TEST_NAMESPACE";
/// mkfs.xfs wants at least 300 MB.
const DISK_BYTES: u64 = 512 << 20;

/// Runs `program args`; fails naming the program, its arguments, status and stderr.
fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} (is it installed? scripts/install-deps.sh): {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs the calling test's body in a private mount namespace: re-executes this test binary
/// under `unshare -m` for the one test `name`, and fails when the inner run fails.
fn in_namespace<F: std::future::Future<Output = ()>>(name: &str, body: impl FnOnce() -> F) {
    if std::env::var_os(INSIDE).is_some() {
        let _scratch = Scratch::new();
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(body());
        return;
    }
    assert!(nix_is_root(), "the disk tests need root (loop devices, mounts, namespaces)");
    let status = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "--"])
        .arg(std::env::current_exe().unwrap())
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(INSIDE, "1")
        .status()
        .expect("cannot run unshare (util-linux) to make a private mount namespace");
    assert!(status.success(), "{name} failed inside its private mount namespace ({status}); see its output above");
}

fn nix_is_root() -> bool {
    run("id", &["-u"]).trim() == "0"
}

/// The namespace's private /etc and /mnt (mounted on scratch tmpfs; gone with the namespace).
struct Scratch {
    _dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap();
        run("mount", &["-t", "tmpfs", "brickyard-test", d]);
        for sub in ["upper", "work"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
        }
        let opts = format!("lowerdir=/etc,upperdir={d}/upper,workdir={d}/work");
        run("mount", &["-t", "overlay", "brickyard-etc", "-o", &opts, "/etc"]);
        run("mount", &["-t", "tmpfs", "brickyard-mnt", "/mnt"]);
        Scratch { _dir: dir }
    }
}

/// A sparse file on a loop device with partition scanning; detached on drop.
struct LoopDisk {
    dev: String,
    _file: tempfile::NamedTempFile,
}

impl LoopDisk {
    fn new() -> Self {
        let file = tempfile::NamedTempFile::new().unwrap();
        file.as_file().set_len(DISK_BYTES).unwrap();
        let dev = run("losetup", &["-P", "-f", "--show", file.path().to_str().unwrap()]).trim().to_owned();
        assert!(dev.starts_with("/dev/loop"), "losetup gave {dev:?}");
        LoopDisk { dev, _file: file }
    }

    fn part(&self) -> String {
        format!("{}p1", self.dev)
    }
}

impl Drop for LoopDisk {
    fn drop(&mut self) {
        // A device still mounted in the namespace is auto-cleared when the namespace goes.
        let _ = Command::new("losetup").args(["-d", &self.dev]).status();
    }
}

/// A process in its own mount namespace that keeps `dev` mounted until dropped.
struct MountedElsewhere(std::process::Child);

impl MountedElsewhere {
    fn new(dev: &str) -> Self {
        use std::io::BufRead;
        let script = format!("mount {dev} /mnt && echo mounted && exec sleep 600");
        let mut child = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", &script])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("cannot run unshare");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "mounted", "mounting {dev} in another namespace failed");
        MountedElsewhere(child)
    }
}

impl Drop for MountedElsewhere {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn partition(disk: &str, wipe: bool) -> v1::Task {
    task(
        &format!("partition {disk}"),
        Kind::PartitionDisk(v1::PartitionDisk { disk: disk.into(), table: 0, wipe, ..Default::default() }),
    )
}

fn mkfs(disk: &str, fs: v1::FilesystemType, wipe: bool) -> v1::Task {
    task(
        &format!("filesystem on {disk}"),
        Kind::MakeFilesystem(v1::MakeFilesystem {
            disk: disk.into(),
            filesystem: fs.into(),
            label: "brick".into(),
            wipe,
            ..Default::default()
        }),
    )
}

fn mount(disk: &str, fs: v1::FilesystemType, at: &str) -> v1::Task {
    task(
        &format!("mount {at}"),
        Kind::MountFilesystem(v1::MountFilesystem {
            disk: disk.into(),
            filesystem: fs.into(),
            mount_point: at.into(),
            options: Vec::new(),
            ..Default::default()
        }),
    )
}

fn task(id: &str, kind: Kind) -> v1::Task {
    v1::Task { id: id.into(), kind: Some(kind) }
}

/// The seed's three disk tasks for `disk`, xfs at /mnt/vdisk.
fn seed(disk: &str, wipe: bool) -> Vec<v1::Task> {
    vec![
        partition(disk, wipe),
        mkfs(disk, v1::FilesystemType::Xfs, wipe),
        mount(disk, v1::FilesystemType::Xfs, "/mnt/vdisk"),
    ]
}

/// This machine as the agent sees its host: real programs, daemons started directly.
fn this_host() -> Context {
    Context::new(Arc::new(SystemRunner), ServiceManager::Direct, Default::default())
}

/// Applies `tasks` in order as the agent's Apply does; stops at the first failure. Returns
/// each applied task's changes, or the failure's message.
async fn apply(tasks: &[v1::Task]) -> Result<Vec<Vec<String>>, String> {
    let ctx = this_host();
    let mut out = Vec::new();
    for t in tasks {
        let task = tasks::from_proto(t, None).map_err(|e| format!("{}: {e}", t.id))?;
        out.push(task.run(&ctx).await.map_err(|e| format!("{}: {e}", t.id))?);
    }
    Ok(out)
}

/// Plans `tasks` (check only) as the agent's Plan does.
async fn plan(tasks: &[v1::Task]) -> Result<Vec<Vec<String>>, String> {
    let ctx = this_host();
    let mut out = Vec::new();
    for t in tasks {
        let task = tasks::from_proto(t, None).map_err(|e| format!("{}: {e}", t.id))?;
        out.push(task.check(&ctx).await.map_err(|e| format!("{}: {e}", t.id))?.changes);
    }
    Ok(out)
}

fn fstab() -> String {
    std::fs::read_to_string("/etc/fstab").unwrap_or_default()
}

fn mounted_at(path: &str) -> Option<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    info.lines()
        .find(|l| l.split(' ').nth(4) == Some(path))
        .map(|l| l.split(" - ").nth(1).unwrap_or_default().split(' ').nth(1).unwrap_or_default().to_owned())
}

/// Puts ext4 with one file on `dev` and returns the file's content checksum (sha256sum).
fn ext4_with_file(dev: &str) -> String {
    run("mkfs.ext4", &["-q", dev]);
    let dir = Path::new("/mnt/data");
    std::fs::create_dir_all(dir).unwrap();
    run("mount", &[dev, "/mnt/data"]);
    std::fs::write(dir.join("precious"), "the operator's data\n".repeat(1000)).unwrap();
    let sum = checksum(&dir.join("precious"));
    run("umount", &["/mnt/data"]);
    sum
}

fn checksum(path: &Path) -> String {
    run("sha256sum", &[path.to_str().unwrap()]).split_whitespace().next().unwrap().to_owned()
}

fn checksum_on(dev: &str) -> String {
    run("mount", &["-o", "ro", dev, "/mnt/data"]);
    let sum = checksum(Path::new("/mnt/data/precious"));
    run("umount", &["/mnt/data"]);
    sum
}

#[test]
fn fresh_disk_is_partitioned_formatted_mounted_once() {
    in_namespace("fresh_disk_is_partitioned_formatted_mounted_once", || async {
        let disk = LoopDisk::new();
        let before = fstab();
        let planned = plan(&seed(&disk.dev, false)).await.unwrap();
        assert!(planned[0][0].ends_with(&format!("parted -s {} mklabel gpt mkpart primary 0% 100%", disk.dev)));
        assert!(planned[1][0].ends_with(&format!("mkfs.xfs -i size=512 -L brick {}", disk.part())), "{planned:?}");

        let done = apply(&seed(&disk.dev, false)).await.unwrap();
        assert_eq!(done[0], planned[0], "apply ran what check announced");
        assert_eq!(done[1], planned[1]);
        assert_eq!(mounted_at("/mnt/vdisk").as_deref(), Some(disk.part().as_str()));
        let uuid = run("blkid", &["-p", "-s", "UUID", "-o", "value", &disk.part()]).trim().to_owned();
        let line = format!("UUID={uuid} /mnt/vdisk xfs inode64,noatime,nofail 0 0");
        assert!(fstab().starts_with(&before), "other fstab lines are kept byte for byte");
        assert!(fstab().contains(&line), "{}", fstab());

        let again = apply(&seed(&disk.dev, false)).await.unwrap();
        assert_eq!(again, vec![Vec::<String>::new(); 3], "second apply changes nothing");
        let with_wipe = apply(&seed(&disk.dev, true)).await.unwrap();
        assert_eq!(with_wipe, vec![Vec::<String>::new(); 3], "wipe never reformats a satisfied disk");
        assert_eq!(fstab().matches("/mnt/vdisk").count(), 2, "one marker + one entry:\n{}", fstab());
    });
}

#[test]
fn existing_data_is_refused_even_for_a_wipe_by_device_name() {
    in_namespace("existing_data_is_refused_even_for_a_wipe_by_device_name", || async {
        let disk = LoopDisk::new();
        let sum = ext4_with_file(&disk.dev);
        let err = apply(&seed(&disk.dev, false)).await.unwrap_err();
        assert!(err.contains(&format!("{} is not empty: found an ext4 filesystem", disk.dev)), "{err}");
        assert_eq!(checksum_on(&disk.dev), sum, "the refused disk's file is intact");
        assert!(!fstab().contains("/mnt/vdisk"));

        // wipe on the bare device name: refused (the name may lead to another disk after a
        // reboot), naming the identity found; the whole device is byte for byte unchanged.
        let whole = device_checksum(&disk.dev);
        let err = apply(&seed(&disk.dev, true)).await.unwrap_err();
        assert!(
            err.contains(&format!("refusing to wipe {}: {} names no disk identity", disk.dev, disk.dev))
                && err.contains("found serial none, WWN none, by-id links none"),
            "{err}"
        );
        assert_eq!(device_checksum(&disk.dev), whole, "the refused disk is unchanged");
        assert_eq!(checksum_on(&disk.dev), sum, "the refused disk's file is intact");
    });
}

/// sha256 of the whole device.
fn device_checksum(dev: &str) -> String {
    run("sha256sum", &[dev]).split_whitespace().next().unwrap().to_owned()
}

#[test]
fn partition_table_without_filesystem_is_refused() {
    in_namespace("partition_table_without_filesystem_is_refused", || async {
        let disk = LoopDisk::new();
        run("parted", &["-s", &disk.dev, "mklabel", "msdos"]);
        let err = apply(&seed(&disk.dev, false)).await.unwrap_err();
        assert!(err.contains(&format!("{} is not empty: found a dos partition table", disk.dev)), "{err}");
    });
}

#[test]
fn mounted_disk_and_root_disk_are_refused_even_with_wipe() {
    in_namespace("mounted_disk_and_root_disk_are_refused_even_with_wipe", || async {
        let disk = LoopDisk::new();
        ext4_with_file(&disk.dev);
        run("mount", &[&disk.dev, "/mnt/data"]);
        let err = apply(&seed(&disk.dev, true)).await.unwrap_err();
        assert!(err.contains(&format!("{} is in use: {} is mounted at /mnt/data", disk.dev, &disk.dev[5..])), "{err}");
        run("umount", &["/mnt/data"]);

        // Mounted in another mount namespace: invisible here, but the kernel still holds it.
        let hidden = LoopDisk::new();
        run("mkfs.ext4", &["-q", &hidden.dev]);
        let _holder = MountedElsewhere::new(&hidden.dev);
        let err = apply(&[partition(&hidden.dev, true)]).await.unwrap_err();
        assert!(err.contains(&format!("{} is in use outside this mount namespace", hidden.dev)), "{err}");

        // The root disk, as the facts report it.
        let devices = blockdev::list(&SystemRunner, &HostPaths::system()).await.unwrap();
        let root = devices
            .iter()
            .find(|d| d.carries_root())
            .unwrap_or_else(|| panic!("no block device carries / here (devices: {devices:?}); the test needs one"));
        let err = apply(&[partition(&root.path, true)]).await.unwrap_err();
        assert!(err.contains(&format!("{} carries the system", root.path)) && err.contains("even with wipe"), "{err}");
    });
}

/// sb_inprogress, byte 126 of the primary xfs superblock.
fn xfs_inprogress_byte(dev: &str) -> u8 {
    use std::io::Read;
    let mut sb = [0u8; 512];
    std::fs::File::open(dev).unwrap().read_exact(&mut sb).unwrap();
    assert_eq!(&sb[..4], b"XFSB", "{dev} holds no xfs superblock");
    sb[126]
}

/// Whether `dev` mounts as xfs at /mnt/data (unmounted again); the mount's error otherwise.
fn try_mount_xfs(dev: &str) -> Result<(), String> {
    std::fs::create_dir_all("/mnt/data").unwrap();
    let out = Command::new("mount").args(["-t", "xfs", dev, "/mnt/data"]).output().unwrap();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    run("umount", &["/mnt/data"]);
    Ok(())
}

/// An xfs whose mkfs never finished (`sb_inprogress` set, as an agent killed in the middle of
/// mkfs.xfs leaves it) is xfs to blkid but never mounts ("Structure needs cleaning"):
/// MakeFilesystem makes it again, without wipe, and says why.
#[test]
fn unfinished_xfs_is_made_again_and_mounts() {
    in_namespace("unfinished_xfs_is_made_again_and_mounts", || async {
        let disk = LoopDisk::new();
        let tasks = [partition(&disk.dev, false), mkfs(&disk.dev, v1::FilesystemType::Xfs, false)];
        let part = disk.part();
        apply(&tasks).await.unwrap();
        try_mount_xfs(&part).expect("the fresh filesystem mounts");

        run("xfs_db", &["-x", "-c", "sb 0", "-c", "write inprogress 1", &part]);
        assert_eq!(xfs_inprogress_byte(&part), 1);
        assert!(run("blkid", &["-p", "-o", "export", &part]).contains("TYPE=xfs"), "blkid still says xfs");
        let refused = try_mount_xfs(&part).unwrap_err();
        assert!(refused.contains("Structure needs cleaning"), "{refused}");

        let remake = format!(
            "mkfs.xfs on {part}: the filesystem found there was never finished (sb_inprogress set by an interrupted mkfs)"
        );
        assert_eq!(plan(&tasks).await.unwrap(), [vec![], vec![remake.clone()]]);
        assert_eq!(apply(&tasks).await.unwrap(), [vec![], vec![remake]]);
        assert_eq!(xfs_inprogress_byte(&part), 0);
        try_mount_xfs(&part).expect("the remade filesystem mounts");
        assert_eq!(plan(&tasks).await.unwrap(), [Vec::<String>::new(), vec![]], "converged");
    });
}

#[test]
fn other_filesystem_is_named() {
    in_namespace("other_filesystem_is_named", || async {
        let disk = LoopDisk::new();
        apply(&[partition(&disk.dev, false)]).await.unwrap();
        run("mkfs.ext4", &["-q", &disk.part()]);
        let err = apply(&seed(&disk.dev, false)).await.unwrap_err();
        assert!(err.contains(&format!("{}: ext4 is there, xfs asked", disk.part())), "{err}");
    });
}

/// A disk named by a stable link, as `/dev/disk/by-id/...` names it where udev runs. This
/// machine has no udev and its /dev is the machine's, so the link sits on a tmpfs mounted over
/// /dev/shm in this test's private mount namespace. The tasks resolve it: refusals name the
/// link and the device, and a wipe through a link outside /dev/disk/by-id/ is refused.
#[test]
fn disk_named_by_a_link_is_resolved_and_named_both_ways() {
    in_namespace("disk_named_by_a_link_is_resolved_and_named_both_ways", || async {
        run("mount", &["-t", "tmpfs", "brickyard-links", "/dev/shm"]);
        let disk = LoopDisk::new();
        let link = "/dev/shm/virtio-brickyard-test";
        std::os::unix::fs::symlink(&disk.dev, link).unwrap();
        let sum = ext4_with_file(&disk.dev);
        let err = apply(&seed(link, false)).await.unwrap_err();
        assert!(
            err.contains(&format!("{link} ({}) is not empty: found an ext4 filesystem", disk.dev))
                && err.contains(&format!("set wipe = true for {link} to destroy it")),
            "{err}"
        );
        assert_eq!(checksum_on(&disk.dev), sum, "the refused disk's file is intact");

        // A link outside /dev/disk/by-id/ is no identity: a wipe through it is refused too.
        let whole = device_checksum(&disk.dev);
        let err = apply(&seed(link, true)).await.unwrap_err();
        assert!(
            err.contains(&format!("refusing to wipe {link} ({}): {link} names no disk identity", disk.dev)),
            "{err}"
        );
        assert_eq!(device_checksum(&disk.dev), whole, "the refused disk is unchanged");
    });
}

/// Applies `tasks` through a lab agent's Apply RPC; per task (in order) its changes or its
/// failure message (`skipped: ...` for tasks after a failure).
async fn apply_rpc(
    client: &mut brickyard_proto::v1::agent_client::AgentClient<tonic::transport::Channel>,
    tasks: Vec<v1::Task>,
) -> Vec<Result<Vec<String>, String>> {
    use v1::task_event::Event;
    let mut stream = client.apply(v1::TaskBatch { tasks }).await.expect("Apply RPC").into_inner();
    let mut results = Vec::new();
    while let Some(event) = stream.message().await.expect("Apply event stream") {
        match event.event {
            Some(Event::Started(_) | Event::Progress(_)) | None => {}
            Some(Event::Unchanged(_)) => results.push(Ok(Vec::new())),
            Some(Event::Changed(c)) => results.push(Ok(c.changes)),
            Some(Event::Failed(e)) => results.push(Err(e.message)),
            Some(Event::Skipped(e)) => results.push(Err(format!("skipped: {}", e.message))),
        }
    }
    results
}

/// The same tasks through the real agent of a lab server (its own mount namespace, overlay
/// root, private /etc/fstab): fresh disk → partitioned, formatted, mounted, in fstab once; a
/// second apply changes nothing; and the machine's own root disk, which the lab host cannot
/// see mounted, is refused even with wipe.
#[test]
fn lab_agent_prepares_its_disk_and_refuses_the_machines_root() {
    let rt = || tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let root = rt()
        .block_on(blockdev::list(&SystemRunner, &HostPaths::system()))
        .unwrap()
        .into_iter()
        .find(|d| d.carries_root())
        .expect("no block device carries / on this machine; the test needs one")
        .path;
    let lab = TestLab::up("disk", 1, 0);
    let spec = lab.spec();
    let server = &spec.servers[0];
    let disk = server.disk.as_ref().and_then(|d| d.device.clone()).expect("lab server has a disk device");
    let target = spec.hosts().into_iter().find(|h| h.name == server.name).unwrap();
    let pki = spec.pki_dir();
    let tasks = |wipe| {
        vec![
            partition(&disk, wipe),
            mkfs(&disk, v1::FilesystemType::Xfs, wipe),
            mount(&disk, v1::FilesystemType::Xfs, "/vdisk"),
        ]
    };
    let (first, second, refused) = lab.in_control_ns(|| {
        rt().block_on(async {
            let mut client = brickyard::client::connect(&pki, &target).await.expect("connect to the lab agent");
            let first = apply_rpc(&mut client, tasks(false)).await;
            let second = apply_rpc(&mut client, tasks(true)).await;
            let refused = apply_rpc(&mut client, vec![partition(&root, true)]).await;
            (first, second, refused)
        })
    });
    assert!(first.iter().all(|r| r.as_ref().is_ok_and(|c| !c.is_empty())), "first apply: {first:?}");
    assert_eq!(second, vec![Ok(Vec::new()); 3], "second apply changes nothing");
    let err = refused[0].as_ref().unwrap_err();
    assert!(err.starts_with(root.as_str()) && err.contains("even with wipe"), "{err}");

    let out = lab.exec(&server.name, &["cat", "/etc/fstab"]);
    let fstab = String::from_utf8_lossy(&out.stdout);
    assert_eq!(fstab.lines().filter(|l| l.contains(" /vdisk xfs inode64,noatime,nofail ")).count(), 1, "{fstab}");
    assert!(!std::fs::read_to_string("/etc/fstab").unwrap_or_default().contains("/vdisk xfs"), "leaked to real fstab");
    let out = lab.exec(&server.name, &["findmnt", "-n", "-o", "SOURCE", "/vdisk"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("{disk}p1"));
}

/// How long a killed lab agent may take to be restarted and answer again.
const RESTART_TIMEOUT: Duration = Duration::from_secs(30);

/// Issue #4's interrupted run, for real: a lab agent applies partition + mkfs, is SIGKILLed
/// before the mount (its host's init restarts it), and the full batch then reuses the
/// partition and filesystem, mounts, and records one fstab entry; a second apply changes
/// nothing.
#[test]
fn lab_agent_killed_after_mkfs_restarts_and_apply_converges() {
    let lab = TestLab::up("kill", 1, 0);
    let spec = lab.spec();
    let server = &spec.servers[0];
    let host = server.name.as_str();
    let disk = server.disk.as_ref().and_then(|d| d.device.clone()).expect("lab server has a disk device");
    let target = spec.hosts().into_iter().find(|h| h.name == server.name).unwrap();
    let pki = spec.pki_dir();
    let brick =
        rpc::task("brick dir", Kind::BrickDir(v1::BrickDir { mount_point: "/vdisk".into(), dir: "brick".into() }));
    let batch = vec![
        partition(&disk, false),
        mkfs(&disk, v1::FilesystemType::Xfs, false),
        mount(&disk, v1::FilesystemType::Xfs, "/vdisk"),
        brick,
    ];
    let rt = || tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let agent_pid = || {
        let out = lab.exec(host, &["cat", brickyard_lab::AGENT_PID_IN_HOST]);
        assert_success("reading the agent's pid file in the host", &out);
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };

    let first = lab.in_control_ns(|| {
        rt().block_on(async {
            let mut client = brickyard::client::connect(&pki, &target).await.expect("connect to the lab agent");
            rpc::apply(&mut client, &batch[..2]).await
        })
    });
    starts(&first, &[&format!("{}: changed", batch[0].id), &format!("{}: changed", batch[1].id)]);

    let killed = agent_pid();
    assert_success("kill -KILL the agent in the host", &lab.exec(host, &["kill", "-KILL", &killed]));
    let started = Instant::now();
    let (second, third) = lab.in_control_ns(|| {
        rt().block_on(async {
            let mut client = loop {
                let answer = match brickyard::client::connect(&pki, &target).await {
                    Ok(mut c) => {
                        c.get_facts(v1::GetFactsRequest::default()).await.map(|_| c).map_err(|e| e.to_string())
                    }
                    Err(e) => Err(e.to_string()),
                };
                match answer {
                    Ok(client) if agent_pid() != killed => break client,
                    last => assert!(
                        started.elapsed() < RESTART_TIMEOUT,
                        "awaited a restarted agent (pid other than {killed}) answering GetFacts on {host} for \
                         {RESTART_TIMEOUT:?}; last: {:?}",
                        last.map(|_| "answered, but the pid file still names the killed agent")
                    ),
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            };
            eprintln!("agent restarted and answering after {:?}", started.elapsed());
            (rpc::apply(&mut client, &batch).await, rpc::apply(&mut client, &batch).await)
        })
    });
    let ids: Vec<&str> = batch.iter().map(|t| t.id.as_str()).collect();
    starts(
        &second,
        &[
            &format!("{}: unchanged", ids[0]),
            &format!("{}: unchanged", ids[1]),
            &format!("{}: changed", ids[2]),
            &format!("{}: changed", ids[3]),
        ],
    );
    let unchanged: Vec<String> = ids.iter().map(|id| format!("{id}: unchanged")).collect();
    starts(&third, &unchanged.iter().map(String::as_str).collect::<Vec<_>>());

    let out = lab.exec(host, &["cat", "/etc/fstab"]);
    let fstab = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        fstab.lines().filter(|l| l.contains(" /vdisk xfs inode64,noatime,nofail ")).count(),
        1,
        "one managed entry:\n{fstab}"
    );
    let out = lab.exec(host, &["findmnt", "-n", "-o", "SOURCE", "/vdisk"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("{disk}p1"));
    let log = std::fs::read_to_string(lab.dir().join("hosts").join(host).join("host.log")).unwrap_or_default();
    assert!(log.contains(&format!("agent (pid {killed}) killed by SIGKILL, restarting it")), "host log:\n{log}");
}
