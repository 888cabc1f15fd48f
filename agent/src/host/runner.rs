//! The one way the agent finds and runs programs: looked up by name through the runner, run
//! by absolute path with an argv, a timeout and captured output. Never a shell. A failure
//! carries the program, its arguments, the exit status and stderr. `FakeRunner` (tests only)
//! is a host whose programs and their answers the test scripts, argv for argv.

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
    /// Files the program must not see (see [`super::hidden_files`]).
    pub hidden: Vec<PathBuf>,
}

impl Cmd {
    /// `program` is an absolute path (see [`Runner::find`]).
    pub fn new(program: impl Into<PathBuf>) -> Self {
        Self { program: program.into(), args: Vec::new(), stdin: None, timeout: DEFAULT_TIMEOUT, hidden: Vec::new() }
    }

    /// Runs the program with `files` out of its sight.
    pub fn hiding(mut self, files: &[&str]) -> Self {
        self.hidden.extend(files.iter().map(PathBuf::from));
        self
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

    /// This output of `cmd` when it exited 0, else the failure naming it.
    pub fn exited_0(self, cmd: &Cmd) -> Result<Output, CommandError> {
        if self.success() {
            Ok(self)
        } else {
            Err(CommandError::Failed { cmd: cmd.display(), code: self.code, stdout: self.stdout, stderr: self.stderr })
        }
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

#[async_trait]
pub trait Runner: Send + Sync {
    /// The absolute path of program `name` on this host (`NotFound` naming it otherwise).
    fn find(&self, name: &str) -> Result<PathBuf, CommandError>;

    /// A command running program `name` (see [`Runner::find`]), without arguments yet.
    fn cmd(&self, name: &str) -> Result<Cmd, CommandError> {
        Ok(Cmd::new(self.find(name)?))
    }

    /// Runs `cmd` and returns its output whatever the exit status (spawn errors and timeouts
    /// are errors).
    async fn output(&self, cmd: &Cmd) -> Result<Output, CommandError>;

    /// Runs `cmd` and fails unless it exits 0.
    async fn run(&self, cmd: &Cmd) -> Result<Output, CommandError> {
        self.output(cmd).await?.exited_0(cmd)
    }
}

/// Runs real programs, found in the system program directories.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemRunner;

#[async_trait]
impl Runner for SystemRunner {
    fn find(&self, name: &str) -> Result<PathBuf, CommandError> {
        PROGRAM_DIRS
            .iter()
            .map(|dir| Path::new(dir).join(name))
            .find(|p| p.is_file())
            .ok_or_else(|| CommandError::NotFound { name: name.to_owned() })
    }

    async fn output(&self, cmd: &Cmd) -> Result<Output, CommandError> {
        let spawn_err = |source| CommandError::Spawn { cmd: cmd.display(), source };
        if !cmd.program.is_absolute() {
            return Err(spawn_err(std::io::Error::other("program path must be absolute")));
        }
        tracing::debug!(cmd = %cmd.display(), "run");
        let mut command = tokio::process::Command::new(&cmd.program);
        command
            .args(&cmd.args)
            .env("LC_ALL", "C")
            .stdin(if cmd.stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        super::hidden_files::hide(&mut command, &cmd.hidden);
        let mut child = command.spawn().map_err(spawn_err)?;
        super::fault::during_command(&cmd.display(), child.id());
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

/// A scripted host for unit tests: its programs are exactly those the test installs or expects
/// to run (nothing is looked up on the machine running the tests), and it answers a queue of
/// expected commands, in order, each matched argv for argv. An unexpected command, or one
/// that differs from the next expectation, panics; so does dropping it with expectations left.
#[cfg(test)]
pub mod fake {
    use super::*;
    use std::collections::{BTreeMap, VecDeque};
    use std::sync::Mutex;

    /// A command line as a test writes it: `"/usr/sbin/gluster --mode=script pool list"`
    /// (split on whitespace) or, for an argument holding a space, an array of words.
    pub struct Argv(Vec<String>);

    impl From<&str> for Argv {
        fn from(line: &str) -> Self {
            Argv(line.split_whitespace().map(str::to_owned).collect())
        }
    }

    impl From<&String> for Argv {
        fn from(line: &String) -> Self {
            Argv::from(line.as_str())
        }
    }

    impl<const N: usize> From<[&str; N]> for Argv {
        fn from(words: [&str; N]) -> Self {
            Argv::from(words.as_slice())
        }
    }

    impl From<&[&str]> for Argv {
        fn from(words: &[&str]) -> Self {
            Argv(words.iter().map(|w| w.to_string()).collect())
        }
    }

    /// One expected command: its argv, its answer, and what it does to the fake host when it
    /// runs (e.g. parted makes a partition).
    struct Expected {
        argv: Vec<String>,
        out: Output,
        effect: Option<Box<dyn Fn() + Send + Sync>>,
    }

    #[derive(Default)]
    pub struct FakeRunner {
        /// Program name → absolute path: what is installed on this host.
        programs: Mutex<BTreeMap<String, PathBuf>>,
        script: Mutex<VecDeque<Expected>>,
    }

    impl FakeRunner {
        /// Installs the program at absolute `path` (found by its file name).
        pub fn installed(self, path: &str) -> Self {
            let name = Path::new(path).file_name().expect("a program path").to_string_lossy().into_owned();
            self.programs.lock().unwrap().insert(name, PathBuf::from(path));
            self
        }

        /// Expects exactly `argv` next (its program is installed); answers `stdout`, exit 0.
        pub fn expect(self, argv: impl Into<Argv>, stdout: &str) -> Self {
            self.expect_output(argv, Output { code: Some(0), stdout: stdout.into(), stderr: String::new() })
        }

        /// Expects exactly `argv` next (its program is installed); answers `out`.
        pub fn expect_output(self, argv: impl Into<Argv>, out: Output) -> Self {
            let Argv(argv) = argv.into();
            let this = self.installed(argv.first().expect("an argv names its program"));
            this.script.lock().unwrap().push_back(Expected { argv, out, effect: None });
            this
        }

        /// What the command expected last does to the host when it runs.
        pub fn then(self, effect: impl Fn() + Send + Sync + 'static) -> Self {
            self.script.lock().unwrap().back_mut().expect("an expected command").effect = Some(Box::new(effect));
            self
        }
    }

    #[async_trait]
    impl Runner for FakeRunner {
        fn find(&self, name: &str) -> Result<PathBuf, CommandError> {
            self.programs.lock().unwrap().get(name).cloned().ok_or_else(|| CommandError::NotFound { name: name.into() })
        }

        async fn output(&self, cmd: &Cmd) -> Result<Output, CommandError> {
            let argv: Vec<String> = std::iter::once(cmd.program.as_os_str())
                .chain(cmd.args.iter().map(OsString::as_os_str))
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            let Expected { argv: expected, out, effect } =
                self.script.lock().unwrap().pop_front().unwrap_or_else(|| panic!("unexpected command {argv:?}"));
            assert_eq!(argv, expected, "the command run (left) is not the one expected next (right)");
            if let Some(effect) = effect {
                effect();
            }
            Ok(out)
        }
    }

    impl Drop for FakeRunner {
        fn drop(&mut self) {
            let left = self.script.get_mut().map(|s| s.iter().map(|e| e.argv.join(" ")).collect::<Vec<_>>());
            if let Ok(left) = left {
                if !left.is_empty() && !std::thread::panicking() {
                    panic!("expected commands that never ran: {left:#?}");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_real_program_and_reports_failure() {
        let r = SystemRunner;
        let out = r.run(&r.cmd("echo").unwrap().arg("hi")).await.unwrap();
        assert_eq!(out.stdout, "hi\n");
        let err = r.run(&r.cmd("ls").unwrap().arg("/nonexistent-brickyard")).await.unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("ls /nonexistent-brickyard") && msg.contains("exit status 2") && msg.contains("No such file"),
            "{msg}"
        );
    }

    #[tokio::test]
    async fn times_out() {
        let cmd = SystemRunner.cmd("sleep").unwrap().arg("5").timeout(Duration::from_millis(100));
        assert!(matches!(SystemRunner.output(&cmd).await, Err(CommandError::Timeout { .. })));
    }

    #[test]
    fn missing_program_is_named() {
        let err = SystemRunner.find("no-such-program-brickyard").unwrap_err();
        assert!(err.to_string().contains("no-such-program-brickyard"));
    }

    #[tokio::test]
    async fn fake_runner_knows_only_its_programs_and_matches_argv_exactly() {
        let fake = fake::FakeRunner::default().installed("/usr/sbin/parted").expect(["/usr/bin/echo", "a b"], "a b\n");
        assert_eq!(fake.find("parted").unwrap(), Path::new("/usr/sbin/parted"));
        assert!(matches!(fake.find("gluster"), Err(CommandError::NotFound { .. })));
        let out = fake.run(&fake.cmd("echo").unwrap().arg("a b")).await.unwrap();
        assert_eq!(out.stdout, "a b\n");
    }

    #[tokio::test]
    #[should_panic(expected = "not the one expected next")]
    async fn fake_runner_refuses_another_argv() {
        let fake = fake::FakeRunner::default().expect("/usr/bin/echo a b", "");
        let _ = fake.output(&Cmd::new("/usr/bin/echo").arg("a b")).await;
    }

    #[test]
    #[should_panic(expected = "expected commands that never ran")]
    fn fake_runner_panics_on_unmet_expectations() {
        drop(fake::FakeRunner::default().expect("/usr/bin/echo hi", ""));
    }
}
