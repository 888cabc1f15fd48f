//! `EnsureFuse`: the GlusterFS client needs FUSE — the `fuse` filesystem registered in
//! /proc/filesystems and the /dev/fuse device. When either is missing the agent runs
//! `modprobe fuse` (and nothing otherwise); when the kernel cannot provide it the error says
//! which part is missing. Reads /proc/filesystems and /dev/fuse; may load a kernel module.

use std::fmt;
use std::os::unix::fs::FileTypeExt;
use std::path::PathBuf;

use async_trait::async_trait;
use brickyard_proto::v1;

use super::shape::{Plan, Task, TaskError};
use crate::facts::host::filesystems_has_fuse;
use crate::host::Context;

const DEV_FUSE: &str = "/dev/fuse";
const PROC_FILESYSTEMS: &str = "/proc/filesystems";

pub struct EnsureFuse {
    dev_fuse: PathBuf,
    proc_filesystems: PathBuf,
}

impl EnsureFuse {
    pub fn from_proto(_task: &v1::EnsureFuse) -> Result<Self, TaskError> {
        Ok(Self { dev_fuse: PathBuf::from(DEV_FUSE), proc_filesystems: PathBuf::from(PROC_FILESYSTEMS) })
    }

    /// What is missing, as human-readable parts (empty = FUSE is usable).
    fn missing(&self) -> Result<Vec<String>, TaskError> {
        let filesystems = std::fs::read_to_string(&self.proc_filesystems)
            .map_err(TaskError::io(format!("reading {}", self.proc_filesystems.display())))?;
        let mut missing = Vec::new();
        if !filesystems_has_fuse(&filesystems) {
            missing.push(format!("no fuse filesystem in {}", self.proc_filesystems.display()));
        }
        match std::fs::metadata(&self.dev_fuse) {
            Ok(meta) if meta.file_type().is_char_device() => {}
            Ok(_) => missing.push(format!("{} is not a character device", self.dev_fuse.display())),
            Err(_) => missing.push(format!("no {}", self.dev_fuse.display())),
        }
        Ok(missing)
    }

    fn missing_text(&self) -> String {
        self.missing().map(|m| m.join(", ")).unwrap_or_else(|e| e.to_string())
    }
}

/// Loading the fuse module, for what is missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadFuse {
    missing: Vec<String>,
}

impl fmt::Display for LoadFuse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "load the fuse kernel module ({})", self.missing.join(", "))
    }
}

#[async_trait]
impl Task for EnsureFuse {
    type Change = LoadFuse;

    async fn plan(&self, _ctx: &Context) -> Result<Plan<LoadFuse>, TaskError> {
        let missing = self.missing()?;
        Ok(if missing.is_empty() { Plan::unchanged() } else { Plan::of(vec![LoadFuse { missing }]) })
    }

    async fn apply(&self, ctx: &Context, plan: Plan<LoadFuse>) -> Result<Vec<LoadFuse>, TaskError> {
        if plan.changes.is_empty() {
            return Ok(plan.changes);
        }
        let cannot =
            |why: String| TaskError::Unsupported(format!("FUSE is not available ({}) and {why}", self.missing_text()));
        let modprobe = ctx.runner.cmd("modprobe").map_err(|e| cannot(format!("the module cannot be loaded: {e}")))?;
        let out = ctx.runner.output(&modprobe.arg("fuse")).await?;
        if !out.success() {
            return Err(cannot(format!("`modprobe fuse` failed: {}", out.stderr.trim())));
        }
        let still = self.missing()?;
        if !still.is_empty() {
            return Err(cannot(format!("is still missing after `modprobe fuse`: {}", still.join(", "))));
        }
        Ok(plan.changes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::runner::fake::FakeRunner;
    use crate::tasks::shape::AnyTask;
    use crate::tasks::testing::converges;

    fn task(dev: &str, filesystems: &str) -> (EnsureFuse, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let proc_filesystems = dir.path().join("filesystems");
        std::fs::write(&proc_filesystems, filesystems).unwrap();
        (EnsureFuse { dev_fuse: PathBuf::from(dev), proc_filesystems }, dir)
    }

    #[tokio::test]
    async fn present_fuse_runs_nothing() {
        // /dev/null stands in for a character device that is there.
        let (t, _dir) = task("/dev/null", "nodev\tfuse\n");
        let ctx = Context::direct(FakeRunner::default());
        assert_eq!(t.plan(&ctx).await.unwrap(), Plan::unchanged());
        assert!(t.run(&ctx).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn missing_fuse_is_named() {
        let (t, _dir) = task("/nonexistent-brickyard/fuse", "nodev\tsysfs\n");
        // modprobe runs and cannot make the device appear.
        let ctx = Context::direct(FakeRunner::default().expect("/usr/sbin/modprobe fuse", ""));
        let check = t.check(&ctx).await.unwrap();
        assert_eq!(check.changes.len(), 1);
        assert!(check.changes[0].contains("no fuse filesystem in") && check.changes[0].contains("no /nonexistent"));
        let err = t.run(&ctx).await.unwrap_err();
        assert!(matches!(err, TaskError::Unsupported(_)), "{err}");
        assert!(err.to_string().contains("FUSE is not available (no fuse filesystem"), "{err}");
        assert!(err.to_string().contains("is still missing after `modprobe fuse`"), "{err}");
        // No modprobe at all.
        let err = t.run(&Context::direct(FakeRunner::default())).await.unwrap_err().to_string();
        assert!(err.contains("and the module cannot be loaded: program \"modprobe\" not found"), "{err}");
    }

    /// modprobe registers the filesystem (/dev/null stands in for the device node).
    #[tokio::test]
    async fn modprobe_makes_fuse_usable() {
        let (t, dir) = task("/dev/null", "nodev\tsysfs\n");
        let filesystems = dir.path().join("filesystems");
        let runner = FakeRunner::default()
            .expect("/usr/sbin/modprobe fuse", "")
            .then(move || std::fs::write(&filesystems, "nodev\tsysfs\nnodev\tfuse\n").unwrap());
        let (_, done) = converges(&t, &Context::direct(runner)).await;
        assert_eq!(
            done,
            [format!("load the fuse kernel module (no fuse filesystem in {}/filesystems)", dir.path().display())]
        );
    }
}
