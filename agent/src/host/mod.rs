//! Host primitives, the bottom layer: the command runner, /etc files, mountinfo, block
//! devices, pid files, os-release, the run-time path checks, the test-only failure points, a
//! running task's progress lines, queries shared while they run, answers kept while their
//! files are unchanged, files hidden from a program,
//! plus [`Context`], what every layer above may use on the host.
//! Imports nothing above it.

pub mod blockdev;
pub mod etcfile;
pub mod fault;
pub mod hidden_files;
pub mod mountinfo;
pub mod os_release;
pub mod pathcheck;
pub mod process;
pub mod progress;
pub mod runner;
pub mod shared_runs;
pub mod stamped_answers;
pub mod subject_hash;

use std::path::PathBuf;
use std::sync::Arc;

use runner::Runner;

/// How the agent starts daemons: via systemd, or itself (no service manager, e.g. the lab).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceManager {
    Systemd,
    Direct,
}

/// Where this agent's own key material lives (its config's `ca`, `cert`, `key`): the
/// GlusterFS TLS task installs copies of these files for gluster, so no key is ever sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyMaterial {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Default for KeyMaterial {
    /// The packaged config's paths (`packaging/`: /etc/brickyard/pki/...).
    fn default() -> Self {
        let pki = PathBuf::from("/etc/brickyard/pki");
        Self { ca: pki.join("ca.pem"), cert: pki.join("agent.pem"), key: pki.join("agent.key") }
    }
}

/// What every task, query and fact may use on the host.
pub struct Context {
    pub runner: Arc<dyn Runner>,
    pub service_manager: ServiceManager,
    pub key_material: KeyMaterial,
    /// Identical queries running at once share one run (the gluster CLI's).
    pub shared_runs: shared_runs::SharedRuns,
    /// Answers of costly queries on a file or two, kept while those files are unchanged.
    pub stamped_answers: stamped_answers::StampedAnswers,
}

impl Context {
    /// A host whose programs are `runner`'s, with nothing asked yet.
    pub fn new(runner: Arc<dyn Runner>, service_manager: ServiceManager, key_material: KeyMaterial) -> Self {
        Self {
            runner,
            service_manager,
            key_material,
            shared_runs: Default::default(),
            stamped_answers: Default::default(),
        }
    }
}

#[cfg(test)]
impl Context {
    /// A host whose programs are `runner`'s, starting daemons itself (unit tests).
    pub fn direct(runner: impl Runner + 'static) -> Self {
        Self::new(Arc::new(runner), ServiceManager::Direct, KeyMaterial::default())
    }

    /// A host whose programs are `runner`'s, with systemd (unit tests).
    pub fn systemd(runner: impl Runner + 'static) -> Self {
        Self::new(Arc::new(runner), ServiceManager::Systemd, KeyMaterial::default())
    }
}
