//! What a lab has made, recorded as it is made so `lab down` can undo an interrupted `up`:
//! DIR/state.json (rewritten atomically after every step) and the registry entry
//! /run/brickyard-lab/<name> (a symlink to DIR) through which `--name` finds DIR.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::naming::LabName;
use super::LabError;

/// Where the registry symlinks live (one per lab, pointing at its directory).
pub const REGISTRY: &str = "/run/brickyard-lab";
/// Parent of the default lab directories (`/var/lib/brickyard-lab/<name>`).
pub const DEFAULT_PARENT: &str = "/var/lib/brickyard-lab";

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct State {
    pub name: String,
    pub subnet: String,
    /// Network namespaces created so far (control first).
    pub netns: Vec<String>,
    pub hosts: Vec<HostRecord>,
    /// The servers' raw disks.
    pub loops: Vec<LoopRecord>,
    /// Every host's root disk (what it keeps across `lab reboot`).
    #[serde(default)]
    pub root_disks: Vec<LoopRecord>,
    pub inits: Vec<InitRecord>,
    /// The agent binary the hosts run (`lab reboot` starts it again).
    #[serde(default)]
    pub agent: Option<PathBuf>,
}

/// A host as planned: name and address (for `lab status`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct HostRecord {
    pub name: String,
    pub address: String,
    pub server: bool,
}

/// A loop device attached for `host`'s disk.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LoopRecord {
    pub host: String,
    pub device: String,
    pub backing: PathBuf,
}

/// A host's init (PID 1 of its PID namespace) as seen from the root PID namespace, with its
/// start time (field 22 of /proc/PID/stat) so a reused PID is never killed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct InitRecord {
    pub host: String,
    pub pid: i32,
    pub start_time: u64,
}

pub fn state_path(dir: &Path) -> PathBuf {
    dir.join("state.json")
}

impl State {
    /// Reads DIR/state.json; `None` when it does not exist.
    pub fn load(dir: &Path) -> Result<Option<State>, LabError> {
        let path = state_path(dir);
        match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map(Some).map_err(|e| LabError::Corrupt { path, message: e.to_string() })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(LabError::Io { path, source }),
        }
    }

    /// Writes DIR/state.json atomically (temp file + rename).
    pub fn save(&self, dir: &Path) -> Result<(), LabError> {
        let path = state_path(dir);
        let tmp = dir.join(".state.json.tmp");
        let bytes = serde_json::to_vec_pretty(self).expect("state serializes");
        std::fs::write(&tmp, bytes).map_err(|source| LabError::Io { path: tmp.clone(), source })?;
        std::fs::rename(&tmp, &path).map_err(|source| LabError::Io { path, source })
    }
}

/// The registry entry of lab `name`.
pub fn registry_entry(name: &LabName) -> PathBuf {
    Path::new(REGISTRY).join(name.as_str())
}

/// The directory of lab `name`: its registry entry if it has one, else the default.
pub fn lab_dir(name: &LabName) -> PathBuf {
    std::fs::read_link(registry_entry(name)).unwrap_or_else(|_| default_dir(name))
}

pub fn default_dir(name: &LabName) -> PathBuf {
    Path::new(DEFAULT_PARENT).join(name.as_str())
}

/// Records `dir` as lab `name`'s directory.
pub fn register(name: &LabName, dir: &Path) -> Result<(), LabError> {
    std::fs::create_dir_all(REGISTRY).map_err(|source| LabError::Io { path: REGISTRY.into(), source })?;
    let entry = registry_entry(name);
    std::os::unix::fs::symlink(dir, &entry).map_err(|source| LabError::Io { path: entry, source })
}

/// Removes lab `name`'s registry entry (absent is fine).
pub fn unregister(name: &LabName) -> Result<(), LabError> {
    let entry = registry_entry(name);
    match std::fs::remove_file(&entry) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(LabError::Io { path: entry, source: e }),
        _ => Ok(()),
    }
}

/// Every registered lab: (name, directory).
pub fn registered() -> Vec<(String, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(REGISTRY) else { return Vec::new() };
    let mut labs: Vec<_> = entries
        .flatten()
        .filter_map(|e| Some((e.file_name().into_string().ok()?, std::fs::read_link(e.path()).ok()?)))
        .collect();
    labs.sort();
    labs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(State::load(dir.path()).unwrap(), None);
        let state = State {
            name: "t".into(),
            subnet: "198.18.1.0/24".into(),
            netns: vec!["brickyard-t-ctl".into()],
            hosts: vec![HostRecord { name: "gluServer1".into(), address: "198.18.1.11".into(), server: true }],
            loops: vec![LoopRecord { host: "gluServer1".into(), device: "/dev/loop7".into(), backing: "/x".into() }],
            root_disks: vec![LoopRecord {
                host: "gluServer1".into(),
                device: "/dev/loop8".into(),
                backing: "/y".into(),
            }],
            inits: vec![InitRecord { host: "gluServer1".into(), pid: 42, start_time: 7 }],
            agent: Some("/usr/bin/brickyard-agent".into()),
        };
        state.save(dir.path()).unwrap();
        assert_eq!(State::load(dir.path()).unwrap(), Some(state));
        std::fs::write(state_path(dir.path()), "{").unwrap();
        assert!(matches!(State::load(dir.path()), Err(LabError::Corrupt { .. })));
    }
}
