//! The `companies` read model: one row per live company.

use crate::{Projection, ProjectionError};
use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgConnection, PgExecutor};
use uuid::Uuid;
use vcintel_domain::company::{CompanyDetails, CompanyEvent, AGGREGATE_TYPE};
use vcintel_domain::WorkspaceId;
use vcintel_infra::wire::EventMessage;

#[derive(Debug)]
pub struct CompaniesProjection;

impl Projection for CompaniesProjection {
    const NAME: &'static str = "companies";
    const AGGREGATE_TYPE: &'static str = AGGREGATE_TYPE;

    async fn apply(tx: &mut PgConnection, event: &EventMessage) -> Result<(), ProjectionError> {
        let decoded: CompanyEvent =
            serde_json::from_value(event.tagged_payload()).map_err(|e| {
                ProjectionError::Undecodable {
                    event_id: event.id,
                    reason: e.to_string(),
                }
            })?;
        let id: Uuid =
            event
                .aggregateid
                .parse()
                .map_err(|e: uuid::Error| ProjectionError::Undecodable {
                    event_id: event.id,
                    reason: e.to_string(),
                })?;
        match decoded {
            CompanyEvent::Added(added) => {
                let d = &added.details;
                sqlx::query(
                    "insert into companies (id, workspace_id, name, website, sector, stage, location,
                                            added_by, added_at, updated_at, version)
                     values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10)",
                )
                .bind(id)
                .bind(added.workspace_id.0)
                .bind(&d.name)
                .bind(d.website.as_str())
                .bind(&d.sector)
                .bind(d.stage.map(|s| s.as_str()))
                .bind(&d.location)
                .bind(added.added_by.0)
                .bind(event.time)
                .bind(event.sequence)
                .execute(&mut *tx)
                .await?;
            }
            CompanyEvent::DetailsUpdated(updated) => {
                update_details(tx, id, &updated.details, event).await?;
            }
            CompanyEvent::Deleted(_) => {
                sqlx::query("delete from companies where id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        Ok(())
    }
}

async fn update_details(
    tx: &mut PgConnection,
    id: Uuid,
    d: &CompanyDetails,
    event: &EventMessage,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "update companies set name = $2, website = $3, sector = $4, stage = $5, location = $6,
                              updated_at = $7, version = $8, projected_at = clock_timestamp()
         where id = $1",
    )
    .bind(id)
    .bind(&d.name)
    .bind(d.website.as_str())
    .bind(&d.sector)
    .bind(d.stage.map(|s| s.as_str()))
    .bind(&d.location)
    .bind(event.time)
    .bind(event.sequence)
    .execute(&mut *tx)
    .await?;
    Ok(())
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
}

const COLUMNS: &str =
    "id, workspace_id, name, website, sector, stage, location, added_by, added_at, updated_at, version";

/// One company of `workspace`; another workspace's id is simply not found.
pub async fn get(
    db: impl PgExecutor<'_>,
    workspace: WorkspaceId,
    id: Uuid,
) -> Result<Option<CompanyRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "select {COLUMNS} from companies where workspace_id = $1 and id = $2"
    ))
    .bind(workspace.0)
    .bind(id)
    .fetch_optional(db)
    .await
}

/// A page of `workspace`'s companies in id order (ids are time-ordered
/// UUIDv7, so this is the order they were added), after `after`.
pub async fn list(
    db: impl PgExecutor<'_>,
    workspace: WorkspaceId,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<CompanyRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "select {COLUMNS} from companies
         where workspace_id = $1 and ($2::uuid is null or id > $2)
         order by id limit $3"
    ))
    .bind(workspace.0)
    .bind(after)
    .bind(limit)
    .fetch_all(db)
    .await
}
