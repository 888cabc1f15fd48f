//! Is a daemon running? Decided from its pid file and /proc (never by process-name search:
//! lab hosts may share one process table; a search only proves that no such process runs,
//! see [`any_alive_named`]). Pure parsers + a small read of /proc, and [`stop`]: a signal and
//! the wait until the process is gone.

use std::path::Path;
use std::time::Duration;

use brickyard_proto::poll::{self, Look, TimedOut};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// How long a signalled process may take to exit.
const STOP_DEADLINE: Duration = Duration::from_secs(30);
const STOP_POLL: Duration = Duration::from_millis(100);

/// Why [`stop`] could not end a process.
#[derive(Debug, thiserror::Error)]
pub enum StopError {
    #[error("sending {signal} to {what} (pid {pid}): {source}")]
    Signal { what: String, pid: u32, signal: Signal, source: nix::Error },
    #[error(transparent)]
    TimedOut(#[from] TimedOut),
}

/// Sends `signal` to `pid` while it still is `name`, then waits until it is gone (or no longer
/// `name`: its pid reused). `what` names the process in errors, e.g. "glusterd".
pub async fn stop(pid: u32, name: &str, signal: Signal, what: &str) -> Result<(), StopError> {
    if !alive_and_named(pid, name) {
        return Ok(());
    }
    // Pids here are parsed as positive pid_t values: the cast is lossless, never a process group.
    match kill(Pid::from_raw(pid as i32), signal) {
        // It exited meanwhile, which is what is wanted.
        Ok(()) | Err(nix::Error::ESRCH) => {}
        Err(source) => return Err(StopError::Signal { what: what.to_owned(), pid, signal, source }),
    }
    poll::until(format!("{what} (pid {pid}) to exit after {signal}"), STOP_DEADLINE, STOP_POLL, || async {
        Ok::<_, StopError>(if alive_and_named(pid, name) {
            Look::NotYet("it still runs".into())
        } else {
            Look::Done(())
        })
    })
    .await
}

/// The pid in a pid file's text (first line, trimmed).
pub fn parse_pid(text: &str) -> Option<u32> {
    // A pid_t: positive and within i32, so signalling it can never address a process group.
    let pid: i32 = text.lines().next()?.trim().parse().ok()?;
    u32::try_from(pid).ok().filter(|&pid| pid > 0)
}

/// The state letter of /proc/PID/stat (`R`, `S`, `Z`, ...); the command name is in
/// parentheses and may itself contain spaces and parentheses.
pub fn parse_stat_state(stat: &str) -> Option<char> {
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// Whether a process is `name`: its command name, or (interpreted daemons such as firewalld)
/// the base name of its first or second argument.
pub fn is_named(comm: &str, cmdline: &str, name: &str) -> bool {
    let base = |arg: &str| arg.rsplit('/').next().unwrap_or(arg).to_owned();
    comm.trim() == name || cmdline.split('\0').take(2).any(|arg| base(arg) == name)
}

/// Whether process `pid` is alive (not a zombie) and is `name` (see [`is_named`]).
pub fn alive_and_named(pid: u32, name: &str) -> bool {
    alive_and_named_in(Path::new("/proc"), pid, name)
}

/// Whether any process in `proc` (`/proc`, or a fake host's) is alive and is `name`. No means
/// none runs here; yes may be another lab host's, so only ask the daemon itself after a yes.
pub fn any_alive_named(proc: &Path, name: &str) -> bool {
    pids_in(proc).any(|pid| alive_and_named_in(proc, pid, name))
}

/// The pids listed in `proc` (`/proc`, or a fake host's); none when it cannot be read.
pub fn pids_in(proc: &Path) -> impl Iterator<Item = u32> {
    std::fs::read_dir(proc).into_iter().flatten().filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
}

fn alive_and_named_in(proc: &Path, pid: u32, name: &str) -> bool {
    let proc_dir = proc.join(pid.to_string());
    let read = |file: &str| std::fs::read_to_string(proc_dir.join(file)).unwrap_or_default();
    let alive = matches!(parse_stat_state(&read("stat")), Some(s) if s != 'Z' && s != 'X');
    alive && is_named(&read("comm"), &read("cmdline"), name)
}

/// The pid recorded in `pid_file` when that process is alive and is `name`; `Ok(None)` when
/// there is no pid file or it names another, dead or no process.
pub fn running_pid(pid_file: &Path, name: &str) -> std::io::Result<Option<u32>> {
    let text = match std::fs::read_to_string(pid_file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok(parse_pid(&text).filter(|&pid| alive_and_named(pid, name)))
}

/// The start time's field of /proc/PID/stat (22nd: clock ticks after boot).
pub fn parse_stat_start_ticks(stat: &str) -> Option<u64> {
    stat.rsplit_once(')')?.1.split_whitespace().nth(19)?.parse().ok()
}

/// The boot time (`btime`, seconds since the epoch) in /proc/stat.
pub fn parse_boot_time(proc_stat: &str) -> Option<u64> {
    proc_stat.lines().find_map(|l| l.strip_prefix("btime ")).and_then(|t| t.trim().parse().ok())
}

/// When process `pid` started (to the second: the boot time has no finer grain).
pub fn started_at(pid: u32) -> std::io::Result<std::time::SystemTime> {
    let invalid = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let ticks = parse_stat_start_ticks(&stat).ok_or_else(|| invalid("no start time in /proc/PID/stat"))?;
    let boot = parse_boot_time(&std::fs::read_to_string("/proc/stat")?).ok_or_else(|| invalid("no btime"))?;
    // SAFETY: sysconf has no preconditions; it reads a constant of the system.
    let per_second = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).unwrap_or(100).max(1);
    let after_boot = std::time::Duration::from_millis(ticks.saturating_mul(1000) / per_second);
    Ok(std::time::UNIX_EPOCH + std::time::Duration::from_secs(boot) + after_boot)
}

/// Whether the process named in the first readable pid file of `pid_files` is alive and is
/// `name`.
pub fn running(pid_files: &[&str], name: &str) -> bool {
    pid_files
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .and_then(|t| parse_pid(&t))
        .is_some_and(|pid| alive_and_named(pid, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_and_state() {
        assert_eq!(parse_pid("1234\n"), Some(1234));
        assert_eq!(parse_pid(" 77 "), Some(77));
        assert_eq!(parse_pid("2147483647"), Some(2147483647));
        for beyond in ["0", "-1", "-2147483648", "2147483648", "4294967295", "18446744073709551615"] {
            assert_eq!(parse_pid(beyond), None, "{beyond}");
        }
        assert_eq!(parse_pid("0"), None);
        assert_eq!(parse_pid("x"), None);
        assert_eq!(parse_stat_state("1234 (glusterd) S 1 1234 1234 0 -1"), Some('S'));
        assert_eq!(parse_stat_state("99 (a) b) Z 1 2"), Some('Z'));
        assert_eq!(parse_stat_state("garbage"), None);
        assert!(is_named("glusterd\n", "/usr/sbin/glusterd\0-p\0/run/glusterd.pid\0", "glusterd"));
        assert!(is_named("python3\n", "/usr/bin/python3\0/usr/sbin/firewalld\0--nofork\0", "firewalld"));
        assert!(!is_named("bash\n", "bash\0-c\0firewalld\0", "firewalld"));
        let stat = "4242 (glusterfsd) S 1 4242 4242 0 -1 4194624 5 0 0 0 1 2 0 0 20 0 20 0 987654 1 2";
        assert_eq!(parse_stat_start_ticks(stat), Some(987654));
        assert_eq!(parse_boot_time("cpu  1 2 3\nbtime 1764650000\nprocesses 9\n"), Some(1764650000));
    }

    #[tokio::test]
    async fn a_stopped_process_is_gone_and_another_name_is_left_alone() {
        let mut child = std::process::Command::new("sleep").arg("60").spawn().unwrap();
        let pid = child.id();
        stop(pid, "glusterd", Signal::SIGTERM, "not glusterd").await.unwrap();
        assert!(alive_and_named(pid, "sleep"), "a process of another name was signalled");
        stop(pid, "sleep", Signal::SIGTERM, "a sleep").await.unwrap();
        assert!(!alive_and_named(pid, "sleep"));
        assert_eq!(child.wait().unwrap().code(), None, "ended by a signal");
    }

    #[test]
    fn this_process_started_before_now() {
        let started = started_at(std::process::id()).unwrap();
        let now = std::time::SystemTime::now();
        assert!(started <= now + std::time::Duration::from_secs(1), "{started:?} {now:?}");
        assert!(now.duration_since(started).unwrap_or_default() < std::time::Duration::from_secs(3600));
    }

    #[test]
    fn this_process_is_running_and_missing_pid_file_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("me.pid");
        std::fs::write(&pid_file, format!("{}\n", std::process::id())).unwrap();
        let comm = std::fs::read_to_string("/proc/self/comm").unwrap();
        let files = [pid_file.to_str().unwrap()];
        assert!(running(&files, comm.trim()));
        assert!(!running(&files, "glusterd"));
        assert!(!running(&["/nonexistent/brickyard.pid"], comm.trim()));
        assert_eq!(running_pid(&pid_file, comm.trim()).unwrap(), Some(std::process::id()));
        assert_eq!(running_pid(&pid_file, "glusterd").unwrap(), None);
        assert_eq!(running_pid(&dir.path().join("none.pid"), "glusterd").unwrap(), None);
    }
}
