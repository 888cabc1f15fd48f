//! The run-time half of the path policy (the static half, which trees a path may never be or
//! lie under, is `brickyard_proto::types::AbsPath::require_outside_system`): a mount point or
//! brick may not pass through a symlink (every component is looked at as it is, never
//! followed), and a new mount point must be absent or an empty directory (mounting over files
//! hides them). A path may lie on a FUSE mount whose servers hang, so every filesystem call
//! here, and [`off_workers`] for other callers, runs on a blocking thread with a deadline: the
//! agent's async workers never wait on a mount, and a call still stuck on one is not repeated. Reads only (lstat, readdir).

use std::collections::BTreeSet;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long one filesystem call on a path that may be a mount point may take.
pub const FS_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a path is refused, naming it and what was found there.
#[derive(Debug, thiserror::Error)]
pub enum PathError {
    #[error("{path} passes through a symlink: {link} -> {target} (brickyard uses real directories only)")]
    Symlink { path: String, link: String, target: String },
    #[error("{path} is {what}, not a directory")]
    NotADirectory { path: String, what: &'static str },
    #[error("{path} is not empty: it holds {} (e.g. {}); a new mount would hide them", entries_shown(*.count), .first.join(", "))]
    NotEmpty { path: String, count: usize, first: Vec<String> },
    #[error("{what} did not answer within {after:?} (a hung mount?)")]
    TimedOut { what: String, after: Duration },
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
}

fn entries_shown(count: usize) -> String {
    if count == 1 {
        "1 entry".to_owned()
    } else {
        format!("{count} entries")
    }
}

/// Whether a new mount point is there already (an empty directory) or is to be created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountPoint {
    Absent,
    EmptyDir,
}

/// The calls (by `what`) that timed out and have not returned yet. A hung FUSE mount holds
/// the blocking thread of each call on it until it answers; asking again while one is stuck
/// would take a new thread every time until the runtime's blocking pool is used up and every
/// call, on any path, waits.
static STUCK: std::sync::Mutex<BTreeSet<String>> = std::sync::Mutex::new(BTreeSet::new());

fn stuck() -> std::sync::MutexGuard<'static, BTreeSet<String>> {
    STUCK.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Runs `work` on a blocking thread, giving up after `after`; `what` names it in the error.
/// While an earlier call of the same `what` is still stuck, fails at once without a new call.
pub async fn off_workers<T: Send + 'static>(
    what: impl Into<String>,
    after: Duration,
    work: impl FnOnce() -> Result<T, PathError> + Send + 'static,
) -> Result<T, PathError> {
    let what = what.into();
    if stuck().contains(&what) {
        return Err(PathError::TimedOut { what, after });
    }
    let mut call = tokio::task::spawn_blocking(work);
    match tokio::time::timeout(after, &mut call).await {
        Ok(Ok(result)) => result,
        Ok(Err(join)) => Err(PathError::Io { context: what, source: std::io::Error::other(join) }),
        Err(_) => {
            stuck().insert(what.clone());
            let key = what.clone();
            tokio::spawn(async move {
                let _ = call.await;
                stuck().remove(&key);
            });
            Err(PathError::TimedOut { what, after })
        }
    }
}

/// Refuses `path` when any existing component of it is a symlink (the walk stops at the first
/// component that does not exist: what is created there will be a directory).
pub async fn refuse_symlinks(path: &Path) -> Result<(), PathError> {
    let owned = path.to_owned();
    off_workers(path.display().to_string(), FS_TIMEOUT, move || walk_without_following(&owned)).await
}

/// A mount point about to be mounted: no symlink on the way, and absent or an empty directory.
pub async fn new_mount_point(path: &Path) -> Result<MountPoint, PathError> {
    let owned = path.to_owned();
    off_workers(format!("mount point {}", path.display()), FS_TIMEOUT, move || {
        walk_without_following(&owned)?;
        absent_or_empty(&owned)
    })
    .await
}

fn walk_without_following(path: &Path) -> Result<(), PathError> {
    let mut at = PathBuf::new();
    for component in path.components() {
        at.push(component);
        match std::fs::symlink_metadata(&at) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let target = std::fs::read_link(&at).map(|t| t.display().to_string()).unwrap_or_else(|e| e.to_string());
                return Err(PathError::Symlink {
                    path: path.display().to_string(),
                    link: at.display().to_string(),
                    target,
                });
            }
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(source) => return Err(PathError::Io { context: format!("looking at {}", at.display()), source }),
        }
    }
    Ok(())
}

fn absent_or_empty(path: &Path) -> Result<MountPoint, PathError> {
    let shown = || path.display().to_string();
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(MountPoint::Absent),
        Err(source) => return Err(PathError::Io { context: format!("looking at {}", shown()), source }),
        Ok(meta) if !meta.is_dir() => return Err(PathError::NotADirectory { path: shown(), what: "a file" }),
        Ok(_) => {}
    }
    let io = |source| PathError::Io { context: format!("reading directory {}", shown()), source };
    let mut names = Vec::new();
    for entry in std::fs::read_dir(path).map_err(io)? {
        names.push(entry.map_err(io)?.file_name().to_string_lossy().into_owned());
    }
    if names.is_empty() {
        return Ok(MountPoint::EmptyDir);
    }
    names.sort();
    let count = names.len();
    names.truncate(3);
    Err(PathError::NotEmpty { path: shown(), count, first: names })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn symlinks_anywhere_on_the_way_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let real = tmp.path().join("real");
        std::fs::create_dir(&real).unwrap();
        std::os::unix::fs::symlink(&real, tmp.path().join("link")).unwrap();

        refuse_symlinks(&real.join("not/yet/there")).await.unwrap();
        let err = refuse_symlinks(&tmp.path().join("link/deeper")).await.unwrap_err().to_string();
        let link = tmp.path().join("link");
        assert_eq!(
            err,
            format!(
                "{}/link/deeper passes through a symlink: {} -> {} (brickyard uses real directories only)",
                tmp.path().display(),
                link.display(),
                real.display()
            )
        );
        let err = new_mount_point(&link).await.unwrap_err().to_string();
        assert!(err.contains("passes through a symlink"), "{err}");
    }

    #[tokio::test]
    async fn a_new_mount_point_is_absent_or_empty() {
        let tmp = tempfile::tempdir().unwrap();
        let mp = tmp.path().join("vdisk");
        assert_eq!(new_mount_point(&mp).await.unwrap(), MountPoint::Absent);
        std::fs::create_dir(&mp).unwrap();
        assert_eq!(new_mount_point(&mp).await.unwrap(), MountPoint::EmptyDir);
        for name in ["b", "a", "c", "d"] {
            std::fs::write(mp.join(name), "user data").unwrap();
        }
        let err = new_mount_point(&mp).await.unwrap_err().to_string();
        assert_eq!(
            err,
            format!("{} is not empty: it holds 4 entries (e.g. a, b, c); a new mount would hide them", mp.display())
        );
        let file = mp.join("a");
        let err = new_mount_point(&file).await.unwrap_err().to_string();
        assert_eq!(err, format!("{} is a file, not a directory", file.display()));
    }

    #[tokio::test]
    async fn a_call_that_hangs_times_out_and_is_not_repeated_until_it_returns() {
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let call = |wait: Option<std::sync::mpsc::Receiver<()>>| {
            let calls = calls.clone();
            off_workers("/stuck", Duration::from_millis(50), move || {
                calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if let Some(wait) = wait {
                    let _ = wait.recv(); // blocks like a hung FUSE mount, until released
                }
                Ok(())
            })
        };
        let err = call(Some(wait)).await.unwrap_err();
        assert_eq!(err.to_string(), "/stuck did not answer within 50ms (a hung mount?)");
        let started = std::time::Instant::now();
        let err = call(None).await.unwrap_err();
        assert_eq!(err.to_string(), "/stuck did not answer within 50ms (a hung mount?)");
        assert!(started.elapsed() < Duration::from_millis(50), "waited {:?}", started.elapsed());
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1, "a second call was made while one was stuck");

        release.send(()).unwrap();
        let released = std::time::Instant::now();
        while call(None).await.is_err() {
            assert!(released.elapsed() < Duration::from_secs(5), "the stuck call was never forgotten");
            tokio::task::yield_now().await;
        }
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);
    }
}
