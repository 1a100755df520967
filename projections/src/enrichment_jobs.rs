//! The `enrichment_jobs` read model: each job's state, attempts, timings,
//! last error and result, for `GET /v1/enrichment-jobs/{id}` and the
//! per-user cap on active jobs. It reacts to company deletions too: a deleted
//! company's jobs leave the read model, and a tombstone keeps a job event
//! that raced the deletion from bringing one back.

use crate::{
    aggregate_uuid, apply_of_companies, AggregateChanges, OfCompanies, Projection, ProjectionError,
    COMPANY_DELETED,
};
use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::{FromRow, PgConnection, PgExecutor};
use uuid::Uuid;
use vcintel_domain::enrichment::{EnrichmentEvent, EnrichmentResult, JobState};
use vcintel_domain::WorkspaceId;
use vcintel_infra::wire::EventMessage;

#[derive(Debug)]
pub struct EnrichmentJobsProjection;

impl Projection for EnrichmentJobsProjection {
    const NAME: &'static str = "enrichment_jobs";
    const AGGREGATE_TYPES: &'static [&'static str] = &[vcintel_domain::enrichment::AGGREGATE_TYPE];
    const REACTS_TO: &'static [(&'static str, &'static str)] = &[COMPANY_DELETED];
    const TABLES: &'static [&'static str] = &["enrichment_jobs"];

    async fn apply_batch(
        tx: &mut PgConnection,
        changes: &[AggregateChanges],
    ) -> Result<(), ProjectionError> {
        apply_of_companies::<Self>(tx, changes).await
    }
}

impl OfCompanies for EnrichmentJobsProjection {
    type Event = EnrichmentEvent;
    const FORGET_COMPANY: &'static str =
        "delete from enrichment_jobs where workspace_id = $4 and company_id = $1";

    async fn apply_event(
        tx: &mut PgConnection,
        message: &EventMessage,
        event: EnrichmentEvent,
    ) -> Result<(), ProjectionError> {
        apply_job_event(tx, message, event).await
    }
}

async fn apply_job_event(
    tx: &mut PgConnection,
    message: &EventMessage,
    event: EnrichmentEvent,
) -> Result<(), ProjectionError> {
    let id = aggregate_uuid(message)?;
    match event {
        EnrichmentEvent::Requested(e) => {
            sqlx::query!(
                "insert into enrichment_jobs (id, workspace_id, company_id, requested_by, state,
                                              requested_at, updated_at, version, website)
                 select $1, $2, $3, $4, 'queued', $5, $5, $6, $8
                 where not exists (select 1 from company_tombstones
                                   where projection = $7 and company_id = $3)
                 on conflict (id) do nothing",
                id,
                e.workspace_id.0,
                e.company_id.0,
                e.requested_by.0,
                message.time,
                message.sequence,
                EnrichmentJobsProjection::NAME,
                &e.website
            )
            .execute(&mut *tx)
            .await?;
        }
        EnrichmentEvent::Started(e) => {
            sqlx::query!(
                "update enrichment_jobs set state = 'running', attempts = $4, error = null,
                        retry_in_ms = null, started_at = coalesce(started_at, $2),
                        updated_at = $2, version = $3
                 where id = $1",
                id,
                message.time,
                message.sequence,
                e.attempt as i32
            )
            .execute(&mut *tx)
            .await?;
        }
        EnrichmentEvent::AttemptFailed(e) => {
            sqlx::query!(
                "update enrichment_jobs set state = 'queued', error = $4, retry_in_ms = $5,
                        updated_at = $2, version = $3
                 where id = $1",
                id,
                message.time,
                message.sequence,
                &e.error,
                e.retry_in_ms.map(|ms| ms as i64)
            )
            .execute(&mut *tx)
            .await?;
        }
        EnrichmentEvent::Deferred(e) => {
            sqlx::query!("update enrichment_jobs set state = 'deferred', error = $4, updated_at = $2, version = $3
                 where id = $1", id, message.time, message.sequence, &e.reason)
            .execute(&mut *tx)
            .await?;
        }
        EnrichmentEvent::Succeeded(e) => {
            sqlx::query!(
                "update enrichment_jobs set state = 'succeeded', error = null, retry_in_ms = null,
                        result = $4, finished_at = $2, updated_at = $2, version = $3
                 where id = $1",
                id,
                message.time,
                message.sequence,
                Json(&e.result) as _
            )
            .execute(&mut *tx)
            .await?;
        }
        EnrichmentEvent::GivenUp(e) => {
            sqlx::query!(
                "update enrichment_jobs set state = 'failed', error = $4, retry_in_ms = null,
                        finished_at = $2, updated_at = $2, version = $3
                 where id = $1",
                id,
                message.time,
                message.sequence,
                &e.error
            )
            .execute(&mut *tx)
            .await?;
        }
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct JobRow {
    pub id: Uuid,
    pub company_id: Uuid,
    pub requested_by: Uuid,
    pub state: String,
    pub attempts: i32,
    pub error: Option<String>,
    pub retry_in_ms: Option<i64>,
    pub result: Option<Json<serde_json::Value>>,
    pub requested_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    pub version: i64,
}

impl JobRow {
    pub fn is_final(&self) -> bool {
        [JobState::Succeeded, JobState::Failed]
            .iter()
            .any(|s| s.as_str() == self.state)
    }
}

pub async fn get(
    db: impl PgExecutor<'_>,
    workspace: WorkspaceId,
    id: Uuid,
) -> Result<Option<JobRow>, sqlx::Error> {
    sqlx::query_as!(
        JobRow,
        r#"select id, company_id, requested_by, state, attempts, error, retry_in_ms,
                result as "result: Json<serde_json::Value>",
                requested_at, started_at, finished_at, updated_at, version
         from enrichment_jobs where workspace_id = $1 and id = $2"#,
        workspace.0,
        id
    )
    .fetch_optional(db)
    .await
}

/// Earlier results from this read model, for the worker's cache.
#[derive(Debug, Clone)]
pub struct PgRecentResults {
    pool: sqlx::PgPool,
}

impl PgRecentResults {
    pub fn new(pool: sqlx::PgPool) -> Self {
        Self { pool }
    }
}

#[async_trait::async_trait]
impl vcintel_commands::enrichment::RecentResults for PgRecentResults {
    async fn recent_result(
        &self,
        workspace: WorkspaceId,
        website: &str,
        content_hash: &str,
        producer: &vcintel_domain::enrichment::EnrichmentSource,
        max_age: std::time::Duration,
    ) -> Result<Option<vcintel_domain::enrichment::EnrichmentResult>, vcintel_commands::CommandError>
    {
        let producer =
            serde_json::to_value(producer).map_err(vcintel_commands::CommandError::store)?;
        let result = sqlx::query_scalar!(
            r#"select result as "result!: Json<EnrichmentResult>"
                 from enrichment_jobs
                 where workspace_id = $1 and website = $2 and state = 'succeeded'
                   and finished_at > now() - make_interval(secs => $3)
                   and result->>'content_hash' = $4 and result->'source' = $5
                 order by finished_at desc limit 1"#,
            workspace.0,
            website,
            max_age.as_secs_f64(),
            content_hash,
            producer
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(vcintel_commands::CommandError::store)?;
        Ok(result.map(|json| json.0))
    }
}
