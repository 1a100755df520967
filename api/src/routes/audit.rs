//! Audit over HTTP (owners and admins): the workspace's events in commit
//! order (`/v1/events`) and one company's history.

use crate::auth::Caller;
use crate::error::{ApiError, Problem};
use crate::http::extract::{Path, Query};
use crate::http::pagination::page_limit;
use crate::state::AppState;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;
use vcintel_commands::metadata::{ACTOR_ID, CAUSATION_ID, CORRELATION_ID, REQUEST_ID};
use vcintel_domain::Permission;
use vcintel_infra::event_log::{self, CommitCursor, FeedFilter, Reading, StoredEvent};

pub const TAG: &str = "audit";

/// One event as the audit feed shows it (in the document: a union by
/// `type`, see [`crate::openapi`]).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditEvent {
    pub id: Uuid,
    /// e.g. `company.added`.
    #[serde(rename = "type")]
    #[schema(example = "company.added")]
    pub event_type: String,
    /// The event's schema version.
    #[schema(example = "1")]
    pub version: String,
    #[schema(example = "company")]
    pub aggregate_type: String,
    #[schema(example = "0193a5a0-7c1e-7000-8000-00000000002a")]
    pub aggregate_id: String,
    /// The aggregate's version after this event.
    #[schema(example = 1)]
    pub sequence: i64,
    /// Global position (insert order; the feed's order is commit order).
    #[schema(example = 18421)]
    pub position: i64,
    pub recorded_at: DateTime<Utc>,
    /// The user whose request caused it.
    #[schema(example = "0193a59f-0d2c-7000-8000-000000000011")]
    pub actor_id: Option<String>,
    #[schema(example = "5f0c3d1e-8a7b-4c2d-9e6f-1a2b3c4d5e6f")]
    pub request_id: Option<String>,
    /// The request or chain of work it belongs to (carried through the
    /// enrichment worker).
    #[schema(example = "5f0c3d1e-8a7b-4c2d-9e6f-1a2b3c4d5e6f")]
    pub correlation_id: Option<String>,
    /// The event that caused it, for events appended by reactors.
    #[schema(example = "0193a5a2-11f0-7000-8000-0000000000c5")]
    pub causation_id: Option<String>,
    /// The event's data: in the document, each event type's schema
    /// (`AuditEvent.company.added`, …) gives it its payload's type.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

impl From<StoredEvent> for AuditEvent {
    fn from(event: StoredEvent) -> Self {
        let meta = |key: &str| event.metadata_str(key).map(str::to_owned);
        let data = event
            .payload
            .get(&event.event_type)
            .cloned()
            .unwrap_or_else(|| event.payload.clone());
        AuditEvent {
            actor_id: meta(ACTOR_ID),
            request_id: meta(REQUEST_ID),
            correlation_id: meta(CORRELATION_ID),
            causation_id: meta(CAUSATION_ID),
            id: event.event_id,
            event_type: event.event_type,
            version: event.event_version,
            aggregate_type: event.aggregate_type,
            aggregate_id: event.aggregate_id,
            sequence: event.sequence,
            position: event.position,
            recorded_at: event.recorded_at,
            data,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditEventPage {
    /// In commit order.
    pub items: Vec<AuditEvent>,
    /// Pass as `cursor` for the next page; absent when nothing more is
    /// committed yet (ask again later to follow the feed).
    #[schema(example = "WzE4NDIsMF0.Qm9yG3kTz1xPa7c2Lw0vYg")]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FeedParams {
    /// e.g. `company`, `note`, `enrichment_job`.
    pub aggregate_type: Option<String>,
    pub aggregate_id: Option<String>,
    /// e.g. `company.deleted`.
    pub event_type: Option<String>,
    /// Recorded at or after (RFC 3339).
    pub since: Option<DateTime<Utc>>,
    /// Recorded before (RFC 3339).
    pub until: Option<DateTime<Utc>>,
    /// 1–200, default 50.
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// From a previous page's `next_cursor`.
    pub cursor: Option<String>,
}

/// The workspace's events in commit order: who changed what, when.
#[utoipa::path(
    get, path = "/v1/events", tag = TAG, operation_id = "listEvents",
    params(FeedParams),
    responses(
        (status = 200, description = "A page of events", body = AuditEventPage),
        (status = 400, description = "Bad limit, cursor or time", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Only owners and admins read the events", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn list_events(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<FeedParams>,
) -> Result<axum::Json<AuditEventPage>, ApiError> {
    caller.require(Permission::ReadAudit)?;
    let limit = page_limit(params.limit)?;
    let after = params
        .cursor
        .as_deref()
        .map(|c| state.cursors.decode::<(u64, i64)>(c))
        .transpose()?
        .map(|(tx_id, position)| CommitCursor { tx_id, position })
        .unwrap_or_default();
    let filter = FeedFilter {
        aggregate_type: params.aggregate_type,
        aggregate_id: params.aggregate_id,
        event_type: params.event_type,
        since: params.since,
        until: params.until,
    };
    let events = event_log::workspace_feed(
        &state.pool,
        caller.actor.workspace_id.0,
        &filter,
        after,
        i64::from(limit),
        Reading::Opened(&state.vault),
    )
    .await?;
    // A short page means the committed feed is exhausted for now; a full
    // one hands out where to go on.
    let next_cursor = (events.len() == limit as usize)
        .then(|| {
            events.last().map(|e| {
                let at = e.cursor();
                state.cursors.encode(&(at.tx_id, at.position))
            })
        })
        .flatten();
    Ok(axum::Json(AuditEventPage {
        items: events.into_iter().map(AuditEvent::from).collect(),
        next_cursor,
    }))
}

/// A company's events in order, from `company.added` on.
#[utoipa::path(
    get, path = "/v1/companies/{id}/history", tag = TAG, operation_id = "getCompanyHistory",
    params(("id" = Uuid, Path, description = "Company id")),
    responses(
        (status = 200, description = "The company's events", body = AuditEventPage),
        (status = 400, description = "Malformed id", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Only owners and admins read histories", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such company in this workspace (deleted ones keep their history)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn company_history(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<AuditEventPage>, ApiError> {
    caller.require(Permission::ReadAudit)?;
    let events = event_log::read_aggregate(
        &state.pool,
        vcintel_domain::company::AGGREGATE_TYPE,
        &id.to_string(),
        0,
        i64::MAX,
        Reading::Opened(&state.vault),
    )
    .await?;
    let workspace = caller.actor.workspace_id.to_string();
    let ours = events.first().is_some_and(|e| {
        e.metadata_str(vcintel_commands::metadata::WORKSPACE_ID) == Some(workspace.as_str())
    });
    if !ours {
        return Err(ApiError::NotFound);
    }
    Ok(axum::Json(AuditEventPage {
        items: events.into_iter().map(AuditEvent::from).collect(),
        next_cursor: None,
    }))
}
