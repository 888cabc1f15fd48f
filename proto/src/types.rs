//! Validated values: every string that reaches a command line or a file under /etc passes
//! through one of these newtypes first. Each rejects spaces, control characters, `;`, and a
//! leading `-` (so a value can never be read as an option), and names the field it checks.

use std::fmt;

/// Why a value was rejected, naming the field and the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field} {value:?}: {reason}")]
pub struct InvalidValue {
    pub field: &'static str,
    pub value: String,
    pub reason: String,
}

fn invalid(field: &'static str, value: &str, reason: impl Into<String>) -> InvalidValue {
    InvalidValue { field, value: value.to_owned(), reason: reason.into() }
}

/// Checks shared by every newtype: not empty, no leading `-`, no whitespace, control
/// characters or shell metacharacters.
fn check_plain(field: &'static str, value: &str, max_len: usize) -> Result<(), InvalidValue> {
    if value.is_empty() {
        return Err(invalid(field, value, "must not be empty"));
    }
    if value.len() > max_len {
        return Err(invalid(field, value, format!("longer than {max_len} characters")));
    }
    if value.starts_with('-') {
        return Err(invalid(field, value, "must not start with '-'"));
    }
    if let Some(c) = value.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid(field, value, format!("contains whitespace or control character {c:?}")));
    }
    if let Some(c) = value
        .chars()
        .find(|c| matches!(c, ';' | '&' | '|' | '`' | '$' | '<' | '>' | '\\' | '"' | '\'' | '*' | '?' | '!' | '#'))
    {
        return Err(invalid(field, value, format!("contains {c:?}")));
    }
    Ok(())
}

macro_rules! string_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::str::FromStr for $name {
            type Err = InvalidValue;
            fn from_str(s: &str) -> Result<Self, InvalidValue> {
                Self::new(s)
            }
        }
    };
}

string_newtype!(
    /// A host name as gluster and /etc/hosts use it (RFC 1123 labels, dots allowed).
    HostName
);
string_newtype!(
    /// An absolute path to a block device under /dev, e.g. `/dev/vdb`.
    DevicePath
);
string_newtype!(
    /// An absolute, normalised directory path (no `..`, no `//`), e.g. `/vdisk`.
    AbsPath
);
string_newtype!(
    /// A relative path below some directory, no `..`, e.g. `brick1`.
    RelPath
);
string_newtype!(
    /// A gluster volume name: letters, digits, `_` and `-`, at most 64 characters.
    VolumeName
);
string_newtype!(
    /// A gluster volume option key, e.g. `performance.cache-size`.
    OptionKey
);
string_newtype!(
    /// A gluster volume option value, e.g. `512MB`.
    OptionValue
);

impl HostName {
    pub fn new(value: &str) -> Result<Self, InvalidValue> {
        const FIELD: &str = "host name";
        check_plain(FIELD, value, 253)?;
        for label in value.split('.') {
            if label.is_empty() || label.len() > 63 {
                return Err(invalid(FIELD, value, "each dot-separated label must be 1-63 characters"));
            }
            if !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                return Err(invalid(FIELD, value, "only letters, digits, '-' and '.' are allowed"));
            }
            if label.starts_with('-') || label.ends_with('-') {
                return Err(invalid(FIELD, value, "a label must not start or end with '-'"));
            }
        }
        Ok(Self(value.to_owned()))
    }
}

fn check_path_chars(field: &'static str, value: &str) -> Result<(), InvalidValue> {
    check_plain(field, value, 4096)?;
    if !value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '-' | '.' | '+' | '@' | ':' | '=' | ','))
    {
        return Err(invalid(field, value, "only letters, digits and / _ - . + @ : = , are allowed"));
    }
    Ok(())
}

fn check_components(field: &'static str, value: &str, components: &str) -> Result<(), InvalidValue> {
    for part in components.split('/') {
        match part {
            "" => return Err(invalid(field, value, "empty path component ('//' or trailing '/')")),
            "." | ".." => return Err(invalid(field, value, "'.' and '..' components are not allowed")),
            _ => {}
        }
    }
    Ok(())
}

impl AbsPath {
    pub fn new(value: &str) -> Result<Self, InvalidValue> {
        Self::checked("path", value)
    }

    /// Like `new`, naming `field` in the error.
    pub fn checked(field: &'static str, value: &str) -> Result<Self, InvalidValue> {
        check_path_chars(field, value)?;
        let Some(rest) = value.strip_prefix('/') else {
            return Err(invalid(field, value, "must be an absolute path"));
        };
        if !rest.is_empty() {
            check_components(field, value, rest)?;
        }
        Ok(Self(value.to_owned()))
    }

    /// `self/rel`.
    pub fn join(&self, rel: &RelPath) -> AbsPath {
        if self.0 == "/" {
            AbsPath(format!("/{}", rel.0))
        } else {
            AbsPath(format!("{}/{}", self.0, rel.0))
        }
    }

    pub fn is_root(&self) -> bool {
        self.0 == "/"
    }
}

impl RelPath {
    pub fn new(value: &str) -> Result<Self, InvalidValue> {
        const FIELD: &str = "relative path";
        check_path_chars(FIELD, value)?;
        if value.starts_with('/') {
            return Err(invalid(FIELD, value, "must be relative"));
        }
        check_components(FIELD, value, value)?;
        Ok(Self(value.to_owned()))
    }
}

impl DevicePath {
    pub fn new(value: &str) -> Result<Self, InvalidValue> {
        const FIELD: &str = "device";
        let path = AbsPath::checked(FIELD, value)?;
        if !path.0.starts_with("/dev/") {
            return Err(invalid(FIELD, value, "must be a path under /dev"));
        }
        Ok(Self(path.0))
    }

    /// The kernel name, e.g. `vdb` for `/dev/vdb` (the last path component).
    pub fn kernel_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }
}

impl VolumeName {
    pub fn new(value: &str) -> Result<Self, InvalidValue> {
        const FIELD: &str = "volume name";
        check_plain(FIELD, value, 64)?;
        if !value.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            return Err(invalid(FIELD, value, "only letters, digits, '_' and '-' are allowed"));
        }
        Ok(Self(value.to_owned()))
    }
}

impl OptionKey {
    pub fn new(value: &str) -> Result<Self, InvalidValue> {
        const FIELD: &str = "volume option key";
        check_plain(FIELD, value, 128)?;
        if !value.contains('.') {
            return Err(invalid(FIELD, value, "must be of the form group.name, e.g. performance.cache-size"));
        }
        if !value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')) {
            return Err(invalid(FIELD, value, "only letters, digits, '.', '-' and '_' are allowed"));
        }
        Ok(Self(value.to_owned()))
    }
}

impl OptionValue {
    pub fn new(value: &str) -> Result<Self, InvalidValue> {
        const FIELD: &str = "volume option value";
        check_plain(FIELD, value, 1024)?;
        if !value.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '/' | ':' | ',' | '=' | '@' | '+' | '%')
        }) {
            return Err(invalid(FIELD, value, "only letters, digits and . - _ / : , = @ + % are allowed"));
        }
        Ok(Self(value.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names() {
        assert!(HostName::new("gluServer1").is_ok());
        assert!(HostName::new("a.example.org").is_ok());
        for bad in ["", "-x", "a b", "a;b", "a\nb", "a..b", "x-", "a_b"] {
            assert!(HostName::new(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn paths() {
        assert!(AbsPath::new("/vdisk").is_ok());
        assert!(AbsPath::new("/").is_ok());
        for bad in ["vdisk", "/a/../b", "/a//b", "/a/", "/a b", "/a;b", "-/a"] {
            assert!(AbsPath::new(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(AbsPath::new("/vdisk").unwrap().join(&RelPath::new("brick1").unwrap()).as_str(), "/vdisk/brick1");
        assert!(RelPath::new("../x").is_err());
        assert!(RelPath::new("/x").is_err());
        assert_eq!(DevicePath::new("/dev/nvme0n1").unwrap().kernel_name(), "nvme0n1");
        assert!(DevicePath::new("/etc/passwd").is_err());
    }

    #[test]
    fn gluster_values() {
        assert!(VolumeName::new("gluV1").is_ok());
        assert!(OptionKey::new("performance.cache-size").is_ok());
        assert!(OptionValue::new("512MB").is_ok());
        for bad in ["a b", "a;b", "a\nb", "-a", ""] {
            assert!(VolumeName::new(bad).is_err(), "{bad:?} accepted");
            assert!(OptionKey::new(bad).is_err(), "{bad:?} accepted");
            assert!(OptionValue::new(bad).is_err(), "{bad:?} accepted");
        }
        let err = VolumeName::new("a;b").unwrap_err();
        assert!(err.to_string().contains("volume name"), "{err}");
    }
}
