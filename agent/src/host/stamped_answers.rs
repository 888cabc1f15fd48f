//! Answers kept while the files they come from are unchanged. Some queries read only a file
//! or two and cost far more than those files' `stat`: `dpkg-query` parses the whole package
//! database (about 17 ms of CPU a run), `glusterfs --version` loads every gluster library.
//! Each converged check asked them on every host again. A kept answer is given while every
//! source file still has the device, inode, size, mtime and ctime it had before the kept run
//! started; a file that changed, appeared or went makes the query run again. Package managers
//! write their database on every change, and an upgrade replaces a program's file.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::runner::{Cmd, CommandError, Output, Runner};

/// The last answer of each query (by command line) with its sources' stamps.
#[derive(Debug, Default)]
pub struct StampedAnswers {
    kept: Mutex<HashMap<String, (Vec<Stamp>, Output)>>,
}

/// What `stat` says of a source file that changes with its content; None when it is absent.
type Stamp = Option<(u64, u64, u64, i64, i64, i64, i64)>;

fn stamp(path: &Path) -> Stamp {
    let m = std::fs::metadata(path).ok()?;
    Some((m.dev(), m.ino(), m.size(), m.mtime(), m.mtime_nsec(), m.ctime(), m.ctime_nsec()))
}

impl StampedAnswers {
    /// `cmd`'s output, a query whose answer depends only on the files `sources`: the kept one
    /// while none of them changed since it was asked, else a new run (kept in turn).
    pub async fn output(&self, runner: &dyn Runner, cmd: &Cmd, sources: &[PathBuf]) -> Result<Output, CommandError> {
        let key = cmd.display();
        // Stamped before the run: a change while it runs makes the next ask run again.
        let stamps: Vec<Stamp> = sources.iter().map(|p| stamp(p)).collect();
        if let Some((kept_stamps, output)) = self.lock().get(&key) {
            if *kept_stamps == stamps {
                return Ok(output.clone());
            }
        }
        let output = runner.output(cmd).await?;
        self.lock().insert(key, (stamps, output.clone()));
        Ok(output)
    }

    /// Drops every kept answer: after a change this agent made whose sources may not show it
    /// at once (or, in unit tests, do not show it at all).
    pub fn forget(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Vec<Stamp>, Output)>> {
        // Each update is one statement: the map stays whole even if a holder panicked.
        self.kept.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_trait::async_trait;

    use super::*;

    /// Answers every command with its own run number.
    #[derive(Default)]
    struct Counting(AtomicUsize);

    #[async_trait]
    impl Runner for Counting {
        fn find(&self, name: &str) -> Result<PathBuf, CommandError> {
            Ok(PathBuf::from("/usr/bin").join(name))
        }

        async fn output(&self, _cmd: &Cmd) -> Result<Output, CommandError> {
            let run = self.0.fetch_add(1, Ordering::SeqCst) + 1;
            Ok(Output { code: Some(0), stdout: run.to_string(), stderr: String::new() })
        }
    }

    #[tokio::test]
    async fn an_answer_is_kept_until_a_source_changes_appears_or_goes() {
        let dir = tempfile::tempdir().unwrap();
        let (db, journal) = (dir.path().join("status"), dir.path().join("updates"));
        std::fs::write(&db, "Package: glusterfs-client\n").unwrap();
        let (answers, runner) = (StampedAnswers::default(), Counting::default());
        let query = runner.cmd("dpkg-query").unwrap().arg("-W");
        let sources = [db.clone(), journal.clone()];
        let ask = || async { answers.output(&runner, &query, &sources).await.unwrap().stdout };
        assert_eq!((ask().await, ask().await), ("1".to_owned(), "1".to_owned()), "unchanged sources: kept");
        // Same size, and possibly the same mtime tick: the new inode of a rename still shows.
        let next = dir.path().join("status-new");
        std::fs::write(&next, "Package: glusterfs-server\n").unwrap();
        std::fs::rename(&next, &db).unwrap();
        assert_eq!(ask().await, "2", "the database was replaced");
        std::fs::write(&journal, "").unwrap();
        assert_eq!(ask().await, "3", "a source appeared");
        std::fs::remove_file(&journal).unwrap();
        assert_eq!(ask().await, "4", "a source went");
        assert_eq!(ask().await, "4");
        answers.forget();
        assert_eq!(ask().await, "5", "forgotten");
        let other = runner.cmd("dpkg-query").unwrap().arg("-l");
        assert_eq!(
            answers.output(&runner, &other, &sources).await.unwrap().stdout,
            "6",
            "another query runs on its own"
        );
    }
}
