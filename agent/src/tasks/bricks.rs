//! `EnsureBricks`: this server's brick directories, checked before their volumes are created
//! or repaired (the volumes phase runs it after the pool barrier, so this glusterd knows every
//! volume of the pool). Each brick must sit on the filesystem mounted at its mount point — not
//! on / unless its volume says force — which is also what makes restarting a dead brick safe.
//! Its root may carry no volume-id (`trusted.glusterfs.volume-id`) but its own volume's.
//!
//! A volume-id that no volume of the pool has was left by a failed or deleted `volume create`,
//! and gluster then refuses the path ("is already part of a volume"). It is cleared — with
//! `trusted.gfid` and the `.glusterfs` directory, gluster's own recipe for reusing a brick —
//! only when the directory holds nothing but gluster's metadata: `.glusterfs`; the empty
//! `.glusterfs-anonymous-inode-<volume-id>` that gluster 10 makes in every replicated brick root
//! (it holds entries only while a heal is pending); and a `.trashcan` holding nothing but its
//! empty `internal_op` (older releases make it on every brick; a trash holding files is user
//! data). Anything else is refused, naming the brick, how many entries it holds and the commands
//! to clear it by hand after moving them away: nothing a user wrote is ever deleted or re-tagged.
//!
//! Reads mountinfo, stat()s and lists the brick directories and reads their xattrs; runs
//! `gluster volume info` only when a brick carries a volume-id. Apply removes the two xattrs and
//! the metadata directories of a recoverable brick, and nothing else.

use std::fmt;
use std::io::ErrorKind;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use async_trait::async_trait;
use brickyard_proto::types::{AbsPath, VolumeName};
use brickyard_proto::v1;

use super::shape::{Plan, Task, TaskError};
use crate::gluster::{self, VolumeInfo, VOLUME_ID};
use crate::host::mountinfo::{self, Mount};
use crate::host::Context;

/// The xattr of every file and directory gluster has seen, the brick root included.
const GFID: &str = "trusted.gfid";
/// gluster's metadata directory in every brick root.
const GLUSTERFS_DIR: &str = ".glusterfs";
/// The replicate translator's directory for entries whose heal is pending (empty otherwise).
const ANON_INODE_PREFIX: &str = ".glusterfs-anonymous-inode-";
/// The trash translator's directory and the one entry it holds when no file was ever trashed.
const TRASH_DIR: &str = ".trashcan";
const TRASH_INTERNAL: &str = "internal_op";
/// How many entry names a refusal lists.
const NAMES_SHOWN: usize = 5;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Brick {
    volume: VolumeName,
    path: AbsPath,
    mount_point: AbsPath,
    force: bool,
}

#[derive(Debug)]
pub struct EnsureBricks {
    bricks: Vec<Brick>,
}

/// What a brick directory holds, as far as the checks are concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Found {
    /// No directory yet: BrickDir (or gluster itself) makes it; nothing to check.
    Absent,
    /// A directory without a volume-id.
    Untagged,
    /// A directory carrying a volume-id: the entries of its root other than gluster's metadata,
    /// and gluster's empty metadata directories (relative, each after those inside it).
    Tagged { id: String, user_entries: Vec<String>, empty_dirs: Vec<String> },
}

/// A stale brick of `host` to clear: its path, the id, and the empty metadata directories to
/// remove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    host: String,
    path: AbsPath,
    id: String,
    empty_dirs: Vec<String>,
}

impl fmt::Display for Recovery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "recover brick {}:{}: clear the stale volume-id {} left by a failed or deleted volume (it holds only \
             gluster metadata)",
            self.host, self.path, self.id
        )
    }
}

impl EnsureBricks {
    pub fn from_proto(task: &v1::EnsureBricks) -> Result<Self, TaskError> {
        if task.bricks.is_empty() {
            return Err(TaskError::InvalidTask("EnsureBricks names no brick".into()));
        }
        let mut bricks: Vec<Brick> = Vec::with_capacity(task.bricks.len());
        for b in &task.bricks {
            let brick = Brick {
                volume: VolumeName::new(&b.volume)?,
                path: AbsPath::checked("brick path", &b.path)?,
                mount_point: AbsPath::checked("mount point", &b.mount_point)?,
                force: b.force,
            };
            let below = if brick.mount_point.is_root() {
                !brick.path.is_root()
            } else {
                brick.path.as_str().strip_prefix(brick.mount_point.as_str()).is_some_and(|rest| rest.starts_with('/'))
            };
            if !below {
                return Err(TaskError::InvalidTask(format!(
                    "brick {} of volume {} is not a directory below its mount point {}",
                    brick.path, brick.volume, brick.mount_point
                )));
            }
            if bricks.iter().any(|other| other.path == brick.path) {
                return Err(TaskError::InvalidTask(format!("brick {} is listed twice", brick.path)));
            }
            bricks.push(brick);
        }
        Ok(Self { bricks })
    }

    /// What each brick holds; refuses a brick that is not on its mounted, non-root filesystem.
    fn inspect(brick: &Brick, mounts: &[Mount], host: &str) -> Result<Found, TaskError> {
        let (path, mp) = (brick.path.as_str(), brick.mount_point.as_str());
        let name = format!("brick {host}:{path} of volume {}", brick.volume);
        if mountinfo::at(mounts, mp).is_none() {
            return Err(TaskError::NotReady(format!(
                "{mp} is not mounted: {name} would be on the filesystem below it (MountFilesystem mounts the disk)"
            )));
        }
        let dev_of = |p: &str| std::fs::metadata(p).map(|m| m.dev()).map_err(TaskError::io(format!("stat {p}")));
        let mount_dev = dev_of(mp)?;
        if !brick.force && (brick.mount_point.is_root() || mount_dev == dev_of("/")?) {
            return Err(TaskError::Unsafe(format!(
                "{name} is on the root filesystem ({mp}); mount a separate disk there, or set force on the volume"
            )));
        }
        let meta = match std::fs::symlink_metadata(path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Found::Absent),
            Err(e) => return Err(TaskError::io(format!("stat {path}"))(e)),
        };
        if !meta.is_dir() {
            return Err(TaskError::Conflict(format!("{name}: {path} is not a directory")));
        }
        // A brick on its disk must be on that filesystem; one allowed on / may also be on a
        // filesystem mounted below it.
        if !brick.mount_point.is_root() && meta.dev() != mount_dev {
            return Err(TaskError::Conflict(format!(
                "{name} is not on the filesystem mounted at {mp} (something else is mounted on it or between)"
            )));
        }
        let Some(raw) = xattr::get(path, VOLUME_ID).map_err(TaskError::io(format!("reading {VOLUME_ID} of {path}")))?
        else {
            return Ok(Found::Untagged);
        };
        let id = uuid_text(&raw).ok_or_else(|| {
            TaskError::Conflict(format!("{name} carries a {VOLUME_ID} that is not a UUID ({} bytes)", raw.len()))
        })?;
        let mut user_entries = Vec::new();
        let mut empty_dirs = Vec::new();
        for name in list(Path::new(path))? {
            let entry = Path::new(path).join(&name);
            match name.as_str() {
                GLUSTERFS_DIR => {}
                n if n.starts_with(ANON_INODE_PREFIX) && is_empty_dir(&entry)? => empty_dirs.push(name.clone()),
                TRASH_DIR
                    if is_dir(&entry)
                        && list(&entry)? == [TRASH_INTERNAL]
                        && is_empty_dir(&entry.join(TRASH_INTERNAL))? =>
                {
                    empty_dirs.extend([format!("{TRASH_DIR}/{TRASH_INTERNAL}"), name.clone()])
                }
                _ => user_entries.push(name.clone()),
            }
        }
        user_entries.sort();
        Ok(Found::Tagged { id, user_entries, empty_dirs })
    }

    /// Whether a tagged brick is fine (`None`), recoverable, or refused, given the pool's volumes.
    fn judge(brick: &Brick, found: Found, volumes: &[VolumeInfo], host: &str) -> Result<Option<Recovery>, TaskError> {
        let Found::Tagged { id, user_entries, empty_dirs } = found else { return Ok(None) };
        let path = brick.path.as_str();
        match volumes.iter().find(|v| v.id.eq_ignore_ascii_case(&id)) {
            Some(v) if v.name == brick.volume.as_str() => Ok(None),
            Some(v) => Err(TaskError::Conflict(format!(
                "brick {host}:{path} belongs to volume {} (its {VOLUME_ID} is {id}), not to volume {}",
                v.name, brick.volume
            ))),
            None if user_entries.is_empty() => {
                Ok(Some(Recovery { host: host.to_owned(), path: brick.path.clone(), id, empty_dirs }))
            }
            None => {
                let mut shown = user_entries.iter().take(NAMES_SHOWN).cloned().collect::<Vec<_>>().join(", ");
                if user_entries.len() > NAMES_SHOWN {
                    shown.push_str(", ...");
                }
                let entries = match user_entries.len() {
                    1 => "1 entry".to_owned(),
                    n => format!("{n} entries"),
                };
                Err(TaskError::Unsafe(format!(
                    "brick {host}:{path} carries the volume-id {id} of a volume the pool no longer has (a failed or \
                     deleted volume create) and holds {entries} besides gluster's metadata ({shown}); brickyard \
                     never deletes or re-tags what a user wrote. To reuse it for volume {}, move those entries away, \
                     then run on {host}: setfattr -x {VOLUME_ID} {path}; setfattr -x {GFID} {path}; rm -rf \
                     {path}/{GLUSTERFS_DIR}",
                    brick.volume
                )))
            }
        }
    }
}

#[async_trait]
impl Task for EnsureBricks {
    type Change = Recovery;

    /// The recoveries to make; refuses what is not safe or not ready.
    async fn plan(&self, ctx: &Context) -> Result<Plan<Recovery>, TaskError> {
        let host = gluster::local_hostname()?;
        let mounts = mountinfo::read().map_err(TaskError::io("reading /proc/self/mountinfo"))?;
        let found = self
            .bricks
            .iter()
            .map(|b| Ok((b, Self::inspect(b, &mounts, &host)?)))
            .collect::<Result<Vec<_>, TaskError>>()?;
        let volumes = if found.iter().any(|(_, f)| matches!(f, Found::Tagged { .. })) {
            gluster::volume_info(ctx).await?
        } else {
            Vec::new()
        };
        let mut recoveries = Vec::new();
        for (brick, found) in found {
            recoveries.extend(Self::judge(brick, found, &volumes, &host)?);
        }
        Ok(Plan::of(recoveries))
    }

    async fn apply(&self, _ctx: &Context, plan: Plan<Recovery>) -> Result<Vec<Recovery>, TaskError> {
        for r in &plan.changes {
            clear(r)?;
        }
        Ok(plan.changes)
    }
}

/// Removes a stale brick's volume-id and gfid and gluster's metadata directories.
fn clear(r: &Recovery) -> Result<(), TaskError> {
    let path = Path::new(r.path.as_str());
    for name in [VOLUME_ID, GFID] {
        match xattr::remove(path, name) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENODATA) => {}
            Err(e) => return Err(TaskError::io(format!("removing {name} from {}", r.path))(e)),
        }
    }
    let glusterfs = path.join(GLUSTERFS_DIR);
    match std::fs::remove_dir_all(&glusterfs) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(TaskError::io(format!("removing {}", glusterfs.display()))(e)),
    }
    // remove_dir (not _all): each is empty, as inspect found; anything new in one makes this fail.
    for dir in &r.empty_dirs {
        let dir = path.join(dir);
        std::fs::remove_dir(&dir).map_err(TaskError::io(format!("removing {}", dir.display())))?;
    }
    Ok(())
}

fn is_dir(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir())
}

/// The entry names of directory `dir`.
fn list(dir: &Path) -> Result<Vec<String>, TaskError> {
    std::fs::read_dir(dir)
        .and_then(|entries| entries.map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned())).collect())
        .map_err(TaskError::io(format!("listing {}", dir.display())))
}

fn is_empty_dir(path: &Path) -> Result<bool, TaskError> {
    Ok(is_dir(path) && list(path)?.is_empty())
}

/// The 8-4-4-4-12 text of a 16-byte UUID.
fn uuid_text(raw: &[u8]) -> Option<String> {
    let bytes: &[u8; 16] = raw.try_into().ok()?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Some(format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::gluster::fixture;
    use crate::host::runner::fake::FakeRunner;
    use crate::tasks::shape::AnyTask;
    use crate::tasks::testing::converges;

    /// gv0's id in volume-info-all.xml.
    const GV0: &str = "9dac9e40-d9df-48cc-ae4d-eee3d219139f";
    const STALE: &str = "00112233-4455-6677-8899-aabbccddeeff";
    const INFO: &str = "/usr/sbin/gluster --mode=script --xml volume info";

    fn raw(id: &str) -> Vec<u8> {
        let hex: String = id.chars().filter(|c| *c != '-').collect();
        (0..16).map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap()).collect()
    }

    fn proto(volume: &str, path: &Path, mount_point: &Path, force: bool) -> v1::LocalBrick {
        v1::LocalBrick {
            volume: volume.into(),
            path: path.to_str().unwrap().into(),
            mount_point: mount_point.to_str().unwrap().into(),
            force,
        }
    }

    fn task(bricks: Vec<v1::LocalBrick>) -> Result<EnsureBricks, TaskError> {
        EnsureBricks::from_proto(&v1::EnsureBricks { bricks })
    }

    fn ctx(runner: FakeRunner) -> Context {
        Context::direct(runner)
    }

    /// A tmpfs on a temp dir, unmounted on drop (needs root, as in CI: tmpfs keeps trusted.* xattrs).
    struct Disk(tempfile::TempDir);

    impl Disk {
        fn new() -> Disk {
            let dir = tempfile::tempdir().unwrap();
            nix::mount::mount(Some("tmpfs"), dir.path(), Some("tmpfs"), nix::mount::MsFlags::empty(), Some("size=1m"))
                .expect("mounting a tmpfs for the EnsureBricks test needs root (CAP_SYS_ADMIN)");
            Disk(dir)
        }

        fn path(&self) -> &Path {
            self.0.path()
        }

        /// A brick directory `name` carrying `id`, with gluster's metadata as a started brick has it.
        fn brick(&self, name: &str, id: &str) -> std::path::PathBuf {
            let brick = self.path().join(name);
            std::fs::create_dir_all(brick.join(".glusterfs/00/00")).unwrap();
            std::fs::create_dir_all(brick.join(format!("{ANON_INODE_PREFIX}{id}"))).unwrap();
            std::fs::create_dir_all(brick.join(".trashcan/internal_op")).unwrap();
            xattr::set(&brick, VOLUME_ID, &raw(id)).unwrap();
            xattr::set(&brick, GFID, &raw("00000000-0000-0000-0000-000000000001")).unwrap();
            brick
        }
    }

    impl Drop for Disk {
        fn drop(&mut self) {
            let _ = nix::mount::umount2(self.0.path(), nix::mount::MntFlags::MNT_DETACH);
        }
    }

    #[test]
    fn bricks_must_lie_below_their_mount_point() {
        let p = |path: &str, mp: &str| v1::LocalBrick {
            volume: "gv0".into(),
            path: path.into(),
            mount_point: mp.into(),
            force: false,
        };
        assert!(task(vec![p("/vdisk/b1", "/vdisk")]).is_ok());
        assert!(task(vec![p("/b1", "/")]).is_ok());
        for (path, mp) in [("/vdisk", "/vdisk"), ("/vdisk2/b1", "/vdisk"), ("/", "/"), ("/vdisk/../etc", "/vdisk")] {
            assert!(task(vec![p(path, mp)]).is_err(), "{path} under {mp} accepted");
        }
        assert!(task(vec![p("/vdisk/b1", "/vdisk"), p("/vdisk/b1", "/vdisk")])
            .unwrap_err()
            .to_string()
            .contains("twice"));
        assert!(task(vec![]).is_err());
    }

    #[test]
    fn uuids_are_formatted_as_gluster_does() {
        assert_eq!(uuid_text(&raw(GV0)).as_deref(), Some(GV0));
        assert_eq!(uuid_text(b"short"), None);
    }

    #[tokio::test]
    async fn unmounted_and_root_filesystem_bricks_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let t = task(vec![proto("gv0", &dir.path().join("b1"), dir.path(), false)]).unwrap();
        let err = t.check(&ctx(FakeRunner::default())).await.unwrap_err();
        assert!(matches!(err, TaskError::NotReady(_)), "{err}");
        assert!(err.to_string().contains("is not mounted") && err.to_string().contains("MountFilesystem"), "{err}");

        let on_root = task(vec![proto("gv0", Path::new("/srv/b1"), Path::new("/"), false)]).unwrap();
        let err = on_root.check(&ctx(FakeRunner::default())).await.unwrap_err();
        assert!(matches!(err, TaskError::Unsafe(_)) && err.to_string().contains("root filesystem"), "{err}");
        let forced = task(vec![proto("gv0", Path::new("/nonexistent-brickyard/b1"), Path::new("/"), true)]).unwrap();
        assert_eq!(forced.plan(&ctx(FakeRunner::default())).await.unwrap(), Plan::unchanged());
    }

    #[tokio::test]
    async fn a_brick_on_another_filesystem_than_its_disk_is_a_conflict() {
        let disk = Disk::new();
        let brick = disk.path().join("b1");
        std::fs::create_dir(&brick).unwrap();
        nix::mount::mount(Some("tmpfs"), &brick, Some("tmpfs"), nix::mount::MsFlags::empty(), Some("size=1m")).unwrap();
        let t = task(vec![proto("gv0", &brick, disk.path(), false)]).unwrap();
        let err = t.check(&ctx(FakeRunner::default())).await.unwrap_err();
        assert!(matches!(err, TaskError::Conflict(_)), "{err}");
        assert!(err.to_string().contains(&format!("is not on the filesystem mounted at {}", disk.path().display())));
    }

    #[tokio::test]
    async fn own_untagged_and_absent_bricks_are_fine_and_need_gluster_only_when_tagged() {
        let disk = Disk::new();
        std::fs::create_dir(disk.path().join("fresh")).unwrap();
        let untagged = task(vec![
            proto("gv0", &disk.path().join("fresh"), disk.path(), false),
            proto("gv0", &disk.path().join("absent"), disk.path(), false),
        ])
        .unwrap();
        assert_eq!(untagged.plan(&ctx(FakeRunner::default())).await.unwrap(), Plan::unchanged());

        let own = disk.brick("own", GV0);
        std::fs::write(own.join("user-file"), "data").unwrap();
        let t = task(vec![proto("gv0", &own, disk.path(), false)]).unwrap();
        let c = ctx(FakeRunner::default().expect(INFO, &fixture("volume-info-all.xml")));
        assert_eq!(t.plan(&c).await.unwrap(), Plan::unchanged());

        let other = task(vec![proto("gva", &own, disk.path(), false)]).unwrap();
        let c = ctx(FakeRunner::default().expect(INFO, &fixture("volume-info-all.xml")));
        let err = other.check(&c).await.unwrap_err();
        assert!(matches!(err, TaskError::Conflict(_)), "{err}");
        assert!(err
            .to_string()
            .contains(&format!("belongs to volume gv0 (its {VOLUME_ID} is {GV0}), not to volume gva")));
    }

    #[tokio::test]
    async fn a_stale_brick_with_only_metadata_is_recovered() {
        let disk = Disk::new();
        let brick = disk.brick("b1", STALE);
        let t = task(vec![proto("gv0", &brick, disk.path(), false)]).unwrap();
        let host = gluster::local_hostname().unwrap();
        // Plan, then apply (planning again); untagged afterwards: nothing to do, and no gluster call.
        let c = ctx(FakeRunner::default()
            .expect(INFO, &fixture("volume-info-all.xml"))
            .expect(INFO, &fixture("volume-info-none.xml")));
        let (check, done) = converges(&t, &c).await;
        let want = format!(
            "recover brick {host}:{}: clear the stale volume-id {STALE} left by a failed or deleted volume (it holds \
             only gluster metadata)",
            brick.display()
        );
        assert_eq!(check.changes, std::slice::from_ref(&want));
        assert_eq!(done, [want]);
        assert_eq!(xattr::get(&brick, VOLUME_ID).unwrap(), None);
        assert_eq!(xattr::get(&brick, GFID).unwrap(), None);
        assert_eq!(std::fs::read_dir(&brick).unwrap().count(), 0, "metadata removed");
    }

    #[tokio::test]
    async fn a_stale_brick_holding_files_is_refused_untouched() {
        let disk = Disk::new();
        let brick = disk.brick("b1", STALE);
        std::fs::write(brick.join("report.txt"), "user data").unwrap();
        std::fs::create_dir(brick.join("photos")).unwrap();
        // A trash that holds a trashed file is user data too, and so is a pending heal's entry.
        std::fs::write(brick.join(".trashcan/old.txt"), "trashed").unwrap();
        std::fs::write(brick.join(format!("{ANON_INODE_PREFIX}{STALE}/entry")), "healing").unwrap();
        let t = task(vec![proto("gv0", &brick, disk.path(), false)]).unwrap();
        let host = gluster::local_hostname().unwrap();
        for _ in 0..2 {
            let c = ctx(FakeRunner::default().expect(INFO, &fixture("volume-info-none.xml")));
            let err = t.run(&c).await.unwrap_err();
            assert!(matches!(err, TaskError::Unsafe(_)), "{err}");
            let msg = err.to_string();
            let b = brick.display();
            assert!(msg.starts_with(&format!("brick {host}:{b} carries the volume-id {STALE}")), "{msg}");
            let listed = format!("holds 4 entries besides gluster's metadata ({ANON_INODE_PREFIX}{STALE}, .trashcan, photos, report.txt)");
            assert!(msg.contains(&listed), "{msg}");
            assert!(msg.ends_with(&format!(
                "run on {host}: setfattr -x {VOLUME_ID} {b}; setfattr -x {GFID} {b}; rm -rf {b}/.glusterfs"
            )));
        }
        assert_eq!(std::fs::read_to_string(brick.join("report.txt")).unwrap(), "user data");
        assert_eq!(std::fs::read_to_string(brick.join(".trashcan/old.txt")).unwrap(), "trashed");
        assert_eq!(xattr::get(&brick, VOLUME_ID).unwrap(), Some(raw(STALE)));
        assert!(brick.join(".glusterfs/00/00").is_dir());
    }
}
