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
//!
//! This module is the JetStream side: the consumer, its messages and their
//! acknowledgements. [`job`] runs one job: fetching, extracting, scoring,
//! the cache, the budget, and the commands that move the job along.

mod job;

use super::breaker::CircuitBreaker;
use super::fetch::Fetcher;
use super::model::ModelClient;
use crate::event_store::{PgBudgetCommands, PgEnrichmentCommands};
use crate::trace_context;
use crate::wire::{EventMessage, Topology};
use async_nats::jetstream::{self, consumer::pull, AckKind};
use futures::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;
use uuid::Uuid;
use vcintel_commands::admission::Spending;
use vcintel_commands::enrichment::RecentResults;
use vcintel_commands::CommandMetadata;
use vcintel_domain::enrichment::EnrichmentJobId;

pub(crate) use job::read_page;
use job::Outcome;
pub use job::DEFERRED_REASON;

/// The durable consumer's name.
pub const WORKER_NAME: &str = "enricher";

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

impl EnrichmentWorker {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        vault: crate::vault::Vault,
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
                vault,
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
        tracing::debug!(worker = %self.settings.worker_id, "enrichment worker consuming");
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
        // The job continues the trace its request was published in, and
        // the events it appends carry the job's span on.
        let span = tracing::info_span!(
            "enrichment.job",
            otel.name = "enrich company",
            otel.kind = "consumer",
            messaging.system = "nats",
            messaging.operation.type = "process",
            %job_id,
        );
        let requested_in = trace_context::message_traceparent(&message);
        trace_context::continue_trace(&span, requested_in);
        let metadata = CommandMetadata {
            request_id: Some(format!("enrichment-{job_id}")),
            correlation_id: requested.as_ref().and_then(|e| e.correlationid.clone()),
            causation_id: requested.as_ref().map(|e| e.id),
            traceparent: trace_context::traceparent_of(&span)
                .or_else(|| requested_in.map(str::to_owned)),
            ..CommandMetadata::default()
        };
        let outcome = tokio::select! {
            outcome = self.run_job(job_id, &metadata).instrument(span) => Some(outcome),
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
                    // An unreachable database is not the request's fault.
                    Some(event)
                        if deliveries >= self.settings.max_deliveries
                            && !crate::db::is_unavailable(&*error) =>
                    {
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
}
