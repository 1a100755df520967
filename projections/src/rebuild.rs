//! Rebuilding a read model from the event store.
//!
//! The rebuild empties the read model and replays every event that feeds
//! it, in commit order, through the same code the projector runs, inside
//! one repeatable-read transaction: readers keep seeing the old read model
//! until the new one commits, then see the new one whole. It holds the read
//! model's rebuild lock exclusively, so the projector's transactions for
//! that read model wait (their messages stay unacknowledged) and resume on
//! top of it; events committed after the rebuild's snapshot reach it that
//! way, and the versions make the projector skip what the rebuild applied.

use crate::runner::{apply_events, REBUILD_LOCK_CLASS};
use crate::{Projection, ProjectionError, READ_MODELS};
use sqlx::{Connection, PgConnection, PgPool};
use vcintel_infra::event_log::{self, CommitCursor};
use vcintel_infra::wire::EventMessage;

/// Events replayed per statement batch.
const REPLAY_BATCH: i64 = 1_000;

/// What a rebuild replayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rebuilt {
    pub read_model: &'static str,
    pub events: u64,
}

/// Rebuilds the read model named `name` (see [`READ_MODELS`]).
pub async fn rebuild_by_name(pool: &PgPool, name: &str) -> Result<Rebuilt, ProjectionError> {
    use crate::{companies, enrichment_jobs, identity, lists, notes, saved_searches, usage};
    match name {
        companies::CompaniesProjection::NAME => {
            rebuild::<companies::CompaniesProjection>(pool).await
        }
        identity::WorkspacesProjection::NAME => {
            rebuild::<identity::WorkspacesProjection>(pool).await
        }
        identity::UsersProjection::NAME => rebuild::<identity::UsersProjection>(pool).await,
        notes::NotesProjection::NAME => rebuild::<notes::NotesProjection>(pool).await,
        lists::ListsProjection::NAME => rebuild::<lists::ListsProjection>(pool).await,
        saved_searches::SavedSearchesProjection::NAME => {
            rebuild::<saved_searches::SavedSearchesProjection>(pool).await
        }
        enrichment_jobs::EnrichmentJobsProjection::NAME => {
            rebuild::<enrichment_jobs::EnrichmentJobsProjection>(pool).await
        }
        usage::UsageProjection::NAME => rebuild::<usage::UsageProjection>(pool).await,
        other => Err(ProjectionError::UnknownReadModel {
            name: other.to_owned(),
            known: READ_MODELS
                .iter()
                .map(|m| m.name)
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// Rebuilds P's read model from every event in the store.
pub async fn rebuild<P: Projection>(pool: &PgPool) -> Result<Rebuilt, ProjectionError> {
    // A connection of its own, closed afterwards: the session lock must
    // never go back to the pool with it, whatever happens in between.
    let mut connection = pool.acquire().await?.detach();
    sqlx::query("select pg_advisory_lock($1, hashtext($2))")
        .bind(REBUILD_LOCK_CLASS)
        .bind(P::NAME)
        .execute(&mut connection)
        .await?;
    let replayed = replay_all::<P>(&mut connection).await;
    connection.close().await?;
    let events = replayed?;
    tracing::info!(
        read_model = P::NAME,
        events,
        "read model rebuilt from the event store"
    );
    Ok(Rebuilt {
        read_model: P::NAME,
        events,
    })
}

async fn replay_all<P: Projection>(connection: &mut PgConnection) -> Result<u64, ProjectionError> {
    let mut tx = connection.begin().await?;
    // The snapshot is taken after the lock: no projector transaction of
    // this read model is running or can start until the rebuild commits.
    sqlx::query("set transaction isolation level repeatable read")
        .execute(&mut *tx)
        .await?;
    sqlx::raw_sql(P::RESET_SQL).execute(&mut *tx).await?;
    sqlx::query("delete from projection_versions where projection = $1")
        .bind(P::NAME)
        .execute(&mut *tx)
        .await?;
    let mut after = CommitCursor::default();
    let mut replayed = 0u64;
    loop {
        let stored =
            event_log::read_visible_after(&mut *tx, Some(P::AGGREGATE_TYPES), after, REPLAY_BATCH)
                .await?;
        let Some(last) = stored.last() else {
            break;
        };
        after = last.cursor();
        let messages = stored
            .iter()
            .map(|event| {
                EventMessage::from_stored(event).map_err(|e| ProjectionError::Undecodable {
                    event_id: event.event_id,
                    reason: e.to_string(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let batch: Vec<&EventMessage> = messages.iter().collect();
        apply_events::<P>(&mut tx, &batch).await?;
        replayed += batch.len() as u64;
    }
    tx.commit().await?;
    Ok(replayed)
}
