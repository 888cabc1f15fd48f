//! Queries that run at the same time share one run. A converged check asks each server's
//! agent for many nodes' plans at once, and several of them ask gluster the same question
//! (`volume info`, `pool list`); each gluster CLI run costs about 0.1 s of CPU (most of it
//! the CLI's own `gsyncd --version` check, a Python start). An identical query already
//! running is joined instead, but only when no change was made on this host since it
//! started ([`SharedRuns::changed`]): a joined answer is never older than the joiner's own
//! last change.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

use super::runner::{Cmd, CommandError, Output, Runner};

/// The queries running now, by the changes made before they started and their command line.
#[derive(Debug, Default)]
pub struct SharedRuns {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// How many changes were made on this host so far.
    changes: u64,
    running: HashMap<(u64, String), Run>,
}

/// One run's output for everyone who joined it; `None` when it could not run (each then
/// runs it on its own, for its own error).
type Run = Arc<OnceCell<Option<Output>>>;

impl SharedRuns {
    /// Runs `cmd`, a query that changes nothing, or joins the identical query running now
    /// that started after the last change.
    pub async fn output(&self, runner: &dyn Runner, cmd: &Cmd) -> Result<Output, CommandError> {
        let (key, run) = {
            let mut state = self.lock();
            let key = (state.changes, cmd.display());
            let run = state.running.entry(key.clone()).or_default().clone();
            (key, run)
        };
        let mut own = None;
        let shared = run
            .get_or_init(|| async {
                let result = runner.output(cmd).await;
                // Done: a query that starts now runs again.
                self.lock().running.remove(&key);
                let output = result.as_ref().ok().cloned();
                own = Some(result);
                output
            })
            .await
            .clone();
        match (own, shared) {
            (Some(result), _) => result,
            (None, Some(output)) => Ok(output),
            (None, None) => runner.output(cmd).await,
        }
    }

    /// Records a change on this host (a gluster command that changes the pool, glusterd
    /// started or stopped): queries running now are not joined any more.
    pub fn changed(&self) {
        self.lock().changes += 1;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state stays whole even if a holder panicked: each update is one statement.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_trait::async_trait;
    use tokio::sync::Semaphore;

    use super::*;

    /// Answers every command with its own run number once the test opens the gate, so that
    /// the test decides which runs overlap, not a clock.
    struct Counting {
        runs: AtomicUsize,
        gate: Semaphore,
    }

    impl Default for Counting {
        fn default() -> Self {
            Self { runs: AtomicUsize::new(0), gate: Semaphore::new(0) }
        }
    }

    impl Counting {
        /// Opens the gate once `started` runs are under way (joiners start none), or when the
        /// other futures had 100 turns without starting them: a query that joined when it
        /// should have run then shows in the counts rather than as a hang.
        async fn open_after(&self, started: usize) {
            for _ in 0..100 {
                if self.runs.load(Ordering::SeqCst) >= started {
                    break;
                }
                tokio::task::yield_now().await;
            }
            self.gate.add_permits(1);
        }
    }

    #[async_trait]
    impl Runner for Counting {
        fn find(&self, name: &str) -> Result<PathBuf, CommandError> {
            Ok(PathBuf::from("/usr/sbin").join(name))
        }

        async fn output(&self, _cmd: &Cmd) -> Result<Output, CommandError> {
            let run = self.runs.fetch_add(1, Ordering::SeqCst) + 1;
            drop(self.gate.acquire().await.expect("the gate is never closed"));
            Ok(Output { code: Some(0), stdout: run.to_string(), stderr: String::new() })
        }
    }

    fn cmd(runner: &Counting, arg: &str) -> Cmd {
        runner.cmd("gluster").unwrap().arg(arg)
    }

    #[tokio::test]
    async fn identical_queries_at_once_share_one_run_and_later_ones_run_again() {
        let (runs, runner) = (SharedRuns::default(), Counting::default());
        let (info, list) = (cmd(&runner, "info"), cmd(&runner, "list"));
        // Polled in order: both `info`s and the `list` are under way before the gate opens.
        let (a, b, c, ()) = tokio::join!(
            runs.output(&runner, &info),
            runs.output(&runner, &info),
            runs.output(&runner, &list),
            runner.open_after(2)
        );
        let stdout = |r: Result<Output, CommandError>| r.unwrap().stdout;
        let (a, b, c) = (stdout(a), stdout(b), stdout(c));
        assert_eq!(a, b, "the second `info` joined the first");
        assert_ne!(a, c, "`list` ran on its own");
        assert_eq!(runner.runs.load(Ordering::SeqCst), 2);
        assert_eq!(stdout(runs.output(&runner, &info).await), "3", "a query after the shared one ended runs again");
    }

    #[tokio::test]
    async fn a_query_after_a_change_does_not_join_one_from_before() {
        let (runs, runner) = (SharedRuns::default(), Counting::default());
        let info = cmd(&runner, "info");
        let (before, after, ()) = tokio::join!(
            runs.output(&runner, &info),
            async {
                runs.changed();
                runs.output(&runner, &info).await
            },
            runner.open_after(2)
        );
        assert_ne!(before.unwrap().stdout, after.unwrap().stdout);
        assert_eq!(runner.runs.load(Ordering::SeqCst), 2);
    }
}
