//! The `lists` and `list_items` read models. Like notes, it reacts to
//! company deletions: a deleted company leaves every list, and a tombstone
//! keeps out an add that raced the deletion.

use crate::{
    aggregate_uuid, apply_of_companies, AggregateChanges, OfCompanies, Projection, ProjectionError,
    COMPANY_DELETED,
};
use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgConnection, PgExecutor};
use uuid::Uuid;
use vcintel_domain::list::ListEvent;
use vcintel_domain::WorkspaceId;
use vcintel_infra::wire::EventMessage;

#[derive(Debug)]
pub struct ListsProjection;

impl Projection for ListsProjection {
    const NAME: &'static str = "lists";
    const AGGREGATE_TYPES: &'static [&'static str] = &[vcintel_domain::list::AGGREGATE_TYPE];
    const REACTS_TO: &'static [(&'static str, &'static str)] = &[COMPANY_DELETED];
    const TABLES: &'static [&'static str] = &["lists", "list_items"];

    async fn apply_batch(
        tx: &mut PgConnection,
        changes: &[AggregateChanges],
    ) -> Result<(), ProjectionError> {
        apply_of_companies::<Self>(tx, changes).await
    }
}

impl OfCompanies for ListsProjection {
    type Event = ListEvent;
    const FORGET_COMPANY: &'static str =
        "delete from list_items where workspace_id = $4 and company_id = $1";

    async fn apply_event(
        tx: &mut PgConnection,
        message: &EventMessage,
        event: ListEvent,
    ) -> Result<(), ProjectionError> {
        apply_list_event(tx, message, event).await
    }
}

async fn apply_list_event(
    tx: &mut PgConnection,
    message: &EventMessage,
    event: ListEvent,
) -> Result<(), ProjectionError> {
    let id = aggregate_uuid(message)?;
    match event {
        ListEvent::Created(e) => {
            sqlx::query!("insert into lists (id, workspace_id, name, created_by, created_at, updated_at, version)
                 values ($1, $2, $3, $4, $5, $5, $6) on conflict (id) do nothing", id, e.workspace_id.0, &e.name, e.created_by.0, message.time, message.sequence)
            .execute(&mut *tx)
            .await?;
            return Ok(());
        }
        ListEvent::Renamed(e) => {
            sqlx::query!("update lists set name = $2 where id = $1", id, &e.name)
                .execute(&mut *tx)
                .await?;
        }
        ListEvent::Deleted(_) => {
            sqlx::query!(
                "with items as (delete from list_items where list_id = $1)
                 delete from lists where id = $1",
                id
            )
            .execute(&mut *tx)
            .await?;
            return Ok(());
        }
        ListEvent::CompanyAdded(e) => {
            sqlx::query!(
                "insert into list_items (list_id, company_id, workspace_id, added_by, added_at)
                 select $1, $2, $3, $4, $5
                 where not exists (select 1 from company_tombstones
                                   where projection = $6 and company_id = $2)
                 on conflict do nothing",
                id,
                e.company_id.0,
                e.workspace_id.0,
                e.added_by.0,
                message.time,
                ListsProjection::NAME
            )
            .execute(&mut *tx)
            .await?;
        }
        ListEvent::CompanyRemoved(e) => {
            sqlx::query!(
                "delete from list_items where list_id = $1 and company_id = $2",
                id,
                e.company_id.0
            )
            .execute(&mut *tx)
            .await?;
        }
    }
    sqlx::query!(
        "update lists set updated_at = $2, version = $3 where id = $1",
        id,
        message.time,
        message.sequence
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct ListRow {
    pub id: Uuid,
    pub name: String,
    pub created_by: Uuid,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i64,
    pub company_count: i64,
}

pub async fn get(
    db: impl PgExecutor<'_>,
    workspace: WorkspaceId,
    id: Uuid,
) -> Result<Option<ListRow>, sqlx::Error> {
    sqlx::query_as!(
        ListRow,
        r#"select l.id, l.name, l.created_by, l.created_at, l.updated_at, l.version,
                  (select count(*) from list_items i where i.list_id = l.id) as "company_count!"
         from lists l where l.workspace_id = $1 and l.id = $2"#,
        workspace.0,
        id
    )
    .fetch_optional(db)
    .await
}

/// The workspace's lists in creation order, after `after`.
pub async fn list(
    db: impl PgExecutor<'_>,
    workspace: WorkspaceId,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<ListRow>, sqlx::Error> {
    sqlx::query_as!(
        ListRow,
        r#"select l.id, l.name, l.created_by, l.created_at, l.updated_at, l.version,
                  (select count(*) from list_items i where i.list_id = l.id) as "company_count!"
         from lists l
         where l.workspace_id = $1 and ($2::uuid is null or l.id > $2)
         order by l.id limit $3"#,
        workspace.0,
        after,
        limit
    )
    .fetch_all(db)
    .await
}

/// A company in a list, as the list shows it.
#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct ListItemRow {
    pub company_id: Uuid,
    pub name: String,
    pub website: String,
    pub sector: Option<String>,
    pub stage: Option<String>,
    pub location: Option<String>,
    pub score: Option<i32>,
    pub added_by: Uuid,
    pub added_at: DateTime<Utc>,
}

/// A list's companies in company-id order, after `after`; only companies
/// the companies read model shows.
pub async fn items(
    db: impl PgExecutor<'_>,
    workspace: WorkspaceId,
    list: Uuid,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<ListItemRow>, sqlx::Error> {
    sqlx::query_as!(ListItemRow, "select i.company_id, c.name, c.website, c.sector, c.stage, c.location, c.score,
                i.added_by, i.added_at
         from list_items i join companies c on c.id = i.company_id and c.workspace_id = i.workspace_id
         where i.workspace_id = $1 and i.list_id = $2 and ($3::uuid is null or i.company_id > $3)
         order by i.company_id limit $4", workspace.0, list, after, limit)
    .fetch_all(db)
    .await
}
