//! The caller's account and workspaces (`/v1/me`, `/v1/workspaces`), and
//! the current workspace's members, API keys and security log
//! (`/v1/workspace/...`, the workspace chosen by `X-Workspace-Id`).

use crate::auth::{Caller, SignedIn};
use crate::consistency::answering;
use crate::error::{ApiError, InvalidField, Problem};
use crate::http::extract::{Json, Path, Query};
use crate::http::metadata::command_metadata;
use crate::http::pagination::{decode_cursor, next_cursor, page_limit};
use crate::http::respond::{accepted, CommandAccepted};
use crate::state::AppState;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;
use vcintel_domain::user::Email;
use vcintel_domain::workspace::{WorkspaceCommand, WorkspaceState};
use vcintel_domain::{Permission, Role, UserId, WorkspaceId};
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
    pub name: String,
    /// Created for the user at sign-up.
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
    pub email: String,
    pub name: String,
    /// `free`, `pro` or `enterprise`.
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
    pub name: String,
    pub personal: bool,
    /// The caller's role here.
    pub role: Role,
    pub member_count: usize,
    /// The workspace aggregate's version.
    pub version: u64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Member {
    pub user_id: Uuid,
    pub email: String,
    pub role: Role,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MemberList {
    pub items: Vec<Member>,
}

/// Add someone by email: at once if they have an account, otherwise as an
/// invitation they take up when they sign up with that email.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "bob@fund.example", "role": "member"}))]
pub struct AddMemberRequest {
    pub email: String,
    pub role: Role,
}

/// Whether the person was added or invited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AdditionStatus {
    /// They had an account and are a member now.
    Added,
    /// They have no account yet; they join when they sign up with the email.
    Invited,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MemberAddition {
    pub status: AdditionStatus,
    /// The member's user id, when added.
    pub user_id: Option<Uuid>,
    /// The invitation's id, when invited.
    pub invitation_id: Option<Uuid>,
    /// The workspace aggregate's version after the change.
    pub version: u64,
}

/// A pending invitation.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct InvitationSummary {
    pub id: Uuid,
    pub email: String,
    pub role: Role,
    pub invited_by: Uuid,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct InvitationList {
    pub items: Vec<InvitationSummary>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"role": "admin"}))]
pub struct ChangeRoleRequest {
    pub role: Role,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "CI pipeline", "role": "viewer"}))]
pub struct CreateApiKeyRequest {
    /// What the key is for, 1–100 characters.
    pub name: String,
    /// No higher than your own role; default: your role.
    #[serde(default)]
    pub role: Option<Role>,
}

/// A new API key. `key` is shown only in this response; store it now.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreatedApiKey {
    pub id: Uuid,
    /// Send as `Authorization: Bearer <key>`.
    pub key: String,
    pub prefix: String,
    pub name: String,
    pub role: Role,
    /// The workspace aggregate's version after the change.
    pub version: u64,
}

/// An API key as listings show it: never the secret.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ApiKeySummary {
    pub id: Uuid,
    pub name: String,
    pub prefix: String,
    pub role: Role,
    pub created_by: Uuid,
    pub revoked: bool,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ApiKeyList {
    pub items: Vec<ApiKeySummary>,
}

/// One entry of the security log.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SecurityEventEntry {
    pub id: Uuid,
    pub occurred_at: DateTime<Utc>,
    /// e.g. `login.failed`, `login.locked_out`, `session.revoked_all`,
    /// `api_key.created`, `api_key.revoked`, `member.role_changed`,
    /// `rate_limit.exceeded`.
    pub kind: String,
    pub workspace_id: Option<Uuid>,
    /// The user it concerns or who acted.
    pub user_id: Option<Uuid>,
    pub ip: Option<String>,
    pub detail: serde_json::Value,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SecurityEventPage {
    pub items: Vec<SecurityEventEntry>,
    /// Pass as `cursor` for older entries; absent on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SecurityEventParams {
    /// Page size, 1–200 (default 50).
    pub limit: Option<u32>,
    /// Opaque cursor from a previous page's `next_cursor`.
    pub cursor: Option<String>,
}

async fn current_state(
    state: &AppState,
    workspace: WorkspaceId,
) -> Result<(u64, WorkspaceState), ApiError> {
    let current = state
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
    let user = accounts::registered_user(&state.pool, caller.user_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let workspaces = identity::workspaces_of(&state.pool, caller.user_id).await?;
    Ok(axum::Json(Me {
        user_id: user.user_id.0,
        email: user.email.to_string(),
        name: user.name,
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
    let user = accounts::registered_user(&state.pool, caller.user_id)
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
            user.email,
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

/// The workspace's members and their roles.
#[utoipa::path(
    get, path = "/v1/workspace/members", tag = TAG, operation_id = "listMembers",
    responses(
        (status = 200, description = "Members", body = MemberList),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such workspace, or you are not a member", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn list_members(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<axum::Json<MemberList>, ApiError> {
    caller.require(Permission::ReadData)?;
    let (_, ws) = current_state(&state, caller.actor.workspace_id).await?;
    Ok(axum::Json(MemberList {
        items: ws
            .members
            .into_iter()
            .map(|(user, m)| Member {
                user_id: user.0,
                email: m.email.to_string(),
                role: m.role,
            })
            .collect(),
    }))
}

/// Add a member by email (owners and admins; only owners add owners): at
/// once if the email has an account (201), otherwise as an invitation taken
/// up when they sign up or in with that email (202).
#[utoipa::path(
    post, path = "/v1/workspace/members", tag = TAG, operation_id = "addMember",
    request_body = AddMemberRequest,
    responses(
        (status = 201, description = "Added", body = MemberAddition),
        (status = 202, description = "Invited: no account uses the email yet", body = MemberAddition),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Your role may not add members (or owners)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such workspace, or you are not a member", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already a member", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid email", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn add_member(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Json(body): Json<AddMemberRequest>,
) -> Result<Response, ApiError> {
    // Checked before the lookup, so non-managers learn nothing about emails.
    let email = Email::parse(&body.email).map_err(|message| {
        ApiError::Invalid(vec![InvalidField {
            field: "email".to_owned(),
            message,
        }])
    })?;
    let addition = state
        .workspaces
        .add_or_invite(
            &state.account_lookup,
            &caller.actor,
            email,
            body.role,
            &caller.metadata(&headers),
        )
        .await?;
    let (status, addition, committed) = match addition {
        vcintel_commands::workspace::MemberAddition::Added { user_id, committed } => (
            StatusCode::CREATED,
            MemberAddition {
                status: AdditionStatus::Added,
                user_id: Some(user_id.0),
                invitation_id: None,
                version: committed.version,
            },
            committed,
        ),
        vcintel_commands::workspace::MemberAddition::Invited {
            invitation_id,
            committed,
        } => (
            StatusCode::ACCEPTED,
            MemberAddition {
                status: AdditionStatus::Invited,
                user_id: None,
                invitation_id: Some(invitation_id),
                version: committed.version,
            },
            committed,
        ),
    };
    Ok(answering(
        (status, axum::Json(addition)).into_response(),
        &committed,
    ))
}

/// Pending invitations (owners and admins).
#[utoipa::path(
    get, path = "/v1/workspace/invitations", tag = TAG, operation_id = "listInvitations",
    responses(
        (status = 200, description = "Pending invitations", body = InvitationList),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Only owners and admins see invitations", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such workspace, or you are not a member", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn list_invitations(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<axum::Json<InvitationList>, ApiError> {
    caller.require(Permission::ManageMembers)?;
    let (_, ws) = current_state(&state, caller.actor.workspace_id).await?;
    Ok(axum::Json(InvitationList {
        items: ws
            .invitations
            .into_iter()
            .map(|(email, i)| InvitationSummary {
                id: i.id,
                email: email.to_string(),
                role: i.role,
                invited_by: i.invited_by.0,
            })
            .collect(),
    }))
}

/// Cancel a pending invitation (owners and admins).
#[utoipa::path(
    delete, path = "/v1/workspace/invitations/{invitation_id}", tag = TAG, operation_id = "cancelInvitation",
    params(("invitation_id" = Uuid, Path, description = "The invitation's id")),
    responses(
        (status = 200, description = "Cancelled", body = CommandAccepted),
        (status = 400, description = "Malformed id", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Only owners and admins cancel invitations", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such invitation or workspace", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn cancel_invitation(
    State(state): State<AppState>,
    caller: Caller,
    Path(invitation_id): Path<Uuid>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let command = WorkspaceCommand::CancelInvitation {
        actor: caller.actor,
        invitation_id,
    };
    let committed = state
        .workspaces
        .run(&caller.actor, command, &caller.metadata(&headers))
        .await?;
    Ok(accepted(invitation_id, &committed))
}

/// Change a member's role (owners and admins; only owners touch owners; the
/// last owner stays owner).
#[utoipa::path(
    patch, path = "/v1/workspace/members/{user_id}", tag = TAG, operation_id = "changeRole",
    params(("user_id" = Uuid, Path, description = "The member's user id")),
    request_body = ChangeRoleRequest,
    responses(
        (status = 200, description = "Changed (or unchanged)", body = CommandAccepted),
        (status = 400, description = "Malformed JSON or id", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Your role may not change this role", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such member or workspace", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The last owner cannot be demoted", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn change_member_role(
    State(state): State<AppState>,
    caller: Caller,
    Path(user_id): Path<Uuid>,
    headers: HeaderMap,
    Json(body): Json<ChangeRoleRequest>,
) -> Result<Response, ApiError> {
    let command = WorkspaceCommand::ChangeRole {
        actor: caller.actor,
        user_id: UserId(user_id),
        role: body.role,
    };
    let committed = state
        .workspaces
        .run(&caller.actor, command, &caller.metadata(&headers))
        .await?;
    Ok(accepted(user_id, &committed))
}

/// Remove a member (owners and admins; only owners remove owners).
#[utoipa::path(
    delete, path = "/v1/workspace/members/{user_id}", tag = TAG, operation_id = "removeMember",
    params(("user_id" = Uuid, Path, description = "The member's user id")),
    responses(
        (status = 200, description = "Removed", body = CommandAccepted),
        (status = 400, description = "Malformed id", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Your role may not remove this member", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such member or workspace", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The last owner cannot be removed", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn remove_member(
    State(state): State<AppState>,
    caller: Caller,
    Path(user_id): Path<Uuid>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let command = WorkspaceCommand::RemoveMember {
        actor: caller.actor,
        user_id: UserId(user_id),
    };
    let committed = state
        .workspaces
        .run(&caller.actor, command, &caller.metadata(&headers))
        .await?;
    Ok(accepted(user_id, &committed))
}

/// Leave the workspace (the last owner cannot).
#[utoipa::path(
    post, path = "/v1/workspace/leave", tag = TAG, operation_id = "leaveWorkspace",
    responses(
        (status = 200, description = "Left", body = CommandAccepted),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such workspace, or you are not a member", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The last owner cannot leave", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn leave_workspace(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let command = WorkspaceCommand::Leave {
        actor: caller.actor,
    };
    let committed = state
        .workspaces
        .run(&caller.actor, command, &caller.metadata(&headers))
        .await?;
    Ok(accepted(caller.actor.workspace_id.0, &committed))
}

/// API keys: owners and admins see all, others their own.
#[utoipa::path(
    get, path = "/v1/workspace/api-keys", tag = TAG, operation_id = "listApiKeys",
    responses(
        (status = 200, description = "Keys (prefixes only)", body = ApiKeyList),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such workspace, or you are not a member", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn list_api_keys(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<axum::Json<ApiKeyList>, ApiError> {
    let (_, ws) = current_state(&state, caller.actor.workspace_id).await?;
    let see_all = caller.may(Permission::ManageApiKeys);
    Ok(axum::Json(ApiKeyList {
        items: ws
            .api_keys
            .into_iter()
            .filter(|(_, k)| see_all || k.created_by == caller.actor.user_id)
            .map(|(id, k)| ApiKeySummary {
                id,
                name: k.name,
                prefix: k.prefix,
                role: k.role,
                created_by: k.created_by.0,
                revoked: k.revoked,
            })
            .collect(),
    }))
}

/// Create an API key acting as you, with a role no higher than yours.
#[utoipa::path(
    post, path = "/v1/workspace/api-keys", tag = TAG, operation_id = "createApiKey",
    request_body = CreateApiKeyRequest,
    responses(
        (status = 201, description = "Created; the key is shown only now", body = CreatedApiKey),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Viewers may not create keys", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such workspace, or you are not a member", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid name, or a role above yours", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn create_api_key(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Json(body): Json<CreateApiKeyRequest>,
) -> Result<Response, ApiError> {
    let name = body.name.trim().to_owned();
    let (key, committed) = state
        .workspaces
        .create_api_key(
            &state.account_lookup,
            &caller.actor,
            &name,
            body.role,
            &caller.metadata(&headers),
        )
        .await?;
    let role = body.role.unwrap_or(caller.actor.role);
    let mut response = (
        StatusCode::CREATED,
        axum::Json(CreatedApiKey {
            id: key.key_id,
            key: key.secret,
            prefix: key.display_prefix,
            name,
            role,
            version: committed.version,
        }),
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(answering(response, &committed))
}

/// Revoke an API key: yours, or any if you are an owner or admin.
#[utoipa::path(
    delete, path = "/v1/workspace/api-keys/{key_id}", tag = TAG, operation_id = "revokeApiKey",
    params(("key_id" = Uuid, Path, description = "The key's id")),
    responses(
        (status = 200, description = "Revoked (or already revoked)", body = CommandAccepted),
        (status = 400, description = "Malformed id", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such key that you may see", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn revoke_api_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(key_id): Path<Uuid>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let command = WorkspaceCommand::RevokeApiKey {
        actor: caller.actor,
        key_id,
    };
    let committed = state
        .workspaces
        .run(&caller.actor, command, &caller.metadata(&headers))
        .await?;
    Ok(accepted(key_id, &committed))
}

/// The workspace's security log, newest first (owners and admins).
#[utoipa::path(
    get, path = "/v1/workspace/security-events", tag = TAG, operation_id = "listSecurityEvents",
    params(SecurityEventParams),
    responses(
        (status = 200, description = "A page of entries", body = SecurityEventPage),
        (status = 400, description = "Bad limit or cursor", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Only owners and admins read the security log", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such workspace, or you are not a member", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn list_security_events(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<SecurityEventParams>,
) -> Result<axum::Json<SecurityEventPage>, ApiError> {
    caller.require(Permission::ReadSecurityEvents)?;
    let limit = page_limit(params.limit)?;
    let before = params
        .cursor
        .as_deref()
        .map(decode_cursor::<(DateTime<Utc>, Uuid)>)
        .transpose()?;
    let mut rows = accounts::security_log(
        &state.pool,
        caller.actor.workspace_id,
        before,
        i64::from(limit) + 1,
    )
    .await?;
    let next_cursor = next_cursor(&mut rows, limit, |r| (r.occurred_at, r.id));
    Ok(axum::Json(SecurityEventPage {
        items: rows
            .into_iter()
            .map(|r| SecurityEventEntry {
                id: r.id,
                occurred_at: r.occurred_at,
                kind: r.kind,
                workspace_id: r.workspace_id,
                user_id: r.user_id,
                ip: r.ip,
                detail: r.detail,
            })
            .collect(),
        next_cursor,
    }))
}

/// What the workspace invests in; enrichment's fit score weighs companies
/// against it. Empty lists mean "no preference".
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"sectors": ["Developer tools", "AI infrastructure"], "stages": ["seed", "series_a"], "locations": ["Berlin", "London"]}))]
pub struct Thesis {
    /// At most 20, each 1–60 characters.
    #[serde(default)]
    pub sectors: Vec<String>,
    #[serde(default)]
    pub stages: Vec<vcintel_domain::company::Stage>,
    /// At most 20, each 1–60 characters.
    #[serde(default)]
    pub locations: Vec<String>,
}

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
    Ok(axum::Json(Thesis {
        sectors: ws.thesis.sectors,
        stages: ws.thesis.stages.into_iter().collect(),
        locations: ws.thesis.locations,
    }))
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
