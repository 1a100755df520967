//! The enrichment pipeline's adapters: fetching a website safely, reading
//! its visible text, the built-in deterministic enricher, and the worker
//! that runs jobs.

pub mod breaker;
pub mod fetch;
pub mod heuristic;
pub mod model;
pub mod page;
pub mod worker;

use vcintel_domain::company::CompanyId;
use vcintel_domain::enrichment::EnrichmentJobId;

/// The job queued or running for `company`, from the unique-value index its
/// request wrote (no projection lag).
pub async fn active_job_of(
    db: impl sqlx::PgExecutor<'_>,
    company: CompanyId,
) -> Result<Option<EnrichmentJobId>, sqlx::Error> {
    let holder: Option<String> = sqlx::query_scalar(
        "select aggregate_id from unique_values where scope = $1 and value = 'active'",
    )
    .bind(vcintel_commands::aggregate::active_enrichment_scope(
        company,
    ))
    .fetch_optional(db)
    .await?;
    Ok(holder.and_then(|id| id.parse().ok()).map(EnrichmentJobId))
}

/// How many of `user`'s jobs are queued, running or deferred, from the
/// unique-value index their requests wrote (exact, no projection lag).
pub async fn active_jobs_of_user(
    db: impl sqlx::PgExecutor<'_>,
    user: vcintel_domain::UserId,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("select count(*) from unique_values where scope = $1")
        .bind(vcintel_commands::aggregate::user_enrichments_scope(user))
        .fetch_one(db)
        .await
}
