//! A full self-heal, watched to the end: after bricks joined a volume's replica sets (a raised
//! replica count, a replaced brick), `volume heal VOL full` is started — retried while gluster
//! refuses it because a new brick's self-heal daemon is still starting ("Commit failed on
//! gluServer4", seen on gluster 10.3 right after `replace-brick`) — then `heal info summary`
//! is polled until every brick answers with no entry pending. Entries a crawl could not heal
//! yet (a file whose parent directory the new brick did not have when the crawl passed) wait
//! for the self-heal daemon's next index crawl, `cluster.heal-timeout` later (600 s by
//! default; measured: 20 files in a subdirectory held a replace for 632 s): when the pending
//! count has not fallen for [`STALL_LOOKS`] looks (10 s), an index heal (`volume heal VOL`) is started at once.
//! Each look is reported as the task's progress; the deadline error names what was still
//! pending on which brick.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use super::shape::TaskError;
use crate::gluster;
use crate::gluster::heal::{self, Crawl};
use crate::host::{progress, Context};
use brickyard_proto::poll::{self, Look};

/// How long a full heal may take when the task does not say.
pub const DEFAULT_HEAL_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// The longest a task may ask for.
pub const MAX_HEAL_TIMEOUT: Duration = Duration::from_secs(24 * 3600);
/// How long gluster may refuse to start the heal (new self-heal daemons starting).
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Between two looks (short in unit tests, which run on real time).
const START_INTERVAL: Duration = Duration::from_millis(if cfg!(test) { 5 } else { 1000 });
const WATCH_INTERVAL: Duration = START_INTERVAL;
/// How many looks in a row the pending count may stay put before an index heal is started.
pub const STALL_LOOKS: u32 = 10;

/// How a watched heal went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Healed {
    pub elapsed: Duration,
    /// The most entries pending at one look.
    pub most_pending: i64,
}

/// The heal timeout a task asked for (0: the default), bounded.
pub fn timeout(seconds: u32) -> Duration {
    if seconds == 0 {
        DEFAULT_HEAL_TIMEOUT
    } else {
        Duration::from_secs(seconds.into()).min(MAX_HEAL_TIMEOUT)
    }
}

/// Starts a full heal of `volume` and waits, up to `timeout`, until no brick has an entry
/// pending.
pub async fn full_heal(ctx: &Context, volume: &str, timeout: Duration) -> Result<Healed, TaskError> {
    let started = Instant::now();
    poll::until(
        format!("gluster to start a full heal of volume {volume} (`volume heal {volume} full`)"),
        START_TIMEOUT,
        START_INTERVAL,
        || async {
            match heal::start_heal(ctx, volume, Crawl::Full).await {
                Ok(()) => Ok(Look::Done(())),
                Err(gluster::Error::Command(refused)) => Ok(Look::NotYet(refused.to_string())),
                Err(e) => Err(TaskError::from(e)),
            }
        },
    )
    .await?;
    let most_pending = until_healed(ctx, volume, timeout, started, "full heal").await?;
    Ok(Healed { elapsed: started.elapsed(), most_pending })
}

/// Waits, up to `timeout`, until no brick of `volume` has an entry pending (an index heal
/// started whenever none healed for [`STALL_LOOKS`] looks), reporting each look with the time
/// since `started`; the most entries pending at one look. `what` names the wait.
pub async fn until_healed(
    ctx: &Context,
    volume: &str,
    timeout: Duration,
    started: Instant,
    what: &str,
) -> Result<i64, TaskError> {
    let most_pending = AtomicI64::new(0);
    // The lowest pending count seen, and the looks since it last fell.
    let lowest = std::sync::Mutex::new((i64::MAX, 0u32));
    poll::until(
        format!(
            "the {what} of volume {volume} to leave no entry pending (`gluster volume heal {volume} info summary`)"
        ),
        timeout,
        WATCH_INTERVAL,
        || async {
            let summary = heal::heal_summary(ctx, volume).await?;
            let pending = summary.pending();
            most_pending.fetch_max(pending, Ordering::Relaxed);
            let mut line = format!("heal {volume}: {} after {} s", summary.describe(), started.elapsed().as_secs());
            let stalled = {
                let mut lowest = lowest.lock().expect("heal watch state");
                *lowest = if pending < lowest.0 { (pending, 0) } else { (lowest.0, lowest.1 + 1) };
                let stalled = !summary.healed() && lowest.1 >= STALL_LOOKS;
                if stalled {
                    lowest.1 = 0;
                }
                stalled
            };
            if stalled {
                // A refusal here is not fatal: the daemons' own crawls go on, and the deadline holds.
                line += &match heal::start_heal(ctx, volume, Crawl::Index).await {
                    Ok(()) => format!("; none healed in {STALL_LOOKS} looks: index heal started"),
                    Err(e) => format!("; none healed in {STALL_LOOKS} looks: index heal refused ({e})"),
                };
            }
            progress::report(line.clone());
            Ok::<_, TaskError>(if summary.healed() { Look::Done(()) } else { Look::NotYet(line) })
        },
    )
    .await?;
    Ok(most_pending.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gluster::fixture;
    use crate::host::runner::fake::FakeRunner;
    use crate::host::runner::Output;

    const G: &str = "/usr/sbin/gluster --mode=script --xml";

    #[tokio::test]
    async fn a_refused_start_is_retried_then_pending_entries_are_watched_to_zero() {
        let refused = Output { code: Some(1), stdout: String::new(), stderr: fixture("volume-heal-full-failed.txt") };
        let healed = fixture("heal-info-summary-healing.xml");
        let zero = healed
            .replace(
                "<totalNumberOfEntries>171</totalNumberOfEntries>",
                "<totalNumberOfEntries>0</totalNumberOfEntries>",
            )
            .replace(
                "<totalNumberOfEntries>150</totalNumberOfEntries>",
                "<totalNumberOfEntries>0</totalNumberOfEntries>",
            );
        let c = Context::direct(
            FakeRunner::default()
                .expect_output(&format!("{G} volume heal hv full"), refused)
                .expect(&format!("{G} volume heal hv full"), &fixture("volume-heal-full.txt"))
                .expect(&format!("{G} volume heal hv info summary"), &fixture("heal-info-summary-brick-down.xml"))
                .expect(&format!("{G} volume heal hv info summary"), &healed)
                .expect(&format!("{G} volume heal hv info summary"), &zero),
        );
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let into = seen.clone();
        let done = progress::scoped(
            std::sync::Arc::new(move |p: brickyard_proto::v1::TaskProgress| into.lock().unwrap().push(p.message)),
            full_heal(&c, "hv", Duration::from_secs(60)),
        )
        .await
        .unwrap();
        assert_eq!(done.most_pending, 321);
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 3, "{seen:?}");
        assert!(
            seen[0].starts_with("heal hv: 0 entries pending heal (") && seen[0].contains("unreachable"),
            "{seen:?}"
        );
        assert!(seen[1].starts_with("heal hv: 321 entries pending heal"), "{seen:?}");
    }

    #[tokio::test]
    async fn a_stalled_heal_gets_an_index_heal() {
        let mut runner =
            FakeRunner::default().expect(&format!("{G} volume heal hv full"), &fixture("volume-heal-full.txt"));
        for _ in 0..=STALL_LOOKS {
            runner =
                runner.expect(&format!("{G} volume heal hv info summary"), &fixture("heal-info-summary-healing.xml"));
        }
        let refused = Output { code: Some(1), stdout: String::new(), stderr: fixture("volume-heal-index-failed.txt") };
        let runner = runner
            .expect_output(&format!("{G} volume heal hv"), refused)
            .expect(&format!("{G} volume heal hv info summary"), &fixture("heal-info-summary.xml"));
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let into = seen.clone();
        let done = progress::scoped(
            std::sync::Arc::new(move |p: brickyard_proto::v1::TaskProgress| into.lock().unwrap().push(p.message)),
            full_heal(&Context::direct(runner), "hv", Duration::from_secs(60)),
        )
        .await
        .unwrap();
        assert_eq!(done.most_pending, 321);
        let seen = seen.lock().unwrap();
        let stalled = &seen[STALL_LOOKS as usize];
        assert!(stalled.ends_with("; none healed in 10 looks: index heal refused (/usr/sbin/gluster --mode=script --xml volume heal hv failed (exit status 1): Launching heal operation to perform index self heal on volume hv has been unsuccessful: Glusterd Syncop Mgmt brick op 'Heal' failed. Please check glustershd log file for details.)"), "{stalled}");
        assert!(!seen[STALL_LOOKS as usize - 1].contains("index heal"), "{seen:?}");
    }

    #[tokio::test]
    async fn the_deadline_names_what_is_still_pending() {
        // A zero deadline looks exactly once, however slow the machine (a short one is not
        // a fixed number of looks under load).
        let runner = FakeRunner::default()
            .expect(&format!("{G} volume heal hv full"), &fixture("volume-heal-full.txt"))
            .expect(&format!("{G} volume heal hv info summary"), &fixture("heal-info-summary-healing.xml"));
        let e = full_heal(&Context::direct(runner), "hv", Duration::ZERO).await.unwrap_err();
        assert!(matches!(e, TaskError::Timeout(_)), "{e}");
        let e = e.to_string();
        assert!(e.contains("the full heal of volume hv to leave no entry pending"), "{e}");
        assert!(e.contains("gluServer1:/bricks/b1 171, gluServer2:/bricks/b1 150"), "{e}");
    }

    #[test]
    fn timeouts_are_bounded() {
        assert_eq!(timeout(0), DEFAULT_HEAL_TIMEOUT);
        assert_eq!(timeout(5), Duration::from_secs(5));
        assert_eq!(timeout(u32::MAX), MAX_HEAL_TIMEOUT);
    }
}
