//! Read-your-writes across resources.
//!
//! Every command response carries `X-Consistency-Token`: an opaque, signed
//! note of the write (aggregate type, id and the version it reached). A GET
//! that sends tokens back waits, a bounded time, until every read model fed
//! by those aggregates reflects them, so a client that added a note can read
//! the company (which embeds its notes) and see it; if the read models do
//! not get there in time the answer is 503 `read-model-behind` with
//! `Retry-After`, never stale data passed off as current. Tokens are signed
//! so a caller cannot probe other workspaces' aggregates by forging them.
//!
//! With read replicas (`VCINTEL_READ_DATABASE_URL`) the wait is on the
//! replica the request reads from, so it covers the replica's replay too;
//! a replica still behind when the wait ends hands the read to the primary
//! if the primary reflects the write.

pub mod reads;
pub mod token;

pub use reads::Reads;
pub use token::{answering, ConsistencyTokens, Written, CONSISTENCY_TOKEN};

use crate::error::ApiError;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::time::{Duration, Instant};
use vcintel_projections::Reflects;

/// More tokens than this in one request is a client bug, not a need.
const MAX_TOKENS_PER_REQUEST: usize = 16;

/// What read-your-writes needs of the shared state (axum `FromRef`).
#[derive(Debug)]
pub struct ReadYourWrites {
    pub tokens: ConsistencyTokens,
    /// The primary: where the store's versions are read.
    pub pool: sqlx::PgPool,
    /// Where the read models are read.
    pub reads: Arc<vcintel_infra::replicas::ReadPools>,
    /// Longest a read waits for a replica before the primary answers it.
    pub replica_timeout: Duration,
    /// How long a read waits for the read models before 503.
    pub wait: Duration,
    /// Told of workspace changes, so authorisation sees them at once.
    pub directory: vcintel_infra::accounts::WorkspaceDirectory,
}

/// The `/v1` middleware: GETs wait for the tokens they carry; command
/// responses that recorded a [`Written`] get their token.
pub async fn read_your_writes(
    State(state): State<Arc<ReadYourWrites>>,
    request: Request,
    next: Next,
) -> Response {
    let mut request = request;
    if request.method() == Method::GET {
        let mut reads = Reads(state.reads.for_read());
        match tokens_of(&state.tokens, &request) {
            Ok(writes) => {
                for written in &writes {
                    if let Err(error) = wait_until_reflected(&state, written, &mut reads).await {
                        return error.into_response();
                    }
                }
            }
            Err(error) => return error.into_response(),
        }
        if reads.0.replica.is_some() {
            return read_on_replica(&state, request, reads, next).await;
        }
        request.extensions_mut().insert(reads);
    }
    let mut response = next.run(request).await;
    if let Some(written) = response.extensions_mut().remove::<Written>() {
        // Authorisation reads workspaces from a cache: a change this
        // request made (a role, a member, a key) must act on the next
        // request, here and on every other instance.
        if written.aggregate_type == vcintel_domain::workspace::AGGREGATE_TYPE {
            if let Ok(id) = written.aggregate_id.parse() {
                state
                    .directory
                    .changed(vcintel_domain::WorkspaceId(id), written.version)
                    .await;
            }
        }
        if let Ok(value) = HeaderValue::from_str(&state.tokens.issue(&written)) {
            response.headers_mut().insert(CONSISTENCY_TOKEN, value);
        }
    }
    response
}

/// Runs a read on `reads`, a replica; if the replica does not answer in
/// time (paused, cut off) or fails, runs it again on the primary. A GET
/// changes nothing, so running it twice is harmless.
async fn read_on_replica(
    state: &ReadYourWrites,
    request: Request,
    reads: Reads,
    next: Next,
) -> Response {
    let (parts, _) = request.into_parts();
    let mut on_replica = Request::from_parts(parts.clone(), axum::body::Body::empty());
    on_replica.extensions_mut().insert(reads.clone());
    let reason =
        match tokio::time::timeout(state.replica_timeout, next.clone().run(on_replica)).await {
            Ok(response) if !response.status().is_server_error() => return response,
            Ok(_) => "replica_failed",
            Err(_) => "replica_timeout",
        };
    vcintel_infra::replicas::fell_back(reason);
    tracing::warn!(
        replica = reads.0.replica.as_deref().unwrap_or_default(),
        reason,
        "a read on a replica failed or took too long; answering it from the primary"
    );
    let mut on_primary = Request::from_parts(parts, axum::body::Body::empty());
    on_primary
        .extensions_mut()
        .insert(Reads(state.reads.primary()));
    next.run(on_primary).await
}

/// Tokens may come comma-separated or in repeated headers, so a client can
/// carry several writes (a company and a note on it) into one read.
fn tokens_of(tokens: &ConsistencyTokens, request: &Request) -> Result<Vec<Written>, ApiError> {
    let bad = |detail: &str| ApiError::BadRequest {
        detail: detail.to_owned(),
        field: Some("X-Consistency-Token".to_owned()),
    };
    let mut writes = Vec::new();
    for value in request.headers().get_all(CONSISTENCY_TOKEN) {
        let text = value
            .to_str()
            .map_err(|_| bad("must be tokens this API returned"))?;
        for token in text.split(',').filter(|t| !t.trim().is_empty()) {
            writes.push(
                tokens
                    .verify(token)
                    .ok_or_else(|| bad("not a token this API returned"))?,
            );
        }
    }
    if writes.len() > MAX_TOKENS_PER_REQUEST {
        return Err(bad(&format!(
            "at most {MAX_TOKENS_PER_REQUEST} tokens per request"
        )));
    }
    Ok(writes)
}

/// `min_version` on a read of one resource. An id the caller's workspace
/// does not hold is 404 at once, whether another workspace holds it or
/// nobody does (no oracle, and nothing to wait for); a version the resource
/// has not reached conflicts with its state (409 `version-not-reached`),
/// never a wait that can only time out. Otherwise the same bounded wait as a token's.
pub async fn wait_for_version(
    state: &ReadYourWrites,
    reads: &mut Reads,
    workspace: vcintel_domain::WorkspaceId,
    aggregate_type: &str,
    id: uuid::Uuid,
    min_version: u64,
) -> Result<(), ApiError> {
    let stored = vcintel_infra::event_log::version_in_workspace(
        &state.pool,
        aggregate_type,
        &id.to_string(),
        workspace.0,
    )
    .await?
    .ok_or(ApiError::NotFound)?;
    if u64::try_from(stored).is_ok_and(|stored| stored < min_version) {
        return Err(ApiError::VersionNotReached { latest: stored });
    }
    wait_until_reflected(state, &Written::at(aggregate_type, id, min_version), reads).await
}

/// Waits until every read model fed by `written`'s aggregate type reflects
/// at least its version, for at most the configured consistency wait. A
/// read model that only reacts to some of the aggregate's event types must
/// reflect the latest of those up to that version, if there is one.
/// `reads` is where they are waited for; it becomes the primary when a
/// replica is still behind at the end and the primary is not.
pub async fn wait_until_reflected(
    state: &ReadYourWrites,
    written: &Written,
    reads: &mut Reads,
) -> Result<(), ApiError> {
    if written.version == 0 {
        return Ok(());
    }
    let version = written.version as i64;
    let fed: Vec<(&str, Reflects)> =
        vcintel_projections::read_models_fed_by(&written.aggregate_type).collect();
    let mut reacted_types: Vec<&str> = fed
        .iter()
        .filter_map(|(_, reflects)| match reflects {
            Reflects::Only(types) => Some(types.iter().copied()),
            Reflects::EveryVersion => None,
        })
        .flatten()
        .collect();
    reacted_types.sort_unstable();
    reacted_types.dedup();
    let latest = if reacted_types.is_empty() {
        Vec::new()
    } else {
        vcintel_infra::event_log::latest_of_types(
            &state.pool,
            &written.aggregate_type,
            &written.aggregate_id,
            version,
            &reacted_types,
        )
        .await?
    };
    let mut projections: Vec<(&str, i64)> = Vec::new();
    for (name, reflects) in fed {
        match reflects {
            Reflects::EveryVersion => projections.push((name, version)),
            Reflects::Only(types) => {
                let needed = latest
                    .iter()
                    .filter(|(event_type, _)| types.contains(&event_type.as_str()))
                    .map(|(_, at)| *at)
                    .max();
                projections.extend(needed.map(|at| (name, at)));
            }
        }
    }
    if projections.is_empty() {
        return Ok(());
    }
    let deadline = Instant::now() + state.wait;
    let mut pause = Duration::from_millis(2);
    loop {
        let probe = vcintel_projections::versions::projections_behind(
            &reads.0.pool,
            &projections,
            &written.aggregate_id,
        );
        let behind = if reads.0.replica.is_some() {
            // A replica that stops answering mid-wait hands over to the
            // primary rather than hold the request.
            match tokio::time::timeout(state.replica_timeout, probe).await {
                Ok(Ok(behind)) => behind,
                outcome => {
                    let timed_out = outcome.is_err();
                    vcintel_infra::replicas::fell_back(if timed_out {
                        "replica_timeout"
                    } else {
                        "replica_failed"
                    });
                    *reads = Reads(state.reads.primary());
                    continue;
                }
            }
        } else {
            probe.await?
        };
        if behind == 0 {
            return Ok(());
        }
        if Instant::now() >= deadline {
            if reads.0.replica.is_some()
                && vcintel_projections::versions::projections_behind(
                    &state.pool,
                    &projections,
                    &written.aggregate_id,
                )
                .await?
                    == 0
            {
                vcintel_infra::replicas::fell_back("replica_behind");
                *reads = Reads(state.reads.primary());
                return Ok(());
            }
            return Err(ApiError::NotCaughtUp);
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(25));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;

    fn written() -> Written {
        Written {
            aggregate_type: "company".to_owned(),
            aggregate_id: "0193a5a0-0000-7000-8000-000000000001".to_owned(),
            version: 7,
        }
    }

    #[test]
    fn a_token_round_trips() {
        let tokens = ConsistencyTokens::new(b"a secret of enough length for tests");
        assert_eq!(tokens.verify(&tokens.issue(&written())), Some(written()));
    }

    #[test]
    fn tokens_of_another_key_or_tampered_are_refused() {
        let tokens = ConsistencyTokens::new(b"a secret of enough length for tests");
        let other = ConsistencyTokens::new(b"another secret of enough length!!");
        let token = tokens.issue(&written());
        assert_eq!(other.verify(&token), None);

        let (_, tag) = token.split_once('.').unwrap();
        let forged_payload =
            URL_SAFE_NO_PAD.encode("company:0193a5a0-0000-7000-8000-000000000001:8");
        assert_eq!(tokens.verify(&format!("{forged_payload}.{tag}")), None);

        let (payload, _) = token.split_once('.').unwrap();
        assert_eq!(tokens.verify(payload), None);
        assert_eq!(tokens.verify(&format!("{payload}.")), None);
        assert_eq!(tokens.verify("garbage"), None);
    }
}
