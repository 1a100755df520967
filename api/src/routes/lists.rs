//! Lists of companies: `/v1/lists` and `/v1/lists/{list_id}/companies/{id}`.

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
use vcintel_domain::list::ListId;
use vcintel_projections::lists::{self as read_model, ListItemRow, ListRow};

pub const TAG: &str = "lists";

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Q3 pipeline"}))]
pub struct ListName {
    /// 1–100 characters.
    pub name: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": "0193a5a0-7c1e-7000-8000-0000000000b7", "name": "Partner meeting Monday", "created_by": "0193a59f-0d2c-7000-8000-000000000011", "created_at": "2026-12-07T09:41:12Z", "updated_at": "2026-12-07T14:32:05Z", "company_count": 7, "version": 9}))]
pub struct CompanyList {
    pub id: Uuid,
    pub name: String,
    pub created_by: Uuid,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub company_count: i64,
    /// The list's version (also its `ETag`).
    pub version: u64,
}

impl From<ListRow> for CompanyList {
    fn from(row: ListRow) -> Self {
        CompanyList {
            id: row.id,
            name: row.name,
            created_by: row.created_by,
            created_at: row.created_at,
            updated_at: row.updated_at,
            company_count: row.company_count,
            version: row.version as u64,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ListPage {
    pub items: Vec<CompanyList>,
    #[schema(example = "WyJwYXJ0bmVyIG1lZXRpbmciXQ.Qm9yG3kTz1xPa7c2Lw0vYg")]
    pub next_cursor: Option<String>,
}

/// A company in a list, with what a list view shows of it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"company_id": "0193a5a0-7c1e-7000-8000-00000000002a", "name": "Acme Robotics", "website": "acme-robotics.io", "sector": "Robotics", "stage": "seed", "location": "Berlin", "score": 82, "added_by": "0193a59f-0d2c-7000-8000-000000000011", "added_at": "2026-12-07T14:32:05Z"}))]
pub struct ListedCompany {
    pub company_id: Uuid,
    pub name: String,
    pub website: String,
    pub sector: Option<String>,
    #[schema(value_type = Option<vcintel_domain::company::Stage>)]
    pub stage: Option<String>,
    pub location: Option<String>,
    /// Fit score 0–100, once enriched.
    pub score: Option<i32>,
    /// Who put it in the list, and when.
    pub added_by: Uuid,
    pub added_at: DateTime<Utc>,
}

impl From<ListItemRow> for ListedCompany {
    fn from(row: ListItemRow) -> Self {
        ListedCompany {
            company_id: row.company_id,
            name: row.name,
            website: row.website,
            sector: row.sector,
            stage: row.stage,
            location: row.location,
            score: row.score,
            added_by: row.added_by,
            added_at: row.added_at,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ListCompaniesPage {
    pub items: Vec<ListedCompany>,
    #[schema(example = "WyIyMDI2LTEyLTA3VDE0OjMyOjA1WiJd.Qm9yG3kTz1xPa7c2Lw0vYg")]
    pub next_cursor: Option<String>,
}

/// A page of the workspace's lists.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListsPageParams {
    /// Page size, 1–200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// Opaque cursor from a previous page's `next_cursor`.
    pub cursor: Option<String>,
}

/// Reading one list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct GetListParams {
    /// Read your own write: wait (bounded) until the list reflects at least
    /// this version; 503 with `Retry-After` if it does not in time.
    pub min_version: Option<u64>,
}

/// A page of one list's companies.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListItemsParams {
    /// Page size, 1–200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// Opaque cursor from a previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// Read your own write: wait (bounded) until the list reflects at least
    /// this version; 503 with `Retry-After` if it does not in time.
    pub min_version: Option<u64>,
}

/// Create a list.
#[utoipa::path(
    post, path = "/v1/lists", tag = TAG, operation_id = "createList",
    request_body = ListName,
    responses(
        (status = 201, description = "Created", body = CommandAccepted,
         headers(("Location" = String, description = "The list's URL"), ("ETag" = String, description = "The list's version"))),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Viewers may not change lists", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid name", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn create_list(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Json(body): Json<ListName>,
) -> Result<Response, ApiError> {
    let committed = state
        .lists
        .create(caller.actor, body.name, &caller.metadata(&headers))
        .await?;
    created(&committed, "/v1/lists")
}

/// The workspace's lists, oldest first.
#[utoipa::path(
    get, path = "/v1/lists", tag = TAG, operation_id = "listLists",
    params(ListsPageParams),
    responses(
        (status = 200, description = "A page of lists", body = ListPage),
        (status = 400, description = "Bad limit or cursor", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn list_lists(
    State(state): State<AppState>,
    reads: Reads,
    caller: Caller,
    Query(params): Query<ListsPageParams>,
) -> Result<axum::Json<ListPage>, ApiError> {
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
    Ok(axum::Json(ListPage {
        items: rows.into_iter().map(CompanyList::from).collect(),
        next_cursor,
    }))
}

/// One list.
#[utoipa::path(
    get, path = "/v1/lists/{list_id}", tag = TAG, operation_id = "getList",
    params(("list_id" = Uuid, Path, description = "List id"), GetListParams,
           ("If-None-Match" = Option<String>, Header, description = "A previously returned ETag")),
    responses(
        (status = 200, description = "The list", body = CompanyList,
         headers(("ETag" = String, description = "The version this representation reflects"))),
        (status = 304, description = "Not modified since the given ETag"),
        (status = 400, description = "Malformed id or parameter", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such list in this workspace", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`min_version` is beyond the resource's latest version (`version-not-reached`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The read model did not reach `min_version` in time", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn get_list(
    State(state): State<AppState>,
    mut reads: Reads,
    caller: Caller,
    Path(list_id): Path<Uuid>,
    Query(params): Query<GetListParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(min_version) = params.min_version {
        wait_for_version(
            &state.read_your_writes,
            &mut reads,
            caller.actor.workspace_id,
            vcintel_domain::list::AGGREGATE_TYPE,
            list_id,
            min_version,
        )
        .await?;
    }
    let row = read_model::get(reads.pool(), caller.actor.workspace_id, list_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(representation(
        &headers,
        row.version as u64,
        CompanyList::from(row),
    ))
}

/// The companies in a list.
#[utoipa::path(
    get, path = "/v1/lists/{list_id}/companies", tag = TAG, operation_id = "listListCompanies",
    params(("list_id" = Uuid, Path, description = "List id"), ListItemsParams),
    responses(
        (status = 200, description = "A page of the list's companies", body = ListCompaniesPage),
        (status = 400, description = "Malformed id or parameter", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such list in this workspace", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`min_version` is beyond the resource's latest version (`version-not-reached`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The read model did not reach `min_version` in time", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn list_list_companies(
    State(state): State<AppState>,
    mut reads: Reads,
    caller: Caller,
    Path(list_id): Path<Uuid>,
    Query(params): Query<ListItemsParams>,
) -> Result<axum::Json<ListCompaniesPage>, ApiError> {
    if let Some(min_version) = params.min_version {
        wait_for_version(
            &state.read_your_writes,
            &mut reads,
            caller.actor.workspace_id,
            vcintel_domain::list::AGGREGATE_TYPE,
            list_id,
            min_version,
        )
        .await?;
    }
    let workspace = caller.actor.workspace_id;
    read_model::get(reads.pool(), workspace, list_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let limit = page_limit(params.limit)?;
    let after = params
        .cursor
        .as_deref()
        .map(|c| state.cursors.decode(c))
        .transpose()?;
    let mut rows = read_model::items(
        reads.pool(),
        workspace,
        list_id,
        after,
        i64::from(limit) + 1,
    )
    .await?;
    let next_cursor = state.cursors.next(&mut rows, limit, |r| r.company_id);
    Ok(axum::Json(ListCompaniesPage {
        items: rows.into_iter().map(ListedCompany::from).collect(),
        next_cursor,
    }))
}

/// Rename a list.
#[utoipa::path(
    patch, path = "/v1/lists/{list_id}", tag = TAG, operation_id = "renameList",
    params(("list_id" = Uuid, Path, description = "List id"),
           ("If-Match" = Option<String>, Header, description = "Expected current version, e.g. `\"2\"`")),
    request_body = ListName,
    responses(
        (status = 200, description = "Renamed (or unchanged)", body = CommandAccepted),
        (status = 400, description = "Malformed JSON, id or If-Match", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Viewers may not change lists", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such list in this workspace", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A concurrent change won", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "If-Match names an old version", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid name", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn rename_list(
    State(state): State<AppState>,
    caller: Caller,
    Path(list_id): Path<Uuid>,
    headers: HeaderMap,
    Json(body): Json<ListName>,
) -> Result<Response, ApiError> {
    let expected = if_match_version(&headers)?;
    let committed = state
        .lists
        .rename(
            caller.actor,
            ListId(list_id),
            body.name,
            expected,
            &caller.metadata(&headers),
        )
        .await?;
    Ok(accepted(list_id, &committed))
}

/// Delete a list (its companies stay; only the list goes).
#[utoipa::path(
    delete, path = "/v1/lists/{list_id}", tag = TAG, operation_id = "deleteList",
    params(("list_id" = Uuid, Path, description = "List id"),
           ("If-Match" = Option<String>, Header, description = "Expected current version, e.g. `\"2\"`")),
    responses(
        (status = 200, description = "Deleted", body = CommandAccepted),
        (status = 400, description = "Malformed id or If-Match", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Viewers may not change lists", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such list in this workspace", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A concurrent change won", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "If-Match names an old version", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn delete_list(
    State(state): State<AppState>,
    caller: Caller,
    Path(list_id): Path<Uuid>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let expected = if_match_version(&headers)?;
    let committed = state
        .lists
        .delete(
            caller.actor,
            ListId(list_id),
            expected,
            &caller.metadata(&headers),
        )
        .await?;
    Ok(accepted(list_id, &committed))
}

/// Put a company in a list. Already there: nothing changes (200 either way).
#[utoipa::path(
    put, path = "/v1/lists/{list_id}/companies/{id}", tag = TAG, operation_id = "addCompanyToList",
    params(("list_id" = Uuid, Path, description = "List id"), ("id" = Uuid, Path, description = "Company id")),
    responses(
        (status = 200, description = "The company is in the list", body = CommandAccepted),
        (status = 400, description = "Malformed id", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Viewers may not change lists", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such list or company in this workspace", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The list is full", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn add_company_to_list(
    State(state): State<AppState>,
    caller: Caller,
    Path((list_id, company_id)): Path<(Uuid, Uuid)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let committed = state
        .lists
        .add_company(
            caller.actor,
            ListId(list_id),
            CompanyId(company_id),
            &caller.metadata(&headers),
        )
        .await?;
    Ok(accepted(list_id, &committed))
}

/// Take a company out of a list. Not there: nothing changes (200 either way).
#[utoipa::path(
    delete, path = "/v1/lists/{list_id}/companies/{id}", tag = TAG, operation_id = "removeCompanyFromList",
    params(("list_id" = Uuid, Path, description = "List id"), ("id" = Uuid, Path, description = "Company id")),
    responses(
        (status = 200, description = "The company is not in the list", body = CommandAccepted),
        (status = 400, description = "Malformed id", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Viewers may not change lists", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such list in this workspace", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn remove_company_from_list(
    State(state): State<AppState>,
    caller: Caller,
    Path((list_id, company_id)): Path<(Uuid, Uuid)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let committed = state
        .lists
        .remove_company(
            caller.actor,
            ListId(list_id),
            CompanyId(company_id),
            &caller.metadata(&headers),
        )
        .await?;
    Ok(accepted(list_id, &committed))
}
