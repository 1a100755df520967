//! Enrichment admission's store in Postgres: the unique-value index each
//! request's append writes (exact, no projection lag) and a transaction
//! advisory lock per user, released however the request ends.

use crate::accounts;
use sqlx::{PgPool, Postgres, Transaction};
use vcintel_commands::admission::{AdmissionLock, AdmissionStore};
use vcintel_commands::aggregate::{active_enrichment_scope, user_enrichments_scope};
use vcintel_commands::CommandError;
use vcintel_domain::company::CompanyId;
use vcintel_domain::enrichment::EnrichmentJobId;
use vcintel_domain::user::Tier;
use vcintel_domain::UserId;

#[derive(Debug, Clone)]
pub struct PgAdmission {
    pool: PgPool,
    vault: crate::vault::Vault,
}

impl PgAdmission {
    pub fn new(vault: crate::vault::Vault) -> Self {
        Self {
            pool: vault.pool().clone(),
            vault,
        }
    }
}

#[async_trait::async_trait]
impl AdmissionStore for PgAdmission {
    async fn active_job_of(
        &self,
        company: CompanyId,
    ) -> Result<Option<EnrichmentJobId>, CommandError> {
        let holder = sqlx::query_scalar!(
            "select aggregate_id from unique_values where scope = $1 and value = 'active'",
            active_enrichment_scope(company),
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(CommandError::store)?;
        Ok(holder.and_then(|id| id.parse().ok()).map(EnrichmentJobId))
    }

    async fn lock_user(&self, user: UserId) -> Result<Box<dyn AdmissionLock>, CommandError> {
        let mut tx = self.pool.begin().await.map_err(CommandError::store)?;
        sqlx::query!(
            "select pg_advisory_xact_lock(hashtextextended($1, 0))",
            format!("enrichment-admission:{user}")
        )
        .execute(&mut *tx)
        .await
        .map_err(CommandError::store)?;
        Ok(Box::new(PgAdmissionLock { tx }))
    }

    async fn tier(&self, user: UserId) -> Result<Option<Tier>, CommandError> {
        Ok(accounts::registered_user(&self.vault, user)
            .await
            .map_err(CommandError::store)?
            .map(|user| user.tier))
    }
}

/// The lock lives as long as its transaction.
struct PgAdmissionLock {
    tx: Transaction<'static, Postgres>,
}

#[async_trait::async_trait]
impl AdmissionLock for PgAdmissionLock {
    async fn active_jobs(&mut self, user: UserId) -> Result<i64, CommandError> {
        sqlx::query_scalar!(
            r#"select count(*) as "count!" from unique_values where scope = $1"#,
            user_enrichments_scope(user),
        )
        .fetch_one(&mut *self.tx)
        .await
        .map_err(CommandError::store)
    }

    async fn release(self: Box<Self>) -> Result<(), CommandError> {
        self.tx.commit().await.map_err(CommandError::store)
    }
}
