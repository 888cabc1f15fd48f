//! `brickyard plan`: facts from every host, then every node of apply's task graph
//! (`crate::graph`) checked by its agent (`Plan` RPC: changes nothing), all at once, and shown
//! by phase. Nodes are checked against the current state, so a task the agent finds not ready
//! (a brick whose disk is not mounted yet, a peer not probed yet) while a node it needs, or an
//! earlier task of its own node, has a change pending is reported as "depends on an earlier
//! change". Every other refusal — unsafe, conflict, invalid, failed, or not ready with nothing
//! before it that could make it ready — is one apply would hit too: `plan` shows it as REFUSED
//! and exits 1. Clients that left the spec are retired first and volumes that left it are
//! warned about (`crate::retire`). Read-only.

use std::collections::BTreeMap;
use std::sync::Arc;

use brickyard_proto::v1;
use brickyard_proto::v1::task_verdict::Verdict as AgentVerdict;
use serde::Serialize;

use crate::agents::{self, task_error, Agents};
use crate::graph::Graph;
use crate::migrate::{self, MigrateError};
use crate::phases::{self, Phase};
use crate::pool_view;
use crate::retire;
use crate::spec::{Layout, Spec};

/// What a task would do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    Unchanged,
    Changes {
        changes: Vec<String>,
    },
    /// Not ready now, but an earlier task or phase has changes to make first.
    DependsOnEarlier {
        reason: String,
    },
    Refused {
        error: String,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct TaskReview {
    pub task: String,
    #[serde(flatten)]
    pub verdict: Verdict,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// One node of the task graph (`crate::graph`): a host's batch.
#[derive(Debug, Clone, Serialize)]
pub struct HostReview {
    pub host: String,
    /// The node's name on its host (`glusterd`, `disk`, `volume gluV1`, ...).
    pub node: String,
    pub tasks: Vec<TaskReview>,
    /// The agent could not be asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PhaseReview {
    pub phase: Phase,
    pub hosts: Vec<HostReview>,
}

/// A host whose agent did not answer `GetFacts`.
#[derive(Debug, Clone, Serialize)]
pub struct Unreachable {
    pub host: String,
    pub error: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct PlanReport {
    pub unreachable: Vec<Unreachable>,
    /// Refusals before any task (e.g. duplicate glusterd UUIDs).
    pub errors: Vec<String>,
    /// Spec-level warnings (replica 2, bricks on the root filesystem).
    pub warnings: Vec<String>,
    pub phases: Vec<PhaseReview>,
}

impl PlanReport {
    pub fn has_errors(&self) -> bool {
        !self.unreachable.is_empty()
            || !self.errors.is_empty()
            || self
                .hosts()
                .any(|h| h.error.is_some() || h.tasks.iter().any(|t| matches!(t.verdict, Verdict::Refused { .. })))
    }

    pub fn has_changes(&self) -> bool {
        self.hosts().flat_map(|h| &h.tasks).any(|t| !matches!(t.verdict, Verdict::Unchanged))
    }

    fn hosts(&self) -> impl Iterator<Item = &HostReview> {
        self.phases.iter().flat_map(|p| &p.hosts)
    }

    /// 0 nothing to do, 1 errors, 2 changes (only with `detailed`; otherwise 0).
    pub fn exit_code(&self, detailed: bool) -> u8 {
        if self.has_errors() {
            1
        } else if detailed && self.has_changes() {
            2
        } else {
            0
        }
    }
}

/// Warnings that follow from the spec alone.
pub fn spec_warnings(spec: &Spec) -> Vec<String> {
    let mut warnings = Vec::new();
    for volume in &spec.volumes {
        if let Ok(Layout::Replicate { replica: 2 }) = volume.layout() {
            warnings.push(format!(
                "volume {}: replica 2 without an arbiter is split-brain prone (allowed by allow_replica2)",
                volume.name
            ));
        }
        for server in spec.volume_servers(volume) {
            if server.disk.is_none() {
                warnings.push(format!(
                    "volume {}: the brick on {} is on the root filesystem (allowed by force)",
                    volume.name, server.name
                ));
            }
        }
    }
    warnings
}

/// Checks every task of every phase with its agent.
pub async fn run(spec: &Spec) -> PlanReport {
    let agents = Arc::new(Agents::new(spec));
    let mut report = PlanReport { warnings: spec_warnings(spec), ..Default::default() };
    let mut facts = BTreeMap::new();
    let (answers, view) = pool_view::read_with_facts(spec, &agents).await;
    for (host, answer) in answers {
        let host = host.name;
        match answer {
            Ok(f) => {
                facts.insert(host, f);
            }
            Err(e) => report.unreachable.push(Unreachable { host, error: e.to_string() }),
        }
    }
    let view = match view {
        Ok(view) => view,
        Err(e) => {
            report.errors.push(MigrateError::from(e).to_string());
            return report;
        }
    };
    if let Err(e) = migrate::removed_servers(spec, &view) {
        report.errors.push(e.to_string());
        return report;
    }
    let mut plans = match phases::build(spec, &facts) {
        Ok(plans) => plans,
        Err(e) => {
            report.errors.push(e.to_string());
            return report;
        }
    };
    let survey = retire::survey(spec, &agents, &mut facts, &view).await;
    report.warnings.extend(survey.warnings(spec));
    plans.insert(0, survey.phase(spec));
    let graph = Graph::build(spec, plans);

    // Every node checked concurrently; unreachable hosts are not asked.
    let mut set = tokio::task::JoinSet::new();
    for node in graph.nodes.iter().filter(|n| facts.contains_key(&n.host)) {
        let (agents, id, host, tasks) = (agents.clone(), node.id, node.host.clone(), node.tasks.clone());
        set.spawn(async move { (id, agents.plan(&host, tasks).await) });
    }
    let mut verdicts = BTreeMap::new();
    while let Some(joined) = set.join_next().await {
        let (id, answer) = joined.expect("plan task panicked");
        verdicts.insert(id, answer);
    }

    // A "not ready" depends on earlier changes when a node it needs (directly or not), or an
    // earlier task of its own node, has changes to make — or a host could not be asked.
    let anything_unknown = !report.unreachable.is_empty();
    let mut pending = vec![false; graph.nodes.len()];
    let mut by_phase: Vec<PhaseReview> = Vec::new();
    for node in &graph.nodes {
        let mut host = HostReview { host: node.host.clone(), node: node.name.clone(), tasks: Vec::new(), error: None };
        let mut before = anything_unknown || node.needs.iter().any(|&need| pending[need]);
        match verdicts.remove(&node.id) {
            None => host.error = Some("not checked: the host did not answer GetFacts".into()),
            Some(Err(e)) => host.error = Some(e.to_string()),
            Some(Ok(answer)) => {
                for (task, verdict) in node.tasks.iter().zip(answer.verdicts) {
                    let review = review_task(&task.id, verdict, before);
                    before |= !matches!(review.verdict, Verdict::Unchanged);
                    host.tasks.push(review);
                }
            }
        }
        pending[node.id] = before || host.error.is_some();
        match by_phase.iter_mut().find(|p| p.phase == node.phase) {
            Some(phase) => phase.hosts.push(host),
            None => by_phase.push(PhaseReview { phase: node.phase, hosts: vec![host] }),
        }
    }
    by_phase.sort_by_key(|p| p.phase);
    report.phases = by_phase;
    report
}

fn review_task(task: &str, verdict: v1::TaskVerdict, pending: bool) -> TaskReview {
    let verdict_of = match verdict.verdict {
        Some(AgentVerdict::Unchanged(_)) => Verdict::Unchanged,
        Some(AgentVerdict::WouldChange(c)) => Verdict::Changes { changes: c.changes },
        Some(AgentVerdict::Refused(e)) if pending && agents::error_kind(&e) == v1::ErrorKind::NotReady => {
            Verdict::DependsOnEarlier { reason: task_error(&e) }
        }
        Some(AgentVerdict::Refused(e)) => Verdict::Refused { error: task_error(&e) },
        None => Verdict::Refused { error: "the agent returned no verdict".into() },
    };
    TaskReview { task: task.to_owned(), verdict: verdict_of, warnings: verdict.warnings }
}

/// The human report: per phase and host, what would change and why.
pub fn render_text(report: &PlanReport) -> String {
    let mut out = String::new();
    for Unreachable { host, error } in &report.unreachable {
        out.push_str(&format!("UNREACHABLE {host}: {error}\n"));
    }
    for error in &report.errors {
        out.push_str(&format!("REFUSED: {error}\n"));
    }
    for warning in &report.warnings {
        out.push_str(&format!("warning: {warning}\n"));
    }
    for phase in &report.phases {
        if phase.hosts.is_empty() {
            continue;
        }
        out.push_str(&format!("== {}\n", phase.phase));
        for host in &phase.hosts {
            let unchanged = host.tasks.iter().filter(|t| t.verdict == Verdict::Unchanged).count();
            out.push_str(&format!(
                "  {} {} ({unchanged} of {} tasks unchanged)\n",
                host.host,
                host.node,
                host.tasks.len()
            ));
            if let Some(error) = &host.error {
                out.push_str(&format!("    ERROR: {error}\n"));
            }
            for task in &host.tasks {
                match &task.verdict {
                    Verdict::Unchanged => {}
                    Verdict::Changes { changes } => {
                        for change in changes {
                            out.push_str(&format!("    ~ {}: {change}\n", task.task));
                        }
                    }
                    Verdict::DependsOnEarlier { reason } => {
                        out.push_str(&format!("    ~ {}: depends on an earlier change ({reason})\n", task.task))
                    }
                    Verdict::Refused { error } => out.push_str(&format!("    ! {}: REFUSED: {error}\n", task.task)),
                }
                for warning in &task.warnings {
                    out.push_str(&format!("    warning: {}: {warning}\n", task.task));
                }
            }
        }
    }
    out.push_str(match (report.has_errors(), report.has_changes()) {
        (true, _) => "plan: apply would fail: fix the errors above first\n",
        (false, true) => "plan: apply would make the changes above\n",
        (false, false) => "plan: nothing to do\n",
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(kind: v1::ErrorKind, message: &str) -> v1::TaskVerdict {
        v1::TaskVerdict {
            id: "t".into(),
            verdict: Some(AgentVerdict::Refused(v1::TaskError { kind: kind.into(), message: message.into() })),
            warnings: vec![],
        }
    }

    fn changes(change: &str) -> v1::TaskVerdict {
        v1::TaskVerdict {
            id: "t".into(),
            verdict: Some(AgentVerdict::WouldChange(v1::Changes { changes: vec![change.into()] })),
            warnings: vec![],
        }
    }

    #[test]
    fn only_not_ready_waits_for_earlier_changes() {
        let not_ready = || refused(v1::ErrorKind::NotReady, "/vdisk is not mounted");
        assert_eq!(
            review_task("bricks", not_ready(), true).verdict,
            Verdict::DependsOnEarlier { reason: "/vdisk is not mounted (not ready)".into() }
        );
        // Nothing before it could make it ready: apply would fail the same way.
        assert!(matches!(review_task("bricks", not_ready(), false).verdict, Verdict::Refused { .. }));
        // A data-safety refusal or a conflict is real whatever comes before it.
        for kind in [v1::ErrorKind::Unsafe, v1::ErrorKind::Conflict, v1::ErrorKind::Failed, v1::ErrorKind::Invalid] {
            assert!(matches!(review_task("t", refused(kind, "x"), true).verdict, Verdict::Refused { .. }), "{kind:?}");
        }
    }

    /// The example: two servers added to the spec of a converged 2-server pool. The new
    /// servers have everything to do and their bricks wait for their disks, but the volume that
    /// exists with two bricks is a conflict: REFUSED, exit 1, and the last line says apply fails.
    #[test]
    fn a_conflict_after_earlier_changes_is_still_a_refusal() {
        let host =
            |name: &str, tasks: Vec<TaskReview>| HostReview { host: name.into(), node: "n".into(), tasks, error: None };
        let mut pending = false;
        let mut review = |task: &str, verdict: v1::TaskVerdict| {
            let r = review_task(task, verdict, pending);
            pending |= r.verdict != Verdict::Unchanged;
            r
        };
        let servers = host("gluServer3", vec![review("packages (server)", changes("install glusterfs-server"))]);
        let bricks = host(
            "gluServer3",
            vec![review(
                "bricks",
                refused(v1::ErrorKind::NotReady, "/vdisk is not mounted: brick ... would be below it"),
            )],
        );
        let volume = host(
            "gluServer1",
            vec![review(
                "volume gluV1",
                refused(v1::ErrorKind::Conflict, "volume gluV1 already exists and differs: its bricks are ..."),
            )],
        );
        let report = PlanReport {
            phases: vec![
                PhaseReview { phase: Phase::Servers, hosts: vec![servers] },
                PhaseReview { phase: Phase::Volumes, hosts: vec![bricks, volume] },
            ],
            ..Default::default()
        };
        assert_eq!((report.exit_code(false), report.exit_code(true)), (1, 1));
        let text = render_text(&report);
        assert!(text.contains("~ bricks: depends on an earlier change (/vdisk is not mounted"), "{text}");
        assert!(
            text.contains(
                "! volume gluV1: REFUSED: volume gluV1 already exists and differs: its bricks are ... (conflict)"
            ),
            "{text}"
        );
        assert!(text.ends_with("plan: apply would fail: fix the errors above first\n"), "{text}");
    }

    #[test]
    fn exit_codes() {
        let mut report = PlanReport::default();
        assert_eq!(report.exit_code(true), 0);
        report.phases.push(PhaseReview {
            phase: Phase::Servers,
            hosts: vec![HostReview {
                host: "s1".into(),
                node: "glusterd".into(),
                tasks: vec![TaskReview {
                    task: "glusterd".into(),
                    verdict: Verdict::Changes { changes: vec!["start glusterd".into()] },
                    warnings: vec![],
                }],
                error: None,
            }],
        });
        assert_eq!((report.exit_code(true), report.exit_code(false)), (2, 0));
        assert!(render_text(&report).contains("~ glusterd: start glusterd"));
        report.unreachable.push(Unreachable { host: "c1".into(), error: "connection refused".into() });
        assert_eq!(report.exit_code(true), 1);
    }
}
