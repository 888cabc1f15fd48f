//! Data migration as gluster reports it: the per-node answer of `volume rebalance VOL status`
//! and `volume remove-brick VOL BRICK... status` (the same `<node>` shape under
//! `<volRebalance>` / `<volRemoveBrick>`), the migration task `volume status` lists per volume,
//! and the CLI calls that read them. Parsers are pure, tested against output captured from
//! gluster 10.3 in a `brickyard-lab` (fixtures `rebalance-*.xml`, `remove-brick-*.xml`).

use brickyard_proto::v1;

use super::xml::{Element, XmlError};
use super::{cli, is_local_name, local_hostname, parsed, Error, VolumeInfo};
use crate::host::runner::CommandError;
use crate::host::Context;

/// Which migration: a rebalance of a whole volume, or the drain of some of its bricks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Migration {
    Rebalance { volume: String },
    RemoveBrick { volume: String, bricks: Vec<String> },
}

impl Migration {
    pub fn volume(&self) -> &str {
        match self {
            Migration::Rebalance { volume } | Migration::RemoveBrick { volume, .. } => volume,
        }
    }

    /// "rebalance" or "remove-brick".
    pub fn operation(&self) -> &'static str {
        match self {
            Migration::Rebalance { .. } => "rebalance",
            Migration::RemoveBrick { .. } => "remove-brick",
        }
    }

    /// `volume rebalance VOL ACTION` or `volume remove-brick VOL BRICK... ACTION`.
    pub fn args<'a>(&'a self, action: &'a str) -> Vec<&'a str> {
        let mut args = vec!["volume", self.operation(), self.volume()];
        if let Migration::RemoveBrick { bricks, .. } = self {
            args.extend(bricks.iter().map(String::as_str));
        }
        args.push(action);
        args
    }

    /// The `<cliOutput>` child its status answer lives in.
    fn element(&self) -> &'static str {
        match self {
            Migration::Rebalance { .. } => "volRebalance",
            Migration::RemoveBrick { .. } => "volRemoveBrick",
        }
    }
}

/// gluster's defrag status (`<status>`): 0 not started, 1 in progress, 2 stopped, 3 completed,
/// 4 failed, 5-8 the same for fix-layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    NotStarted,
    InProgress,
    Stopped,
    Completed,
    Failed,
}

impl State {
    fn from_code(code: i64) -> State {
        match code {
            1 | 5 => State::InProgress,
            2 | 6 => State::Stopped,
            3 | 7 => State::Completed,
            4 | 8 => State::Failed,
            _ => State::NotStarted,
        }
    }
}

/// One node's part of a migration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeProgress {
    /// As gluster names it ("localhost" for the asking node, see [`status`]).
    pub node: String,
    pub state: State,
    /// gluster's own word for the state ("in progress", "completed", "failed").
    pub status: String,
    pub scanned: u64,
    pub moved: u64,
    pub failures: u64,
    pub skipped: u64,
    pub runtime_seconds: u64,
}

impl NodeProgress {
    /// Completed without a failure.
    pub fn clean(&self) -> bool {
        self.state == State::Completed && self.failures == 0
    }

    /// "gs1: completed, 200 scanned, 56 moved, 0 failures, 12 s".
    pub fn describe(&self) -> String {
        format!(
            "{}: {}, {} scanned, {} moved, {} failures{}, {} s",
            self.node,
            self.status,
            self.scanned,
            self.moved,
            self.failures,
            if self.skipped > 0 { format!(", {} skipped", self.skipped) } else { String::new() },
            self.runtime_seconds
        )
    }

    pub fn to_proto(&self) -> v1::MigrationNode {
        v1::MigrationNode {
            node: self.node.clone(),
            status: self.status.clone(),
            files_scanned: self.scanned,
            files_moved: self.moved,
            failures: self.failures,
            skipped: self.skipped,
            runtime_seconds: self.runtime_seconds,
        }
    }
}

/// The nodes of a `rebalance`/`remove-brick` `status` answer, under `element`.
pub fn nodes(root: &Element, element: &'static str) -> Result<Vec<NodeProgress>, XmlError> {
    let answer = root.child(element).ok_or(XmlError::Missing(element))?;
    let num = |node: &Element, name: &str| node.text_of(name).and_then(|t| t.parse::<u64>().ok()).unwrap_or(0);
    answer
        .children("node")
        .map(|node| {
            Ok(NodeProgress {
                node: node.text_of("nodeName").ok_or(XmlError::Missing("nodeName"))?.to_owned(),
                state: State::from_code(node.text_of("status").and_then(|s| s.parse().ok()).unwrap_or(0)),
                status: node.text_of("statusStr").unwrap_or_default().to_owned(),
                scanned: num(node, "lookups"),
                moved: num(node, "files"),
                failures: num(node, "failures"),
                skipped: num(node, "skipped"),
                runtime_seconds: node
                    .text_of("runtime")
                    .and_then(|t| t.parse::<f64>().ok())
                    .map_or(0, |s| s.max(0.0).round() as u64),
            })
        })
        .collect()
}

/// Bricks per distribute set of a live volume.
pub fn set_size(v: &VolumeInfo) -> usize {
    let size = if v.disperse > 0 { v.disperse } else { v.replica.max(1) };
    size as usize
}

/// The last rebalance of a started volume with more than one distribute set, for `status`:
/// "rebalance in progress" / "rebalance completed" / "rebalance failed", and the nodes whose
/// part failed or had failures. `None`: one set, never rebalanced, or gluster did not answer.
pub async fn last(ctx: &Context, v: &VolumeInfo) -> Option<(String, Vec<String>)> {
    if v.bricks.len() <= set_size(v) {
        return None;
    }
    let rebalance = Migration::Rebalance { volume: v.name.clone() };
    let Ok(Found::Nodes(nodes)) = status(ctx, &rebalance, &local_hostname().ok()?).await else { return None };
    let failed_on: Vec<String> =
        nodes.iter().filter(|n| n.state == State::Failed || n.failures > 0).map(|n| n.node.clone()).collect();
    let state = if nodes.iter().any(|n| n.state == State::InProgress) {
        "in progress"
    } else if !failed_on.is_empty() {
        "failed"
    } else if nodes.iter().all(|n| n.state == State::Completed) {
        "completed"
    } else {
        "stopped"
    };
    Some((format!("rebalance {state}"), failed_on))
}

/// What `status` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// gluster says it was never started (or its record is gone).
    NotStarted,
    /// The volume has a single distribute set: gluster does not rebalance it.
    NotDistributed,
    Nodes(Vec<NodeProgress>),
}

/// gluster's words for "no such migration" and "nothing to rebalance" (`opErrstr`).
const NOT_STARTED: &str = "not started for volume";
const NOT_DISTRIBUTED: &str = "is not a distribute volume";
/// What `... status` says when a node's rebalance process does not answer glusterd yet (seen
/// on gluster 10.3 right after `remove-brick ... start`, on the servers being drained).
const NODE_NOT_ANSWERING: &str = "Glusterd Syncop Mgmt brick op 'Rebalance' failed";

/// Whether a failed `... status` only means that a node's rebalance process is still starting.
pub fn node_not_answering(error: &Error) -> bool {
    matches!(error, Error::Command(CommandError::Failed { stderr, .. }) if stderr.contains(NODE_NOT_ANSWERING))
}

/// `... status` of `migration`, with the local node's "localhost" replaced by `local` (this
/// host's name).
pub async fn status(ctx: &Context, migration: &Migration, local: &str) -> Result<Found, Error> {
    let answer = match cli(ctx, &migration.args("status")).await {
        Ok(answer) => answer,
        Err(Error::Command(CommandError::Failed { stderr, .. })) if stderr.contains(NOT_STARTED) => {
            return Ok(Found::NotStarted)
        }
        Err(Error::Command(CommandError::Failed { stderr, .. })) if stderr.contains(NOT_DISTRIBUTED) => {
            return Ok(Found::NotDistributed)
        }
        Err(e) => return Err(e),
    };
    let mut nodes = parsed(&migration.args("status").join(" "), nodes(&answer, migration.element()))?;
    for node in &mut nodes {
        if is_local_name(local, &node.node) {
            node.node = local.to_owned();
        }
    }
    Ok(Found::Nodes(nodes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gluster::fixture;
    use crate::gluster::xml::cli_output;

    fn answer(name: &str) -> Element {
        cli_output(&fixture(name)).unwrap()
    }

    #[test]
    fn rebalance_nodes_in_progress_and_completed() {
        let running = nodes(&answer("rebalance-status-in-progress.xml"), "volRebalance").unwrap();
        assert_eq!(running.len(), 4);
        assert_eq!(
            (running[0].node.as_str(), running[0].state, running[0].scanned),
            ("gluServer2", State::InProgress, 200)
        );
        let done = nodes(&answer("rebalance-status-completed.xml"), "volRebalance").unwrap();
        assert!(done.iter().all(NodeProgress::clean), "{done:?}");
        let local = done.iter().find(|n| n.node == "localhost").unwrap();
        assert_eq!((local.moved, local.scanned, local.runtime_seconds), (56, 200, 12));
        assert_eq!(local.describe(), "localhost: completed, 200 scanned, 56 moved, 0 failures, 12 s");
    }

    #[test]
    fn remove_brick_nodes_are_those_of_the_removed_bricks() {
        let running = nodes(&answer("remove-brick-status-in-progress.xml"), "volRemoveBrick").unwrap();
        assert_eq!(running.iter().map(|n| n.node.as_str()).collect::<Vec<_>>(), ["gluServer3", "gluServer4"]);
        assert!(running.iter().all(|n| n.state == State::InProgress));
        let done = nodes(&answer("remove-brick-status-completed.xml"), "volRemoveBrick").unwrap();
        assert_eq!(done.iter().map(|n| n.moved).sum::<u64>(), 90);
        assert!(done.iter().all(NodeProgress::clean));
    }

    #[test]
    fn failures_are_counted_per_node() {
        // Derived from the captured completed answer: gluster's shape for a node that failed.
        let failed = fixture("remove-brick-status-completed.xml")
            .replacen("<failures>0</failures>", "<failures>3</failures>", 1)
            .replacen(
                "<status>3</status>\n      <statusStr>completed</statusStr>",
                "<status>4</status>\n      <statusStr>failed</statusStr>",
                1,
            );
        let nodes = nodes(&cli_output(&failed).unwrap(), "volRemoveBrick").unwrap();
        assert_eq!((nodes[0].failures, nodes[0].state, nodes[0].clean()), (3, State::Failed, false));
        assert!(nodes[1].clean());
    }

    #[test]
    fn not_started_and_not_distributed_are_gluster_refusals() {
        for (name, words) in [
            ("rebalance-status-not-started.xml", NOT_STARTED),
            ("remove-brick-status-not-started.xml", NOT_STARTED),
            ("rebalance-status-not-distribute.xml", NOT_DISTRIBUTED),
        ] {
            let err = cli_output(&fixture(name)).unwrap_err().to_string();
            assert!(err.contains(words), "{name}: {err}");
        }
    }

    #[test]
    fn commands() {
        let drain = Migration::RemoveBrick { volume: "gv0".into(), bricks: vec!["gs3:/b".into(), "gs4:/b".into()] };
        assert_eq!(drain.args("start"), ["volume", "remove-brick", "gv0", "gs3:/b", "gs4:/b", "start"]);
        assert_eq!(
            Migration::Rebalance { volume: "gv0".into() }.args("status"),
            ["volume", "rebalance", "gv0", "status"]
        );
    }
}
