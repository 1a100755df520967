//! The `notes` read model. It follows note events and reacts to company
//! deletions, so a company's deletion removes its notes in the same projection
//! that adds them: a tombstone keeps out a note whose add raced the
//! deletion, whatever order the two were applied in and on every rebuild.

use crate::{
    aggregate_uuid, apply_of_companies, AggregateChanges, OfCompanies, Projection, ProjectionError,
    COMPANY_DELETED, USER_ERASED,
};
use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgConnection, PgExecutor};
use uuid::Uuid;
use vcintel_domain::note::NoteEvent;
use vcintel_domain::WorkspaceId;
use vcintel_infra::wire::EventMessage;

#[derive(Debug)]
pub struct NotesProjection;

impl Projection for NotesProjection {
    const NAME: &'static str = "notes";
    const AGGREGATE_TYPES: &'static [&'static str] = &[vcintel_domain::note::AGGREGATE_TYPE];
    const REACTS_TO: &'static [(&'static str, &'static str)] = &[COMPANY_DELETED, USER_ERASED];
    const TABLES: &'static [&'static str] = &["notes"];

    async fn apply_batch(
        tx: &mut PgConnection,
        changes: &[AggregateChanges],
    ) -> Result<(), ProjectionError> {
        apply_of_companies::<Self>(tx, changes).await
    }
}

impl OfCompanies for NotesProjection {
    type Event = NoteEvent;
    const FORGET_COMPANY: &'static str =
        "delete from notes where workspace_id = $4 and company_id = $1";
    const FORGET_PERSON: Option<&'static str> =
        Some("update notes set content = $2 where content_by = $1");

    async fn apply_event(
        tx: &mut PgConnection,
        message: &EventMessage,
        event: NoteEvent,
    ) -> Result<(), ProjectionError> {
        apply_note_event(tx, message, event).await
    }
}

async fn apply_note_event(
    tx: &mut PgConnection,
    message: &EventMessage,
    event: NoteEvent,
) -> Result<(), ProjectionError> {
    let id = aggregate_uuid(message)?;
    match event {
        NoteEvent::Added(e) => {
            sqlx::query!(
                "insert into notes (id, workspace_id, company_id, content, added_by, added_at,
                                    updated_at, version, content_by)
                 select $1, $2, $3, $4, $5, $6, $6, $7, $5
                 where not exists (select 1 from company_tombstones
                                   where projection = $8 and company_id = $3)
                 on conflict (id) do nothing",
                id,
                e.workspace_id.0,
                e.company_id.0,
                e.content.text(),
                e.added_by.0,
                message.time,
                message.sequence,
                NotesProjection::NAME
            )
            .execute(&mut *tx)
            .await?;
        }
        NoteEvent::Edited(e) => {
            sqlx::query!(
                "update notes set content = $2, updated_at = $3, version = $4, content_by = $5
                 where id = $1",
                id,
                e.content.text(),
                message.time,
                message.sequence,
                e.edited_by.0
            )
            .execute(&mut *tx)
            .await?;
        }
        NoteEvent::Deleted(_) => {
            sqlx::query!("delete from notes where id = $1", id)
                .execute(&mut *tx)
                .await?;
        }
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, FromRow, serde::Deserialize)]
pub struct NoteRow {
    pub id: Uuid,
    pub company_id: Uuid,
    pub content: String,
    pub added_by: Uuid,
    pub added_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i64,
}

pub(crate) const COLUMNS: &str = "id, company_id, content, added_by, added_at, updated_at, version";

pub async fn get(
    db: impl PgExecutor<'_>,
    workspace: WorkspaceId,
    id: Uuid,
) -> Result<Option<NoteRow>, sqlx::Error> {
    sqlx::query_as!(
        NoteRow,
        "select id, company_id, content, added_by, added_at, updated_at, version
         from notes where workspace_id = $1 and id = $2",
        workspace.0,
        id
    )
    .fetch_optional(db)
    .await
}

/// A company's notes, newest first, after (older than) `before`.
pub async fn of_company(
    db: impl PgExecutor<'_>,
    workspace: WorkspaceId,
    company: Uuid,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<NoteRow>, sqlx::Error> {
    sqlx::query_as!(
        NoteRow,
        "select id, company_id, content, added_by, added_at, updated_at, version
         from notes
         where workspace_id = $1 and company_id = $2 and ($3::uuid is null or id < $3)
         order by id desc limit $4",
        workspace.0,
        company,
        before,
        limit
    )
    .fetch_all(db)
    .await
}
