//! Files under /etc the agent edits (fstab, hosts, iptables rules, gluster's TLS files):
//! atomic replacement (temp file or symlink in the same directory, fsync, rename, fsync the
//! directory) and managed entries marked so that a re-run replaces them instead of adding
//! duplicates. Every other line is kept byte for byte.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// The comment that marks the line after it as managed by Brickyard, keyed.
const ENTRY_MARKER: &str = "# brickyard-managed:";

/// Replaces `path` with `contents` atomically: readers see the old file or the new one, never
/// a torn one. Keeps the old file's permissions (or `default_mode` for a new file).
pub fn atomic_write(path: &Path, contents: &[u8], default_mode: u32) -> io::Result<()> {
    let mode = match fs::metadata(path) {
        Ok(meta) => meta.permissions().mode() & 0o7777,
        Err(e) if e.kind() == io::ErrorKind::NotFound => default_mode,
        Err(e) => return Err(e),
    };
    atomic_write_mode(path, contents, mode)
}

/// Like [`atomic_write`], but the new file gets exactly `mode`, whatever the old one had (a
/// private key must not inherit a readable mode). No reader ever sees it with another mode.
pub fn atomic_write_mode(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().ok_or_else(|| io::Error::other(format!("{} has no file name", path.display())))?;
    let tmp_prefix = format!(".{}.brickyard-", name.to_string_lossy());
    remove_stale_temps(dir, &tmp_prefix)?;
    let tmp = dir.join(format!("{tmp_prefix}{}", std::process::id()));
    let result = (|| {
        let mut file = OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp)?;
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.write_all(contents)?;
        file.sync_all()?;
        super::fault::before_rename(path);
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Makes `link` a symlink to `target` atomically (a symlink under a temp name, renamed over
/// whatever `link` was), so readers see the old file or the new link, never neither.
pub fn atomic_symlink(link: &Path, target: &Path) -> io::Result<()> {
    let dir = link.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = link.file_name().ok_or_else(|| io::Error::other(format!("{} has no file name", link.display())))?;
    let tmp_prefix = format!(".{}.brickyard-", name.to_string_lossy());
    remove_stale_temps(dir, &tmp_prefix)?;
    let tmp = dir.join(format!("{tmp_prefix}{}", std::process::id()));
    let result = std::os::unix::fs::symlink(target, &tmp).and_then(|()| fs::rename(&tmp, link));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.and_then(|()| File::open(dir)?.sync_all())
}

/// Removes temp copies (`PREFIX<pid>`) that an earlier agent left when it died between
/// writing one and renaming it (a crash, SIGKILL, power loss): only one agent runs on a host,
/// so a temp copy with another pid is never being written.
fn remove_stale_temps(dir: &Path, prefix: &str) -> io::Result<()> {
    let ours = format!("{prefix}{}", std::process::id());
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(prefix) && name != ours {
            tracing::warn!(path = %entry.path().display(), "removing a temp copy left by an interrupted write");
            fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

/// Reads `path`, treating a missing file as empty.
pub fn read_or_empty(path: &Path) -> io::Result<String> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(s),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(e),
    }
}

/// Sets the managed entry `key` in `contents` to `line` (or removes it when `None`): the entry
/// is a marker comment `# brickyard-managed: KEY` followed by the line. An existing entry is
/// replaced in place; a new one is appended. Returns the new contents.
pub fn set_entry(contents: &str, key: &str, line: Option<&str>) -> String {
    let marker = format!("{ENTRY_MARKER} {key}");
    let mut out = String::with_capacity(contents.len() + 128);
    let mut lines = contents.split_inclusive('\n');
    let mut replaced = false;
    while let Some(current) = lines.next() {
        if current.trim_end_matches('\n') == marker {
            lines.next(); // the managed line itself
            if let (Some(line), false) = (line, replaced) {
                out.push_str(&marker);
                out.push('\n');
                out.push_str(line);
                out.push('\n');
            }
            replaced = true;
        } else {
            out.push_str(current);
        }
    }
    if let (Some(line), false) = (line, replaced) {
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&marker);
        out.push('\n');
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The managed line stored under `key`, if any.
pub fn get_entry<'a>(contents: &'a str, key: &str) -> Option<&'a str> {
    let marker = format!("{ENTRY_MARKER} {key}");
    let mut lines = contents.lines();
    while let Some(current) = lines.next() {
        if current == marker {
            return lines.next();
        }
    }
    None
}

/// Every managed entry in `contents` as (key, line), in file order.
pub fn entries(contents: &str) -> Vec<(&str, &str)> {
    let mut found = Vec::new();
    let mut lines = contents.lines();
    while let Some(current) = lines.next() {
        if let Some(key) = current.strip_prefix(ENTRY_MARKER).map(str::trim_start) {
            if let Some(line) = lines.next() {
                found.push((key, line));
            }
        }
    }
    found
}

/// The lines of the block `name` (see [`set_block`]); empty when there is none.
pub fn get_block<'a>(contents: &'a str, name: &str) -> Vec<&'a str> {
    let begin = format!("# BEGIN brickyard {name}");
    let end = format!("# END brickyard {name}");
    contents.lines().skip_while(|l| *l != begin).skip(1).take_while(|l| *l != end).collect()
}

/// Replaces the block between `# BEGIN brickyard NAME` and `# END brickyard NAME` with
/// `body` (appending the block if absent). Returns the new contents.
pub fn set_block(contents: &str, name: &str, body: &[String]) -> String {
    let begin = format!("# BEGIN brickyard {name}");
    let end = format!("# END brickyard {name}");
    let mut block = format!("{begin}\n");
    for line in body {
        block.push_str(line);
        block.push('\n');
    }
    block.push_str(&end);
    block.push('\n');

    let mut out = String::with_capacity(contents.len() + block.len());
    let mut inside = false;
    let mut placed = false;
    for current in contents.split_inclusive('\n') {
        let bare = current.trim_end_matches('\n');
        if !inside && bare == begin {
            inside = true;
            if !placed {
                out.push_str(&block);
                placed = true;
            }
        } else if inside {
            if bare == end {
                inside = false;
            }
        } else {
            out.push_str(current);
        }
    }
    if !placed {
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&block);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const FSTAB: &str = "# /etc/fstab\nUUID=abc / ext4 errors=remount-ro 0 1\n\n/swap none swap sw 0 0";

    #[test]
    fn entries_are_replaced_not_duplicated() {
        let once = set_entry(FSTAB, "/vdisk", Some("UUID=1 /vdisk xfs defaults 0 0"));
        assert!(once.starts_with("# /etc/fstab\nUUID=abc / ext4 errors=remount-ro 0 1\n\n/swap none swap sw 0 0\n"));
        let twice = set_entry(&once, "/vdisk", Some("UUID=2 /vdisk xfs defaults 0 0"));
        assert_eq!(twice.matches("/vdisk xfs").count(), 1);
        assert_eq!(get_entry(&twice, "/vdisk"), Some("UUID=2 /vdisk xfs defaults 0 0"));
        assert_eq!(set_entry(&twice, "/vdisk", Some("UUID=2 /vdisk xfs defaults 0 0")), twice);
        let removed = set_entry(&twice, "/vdisk", None);
        assert_eq!(removed, format!("{FSTAB}\n"));
        let two = set_entry(&twice, "/mnt/a", Some("s1:/v /mnt/a glusterfs defaults 0 0"));
        assert_eq!(
            entries(&two),
            [("/vdisk", "UUID=2 /vdisk xfs defaults 0 0"), ("/mnt/a", "s1:/v /mnt/a glusterfs defaults 0 0")]
        );
    }

    #[test]
    fn blocks_are_replaced_in_place() {
        let hosts = "127.0.0.1 localhost\n::1 localhost\n";
        let a = set_block(hosts, "pool", &["192.0.2.11 gluServer1".into()]);
        let b = set_block(&(a.clone() + "10.0.0.1 other\n"), "pool", &["192.0.2.12 gluServer2".into()]);
        assert_eq!(get_block(&b, "pool"), ["192.0.2.12 gluServer2"]);
        assert!(get_block(hosts, "pool").is_empty());
        assert_eq!(b, "127.0.0.1 localhost\n::1 localhost\n# BEGIN brickyard pool\n192.0.2.12 gluServer2\n# END brickyard pool\n10.0.0.1 other\n");
    }

    #[test]
    fn atomic_write_keeps_mode_and_leaves_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fstab");
        fs::write(&path, "old\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        atomic_write(&path, b"new\n", 0o644).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "new\n");
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o640);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn exact_mode_replaces_the_old_files_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        fs::write(&path, "old\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        atomic_write_mode(&path, b"secret\n", 0o600).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "secret\n");
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn a_symlink_replaces_a_file_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("glusterfs.pem");
        fs::write(&link, "old\n").unwrap();
        atomic_symlink(&link, Path::new("/etc/ssl/glusterfs.pem")).unwrap();
        assert_eq!(fs::read_link(&link).unwrap(), Path::new("/etc/ssl/glusterfs.pem"));
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn temp_copies_of_a_dead_writer_are_removed_others_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fstab");
        fs::write(dir.path().join(".fstab.brickyard-1"), "half").unwrap();
        fs::write(dir.path().join(".hosts.brickyard-1"), "other file's").unwrap();
        atomic_write(&path, b"new\n", 0o644).unwrap();
        let mut left: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        left.sort();
        assert_eq!(left, [".hosts.brickyard-1", "fstab"]);
    }

    #[test]
    fn readers_never_see_a_torn_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hosts");
        let old = "a".repeat(1 << 20);
        let new = "b".repeat(1 << 20);
        fs::write(&path, &old).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = {
            let (path, stop, old, new) = (path.clone(), stop.clone(), old.clone(), new.clone());
            std::thread::spawn(move || {
                let mut reads = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let seen = fs::read_to_string(&path).unwrap();
                    assert!(seen == old || seen == new, "torn read of {} bytes", seen.len());
                    reads += 1;
                }
                reads
            })
        };
        for i in 0..50 {
            atomic_write(&path, if i % 2 == 0 { new.as_bytes() } else { old.as_bytes() }, 0o644).unwrap();
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(reader.join().unwrap() > 0);
    }
}
