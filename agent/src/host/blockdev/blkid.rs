//! On-disk signatures from `blkid -p -o export`: low-level probing (reads the device itself,
//! no cache, no udev), KEY=value lines, exit 2 when nothing is found and 8 when signatures
//! conflict. Both the option and the format exist unchanged from util-linux 2.15 on, so EL7's
//! 2.23 and Debian's 2.38 answer alike. The parser is pure; `probe` runs blkid (read-only).

use std::collections::HashMap;

use super::Error;
use crate::host::runner::{CommandError, Runner};

/// What `blkid -p` found on a device.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Signature {
    /// TYPE: ext4, xfs, LVM2_member, linux_raid_member, crypto_LUKS, swap, ...
    pub fstype: Option<String>,
    /// PTTYPE: gpt, dos, ...
    pub pttype: Option<String>,
    pub uuid: Option<String>,
    pub label: Option<String>,
    /// blkid saw more than one signature and would not say which (exit status 8).
    pub ambivalent: bool,
}

impl Signature {
    pub fn is_empty(&self) -> bool {
        self.fstype.is_none() && self.pttype.is_none() && !self.ambivalent
    }

    /// "a gpt partition table", "an ext4 filesystem", "an LVM physical volume", ... for
    /// refusal messages; `None` when nothing was found.
    pub fn describe(&self) -> Option<String> {
        let mut found = Vec::new();
        if let Some(pt) = &self.pttype {
            found.push(format!("a {pt} partition table"));
        }
        match self.fstype.as_deref() {
            Some("LVM2_member") => found.push("an LVM physical volume (LVM2_member)".into()),
            Some("linux_raid_member") => found.push("a RAID member (linux_raid_member)".into()),
            Some("crypto_LUKS") => found.push("a LUKS encrypted volume (crypto_LUKS)".into()),
            Some("swap") => found.push("swap space".into()),
            Some(fs) => {
                found.push(format!("{} {fs} filesystem", if fs.starts_with(['a', 'e', 'x']) { "an" } else { "a" }))
            }
            None => {}
        }
        if self.ambivalent {
            found.push("several conflicting signatures (see wipefs)".into());
        }
        (!found.is_empty()).then(|| found.join(" and "))
    }
}

/// Parses `blkid -p -o export` output (KEY=value lines). The eras differ in two ways, both
/// handled: a `DEVNAME=` first line (newer; ignored), and values shell-escaped with a
/// backslash before spaces, `$`, quotes, ... (newer; undone, so `LABEL=my\ brick` and older
/// blkid's `LABEL=my brick` read alike; an older label holding a backslash loses it).
pub fn parse_blkid(text: &str) -> Signature {
    let fields: HashMap<&str, &str> = text.lines().filter_map(|l| l.split_once('=')).collect();
    let get = |k: &str| fields.get(k).filter(|v| !v.is_empty()).map(|v| unescape(v));
    Signature { fstype: get("TYPE"), pttype: get("PTTYPE"), uuid: get("UUID"), label: get("LABEL"), ambivalent: false }
}

/// Undoes blkid's shell escaping: a backslash stands for the character after it.
fn unescape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        out.push(if c == '\\' { chars.next().unwrap_or(c) } else { c });
    }
    out
}

/// Probes `path` for signatures with `blkid -p` (low-level: reads the device, no cache).
pub async fn probe(runner: &dyn Runner, path: &str) -> Result<Signature, Error> {
    let cmd = runner.cmd("blkid")?.args(["-p", "-o", "export", path]);
    let out = runner.output(&cmd).await?;
    match out.code {
        Some(0) => Ok(parse_blkid(&out.stdout)),
        // 2 = nothing found; but an unreadable device also exits 2, with a message (refused below).
        Some(2) if out.stderr.trim().is_empty() => Ok(Signature::default()),
        Some(8) => Ok(Signature { ambivalent: true, ..parse_blkid(&out.stdout) }),
        Some(2) => Err(Error::Unsafe(format!(
            "{path}: cannot read it to see what is on it ({}); brickyard never changes a device it cannot \
             inspect, even with wipe",
            out.stderr.trim()
        ))),
        code => Err(CommandError::Failed { cmd: cmd.display(), code, stdout: out.stdout, stderr: out.stderr }.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::runner::fake::FakeRunner;
    use crate::host::runner::Output;

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(format!("{}/src/fixtures/blkid/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    #[test]
    fn blkid_fixtures() {
        let xfs = parse_blkid(&fixture("xfs-partition.txt"));
        assert_eq!(
            (xfs.fstype.as_deref(), xfs.label.as_deref(), xfs.pttype.as_deref()),
            (Some("xfs"), Some("brick"), None)
        );
        assert_eq!(xfs.uuid.as_deref(), Some("7b56d2b3-670e-4de9-9775-bcde44a7e225"));
        assert_eq!(parse_blkid(&fixture("gpt-disk.txt")).describe().unwrap(), "a gpt partition table");
        assert_eq!(parse_blkid(&fixture("dos-disk.txt")).pttype.as_deref(), Some("dos"));
        assert_eq!(parse_blkid(&fixture("ext4-disk.txt")).describe().unwrap(), "an ext4 filesystem");
        assert_eq!(parse_blkid(&fixture("lvm-member.txt")).describe().unwrap(), "an LVM physical volume (LVM2_member)");
        assert_eq!(parse_blkid(&fixture("md-member.txt")).describe().unwrap(), "a RAID member (linux_raid_member)");
        assert_eq!(
            parse_blkid("TYPE=crypto_LUKS\nVERSION=2\n").describe().unwrap(),
            "a LUKS encrypted volume (crypto_LUKS)"
        );
        assert!(parse_blkid("").is_empty());
    }

    /// Older blkid prints raw values (and, oldest, no DEVNAME line); 2.38 (captured here with
    /// `mkfs.ext4 -L 'a b$c'` on a file) escapes them. Same answer.
    #[test]
    fn both_export_dialects_read_alike() {
        let old = "UUID=940d37c5-662f-4dad-892d-447aa854091e\nLABEL=a b$c\nTYPE=ext4\n";
        let debian12 = "DEVNAME=f.img\nLABEL=a\\ b\\$c\nUUID=940d37c5-662f-4dad-892d-447aa854091e\nVERSION=1.0\n\
                        BLOCK_SIZE=1024\nTYPE=ext4\nUSAGE=filesystem\n";
        assert_eq!(parse_blkid(old), parse_blkid(debian12));
        assert_eq!(parse_blkid(debian12).label.as_deref(), Some("a b$c"));
    }

    #[tokio::test]
    async fn probe_tells_nothing_from_unreadable() {
        let blank = Output { code: Some(2), ..Default::default() };
        // Captured here: the VM's own disk.
        let eperm = Output {
            code: Some(2),
            stderr: "blkid: error: /dev/vda: Operation not permitted".into(),
            ..Default::default()
        };
        let ambivalent = Output { code: Some(8), ..Default::default() };
        let r = FakeRunner::default()
            .expect_output("/usr/sbin/blkid -p -o export /dev/loop0", blank)
            .expect_output("/usr/sbin/blkid -p -o export /dev/vda", eperm)
            .expect_output("/usr/sbin/blkid -p -o export /dev/loop1", ambivalent);
        assert!(probe(&r, "/dev/loop0").await.unwrap().is_empty());
        let err = probe(&r, "/dev/vda").await.unwrap_err();
        assert!(matches!(err, Error::Unsafe(_)), "{err:?}");
        assert!(err.to_string().starts_with("/dev/vda: cannot read it to see what is on it (blkid: error:"), "{err}");
        assert!(probe(&r, "/dev/loop1").await.unwrap().describe().unwrap().contains("conflicting"));
    }
}
