//! The `enrichment_usage` read model: model calls, tokens and cost per
//! workspace, user and month, from the enrichment jobs' events (a failed
//! attempt whose model call answered badly still cost tokens).

use crate::{decode_event, AggregateChanges, Projection, ProjectionError};
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use sqlx::{FromRow, PgConnection, PgExecutor};
use uuid::Uuid;
use vcintel_domain::enrichment::{EnrichmentEvent, EnrichmentSource, Usage};
use vcintel_domain::WorkspaceId;

#[derive(Debug)]
pub struct UsageProjection;

impl Projection for UsageProjection {
    const NAME: &'static str = "usage";
    const AGGREGATE_TYPES: &'static [&'static str] = &[vcintel_domain::enrichment::AGGREGATE_TYPE];
    const TABLES: &'static [&'static str] = &["enrichment_usage"];

    async fn apply_batch(
        tx: &mut PgConnection,
        changes: &[AggregateChanges],
    ) -> Result<(), ProjectionError> {
        for change in changes {
            for event in &change.events {
                let (workspace, user, usage, enrichments, model_call) =
                    match decode_event::<EnrichmentEvent>(event)? {
                        EnrichmentEvent::Succeeded(e) => {
                            let called = !e.result.cached
                                && matches!(e.result.source, EnrichmentSource::Model { .. });
                            (e.workspace_id, e.requested_by, e.result.usage, 1, called)
                        }
                        EnrichmentEvent::AttemptFailed(e) if e.usage != Usage::default() => {
                            (e.workspace_id, e.requested_by, e.usage, 0, true)
                        }
                        _ => continue,
                    };
                sqlx::query!("insert into enrichment_usage (workspace_id, user_id, month, enrichments,
                                                   model_calls, tokens_in, tokens_out, cost_micro_usd)
                     values ($1, $2, $3, $4, $5, $6, $7, $8)
                     on conflict (workspace_id, month, user_id) do update set
                       enrichments = enrichment_usage.enrichments + excluded.enrichments,
                       model_calls = enrichment_usage.model_calls + excluded.model_calls,
                       tokens_in = enrichment_usage.tokens_in + excluded.tokens_in,
                       tokens_out = enrichment_usage.tokens_out + excluded.tokens_out,
                       cost_micro_usd = enrichment_usage.cost_micro_usd + excluded.cost_micro_usd", workspace.0, user.0, month_of(event.time), enrichments as i64, i64::from(model_call), usage.tokens_in as i64, usage.tokens_out as i64, usage.cost_micro_usd as i64)
                .execute(&mut *tx)
                .await?;
            }
        }
        Ok(())
    }
}

/// The first day of `at`'s month (UTC): usage is counted per calendar month.
pub fn month_of(at: DateTime<Utc>) -> NaiveDate {
    NaiveDate::from_ymd_opt(at.year(), at.month(), 1).unwrap_or_default()
}

#[derive(Debug, Clone, Default, PartialEq, Eq, FromRow)]
pub struct UsageRow {
    pub user_id: Uuid,
    pub enrichments: i64,
    pub model_calls: i64,
    pub tokens_in: i64,
    pub tokens_out: i64,
    pub cost_micro_usd: i64,
}

/// What a workspace's model calls cost this calendar month (UTC), from this
/// read model: the one definition of the month's spending, which admission
/// and the worker's budget alerts share.
#[derive(Debug, Clone)]
pub struct MonthlySpending {
    pool: sqlx::PgPool,
}

impl MonthlySpending {
    pub fn new(pool: sqlx::PgPool) -> Self {
        Self { pool }
    }
}

#[async_trait::async_trait]
impl vcintel_commands::admission::Spending for MonthlySpending {
    async fn spent_this_month(
        &self,
        workspace: WorkspaceId,
    ) -> Result<u64, vcintel_commands::CommandError> {
        let spent = sqlx::query_scalar!(
            r#"select coalesce(sum(cost_micro_usd), 0)::bigint as "spent!" from enrichment_usage
               where workspace_id = $1 and month = $2"#,
            workspace.0,
            month_of(Utc::now()),
        )
        .fetch_one(&self.pool)
        .await
        .map_err(vcintel_commands::CommandError::store)?;
        Ok(spent.max(0) as u64)
    }
}

/// Each user's usage in `workspace` for `month`.
pub async fn by_user(
    db: impl PgExecutor<'_>,
    workspace: WorkspaceId,
    month: NaiveDate,
) -> Result<Vec<UsageRow>, sqlx::Error> {
    sqlx::query_as!(
        UsageRow,
        "select user_id, enrichments, model_calls, tokens_in, tokens_out, cost_micro_usd
         from enrichment_usage where workspace_id = $1 and month = $2 order by user_id",
        workspace.0,
        month
    )
    .fetch_all(db)
    .await
}
