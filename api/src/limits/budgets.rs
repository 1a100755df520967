//! The configured request budgets and the memory of which refusals were
//! already logged.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use vcintel_commands::limits::{Limit, LimitedAction};
use vcintel_infra::rate_limit::{Decision, RateLimiter};

/// The ceiling on one e-mail's sign-in attempts from every client, as a
/// multiple of the per-client budget: high enough that strangers cannot
/// lock an owner out from a handful of addresses, low enough to bound
/// guessing from many.
const EMAIL_CEILING_FACTOR: u32 = 20;

/// The configured budgets of the request-level actions; a `max` of 0
/// switches a budget off. (Enrichment's hourly budget depends on the tier:
/// it is part of the admission policy.)
#[derive(Debug, Clone)]
pub struct RateLimits {
    pub limiter: RateLimiter,
    per_user: u32,
    anonymous: u32,
    auth: u32,
    verification_mail: u32,
    /// Buckets already logged as limited in their current window, so a
    /// flood of refused requests writes one security-log entry per window
    /// and instance rather than one per request.
    logged: Arc<Mutex<HashSet<(String, u64)>>>,
}

impl RateLimits {
    pub fn new(
        limiter: RateLimiter,
        per_user: u32,
        anonymous: u32,
        auth: u32,
        verification_mail: u32,
    ) -> Self {
        Self {
            limiter,
            per_user,
            anonymous,
            auth,
            verification_mail,
            logged: Arc::default(),
        }
    }

    /// The configured limit of a request-level action.
    pub fn limit(&self, action: LimitedAction) -> Limit {
        action.limit(match action {
            LimitedAction::Request => self.per_user,
            // The operator's tools page through read models and dead
            // letters; the anonymous budget fits them and stops guessing.
            LimitedAction::AnonymousRequest | LimitedAction::AdminRequest => self.anonymous,
            LimitedAction::AuthAttemptByIp | LimitedAction::AuthAttemptByEmail => self.auth,
            LimitedAction::AuthAttemptEmailCeiling => {
                self.auth.saturating_mul(EMAIL_CEILING_FACTOR)
            }
            LimitedAction::VerificationMail => self.verification_mail,
            // Per tier, in the admission policy; never charged here.
            LimitedAction::Enrichment => 0,
        })
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
