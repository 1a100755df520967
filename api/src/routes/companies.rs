//! `/v1/companies`: add, update, delete, read and list companies.

use crate::auth::Caller;
use crate::consistency::{wait_for_version, Reads};
use crate::error::{ApiError, Problem};
use crate::http::extract::{Json, Path, Query};
use crate::http::pagination::{page_limit, Cursors};
use crate::http::preconditions::{conditional, if_match_version};
use crate::http::respond::{accepted, created, tag, CommandAccepted};
use crate::state::AppState;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;
use vcintel_domain::company::{CompanyChanges, CompanyId, CompanyInput, Stage};
use vcintel_domain::saved_search::SearchFilters;
use vcintel_projections::companies::{
    self as read_model, After, CompanyFilter, CompanyRow, SortKey,
};

pub const TAG: &str = "companies";

/// A company to add to the caller's workspace.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Acme Robotics", "website": "https://www.acme.io", "sector": "Robotics", "stage": "seed", "location": "Berlin"}))]
pub struct AddCompanyRequest {
    /// Display name, 1–200 characters.
    pub name: String,
    /// The company's website; stored normalised (no scheme, `www.`, case or trailing slash).
    pub website: String,
    /// Sector, up to 100 characters.
    #[serde(default)]
    pub sector: Option<String>,
    #[serde(default)]
    pub stage: Option<Stage>,
    /// Headquarters location, up to 200 characters.
    #[serde(default)]
    pub location: Option<String>,
}

/// A partial update: omitted fields are unchanged; `null` clears an optional field.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"stage": "series_a", "location": null}))]
pub struct UpdateCompanyRequest {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub website: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub sector: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Stage>)]
    pub stage: Option<Option<Stage>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub location: Option<Option<String>>,
}

/// Distinguishes a field sent as `null` (Some(None)) from one left out (None).
fn present<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// A company as analysts see it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": "0193a5a0-7c1e-7000-8000-00000000002a", "name": "Acme Robotics", "website": "acme-robotics.io", "url": "https://acme-robotics.io", "sector": "Robotics", "stage": "seed", "location": "Berlin", "added_by": "0193a59f-0d2c-7000-8000-000000000011", "added_at": "2026-12-07T09:41:12Z", "updated_at": "2026-12-07T14:32:05Z", "version": 4, "score": 82, "summary": "Builds autonomous picking robots for mid-size warehouses."}))]
pub struct Company {
    pub id: Uuid,
    pub name: String,
    /// Normalised website, e.g. `acme.io`.
    pub website: String,
    /// Address to visit.
    pub url: String,
    pub sector: Option<String>,
    #[schema(value_type = Option<Stage>)]
    pub stage: Option<String>,
    pub location: Option<String>,
    /// User who added it.
    pub added_by: Uuid,
    pub added_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The aggregate version this representation reflects (also the `ETag`).
    pub version: u64,
    /// Fit score 0–100, once enriched.
    pub score: Option<i32>,
    /// What enrichment found the company does, once enriched.
    pub summary: Option<String>,
}

/// A company with what the team knows about it: its newest notes and the
/// lists it is in. The `ETag` covers all of it, so a new note on the
/// company changes the tag; its leading number is the company's version,
/// which is what `If-Match` on an update compares.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CompanyDetail {
    #[serde(flatten)]
    pub company: Company,
    /// The newest notes (at most 20); `listNotes` pages through all of them.
    pub notes: Vec<crate::routes::notes::Note>,
    /// How many notes the company has.
    #[schema(example = 3)]
    pub note_count: i64,
    /// The lists the company is in, by name.
    pub lists: Vec<ListMembership>,
    /// The latest enrichment, once one has succeeded.
    pub enrichment: Option<crate::routes::enrichments::Enrichment>,
    pub enriched_at: Option<DateTime<Utc>>,
    /// Set on a historical read (`as_of`): the company's
    /// own fields as they were then; notes, lists and enrichment are other
    /// aggregates and are left empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_of: Option<AsOf>,
}

/// A list a company is in.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ListMembership {
    pub id: Uuid,
    #[schema(example = "Partner meeting Monday")]
    pub name: String,
}

/// Notes a company's detail embeds.
const NOTES_IN_DETAIL: i64 = 20;

impl From<CompanyRow> for Company {
    fn from(row: CompanyRow) -> Self {
        Company {
            id: row.id,
            url: format!("https://{}", row.website),
            name: row.name,
            website: row.website,
            sector: row.sector,
            stage: row.stage,
            location: row.location,
            added_by: row.added_by,
            added_at: row.added_at,
            updated_at: row.updated_at,
            version: row.version as u64,
            score: row.score,
            summary: row.summary,
        }
    }
}

/// A page of companies.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CompanyPage {
    pub items: Vec<Company>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[schema(example = "WyJhY21lIHJvYm90aWNzIiwiMDE5M2E1YTAtN2MxZSJd.Qm9yG3kTz1xPa7c2Lw0vYg")]
    pub next_cursor: Option<String>,
}

/// The order of a company listing: a field, `-` in front for descending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
pub enum CompanySort {
    /// When added, oldest first (the default).
    #[default]
    #[serde(rename = "added")]
    AddedAsc,
    #[serde(rename = "-added")]
    AddedDesc,
    /// Name, case-insensitive.
    #[serde(rename = "name")]
    NameAsc,
    #[serde(rename = "-name")]
    NameDesc,
    /// Fit score; companies without one count as lowest.
    #[serde(rename = "score")]
    ScoreAsc,
    #[serde(rename = "-score")]
    ScoreDesc,
}

impl CompanySort {
    fn key(self) -> (SortKey, bool) {
        match self {
            CompanySort::AddedAsc => (SortKey::Added, false),
            CompanySort::AddedDesc => (SortKey::Added, true),
            CompanySort::NameAsc => (SortKey::Name, false),
            CompanySort::NameDesc => (SortKey::Name, true),
            CompanySort::ScoreAsc => (SortKey::Score, false),
            CompanySort::ScoreDesc => (SortKey::Score, true),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListCompaniesParams {
    /// Page size, 1–200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// Opaque cursor from a previous page's `next_cursor` (same filters and sort).
    pub cursor: Option<String>,
    /// Only this sector (case-insensitive).
    pub sector: Option<String>,
    /// Only this stage.
    pub stage: Option<Stage>,
    /// Only this location (case-insensitive).
    pub location: Option<String>,
    /// Only companies with at least this fit score (0–100).
    #[param(minimum = 0, maximum = 100)]
    pub min_score: Option<i32>,
    /// Full-text search over name, website, sector and location: words,
    /// `"quoted phrases"`, `-excluded` words.
    pub q: Option<String>,
    /// `added` (default), `name` or `score`; prefix `-` for descending.
    pub sort: Option<CompanySort>,
}

/// What a company page's cursor remembers.
#[derive(Debug, Serialize, Deserialize)]
struct SearchCursor {
    sort: CompanySort,
    value: String,
    id: Uuid,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct GetCompanyParams {
    /// Read your own write: wait (a bounded time) until the read model
    /// reflects at least this version. 503 with `Retry-After` if it does not
    /// in time.
    pub min_version: Option<u64>,
    /// Time travel (owners and admins): the company as it was after a
    /// version of it (a number) or at a moment (an RFC 3339 time), folded
    /// from its events.
    #[param(value_type = Option<PastPoint>)]
    pub as_of: Option<String>,
}

/// A point in a resource's past: a version of it, or a moment. One
/// parameter, so "a version or a time, not both" is in the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PastPoint {
    Version(i64),
    Time(DateTime<Utc>),
}

impl PastPoint {
    /// Digits are a version; anything else must be an RFC 3339 time.
    pub fn parse(text: &str) -> Result<PastPoint, ApiError> {
        let bad = || ApiError::BadRequest {
            detail: "must be a version (a number) or an RFC 3339 time".to_owned(),
            field: Some("as_of".to_owned()),
        };
        if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            return text.parse().map(PastPoint::Version).map_err(|_| bad());
        }
        DateTime::parse_from_rfc3339(text)
            .map(|at| PastPoint::Time(at.with_timezone(&Utc)))
            .map_err(|_| bad())
    }
}

impl utoipa::PartialSchema for PastPoint {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{
            KnownFormat, ObjectBuilder, OneOfBuilder, SchemaFormat, Type,
        };
        OneOfBuilder::new()
            .description(Some("A version of the resource, or a moment (RFC 3339)."))
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                    .minimum(Some(0)),
            )
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime))),
            )
            .into()
    }
}

impl ToSchema for PastPoint {}

/// Which past state a historical read shows.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AsOf {
    /// The company's version at that point.
    #[schema(example = 4)]
    pub version: u64,
    /// When that version was recorded.
    pub recorded_at: DateTime<Utc>,
}

/// Add a company to the caller's workspace.
#[utoipa::path(
    post, path = "/v1/companies", tag = TAG, operation_id = "addCompany",
    request_body = AddCompanyRequest,
    responses(
        (status = 201, description = "Added", body = CommandAccepted,
         headers(("Location" = String, description = "The company's URL"), ("ETag" = String, description = "The new version"))),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The caller's role may not add companies", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Another company of the workspace has this website (normalised); `existing_id` and `Location` name it", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn add_company(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Json(body): Json<AddCompanyRequest>,
) -> Result<Response, ApiError> {
    let input = CompanyInput {
        name: body.name,
        website: body.website,
        sector: body.sector,
        stage: body.stage,
        location: body.location,
    };
    let committed = state
        .companies
        .add(caller.actor, input, &caller.metadata(&headers))
        .await?;
    created(&committed, "/v1/companies")
}

/// Change a company's details. Send `If-Match: "<version>"` to refuse the
/// change if someone else changed it first.
#[utoipa::path(
    patch, path = "/v1/companies/{id}", tag = TAG, operation_id = "updateCompany",
    params(("id" = Uuid, Path, description = "Company id"),
           ("If-Match" = Option<String>, Header, description = "Expected current version, e.g. `\"3\"`")),
    request_body = UpdateCompanyRequest,
    responses(
        (status = 200, description = "Updated (or unchanged)", body = CommandAccepted,
         headers(("ETag" = String, description = "The new version"))),
        (status = 400, description = "Malformed JSON, id or If-Match", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The caller's role may not update companies", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such company in this workspace", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A concurrent change won (re-read and retry), or another company has this website (`existing_id`)", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "If-Match names an old version", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn update_company(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
    Json(body): Json<UpdateCompanyRequest>,
) -> Result<Response, ApiError> {
    let expected = if_match_version(&headers)?;
    let changes = CompanyChanges {
        name: body.name,
        website: body.website,
        sector: body.sector,
        stage: body.stage,
        location: body.location,
    };
    let committed = state
        .companies
        .update_details(
            caller.actor,
            CompanyId(id),
            changes,
            expected,
            &caller.metadata(&headers),
        )
        .await?;
    Ok(accepted(id, &committed))
}

/// Delete a company. Its id answers 404 afterwards.
#[utoipa::path(
    delete, path = "/v1/companies/{id}", tag = TAG, operation_id = "deleteCompany",
    params(("id" = Uuid, Path, description = "Company id"),
           ("If-Match" = Option<String>, Header, description = "Expected current version, e.g. `\"3\"`")),
    responses(
        (status = 200, description = "Deleted", body = CommandAccepted),
        (status = 400, description = "Malformed id or If-Match", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The caller's role may not delete companies", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such company in this workspace", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A concurrent change won", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "If-Match names an old version", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn delete_company(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let expected = if_match_version(&headers)?;
    let committed = state
        .companies
        .delete(
            caller.actor,
            CompanyId(id),
            expected,
            &caller.metadata(&headers),
        )
        .await?;
    Ok(accepted(id, &committed))
}

/// Read one company, with its newest notes and the lists it is in.
#[utoipa::path(
    get, path = "/v1/companies/{id}", tag = TAG, operation_id = "getCompany",
    params(("id" = Uuid, Path, description = "Company id"), GetCompanyParams,
           ("If-None-Match" = Option<String>, Header, description = "A previously returned ETag")),
    responses(
        (status = 200, description = "The company with its newest notes and its lists", body = CompanyDetail,
         headers(("ETag" = String, description = "Tags the whole representation (notes and lists included); its leading number is the company's version, which `If-Match` compares; a past state (`as_of`) is tagged `\"<version>-past\"`"))),
        (status = 304, description = "Not modified since the given ETag"),
        (status = 400, description = "Malformed id or parameter", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such company in this workspace", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`min_version` is beyond the resource's latest version (`version-not-reached`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The read model did not reach `min_version` in time", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn get_company(
    State(state): State<AppState>,
    mut reads: Reads,
    caller: Caller,
    Path(id): Path<Uuid>,
    Query(params): Query<GetCompanyParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(min_version) = params.min_version {
        wait_for_version(
            &state.read_your_writes,
            &mut reads,
            caller.actor.workspace_id,
            vcintel_domain::company::AGGREGATE_TYPE,
            id,
            min_version,
        )
        .await?;
    }
    if let Some(as_of) = &params.as_of {
        let point = PastPoint::parse(as_of)?;
        return historical_company(&state, &caller, id, point, &headers).await;
    }
    let workspace = caller.actor.workspace_id;
    let read_model::CompanyDetailRow {
        company: row,
        notes,
        note_count,
        lists,
    } = read_model::detail(reads.pool(), workspace, id, NOTES_IN_DETAIL)
        .await?
        .ok_or(ApiError::NotFound)?;
    let version = row.version as u64;
    let enrichment = row
        .enrichment
        .as_ref()
        .map(|json| crate::routes::enrichments::Enrichment::from(&json.0));
    let enriched_at = row.enriched_at;
    let detail = CompanyDetail {
        as_of: None,
        enrichment,
        enriched_at,
        company: Company::from(row),
        notes: notes.0.into_iter().map(Into::into).collect(),
        note_count,
        lists: lists
            .0
            .into_iter()
            .map(|list| ListMembership {
                id: list.id,
                name: list.name,
            })
            .collect(),
    };
    let body = serde_json::to_vec(&detail).map_err(|e| ApiError::Internal(e.into()))?;
    let digest = vcintel_infra::accounts::sha256_bytes(&body);
    let digest: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    Ok(conditional(
        &headers,
        tag(&format!("{version}-{digest}")),
        ([(header::CONTENT_TYPE, "application/json")], body),
    ))
}

/// The company folded from its events up to a version or a moment.
async fn historical_company(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
    point: PastPoint,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    caller.require(vcintel_domain::Permission::ReadAudit)?;
    let (up_to, at) = match point {
        PastPoint::Version(version) => (version, None),
        PastPoint::Time(at) => (i64::MAX, Some(at)),
    };
    let stored = vcintel_infra::event_log::read_aggregate(
        &state.pool,
        vcintel_domain::company::AGGREGATE_TYPE,
        &id.to_string(),
        0,
        up_to,
        vcintel_infra::event_log::Reading::Opened(&state.vault),
    )
    .await?;
    let stored: Vec<_> = stored
        .into_iter()
        .filter(|e| at.is_none_or(|at| e.recorded_at <= at))
        .collect();
    let mut events = Vec::with_capacity(stored.len());
    for event in &stored {
        let decoded: vcintel_domain::company::CompanyEvent =
            serde_json::from_value(event.payload.clone())
                .map_err(|e| ApiError::Internal(e.into()))?;
        events.push(decoded);
    }
    let folded = vcintel_domain::company::Company::from_events(&events);
    let (Some(details), Some(last), Some(first)) =
        (folded.details(), stored.last(), stored.first())
    else {
        return Err(ApiError::NotFound);
    };
    if folded.workspace_id() != Some(caller.actor.workspace_id) {
        return Err(ApiError::NotFound);
    }
    let added_by = events
        .iter()
        .find_map(|e| match e {
            vcintel_domain::company::CompanyEvent::Added(a) => Some(a.added_by.0),
            _ => None,
        })
        .unwrap_or_default();
    let version = last.sequence as u64;
    let detail = CompanyDetail {
        company: Company {
            id,
            name: details.name.clone(),
            website: details.website.as_str().to_owned(),
            url: format!("https://{}", details.website.as_str()),
            sector: details.sector.clone(),
            stage: details.stage.map(|s| s.as_str().to_owned()),
            location: details.location.clone(),
            added_by,
            added_at: first.recorded_at,
            updated_at: last.recorded_at,
            version,
            score: None,
            summary: None,
        },
        notes: vec![],
        note_count: 0,
        lists: vec![],
        enrichment: None,
        enriched_at: None,
        as_of: Some(AsOf {
            version,
            recorded_at: last.recorded_at,
        }),
    };
    // A past state is its own representation: tagged with its version, and
    // apart from the current detail's tags.
    Ok(conditional(
        headers,
        tag(&format!("{version}-past")),
        axum::Json(detail),
    ))
}

/// List, filter, search and sort the workspace's companies, a page at a
/// time. Pages are keyset-paginated: companies added while paging never
/// shift or repeat a page.
#[utoipa::path(
    get, path = "/v1/companies", tag = TAG, operation_id = "listCompanies",
    params(ListCompaniesParams),
    responses(
        (status = 200, description = "A page of companies", body = CompanyPage),
        (status = 400, description = "Bad limit or cursor", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn list_companies(
    State(state): State<AppState>,
    reads: Reads,
    caller: Caller,
    Query(params): Query<ListCompaniesParams>,
) -> Result<axum::Json<CompanyPage>, ApiError> {
    let limit = page_limit(params.limit)?;
    // The rules a saved search's filters follow (lengths, characters, the
    // score's range), reported under the query parameters' names.
    let mut errors = vcintel_domain::ValidationErrors::default();
    let filters = SearchFilters {
        sector: params.sector,
        stage: params.stage,
        location: params.location,
        min_score: params.min_score.map(|s| u8::try_from(s).unwrap_or(u8::MAX)),
        text: params.q,
    }
    .validated(&mut errors);
    if let Some(error) = errors.fields().first() {
        let field = match error.field.trim_start_matches("filters.") {
            "text" => "q",
            other => other,
        };
        return Err(ApiError::BadRequest {
            detail: error.message.clone(),
            field: Some(field.to_owned()),
        });
    }
    let filter = CompanyFilter::from(filters);
    let page = search_page(
        &state,
        &reads,
        caller.actor.workspace_id,
        &filter,
        params.sort.unwrap_or_default(),
        params.cursor.as_deref(),
        limit,
    )
    .await?;
    Ok(axum::Json(page))
}

/// One page of the workspace's companies matching `filter` (also what a
/// saved search's results are).
pub(crate) async fn search_page(
    state: &AppState,
    reads: &Reads,
    workspace: vcintel_domain::WorkspaceId,
    filter: &CompanyFilter,
    sort: CompanySort,
    cursor: Option<&str>,
    limit: u32,
) -> Result<CompanyPage, ApiError> {
    let after = cursor
        .map(|c| decode_search_cursor(&state.cursors, c, sort))
        .transpose()?;
    let (key, descending) = sort.key();
    let mut conn = reads.pool().acquire().await?;
    let mut rows = read_model::search(
        &mut conn,
        workspace,
        filter,
        key,
        descending,
        after.as_ref(),
        i64::from(limit) + 1,
    )
    .await?;
    let next_cursor = state
        .cursors
        .next(&mut rows, limit, |(row, value)| SearchCursor {
            sort,
            value: value.clone(),
            id: row.id,
        });
    Ok(CompanyPage {
        items: rows
            .into_iter()
            .map(|(row, _)| Company::from(row))
            .collect(),
        next_cursor,
    })
}

fn decode_search_cursor(
    cursors: &Cursors,
    cursor: &str,
    sort: CompanySort,
) -> Result<After, ApiError> {
    let decoded: SearchCursor = cursors.decode(cursor)?;
    if decoded.sort != sort {
        return Err(ApiError::BadRequest {
            detail: "belongs to a listing with another sort order".to_owned(),
            field: Some("cursor".to_owned()),
        });
    }
    Ok(After {
        value: decoded.value,
        id: decoded.id,
    })
}
