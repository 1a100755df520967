//! The enrichment worker: a JetStream consumer of `enrichment.requested`
//! events that runs each job and reports back through commands. It never
//! writes a read model.
//!
//! A job's message stays unacknowledged while the job runs (the worker
//! reports progress to JetStream), so if the worker dies the message is
//! redelivered to another worker, which takes the job over. Every step is
//! a command conditioned on the job's version, so two workers can never
//! both move one job. Attempts are retried with exponential backoff up to
//! the domain's limit; failures that a retry cannot fix (a forbidden
//! address, a page that is not HTML) give up at once.

use super::breaker::{Admission, CircuitBreaker};
use super::fetch::{FetchError, Fetcher};
use super::heuristic::{self, HEURISTIC_VERSION};
use super::model::{ModelClient, ModelError, PROMPT_VERSION};
use super::page::visible_text;
use crate::event_store::{PgBudgetCommands, PgEnrichmentCommands};
use crate::wire::{EventMessage, Topology};
use async_nats::jetstream::{self, consumer::pull, AckKind};
use futures::StreamExt;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use vcintel_commands::admission::Spending;
use vcintel_commands::enrichment::RecentResults;
use vcintel_commands::{CommandError, CommandMetadata};
use vcintel_domain::company::CompanyDetails;
use vcintel_domain::enrichment::{
    fit_score, CompanyFacts, EnrichmentCommand, EnrichmentError, EnrichmentJobId, EnrichmentResult,
    EnrichmentSource, JobState, Thesis, Usage,
};

/// What a deferred job's state says while the breaker is open.
pub const DEFERRED_REASON: &str = "model service temporarily unavailable; job queued";

/// Where a job stands when the worker lets go of its message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Ended,
    /// Waiting for the breaker: redeliver after this long.
    Deferred(Duration),
}

/// The durable consumer's name.
pub const WORKER_NAME: &str = "enricher";

/// Characters of page text an extraction reads.
const PAGE_TEXT_BUDGET: usize = 12_000;

#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Jobs one worker runs at once.
    pub concurrency: usize,
    /// First retry delay; doubles with each attempt.
    pub backoff_base: Duration,
    /// How long JetStream waits for a sign of life before redelivering.
    pub ack_wait: Duration,
    /// This worker's name in the job's events.
    pub worker_id: String,
    /// How long an earlier result for the same website, content, model and
    /// prompt is reused instead of calling the model (zero: never).
    pub cache_max_age: Duration,
    /// Each workspace's monthly model budget (zero: none).
    pub monthly_budget_micro_usd: u64,
    /// Deliveries of a request whose job keeps failing for reasons outside
    /// the job (the database, a bad stored event) before it is parked as a
    /// dead letter. Deferrals by the breaker count as deliveries too, so
    /// keep it well above what an outage of the provider causes.
    pub max_deliveries: u64,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            concurrency: 4,
            backoff_base: Duration::from_secs(2),
            ack_wait: Duration::from_secs(30),
            worker_id: format!("worker-{}", Uuid::new_v4().simple()),
            cache_max_age: Duration::from_secs(7 * 24 * 3600),
            monthly_budget_micro_usd: 0,
            max_deliveries: 20,
        }
    }
}

#[derive(Debug, Clone)]
pub struct EnrichmentWorker {
    /// The workspaces' current state (their thesis), from their events.
    directory: crate::accounts::WorkspaceDirectory,
    commands: Arc<PgEnrichmentCommands>,
    budgets: Arc<PgBudgetCommands>,
    /// The month's spending, from the usage read model (a port: infra does
    /// not read projection tables).
    spending: Arc<dyn Spending>,
    /// Earlier results, from the enrichment jobs' read model (a port).
    recent_results: Arc<dyn RecentResults>,
    fetcher: Fetcher,
    /// `None`: the built-in heuristic enricher serves.
    model: Option<ModelClient>,
    breaker: Arc<CircuitBreaker>,
    js: jetstream::Context,
    topology: Topology,
    settings: WorkerSettings,
}

/// How an attempt ended, when it did not succeed.
#[derive(Debug)]
struct AttemptFailure {
    error: String,
    retryable: bool,
    /// The provider asked us to wait at least this long (429 Retry-After).
    not_before: Option<Duration>,
    /// What the attempt's model call cost, if it answered.
    usage: Usage,
}

impl From<ModelError> for AttemptFailure {
    fn from(error: ModelError) -> Self {
        AttemptFailure {
            retryable: !matches!(error, ModelError::Rejected(_)),
            not_before: match &error {
                ModelError::RateLimited { retry_after } => *retry_after,
                _ => None,
            },
            error: error.to_string(),
            usage: Usage::default(),
        }
    }
}

impl From<FetchError> for AttemptFailure {
    fn from(error: FetchError) -> Self {
        let retryable = match &error {
            FetchError::Timeout | FetchError::Unreachable | FetchError::Unresolvable => true,
            FetchError::Status(code) => *code >= 500 || *code == 429,
            _ => false,
        };
        AttemptFailure {
            error: format!("fetching the website: {error}"),
            retryable,
            not_before: None,
            usage: Usage::default(),
        }
    }
}

impl EnrichmentWorker {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        pool: sqlx::PgPool,
        commands: Arc<PgEnrichmentCommands>,
        budgets: Arc<PgBudgetCommands>,
        spending: Arc<dyn Spending>,
        recent_results: Arc<dyn RecentResults>,
        fetcher: Fetcher,
        model: Option<ModelClient>,
        breaker: Arc<CircuitBreaker>,
        js: jetstream::Context,
        topology: Topology,
        settings: WorkerSettings,
    ) -> Self {
        Self {
            directory: crate::accounts::WorkspaceDirectory::new(
                pool,
                crate::identity_cache::IdentityCache::new(),
            ),
            commands,
            budgets,
            spending,
            recent_results,
            fetcher,
            model,
            breaker,
            js,
            topology,
            settings,
        }
    }

    /// Runs until `shutdown`, reconnecting with backoff on errors.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let worker = Arc::new(self);
        crate::supervise::restarting(WORKER_NAME, &shutdown, || worker.clone().consume(&shutdown))
            .await;
        Ok(())
    }

    async fn consume(self: Arc<Self>, shutdown: &CancellationToken) -> anyhow::Result<()> {
        let stream = self.js.get_stream(self.topology.stream_name()).await?;
        let consumer = stream
            .get_or_create_consumer(
                &self.topology.durable_name(WORKER_NAME),
                pull::Config {
                    durable_name: Some(self.topology.durable_name(WORKER_NAME)),
                    filter_subject: self.topology.subject_for(
                        "*",
                        vcintel_domain::enrichment::AGGREGATE_TYPE,
                        "enrichment.requested",
                    ),
                    ack_policy: jetstream::consumer::AckPolicy::Explicit,
                    ack_wait: self.settings.ack_wait,
                    max_ack_pending: 1_000,
                    ..Default::default()
                },
            )
            .await?;
        // Short heartbeats: a consumer lost with its stream ends this
        // stream within seconds, and the worker starts again.
        let mut messages = consumer
            .stream()
            .expires(Duration::from_secs(10))
            .heartbeat(Duration::from_secs(2))
            .messages()
            .await?;
        let slots = Arc::new(Semaphore::new(self.settings.concurrency.max(1)));
        tracing::info!(worker = %self.settings.worker_id, "enrichment worker consuming");
        loop {
            let permit = tokio::select! {
                permit = slots.clone().acquire_owned() => permit?,
                _ = shutdown.cancelled() => return Ok(()),
            };
            let message = tokio::select! {
                message = messages.next() => message,
                _ = shutdown.cancelled() => return Ok(()),
            };
            let Some(message) = message else {
                anyhow::bail!("consumer stream ended");
            };
            let message = message.map_err(|e| anyhow::anyhow!("consumer stream: {e}"))?;
            let worker = self.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                worker.handle(message, shutdown).await;
                drop(permit);
            });
        }
    }

    async fn handle(&self, message: jetstream::Message, shutdown: CancellationToken) {
        let requested = serde_json::from_slice::<EventMessage>(&message.payload).ok();
        let job_id = match requested
            .as_ref()
            .and_then(|event| event.aggregateid.parse().ok())
        {
            Some(id) => EnrichmentJobId(id),
            None => {
                tracing::error!(subject = %message.subject, "undecodable enrichment request; terminating it");
                let _ = message.ack_with(AckKind::Term).await;
                return;
            }
        };
        // Tell JetStream the job is alive while it runs.
        let alive = CancellationToken::new();
        let heartbeat = {
            let alive = alive.clone();
            let message = message.clone();
            let every = self.settings.ack_wait / 3;
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(every) => {
                            let _ = message.ack_with(AckKind::Progress).await;
                        }
                        _ = alive.cancelled() => return,
                    }
                }
            })
        };
        // The job's events belong to the request that asked for it, and
        // were caused by its `requested` event.
        let metadata = CommandMetadata {
            request_id: Some(format!("enrichment-{job_id}")),
            correlation_id: requested.as_ref().and_then(|e| e.correlationid.clone()),
            causation_id: requested.as_ref().map(|e| e.id),
            ..CommandMetadata::default()
        };
        let outcome = tokio::select! {
            outcome = self.run_job(job_id, &metadata) => Some(outcome),
            _ = shutdown.cancelled() => None,
        };
        alive.cancel();
        let _ = heartbeat.await;
        match outcome {
            Some(Ok(Outcome::Ended)) => {
                let _ = message.ack().await;
            }
            Some(Ok(Outcome::Deferred(wait))) => {
                let _ = message
                    .ack_with(AckKind::Nak(Some(wait + Duration::from_millis(50))))
                    .await;
            }
            Some(Err(error)) => {
                let deliveries = message.info().map_or(1, |info| info.delivered as u64);
                let parked = match &requested {
                    Some(event) if deliveries >= self.settings.max_deliveries => {
                        let error = format!("{error:#}");
                        crate::stream::park(
                            &self.js,
                            &self.topology,
                            WORKER_NAME,
                            &message,
                            event,
                            &error,
                            deliveries,
                        )
                        .await
                        .inspect_err(
                            |e| tracing::error!(%job_id, error = %e, "could not park the request"),
                        )
                        .is_ok()
                    }
                    _ => false,
                };
                if !parked {
                    tracing::warn!(%job_id, error = format!("{error:#}"), deliveries, "enrichment job interrupted; redelivering later");
                    let _ = message
                        .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                        .await;
                }
            }
            // Shutting down: leave it for redelivery to another worker.
            None => {}
        }
    }

    /// Drives the job to an end (or to "deferred"). Errors are
    /// infrastructure failures: the message is redelivered.
    async fn run_job(
        &self,
        job_id: EnrichmentJobId,
        metadata: &CommandMetadata,
    ) -> anyhow::Result<Outcome> {
        loop {
            let (job, version) = self.commands.load(job_id).await?;
            let Some(state) = job.state() else {
                return Ok(Outcome::Ended);
            };
            if state.is_final() {
                return Ok(Outcome::Ended);
            }
            if self.model.is_some() {
                if let Admission::Deferred(wait) = self.breaker.admit() {
                    if state != JobState::Deferred {
                        let defer = EnrichmentCommand::Defer {
                            reason: DEFERRED_REASON.to_owned(),
                        };
                        match self
                            .commands
                            .advance(job_id, defer, version, metadata)
                            .await
                        {
                            Ok(_) => {}
                            Err(CommandError::Conflict) => continue,
                            Err(error) => return Err(error.into()),
                        }
                    }
                    return Ok(Outcome::Deferred(wait));
                }
            }
            let start = EnrichmentCommand::Start {
                worker: self.settings.worker_id.clone(),
                // A running job whose message came back lost its worker.
                takeover: state == JobState::Running,
            };
            match self
                .commands
                .advance(job_id, start, version, metadata)
                .await
            {
                Ok(_) => {}
                Err(CommandError::Conflict) => continue,
                Err(CommandError::Enrichment(EnrichmentError::Ended)) => return Ok(Outcome::Ended),
                Err(error) => return Err(error.into()),
            }
            let started_version = version + 1;
            let attempt = job.attempts() + 1;
            let (Some(workspace), Some(company_id), Some(website)) =
                (job.workspace_id(), job.company_id(), job.website())
            else {
                return Ok(Outcome::Ended);
            };
            let company = self.commands.company(company_id, workspace).await?;
            let outcome = match company {
                None => Err(AttemptFailure {
                    error: "the company was deleted".to_owned(),
                    retryable: false,
                    not_before: None,
                    usage: Usage::default(),
                }),
                Some(company) => self.attempt(workspace, website, &company).await,
            };
            let command = match outcome {
                Ok(result) => EnrichmentCommand::Succeed { result },
                Err(failure) => EnrichmentCommand::FailAttempt {
                    usage: failure.usage,
                    error: failure.error,
                    retry_in_ms: failure.retryable.then(|| {
                        let wait = self
                            .backoff(attempt)
                            .max(failure.not_before.unwrap_or_default());
                        wait.as_millis() as u64
                    }),
                },
            };
            let cost = match &command {
                EnrichmentCommand::Succeed { result } => result.usage.cost_micro_usd,
                EnrichmentCommand::FailAttempt { usage, .. } => usage.cost_micro_usd,
                _ => 0,
            };
            // Read before this attempt's own event exists, so its cost is
            // counted exactly once below.
            let spent_before = if cost > 0 {
                self.month_spending(workspace).await
            } else {
                None
            };
            let retry_in = match &command {
                EnrichmentCommand::FailAttempt {
                    retry_in_ms: Some(ms),
                    ..
                } => Some(Duration::from_millis(*ms)),
                _ => None,
            };
            match self
                .commands
                .advance(job_id, command, started_version, metadata)
                .await
            {
                Ok(_) => {}
                // Taken over meanwhile: the other worker reports.
                Err(CommandError::Conflict) => return Ok(Outcome::Ended),
                Err(error) => return Err(error.into()),
            }
            if let Some(before) = spent_before {
                self.raise_budget_alerts(workspace, before + cost, metadata)
                    .await;
            }
            match retry_in {
                Some(delay) => tokio::time::sleep(delay).await,
                None => return Ok(Outcome::Ended),
            }
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        self.settings.backoff_base * 2u32.saturating_pow(attempt.saturating_sub(1))
    }

    async fn attempt(
        &self,
        workspace: vcintel_domain::WorkspaceId,
        website: &str,
        company: &CompanyDetails,
    ) -> Result<EnrichmentResult, AttemptFailure> {
        let fetched = match self.fetcher.fetch(website).await {
            Ok(fetched) => fetched,
            Err(error) => {
                // The model was not asked: a half-open probe slot is free again.
                self.breaker.record_neutral();
                return Err(error.into());
            }
        };
        let page = visible_text(&fetched.html, PAGE_TEXT_BUDGET);
        let content_hash = hex(&Sha256::digest(
            format!("{}\n{}\n{}", page.title, page.description, page.body).as_bytes(),
        ));
        let facts = CompanyFacts {
            sector: company.sector.clone(),
            stage: company.stage,
            location: company.location.clone(),
        };
        let thesis = self.thesis(workspace).await;
        let producer = match &self.model {
            Some(model) => EnrichmentSource::Model {
                model: model.model().to_owned(),
                prompt_version: PROMPT_VERSION.to_owned(),
            },
            None => EnrichmentSource::Heuristic {
                version: HEURISTIC_VERSION.to_owned(),
            },
        };
        if let Some(cached) = self
            .cached(workspace, website, &content_hash, &producer)
            .await
        {
            // The thesis may have changed since: score afresh, at no cost.
            return Ok(EnrichmentResult {
                score: fit_score(&thesis, &facts, &cached.extraction),
                cached: true,
                usage: Usage::default(),
                ..cached
            });
        }
        let (extraction, usage, source) = match &self.model {
            Some(model) => {
                let (answer, usage) = model.extract(&company.name, website, &page).await;
                match &answer {
                    Err(error) if error.is_provider_failure() => self.breaker.record_failure(),
                    // It answered, even if badly: the provider is up.
                    _ => self.breaker.record_success(),
                }
                let extraction = answer.map_err(|error| AttemptFailure {
                    usage,
                    ..AttemptFailure::from(error)
                })?;
                let source = EnrichmentSource::Model {
                    model: model.model().to_owned(),
                    prompt_version: PROMPT_VERSION.to_owned(),
                };
                (extraction, usage, source)
            }
            None => {
                let extraction = heuristic::extract(&company.name, &page)
                    .validated()
                    .map_err(|invalid| AttemptFailure {
                        error: format!("the extraction was invalid: {invalid}"),
                        retryable: false,
                        not_before: None,
                        usage: Usage::default(),
                    })?;
                let source = EnrichmentSource::Heuristic {
                    version: HEURISTIC_VERSION.to_owned(),
                };
                (extraction, Usage::default(), source)
            }
        };
        let score = fit_score(&thesis, &facts, &extraction);
        Ok(EnrichmentResult {
            extraction,
            score,
            source,
            cached: false,
            usage,
            content_hash,
        })
    }
}

impl EnrichmentWorker {
    /// The workspace's thesis as its events say (none yet: no preference).
    async fn thesis(&self, workspace: vcintel_domain::WorkspaceId) -> Thesis {
        match self.directory.current(workspace).await {
            Ok(current) => current
                .and_then(|c| c.workspace.state().map(|s| s.thesis.clone()))
                .unwrap_or_default(),
            Err(error) => {
                tracing::warn!(%error, "could not read the workspace's thesis; scoring without it");
                Thesis::default()
            }
        }
    }

    /// What the workspace's model calls cost this month (`None` when there
    /// is no budget to compare with).
    async fn month_spending(&self, workspace: vcintel_domain::WorkspaceId) -> Option<u64> {
        if self.settings.monthly_budget_micro_usd == 0 {
            return None;
        }
        self.spending
            .spent_this_month(workspace)
            .await
            .inspect_err(|error| tracing::warn!(%error, "could not read the month's spending"))
            .ok()
    }

    /// Raises the budget's threshold alerts (80 %, 100 %) once per month;
    /// they are events, so the relay publishes them for downstream alerting.
    async fn raise_budget_alerts(
        &self,
        workspace: vcintel_domain::WorkspaceId,
        spent: u64,
        metadata: &CommandMetadata,
    ) {
        let month = chrono::Utc::now().format("%Y-%m").to_string();
        let budget = self.settings.monthly_budget_micro_usd;
        match self
            .budgets
            .record_spending(workspace, &month, spent, budget, metadata)
            .await
        {
            Ok(0) => {}
            Ok(raised) => {
                tracing::warn!(%workspace, spent, budget, raised, "enrichment budget threshold reached")
            }
            // Another worker raised it at the same moment.
            Err(CommandError::Conflict) => {}
            Err(error) => tracing::warn!(%error, "could not record a budget alert"),
        }
    }

    /// The workspace's newest result for the same website, content and
    /// producer, if young enough. Lookups that fail are misses: the cache
    /// only ever saves money, it never fails a job.
    async fn cached(
        &self,
        workspace: vcintel_domain::WorkspaceId,
        website: &str,
        content_hash: &str,
        producer: &EnrichmentSource,
    ) -> Option<EnrichmentResult> {
        if self.settings.cache_max_age.is_zero() {
            return None;
        }
        self.recent_results
            .recent_result(
                workspace,
                website,
                content_hash,
                producer,
                self.settings.cache_max_age,
            )
            .await
            .inspect_err(|error| tracing::warn!(%error, "enrichment cache lookup failed"))
            .ok()
            .flatten()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
