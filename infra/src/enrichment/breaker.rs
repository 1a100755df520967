//! The circuit breaker in front of the model provider.
//!
//! After `threshold` provider failures in a row (5xx, timeouts, 429s) it
//! opens: jobs stop calling the model and are deferred. After `cooldown` it
//! lets one probe through (half-open): success closes it, failure opens it
//! for another cooldown. It lives in the worker's process (one per process;
//! each worker learns on its own, which errs on the side of fewer calls).

use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probing: bool },
}

/// What the breaker says to a job about to call the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Allowed,
    /// Defer the job; look again after this long.
    Deferred(Duration),
}

#[derive(Debug)]
pub struct CircuitBreaker {
    threshold: u32,
    cooldown: Duration,
    state: Mutex<State>,
}

impl CircuitBreaker {
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            cooldown,
            state: Mutex::new(State::Closed { failures: 0 }),
        }
    }

    pub fn admit(&self) -> Admission {
        let mut state = self.lock();
        match *state {
            State::Closed { .. } => Admission::Allowed,
            State::Open { until } => {
                let now = Instant::now();
                if now >= until {
                    *state = State::HalfOpen { probing: true };
                    Admission::Allowed
                } else {
                    Admission::Deferred(until - now)
                }
            }
            State::HalfOpen { probing: false } => {
                *state = State::HalfOpen { probing: true };
                Admission::Allowed
            }
            // One probe at a time; the others wait a little.
            State::HalfOpen { probing: true } => Admission::Deferred(self.cooldown / 4),
        }
    }

    pub fn record_success(&self) {
        *self.lock() = State::Closed { failures: 0 };
    }

    pub fn record_failure(&self) {
        let mut state = self.lock();
        *state = match *state {
            State::Closed { failures } if failures + 1 < self.threshold => State::Closed {
                failures: failures + 1,
            },
            _ => State::Open {
                until: Instant::now() + self.cooldown,
            },
        };
    }

    /// A call that ended without telling us about the provider (the page
    /// could not be fetched, say) frees a half-open probe slot.
    pub fn record_neutral(&self) {
        let mut state = self.lock();
        if *state == (State::HalfOpen { probing: true }) {
            *state = State::HalfOpen { probing: false };
        }
    }

    /// `closed`, `open (…)` or `half-open`, for readiness.
    pub fn describe(&self) -> String {
        match *self.lock() {
            State::Closed { failures } => format!("closed ({failures} recent failures)"),
            State::Open { until } => format!(
                "open: model calls paused, jobs deferred for {} ms more",
                until.saturating_duration_since(Instant::now()).as_millis()
            ),
            State::HalfOpen { .. } => "half-open: probing the provider".to_owned(),
        }
    }

    pub fn is_open(&self) -> bool {
        matches!(*self.lock(), State::Open { until } if Instant::now() < until)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_the_threshold_probes_once_and_closes_on_success() {
        let breaker = CircuitBreaker::new(2, Duration::from_millis(30));
        breaker.record_failure();
        assert_eq!(breaker.admit(), Admission::Allowed);
        breaker.record_failure();
        assert!(matches!(breaker.admit(), Admission::Deferred(_)));
        assert!(breaker.describe().starts_with("open"));
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(breaker.admit(), Admission::Allowed, "the probe");
        assert!(
            matches!(breaker.admit(), Admission::Deferred(_)),
            "one probe at a time"
        );
        breaker.record_failure();
        assert!(breaker.is_open(), "a failed probe opens it again");
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(breaker.admit(), Admission::Allowed);
        breaker.record_success();
        assert_eq!(breaker.admit(), Admission::Allowed);
        assert!(breaker.describe().starts_with("closed"));
    }

    #[test]
    fn a_success_resets_the_failure_count() {
        let breaker = CircuitBreaker::new(3, Duration::from_secs(60));
        breaker.record_failure();
        breaker.record_failure();
        breaker.record_success();
        breaker.record_failure();
        breaker.record_failure();
        assert_eq!(breaker.admit(), Admission::Allowed);
    }
}
