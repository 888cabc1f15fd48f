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
    use std::time::Duration;

    use async_trait::async_trait;

    use super::*;

    /// Answers every command with its own run number, after a pause long enough to overlap.
    #[derive(Default)]
    struct Counting(AtomicUsize);

    #[async_trait]
    impl Runner for Counting {
        fn find(&self, name: &str) -> Result<PathBuf, CommandError> {
            Ok(PathBuf::from("/usr/sbin").join(name))
        }

        async fn output(&self, _cmd: &Cmd) -> Result<Output, CommandError> {
            let run = self.0.fetch_add(1, Ordering::SeqCst) + 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
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
        let (a, b, c) =
            tokio::join!(runs.output(&runner, &info), runs.output(&runner, &info), runs.output(&runner, &list));
        let stdout = |r: Result<Output, CommandError>| r.unwrap().stdout;
        let (a, b, c) = (stdout(a), stdout(b), stdout(c));
        assert_eq!(a, b, "the second `info` joined the first");
        assert_ne!(a, c, "`list` ran on its own");
        assert_eq!(runner.0.load(Ordering::SeqCst), 2);
        assert_eq!(stdout(runs.output(&runner, &info).await), "3", "a query after the shared one ended runs again");
    }

    #[tokio::test]
    async fn a_query_after_a_change_does_not_join_one_from_before() {
        let (runs, runner) = (SharedRuns::default(), Counting::default());
        let info = cmd(&runner, "info");
        let (before, after) = tokio::join!(runs.output(&runner, &info), async {
            tokio::task::yield_now().await;
            runs.changed();
            runs.output(&runner, &info).await
        });
        assert_ne!(before.unwrap().stdout, after.unwrap().stdout);
        assert_eq!(runner.0.load(Ordering::SeqCst), 2);
    }
}
