//! The workspace binaries as the tests run them. Integration tests of this package cannot use
//! `CARGO_BIN_EXE_*` of other packages, so binaries are looked up in the test executable's
//! profile directory (`target/debug/`), which `cargo build --workspace --bins` fills
//! (scripts/test.sh does that first), or in `$BRICKYARD_BIN_DIR`. `AgentProcess` starts `brickyard-agent` and kills it on
//! drop.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// How long an agent may take to start listening or to fail.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// The path of workspace binary `name`: in `$BRICKYARD_BIN_DIR` when set (a private copy, e.g.
/// when several worktrees share one target dir), else next to the running test's profile
/// directory.
pub fn bin(name: &str) -> PathBuf {
    let dir = match std::env::var_os("BRICKYARD_BIN_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let exe = std::env::current_exe().expect("current_exe");
            // target/<profile>/deps/<test>-<hash> → target/<profile>/<name>
            exe.parent().and_then(Path::parent).expect("test executable has no profile directory").to_path_buf()
        }
    };
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is missing: build the binaries first with `cargo build --workspace --bins` (scripts/test.sh does)",
        path.display()
    );
    path
}

/// A running `brickyard-agent`; killed (and reaped) on drop.
pub struct AgentProcess {
    child: Child,
    pub addr: SocketAddr,
    /// stderr lines after startup (for diagnostics).
    pub log: mpsc::Receiver<String>,
}

/// What a failed agent start left behind.
#[derive(Debug)]
pub struct AgentExit {
    pub success: bool,
    pub stderr: String,
}

/// Starts the agent binary with `--config config`, returns its stderr lines on a channel.
fn spawn(config: &Path, extra: &[&str]) -> anyhow::Result<(Child, mpsc::Receiver<String>)> {
    let mut child = Command::new(bin("brickyard-agent"))
        .arg("--config")
        .arg(config)
        .args(extra)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("spawning brickyard-agent")?;
    let stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    Ok((child, rx))
}

impl AgentProcess {
    /// Starts the agent and waits (with a deadline) for its `listening on ADDR` line.
    pub fn start(config: &Path) -> anyhow::Result<AgentProcess> {
        let (mut child, log) = spawn(config, &[])?;
        let deadline = Instant::now() + START_TIMEOUT;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match log.recv_timeout(left) {
                Ok(line) => {
                    if let Some(addr) = line.split("listening on ").nth(1) {
                        let addr = addr.trim().parse().with_context(|| format!("agent said {line:?}"))?;
                        return Ok(AgentProcess { child, addr, log });
                    }
                    seen.push(line);
                }
                Err(timeout_or_exit) => {
                    let _ = child.kill();
                    let status = child.wait()?;
                    let what = match timeout_or_exit {
                        mpsc::RecvTimeoutError::Timeout => {
                            format!("did not report `listening on` within {START_TIMEOUT:?}")
                        }
                        mpsc::RecvTimeoutError::Disconnected => "exited before listening".to_owned(),
                    };
                    bail!("{} {what} ({status}); stderr:\n{}", bin("brickyard-agent").display(), seen.join("\n"));
                }
            }
        }
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the agent with `args` expecting it to exit by itself within the deadline (a config
/// error or `--check-config`); kills it and fails if it keeps running.
pub fn agent_exit(config: &Path, args: &[&str]) -> anyhow::Result<AgentExit> {
    let (mut child, log) = spawn(config, args)?;
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait()? {
            // The reader thread ends at EOF; collect everything it read.
            let stderr: Vec<String> = log.iter().collect();
            return Ok(AgentExit { success: status.success(), stderr: stderr.join("\n") });
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("agent kept running past {START_TIMEOUT:?}; expected it to exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
