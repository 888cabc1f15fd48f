//! Driving an agent's task RPCs from a test: build tasks, run `Plan` and `Apply`, and reduce
//! their answers to one line per task (`id: unchanged`, `id: changed [...]`, `id: failed ...`)
//! that assertions can match by prefix.

use brickyard_proto::v1::{self, agent_client::AgentClient, task::Kind};
use tonic::transport::Channel;

/// A connected agent (`brickyard::client::connect`).
pub type Client = AgentClient<Channel>;

pub fn task(id: &str, kind: Kind) -> v1::Task {
    v1::Task { id: id.to_owned(), kind: Some(kind) }
}

/// `EnsureVolume` (task id `volume`) of a replica-2 volume named `name` with one brick at
/// `brick` on each of `servers`, in order, and `options`.
pub fn replica2_volume(
    name: &str,
    servers: &[&brickyard::spec::HostTarget],
    brick: &str,
    options: &[(&str, &str)],
    allow_replica2: bool,
) -> v1::Task {
    task(
        "volume",
        Kind::EnsureVolume(v1::EnsureVolume {
            name: name.into(),
            layout: Some(v1::VolumeLayout {
                r#type: v1::VolumeType::Replicate as i32,
                replica: 2,
                ..Default::default()
            }),
            bricks: servers.iter().map(|s| v1::Brick { host: s.name.clone(), path: brick.into() }).collect(),
            options: options.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            allow_replica2,
            force: false,
            ..Default::default()
        }),
    )
}

/// `id: unchanged` / `id: changed [...]` / `id: failed ...` / `id: skipped ...` per task, from
/// an Apply stream. Panics if the batch is rejected as a whole (an invalid task).
pub async fn apply(client: &mut Client, tasks: &[v1::Task]) -> Vec<String> {
    use v1::task_event::Event;
    let mut stream = client.apply(v1::TaskBatch { tasks: tasks.to_vec() }).await.expect("Apply accepted").into_inner();
    let mut outcomes = Vec::new();
    while let Some(event) = stream.message().await.expect("Apply stream") {
        let outcome = match event.event {
            Some(Event::Started(_) | Event::Progress(_)) | None => continue,
            Some(Event::Unchanged(_)) => "unchanged".to_owned(),
            Some(Event::Changed(c)) => format!("changed {:?}", c.changes),
            Some(Event::Failed(e)) => format!("failed {}", e.message),
            Some(Event::Skipped(e)) => format!("skipped {}", e.message),
        };
        outcomes.push(format!("{}: {outcome}", event.id));
    }
    outcomes
}

/// `id: unchanged` / `id: would change [...]` / `id: refused ...` per task, with its warnings.
pub async fn plan(client: &mut Client, tasks: &[v1::Task]) -> Vec<(String, Vec<String>)> {
    use v1::task_verdict::Verdict;
    let report = client.plan(v1::TaskBatch { tasks: tasks.to_vec() }).await.expect("Plan").into_inner();
    report
        .verdicts
        .into_iter()
        .map(|v| {
            let verdict = match v.verdict {
                Some(Verdict::Unchanged(_)) => "unchanged".to_owned(),
                Some(Verdict::WouldChange(c)) => format!("would change {:?}", c.changes),
                Some(Verdict::Refused(e)) => format!("refused {}", e.message),
                None => "no verdict".to_owned(),
            };
            (format!("{}: {verdict}", v.id), v.warnings)
        })
        .collect()
}

/// Asserts one outcome per expected prefix, in order.
pub fn starts(outcomes: &[String], expected: &[&str]) {
    assert_eq!(outcomes.len(), expected.len(), "{outcomes:#?}");
    for (outcome, prefix) in outcomes.iter().zip(expected) {
        assert!(outcome.starts_with(prefix), "expected {prefix:?}, got {outcome:?}\nall: {outcomes:#?}");
    }
}

/// Check → apply → check: the plan would change every task, apply changes every task, and the
/// plan afterwards finds nothing to do.
pub async fn converge(client: &mut Client, tasks: &[v1::Task]) {
    let expect = |word: &str| tasks.iter().map(|t| format!("{}: {word}", t.id)).collect::<Vec<_>>();
    let verdicts: Vec<String> = plan(client, tasks).await.into_iter().map(|(v, _)| v).collect();
    starts(&verdicts, &expect("would change").iter().map(String::as_str).collect::<Vec<_>>());
    starts(&apply(client, tasks).await, &expect("changed").iter().map(String::as_str).collect::<Vec<_>>());
    let verdicts: Vec<String> = plan(client, tasks).await.into_iter().map(|(v, _)| v).collect();
    starts(&verdicts, &expect("unchanged").iter().map(String::as_str).collect::<Vec<_>>());
}
