//! The whole HTTP surface: the route table with the documentation routes,
//! the middleware stack in its order, the fallbacks, CORS and the request
//! span.

use crate::auth::WORKSPACE_HEADER;
use crate::consistency::{read_your_writes, CONSISTENCY_TOKEN};
use crate::error::{problem_details, ApiError};
use crate::http::headers::{security_headers, REQUEST_ID};
use crate::idempotency::idempotent_posts;
use crate::limits::authenticate_and_limit;
use crate::openapi::{openapi, split};
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
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
use utoipa_swagger_ui::SwaggerUi;

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
        // Where a person who opens the bare address can go next.
        .route(
            "/",
            axum::routing::get(|| async {
                axum::Json(serde_json::json!({
                    "service": "VC Intel",
                    "docs": "/docs",
                    "openapi": "/openapi.json",
                    "asyncapi": "/asyncapi.json",
                    "health": "/health",
                    "ready": "/health/ready",
                    "api": "/v1",
                }))
            }),
        )
        .route(
            "/asyncapi.json",
            axum::routing::get(|State(state): State<AppState>| async move {
                (
                    [(header::CONTENT_TYPE, "application/json")],
                    state.asyncapi.clone(),
                )
            }),
        )
        .route(
            "/metrics",
            axum::routing::get(
                |State(state): State<AppState>, _operator: crate::routes::admin::Operator| async move {
                    crate::metrics::render(&state).await
                },
            ),
        )
        .route_layer(axum::middleware::from_fn(crate::metrics::note_route))
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
                .layer(axum::middleware::from_fn(crate::metrics::red))
                .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(request_span)
                        .on_response(DefaultOnResponse::new().level(tracing::Level::INFO))
                        // A 5xx is logged once, with its cause, where it
                        // arises (and a 503 from a readiness probe is the
                        // probe working): not again at ERROR per response.
                        .on_failure(
                            tower_http::trace::DefaultOnFailure::new().level(tracing::Level::DEBUG),
                        ),
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
        // Named `METHOD /route/{template}` once routing matched.
        otel.name = %request.method(),
        otel.kind = "server",
        http.route = tracing::field::Empty,
        method = %request.method(),
        path = %request.uri().path(),
        request_id = %request_id,
        workspace_id = tracing::field::Empty,
        user_id = tracing::field::Empty,
    );
    vcintel_infra::trace_context::continue_trace(
        &span,
        request
            .headers()
            .get("traceparent")
            .and_then(|v| v.to_str().ok()),
    );
    span
}
