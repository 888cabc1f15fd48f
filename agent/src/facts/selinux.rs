//! The SELinux mode: now, from the kernel (`/sys/fs/selinux/enforce` on selinuxfs: `1`
//! enforcing, `0` permissive; no selinuxfs = disabled, which is also what a kernel without
//! SELinux looks like), and at the next boot, from `SELINUX=` in /etc/selinux/config. The
//! kernel is asked directly rather than through `getenforce`, which reads the same file and
//! may not be installed. Pure parsers plus the reads; reads files only.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use brickyard_proto::v1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Disabled,
    Permissive,
    Enforcing,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Disabled => "disabled",
            Mode::Permissive => "permissive",
            Mode::Enforcing => "enforcing",
        }
    }

    pub fn to_proto(self) -> v1::SelinuxMode {
        match self {
            Mode::Disabled => v1::SelinuxMode::Disabled,
            Mode::Permissive => v1::SelinuxMode::Permissive,
            Mode::Enforcing => v1::SelinuxMode::Enforcing,
        }
    }
}

/// Where the two files are: under `/` on a host, under a fixture root in tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelinuxPaths {
    root: PathBuf,
}

impl SelinuxPaths {
    pub fn system() -> Self {
        Self { root: PathBuf::from("/") }
    }

    #[cfg(test)]
    pub fn under(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    fn enforce(&self) -> PathBuf {
        self.root.join("sys/fs/selinux/enforce")
    }

    pub fn config(&self) -> PathBuf {
        self.root.join("etc/selinux/config")
    }
}

/// The mode the kernel's `enforce` file says (`None`: neither `0` nor `1`).
pub fn parse_enforce(text: &str) -> Option<Mode> {
    match text.trim() {
        "1" => Some(Mode::Enforcing),
        "0" => Some(Mode::Permissive),
        _ => None,
    }
}

/// The `SELINUX=` mode of an /etc/selinux/config (the last assignment wins, as in a shell).
pub fn parse_config(text: &str) -> Option<Mode> {
    text.lines()
        .rev()
        .filter_map(|line| line.trim().strip_prefix("SELINUX="))
        .filter_map(|value| match value.trim().trim_matches(|c| c == '"' || c == '\'') {
            "enforcing" => Some(Mode::Enforcing),
            "permissive" => Some(Mode::Permissive),
            "disabled" => Some(Mode::Disabled),
            _ => None,
        })
        .next()
}

/// The mode now. A kernel file that cannot be read or says something else is an error naming it.
pub fn mode(paths: &SelinuxPaths) -> std::io::Result<Mode> {
    let path = paths.enforce();
    match std::fs::read_to_string(&path) {
        Ok(text) => parse_enforce(&text).ok_or_else(|| unexpected(&path, &text)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(Mode::Disabled),
        Err(e) => Err(std::io::Error::new(e.kind(), format!("reading {}: {e}", path.display()))),
    }
}

fn unexpected(path: &Path, text: &str) -> std::io::Error {
    std::io::Error::other(format!("{} says {:?}, expected 0 or 1", path.display(), text.trim()))
}

/// The mode the next boot starts in (`None`: no config file, or no `SELINUX=` in it).
pub fn configured(paths: &SelinuxPaths) -> Option<Mode> {
    std::fs::read_to_string(paths.config()).ok().as_deref().and_then(parse_config)
}

/// Both, for facts (a kernel file that cannot be read is reported as not known).
pub fn facts(paths: &SelinuxPaths) -> v1::Selinux {
    let known = |mode: Option<Mode>| mode.map_or(v1::SelinuxMode::Unspecified, Mode::to_proto) as i32;
    v1::Selinux { mode: known(mode(paths).ok()), configured: known(configured(paths)) }
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// The fixture root of one case (`enforcing`, `permissive`, `disabled`).
    pub fn fixture(case: &str) -> SelinuxPaths {
        SelinuxPaths::under(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/fixtures/selinux").join(case))
    }

    #[test]
    fn the_three_modes_from_fixture_roots() {
        let seen = |case: &str| {
            let paths = fixture(case);
            (mode(&paths).unwrap(), configured(&paths))
        };
        assert_eq!(seen("enforcing"), (Mode::Enforcing, Some(Mode::Enforcing)));
        assert_eq!(seen("permissive"), (Mode::Permissive, Some(Mode::Enforcing)));
        assert_eq!(seen("disabled"), (Mode::Disabled, Some(Mode::Disabled)));
        let permissive = facts(&fixture("permissive"));
        assert_eq!(
            (permissive.mode(), permissive.configured()),
            (v1::SelinuxMode::Permissive, v1::SelinuxMode::Enforcing)
        );
        // A host without SELinux at all (no selinuxfs, no config), e.g. Debian.
        let none = facts(&SelinuxPaths::under("/nonexistent-brickyard"));
        assert_eq!((none.mode(), none.configured()), (v1::SelinuxMode::Disabled, v1::SelinuxMode::Unspecified));
    }

    #[test]
    fn parsers() {
        assert_eq!(parse_enforce("1\n"), Some(Mode::Enforcing));
        assert_eq!(parse_enforce("0"), Some(Mode::Permissive));
        assert_eq!(parse_enforce("x"), None);
        assert_eq!(
            parse_config("# SELINUX=enforcing\nSELINUX=permissive\nSELINUXTYPE=targeted\n"),
            Some(Mode::Permissive)
        );
        assert_eq!(parse_config("SELINUX=\"disabled\"\n"), Some(Mode::Disabled));
        assert_eq!(parse_config("SELINUXTYPE=targeted\n"), None);
    }

    #[test]
    fn an_unexpected_kernel_answer_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("sys/fs/selinux")).unwrap();
        std::fs::write(dir.path().join("sys/fs/selinux/enforce"), "2").unwrap();
        let err = mode(&SelinuxPaths::under(dir.path())).unwrap_err().to_string();
        assert!(err.contains("sys/fs/selinux/enforce says \"2\", expected 0 or 1"), "{err}");
    }
}
