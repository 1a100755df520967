//! `/v1/workspace/thesis`: what the workspace invests in; enrichment's fit
//! score weighs companies against it.

use super::{current_state, TAG};
use crate::auth::Caller;
use crate::error::{ApiError, Problem};
use crate::http::extract::Json;
use crate::http::respond::{accepted, CommandAccepted};
use crate::state::AppState;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use vcintel_domain::enrichment::Thesis;

/// The workspace's investment thesis.
#[utoipa::path(
    get, path = "/v1/workspace/thesis", tag = TAG, operation_id = "getThesis",
    responses(
        (status = 200, description = "The thesis", body = Thesis),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such workspace, or you are not a member", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn get_thesis(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<axum::Json<Thesis>, ApiError> {
    let (_, ws) = current_state(&state, caller.actor.workspace_id).await?;
    Ok(axum::Json(ws.thesis))
}

/// Set the workspace's investment thesis (owners and admins). Later
/// enrichments score companies against it.
#[utoipa::path(
    put, path = "/v1/workspace/thesis", tag = TAG, operation_id = "setThesis",
    request_body = Thesis,
    responses(
        (status = 200, description = "Set", body = CommandAccepted),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Only owners and admins set the thesis", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such workspace, or you are not a member", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Too many or invalid entries, each named", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn set_thesis(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Json(body): Json<Thesis>,
) -> Result<Response, ApiError> {
    let committed = state
        .workspaces
        .set_thesis(
            &caller.actor,
            body.sectors,
            body.stages,
            body.locations,
            &caller.metadata(&headers),
        )
        .await?;
    Ok(accepted(caller.actor.workspace_id.0, &committed))
}
