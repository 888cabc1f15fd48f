//! /etc/os-release, parsed once for everyone who needs the distribution (facts, the package
//! task): a pure parser and the read os-release(5) prescribes. Reads files only.

/// The os-release fields Brickyard uses (`ID`, `VERSION_ID`, `ID_LIKE`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct OsRelease {
    pub id: String,
    pub version_id: String,
    pub id_like: Vec<String>,
}

/// Parses os-release(5): `KEY=value` lines, values optionally quoted; comments ignored.
pub fn parse(text: &str) -> OsRelease {
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
pub fn read() -> OsRelease {
    ["/etc/os-release", "/usr/lib/os-release"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .map(|text| parse(&text))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debian_and_rhel() {
        let debian = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nVERSION_ID=\"12\"\nID=debian\n";
        assert_eq!(parse(debian), OsRelease { id: "debian".into(), version_id: "12".into(), id_like: vec![] });
        let rhel = "# comment\nNAME=\"Rocky Linux\"\nID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\nVERSION_ID='9.3'\n";
        assert_eq!(
            parse(rhel),
            OsRelease {
                id: "rocky".into(),
                version_id: "9.3".into(),
                id_like: vec!["rhel".into(), "centos".into(), "fedora".into()]
            }
        );
        assert_eq!(parse(""), OsRelease::default());
    }
}
