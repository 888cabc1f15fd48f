//! `EnsureHosts`: a managed block in /etc/hosts (`# BEGIN brickyard pool` ... `# END brickyard
//! pool`) holding exactly the given `ADDRESS NAME` entries, so every pool member resolves the
//! others by name. The file is replaced atomically; every line outside the block is kept byte
//! for byte. Touches /etc/hosts only.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

use async_trait::async_trait;
use brickyard_proto::types::HostName;
use brickyard_proto::v1;

use super::shape::{Plan, Task, TaskError};
use crate::host::etcfile;
use crate::host::Context;

use crate::facts::host::{HOSTS, POOL_BLOCK as BLOCK};

pub struct EnsureHosts {
    /// In the order given; each name once.
    entries: Vec<(IpAddr, HostName)>,
    path: PathBuf,
}

impl EnsureHosts {
    pub fn from_proto(task: &v1::EnsureHosts) -> Result<Self, TaskError> {
        let mut seen: BTreeMap<String, IpAddr> = BTreeMap::new();
        let mut entries = Vec::with_capacity(task.entries.len());
        for entry in &task.entries {
            let name = HostName::new(&entry.name)?;
            let address: IpAddr = entry
                .address
                .parse()
                .map_err(|_| TaskError::InvalidTask(format!("host {name}: invalid IP address {:?}", entry.address)))?;
            // Host names are case-insensitive: gluServer1 and glusterver1 are one name.
            if let Some(first) = seen.insert(name.as_str().to_ascii_lowercase(), address) {
                return Err(TaskError::InvalidTask(format!(
                    "host {name} is listed twice (addresses {first} and {address})"
                )));
            }
            entries.push((address, name));
        }
        Ok(Self { entries, path: PathBuf::from(HOSTS) })
    }

    /// The block's lines: every entry but those that lines outside the block already resolve
    /// (the first line outside it naming the host maps it to the wanted address, e.g. in a pool
    /// built by hand): those lines are kept and not repeated.
    fn lines(&self, old: &str) -> Vec<String> {
        let outside = outside_block(old);
        self.entries
            .iter()
            .filter(|(address, name)| first_address(&outside, name) != Some(*address))
            .map(|(address, name)| format!("{address} {name}"))
            .collect()
    }

    /// The file's current contents, the block's lines and what the contents should be (no
    /// block is added when it would be empty).
    fn contents(&self) -> Result<(String, Vec<String>, String), TaskError> {
        let path = self.path.display().to_string();
        let old = etcfile::read_or_empty(&self.path).map_err(TaskError::io(format!("reading {path}")))?;
        let lines = self.lines(&old);
        let new = if lines.is_empty() && !old.lines().any(|l| l == begin_marker()) {
            old.clone()
        } else {
            etcfile::set_block(&old, BLOCK, &lines)
        };
        Ok((old, lines, new))
    }
}

fn begin_marker() -> String {
    format!("# BEGIN brickyard {BLOCK}")
}

/// The lines of /etc/hosts outside the managed block.
fn outside_block(contents: &str) -> Vec<&str> {
    let (begin, end) = (begin_marker(), format!("# END brickyard {BLOCK}"));
    let mut inside = false;
    let mut out = Vec::new();
    for line in contents.lines() {
        if line == begin {
            inside = true;
        } else if line == end {
            inside = false;
        } else if !inside {
            out.push(line);
        }
    }
    out
}

/// The address the first of `lines` naming `name` (as any alias) maps it to.
fn first_address(lines: &[&str], name: &HostName) -> Option<IpAddr> {
    lines.iter().find_map(|line| {
        let mut fields = line.split('#').next().unwrap_or("").split_whitespace();
        let address = fields.next()?.parse::<IpAddr>().ok()?;
        fields.any(|alias| alias.eq_ignore_ascii_case(name.as_str())).then_some(address)
    })
}

/// The file rewritten with the managed block holding `lines`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetBlock {
    path: PathBuf,
    lines: Vec<String>,
    contents: String,
}

impl fmt::Display for SetBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines = if self.lines.is_empty() { "(no entries)".to_owned() } else { self.lines.join(", ") };
        write!(f, "set the brickyard block in {} to: {lines}", self.path.display())
    }
}

#[async_trait]
impl Task for EnsureHosts {
    type Change = SetBlock;

    async fn plan(&self, _ctx: &Context) -> Result<Plan<SetBlock>, TaskError> {
        let (old, lines, new) = self.contents()?;
        let warnings = shadowing_lines(&new, &self.entries);
        let changes =
            if old == new { Vec::new() } else { vec![SetBlock { path: self.path.clone(), lines, contents: new }] };
        Ok(Plan { warnings, ..Plan::of(changes) })
    }

    async fn apply(&self, _ctx: &Context, plan: Plan<SetBlock>) -> Result<Vec<SetBlock>, TaskError> {
        for SetBlock { path, contents, .. } in &plan.changes {
            etcfile::atomic_write(path, contents.as_bytes(), 0o644)
                .map_err(TaskError::io(format!("writing {}", path.display())))?;
        }
        Ok(plan.changes)
    }
}

/// Lines outside the managed block that map one of our names to another address and come
/// before the block, so the resolver would answer with them instead (first match wins).
fn shadowing_lines(contents: &str, entries: &[(IpAddr, HostName)]) -> Vec<String> {
    let begin = begin_marker();
    let mut warnings = Vec::new();
    for (number, line) in contents.lines().enumerate() {
        if line == begin {
            break;
        }
        let mut fields = line.split('#').next().unwrap_or("").split_whitespace();
        let Some(Ok(address)) = fields.next().map(str::parse::<IpAddr>) else { continue };
        for alias in fields {
            if let Some((wanted, name)) = entries.iter().find(|(_, n)| n.as_str().eq_ignore_ascii_case(alias)) {
                if *wanted != address {
                    warnings.push(format!(
                        "{HOSTS} line {} maps {name} to {address} before the brickyard block ({wanted}): \
                         the resolver uses the first match",
                        number + 1
                    ));
                }
            }
        }
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::runner::fake::FakeRunner;
    use crate::tasks::shape::AnyTask;
    use crate::tasks::testing::converges;

    fn task(entries: &[(&str, &str)]) -> v1::EnsureHosts {
        v1::EnsureHosts {
            entries: entries
                .iter()
                .map(|(name, address)| v1::HostEntry { name: (*name).into(), address: (*address).into() })
                .collect(),
        }
    }

    fn ctx() -> Context {
        Context::direct(FakeRunner::default())
    }

    #[test]
    fn rejects_bad_names_addresses_and_duplicates() {
        for (name, address, needle) in [
            ("glu server", "192.0.2.1", "host name"),
            ("-x", "192.0.2.1", "host name"),
            ("a;b", "192.0.2.1", "host name"),
            ("gluServer1", "192.0.2.300", "invalid IP address"),
            ("gluServer1", "192.0.2.1 evil", "invalid IP address"),
            ("gluServer1", "", "invalid IP address"),
        ] {
            let err = EnsureHosts::from_proto(&task(&[(name, address)])).err().expect("accepted");
            assert!(err.to_string().contains(needle), "{name:?} {address:?}: {err}");
        }
        let err = EnsureHosts::from_proto(&task(&[("gluServer1", "192.0.2.1"), ("GLUSERVER1", "192.0.2.2")]))
            .err()
            .expect("duplicate accepted");
        assert!(err.to_string().contains("listed twice"), "{err}");
        assert!(EnsureHosts::from_proto(&task(&[("gluServer1", "2001:db8::1")])).is_ok());
    }

    #[tokio::test]
    async fn converges_keeping_other_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hosts");
        let original = "127.0.0.1\tlocalhost\n127.0.1.1 gluServer1\n# comment\n::1 localhost ip6-localhost\n";
        std::fs::write(&path, original).unwrap();
        let mut t =
            EnsureHosts::from_proto(&task(&[("gluServer1", "192.0.2.11"), ("gluServer2", "192.0.2.12")])).unwrap();
        t.path = path.clone();
        let ctx = ctx();

        let (before, done) = converges(&t, &ctx).await;
        assert_eq!(before.changes.len(), 1);
        assert!(before.changes[0].contains("192.0.2.11 gluServer1, 192.0.2.12 gluServer2"), "{before:?}");
        assert_eq!(before.warnings.len(), 1, "{before:?}");
        assert!(before.warnings[0].contains("line 2 maps gluServer1 to 127.0.1.1"), "{before:?}");
        assert_eq!(done, before.changes);
        let written = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            written,
            format!("{original}# BEGIN brickyard pool\n192.0.2.11 gluServer1\n192.0.2.12 gluServer2\n# END brickyard pool\n")
        );
        assert!(t.run(&ctx).await.unwrap().is_empty());

        // A new member replaces the block in place.
        let mut t = EnsureHosts::from_proto(&task(&[("gluServer3", "192.0.2.13")])).unwrap();
        t.path = path.clone();
        t.run(&ctx).await.unwrap();
        let written = std::fs::read_to_string(&path).unwrap();
        assert!(written.starts_with(original));
        assert_eq!(written.matches("brickyard pool").count(), 2);
        assert!(!written.contains("gluServer2") && written.contains("192.0.2.13 gluServer3\n"));
        let listed: Vec<_> =
            crate::facts::host::parse_pool_block(&written).into_iter().map(|e| (e.name, e.address)).collect();
        assert_eq!(listed, [("gluServer3".to_owned(), "192.0.2.13".to_owned())]);
    }

    /// A pool built by hand: names its own lines already resolve are not repeated in the block;
    /// with none left, no block at all.
    #[tokio::test]
    async fn lines_written_by_hand_are_not_repeated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hosts");
        let original = "127.0.0.1 localhost\n192.0.2.11 gluServer1\n192.0.2.99 gluServer2\n192.0.2.12 gluServer2\n";
        std::fs::write(&path, original).unwrap();
        let entries = [("gluServer1", "192.0.2.11"), ("gluServer2", "192.0.2.12")];
        let mut t = EnsureHosts::from_proto(&task(&entries)).unwrap();
        t.path = path.clone();
        let ctx = ctx();
        // gluServer2's first line maps it elsewhere, so the block carries it.
        let (before, _) = converges(&t, &ctx).await;
        assert!(before.changes[0].ends_with("to: 192.0.2.12 gluServer2"), "{before:?}");

        std::fs::write(&path, original.replace("192.0.2.99 gluServer2\n", "")).unwrap();
        assert!(t.run(&ctx).await.unwrap().is_empty(), "nothing added to a file that resolves every name");
        assert!(!std::fs::read_to_string(&path).unwrap().contains("brickyard"));
    }
}
