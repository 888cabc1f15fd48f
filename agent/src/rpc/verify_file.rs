//! `VerifyFile`: the seed's file test. Appends to, reads or removes one file named
//! `.brickyard-verify-[A-Za-z0-9._-]+` directly in `dir`, where `dir` must be a glusterfs FUSE
//! mount point of this host (all operations; an append first waits until the mount's client
//! has reached every brick, see `gluster::client`) or, for reads only, a brick directory on
//! this host (it carries gluster's `trusted.glusterfs.volume-id`, which only root and glusterd
//! set; one getxattr instead of two gluster CLI calls per read). Everything else is refused.
//! Reads /proc/self/mountinfo; opens files without following symlinks; every file operation
//! has a timeout (a FUSE mount whose servers are gone can block forever).

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Duration;

use brickyard_proto::types::AbsPath;
use brickyard_proto::v1;

use crate::gluster::{self, FUSE_FSTYPE, VOLUME_ID};
use crate::host::mountinfo;
use crate::host::pathcheck::{self, PathError};
use crate::tasks::TaskError;

const PREFIX: &str = ".brickyard-verify-";
const MAX_NAME: usize = 255;
const MAX_LINE: usize = 4096;
/// The most of a file a read returns.
const MAX_READ: u64 = 1 << 20;
const IO_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a write waits for its mount to reach every brick: a fresh mount has waited for
/// that already (10 s, not failing when it did not), a busy pool can take longer.
const BRICKS_REACHED: Duration = Duration::from_secs(20);

/// Checks `name` against `.brickyard-verify-[A-Za-z0-9._-]+`.
fn check_file_name(name: &str) -> Result<(), TaskError> {
    let ok = name.len() <= MAX_NAME
        && name.strip_prefix(PREFIX).is_some_and(|rest| {
            !rest.is_empty() && rest.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        });
    if ok {
        Ok(())
    } else {
        Err(TaskError::InvalidTask(format!("verify file name {name:?} must match {PREFIX}[A-Za-z0-9._-]+")))
    }
}

fn check_line(line: &str) -> Result<(), TaskError> {
    if line.len() > MAX_LINE {
        return Err(TaskError::InvalidTask(format!("verify line is longer than {MAX_LINE} bytes")));
    }
    if let Some(c) = line.chars().find(|c| c.is_control()) {
        return Err(TaskError::InvalidTask(format!("verify line contains control character {c:?}")));
    }
    Ok(())
}

pub async fn handle(req: &v1::VerifyFileRequest) -> Result<v1::VerifyFileResponse, TaskError> {
    let op = v1::VerifyOp::try_from(req.op)
        .ok()
        .filter(|op| *op != v1::VerifyOp::Unspecified)
        .ok_or_else(|| TaskError::InvalidTask(format!("verify op {} is not append, read or remove", req.op)))?;
    check_file_name(&req.file_name)?;
    let dir = AbsPath::checked("verify dir", &req.dir)?;
    if op == v1::VerifyOp::Append {
        check_line(&req.line)?;
    }

    let mounts = mountinfo::read().map_err(TaskError::io("reading /proc/self/mountinfo"))?;
    let on_mount = mountinfo::at(&mounts, dir.as_str()).is_some_and(|m| m.fstype == FUSE_FSTYPE);
    if !on_mount && op != v1::VerifyOp::Read {
        return Err(TaskError::Conflict(format!(
            "{dir} is not a glusterfs mount point on this host; append and remove work only there"
        )));
    }

    if op == v1::VerifyOp::Append {
        // A file written before the client reached every brick would miss some of them until
        // the self-heal daemon's next crawl: the check would fail on those bricks, for no fault
        // of theirs. Wait for the client; if it still has not reached them, say which.
        let log = gluster::client::default_log(dir.as_str());
        gluster::client::await_every_brick(dir.as_str(), &log, BRICKS_REACHED).await?;
    }
    let brick_read = !on_mount;
    let path = Path::new(dir.as_str()).join(&req.file_name);
    let line = req.line.clone();
    let context = format!("{op:?} {}", path.display());
    // Keyed by the directory, so a hung mount holds at most one thread per operation. The brick
    // check runs there too: a getxattr under a hung mount blocks like any other call.
    let what = format!("{op:?} of a verify file in {dir}");
    let work = move || {
        if brick_read && !is_brick_dir(Path::new(dir.as_str())) {
            return Ok(Err(TaskError::Conflict(format!(
                "{dir} is neither a glusterfs mount point nor a brick directory on this host (no {VOLUME_ID})"
            ))));
        }
        file_op(op, &path, &line).map(Ok).map_err(|source| PathError::Io { context, source })
    };
    pathcheck::off_workers(what, IO_TIMEOUT, work).await?
}

/// Whether `dir` is a brick directory: gluster marks each with its volume's id.
fn is_brick_dir(dir: &Path) -> bool {
    matches!(xattr::get(dir, VOLUME_ID), Ok(Some(_)))
}

fn file_op(op: v1::VerifyOp, path: &Path, line: &str) -> std::io::Result<v1::VerifyFileResponse> {
    match op {
        v1::VerifyOp::Append => {
            let mut file =
                OpenOptions::new().append(true).create(true).mode(0o644).custom_flags(libc::O_NOFOLLOW).open(path)?;
            regular(&file)?;
            file.write_all(format!("{line}\n").as_bytes())?;
            file.sync_all()?;
            read(path)
        }
        v1::VerifyOp::Read => read(path),
        v1::VerifyOp::Remove => match std::fs::remove_file(path) {
            Ok(()) => Ok(v1::VerifyFileResponse::default()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(v1::VerifyFileResponse::default()),
            Err(e) => Err(e),
        },
        v1::VerifyOp::Unspecified => Err(std::io::Error::other("no verify op")),
    }
}

fn regular(file: &File) -> std::io::Result<()> {
    if file.metadata()?.is_file() {
        Ok(())
    } else {
        Err(std::io::Error::other("not a regular file"))
    }
}

/// The file's content (at most `MAX_READ` bytes); a missing file is `exists: false`.
fn read(path: &Path) -> std::io::Result<v1::VerifyFileResponse> {
    let file = match OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(v1::VerifyFileResponse::default()),
        Err(e) => return Err(e),
    };
    regular(&file)?;
    let mut bytes = Vec::new();
    file.take(MAX_READ).read_to_end(&mut bytes)?;
    Ok(v1::VerifyFileResponse { exists: true, content: String::from_utf8_lossy(&bytes).into_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(op: v1::VerifyOp, dir: &str, name: &str) -> v1::VerifyFileRequest {
        v1::VerifyFileRequest { op: op as i32, dir: dir.into(), file_name: name.into(), line: "hello".into() }
    }

    #[test]
    fn file_names_are_restricted() {
        assert!(check_file_name(".brickyard-verify-client1.2026-11-26_x").is_ok());
        for bad in [
            ".brickyard-verify-",
            "passwd",
            ".brickyard-verify-a/b",
            ".brickyard-verify-a b",
            "../.brickyard-verify-a",
            ".brickyard-verify-a;b",
        ] {
            assert!(check_file_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_line("a\nb").is_err() && check_line("client1 wrote this").is_ok());
    }

    #[tokio::test]
    async fn refuses_what_is_not_a_glusterfs_mount_or_local_brick() {
        let name = ".brickyard-verify-t";
        let e = handle(&req(v1::VerifyOp::Append, "/tmp", name)).await.unwrap_err();
        assert!(e.to_string().contains("/tmp is not a glusterfs mount point"), "{e}");
        let e = handle(&req(v1::VerifyOp::Remove, "/etc", name)).await.unwrap_err();
        assert!(matches!(e, TaskError::Conflict(_)), "{e}");
        let e = handle(&req(v1::VerifyOp::Unspecified, "/tmp", name)).await.unwrap_err();
        assert!(matches!(e, TaskError::InvalidTask(_)), "{e}");
        for op in [-1, i32::MIN, i32::MAX, 4] {
            let request = v1::VerifyFileRequest { op, ..req(v1::VerifyOp::Read, "/tmp", name) };
            let e = handle(&request).await.unwrap_err().to_string();
            assert_eq!(e, format!("verify op {op} is not append, read or remove"));
        }
        let e = handle(&req(v1::VerifyOp::Read, "/tmp/../etc", name)).await.unwrap_err();
        assert!(matches!(e, TaskError::Invalid(_)), "{e}");

        let e = handle(&req(v1::VerifyOp::Read, "/tmp", name)).await.unwrap_err();
        assert!(e.to_string().contains("/tmp is neither a glusterfs mount point nor a brick directory"), "{e}");
    }

    #[tokio::test]
    async fn reads_a_local_brick() {
        let dir = tempfile::tempdir().unwrap();
        let brick = dir.path().to_str().unwrap().to_owned();
        let name = ".brickyard-verify-t";
        std::fs::write(dir.path().join(name), "from client1\n").unwrap();
        xattr::set(dir.path(), VOLUME_ID, &[7; 16]).unwrap();
        let resp = handle(&req(v1::VerifyOp::Read, &brick, name)).await.unwrap();
        assert_eq!(resp, v1::VerifyFileResponse { exists: true, content: "from client1\n".into() });
    }

    #[test]
    fn file_ops_append_read_remove_without_following_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".brickyard-verify-x");
        assert!(!file_op(v1::VerifyOp::Read, &path, "").unwrap().exists);
        file_op(v1::VerifyOp::Append, &path, "one").unwrap();
        let r = file_op(v1::VerifyOp::Append, &path, "two").unwrap();
        assert_eq!(r.content, "one\ntwo\n");
        assert!(!file_op(v1::VerifyOp::Remove, &path, "").unwrap().exists);
        assert!(file_op(v1::VerifyOp::Remove, &path, "").is_ok());

        std::os::unix::fs::symlink("/etc/hostname", &path).unwrap();
        assert!(file_op(v1::VerifyOp::Read, &path, "").is_err());
        assert!(file_op(v1::VerifyOp::Append, &path, "x").is_err());
    }
}
