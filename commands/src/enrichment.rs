//! Enrichment use cases: an analyst requests an enrichment of a live
//! company (at most one job per company is queued or running: a second
//! request gets the first job back); the worker moves the job along.

use crate::aggregate::{CompanyAggregate, EnrichmentJobAggregate};
use crate::execute::{execute, Load, LoadedAggregate};
use crate::{CommandError, CommandMetadata, Committed};
use cqrs_es::EventStore;
use uuid::Uuid;
use vcintel_domain::company::{CompanyDetails, CompanyError, CompanyId};
use vcintel_domain::enrichment::{
    EnrichmentCommand, EnrichmentError, EnrichmentJob, EnrichmentJobId,
};
use vcintel_domain::enrichment::{EnrichmentResult, EnrichmentSource};
use vcintel_domain::{Actor, UserId, WorkspaceId};

pub struct EnrichmentCommands<J, C> {
    jobs: J,
    companies: C,
}

impl<J, C> std::fmt::Debug for EnrichmentCommands<J, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EnrichmentCommands")
    }
}

/// Results of earlier enrichments, so an unchanged page is not paid for
/// twice. The enrichment jobs' read model implements it (projections).
#[async_trait::async_trait]
pub trait RecentResults: Send + Sync + std::fmt::Debug {
    /// The workspace's newest result for the same website, page content and
    /// producer, finished within `max_age`.
    async fn recent_result(
        &self,
        workspace: WorkspaceId,
        website: &str,
        content_hash: &str,
        producer: &EnrichmentSource,
        max_age: std::time::Duration,
    ) -> Result<Option<EnrichmentResult>, CommandError>;
}

/// The job a request is answered with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestedJob {
    pub job_id: EnrichmentJobId,
    /// The job was already queued or running; nothing new was started.
    pub existing: bool,
    /// Set when this request appended the job's first event.
    pub committed: Option<Committed>,
}

impl<J, C> EnrichmentCommands<J, C>
where
    J: EventStore<EnrichmentJobAggregate>,
    J::AC: LoadedAggregate<EnrichmentJobAggregate> + Send,
    C: EventStore<CompanyAggregate>,
    C::AC: LoadedAggregate<CompanyAggregate> + Send,
{
    pub fn new(jobs: J, companies: C) -> Self {
        Self { jobs, companies }
    }

    /// Queues an enrichment of `company_id`, whose `details` the caller
    /// read with [`Self::live_company`] (so the company is loaded once), or
    /// returns the job already queued or running.
    #[tracing::instrument(skip(self, details, metadata), fields(workspace_id = %actor.workspace_id, user_id = %actor.user_id))]
    pub async fn request(
        &self,
        actor: Actor,
        company_id: CompanyId,
        details: &CompanyDetails,
        metadata: &CommandMetadata,
    ) -> Result<RequestedJob, CommandError> {
        let job_id = EnrichmentJobId(Uuid::now_v7());
        let command = EnrichmentCommand::Request {
            actor,
            job_id,
            company_id,
            website: details.website.as_str().to_owned(),
        };
        match execute(
            &self.jobs,
            job_id.to_string(),
            Load::Fresh,
            command,
            |_, _| Ok(()),
            metadata.for_actor(&actor),
        )
        .await
        {
            Ok(committed) => Ok(RequestedJob {
                job_id,
                existing: false,
                committed: Some(committed),
            }),
            Err(CommandError::Enrichment(EnrichmentError::AlreadyActive { existing })) => {
                Ok(RequestedJob {
                    job_id: existing,
                    existing: true,
                    committed: None,
                })
            }
            Err(error) => Err(error),
        }
    }

    /// The company's details, if it is live in the actor's workspace.
    pub async fn live_company(
        &self,
        actor: Actor,
        company_id: CompanyId,
    ) -> Result<CompanyDetails, CommandError> {
        let mut company = self
            .companies
            .load_aggregate(&company_id.to_string())
            .await?;
        let state = &company.state().0;
        match state.details() {
            Some(details) if state.workspace_id() == Some(actor.workspace_id) => {
                Ok(details.clone())
            }
            _ => Err(CompanyError::NotFound.into()),
        }
    }

    /// The company a job is about, if it is still live in the job's workspace.
    pub async fn company(
        &self,
        company_id: CompanyId,
        workspace: vcintel_domain::WorkspaceId,
    ) -> Result<Option<CompanyDetails>, CommandError> {
        let mut company = self
            .companies
            .load_aggregate(&company_id.to_string())
            .await?;
        let state = &company.state().0;
        Ok(state
            .details()
            .filter(|_| state.workspace_id() == Some(workspace))
            .cloned())
    }

    /// The job as its events say, with its version.
    pub async fn load(
        &self,
        job_id: EnrichmentJobId,
    ) -> Result<(EnrichmentJob, u64), CommandError> {
        let mut context = self.jobs.load_aggregate(&job_id.to_string()).await?;
        let version = context.version();
        Ok((context.state().0.clone(), version))
    }

    /// A worker's step on the job (start, fail an attempt, defer, succeed),
    /// only if the job is still at `expected_version`: two workers cannot
    /// both move it.
    #[tracing::instrument(skip(self, command, metadata), fields(job_id = %job_id))]
    pub async fn advance(
        &self,
        job_id: EnrichmentJobId,
        command: EnrichmentCommand,
        expected_version: u64,
        metadata: &CommandMetadata,
    ) -> Result<Committed, CommandError> {
        let (job, _) = self.load(job_id).await?;
        let (Some(workspace), Some(requested_by)) = (job.workspace_id(), job.requested_by()) else {
            return Err(EnrichmentError::NotFound.into());
        };
        let requested_by: UserId = requested_by;
        execute(
            &self.jobs,
            job_id.to_string(),
            Load::Stored,
            command,
            move |_, current| {
                if current == expected_version {
                    Ok(())
                } else {
                    Err(CommandError::Conflict)
                }
            },
            metadata.for_user(workspace, requested_by),
        )
        .await
    }
}

/// Budget alerts: raised by the enrichment worker as spending grows.
pub struct BudgetCommands<B> {
    budgets: B,
}

impl<B> std::fmt::Debug for BudgetCommands<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BudgetCommands")
    }
}

impl<B> BudgetCommands<B>
where
    B: EventStore<crate::aggregate::BudgetAggregate>,
    B::AC: LoadedAggregate<crate::aggregate::BudgetAggregate> + Send,
{
    pub fn new(budgets: B) -> Self {
        Self { budgets }
    }

    /// Raises the alerts `spent` now crosses for the workspace's month
    /// (each at most once); how many it raised.
    pub async fn record_spending(
        &self,
        workspace: vcintel_domain::WorkspaceId,
        month: &str,
        spent_micro_usd: u64,
        budget_micro_usd: u64,
        metadata: &CommandMetadata,
    ) -> Result<usize, CommandError> {
        let command = vcintel_domain::budget::BudgetCommand::RecordSpending {
            workspace_id: workspace,
            month: month.to_owned(),
            spent_micro_usd,
            budget_micro_usd,
        };
        let committed = execute(
            &self.budgets,
            vcintel_domain::budget::budget_id(workspace, month),
            Load::Stored,
            command,
            |_, _| Ok(()),
            metadata.for_user(workspace, UserId(uuid::Uuid::nil())),
        )
        .await?;
        Ok(committed.appended)
    }
}
