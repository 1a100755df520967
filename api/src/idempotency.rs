//! `Idempotency-Key` on every `/v1` POST: a retry with the same key and the
//! same request gets the first response back (with `Idempotent-Replayed:
//! true`) and changes nothing; the same key with a different request is
//! 422; a retry while the first is still running is 409 with `Retry-After`.
//! Keys are per caller and kept 24 hours. A response that held a secret
//! (`Cache-Control: no-store`, e.g. a new API key) is not kept: its retry is
//! 409 rather than a second key. A 5xx is not kept either, so it can be
//! retried. Sign-in routes are excluded (their responses are credentials).
//!
//! The request runs in a task of its own: a client that disconnects, or the
//! request timeout, does not cut it short, so its response is stored (or
//! its key released) whatever happens to the connection. If the process or
//! the database dies first, the key is left claimed; once the claim is
//! older than the request timeout a retry takes it over. The command's
//! events mark the key executed in their own transaction (see
//! `vcintel_infra::idempotency`), so a taken-over request runs only if its
//! command never did; otherwise the retry is told the command ran (409
//! `idempotency-response-lost`, with the resource's `Location`).

use crate::auth::principal::Authentication;
use crate::error::ApiError;
use crate::http::headers::IDEMPOTENCY_DIGEST;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use std::sync::Arc;
use vcintel_infra::accounts::sha256_bytes;
use vcintel_infra::idempotency::{self, Claim, ClaimId, StoredResponse};

pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
const REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");
const MAX_KEY_CHARS: usize = 255;
/// Headers a replay must carry; the rest are per-response (request id, limits).
const KEPT_HEADERS: [HeaderName; 4] = [
    header::CONTENT_TYPE,
    header::LOCATION,
    header::ETAG,
    crate::consistency::CONSISTENCY_TOKEN,
];

fn invalid_key(message: &str) -> Response {
    ApiError::BadRequest {
        detail: message.to_owned(),
        field: Some("Idempotency-Key".to_owned()),
    }
    .into_response()
}

/// What the idempotency layer needs of the shared state (axum `FromRef`).
#[derive(Debug)]
pub struct Idempotency {
    pub pool: sqlx::PgPool,
    /// How long a request may run: a claim older than this that never
    /// answered is taken over.
    pub request_timeout: std::time::Duration,
}

pub async fn idempotent_posts(
    State(state): State<Arc<Idempotency>>,
    mut request: Request,
    next: Next,
) -> Response {
    request.headers_mut().remove(IDEMPOTENCY_DIGEST);
    let path = request.uri().path();
    if request.method() != Method::POST
        || !path.starts_with("/v1/")
        || path.starts_with("/v1/auth/")
    {
        return next.run(request).await;
    }
    let Some(key) = request.headers().get(IDEMPOTENCY_KEY) else {
        return next.run(request).await;
    };
    let Ok(key) = key.to_str().map(str::to_owned) else {
        return invalid_key("must be visible ASCII");
    };
    if key.is_empty() || key.len() > MAX_KEY_CHARS || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return invalid_key("must be 1-255 visible ASCII characters, e.g. a UUID");
    }
    // A replay answers only a request the handler would take: headers it
    // refuses are refused before a stored answer is served.
    if let Err(error) = crate::auth::requested_workspace(request.headers())
        .and_then(|_| crate::http::preconditions::if_match_version(request.headers()))
    {
        return error.into_response();
    }
    // Without credentials the handler answers 401 and changes nothing.
    let Some(Authentication::Authenticated(principal)) =
        request.extensions().get::<Authentication>().copied()
    else {
        return next.run(request).await;
    };
    let principal = principal.identity_key();
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return ApiError::PayloadTooLarge("request body too large".to_owned()).into_response()
        }
    };
    let mut fingerprint = Vec::with_capacity(body.len() + 128);
    fingerprint.extend_from_slice(parts.method.as_str().as_bytes());
    fingerprint.push(b' ');
    fingerprint.extend_from_slice(parts.uri.to_string().as_bytes());
    for name in [
        header::CONTENT_TYPE,
        header::IF_MATCH,
        HeaderName::from_static(crate::auth::principal::WORKSPACE_HEADER),
    ] {
        fingerprint.push(b'\n');
        if let Some(value) = parts.headers.get(&name) {
            fingerprint.extend_from_slice(value.as_bytes());
        }
    }
    fingerprint.push(b'\n');
    fingerprint.extend_from_slice(&body);
    let hash = sha256_bytes(&fingerprint);
    let takeover_after = state.request_timeout + std::time::Duration::from_secs(1);
    match idempotency::claim(&state.pool, &principal, &key, &hash, takeover_after).await {
        Err(error) => ApiError::from(error).into_response(),
        Ok(Claim::Mismatch) => ApiError::invalid_field(
            "Idempotency-Key",
            "was already used with a different request; use a new key".to_owned(),
        )
        .into_response(),
        Ok(Claim::InProgress) => ApiError::IdempotencyKeyInUse.into_response(),
        Ok(Claim::Replay(stored)) => replay(stored),
        Ok(Claim::ExecutedResponseLost(effect)) => ApiError::IdempotencyResponseLost {
            location: effect.as_ref().and_then(resource_location),
        }
        .into_response(),
        Ok(Claim::Fresh(claim)) => {
            let mut parts = parts;
            if let Ok(digest) = HeaderValue::from_str(&idempotency::digest(&principal, &key)) {
                parts.headers.insert(IDEMPOTENCY_DIGEST, digest);
            }
            let request = Request::from_parts(parts, Body::from(body));
            let (task_state, task_principal, task_key) =
                (state.clone(), principal.clone(), key.clone());
            let deadline = state.request_timeout;
            let facts = crate::error::RequestFacts::current();
            let task = tokio::spawn(crate::error::RequestFacts::scope(facts, async move {
                // Past the deadline the key is taken over by a retry, so the
                // request must not outlive it.
                match tokio::time::timeout(deadline, next.run(request)).await {
                    Ok(response) => {
                        remember(&task_state, &task_principal, &task_key, claim, response).await
                    }
                    Err(_) => {
                        release(&task_state, &task_principal, &task_key, claim).await;
                        StatusCode::REQUEST_TIMEOUT.into_response()
                    }
                }
            }));
            match task.await {
                Ok(response) => response,
                Err(panicked) => {
                    tracing::error!(error = %panicked, "an idempotent request panicked");
                    release(&state, &principal, &key, claim).await;
                    StatusCode::INTERNAL_SERVER_ERROR.into_response()
                }
            }
        }
    }
}

/// Where a command's first effect can be read, for the aggregates that
/// have a resource of their own.
fn resource_location(effect: &idempotency::Effect) -> Option<String> {
    use vcintel_domain::{company, enrichment, list, note, saved_search};
    let collection = match effect.aggregate_type.as_str() {
        t if t == company::AGGREGATE_TYPE => "companies",
        t if t == note::AGGREGATE_TYPE => "notes",
        t if t == list::AGGREGATE_TYPE => "lists",
        t if t == saved_search::AGGREGATE_TYPE => "saved-searches",
        t if t == enrichment::AGGREGATE_TYPE => "enrichment-jobs",
        _ => return None,
    };
    Some(format!("/v1/{collection}/{}", effect.aggregate_id))
}

async fn release(state: &Idempotency, principal: &str, key: &str, claim: ClaimId) {
    if let Err(error) = idempotency::release(&state.pool, principal, key, claim).await {
        // Left claimed: a retry takes it over after the request timeout.
        tracing::warn!(%error, "could not release an idempotency key after a failure");
    }
}

async fn remember(
    state: &Idempotency,
    principal: &str,
    key: &str,
    claim: ClaimId,
    response: Response,
) -> Response {
    let status = response.status();
    if status.is_server_error() {
        release(state, principal, key, claim).await;
        return response;
    }
    let (parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let secret = parts
        .headers
        .get(header::CACHE_CONTROL)
        .is_some_and(|v| v.as_bytes().windows(8).any(|w| w == b"no-store"));
    let headers: Vec<Value> = KEPT_HEADERS
        .iter()
        .filter_map(|name| {
            let value = parts.headers.get(name)?.to_str().ok()?;
            Some(Value::from(vec![name.as_str(), value]))
        })
        .collect();
    let stored = StoredResponse {
        status: status.as_u16(),
        headers: Value::from(headers),
        body: (!secret).then(|| bytes.to_vec()),
    };
    if let Err(error) = idempotency::complete(&state.pool, principal, key, claim, &stored).await {
        tracing::error!(%error, "could not store the response of an idempotent request");
    }
    Response::from_parts(parts, Body::from(bytes))
}

fn replay(stored: StoredResponse) -> Response {
    let Some(body) = stored.body else {
        return ApiError::Conflict(
            "this Idempotency-Key was already used; its response held a secret and is not replayed"
                .to_owned(),
        )
        .into_response();
    };
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    for pair in stored.headers.as_array().into_iter().flatten() {
        let (Some(name), Some(value)) = (pair[0].as_str(), pair[1].as_str()) else {
            continue;
        };
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::from_str(value)) {
            headers.insert(name, value);
        }
    }
    headers.insert(REPLAYED, HeaderValue::from_static("true"));
    response
}
