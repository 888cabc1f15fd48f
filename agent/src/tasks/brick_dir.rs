//! `BrickDir`: a brick directory `MOUNT_POINT/DIR` on a mounted filesystem (bricks never live
//! on the mount root, and never on whatever is below an unmounted mount point), outside the
//! system trees and through no symlink (the path policy). Reads
//! /proc/self/mountinfo; apply creates the directory (mode 0755) and nothing else.

use std::fmt;
use std::io::ErrorKind;
use std::path::Path;

use async_trait::async_trait;
use brickyard_proto::types::{AbsPath, RelPath};
use brickyard_proto::v1;

use super::shape::{Plan, Task, TaskError};
use crate::host::mountinfo::{self, Mount};
use crate::host::pathcheck;
use crate::host::Context;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrickDir {
    pub mount_point: AbsPath,
    pub dir: RelPath,
}

impl BrickDir {
    pub fn from_proto(task: &v1::BrickDir) -> Result<Self, TaskError> {
        let brick =
            Self { mount_point: AbsPath::checked("mount_point", &task.mount_point)?, dir: RelPath::new(&task.dir)? };
        for path in [&brick.mount_point, &brick.target()] {
            path.require_outside_system()
                .map_err(|e| TaskError::InvalidTask(format!("brick {}: {e}", brick.target())))?;
        }
        Ok(brick)
    }

    fn target(&self) -> AbsPath {
        self.mount_point.join(&self.dir)
    }

    /// What would change given the current `mounts`; reads the directory tree only.
    fn plan_with(&self, mounts: &[Mount]) -> Result<Plan<CreateDir>, TaskError> {
        if mountinfo::at(mounts, self.mount_point.as_str()).is_none() {
            return Err(TaskError::NotReady(format!(
                "{} is not a mount point: the brick {} would land on the filesystem below it",
                self.mount_point,
                self.target()
            )));
        }
        // Walk down from the mount point: every existing component must be a real directory
        // (a symlink could lead the brick off this filesystem).
        let mut path = Path::new(self.mount_point.as_str()).to_path_buf();
        for component in self.dir.as_str().split('/') {
            path.push(component);
            match std::fs::symlink_metadata(&path) {
                Ok(meta) if meta.is_dir() => {}
                Ok(meta) => {
                    let what = if meta.file_type().is_symlink() { "a symlink" } else { "not a directory" };
                    return Err(TaskError::Conflict(format!(
                        "{} is {what}; refusing to use it for brick {}",
                        path.display(),
                        self.target()
                    )));
                }
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Plan::of(vec![CreateDir(self.target())])),
                Err(e) => return Err(TaskError::io(format!("inspecting {}", path.display()))(e)),
            }
        }
        Ok(Plan::unchanged())
    }
}

/// The brick directory to create (with the missing directories above it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateDir(AbsPath);

impl fmt::Display for CreateDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "create brick directory {}", self.0)
    }
}

#[async_trait]
impl Task for BrickDir {
    type Change = CreateDir;

    async fn plan(&self, _ctx: &Context) -> Result<Plan<CreateDir>, TaskError> {
        pathcheck::refuse_symlinks(Path::new(self.mount_point.as_str())).await?;
        self.plan_with(&mountinfo::read().map_err(TaskError::io("reading /proc/self/mountinfo"))?)
    }

    async fn apply(&self, _ctx: &Context, plan: Plan<CreateDir>) -> Result<Vec<CreateDir>, TaskError> {
        for CreateDir(dir) in &plan.changes {
            std::fs::DirBuilder::new()
                .recursive(true)
                .create(dir.as_str())
                .map_err(TaskError::io(format!("creating brick directory {dir}")))?;
        }
        Ok(plan.changes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::host::runner::SystemRunner;
    use crate::tasks::shape::AnyTask;
    use crate::tasks::testing::converges;

    fn task(mount_point: &str, dir: &str) -> Result<BrickDir, TaskError> {
        BrickDir::from_proto(&v1::BrickDir { mount_point: mount_point.into(), dir: dir.into() })
    }

    fn mounted(path: &Path) -> Vec<Mount> {
        vec![Mount {
            mount_point: path.to_str().unwrap().into(),
            fstype: "xfs".into(),
            source: "/dev/vdb1".into(),
            options: "rw".into(),
            dev: "254:17".into(),
        }]
    }

    #[test]
    fn validation_names_the_field() {
        let err = task("vdisk", "brick1").unwrap_err().to_string();
        assert!(err.contains("mount_point") && err.contains("absolute"), "{err}");
        for bad in ["../etc", "a/../../etc", "/abs", "", "a//b", "a b"] {
            let err = task("/vdisk", bad).err().unwrap_or_else(|| panic!("{bad:?} accepted")).to_string();
            assert!(err.contains("relative path"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn check_semantics() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_str().unwrap();
        let t = task(root, "brick1").unwrap();
        let err = t.plan_with(&[]).unwrap_err();
        assert!(matches!(err, TaskError::NotReady(ref m) if m.contains("not a mount point")), "{err}");
        let plan = t.plan_with(&mounted(dir.path())).unwrap().shown();
        assert_eq!(plan.changes, vec![format!("create brick directory {root}/brick1")]);
        std::fs::create_dir(dir.path().join("brick1")).unwrap();
        assert_eq!(t.plan_with(&mounted(dir.path())).unwrap(), Plan::unchanged());
        std::fs::write(dir.path().join("file"), "").unwrap();
        let err = task(root, "file/b").unwrap().plan_with(&mounted(dir.path())).unwrap_err();
        assert!(err.to_string().contains("not a directory"), "{err}");
        std::os::unix::fs::symlink("/etc", dir.path().join("link")).unwrap();
        let err = task(root, "link/b").unwrap().plan_with(&mounted(dir.path())).unwrap_err();
        assert!(err.to_string().contains("symlink"), "{err}");
    }

    /// Unmounts the tmpfs of `real_mount_point` even when the test fails.
    struct Unmount(std::path::PathBuf);

    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
        }
    }

    /// Real: a tmpfs mounted on a temp dir (needs root, as in CI): converges, then applies as a
    /// no-op.
    #[tokio::test]
    async fn real_mount_point() {
        let dir = tempfile::tempdir().unwrap();
        nix::mount::mount(Some("tmpfs"), dir.path(), Some("tmpfs"), nix::mount::MsFlags::empty(), Some("size=1m"))
            .expect("mounting a tmpfs for the BrickDir test needs root (CAP_SYS_ADMIN)");
        let _unmount = Unmount(dir.path().to_path_buf());
        let ctx = Context::direct(SystemRunner);
        let t = task(dir.path().to_str().unwrap(), "bricks/b1").unwrap();
        let (_, done) = converges(&t, &ctx).await;
        assert_eq!(done, [format!("create brick directory {}/bricks/b1", dir.path().display())]);
        assert!(dir.path().join("bricks/b1").is_dir());
        assert!(t.run(&ctx).await.unwrap().is_empty(), "second apply must be a no-op");
    }
}
