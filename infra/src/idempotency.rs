//! Idempotency keys: the first response to each (caller, key) is kept for
//! 24 hours and replayed to retries, so a retried POST has one effect.

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
    /// First use: run the request, then [`complete`] or [`release`].
    Fresh,
    /// Seen before with the same request: answer with this.
    Replay(StoredResponse),
    /// Seen before with a different request.
    Mismatch,
    /// The first request with this key has not finished (or never will:
    /// its process died mid-way, and its outcome is unknown).
    InProgress,
}

#[derive(sqlx::FromRow)]
struct KeyRow {
    request_hash: Vec<u8>,
    status: Option<i16>,
    response_headers: Option<Value>,
    response_body: Option<Vec<u8>>,
    expired: bool,
}

pub async fn claim(
    pool: &PgPool,
    principal: &str,
    key: &str,
    request_hash: &[u8],
) -> Result<Claim, sqlx::Error> {
    for _ in 0..2 {
        let inserted = sqlx::query(
            "insert into idempotency_keys (principal, key, request_hash) values ($1, $2, $3)
             on conflict (principal, key) do nothing",
        )
        .bind(principal)
        .bind(key)
        .bind(request_hash)
        .execute(pool)
        .await?;
        if inserted.rows_affected() == 1 {
            return Ok(Claim::Fresh);
        }
        let row: Option<KeyRow> = sqlx::query_as(
            "select request_hash, status, response_headers, response_body,
                        created_at < now() - make_interval(hours => $3) as expired
                 from idempotency_keys where principal = $1 and key = $2",
        )
        .bind(principal)
        .bind(key)
        .bind(RETENTION_HOURS)
        .fetch_optional(pool)
        .await?;
        let Some(KeyRow {
            request_hash: hash,
            status,
            response_headers: headers,
            response_body: body,
            expired,
        }) = row
        else {
            continue; // released meanwhile: try again
        };
        if expired {
            sqlx::query("delete from idempotency_keys where principal = $1 and key = $2")
                .bind(principal)
                .bind(key)
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
            None => Claim::InProgress,
        });
    }
    Ok(Claim::InProgress)
}

pub async fn complete(
    pool: &PgPool,
    principal: &str,
    key: &str,
    response: &StoredResponse,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "update idempotency_keys
         set status = $3, response_headers = $4, response_body = $5, completed_at = now()
         where principal = $1 and key = $2",
    )
    .bind(principal)
    .bind(key)
    .bind(response.status as i16)
    .bind(&response.headers)
    .bind(response.body.as_deref())
    .execute(pool)
    .await?;
    Ok(())
}

/// Forgets a key whose request failed on our side, so a retry runs again.
pub async fn release(pool: &PgPool, principal: &str, key: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "delete from idempotency_keys where principal = $1 and key = $2 and status is null",
    )
    .bind(principal)
    .bind(key)
    .execute(pool)
    .await?;
    Ok(())
}

/// Drops keys past their retention.
pub async fn sweep(pool: &PgPool) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "delete from idempotency_keys where created_at < now() - make_interval(hours => $1)",
    )
    .bind(RETENTION_HOURS)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}
