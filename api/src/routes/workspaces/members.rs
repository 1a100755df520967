//! `/v1/workspace/members` and `/v1/workspace/leave`: who belongs to the
//! workspace, with what role.

use super::{current_state, TAG};
use crate::auth::Caller;
use crate::consistency::answering;
use crate::error::{ApiError, Problem};
use crate::http::extract::{Json, Path};
use crate::http::respond::{accepted, CommandAccepted};
use crate::state::AppState;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;
use vcintel_domain::workspace::WorkspaceCommand;
use vcintel_domain::{Permission, Role, UserId};

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Member {
    pub user_id: Uuid,
    #[schema(example = "grace@fund.example")]
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
pub struct InviteMemberRequest {
    pub email: String,
    pub role: Role,
}

/// An invitation recorded: the same answer whether or not the address has
/// an account. The addressee joins by accepting it
/// (`POST /v1/me/invitations/{invitation_id}/accept`).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MemberInvitation {
    /// The invitation's id (inviting the same address again keeps it).
    pub invitation_id: Uuid,
    /// The workspace aggregate's version after the change.
    #[schema(example = 13)]
    pub version: u64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"role": "admin"}))]
pub struct ChangeRoleRequest {
    pub role: Role,
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
                email: m.email.text().to_owned(),
                role: m.role,
            })
            .collect(),
    }))
}

/// Invite someone by e-mail (owners and admins; only owners invite owners).
/// The answer is the same whether or not the address has an account; the
/// addressee joins only by accepting, once their address is verified.
#[utoipa::path(
    post, path = "/v1/workspace/members", tag = TAG, operation_id = "inviteMember",
    request_body = InviteMemberRequest,
    responses(
        (status = 202, description = "Invited", body = MemberInvitation),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Your role may not invite members (or owners)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such workspace, or you are not a member", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already a member", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid email", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn invite_member(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Json(body): Json<InviteMemberRequest>,
) -> Result<Response, ApiError> {
    let invitation = state
        .workspaces
        .invite(
            &caller.actor,
            &body.email,
            body.role,
            &caller.metadata(&headers),
        )
        .await?;
    Ok(answering(
        (
            StatusCode::ACCEPTED,
            axum::Json(MemberInvitation {
                invitation_id: invitation.invitation_id,
                version: invitation.committed.version,
            }),
        )
            .into_response(),
        &invitation.committed,
    ))
}

/// Change a member's role (owners and admins; only owners touch owners; the
/// last owner stays owner).
#[utoipa::path(
    patch, path = "/v1/workspace/members/{user_id}", tag = TAG, operation_id = "changeMemberRole",
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
