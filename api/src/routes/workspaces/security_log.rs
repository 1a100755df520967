//! The security log: a workspace's (`/v1/workspace/security-events`) and
//! an account's own (`/v1/me/security-events`).

use super::TAG;
use crate::auth::{Caller, SignedIn};
use crate::error::{ApiError, Problem};
use crate::http::extract::Query;
use crate::http::pagination::page_limit;
use crate::state::AppState;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;
use vcintel_domain::Permission;
use vcintel_projections::identity::SecurityLogEntry;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SecurityEventPage {
    pub items: Vec<SecurityLogEntry>,
    /// Pass as `cursor` for older entries; absent on the last page.
    #[schema(example = "WyIyMDI2LTEyLTA2VDIzOjEwOjAwWiJd.Qm9yG3kTz1xPa7c2Lw0vYg")]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SecurityEventParams {
    /// Page size, 1–200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// Opaque cursor from a previous page's `next_cursor`.
    pub cursor: Option<String>,
}

/// The workspace's security log, newest first (owners and admins).
#[utoipa::path(
    get, path = "/v1/workspace/security-events", tag = TAG, operation_id = "listSecurityEvents",
    params(SecurityEventParams),
    responses(
        (status = 200, description = "A page of entries", body = SecurityEventPage),
        (status = 400, description = "Bad limit or cursor", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Only owners and admins read the security log", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such workspace, or you are not a member", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn list_security_events(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<SecurityEventParams>,
) -> Result<axum::Json<SecurityEventPage>, ApiError> {
    caller.require(Permission::ReadSecurityEvents)?;
    let limit = page_limit(params.limit)?;
    let before = params
        .cursor
        .as_deref()
        .map(|c| state.cursors.decode::<(DateTime<Utc>, Uuid)>(c))
        .transpose()?;
    let mut rows = vcintel_projections::identity::security_log(
        &state.pool,
        caller.actor.workspace_id,
        before,
        i64::from(limit) + 1,
    )
    .await?;
    let next_cursor = state
        .cursors
        .next(&mut rows, limit, |r| (r.occurred_at, r.id));
    Ok(axum::Json(SecurityEventPage {
        items: rows,
        next_cursor,
    }))
}

/// Your account's own security log, newest first: sign-ins and their
/// failures, lockouts, sessions revoked. No workspace sees these.
#[utoipa::path(
    get, path = "/v1/me/security-events", tag = TAG, operation_id = "listMySecurityEvents",
    params(SecurityEventParams),
    responses(
        (status = 200, description = "A page of entries", body = SecurityEventPage),
        (status = 400, description = "Bad limit or cursor", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "API keys act on workspaces, not accounts", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn list_my_security_events(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Query(params): Query<SecurityEventParams>,
) -> Result<axum::Json<SecurityEventPage>, ApiError> {
    let limit = page_limit(params.limit)?;
    let before = params
        .cursor
        .as_deref()
        .map(|c| state.cursors.decode::<(DateTime<Utc>, Uuid)>(c))
        .transpose()?;
    let mut rows = vcintel_projections::identity::account_security_log(
        &state.pool,
        signed_in.user_id,
        before,
        i64::from(limit) + 1,
    )
    .await?;
    let next_cursor = state
        .cursors
        .next(&mut rows, limit, |r| (r.occurred_at, r.id));
    Ok(axum::Json(SecurityEventPage {
        items: rows,
        next_cursor,
    }))
}
