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

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::time::{Duration, Instant};
use vcintel_commands::Committed;
use vcintel_projections::Reflects;

pub const CONSISTENCY_TOKEN: HeaderName = HeaderName::from_static("x-consistency-token");
/// More tokens than this in one request is a client bug, not a need.
const MAX_TOKENS_PER_REQUEST: usize = 16;
/// Bytes of the MAC kept: forging 2^-128 is enough, and tokens stay short.
const MAC_BYTES: usize = 16;

/// A write a client wants its reads to reflect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub version: u64,
}

impl Written {
    pub fn at(aggregate_type: &str, aggregate_id: impl ToString, version: u64) -> Self {
        Written {
            aggregate_type: aggregate_type.to_owned(),
            aggregate_id: aggregate_id.to_string(),
            version,
        }
    }
}

impl From<&Committed> for Written {
    fn from(committed: &Committed) -> Self {
        Written {
            aggregate_type: committed.aggregate_type.to_owned(),
            aggregate_id: committed.aggregate_id.clone(),
            version: committed.version,
        }
    }
}

/// Marks `response` as the answer to `committed`; the middleware turns the
/// mark into the response's token.
pub fn answering(mut response: Response, committed: &Committed) -> Response {
    response.extensions_mut().insert(Written::from(committed));
    response
}

/// Issues and checks tokens with a key only this service holds.
#[derive(Clone)]
pub struct ConsistencyTokens {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for ConsistencyTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConsistencyTokens(..)")
    }
}

impl ConsistencyTokens {
    pub fn new(secret: &[u8]) -> Self {
        // A key of its own, so a token's MAC can never double as anything
        // else signed with the same secret.
        let mut derive =
            Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts keys of any length");
        derive.update(b"vcintel consistency token v1");
        let key = derive.finalize().into_bytes();
        Self {
            mac: Hmac::<Sha256>::new_from_slice(&key).expect("HMAC accepts keys of any length"),
        }
    }

    pub fn issue(&self, written: &Written) -> String {
        let payload = format!(
            "{}:{}:{}",
            written.aggregate_type, written.aggregate_id, written.version
        );
        let tag = self.tag(payload.as_bytes());
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode(tag)
        )
    }

    /// `None` for anything this service did not issue.
    pub fn verify(&self, token: &str) -> Option<Written> {
        let (payload, tag) = token.trim().split_once('.')?;
        let payload = URL_SAFE_NO_PAD.decode(payload).ok()?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        if tag.len() != MAC_BYTES {
            return None;
        }
        let mut mac = self.mac.clone();
        mac.update(&payload);
        mac.verify_truncated_left(&tag).ok()?;
        let payload = String::from_utf8(payload).ok()?;
        let mut parts = payload.splitn(3, ':');
        let (aggregate_type, aggregate_id, version) = (parts.next()?, parts.next()?, parts.next()?);
        Some(Written {
            aggregate_type: aggregate_type.to_owned(),
            aggregate_id: aggregate_id.to_owned(),
            version: version.parse().ok()?,
        })
    }

    fn tag(&self, payload: &[u8]) -> Vec<u8> {
        let mut mac = self.mac.clone();
        mac.update(payload);
        mac.finalize().into_bytes()[..MAC_BYTES].to_vec()
    }
}

/// The `/v1` middleware: GETs wait for the tokens they carry; command
/// responses that recorded a [`Written`] get their token.
pub async fn read_your_writes(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if request.method() == Method::GET {
        match tokens_of(&state.consistency, &request) {
            Ok(writes) => {
                for written in &writes {
                    if let Err(error) = wait_until_reflected(&state, written).await {
                        return error.into_response();
                    }
                }
            }
            Err(error) => return error.into_response(),
        }
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
        if let Ok(value) = HeaderValue::from_str(&state.consistency.issue(&written)) {
            response.headers_mut().insert(CONSISTENCY_TOKEN, value);
        }
    }
    response
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

/// Waits until every read model fed by `written`'s aggregate type reflects
/// at least its version, for at most the configured consistency wait. A
/// read model that only reacts to some of the aggregate's event types must
/// reflect the latest of those up to that version, if there is one.
pub async fn wait_until_reflected(state: &AppState, written: &Written) -> Result<(), ApiError> {
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
    let deadline = Instant::now() + state.consistency_wait;
    let mut pause = Duration::from_millis(2);
    loop {
        let behind = vcintel_projections::versions::projections_behind(
            &state.pool,
            &projections,
            &written.aggregate_id,
        )
        .await?;
        if behind == 0 {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(ApiError::NotCaughtUp);
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(25));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
