//! The one way the agent runs programs: an absolute path and an argv, a timeout, captured
//! output. Never a shell. A failure carries the program, its arguments, the exit status and
//! stderr. `FakeRunner` (tests only) scripts outputs to unit-test sequencing and parsing.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::AsyncWriteExt;

/// Where programs are looked up, in order (RHEL 7+ and Debian both merge /usr).
const PROGRAM_DIRS: &[&str] = &["/usr/sbin", "/usr/bin", "/sbin", "/bin"];

/// Default timeout for one program run.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// One program invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmd {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    pub stdin: Option<Vec<u8>>,
    pub timeout: Duration,
}

impl Cmd {
    /// `program` is an absolute path (see [`find_program`]).
    pub fn new(program: impl Into<PathBuf>) -> Self {
        Self { program: program.into(), args: Vec::new(), stdin: None, timeout: DEFAULT_TIMEOUT }
    }

    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn stdin(mut self, input: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(input.into());
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// `program arg1 arg2 ...` for messages and plans (not for execution).
    pub fn display(&self) -> String {
        let mut s = self.program.display().to_string();
        for a in &self.args {
            s.push(' ');
            s.push_str(&a.to_string_lossy());
        }
        s
    }
}

/// What a finished program left behind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    /// Exit code; `None` when killed by a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("program {name:?} not found in {dirs}", dirs = PROGRAM_DIRS.join(":"))]
    NotFound { name: String },
    #[error("cannot run {cmd}: {source}")]
    Spawn { cmd: String, source: std::io::Error },
    #[error("{cmd} timed out after {timeout:?}")]
    Timeout { cmd: String, timeout: Duration },
    #[error("{cmd} failed ({status}): {stderr}", status = status_text(*.code), stderr = .stderr.trim())]
    Failed { cmd: String, code: Option<i32>, stdout: String, stderr: String },
}

fn status_text(code: Option<i32>) -> String {
    match code {
        Some(c) => format!("exit status {c}"),
        None => "killed by a signal".to_owned(),
    }
}

/// Finds `name` in the system program directories and returns its absolute path.
pub fn find_program(name: &str) -> Result<PathBuf, CommandError> {
    PROGRAM_DIRS
        .iter()
        .map(|dir| Path::new(dir).join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| CommandError::NotFound { name: name.to_owned() })
}

#[async_trait]
pub trait Runner: Send + Sync {
    /// Runs `cmd` and returns its output whatever the exit status (spawn errors and timeouts
    /// are errors).
    async fn output(&self, cmd: &Cmd) -> Result<Output, CommandError>;

    /// Runs `cmd` and fails unless it exits 0.
    async fn run(&self, cmd: &Cmd) -> Result<Output, CommandError> {
        let out = self.output(cmd).await?;
        if out.success() {
            Ok(out)
        } else {
            Err(CommandError::Failed { cmd: cmd.display(), code: out.code, stdout: out.stdout, stderr: out.stderr })
        }
    }
}

/// Runs real programs.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemRunner;

#[async_trait]
impl Runner for SystemRunner {
    async fn output(&self, cmd: &Cmd) -> Result<Output, CommandError> {
        let spawn_err = |source| CommandError::Spawn { cmd: cmd.display(), source };
        if !cmd.program.is_absolute() {
            return Err(spawn_err(std::io::Error::other("program path must be absolute")));
        }
        tracing::debug!(cmd = %cmd.display(), "run");
        let mut child = tokio::process::Command::new(&cmd.program)
            .args(&cmd.args)
            .env("LC_ALL", "C")
            .stdin(if cmd.stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(spawn_err)?;
        if let (Some(input), Some(mut pipe)) = (cmd.stdin.clone(), child.stdin.take()) {
            tokio::spawn(async move {
                let _ = pipe.write_all(&input).await;
            });
        }
        let out = match tokio::time::timeout(cmd.timeout, child.wait_with_output()).await {
            Ok(result) => result.map_err(spawn_err)?,
            Err(_) => return Err(CommandError::Timeout { cmd: cmd.display(), timeout: cmd.timeout }),
        };
        Ok(Output {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}

/// A scripted runner for unit tests: records every command and answers from a queue of
/// `(expected command prefix, output)` pairs, in order.
#[cfg(test)]
pub mod fake {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    pub struct FakeRunner {
        pub script: Mutex<std::collections::VecDeque<(String, Output)>>,
        pub seen: Mutex<Vec<String>>,
    }

    impl FakeRunner {
        /// Expects a command whose display starts with `prefix`; answers `stdout`, exit 0.
        pub fn expect(self, prefix: &str, stdout: &str) -> Self {
            self.expect_output(prefix, Output { code: Some(0), stdout: stdout.into(), stderr: String::new() })
        }

        pub fn expect_output(self, prefix: &str, out: Output) -> Self {
            self.script.lock().unwrap().push_back((prefix.to_owned(), out));
            self
        }

        pub fn seen(&self) -> Vec<String> {
            self.seen.lock().unwrap().clone()
        }
    }

    #[async_trait]
    impl Runner for FakeRunner {
        async fn output(&self, cmd: &Cmd) -> Result<Output, CommandError> {
            let shown = cmd.display();
            self.seen.lock().unwrap().push(shown.clone());
            let (prefix, out) =
                self.script.lock().unwrap().pop_front().unwrap_or_else(|| panic!("unexpected command {shown}"));
            assert!(shown.starts_with(&prefix), "expected {prefix:?}, got {shown:?}");
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_real_program_and_reports_failure() {
        let r = SystemRunner;
        let out = r.run(&Cmd::new(find_program("echo").unwrap()).arg("hi")).await.unwrap();
        assert_eq!(out.stdout, "hi\n");
        let err = r.run(&Cmd::new(find_program("ls").unwrap()).arg("/nonexistent-brickyard")).await.unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("ls /nonexistent-brickyard") && msg.contains("exit status 2") && msg.contains("No such file"),
            "{msg}"
        );
    }

    #[tokio::test]
    async fn times_out() {
        let cmd = Cmd::new(find_program("sleep").unwrap()).arg("5").timeout(Duration::from_millis(100));
        assert!(matches!(SystemRunner.output(&cmd).await, Err(CommandError::Timeout { .. })));
    }

    #[test]
    fn missing_program_is_named() {
        let err = find_program("no-such-program-brickyard").unwrap_err();
        assert!(err.to_string().contains("no-such-program-brickyard"));
    }
}
