//! `brickyard apply`: facts from every host, then the phases' batches (`crate::phases`) as a
//! task graph (`crate::graph`) run by `crate::run_graph`: each node — one host's batch, through
//! its agent's streaming `Apply` RPC — starts as soon as the nodes it needs succeeded. A failure
//! stops only what needs it; everything else finishes, and every failure is reported; a re-run
//! continues from what is done (every task is idempotent). When every server's glusterd already
//! runs, every node is first checked at once (`Plan`) and the nodes with nothing to do, nor
//! anything to do before them, are not applied again, so a converged re-apply costs one parallel
//! round of checks. Clients that left the spec give up their mounts before the volumes change
//! (`crate::retire`), and what cannot be retired or is no longer managed is reported on stderr.
//! Changes hosts only through their agents.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use brickyard_proto::v1;
use brickyard_proto::v1::task_event::Event as AgentEvent;
use brickyard_proto::v1::task_verdict::Verdict;
use tokio_stream::StreamExt;

use crate::agents::{task_error, AgentError, Agents};
use crate::graph::Graph;
use crate::migrate::{self, MigrateError};
use crate::phases::{self, HostBatch, PhaseError};
use crate::pool_view;
use crate::progress::{Event, Reporter, TaskStatus};
use crate::retire;
use crate::run_graph::{self, NodeFailure, NodeOutcome};
use crate::spec::Spec;

/// Why a host's batch (of the facts phase, a node, or `destroy`) failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFailure {
    pub host: String,
    /// The failing task's id (None: the agent could not be reached or the stream broke
    /// between tasks).
    pub task: Option<String>,
    pub error: String,
}

impl HostFailure {
    /// The failure without the host: `task "T": error`, or the agent's error.
    pub fn cause(&self) -> String {
        match &self.task {
            Some(task) => format!("task {task:?}: {}", self.error),
            None => self.error.clone(),
        }
    }
}

impl fmt::Display for HostFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.host, self.cause())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("phase {phase} failed; stopped before the next phase:{}", failures.iter().map(|f| format!("\n  {f}")).collect::<String>())]
    Phase { phase: String, failures: Vec<HostFailure> },
    /// Nodes of the task graph that failed or did not run; everything else finished.
    #[error("apply failed; what did not need the failures finished:{}", failures.iter().map(|f| format!("\n  {f}")).collect::<String>())]
    Nodes { failures: Vec<NodeFailure> },
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

/// What one host did with one batch.
#[derive(Debug, Default)]
struct HostOutcome {
    changed: usize,
    unchanged: usize,
    failure: Option<HostFailure>,
}

/// The facts phase: every host's facts, and the pool view read beside them; any host that does
/// not answer fails the phase.
async fn facts_and_view(
    agents: &Arc<Agents>,
    spec: &Spec,
    reporter: &dyn Reporter,
) -> Result<(BTreeMap<String, v1::Facts>, v1::GlusterStatus), ApplyError> {
    let hosts = spec.hosts();
    let phase = "facts".to_owned();
    reporter.event(&Event::PhaseStarted {
        phase: phase.clone(),
        hosts: hosts.iter().map(|h| (h.name.clone(), 0)).collect(),
    });
    let (answers, view) = pool_view::read_with_facts(spec, agents).await;
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
    Ok((facts, view.map_err(MigrateError::from)?))
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
    let result = converge(spec, &agents, &reporter, &mut report).await;
    reporter.event(&Event::Done {
        ok: result.is_ok(),
        changed: report.changed,
        unchanged: report.unchanged,
        elapsed_ms: started.elapsed().as_millis(),
    });
    result.map(|()| report)
}

async fn converge(
    spec: &Spec,
    agents: &Arc<Agents>,
    reporter: &Arc<dyn Reporter>,
    report: &mut ApplyReport,
) -> Result<(), ApplyError> {
    let (mut facts, view) = facts_and_view(agents, spec, reporter.as_ref()).await?;
    migrate::removed_servers(spec, &view).map_err(MigrateError::from)?;
    let mut plans = phases::build(spec, &facts)?;
    let survey = retire::survey(spec, agents, &mut facts, &view).await;
    for warning in survey.warnings(spec) {
        eprintln!("brickyard: apply: warning: {warning}");
    }
    plans.insert(0, survey.phase(spec));
    let graph = Graph::build(spec, plans);
    let converged =
        if pool_is_up(spec, &facts) { converged_nodes(agents, &graph).await } else { vec![false; graph.nodes.len()] };
    let run = run_graph::run(&graph, &converged, reporter.as_ref(), |node| {
        let (agents, reporter) = (agents.clone(), reporter.clone());
        let (phase, name) = (node.phase.to_string(), node.name.clone());
        let batch = HostBatch { host: node.host.clone(), tasks: node.tasks.clone() };
        async move {
            let outcome = apply_batch(&agents, &phase, &name, batch, reporter.as_ref()).await;
            NodeOutcome {
                changed: outcome.changed,
                unchanged: outcome.unchanged,
                error: outcome.failure.as_ref().map(HostFailure::cause),
            }
        }
    })
    .await;
    report.changed += run.changed;
    report.unchanged += run.unchanged;
    if run.failures.is_empty() {
        Ok(())
    } else {
        Err(ApplyError::Nodes { failures: run.failures })
    }
}

/// Whether every server's glusterd already runs: then the pool is probably converged and
/// checking every node at once (one `Plan` round, all hosts and nodes in parallel) is cheaper
/// than applying them. A fresh pool skips that round.
fn pool_is_up(spec: &Spec, facts: &BTreeMap<String, v1::Facts>) -> bool {
    !spec.servers.is_empty() && spec.servers.iter().all(|s| facts.get(&s.name).is_some_and(|f| f.glusterd_running))
}

/// Which nodes have nothing to do, by asking every agent's `Plan` for every node at once: a
/// node is converged when its own plan and the plans of every node it needs, directly or not,
/// are all unchanged. Any change, refusal or error leaves the node (and its dependents) to be
/// applied, which re-checks as always.
async fn converged_nodes(agents: &Arc<Agents>, graph: &Graph) -> Vec<bool> {
    let mut set = tokio::task::JoinSet::new();
    for node in &graph.nodes {
        let (agents, id, host, tasks) = (agents.clone(), node.id, node.host.clone(), node.tasks.clone());
        set.spawn(async move {
            let unchanged = match agents.plan(&host, tasks).await {
                Ok(report) => report.verdicts.iter().all(|v| matches!(v.verdict, Some(Verdict::Unchanged(_)))),
                Err(_) => false,
            };
            (id, unchanged)
        });
    }
    let mut converged = vec![false; graph.nodes.len()];
    while let Some(joined) = set.join_next().await {
        let (id, unchanged) = joined.expect("plan task panicked");
        converged[id] = unchanged;
    }
    // Ids are in dependency order: a node's needs are settled before it.
    for node in &graph.nodes {
        converged[node.id] = converged[node.id] && node.needs.iter().all(|&need| converged[need]);
    }
    converged
}

/// Applies one host's batch outside the task graph (`brickyard destroy`), then reports the
/// host done.
pub(crate) async fn apply_single(
    agents: &Agents,
    phase: &str,
    batch: HostBatch,
    reporter: &dyn Reporter,
) -> Result<(), HostFailure> {
    let host = batch.host.clone();
    let outcome = apply_batch(agents, phase, phase, batch, reporter).await;
    reporter.event(&Event::HostDone {
        phase: phase.to_owned(),
        host,
        changed: outcome.changed,
        unchanged: outcome.unchanged,
        error: outcome.failure.as_ref().map(HostFailure::cause),
    });
    outcome.failure.map_or(Ok(()), Err)
}

/// Applies `tasks` on `host` outside any phase and report (`pki rotate`'s gluster roll): the
/// changes they made, or why the first failing one failed.
pub(crate) async fn apply_quietly(agents: &Agents, host: &str, tasks: Vec<v1::Task>) -> Result<Vec<String>, String> {
    let changes = Changes::default();
    let outcome = apply_batch(agents, "", "", HostBatch { host: host.to_owned(), tasks }, &changes).await;
    match outcome.failure {
        Some(failure) => Err(failure.cause()),
        None => Ok(changes.0.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner())),
    }
}

/// A reporter that only keeps the changes of the tasks done.
#[derive(Default)]
struct Changes(std::sync::Mutex<Vec<String>>);

impl Reporter for Changes {
    fn event(&self, event: &Event) {
        if let Event::TaskDone { changes, .. } = event {
            self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).extend(changes.iter().cloned());
        }
    }
}

/// Streams one host's batch (node `node`) through `Apply`, reporting each task event.
async fn apply_batch(
    agents: &Agents,
    phase: &str,
    node: &str,
    batch: HostBatch,
    reporter: &dyn Reporter,
) -> HostOutcome {
    let mut outcome = HostOutcome::default();
    if let Err(failure) = stream_batch(agents, (phase, node), batch, reporter, &mut outcome).await {
        outcome.failure = Some(failure);
    }
    outcome
}

async fn stream_batch(
    agents: &Agents,
    (phase, node): (&str, &str),
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
                reporter.event(&Event::TaskStarted {
                    phase: phase.to_owned(),
                    node: node.to_owned(),
                    host: host.clone(),
                    task: task.clone(),
                });
                current = Some(task);
                continue;
            }
            Some(AgentEvent::Progress(p)) => {
                reporter.event(&Event::progress(phase, node, &host, &task, p));
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
        reporter.event(&Event::TaskDone {
            phase: phase.to_owned(),
            node: node.to_owned(),
            host: host.clone(),
            task,
            status,
            changes,
            error,
        });
    }
    if let Some(failure) = failure {
        return Err(failure);
    }
    if done < expected {
        return Err(fail(current, format!("the agent's Apply stream ended after {done} of {expected} tasks")));
    }
    Ok(())
}
