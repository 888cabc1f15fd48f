//! `MountGlusterVolume`: a client's FUSE mount of a gluster volume, `mount -t glusterfs
//! SERVER1:/VOLUME MOUNT_POINT -o backup-volfile-servers=SERVER2:SERVER3`, and its /etc/fstab
//! entry `SERVER1:/VOLUME MOUNT_POINT glusterfs defaults,_netdev,backup-volfile-servers=... 0 0`
//! (managed, written atomically; `_netdev` so a boot with the pool away does not hang). A mount
//! whose statvfs() fails (its client process is gone: "Transport endpoint is not connected") is
//! stale: it is lazily unmounted (`umount -l`) and mounted again. Creates the mount point
//! directory, runs mount(8) and umount(8), reads /proc/self/mountinfo, edits /etc/fstab.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use brickyard_proto::types::{AbsPath, HostName, VolumeName};
use brickyard_proto::v1;

use super::{Check, Context, TaskError};
use crate::etcfile;
use crate::gluster::{self, MountAnswer, FUSE_FSTYPE};
use crate::mountinfo::{self, Mount};
use crate::runner::{find_program, Cmd};

const FSTAB: &str = "/etc/fstab";
/// How long a fresh mount may take to show up and answer statvfs().
const MOUNT_TIMEOUT: Duration = Duration::from_secs(30);
const POLL_INTERVAL: Duration = Duration::from_millis(100);

pub struct MountGlusterVolume {
    volume: VolumeName,
    servers: Vec<HostName>,
    mount_point: AbsPath,
    fstab: PathBuf,
}

/// What apply would do.
#[derive(Debug, PartialEq, Eq)]
struct Plan {
    mkdir: bool,
    /// Why the mounted volume is stale (then it is lazily unmounted before the mount).
    stale: Option<String>,
    mount: bool,
    /// The new /etc/fstab contents when the managed entry is missing or different.
    fstab: Option<String>,
}

impl MountGlusterVolume {
    pub fn from_proto(task: &v1::MountGlusterVolume) -> Result<Self, TaskError> {
        let volume = VolumeName::new(&task.volume)?;
        if task.servers.is_empty() {
            return Err(TaskError::InvalidTask(format!("mount of volume {volume} names no server")));
        }
        let servers = task.servers.iter().map(|s| HostName::new(s)).collect::<Result<Vec<_>, _>>()?;
        let mount_point = AbsPath::checked("mount point", &task.mount_point)?;
        if mount_point.is_root() {
            return Err(TaskError::InvalidTask(format!("volume {volume} cannot be mounted on /")));
        }
        Ok(Self { volume, servers, mount_point, fstab: PathBuf::from(FSTAB) })
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
        let mut options = "defaults,_netdev".to_owned();
        if let Some(backup) = self.backup_option() {
            options.push(',');
            options.push_str(&backup);
        }
        format!("{} {} glusterfs {options} 0 0", self.source(), self.mount_point)
    }

    /// Whether `m` is this volume from one of the task's servers.
    fn is_ours(&self, m: &Mount) -> bool {
        m.fstype == FUSE_FSTYPE
            && m.source.split_once(":/").is_some_and(|(host, vol)| {
                vol == self.volume.as_str() && self.servers.iter().any(|s| s.as_str().eq_ignore_ascii_case(host))
            })
    }

    /// Pure: what to do given the mounts, how our mount answered statvfs() (when mounted), the
    /// fstab text and whether the mount point exists; and warnings.
    fn plan(
        &self,
        mounts: &[Mount],
        answer: Option<MountAnswer>,
        fstab: &str,
        dir_exists: bool,
    ) -> Result<(Plan, Vec<String>), TaskError> {
        let mp = self.mount_point.as_str();
        let mut warnings = Vec::new();
        let mut stale = None;
        let mounted = match mountinfo::at(mounts, mp) {
            Some(m) if self.is_ours(m) => match answer {
                Some(MountAnswer::Error(errno)) => {
                    stale = Some(errno.desc().to_owned());
                    false
                }
                Some(silent @ MountAnswer::Silent) => {
                    warnings.push(format!(
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
        if let Some(other) =
            unmanaged.lines().find(|l| !l.trim_start().starts_with('#') && l.split_whitespace().nth(1) == Some(mp))
        {
            return Err(TaskError::Conflict(format!(
                "{} already has an entry for {mp} that Brickyard does not manage: {other:?}; remove it first",
                self.fstab.display()
            )));
        }
        let line = self.fstab_line();
        let fstab =
            (etcfile::get_entry(fstab, mp) != Some(line.as_str())).then(|| etcfile::set_entry(fstab, mp, Some(&line)));
        let mkdir = !mounted && stale.is_none() && !dir_exists;
        Ok((Plan { mkdir, stale, mount: !mounted, fstab }, warnings))
    }

    async fn current_plan(&self) -> Result<(Plan, Vec<String>), TaskError> {
        let mp = self.mount_point.as_str();
        let mounts = mountinfo::read().map_err(TaskError::io("reading /proc/self/mountinfo"))?;
        let answer = match mountinfo::at(&mounts, mp) {
            Some(m) if self.is_ours(m) => Some(gluster::statvfs(mp).await),
            _ => None,
        };
        let fstab =
            etcfile::read_or_empty(&self.fstab).map_err(TaskError::io(format!("reading {}", self.fstab.display())))?;
        self.plan(&mounts, answer, &fstab, answer.is_some() || std::path::Path::new(mp).is_dir())
    }

    fn describe(&self, plan: &Plan) -> Vec<String> {
        let mp = &self.mount_point;
        let mut changes = Vec::new();
        if plan.mkdir {
            changes.push(format!("create directory {mp}"));
        }
        if let Some(why) = &plan.stale {
            changes.push(format!("unmount the stale mount at {mp} ({why}): umount -l {mp}"));
        }
        if plan.mount {
            let backup = self.backup_option().map(|o| format!(" -o {o}")).unwrap_or_default();
            changes.push(format!("mount -t glusterfs {} {mp}{backup}", self.source()));
        }
        if plan.fstab.is_some() {
            changes.push(format!("{}: {}", self.fstab.display(), self.fstab_line()));
        }
        changes
    }

    pub async fn check(&self, _ctx: &Context) -> Result<Check, TaskError> {
        let (plan, warnings) = self.current_plan().await?;
        Ok(Check { changes: self.describe(&plan), warnings })
    }

    pub async fn apply(&self, ctx: &Context) -> Result<Vec<String>, TaskError> {
        let (plan, _) = self.current_plan().await?;
        let mp = self.mount_point.as_str();
        if plan.mkdir {
            std::fs::create_dir_all(mp).map_err(TaskError::io(format!("creating {mp}")))?;
        }
        if plan.stale.is_some() {
            ctx.runner.run(&Cmd::new(find_program("umount")?).args(["-l", mp])).await?;
        }
        if plan.mount {
            let mut cmd = Cmd::new(find_program("mount")?).args(["-t", "glusterfs"]).arg(self.source()).arg(mp);
            if let Some(backup) = self.backup_option() {
                cmd = cmd.arg("-o").arg(backup);
            }
            ctx.runner.run(&cmd).await?;
            self.wait_mounted().await?;
        }
        if let Some(contents) = &plan.fstab {
            etcfile::atomic_write(&self.fstab, contents.as_bytes(), 0o644)
                .map_err(TaskError::io(format!("writing {}", self.fstab.display())))?;
        }
        Ok(self.describe(&plan))
    }

    /// Polls mountinfo until the volume is mounted at the mount point and answers statvfs().
    async fn wait_mounted(&self) -> Result<(), TaskError> {
        let deadline = Instant::now() + MOUNT_TIMEOUT;
        let mp = self.mount_point.as_str();
        loop {
            let mounts = mountinfo::read().map_err(TaskError::io("reading /proc/self/mountinfo"))?;
            if mountinfo::at(&mounts, mp).is_some_and(|m| self.is_ours(m))
                && gluster::statvfs(mp).await.sizes().is_some()
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(TaskError::Timeout(format!(
                    "{} to be mounted and answering at {mp} ({}s)",
                    self.source(),
                    MOUNT_TIMEOUT.as_secs()
                )));
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(servers: &[&str], mount_point: &str) -> Result<MountGlusterVolume, TaskError> {
        MountGlusterVolume::from_proto(&v1::MountGlusterVolume {
            volume: "gv0".into(),
            servers: servers.iter().map(|s| s.to_string()).collect(),
            mount_point: mount_point.into(),
        })
    }

    fn mounts(line: &str) -> Vec<Mount> {
        mountinfo::parse(&format!("22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n{line}\n"))
    }

    const FSTAB: &str = "UUID=abc / ext4 errors=remount-ro 0 1\n";

    #[test]
    fn fields_are_validated() {
        for bad in ["a b", "a;b", "a\nb", "-a"] {
            assert!(task(&[bad], "/mnt/gv").is_err(), "{bad:?}");
            assert!(task(&["gs1"], bad).is_err(), "{bad:?}");
        }
        assert!(task(&[], "/mnt/gv").is_err());
        assert!(task(&["gs1"], "/").is_err());
    }

    #[test]
    fn plans_mount_and_fstab_with_backup_servers() {
        let t = task(&["gs1", "gs2", "gs3"], "/mnt/gv").unwrap();
        let (plan, _) = t.plan(&mounts(""), None, FSTAB, false).unwrap();
        assert!(plan.mkdir && plan.mount);
        let fstab = plan.fstab.as_deref().unwrap();
        assert!(fstab.starts_with(FSTAB));
        assert!(fstab.ends_with("gs1:/gv0 /mnt/gv glusterfs defaults,_netdev,backup-volfile-servers=gs2:gs3 0 0\n"));
        assert_eq!(t.describe(&plan)[1], "mount -t glusterfs gs1:/gv0 /mnt/gv -o backup-volfile-servers=gs2:gs3");

        // The mount captured from the real gluster, with the entry written: nothing to do.
        let real = std::fs::read_to_string(format!(
            "{}/src/gluster/fixtures/mountinfo-glusterfs.txt",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let answering = Some(MountAnswer::Sizes(100, 50));
        let (done, warnings) = t.plan(&mounts(real.trim()), answering, fstab, true).unwrap();
        assert_eq!(done, Plan { mkdir: false, stale: None, mount: false, fstab: None });
        assert!(t.describe(&done).is_empty() && warnings.is_empty());

        // Its client process is gone: lazily unmounted, then mounted again.
        let gone = Some(MountAnswer::Error(nix::errno::Errno::ENOTCONN));
        let (stale, _) = t.plan(&mounts(real.trim()), gone, fstab, false).unwrap();
        assert_eq!(
            t.describe(&stale),
            [
                "unmount the stale mount at /mnt/gv (Transport endpoint is not connected): umount -l /mnt/gv",
                "mount -t glusterfs gs1:/gv0 /mnt/gv -o backup-volfile-servers=gs2:gs3"
            ]
        );
        // Not answering (servers away) is left alone, with a warning.
        let (silent, warnings) = t.plan(&mounts(real.trim()), Some(MountAnswer::Silent), fstab, true).unwrap();
        assert!(t.describe(&silent).is_empty());
        assert!(warnings[0].contains("no answer to statvfs()"), "{warnings:?}");

        let single = task(&["gs1"], "/mnt/gv").unwrap();
        assert_eq!(single.fstab_line(), "gs1:/gv0 /mnt/gv glusterfs defaults,_netdev 0 0");
    }

    #[test]
    fn something_else_mounted_or_listed_is_refused() {
        let t = task(&["gs1", "gs2"], "/mnt/gv").unwrap();
        let other = mounts("60 22 7:0 / /mnt/gv rw,noatime shared:30 - xfs /dev/loop0p1 rw");
        let e = t.plan(&other, None, FSTAB, true).unwrap_err().to_string();
        assert!(e.contains("/mnt/gv already has xfs /dev/loop0p1 mounted, not gs1:/gv0"), "{e}");
        let other_vol = mounts("61 22 0:50 / /mnt/gv rw - fuse.glusterfs gs1:/gv9 rw");
        assert!(t.plan(&other_vol, None, FSTAB, true).is_err());
        // From the backup server is the same volume.
        let from_backup = mounts("61 22 0:50 / /mnt/gv rw - fuse.glusterfs gs2:/gv0 rw");
        assert!(!t.plan(&from_backup, None, FSTAB, true).unwrap().0.mount);

        let listed = format!("{FSTAB}gs9:/x /mnt/gv glusterfs defaults 0 0\n");
        let e = t.plan(&mounts(""), None, &listed, true).unwrap_err().to_string();
        assert!(e.contains("does not manage"), "{e}");
    }
}
