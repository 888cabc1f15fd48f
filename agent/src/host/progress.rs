//! A running task's progress lines (e.g. a heal's entries still pending), for whoever runs the
//! task: the RPC layer puts a sink around each task of an `Apply` ([`scoped`]); without one
//! (plan, unit tests) a report is only logged.

use std::future::Future;
use std::sync::Arc;

/// Where progress lines go.
pub type Sink = Arc<dyn Fn(String) + Send + Sync>;

tokio::task_local! {
    static SINK: Sink;
}

/// Runs `task` with its [`report`]s going to `sink`.
pub async fn scoped<F: Future>(sink: Sink, task: F) -> F::Output {
    SINK.scope(sink, task).await
}

/// Reports one progress line of the running task.
pub fn report(message: impl Into<String>) {
    let message = message.into();
    tracing::info!(progress = %message);
    let _ = SINK.try_with(|sink| sink(message));
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
        scoped(Arc::new(move |m| into.lock().unwrap().push(m)), async { report("3 pending") }).await;
        report("after the scope");
        assert_eq!(*seen.lock().unwrap(), ["3 pending"]);
    }
}
