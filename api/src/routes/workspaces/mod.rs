//! The caller's account and workspaces (`/v1/me`, `/v1/workspaces`,
//! `/v1/workspace`); the current workspace's sub-resources (the workspace
//! chosen by `X-Workspace-Id`) have a module each.

pub mod api_keys;
pub mod erasure;
pub mod export;
pub mod invitations;
pub mod members;
pub mod security_log;
pub mod thesis;

use crate::auth::{Caller, SignedIn};
use crate::error::{ApiError, Problem};
use crate::http::extract::Json;
use crate::http::metadata::command_metadata;
use crate::http::respond::{accepted, CommandAccepted};
use crate::state::AppState;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;
use vcintel_domain::workspace::WorkspaceState;
use vcintel_domain::{Role, WorkspaceId};
use vcintel_infra::accounts;
use vcintel_projections::identity;

pub const TAG: &str = "workspaces";

fn parse_role(text: &str) -> Role {
    text.parse().unwrap_or(Role::Viewer)
}

/// A workspace the caller belongs to.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Membership {
    pub workspace_id: Uuid,
    #[schema(example = "Northwind Ventures")]
    pub name: String,
    /// Created for the user at sign-up.
    #[schema(example = false)]
    pub personal: bool,
    pub role: Role,
}

impl From<identity::MembershipRow> for Membership {
    fn from(w: identity::MembershipRow) -> Self {
        Membership {
            workspace_id: w.workspace_id,
            name: w.name,
            personal: w.personal,
            role: parse_role(&w.role),
        }
    }
}

/// The signed-in user.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Me {
    pub user_id: Uuid,
    #[schema(example = "ada@fund.example")]
    pub email: String,
    /// Whether you proved you own `email` (a verification mail's token):
    /// until then you cannot accept invitations.
    #[schema(example = true)]
    pub email_verified: bool,
    #[schema(example = "Ada Lovelace")]
    pub name: String,
    /// `free`, `pro` or `enterprise`.
    #[schema(example = "pro")]
    pub tier: String,
    /// Used when a request sends no `X-Workspace-Id`.
    pub default_workspace_id: Uuid,
    pub workspaces: Vec<Membership>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Seed Fund III"}))]
pub struct CreateWorkspaceRequest {
    /// 1–100 characters.
    pub name: String,
}

/// The current workspace.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WorkspaceInfo {
    pub id: Uuid,
    #[schema(example = "Northwind Ventures")]
    pub name: String,
    #[schema(example = false)]
    pub personal: bool,
    /// The caller's role here.
    pub role: Role,
    #[schema(example = 4)]
    pub member_count: usize,
    /// The workspace aggregate's version.
    #[schema(example = 14)]
    pub version: u64,
}

async fn current_state(
    state: &AppState,
    workspace: WorkspaceId,
) -> Result<(u64, WorkspaceState), ApiError> {
    let current = state
        .gate
        .directory
        .current(workspace)
        .await?
        .ok_or(ApiError::NotFound)?;
    let ws = current
        .workspace
        .state()
        .cloned()
        .ok_or(ApiError::NotFound)?;
    Ok((current.version as u64, ws))
}

/// The signed-in user and the workspaces they belong to.
#[utoipa::path(
    get, path = "/v1/me", tag = TAG, operation_id = "getMe",
    responses(
        (status = 200, description = "The user", body = Me),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "API keys have no account", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "The account does not exist", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn get_me(
    State(state): State<AppState>,
    caller: SignedIn,
) -> Result<axum::Json<Me>, ApiError> {
    let account = accounts::account(&state.vault, caller.user_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let user = account.registration().cloned().ok_or(ApiError::NotFound)?;
    let workspaces = identity::workspaces_of(&state.pool, caller.user_id).await?;
    Ok(axum::Json(Me {
        user_id: user.user_id.0,
        email: user.email.text().to_owned(),
        email_verified: account.email_verified(),
        name: user.name.text().to_owned(),
        tier: serde_json::to_value(user.tier)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        default_workspace_id: caller.default_workspace.0,
        workspaces: workspaces.into_iter().map(Membership::from).collect(),
    }))
}

/// The workspaces the signed-in user belongs to.
#[utoipa::path(
    get, path = "/v1/workspaces", tag = TAG, operation_id = "listMyWorkspaces",
    responses(
        (status = 200, description = "Memberships", body = [Membership]),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "API keys have no account", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn list_my_workspaces(
    State(state): State<AppState>,
    caller: SignedIn,
) -> Result<axum::Json<Vec<Membership>>, ApiError> {
    let rows = identity::workspaces_of(&state.pool, caller.user_id).await?;
    Ok(axum::Json(rows.into_iter().map(Membership::from).collect()))
}

/// Create a workspace; you become its owner.
#[utoipa::path(
    post, path = "/v1/workspaces", tag = TAG, operation_id = "createWorkspace",
    request_body = CreateWorkspaceRequest,
    responses(
        (status = 201, description = "Created", body = CommandAccepted),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "API keys may not create workspaces", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid name", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn create_workspace(
    State(state): State<AppState>,
    caller: SignedIn,
    headers: HeaderMap,
    Json(body): Json<CreateWorkspaceRequest>,
) -> Result<Response, ApiError> {
    let user = accounts::registered_user(&state.vault, caller.user_id)
        .await?
        .ok_or(ApiError::Forbidden(
            "only registered users create workspaces".to_owned(),
        ))?;
    let id = WorkspaceId(Uuid::now_v7());
    let committed = state
        .accounts
        .create_workspace(
            id,
            body.name,
            caller.user_id,
            user.email
                .into_known()
                .ok_or(ApiError::Unauthenticated("this account no longer exists"))?,
            false,
            &command_metadata(&headers),
        )
        .await?;
    let mut response = accepted(id.0, &committed);
    *response.status_mut() = StatusCode::CREATED;
    if let Ok(location) = HeaderValue::from_str("/v1/workspace") {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// The workspace this request acts in and your role there.
#[utoipa::path(
    get, path = "/v1/workspace", tag = TAG, operation_id = "getCurrentWorkspace",
    responses(
        (status = 200, description = "The workspace", body = WorkspaceInfo),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such workspace, or you are not a member", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn get_current_workspace(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<axum::Json<WorkspaceInfo>, ApiError> {
    let (version, ws) = current_state(&state, caller.actor.workspace_id).await?;
    Ok(axum::Json(WorkspaceInfo {
        id: ws.id.0,
        name: ws.name,
        personal: ws.personal,
        role: caller.actor.role,
        member_count: ws.members.len(),
        version,
    }))
}
