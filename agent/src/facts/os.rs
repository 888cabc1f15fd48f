//! Operating system facts: /etc/os-release (pure parser + read) and the running kernel
//! (/proc/sys/kernel/osrelease). Reads files only.

/// The os-release fields Brickyard uses (`ID`, `VERSION_ID`, `ID_LIKE`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct OsRelease {
    pub id: String,
    pub version_id: String,
    pub id_like: Vec<String>,
}

/// Parses os-release(5): `KEY=value` lines, values optionally quoted; comments ignored.
pub fn parse_os_release(text: &str) -> OsRelease {
    let mut os = OsRelease::default();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let Some((key, value)) = line.split_once('=') else { continue };
        let value = unquote(value.trim());
        match key.trim() {
            "ID" => os.id = value,
            "VERSION_ID" => os.version_id = value,
            "ID_LIKE" => os.id_like = value.split_whitespace().map(str::to_owned).collect(),
            _ => {}
        }
    }
    os
}

fn unquote(value: &str) -> String {
    let inner = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
        .unwrap_or(value);
    inner.replace("\\\"", "\"").replace("\\$", "$").replace("\\`", "`").replace("\\\\", "\\")
}

/// /etc/os-release, else /usr/lib/os-release (as os-release(5) says); empty if neither.
pub fn read_os_release() -> OsRelease {
    ["/etc/os-release", "/usr/lib/os-release"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .map(|text| parse_os_release(&text))
        .unwrap_or_default()
}

/// The running kernel's release, e.g. `6.1.0-27-amd64`.
pub fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease").map(|s| s.trim().to_owned()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debian_and_rhel() {
        let debian = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nVERSION_ID=\"12\"\nID=debian\n";
        assert_eq!(
            parse_os_release(debian),
            OsRelease { id: "debian".into(), version_id: "12".into(), id_like: vec![] }
        );
        let rhel = "# comment\nNAME=\"Rocky Linux\"\nID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\nVERSION_ID='9.3'\n";
        assert_eq!(
            parse_os_release(rhel),
            OsRelease {
                id: "rocky".into(),
                version_id: "9.3".into(),
                id_like: vec!["rhel".into(), "centos".into(), "fedora".into()]
            }
        );
        assert_eq!(parse_os_release(""), OsRelease::default());
    }
}
