//! Keeping a long-running worker alive: the one restart loop the relay,
//! the projection runners and the enrichment worker share.

use std::future::Future;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// First wait before a restart; doubles with each failure in a row.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The longest wait between restarts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Runs `work` until it returns `Ok` or `shutdown` is cancelled; each
/// failure is logged (naming `what`) and `work` is started again after an
/// exponential backoff (100 ms doubling, at most 5 s).
pub async fn restarting<F, Fut>(what: &str, shutdown: &CancellationToken, mut work: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let mut backoff = FIRST_BACKOFF;
    while !shutdown.is_cancelled() {
        match work().await {
            Ok(()) => return,
            Err(error) => {
                tracing::error!(error = format!("{error:#}"), "{what} failed; restarting");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.cancelled() => return,
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
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
