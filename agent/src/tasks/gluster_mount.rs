//! `MountGlusterVolume`: a client's FUSE mount of a gluster volume, `mount -t glusterfs
//! SERVER1:/VOLUME MOUNT_POINT -o backup-volfile-servers=SERVER2:SERVER3`, and its /etc/fstab
//! entry `SERVER1:/VOLUME MOUNT_POINT glusterfs defaults,_netdev,nofail,backup-volfile-servers=...
//! 0 0` (managed, written atomically; `_netdev` and `nofail` so a boot with the pool away neither
//! waits for the mount nor fails on it). A mount whose statvfs() fails (its client process is
//! gone: "Transport endpoint is not connected") is stale: it is lazily unmounted (`umount -l`)
//! and mounted again; so is one whose client process crashed and hangs (its log says so, see
//! `gluster::client`), after that process is killed. One that only does not answer (servers
//! away) is left alone. A fresh mount whose client has not reached every brick in 10 s is
//! mounted once more (see `mount_reaching_bricks`). The mount point obeys the path policy (no system tree; no symlink on the
//! way; absent or empty before the first mount, checked off the async workers with a deadline).
//! Creates the mount point directory, runs mount(8) and umount(8), reads /proc/self/mountinfo,
//! edits /etc/fstab (all
//! under a [`HostPaths`] root: `/`, or a fake host in unit tests).

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use brickyard_proto::types::{AbsPath, HostName, VolumeName};
use brickyard_proto::v1;

use super::shape::{Plan, Task, TaskError};
use crate::gluster::{self, MountAnswer, FUSE_FSTYPE};
use crate::host::blockdev::HostPaths;
use crate::host::mountinfo::{self, Mount};
use crate::host::pathcheck::{self, MountPoint};
use crate::host::runner::{Cmd, CommandError};
use crate::host::Context;
use crate::host::{etcfile, process};
use brickyard_proto::poll::{self, Look};

/// How long a fresh mount may take to succeed, and then to show up and answer statvfs().
const MOUNT_TIMEOUT: Duration = Duration::from_secs(30);
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// How long a fresh mount may take to reach every brick (see `gluster::client`); a brick that
/// stays unreached (its server down) does not fail the mount: `status` shows it.
const BRICKS_REACHED: Duration = Duration::from_secs(10);
/// Between two mount(8) runs whose client process exited (see `MountGlusterVolume::mount`).
const MOUNT_RETRY_INTERVAL: Duration = Duration::from_secs(1);

/// Whether mount.glusterfs says its client process started and then exited: the mount itself
/// was accepted, what it needed from the servers was not there (yet).
fn client_exited(stderr: &str) -> bool {
    stderr.contains("Mount failed")
}

pub struct MountGlusterVolume {
    volume: VolumeName,
    servers: Vec<HostName>,
    mount_point: AbsPath,
    paths: HostPaths,
    /// How long a fresh mount's client may take to reach every brick ([`BRICKS_REACHED`]).
    bricks_reached: Duration,
}

/// One step of apply, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountChange {
    Mkdir(AbsPath),
    /// `umount -l MOUNT_POINT` of our mount gone stale, for `why` (statvfs()'s error, or the
    /// crash its client log reports), after killing its client process when that hangs.
    Unmount {
        mount_point: AbsPath,
        why: String,
        kill_client: bool,
    },
    /// `mount -t glusterfs SOURCE MOUNT_POINT [-o BACKUP]`.
    Mount {
        source: String,
        mount_point: AbsPath,
        backup: Option<String>,
    },
    /// The fresh mount at `mount_point` unmounted and mounted once more, done by apply when
    /// its client had not reached every brick (`why`: which, after how long).
    Remount {
        mount_point: AbsPath,
        why: String,
    },
    /// The managed /etc/fstab entry `line`, and the file's new `contents` with it.
    Fstab {
        line: String,
        contents: String,
    },
}

impl fmt::Display for MountChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MountChange::Mkdir(dir) => write!(f, "create directory {dir}"),
            MountChange::Unmount { mount_point, why, kill_client } => {
                let kill = if *kill_client { "kill -KILL its glusterfs client; " } else { "" };
                write!(f, "unmount the stale mount at {mount_point} ({why}): {kill}umount -l {mount_point}")
            }
            MountChange::Mount { source, mount_point, backup } => {
                let backup = backup.as_ref().map(|o| format!(" -o {o}")).unwrap_or_default();
                write!(f, "mount -t glusterfs {source} {mount_point}{backup}")
            }
            MountChange::Remount { mount_point, why } => {
                write!(f, "umount {mount_point} and mount it again: timed out waiting for {why}")
            }
            MountChange::Fstab { line, .. } => write!(f, "/etc/fstab: {line}"),
        }
    }
}

impl MountGlusterVolume {
    pub fn from_proto(task: &v1::MountGlusterVolume) -> Result<Self, TaskError> {
        let volume = VolumeName::new(&task.volume)?;
        if task.servers.is_empty() {
            return Err(TaskError::InvalidTask(format!("mount of volume {volume} names no server")));
        }
        let servers = task.servers.iter().map(|s| HostName::new(s)).collect::<Result<Vec<_>, _>>()?;
        let mount_point = AbsPath::checked("mount point", &task.mount_point)?;
        if let Err(e) = mount_point.require_outside_system() {
            return Err(TaskError::InvalidTask(format!("mount point for volume {volume}: {e}")));
        }
        Ok(Self { volume, servers, mount_point, paths: HostPaths::system(), bricks_reached: BRICKS_REACHED })
    }

    fn source(&self) -> String {
        format!("{}:/{}", self.servers[0], self.volume)
    }

    /// `backup-volfile-servers=S2:S3`, when there is more than one server.
    fn backup_option(&self) -> Option<String> {
        let rest: Vec<&str> = self.servers[1..].iter().map(HostName::as_str).collect();
        (!rest.is_empty()).then(|| format!("backup-volfile-servers={}", rest.join(":")))
    }

    fn fstab_line(&self) -> String {
        let mut options = "defaults,_netdev,nofail".to_owned();
        if let Some(backup) = self.backup_option() {
            options.push(',');
            options.push_str(&backup);
        }
        format!("{} {} glusterfs {options} 0 0", self.source(), self.mount_point)
    }

    /// Whether `m` is this volume from one of the task's servers.
    fn is_ours(&self, m: &Mount) -> bool {
        m.fstype == FUSE_FSTYPE && self.is_this_volume(&m.source)
    }

    /// Whether `source` (`HOST:/VOLUME`, as mounts and fstab lines name it) is this volume
    /// from one of the task's servers.
    fn is_this_volume(&self, source: &str) -> bool {
        source.split_once(":/").is_some_and(|(host, vol)| {
            vol == self.volume.as_str() && self.servers.iter().any(|s| s.as_str().eq_ignore_ascii_case(host))
        })
    }

    /// Whether fstab `line` mounts this volume from one of the task's servers (type
    /// `glusterfs`).
    fn fstab_mounts_this(&self, line: &str) -> bool {
        let mut fields = line.split_whitespace();
        match (fields.next(), fields.next(), fields.next()) {
            (Some(source), Some(_), Some("glusterfs")) => self.is_this_volume(source),
            _ => false,
        }
    }

    /// Pure: what to do given the mounts, how our mount answered statvfs() (when mounted), the
    /// fstab text and whether the mount point exists; and warnings.
    fn plan_with(
        &self,
        mounts: &[Mount],
        answer: Option<MountAnswer>,
        fstab: &str,
        dir_exists: bool,
    ) -> Result<Plan<MountChange>, TaskError> {
        let mp = self.mount_point.as_str();
        let mut plan = Plan::unchanged();
        let mut stale = None;
        let mounted = match mountinfo::at(mounts, mp) {
            Some(m) if self.is_ours(m) => match answer {
                Some(answer) if answer.stale() => {
                    stale = Some((answer.problem(), matches!(answer, MountAnswer::Crashed(_))));
                    false
                }
                Some(silent @ MountAnswer::Silent) => {
                    plan = plan.warn(format!(
                        "{} at {mp} is mounted but gives {}; left as is",
                        m.source,
                        silent.problem()
                    ));
                    true
                }
                _ => true,
            },
            Some(m) => {
                return Err(TaskError::Conflict(format!(
                    "{mp} already has {} {} mounted, not {}; nothing changed",
                    m.fstype,
                    m.source,
                    self.source()
                )))
            }
            None => false,
        };
        let unmanaged = etcfile::set_entry(fstab, mp, None);
        let hand_written =
            unmanaged.lines().find(|l| !l.trim_start().starts_with('#') && l.split_whitespace().nth(1) == Some(mp));
        match hand_written {
            // A line written by hand (a pool built before Brickyard) that mounts this volume
            // from one of its servers is kept as it is: it is not Brickyard's to rewrite.
            Some(line) if self.fstab_mounts_this(line) => {
                let backup = self.backup_option();
                if backup.as_ref().is_some_and(|b| !line.contains(b.as_str())) {
                    plan = plan.warn(format!(
                        "/etc/fstab mounts {mp} with a line Brickyard did not write and keeps, without {}: {line:?}",
                        backup.unwrap_or_default()
                    ));
                }
            }
            Some(other) => {
                return Err(TaskError::Conflict(format!(
                "/etc/fstab already has an entry for {mp} that Brickyard does not manage: {other:?}; remove it first"
            )))
            }
            None => {}
        }
        let changes = &mut plan.changes;
        if !mounted && stale.is_none() && !dir_exists {
            changes.push(MountChange::Mkdir(self.mount_point.clone()));
        }
        if let Some((why, kill_client)) = stale {
            changes.push(MountChange::Unmount { mount_point: self.mount_point.clone(), why, kill_client });
        }
        if !mounted {
            changes.push(MountChange::Mount {
                source: self.source(),
                mount_point: self.mount_point.clone(),
                backup: self.backup_option(),
            });
        }
        let line = self.fstab_line();
        if hand_written.is_none() && etcfile::get_entry(fstab, mp) != Some(line.as_str()) {
            let contents = etcfile::set_entry(fstab, mp, Some(&line));
            changes.push(MountChange::Fstab { line, contents });
        }
        Ok(plan)
    }

    /// Polls mountinfo until the volume is mounted at the mount point and answers statvfs().
    /// Runs mount(8), again while its client process starts and then exits before the mount
    /// answers (mount.glusterfs: "Mount failed. Check the log file ..."): a volfile fetch can
    /// fail when many clients ask one glusterd at once, and the next one succeed. Gives up after
    /// `MOUNT_TIMEOUT` with the client log's last error. Any other failure is final at once.
    async fn mount(&self, ctx: &Context, cmd: &Cmd) -> Result<(), TaskError> {
        let what = format!("{} to mount at {}", self.source(), self.mount_point);
        poll::until(what, MOUNT_TIMEOUT, MOUNT_RETRY_INTERVAL, || async {
            match ctx.runner.run(cmd).await {
                Ok(_) => Ok(Look::Done(())),
                Err(CommandError::Failed { stderr, .. }) if client_exited(&stderr) => {
                    Ok(Look::NotYet(self.client_log_error(&stderr)))
                }
                Err(e) => Err(TaskError::from(e)),
            }
        })
        .await
    }

    /// The last error line of the client log (the one mount.glusterfs names in `stderr`, else
    /// glusterfs's default for the mount point: `/mnt/gv` logs to
    /// `/var/log/glusterfs/mnt-gv.log`), after what `stderr` said; `stderr` alone when the log
    /// cannot be read.
    fn client_log_error(&self, stderr: &str) -> String {
        let said = stderr.trim().to_owned();
        let named = stderr.split_whitespace().skip_while(|w| *w != "file").nth(1).filter(|w| w.starts_with('/'));
        let log = named.map_or_else(|| gluster::client::default_log(self.mount_point.as_str()), str::to_owned);
        let Ok(text) = std::fs::read_to_string(self.paths.host(&log)) else { return said };
        match text.lines().rev().find(|line| line.contains("] E [")) {
            Some(line) => format!("{said} (last error in {log}: {})", line.trim()),
            None => said,
        }
    }

    async fn wait_mounted(&self) -> Result<(), TaskError> {
        let mp = self.mount_point.as_str();
        let what = format!("{} to be mounted and answering at {mp}", self.source());
        let dir = self.paths.host(mp).to_string_lossy().into_owned();
        poll::until(what, MOUNT_TIMEOUT, POLL_INTERVAL, || async {
            let mounts = self.paths.mounts()?;
            Ok::<_, TaskError>(match mountinfo::at(&mounts, mp) {
                Some(m) if self.is_ours(m) && gluster::statvfs(&dir).await.sizes().is_some() => Look::Done(()),
                Some(m) if self.is_ours(m) => Look::NotYet("mounted, but statvfs() does not answer".into()),
                _ => Look::NotYet(format!("not mounted at {mp}")),
            })
        })
        .await
    }

    /// Mounts with `cmd` and waits until the mount answers and its client has reached every
    /// brick. A client that has not within `bricks_reached` is unmounted and mounted once
    /// more (the `Remount` returned, for the changes done): a brick's port query can go unanswered (seen
    /// with glusterd's TLS management connection failing a write), and that client then
    /// waits for it far longer than a new client takes. If the new one does not reach them
    /// either (their server down), the mount stays; `status` shows the bricks.
    async fn mount_reaching_bricks(&self, ctx: &Context, cmd: &Cmd) -> Result<Option<MountChange>, TaskError> {
        let mp = self.mount_point.as_str();
        let dir = self.paths.host(mp).to_string_lossy().into_owned();
        let log = gluster::client::default_log(mp);
        self.mount(ctx, cmd).await?;
        self.wait_mounted().await?;
        let Err(unreached) = gluster::client::await_every_brick(&dir, &log, self.bricks_reached).await else {
            return Ok(None);
        };
        // Not lazy: a mount someone already uses is kept as it is.
        if let Err(busy) = ctx.runner.run(&ctx.runner.cmd("umount")?.arg(mp)).await {
            tracing::warn!("{unreached}; not mounted again: {busy}");
            return Ok(None);
        }
        self.mount(ctx, cmd).await?;
        self.wait_mounted().await?;
        if let Err(still) = gluster::client::await_every_brick(&dir, &log, self.bricks_reached).await {
            tracing::warn!("{still}");
        }
        Ok(Some(MountChange::Remount { mount_point: self.mount_point.clone(), why: unreached.to_string() }))
    }
}

#[async_trait]
impl Task for MountGlusterVolume {
    type Change = MountChange;

    async fn plan(&self, _ctx: &Context) -> Result<Plan<MountChange>, TaskError> {
        let dir = self.paths.host(self.mount_point.as_str());
        let mounts = self.paths.mounts()?;
        // Only an unmounted mount point is looked at (a mount there may hang, see statvfs).
        let mp = self.mount_point.as_str();
        let (answer, dir_exists) = match mountinfo::at(&mounts, mp) {
            Some(m) if self.is_ours(m) => {
                let log = self.paths.host(&gluster::client::default_log(mp));
                (Some(gluster::mount_answer(&dir.to_string_lossy(), &log).await), true)
            }
            Some(_) => (None, true),
            None => (None, pathcheck::new_mount_point(&dir).await? == MountPoint::EmptyDir),
        };
        let fstab_path = self.paths.fstab();
        let fstab =
            etcfile::read_or_empty(&fstab_path).map_err(TaskError::io(format!("reading {}", fstab_path.display())))?;
        self.plan_with(&mounts, answer, &fstab, dir_exists)
    }

    /// Unmounts a stale mount, mounts, waits until the mount answers, and writes fstab.
    async fn apply(&self, ctx: &Context, plan: Plan<MountChange>) -> Result<Vec<MountChange>, TaskError> {
        let mut done = Vec::new();
        for change in plan.changes {
            let mut remount = None;
            match &change {
                MountChange::Mkdir(dir) => {
                    std::fs::create_dir_all(self.paths.host(dir.as_str()))
                        .map_err(TaskError::io(format!("creating {dir}")))?;
                }
                MountChange::Unmount { mount_point, kill_client, .. } => {
                    if *kill_client {
                        kill_client_of(mount_point).await?;
                    }
                    ctx.runner.run(&ctx.runner.cmd("umount")?.args(["-l", mount_point.as_str()])).await?;
                }
                MountChange::Mount { source, mount_point, backup } => {
                    let mut cmd = ctx.runner.cmd("mount")?.args(["-t", "glusterfs", source, mount_point.as_str()]);
                    if let Some(backup) = backup {
                        cmd = cmd.arg("-o").arg(backup);
                    }
                    remount = self.mount_reaching_bricks(ctx, &cmd).await?;
                }
                MountChange::Fstab { contents, .. } => {
                    etcfile::atomic_write(&self.paths.fstab(), contents.as_bytes(), 0o644)
                        .map_err(TaskError::io("writing /etc/fstab"))?;
                }
                MountChange::Remount { .. } => {}
            }
            done.push(change);
            done.extend(remount);
        }
        Ok(done)
    }
}

/// Kills the glusterfs client process of `mount_point` (hung after a crash) and waits until it
/// is gone: then the kernel has failed every request still waiting on the mount.
async fn kill_client_of(mount_point: &AbsPath) -> Result<(), TaskError> {
    let what = format!("the glusterfs client process of {mount_point}");
    for pid in gluster::client::pids(mount_point.as_str()) {
        process::stop(pid, "glusterfs", nix::sys::signal::Signal::SIGKILL, &what).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::host::blockdev::testhost::FakeHost;
    use crate::host::runner::fake::FakeRunner;
    use crate::host::runner::Output;
    use crate::tasks::testing::converges;

    fn task(servers: &[&str], mount_point: &str) -> Result<MountGlusterVolume, TaskError> {
        MountGlusterVolume::from_proto(&v1::MountGlusterVolume {
            volume: "gv0".into(),
            servers: servers.iter().map(|s| s.to_string()).collect(),
            mount_point: mount_point.into(),
        })
    }

    const ROOT_MOUNT: &str = "22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw";

    fn mounts(line: &str) -> Vec<Mount> {
        mountinfo::parse(&format!("{ROOT_MOUNT}\n{line}\n"))
    }

    /// The mount captured from the real gluster (gs1:/gv0 at /mnt/gv).
    fn real_mount() -> String {
        let path = format!("{}/src/gluster/fixtures/mountinfo-glusterfs.txt", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(path).unwrap().trim().to_owned()
    }

    const FSTAB: &str = "UUID=abc / ext4 errors=remount-ro 0 1\n";

    #[test]
    fn fields_are_validated() {
        for bad in ["a b", "a;b", "a\nb", "-a"] {
            assert!(task(&[bad], "/mnt/gv").is_err(), "{bad:?}");
            assert!(task(&["gs1"], bad).is_err(), "{bad:?}");
        }
        assert!(task(&[], "/mnt/gv").is_err());
        for system in ["/", "/etc", "/var", "/var/lib/x"] {
            let e = task(&["gs1"], system).err().unwrap().to_string();
            assert!(e.starts_with(&format!("mount point for volume gv0: {system} ")), "{e}");
            assert!(e.contains("a system directory"), "{e}");
        }
    }

    #[test]
    fn plans_mount_and_fstab_with_backup_servers() {
        let t = task(&["gs1", "gs2", "gs3"], "/mnt/gv").unwrap();
        let plan = t.plan_with(&mounts(""), None, FSTAB, false).unwrap();
        let [MountChange::Mkdir(_), mount @ MountChange::Mount { .. }, MountChange::Fstab { contents, .. }] =
            plan.changes.as_slice()
        else {
            panic!("{plan:?}")
        };
        assert!(contents.starts_with(FSTAB));
        assert!(contents
            .ends_with("gs1:/gv0 /mnt/gv glusterfs defaults,_netdev,nofail,backup-volfile-servers=gs2:gs3 0 0\n"));
        assert_eq!(mount.to_string(), "mount -t glusterfs gs1:/gv0 /mnt/gv -o backup-volfile-servers=gs2:gs3");

        // Mounted, with the entry written: nothing to do.
        let answering = Some(MountAnswer::Sizes(100, 50));
        assert_eq!(t.plan_with(&mounts(&real_mount()), answering, contents, true).unwrap(), Plan::unchanged());

        // Its client process is gone: lazily unmounted, then mounted again.
        let gone = Some(MountAnswer::Error(nix::errno::Errno::ENOTCONN));
        let stale = t.plan_with(&mounts(&real_mount()), gone, contents, false).unwrap().shown();
        assert_eq!(
            stale.changes,
            [
                "unmount the stale mount at /mnt/gv (Transport endpoint is not connected): umount -l /mnt/gv",
                "mount -t glusterfs gs1:/gv0 /mnt/gv -o backup-volfile-servers=gs2:gs3"
            ]
        );
        // Its client process crashed and hangs: killed, then as above.
        let hung = Some(MountAnswer::Crashed("its glusterfs client process crashed (signal 6)".into()));
        let crashed = t.plan_with(&mounts(&real_mount()), hung, contents, true).unwrap().shown();
        assert_eq!(
            crashed.changes[0],
            "unmount the stale mount at /mnt/gv (its glusterfs client process crashed (signal 6)): kill -KILL its \
             glusterfs client; umount -l /mnt/gv"
        );
        assert_eq!(crashed.changes.len(), 2, "{crashed:?}");
        // Not answering (servers away) is left alone, with a warning.
        let silent = t.plan_with(&mounts(&real_mount()), Some(MountAnswer::Silent), contents, true).unwrap();
        assert!(silent.changes.is_empty());
        assert!(silent.warnings[0].contains("no answer to statvfs()"), "{:?}", silent.warnings);

        let single = task(&["gs1"], "/mnt/gv").unwrap();
        assert_eq!(single.fstab_line(), "gs1:/gv0 /mnt/gv glusterfs defaults,_netdev,nofail 0 0");
    }

    #[test]
    fn something_else_mounted_or_listed_is_refused() {
        let t = task(&["gs1", "gs2"], "/mnt/gv").unwrap();
        let other = mounts("60 22 7:0 / /mnt/gv rw,noatime shared:30 - xfs /dev/loop0p1 rw");
        let e = t.plan_with(&other, None, FSTAB, true).unwrap_err().to_string();
        assert!(e.contains("/mnt/gv already has xfs /dev/loop0p1 mounted, not gs1:/gv0"), "{e}");
        let other_vol = mounts("61 22 0:50 / /mnt/gv rw - fuse.glusterfs gs1:/gv9 rw");
        assert!(t.plan_with(&other_vol, None, FSTAB, true).is_err());
        // From the backup server is the same volume.
        let from_backup = mounts("61 22 0:50 / /mnt/gv rw - fuse.glusterfs gs2:/gv0 rw");
        let plan = t.plan_with(&from_backup, None, FSTAB, true).unwrap();
        assert!(!plan.changes.iter().any(|c| matches!(c, MountChange::Mount { .. })), "{plan:?}");

        let listed = format!("{FSTAB}gs9:/x /mnt/gv glusterfs defaults 0 0\n");
        let e = t.plan_with(&mounts(""), None, &listed, true).unwrap_err().to_string();
        assert!(e.contains("does not manage"), "{e}");
    }

    /// A pool built by hand: its own fstab line for this volume is kept, with a warning when it
    /// lacks the backup servers; nothing to do when it is mounted.
    #[test]
    fn hand_written_line_for_this_volume_is_kept() {
        let t = task(&["gs1", "gs2"], "/mnt/gv").unwrap();
        let listed = format!("{FSTAB}gs1:/gv0 /mnt/gv glusterfs defaults,_netdev 0 0\n");
        let plan = t.plan_with(&mounts(&real_mount()), None, &listed, true).unwrap();
        assert!(plan.changes.is_empty(), "{plan:?}");
        assert!(plan.warnings[0].contains("without backup-volfile-servers=gs2"), "{:?}", plan.warnings);
        let with_backup = listed.replace("_netdev", "_netdev,backup-volfile-servers=gs2");
        assert!(t.plan_with(&mounts(&real_mount()), None, &with_backup, true).unwrap().warnings.is_empty());
    }

    /// On a fake host whose mount(8) makes the FUSE mount appear in mountinfo.
    #[tokio::test]
    async fn mounts_waits_and_writes_fstab() {
        let host = Arc::new(FakeHost::default());
        std::fs::write(host.paths.fstab(), FSTAB).unwrap();
        let t = MountGlusterVolume { paths: host.paths.clone(), ..task(&["gs1", "gs2"], "/mnt/gv").unwrap() };
        let kernel = host.clone();
        let runner = FakeRunner::default()
            .expect("/usr/bin/mount -t glusterfs gs1:/gv0 /mnt/gv -o backup-volfile-servers=gs2", "")
            .then(move || {
                kernel.mountinfo(&format!("{ROOT_MOUNT}\n{}\n", real_mount()));
            });
        let (_, done) = converges(&t, &Context::direct(runner)).await;
        assert_eq!(
            done,
            [
                "create directory /mnt/gv",
                "mount -t glusterfs gs1:/gv0 /mnt/gv -o backup-volfile-servers=gs2",
                "/etc/fstab: gs1:/gv0 /mnt/gv glusterfs defaults,_netdev,nofail,backup-volfile-servers=gs2 0 0",
            ]
        );
        assert!(host.paths.host("/mnt/gv").is_dir());
        assert!(std::fs::read_to_string(host.paths.fstab()).unwrap().starts_with(FSTAB));
    }

    /// A client that has not reached every brick in time is unmounted and mounted once more;
    /// the new one reaches them.
    #[tokio::test]
    async fn a_client_that_does_not_reach_every_brick_is_mounted_again() {
        let host = Arc::new(FakeHost::default());
        std::fs::write(host.paths.fstab(), FSTAB).unwrap();
        let t = MountGlusterVolume {
            paths: host.paths.clone(),
            bricks_reached: Duration::ZERO,
            ..task(&["gs1"], "/mnt/gv").unwrap()
        };
        let brick = host.paths.host("/mnt/gv/.meta/graphs/active/gv0-client-1");
        let (kernel, first, second) = (host.clone(), brick.clone(), brick.clone());
        let runner = FakeRunner::default()
            .expect("/usr/bin/mount -t glusterfs gs1:/gv0 /mnt/gv", "")
            .then(move || {
                kernel.mountinfo(&format!("{ROOT_MOUNT}\n{}\n", real_mount()));
                std::fs::create_dir_all(first.join("options")).unwrap();
                std::fs::write(first.join("options/remote-host"), "gs2").unwrap();
                std::fs::write(first.join("options/remote-subvolume"), "/vdisk/b").unwrap();
                std::fs::write(first.join("private"), "connected = 0\n").unwrap();
            })
            .expect("/usr/bin/umount /mnt/gv", "")
            .expect("/usr/bin/mount -t glusterfs gs1:/gv0 /mnt/gv", "")
            .then(move || std::fs::write(second.join("private"), "connected = 1\n").unwrap());
        let (_, done) = converges(&t, &Context::direct(runner)).await;
        assert_eq!(done[1], "mount -t glusterfs gs1:/gv0 /mnt/gv");
        assert!(
            done[2].starts_with(
                "umount /mnt/gv and mount it again: timed out waiting for the glusterfs client mounted at "
            ) && done[2].ends_with("(see /var/log/glusterfs/mnt-gv.log) (after 0ns: not yet gs2:/vdisk/b)"),
            "{done:?}"
        );
        assert!(done[3].starts_with("/etc/fstab: "), "{done:?}");
    }

    const MOUNT_FAILED: &str = "Mount failed. Check the log file /var/log/glusterfs/mnt-gv.log for more details.";

    fn failed(stderr: &str) -> Output {
        Output { code: Some(1), stdout: String::new(), stderr: stderr.into() }
    }

    /// A client process that exits before the mount answers is mounted again; any other
    /// failure of mount(8) is final at once.
    #[tokio::test]
    async fn mount_is_retried_only_when_its_client_exited() {
        let host = Arc::new(FakeHost::default());
        std::fs::write(host.paths.fstab(), FSTAB).unwrap();
        let t = MountGlusterVolume { paths: host.paths.clone(), ..task(&["gs1"], "/mnt/gv").unwrap() };
        let kernel = host.clone();
        let runner = FakeRunner::default()
            .expect_output("/usr/bin/mount -t glusterfs gs1:/gv0 /mnt/gv", failed(MOUNT_FAILED))
            .expect("/usr/bin/mount -t glusterfs gs1:/gv0 /mnt/gv", "")
            .then(move || {
                kernel.mountinfo(&format!("{ROOT_MOUNT}\n{}\n", real_mount()));
            });
        let (_, done) = converges(&t, &Context::direct(runner)).await;
        assert_eq!(done[1], "mount -t glusterfs gs1:/gv0 /mnt/gv");

        let t = MountGlusterVolume { paths: host.paths.clone(), ..task(&["gs1"], "/mnt/other").unwrap() };
        let runner = FakeRunner::default().expect_output(
            "/usr/bin/mount -t glusterfs gs1:/gv0 /mnt/other",
            failed("Mounting glusterfs on /mnt/other failed."),
        );
        let ctx = Context::direct(runner);
        let plan = t.plan(&ctx).await.unwrap();
        let e = t.apply(&ctx, plan).await.unwrap_err().to_string();
        assert!(e.contains("Mounting glusterfs on /mnt/other failed."), "{e}");
    }

    #[test]
    fn a_failed_mount_names_the_client_logs_last_error() {
        let host = FakeHost::default();
        let t = MountGlusterVolume { paths: host.paths.clone(), ..task(&["gs1"], "/mnt/gv").unwrap() };
        assert_eq!(t.client_log_error(MOUNT_FAILED), MOUNT_FAILED, "no log: what mount said");
        let log = host.paths.host("/var/log/glusterfs/mnt-gv.log");
        std::fs::create_dir_all(log.parent().unwrap()).unwrap();
        std::fs::write(
            &log,
            "[2026-12-02 05:00:00.1] E [glusterfsd-mgmt.c:2339:mgmt_getspec_cbk] 0-mgmt: failed to fetch volume file (key:gv0)\n\
             [2026-12-02 05:00:00.2] W [glusterfsd.c:1596:cleanup_and_exit] 0-: received signum (0), shutting down\n",
        )
        .unwrap();
        let e = t.client_log_error(MOUNT_FAILED);
        assert!(e.starts_with(MOUNT_FAILED), "{e}");
        assert!(e.ends_with("0-mgmt: failed to fetch volume file (key:gv0))"), "{e}");
        // mount.glusterfs without a log-file option names none: glusterfs's default is read.
        let unnamed = "Mount failed. Check the log file  for more details.";
        let e = t.client_log_error(unnamed);
        assert!(e.contains("(last error in /var/log/glusterfs/mnt-gv.log: "), "{e}");
    }
}
