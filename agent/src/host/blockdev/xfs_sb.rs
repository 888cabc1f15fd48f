//! The one field of the XFS primary superblock (`struct xfs_dsb`, big-endian, at byte 0 of the
//! device) that blkid does not judge: `sb_inprogress` (byte 126), which mkfs.xfs sets while it
//! builds the filesystem and clears as its last write. A superblock with "XFSB" and that byte
//! set is a mkfs that never finished: blkid still says TYPE=xfs, the kernel refuses to mount it
//! ("Structure needs cleaning"), and it can hold no data. Read straight from the block device
//! (no xfs_db). The parser is pure.

use std::io::Read;

use super::{Error, HostPaths};

const MAGIC: &[u8; 4] = b"XFSB";
/// sb_magicnum(4) blocksize(4) dblocks rblocks rextents(8 each) uuid(16) logstart rootino
/// rbmino rsumino(8 each) rextsize agblocks agcount rbmblocks logblocks(4 each) versionnum
/// sectsize inodesize inopblock(2 each) fname(12) blocklog sectlog inodelog inopblog agblklog
/// rextslog(1 each), then sb_inprogress.
const INPROGRESS: usize = 126;

/// `Some(true)` when `superblock` starts with an XFS superblock whose mkfs never finished,
/// `Some(false)` for a finished one, `None` when it is no XFS superblock (or too short).
pub fn parse_xfs_inprogress(superblock: &[u8]) -> Option<bool> {
    if superblock.len() <= INPROGRESS || &superblock[..MAGIC.len()] != MAGIC {
        return None;
    }
    Some(superblock[INPROGRESS] != 0)
}

/// Whether the XFS filesystem at `dev_path` (blkid said xfs) was left unfinished by an
/// interrupted mkfs.xfs. Reads the first 512 bytes (the smallest sector) of the device.
pub fn xfs_unfinished(paths: &HostPaths, dev_path: &str) -> Result<bool, Error> {
    let context = || format!("reading the xfs superblock of {dev_path}");
    let mut superblock = Vec::with_capacity(512);
    std::fs::File::open(paths.host(dev_path))
        .and_then(|file| file.take(512).read_to_end(&mut superblock))
        .map_err(Error::io(context()))?;
    Ok(parse_xfs_inprogress(&superblock) == Some(true))
}

/// The start of a superblock as mkfs.xfs 6.x wrote it on a 300 MB image here (`od -j 120`:
/// `0c 09 09 03 0f 00 00 19`), with byte 126 (sb_inprogress) as given; 512 bytes.
#[cfg(test)]
pub fn test_superblock(inprogress: u8) -> Vec<u8> {
    let mut sb = vec![0u8; 512];
    sb[..8].copy_from_slice(b"XFSB\x00\x00\x10\x00");
    sb[120..128].copy_from_slice(&[0x0c, 0x09, 0x09, 0x03, 0x0f, 0x00, inprogress, 0x19]);
    sb
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_superblock as superblock;

    #[test]
    fn inprogress_byte_is_read_only_under_the_xfs_magic() {
        assert_eq!(parse_xfs_inprogress(&superblock(0)), Some(false));
        assert_eq!(parse_xfs_inprogress(&superblock(1)), Some(true));
        let mut not_xfs = superblock(1);
        not_xfs[..4].copy_from_slice(b"XFSX");
        assert_eq!(parse_xfs_inprogress(&not_xfs), None);
        assert_eq!(parse_xfs_inprogress(&superblock(1)[..126]), None, "too short to hold the byte");
        assert_eq!(parse_xfs_inprogress(b""), None);
    }

    #[test]
    fn device_read_through_host_paths() {
        let root = tempfile::tempdir().unwrap();
        let paths = HostPaths::under(root.path());
        std::fs::create_dir_all(paths.host("/dev")).unwrap();
        std::fs::write(paths.host("/dev/vdb1"), superblock(1)).unwrap();
        assert!(xfs_unfinished(&paths, "/dev/vdb1").unwrap());
        std::fs::write(paths.host("/dev/vdb1"), superblock(0)).unwrap();
        assert!(!xfs_unfinished(&paths, "/dev/vdb1").unwrap());
        let err = xfs_unfinished(&paths, "/dev/vdc1").unwrap_err().to_string();
        assert!(err.starts_with("reading the xfs superblock of /dev/vdc1: No such file"), "{err}");
    }
}
