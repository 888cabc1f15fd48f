//! Waiting for the kernel or a process to reach a state: poll with a deadline, never a fixed
//! sleep. The timeout error says what was still awaited.

use std::time::{Duration, Instant};

use super::LabError;

/// How often a condition is re-checked.
const INTERVAL: Duration = Duration::from_millis(20);

/// Calls `pending` until it returns `Ok(None)` (the state is reached) or an error. While it
/// returns `Some(what)`, waits; past `deadline` fails with `LabError::Timeout` naming the last
/// `what`.
pub fn until(deadline: Instant, mut pending: impl FnMut() -> Result<Option<String>, LabError>) -> Result<(), LabError> {
    loop {
        let Some(what) = pending()? else {
            return Ok(());
        };
        if Instant::now() > deadline {
            return Err(LabError::Timeout { what });
        }
        std::thread::sleep(INTERVAL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_when_reached_and_names_what_timed_out() {
        let mut calls = 0;
        until(Instant::now() + Duration::from_secs(5), || {
            calls += 1;
            Ok((calls < 3).then(|| "three calls".to_owned()))
        })
        .unwrap();
        assert_eq!(calls, 3);
        let err = until(Instant::now(), || Ok(Some("the moon".into()))).unwrap_err();
        assert!(err.to_string().contains("the moon"), "{err}");
    }
}
