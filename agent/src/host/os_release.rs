//! /etc/os-release, parsed once for everyone who needs the distribution (facts, the package and
//! SELinux tasks): a pure parser, the read os-release(5) prescribes, and the distribution family
//! and major version it gives. Reads files only.

/// The os-release fields Brickyard uses (`ID`, `VERSION_ID`, `ID_LIKE`, `PRETTY_NAME`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct OsRelease {
    pub id: String,
    pub version_id: String,
    pub id_like: Vec<String>,
    pub pretty_name: String,
}

/// The distribution families Brickyard installs GlusterFS on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Debian, Ubuntu: GlusterFS from the distribution (apt).
    Debian,
    /// RHEL and its rebuilds (CentOS, CentOS Stream, Rocky, Alma, Oracle): GlusterFS from the
    /// CentOS Storage SIG or another repository (dnf/yum).
    RedHat,
    /// Fedora: GlusterFS from the distribution (dnf).
    Fedora,
}

impl OsRelease {
    /// The family from `ID`, then each `ID_LIKE` entry in order (RHEL says `ID_LIKE="fedora"`,
    /// so its `ID` must decide first).
    pub fn family(&self) -> Result<Family, String> {
        for candidate in std::iter::once(self.id.as_str()).chain(self.id_like.iter().map(String::as_str)) {
            match candidate {
                "debian" | "ubuntu" => return Ok(Family::Debian),
                "rhel" | "centos" | "rocky" | "almalinux" | "ol" => return Ok(Family::RedHat),
                "fedora" => return Ok(Family::Fedora),
                _ => {}
            }
        }
        Err(format!(
            "unsupported distribution {} (ID={:?} ID_LIKE={:?}; supported: Debian, Ubuntu, RHEL and its rebuilds, Fedora)",
            self.name(),
            self.id,
            self.id_like.join(" ")
        ))
    }

    /// The major version: `VERSION_ID`'s leading number (`9.4` → 9, CentOS Stream's `9` → 9).
    pub fn major_version(&self) -> Option<u32> {
        self.version_id.split('.').next()?.parse().ok()
    }

    /// Red Hat Enterprise Linux itself, not a rebuild: its repositories lack CentOS extras.
    pub fn is_rhel(&self) -> bool {
        self.id == "rhel"
    }

    /// How messages name the platform: `PRETTY_NAME`, else `ID VERSION_ID`.
    pub fn name(&self) -> String {
        if self.pretty_name.is_empty() {
            format!("{} {}", self.id, self.version_id).trim().to_owned()
        } else {
            self.pretty_name.clone()
        }
    }
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
            "PRETTY_NAME" => os.pretty_name = value,
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
        assert_eq!(
            parse(debian),
            OsRelease {
                id: "debian".into(),
                version_id: "12".into(),
                id_like: vec![],
                pretty_name: "Debian GNU/Linux 12 (bookworm)".into()
            }
        );
        let rhel = "# comment\nNAME=\"Rocky Linux\"\nID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\nVERSION_ID='9.3'\n";
        assert_eq!(
            parse(rhel),
            OsRelease {
                id: "rocky".into(),
                version_id: "9.3".into(),
                id_like: vec!["rhel".into(), "centos".into(), "fedora".into()],
                pretty_name: String::new()
            }
        );
        assert_eq!(parse(""), OsRelease::default());
    }
}
