//! Sliding-window rate limits whose counters live in Postgres, so every API
//! instance draws on one budget.
//!
//! The sliding-window counter keeps two fixed windows per bucket and weighs
//! the previous one by how much of it still overlaps the sliding window:
//! `estimate = previous × (1 − elapsed/window) + current`.
//!
//! Instances do not write the shared row per request (one hot row per user,
//! locked by every request, cost a round trip and a row lock each). Each
//! takes a *lease*: it reserves a block of requests from the window in one
//! atomic statement (the SQL function `rate_limit_take`, which never lets
//! the window pass its limit, however many instances ask), serves that many from
//! memory, and comes back for more. A lease's size follows the bucket's
//! pace here (doubling while leases run out within [`LEASE_PACE`], halving
//! otherwise), capped at 1/50 of the limit: so the limit is never exceeded,
//! and at most that fraction per instance can sit reserved but unused
//! (refused early, never admitted late). Limits of 50 or less take one
//! request at a time, exactly as before. A refusal is remembered until the
//! window frees room (`Retry-After`), so refused requests cost nothing
//! either, and they are not counted: a client that waits gets through.

use sqlx::PgPool;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use vcintel_commands::limits::RateLimiting;
pub use vcintel_commands::limits::{Decision, Limit};
use vcintel_commands::CommandError;

/// The most requests one lease may reserve.
fn lease_cap(limit: Limit) -> u32 {
    (limit.max / 50).clamp(1, MAX_LEASE)
}

/// The largest lease, whatever the limit.
const MAX_LEASE: u32 = 1024;
/// A lease used up faster than this asks for a bigger one next time.
const LEASE_PACE: Duration = Duration::from_millis(200);

#[derive(Debug, Clone)]
pub struct RateLimiter {
    pool: PgPool,
    leases: Arc<Mutex<HashMap<String, Lease>>>,
}

/// What this instance holds of one bucket's current window.
#[derive(Debug, Clone, Copy)]
struct Lease {
    window_start: i64,
    /// Reserved here and not yet used.
    left: u32,
    /// The size of the last reservation.
    size: u32,
    reserved_at: Instant,
    /// The windows' shared counts as of the last reservation (ours included).
    previous: i32,
    current: i32,
    /// Refused until this moment (ms since the epoch), if it is later.
    refused_until_ms: i64,
}

/// Leases kept at most; beyond it, idle buckets' leases are dropped.
const MAX_BUCKETS: usize = 100_000;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as i64
}

/// Where `now_ms` falls in a limit's fixed windows.
#[derive(Debug, Clone, Copy)]
struct Window {
    start: i64,
    length: i64,
    /// Fraction of the current window elapsed.
    elapsed: f64,
}

impl Window {
    fn at(limit: Limit, now_ms: i64) -> Self {
        let length = limit.window.as_millis().max(1) as i64;
        let start = now_ms - now_ms % length;
        Window {
            start,
            length,
            elapsed: (now_ms - start) as f64 / length as f64,
        }
    }

    fn previous_weight(self) -> f64 {
        1.0 - self.elapsed
    }

    fn reset_secs(self, now_ms: i64) -> u64 {
        ((self.start + self.length - now_ms) as f64 / 1000.0).ceil() as u64
    }
}

#[async_trait::async_trait]
impl RateLimiting for RateLimiter {
    async fn check(&self, bucket: &str, limit: Limit) -> Result<Decision, CommandError> {
        RateLimiter::check(self, bucket, limit)
            .await
            .map_err(CommandError::store)
    }
}

impl RateLimiter {
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            leases: Arc::default(),
        }
    }

    fn leases(&self) -> std::sync::MutexGuard<'_, HashMap<String, Lease>> {
        // A panic while holding the lock leaves a valid map; keep using it.
        self.leases.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts one request against `bucket` if it fits under `limit`.
    pub async fn check(&self, bucket: &str, limit: Limit) -> Result<Decision, sqlx::Error> {
        let now = now_ms();
        let window = Window::at(limit, now);
        let want = {
            let mut leases = self.leases();
            match leases
                .get_mut(bucket)
                .filter(|l| l.window_start == window.start)
            {
                Some(lease) if lease.left > 0 => {
                    lease.left -= 1;
                    return Ok(allowed(limit, window, now, lease));
                }
                Some(lease) if lease.refused_until_ms > now => {
                    return Ok(refused(limit, window, now, lease.refused_until_ms));
                }
                Some(lease) if lease.reserved_at.elapsed() < LEASE_PACE => {
                    (lease.size * 2).min(lease_cap(limit))
                }
                Some(lease) => (lease.size / 2).max(1),
                None => 1,
            }
        };
        let taken = sqlx::query!(
            r#"select granted as "granted!", previous_hits as "previous!", current_hits as "current!"
             from rate_limit_take($1, $2, $3, $4, $5, $6)"#,
            bucket,
            window.start,
            window.start - window.length,
            window.previous_weight(),
            f64::from(limit.max),
            want as i32
        )
        .fetch_one(&self.pool)
        .await?;
        let (granted, previous, current) = (taken.granted, taken.previous, taken.current);
        let mut lease = Lease {
            window_start: window.start,
            left: 0,
            size: want,
            reserved_at: Instant::now(),
            previous,
            current,
            refused_until_ms: 0,
        };
        let decision = if granted > 0 {
            lease.left = granted as u32 - 1;
            allowed(limit, window, now, &lease)
        } else {
            let wait = retry_after(
                limit,
                f64::from(previous),
                f64::from(current),
                window.elapsed,
            );
            lease.refused_until_ms = now + wait as i64 * 1000;
            refused(limit, window, now, lease.refused_until_ms)
        };
        let mut leases = self.leases();
        if leases.len() >= MAX_BUCKETS {
            leases.retain(|_, l| l.window_start >= window.start - window.length);
        }
        match leases.get_mut(bucket) {
            // Concurrent requests reserved at once: keep every grant.
            Some(held) if held.window_start == lease.window_start => {
                held.left += lease.left;
                held.size = lease.size;
                held.reserved_at = lease.reserved_at;
                held.previous = held.previous.max(lease.previous);
                held.current = held.current.max(lease.current);
                held.refused_until_ms = if held.left > 0 {
                    0
                } else {
                    held.refused_until_ms.max(lease.refused_until_ms)
                };
            }
            _ => {
                leases.insert(bucket.to_owned(), lease);
            }
        }
        Ok(decision)
    }

    /// Drops windows too old to matter to any limit (a day is beyond all);
    /// run in the background, never on a request.
    pub async fn sweep(&self) -> Result<u64, sqlx::Error> {
        let horizon = now_ms() - Duration::from_secs(24 * 3600).as_millis() as i64;
        let done = sqlx::query!(
            "delete from rate_limit_windows where window_start < $1",
            horizon
        )
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }
}

/// An admitted request: what is left is the limit less what the shared
/// counts said at the last reservation, less what this instance used since.
fn allowed(limit: Limit, window: Window, now: i64, lease: &Lease) -> Decision {
    let used = f64::from(lease.current) - f64::from(lease.left)
        + f64::from(lease.previous) * window.previous_weight();
    Decision {
        allowed: true,
        limit: limit.max,
        remaining: (f64::from(limit.max) - used).floor().max(0.0) as u32,
        reset_secs: window.reset_secs(now),
        retry_after_secs: 0,
    }
}

fn refused(limit: Limit, window: Window, now: i64, until_ms: i64) -> Decision {
    Decision {
        allowed: false,
        limit: limit.max,
        remaining: 0,
        reset_secs: window.reset_secs(now),
        retry_after_secs: (((until_ms - now) as f64) / 1000.0).ceil().max(1.0) as u64,
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
