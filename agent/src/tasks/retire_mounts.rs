//! `RetireGlusterMounts`: a client gives up the mounts Brickyard gave it that left the spec (a
//! client that left the spec: all of them). Every /etc/fstab entry Brickyard wrote (`#
//! brickyard-managed: MOUNT_POINT` before the line) whose type is `glusterfs` and whose mount
//! point is not one to keep is removed, after its FUSE mount, when mounted, is unmounted (`umount
//! MOUNT_POINT`, never lazily: a mount still in use fails and stops the retirement, so nothing
//! is pulled from under a running program). Lines Brickyard did not write — other glusterfs
//! mounts included — and Brickyard's other entries (a server's disk mount) are never touched;
//! the mount point directory is left in place. Runs umount(8), reads /proc/self/mountinfo,
//! edits /etc/fstab (all under a [`HostPaths`] root).

use std::fmt;

use async_trait::async_trait;
use brickyard_proto::types::AbsPath;
use brickyard_proto::v1;

use super::shape::{Plan, Task, TaskError};
use crate::gluster::FUSE_FSTYPE;
use crate::host::blockdev::HostPaths;
use crate::host::etcfile;
use crate::host::mountinfo::{self, Mount};
use crate::host::Context;

/// The fstab type of a gluster FUSE mount.
const FSTAB_TYPE: &str = "glusterfs";

pub struct RetireGlusterMounts {
    /// The mount points the spec still has.
    keep: Vec<AbsPath>,
    paths: HostPaths,
}

/// One step of apply, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetireChange {
    /// `umount MOUNT_POINT` of `source`.
    Unmount { mount_point: String, source: String },
    /// /etc/fstab without the managed `line`; `contents` is the file after every removal.
    RemoveFstabLine { line: String, contents: String },
}

impl fmt::Display for RetireChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RetireChange::Unmount { mount_point, source } => write!(f, "unmount {mount_point} ({source})"),
            RetireChange::RemoveFstabLine { line, .. } => write!(f, "remove fstab line {line:?}"),
        }
    }
}

impl RetireGlusterMounts {
    pub fn from_proto(task: &v1::RetireGlusterMounts) -> Result<Self, TaskError> {
        let keep = task.keep.iter().map(|p| AbsPath::checked("mount point", p)).collect::<Result<_, _>>()?;
        Ok(Self { keep, paths: HostPaths::system() })
    }

    /// Pure: the unmounts, then the fstab removals, for the managed glusterfs entries of `fstab`.
    fn plan_with(&self, mounts: &[Mount], fstab: &str) -> Plan<RetireChange> {
        let mut unmounts = Vec::new();
        let mut removals = Vec::new();
        let mut contents = fstab.to_owned();
        for (key, line) in etcfile::entries(fstab) {
            let mut fields = line.split_whitespace();
            let (Some(_), Some(mount_point), Some(FSTAB_TYPE)) = (fields.next(), fields.next(), fields.next()) else {
                continue;
            };
            if self.keep.iter().any(|k| k.as_str() == mount_point) {
                continue;
            }
            if let Some(m) = mountinfo::at(mounts, mount_point).filter(|m| m.fstype == FUSE_FSTYPE) {
                unmounts.push(RetireChange::Unmount { mount_point: mount_point.to_owned(), source: m.source.clone() });
            }
            contents = etcfile::set_entry(&contents, key, None);
            removals.push(line.to_owned());
        }
        let removals =
            removals.into_iter().map(|line| RetireChange::RemoveFstabLine { line, contents: contents.clone() });
        Plan::of(unmounts.into_iter().chain(removals).collect())
    }
}

#[async_trait]
impl Task for RetireGlusterMounts {
    type Change = RetireChange;

    async fn plan(&self, _ctx: &Context) -> Result<Plan<RetireChange>, TaskError> {
        let fstab_path = self.paths.fstab();
        let fstab =
            etcfile::read_or_empty(&fstab_path).map_err(TaskError::io(format!("reading {}", fstab_path.display())))?;
        Ok(self.plan_with(&self.paths.mounts()?, &fstab))
    }

    /// Unmounts, then writes /etc/fstab once without the removed entries.
    async fn apply(&self, ctx: &Context, plan: Plan<RetireChange>) -> Result<Vec<RetireChange>, TaskError> {
        for change in &plan.changes {
            if let RetireChange::Unmount { mount_point, .. } = change {
                ctx.runner.run(&ctx.runner.cmd("umount")?.arg(mount_point)).await?;
            }
        }
        if let Some(RetireChange::RemoveFstabLine { contents, .. }) = plan.changes.last() {
            etcfile::atomic_write(&self.paths.fstab(), contents.as_bytes(), 0o644)
                .map_err(TaskError::io("writing /etc/fstab"))?;
        }
        Ok(plan.changes)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::host::blockdev::testhost::FakeHost;
    use crate::host::runner::fake::FakeRunner;
    use crate::tasks::testing::converges;

    fn task(keep: &[&str]) -> RetireGlusterMounts {
        RetireGlusterMounts::from_proto(&v1::RetireGlusterMounts { keep: keep.iter().map(|k| k.to_string()).collect() })
            .unwrap()
    }

    const ROOT_MOUNT: &str = "22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw";
    const GLUSTER_MOUNT: &str = "61 22 0:50 / /dataShare rw - fuse.glusterfs gluServer1:/gluV1 rw";
    /// A hand-written glusterfs line, a managed disk mount and a managed glusterfs mount.
    const FSTAB: &str = "UUID=abc / ext4 errors=remount-ro 0 1\n\
                         other:/vol /mnt/hand glusterfs defaults,_netdev 0 0\n\
                         # brickyard-managed: /vdisk\n\
                         UUID=1 /vdisk xfs defaults 0 0\n\
                         # brickyard-managed: /dataShare\n\
                         gluServer1:/gluV1 /dataShare glusterfs defaults,_netdev,nofail 0 0\n";

    #[test]
    fn only_managed_glusterfs_entries_are_retired() {
        let mounts = mountinfo::parse(&format!("{ROOT_MOUNT}\n{GLUSTER_MOUNT}\n"));
        let all = task(&[]);
        let plan = all.plan_with(&mounts, FSTAB);
        assert_eq!(
            plan.clone().shown().changes,
            [
                "unmount /dataShare (gluServer1:/gluV1)",
                "remove fstab line \"gluServer1:/gluV1 /dataShare glusterfs defaults,_netdev,nofail 0 0\""
            ]
        );
        let Some(RetireChange::RemoveFstabLine { contents, .. }) = plan.changes.last() else { panic!("{plan:?}") };
        assert_eq!(
            contents,
            "UUID=abc / ext4 errors=remount-ro 0 1\nother:/vol /mnt/hand glusterfs defaults,_netdev 0 0\n\
             # brickyard-managed: /vdisk\nUUID=1 /vdisk xfs defaults 0 0\n"
        );
        // Not mounted (any more): only the line goes; without managed lines, nothing to do.
        let unmounted = all.plan_with(&mountinfo::parse(ROOT_MOUNT), FSTAB);
        assert_eq!(unmounted.changes.len(), 1);
        assert_eq!(all.plan_with(&mounts, contents), Plan::unchanged());
        // A mount the spec still has is kept.
        assert_eq!(task(&["/dataShare"]).plan_with(&mounts, FSTAB), Plan::unchanged());
        assert!(RetireGlusterMounts::from_proto(&v1::RetireGlusterMounts { keep: vec!["rel".into()] }).is_err());
    }

    #[tokio::test]
    async fn unmounts_then_rewrites_fstab() {
        let host = Arc::new(FakeHost::default());
        host.mountinfo(&format!("{ROOT_MOUNT}\n{GLUSTER_MOUNT}\n"));
        std::fs::write(host.paths.fstab(), FSTAB).unwrap();
        let t = RetireGlusterMounts { paths: host.paths.clone(), ..task(&[]) };
        let kernel = host.clone();
        let runner = FakeRunner::default().expect("/usr/bin/umount /dataShare", "").then(move || {
            kernel.mountinfo(ROOT_MOUNT);
        });
        let (_, done) = converges(&t, &Context::direct(runner)).await;
        assert_eq!(done.len(), 2, "{done:?}");
        let fstab = std::fs::read_to_string(host.paths.fstab()).unwrap();
        assert!(fstab.contains("other:/vol /mnt/hand") && !fstab.contains("/dataShare"), "{fstab}");
    }
}
