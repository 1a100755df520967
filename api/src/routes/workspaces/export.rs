//! A person's data export (`GET /v1/me/export`): everything the service
//! holds about the signed-in person as one JSON document, streamed, so its
//! size never sits in memory: the account, memberships, sessions, security
//! log and enrichment usage, then every event about or by them from the
//! event store (what they added, wrote, made and asked for), in order.

use crate::auth::SignedIn;
use crate::error::{ApiError, Problem};
use crate::routes::audit::AuditEvent;
use crate::routes::workspaces::{Membership, TAG};
use crate::state::AppState;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use futures::SinkExt as _;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;
use vcintel_infra::accounts::{self, SessionRecord};
use vcintel_infra::event_log::{self, Reading};
use vcintel_projections::identity::{self, SecurityLogEntry};
use vcintel_projections::usage::{self, PersonUsage};

/// The export document's format, raised on any change to its shape.
pub const EXPORT_FORMAT: &str = "vcintel.personal-data.v1";

/// Events read per page while streaming.
const PAGE: i64 = 500;

/// The account as registered.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ExportedAccount {
    #[schema(example = "ada@fund.example")]
    pub email: String,
    #[schema(example = "Ada Lovelace")]
    pub name: String,
    #[schema(example = true)]
    pub email_verified: bool,
    /// `free`, `pro` or `enterprise`.
    #[schema(example = "pro")]
    pub tier: String,
}

/// Everything about the signed-in person (the document is streamed in
/// this order, `events` last).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PersonalDataExport {
    /// `vcintel.personal-data.v1`.
    #[schema(example = "vcintel.personal-data.v1")]
    pub format: String,
    pub exported_at: DateTime<Utc>,
    pub user_id: Uuid,
    /// Absent for a development token's user, who has no account.
    pub account: Option<ExportedAccount>,
    /// The workspaces they belong to, with their role.
    pub memberships: Vec<Membership>,
    /// Their sessions still kept: live ones, and ended ones within
    /// retention, with the address and browser each was opened from.
    pub sessions: Vec<SessionRecord>,
    /// The security log's entries about them.
    pub security_events: Vec<SecurityLogEntry>,
    /// What their enrichment requests cost, per workspace and month.
    pub enrichment_usage: Vec<PersonUsage>,
    /// Their account's events, then every event they caused, in order.
    pub events: Vec<AuditEvent>,
}

/// Everything the service holds about you, from the event store and
/// beside it, as one JSON document (streamed).
#[utoipa::path(
    get, path = "/v1/me/export", tag = TAG, operation_id = "exportMyData",
    responses(
        (status = 200, description = "Your data", body = PersonalDataExport,
            headers(("Content-Disposition" = String, description = "attachment; filename=…"))),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "API keys act on workspaces, not accounts", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn export_my_data(
    State(state): State<AppState>,
    caller: SignedIn,
) -> Result<Response, ApiError> {
    let user = caller.user_id;
    let document = export_document(state.vault.clone(), user).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/json".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"vcintel-export-{user}.json\""),
            ),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        Body::from_stream(document),
    )
        .into_response())
}

/// `user`'s export document as a stream of JSON chunks: the head is read
/// before this returns (so its errors are the caller's to answer), the
/// events as the stream is consumed. An error mid-stream ends it with an
/// error, leaving the document unterminated: a reader sees a broken
/// export, never a complete-looking short one. (The API and `vcintel
/// privacy export` both serve it.)
pub async fn export_document(
    vault: vcintel_infra::vault::Vault,
    user: vcintel_domain::UserId,
) -> Result<impl futures::Stream<Item = Result<Bytes, std::io::Error>>, ApiError> {
    let pool = vault.pool().clone();
    let account = accounts::account(&vault, user).await?;
    let account = account.and_then(|account| {
        let registered = account.registration().cloned()?;
        Some(ExportedAccount {
            email: registered.email.text().to_owned(),
            name: registered.name.text().to_owned(),
            email_verified: account.email_verified(),
            tier: serde_json::to_value(registered.tier)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
        })
    });
    let account_events = event_log::read_aggregate(
        &pool,
        vcintel_domain::user::AGGREGATE_TYPE,
        &user.to_string(),
        0,
        i64::MAX,
        Reading::Opened(&vault),
    )
    .await?;
    let head = PersonalDataExport {
        format: EXPORT_FORMAT.to_owned(),
        exported_at: Utc::now(),
        user_id: user.0,
        account,
        memberships: identity::workspaces_of(&pool, user)
            .await?
            .into_iter()
            .map(Membership::from)
            .collect(),
        sessions: accounts::sessions_of(&pool, user).await?,
        security_events: identity::security_log_of(&pool, user).await?,
        enrichment_usage: usage::usage_of_person(&pool, user).await?,
        events: account_events.into_iter().map(AuditEvent::from).collect(),
    };
    // Everything but the events' closing: the events they caused follow,
    // page by page, as they are read.
    let mut opening = serde_json::to_vec(&head).map_err(anyhow::Error::from)?;
    let written = head.events.len();
    let close_at = opening
        .iter()
        .rposition(|b| *b == b']')
        .ok_or_else(|| anyhow::anyhow!("the export's head has no events array"))?;
    opening.truncate(close_at);
    let (mut sender, receiver) =
        futures::channel::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::spawn(async move {
        if sender.send(Ok(Bytes::from(opening))).await.is_err() {
            return;
        }
        let mut first = written == 0;
        let mut after = 0;
        loop {
            let page = match event_log::actor_events_after(
                &pool,
                user.0,
                after,
                PAGE,
                Reading::Opened(&vault),
            )
            .await
            {
                Ok(page) => page,
                Err(error) => {
                    tracing::error!(%error, "a data export stopped");
                    let _ = sender
                        .send(Err(std::io::Error::other("export interrupted")))
                        .await;
                    return;
                }
            };
            let Some(last) = page.last() else { break };
            after = last.position;
            let mut chunk = Vec::new();
            for event in page {
                if event.aggregate_type == vcintel_domain::user::AGGREGATE_TYPE
                    && event.aggregate_id == user.to_string()
                {
                    continue; // the account's events came first
                }
                if !first {
                    chunk.push(b',');
                }
                first = false;
                if serde_json::to_writer(&mut chunk, &AuditEvent::from(event)).is_err() {
                    let _ = sender
                        .send(Err(std::io::Error::other("export interrupted")))
                        .await;
                    return;
                }
            }
            if sender.send(Ok(Bytes::from(chunk))).await.is_err() {
                return; // the reader went away
            }
        }
        let _ = sender.send(Ok(Bytes::from_static(b"]}"))).await;
    });
    Ok(receiver)
}
