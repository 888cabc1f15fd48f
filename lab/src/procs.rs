//! Processes of a lab, read from /proc: a PID's state and start time (so a recorded PID that
//! was reused by an unrelated process is never signalled), every process whose network
//! namespace is one of the lab's (found by namespace inode, never by process name), and the
//! descendants of a process (by parent PID, for a lab host's boot to end a step it gave up on).

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The fields of /proc/PID/stat the lab uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub state: char,
    pub ppid: i32,
    /// Clock ticks since boot.
    pub start_time: u64,
}

/// State letter, parent PID and start time from the text of /proc/PID/stat. The command name
/// (field 2) may contain spaces and parentheses, so fields are counted from the last `)`.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    // After the parent PID come fields 5..; start time is field 22, i.e. 18 fields further.
    let start_time = fields.nth(17)?.parse().ok()?;
    Some(Stat { state, ppid, start_time })
}

fn stat(pid: i32) -> Option<Stat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// The start time of a running process, `None` if there is no such process.
pub fn start_time(pid: i32) -> Option<u64> {
    stat(pid).map(|s| s.start_time)
}

/// Whether `pid` is still the process started at `start_time` and has not exited (a zombie
/// has exited: its namespace's processes are gone, only the parent's reaping is missing).
pub fn is_alive(pid: i32, start_time: u64) -> bool {
    matches!(stat(pid), Some(s) if s.start_time == start_time && s.state != 'Z' && s.state != 'X')
}

fn all_pids() -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries.flatten().filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok()).collect()
}

/// Every living descendant of `root` (children, their children, ...), found by parent PID in
/// one pass over /proc. A process that has already left the tree (a daemon re-parented to
/// init) is not found: call this while the tree is intact.
pub fn descendants(root: i32) -> Vec<i32> {
    let parents: Vec<(i32, i32)> = all_pids().into_iter().filter_map(|pid| Some((pid, stat(pid)?.ppid))).collect();
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(parents.iter().filter(|(_, ppid)| *ppid == parent).map(|(pid, _)| *pid));
        i += 1;
    }
    found.remove(0);
    found
}

/// Every process (pid, start time) whose network namespace is the one bound at `netns_file`
/// (a /run/netns entry).
pub fn in_netns(netns_file: &Path) -> Vec<(i32, u64)> {
    let Ok(meta) = std::fs::metadata(netns_file) else { return Vec::new() };
    let wanted = format!("net:[{}]", meta.ino());
    all_pids()
        .into_iter()
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
        assert_eq!(parse_stat(line), Some(Stat { state: 'S', ppid: 1, start_time: 123456 }));
        let zombie = "7 (glusterd) Z 3 7 7 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 99 0 0";
        assert_eq!(parse_stat(zombie), Some(Stat { state: 'Z', ppid: 3, start_time: 99 }));
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

    #[test]
    fn finds_grandchildren() {
        let mut child = std::process::Command::new("sh").args(["-c", "sleep 30 & wait"]).spawn().unwrap();
        let pid = child.id() as i32;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut found = descendants(pid);
        while found.is_empty() && std::time::Instant::now() < deadline {
            std::thread::yield_now();
            found = descendants(pid);
        }
        assert_eq!(found.len(), 1, "sh's one child, the sleep: {found:?}");
        assert!(descendants(std::process::id() as i32).contains(&pid));
        for p in found.iter().chain([&pid]) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(*p), nix::sys::signal::Signal::SIGKILL);
        }
        child.wait().unwrap();
    }
}
