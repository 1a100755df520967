//! Prometheus metrics. Every part of the process reports through the
//! `metrics` facade to one recorder (metrics-exporter-prometheus, chosen
//! over OpenTelemetry metrics because the facade is a macro call with no
//! SDK to thread through the workers, and the exporter renders the text
//! format without a listener of its own). Here: the recorder, the HTTP
//! RED middleware (by route template, never the raw path), the gauges
//! sampled when scraped (database pool, each component's lag), and the
//! text `/metrics` answers. Labels are bounded: no ids, e-mails or paths.

use crate::state::AppState;
use axum::extract::{MatchedPath, Request};
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::Instant;

static RECORDER: OnceLock<PrometheusHandle> = OnceLock::new();

/// Latency buckets, in seconds, for every `*_seconds` histogram.
const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// What a series measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Every series the service exports, declared once: its name, kind and
/// help text (what `# HELP` says; the dashboard and the alert rules may
/// use only these, which a test checks).
pub const CATALOGUE: &[(&str, Kind, &str)] = &[
    (
        "vcintel_http_requests_total",
        Kind::Counter,
        "HTTP requests by method, route template and status class.",
    ),
    (
        "vcintel_http_request_duration_seconds",
        Kind::Histogram,
        "HTTP request latency by method and route template.",
    ),
    (
        "vcintel_db_pool_connections",
        Kind::Gauge,
        "Postgres pool connections by state (idle, in_use).",
    ),
    (
        "vcintel_db_pool_max_connections",
        Kind::Gauge,
        "Most Postgres connections the pool opens.",
    ),
    (
        "vcintel_database_up",
        Kind::Gauge,
        "1 when this process reaches Postgres within a second.",
    ),
    (
        "vcintel_component_lag_events",
        Kind::Gauge,
        "Messages waiting for a component (a projection, the enricher, a mailer).",
    ),
    (
        "vcintel_component_lag_seconds",
        Kind::Gauge,
        "How long the oldest message waiting for a component has waited.",
    ),
    (
        "vcintel_component_stalled",
        Kind::Gauge,
        "1 when a component has work waiting and has not moved for the stall time.",
    ),
    (
        "vcintel_relay_lag_events",
        Kind::Gauge,
        "Committed events not yet published (where the relay runs).",
    ),
    (
        "vcintel_relay_lag_seconds",
        Kind::Gauge,
        "How long the oldest unpublished event has waited.",
    ),
    (
        "vcintel_relay_stream_epoch",
        Kind::Gauge,
        "How many times the stream was refilled from the event store.",
    ),
    (
        "vcintel_relay_halted",
        Kind::Gauge,
        "1 while the relay is halted by a divergence it will not repair by itself.",
    ),
    (
        "vcintel_relay_has_leader",
        Kind::Gauge,
        "1 while a relay instance holds the lease.",
    ),
    (
        "vcintel_stream_replicas_configured",
        Kind::Gauge,
        "Copies of the events stream asked for (VCINTEL_STREAM_REPLICAS).",
    ),
    (
        "vcintel_stream_replicas_current",
        Kind::Gauge,
        "Copies of the events stream caught up with its leader, the leader's included.",
    ),
    (
        "vcintel_stream_has_leader",
        Kind::Gauge,
        "1 while the events stream has a leader (it takes writes only then).",
    ),
    (
        "vcintel_stream_replica_lag_operations",
        Kind::Gauge,
        "Operations the furthest-behind online copy of the events stream lags its leader.",
    ),
    (
        "vcintel_read_replica_fit",
        Kind::Gauge,
        "1 while a read replica serves reads (answers, replays the primary, within the staleness limit).",
    ),
    (
        "vcintel_read_replica_staleness_seconds",
        Kind::Gauge,
        "How far a read replica's replay is behind the primary.",
    ),
    (
        "vcintel_read_fallbacks_total",
        Kind::Counter,
        "Reads served by the primary although replicas are configured, by reason.",
    ),
    (
        "vcintel_relay_batches_total",
        Kind::Counter,
        "Batches the relay published.",
    ),
    (
        "vcintel_events_published_total",
        Kind::Counter,
        "Events published to the stream by aggregate and event type.",
    ),
    (
        "vcintel_relay_repairs_total",
        Kind::Counter,
        "Anti-entropy repairs of the stream by kind.",
    ),
    (
        "vcintel_projection_events_applied_total",
        Kind::Counter,
        "Events applied to each read model.",
    ),
    (
        "vcintel_projection_gap_fills_total",
        Kind::Counter,
        "Times a read model filled versions missing from the stream from the store.",
    ),
    (
        "vcintel_projection_orphans_skipped_total",
        Kind::Counter,
        "Messages a read model skipped because the store lacks their event (taken back by a restore).",
    ),
    (
        "vcintel_dead_letters_total",
        Kind::Counter,
        "Messages a consumer parked as dead letters.",
    ),
    (
        "vcintel_enrichment_attempts_total",
        Kind::Counter,
        "Enrichment attempts by outcome.",
    ),
    (
        "vcintel_model_tokens_total",
        Kind::Counter,
        "Model tokens by model and direction (in, out).",
    ),
    (
        "vcintel_model_cost_micro_usd_total",
        Kind::Counter,
        "Model cost in millionths of a US dollar by model.",
    ),
    (
        "vcintel_model_call_duration_seconds",
        Kind::Histogram,
        "Model call latency by model and outcome (ok, error).",
    ),
    (
        "vcintel_model_breaker_open",
        Kind::Gauge,
        "1 while the model provider's circuit breaker is open.",
    ),
    (
        "vcintel_budget_thresholds_reached_total",
        Kind::Counter,
        "Monthly model-budget thresholds workspaces crossed.",
    ),
    (
        "vcintel_rate_limit_decisions_total",
        Kind::Counter,
        "Rate-limit decisions by action and outcome.",
    ),
    (
        "vcintel_relay_publish_delay_seconds",
        Kind::Histogram,
        "From an event's append to its publication's acknowledgement.",
    ),
    (
        "vcintel_rebuild_progress_ratio",
        Kind::Gauge,
        "A read model's latest rebuild: events replayed over events to replay (1 once swapped in).",
    ),
    (
        "vcintel_rebuild_running",
        Kind::Gauge,
        "1 while a process is rebuilding the read model.",
    ),
    (
        "vcintel_retention_deleted_total",
        Kind::Counter,
        "Records deleted past their retention, by table.",
    ),
    (
        "vcintel_retention_sweeps_total",
        Kind::Counter,
        "Retention sweeps run (every ten minutes where the API runs).",
    ),
    (
        "vcintel_erasures_total",
        Kind::Counter,
        "People erased (`user.erased` recorded), by the scheduler or an operator.",
    ),
    (
        "vcintel_enrichments_requested_total",
        Kind::Counter,
        "Enrichment jobs started, by the requester's tier (free, pro, enterprise, none).",
    ),
];

/// The process's recorder, installed the first time anything asks for it
/// (one per process: the facade has one global recorder), with every
/// series in [`CATALOGUE`] described.
pub fn recorder() -> &'static PrometheusHandle {
    RECORDER.get_or_init(|| {
        let handle = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), SECONDS_BUCKETS)
            .expect("the buckets are not empty")
            .install_recorder()
            .expect("no other metrics recorder is installed in this process");
        for &(name, kind, help) in CATALOGUE {
            match kind {
                Kind::Counter => metrics::describe_counter!(name, help),
                Kind::Gauge => metrics::describe_gauge!(name, help),
                Kind::Histogram => metrics::describe_histogram!(name, metrics::Unit::Seconds, help),
            }
        }
        handle
    })
}

/// The route template a request matched (`/v1/companies/{id}`), handed
/// from the routes' layer to [`red`] through the response.
#[derive(Debug, Clone)]
struct RouteTemplate(String);

/// Inside the router: notes which route matched, for the metrics and as
/// the request span's name.
pub async fn note_route(matched: Option<MatchedPath>, request: Request, next: Next) -> Response {
    if let Some(matched) = &matched {
        let span = tracing::Span::current();
        vcintel_infra::trace_context::rename(
            &span,
            format!("{} {}", request.method(), matched.as_str()),
        );
        span.record("http.route", matched.as_str());
    }
    let mut response = next.run(request).await;
    if let Some(matched) = matched {
        response
            .extensions_mut()
            .insert(RouteTemplate(matched.as_str().to_owned()));
    }
    response
}

/// Outermost: requests, errors by status class and latency, per method
/// and route template (`unmatched` for paths no route has).
pub async fn red(request: Request, next: Next) -> Response {
    if !enabled() {
        return next.run(request).await;
    }
    let method = method_label(request.method());
    let started = Instant::now();
    let response = next.run(request).await;
    let route = response
        .extensions()
        .get::<RouteTemplate>()
        .map_or_else(|| "unmatched".to_owned(), |route| route.0.clone());
    let status = match response.status().as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    metrics::counter!(
        "vcintel_http_requests_total",
        "method" => method, "route" => route.clone(), "status" => status
    )
    .increment(1);
    metrics::histogram!(
        "vcintel_http_request_duration_seconds",
        "method" => method, "route" => route
    )
    .record(started.elapsed().as_secs_f64());
    response
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Samples what is a level rather than an event: the database pool and
/// each component's lag, as of now.
fn sample_gauges(state: &AppState) {
    let size = state.pool.size() as f64;
    let idle = state.pool.num_idle() as f64;
    metrics::gauge!("vcintel_db_pool_connections", "state" => "idle").set(idle);
    metrics::gauge!("vcintel_db_pool_connections", "state" => "in_use").set(size - idle);
    metrics::gauge!("vcintel_db_pool_max_connections")
        .set(f64::from(state.pool.options().get_max_connections()));
    for (component, progress) in state.progress.all() {
        metrics::gauge!("vcintel_component_lag_events", "component" => component.clone())
            .set(progress.lag as f64);
        metrics::gauge!("vcintel_component_lag_seconds", "component" => component.clone()).set(
            progress
                .oldest_waiting
                .map_or(0.0, |waited| waited.as_secs_f64()),
        );
        metrics::gauge!("vcintel_component_stalled", "component" => component).set(
            if progress.stalled(state.stall_after) {
                1.0
            } else {
                0.0
            },
        );
    }
}

/// The relay's state, from where it keeps it (Postgres), by the
/// processes that run it: one series per relay, whichever instance leads.
async fn sample_relay(state: &AppState) {
    if !state.components.contains(&crate::Component::Relay) {
        return;
    }
    let relay =
        match vcintel_infra::relay::relay_health(&state.pool, vcintel_infra::relay::RELAY_NAME)
            .await
        {
            Ok(relay) => relay,
            Err(error) => {
                tracing::warn!(%error, "relay state unavailable for /metrics");
                return;
            }
        };
    metrics::gauge!("vcintel_relay_lag_events").set(relay.lag as f64);
    metrics::gauge!("vcintel_relay_lag_seconds").set(
        relay
            .oldest_waiting
            .map_or(0.0, |waited| waited.as_secs_f64()),
    );
    metrics::gauge!("vcintel_relay_stream_epoch").set(relay.epoch as f64);
    metrics::gauge!("vcintel_relay_halted").set(if relay.diverged.is_some() { 1.0 } else { 0.0 });
    metrics::gauge!("vcintel_relay_has_leader").set(if relay.leader.is_some() { 1.0 } else { 0.0 });
}

/// The events stream's copies, as its leader reports them, by the
/// processes that run the relay (which writes to it).
async fn sample_stream(state: &AppState) {
    if !state.components.contains(&crate::Component::Relay) {
        return;
    }
    let placement = tokio::time::timeout(
        std::time::Duration::from_secs(1),
        vcintel_infra::stream::placement(&state.jetstream, &state.topology),
    )
    .await;
    let Ok(Ok(placement)) = placement else {
        metrics::gauge!("vcintel_stream_has_leader").set(0.0);
        return;
    };
    metrics::gauge!("vcintel_stream_replicas_configured").set(placement.configured_replicas as f64);
    metrics::gauge!("vcintel_stream_replicas_current").set(placement.current_copies() as f64);
    metrics::gauge!("vcintel_stream_has_leader").set(if placement.leader.is_some() {
        1.0
    } else {
        0.0
    });
    let behind = placement
        .followers
        .iter()
        .filter(|f| !f.offline)
        .map(|f| f.lag)
        .max()
        .unwrap_or(0);
    metrics::gauge!("vcintel_stream_replica_lag_operations").set(behind as f64);
}

/// Rebuilds' progress, from where they record it (Postgres), by the
/// processes that run projectors: one series per read model.
async fn sample_rebuilds(state: &AppState) {
    if !state.components.contains(&crate::Component::Projector) {
        return;
    }
    let rebuilds = match vcintel_projections::rebuild::statuses(&state.pool).await {
        Ok(rebuilds) => rebuilds,
        Err(error) => {
            tracing::warn!(%error, "rebuild state unavailable for /metrics");
            return;
        }
    };
    for rebuild in rebuilds {
        let ratio = if rebuild.state == "swapped" {
            1.0
        } else {
            rebuild.replayed as f64 / rebuild.total.max(1) as f64
        };
        metrics::gauge!("vcintel_rebuild_progress_ratio", "read_model" => rebuild.read_model.clone())
            .set(ratio.min(1.0));
        metrics::gauge!("vcintel_rebuild_running", "read_model" => rebuild.read_model)
            .set(if rebuild.active { 1.0 } else { 0.0 });
    }
}

/// The label of a requester's tier.
pub fn tier_label(tier: Option<vcintel_domain::user::Tier>) -> &'static str {
    use vcintel_domain::user::Tier;
    match tier {
        Some(Tier::Free) => "free",
        Some(Tier::Pro) => "pro",
        Some(Tier::Enterprise) => "enterprise",
        None => "none",
    }
}

/// Whether this process reaches Postgres (a one-second probe) and, where
/// a model is configured, whether its circuit breaker is open.
async fn sample_dependencies(state: &AppState) {
    let probe = sqlx::query_scalar!(r#"select 1 as "one!""#).fetch_one(&state.pool);
    let up = matches!(
        tokio::time::timeout(std::time::Duration::from_secs(1), probe).await,
        Ok(Ok(_))
    );
    metrics::gauge!("vcintel_database_up").set(if up { 1.0 } else { 0.0 });
    if let Some(breaker) = &state.model_breaker {
        metrics::gauge!("vcintel_model_breaker_open").set(if breaker.is_open() {
            1.0
        } else {
            0.0
        });
    }
}

/// Whether this process records metrics (`VCINTEL_METRICS`).
pub fn enabled() -> bool {
    RECORDER.get().is_some()
}

/// The metrics in the Prometheus text format (404 when they are off).
pub async fn render(state: &AppState) -> Response {
    let Some(recorder) = RECORDER.get() else {
        return crate::error::ApiError::RouteNotFound.into_response();
    };
    sample_gauges(state);
    sample_dependencies(state).await;
    sample_relay(state).await;
    sample_stream(state).await;
    sample_rebuilds(state).await;
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        recorder.render(),
    )
        .into_response()
}
