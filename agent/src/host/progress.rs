//! A running task's progress (a heal's entries still pending, a rebalance's or drain's counts
//! per node), for whoever runs the task: the RPC layer puts a sink around each task of an
//! `Apply` ([`scoped`]), which turns reports into `TaskEvent`s on the apply stream; without one
//! (plan, unit tests) a report is only logged.

use std::future::Future;
use std::sync::Arc;

use brickyard_proto::v1;

/// Where progress goes.
pub type Sink = Arc<dyn Fn(v1::TaskProgress) + Send + Sync>;

tokio::task_local! {
    static SINK: Sink;
}

/// Runs `task` with its reports going to `sink`.
pub async fn scoped<F: Future>(sink: Sink, task: F) -> F::Output {
    SINK.scope(sink, task).await
}

/// Reports one progress line of the running task.
pub fn report(message: impl Into<String>) {
    send(v1::TaskProgress { message: message.into(), migration: None });
}

/// Reports a rebalance's or drain's counts per node (with a line saying them).
pub fn report_migration(migration: v1::MigrationProgress) {
    send(v1::TaskProgress { message: migration_line(&migration), migration: Some(migration) });
}

fn send(progress: v1::TaskProgress) {
    tracing::info!(progress = %progress.message);
    let _ = SINK.try_with(|sink| sink(progress));
}

/// `rebalance gv: gs1 200 scanned, 56 moved, 0 failures (in progress); gs2 ...`.
fn migration_line(p: &v1::MigrationProgress) -> String {
    let nodes: Vec<String> = p
        .nodes
        .iter()
        .map(|n| {
            format!(
                "{} {} scanned, {} moved, {} failures ({})",
                n.node, n.files_scanned, n.files_moved, n.failures, n.status
            )
        })
        .collect();
    format!("{} {}: {}", p.operation, p.volume, nodes.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[tokio::test]
    async fn reports_reach_the_scoped_sink_only() {
        report("nobody listens");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let into = seen.clone();
        scoped(Arc::new(move |p: v1::TaskProgress| into.lock().unwrap().push(p.message)), async {
            report("3 pending")
        })
        .await;
        report("after the scope");
        assert_eq!(*seen.lock().unwrap(), ["3 pending"]);
    }

    #[test]
    fn migration_lines_count_files_per_node() {
        let p = v1::MigrationProgress {
            volume: "gv".into(),
            operation: "rebalance".into(),
            nodes: vec![v1::MigrationNode {
                node: "gs1".into(),
                status: "in progress".into(),
                files_scanned: 200,
                files_moved: 56,
                ..Default::default()
            }],
        };
        assert_eq!(migration_line(&p), "rebalance gv: gs1 200 scanned, 56 moved, 0 failures (in progress)");
    }
}
