//! Validated values: every string that reaches a command line or a file under /etc passes
//! through one of these newtypes first. Each rejects spaces, control characters, `;`, and a
//! leading `-` (so a value can never be read as an option), and names the field it checks.

use std::fmt;
use std::net::IpAddr;

/// Why a value was rejected, naming the field and the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field} {}: {reason}", shown(value))]
pub struct InvalidValue {
    pub field: &'static str,
    pub value: String,
    pub reason: String,
}

/// How many characters of a rejected value an error shows.
const SHOWN_CHARS: usize = 80;

/// `value` quoted and escaped (control characters never reach a terminal raw), cut after
/// `SHOWN_CHARS` characters.
fn shown(value: &str) -> String {
    match value.char_indices().nth(SHOWN_CHARS) {
        None => format!("{value:?}"),
        Some((cut, _)) => format!("{:?}... ({} characters)", &value[..cut], value.chars().count()),
    }
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
    if value.chars().count() > max_len {
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
    };
}

/// `str::parse` for the newtypes whose `new` takes the value alone.
macro_rules! from_str_by_new {
    ($($name:ident),*) => {$(
        impl std::str::FromStr for $name {
            type Err = InvalidValue;
            fn from_str(s: &str) -> Result<Self, InvalidValue> {
                Self::new(s)
            }
        }
    )*};
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
string_newtype!(
    /// The pool's name: letters, digits, `_`, `-` and `.`, at most 64 characters.
    PoolName
);
string_newtype!(
    /// A filesystem label for `mkfs -L`: letters, digits, `_`, `-` and `.`, starting with a
    /// letter or digit, at most as long as the filesystem allows (xfs 12, ext4 16).
    FsLabel
);

from_str_by_new!(HostName, DevicePath, AbsPath, RelPath, VolumeName, OptionKey, OptionValue, PoolName);

/// The filesystems Brickyard makes on brick disks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Filesystem {
    Xfs,
    Ext4,
}

impl Filesystem {
    pub fn parse(value: &str) -> Result<Self, InvalidValue> {
        match value {
            "xfs" => Ok(Filesystem::Xfs),
            "ext4" => Ok(Filesystem::Ext4),
            other => Err(invalid("filesystem", other, "not supported (xfs or ext4)")),
        }
    }

    /// The name blkid, mkfs, mount and fstab use.
    pub fn name(self) -> &'static str {
        match self {
            Filesystem::Xfs => "xfs",
            Filesystem::Ext4 => "ext4",
        }
    }

    /// The longest label the filesystem stores.
    pub fn max_label_len(self) -> usize {
        match self {
            Filesystem::Xfs => 12,
            Filesystem::Ext4 => 16,
        }
    }
}

impl fmt::Display for Filesystem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

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

    /// The one path policy, shared by the spec checks and the agent: a mount point (disk or
    /// client), brick or brick dir may not be `/`, be or lie under a tree the system lives in
    /// (`/etc`, `/usr`, `/var/lib`, `/lib*`, ...), contain one (`/var` holds `/var/lib`), or be
    /// `/home` or `/tmp` themselves. `Err` says which tree and how.
    pub fn require_outside_system(&self) -> Result<(), SystemPath> {
        const TREES: &[&str] = &[
            "/etc", "/usr", "/boot", "/root", "/var/lib", "/var/log", "/proc", "/sys", "/dev", "/run", "/bin", "/sbin",
        ];
        /// Shared with users: never a mount point themselves, but fine to hold one.
        const SHARED: &[&str] = &["/home", "/tmp"];
        let path = self.0.as_str();
        let refuse = |relation, tree: &str| Err(SystemPath { path: self.clone(), relation, tree: tree.to_owned() });
        if path == "/" {
            return refuse(Relation::Is, "/");
        }
        let top = path.split('/').nth(1).unwrap_or_default();
        if top.starts_with("lib") {
            let tree = format!("/{top}");
            return refuse(if path == tree { Relation::Is } else { Relation::Under }, &tree);
        }
        for tree in TREES {
            if path == *tree {
                return refuse(Relation::Is, tree);
            }
            if tree.strip_prefix(path).is_some_and(|rest| rest.starts_with('/')) {
                return refuse(Relation::Holds, tree);
            }
            if path.strip_prefix(tree).is_some_and(|rest| rest.starts_with('/')) {
                return refuse(Relation::Under, tree);
            }
        }
        match SHARED.iter().find(|dir| path == **dir) {
            Some(dir) => refuse(Relation::Is, dir),
            None => Ok(()),
        }
    }
}

/// A path the path policy refuses ([`AbsPath::require_outside_system`]): which system tree
/// and how the path meets it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path} {relation} {tree}, a system directory (never a mount point, brick or brick dir)")]
pub struct SystemPath {
    pub path: AbsPath,
    pub relation: Relation,
    pub tree: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    Is,
    Under,
    Holds,
}

impl fmt::Display for Relation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Relation::Is => "is",
            Relation::Under => "lies under",
            Relation::Holds => "holds",
        })
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

impl PoolName {
    pub fn new(value: &str) -> Result<Self, InvalidValue> {
        const FIELD: &str = "pool name";
        check_plain(FIELD, value, 64)?;
        if !value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')) {
            return Err(invalid(FIELD, value, "only letters, digits, '_', '-' and '.' are allowed"));
        }
        Ok(Self(value.to_owned()))
    }
}

impl FsLabel {
    /// A label for a new `filesystem`.
    pub fn new(value: &str, filesystem: Filesystem) -> Result<Self, InvalidValue> {
        const FIELD: &str = "filesystem label";
        check_plain(FIELD, value, filesystem.max_label_len())
            .map_err(|e| InvalidValue { reason: format!("{} ({filesystem} labels)", e.reason), ..e })?;
        if !value.starts_with(|c: char| c.is_ascii_alphanumeric())
            || !value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        {
            return Err(invalid(
                FIELD,
                value,
                "only letters, digits, '_', '-' and '.' are allowed, starting with a letter or digit",
            ));
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

/// The longest volume option value: `auth.allow` lists every server and client address of the
/// pool (100 hosts take about 1.4 KiB; this is room for about a thousand IPv4 addresses, and
/// far below the kernel's 128 KiB for one argument of the gluster CLI).
const MAX_OPTION_VALUE: usize = 16 * 1024;

impl OptionValue {
    pub fn new(value: &str) -> Result<Self, InvalidValue> {
        const FIELD: &str = "volume option value";
        check_plain(FIELD, value, MAX_OPTION_VALUE)?;
        if !value.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '/' | ':' | ',' | '=' | '@' | '+' | '%')
        }) {
            return Err(invalid(FIELD, value, "only letters, digits and . - _ / : , = @ + % are allowed"));
        }
        Ok(Self(value.to_owned()))
    }
}

/// A Cinder volume id: a UUID, e.g. `ec4eea2a-f0d9-4614-bc00-2b1d7fd134f4` (kept lower-case).
/// Nova attaches the volume as a virtio disk whose serial is the id's first 20 characters
/// (the size of a virtio-blk serial); virtio-scsi carries the whole id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CinderVolume {
    id: String,
}

/// The characters of a Cinder volume id a virtio-blk serial holds.
const VIRTIO_SERIAL_LEN: usize = 20;

impl CinderVolume {
    pub fn new(id: &str) -> Result<Self, InvalidValue> {
        let groups: Vec<&str> = id.split('-').collect();
        let uuid_shaped = groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
            && groups.iter().all(|g| g.chars().all(|c| c.is_ascii_hexdigit()));
        if !uuid_shaped {
            return Err(invalid(
                "Cinder volume id",
                id,
                "must be a volume UUID such as ec4eea2a-f0d9-4614-bc00-2b1d7fd134f4",
            ));
        }
        Ok(Self { id: id.to_ascii_lowercase() })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// The serial a virtio-blk disk of this volume shows: the id's first 20 characters.
    pub fn virtio_serial(&self) -> &str {
        &self.id[..VIRTIO_SERIAL_LEN]
    }
}

impl fmt::Display for CinderVolume {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id)
    }
}

/// A GlusterFS release the CentOS Storage SIG ships for the RHEL family (`centos-release-glusterN`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GlusterRelease(u8);

impl GlusterRelease {
    /// The releases there are SIG release packages for: 9 (EL7, EL8), 10 and 11 (EL8, EL9).
    pub const KNOWN: [GlusterRelease; 3] = [GlusterRelease(9), GlusterRelease(10), GlusterRelease(11)];

    pub fn new(value: &str) -> Result<Self, InvalidValue> {
        Self::KNOWN.into_iter().find(|r| r.to_string() == value).ok_or_else(|| {
            invalid("GlusterFS version", value, "must be \"9\", \"10\" or \"11\" (a CentOS Storage SIG release)")
        })
    }

    pub fn major(self) -> u8 {
        self.0
    }

    /// The Storage SIG's release package for it, e.g. `centos-release-gluster11`.
    pub fn sig_release_package(self) -> String {
        format!("centos-release-gluster{}", self.0)
    }
}

impl fmt::Display for GlusterRelease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Where a RHEL-family host gets GlusterFS when not from the CentOS Storage SIG: an https URL
/// of a yum/dnf `.repo` file (e.g. a COPR repository's, or one pointing at vault.centos.org),
/// or the name of a release package the host's own repositories carry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum GlusterRepo {
    RepoFile(String),
    ReleasePackage(String),
}

impl GlusterRepo {
    pub fn new(value: &str) -> Result<Self, InvalidValue> {
        const FIELD: &str = "GlusterFS repository";
        check_plain(FIELD, value, 2048)?;
        if value.contains("://") {
            let Some(rest) = value.strip_prefix("https://") else {
                return Err(invalid(
                    FIELD,
                    value,
                    "a repository URL must be https:// (it says where packages come from)",
                ));
            };
            let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
            if host.is_empty() || !host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':')) {
                return Err(invalid(FIELD, value, "the URL needs a host name (letters, digits, '.', '-', ':port')"));
            }
            if !path.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-' | '~' | '+' | '%'))
            {
                return Err(invalid(FIELD, value, "the URL path may hold only letters, digits and / . _ - ~ + %"));
            }
            if !path.ends_with(".repo") || path.split('/').any(|part| part == "..") {
                return Err(invalid(FIELD, value, "the URL must name a .repo file (https://HOST/PATH.repo)"));
            }
            return Ok(GlusterRepo::RepoFile(value.to_owned()));
        }
        if value.len() > 128
            || !value.starts_with(|c: char| c.is_ascii_alphanumeric())
            || !value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+'))
        {
            return Err(invalid(
                FIELD,
                value,
                "must be an https URL of a .repo file or a release package name (letters, digits, . _ - +)",
            ));
        }
        Ok(GlusterRepo::ReleasePackage(value.to_owned()))
    }
}

impl fmt::Display for GlusterRepo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GlusterRepo::RepoFile(url) => write!(f, "repository file {url}"),
            GlusterRepo::ReleasePackage(name) => write!(f, "release package {name}"),
        }
    }
}

/// An address or network a firewall admits: `ADDR` or `ADDR/PREFIX`, IPv4 or IPv6, with no
/// address bits set beyond the prefix (`10.0.0.5/24` is refused, naming `10.0.0.0/24`). Shown
/// as `ADDR/PREFIX`, the way iptables lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceNet {
    addr: IpAddr,
    prefix: u8,
}

impl SourceNet {
    pub fn new(value: &str) -> Result<Self, InvalidValue> {
        const FIELD: &str = "address or network";
        let (addr, prefix) = match value.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (value, None),
        };
        let addr: IpAddr =
            addr.parse().map_err(|_| invalid(FIELD, value, "expected an IPv4 or IPv6 address, optionally /PREFIX"))?;
        let max = Self::max_prefix(addr);
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|n| p.bytes().all(|b| b.is_ascii_digit()) && *n <= max)
                .ok_or_else(|| invalid(FIELD, value, format!("the prefix must be a number from 0 to {max}")))?,
        };
        let net = Self { addr, prefix };
        if net.network() != addr {
            return Err(invalid(
                FIELD,
                value,
                format!("address bits set beyond /{prefix}: the network is {}/{prefix}", net.network()),
            ));
        }
        Ok(net)
    }

    /// The single address `addr` (IPv4-mapped IPv6 addresses as IPv4).
    pub fn host(addr: IpAddr) -> Self {
        let addr = addr.to_canonical();
        Self { addr, prefix: Self::max_prefix(addr) }
    }

    pub fn is_ipv6(&self) -> bool {
        self.addr.is_ipv6()
    }

    /// Whether `ip` lies in this network (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_ipv6() == self.is_ipv6() && Self { addr: ip, prefix: self.prefix }.network() == self.addr
    }

    fn max_prefix(addr: IpAddr) -> u8 {
        if addr.is_ipv6() {
            128
        } else {
            32
        }
    }

    /// The address with every bit beyond the prefix cleared.
    fn network(&self) -> IpAddr {
        match self.addr {
            IpAddr::V4(a) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                IpAddr::V4((u32::from(a) & mask).into())
            }
            IpAddr::V6(a) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                IpAddr::V6((u128::from(a) & mask).into())
            }
        }
    }
}

impl fmt::Display for SourceNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl std::str::FromStr for SourceNet {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, InvalidValue> {
        Self::new(s)
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

    /// The path policy, one row per path: `None` = allowed, else the tree and how it meets it.
    #[test]
    fn path_policy() {
        use Relation::*;
        let table: &[(&str, Option<(Relation, &str)>)] = &[
            ("/", Some((Is, "/"))),
            ("/etc", Some((Is, "/etc"))),
            ("/etc/gluster", Some((Under, "/etc"))),
            ("/usr/local/data", Some((Under, "/usr"))),
            ("/boot", Some((Is, "/boot"))),
            ("/root/data", Some((Under, "/root"))),
            ("/var", Some((Holds, "/var/lib"))),
            ("/var/lib", Some((Is, "/var/lib"))),
            ("/var/lib/x", Some((Under, "/var/lib"))),
            ("/var/log/gluster", Some((Under, "/var/log"))),
            ("/proc/1", Some((Under, "/proc"))),
            ("/sys", Some((Is, "/sys"))),
            ("/dev/shm", Some((Under, "/dev"))),
            ("/run/gluster", Some((Under, "/run"))),
            ("/bin", Some((Is, "/bin"))),
            ("/sbin/x", Some((Under, "/sbin"))),
            ("/lib", Some((Is, "/lib"))),
            ("/lib64/x", Some((Under, "/lib64"))),
            ("/libx32", Some((Is, "/libx32"))),
            ("/home", Some((Is, "/home"))),
            ("/tmp", Some((Is, "/tmp"))),
            ("/vdisk", None),
            ("/dataShare", None),
            ("/var/data", None),
            ("/varlib", None),
            ("/etcetera", None),
            ("/srv/bricks", None),
            ("/home/shared", None),
            ("/tmp/scratch", None),
            ("/mnt/gluster", None),
        ];
        for (path, expected) in table {
            let got = AbsPath::new(path).unwrap().require_outside_system();
            let got = got.as_ref().map_err(|e| (e.relation, e.tree.as_str())).err();
            assert_eq!(got, *expected, "{path}");
        }
        let err = AbsPath::new("/var/lib/x").unwrap().require_outside_system().unwrap_err();
        assert_eq!(
            err.to_string(),
            "/var/lib/x lies under /var/lib, a system directory (never a mount point, brick or brick dir)"
        );
    }

    #[test]
    fn gluster_values() {
        assert!(VolumeName::new("gluV1").is_ok());
        assert!(OptionKey::new("performance.cache-size").is_ok());
        assert!(OptionValue::new("512MB").is_ok());
        // auth.allow of a 100-host pool fits; a value past the bound is refused, naming it.
        let pool: Vec<String> = (0..100).map(|i| format!("198.19.15.{i}")).collect();
        assert!(OptionValue::new(&pool.join(",")).is_ok());
        let err = OptionValue::new(&"1".repeat(MAX_OPTION_VALUE + 1)).unwrap_err().to_string();
        assert!(err.contains(&format!("longer than {MAX_OPTION_VALUE} characters")), "{err}");
        for bad in ["a b", "a;b", "a\nb", "-a", ""] {
            assert!(VolumeName::new(bad).is_err(), "{bad:?} accepted");
            assert!(OptionKey::new(bad).is_err(), "{bad:?} accepted");
            assert!(OptionValue::new(bad).is_err(), "{bad:?} accepted");
        }
        let err = VolumeName::new("a;b").unwrap_err();
        assert!(err.to_string().contains("volume name"), "{err}");
    }

    #[test]
    fn source_nets() {
        let shown = |v: &str| SourceNet::new(v).map(|n| n.to_string());
        assert_eq!(shown("198.18.0.11"), Ok("198.18.0.11/32".to_owned()));
        assert_eq!(shown("10.0.0.0/8"), Ok("10.0.0.0/8".to_owned()));
        assert_eq!(shown("0.0.0.0/0"), Ok("0.0.0.0/0".to_owned()));
        assert_eq!(shown("2001:db8::1"), Ok("2001:db8::1/128".to_owned()));
        assert_eq!(shown("2001:db8::/32"), Ok("2001:db8::/32".to_owned()));
        let err = SourceNet::new("10.0.0.5/24").unwrap_err().to_string();
        assert!(err.contains("the network is 10.0.0.0/24"), "{err}");
        for bad in [
            "",
            "10.0.0.1/33",
            "2001:db8::1/129",
            "10.0.0.1/+8",
            "10.0.0.1/",
            "host1",
            "10.0.0.1 ",
            "-1.2.3.4",
            "10.0.0.1/-1",
            "10.0.0.1/256",
            "10.0.0.1/4294967296",
            "2001:db8::1/18446744073709551616",
        ] {
            assert!(SourceNet::new(bad).is_err(), "{bad:?} accepted");
        }
        let net = SourceNet::new("198.18.0.0/24").unwrap();
        assert!(net.contains("198.18.0.1".parse().unwrap()));
        assert!(net.contains("::ffff:198.18.0.1".parse().unwrap()));
        assert!(!net.contains("198.18.1.1".parse().unwrap()));
        assert!(!net.contains("2001:db8::1".parse().unwrap()));
        assert_eq!(SourceNet::host("::ffff:198.18.0.1".parse().unwrap()).to_string(), "198.18.0.1/32");
    }

    #[test]
    fn labels() {
        assert!(FsLabel::new("brick.1", Filesystem::Xfs).is_ok());
        assert!(FsLabel::new("sixteen-chars-ok", Filesystem::Ext4).is_ok());
        let err = FsLabel::new("thirteen-char", Filesystem::Xfs).unwrap_err().to_string();
        assert!(err.contains("longer than 12 characters (xfs labels)"), "{err}");
        for bad in ["", ".x", "-x", "_x", "a b", "a/b", "é"] {
            assert!(FsLabel::new(bad, Filesystem::Ext4).is_err(), "{bad:?} accepted");
        }
        assert_eq!(Filesystem::parse("ext4"), Ok(Filesystem::Ext4));
        assert!(Filesystem::parse("btrfs").unwrap_err().to_string().contains("xfs or ext4"));
    }

    #[test]
    fn cinder_volumes() {
        let v = CinderVolume::new("EC4EEA2A-f0d9-4614-bc00-2b1d7fd134f4").unwrap();
        assert_eq!((v.id(), v.virtio_serial()), ("ec4eea2a-f0d9-4614-bc00-2b1d7fd134f4", "ec4eea2a-f0d9-4614-b"));
        for bad in [
            "",
            "ec4eea2a-f0d9-4614-bc00",
            "ec4eea2af0d94614bc002b1d7fd134f4",
            "/dev/vdb",
            "ec4eea2a-f0d9-4614-bc00-2b1d7fd134fz",
        ] {
            let err = CinderVolume::new(bad).unwrap_err().to_string();
            assert!(err.contains("Cinder volume id") && err.contains("must be a volume UUID"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn gluster_releases_and_repos() {
        assert_eq!(
            GlusterRelease::new("11").map(GlusterRelease::sig_release_package),
            Ok("centos-release-gluster11".into())
        );
        assert_eq!(GlusterRelease::new("9").map(GlusterRelease::major), Ok(9));
        for bad in ["", "8", "12", "11.1", "v11", " 11"] {
            assert!(GlusterRelease::new(bad).unwrap_err().to_string().contains("\"9\", \"10\" or \"11\""), "{bad:?}");
        }
        let url =
            "https://copr.fedorainfracloud.org/coprs/someone/glusterfs/repo/rhel-10/someone-glusterfs-rhel-10.repo";
        assert_eq!(GlusterRepo::new(url), Ok(GlusterRepo::RepoFile(url.into())));
        assert_eq!(
            GlusterRepo::new("centos-release-gluster11"),
            Ok(GlusterRepo::ReleasePackage("centos-release-gluster11".into()))
        );
        let refused = |value: &str| GlusterRepo::new(value).unwrap_err().to_string();
        assert!(refused("http://mirror.example/gluster.repo").contains("must be https://"));
        assert!(refused("https://mirror.example/gluster/").contains("must name a .repo file"));
        assert!(refused("https://mirror.example/../x.repo").contains("must name a .repo file"));
        assert!(refused("https:///x.repo").contains("needs a host name"));
        assert!(refused("https://mirror.example/x.repo?token=1").contains("contains '?'"));
        assert!(refused("ftp://mirror.example/x.repo").contains("must be https://"));
        assert!(refused("my repo").contains("whitespace"));
        assert!(refused("-y").contains("must not start with '-'"));
        assert!(refused("_release").contains("release package name"));
    }

    #[test]
    fn errors_show_values_escaped_and_cut() {
        let err = HostName::new("a\u{1b}[31mb").unwrap_err().to_string();
        assert!(!err.contains('\u{1b}') && err.contains("\\u{1b}"), "{err}");
        let long = "x".repeat(5000);
        let err = VolumeName::new(&long).unwrap_err().to_string();
        assert!(err.len() < 200 && err.contains("(5000 characters)"), "{err}");
    }

    use proptest::prelude::*;

    /// Strings near the rules (the characters the newtypes care about) and anything at all.
    fn candidate() -> impl Strategy<Value = String> {
        prop_oneof![
            3 => "[a-zA-Z0-9/._:=,@+%-]{0,20}",
            1 => "/dev/[a-z0-9/.]{0,12}",
            1 => any::<String>(),
        ]
    }

    /// An accepted value is the input unchanged and validates again, through `new`, `parse`
    /// and its rendering; a refusal names the value and prints no raw control character.
    fn same_again<T>(
        input: &str,
        made: Result<T, InvalidValue>,
        again: impl Fn(&str) -> Result<T, InvalidValue>,
    ) -> Result<(), TestCaseError>
    where
        T: PartialEq + fmt::Debug + fmt::Display + AsRef<str>,
    {
        match made {
            Ok(value) => {
                let rendered = value.to_string();
                prop_assert_eq!(value.as_ref(), input);
                prop_assert_eq!(rendered.as_str(), input);
                prop_assert_eq!(again(&rendered), Ok(value));
            }
            Err(e) => {
                prop_assert_eq!(e.value.as_str(), input);
                prop_assert!(!e.to_string().chars().any(char::is_control), "{}", e);
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn newtypes_revalidate_what_they_accept(s in candidate()) {
            same_again(&s, HostName::new(&s), |v| v.parse())?;
            same_again(&s, DevicePath::new(&s), |v| v.parse())?;
            same_again(&s, AbsPath::new(&s), |v| v.parse())?;
            same_again(&s, RelPath::new(&s), |v| v.parse())?;
            same_again(&s, VolumeName::new(&s), |v| v.parse())?;
            same_again(&s, OptionKey::new(&s), |v| v.parse())?;
            same_again(&s, OptionValue::new(&s), |v| v.parse())?;
            same_again(&s, PoolName::new(&s), |v| v.parse())?;
            for fs in [Filesystem::Xfs, Filesystem::Ext4] {
                same_again(&s, FsLabel::new(&s, fs), |v| FsLabel::new(v, fs))?;
            }
        }

        #[test]
        fn joined_paths_stay_valid(base in candidate(), rel in candidate()) {
            if let (Ok(base), Ok(rel)) = (AbsPath::new(&base), RelPath::new(&rel)) {
                let joined = base.join(&rel);
                prop_assert_eq!(AbsPath::new(joined.as_str()), Ok(joined.clone()));
                prop_assert!(!joined.as_str().split('/').any(|part| part == ".."));
            }
        }
    }
}
