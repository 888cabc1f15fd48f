//! What `apply` reports while it runs: typed events, and the reporters that show them — a live
//! view on a terminal (indicatif: one line per running node of the task graph, with what it
//! waited for), plain lines otherwise, or one JSON object per line (`--json`). Writes to stdout
//! only.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde::Serialize;

/// What a task came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    Unchanged,
    Changed,
    Failed,
    Skipped,
}

/// One step of a run. `phase` is `facts`, `retire`, `servers`, `pool`, `volumes`, `clients` or
/// `rebalance`: the label of the nodes of the task graph (`crate::graph`), whose phases overlap.
/// `node` names a node on its host (`glusterd`, `disk`, `volume gluV1`, `prep`, ...); `at_ms`
/// counts from the start of the graph's run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The first node of a phase begins; the phase's hosts, with this many tasks each.
    PhaseStarted {
        phase: String,
        hosts: Vec<(String, usize)>,
    },
    /// A node begins (every node it needs succeeded): `waited_for` lists those nodes.
    NodeStarted {
        phase: String,
        node: String,
        host: String,
        tasks: usize,
        waited_for: Vec<String>,
        at_ms: u128,
    },
    TaskStarted {
        phase: String,
        node: String,
        host: String,
        task: String,
    },
    /// A running task's progress: a full heal's entries still pending, a rebalance's or drain's
    /// counts per node (`nodes`, empty for other tasks).
    TaskProgress {
        phase: String,
        node: String,
        host: String,
        task: String,
        message: String,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        nodes: Vec<NodeProgress>,
    },
    TaskDone {
        phase: String,
        node: String,
        host: String,
        task: String,
        status: TaskStatus,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        changes: Vec<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// A node ended: `error` when it failed (a task, or the agent) or did not run (a node it
    /// needs failed).
    NodeDone {
        phase: String,
        node: String,
        host: String,
        changed: usize,
        unchanged: usize,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        at_ms: u128,
    },
    /// A host finished its part of a phase (every node of the phase on it ended); `error` when
    /// one of them failed or did not run.
    HostDone {
        phase: String,
        host: String,
        changed: usize,
        unchanged: usize,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    PhaseDone {
        phase: String,
        ok: bool,
        failed_hosts: Vec<String>,
    },
    /// The whole run.
    Done {
        ok: bool,
        changed: usize,
        unchanged: usize,
        elapsed_ms: u128,
    },
}

/// One node's part of a rebalance or drain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeProgress {
    pub node: String,
    pub status: String,
    pub files_scanned: u64,
    pub files_moved: u64,
    pub failures: u64,
    pub runtime_seconds: u64,
}

impl Event {
    /// The event for an agent's progress report on `task`.
    pub fn progress(phase: &str, node: &str, host: &str, task: &str, p: brickyard_proto::v1::TaskProgress) -> Event {
        Event::TaskProgress {
            phase: phase.to_owned(),
            node: node.to_owned(),
            host: host.to_owned(),
            task: task.to_owned(),
            message: p.message,
            nodes: p
                .migration
                .into_iter()
                .flat_map(|m| m.nodes)
                .map(|n| NodeProgress {
                    node: n.node,
                    status: n.status,
                    files_scanned: n.files_scanned,
                    files_moved: n.files_moved,
                    failures: n.failures,
                    runtime_seconds: n.runtime_seconds,
                })
                .collect(),
        }
    }
}

/// Receives the events of a run, in order per host.
pub trait Reporter: Send + Sync {
    fn event(&self, event: &Event);
}

/// Picks the reporter for a command: JSON lines, a live view on a terminal, plain lines.
pub fn reporter(json: bool) -> Box<dyn Reporter> {
    if json {
        Box::new(JsonLines)
    } else if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        Box::new(Live::default())
    } else {
        Box::new(Plain)
    }
}

/// One JSON object per line on stdout.
pub struct JsonLines;

impl Reporter for JsonLines {
    fn event(&self, event: &Event) {
        let line = serde_json::to_string(event).expect("events serialize");
        let mut out = std::io::stdout().lock();
        // A closed stdout (e.g. `| head`) must not abort the run.
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}

/// Human lines without cursor movement: phases, changes, failures, per-host summaries.
pub struct Plain;

/// The human line for an event (None: not worth a line of its own).
fn line(event: &Event) -> Option<String> {
    match event {
        Event::PhaseStarted { phase, hosts } => {
            let names: Vec<&str> = hosts.iter().map(|(h, _)| h.as_str()).collect();
            Some(format!("== {phase}: {}", names.join(", ")))
        }
        Event::NodeStarted { .. } | Event::NodeDone { error: None, .. } | Event::TaskStarted { .. } => None,
        Event::NodeDone { host, node, error: Some(e), .. } if e.starts_with(NOT_RUN) => {
            Some(format!("  {host}: {node}: {e}"))
        }
        Event::NodeDone { .. } => None,
        Event::TaskProgress { host, task, message, .. } => Some(format!("  {host}: {task}: {message}")),
        Event::TaskDone { host, task, status: TaskStatus::Changed, changes, .. } => {
            Some(changes.iter().map(|c| format!("  {host}: {task}: {c}")).collect::<Vec<_>>().join("\n"))
        }
        Event::TaskDone { host, task, status: TaskStatus::Failed, error, .. } => {
            Some(format!("  {host}: {task}: FAILED: {}", error.as_deref().unwrap_or("")))
        }
        Event::TaskDone { .. } => None,
        Event::HostDone { host, .. } => Some(format!("  {host}: {}", host_summary(event).unwrap_or_default())),
        Event::PhaseDone { phase, ok: false, failed_hosts } => {
            Some(format!("== {phase} failed on {}; what needs it does not run", failed_hosts.join(", ")))
        }
        Event::PhaseDone { .. } => None,
        Event::Done { ok, changed, unchanged, elapsed_ms } => Some(format!(
            "{} {changed} changed, {unchanged} unchanged in {:.1} s",
            if *ok { "done:" } else { "FAILED:" },
            *elapsed_ms as f64 / 1000.0
        )),
    }
}

/// How the error of a node that did not run begins.
pub const NOT_RUN: &str = "not run: ";

/// How a host ended its part of a phase: `ok (N changed, M unchanged)` or `FAILED: error`.
fn host_summary(event: &Event) -> Option<String> {
    let Event::HostDone { changed, unchanged, error, .. } = event else { return None };
    Some(match error {
        Some(e) => format!("FAILED: {e}"),
        None if changed + unchanged == 0 => "ok".to_owned(),
        None => format!("ok ({changed} changed, {unchanged} unchanged)"),
    })
}

impl Reporter for Plain {
    fn event(&self, event: &Event) {
        if let Some(text) = line(event) {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{text}");
        }
    }
}

/// A live view: one spinner line per running node ("host node"), showing first what it waited
/// for, then its running task; phase starts, changes, failures and each node's summary are
/// printed above the spinners as they happen.
#[derive(Default)]
pub struct Live {
    state: Mutex<LiveState>,
}

#[derive(Default)]
struct LiveState {
    multi: Option<MultiProgress>,
    /// The bar of each running node by (host, node), with its tasks done.
    bars: HashMap<(String, String), (ProgressBar, usize)>,
}

impl LiveState {
    fn multi(&mut self) -> &MultiProgress {
        self.multi.get_or_insert_with(MultiProgress::new)
    }

    fn println(&mut self, text: String) {
        let _ = self.multi().println(text);
    }
}

impl Reporter for Live {
    fn event(&self, event: &Event) {
        let mut state = self.state.lock().expect("progress state");
        match event {
            Event::PhaseStarted { phase, .. } => state.println(format!("== {phase}")),
            Event::NodeStarted { node, host, tasks, waited_for, .. } => {
                let style = ProgressStyle::with_template("  {spinner} {prefix:<28} {pos}/{len} {wide_msg}")
                    .expect("progress template");
                let bar = state.multi().add(ProgressBar::new(*tasks as u64).with_style(style));
                bar.set_prefix(format!("{host} {node}"));
                if !waited_for.is_empty() {
                    bar.set_message(format!("after {}", waited_for.join(", ")));
                }
                bar.enable_steady_tick(Duration::from_millis(100));
                state.bars.insert((host.clone(), node.clone()), (bar, 0));
            }
            Event::TaskStarted { node, host, task, .. } => {
                if let Some((bar, _)) = state.bars.get(&(host.clone(), node.clone())) {
                    bar.set_message(task.clone());
                }
            }
            Event::TaskProgress { node, host, task, message, .. } => {
                if let Some((bar, _)) = state.bars.get(&(host.clone(), node.clone())) {
                    bar.set_message(format!("{task}: {message}"));
                }
            }
            Event::TaskDone { node, host, .. } => {
                if let Some(text) = line(event) {
                    state.println(text);
                }
                if let Some((bar, done)) = state.bars.get_mut(&(host.clone(), node.clone())) {
                    *done += 1;
                    bar.set_position(*done as u64);
                }
            }
            Event::NodeDone { node, host, changed, unchanged, error, .. } => {
                let summary = match error {
                    Some(e) => format!("FAILED: {e}"),
                    None => format!("ok ({changed} changed, {unchanged} unchanged)"),
                };
                // The spinner goes; the node's summary stays above the running ones.
                if let Some((bar, _)) = state.bars.remove(&(host.clone(), node.clone())) {
                    bar.finish_and_clear();
                }
                state.println(format!("  {host} {node}: {summary}"));
            }
            Event::HostDone { .. } => {}
            Event::PhaseDone { .. } => {
                if let Some(text) = line(event) {
                    state.println(text);
                }
            }
            Event::Done { .. } => {
                state.bars.clear();
                state.multi = None;
                if let Some(text) = line(event) {
                    println!("{text}");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_events_are_tagged_lines() {
        let event = Event::TaskDone {
            phase: "servers".into(),
            node: "glusterd".into(),
            host: "gluServer1".into(),
            task: "glusterd".into(),
            status: TaskStatus::Changed,
            changes: vec!["start glusterd".into()],
            error: None,
        };
        assert_eq!(
            serde_json::to_string(&event).unwrap(),
            r#"{"event":"task_done","phase":"servers","node":"glusterd","host":"gluServer1","task":"glusterd","status":"changed","changes":["start glusterd"]}"#
        );
    }

    #[test]
    fn progress_lines_show_the_agents_message_and_json_the_counts() {
        let migration = brickyard_proto::v1::MigrationProgress {
            volume: "gv".into(),
            operation: "rebalance".into(),
            nodes: vec![brickyard_proto::v1::MigrationNode {
                node: "gs1".into(),
                status: "in progress".into(),
                files_scanned: 200,
                files_moved: 56,
                ..Default::default()
            }],
        };
        let message = "rebalance gv: gs1 200 scanned, 56 moved, 0 failures (in progress)".to_owned();
        let p = brickyard_proto::v1::TaskProgress { message: message.clone(), migration: Some(migration) };
        let event = Event::progress("volumes", "rebalance", "gs1", "rebalance gv", p);
        assert_eq!(line(&event).unwrap(), format!("  gs1: rebalance gv: {message}"));
        let json = serde_json::to_string(&event).unwrap();
        assert!(
            json.starts_with(r#"{"event":"task_progress","phase":"volumes","node":"rebalance","host":"gs1""#),
            "{json}"
        );
        assert!(json.contains(r#""files_scanned":200,"files_moved":56"#), "{json}");

        let heal = brickyard_proto::v1::TaskProgress { message: "3 entries pending".into(), migration: None };
        let json = serde_json::to_string(&Event::progress("volumes", "volume gv", "gs1", "volume gv", heal)).unwrap();
        assert!(!json.contains("nodes"), "{json}");
    }

    #[test]
    fn plain_lines_name_host_and_task() {
        let failed = Event::TaskDone {
            phase: "servers".into(),
            node: "disk".into(),
            host: "s2".into(),
            task: "partition /dev/vdb".into(),
            status: TaskStatus::Failed,
            changes: vec![],
            error: Some("refused: /dev/vdb holds ext4".into()),
        };
        assert_eq!(line(&failed).unwrap(), "  s2: partition /dev/vdb: FAILED: refused: /dev/vdb holds ext4");
        let progress = Event::TaskProgress {
            phase: "volumes".into(),
            node: "volume gluV1".into(),
            host: "s1".into(),
            task: "volume gluV1".into(),
            message: "heal gluV1: 12 entries pending heal (s1:/b 12, s2:/b 0) after 3 s".into(),
            nodes: vec![],
        };
        assert_eq!(
            line(&progress).unwrap(),
            "  s1: volume gluV1: heal gluV1: 12 entries pending heal (s1:/b 12, s2:/b 0) after 3 s"
        );
        assert!(serde_json::to_string(&progress).unwrap().starts_with(r#"{"event":"task_progress","phase":"volumes""#));
    }
}
