//! Files a program should not see: it runs in a mount namespace of its own where each of them
//! is covered by /dev/null. Only that program's view changes; the host's stays as it is.
//!
//! Used for the gluster CLI: on every start it runs `gsyncd --version` (a Python program,
//! 0.1 s of CPU, 0.5 s when the host is busy) only to learn whether to offer the
//! geo-replication commands, which Brickyard never uses. Without gsyncd in sight the CLI
//! answers in a fifth of the time, as on hosts without geo-replication installed.
//! When the namespace cannot be made (no CAP_SYS_ADMIN, a sandbox), the program runs as usual.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// Covers `files` (those that exist) for the program `command` starts.
pub fn hide(command: &mut tokio::process::Command, files: &[PathBuf]) {
    // Made before the fork: between fork and exec only system calls are safe, no allocation.
    let files: Vec<CString> =
        files.iter().filter(|f| f.is_file()).filter_map(|f| CString::new(f.as_os_str().as_bytes()).ok()).collect();
    if files.is_empty() {
        return;
    }
    // SAFETY: the closure runs in the child between fork and exec; it only makes system calls
    // (unshare, mount) on memory prepared before the fork, and never fails the spawn.
    unsafe {
        command.pre_exec(move || {
            cover(&files);
            Ok(())
        });
    }
}

/// In a new mount namespace that shares nothing back with the host's, binds /dev/null over
/// each file. Any step that fails leaves the rest undone: the program then sees the files.
fn cover(files: &[CString]) {
    let null = std::ptr::null();
    // SAFETY: plain system calls on valid NUL-terminated strings.
    unsafe {
        if libc::unshare(libc::CLONE_NEWNS) != 0 {
            return;
        }
        if libc::mount(null, c"/".as_ptr(), null, libc::MS_REC | libc::MS_PRIVATE, std::ptr::null()) != 0 {
            return;
        }
        for file in files {
            libc::mount(c"/dev/null".as_ptr(), file.as_ptr(), null, libc::MS_BIND, std::ptr::null());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Root only (a mount namespace); elsewhere the file stays visible, which is the fallback.
    #[tokio::test]
    async fn a_hidden_file_reads_empty_for_the_program_and_stays_whole_for_the_host() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("gsyncd");
        std::fs::write(&file, "#!/usr/bin/python3\n").unwrap();
        let mut cat = tokio::process::Command::new("/bin/cat");
        cat.arg(&file);
        hide(&mut cat, std::slice::from_ref(&file));
        let seen = cat.output().await.unwrap();
        assert!(seen.status.success(), "{seen:?}");
        if nix::unistd::geteuid().is_root() {
            assert_eq!(seen.stdout, b"", "the program saw the file");
        }
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "#!/usr/bin/python3\n");
    }
}
