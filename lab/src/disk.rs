//! Lab disks, each a sparse file under DIR/disks attached to a free loop device with partition
//! scanning (`losetup -P`, so `parted` makes /dev/loopNp1 appear without udev): a raw 1 GiB disk
//! per server (DIR/disks/NAME.img, for Brickyard to partition) and a root disk per host
//! (DIR/disks/NAME-root.img, ext4 made here, carrying what the host keeps across a reboot; see
//! `host`). Loop devices are found again by their backing file
//! (/sys/block/loopN/loop/backing_file).

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::cmd::run;
use super::{poll, LabError};

/// Size of every lab disk (sparse: only what is written takes space).
pub const DISK_SIZE: u64 = 1 << 30;

/// Creates the sparse backing file `path` (DISK_SIZE bytes, no data written).
pub fn create_backing(path: &Path) -> Result<(), LabError> {
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|source| LabError::Io { path: path.into(), source })?;
    file.set_len(DISK_SIZE).map_err(|source| LabError::Io { path: path.into(), source })
}

/// Creates the sparse backing file `path` with an empty ext4 filesystem on it (a host's root
/// disk; inode tables and journal initialised lazily, so almost nothing is written).
pub fn create_root_disk(path: &Path) -> Result<(), LabError> {
    create_backing(path)?;
    run("mkfs.ext4", &["-q", "-F", "-E", "lazy_itable_init=1,lazy_journal_init=1", &path.to_string_lossy()]).map(drop)
}

/// Attaches `backing` to a free loop device with partition scanning; returns e.g. `/dev/loop3`.
pub fn attach(backing: &Path) -> Result<String, LabError> {
    let out = run("losetup", &["--partscan", "--find", "--show", &backing.to_string_lossy()])?;
    let device = out.trim().to_string();
    if !device.starts_with("/dev/loop") {
        return Err(LabError::Unexpected { what: "losetup --show output".into(), found: out });
    }
    Ok(device)
}

/// The loop devices (`/dev/loopN`) whose backing file is `backing`.
pub fn devices_backed_by(backing: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/sys/block") else { return Vec::new() };
    let mut found: Vec<String> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let file = std::fs::read_to_string(e.path().join("loop/backing_file")).ok()?;
            (parse_backing_file(&file) == backing).then(|| format!("/dev/{name}"))
        })
        .collect();
    found.sort();
    found
}

/// The path in a /sys/block/loopN/loop/backing_file (trailing newline and the ` (deleted)`
/// the kernel appends for an unlinked file removed).
pub fn parse_backing_file(text: &str) -> PathBuf {
    let text = text.trim_end_matches('\n');
    PathBuf::from(text.strip_suffix(" (deleted)").unwrap_or(text))
}

/// Detaches every loop device backed by `backing` and waits until the kernel has released
/// them (a device still held by a dying mount is auto-cleared when the last user goes).
pub fn detach_all(backing: &Path, deadline: Instant) -> Result<(), LabError> {
    for device in devices_backed_by(backing) {
        // Already gone between the scan and here: fine.
        if let Err(e) = run("losetup", &["--detach", &device]) {
            if !devices_backed_by(backing).contains(&device) {
                continue;
            }
            return Err(e);
        }
    }
    poll::until(deadline, || {
        let left = devices_backed_by(backing);
        Ok((!left.is_empty()).then(|| format!("loop devices {left:?} backed by {} to detach", backing.display())))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backing_file_text() {
        assert_eq!(parse_backing_file("/var/lib/x/disk.img\n"), Path::new("/var/lib/x/disk.img"));
        assert_eq!(parse_backing_file("/a b/disk.img (deleted)\n"), Path::new("/a b/disk.img"));
    }
}
