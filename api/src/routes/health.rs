//! Liveness and readiness.
//!
//! Readiness is about this process: an API instance is ready when it can
//! serve (its Postgres answers); a process that runs the relay, the
//! projector or the enricher is also not ready while one of those is
//! stalled (work waiting and nothing moving for `VCINTEL_STALL_AFTER_SECS`)
//! or the relay is halted by a divergence. The other components' lag is
//! reported in the details without failing this process: a read model
//! behind must not take every API instance out of the load balancer.

use crate::component::Component;
use crate::routes::admin::Operator;
use crate::state::AppState;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use utoipa::ToSchema;
use vcintel_infra::health::ComponentProgress;
use vcintel_projections::READ_MODELS;

pub const TAG: &str = "health";
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Liveness {
    /// Always `ok` while the process serves requests.
    #[schema(example = "ok")]
    pub status: String,
}

/// With the operator token, as below; without it, each check's `name`
/// and `ok` only.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"status": "ready", "runs": ["api", "relay", "projector"], "checks": [
    {"name": "postgres", "ok": true, "detail": "reachable"},
    {"name": "nats", "ok": true, "detail": "connected"},
    {"name": "relay", "ok": true, "lag": 0, "seconds_since_progress": 0.0, "detail":
     "0 event(s) not yet published; leader: api-7d9f8-2x4kq:1:3f9c2a1b; stream epoch 1, proven through sequence 18420"},
    {"name": "projection:companies", "ok": true, "lag": 2, "oldest_waiting_seconds": 0.04,
     "seconds_since_progress": 0.1, "detail": "2 message(s) not yet handled, at stream sequence 18418"}]}))]
pub struct Readiness {
    /// `ready` or `not_ready`.
    #[schema(example = "ready")]
    pub status: String,
    /// The components this process runs (`api`, `relay`, `projector`,
    /// `enricher`; operators only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(example = json!(["api", "relay", "projector"]))]
    pub runs: Vec<String>,
    pub checks: Vec<Check>,
}

#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct Check {
    /// `postgres`, `nats`, `relay`, `stream`, `read_replicas`,
    /// `projection:<read model>`, `enricher`, a mail consumer or
    /// `model_circuit`.
    #[schema(example = "projection:companies")]
    pub name: String,
    /// False fails this process's readiness.
    #[schema(example = true)]
    pub ok: bool,
    /// What the check found (operators only).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schema(example = "2 message(s) not yet handled, at stream sequence 18418")]
    pub detail: String,
    /// Work waiting: events not yet published, messages not yet applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = 2)]
    pub lag: Option<i64>,
    /// How long the oldest waiting item has waited, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = 0.04)]
    pub oldest_waiting_seconds: Option<f64>,
    /// Seconds since the component last moved (or had nothing to do).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = 0.1)]
    pub seconds_since_progress: Option<f64>,
    /// Work is waiting and nothing has moved for the stall limit.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[schema(example = false)]
    pub stalled: bool,
}

/// The process is up (no IO).
#[utoipa::path(get, path = "/health", tag = TAG, operation_id = "health",
    responses((status = 200, description = "Alive", body = Liveness)))]
pub async fn health() -> axum::Json<Liveness> {
    axum::Json(Liveness {
        status: "ok".to_owned(),
    })
}

/// Whether this process can do its work: Postgres answers, and none of the
/// components it runs is stalled (the relay, each projection, the
/// enricher); 503 names the failing checks. Anyone sees up or down per
/// check; with the operator token (`Authorization: Bearer`) every
/// component's detail, lag, age of its oldest waiting item and time since
/// it last moved are there too.
#[utoipa::path(get, path = "/health/ready", tag = TAG, operation_id = "ready",
    params(("Authorization" = Option<String>, Header, description = "`Bearer <operator token>` for the details")),
    responses((status = 200, description = "Ready", body = Readiness),
              (status = 503, description = "Not ready; see the failing checks", body = Readiness,
               example = json!({"status": "not_ready", "checks": [
                   {"name": "postgres", "ok": true},
                   {"name": "nats", "ok": false},
                   {"name": "projection:companies", "ok": true}]}))))]
pub async fn ready(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> (StatusCode, axum::Json<Readiness>) {
    let (status, mut readiness) = readiness(&state).await;
    // Internals (hosts, leaders, errors, backlogs) are the operators'.
    if Operator::presented(&state, &headers).is_err() {
        readiness.runs.clear();
        for check in &mut readiness.checks {
            *check = Check {
                name: std::mem::take(&mut check.name),
                ok: check.ok,
                ..Check::default()
            };
        }
    }
    (status, axum::Json(readiness))
}

/// Readiness in full, for the probe port of a process without the API
/// (`VCINTEL_HEALTH_BIND`, bound where only the orchestrator reaches).
async fn ready_in_full(State(state): State<AppState>) -> (StatusCode, axum::Json<Readiness>) {
    let (status, readiness) = readiness(&state).await;
    (status, axum::Json(readiness))
}

async fn readiness(state: &AppState) -> (StatusCode, Readiness) {
    let runs = |component: Component| state.components.contains(&component);
    let workers_here =
        runs(Component::Relay) || runs(Component::Projector) || runs(Component::Enricher);
    let postgres = check("postgres", true, async {
        sqlx::query_scalar!(r#"select 1 as "one!""#)
            .fetch_one(&state.pool)
            .await?;
        Ok(Check::detail("reachable"))
    });
    let nats = check("nats", workers_here, async {
        match state.nats.connection_state() {
            async_nats::connection::State::Connected => Ok(Check::detail("connected")),
            other => anyhow::bail!("{other:?}"),
        }
    });
    let relay = check(
        "relay",
        runs(Component::Relay),
        relay_check(state, runs(Component::Relay)),
    );
    // The relay cannot publish to a stream without a leader and a majority
    // of its copies; what that does to the others shows in their lag.
    let stream = check("stream", runs(Component::Relay), async {
        let placement = vcintel_infra::stream::placement(&state.jetstream, &state.topology).await?;
        anyhow::ensure!(
            placement.writable(),
            "not writable: {}",
            placement.describe()
        );
        Ok(Check::detail(placement.describe()))
    });
    let (postgres, nats, relay, stream) = tokio::join!(postgres, nats, relay, stream);
    let mut checks = vec![postgres, nats, relay, stream];
    if state.read_your_writes.reads.has_replicas() {
        checks.push(replicas_check(state));
    }
    for model in READ_MODELS {
        let name = format!("projection:{}", model.name);
        checks.push(consumer_check(state, &name, model.name, runs(Component::Projector)).await);
    }
    checks.push(
        consumer_check(
            state,
            "enricher",
            vcintel_infra::enrichment::worker::WORKER_NAME,
            runs(Component::Enricher),
        )
        .await,
    );
    for (consumer, ..) in vcintel_infra::mail::MAIL_CONSUMERS {
        checks.push(consumer_check(state, consumer, consumer, runs(Component::Mailer)).await);
    }
    // Reported, not failed: with the breaker open jobs are deferred, and
    // everything else works.
    checks.push(Check {
        name: "model_circuit".to_owned(),
        ok: true,
        detail: match &state.model_breaker {
            Some(breaker) => breaker.describe(),
            None => "no model configured: the built-in heuristic enricher serves".to_owned(),
        },
        ..Check::default()
    });
    let all_ok = checks.iter().all(|c| c.ok);
    let status = if all_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Readiness {
            status: if all_ok { "ready" } else { "not_ready" }.to_owned(),
            runs: state
                .components
                .iter()
                .map(|c| c.name().to_owned())
                .collect(),
            checks,
        },
    )
}

impl Check {
    fn detail(detail: impl Into<String>) -> Self {
        Check {
            detail: detail.into(),
            ok: true,
            ..Check::default()
        }
    }
}

/// The relay, judged by the shared truth (its checkpoint in Postgres), so
/// every relay process agrees: stalled while an event has waited longer
/// than the stall limit and the checkpoint has not moved for as long (a
/// leader cut off from NATS, stuck, or held back by a transaction left
/// open), or halted by a divergence.
async fn relay_check(state: &AppState, runs_here: bool) -> anyhow::Result<Check> {
    let relay =
        vcintel_infra::relay::relay_health(&state.pool, vcintel_infra::relay::RELAY_NAME).await?;
    let since_progress = if relay.lag == 0 {
        Some(Duration::ZERO)
    } else {
        relay.since_progress
    };
    let stalled = relay.lag > 0
        && relay.oldest_waiting.is_some_and(|w| w > state.stall_after)
        && since_progress.is_none_or(|s| s > state.stall_after);
    let mut detail = format!(
        "{} event(s) not yet published; leader: {}; stream epoch {}, proven through sequence {}",
        relay.lag,
        relay.leader.as_deref().unwrap_or("none"),
        relay.epoch,
        relay.verified_seq
    );
    if let Some((repair, ago)) = &relay.last_repair {
        detail.push_str(&format!("; last repair {}s ago: {repair}", ago.as_secs()));
    }
    if let Some(diverged) = &relay.diverged {
        detail = format!("halted: {diverged}; run `vcintel stream refill`; {detail}");
    } else if stalled {
        detail = format!("stalled: {detail}");
    }
    let healthy = !stalled && relay.diverged.is_none();
    Ok(Check {
        ok: healthy || !runs_here,
        stalled,
        lag: Some(relay.lag),
        oldest_waiting_seconds: relay.oldest_waiting.map(|d| d.as_secs_f64()),
        seconds_since_progress: since_progress.map(|d| d.as_secs_f64()),
        ..Check::detail(detail)
    })
}

/// The read replicas as this process's watch last saw them. Reported,
/// never failed: while none is fit, reads go to the primary.
fn replicas_check(state: &AppState) -> Check {
    let states = state.read_your_writes.reads.states();
    let fit = states.iter().filter(|(_, s)| s.fit).count();
    let each: Vec<String> = states
        .iter()
        .map(|(name, s)| {
            format!(
                "{name} {}: {}",
                if s.fit { "fit" } else { "unfit" },
                s.detail
            )
        })
        .collect();
    let serving = if fit == 0 {
        "reads go to the primary".to_owned()
    } else {
        format!("{fit} of {} serve reads", states.len())
    };
    Check {
        name: "read_replicas".to_owned(),
        ..Check::detail(format!("{serving}; {}", each.join("; ")))
    }
}

/// A durable consumer: from this process's own watch when it runs the
/// component (and then stalls fail readiness), else its lag as NATS
/// reports it, for information.
async fn consumer_check(state: &AppState, name: &str, worker: &str, runs_here: bool) -> Check {
    if runs_here {
        let Some(progress) = state.progress.get(name) else {
            return Check {
                name: name.to_owned(),
                ..Check::detail("starting: not observed yet")
            };
        };
        return progress_check(name, &progress, state.stall_after);
    }
    check(name, false, async {
        let stream = state
            .jetstream
            .get_stream(state.topology.stream_name())
            .await?;
        let info = stream
            .consumer_info(state.topology.durable_name(worker))
            .await
            .map_err(|e| anyhow::anyhow!("its consumer does not exist yet ({e})"))?;
        let lag = (info.num_pending + info.num_ack_pending as u64) as i64;
        Ok(Check {
            lag: Some(lag),
            ..Check::detail(format!("{lag} message(s) not yet handled (runs elsewhere)"))
        })
    })
    .await
}

fn progress_check(name: &str, progress: &ComponentProgress, stall_after: Duration) -> Check {
    let stalled = progress.stalled(stall_after);
    let mut detail = format!(
        "{} message(s) not yet handled, at stream sequence {}",
        progress.lag, progress.position
    );
    if let Some(problem) = &progress.problem {
        detail.push_str(&format!("; {problem}"));
    }
    if stalled {
        detail = format!(
            "stalled: nothing moved for {:.1} s; {detail}",
            progress.moved_at.elapsed().as_secs_f64()
        );
    }
    Check {
        name: name.to_owned(),
        ok: !stalled,
        detail,
        lag: Some(progress.lag as i64),
        oldest_waiting_seconds: progress.oldest_waiting.map(|d| d.as_secs_f64()),
        seconds_since_progress: Some(progress.moved_at.elapsed().as_secs_f64()),
        stalled,
    }
}

/// Runs a probe within the check timeout; `required` makes its failure fail
/// readiness, otherwise it is reported only.
async fn check(
    name: &str,
    required: bool,
    probe: impl std::future::Future<Output = anyhow::Result<Check>>,
) -> Check {
    let failed = |detail: String| Check {
        name: name.to_owned(),
        ok: !required,
        detail,
        ..Check::default()
    };
    match tokio::time::timeout(CHECK_TIMEOUT, probe).await {
        Ok(Ok(check)) => Check {
            name: name.to_owned(),
            ..check
        },
        Ok(Err(error)) => failed(format!("{error:#}")),
        Err(_) => failed(format!("no answer within {CHECK_TIMEOUT:?}")),
    }
}

/// `/health` and `/health/ready` alone, for processes without the API.
/// The probe port's routes: liveness, full readiness and the metrics, all
/// without credentials (the port is for probes and the scraper only).
pub fn router(state: AppState) -> axum::Router {
    axum::Router::new()
        .route("/health", axum::routing::get(health))
        .route("/health/ready", axum::routing::get(ready_in_full))
        .route(
            "/metrics",
            axum::routing::get(|State(state): State<AppState>| async move {
                crate::metrics::render(&state).await
            }),
        )
        .with_state(state)
}
