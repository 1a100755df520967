//! Admitting an enrichment request, the one implementation the API and any
//! other caller share: a job already under way is the answer whatever the
//! quotas say; otherwise the user's requests are admitted one at a time
//! (so the caps hold across API instances), against the workspace's
//! monthly model budget, the per-user cap on active jobs and the tier's
//! hourly limit, and only then is the job requested.

use crate::aggregate::{CompanyAggregate, EnrichmentJobAggregate};
use crate::enrichment::EnrichmentCommands;
use crate::execute::LoadedAggregate;
use crate::limits::{Decision, LimitedAction, RateLimiting};
use crate::{CommandError, CommandMetadata, Committed};
use cqrs_es::EventStore;
use vcintel_domain::company::CompanyId;
use vcintel_domain::enrichment::EnrichmentJobId;
use vcintel_domain::user::Tier;
use vcintel_domain::{Actor, Permission, UserId, WorkspaceId};

/// The quotas an enrichment request is admitted against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdmissionPolicy {
    /// Jobs one user may have queued, running or deferred at once.
    pub max_active_per_user: u32,
    /// What a workspace's model calls may cost per month, in micro-USD;
    /// zero: no budget.
    pub monthly_budget_micro_usd: u64,
    /// Enrichment requests per hour by tier; zero: unlimited.
    pub per_hour: TierLimits,
}

/// A number per product tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TierLimits {
    pub free: u32,
    pub pro: u32,
    pub enterprise: u32,
}

impl TierLimits {
    pub fn of(&self, tier: Option<Tier>) -> u32 {
        match tier {
            Some(Tier::Pro) => self.pro,
            Some(Tier::Enterprise) => self.enterprise,
            Some(Tier::Free) | None => self.free,
        }
    }

    /// Whether any tier is limited (else the tier need not be read).
    pub fn any(&self) -> bool {
        [self.free, self.pro, self.enterprise]
            .iter()
            .any(|n| *n > 0)
    }
}

/// Why a request was not admitted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refusal {
    #[error("the workspace's model budget for this month is used up")]
    BudgetExhausted {
        spent_micro_usd: u64,
        budget_micro_usd: u64,
    },
    #[error("{0} enrichment jobs are already queued or running")]
    TooManyActiveJobs(u32),
    #[error("the hourly enrichments of this tier are used up")]
    RateLimited(Decision),
}

/// What admission reads and holds. Postgres implements it (infra), from
/// the unique-value index requests write, so it never waits for a
/// projection.
#[async_trait::async_trait]
pub trait AdmissionStore: Send + Sync {
    /// The job queued or running for `company`, if any.
    async fn active_job_of(
        &self,
        company: CompanyId,
    ) -> Result<Option<EnrichmentJobId>, CommandError>;
    /// Admits `user`'s requests one at a time: held until released (or
    /// dropped, when the request ends any other way).
    async fn lock_user(&self, user: UserId) -> Result<Box<dyn AdmissionLock>, CommandError>;
    /// The account's tier (`None` for no account: an API key's creator gone).
    async fn tier(&self, user: UserId) -> Result<Option<Tier>, CommandError>;
}

/// One user's admission, held.
#[async_trait::async_trait]
pub trait AdmissionLock: Send {
    /// The user's jobs queued, running or deferred (exact).
    async fn active_jobs(&mut self, user: UserId) -> Result<i64, CommandError>;
    async fn release(self: Box<Self>) -> Result<(), CommandError>;
}

/// What a workspace's model calls cost this calendar month (UTC), in
/// micro-USD: the one definition, which admission and the worker's budget
/// alerts share. The usage read model implements it (projections).
#[async_trait::async_trait]
pub trait Spending: Send + Sync + std::fmt::Debug {
    async fn spent_this_month(&self, workspace: WorkspaceId) -> Result<u64, CommandError>;
}

/// The ports admission runs against.
#[derive(Clone, Copy)]
pub struct AdmissionPorts<'a> {
    pub store: &'a dyn AdmissionStore,
    pub spending: &'a dyn Spending,
    pub limiter: &'a dyn RateLimiting,
}

impl std::fmt::Debug for AdmissionPorts<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdmissionPorts")
    }
}

/// An admitted request.
#[derive(Debug, Clone, PartialEq)]
pub struct Admitted {
    pub job_id: EnrichmentJobId,
    /// The job was already queued or running; nothing new was started.
    pub existing: bool,
    /// Set when this request appended the job's first event.
    pub committed: Option<Committed>,
    /// The hourly budget's state, when one applies.
    pub decision: Option<Decision>,
    /// The requester's tier (`None` for no account), for the business
    /// metrics; read only for a new job.
    pub tier: Option<Tier>,
}

impl<J, C> EnrichmentCommands<J, C>
where
    J: EventStore<EnrichmentJobAggregate>,
    J::AC: LoadedAggregate<EnrichmentJobAggregate> + Send,
    C: EventStore<CompanyAggregate>,
    C::AC: LoadedAggregate<CompanyAggregate> + Send,
{
    /// Admits and requests an enrichment of `company` (see the module).
    /// `policy.monthly_budget_micro_usd` is zero when the built-in
    /// enricher serves: it costs nothing, so no budget guards it.
    #[tracing::instrument(skip_all, fields(workspace_id = %actor.workspace_id, user_id = %actor.user_id))]
    pub async fn admit(
        &self,
        ports: AdmissionPorts<'_>,
        policy: &AdmissionPolicy,
        actor: Actor,
        company: CompanyId,
        metadata: &CommandMetadata,
    ) -> Result<Admitted, CommandError> {
        // A company the caller cannot see is 404 before anything else: an
        // unknown id and another workspace's must get the same answer, not
        // a quota's refusal for one and 404 for the other.
        let details = self.live_company(actor, company).await?;
        if !actor.may(Permission::WriteData) {
            return Err(CommandError::Forbidden {
                role: actor.role.as_str(),
                action: "request enrichments",
            });
        }
        if let Some(job_id) = ports.store.active_job_of(company).await? {
            return Ok(Admitted {
                job_id,
                existing: true,
                committed: None,
                decision: None,
                tier: None,
            });
        }
        let mut lock = ports.store.lock_user(actor.user_id).await?;
        if policy.monthly_budget_micro_usd > 0 {
            let spent = ports.spending.spent_this_month(actor.workspace_id).await?;
            if spent >= policy.monthly_budget_micro_usd {
                return Err(Refusal::BudgetExhausted {
                    spent_micro_usd: spent,
                    budget_micro_usd: policy.monthly_budget_micro_usd,
                }
                .into());
            }
        }
        if lock.active_jobs(actor.user_id).await? >= i64::from(policy.max_active_per_user) {
            return Err(Refusal::TooManyActiveJobs(policy.max_active_per_user).into());
        }
        let mut decision = None;
        let tier = ports.store.tier(actor.user_id).await?;
        if policy.per_hour.any() {
            let per_hour = policy.per_hour.of(tier);
            if per_hour > 0 {
                let action = LimitedAction::Enrichment;
                let charged = ports
                    .limiter
                    .check(
                        &action.bucket(&actor.user_id.to_string()),
                        action.limit(per_hour),
                    )
                    .await?;
                if !charged.allowed {
                    return Err(Refusal::RateLimited(charged).into());
                }
                decision = Some(charged);
            }
        }
        let requested = self.request(actor, company, &details, metadata).await?;
        lock.release().await?;
        Ok(Admitted {
            job_id: requested.job_id,
            existing: requested.existing,
            committed: requested.committed,
            decision,
            tier,
        })
    }
}
