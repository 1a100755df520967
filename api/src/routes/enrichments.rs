//! Enrichment: `POST /v1/companies/{id}/enrichments` queues a job (or
//! returns the one already queued or running); `/v1/enrichment-jobs/{id}`
//! reports it, and `/events` follows it as server-sent events.

use crate::auth::Caller;
use crate::consistency::{answering, Reads};
use crate::error::{ApiError, Problem};
use crate::http::extract::Path;
use crate::http::headers::with_rate_limit_headers;
use crate::state::AppState;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use futures::stream::{self, Stream};
use serde::{Deserialize, Serialize};
use std::convert::Infallible;
use std::time::{Duration, Instant};
use utoipa::ToSchema;
use uuid::Uuid;
use vcintel_commands::admission::AdmissionPorts;
use vcintel_domain::company::CompanyId;
use vcintel_domain::enrichment::{
    Confidence, EnrichmentResult, EnrichmentSource, JobState, Signal, Usage,
};
use vcintel_projections::enrichment_jobs::{self as read_model, JobRow};

pub const TAG: &str = "enrichment";

/// How often a job stream looks for changes, and how long it may stay open.
const STREAM_POLL: Duration = Duration::from_millis(200);
const STREAM_MAX: Duration = Duration::from_secs(600);
/// How often a job stream checks that its caller may still read it.
const STREAM_REAUTHORISE: Duration = Duration::from_secs(1);

/// A queued (or already running) enrichment job.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EnrichmentAccepted {
    pub job_id: Uuid,
    /// `queued`, `running` or `deferred`.
    pub state: JobState,
    /// Where to follow the job (`GET`, or `…/events` for server-sent events).
    #[schema(example = "/v1/enrichment-jobs/0193a5a2-11f0-7000-8000-0000000000c4")]
    pub status_url: String,
    /// True when a job for this company was already queued or running and
    /// is returned instead of starting another.
    #[schema(example = false)]
    pub existing: bool,
    /// Set while the model provider is failing: the job waits and resumes
    /// on its own.
    #[schema(example = "service temporarily unavailable, job queued")]
    pub notice: Option<String>,
}

/// What enrichment learned about a company.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Enrichment {
    #[schema(example = "Acme Robotics builds autonomous picking arms for mid-size warehouses.")]
    pub summary: String,
    #[schema(
        example = "Sells robotic arms and the vision software that lets them pick mixed items from bins, leased per robot per month."
    )]
    pub what_it_does: String,
    #[schema(example = json!(["warehouse automation", "robotic picking", "computer vision", "robotics-as-a-service"]))]
    pub keywords: Vec<String>,
    /// The sector the website suggests.
    #[schema(example = "Robotics")]
    pub sector: Option<String>,
    pub signals: Vec<Signal>,
    pub confidence: Confidence,
    /// Fit score 0–100, computed from the signals and the workspace's thesis.
    #[schema(example = 82)]
    pub score: u8,
    /// `heuristic` (the built-in enricher, no model) or `model`.
    #[schema(example = "model")]
    pub source: String,
    /// The model, or the heuristic's version.
    #[schema(example = "gpt-4o-mini")]
    pub produced_by: String,
    #[schema(example = "extract-2026-11-22")]
    pub prompt_version: Option<String>,
    /// Reused from an identical earlier request, at no cost.
    #[schema(example = false)]
    pub cached: bool,
    pub usage: Usage,
}

impl From<&EnrichmentResult> for Enrichment {
    fn from(result: &EnrichmentResult) -> Self {
        let e = &result.extraction;
        let (source, produced_by, prompt_version) = match &result.source {
            EnrichmentSource::Heuristic { version } => ("heuristic", version.clone(), None),
            EnrichmentSource::Model {
                model,
                prompt_version,
            } => ("model", model.clone(), Some(prompt_version.clone())),
        };
        Enrichment {
            summary: e.summary.clone(),
            what_it_does: e.what_it_does.clone(),
            keywords: e.keywords.clone(),
            sector: e.sector.clone(),
            signals: e.signals.clone(),
            confidence: e.confidence,
            score: result.score,
            source: source.to_owned(),
            produced_by,
            prompt_version,
            cached: result.cached,
            usage: result.usage,
        }
    }
}

/// An enrichment job as the worker reports it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "id": "0193a5a2-11f0-7000-8000-0000000000c4",
    "company_id": "0193a5a0-7c1e-7000-8000-00000000002a",
    "requested_by": "0193a59f-0d2c-7000-8000-000000000011",
    "state": "succeeded",
    "attempts": 2,
    "error": null,
    "retry_in_ms": null,
    "result": {
        "summary": "Acme Robotics builds autonomous picking arms for mid-size warehouses.",
        "what_it_does": "Sells robotic arms and the vision software that lets them pick mixed items from bins, leased per robot per month.",
        "keywords": ["warehouse automation", "robotic picking", "computer vision"],
        "sector": "Robotics",
        "signals": [
            {"kind": "funding", "evidence": "Series A led by Northwind Ventures, announced March 2026", "confidence": "high"},
            {"kind": "enterprise_customers", "evidence": "Picking in the fulfilment centres of three European retailers", "confidence": "medium"}
        ],
        "confidence": "high",
        "score": 82,
        "source": "model",
        "produced_by": "gpt-4o-mini",
        "prompt_version": "extract-2026-11-22",
        "cached": false,
        "usage": {"tokens_in": 1480, "tokens_out": 260, "cost_micro_usd": 378}
    },
    "requested_at": "2026-12-07T14:32:05Z",
    "started_at": "2026-12-07T14:32:05Z",
    "finished_at": "2026-12-07T14:32:09Z",
    "updated_at": "2026-12-07T14:32:09Z",
    "version": 4
}))]
pub struct EnrichmentJob {
    pub id: Uuid,
    pub company_id: Uuid,
    pub requested_by: Uuid,
    pub state: JobState,
    /// Attempts started so far (at most 3).
    #[schema(example = 2)]
    pub attempts: u32,
    /// Why the last attempt failed, or why the job is deferred.
    #[schema(example = "the model provider is unavailable: HTTP 503")]
    pub error: Option<String>,
    /// When a failed attempt will be retried, in milliseconds from its failure.
    #[schema(example = 2000)]
    pub retry_in_ms: Option<i64>,
    pub result: Option<Enrichment>,
    pub requested_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    #[schema(example = 4)]
    pub version: u64,
}

/// One server-sent event of a job's stream (`text/event-stream`), field by
/// field: `event: job`, `id:` the job's version (so a client resuming
/// with `Last-Event-ID` knows where it was), `data:` the job, as
/// `getEnrichmentJob` returns it, on one line of JSON.
#[derive(Debug, Serialize, ToSchema)]
pub struct EnrichmentJobStreamEvent {
    pub event: JobStreamEventName,
    /// The job's version, as a string.
    pub id: String,
    pub data: EnrichmentJob,
}

/// The name of a job stream's events.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobStreamEventName {
    Job,
}

impl EnrichmentJobStreamEvent {
    fn of(job: EnrichmentJob) -> Self {
        EnrichmentJobStreamEvent {
            event: JobStreamEventName::Job,
            id: job.version.to_string(),
            data: job,
        }
    }

    /// The event on the wire.
    fn to_sse(&self) -> Event {
        let name = match self.event {
            JobStreamEventName::Job => "job",
        };
        Event::default()
            .event(name)
            .id(self.id.clone())
            .json_data(&self.data)
            .unwrap_or_else(|_| Event::default().event(name))
    }
}

impl From<JobRow> for EnrichmentJob {
    fn from(row: JobRow) -> Self {
        let result = row
            .result
            .as_ref()
            .and_then(|json| serde_json::from_value::<EnrichmentResult>(json.0.clone()).ok())
            .map(|r| Enrichment::from(&r));
        EnrichmentJob {
            id: row.id,
            company_id: row.company_id,
            requested_by: row.requested_by,
            // The read model writes only these names.
            state: row.state.parse().unwrap_or_else(|_| {
                tracing::error!(state = %row.state, "unknown job state in the read model");
                JobState::Queued
            }),
            attempts: row.attempts.max(0) as u32,
            error: row.error,
            retry_in_ms: row.retry_in_ms,
            result,
            requested_at: row.requested_at,
            started_at: row.started_at,
            finished_at: row.finished_at,
            updated_at: row.updated_at,
            version: row.version as u64,
        }
    }
}

/// Enrich a company from its website: answers 202 at once with the job.
#[utoipa::path(
    post, path = "/v1/companies/{id}/enrichments", tag = TAG, operation_id = "requestEnrichment",
    params(("id" = Uuid, Path, description = "Company id")),
    responses(
        (status = 202, description = "Queued, or the job already queued or running for this company (`existing`)", body = EnrichmentAccepted,
         headers(("Location" = String, description = "The job's URL"))),
        (status = 400, description = "Malformed id", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Viewers may not request enrichments", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such company in this workspace", body = Problem, content_type = "application/problem+json"),
        (status = 402, description = "The workspace's monthly model budget is used up (`budget-exhausted`)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Hourly enrichments of your tier used up (`enrichment` budget, with `Retry-After` and `X-RateLimit-*`), or 5 jobs already queued or running (`enrichment-job-cap`)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn request_enrichment(
    State(state): State<AppState>,
    caller: Caller,
    Path(company_id): Path<Uuid>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let ports = AdmissionPorts {
        store: &state.admission,
        spending: state.spending.as_ref(),
        limiter: &state.gate.limits.limiter,
    };
    let requested = state
        .enrichments
        .admit(
            ports,
            &state.admission_policy,
            caller.actor,
            CompanyId(company_id),
            &caller.metadata(&headers),
        )
        .await?;
    if !requested.existing {
        metrics::counter!(
            "vcintel_enrichments_requested_total",
            "tier" => crate::metrics::tier_label(requested.tier)
        )
        .increment(1);
    }
    // The job's write to read back: the one just made, or, for a job
    // already running, its current version (so the token is on every 202).
    let (job_state, written) = if requested.existing {
        let (job, version) = state.enrichments.load(requested.job_id).await?;
        let current = vcintel_commands::Committed {
            aggregate_type: vcintel_domain::enrichment::AGGREGATE_TYPE,
            aggregate_id: requested.job_id.to_string(),
            version,
            appended: 0,
        };
        (job.state().unwrap_or(JobState::Queued), Some(current))
    } else {
        (JobState::Queued, requested.committed.clone())
    };
    let status_url = format!("/v1/enrichment-jobs/{}", requested.job_id);
    let mut response = (
        StatusCode::ACCEPTED,
        axum::Json(EnrichmentAccepted {
            job_id: requested.job_id.0,
            state: job_state,
            status_url: status_url.clone(),
            existing: requested.existing,
            notice: state
                .model_breaker
                .as_ref()
                .filter(|b| b.is_open())
                .map(|_| "service temporarily unavailable, job queued".to_owned()),
        }),
    )
        .into_response();
    if let Ok(location) = HeaderValue::from_str(&status_url) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    if let Some(decision) = &requested.decision {
        response = with_rate_limit_headers(response, decision);
    }
    Ok(match &written {
        Some(committed) => answering(response, committed),
        None => response,
    })
}

/// An enrichment job: state, attempts, timings, error and result.
#[utoipa::path(
    get, path = "/v1/enrichment-jobs/{job_id}", tag = TAG, operation_id = "getEnrichmentJob",
    params(("job_id" = Uuid, Path, description = "Job id")),
    responses(
        (status = 200, description = "The job", body = EnrichmentJob),
        (status = 400, description = "Malformed id", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such job in this workspace", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn get_enrichment_job(
    reads: Reads,
    caller: Caller,
    Path(job_id): Path<Uuid>,
) -> Result<axum::Json<EnrichmentJob>, ApiError> {
    let row = read_model::get(reads.pool(), caller.actor.workspace_id, job_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(axum::Json(row.into()))
}

/// Follow a job as server-sent events: one `job` event (the job, as
/// `getEnrichmentJob` returns it) per change, ending after the job ends,
/// or within a second of the caller losing access (a session ended, a key
/// revoked, a membership removed).
#[utoipa::path(
    get, path = "/v1/enrichment-jobs/{job_id}/events", tag = TAG, operation_id = "streamEnrichmentJob",
    params(("job_id" = Uuid, Path, description = "Job id")),
    responses(
        (status = 200, description = "`text/event-stream` of `job` events: each is an `EnrichmentJobStreamEvent` (the document names it as the content's `x-itemSchema`, the field OpenAPI 3.2 calls `itemSchema`)", content_type = "text/event-stream", body = String),
        (status = 400, description = "Malformed id", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such job in this workspace", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn stream_enrichment_job(
    State(state): State<AppState>,
    reads: Reads,
    caller: Caller,
    Path(job_id): Path<Uuid>,
    headers: axum::http::HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let workspace = caller.actor.workspace_id;
    // 404 before the stream starts, like the plain GET.
    read_model::get(reads.pool(), workspace, job_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    struct Follow {
        state: AppState,
        last_version: Option<i64>,
        ended: bool,
        started: Instant,
        authorised_at: Instant,
        /// The credentials, to check them again.
        headers: axum::http::HeaderMap,
    }
    let follow = Follow {
        state,
        last_version: None,
        ended: false,
        started: Instant::now(),
        authorised_at: Instant::now(),
        headers,
    };
    let events = stream::unfold(follow, move |mut follow| async move {
        loop {
            if follow.ended || follow.started.elapsed() > STREAM_MAX {
                return None;
            }
            // Access is checked for the stream's whole life: a session
            // ended, a key revoked or a member removed stops it.
            if follow.authorised_at.elapsed() >= STREAM_REAUTHORISE {
                if !caller
                    .still_authorised(&follow.state.gate, &follow.headers)
                    .await
                {
                    return None;
                }
                follow.authorised_at = Instant::now();
            }
            // Each poll reads where reads go now (a replica may fall
            // behind or out during a long stream), so only a newer
            // version is news.
            let reads = follow.state.read_your_writes.reads.for_read();
            let row = read_model::get(&reads.pool, workspace, job_id)
                .await
                .ok()
                .flatten();
            match row {
                Some(row) if follow.last_version.is_none_or(|seen| row.version > seen) => {
                    follow.last_version = Some(row.version);
                    follow.ended = row.is_final();
                    let event = EnrichmentJobStreamEvent::of(EnrichmentJob::from(row));
                    return Some((Ok(event.to_sse()), follow));
                }
                // Deleted with its company: the stream ends.
                None => return None,
                Some(_) => tokio::time::sleep(STREAM_POLL).await,
            }
        }
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UsageParams {
    /// The calendar month, `YYYY-MM` (UTC); default: the current one.
    #[param(pattern = "^[0-9]{4}-(?:0[1-9]|1[0-2])$")]
    pub month: Option<String>,
}

/// The first day of a `YYYY-MM` month, exactly as the parameter's pattern
/// states it (chrono's own parsing also takes one-digit months).
pub(crate) fn parse_month(text: &str) -> Option<chrono::NaiveDate> {
    let (year, month) = text.split_once('-')?;
    let digits =
        |part: &str, len: usize| part.len() == len && part.bytes().all(|b| b.is_ascii_digit());
    if !digits(year, 4) || !digits(month, 2) {
        return None;
    }
    chrono::NaiveDate::from_ymd_opt(year.parse().ok()?, month.parse().ok()?, 1)
}

/// Enrichments, model calls, tokens and cost.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct UsageTotals {
    #[schema(example = 42)]
    pub enrichments: u64,
    #[schema(example = 40)]
    pub model_calls: u64,
    #[schema(example = 61200)]
    pub tokens_in: u64,
    #[schema(example = 9800)]
    pub tokens_out: u64,
    /// Millionths of a US dollar.
    #[schema(example = 15060)]
    pub cost_micro_usd: u64,
}

impl UsageTotals {
    fn add(&mut self, row: &vcintel_projections::usage::UsageRow) {
        self.enrichments += row.enrichments.max(0) as u64;
        self.model_calls += row.model_calls.max(0) as u64;
        self.tokens_in += row.tokens_in.max(0) as u64;
        self.tokens_out += row.tokens_out.max(0) as u64;
        self.cost_micro_usd += row.cost_micro_usd.max(0) as u64;
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UserUsage {
    pub user_id: Uuid,
    #[serde(flatten)]
    pub usage: UsageTotals,
}

/// The whole workspace's usage (owners and admins).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WorkspaceUsage {
    pub totals: UsageTotals,
    pub by_user: Vec<UserUsage>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UsageReport {
    /// `YYYY-MM`.
    #[schema(example = "2026-12")]
    pub month: String,
    /// The caller's own usage in this workspace.
    pub mine: UsageTotals,
    /// Present for owners and admins.
    pub workspace: Option<WorkspaceUsage>,
}

/// Enrichment usage (model calls, tokens, cost) for a month: your own, and
/// the workspace's totals per user if you are an owner or admin.
#[utoipa::path(
    get, path = "/v1/usage", tag = TAG, operation_id = "getUsage",
    params(UsageParams),
    responses(
        (status = 200, description = "Usage for the month", body = UsageReport),
        (status = 400, description = "Malformed month", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn get_usage(
    reads: Reads,
    caller: Caller,
    crate::http::extract::Query(params): crate::http::extract::Query<UsageParams>,
) -> Result<axum::Json<UsageReport>, ApiError> {
    let month = match &params.month {
        None => vcintel_projections::usage::month_of(Utc::now()),
        Some(text) => parse_month(text).ok_or_else(|| ApiError::BadRequest {
            detail: "must be a month like 2026-11".to_owned(),
            field: Some("month".to_owned()),
        })?,
    };
    let rows =
        vcintel_projections::usage::by_user(reads.pool(), caller.actor.workspace_id, month).await?;
    let mut mine = UsageTotals::default();
    for row in rows.iter().filter(|r| r.user_id == caller.actor.user_id.0) {
        mine.add(row);
    }
    let manager = caller.may(vcintel_domain::Permission::ReadWorkspaceUsage);
    let workspace = manager.then(|| {
        let mut totals = UsageTotals::default();
        let by_user = rows
            .iter()
            .map(|row| {
                totals.add(row);
                let mut usage = UsageTotals::default();
                usage.add(row);
                UserUsage {
                    user_id: row.user_id,
                    usage,
                }
            })
            .collect();
        WorkspaceUsage { totals, by_user }
    });
    Ok(axum::Json(UsageReport {
        month: month.format("%Y-%m").to_string(),
        mine,
        workspace,
    }))
}
