//! The `enrichment_usage` read model: model calls, tokens and cost per
//! workspace, user and month, from the enrichment jobs' events (a failed
//! attempt whose model call answered badly still cost tokens), with the
//! totals per workspace and month and per month, kept as the events come
//! so that no reader sums rows.

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
    const TABLES: &'static [&'static str] = &[
        "enrichment_usage",
        "enrichment_workspace_costs",
        "enrichment_month_costs",
    ];

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
                sqlx::query!(
                    "insert into enrichment_workspace_costs (month, workspace_id, enrichments,
                                                             model_calls, cost_micro_usd)
                     values ($1, $2, $3, $4, $5)
                     on conflict (month, workspace_id) do update set
                       enrichments = enrichment_workspace_costs.enrichments + excluded.enrichments,
                       model_calls = enrichment_workspace_costs.model_calls + excluded.model_calls,
                       cost_micro_usd = enrichment_workspace_costs.cost_micro_usd
                                        + excluded.cost_micro_usd",
                    month_of(event.time),
                    workspace.0,
                    enrichments as i64,
                    i64::from(model_call),
                    usage.cost_micro_usd as i64
                )
                .execute(&mut *tx)
                .await?;
                sqlx::query!(
                    "insert into enrichment_month_costs (month, enrichments, model_calls,
                                                         tokens_in, tokens_out, cost_micro_usd)
                     values ($1, $2, $3, $4, $5, $6)
                     on conflict (month) do update set
                       enrichments = enrichment_month_costs.enrichments + excluded.enrichments,
                       model_calls = enrichment_month_costs.model_calls + excluded.model_calls,
                       tokens_in = enrichment_month_costs.tokens_in + excluded.tokens_in,
                       tokens_out = enrichment_month_costs.tokens_out + excluded.tokens_out,
                       cost_micro_usd = enrichment_month_costs.cost_micro_usd
                                        + excluded.cost_micro_usd",
                    month_of(event.time),
                    enrichments as i64,
                    i64::from(model_call),
                    usage.tokens_in as i64,
                    usage.tokens_out as i64,
                    usage.cost_micro_usd as i64
                )
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
            "select cost_micro_usd from enrichment_workspace_costs
             where month = $1 and workspace_id = $2",
            month_of(Utc::now()),
            workspace.0,
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(vcintel_commands::CommandError::store)?;
        Ok(spent.unwrap_or(0).max(0) as u64)
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

/// A month's enrichment usage across every workspace.
#[derive(Debug, Clone, Default, PartialEq, Eq, FromRow)]
pub struct MonthCost {
    pub month: NaiveDate,
    pub enrichments: i64,
    pub model_calls: i64,
    pub tokens_in: i64,
    pub tokens_out: i64,
    pub cost_micro_usd: i64,
}

/// The `months` months up to `through`, oldest first (months without
/// enrichments are absent).
pub async fn month_costs(
    db: impl PgExecutor<'_>,
    through: NaiveDate,
    months: i64,
) -> Result<Vec<MonthCost>, sqlx::Error> {
    let mut rows = sqlx::query_as!(
        MonthCost,
        "select month, enrichments, model_calls, tokens_in, tokens_out, cost_micro_usd
         from enrichment_month_costs where month <= $1 order by month desc limit $2",
        through,
        months
    )
    .fetch_all(db)
    .await?;
    rows.reverse();
    Ok(rows)
}

/// What one workspace's enrichments cost in a month.
#[derive(Debug, Clone, Default, PartialEq, Eq, FromRow)]
pub struct WorkspaceCost {
    pub workspace_id: Uuid,
    pub enrichments: i64,
    pub model_calls: i64,
    pub cost_micro_usd: i64,
}

/// The `limit` workspaces whose enrichments cost most in `month`, most
/// first.
pub async fn top_workspace_costs(
    db: impl PgExecutor<'_>,
    month: NaiveDate,
    limit: i64,
) -> Result<Vec<WorkspaceCost>, sqlx::Error> {
    sqlx::query_as!(
        WorkspaceCost,
        "select workspace_id, enrichments, model_calls, cost_micro_usd
         from enrichment_workspace_costs where month = $1
         order by cost_micro_usd desc, workspace_id limit $2",
        month,
        limit
    )
    .fetch_all(db)
    .await
}

/// One workspace-month of a person's enrichment usage.
#[derive(Debug, Clone, Default, PartialEq, Eq, FromRow, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct PersonUsage {
    pub workspace_id: Uuid,
    pub month: NaiveDate,
    #[cfg_attr(feature = "schema", schema(example = 42))]
    pub enrichments: i64,
    #[cfg_attr(feature = "schema", schema(example = 40))]
    pub model_calls: i64,
    #[cfg_attr(feature = "schema", schema(example = 61200))]
    pub tokens_in: i64,
    #[cfg_attr(feature = "schema", schema(example = 9800))]
    pub tokens_out: i64,
    /// Millionths of a US dollar.
    #[cfg_attr(feature = "schema", schema(example = 15060))]
    pub cost_micro_usd: i64,
}

/// What `user`'s enrichment requests cost, per workspace and month.
pub async fn usage_of_person(
    db: impl PgExecutor<'_>,
    user: vcintel_domain::UserId,
) -> Result<Vec<PersonUsage>, sqlx::Error> {
    sqlx::query_as!(
        PersonUsage,
        "select workspace_id, month, enrichments, model_calls, tokens_in, tokens_out, cost_micro_usd
         from enrichment_usage where user_id = $1 order by month, workspace_id",
        user.0
    )
    .fetch_all(db)
    .await
}
