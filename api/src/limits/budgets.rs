//! The configured request budgets and the memory of which refusals were
//! already logged.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use vcintel_infra::rate_limit::{Decision, Limit, RateLimiter};

/// The configured budgets; a `max` of 0 switches a budget off.
#[derive(Debug, Clone)]
pub struct RateLimits {
    pub limiter: RateLimiter,
    pub per_user: Limit,
    pub anonymous: Limit,
    pub auth: Limit,
    /// Buckets already logged as limited in their current window, so a
    /// flood of refused requests writes one security-log entry per window
    /// and instance rather than one per request.
    logged: Arc<Mutex<HashSet<(String, u64)>>>,
}

impl RateLimits {
    pub fn new(limiter: RateLimiter, per_user: u32, anonymous: u32, auth: u32) -> Self {
        let minute = Duration::from_secs(60);
        Self {
            limiter,
            per_user: Limit {
                max: per_user,
                window: minute,
            },
            anonymous: Limit {
                max: anonymous,
                window: minute,
            },
            auth: Limit {
                max: auth,
                window: Duration::from_secs(15 * 60),
            },
            logged: Arc::default(),
        }
    }

    pub(super) fn first_refusal_in_window(&self, bucket: &str, decision: &Decision) -> bool {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let window_end = now + decision.reset_secs;
        let mut logged = self.logged.lock().unwrap_or_else(|e| e.into_inner());
        logged.retain(|(_, end)| *end > now);
        logged.insert((bucket.to_owned(), window_end))
    }
}
