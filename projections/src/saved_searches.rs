//! The `saved_searches` read model.

use crate::{aggregate_uuid, decode_event, AggregateChanges, Projection, ProjectionError};
use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::{FromRow, PgConnection, PgExecutor};
use uuid::Uuid;
use vcintel_domain::saved_search::{SavedSearchEvent, SearchFilters};
use vcintel_domain::WorkspaceId;

#[derive(Debug)]
pub struct SavedSearchesProjection;

impl Projection for SavedSearchesProjection {
    const NAME: &'static str = "saved_searches";
    const AGGREGATE_TYPES: &'static [&'static str] =
        &[vcintel_domain::saved_search::AGGREGATE_TYPE];
    const TABLES: &'static [&'static str] = &["saved_searches"];

    async fn apply_batch(
        tx: &mut PgConnection,
        changes: &[AggregateChanges],
    ) -> Result<(), ProjectionError> {
        for change in changes {
            for event in &change.events {
                let id = aggregate_uuid(event)?;
                match decode_event::<SavedSearchEvent>(event)? {
                    SavedSearchEvent::Created(e) => {
                        sqlx::query!("insert into saved_searches (id, workspace_id, name, filters, created_by,
                                                         created_at, updated_at, version)
                             values ($1, $2, $3, $4, $5, $6, $6, $7) on conflict (id) do nothing", id, e.workspace_id.0, &e.name, Json(&e.filters) as _, e.created_by.0, event.time, event.sequence)
                        .execute(&mut *tx)
                        .await?;
                    }
                    SavedSearchEvent::Renamed(e) => {
                        sqlx::query!(
                            "update saved_searches set name = $2, updated_at = $3, version = $4
                             where id = $1",
                            id,
                            &e.name,
                            event.time,
                            event.sequence
                        )
                        .execute(&mut *tx)
                        .await?;
                    }
                    SavedSearchEvent::Deleted(_) => {
                        sqlx::query!("delete from saved_searches where id = $1", id)
                            .execute(&mut *tx)
                            .await?;
                    }
                }
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct SavedSearchRow {
    pub id: Uuid,
    pub name: String,
    pub filters: Json<SearchFilters>,
    pub created_by: Uuid,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i64,
}

pub async fn get(
    db: impl PgExecutor<'_>,
    workspace: WorkspaceId,
    id: Uuid,
) -> Result<Option<SavedSearchRow>, sqlx::Error> {
    sqlx::query_as!(
        SavedSearchRow,
        r#"select id, name, filters as "filters: Json<SearchFilters>", created_by, created_at,
                  updated_at, version
         from saved_searches where workspace_id = $1 and id = $2"#,
        workspace.0,
        id
    )
    .fetch_optional(db)
    .await
}

pub async fn list(
    db: impl PgExecutor<'_>,
    workspace: WorkspaceId,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<SavedSearchRow>, sqlx::Error> {
    sqlx::query_as!(
        SavedSearchRow,
        r#"select id, name, filters as "filters: Json<SearchFilters>", created_by, created_at,
                  updated_at, version
         from saved_searches
         where workspace_id = $1 and ($2::uuid is null or id > $2)
         order by id limit $3"#,
        workspace.0,
        after,
        limit
    )
    .fetch_all(db)
    .await
}
