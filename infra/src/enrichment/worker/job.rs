//! Running one enrichment job: fetching the website, reading its visible
//! text, extracting with the model or the built-in enricher, scoring
//! against the thesis, and reporting each step as a command conditioned on
//! the job's version.

use super::super::breaker::Admission;
use super::super::fetch::FetchError;
use super::super::heuristic::{self, HEURISTIC_VERSION};
use super::super::model::{ModelError, PROMPT_VERSION};
use super::super::page::{visible_text, PageText};
use super::EnrichmentWorker;
use sha2::{Digest, Sha256};
use std::time::Duration;
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
pub(super) enum Outcome {
    Ended,
    /// Waiting for the breaker: redeliver after this long.
    Deferred(Duration),
}

/// Characters of page text an extraction reads.
const PAGE_TEXT_BUDGET: usize = 12_000;

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
    /// Drives the job to an end (or to "deferred"). Errors are
    /// infrastructure failures: the message is redelivered.
    pub(super) async fn run_job(
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
            let (outcome_label, usage) = match &command {
                EnrichmentCommand::Succeed { result } => ("succeeded", result.usage),
                EnrichmentCommand::FailAttempt {
                    usage,
                    retry_in_ms: Some(_),
                    ..
                } => ("failed_retrying", *usage),
                EnrichmentCommand::FailAttempt { usage, .. } => ("failed_final", *usage),
                _ => ("other", Usage::default()),
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
            let model = self
                .model
                .as_ref()
                .map_or_else(|| "heuristic".to_owned(), |model| model.model().to_owned());
            metrics::counter!("vcintel_enrichment_attempts_total", "outcome" => outcome_label)
                .increment(1);
            metrics::counter!("vcintel_model_tokens_total", "model" => model.clone(), "direction" => "in")
                .increment(usage.tokens_in);
            metrics::counter!("vcintel_model_tokens_total", "model" => model.clone(), "direction" => "out")
                .increment(usage.tokens_out);
            metrics::counter!("vcintel_model_cost_micro_usd_total", "model" => model)
                .increment(usage.cost_micro_usd);
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
        let (page, content_hash) = read_page(&fetched.html);
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
                metrics::counter!("vcintel_budget_thresholds_reached_total")
                    .increment(raised as u64);
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

/// A page as enrichment reads it: its visible text, within what a model
/// is given, and the SHA-256 of that text (which keys the cache).
pub(crate) fn read_page(html: &str) -> (PageText, String) {
    let page = visible_text(html, PAGE_TEXT_BUDGET);
    let content_hash = hex(&Sha256::digest(
        format!("{}\n{}\n{}", page.title, page.description, page.body).as_bytes(),
    ));
    (page, content_hash)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
