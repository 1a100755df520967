//! Liveness and readiness.

use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use utoipa::ToSchema;
use vcintel_projections::READ_MODELS;

pub const TAG: &str = "health";
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Liveness {
    /// Always `ok` while the process serves requests.
    pub status: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Readiness {
    /// `ready` or `not_ready`.
    pub status: String,
    pub checks: Vec<Check>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Check {
    /// `postgres`, `nats`, `relay_lag` or `projection_lag:<name>`.
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

/// The process is up (no IO).
#[utoipa::path(get, path = "/health", tag = TAG, operation_id = "health",
    responses((status = 200, description = "Alive", body = Liveness)))]
pub async fn health() -> axum::Json<Liveness> {
    axum::Json(Liveness {
        status: "ok".to_owned(),
    })
}

/// Postgres and NATS answer, and the relay and projections are within the
/// configured lag; 503 names the failing checks.
#[utoipa::path(get, path = "/health/ready", tag = TAG, operation_id = "ready",
    responses((status = 200, description = "Ready", body = Readiness),
              (status = 503, description = "Not ready; see the failing checks", body = Readiness)))]
pub async fn ready(State(state): State<AppState>) -> (StatusCode, axum::Json<Readiness>) {
    let max_lag = state.ready_max_lag;
    let postgres = check("postgres", async {
        sqlx::query("select 1").execute(&state.pool).await?;
        Ok("reachable".to_owned())
    });
    let nats = check("nats", async {
        match state.nats.connection_state() {
            async_nats::connection::State::Connected => Ok("connected".to_owned()),
            other => anyhow::bail!("{other:?}"),
        }
    });
    let relay = check("relay_lag", async {
        let lag = vcintel_infra::relay::relay_lag(
            &state.pool,
            vcintel_infra::relay::RELAY_NAME,
            max_lag + 1,
        )
        .await?;
        lag_result(lag, max_lag, "events not yet published")
    });
    let projection_lag = |name: &'static str| {
        let state = state.clone();
        async move {
            let label = format!("projection_lag:{name}");
            check(&label, async {
                let stream = state
                    .jetstream
                    .get_stream(state.topology.stream_name())
                    .await?;
                let info = stream
                    .consumer_info(state.topology.durable_name(name))
                    .await
                    .map_err(|e| {
                        anyhow::anyhow!("the projector has not created its consumer yet ({e})")
                    })?;
                let lag = (info.num_pending + info.num_ack_pending as u64) as i64;
                lag_result(lag, max_lag, "messages not yet applied")
            })
            .await
        }
    };
    let (postgres, nats, relay, projections) = tokio::join!(
        postgres,
        nats,
        relay,
        futures::future::join_all(READ_MODELS.iter().map(|m| projection_lag(m.name))),
    );
    let mut checks = vec![postgres, nats, relay];
    checks.extend(projections);
    // Reported, not failed: with the breaker open jobs are deferred, and
    // everything else works.
    checks.push(Check {
        name: "model_circuit".to_owned(),
        ok: true,
        detail: match &state.model_breaker {
            Some(breaker) => breaker.describe(),
            None => "no model configured: the built-in heuristic enricher serves".to_owned(),
        },
    });
    let all_ok = checks.iter().all(|c| c.ok);
    let status = if all_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        axum::Json(Readiness {
            status: if all_ok { "ready" } else { "not_ready" }.to_owned(),
            checks,
        }),
    )
}

fn lag_result(lag: i64, max_lag: i64, what: &str) -> anyhow::Result<String> {
    if lag > max_lag {
        anyhow::bail!("more than {max_lag} {what}")
    }
    Ok(format!("{lag} {what}"))
}

async fn check(
    name: &str,
    probe: impl std::future::Future<Output = anyhow::Result<String>>,
) -> Check {
    let (ok, detail) = match tokio::time::timeout(CHECK_TIMEOUT, probe).await {
        Ok(Ok(detail)) => (true, detail),
        Ok(Err(error)) => (false, format!("{error:#}")),
        Err(_) => (false, format!("no answer within {CHECK_TIMEOUT:?}")),
    };
    Check {
        name: name.to_owned(),
        ok,
        detail,
    }
}
