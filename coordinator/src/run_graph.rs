//! Runs a task graph (`crate::graph`): every node whose needs all succeeded starts at once
//! (a `JoinSet`; client mounts up to `graph::MOUNTS_AT_ONCE`), through the `apply` function it
//! is given; a node whose needs failed or did
//! not run is not run, naming what it needed; all the others finish. Nodes found converged
//! beforehand are reported unchanged without running. Emits the node events and, as the nodes
//! of a phase settle, the phase and host events (`crate::progress`). Knows no agent: apply
//! passes the function that streams a node's batch.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::time::Instant;

use crate::graph::{Graph, Node, NodeId, MOUNTS_AT_ONCE};
use crate::phases::Phase;
use crate::progress::{Event, Reporter, TaskStatus, NOT_RUN};

/// What one node's batch came to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeOutcome {
    pub changed: usize,
    pub unchanged: usize,
    pub error: Option<String>,
}

/// A node that failed or did not run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeFailure {
    pub phase: Phase,
    pub node: String,
    pub host: String,
    /// The failure, or `not run: needs X on HOST, which failed`.
    pub error: String,
}

impl NodeFailure {
    pub fn not_run(&self) -> bool {
        self.error.starts_with(NOT_RUN)
    }
}

impl fmt::Display for NodeFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = if self.not_run() { "not run" } else { "failed" };
        write!(f, "phase {} {what} on {}: {}: {}", self.phase, self.host, self.node, self.error)
    }
}

/// What a whole run came to: counts, and every node that failed or did not run (in the order
/// they ended).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GraphRun {
    pub changed: usize,
    pub unchanged: usize,
    pub failures: Vec<NodeFailure>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Waiting,
    Running,
    Succeeded,
    /// Failed, or not run: the node whose failure stopped it (itself when it failed).
    Stopped(NodeId),
}

/// The phase and host events: a phase starts with its first node and ends with its last; a
/// host's part of a phase ends with its last node there.
struct Tally<'a> {
    reporter: &'a dyn Reporter,
    phases: BTreeMap<Phase, PhaseTally>,
    hosts: BTreeMap<(Phase, String), HostTally>,
}

/// A phase: its hosts with their task counts (in order of first appearance), its nodes not
/// settled yet, whether it was reported started.
#[derive(Default)]
struct PhaseTally {
    hosts: Vec<(String, usize)>,
    pending: usize,
    started: bool,
}

/// A host's part of a phase: nodes not settled yet, counts, errors.
#[derive(Default)]
struct HostTally {
    pending: usize,
    changed: usize,
    unchanged: usize,
    errors: Vec<String>,
}

impl<'a> Tally<'a> {
    fn new(graph: &Graph, reporter: &'a dyn Reporter) -> Self {
        let mut tally = Tally { reporter, phases: BTreeMap::new(), hosts: BTreeMap::new() };
        for node in &graph.nodes {
            let phase = tally.phases.entry(node.phase).or_default();
            phase.pending += 1;
            match phase.hosts.iter_mut().find(|(h, _)| *h == node.host) {
                Some((_, tasks)) => *tasks += node.tasks.len(),
                None => phase.hosts.push((node.host.clone(), node.tasks.len())),
            }
            tally.hosts.entry((node.phase, node.host.clone())).or_default().pending += 1;
        }
        tally
    }

    /// A node of `phase` starts or settles: the phase starts with the first one.
    fn touch(&mut self, phase: Phase) {
        let tally = self.phases.get_mut(&phase).expect("phase of a node");
        if !std::mem::replace(&mut tally.started, true) {
            self.reporter.event(&Event::PhaseStarted { phase: phase.to_string(), hosts: tally.hosts.clone() });
        }
    }

    fn settle(&mut self, node: &Node, outcome: &NodeOutcome) {
        self.touch(node.phase);
        let host = self.hosts.get_mut(&(node.phase, node.host.clone())).expect("host of a node");
        host.pending -= 1;
        host.changed += outcome.changed;
        host.unchanged += outcome.unchanged;
        host.errors.extend(outcome.error.iter().map(|e| format!("{}: {e}", node.name)));
        if host.pending == 0 {
            self.reporter.event(&Event::HostDone {
                phase: node.phase.to_string(),
                host: node.host.clone(),
                changed: host.changed,
                unchanged: host.unchanged,
                error: (!host.errors.is_empty()).then(|| host.errors.join("; ")),
            });
        }
        let phase = self.phases.get_mut(&node.phase).expect("phase of a node");
        phase.pending -= 1;
        if phase.pending == 0 {
            let failed_hosts: Vec<String> = self
                .hosts
                .iter()
                .filter(|((phase, _), host)| *phase == node.phase && !host.errors.is_empty())
                .map(|((_, host), _)| host.clone())
                .collect();
            self.reporter.event(&Event::PhaseDone {
                phase: node.phase.to_string(),
                ok: failed_hosts.is_empty(),
                failed_hosts,
            });
        }
    }
}

/// Runs `graph`: `converged[id]` nodes are reported unchanged, the others go through `apply`
/// as soon as everything they need succeeded.
pub async fn run<F, Fut>(graph: &Graph, converged: &[bool], reporter: &dyn Reporter, apply: F) -> GraphRun
where
    F: Fn(&Node) -> Fut,
    Fut: Future<Output = NodeOutcome> + Send + 'static,
{
    let started = Instant::now();
    let at_ms = || started.elapsed().as_millis();
    let mut state = vec![State::Waiting; graph.nodes.len()];
    let mut tally = Tally::new(graph, reporter);
    let mut run = GraphRun::default();
    let mut set = tokio::task::JoinSet::new();
    let mut mounting = 0;
    loop {
        // Ids are in dependency order: one pass settles every cascade.
        for node in &graph.nodes {
            if state[node.id] != State::Waiting {
                continue;
            }
            let stopped = node.needs.iter().find_map(|&need| match state[need] {
                State::Stopped(cause) => Some((need, cause)),
                _ => None,
            });
            if let Some((need, cause)) = stopped {
                state[node.id] = State::Stopped(cause);
                let need = &graph.nodes[need];
                let error = if need.id == cause {
                    format!("{NOT_RUN}needs {need}, which failed")
                } else {
                    format!("{NOT_RUN}needs {need}, which did not run ({} failed)", graph.nodes[cause])
                };
                let outcome = NodeOutcome { error: Some(error), ..Default::default() };
                node_done(node, &outcome, at_ms(), &mut tally, &mut run);
                continue;
            }
            if !node.needs.iter().all(|&need| state[need] == State::Succeeded) {
                continue;
            }
            let converged_node = converged.get(node.id).copied().unwrap_or(false);
            if node.mount && !converged_node && mounting >= MOUNTS_AT_ONCE {
                continue; // waits for a running mount to end
            }
            tally.touch(node.phase);
            reporter.event(&Event::NodeStarted {
                phase: node.phase.to_string(),
                node: node.name.clone(),
                host: node.host.clone(),
                tasks: node.tasks.len(),
                waited_for: node.needs.iter().map(|&n| graph.nodes[n].to_string()).collect(),
                at_ms: at_ms(),
            });
            if converged_node {
                state[node.id] = State::Succeeded;
                let outcome = report_unchanged(node, reporter);
                node_done(node, &outcome, at_ms(), &mut tally, &mut run);
            } else {
                state[node.id] = State::Running;
                mounting += usize::from(node.mount);
                let (id, work) = (node.id, apply(node));
                set.spawn(async move { (id, work.await) });
            }
        }
        let Some(joined) = set.join_next().await else { break };
        let (id, outcome) = joined.expect("node task panicked");
        mounting -= usize::from(graph.nodes[id].mount);
        state[id] = if outcome.error.is_some() { State::Stopped(id) } else { State::Succeeded };
        node_done(&graph.nodes[id], &outcome, at_ms(), &mut tally, &mut run);
    }
    run
}

fn node_done(node: &Node, outcome: &NodeOutcome, at_ms: u128, tally: &mut Tally<'_>, run: &mut GraphRun) {
    tally.reporter.event(&Event::NodeDone {
        phase: node.phase.to_string(),
        node: node.name.clone(),
        host: node.host.clone(),
        changed: outcome.changed,
        unchanged: outcome.unchanged,
        error: outcome.error.clone(),
        at_ms,
    });
    tally.settle(node, outcome);
    run.changed += outcome.changed;
    run.unchanged += outcome.unchanged;
    if let Some(error) = &outcome.error {
        run.failures.push(NodeFailure {
            phase: node.phase,
            node: node.name.clone(),
            host: node.host.clone(),
            error: error.clone(),
        });
    }
}

/// Reports every task of a converged node as unchanged.
fn report_unchanged(node: &Node, reporter: &dyn Reporter) -> NodeOutcome {
    for task in &node.tasks {
        reporter.event(&Event::TaskDone {
            phase: node.phase.to_string(),
            node: node.name.clone(),
            host: node.host.clone(),
            task: task.id.clone(),
            status: TaskStatus::Unchanged,
            changes: Vec::new(),
            error: None,
        });
    }
    NodeOutcome { unchanged: node.tasks.len(), ..Default::default() }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use brickyard_proto::v1;

    use super::*;

    /// Records every event.
    #[derive(Default)]
    struct Recorder(Mutex<Vec<Event>>);

    impl Reporter for Recorder {
        fn event(&self, event: &Event) {
            self.0.lock().unwrap().push(event.clone());
        }
    }

    /// a (glusterd s1) and b (disk s1) need nothing; c (probe s1) needs a; d (volume s1) needs
    /// b and c; e (prep c1) needs nothing; f (mount c1) needs d and e; g (prep c2) needs nothing.
    fn graph() -> Graph {
        let node = |id: NodeId, phase, name: &str, host: &str, needs: Vec<NodeId>| Node {
            id,
            phase,
            name: name.into(),
            host: host.into(),
            tasks: vec![v1::Task { id: format!("{name} task"), kind: None }],
            needs,
            mount: name.starts_with("mount"),
        };
        Graph {
            nodes: vec![
                node(0, Phase::Servers, "glusterd", "s1", vec![]),
                node(1, Phase::Servers, "disk", "s1", vec![]),
                node(2, Phase::Pool, "probe", "s1", vec![0]),
                node(3, Phase::Volumes, "volume v", "s1", vec![1, 2]),
                node(4, Phase::Clients, "prep", "c1", vec![]),
                node(5, Phase::Clients, "mount v", "c1", vec![3, 4]),
                node(6, Phase::Clients, "prep", "c2", vec![]),
            ],
        }
    }

    /// Runs `graph`, failing the nodes named in `failing`; which nodes ran, in order, and the run.
    async fn run_failing(graph: &Graph, converged: &[bool], failing: &[&str]) -> (Vec<String>, GraphRun, Vec<Event>) {
        let ran = Arc::new(Mutex::new(Vec::new()));
        let recorder = Recorder::default();
        let failing: Vec<String> = failing.iter().map(|s| s.to_string()).collect();
        let result = run(graph, converged, &recorder, |node| {
            let (ran, name, fails) = (ran.clone(), node.to_string(), failing.contains(&node.to_string()));
            async move {
                tokio::task::yield_now().await;
                ran.lock().unwrap().push(name);
                if fails {
                    NodeOutcome { error: Some("boom".into()), ..Default::default() }
                } else {
                    NodeOutcome { changed: 1, ..Default::default() }
                }
            }
        })
        .await;
        let ran = ran.lock().unwrap().clone();
        (ran, result, recorder.0.into_inner().unwrap())
    }

    #[tokio::test]
    async fn a_failure_stops_only_its_dependents_and_every_failure_is_reported() {
        let graph = graph();
        let (ran, result, events) = run_failing(&graph, &[], &["disk on s1", "prep on c2"]).await;
        let mut ran_sorted = ran.clone();
        ran_sorted.sort();
        assert_eq!(ran_sorted, ["disk on s1", "glusterd on s1", "prep on c1", "prep on c2", "probe on s1"]);
        let mut failures: Vec<String> = result.failures.iter().map(|f| f.to_string()).collect();
        failures.sort();
        assert_eq!(
            failures,
            [
                "phase clients failed on c2: prep: boom",
                "phase clients not run on c1: mount v: not run: needs volume v on s1, which did not run (disk on s1 \
                 failed)",
                "phase servers failed on s1: disk: boom",
                "phase volumes not run on s1: volume v: not run: needs disk on s1, which failed",
            ]
        );
        assert_eq!((result.changed, result.unchanged), (3, 0));
        // The probe finished although the disk failed; the phases ended with their last node.
        let phase_done: Vec<(String, bool)> = events
            .iter()
            .filter_map(|e| match e {
                Event::PhaseDone { phase, ok, .. } => Some((phase.clone(), *ok)),
                _ => None,
            })
            .collect();
        assert!(phase_done.contains(&("pool".into(), true)), "{phase_done:?}");
        assert!(phase_done.contains(&("servers".into(), false)), "{phase_done:?}");
        assert_eq!(phase_done.len(), 4);
    }

    #[tokio::test]
    async fn a_node_starts_when_its_needs_are_done_and_says_what_it_waited_for() {
        let graph = graph();
        let (ran, result, events) = run_failing(&graph, &[], &[]).await;
        assert!(result.failures.is_empty());
        let position = |name: &str| ran.iter().position(|r| r == name).unwrap();
        assert!(position("probe on s1") > position("glusterd on s1"));
        assert!(position("mount v on c1") > position("volume v on s1"));
        assert!(position("mount v on c1") > position("prep on c1"));
        let waited: Vec<&Vec<String>> = events
            .iter()
            .filter_map(|e| match e {
                Event::NodeStarted { node, waited_for, .. } if node == "mount v" => Some(waited_for),
                _ => None,
            })
            .collect();
        assert_eq!(waited, [&vec!["volume v on s1".to_owned(), "prep on c1".to_owned()]]);
        // One host_done per phase and host, after its last node: clients on c1 has two nodes.
        let c1: Vec<&Event> = events
            .iter()
            .filter(|e| matches!(e, Event::HostDone { phase, host, .. } if phase == "clients" && host == "c1"))
            .collect();
        assert_eq!(
            c1,
            [&Event::HostDone { phase: "clients".into(), host: "c1".into(), changed: 2, unchanged: 0, error: None }]
        );
    }

    #[tokio::test]
    async fn converged_nodes_are_reported_unchanged_without_running() {
        let graph = graph();
        let converged = [true, true, true, false, true, false, true];
        let (ran, result, events) = run_failing(&graph, &converged, &[]).await;
        let mut ran = ran;
        ran.sort();
        assert_eq!(ran, ["mount v on c1", "volume v on s1"]);
        assert_eq!((result.changed, result.unchanged), (2, 5));
        let unchanged =
            events.iter().filter(|e| matches!(e, Event::TaskDone { status: TaskStatus::Unchanged, .. })).count();
        assert_eq!(unchanged, 5);
    }

    /// However many clients mount at once, at most `MOUNTS_AT_ONCE` mounts run at a time, and
    /// every one of them runs.
    #[tokio::test]
    async fn mounts_run_at_most_so_many_at_once() {
        let mut graph = Graph::default();
        for id in 0..MOUNTS_AT_ONCE * 2 + 3 {
            graph.nodes.push(Node {
                id,
                phase: Phase::Clients,
                name: "mount v".into(),
                host: format!("c{id}"),
                tasks: vec![v1::Task { id: "mount v".into(), kind: None }],
                needs: Vec::new(),
                mount: true,
            });
        }
        let (running, most) = (Arc::new(Mutex::new(0)), Arc::new(Mutex::new(0)));
        let result = run(&graph, &[], &Recorder::default(), |_| {
            let (running, most) = (running.clone(), most.clone());
            async move {
                let now = {
                    let mut running = running.lock().unwrap();
                    *running += 1;
                    *running
                };
                {
                    let mut most = most.lock().unwrap();
                    *most = now.max(*most);
                }
                tokio::task::yield_now().await;
                *running.lock().unwrap() -= 1;
                NodeOutcome { changed: 1, ..Default::default() }
            }
        })
        .await;
        assert_eq!(result.changed, graph.nodes.len());
        assert_eq!(*most.lock().unwrap(), MOUNTS_AT_ONCE);
    }
}
