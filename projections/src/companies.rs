//! The `companies` read model: one row per live company.

use crate::{decode_event, AggregateChanges, Projection, ProjectionError};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::types::Json;
use sqlx::{FromRow, PgConnection, PgExecutor};
use uuid::Uuid;
use vcintel_domain::company::{CompanyDetails, CompanyEvent, AGGREGATE_TYPE};
use vcintel_domain::enrichment::{EnrichmentEvent, EnrichmentResult, EnrichmentSucceeded};
use vcintel_domain::WorkspaceId;
use vcintel_infra::wire::EventMessage;

#[derive(Debug)]
pub struct CompaniesProjection;

impl Projection for CompaniesProjection {
    const NAME: &'static str = "companies";
    const AGGREGATE_TYPES: &'static [&'static str] = &[AGGREGATE_TYPE];
    /// A succeeded enrichment lands on its company's row (the newest one
    /// wins, see `write_enrichment`); no other job event matters here.
    const REACTS_TO: &'static [(&'static str, &'static str)] = &[(
        vcintel_domain::enrichment::AGGREGATE_TYPE,
        vcintel_domain::enrichment::SUCCEEDED_EVENT_TYPE,
    )];
    const TABLES: &'static [&'static str] = &["companies"];

    async fn apply_batch(
        tx: &mut PgConnection,
        changes: &[AggregateChanges],
    ) -> Result<(), ProjectionError> {
        let (company_changes, job_changes): (Vec<&AggregateChanges>, Vec<&AggregateChanges>) =
            changes
                .iter()
                .partition(|c| c.aggregate_type == AGGREGATE_TYPE);
        // Companies first: a job can only have been requested for a company
        // that existed, and a deletion in the batch simply leaves the
        // enrichment nothing to land on.
        write_companies(tx, &company_changes).await?;
        for change in job_changes {
            for event in &change.events {
                if let EnrichmentEvent::Succeeded(e) = decode_event::<EnrichmentEvent>(event)? {
                    write_enrichment(tx, &e, event.time).await?;
                }
            }
        }
        Ok(())
    }
}

async fn write_enrichment(
    tx: &mut PgConnection,
    succeeded: &EnrichmentSucceeded,
    at: DateTime<Utc>,
) -> Result<(), ProjectionError> {
    let result = &succeeded.result;
    let extraction = &result.extraction;
    let text = format!(
        "{} {} {}",
        extraction.summary,
        extraction.what_it_does,
        extraction.keywords.join(" ")
    );
    // A company's jobs succeed one after another (one active job per
    // company), so the latest recorded result is the current one; an older
    // one delivered again never overwrites it.
    sqlx::query!(
        "update companies set summary = $2, what_it_does = $3, keywords = $4, enrichment = $5,
                enriched_at = $6, enrichment_text = $7, score = $8, projected_at = clock_timestamp()
         where id = $1 and (enriched_at is null or enriched_at <= $6)",
        succeeded.company_id.0,
        &extraction.summary,
        &extraction.what_it_does,
        &extraction.keywords,
        Json(result) as _,
        at,
        text,
        i32::from(result.score)
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

async fn write_companies(
    tx: &mut PgConnection,
    changes: &[&AggregateChanges],
) -> Result<(), ProjectionError> {
    if changes.is_empty() {
        return Ok(());
    }
    let writes = changes
        .iter()
        .map(|c| fold_to_write(c))
        .collect::<Result<Vec<_>, _>>()?;
    // One statement for the whole batch: rows are inserted, updated or
    // deleted according to each aggregate's folded outcome.
    sqlx::query!(
        r#"with input as (
                 select * from jsonb_to_recordset($1::jsonb) as x(
                     op text, id uuid, workspace_id uuid, name text, website text, sector text,
                     stage text, location text, added_by uuid, added_at timestamptz,
                     updated_at timestamptz, version bigint)
             ), inserted as (
                 insert into companies (id, workspace_id, name, website, sector, stage, location,
                                        added_by, added_at, updated_at, version)
                 select id, workspace_id, name, website, sector, stage, location,
                        added_by, added_at, updated_at, version
                 from input where op = 'insert'
                 returning 1
             ), updated as (
                 update companies c
                 set name = i.name, website = i.website, sector = i.sector, stage = i.stage,
                     location = i.location, updated_at = i.updated_at, version = i.version,
                     projected_at = clock_timestamp()
                 from input i where i.op = 'update' and c.id = i.id
                 returning 1
             ), deleted as (
                 delete from companies c using input i
                 where i.op = 'delete' and c.id = i.id
                 returning 1
             )
             select 1 as "done!""#,
        Json(&writes) as _
    )
    .fetch_one(&mut *tx)
    .await?;
    Ok(())
}

/// The net effect of one aggregate's new events on its row.
#[derive(Debug, Serialize)]
struct RowWrite {
    op: &'static str,
    id: Uuid,
    workspace_id: Option<Uuid>,
    name: Option<String>,
    website: Option<String>,
    sector: Option<String>,
    stage: Option<&'static str>,
    location: Option<String>,
    added_by: Option<Uuid>,
    added_at: Option<DateTime<Utc>>,
    updated_at: DateTime<Utc>,
    version: i64,
}

fn fold_to_write(change: &AggregateChanges) -> Result<RowWrite, ProjectionError> {
    let undecodable = |event: &EventMessage, reason: String| ProjectionError::Undecodable {
        event_id: event.id,
        reason,
    };
    let Some(last) = change.events.last() else {
        return Err(ProjectionError::MissingHistory {
            aggregate_id: change.aggregate_id.clone(),
            from: change.from_version,
            to: change.from_version,
            found: 0,
            expected: 1,
        });
    };
    let id: Uuid = change
        .aggregate_id
        .parse()
        .map_err(|e: uuid::Error| undecodable(last, e.to_string()))?;
    let mut added: Option<(Uuid, DateTime<Utc>)> = None;
    let mut details: Option<(WorkspaceId, CompanyDetails)> = None;
    let mut deleted = false;
    for event in &change.events {
        let decoded: CompanyEvent = serde_json::from_value(event.tagged_payload())
            .map_err(|e| undecodable(event, e.to_string()))?;
        match decoded {
            CompanyEvent::Added(e) => {
                added = Some((e.added_by.0, event.time));
                details = Some((e.workspace_id, e.details));
                deleted = false;
            }
            CompanyEvent::DetailsUpdated(e) => details = Some((e.workspace_id, e.details)),
            CompanyEvent::Deleted(_) => deleted = true,
        }
    }
    let op = if deleted {
        "delete"
    } else if added.is_some() {
        "insert"
    } else {
        "update"
    };
    let (workspace_id, details) = match details {
        Some((ws, d)) => (Some(ws.0), Some(d)),
        None => (None, None),
    };
    Ok(RowWrite {
        op,
        id,
        workspace_id,
        name: details.as_ref().map(|d| d.name.clone()),
        website: details.as_ref().map(|d| d.website.as_str().to_owned()),
        sector: details.as_ref().and_then(|d| d.sector.clone()),
        stage: details.as_ref().and_then(|d| d.stage.map(|s| s.as_str())),
        location: details.as_ref().and_then(|d| d.location.clone()),
        added_by: added.map(|(by, _)| by),
        added_at: added.map(|(_, at)| at),
        updated_at: last.time,
        version: last.sequence,
    })
}

/// A company as the read model holds it.
#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct CompanyRow {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub name: String,
    pub website: String,
    pub sector: Option<String>,
    pub stage: Option<String>,
    pub location: Option<String>,
    pub added_by: Uuid,
    pub added_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i64,
    /// The fit score, once enrichment has given one.
    pub score: Option<i32>,
    pub summary: Option<String>,
    /// The latest accepted enrichment (an `EnrichmentResult`).
    pub enrichment: Option<Json<EnrichmentResult>>,
    pub enriched_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, workspace_id, name, website, sector, stage, location, added_by, added_at, updated_at, version, score, summary, enrichment, enriched_at";

/// One company of `workspace`; another workspace's id is simply not found.
pub async fn get(
    db: impl PgExecutor<'_>,
    workspace: WorkspaceId,
    id: Uuid,
) -> Result<Option<CompanyRow>, sqlx::Error> {
    sqlx::query_as!(
        CompanyRow,
        r#"select id, workspace_id, name, website, sector, stage, location, added_by, added_at,
                  updated_at, version, score, summary,
                  enrichment as "enrichment: Json<EnrichmentResult>",
                  enriched_at
         from companies where workspace_id = $1 and id = $2"#,
        workspace.0,
        id
    )
    .fetch_optional(db)
    .await
}

/// A company with what its detail embeds: its newest notes, how many it
/// has, and the lists it is in (by name).
#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct CompanyDetailRow {
    #[sqlx(flatten)]
    pub company: CompanyRow,
    pub notes: Json<Vec<crate::notes::NoteRow>>,
    pub note_count: i64,
    pub lists: Json<Vec<ListRef>>,
}

/// A list, as a company's detail names it.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct ListRef {
    pub id: Uuid,
    pub name: String,
}

/// One company of `workspace` with its `notes` newest notes, its note count
/// and its lists, in one statement (one round trip; each part an index
/// read of that company's rows only).
pub async fn detail(
    db: impl PgExecutor<'_>,
    workspace: WorkspaceId,
    id: Uuid,
    notes: i64,
) -> Result<Option<CompanyDetailRow>, sqlx::Error> {
    let columns = COLUMNS
        .split(", ")
        .map(|c| format!("c.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    sqlx::query_as(&format!(
        "select {columns},
                (select coalesce(json_agg(n order by n.id desc), '[]')
                 from (select {note_columns} from notes
                       where workspace_id = $1 and company_id = $2
                       order by id desc limit $3) n) as notes,
                (select count(*) from notes where workspace_id = $1 and company_id = $2)
                  as note_count,
                (select coalesce(json_agg(json_build_object('id', l.id, 'name', l.name)
                                          order by l.name, l.id), '[]')
                 from list_items i join lists l on l.id = i.list_id
                 where i.workspace_id = $1 and i.company_id = $2) as lists
         from companies c where c.workspace_id = $1 and c.id = $2",
        note_columns = crate::notes::COLUMNS,
    ))
    .bind(workspace.0)
    .bind(id)
    .bind(notes)
    .fetch_optional(db)
    .await
}

/// What to narrow a company search to; every part is optional.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CompanyFilter {
    /// Case-insensitive equality.
    pub sector: Option<String>,
    pub stage: Option<String>,
    /// Case-insensitive equality.
    pub location: Option<String>,
    pub min_score: Option<i32>,
    /// Full-text query (web-search syntax: words, "phrases", -exclusions)
    /// over name, website, sector and location.
    pub text: Option<String>,
}

impl From<vcintel_domain::saved_search::SearchFilters> for CompanyFilter {
    fn from(filters: vcintel_domain::saved_search::SearchFilters) -> Self {
        CompanyFilter {
            sector: filters.sector,
            stage: filters.stage.map(|s| s.as_str().to_owned()),
            location: filters.location,
            min_score: filters.min_score.map(i32::from),
            text: filters.text,
        }
    }
}

/// The order of a company search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    /// When added (ids are time-ordered UUIDv7).
    Added,
    Name,
    Score,
}

impl SortKey {
    fn expression(self) -> &'static str {
        match self {
            SortKey::Added => "id::text",
            SortKey::Name => "lower(name)",
            SortKey::Score => "coalesce(score, -1)::text",
        }
    }
}

/// Where the previous page ended: its last row's sort value and id. Keyset
/// pagination, so rows added meanwhile never shift or repeat a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct After {
    pub value: String,
    pub id: Uuid,
}

/// One page of `workspace`'s companies matching `filter`, in `sort` order
/// (ties broken by id), after `after`.
pub async fn search(
    db: &mut sqlx::PgConnection,
    workspace: WorkspaceId,
    filter: &CompanyFilter,
    sort: SortKey,
    descending: bool,
    after: Option<&After>,
    limit: i64,
) -> Result<Vec<(CompanyRow, String)>, sqlx::Error> {
    let expression = match sort {
        // Typed expressions keep the indexes usable; the cursor carries text.
        SortKey::Added => "id",
        SortKey::Name => "lower(name)",
        SortKey::Score => "coalesce(score, -1)",
    };
    let cast = match sort {
        SortKey::Added => "::uuid",
        SortKey::Name => "",
        SortKey::Score => "::integer",
    };
    let (direction, comparison) = if descending {
        ("desc", "<")
    } else {
        ("asc", ">")
    };
    let mut query = sqlx::QueryBuilder::new(format!(
        "select {COLUMNS}, {} as sort_value from ",
        sort.expression()
    ));
    match &filter.text {
        // A rare term: find its matches through the GIN index first and
        // sort the few; left to itself the planner may walk the sort
        // order's index and test every row of the workspace (measured at
        // 100k companies: 170 ms instead of a few).
        Some(text) if text_matches_are_few(&mut *db, workspace, text).await? => {
            query
                .push("(select * from companies where workspace_id = ")
                .push_bind(workspace.0)
                .push(" and search @@ websearch_to_tsquery('simple', ")
                .push_bind(text.clone())
                .push(") offset 0) companies where workspace_id = ");
        }
        _ => {
            query.push("companies where workspace_id = ");
        }
    }
    query.push_bind(workspace.0);
    if let Some(sector) = &filter.sector {
        query
            .push(" and lower(sector) = lower(")
            .push_bind(sector.clone())
            .push(")");
    }
    if let Some(stage) = &filter.stage {
        query.push(" and stage = ").push_bind(stage.clone());
    }
    if let Some(location) = &filter.location {
        query
            .push(" and lower(location) = lower(")
            .push_bind(location.clone())
            .push(")");
    }
    if let Some(min_score) = filter.min_score {
        query.push(" and score >= ").push_bind(min_score);
    }
    if let Some(text) = &filter.text {
        query
            .push(" and search @@ websearch_to_tsquery('simple', ")
            .push_bind(text.clone())
            .push(")");
    }
    if let Some(after) = after {
        if sort == SortKey::Added {
            query
                .push(format!(" and id {comparison} "))
                .push_bind(after.id);
        } else {
            query
                .push(format!(" and ({expression}, id) {comparison} ("))
                .push_bind(after.value.clone())
                .push(format!("{cast}, "))
                .push_bind(after.id)
                .push(")");
        }
    }
    if sort == SortKey::Added {
        query.push(format!(" order by id {direction} limit "));
    } else {
        query.push(format!(
            " order by {expression} {direction}, id {direction} limit "
        ));
    }
    query.push_bind(limit);
    // Planned for these values every time: a cached generic plan cannot
    // tell a rare term or sector from a common one, and picks one plan for
    // both (measured at 100k companies: 10-40 ms instead of 1-5).
    let rows = query.build().persistent(false).fetch_all(&mut *db).await?;
    rows.iter()
        .map(|row| {
            let company = CompanyRow::from_row(row)?;
            let value: String = sqlx::Row::try_get(row, "sort_value")?;
            Ok((company, value))
        })
        .collect()
}

/// How many matches make a text search "common": beyond this, walking the
/// sort order's index finds a page of matches quickly.
const FEW_TEXT_MATCHES: i64 = 2_000;

async fn text_matches_are_few(
    db: &mut sqlx::PgConnection,
    workspace: WorkspaceId,
    text: &str,
) -> Result<bool, sqlx::Error> {
    let matches: i64 = sqlx::query_scalar!(
        r#"select count(*) as "count!" from (
             select 1 from companies
             where workspace_id = $1 and search @@ websearch_to_tsquery('simple', $2)
             limit $3) m"#,
        workspace.0,
        text,
        FEW_TEXT_MATCHES
    )
    .persistent(false)
    .fetch_one(db)
    .await?;
    Ok(matches < FEW_TEXT_MATCHES)
}
