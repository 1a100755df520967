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

/// The process's recorder, installed the first time anything asks for it
/// (one per process: the facade has one global recorder).
pub fn recorder() -> &'static PrometheusHandle {
    RECORDER.get_or_init(|| {
        PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), SECONDS_BUCKETS)
            .expect("the buckets are not empty")
            .install_recorder()
            .expect("no other metrics recorder is installed in this process")
    })
}

/// The route template a request matched (`/v1/companies/{id}`), handed
/// from the routes' layer to [`red`] through the response.
#[derive(Debug, Clone)]
struct RouteTemplate(String);

/// Inside the router: notes which route matched.
pub async fn note_route(matched: Option<MatchedPath>, request: Request, next: Next) -> Response {
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

/// The metrics in the Prometheus text format.
pub async fn render(state: &AppState) -> Response {
    sample_gauges(state);
    sample_relay(state).await;
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        recorder().render(),
    )
        .into_response()
}
