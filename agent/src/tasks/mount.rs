//! `MountFilesystem`: mounts the disk's single partition (found through sysfs) at a mount point
//! and keeps a `UUID=` line for it in /etc/fstab, marked as managed and keyed by the mount point
//! so re-runs replace it. Options default to brick-friendly ones (xfs `inode64,noatime`, ext4
//! `noatime`) and always include `nofail`, so a missing disk does not stop the boot. Already
//! mounted there → unchanged; anything else mounted there → refused. The mount point obeys the
//! path policy (no system tree; at run time no symlink on the way, and absent or empty when it
//! is to be mounted, `crate::host::pathcheck`). Touches: the mount point
//! directory, the mount table (`mount`), /etc/fstab (atomic write); reads sysfs, /proc, /dev
//! and `blkid -p`.

use std::fmt;

use async_trait::async_trait;
use brickyard_proto::types::AbsPath;
use brickyard_proto::v1;

use super::disk::disk_ref;
use super::filesystem::FsType;
use super::shape::{Plan, Task, TaskError};
use crate::host::blockdev::{self, Disk, DiskRef, HostPaths};
use crate::host::etcfile;
use crate::host::mountinfo;
use crate::host::pathcheck::{self, MountPoint};
use crate::host::runner::{Cmd, Runner};
use crate::host::Context;

#[derive(Debug)]
pub struct MountFilesystem {
    disk: DiskRef,
    fs: FsType,
    mount_point: AbsPath,
    /// Joined with `,`; `nofail` included.
    options: String,
    paths: HostPaths,
}

/// One step of apply, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Mkdir(AbsPath),
    Mount(Cmd),
    /// The fstab line to keep under the mount point's managed entry.
    Fstab(String),
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Mkdir(dir) => write!(f, "mkdir {dir}"),
            Step::Mount(cmd) => f.write_str(&cmd.display()),
            Step::Fstab(line) => write!(f, "/etc/fstab: {line}"),
        }
    }
}

impl MountFilesystem {
    pub fn from_proto(task: &v1::MountFilesystem) -> Result<Self, TaskError> {
        let disk = disk_ref(&task.disk, &task.cinder_volume)?;
        let fs = FsType::from_proto(task.filesystem)?;
        let mount_point = AbsPath::checked("mount point", &task.mount_point)?;
        if let Err(e) = mount_point.require_outside_system() {
            return Err(TaskError::InvalidTask(format!(
                "mount point for {disk}: {e}; choose a dedicated one such as /vdisk"
            )));
        }
        let mut options: Vec<String> = if task.options.is_empty() {
            fs.default_options().iter().map(|o| o.to_string()).collect()
        } else {
            task.options.clone()
        };
        for o in &options {
            if o.is_empty()
                || o.starts_with('-')
                || !o.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '=' | '_' | '.' | '-' | ':' | '/' | '+'))
            {
                return Err(TaskError::InvalidTask(format!(
                    "mount option {o:?} for {mount_point}: only letters, digits and = _ . - : / + are allowed"
                )));
            }
        }
        if !options.iter().any(|o| o == "nofail") {
            options.push("nofail".into());
        }
        Ok(Self { disk, fs, mount_point, options: options.join(","), paths: HostPaths::system() })
    }

    fn fstab_line(&self, uuid: &str) -> String {
        format!("UUID={uuid} {} {} {} 0 {}", self.mount_point, self.fs.name(), self.options, self.fs.fsck_pass())
    }

    fn mount_cmd(&self, runner: &dyn Runner, device: &str) -> Result<Cmd, TaskError> {
        Ok(runner.cmd("mount")?.args(["-t", self.fs.name(), "-o", &self.options, device, self.mount_point.as_str()]))
    }
}

#[async_trait]
impl Task for MountFilesystem {
    type Change = Step;

    async fn plan(&self, ctx: &Context) -> Result<Plan<Step>, TaskError> {
        let runner = ctx.runner.as_ref();
        let mp = self.mount_point.as_str();
        let disk = Disk::inspect_for_change(&self.paths, &self.disk)?;
        let mounts = self.paths.mounts()?;
        // The device, its major:minor and UUID, or what apply waits for.
        let (device, dev_number, uuid, waits_for) = match disk.single_partition()? {
            None => {
                let future = format!("/dev/{}", blockdev::first_partition_name(&disk.name));
                let waits = format!("{} has no partition yet: PartitionDisk must create {future} first", disk.label());
                (future, None, None, Some(waits))
            }
            Some(part) => {
                let path = part.path();
                let sig = blockdev::probe(runner, &path).await?;
                match sig.fstype.as_deref() {
                    Some(fs) if fs == self.fs.name() && !sig.ambivalent => {
                        let uuid = sig.uuid.clone().ok_or_else(|| {
                            TaskError::Conflict(format!("{path}: the {fs} filesystem has no UUID for /etc/fstab"))
                        })?;
                        (path, Some(part.dev.clone()), Some(uuid), None)
                    }
                    None if sig.is_empty() => {
                        let waits = format!("{path} has no filesystem yet: MakeFilesystem must make it first");
                        (path, None, None, Some(waits))
                    }
                    _ => {
                        return Err(TaskError::Conflict(format!(
                            "{path}: {} is there, {} asked to mount at {mp}",
                            sig.fstype.clone().unwrap_or_else(|| sig.describe().unwrap_or_default()),
                            self.fs.name()
                        )))
                    }
                }
            }
        };
        let ours = |m: &mountinfo::Mount| Some(&m.dev) == dev_number.as_ref() || m.source == device;
        let mut steps = Vec::new();
        match mountinfo::at(&mounts, mp) {
            // Mounted with other options stays as is; fstab carries the new ones to the next mount.
            Some(m) if ours(m) => {}
            Some(m) => {
                return Err(TaskError::Conflict(format!(
                    "{mp} already has {} ({}) mounted; {device} is not mounted there",
                    m.source, m.fstype
                )))
            }
            None => {
                if let Some(elsewhere) = mounts.iter().find(|m| ours(m)) {
                    return Err(TaskError::Conflict(format!(
                        "{device} is already mounted at {}; {mp} asked",
                        elsewhere.mount_point
                    )));
                }
                if pathcheck::new_mount_point(&self.paths.host(mp)).await? == MountPoint::Absent {
                    steps.push(Step::Mkdir(self.mount_point.clone()));
                }
                steps.push(Step::Mount(self.mount_cmd(runner, &device)?));
            }
        }
        let fstab_path = self.paths.fstab();
        let fstab =
            etcfile::read_or_empty(&fstab_path).map_err(TaskError::io(format!("reading {}", fstab_path.display())))?;
        let mut warnings = Vec::new();
        match unmanaged_fstab_line(&fstab, mp) {
            // A line written by hand (e.g. a pool built before Brickyard) that already mounts
            // this filesystem here is kept as it is: it is not Brickyard's to rewrite.
            Some(line) if self.mounts_this(line, &device, uuid.as_deref()) => {
                if !fstab_options(line).any(|o| o == "nofail") {
                    warnings.push(format!(
                        "/etc/fstab mounts {mp} with a line Brickyard did not write and keeps, without nofail \
                         (a missing disk stops the boot): {line:?}"
                    ));
                }
            }
            Some(line) => {
                return Err(TaskError::Conflict(format!(
                    "/etc/fstab already mounts {mp} with a line brickyard does not manage: {line:?}; remove it first"
                )))
            }
            None => {
                let line = self.fstab_line(uuid.as_deref().unwrap_or("<uuid-of-the-new-filesystem>"));
                if etcfile::get_entry(&fstab, mp) != Some(line.as_str()) {
                    steps.push(Step::Fstab(line));
                }
            }
        }
        Ok(Plan { waits_for, warnings, ..Plan::of(steps) })
    }

    async fn apply(&self, ctx: &Context, plan: Plan<Step>) -> Result<Vec<Step>, TaskError> {
        let mp = self.mount_point.as_str();
        for step in &plan.changes {
            match step {
                Step::Mkdir(dir) => {
                    std::fs::create_dir_all(self.paths.host(dir.as_str()))
                        .map_err(TaskError::io(format!("creating {dir}")))?;
                }
                Step::Mount(cmd) => {
                    ctx.runner.run(cmd).await?;
                }
                Step::Fstab(line) => {
                    let path = self.paths.fstab();
                    let old = etcfile::read_or_empty(&path).map_err(TaskError::io("reading /etc/fstab"))?;
                    let new = etcfile::set_entry(&old, mp, Some(line));
                    etcfile::atomic_write(&path, new.as_bytes(), 0o644).map_err(TaskError::io("writing /etc/fstab"))?;
                }
            }
        }
        Ok(plan.changes)
    }
}

impl MountFilesystem {
    /// Whether fstab `line` mounts this task's filesystem (`UUID=`, its by-uuid link or the
    /// partition's device path) as this filesystem type.
    fn mounts_this(&self, line: &str, device: &str, uuid: Option<&str>) -> bool {
        let mut fields = line.split_whitespace();
        let (Some(source), Some(_), Some(fstype)) = (fields.next(), fields.next(), fields.next()) else {
            return false;
        };
        let by_uuid = uuid.is_some_and(|u| {
            source.strip_prefix("UUID=").map(|s| s.trim_matches('"')) == Some(u)
                || source == format!("/dev/disk/by-uuid/{u}")
        });
        fstype == self.fs.name() && (by_uuid || source == device)
    }
}

/// The options field of an fstab line, split at commas.
fn fstab_options(line: &str) -> impl Iterator<Item = &str> {
    line.split_whitespace().nth(3).unwrap_or_default().split(',')
}

/// A line of `fstab` that mounts something at `mount_point` but is not brickyard's managed
/// entry for it: keeping both would mount twice at boot.
fn unmanaged_fstab_line<'a>(fstab: &'a str, mount_point: &str) -> Option<&'a str> {
    let managed = etcfile::get_entry(fstab, mount_point);
    let mut skip_next = false;
    for line in fstab.lines() {
        if std::mem::take(&mut skip_next) && Some(line) == managed {
            continue;
        }
        let trimmed = line.trim_start();
        if trimmed.starts_with('#') {
            skip_next = trimmed.starts_with("# brickyard-managed:");
            continue;
        }
        if trimmed.split_whitespace().nth(1) == Some(mount_point) {
            return Some(line);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::blockdev::testhost::FakeHost;
    use crate::host::runner::fake::FakeRunner;
    use crate::tasks::shape::AnyTask;
    use crate::tasks::testing::converges;
    use std::sync::Arc;

    const XFS: &str = include_str!("../fixtures/blkid/xfs-partition.txt");
    const UUID: &str = "7b56d2b3-670e-4de9-9775-bcde44a7e225";
    const FSTAB: &str = "# /etc/fstab\nUUID=abc / ext4 errors=remount-ro 0 1\n";

    fn host() -> FakeHost {
        let host = FakeHost::default();
        host.disk("loop0", 1048576).partition("loop0", 1, 2048, 1046528);
        std::fs::write(host.paths.fstab(), FSTAB).unwrap();
        host
    }

    fn task(host: &FakeHost, options: &[&str]) -> MountFilesystem {
        let proto = v1::MountFilesystem {
            disk: "/dev/loop0".into(),
            filesystem: v1::FilesystemType::Xfs.into(),
            mount_point: "/vdisk".into(),
            options: options.iter().map(|o| o.to_string()).collect(),
            ..Default::default()
        };
        MountFilesystem { paths: host.paths.clone(), ..MountFilesystem::from_proto(&proto).unwrap() }
    }

    const MOUNT: &str = "/usr/bin/mount -t xfs -o inode64,noatime,nofail /dev/loop0p1 /vdisk";

    /// A host with mount(8) whose blkid finds `blkid` on loop0p1.
    fn probed(blkid: &str) -> FakeRunner {
        FakeRunner::default().installed("/usr/bin/mount").expect("/usr/sbin/blkid -p -o export /dev/loop0p1", blkid)
    }

    fn ctx(blkid: &str) -> Context {
        Context::direct(probed(blkid))
    }

    /// Mounted (as the kernel then shows it) and in fstab: the plan after it is empty.
    #[tokio::test]
    async fn mounts_then_writes_one_fstab_entry() {
        let host = Arc::new(host());
        let kernel = host.clone();
        let runner = probed(XFS)
            .expect("/usr/sbin/blkid -p -o export /dev/loop0p1", XFS)
            .expect(MOUNT, "")
            .then(move || {
                kernel.mountinfo(
                    "22 1 254:0 / / rw - ext4 /dev/vda rw\n\
                     90 22 259:0 / /vdisk rw,noatime - xfs /dev/loop0p1 rw,inode64\n",
                );
            })
            .expect("/usr/sbin/blkid -p -o export /dev/loop0p1", XFS);
        let (_, done) = converges(&task(&host, &[]), &Context::direct(runner)).await;
        let line = format!("UUID={UUID} /vdisk xfs inode64,noatime,nofail 0 0");
        assert_eq!(done, ["mkdir /vdisk".to_owned(), MOUNT.to_owned(), format!("/etc/fstab: {line}"),]);
        assert!(host.paths.host("/vdisk").is_dir());
        let fstab = std::fs::read_to_string(host.paths.fstab()).unwrap();
        assert_eq!(fstab, format!("{FSTAB}# brickyard-managed: /vdisk\n{line}\n"));
    }

    #[tokio::test]
    async fn unformatted_partition_plans_but_does_not_apply() {
        let host = host();
        let check = task(&host, &[]).check(&ctx("")).await.unwrap();
        assert_eq!(check.changes[1], MOUNT);
        assert_eq!(check.warnings, ["/dev/loop0p1 has no filesystem yet: MakeFilesystem must make it first"]);
        let err = task(&host, &[]).run(&ctx("")).await.unwrap_err();
        assert!(matches!(err, TaskError::NotReady(_)), "{err}");
        assert_eq!(err.to_string(), "/dev/loop0p1 has no filesystem yet: MakeFilesystem must make it first");
    }

    #[tokio::test]
    async fn something_else_mounted_there_is_refused() {
        let host = host();
        host.mountinfo("22 1 254:0 / / rw - ext4 /dev/vda rw\n90 22 0:40 / /vdisk rw - tmpfs tmpfs rw\n");
        let err = task(&host, &[]).check(&ctx(XFS)).await.unwrap_err().to_string();
        assert_eq!(err, "/vdisk already has tmpfs (tmpfs) mounted; /dev/loop0p1 is not mounted there");
    }

    #[tokio::test]
    async fn other_filesystem_is_named() {
        let host = host();
        let err = task(&host, &[]).check(&ctx("TYPE=ext4\nUUID=x\n")).await.unwrap_err().to_string();
        assert_eq!(err, "/dev/loop0p1: ext4 is there, xfs asked to mount at /vdisk");
    }

    /// The run-time path policy: a mount point through a symlink, or one that holds files, is
    /// refused as unsafe, naming the path and what is there; nothing is created or mounted.
    #[tokio::test]
    async fn symlinked_or_non_empty_mount_points_are_refused() {
        let host = host();
        let real = host.paths.host("/srv/real");
        std::fs::create_dir_all(&real).unwrap();
        std::os::unix::fs::symlink(&real, host.paths.host("/vdisk")).unwrap();
        let err = task(&host, &[]).check(&ctx(XFS)).await.unwrap_err();
        assert!(matches!(err, TaskError::Unsafe(_)), "{err:?}");
        let vdisk = host.paths.host("/vdisk");
        assert_eq!(
            err.to_string(),
            format!(
                "{} passes through a symlink: {} -> {} (brickyard uses real directories only)",
                vdisk.display(),
                vdisk.display(),
                real.display()
            )
        );

        std::fs::remove_file(&vdisk).unwrap();
        std::fs::create_dir(&vdisk).unwrap();
        std::fs::write(vdisk.join("notes.txt"), "someone's data").unwrap();
        let err = task(&host, &[]).run(&ctx(XFS)).await.unwrap_err();
        assert!(matches!(err, TaskError::Unsafe(_)), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!("{} is not empty: it holds 1 entry (e.g. notes.txt); a new mount would hide them", vdisk.display())
        );
        assert_eq!(std::fs::read_to_string(vdisk.join("notes.txt")).unwrap(), "someone's data");
    }

    #[test]
    fn hand_written_fstab_line_for_this_filesystem_is_kept() {
        for source in ["/dev/loop0p1", &format!("UUID={UUID}"), &format!("/dev/disk/by-uuid/{UUID}")] {
            let host = host();
            let line = format!("{source} /vdisk xfs defaults 0 0");
            std::fs::write(host.paths.fstab(), format!("{FSTAB}{line}\n")).unwrap();
            let t = task(&host, &[]);
            assert!(t.mounts_this(&line, "/dev/loop0p1", Some(UUID)), "{line}");
            assert!(!t.mounts_this(&line.replace("xfs", "ext4"), "/dev/loop0p1", Some(UUID)), "another type");
            assert!(!t.mounts_this(&line, "/dev/loop1p1", Some("other")), "another filesystem");
        }
        assert_eq!(fstab_options("/dev/vdb1 /vdisk xfs noatime,nofail 0 0").collect::<Vec<_>>(), ["noatime", "nofail"]);
    }

    #[tokio::test]
    async fn hand_written_fstab_line_is_refused() {
        let host = host();
        std::fs::write(host.paths.fstab(), format!("{FSTAB}/dev/vdb1 /vdisk ext4 defaults 0 0\n")).unwrap();
        std::fs::create_dir(host.paths.host("/vdisk")).unwrap();
        let err = task(&host, &[]).check(&ctx(XFS)).await.unwrap_err().to_string();
        assert!(err.contains("does not manage: \"/dev/vdb1 /vdisk ext4 defaults 0 0\""), "{err}");
    }

    #[test]
    fn options_and_mount_points_are_validated() {
        let host = host();
        assert_eq!(task(&host, &["defaults"]).options, "defaults,nofail");
        assert_eq!(task(&host, &["noatime", "nofail"]).options, "noatime,nofail");
        let proto = |mp: &str, opt: &str| v1::MountFilesystem {
            disk: "/dev/vdb".into(),
            filesystem: 0,
            mount_point: mp.into(),
            options: vec![opt.into()],
            ..Default::default()
        };
        for (mp, tree) in
            [("/", "is /"), ("/etc", "is /etc"), ("/var/lib/x", "lies under /var/lib"), ("/var", "holds /var/lib")]
        {
            let err = MountFilesystem::from_proto(&proto(mp, "noatime")).unwrap_err().to_string();
            assert_eq!(
                err,
                format!(
                    "mount point for /dev/vdb: {mp} {tree}, a system directory (never a mount point, brick or brick \
                     dir); choose a dedicated one such as /vdisk"
                )
            );
        }
        assert!(MountFilesystem::from_proto(&proto("/vdisk", "a,b")).is_err());
        assert!(MountFilesystem::from_proto(&proto("/vdisk", "context=\"x\"")).is_err());
        assert_eq!(
            unmanaged_fstab_line(
                "# brickyard-managed: /vdisk\nUUID=1 /vdisk xfs nofail 0 0\n/dev/x /vdiskette xfs 0 0\n",
                "/vdisk"
            ),
            None
        );
    }
}
