//! Processes of a lab, read from /proc: a PID's state and start time (so a recorded PID that
//! was reused by an unrelated process is never signalled), and every process whose network
//! namespace is one of the lab's (found by namespace inode, never by process name).

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// State letter and start time (clock ticks since boot) from the text of /proc/PID/stat.
/// The command name (field 2) may contain spaces and parentheses, so fields are counted from
/// the last `)`.
pub fn parse_stat(text: &str) -> Option<(char, u64)> {
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // After the state come fields 4..; start time is field 22, i.e. 19 fields further.
    let start_time = fields.nth(18)?.parse().ok()?;
    Some((state, start_time))
}

fn stat(pid: i32) -> Option<(char, u64)> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// The start time of a running process, `None` if there is no such process.
pub fn start_time(pid: i32) -> Option<u64> {
    stat(pid).map(|(_, t)| t)
}

/// Whether `pid` is still the process started at `start_time` and has not exited (a zombie
/// has exited: its namespace's processes are gone, only the parent's reaping is missing).
pub fn is_alive(pid: i32, start_time: u64) -> bool {
    matches!(stat(pid), Some((state, t)) if t == start_time && state != 'Z' && state != 'X')
}

/// Every process (pid, start time) whose network namespace is the one bound at `netns_file`
/// (a /run/netns entry).
pub fn in_netns(netns_file: &Path) -> Vec<(i32, u64)> {
    let Ok(meta) = std::fs::metadata(netns_file) else { return Vec::new() };
    let wanted = format!("net:[{}]", meta.ino());
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| std::fs::read_link(format!("/proc/{pid}/ns/net")).is_ok_and(|l| l.as_os_str() == wanted.as_str()))
        .filter_map(|pid| Some((pid, start_time(pid)?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_awkward_command_names() {
        let line = "4242 (brick (x) y) S 1 4242 4242 0 -1 4194560 96 0 0 0 0 0 0 0 20 0 1 0 123456 1000 1 18446744073709551615";
        assert_eq!(parse_stat(line), Some(('S', 123456)));
        let zombie = "7 (glusterd) Z 1 7 7 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 99 0 0";
        assert_eq!(parse_stat(zombie), Some(('Z', 99)));
        assert_eq!(parse_stat("7 (x) S 1 2"), None);
        assert_eq!(parse_stat(""), None);
    }

    #[test]
    fn sees_itself() {
        let me = std::process::id() as i32;
        let t = start_time(me).expect("own stat");
        assert!(is_alive(me, t));
        assert!(!is_alive(me, t + 1));
    }
}
