//! Retention: how long what the service keeps beside the events lives.
//! The security log, ended sessions (with their refresh tokens) and
//! rate-limit windows are deleted once past their retention, in bounded
//! batches along an index, by a background task; idempotency records keep
//! their own 24-hour promise (`idempotency::sweep`). The events are never
//! deleted: erasing a person shreds their key instead (docs/privacy.md).

use sqlx::PgPool;
use std::time::Duration;

/// Rows deleted per statement: a sweep never holds long locks or builds a
/// long transaction, whatever the backlog. The batch's ids are collected
/// into an array (`= any(array(...))`) so the delete finds them by primary
/// key; as `in (select ...)` the generic plan hash-joined the whole table.
const BATCH: i64 = 5_000;

/// How long each kind of record is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Security-log entries, from when they happened.
    pub security_events: Duration,
    /// Sessions, from when they ended (expired or revoked).
    pub ended_sessions: Duration,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        Self {
            security_events: Duration::from_secs(365 * 24 * 3600),
            ended_sessions: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

/// What one sweep deleted, per table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    pub security_events: u64,
    pub sessions: u64,
}

fn seconds(duration: Duration) -> f64 {
    duration.as_secs_f64()
}

/// One batch of security-log entries older than `$1` seconds (at most `$2`).
pub const SECURITY_EVENTS_BATCH: &str = "delete from security_events where id = any(array(
     select id from security_events
     where occurred_at < now() - make_interval(secs => $1)
     order by occurred_at limit $2))";

/// One batch of sessions ended more than `$1` seconds ago (at most `$2`);
/// their refresh tokens go with them (on delete cascade).
pub const SESSIONS_BATCH: &str = "delete from auth_sessions where id = any(array(
     select id from auth_sessions
     where ended_at < now() - make_interval(secs => $1)
     order by ended_at limit $2))";

async fn delete_in_batches(
    pool: &PgPool,
    statement: &str,
    age: Duration,
) -> Result<u64, sqlx::Error> {
    let mut deleted = 0;
    loop {
        let batch = sqlx::query(statement)
            .bind(seconds(age))
            .bind(BATCH)
            .execute(pool)
            .await?
            .rows_affected();
        deleted += batch;
        if batch < BATCH as u64 {
            return Ok(deleted);
        }
    }
}

/// Deletes everything past `policy`, batch by batch.
pub async fn sweep(pool: &PgPool, policy: &RetentionPolicy) -> Result<Swept, sqlx::Error> {
    Ok(Swept {
        security_events: delete_in_batches(pool, SECURITY_EVENTS_BATCH, policy.security_events)
            .await?,
        sessions: delete_in_batches(pool, SESSIONS_BATCH, policy.ended_sessions).await?,
    })
}
