//! Entering a lab network namespace from this process. `setns()` moves only the calling
//! thread, so code runs on a fresh thread that enters the namespace first: every socket it
//! creates lives in the lab network. Nothing in the root namespace changes.

use std::fs::File;
use std::path::{Path, PathBuf};

use nix::sched::{setns, CloneFlags};

use super::LabError;

/// Where `ip netns` binds named network namespaces.
pub const NETNS_DIR: &str = "/run/netns";

pub fn netns_path(netns: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(netns)
}

/// Moves the calling thread into the network namespace bound at `/run/netns/<netns>`.
pub fn enter_netns(netns: &str) -> Result<(), LabError> {
    let path = netns_path(netns);
    let file = File::open(&path).map_err(|source| LabError::Io { path: path.clone(), source })?;
    setns(&file, CloneFlags::CLONE_NEWNET)
        .map_err(|errno| LabError::Sys { what: format!("setns into {}", path.display()), errno })
}

/// Runs `f` on a new thread inside network namespace `netns` and returns its result. Build a
/// `tokio` current-thread runtime inside `f` to do async networking from there.
pub fn in_netns<T: Send>(netns: &str, f: impl FnOnce() -> T + Send) -> Result<T, LabError> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                enter_netns(netns)?;
                Ok(f())
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}
