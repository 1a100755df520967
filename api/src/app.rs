//! Bootstrap: builds every dependency once and runs the chosen components
//! (API, relay, projector) under one shutdown signal.

use crate::auth::gate::Gate;
use crate::auth::TokenKeys;
use crate::component::Component;
use crate::consistency::ConsistencyTokens;
use crate::consistency::ReadYourWrites;
use crate::idempotency::Idempotency;
use crate::limits::RateLimits;
use crate::router::router;
use crate::settings::Settings;
use crate::state::{AppState, Services};
use anyhow::Context;
use async_nats::jetstream;
use sqlx::postgres::PgPoolOptions;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use vcintel_commands::admission::{AdmissionPolicy, TierLimits};
use vcintel_infra::accounts::{PasswordCost, Passwords, WorkspaceDirectory};
use vcintel_infra::enrichment::admission::PgAdmission;
use vcintel_infra::enrichment::breaker::CircuitBreaker;
use vcintel_infra::enrichment::fetch::{FetchPolicy, Fetcher};
use vcintel_infra::enrichment::model::{ModelClient, ModelSettings};
use vcintel_infra::enrichment::worker::{EnrichmentWorker, WorkerSettings};
use vcintel_infra::health::{watch_consumers, Progress};
use vcintel_infra::identity_cache::IdentityCache;
use vcintel_infra::rate_limit::RateLimiter;
use vcintel_infra::relay::{Relay, RelaySettings};
use vcintel_infra::replicas::ReadPools;
use vcintel_infra::stream::{ensure_events_stream, StreamSettings};
use vcintel_infra::wire::Topology;
use vcintel_infra::{db, event_store, CancellationToken};
use vcintel_projections::usage::MonthlySpending;
use vcintel_projections::ProjectionSettings;

#[derive(Debug)]
pub struct Application {
    settings: Settings,
    components: Vec<Component>,
    listener: Option<TcpListener>,
    health_listener: Option<TcpListener>,
    metrics_listener: Option<TcpListener>,
    state: AppState,
    /// The streams as this deployment wants them (the relay recreates
    /// a lost stream with them).
    stream_settings: StreamSettings,
}

impl Application {
    /// Connects to Postgres and NATS, applies migrations, makes sure the
    /// stream exists, and binds the API port if the API is among `components`.
    pub async fn build(settings: Settings, components: &[Component]) -> anyhow::Result<Self> {
        let database = db::target_of(&settings.database_url);
        tracing::info!(%database, "connecting to Postgres");
        let pool = match db::connect_failing_after(
            &settings.database_url,
            settings.db_max_connections,
            Duration::from_millis(settings.db_acquire_timeout_ms),
        )
        .await
        {
            Ok(pool) => pool,
            // The pool says only that it timed out: one direct connection
            // says why.
            Err(error) => {
                let cause = match db::reach(&settings.database_url, Duration::from_secs(10)).await {
                    Err(cause) => cause,
                    Ok(()) => error.to_string(),
                };
                anyhow::bail!("DATABASE_URL ({database}): {cause}")
            }
        };
        db::migrate(&pool).await.context("applying migrations")?;
        let nats_servers = crate::settings::nats_servers(&settings.nats_url)?;
        let nats = async_nats::ConnectOptions::new()
            .name("vcintel")
            .event_callback(|event| async move { log_nats_event(event) })
            .retry_on_initial_connect()
            .connection_timeout(Duration::from_secs(5))
            .connect(nats_servers.clone())
            .await
            .context("connecting to NATS (NATS_URL)")?;
        let js = jetstream::new(nats.clone());
        let topology = Topology::new(&settings.nats_prefix);
        let stream_settings = StreamSettings {
            duplicate_window: settings.duplicate_window(),
            replicas: settings.stream_replicas,
        };
        // A cluster starting with us answers JetStream requests only once
        // it has elected its meta leader: keep asking for a while.
        // A server nobody reaches is given 10 s.
        let started = std::time::Instant::now();
        let mut last_error = None;
        let ensured = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                match ensure_events_stream(&js, &topology, &stream_settings).await {
                    Ok(replicas) => return Some(replicas),
                    Err(error) => {
                        tracing::warn!(error = %format!("{error:#}"), "creating the JetStream stream; retrying");
                        last_error = Some(error);
                        let unreached = nats.connection_state()
                            != async_nats::connection::State::Connected;
                        if unreached && started.elapsed() > Duration::from_secs(10) {
                            return None;
                        }
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
        })
        .await;
        let replicas = match (ensured, last_error) {
            (Ok(Some(replicas)), _) => replicas,
            (_, error) => {
                let error = error.map_or_else(|| "no answer".to_owned(), |e| format!("{e:#}"));
                anyhow::bail!(
                    "NATS_URL: could not create the JetStream stream in {:.0} s ({error}); {}",
                    started.elapsed().as_secs_f64(),
                    nats_diagnosis(&nats_servers).await
                )
            }
        };
        tracing::info!(replicas, "events stream ready");
        let listener = if components.contains(&Component::Api) {
            Some(
                TcpListener::bind(settings.bind)
                    .await
                    .with_context(|| format!("binding {}", settings.bind))?,
            )
        } else {
            None
        };
        // A process without the API still answers health probes when asked to.
        let health_listener = match (components.contains(&Component::Api), settings.health_bind) {
            (false, Some(address)) => Some(
                TcpListener::bind(address)
                    .await
                    .with_context(|| format!("binding {address} (VCINTEL_HEALTH_BIND)"))?,
            ),
            _ => None,
        };
        let metrics_listener = match settings.metrics_bind {
            Some(address) => Some(
                TcpListener::bind(address)
                    .await
                    .with_context(|| format!("binding {address} (VCINTEL_METRICS_BIND)"))?,
            ),
            None => None,
        };
        // Installed before anything reports, so no early sample is lost.
        if settings.metrics {
            crate::metrics::recorder();
        }
        let limiter_pool = match &settings.rate_limit_database_url {
            // Lazy: the API starts even if the counter store is down, and
            // then fails open or closed per route as documented.
            Some(url) => PgPoolOptions::new()
                .max_connections(settings.db_max_connections)
                .acquire_timeout(Duration::from_millis(500))
                .connect_lazy(url)
                .context("VCINTEL_RATE_LIMIT_DATABASE_URL")?,
            None => pool.clone(),
        };
        let vault = settings
            .vault(pool.clone())
            .context("the privacy keys (VCINTEL_PRIVACY_MASTER_KEY)")?;
        let services = event_store::command_services_with(
            &vault,
            (settings.snapshot_every > 0).then_some(settings.snapshot_every),
        );
        let passwords = Passwords::new(PasswordCost {
            memory_kib: settings.argon2_memory_kib,
            iterations: settings.argon2_iterations,
            parallelism: 1,
        })?;
        if settings.dev_tokens {
            tracing::warn!("VCINTEL_DEV_TOKENS is on: development tokens are accepted; never do this in production");
        }
        let identity = IdentityCache::new();
        // One directory (its cache is shared anyway) for every part that
        // authorises against workspaces.
        let directory = WorkspaceDirectory::new(vault.clone(), identity.clone());
        let reads = Arc::new(if settings.read_database_urls.is_empty() {
            ReadPools::primary_only(pool.clone())
        } else {
            ReadPools::connect(
                pool.clone(),
                &settings.read_database_urls,
                settings.db_max_connections,
                Duration::from_millis(settings.db_acquire_timeout_ms),
                Duration::from_millis(settings.read_max_staleness_ms),
            )
            .context("VCINTEL_READ_DATABASE_URL")?
        });
        let read_your_writes = Arc::new(ReadYourWrites {
            tokens: ConsistencyTokens::new(settings.jwt_secret_bytes()),
            pool: pool.clone(),
            reads,
            replica_timeout: Duration::from_millis(settings.read_replica_timeout_ms),
            wait: settings.consistency_wait(),
            directory: directory.clone(),
        });
        let gate = Arc::new(Gate {
            pool: pool.clone(),
            tokens: TokenKeys::new(settings.jwt_secret_bytes()),
            identity: identity.clone(),
            directory: directory.clone(),
            limits: RateLimits::new(
                RateLimiter::new(limiter_pool),
                settings.rate_limit_per_user,
                settings.rate_limit_anonymous,
                settings.rate_limit_auth,
                settings.rate_limit_verification_mail,
            ),
            dev_tokens: settings.dev_tokens,
            trust_forwarded_for: settings.trust_forwarded_for,
        });
        let idempotency = Arc::new(Idempotency {
            pool: pool.clone(),
            request_timeout: Duration::from_secs(settings.request_timeout_secs),
        });
        let state = AppState::new(Services {
            companies: Arc::new(services.companies),
            accounts: Arc::new(services.accounts),
            workspaces: Arc::new(services.workspaces),
            notes: Arc::new(services.notes),
            lists: Arc::new(services.lists),
            saved_searches: Arc::new(services.saved_searches),
            enrichments: Arc::new(services.enrichments),
            budgets: Arc::new(services.budgets),
            model_breaker: settings.llm_base_url.as_ref().map(|_| {
                Arc::new(CircuitBreaker::new(
                    settings.llm_breaker_threshold,
                    Duration::from_millis(settings.llm_breaker_cooldown_ms),
                ))
            }),
            gate,
            api_key_secrets: vcintel_infra::accounts::PgAccounts::new(pool.clone()),
            credentials: vcintel_infra::accounts::PgCredentials::new(
                vault.clone(),
                passwords.clone(),
            ),
            sessions: vcintel_infra::accounts::PgSessions::new(
                pool.clone(),
                identity.clone(),
                settings.session_ttl(),
            ),
            security_log: vcintel_infra::accounts::PgSecurityLog::new(pool.clone()),
            identity_workspaces: vcintel_projections::identity::IdentityWorkspaces::new(
                pool.clone(),
                directory,
            ),
            admission: PgAdmission::new(vault.clone()),
            spending: Arc::new(MonthlySpending::new(pool.clone())),
            pool,
            vault,
            erasure_grace_hours: settings.erasure_grace_hours,
            cursors: crate::http::pagination::Cursors::new(settings.jwt_secret_bytes()),
            read_your_writes,
            idempotency,
            nats,
            jetstream: js,
            asyncapi: serde_json::to_vec(&crate::asyncapi::document(
                &topology,
                &crate::asyncapi::nats_host(&settings.nats_url),
            ))?
            .into(),
            topology,
            admission_policy: AdmissionPolicy {
                max_active_per_user: settings.enrich_max_active_per_user,
                monthly_budget_micro_usd: if settings.llm_base_url.is_some() {
                    settings.monthly_budget_micro_usd()
                } else {
                    0
                },
                per_hour: TierLimits {
                    free: settings.enrich_per_hour_free,
                    pro: settings.enrich_per_hour_pro,
                    enterprise: settings.enrich_per_hour_enterprise,
                },
            },
            stall_after: Duration::from_secs(settings.stall_after_secs),
            components: components.to_vec(),
            progress: Progress::default(),
            access_token_ttl: settings.access_token_ttl(),
            admin_token_digest: settings.admin_token.as_ref().map(|token| {
                use secrecy::ExposeSecret;
                Arc::new(crate::routes::admin::admin_token_digest(
                    token.expose_secret(),
                ))
            }),
            request_timeout: Duration::from_secs(settings.request_timeout_secs),
        });
        Ok(Self {
            settings,
            components: components.to_vec(),
            listener,
            health_listener,
            metrics_listener,
            state,
            stream_settings,
        })
    }

    /// The bound API address (useful with port 0), if the API runs here.
    pub fn address(&self) -> Option<std::net::SocketAddr> {
        self.listener.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The bound API port (useful with port 0), if the API runs here.
    pub fn port(&self) -> Option<u16> {
        self.listener
            .as_ref()
            .or(self.health_listener.as_ref())
            .and_then(|l| l.local_addr().ok())
            .map(|a| a.port())
    }

    /// Runs every component until `shutdown` is cancelled or one of them
    /// stops; then stops the others and says which one ended and why.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let mut tasks: JoinSet<(&'static str, anyhow::Result<()>)> = JoinSet::new();
        let Application {
            settings,
            components,
            mut listener,
            health_listener,
            metrics_listener,
            state,
            stream_settings,
        } = self;
        let probes = [("health", health_listener), ("metrics", metrics_listener)];
        for (name, probe_listener) in probes {
            let Some(probe_listener) = probe_listener else {
                continue;
            };
            let app = crate::routes::health::router(state.clone());
            let token = shutdown.clone();
            tasks.spawn(async move {
                let result = axum::serve(probe_listener, app)
                    .with_graceful_shutdown(token.cancelled_owned())
                    .await
                    .map_err(anyhow::Error::from);
                (name, result)
            });
        }
        for component in components {
            let token = shutdown.clone();
            let name = component.name();
            match component {
                Component::Api => {
                    let Some(listener) = listener.take() else {
                        continue;
                    };
                    let app = router(
                        state.clone(),
                        Duration::from_secs(settings.request_timeout_secs),
                        settings.max_body_bytes,
                        &settings.cors_origins,
                    )?;
                    let (pool, sweeper, policy) =
                        (state.pool.clone(), token.clone(), settings.retention());
                    tasks.spawn(async move {
                        enforce_retention(pool, policy, sweeper).await;
                        ("retention", Ok(()))
                    });
                    let (reads, watching) = (state.read_your_writes.reads.clone(), token.clone());
                    tasks.spawn(async move {
                        reads.watch(watching).await;
                        ("read replica watch", Ok(()))
                    });
                    let (erasing, every) = (
                        token.clone(),
                        Duration::from_secs(settings.erasure_sweep_secs.max(1)),
                    );
                    let erasure_state = state.clone();
                    tasks.spawn(async move {
                        carry_out_erasures(erasure_state, every, erasing).await;
                        ("erasures", Ok(()))
                    });
                    let (limiter, pool, sweeper) = (
                        state.gate.limits.limiter.clone(),
                        state.pool.clone(),
                        token.clone(),
                    );
                    tasks.spawn(async move {
                        sweep_every_minute(limiter, pool, sweeper).await;
                        ("sweeper", Ok(()))
                    });
                    let (identity, pool, listener_stop) = (
                        state.gate.identity.clone(),
                        state.pool.clone(),
                        token.clone(),
                    );
                    tasks.spawn(async move {
                        identity.listen(pool, listener_stop).await;
                        ("identity-listener", Ok(()))
                    });
                    tasks.spawn(async move {
                        let result = axum::serve(
                            listener,
                            app.into_make_service_with_connect_info::<SocketAddr>(),
                        )
                        .with_graceful_shutdown(token.cancelled_owned())
                        .await
                        .map_err(anyhow::Error::from);
                        (name, result)
                    });
                }
                Component::Relay => {
                    let relay = Relay::new(
                        state.pool.clone(),
                        state.jetstream.clone(),
                        state.topology.clone(),
                        RelaySettings {
                            lease_ttl: Duration::from_secs(settings.relay_lease_secs),
                            on_divergence: settings.stream_on_divergence,
                            stream: stream_settings.clone(),
                            ..RelaySettings::default()
                        },
                    );
                    tasks.spawn(async move { (name, relay.run(token).await) });
                }
                Component::Enricher => {
                    let fetcher = Fetcher::new(FetchPolicy {
                        allowed_addresses: settings.enrich_allow_addresses.clone(),
                        ..FetchPolicy::default()
                    });
                    let model = match &settings.llm_base_url {
                        Some(base_url) => Some(ModelClient::new(ModelSettings {
                            base_url: base_url.clone(),
                            model: settings.llm_model.clone(),
                            api_key: settings.llm_api_key.clone(),
                            price_in_per_mtok: settings.llm_price_in_per_mtok,
                            price_out_per_mtok: settings.llm_price_out_per_mtok,
                            timeout: Duration::from_secs(settings.llm_timeout_secs),
                            max_output_tokens: 1_500,
                        })?),
                        None => None,
                    };
                    let breaker = state.model_breaker.clone().unwrap_or_else(|| {
                        // No model: nothing to break, but the worker wants one.
                        Arc::new(CircuitBreaker::new(u32::MAX, Duration::ZERO))
                    });
                    let worker = EnrichmentWorker::new(
                        state.vault.clone(),
                        state.enrichments.clone(),
                        state.budgets.clone(),
                        state.spending.clone(),
                        Arc::new(vcintel_projections::enrichment_jobs::PgRecentResults::new(
                            state.pool.clone(),
                        )),
                        fetcher,
                        model,
                        breaker,
                        state.jetstream.clone(),
                        state.topology.clone(),
                        WorkerSettings {
                            backoff_base: Duration::from_millis(settings.enrich_backoff_ms),
                            cache_max_age: Duration::from_secs(settings.enrich_cache_max_age_secs),
                            monthly_budget_micro_usd: settings.monthly_budget_micro_usd(),
                            ack_wait: Duration::from_secs(settings.projector_ack_wait_secs.max(3)),
                            max_deliveries: settings.enrich_max_deliveries.max(1),
                            ..WorkerSettings::default()
                        },
                    );
                    let watch = watch_consumers(
                        state.jetstream.clone(),
                        state.topology.clone(),
                        vec![(
                            "enricher".to_owned(),
                            state
                                .topology
                                .durable_name(vcintel_infra::enrichment::worker::WORKER_NAME),
                        )],
                        state.progress.clone(),
                        PROGRESS_EVERY,
                        token.clone(),
                    );
                    tasks.spawn(async move {
                        watch.await;
                        ("enricher-watch", Ok(()))
                    });
                    tasks.spawn(async move { (name, worker.run(token).await) });
                }
                Component::Mailer => {
                    let mailer = vcintel_infra::mail::Mailer::new(
                        state.pool.clone(),
                        state.vault.clone(),
                        state.jetstream.clone(),
                        state.topology.clone(),
                        vcintel_infra::mail::MailSettings {
                            smtp_url: settings.smtp_url.clone(),
                            from: settings.mail_from.clone(),
                            verify_url: settings.verify_url.clone(),
                            token_ttl: Duration::from_secs(settings.verify_token_ttl_secs),
                            development: settings.environment
                                == crate::settings::Environment::Development,
                            ..Default::default()
                        },
                    )?;
                    let watch = watch_consumers(
                        state.jetstream.clone(),
                        state.topology.clone(),
                        vcintel_infra::mail::MAIL_CONSUMERS
                            .iter()
                            .map(|(consumer, ..)| {
                                (
                                    (*consumer).to_owned(),
                                    state.topology.durable_name(consumer),
                                )
                            })
                            .collect(),
                        state.progress.clone(),
                        PROGRESS_EVERY,
                        token.clone(),
                    );
                    tasks.spawn(async move {
                        watch.await;
                        ("mailer-watch", Ok(()))
                    });
                    tasks.spawn(async move { (name, mailer.run(token).await) });
                }
                Component::Projector => {
                    let watch = watch_consumers(
                        state.jetstream.clone(),
                        state.topology.clone(),
                        vcintel_projections::READ_MODELS
                            .iter()
                            .map(|m| {
                                (
                                    format!("projection:{}", m.name),
                                    state.topology.durable_name(m.name),
                                )
                            })
                            .collect(),
                        state.progress.clone(),
                        PROGRESS_EVERY,
                        token.clone(),
                    );
                    tasks.spawn(async move {
                        watch.await;
                        ("projector-watch", Ok(()))
                    });
                    let vault = state.vault.clone();
                    let js = state.jetstream.clone();
                    let topology = state.topology.clone();
                    let projection_settings = ProjectionSettings {
                        ack_wait: Duration::from_secs(settings.projector_ack_wait_secs),
                        max_deliveries: settings.projector_max_deliveries.max(1),
                        ..Default::default()
                    };
                    tasks.spawn(async move {
                        let result = vcintel_projections::run_all(
                            vault,
                            js,
                            topology,
                            projection_settings,
                            token,
                        )
                        .await;
                        (name, result)
                    });
                }
            }
        }
        let first = tokio::select! {
            done = tasks.join_next() => done,
            _ = shutdown.cancelled() => None,
        };
        shutdown.cancel();
        let outcome = match first {
            Some(Ok((name, Ok(())))) => {
                if shutdown.is_cancelled() {
                    tracing::info!(component = name, "component stopped");
                }
                Ok(())
            }
            Some(Ok((name, Err(error)))) => {
                tracing::error!(
                    component = name,
                    error = format!("{error:#}"),
                    "component failed; stopping the others"
                );
                Err(error.context(format!("{name} failed")))
            }
            Some(Err(join_error)) => Err(anyhow::anyhow!("a component panicked: {join_error}")),
            None => Ok(()),
        };
        let drain = async { while tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(Duration::from_secs(10), drain)
            .await
            .is_err()
        {
            tracing::warn!("components did not stop within 10s; abandoning them");
        }
        outcome
    }
}

/// How often a worker process samples its consumers' progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// The NATS connection's changes, each logged once as it happens. While
/// the connection is down, each failed reconnection attempt is a client
/// error: the first of an outage is a warning, the rest (one every few
/// hundred milliseconds) are DEBUG.
fn log_nats_event(event: async_nats::Event) {
    use async_nats::Event;
    use std::sync::atomic::{AtomicBool, Ordering};
    static CLIENT_ERROR_TOLD: AtomicBool = AtomicBool::new(false);
    match event {
        Event::Connected => {
            CLIENT_ERROR_TOLD.store(false, Ordering::Relaxed);
            tracing::info!("connected to NATS")
        }
        Event::Disconnected => {
            CLIENT_ERROR_TOLD.store(false, Ordering::Relaxed);
            tracing::warn!("lost the connection to NATS; reconnecting (commands still work)")
        }
        Event::LameDuckMode => tracing::warn!("the NATS server is shutting down (lame duck)"),
        Event::SlowConsumer(sid) => tracing::warn!(sid, "NATS reports this client slow"),
        Event::ServerError(error) => tracing::warn!(%error, "NATS server error"),
        Event::ClientError(error) => {
            if CLIENT_ERROR_TOLD.swap(true, Ordering::Relaxed) {
                tracing::debug!(%error, "NATS client error");
            } else {
                tracing::warn!(%error, "NATS client error (further ones until reconnected: DEBUG)");
            }
        }
        Event::Draining | Event::Closed => tracing::info!(?event, "NATS connection closing"),
    }
}

/// Why NATS may not have answered, server by server: each address, and
/// whether a TCP connection to it is refused, times out or opens (then
/// the server answers but JetStream does not).
async fn nats_diagnosis(servers: &[async_nats::ServerAddr]) -> String {
    let mut found = Vec::new();
    for server in servers {
        let address = format!("{}:{}", server.host(), server.port());
        let probe = tokio::time::timeout(
            Duration::from_secs(2),
            tokio::net::TcpStream::connect(address.clone()),
        )
        .await;
        found.push(match probe {
            Err(_) => format!("{address}: no answer within 2 s"),
            Ok(Err(error)) if error.kind() == std::io::ErrorKind::ConnectionRefused => {
                format!("{address}: connection refused (is nats-server running there?)")
            }
            Ok(Err(error)) => format!("{address}: {error}"),
            Ok(Ok(_)) => format!(
                "{address}: reachable, but JetStream did not answer (is it enabled, `-js`?)"
            ),
        });
    }
    found.join("; ")
}

/// Every minute until shutdown: drops rate-limit windows too old to count,
/// and identity-change acknowledgements no writer waits for any more.
async fn sweep_every_minute(limiter: RateLimiter, pool: sqlx::PgPool, shutdown: CancellationToken) {
    loop {
        match limiter.sweep().await {
            Ok(rows) => {
                metrics::counter!("vcintel_retention_deleted_total", "table" => "rate_limit_windows")
                    .increment(rows);
            }
            Err(error) => tracing::warn!(%error, "could not sweep old rate-limit windows"),
        }
        if let Err(error) = IdentityCache::sweep(&pool).await {
            tracing::warn!(%error, "could not sweep identity-change acknowledgements");
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(60)) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

/// Every `every` until shutdown: erases the people whose erasure's grace
/// period is over (a few at a time; several instances may race, and an
/// erasure repeated is one erasure).
async fn carry_out_erasures(state: AppState, every: Duration, shutdown: CancellationToken) {
    loop {
        match crate::erasure::erase_due(&state.vault, &state.accounts, &state.workspaces, 10).await
        {
            Ok(0) => {}
            Ok(done) => tracing::info!(erased = done, "erasures carried out"),
            Err(error) => tracing::warn!(%error, "could not look for erasures due"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

/// Every ten minutes until shutdown: deletes idempotency records, security
/// log entries and ended sessions past their retention, counting each in
/// `vcintel_retention_deleted_total`.
async fn enforce_retention(
    pool: sqlx::PgPool,
    policy: vcintel_infra::retention::RetentionPolicy,
    shutdown: CancellationToken,
) {
    let count = |table: &'static str, rows: u64| {
        metrics::counter!("vcintel_retention_deleted_total", "table" => table).increment(rows);
    };
    loop {
        match vcintel_infra::idempotency::sweep(&pool).await {
            Ok(rows) => count("idempotency_keys", rows),
            Err(error) => tracing::warn!(%error, "could not sweep idempotency keys"),
        }
        match vcintel_infra::retention::sweep(&pool, &policy).await {
            Ok(swept) => {
                count("security_events", swept.security_events);
                count("auth_sessions", swept.sessions);
                if swept != Default::default() {
                    tracing::info!(
                        security_events = swept.security_events,
                        sessions = swept.sessions,
                        "records past their retention deleted"
                    );
                }
            }
            Err(error) => tracing::warn!(%error, "could not enforce retention"),
        }
        metrics::counter!("vcintel_retention_sweeps_total").increment(1);
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(600)) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}
