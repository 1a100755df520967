//! Abuse protection: authentication and rate limiting of every `/v1`
//! request (the actions and their windows: `commands::limits`).
//!
//! Budgets (configurable, see `Settings`): each user 1,200 requests/min,
//! shared by their sessions and API keys; each IP without valid credentials 60/min; sign-in and
//! sign-up 5 attempts per 15 min per IP and per email. Counters live in
//! Postgres and are shared by all API instances.
//!
//! When the counter store cannot be reached, sign-in and sign-up fail
//! closed (503: guessing passwords unthrottled is worse than a short
//! outage) and every other route fails open (served without a budget, with
//! a warning in the log: an outage of the limiter should not become an
//! outage of the product).

pub mod budgets;

pub use budgets::RateLimits;

use crate::auth::gate::Gate;
use crate::auth::{authenticate, Authentication};
use crate::error::ApiError;
use crate::http::headers::with_rate_limit_headers;
use axum::extract::FromRef;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use vcintel_commands::limits::LimitedAction;
use vcintel_domain::user::Email;
use vcintel_infra::accounts::{self, security_kind, SecurityEvent};
use vcintel_infra::rate_limit::Decision;

pub const LOGIN_PATH: &str = "/v1/auth/login";
pub const REGISTER_PATH: &str = "/v1/auth/register";

/// The client's IP: the socket peer, or with `trust_forwarded_for` the
/// last `X-Forwarded-For` entry (the one our proxy appended).
pub fn client_ip(state: &Gate, headers: &HeaderMap, peer: Option<SocketAddr>) -> String {
    if state.trust_forwarded_for {
        if let Some(ip) = headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .map(str::trim)
            .filter(|v| !v.is_empty())
        {
            return ip.to_owned();
        }
    }
    peer.map_or_else(|| "unknown".to_owned(), |p| p.ip().to_string())
}

fn peer(request: &Request) -> Option<SocketAddr> {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
}

/// Authenticates each `/v1` request and charges it to its budget.
pub async fn authenticate_and_limit(
    State(state): State<Arc<Gate>>,
    State(app): State<crate::state::AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_owned();
    // Sign-in and sign-up are charged per IP and email by their handlers,
    // which can read the email; health, docs and the spec are free.
    let admin = path.starts_with("/admin/");
    if !(path.starts_with("/v1/") || admin) || path == LOGIN_PATH || path == REGISTER_PATH {
        return next.run(request).await;
    }
    if admin
        && crate::routes::admin::Operator::of_request(&app, request.method(), request.headers())
            .is_ok()
    {
        // The operator's own requests (the console polls three admin
        // routes every two seconds) are not budgeted; only requests
        // without them, guesses included, are.
        return next.run(request).await;
    }
    let ip = client_ip(&state, request.headers(), peer(&request));
    let (action, bucket, limit, principal) = if admin {
        // The operator token is checked by the admin routes; guessing it is
        // bounded per address like any request without credentials.
        let action = LimitedAction::AdminRequest;
        (action, action.bucket(&ip), state.limits.limit(action), None)
    } else {
        let authentication = match authenticate(&state, request.headers()).await {
            Ok(a) => a,
            Err(error) => return error.into_response(),
        };
        request.extensions_mut().insert(authentication);
        match authentication {
            Authentication::Authenticated(p) => {
                let action = LimitedAction::Request;
                let bucket = action.bucket(&budget_of(&state, p).await);
                (action, bucket, state.limits.limit(action), Some(p))
            }
            _ => {
                let action = LimitedAction::AnonymousRequest;
                (action, action.bucket(&ip), state.limits.limit(action), None)
            }
        }
    };
    let decision = if limit.max == 0 {
        None
    } else {
        match state.limits.limiter.check(&bucket, limit).await {
            Ok(decision) => {
                count_decision(action, &decision);
                Some(decision)
            }
            Err(error) => {
                tracing::warn!(%error, "rate-limit store unreachable; serving without a budget");
                None
            }
        }
    };
    if let Some(decision) = decision.filter(|d| !d.allowed) {
        if state.limits.first_refusal_in_window(&bucket, &decision) {
            let (workspace_id, user_id) = match principal {
                Some(crate::auth::Principal::ApiKey { workspace_id, .. }) => {
                    (Some(workspace_id), None)
                }
                Some(p) => (None, p.user_id()),
                None => (None, None),
            };
            log_security_event(
                &state,
                SecurityEvent {
                    kind: security_kind::RATE_LIMITED,
                    workspace_id,
                    user_id,
                    ip: Some(ip),
                    detail: json!({"bucket": bucket, "limit": decision.limit, "path": path}),
                    ..Default::default()
                },
            )
            .await;
        }
        return ApiError::RateLimited(decision).into_response();
    }
    let response = next.run(request).await;
    match decision {
        Some(decision) => with_rate_limit_headers(response, &decision),
        None => response,
    }
}

/// The budget a caller's requests are charged to: one per user, whether
/// they come with a session or with any of the user's API keys (a key acts
/// as its creator), so keys do not multiply a user's budget. A key that no
/// longer acts (revoked, creator gone) keeps a budget of its own until its
/// request is refused.
async fn budget_of(state: &Gate, principal: crate::auth::Principal) -> String {
    if let crate::auth::Principal::ApiKey {
        key_id,
        workspace_id,
    } = principal
    {
        match state.directory.current(workspace_id).await {
            Ok(Some(workspace)) => {
                if let Some((creator, _)) = workspace.workspace.api_key_access(key_id) {
                    return format!("user:{creator}");
                }
            }
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(%error, "could not read the key's workspace for its budget")
            }
        }
    }
    principal.identity_key()
}

/// Charges one sign-in or sign-up attempt to the client IP's budget and,
/// for a sign-in, to the (e-mail, client) budget and the e-mail's ceiling
/// (sign-ups never spend an account's budgets); fails closed if the
/// counters are unreachable.
pub async fn charge_auth_attempt(
    state: &Gate,
    ip: &str,
    email: Option<&Email>,
    path: &str,
) -> Result<Option<Decision>, ApiError> {
    let limit = state.limits.limit(LimitedAction::AuthAttemptByIp);
    if limit.max == 0 {
        return Ok(None);
    }
    // The account's budgets first, so a refusal for one account is
    // logged as that account's lockout.
    let mut buckets = Vec::new();
    if let Some(email) = email {
        buckets.push((LimitedAction::AuthAttemptByEmail, format!("{email}|{ip}")));
        buckets.push((LimitedAction::AuthAttemptEmailCeiling, email.to_string()));
    }
    buckets.push((LimitedAction::AuthAttemptByIp, ip.to_owned()));
    let mut tightest: Option<Decision> = None;
    for (action, subject) in &buckets {
        let by_email = *action != LimitedAction::AuthAttemptByIp;
        let bucket = &action.bucket(subject);
        let decision = state
            .limits
            .limiter
            .check(bucket, state.limits.limit(*action))
            .await
            .map_err(|error| {
                tracing::error!(%error, "rate-limit store unreachable; refusing sign-in");
                ApiError::LimiterUnavailable
            })?;
        count_decision(*action, &decision);
        if !decision.allowed {
            if state.limits.first_refusal_in_window(bucket, &decision) {
                let user_id = match email {
                    Some(email) if by_email => accounts::user_by_email(&state.pool, email).await?,
                    _ => None,
                };
                let kind = if path == LOGIN_PATH && by_email {
                    security_kind::LOGIN_LOCKED_OUT
                } else {
                    security_kind::RATE_LIMITED
                };
                log_security_event(
                    state,
                    SecurityEvent {
                        kind,
                        user_id,
                        ip: Some(ip.to_owned()),
                        detail: json!({"bucket": bucket, "limit": decision.limit}),
                        ..Default::default()
                    },
                )
                .await;
            }
            return Err(ApiError::RateLimited(decision));
        }
        if tightest.is_none_or(|t| decision.remaining < t.remaining) {
            tightest = Some(decision);
        }
    }
    Ok(tightest)
}

/// Counts a budget's decision for `/metrics`, by action and outcome.
fn count_decision(action: LimitedAction, decision: &Decision) {
    let outcome = if decision.allowed {
        "allowed"
    } else {
        "refused"
    };
    metrics::counter!(
        "vcintel_rate_limit_decisions_total",
        "action" => action.name(), "outcome" => outcome
    )
    .increment(1);
}

/// Charges one use of a keyed action to `subject`'s budget: 429 past it.
/// Fails open if the counters are unreachable (logged), like requests.
pub async fn charge(
    state: &Gate,
    action: LimitedAction,
    subject: &str,
) -> Result<Option<Decision>, ApiError> {
    let limit = state.limits.limit(action);
    if limit.max == 0 {
        return Ok(None);
    }
    match state
        .limits
        .limiter
        .check(&action.bucket(subject), limit)
        .await
    {
        Ok(decision) => {
            count_decision(action, &decision);
            if decision.allowed {
                Ok(Some(decision))
            } else {
                Err(ApiError::RateLimited(decision))
            }
        }
        Err(error) => {
            tracing::warn!(%error, action = action.name(), "rate-limit store unreachable; serving without a budget");
            Ok(None)
        }
    }
}

/// Writes to the security log; a failure is logged, never shown to the client.
pub async fn log_security_event(state: &Gate, event: SecurityEvent) {
    if let Err(error) = accounts::record_security_event(&state.pool, &event).await {
        tracing::error!(%error, kind = event.kind, "could not write the security log");
    }
}

/// The client's IP as [`client_ip`] sees it.
#[derive(Debug, Clone)]
pub struct ClientIp(pub String);

impl<S> axum::extract::FromRequestParts<S> for ClientIp
where
    S: Send + Sync,
    Arc<Gate>: FromRef<S>,
{
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        let state = Arc::<Gate>::from_ref(state);
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0);
        Ok(ClientIp(client_ip(&state, &parts.headers, peer)))
    }
}
