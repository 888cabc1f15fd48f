//! `brickyard apply`: facts from every host, then the phases of `crate::phases` in order, the
//! hosts of a phase step in parallel, each through its agent's streaming `Apply` RPC. A
//! failure lets the phase finish on the other hosts, is reported per host/task, and stops the
//! run before the next phase; a re-run continues from what is done (every task is idempotent).
//! When every server's glusterd already runs, all phases are first checked at once (`Plan`)
//! and the leading phases with nothing to do are not applied again, so a converged re-apply
//! costs one parallel round of checks. Clients that left the spec are retired first, and what
//! cannot be retired or is no longer managed is reported on stderr (`crate::retire`). Changes
//! hosts only through their agents.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use brickyard_proto::v1;
use brickyard_proto::v1::task_event::Event as AgentEvent;
use brickyard_proto::v1::task_verdict::Verdict;
use tokio_stream::StreamExt;

use crate::agents::{task_error, AgentError, Agents, Devices};
use crate::migrate::{self, MigrateError};
use crate::phases::{self, HostBatch, PhaseError, PhasePlan};
use crate::pool_view;
use crate::progress::{Event, Reporter, TaskStatus};
use crate::retire;
use crate::spec::Spec;

/// Why a host's part of a phase failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFailure {
    pub host: String,
    /// The failing task's id (None: the agent could not be reached or the stream broke
    /// between tasks).
    pub task: Option<String>,
    pub error: String,
}

impl fmt::Display for HostFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.task {
            Some(task) => write!(f, "{}: task {task:?}: {}", self.host, self.error),
            None => write!(f, "{}: {}", self.host, self.error),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("phase {phase} failed; stopped before the next phase:{}", failures.iter().map(|f| format!("\n  {f}")).collect::<String>())]
    Phase { phase: String, failures: Vec<HostFailure> },
    #[error(transparent)]
    Plan(#[from] PhaseError),
    #[error(transparent)]
    Migrate(#[from] MigrateError),
}

/// Counts of a successful run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyReport {
    pub changed: usize,
    pub unchanged: usize,
}

/// What one host did in one phase step.
#[derive(Debug, Default)]
struct HostOutcome {
    changed: usize,
    unchanged: usize,
    failure: Option<HostFailure>,
}

/// Facts from every host; any host that does not answer fails the facts phase.
pub async fn facts(
    agents: &Arc<Agents>,
    spec: &Spec,
    reporter: &dyn Reporter,
) -> Result<BTreeMap<String, v1::Facts>, ApplyError> {
    let hosts = spec.hosts();
    let phase = "facts".to_owned();
    reporter.event(&Event::PhaseStarted {
        phase: phase.clone(),
        hosts: hosts.iter().map(|h| (h.name.clone(), 0)).collect(),
    });
    let answers = agents.every_host_facts(Devices::Omitted).await;
    let mut facts = BTreeMap::new();
    let mut failures = Vec::new();
    for (host, answer) in answers {
        let host = host.name;
        let error = answer.as_ref().err().map(AgentError::to_string);
        reporter.event(&Event::HostDone { phase: phase.clone(), host: host.clone(), changed: 0, unchanged: 0, error });
        match answer {
            Ok(f) => {
                facts.insert(host, f);
            }
            Err(e) => failures.push(HostFailure { host, task: None, error: e.to_string() }),
        }
    }
    finish_phase(&phase, failures, reporter)?;
    Ok(facts)
}

fn finish_phase(phase: &str, failures: Vec<HostFailure>, reporter: &dyn Reporter) -> Result<(), ApplyError> {
    reporter.event(&Event::PhaseDone {
        phase: phase.to_owned(),
        ok: failures.is_empty(),
        failed_hosts: failures.iter().map(|f| f.host.clone()).collect(),
    });
    if failures.is_empty() {
        Ok(())
    } else {
        Err(ApplyError::Phase { phase: phase.to_owned(), failures })
    }
}

/// Converges the pool the spec describes. Events go to `reporter` as they happen.
pub async fn run(spec: &Spec, reporter: Arc<dyn Reporter>) -> Result<ApplyReport, ApplyError> {
    let started = Instant::now();
    let agents = Arc::new(Agents::new(spec));
    let mut report = ApplyReport::default();
    let result = run_phases(spec, &agents, &reporter, &mut report).await;
    reporter.event(&Event::Done {
        ok: result.is_ok(),
        changed: report.changed,
        unchanged: report.unchanged,
        elapsed_ms: started.elapsed().as_millis(),
    });
    result.map(|()| report)
}

async fn run_phases(
    spec: &Spec,
    agents: &Arc<Agents>,
    reporter: &Arc<dyn Reporter>,
    report: &mut ApplyReport,
) -> Result<(), ApplyError> {
    let mut facts = facts(agents, spec, reporter.as_ref()).await?;
    let view = pool_view::read(spec, agents, &facts).await.map_err(MigrateError::from)?;
    migrate::removed_servers(spec, &view).map_err(MigrateError::from)?;
    let mut plans = phases::build(spec, &facts)?;
    let survey = retire::survey(spec, agents, &mut facts, &view).await;
    for warning in survey.warnings(spec) {
        eprintln!("brickyard: apply: warning: {warning}");
    }
    plans.insert(0, survey.phase(spec));
    let converged = if pool_is_up(spec, &facts) { converged_phases(agents, &plans).await } else { 0 };
    for (index, plan) in plans.into_iter().enumerate() {
        if plan.steps.iter().all(|s| s.is_empty()) {
            continue;
        }
        let phase = plan.phase.to_string();
        let all: Vec<(String, usize)> = plan.steps.iter().flatten().map(|b| (b.host.clone(), b.tasks.len())).collect();
        reporter.event(&Event::PhaseStarted { phase: phase.clone(), hosts: all });
        if index < converged {
            report.unchanged += report_unchanged(&phase, &plan, reporter.as_ref());
            finish_phase(&phase, Vec::new(), reporter.as_ref())?;
            continue;
        }
        let mut failures = Vec::new();
        for step in plan.steps {
            let mut set = tokio::task::JoinSet::new();
            for batch in step {
                let (agents, reporter, phase) = (agents.clone(), reporter.clone(), phase.clone());
                set.spawn(async move { apply_batch(&agents, &phase, batch, reporter.as_ref()).await });
            }
            while let Some(joined) = set.join_next().await {
                let outcome = joined.expect("apply task panicked");
                report.changed += outcome.changed;
                report.unchanged += outcome.unchanged;
                failures.extend(outcome.failure);
            }
            if !failures.is_empty() {
                break;
            }
        }
        finish_phase(&phase, failures, reporter.as_ref())?;
    }
    Ok(())
}

/// Whether every server's glusterd already runs: then the pool is probably converged and
/// checking all phases at once (one `Plan` round, hosts and phases in parallel) is cheaper than
/// applying them one after the other. A fresh pool skips that round.
fn pool_is_up(spec: &Spec, facts: &BTreeMap<String, v1::Facts>) -> bool {
    !spec.servers.is_empty() && spec.servers.iter().all(|s| facts.get(&s.name).is_some_and(|f| f.glusterd_running))
}

/// How many leading phases have nothing to do, by asking every agent's `Plan` for every
/// batch at once. Any change, refusal or error ends the run of converged phases (apply then
/// re-checks from there, as always).
async fn converged_phases(agents: &Arc<Agents>, plans: &[PhasePlan]) -> usize {
    let mut set = tokio::task::JoinSet::new();
    for (index, plan) in plans.iter().enumerate() {
        for batch in plan.steps.iter().flatten() {
            let (agents, host, tasks) = (agents.clone(), batch.host.clone(), batch.tasks.clone());
            set.spawn(async move {
                let unchanged = match agents.plan(&host, tasks).await {
                    Ok(report) => report.verdicts.iter().all(|v| matches!(v.verdict, Some(Verdict::Unchanged(_)))),
                    Err(_) => false,
                };
                (index, unchanged)
            });
        }
    }
    let mut first_pending = plans.len();
    while let Some(joined) = set.join_next().await {
        let (index, unchanged) = joined.expect("plan task panicked");
        if !unchanged {
            first_pending = first_pending.min(index);
        }
    }
    first_pending
}

/// Reports every task of a converged phase as unchanged; returns how many there were.
fn report_unchanged(phase: &str, plan: &PhasePlan, reporter: &dyn Reporter) -> usize {
    let mut count = 0;
    for batch in plan.steps.iter().flatten() {
        for task in &batch.tasks {
            reporter.event(&Event::TaskDone {
                phase: phase.to_owned(),
                host: batch.host.clone(),
                task: task.id.clone(),
                status: TaskStatus::Unchanged,
                changes: Vec::new(),
                error: None,
            });
        }
        count += batch.tasks.len();
        reporter.event(&Event::HostDone {
            phase: phase.to_owned(),
            host: batch.host.clone(),
            changed: 0,
            unchanged: batch.tasks.len(),
            error: None,
        });
    }
    count
}

/// Applies one host's batch outside the phases (`brickyard destroy`).
pub(crate) async fn apply_single(
    agents: &Agents,
    phase: &str,
    batch: HostBatch,
    reporter: &dyn Reporter,
) -> Result<(), HostFailure> {
    apply_batch(agents, phase, batch, reporter).await.failure.map_or(Ok(()), Err)
}

/// Streams one host's batch through `Apply`, reporting each task event.
async fn apply_batch(agents: &Agents, phase: &str, batch: HostBatch, reporter: &dyn Reporter) -> HostOutcome {
    let host = batch.host.clone();
    let mut outcome = HostOutcome::default();
    let result = stream_batch(agents, phase, batch, reporter, &mut outcome).await;
    if let Err(failure) = result {
        outcome.failure = Some(failure);
    }
    reporter.event(&Event::HostDone {
        phase: phase.to_owned(),
        host,
        changed: outcome.changed,
        unchanged: outcome.unchanged,
        error: outcome.failure.as_ref().map(|f| match &f.task {
            Some(task) => format!("{task}: {}", f.error),
            None => f.error.clone(),
        }),
    });
    outcome
}

async fn stream_batch(
    agents: &Agents,
    phase: &str,
    batch: HostBatch,
    reporter: &dyn Reporter,
    outcome: &mut HostOutcome,
) -> Result<(), HostFailure> {
    let host = batch.host.clone();
    let expected = batch.tasks.len();
    let fail = |task: Option<String>, error: String| HostFailure { host: host.clone(), task, error };
    let mut client = agents.client(&host).await.map_err(|e| fail(None, e.to_string()))?;
    let mut stream = client
        .apply(v1::TaskBatch { tasks: batch.tasks })
        .await
        .map_err(|s| fail(None, AgentError::rpc(&host, "Apply", s).to_string()))?
        .into_inner();
    let mut current: Option<String> = None;
    let mut done = 0;
    let mut failure = None;
    while let Some(item) = stream.next().await {
        let event = item.map_err(|s| fail(current.clone(), AgentError::rpc(&host, "Apply", s).to_string()))?;
        let task = event.id;
        let (status, changes, error) = match event.event {
            Some(AgentEvent::Started(_)) => {
                reporter.event(&Event::TaskStarted { phase: phase.to_owned(), host: host.clone(), task: task.clone() });
                current = Some(task);
                continue;
            }
            Some(AgentEvent::Progress(p)) => {
                reporter.event(&Event::progress(phase, &host, &task, p));
                continue;
            }
            Some(AgentEvent::Unchanged(_)) => (TaskStatus::Unchanged, Vec::new(), None),
            Some(AgentEvent::Changed(c)) => (TaskStatus::Changed, c.changes, None),
            Some(AgentEvent::Failed(e)) => (TaskStatus::Failed, Vec::new(), Some(task_error(&e))),
            Some(AgentEvent::Skipped(e)) => (TaskStatus::Skipped, Vec::new(), Some(e.message)),
            None => continue,
        };
        done += 1;
        current = None;
        match status {
            TaskStatus::Unchanged => outcome.unchanged += 1,
            TaskStatus::Changed => outcome.changed += 1,
            TaskStatus::Failed => failure = Some(fail(Some(task.clone()), error.clone().unwrap_or_default())),
            TaskStatus::Skipped => {}
        }
        reporter.event(&Event::TaskDone { phase: phase.to_owned(), host: host.clone(), task, status, changes, error });
    }
    if let Some(failure) = failure {
        return Err(failure);
    }
    if done < expected {
        return Err(fail(current, format!("the agent's Apply stream ended after {done} of {expected} tasks")));
    }
    Ok(())
}
