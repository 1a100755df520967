//! Saved searches: `/v1/saved-searches` and their results.

use crate::auth::Caller;
use crate::consistency::Reads;
use crate::error::{ApiError, Problem};
use crate::http::extract::{Json, Path, Query};
use crate::http::pagination::page_limit;
use crate::http::preconditions::if_match_version;
use crate::http::respond::{accepted, created, representation, CommandAccepted};
use crate::routes::companies::{search_page, CompanyPage, CompanySort};
use crate::state::AppState;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;
use vcintel_domain::saved_search::{SavedSearchCommand, SavedSearchId, SearchFilters};
use vcintel_projections::companies::CompanyFilter;
use vcintel_projections::saved_searches::{self as read_model, SavedSearchRow};

pub const TAG: &str = "saved-searches";

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Seed robotics in Berlin", "filters": {"sector": "Robotics", "stage": "seed", "location": "Berlin", "min_score": 60}}))]
pub struct CreateSavedSearchRequest {
    /// 1–100 characters.
    pub name: String,
    #[serde(default)]
    pub filters: SearchFilters,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Berlin robotics, seed"}))]
pub struct RenameSavedSearchRequest {
    pub name: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SavedSearchView {
    pub id: Uuid,
    #[schema(example = "Seed robotics in Berlin")]
    pub name: String,
    pub filters: SearchFilters,
    pub created_by: Uuid,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[schema(example = 2)]
    pub version: u64,
}

impl From<SavedSearchRow> for SavedSearchView {
    fn from(row: SavedSearchRow) -> Self {
        SavedSearchView {
            id: row.id,
            name: row.name,
            filters: row.filters.0,
            created_by: row.created_by,
            created_at: row.created_at,
            updated_at: row.updated_at,
            version: row.version as u64,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SavedSearchPage {
    pub items: Vec<SavedSearchView>,
    #[schema(example = "WyJzZWVkIHJvYm90aWNzIl0.Qm9yG3kTz1xPa7c2Lw0vYg")]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SearchPageParams {
    /// Page size, 1–200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// Opaque cursor from a previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// For results only: `added` (default), `name` or `score`; `-` for descending.
    pub sort: Option<CompanySort>,
}

/// Save a search.
#[utoipa::path(
    post, path = "/v1/saved-searches", tag = TAG, operation_id = "createSavedSearch",
    request_body = CreateSavedSearchRequest,
    responses(
        (status = 201, description = "Saved", body = CommandAccepted,
         headers(("Location" = String, description = "The saved search's URL"))),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Viewers may not save searches", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid name or filters", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn create_saved_search(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Json(body): Json<CreateSavedSearchRequest>,
) -> Result<Response, ApiError> {
    let committed = state
        .saved_searches
        .create(
            caller.actor,
            body.name,
            body.filters,
            &caller.metadata(&headers),
        )
        .await?;
    created(&committed, "/v1/saved-searches")
}

/// The workspace's saved searches, oldest first.
#[utoipa::path(
    get, path = "/v1/saved-searches", tag = TAG, operation_id = "listSavedSearches",
    params(SearchPageParams),
    responses(
        (status = 200, description = "A page of saved searches", body = SavedSearchPage),
        (status = 400, description = "Bad limit or cursor", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn list_saved_searches(
    State(state): State<AppState>,
    reads: Reads,
    caller: Caller,
    Query(params): Query<SearchPageParams>,
) -> Result<axum::Json<SavedSearchPage>, ApiError> {
    let limit = page_limit(params.limit)?;
    let after = params
        .cursor
        .as_deref()
        .map(|c| state.cursors.decode(c))
        .transpose()?;
    let mut rows = read_model::list(
        reads.pool(),
        caller.actor.workspace_id,
        after,
        i64::from(limit) + 1,
    )
    .await?;
    let next_cursor = state.cursors.next(&mut rows, limit, |r| r.id);
    Ok(axum::Json(SavedSearchPage {
        items: rows.into_iter().map(SavedSearchView::from).collect(),
        next_cursor,
    }))
}

/// One saved search.
#[utoipa::path(
    get, path = "/v1/saved-searches/{search_id}", tag = TAG, operation_id = "getSavedSearch",
    params(("search_id" = Uuid, Path, description = "Saved search id"),
           ("If-None-Match" = Option<String>, Header, description = "A previously returned ETag")),
    responses(
        (status = 200, description = "The saved search", body = SavedSearchView,
         headers(("ETag" = String, description = "The version this representation reflects"))),
        (status = 304, description = "Not modified since the given ETag"),
        (status = 400, description = "Malformed id", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such saved search in this workspace", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn get_saved_search(
    reads: Reads,
    caller: Caller,
    Path(search_id): Path<Uuid>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let row = read_model::get(reads.pool(), caller.actor.workspace_id, search_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(representation(
        &headers,
        row.version as u64,
        SavedSearchView::from(row),
    ))
}

/// Run a saved search: the companies its filters match, a page at a time.
#[utoipa::path(
    get, path = "/v1/saved-searches/{search_id}/results", tag = TAG, operation_id = "runSavedSearch",
    params(("search_id" = Uuid, Path, description = "Saved search id"), SearchPageParams),
    responses(
        (status = 200, description = "A page of matching companies", body = CompanyPage),
        (status = 400, description = "Malformed id, limit, sort or cursor", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such saved search in this workspace", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn run_saved_search(
    State(state): State<AppState>,
    reads: Reads,
    caller: Caller,
    Path(search_id): Path<Uuid>,
    Query(params): Query<SearchPageParams>,
) -> Result<axum::Json<CompanyPage>, ApiError> {
    let workspace = caller.actor.workspace_id;
    let search = read_model::get(reads.pool(), workspace, search_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let filter = CompanyFilter::from(search.filters.0);
    let page = search_page(
        &state,
        &reads,
        workspace,
        &filter,
        params.sort.unwrap_or_default(),
        params.cursor.as_deref(),
        page_limit(params.limit)?,
    )
    .await?;
    Ok(axum::Json(page))
}

/// Rename a saved search.
#[utoipa::path(
    patch, path = "/v1/saved-searches/{search_id}", tag = TAG, operation_id = "renameSavedSearch",
    params(("search_id" = Uuid, Path, description = "Saved search id"),
           ("If-Match" = Option<String>, Header, description = "Expected current version, e.g. `\"2\"`")),
    request_body = RenameSavedSearchRequest,
    responses(
        (status = 200, description = "Renamed (or unchanged)", body = CommandAccepted),
        (status = 400, description = "Malformed JSON, id or If-Match", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Viewers may not change saved searches", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such saved search in this workspace", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A concurrent change won", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "If-Match names an old version", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid name", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn rename_saved_search(
    State(state): State<AppState>,
    caller: Caller,
    Path(search_id): Path<Uuid>,
    headers: HeaderMap,
    Json(body): Json<RenameSavedSearchRequest>,
) -> Result<Response, ApiError> {
    let expected = if_match_version(&headers)?;
    let command = SavedSearchCommand::Rename {
        actor: caller.actor,
        name: body.name,
    };
    let committed = state
        .saved_searches
        .change(
            caller.actor,
            SavedSearchId(search_id),
            command,
            expected,
            &caller.metadata(&headers),
        )
        .await?;
    Ok(accepted(search_id, &committed))
}

/// Delete a saved search.
#[utoipa::path(
    delete, path = "/v1/saved-searches/{search_id}", tag = TAG, operation_id = "deleteSavedSearch",
    params(("search_id" = Uuid, Path, description = "Saved search id"),
           ("If-Match" = Option<String>, Header, description = "Expected current version, e.g. `\"2\"`")),
    responses(
        (status = 200, description = "Deleted", body = CommandAccepted),
        (status = 400, description = "Malformed id or If-Match", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Viewers may not change saved searches", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such saved search in this workspace", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A concurrent change won", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "If-Match names an old version", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn delete_saved_search(
    State(state): State<AppState>,
    caller: Caller,
    Path(search_id): Path<Uuid>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let expected = if_match_version(&headers)?;
    let command = SavedSearchCommand::Delete {
        actor: caller.actor,
    };
    let committed = state
        .saved_searches
        .change(
            caller.actor,
            SavedSearchId(search_id),
            command,
            expected,
            &caller.metadata(&headers),
        )
        .await?;
    Ok(accepted(search_id, &committed))
}
