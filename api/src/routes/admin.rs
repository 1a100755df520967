//! The operators' API (`/admin`): read models' health, blue/green rebuilds,
//! dead letters and their retries: the same operations as `vcintel
//! projections`.
//!
//! It is outside `/v1` because its callers are not workspace members: they
//! present the operator token from `VCINTEL_ADMIN_TOKEN`. Without that
//! setting the admin API is off.

use crate::error::{ApiError, Problem};
use crate::http::extract::Path;
use crate::state::AppState;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use vcintel_projections::rebuild::{self, RebuildOptions, RebuildStatus};
use vcintel_projections::ProjectionError;

pub const TAG: &str = "admin";

/// The digest of an operator token; requests are compared by digest, so
/// the comparison's timing says nothing about the token.
pub fn admin_token_digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A request that presented the operator token.
#[derive(Debug)]
pub struct Operator;

impl FromRequestParts<AppState> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Operator::of_request(state, &parts.method, &parts.headers)
    }
}

/// The operator console's session cookie.
pub const CONSOLE_COOKIE: &str = "vcintel_console";

/// How long a console session lasts.
pub const CONSOLE_SESSION: std::time::Duration = std::time::Duration::from_secs(12 * 3600);

/// Console sessions are sealed under the operator token's digest: one
/// cannot be forged without the token, and changing the token ends them all.
fn console_sealer(digest: &[u8; 32]) -> crate::http::signed::Sealer {
    crate::http::signed::Sealer::new(digest, b"vcintel operator console session v1")
}

impl Operator {
    /// Whether a request with `method` and `headers` comes from the
    /// operator: the token, or for reading, a console session (its cookie
    /// never changes anything, so a forged cross-site request cannot act
    /// with it).
    pub fn of_request(
        state: &AppState,
        method: &axum::http::Method,
        headers: &HeaderMap,
    ) -> Result<Self, ApiError> {
        let reading = *method == axum::http::Method::GET || *method == axum::http::Method::HEAD;
        if reading {
            if let Some(operator) = Operator::console_session(state, headers) {
                return Ok(operator);
            }
        }
        Operator::presented(state, headers)
    }

    /// A console session cookie value, for a caller who presented the token.
    pub fn console_session_value(state: &AppState) -> Option<String> {
        let digest = state.admin_token_digest.as_ref()?;
        let expires = Utc::now().timestamp() + CONSOLE_SESSION.as_secs() as i64;
        Some(console_sealer(digest).seal(&expires.to_be_bytes()))
    }

    /// Whether `headers` carry a console session cookie still valid.
    pub fn console_session(state: &AppState, headers: &HeaderMap) -> Option<Self> {
        let digest = state.admin_token_digest.as_ref()?;
        let sealer = console_sealer(digest);
        let expires = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .filter(|(name, _)| *name == CONSOLE_COOKIE)
            .find_map(|(_, value)| {
                let payload = sealer.open(value)?;
                Some(i64::from_be_bytes(payload.try_into().ok()?))
            })?;
        (Utc::now().timestamp() < expires).then_some(Operator)
    }

    /// Whether `headers` carry the operator token.
    pub fn presented(state: &AppState, headers: &HeaderMap) -> Result<Self, ApiError> {
        // No credentials is 401 whether or not the admin API is on.
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(ApiError::Unauthenticated(
                "send the operator token as a bearer token",
            ))?;
        let Some(expected) = &state.admin_token_digest else {
            return Err(ApiError::Forbidden(
                "the admin API is off: set VCINTEL_ADMIN_TOKEN to turn it on".to_owned(),
            ));
        };
        if admin_token_digest(presented) == **expected {
            Ok(Operator)
        } else {
            Err(ApiError::Unauthenticated("this is not the operator token"))
        }
    }
}

/// A read model's health and its latest rebuild.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReadModelStatus {
    #[schema(example = "companies")]
    pub name: String,
    /// The aggregate types whose events feed it.
    #[schema(example = json!(["company"]))]
    pub aggregate_types: Vec<String>,
    /// The last stream sequence delivered to its projector.
    #[schema(example = 18420)]
    pub position: u64,
    /// Messages not yet applied.
    #[schema(example = 0)]
    pub lag: u64,
    /// Aggregates it reflects.
    #[schema(example = 15230)]
    pub aggregates: i64,
    /// Events parked on the dead-letter stream because applying them kept
    /// failing.
    #[schema(example = 0)]
    pub dead_letters: u64,
    pub last_failure: Option<ProjectionFailure>,
    /// Versions the projection found missing from the stream (a hole met
    /// before the relay repaired it) and filled from the event store.
    pub gap_fills: Option<GapFills>,
    pub rebuild: Option<RebuildStatus>,
}

/// What a projection filled from the event store.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct GapFills {
    /// How many times it met a hole.
    #[schema(example = 1)]
    pub times: i64,
    /// Events filled in all.
    #[schema(example = 3)]
    pub events: i64,
    /// `aggregate type/aggregate id` of the last one.
    #[schema(example = "company/0193a5a0-7c1e-7000-8000-00000000002a")]
    pub last_aggregate: String,
    pub last_at: DateTime<Utc>,
}

/// The latest event a projection failed to apply.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ProjectionFailure {
    /// `aggregate type/aggregate id vN`.
    #[schema(example = "company/0193a5a0-7c1e-7000-8000-00000000002a v7")]
    pub event: String,
    #[schema(
        example = "event 0193a5a4-5c2e-7000-8000-0000000000f3 cannot be decoded: missing field `name`"
    )]
    pub error: String,
    /// Consecutive failures on that event.
    #[schema(example = 2)]
    pub failures: i64,
    pub at: DateTime<Utc>,
}

/// How many dead letters were republished.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RetriedDeadLetters {
    #[schema(example = 3)]
    pub retried: usize,
}

fn known_read_model(name: &str) -> Result<&'static str, ApiError> {
    rebuild::read_model_named(name).map_err(|_| ApiError::NotFound)
}

/// Every read model's position, lag, failures, dead letters and rebuild.
#[utoipa::path(
    get, path = "/admin/read-models", tag = TAG, operation_id = "listReadModels",
    responses(
        (status = 200, description = "Each read model's health", body = [ReadModelStatus]),
        (status = 401, description = "Missing or wrong operator token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The admin API is off", body = Problem, content_type = "application/problem+json"),
    ),
    security(("operator" = []))
)]
pub async fn list_read_models(
    State(state): State<AppState>,
    _: Operator,
) -> Result<axum::Json<Vec<ReadModelStatus>>, ApiError> {
    broker_reachable(&state)?;
    let projections =
        vcintel_projections::runner::status(&state.pool, &state.jetstream, &state.topology).await?;
    let mut rebuilds = rebuild::statuses(&state.pool)
        .await
        .map_err(anyhow::Error::from)?;
    let statuses = projections
        .into_iter()
        .map(|p| {
            let model = vcintel_projections::READ_MODELS
                .iter()
                .find(|m| m.name == p.name);
            let rebuild = rebuilds
                .iter()
                .position(|r| r.read_model == p.name)
                .map(|i| rebuilds.swap_remove(i));
            ReadModelStatus {
                name: p.name.to_owned(),
                aggregate_types: model
                    .map(|m| m.fed_by().map(str::to_owned).collect())
                    .unwrap_or_default(),
                position: p.delivered,
                lag: p.lag,
                aggregates: p.aggregates,
                dead_letters: p.dead_letters,
                last_failure: p
                    .last_error
                    .map(|(event, error, failures, at)| ProjectionFailure {
                        event,
                        error,
                        failures,
                        at,
                    }),
                gap_fills: p
                    .gap_fills
                    .map(|(times, events, last_aggregate, last_at)| GapFills {
                        times,
                        events,
                        last_aggregate,
                        last_at,
                    }),
                rebuild,
            }
        })
        .collect();
    Ok(axum::Json(statuses))
}

/// Starts a blue/green rebuild of a read model (or resumes an interrupted
/// one): fresh tables are filled from the event store while the live ones
/// keep serving, then swapped in at once. Poll `GET /admin/read-models`
/// for its progress.
#[utoipa::path(
    post, path = "/admin/read-models/{name}/rebuild", tag = TAG, operation_id = "rebuildReadModel",
    params(("name" = String, Path, description = "The read model, e.g. `companies`")),
    responses(
        (status = 202, description = "Rebuild started; `Location` shows its progress", body = ReadModelName,
            headers(("Location" = String, description = "Where to follow it"))),
        (status = 401, description = "Missing or wrong operator token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The admin API is off", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No read model has this name", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A rebuild of it is already running", body = Problem, content_type = "application/problem+json"),
    ),
    security(("operator" = []))
)]
pub async fn start_rebuild(
    State(state): State<AppState>,
    _: Operator,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let name = known_read_model(&name)?;
    let claim = rebuild::claim(&state.pool, name)
        .await
        .map_err(|error| match error {
            ProjectionError::RebuildRunning { .. } => ApiError::Conflict(error.to_string()),
            other => ApiError::Internal(other.into()),
        })?;
    let vault = state.vault.clone();
    // The rebuild outlives the request; its progress is in the database
    // (and a rebuild cut off by a restart resumes when started again).
    tokio::spawn(async move {
        let options = RebuildOptions::default();
        match rebuild::run_claimed(&vault, claim, &options, &|_, _| {}).await {
            Ok(rebuilt) => tracing::info!(
                read_model = name,
                events = rebuilt.events,
                "admin rebuild finished"
            ),
            Err(error) => tracing::error!(read_model = name, %error, "admin rebuild failed"),
        }
    });
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, "/admin/read-models".to_owned())],
        axum::Json(ReadModelName {
            name: name.to_owned(),
        }),
    )
        .into_response())
}

/// A read model's name.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReadModelName {
    #[schema(example = "companies")]
    pub name: String,
}

/// A parked event and its place on the dead-letter stream.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ParkedEvent {
    /// Its sequence on the dead-letter stream.
    #[schema(example = 3)]
    pub sequence: u64,
    pub letter: vcintel_infra::stream::DeadLetter,
}

/// Every dead letter: events a projection or the enrichment worker gave up
/// on after repeated tries, with the error.
#[utoipa::path(
    get, path = "/admin/dead-letters", tag = TAG, operation_id = "listDeadLetters",
    responses(
        (status = 200, description = "The parked events, oldest first", body = [ParkedEvent]),
        (status = 401, description = "Missing or wrong operator token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The admin API is off", body = Problem, content_type = "application/problem+json"),
    ),
    security(("operator" = []))
)]
pub async fn list_dead_letters(
    State(state): State<AppState>,
    _: Operator,
) -> Result<axum::Json<Vec<ParkedEvent>>, ApiError> {
    broker_reachable(&state)?;
    let letters =
        vcintel_projections::runner::dead_letters(&state.jetstream, &state.topology, None).await?;
    Ok(axum::Json(
        letters
            .into_iter()
            .map(|(sequence, letter)| ParkedEvent { sequence, letter })
            .collect(),
    ))
}

/// The consumers that park events: every read model and the enrichment
/// worker.
fn known_consumer(name: &str) -> Result<&'static str, ApiError> {
    vcintel_projections::runner::consumers_that_park()
        .into_iter()
        .find(|known| *known == name)
        .ok_or(ApiError::NotFound)
}

/// Republishes a consumer's dead letters from the event store (after the
/// fault was fixed) and removes them from the dead-letter stream.
#[utoipa::path(
    post, path = "/admin/dead-letters/{consumer}/retry", tag = TAG, operation_id = "retryDeadLetters",
    params(("consumer" = String, Path, description = "A read model, e.g. `companies`, `enricher`, or a mailer")),
    responses(
        (status = 200, description = "How many were republished", body = RetriedDeadLetters),
        (status = 401, description = "Missing or wrong operator token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The admin API is off", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No consumer has this name", body = Problem, content_type = "application/problem+json"),
    ),
    security(("operator" = []))
)]
pub async fn retry_dead_letters(
    State(state): State<AppState>,
    _: Operator,
    Path(consumer): Path<String>,
) -> Result<axum::Json<RetriedDeadLetters>, ApiError> {
    let name = known_consumer(&consumer)?;
    broker_reachable(&state)?;
    let retried = vcintel_projections::runner::retry_dead_letters(
        &state.pool,
        &state.jetstream,
        &state.topology,
        name,
    )
    .await?;
    Ok(axum::Json(RetriedDeadLetters { retried }))
}

/// Fails at once, rather than after NATS' request timeout, when this
/// process is not connected to NATS.
fn broker_reachable(state: &AppState) -> Result<(), ApiError> {
    match state.nats.connection_state() {
        async_nats::connection::State::Connected => Ok(()),
        _ => Err(ApiError::Unavailable("the message broker")),
    }
}

/// The relay's state: what waits to be published, who leads, and whether
/// it is halted.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RelayStatus {
    /// Events committed but not yet published (counted up to 10,000).
    #[schema(example = 0)]
    pub lag: i64,
    /// How long the oldest of them has waited, in seconds.
    #[schema(example = 0.02)]
    pub oldest_waiting_seconds: Option<f64>,
    /// The instance holding the relay's lease, if any.
    #[schema(example = "api-7d9f8-2x4kq:1:3f9c2a1b")]
    pub leader: Option<String>,
    /// How many times the stream was refilled from the event store.
    #[schema(example = 1)]
    pub epoch: i64,
    /// The stream sequence up to which the stream is proven equal to the store.
    #[schema(example = 18420)]
    pub verified_seq: i64,
    /// Why the relay is halted, while it is.
    #[schema(
        example = "the stream holds events the event store does not, from sequence 18421 (the store was restored from an older backup?)"
    )]
    pub halted: Option<String>,
    /// The latest divergence found and what was done.
    pub last_repair: Option<LastRepair>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LastRepair {
    #[schema(
        example = "republished: 12 event(s) missing from the stream after sequence 1840 (the first at store position 1852); republished from the store"
    )]
    pub detail: String,
    #[schema(example = 3600.5)]
    pub seconds_ago: f64,
}

/// The relay's lag, leader and health, read from the store wherever the
/// relay runs.
#[utoipa::path(
    get, path = "/admin/relay", tag = TAG, operation_id = "getRelayStatus",
    responses(
        (status = 200, description = "The relay's state", body = RelayStatus),
        (status = 401, description = "Missing or wrong operator token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The admin API is off", body = Problem, content_type = "application/problem+json"),
    ),
    security(("operator" = []))
)]
pub async fn relay_status(
    State(state): State<AppState>,
    _: Operator,
) -> Result<axum::Json<RelayStatus>, ApiError> {
    let relay =
        vcintel_infra::relay::relay_health(&state.pool, vcintel_infra::relay::RELAY_NAME).await?;
    Ok(axum::Json(RelayStatus {
        lag: relay.lag,
        oldest_waiting_seconds: relay.oldest_waiting.map(|d| d.as_secs_f64()),
        leader: relay.leader,
        epoch: relay.epoch,
        verified_seq: relay.verified_seq,
        halted: relay.diverged,
        last_repair: relay.last_repair.map(|(detail, ago)| LastRepair {
            detail,
            seconds_ago: ago.as_secs_f64(),
        }),
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CostParams {
    /// The calendar month, `YYYY-MM` (UTC); default: the current one.
    #[param(pattern = "^[0-9]{4}-(?:0[1-9]|1[0-2])$")]
    pub month: Option<String>,
    /// How many workspaces to list, most expensive first (1–100; default 10).
    #[param(minimum = 1, maximum = 100)]
    pub top: Option<u32>,
}

/// A month's usage across every workspace.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MonthUsage {
    /// `YYYY-MM`.
    #[schema(example = "2026-11")]
    pub month: String,
    #[serde(flatten)]
    pub usage: crate::routes::enrichments::UsageTotals,
}

/// What one workspace's enrichments cost in the month.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WorkspaceCost {
    pub workspace_id: uuid::Uuid,
    #[schema(example = 120)]
    pub enrichments: u64,
    #[schema(example = 118)]
    pub model_calls: u64,
    /// Millionths of a US dollar.
    #[schema(example = 48210)]
    pub cost_micro_usd: u64,
}

/// Enrichment cost per month and the most expensive workspaces of one.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EnrichmentCosts {
    /// `YYYY-MM`.
    #[schema(example = "2026-12")]
    pub month: String,
    /// Up to twelve months ending with `month`, oldest first; months without
    /// enrichments are absent.
    pub by_month: Vec<MonthUsage>,
    /// The workspaces whose enrichments cost most in `month`, most first.
    pub top_workspaces: Vec<WorkspaceCost>,
}

/// What enrichment cost: per month across every workspace, and the
/// workspaces that spent most in a month.
#[utoipa::path(
    get, path = "/admin/enrichment-costs", tag = TAG, operation_id = "getEnrichmentCosts",
    params(CostParams),
    responses(
        (status = 200, description = "Costs per month and the top workspaces", body = EnrichmentCosts),
        (status = 400, description = "A malformed `month` or `top`; `errors[].field` names it", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or wrong operator token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The admin API is off", body = Problem, content_type = "application/problem+json"),
    ),
    security(("operator" = []))
)]
pub async fn enrichment_costs(
    State(state): State<AppState>,
    _: Operator,
    crate::http::extract::Query(params): crate::http::extract::Query<CostParams>,
) -> Result<axum::Json<EnrichmentCosts>, ApiError> {
    use vcintel_projections::usage;
    let month = match &params.month {
        None => usage::month_of(Utc::now()),
        Some(text) => {
            crate::routes::enrichments::parse_month(text).ok_or_else(|| ApiError::BadRequest {
                detail: "must be a month like 2026-11".to_owned(),
                field: Some("month".to_owned()),
            })?
        }
    };
    let top = match params.top {
        None => 10,
        Some(top @ 1..=100) => i64::from(top),
        Some(_) => {
            return Err(ApiError::BadRequest {
                detail: "must be between 1 and 100".to_owned(),
                field: Some("top".to_owned()),
            })
        }
    };
    let (months, workspaces) = tokio::try_join!(
        usage::month_costs(&state.pool, month, 12),
        usage::top_workspace_costs(&state.pool, month, top),
    )?;
    let count = |n: i64| n.max(0) as u64;
    Ok(axum::Json(EnrichmentCosts {
        month: month.format("%Y-%m").to_string(),
        by_month: months
            .into_iter()
            .map(|m| MonthUsage {
                month: m.month.format("%Y-%m").to_string(),
                usage: crate::routes::enrichments::UsageTotals {
                    enrichments: count(m.enrichments),
                    model_calls: count(m.model_calls),
                    tokens_in: count(m.tokens_in),
                    tokens_out: count(m.tokens_out),
                    cost_micro_usd: count(m.cost_micro_usd),
                },
            })
            .collect(),
        top_workspaces: workspaces
            .into_iter()
            .map(|w| WorkspaceCost {
                workspace_id: w.workspace_id,
                enrichments: count(w.enrichments),
                model_calls: count(w.model_calls),
                cost_micro_usd: count(w.cost_micro_usd),
            })
            .collect(),
    }))
}
