//! Notes on companies: `/v1/companies/{id}/notes` and `/v1/notes/{note_id}`.

use crate::auth::Caller;
use crate::consistency::{wait_for_version, Reads};
use crate::error::{ApiError, Problem};
use crate::http::extract::{Json, Path, Query};
use crate::http::pagination::page_limit;
use crate::http::preconditions::if_match_version;
use crate::http::respond::{accepted, created, representation, CommandAccepted};
use crate::state::AppState;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;
use vcintel_domain::company::CompanyId;
use vcintel_domain::note::NoteId;
use vcintel_projections::companies as company_model;
use vcintel_projections::notes::{self as read_model, NoteRow};

pub const TAG: &str = "notes";

/// A note's text: plain text up to 10,000 characters; markup is kept as
/// text and never interpreted.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"content": "Met the founders: strong technical team, pre-revenue."}))]
pub struct NoteContent {
    pub content: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": "0193a5a0-7c1e-7000-8000-0000000000b7", "company_id": "0193a5a0-7c1e-7000-8000-00000000002a", "content": "Met the founders at Slush; strong technical team, pilot with two 3PLs.", "added_by": "0193a59f-0d2c-7000-8000-000000000011", "added_at": "2026-12-07T09:41:12Z", "updated_at": "2026-12-07T09:41:12Z", "version": 1}))]
pub struct Note {
    pub id: Uuid,
    pub company_id: Uuid,
    pub content: String,
    pub added_by: Uuid,
    pub added_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The note's version (also its `ETag`).
    pub version: u64,
}

impl From<NoteRow> for Note {
    fn from(row: NoteRow) -> Self {
        Note {
            id: row.id,
            company_id: row.company_id,
            content: row.content,
            added_by: row.added_by,
            added_at: row.added_at,
            updated_at: row.updated_at,
            version: row.version as u64,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NotePage {
    /// Newest first.
    pub items: Vec<Note>,
    /// Pass as `cursor` for older notes; absent on the last page.
    #[schema(example = "WyIyMDI2LTEyLTAxVDA5OjAwOjAwWiJd.Qm9yG3kTz1xPa7c2Lw0vYg")]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListNotesParams {
    /// Page size, 1–200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// Opaque cursor from a previous page's `next_cursor`.
    pub cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct GetNoteParams {
    /// Read your own write: wait (bounded) until the note reflects at least
    /// this version; 503 with `Retry-After` if it does not in time.
    pub min_version: Option<u64>,
}

/// Add a note to a company.
#[utoipa::path(
    post, path = "/v1/companies/{id}/notes", tag = TAG, operation_id = "addNote",
    params(("id" = Uuid, Path, description = "Company id")),
    request_body = NoteContent,
    responses(
        (status = 201, description = "Added", body = CommandAccepted,
         headers(("Location" = String, description = "The note's URL"), ("ETag" = String, description = "The note's version"))),
        (status = 400, description = "Malformed JSON or id", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Viewers may not write notes", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such company in this workspace", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Empty, too long or control characters", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn add_note(
    State(state): State<AppState>,
    caller: Caller,
    Path(company_id): Path<Uuid>,
    headers: HeaderMap,
    Json(body): Json<NoteContent>,
) -> Result<Response, ApiError> {
    let committed = state
        .notes
        .add(
            caller.actor,
            CompanyId(company_id),
            body.content,
            &caller.metadata(&headers),
        )
        .await?;
    created(&committed, "/v1/notes")
}

/// A company's notes, newest first.
#[utoipa::path(
    get, path = "/v1/companies/{id}/notes", tag = TAG, operation_id = "listNotes",
    params(("id" = Uuid, Path, description = "Company id"), ListNotesParams),
    responses(
        (status = 200, description = "A page of notes", body = NotePage),
        (status = 400, description = "Bad id, limit or cursor", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such company in this workspace", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn list_notes(
    State(state): State<AppState>,
    reads: Reads,
    caller: Caller,
    Path(company_id): Path<Uuid>,
    Query(params): Query<ListNotesParams>,
) -> Result<axum::Json<NotePage>, ApiError> {
    let workspace = caller.actor.workspace_id;
    company_model::get(reads.pool(), workspace, company_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let limit = page_limit(params.limit)?;
    let before = params
        .cursor
        .as_deref()
        .map(|c| state.cursors.decode(c))
        .transpose()?;
    let mut rows = read_model::of_company(
        reads.pool(),
        workspace,
        company_id,
        before,
        i64::from(limit) + 1,
    )
    .await?;
    let next_cursor = state.cursors.next(&mut rows, limit, |r| r.id);
    Ok(axum::Json(NotePage {
        items: rows.into_iter().map(Note::from).collect(),
        next_cursor,
    }))
}

/// Read one note.
#[utoipa::path(
    get, path = "/v1/notes/{note_id}", tag = TAG, operation_id = "getNote",
    params(("note_id" = Uuid, Path, description = "Note id"), GetNoteParams,
           ("If-None-Match" = Option<String>, Header, description = "A previously returned ETag")),
    responses(
        (status = 200, description = "The note", body = Note,
         headers(("ETag" = String, description = "The version this representation reflects"))),
        (status = 304, description = "Not modified since the given ETag"),
        (status = 400, description = "Malformed id or parameter", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such note in this workspace (or its company was deleted)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`min_version` is beyond the resource's latest version (`version-not-reached`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The read model did not reach `min_version` in time", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn get_note(
    State(state): State<AppState>,
    mut reads: Reads,
    caller: Caller,
    Path(note_id): Path<Uuid>,
    Query(params): Query<GetNoteParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(min_version) = params.min_version {
        wait_for_version(
            &state.read_your_writes,
            &mut reads,
            caller.actor.workspace_id,
            vcintel_domain::note::AGGREGATE_TYPE,
            note_id,
            min_version,
        )
        .await?;
    }
    let row = read_model::get(reads.pool(), caller.actor.workspace_id, note_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(representation(
        &headers,
        row.version as u64,
        Note::from(row),
    ))
}

/// Edit a note (its author, or an owner or admin).
#[utoipa::path(
    patch, path = "/v1/notes/{note_id}", tag = TAG, operation_id = "editNote",
    params(("note_id" = Uuid, Path, description = "Note id"),
           ("If-Match" = Option<String>, Header, description = "Expected current version, e.g. `\"2\"`")),
    request_body = NoteContent,
    responses(
        (status = 200, description = "Edited (or unchanged)", body = CommandAccepted,
         headers(("ETag" = String, description = "The new version"))),
        (status = 400, description = "Malformed JSON, id or If-Match", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not your note, and you are not an owner or admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such note in this workspace", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A concurrent change won", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "If-Match names an old version", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Empty, too long or control characters", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn edit_note(
    State(state): State<AppState>,
    caller: Caller,
    Path(note_id): Path<Uuid>,
    headers: HeaderMap,
    Json(body): Json<NoteContent>,
) -> Result<Response, ApiError> {
    let expected = if_match_version(&headers)?;
    let committed = state
        .notes
        .edit(
            caller.actor,
            NoteId(note_id),
            body.content,
            expected,
            &caller.metadata(&headers),
        )
        .await?;
    Ok(accepted(note_id, &committed))
}

/// Delete a note (its author, or an owner or admin).
#[utoipa::path(
    delete, path = "/v1/notes/{note_id}", tag = TAG, operation_id = "deleteNote",
    params(("note_id" = Uuid, Path, description = "Note id"),
           ("If-Match" = Option<String>, Header, description = "Expected current version, e.g. `\"2\"`")),
    responses(
        (status = 200, description = "Deleted", body = CommandAccepted),
        (status = 400, description = "Malformed id or If-Match", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not your note, and you are not an owner or admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such note in this workspace", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A concurrent change won", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "If-Match names an old version", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn delete_note(
    State(state): State<AppState>,
    caller: Caller,
    Path(note_id): Path<Uuid>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let expected = if_match_version(&headers)?;
    let committed = state
        .notes
        .delete(
            caller.actor,
            NoteId(note_id),
            expected,
            &caller.metadata(&headers),
        )
        .await?;
    Ok(accepted(note_id, &committed))
}
