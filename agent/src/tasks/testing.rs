//! The test every task kind passes (unit tests; `brickyard_tests::agent::converge` is the same
//! over the agent's RPCs): plan → apply → plan-is-empty.

use super::shape::{AnyTask, Check};
use crate::host::Context;

/// The plan has changes, apply (which plans again first) makes changes, and the plan after it
/// has none: the host converged. Returns the first plan and the lines of the changes made.
pub async fn converges(task: &dyn AnyTask, ctx: &Context) -> (Check, Vec<String>) {
    let before = task.check(ctx).await.expect("the first plan");
    assert!(!before.changes.is_empty(), "the first plan has nothing to do: {before:?}");
    let done = task.run(ctx).await.expect("apply");
    assert!(!done.is_empty(), "apply changed nothing, but the plan was {before:?}");
    let after = task.check(ctx).await.expect("the plan after apply");
    assert!(after.changes.is_empty(), "the plan after apply still has changes: {after:?}");
    (before, done)
}
