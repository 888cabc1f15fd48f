//! What is mounted where, from /proc/self/mountinfo (the agent's own mount namespace), and
//! which devices are swap, from /proc/swaps. The parsers are pure; `read` is the only I/O.

use std::io;

/// One line of mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub mount_point: String,
    pub fstype: String,
    pub source: String,
    pub options: String,
    /// "major:minor" of the mounted device.
    pub dev: String,
}

/// Parses /proc/self/mountinfo (see proc(5)); octal escapes (`\040`) are decoded.
pub fn parse(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let left: Vec<&str> = left.split(' ').collect();
            let mut right = right.split(' ');
            Some(Mount {
                dev: left.get(2)?.to_string(),
                mount_point: unescape(left.get(4)?),
                options: left.get(5)?.to_string(),
                fstype: right.next()?.to_string(),
                source: unescape(right.next()?),
            })
        })
        .collect()
}

fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() && bytes[i + 1..i + 4].iter().all(|b| (b'0'..=b'7').contains(b)) {
            out.push(u8::from_str_radix(&s[i + 1..i + 4], 8).unwrap_or(b'?'));
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses /proc/swaps: the devices in use as swap (swap files left out), octal escapes decoded.
pub fn parse_swaps(text: &str) -> Vec<String> {
    text.lines()
        .skip(1) // Filename Type Size Used Priority
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (file, kind) = (fields.next()?, fields.next()?);
            (kind == "partition").then(|| unescape(file))
        })
        .collect()
}

/// The current mounts of this process's mount namespace.
pub fn read() -> io::Result<Vec<Mount>> {
    Ok(parse(&std::fs::read_to_string("/proc/self/mountinfo")?))
}

/// The mount whose mount point is exactly `path` (the top-most one, if stacked).
pub fn at<'a>(mounts: &'a [Mount], path: &str) -> Option<&'a Mount> {
    mounts.iter().rev().find(|m| m.mount_point == path)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw,errors=remount-ro
60 22 7:0 / /vdisk rw,noatime shared:30 - xfs /dev/loop0p1 rw,inode64,noquota
61 22 0:50 / /data\\040share rw,relatime shared:31 - fuse.glusterfs gluServer1:/gluV1 rw,user_id=0
";

    #[test]
    fn parses_mounts_and_escapes() {
        let mounts = parse(SAMPLE);
        assert_eq!(mounts.len(), 3);
        assert_eq!(at(&mounts, "/vdisk").unwrap().source, "/dev/loop0p1");
        let g = at(&mounts, "/data share").unwrap();
        assert_eq!(
            (g.fstype.as_str(), g.source.as_str(), g.dev.as_str()),
            ("fuse.glusterfs", "gluServer1:/gluV1", "0:50")
        );
        assert!(at(&mounts, "/none").is_none());
    }

    #[test]
    fn swap_devices_not_files() {
        let swaps = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n\
                     /dev/dm-1                               partition\t8388604\t\t0\t\t-2\n\
                     /swap\\040file                         file\t\t1048572\t\t0\t\t-3\n\
                     /dev/vdb2                               partition\t1048572\t\t0\t\t-4\n";
        assert_eq!(parse_swaps(swaps), ["/dev/dm-1", "/dev/vdb2"]);
        assert!(parse_swaps("Filename Type Size Used Priority\n").is_empty());
    }
}
