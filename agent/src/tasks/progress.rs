//! How a long task reports its progress while `Apply` runs it: the RPC layer runs each task
//! inside [`scope`] with a sink that turns reports into `TaskEvent`s on the apply stream; a
//! task calls [`report`], which does nothing outside such a scope (`Plan`, unit tests).

use std::future::Future;
use std::sync::Arc;

use brickyard_proto::v1;

/// Where reports go.
pub type Sink = Arc<dyn Fn(v1::MigrationProgress) + Send + Sync>;

tokio::task_local! {
    static SINK: Sink;
}

/// Runs `task` with `sink` receiving its reports.
pub async fn scope<T>(sink: Sink, task: impl Future<Output = T>) -> T {
    SINK.scope(sink, task).await
}

/// Reports `progress` to the running apply, if any.
pub fn report(progress: v1::MigrationProgress) {
    let _ = SINK.try_with(|sink| sink(progress));
}
