//! Idempotency keys: the first response to each (caller, key) is kept for
//! 24 hours and replayed to retries, so a retried POST has one effect.
//!
//! A key is claimed before its request runs. The command's events carry
//! the key's [`digest`] in their metadata, and a trigger marks the key
//! executed in the same transaction as the events, so whether the command
//! ran is never in doubt: a claim whose request died without an answer
//! (killed process, lost database, dropped handler) is taken over once it
//! is older than `takeover_after` (the request timeout): an unmarked one
//! runs again, a marked one reports its effect instead of running twice.

use serde_json::Value;
use sqlx::PgPool;

/// How long a key is remembered.
pub const RETENTION_HOURS: i32 = 24;

#[derive(Debug, Clone, PartialEq)]
pub struct StoredResponse {
    pub status: u16,
    /// `[[name, value], ...]` of the headers worth replaying.
    pub headers: Value,
    /// `None` when the response held a secret and was not kept.
    pub body: Option<Vec<u8>>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// First use (or a dead request's claim taken over): run the request,
    /// then [`complete`] or [`release`] this claim.
    Fresh(ClaimId),
    /// Seen before with the same request: answer with this.
    Replay(StoredResponse),
    /// Seen before with a different request.
    Mismatch,
    /// The first request with this key has not finished yet.
    InProgress,
    /// The first request's command ran, but its response was lost (its
    /// process or database went away before the response was stored).
    ExecutedResponseLost(Option<Effect>),
}

/// One holder of a key's claim: completing or releasing names it, so a
/// request that outlived its claim cannot touch its successor's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimId(pub uuid::Uuid);

/// What a command that ran under a key changed first.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct Effect {
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub version: i64,
}

/// The key's digest as event metadata names it: hex of
/// sha256(principal, newline, key).
pub fn digest(principal: &str, key: &str) -> String {
    digest_bytes(principal, key)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn digest_bytes(principal: &str, key: &str) -> Vec<u8> {
    crate::accounts::sha256_bytes(format!("{principal}\n{key}").as_bytes())
}

struct KeyRow {
    request_hash: Vec<u8>,
    status: Option<i16>,
    response_headers: Option<Value>,
    response_body: Option<Vec<u8>>,
    expired: bool,
    stale: bool,
    effect: Option<Value>,
    executed: bool,
}

/// Claims `key` for `principal`'s request (fingerprinted by
/// `request_hash`); an unanswered claim older than `takeover_after` whose
/// command never ran is taken over.
pub async fn claim(
    pool: &PgPool,
    principal: &str,
    key: &str,
    request_hash: &[u8],
    takeover_after: std::time::Duration,
) -> Result<Claim, sqlx::Error> {
    let digest = digest_bytes(principal, key);
    for _ in 0..2 {
        let claim = ClaimId(uuid::Uuid::new_v4());
        let inserted = sqlx::query!(
            "insert into idempotency_keys (principal, key, request_hash, digest, claim_id)
             values ($1, $2, $3, $4, $5)
             on conflict (principal, key) do nothing",
            principal,
            key,
            request_hash,
            digest,
            claim.0,
        )
        .execute(pool)
        .await?;
        if inserted.rows_affected() == 1 {
            return Ok(Claim::Fresh(claim));
        }
        let row = sqlx::query_as!(
            KeyRow,
            r#"select request_hash, status, response_headers, response_body,
                    created_at < now() - make_interval(hours => $3) as "expired!",
                    created_at < now() - make_interval(secs => $4) as "stale!",
                    effect, executed_at is not null as "executed!"
             from idempotency_keys where principal = $1 and key = $2"#,
            principal,
            key,
            RETENTION_HOURS,
            takeover_after.as_secs_f64()
        )
        .fetch_optional(pool)
        .await?;
        let Some(KeyRow {
            request_hash: hash,
            status,
            response_headers: headers,
            response_body: body,
            expired,
            stale,
            effect,
            executed,
        }) = row
        else {
            continue; // released meanwhile: try again
        };
        if expired {
            sqlx::query!(
                "delete from idempotency_keys where principal = $1 and key = $2",
                principal,
                key,
            )
            .execute(pool)
            .await?;
            continue;
        }
        if hash != request_hash {
            return Ok(Claim::Mismatch);
        }
        return Ok(match status {
            Some(status) => Claim::Replay(StoredResponse {
                status: status as u16,
                headers: headers.unwrap_or(Value::Null),
                body,
            }),
            None if !stale => Claim::InProgress,
            None if executed => Claim::ExecutedResponseLost(
                effect.and_then(|effect| serde_json::from_value(effect).ok()),
            ),
            None => {
                // The first request died before its command ran: take the
                // claim over (one taker wins) and run it now.
                let claim = ClaimId(uuid::Uuid::new_v4());
                let taken = sqlx::query!(
                    "update idempotency_keys set created_at = now(), claim_id = $4
                     where principal = $1 and key = $2 and status is null
                       and executed_at is null
                       and created_at < now() - make_interval(secs => $3)",
                    principal,
                    key,
                    takeover_after.as_secs_f64(),
                    claim.0,
                )
                .execute(pool)
                .await?;
                if taken.rows_affected() == 1 {
                    Claim::Fresh(claim)
                } else {
                    Claim::InProgress
                }
            }
        });
    }
    Ok(Claim::InProgress)
}

/// Keeps the response of the request holding `claim`.
pub async fn complete(
    pool: &PgPool,
    principal: &str,
    key: &str,
    claim: ClaimId,
    response: &StoredResponse,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "update idempotency_keys
         set status = $3, response_headers = $4, response_body = $5, completed_at = now()
         where principal = $1 and key = $2 and claim_id = $6",
        principal,
        key,
        response.status as i16,
        response.headers,
        response.body.as_deref(),
        claim.0,
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Forgets a key whose request failed on our side before its command ran,
/// so a retry runs it. (A key whose command ran stays claimed: a retry is
/// told so rather than running it twice.)
pub async fn release(
    pool: &PgPool,
    principal: &str,
    key: &str,
    claim: ClaimId,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "delete from idempotency_keys
         where principal = $1 and key = $2 and claim_id = $3
           and status is null and executed_at is null",
        principal,
        key,
        claim.0,
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Drops keys past their retention.
pub async fn sweep(pool: &PgPool) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!(
        "delete from idempotency_keys where created_at < now() - make_interval(hours => $1)",
        RETENTION_HOURS,
    )
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}
