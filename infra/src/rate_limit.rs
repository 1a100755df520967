//! Sliding-window rate limits whose counters live in Postgres, so every API
//! instance draws on one budget.
//!
//! The sliding-window counter keeps two fixed windows per bucket and weighs
//! the previous one by how much of it still overlaps the sliding window:
//! `estimate = previous × (1 − elapsed/window) + current`. One statement
//! checks and counts atomically (the upsert locks the bucket's row), so
//! concurrent requests on different instances can never overshoot. Refused
//! requests are not counted: a client that waits `Retry-After` gets through.

use sqlx::PgPool;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// At most `max` requests per sliding `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub max: u32,
    pub window: Duration,
}

/// The outcome of one check, with what the `X-RateLimit-*` headers report.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the current fixed window ends and counts start to fall.
    pub reset_secs: u64,
    /// For a refused request: seconds until one would be allowed.
    pub retry_after_secs: u64,
}

#[derive(Debug, Clone)]
pub struct RateLimiter {
    pool: PgPool,
    checks: Arc<AtomicU64>,
}

/// How often (in checks) stale windows are swept.
const SWEEP_EVERY: u64 = 2048;

impl RateLimiter {
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            checks: Arc::default(),
        }
    }

    /// Counts one request against `bucket` if it fits under `limit`.
    pub async fn check(&self, bucket: &str, limit: Limit) -> Result<Decision, sqlx::Error> {
        let window_ms = limit.window.as_millis().max(1) as i64;
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as i64;
        let current_start = now_ms - now_ms % window_ms;
        let elapsed = (now_ms - current_start) as f64 / window_ms as f64;
        let previous_weight = 1.0 - elapsed;
        let (counted, previous, current_before): (Option<i32>, i32, i32) = sqlx::query_as(
            "with previous as (
                 select coalesce((select hits from rate_limit_windows
                                  where bucket = $1 and window_start = $3), 0) as hits
             ), counted as (
                 insert into rate_limit_windows as w (bucket, window_start, hits)
                 select $1, $2, 1 from previous where 1 + previous.hits * $4 <= $5
                 on conflict (bucket, window_start) do update set hits = w.hits + 1
                 where w.hits + 1 + (select hits from previous) * $4 <= $5
                 returning hits
             )
             select (select hits from counted), (select hits from previous),
                    coalesce((select hits from rate_limit_windows
                              where bucket = $1 and window_start = $2), 0)",
        )
        .bind(bucket)
        .bind(current_start)
        .bind(current_start - window_ms)
        .bind(previous_weight)
        .bind(f64::from(limit.max))
        .fetch_one(&self.pool)
        .await?;
        if self
            .checks
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(SWEEP_EVERY)
        {
            self.sweep(now_ms).await;
        }
        let reset_secs = ((current_start + window_ms - now_ms) as f64 / 1000.0).ceil() as u64;
        let decision = match counted {
            Some(current) => {
                let estimate = f64::from(current) + f64::from(previous) * previous_weight;
                Decision {
                    allowed: true,
                    limit: limit.max,
                    remaining: (f64::from(limit.max) - estimate).floor().max(0.0) as u32,
                    reset_secs,
                    retry_after_secs: 0,
                }
            }
            None => Decision {
                allowed: false,
                limit: limit.max,
                remaining: 0,
                reset_secs,
                retry_after_secs: retry_after(
                    limit,
                    f64::from(previous),
                    f64::from(current_before),
                    elapsed,
                ),
            },
        };
        Ok(decision)
    }

    /// Drops windows too old to matter to any limit (a day is beyond all).
    async fn sweep(&self, now_ms: i64) {
        let horizon = now_ms - Duration::from_secs(24 * 3600).as_millis() as i64;
        if let Err(error) = sqlx::query("delete from rate_limit_windows where window_start < $1")
            .bind(horizon)
            .execute(&self.pool)
            .await
        {
            tracing::warn!(%error, "could not sweep old rate-limit windows");
        }
    }
}

/// Seconds until `previous × (1 − f) + current + 1 <= max` holds again.
fn retry_after(limit: Limit, previous: f64, current: f64, elapsed: f64) -> u64 {
    let max = f64::from(limit.max);
    let window = limit.window.as_secs_f64();
    let fraction_to_wait = if current + 1.0 <= max && previous > 0.0 {
        // Within this window, as the previous one's weight fades.
        let needed = 1.0 - (max - current - 1.0) / previous;
        (needed - elapsed).max(0.0)
    } else {
        // The current window becomes the previous one and must fade enough.
        let needed = if current > 0.0 {
            (1.0 - (max - 1.0) / current).max(0.0)
        } else {
            0.0
        };
        (1.0 - elapsed) + needed
    };
    ((fraction_to_wait * window).ceil() as u64).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PER_MINUTE: Limit = Limit {
        max: 10,
        window: Duration::from_secs(60),
    };

    #[test]
    fn a_full_current_window_waits_into_the_next_one() {
        // 10 hits this window, none before, a quarter of the way in: the
        // window must end (45 s) and then fade by 10% (6 s).
        assert_eq!(retry_after(PER_MINUTE, 0.0, 10.0, 0.25), 51);
    }

    #[test]
    fn a_heavy_previous_window_fades_within_this_one() {
        // 10 hits before, 4 now, half way: 4 + 10 × (1 − f) + 1 <= 10 at f = 0.5.
        assert_eq!(retry_after(PER_MINUTE, 10.0, 4.0, 0.4), 6);
    }

    #[test]
    fn the_wait_is_never_zero() {
        assert_eq!(retry_after(PER_MINUTE, 0.0, 0.0, 0.999), 1);
    }
}
