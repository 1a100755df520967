//! Keeping a long-running worker alive: the one restart loop the relay,
//! the projection runners and the enrichment worker share.

use std::future::Future;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// First wait before a restart; doubles with each failure in a row.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The longest wait between restarts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// A run that lasts this long counts as a recovery.
const STEADY: Duration = Duration::from_secs(30);
/// While failures go on, how often the log says so again.
const REMIND_EVERY: Duration = Duration::from_secs(60);

/// Runs `work` until it returns `Ok` or `shutdown` is cancelled; a failure
/// starts it again after an exponential backoff (100 ms doubling, at most
/// 5 s). The log tells state changes, not every attempt: the first failure
/// (ERROR), a reminder each minute while it goes on (WARN), and the
/// recovery once a run has lasted 30 s (INFO); restarts in between are
/// DEBUG, so an outage of the database or NATS does not flood the log.
pub async fn restarting<F, Fut>(what: &str, shutdown: &CancellationToken, mut work: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let mut backoff = FIRST_BACKOFF;
    let mut failures = Failures::default();
    while !shutdown.is_cancelled() {
        let run = work();
        tokio::pin!(run);
        let outcome = tokio::select! {
            outcome = &mut run => outcome,
            _ = tokio::time::sleep(STEADY) => {
                if let Some(restarts) = failures.steady() {
                    tracing::info!(restarts, "{what} is running again");
                }
                backoff = FIRST_BACKOFF;
                run.await
            }
        };
        let Err(error) = outcome else { return };
        let error = format!("{error:#}");
        match failures.failed(Instant::now()) {
            Report::First => tracing::error!(error, "{what} failed; restarting"),
            Report::StillFailing { restarts, since } => tracing::warn!(
                error,
                restarts,
                "{what} still failing after {:.0} s; restarting",
                since.as_secs_f64()
            ),
            Report::Quiet => tracing::debug!(error, "{what} failed again; restarting"),
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.cancelled() => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// What the log says about a failure.
#[derive(Debug, PartialEq)]
enum Report {
    /// The first of a run of failures.
    First,
    /// A reminder: failing for `since`, restarted `restarts` times.
    StillFailing { restarts: u32, since: Duration },
    /// Nothing new to tell.
    Quiet,
}

/// The failures since the component last ran steadily, if it has failed.
#[derive(Debug, Default)]
struct Failures {
    current: Option<Outage>,
}

/// A run of failures: since when, how many, when the log last said so.
#[derive(Debug)]
struct Outage {
    since: Instant,
    restarts: u32,
    told: Instant,
}

impl Failures {
    fn failed(&mut self, now: Instant) -> Report {
        let Some(outage) = &mut self.current else {
            self.current = Some(Outage {
                since: now,
                restarts: 1,
                told: now,
            });
            return Report::First;
        };
        outage.restarts += 1;
        if now.duration_since(outage.told) < REMIND_EVERY {
            return Report::Quiet;
        }
        outage.told = now;
        Report::StillFailing {
            restarts: outage.restarts,
            since: now.duration_since(outage.since),
        }
    }

    /// A run lasted: the failures are over; how many restarts they took.
    fn steady(&mut self) -> Option<u32> {
        self.current.take().map(|outage| outage.restarts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn a_failing_worker_is_restarted_until_it_succeeds() {
        let runs = AtomicU32::new(0);
        let shutdown = CancellationToken::new();
        restarting("test", &shutdown, || async {
            if runs.fetch_add(1, Ordering::SeqCst) < 2 {
                anyhow::bail!("not yet")
            }
            Ok(())
        })
        .await;
        assert_eq!(runs.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn an_outage_is_told_when_it_starts_each_minute_it_lasts_and_when_it_ends() {
        let start = Instant::now();
        let at = |seconds: u64| start + Duration::from_secs(seconds);
        let mut failures = Failures::default();
        assert_eq!(failures.failed(at(0)), Report::First);
        for second in 1..60 {
            assert_eq!(failures.failed(at(second)), Report::Quiet, "at {second} s");
        }
        assert_eq!(
            failures.failed(at(60)),
            Report::StillFailing {
                restarts: 61,
                since: Duration::from_secs(60)
            }
        );
        assert_eq!(failures.failed(at(61)), Report::Quiet);
        assert_eq!(failures.steady(), Some(62));
        assert_eq!(failures.steady(), None, "a recovery is told once");
        assert_eq!(failures.failed(at(200)), Report::First, "a new outage");
    }

    #[tokio::test]
    async fn shutdown_stops_the_restarts() {
        let shutdown = CancellationToken::new();
        shutdown.cancel();
        let runs = AtomicU32::new(0);
        restarting("test", &shutdown, || async {
            runs.fetch_add(1, Ordering::SeqCst);
            anyhow::bail!("never")
        })
        .await;
        assert_eq!(runs.load(Ordering::SeqCst), 0);
    }
}
