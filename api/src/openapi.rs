//! The router and the OpenAPI document it is generated with: routes are
//! registered through utoipa-axum, so the spec cannot drift from them.

use crate::error::{problem_response, ApiError, Problem, PROBLEM_JSON};
use crate::routes::{companies, health};
use crate::state::AppState;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderName, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use std::time::Duration;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
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
        description = "Source and judge companies. Every `/v1` route needs `Authorization: Bearer <token>` and acts in the token's workspace. Errors are RFC 9457 problem+json. Commands return the aggregate version: send it back as `If-Match` for safe updates, or as `min_version` to read your own write.",
        license(name = "MIT")
    ),
    modifiers(&BearerAuth),
    components(schemas(Problem)),
    tags(
        (name = "companies", description = "Companies analysts track"),
        (name = "health", description = "Liveness and readiness"),
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
    }
}

fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(companies::add_company, companies::list_companies))
        .routes(routes!(
            companies::get_company,
            companies::update_company,
            companies::delete_company
        ))
        .routes(routes!(health::health))
        .routes(routes!(health::ready))
}

/// The OpenAPI document the API serves at `/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api_router().split_for_parts().1
}

/// The whole HTTP surface, with its middleware.
pub fn router(state: AppState, request_timeout: Duration, max_body_bytes: usize) -> Router {
    let (api, spec) = api_router().split_for_parts();
    let request_id = HeaderName::from_static(REQUEST_ID);
    api.merge(SwaggerUi::new("/docs").url("/openapi.json", spec))
        .fallback(|| async { ApiError::RouteNotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
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
                .layer(axum::middleware::from_fn(problem_details))
                .layer(CatchPanicLayer::new())
                .layer(TimeoutLayer::with_status_code(
                    StatusCode::REQUEST_TIMEOUT,
                    request_timeout,
                ))
                .layer(RequestBodyLimitLayer::new(max_body_bytes)),
        )
}

fn request_span(request: &Request) -> tracing::Span {
    let request_id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        request_id = %request_id,
        workspace_id = tracing::field::Empty,
        user_id = tracing::field::Empty,
    )
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

    const SNAPSHOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.snapshot.json");

    /// Every contract change shows up as a reviewed diff of the snapshot.
    /// After an intended change: `UPDATE_SNAPSHOTS=1 cargo test -p vcintel_api openapi`.
    #[test]
    fn the_openapi_document_matches_the_reviewed_snapshot() {
        let actual = serde_json::to_string_pretty(&openapi()).expect("serialize spec") + "\n";
        if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
            std::fs::write(SNAPSHOT, &actual).expect("write snapshot");
            return;
        }
        let expected = std::fs::read_to_string(SNAPSHOT).unwrap_or_default();
        assert!(
            expected == actual,
            "the OpenAPI document changed; review it and rerun with UPDATE_SNAPSHOTS=1"
        );
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
