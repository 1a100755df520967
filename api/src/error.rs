//! The API's one error type and its RFC 9457 problem+json rendering.

use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use vcintel_commands::admission::Refusal;
use vcintel_commands::CommandError;
use vcintel_domain::company::CompanyError;
use vcintel_domain::enrichment::EnrichmentError;
use vcintel_domain::list::ListError;
use vcintel_domain::note::NoteError;
use vcintel_domain::saved_search::SavedSearchError;
use vcintel_domain::user::UserError;
use vcintel_domain::workspace::WorkspaceError;
use vcintel_domain::FieldError;
use vcintel_infra::rate_limit::Decision;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// An RFC 9457 problem document.
#[derive(Debug, Clone, Serialize, serde::Deserialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem.
    #[serde(rename = "type")]
    #[schema(example = "urn:vcintel:problem:validation-failed")]
    pub problem_type: String,
    /// Short, human-readable summary of the kind of problem.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong in this occurrence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The request path this occurrence is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// The request id (also in the `x-request-id` header); quote it when reporting a 5xx.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The resource that already holds a unique value (e.g. the company
    /// with this website), when the problem is such a conflict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub existing_id: Option<uuid::Uuid>,
    /// The input fields at fault, when the problem is invalid input.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<InvalidField>,
}

/// One invalid field of the request.
#[derive(Debug, Clone, Serialize, serde::Deserialize, ToSchema)]
pub struct InvalidField {
    /// The field's name or JSON path, as the client sent it (`name`, `website`, `If-Match`).
    pub field: String,
    /// Why it was refused.
    pub message: String,
}

impl From<&FieldError> for InvalidField {
    fn from(e: &FieldError) -> Self {
        InvalidField {
            field: e.field.clone(),
            message: e.message.clone(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("authentication required: {0}")]
    Unauthenticated(&'static str),
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("resource not found")]
    NotFound,
    #[error("no route for this path")]
    RouteNotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("malformed request: {detail}")]
    BadRequest {
        detail: String,
        field: Option<String>,
    },
    #[error("unsupported media type")]
    UnsupportedMediaType,
    #[error("invalid input")]
    Invalid(Vec<InvalidField>),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("version precondition failed: expected {expected}, current {actual}")]
    PreconditionFailed { expected: u64, actual: u64 },
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("the read models do not reflect the requested writes yet; retry shortly")]
    NotCaughtUp,
    /// `min_version` beyond what the resource has reached: no wait could
    /// end, and the state the client named does not exist.
    #[error("is beyond the resource's latest version, {latest}")]
    VersionNotReached { latest: i64 },
    #[error("at most {0} enrichment jobs may be queued or running per user; retry when one ends")]
    TooManyActiveJobs(u32),
    #[error("this workspace has used its monthly enrichment budget (${spent:.2} of ${budget:.2}); it renews next month")]
    BudgetExhausted { spent: f64, budget: f64 },
    #[error("too many requests; retry after {} seconds", .0.retry_after_secs)]
    RateLimited(Decision),
    #[error("sign-in is temporarily unavailable; retry shortly")]
    LimiterUnavailable,
    #[error("an account with this email already exists")]
    EmailTaken,
    #[error("this user is already a member of the workspace")]
    AlreadyMember,
    #[error("company {0} already has this website")]
    WebsiteTaken(uuid::Uuid),
    #[error("a request with this Idempotency-Key is still being processed")]
    IdempotencyKeyInUse,
    #[error("the request with this Idempotency-Key was executed, but its response was lost (the service failed before storing it); read the resource at its Location instead of retrying")]
    IdempotencyResponseLost { location: Option<String> },
    #[error("a service this request needs ({0}) cannot be reached right now; retry shortly (a write retried with its Idempotency-Key runs at most once; without one, a write that failed mid-way may or may not have been made)")]
    Unavailable(&'static str),
    #[error("a workspace must keep at least one owner; make someone else owner first")]
    LastOwner,
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// The id the document's examples and the service's messages show.
pub const EXAMPLE_ID: &str = "0193a5a0-7c1e-7000-8000-00000000002a";

impl ApiError {
    /// 422 naming one field at fault.
    pub fn invalid_field(field: &str, message: impl Into<String>) -> ApiError {
        ApiError::Invalid(vec![InvalidField {
            field: field.to_owned(),
            message: message.into(),
        }])
    }

    /// 400 for a path parameter `parameter` whose `value` is not an id
    /// (every path parameter that can fail to parse is one).
    pub fn malformed_id(parameter: &str, value: &str) -> ApiError {
        ApiError::BadRequest {
            detail: format!("`{value}` is not an id: must be a UUID such as {EXAMPLE_ID}"),
            field: Some(parameter.to_owned()),
        }
    }

    pub fn invalid(errors: &vcintel_domain::ValidationErrors) -> Self {
        ApiError::Invalid(errors.fields().iter().map(InvalidField::from).collect())
    }

    /// The status, the problem type's slug and its title, in one table.
    fn kind(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            ApiError::Unauthenticated(_) => (
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "Authentication required",
            ),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", "Forbidden"),
            ApiError::NotFound => (StatusCode::NOT_FOUND, "not-found", "Resource not found"),
            ApiError::RouteNotFound => (StatusCode::NOT_FOUND, "route-not-found", "No such route"),
            ApiError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
            ),
            ApiError::BadRequest { .. } => (
                StatusCode::BAD_REQUEST,
                "malformed-request",
                "Malformed request",
            ),
            ApiError::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
            ),
            ApiError::Invalid(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation-failed",
                "Invalid input",
            ),
            ApiError::PayloadTooLarge(_) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "Request body too large",
            ),
            ApiError::PreconditionFailed { .. } => (
                StatusCode::PRECONDITION_FAILED,
                "version-mismatch",
                "Version precondition failed",
            ),
            ApiError::Conflict(_) => (
                StatusCode::CONFLICT,
                "concurrent-modification",
                "Concurrent modification",
            ),
            ApiError::VersionNotReached { .. } => (
                StatusCode::CONFLICT,
                "version-not-reached",
                "Version not reached",
            ),
            ApiError::NotCaughtUp => (
                StatusCode::SERVICE_UNAVAILABLE,
                "read-model-behind",
                "Read model not caught up",
            ),
            ApiError::RateLimited(_) => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                "Too many requests",
            ),
            ApiError::LimiterUnavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "rate-limiter-unavailable",
                "Temporarily unavailable",
            ),
            ApiError::EmailTaken => (
                StatusCode::CONFLICT,
                "email-taken",
                "Email already registered",
            ),
            ApiError::AlreadyMember => (StatusCode::CONFLICT, "already-member", "Already a member"),
            ApiError::WebsiteTaken(_) => (
                StatusCode::CONFLICT,
                "website-taken",
                "Website already tracked",
            ),
            ApiError::IdempotencyKeyInUse => (
                StatusCode::CONFLICT,
                "idempotency-key-in-use",
                "Request in progress",
            ),
            ApiError::IdempotencyResponseLost { .. } => (
                StatusCode::CONFLICT,
                "idempotency-response-lost",
                "Executed; response lost",
            ),
            ApiError::Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Temporarily unavailable",
            ),
            ApiError::TooManyActiveJobs(_) => (
                StatusCode::TOO_MANY_REQUESTS,
                "enrichment-job-cap",
                "Too many enrichment jobs",
            ),
            ApiError::BudgetExhausted { .. } => (
                StatusCode::PAYMENT_REQUIRED,
                "budget-exhausted",
                "Monthly enrichment budget used up",
            ),
            ApiError::LastOwner => (StatusCode::CONFLICT, "last-owner", "Last owner"),
            ApiError::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal server error",
            ),
        }
    }

    pub fn status(&self) -> StatusCode {
        self.kind().0
    }

    /// The problem type's slug, e.g. `read-model-behind`.
    pub fn slug(&self) -> &'static str {
        self.kind().1
    }

    /// One problem of every kind, as the service words it: the API
    /// document's examples are made from these.
    pub fn one_of_each() -> Vec<ApiError> {
        let id = uuid::Uuid::parse_str(EXAMPLE_ID).unwrap_or_default();
        vec![
            ApiError::BadRequest {
                detail: "not a cursor this API returned".to_owned(),
                field: Some("cursor".to_owned()),
            },
            ApiError::Unauthenticated("a bearer token or API key is required"),
            ApiError::BudgetExhausted {
                spent: 50.0,
                budget: 50.0,
            },
            ApiError::Forbidden("viewers may read but not change this workspace".to_owned()),
            ApiError::NotFound,
            ApiError::RouteNotFound,
            ApiError::MethodNotAllowed,
            ApiError::Conflict("another change to this resource won; read it again".to_owned()),
            ApiError::VersionNotReached { latest: 4 },
            ApiError::EmailTaken,
            ApiError::AlreadyMember,
            ApiError::WebsiteTaken(id),
            ApiError::IdempotencyKeyInUse,
            ApiError::IdempotencyResponseLost {
                location: Some(format!("/v1/companies/{id}")),
            },
            ApiError::LastOwner,
            ApiError::PreconditionFailed {
                expected: 3,
                actual: 4,
            },
            ApiError::PayloadTooLarge("at most 262144 bytes".to_owned()),
            ApiError::UnsupportedMediaType,
            ApiError::Invalid(vec![InvalidField {
                field: "website".to_owned(),
                message: "must be a domain name such as acme.io".to_owned(),
            }]),
            ApiError::RateLimited(Decision {
                allowed: false,
                limit: 1200,
                remaining: 0,
                reset_secs: 41,
                retry_after_secs: 2,
            }),
            ApiError::TooManyActiveJobs(5),
            ApiError::Internal(anyhow::anyhow!("an example")),
            ApiError::Unavailable("the database"),
            ApiError::NotCaughtUp,
            ApiError::LimiterUnavailable,
        ]
    }

    pub fn to_problem(&self) -> Problem {
        let (status, slug, title) = self.kind();
        let detail = match self {
            // Internals never reach the client; the cause is logged instead.
            ApiError::Internal(_) => {
                "An unexpected error occurred. Quote the request id when reporting it.".to_owned()
            }
            other => other.to_string(),
        };
        let errors = match self {
            ApiError::Invalid(fields) => fields.clone(),
            ApiError::BadRequest {
                field: Some(field),
                detail,
            } => vec![InvalidField {
                field: field.clone(),
                message: detail.clone(),
            }],
            ApiError::VersionNotReached { .. } => vec![InvalidField {
                field: "min_version".to_owned(),
                message: self.to_string(),
            }],
            _ => vec![],
        };
        let existing_id = match self {
            ApiError::WebsiteTaken(id) => Some(*id),
            _ => None,
        };
        Problem {
            problem_type: format!("urn:vcintel:problem:{slug}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail: Some(detail),
            instance: None,
            request_id: None,
            existing_id,
            errors,
        }
        .about_this_request()
    }
}

/// Warns that the database is unreachable at most once a minute, with how
/// many requests were refused since: an outage meets every request, and a
/// warning each would bury everything else in the log.
fn tell_database_unreachable(cause: &anyhow::Error) {
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    static TOLD_AT: AtomicU64 = AtomicU64::new(0);
    static REFUSED: AtomicU64 = AtomicU64::new(0);
    // Seconds on a clock that never runs backwards, from a minute before
    // the first call, so that the first refusal is told.
    static ORIGIN: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    REFUSED.fetch_add(1, Relaxed);
    let now = ORIGIN
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_secs()
        + 60;
    let told_at = TOLD_AT.load(Relaxed);
    let error = format!("{cause:#}");
    if now.saturating_sub(told_at) >= 60
        && TOLD_AT
            .compare_exchange(told_at, now, Relaxed, Relaxed)
            .is_ok()
    {
        let refused = REFUSED.swap(0, Relaxed);
        tracing::warn!(
            error,
            refused,
            "database unreachable; answering 503 (told at most once a minute)"
        );
    } else {
        tracing::debug!(error, "database unreachable");
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(cause) = &self {
            if cause.chain().any(vcintel_infra::db::is_unavailable) {
                tell_database_unreachable(cause);
                return ApiError::Unavailable("the database").into_response();
            }
            tracing::error!(error = format!("{cause:#}"), "request failed");
        }
        let mut response = problem_response(self.status(), &self.to_problem());
        let headers = response.headers_mut();
        match &self {
            ApiError::Unauthenticated(_) => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"vcintel\""),
                );
            }
            ApiError::NotCaughtUp
            | ApiError::LimiterUnavailable
            | ApiError::IdempotencyKeyInUse
            | ApiError::Unavailable(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            ApiError::IdempotencyResponseLost {
                location: Some(location),
            } => {
                if let Ok(location) = HeaderValue::from_str(location) {
                    headers.insert(header::LOCATION, location);
                }
            }
            ApiError::TooManyActiveJobs(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("10"));
            }
            ApiError::RateLimited(decision) => {
                return crate::http::headers::with_rate_limit_headers(response, decision);
            }
            ApiError::WebsiteTaken(existing) => {
                if let Ok(location) = HeaderValue::from_str(&format!("/v1/companies/{existing}")) {
                    headers.insert(header::LOCATION, location);
                }
            }
            _ => {}
        }
        response
    }
}

/// The request a problem is about: its path and id, known to every error
/// rendered while [`problem_details`] runs the request.
#[derive(Debug, Clone)]
pub struct RequestFacts {
    path: String,
    request_id: Option<String>,
}

tokio::task_local! {
    static REQUEST: RequestFacts;
}

impl RequestFacts {
    /// The facts of the request the current task serves, if any; a task
    /// spawned for a request carries them on with [`RequestFacts::scope`].
    pub fn current() -> Option<RequestFacts> {
        REQUEST.try_with(RequestFacts::clone).ok()
    }

    pub async fn scope<F: std::future::Future>(facts: Option<RequestFacts>, work: F) -> F::Output {
        match facts {
            Some(facts) => REQUEST.scope(facts, work).await,
            None => work.await,
        }
    }
}

impl Problem {
    /// Names the request being served (`instance`, `request_id`).
    fn about_this_request(mut self) -> Self {
        if let Some(facts) = RequestFacts::current() {
            self.instance = Some(facts.path);
            self.request_id = facts.request_id;
        }
        self
    }
}

/// Makes every error response problem+json naming its request. Errors the
/// application raised are rendered once, by [`ApiError`], knowing the
/// request from the task; bare statuses from layers (timeouts, body limits,
/// panics) and routing are rendered here.
pub async fn problem_details(request: Request, next: Next) -> Response {
    let facts = RequestFacts {
        path: request.uri().path().to_owned(),
        request_id: request
            .headers()
            .get(crate::http::headers::REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    };
    let response = REQUEST.scope(facts.clone(), next.run(request)).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    // A problem already, or a handler's own error document (readiness's
    // JSON, the console's sign-in page).
    let structured = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| {
            v.as_bytes() == PROBLEM_JSON.as_bytes()
                || v.as_bytes().starts_with(b"application/json")
                || v.as_bytes().starts_with(b"text/html")
        });
    if structured {
        return response;
    }
    let problem = Problem {
        problem_type: "about:blank".to_owned(),
        title: status.canonical_reason().unwrap_or("Error").to_owned(),
        status: status.as_u16(),
        detail: status.is_server_error().then(|| {
            "An unexpected error occurred. Quote the request id when reporting it.".to_owned()
        }),
        instance: Some(facts.path),
        request_id: facts.request_id,
        existing_id: None,
        errors: vec![],
    };
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    let rendered = problem_response(status, &problem);
    parts
        .headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    Response::from_parts(parts, rendered.into_body())
}

pub fn problem_response(status: StatusCode, problem: &Problem) -> Response {
    let body = serde_json::to_vec(problem).unwrap_or_default();
    (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON))],
        body,
    )
        .into_response()
}

impl From<CommandError> for ApiError {
    fn from(error: CommandError) -> Self {
        match error {
            CommandError::Company(CompanyError::NotFound) => ApiError::NotFound,
            CommandError::Company(CompanyError::WebsiteTaken { existing }) => {
                ApiError::WebsiteTaken(existing.0)
            }
            CommandError::Company(CompanyError::AlreadyExists) => {
                ApiError::Conflict("the company already exists".to_owned())
            }
            CommandError::Company(CompanyError::Invalid(errors)) => ApiError::invalid(&errors),
            CommandError::User(UserError::EmailTaken) => ApiError::EmailTaken,
            CommandError::User(UserError::AlreadyRegistered) => {
                ApiError::Conflict("the user is already registered".to_owned())
            }
            CommandError::User(UserError::NotFound | UserError::NoErasurePending) => {
                ApiError::NotFound
            }
            CommandError::User(UserError::Erased) => {
                ApiError::Unauthenticated("this account no longer exists")
            }
            CommandError::User(UserError::AlreadyVerified) => ApiError::Conflict(error.to_string()),
            CommandError::User(UserError::AddressChanged) | CommandError::InvalidToken => {
                ApiError::BadRequest {
                    detail: error.to_string(),
                    field: Some("token".to_owned()),
                }
            }
            CommandError::Workspace(WorkspaceError::EmailUnverified) => {
                ApiError::Forbidden(error.to_string())
            }
            CommandError::Workspace(WorkspaceError::TooManyApiKeys) => {
                ApiError::Conflict(error.to_string())
            }
            CommandError::User(UserError::Invalid(errors))
            | CommandError::Workspace(WorkspaceError::Invalid(errors)) => {
                ApiError::invalid(&errors)
            }
            CommandError::Workspace(
                WorkspaceError::NotFound
                | WorkspaceError::MemberNotFound
                | WorkspaceError::ApiKeyNotFound
                | WorkspaceError::InvitationNotFound,
            ) => ApiError::NotFound,
            CommandError::Workspace(WorkspaceError::Forbidden(why)) => {
                ApiError::Forbidden(why.to_owned())
            }
            CommandError::Workspace(WorkspaceError::AlreadyMember) => ApiError::AlreadyMember,
            CommandError::Workspace(WorkspaceError::LastOwner) => ApiError::LastOwner,
            CommandError::Workspace(WorkspaceError::AlreadyExists) => {
                ApiError::Conflict("it already exists".to_owned())
            }
            CommandError::Note(NoteError::NotFound) => ApiError::NotFound,
            CommandError::Note(NoteError::Forbidden(why)) => ApiError::Forbidden(why.to_owned()),
            CommandError::Note(NoteError::InvalidContent(message)) => {
                ApiError::invalid_field("content", message)
            }
            CommandError::Note(NoteError::AlreadyExists) => {
                ApiError::Conflict("the note already exists".to_owned())
            }
            CommandError::List(ListError::NotFound) => ApiError::NotFound,
            CommandError::List(ListError::Forbidden) => ApiError::Forbidden(error.to_string()),
            CommandError::List(ListError::Invalid(errors)) => ApiError::invalid(&errors),
            CommandError::List(ListError::Full) => {
                ApiError::invalid_field("list_id", error.to_string())
            }
            CommandError::List(ListError::AlreadyExists) => {
                ApiError::Conflict("the list already exists".to_owned())
            }
            CommandError::Budget(_) => ApiError::Internal(anyhow::Error::new(error)),
            CommandError::Enrichment(EnrichmentError::NotFound) => ApiError::NotFound,
            CommandError::Enrichment(EnrichmentError::Forbidden(why)) => {
                ApiError::Forbidden(why.to_owned())
            }
            CommandError::Enrichment(
                EnrichmentError::AlreadyExists
                | EnrichmentError::AlreadyActive { .. }
                | EnrichmentError::Running
                | EnrichmentError::NotRunning
                | EnrichmentError::Ended,
            ) => ApiError::Conflict(error.to_string()),
            CommandError::SavedSearch(SavedSearchError::NotFound) => ApiError::NotFound,
            CommandError::SavedSearch(SavedSearchError::Forbidden) => {
                ApiError::Forbidden(error.to_string())
            }
            CommandError::SavedSearch(SavedSearchError::Invalid(errors)) => {
                ApiError::invalid(&errors)
            }
            CommandError::SavedSearch(SavedSearchError::AlreadyExists) => {
                ApiError::Conflict("the saved search already exists".to_owned())
            }
            CommandError::Forbidden { .. } => ApiError::Forbidden(error.to_string()),
            CommandError::VersionMismatch { expected, actual } => {
                ApiError::PreconditionFailed { expected, actual }
            }
            CommandError::Conflict => ApiError::Conflict(error.to_string()),
            CommandError::Unauthenticated(why) => ApiError::Unauthenticated(why),
            CommandError::Refused(Refusal::BudgetExhausted {
                spent_micro_usd,
                budget_micro_usd,
            }) => ApiError::BudgetExhausted {
                spent: spent_micro_usd as f64 / 1e6,
                budget: budget_micro_usd as f64 / 1e6,
            },
            CommandError::Refused(Refusal::TooManyActiveJobs(cap)) => {
                ApiError::TooManyActiveJobs(cap)
            }
            CommandError::Refused(Refusal::RateLimited(decision)) => {
                ApiError::RateLimited(decision)
            }
            CommandError::Store(_) => ApiError::Internal(anyhow::Error::new(error)),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        ApiError::Internal(anyhow::Error::new(error))
    }
}
