//! The router and the OpenAPI document it is generated with: routes are
//! registered through utoipa-axum, so the spec cannot drift from them.

use crate::auth::WORKSPACE_HEADER;
use crate::consistency::{read_your_writes, CONSISTENCY_TOKEN};
use crate::error::{problem_response, ApiError, Problem, PROBLEM_JSON};
use crate::idempotency::idempotent_posts;
use crate::limits::{authenticate_and_limit, security_headers};
use crate::routes::{
    admin, audit, auth, companies, enrichments, health, lists, notes, saved_searches, workspaces,
};
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use std::time::Duration;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::SwaggerUi;

pub const REQUEST_ID: &str = "x-request-id";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "VC Intel API",
        description = "Source and judge companies. Sign up or sign in under `/v1/auth` and send `Authorization: Bearer <access token or API key>` to every other `/v1` route. Workspace routes act in the workspace named by the `X-Workspace-Id` header (default: your personal workspace; an API key always acts in its own). A workspace you do not belong to answers 404. Errors are RFC 9457 problem+json. `/v1` routes are rate-limited (429 with `Retry-After`; `X-RateLimit-*` headers on every response). Commands return the aggregate version: send it back as `If-Match` for safe updates, or as `min_version` to read your own write.",
        license(name = "MIT")
    ),
    modifiers(&BearerAuth),
    // The events' data, from the same derive the AsyncAPI document uses:
    // the audit feed's and histories' `data` is one of these variants.
    components(schemas(
        Problem,
        vcintel_domain::company::CompanyEvent,
        vcintel_domain::user::UserEvent,
        vcintel_domain::workspace::WorkspaceEvent,
        vcintel_domain::note::NoteEvent,
        vcintel_domain::list::ListEvent,
        vcintel_domain::saved_search::SavedSearchEvent,
        vcintel_domain::enrichment::EnrichmentEvent,
        vcintel_domain::budget::BudgetEvent,
    )),
    tags(
        (name = "auth", description = "Sign up, sign in, sessions"),
        (name = "workspaces", description = "Your account, workspaces, members, API keys and the security log"),
        (name = "companies", description = "Companies analysts track"),
        (name = "enrichment", description = "AI enrichment of companies: jobs, results, progress as server-sent events"),
        (name = "notes", description = "Analysts' notes on companies"),
        (name = "lists", description = "Lists of companies"),
        (name = "saved-searches", description = "Saved company searches"),
        (name = "audit", description = "The workspace's events and histories (owners and admins)"),
        (name = "health", description = "Liveness and readiness"),
        (name = "admin", description = "Operators (the operator token): read models' health, blue/green rebuilds, dead-letter retries"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "operator",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The operator token (`VCINTEL_ADMIN_TOKEN`) for `/admin`",
                    ))
                    .build(),
            ),
        );
    }
}

fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(auth::register))
        .routes(routes!(auth::login))
        .routes(routes!(auth::refresh))
        .routes(routes!(auth::logout))
        .routes(routes!(auth::revoke_all))
        .routes(routes!(workspaces::get_me))
        .routes(routes!(
            workspaces::list_my_workspaces,
            workspaces::create_workspace
        ))
        .routes(routes!(workspaces::get_current_workspace))
        .routes(routes!(workspaces::list_members, workspaces::add_member))
        .routes(routes!(workspaces::list_invitations))
        .routes(routes!(workspaces::cancel_invitation))
        .routes(routes!(
            workspaces::change_member_role,
            workspaces::remove_member
        ))
        .routes(routes!(workspaces::leave_workspace))
        .routes(routes!(
            workspaces::list_api_keys,
            workspaces::create_api_key
        ))
        .routes(routes!(workspaces::revoke_api_key))
        .routes(routes!(workspaces::list_security_events))
        .routes(routes!(companies::add_company, companies::list_companies))
        .routes(routes!(
            companies::get_company,
            companies::update_company,
            companies::delete_company
        ))
        .routes(routes!(enrichments::request_enrichment))
        .routes(routes!(enrichments::get_enrichment_job))
        .routes(routes!(enrichments::stream_enrichment_job))
        .routes(routes!(enrichments::get_usage))
        .routes(routes!(audit::list_events))
        .routes(routes!(audit::company_history))
        .routes(routes!(admin::list_read_models))
        .routes(routes!(admin::start_rebuild))
        .routes(routes!(admin::list_dead_letters))
        .routes(routes!(admin::retry_dead_letters))
        .routes(routes!(workspaces::get_thesis, workspaces::set_thesis))
        .routes(routes!(notes::add_note, notes::list_notes))
        .routes(routes!(
            notes::get_note,
            notes::edit_note,
            notes::delete_note
        ))
        .routes(routes!(lists::create_list, lists::list_lists))
        .routes(routes!(
            lists::get_list,
            lists::rename_list,
            lists::delete_list
        ))
        .routes(routes!(lists::list_list_companies))
        .routes(routes!(
            lists::add_company_to_list,
            lists::remove_company_from_list
        ))
        .routes(routes!(
            saved_searches::create_saved_search,
            saved_searches::list_saved_searches
        ))
        .routes(routes!(
            saved_searches::get_saved_search,
            saved_searches::rename_saved_search,
            saved_searches::delete_saved_search
        ))
        .routes(routes!(saved_searches::run_saved_search))
        .routes(routes!(health::health))
        .routes(routes!(health::ready))
}

/// Routes that are about the caller's account rather than one workspace's
/// resources: they ignore `X-Workspace-Id`.
fn is_account_route(path: &str) -> bool {
    path.starts_with("/v1/auth/") || path == "/v1/me" || path == "/v1/workspaces"
}

/// What every `/v1` operation shares, added to the generated document so
/// no handler can forget it: the workspace header, the 429 response,
/// `Idempotency-Key` on POSTs, and read-your-writes (the token every
/// command answer carries and every GET accepts).
fn document_cross_cutting(spec: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::header::HeaderBuilder;
    use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
    use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
    use utoipa::openapi::{ContentBuilder, Ref, RefOr, Required, ResponseBuilder};
    let consistency_parameter = ParameterBuilder::new()
        .name("X-Consistency-Token")
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(
            "Read your own writes: the `X-Consistency-Token` of one or more command \
             responses (comma-separated). The API waits a bounded time until every read \
             model fed by those writes reflects them; if they do not in time it answers 503 \
             `read-model-behind` with `Retry-After` instead of stale data.",
        ))
        .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
        .build();
    let consistency_header = HeaderBuilder::new()
        .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
        .description(Some(
            "Opaque token naming this write; send it as `X-Consistency-Token` on a later GET \
             to read a state that includes it.",
        ))
        .build();
    let problem_response = |description: &str| {
        ResponseBuilder::new()
            .description(description)
            .content(
                PROBLEM_JSON,
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("Problem")))
                    .build(),
            )
            .build()
    };
    let unavailable = problem_response(
        "The database cannot be reached right now (`unavailable`); nothing was changed, \
         retry after `Retry-After` seconds",
    );
    let key_conflict = problem_response(
        "This `Idempotency-Key` is in use by a request still running \
         (`idempotency-key-in-use`, retry after `Retry-After`), or its request was executed \
         and the response lost (`idempotency-response-lost`, the resource at `Location`)",
    );
    let behind = ResponseBuilder::new()
        .description(
            "The read models did not reflect the requested writes (`X-Consistency-Token` \
             or `min_version`) in time (`read-model-behind`), or the database cannot be \
             reached right now (`unavailable`); retry after `Retry-After` seconds",
        )
        .content(
            PROBLEM_JSON,
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        )
        .build();
    let workspace_header = ParameterBuilder::new()
        .name("X-Workspace-Id")
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(
            "The workspace to act in; default: the caller's personal workspace \
             (an API key always acts in its own). One you do not belong to answers 404.",
        ))
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid))),
        ))
        .build();
    let too_many = ResponseBuilder::new()
        .description("Rate limit exceeded; retry after `Retry-After` seconds")
        .content(
            PROBLEM_JSON,
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        )
        .build();
    let idempotency_key = ParameterBuilder::new()
        .name("Idempotency-Key")
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(
            "Makes a retry safe: the same key with the same request within 24 hours \
             returns the first response (`Idempotent-Replayed: true`) and changes nothing; \
             with a different request it is 422; while the first is still running, 409. \
             A first request that died without answering is taken over after the request \
             timeout: it runs then only if its command never ran, else 409 \
             `idempotency-response-lost` names the resource it made.",
        ))
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .max_length(Some(255)),
        ))
        .build();
    for (path, item) in spec.paths.paths.iter_mut() {
        if path.starts_with("/admin/") {
            let operations = [&mut item.get, &mut item.post];
            for operation in operations.into_iter().flatten() {
                operation
                    .responses
                    .responses
                    .entry("503".to_owned())
                    .or_insert_with(|| unavailable.clone().into());
            }
        }
        if !path.starts_with("/v1/") {
            continue;
        }
        if let Some(post) = item
            .post
            .as_mut()
            .filter(|_| !path.starts_with("/v1/auth/"))
        {
            post.parameters
                .get_or_insert_with(Vec::new)
                .push(idempotency_key.clone().into());
            post.responses
                .responses
                .entry("409".to_owned())
                .or_insert_with(|| key_conflict.clone().into());
        }
        if let Some(get) = item.get.as_mut() {
            get.parameters
                .get_or_insert_with(Vec::new)
                .push(consistency_parameter.clone().into());
            get.responses
                .responses
                .entry("503".to_owned())
                .or_insert_with(|| behind.clone().into());
        }
        let writes = [
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ];
        // Sign-in routes answer with credentials, not with a write's token.
        let commands = writes
            .into_iter()
            .flatten()
            .filter(|_| !path.starts_with("/v1/auth/"));
        for operation in commands {
            for (status, response) in operation.responses.responses.iter_mut() {
                if let (true, RefOr::T(response)) = (status.starts_with('2'), response) {
                    response.headers.insert(
                        "X-Consistency-Token".to_owned(),
                        consistency_header.clone().into(),
                    );
                }
            }
        }
        let operations = [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ];
        for operation in operations.into_iter().flatten() {
            if !is_account_route(path) {
                operation
                    .parameters
                    .get_or_insert_with(Vec::new)
                    .push(workspace_header.clone().into());
            }
            operation
                .responses
                .responses
                .entry("429".to_owned())
                .or_insert_with(|| too_many.clone().into());
            operation
                .responses
                .responses
                .entry("503".to_owned())
                .or_insert_with(|| unavailable.clone().into());
        }
    }
}

fn split() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (api, mut spec) = api_router().split_for_parts();
    document_cross_cutting(&mut spec);
    (api, spec)
}

/// The OpenAPI document the API serves at `/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    split().1
}

/// The whole HTTP surface, with its middleware. `cors_origins` lists the
/// browser origins allowed to call the API (none: no CORS headers at all).
pub fn router(
    state: AppState,
    request_timeout: Duration,
    max_body_bytes: usize,
    cors_origins: &[String],
) -> anyhow::Result<Router> {
    let (api, spec) = split();
    let request_id = HeaderName::from_static(REQUEST_ID);
    let cors = cors_layer(cors_origins, &request_id)?;
    Ok(api
        .merge(SwaggerUi::new("/docs").url("/openapi.json", spec))
        .route(
            "/asyncapi.json",
            axum::routing::get(|State(state): State<AppState>| async move {
                (
                    [(header::CONTENT_TYPE, "application/json")],
                    state.asyncapi.clone(),
                )
            }),
        )
        .fallback(|| async { ApiError::RouteNotFound })
        .method_not_allowed_fallback(method_not_allowed)
        // Innermost: replays of idempotent POSTs keep the token it adds.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            read_your_writes,
        ))
        // Inner to authentication: keys are scoped to the authenticated caller.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            idempotent_posts,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            authenticate_and_limit,
        ))
        .with_state(state)
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(request_span)
                        .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
                )
                .layer(PropagateRequestIdLayer::new(request_id))
                .layer(axum::middleware::from_fn(security_headers))
                .option_layer(cors)
                .layer(axum::middleware::from_fn(problem_details))
                .layer(CatchPanicLayer::new())
                .layer(TimeoutLayer::with_status_code(
                    StatusCode::REQUEST_TIMEOUT,
                    request_timeout,
                ))
                .layer(RequestBodyLimitLayer::new(max_body_bytes)),
        ))
}

/// 405 with the `Allow` header RFC 9110 asks for, read from the served
/// document's operations for the path (the one list of routes there is).
async fn method_not_allowed(uri: axum::http::Uri) -> Response {
    use axum::response::IntoResponse;
    static ROUTES: std::sync::OnceLock<Vec<(Vec<String>, Vec<&'static str>)>> =
        std::sync::OnceLock::new();
    let routes = ROUTES.get_or_init(|| {
        openapi()
            .paths
            .paths
            .iter()
            .map(|(path, item)| {
                let segments = path.split('/').map(str::to_owned).collect();
                let methods = [
                    ("GET", item.get.is_some()),
                    ("POST", item.post.is_some()),
                    ("PUT", item.put.is_some()),
                    ("PATCH", item.patch.is_some()),
                    ("DELETE", item.delete.is_some()),
                ]
                .into_iter()
                .filter_map(|(method, present)| present.then_some(method))
                .collect();
                (segments, methods)
            })
            .collect()
    });
    let requested: Vec<&str> = uri.path().split('/').collect();
    let allowed = routes.iter().find_map(|(segments, methods)| {
        let matches = segments.len() == requested.len()
            && segments
                .iter()
                .zip(&requested)
                .all(|(template, actual)| template.starts_with('{') || template == actual);
        matches.then(|| methods.join(", "))
    });
    let mut response = ApiError::MethodNotAllowed.into_response();
    if let Some(value) = allowed.and_then(|a| HeaderValue::from_str(&a).ok()) {
        response.headers_mut().insert(header::ALLOW, value);
    }
    response
}

fn cors_layer(origins: &[String], request_id: &HeaderName) -> anyhow::Result<Option<CorsLayer>> {
    let origins: Vec<HeaderValue> = origins
        .iter()
        .map(|o| o.trim())
        .filter(|o| !o.is_empty())
        .map(|o| HeaderValue::from_str(o).map_err(|_| anyhow::anyhow!("invalid CORS origin `{o}`")))
        .collect::<Result<_, _>>()?;
    if origins.is_empty() {
        return Ok(None);
    }
    let allowed_headers = [
        header::AUTHORIZATION,
        header::CONTENT_TYPE,
        header::IF_MATCH,
        header::IF_NONE_MATCH,
        HeaderName::from_static(WORKSPACE_HEADER),
        HeaderName::from_static("idempotency-key"),
        CONSISTENCY_TOKEN,
        request_id.clone(),
    ];
    let exposed_headers = [
        header::ETAG,
        header::LOCATION,
        header::RETRY_AFTER,
        CONSISTENCY_TOKEN,
        request_id.clone(),
        HeaderName::from_static("x-ratelimit-limit"),
        HeaderName::from_static("x-ratelimit-remaining"),
        HeaderName::from_static("x-ratelimit-reset"),
    ];
    Ok(Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])
            .allow_headers(allowed_headers)
            .expose_headers(exposed_headers)
            .max_age(Duration::from_secs(600)),
    ))
}

fn request_span(request: &Request) -> tracing::Span {
    let request_id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let span = tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        request_id = %request_id,
        workspace_id = tracing::field::Empty,
        user_id = tracing::field::Empty,
    );
    crate::telemetry::continue_trace(
        &span,
        request
            .headers()
            .get("traceparent")
            .and_then(|v| v.to_str().ok()),
    );
    span
}

/// Makes every error response problem+json with `instance` and `request_id`,
/// including bare statuses from layers (timeouts, body limits, panics).
async fn problem_details(request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let request_id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let content_type = response.headers().get(header::CONTENT_TYPE);
    let is_problem = content_type.is_some_and(|v| v.as_bytes() == PROBLEM_JSON.as_bytes());
    // A handler's own JSON error document (readiness) is already structured.
    if content_type.is_some_and(|v| v.as_bytes().starts_with(b"application/json")) {
        return response;
    }
    let (parts, body) = response.into_parts();
    let problem = if is_problem {
        match axum::body::to_bytes(body, 1024 * 1024).await {
            Ok(bytes) => serde_json::from_slice::<Problem>(&bytes).ok(),
            Err(_) => None,
        }
    } else {
        None
    };
    let mut problem = problem.unwrap_or_else(|| Problem {
        problem_type: "about:blank".to_owned(),
        title: status.canonical_reason().unwrap_or("Error").to_owned(),
        status: status.as_u16(),
        detail: None,
        instance: None,
        request_id: None,
        existing_id: None,
        errors: vec![],
    });
    if status.is_server_error() && !is_problem {
        problem.detail = Some(
            "An unexpected error occurred. Quote the request id when reporting it.".to_owned(),
        );
    }
    problem.instance = Some(path);
    problem.request_id = request_id;
    let rebuilt = problem_response(status, &problem);
    let mut response = Response::from_parts(parts, Body::empty());
    *response.body_mut() = rebuilt.into_body();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(PROBLEM_JSON),
    );
    response.headers_mut().remove(header::CONTENT_LENGTH);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every contract change shows up as a reviewed diff of the snapshot
    /// (`api/src/snapshots/`). After an intended change:
    /// `INSTA_UPDATE=always cargo test -p vcintel_api --lib openapi` (or
    /// `cargo insta review`), then review the diff in git.
    #[test]
    fn the_openapi_document_matches_the_reviewed_snapshot() {
        insta::assert_json_snapshot!("openapi", openapi());
    }

    #[test]
    fn every_operation_has_an_operation_id_and_documents_its_errors() {
        let spec = serde_json::to_value(openapi()).expect("serialize spec");
        assert_eq!(spec["openapi"], "3.1.0");
        for (path, operations) in spec["paths"].as_object().expect("paths") {
            for (method, operation) in operations.as_object().expect("operations") {
                assert!(operation["operationId"].is_string(), "{method} {path}");
                if path.starts_with("/v1/") {
                    let responses = operation["responses"].as_object().expect("responses");
                    assert!(responses.contains_key("429"), "{method} {path} lacks 429");
                    // Only signing up, in and refreshing work without a token.
                    let public = ["/v1/auth/register", "/v1/auth/login", "/v1/auth/refresh"];
                    if public.contains(&path.as_str()) {
                        assert!(operation["security"].is_null(), "{method} {path}");
                        continue;
                    }
                    assert!(responses.contains_key("401"), "{method} {path} lacks 401");
                    assert!(
                        operation["security"].is_array(),
                        "{method} {path} lacks security"
                    );
                }
            }
        }
    }
}
