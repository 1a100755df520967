//! Rate-limited actions, declared once: what each action's counter is
//! keyed by and over what window it counts. How many uses a window allows
//! is configuration (the API's settings); the counters live behind the
//! [`RateLimiting`] port (Postgres, shared by every instance).

use crate::CommandError;
use std::time::Duration;

/// Every action whose rate is limited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, strum::VariantArray, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum LimitedAction {
    /// A `/v1` request of a signed-in user; their sessions and API keys
    /// share one budget. Keyed by the user (or a key that acts for no one).
    Request,
    /// A `/v1` request without valid credentials, keyed by IP.
    AnonymousRequest,
    /// An `/admin` request, keyed by IP: it bounds guessing the operator
    /// token.
    AdminRequest,
    /// A sign-in or sign-up attempt, keyed by IP.
    AuthAttemptByIp,
    /// A sign-in attempt, keyed by e-mail address and client IP: guessing
    /// one account's password from one place is bounded, and a stranger
    /// elsewhere cannot use it up for the account's owner.
    AuthAttemptByEmail,
    /// Sign-in attempts at one e-mail address from anywhere: a ceiling,
    /// many times the per-client budget, on guessing from many addresses.
    AuthAttemptEmailCeiling,
    /// An enrichment request, keyed by user; the budget follows the tier.
    Enrichment,
    /// Another verification mail asked for, keyed by user: each is a mail
    /// to someone's inbox.
    VerificationMail,
}

impl LimitedAction {
    /// The window the action's uses are counted over.
    pub fn window(self) -> Duration {
        match self {
            LimitedAction::Request
            | LimitedAction::AnonymousRequest
            | LimitedAction::AdminRequest => Duration::from_secs(60),
            LimitedAction::AuthAttemptByIp
            | LimitedAction::AuthAttemptByEmail
            | LimitedAction::AuthAttemptEmailCeiling => Duration::from_secs(15 * 60),
            LimitedAction::Enrichment | LimitedAction::VerificationMail => {
                Duration::from_secs(3600)
            }
        }
    }

    /// The counter `subject`'s uses of the action go to. A request's
    /// subject is already an identity key (`user:…`, `key:…`); one that
    /// holds an e-mail address is stored as its SHA-256, so no counter
    /// keeps an address (docs/privacy.md).
    pub fn bucket(self, subject: &str) -> String {
        use sha2::Digest as _;
        let digest = || format!("{:x}", sha2::Sha256::digest(subject.as_bytes()));
        match self {
            LimitedAction::Request => subject.to_owned(),
            LimitedAction::AnonymousRequest => format!("ip:{subject}"),
            LimitedAction::AdminRequest => format!("admin-ip:{subject}"),
            LimitedAction::AuthAttemptByIp => format!("auth-ip:{subject}"),
            LimitedAction::AuthAttemptByEmail => format!("auth-email-client:{}", digest()),
            LimitedAction::AuthAttemptEmailCeiling => format!("auth-email:{}", digest()),
            LimitedAction::Enrichment => format!("enrich:{subject}"),
            LimitedAction::VerificationMail => format!("verify-mail:{subject}"),
        }
    }

    /// `max` uses per the action's window; zero switches the limit off.
    pub fn limit(self, max: u32) -> Limit {
        Limit {
            max,
            window: self.window(),
        }
    }

    pub fn name(self) -> &'static str {
        self.into()
    }
}

/// At most `max` uses per sliding `window`.
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

/// Where the counters live.
#[async_trait::async_trait]
pub trait RateLimiting: Send + Sync {
    /// Counts one use in `bucket` if `limit` allows it.
    async fn check(&self, bucket: &str, limit: Limit) -> Result<Decision, CommandError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use strum::VariantArray;

    #[test]
    fn every_action_counts_in_buckets_of_its_own() {
        let prefixes: HashSet<String> = LimitedAction::VARIANTS
            .iter()
            .map(|action| action.bucket("x"))
            .collect();
        assert_eq!(prefixes.len(), LimitedAction::VARIANTS.len());
        for action in LimitedAction::VARIANTS {
            assert!(
                action.window() >= Duration::from_secs(60),
                "{}",
                action.name()
            );
        }
    }
}
