//! Runs the system tools the lab needs (`ip`, `losetup`, `nsenter`) by absolute path with an
//! argv, never through a shell; failures carry the program, the arguments, the exit status and
//! stderr. Also finds the workspace binaries the lab runs (`brickyard`, `brickyard-agent`) next to
//! this one.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use super::LabError;

/// Where the lab looks for system programs.
const SEARCH_PATH: [&str; 4] = ["/usr/sbin", "/usr/bin", "/sbin", "/bin"];

/// The absolute path of system program `name`.
pub fn program(name: &str) -> Result<PathBuf, LabError> {
    SEARCH_PATH
        .iter()
        .map(|dir| PathBuf::from(dir).join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| LabError::MissingProgram(name.to_string()))
}

/// `name` in the directory of the running binary (it need not exist).
pub fn next_to_this_binary(name: &str) -> Result<PathBuf, LabError> {
    let exe = std::env::current_exe().map_err(|source| LabError::Io { path: "/proc/self/exe".into(), source })?;
    Ok(exe.with_file_name(name))
}

/// Runs `name args...`; returns its stdout, or an error naming the command when it fails.
pub fn run(name: &str, args: &[&str]) -> Result<String, LabError> {
    let path = program(name)?;
    let output = Command::new(&path)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| LabError::Spawn { program: path.display().to_string(), source })?;
    if !output.status.success() {
        return Err(LabError::Command {
            command: format!("{} {}", path.display(), args.join(" ")),
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
