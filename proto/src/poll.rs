//! Waiting for a state (of the host, for the agent; of the pool, for the coordinator), the one
//! way both do it: look, and look again after an interval, until the state is reached, a look
//! fails, or the deadline passes. No fixed sleeps anywhere else. The timeout error says what
//! was awaited, for how long, and what the last look saw.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// What one look found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Look<T> {
    /// The awaited state, with what the caller wants from it.
    Done(T),
    /// Not yet: what is still missing (shown in the timeout error; may be empty).
    NotYet(String),
}

/// The deadline passed before the awaited state was reached.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} (after {after:?}{})", if last.is_empty() { String::new() } else { format!(": {last}") })]
pub struct TimedOut {
    /// What was awaited, e.g. "device node /dev/loop0p1 to appear".
    pub what: String,
    pub after: Duration,
    /// What the last look saw.
    pub last: String,
}

/// A timeout as a message, for callers whose errors are messages.
impl From<TimedOut> for String {
    fn from(timed_out: TimedOut) -> Self {
        timed_out.to_string()
    }
}

/// Looks with `look` every `interval` until it is done (its value), fails (its error) or
/// `timeout` has passed since the first look (a [`TimedOut`] naming `what`). A zero timeout
/// looks once.
pub async fn until<T, E, Fut>(
    what: impl Into<String>,
    timeout: Duration,
    interval: Duration,
    mut look: impl FnMut() -> Fut,
) -> Result<T, E>
where
    Fut: Future<Output = Result<Look<T>, E>>,
    E: From<TimedOut>,
{
    // A timeout too long for the clock (a request's number) has a deadline that never passes.
    let deadline = Instant::now().checked_add(timeout);
    loop {
        match look().await? {
            Look::Done(value) => return Ok(value),
            Look::NotYet(last) if deadline.is_some_and(|d| Instant::now() >= d) => {
                return Err(TimedOut { what: what.into(), after: timeout, last }.into())
            }
            Look::NotYet(_) => tokio::time::sleep(interval).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[derive(Debug, PartialEq, thiserror::Error)]
    enum Error {
        #[error(transparent)]
        TimedOut(#[from] TimedOut),
        #[error("broken")]
        Broken,
    }

    const TICK: Duration = Duration::from_millis(5);

    #[tokio::test]
    async fn looks_until_done_fails_or_times_out() {
        let looks = Cell::new(0);
        let third = until("the third look", Duration::from_secs(10), TICK, || async {
            looks.set(looks.get() + 1);
            Ok::<_, Error>(if looks.get() == 3 { Look::Done(looks.get()) } else { Look::NotYet(String::new()) })
        });
        assert_eq!(third.await, Ok(3));

        let broken = until("nothing", Duration::from_secs(10), TICK, || async { Err::<Look<()>, _>(Error::Broken) });
        assert_eq!(broken.await, Err(Error::Broken));

        let never = until("gs3 to join", Duration::from_millis(20), TICK, || async {
            Ok::<Look<()>, Error>(Look::NotYet("gs3: not in the pool".into()))
        });
        assert_eq!(never.await.unwrap_err().to_string(), "gs3 to join (after 20ms: gs3: not in the pool)");
    }

    #[tokio::test]
    async fn a_zero_timeout_looks_once() {
        let looks = Cell::new(0);
        let once = until("x", Duration::ZERO, Duration::from_secs(3600), || async {
            looks.set(looks.get() + 1);
            Ok::<Look<()>, Error>(Look::NotYet(String::new()))
        });
        assert_eq!(once.await.unwrap_err().to_string(), "x (after 0ns)");
        assert_eq!(looks.get(), 1);
    }

    #[tokio::test]
    async fn a_timeout_beyond_the_clock_waits_without_overflow() {
        let looks = Cell::new(0);
        let done: Result<u32, Error> = until("x", Duration::MAX, TICK, || {
            looks.set(looks.get() + 1);
            let look = if looks.get() < 3 { Look::NotYet(String::new()) } else { Look::Done(7) };
            async move { Ok(look) }
        })
        .await;
        assert_eq!((done, looks.get()), (Ok(7), 3));
    }
}
