//! `brickyard plan`: facts from every host, then every phase's batches checked by their agents
//! (`Plan` RPC: changes nothing), all hosts and phases at once. Later phases are checked
//! against the current state, so a refusal that only waits for an earlier change (a volume
//! whose peers are not probed yet) is reported as "depends on an earlier change", not as an
//! error. Read-only.

use std::collections::BTreeMap;
use std::sync::Arc;

use brickyard_proto::v1;
use brickyard_proto::v1::task_verdict::Verdict as AgentVerdict;
use serde::Serialize;

use crate::agents::{self, Agents};
use crate::apply::task_error;
use crate::phases::{self, Phase};
use crate::spec::{Layout, Spec};

/// What a task would do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    Unchanged,
    Changes {
        changes: Vec<String>,
    },
    /// Refused now, but an earlier task or phase has changes to make first.
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

#[derive(Debug, Clone, Serialize)]
pub struct HostReview {
    pub host: String,
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
    let answers = agents::each(spec.hosts().iter().map(|h| h.name.as_str()), |host| {
        let agents = agents.clone();
        async move { agents.facts(&host).await }
    })
    .await;
    let mut facts = BTreeMap::new();
    for (host, answer) in answers {
        match answer {
            Ok(f) => {
                facts.insert(host, f);
            }
            Err(e) => report.unreachable.push(Unreachable { host, error: e.to_string() }),
        }
    }
    let plans = match phases::build(spec, &facts) {
        Ok(plans) => plans,
        Err(e) => {
            report.errors.push(e.to_string());
            return report;
        }
    };

    // Every (phase, step, host) batch checked concurrently; unreachable hosts are not asked.
    let mut set = tokio::task::JoinSet::new();
    for (p, plan) in plans.iter().enumerate() {
        for (s, step) in plan.steps.iter().enumerate() {
            for (b, batch) in step.iter().enumerate() {
                if !facts.contains_key(&batch.host) {
                    continue;
                }
                let (agents, host, tasks) = (agents.clone(), batch.host.clone(), batch.tasks.clone());
                set.spawn(async move { ((p, s, b), agents.plan(&host, tasks).await) });
            }
        }
    }
    let mut verdicts = BTreeMap::new();
    while let Some(joined) = set.join_next().await {
        let (key, answer) = joined.expect("plan task panicked");
        verdicts.insert(key, answer);
    }

    // In phase order: a refusal depends on earlier changes when the task is not independent
    // and something before it (an earlier phase or step, or an earlier task of its batch)
    // has changes to make.
    let mut pending_before = !report.unreachable.is_empty();
    for (p, plan) in plans.iter().enumerate() {
        let mut review = PhaseReview { phase: plan.phase, hosts: Vec::new() };
        for (s, step) in plan.steps.iter().enumerate() {
            let mut step_pending = false;
            for (b, batch) in step.iter().enumerate() {
                let mut host = HostReview { host: batch.host.clone(), tasks: Vec::new(), error: None };
                match verdicts.remove(&(p, s, b)) {
                    None => host.error = Some("not checked: the host did not answer GetFacts".into()),
                    Some(Err(e)) => host.error = Some(e.to_string()),
                    Some(Ok(answer)) => {
                        let mut pending = pending_before;
                        for (task, verdict) in batch.tasks.iter().zip(answer.verdicts) {
                            let review = review_task(task, verdict, pending);
                            pending |= !matches!(review.verdict, Verdict::Unchanged);
                            step_pending |= !matches!(review.verdict, Verdict::Unchanged);
                            host.tasks.push(review);
                        }
                    }
                }
                review.hosts.push(host);
            }
            pending_before |= step_pending;
        }
        report.phases.push(review);
    }
    report
}

fn review_task(task: &v1::Task, verdict: v1::TaskVerdict, pending: bool) -> TaskReview {
    let verdict_of = match verdict.verdict {
        Some(AgentVerdict::Unchanged(_)) => Verdict::Unchanged,
        Some(AgentVerdict::WouldChange(c)) => Verdict::Changes { changes: c.changes },
        Some(AgentVerdict::Refused(e)) if pending && !phases::independent(task) => {
            Verdict::DependsOnEarlier { reason: task_error(&e) }
        }
        Some(AgentVerdict::Refused(e)) => Verdict::Refused { error: task_error(&e) },
        None => Verdict::Refused { error: "the agent returned no verdict".into() },
    };
    TaskReview { task: task.id.clone(), verdict: verdict_of, warnings: verdict.warnings }
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
            out.push_str(&format!("  {} ({unchanged} of {} tasks unchanged)\n", host.host, host.tasks.len()));
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
        (true, _) => "plan: errors above must be fixed before apply\n",
        (false, true) => "plan: apply would make the changes above\n",
        (false, false) => "plan: nothing to do\n",
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(kind: v1::task::Kind) -> v1::Task {
        v1::Task { id: "t".into(), kind: Some(kind) }
    }

    fn refused() -> v1::TaskVerdict {
        v1::TaskVerdict {
            id: "t".into(),
            verdict: Some(AgentVerdict::Refused(v1::TaskError {
                kind: v1::ErrorKind::Refused.into(),
                message: "no peer gluServer2".into(),
            })),
            warnings: vec![],
        }
    }

    #[test]
    fn refusals_wait_for_earlier_changes_unless_independent() {
        let volume = task(v1::task::Kind::EnsureVolume(Default::default()));
        let partition = task(v1::task::Kind::PartitionDisk(Default::default()));
        assert!(matches!(review_task(&volume, refused(), true).verdict, Verdict::DependsOnEarlier { .. }));
        assert!(matches!(review_task(&volume, refused(), false).verdict, Verdict::Refused { .. }));
        // A data-safety refusal is real whatever comes before it.
        assert!(matches!(review_task(&partition, refused(), true).verdict, Verdict::Refused { .. }));
    }

    #[test]
    fn exit_codes() {
        let mut report = PlanReport::default();
        assert_eq!(report.exit_code(true), 0);
        report.phases.push(PhaseReview {
            phase: Phase::Servers,
            hosts: vec![HostReview {
                host: "s1".into(),
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
