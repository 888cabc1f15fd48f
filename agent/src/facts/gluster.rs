//! Gluster facts: the installed glusterfs version (`glusterfs --version`) and the node UUID
//! from /var/lib/glusterd/glusterd.info (whether glusterd runs: `crate::gluster`).
//! Parsers are pure; the rest reads those files and runs that one program.

use crate::host::runner::CommandError;
use crate::host::Context;

pub const GLUSTERD_INFO: &str = "/var/lib/glusterd/glusterd.info";

/// `glusterfs 10.3` (first line of `glusterfs --version`) → `10.3`.
pub fn parse_version(stdout: &str) -> Option<String> {
    let line = stdout.lines().next()?;
    let version = line.trim().strip_prefix("glusterfs ")?.split_whitespace().next()?;
    Some(version.to_owned())
}

/// The `UUID=` line of glusterd.info.
pub fn parse_glusterd_info(text: &str) -> Option<String> {
    text.lines().find_map(|l| l.trim().strip_prefix("UUID=")).map(|u| u.trim().to_owned()).filter(|u| !u.is_empty())
}

/// The installed glusterfs version; `None` when glusterfs is not installed. Asked again only
/// when the program's file changed (an upgrade replaces it).
pub async fn version(ctx: &Context) -> Result<Option<String>, CommandError> {
    let cmd = match ctx.runner.cmd("glusterfs") {
        Ok(cmd) => cmd.arg("--version"),
        Err(CommandError::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    let program = cmd.program.clone();
    let out = ctx.stamped_answers.output(ctx.runner.as_ref(), &cmd, &[program]).await?.exited_0(&cmd)?;
    Ok(parse_version(&out.stdout))
}

pub fn glusterd_uuid() -> Option<String> {
    std::fs::read_to_string(GLUSTERD_INFO).ok().and_then(|t| parse_glusterd_info(&t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_lines() {
        let out = "glusterfs 10.3\nRepository revision: git://git.gluster.org/glusterfs.git\n";
        assert_eq!(parse_version(out).as_deref(), Some("10.3"));
        assert_eq!(parse_version("glusterfs 3.12.2 built on Jan  1 2020\n").as_deref(), Some("3.12.2"));
        assert_eq!(parse_version("something else"), None);
    }

    #[test]
    fn glusterd_info() {
        let text = "UUID=0b6c4c6b-7d3e-4c4e-9c55-0f6b1d2a9f10\noperating-version=100000\n";
        assert_eq!(parse_glusterd_info(text).as_deref(), Some("0b6c4c6b-7d3e-4c4e-9c55-0f6b1d2a9f10"));
        assert_eq!(parse_glusterd_info("operating-version=1\n"), None);
        assert_eq!(parse_glusterd_info("UUID=\n"), None);
    }
}
