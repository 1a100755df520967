//! Invitations: those a workspace sent (`/v1/workspace/invitations`, its
//! managers) and those addressed to you (`/v1/me/invitations`), which you
//! accept or decline.

use super::{current_state, TAG};
use crate::auth::{Caller, SignedIn};
use crate::consistency::answering;
use crate::error::{ApiError, Problem};
use crate::http::extract::Path;
use crate::http::respond::{accepted, CommandAccepted};
use crate::state::AppState;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;
use vcintel_domain::workspace::WorkspaceCommand;
use vcintel_domain::{Permission, Role};

/// A pending invitation.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct InvitationSummary {
    pub id: Uuid,
    #[schema(example = "grace@fund.example")]
    pub email: String,
    pub role: Role,
    pub invited_by: Uuid,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct InvitationList {
    pub items: Vec<InvitationSummary>,
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

/// An invitation addressed to you.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReceivedInvitation {
    pub id: Uuid,
    pub workspace_id: Uuid,
    #[schema(example = "Northwind Ventures")]
    pub workspace_name: String,
    pub role: Role,
    pub invited_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReceivedInvitationList {
    pub items: Vec<ReceivedInvitation>,
}

/// What answering an invitation did.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct InvitationAnswered {
    /// The workspace that invited you (now yours, if you accepted).
    pub workspace_id: Uuid,
    /// The workspace aggregate's version after the change.
    #[schema(example = 14)]
    pub version: u64,
}

/// Invitations addressed to your e-mail, oldest first.
#[utoipa::path(
    get, path = "/v1/me/invitations", tag = TAG, operation_id = "listMyInvitations",
    responses(
        (status = 200, description = "Invitations waiting for you", body = ReceivedInvitationList),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "API keys act on workspaces, not accounts", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn list_my_invitations(
    State(state): State<AppState>,
    signed_in: SignedIn,
) -> Result<axum::Json<ReceivedInvitationList>, ApiError> {
    use vcintel_commands::sessions::Credentials;
    let registration = state
        .credentials
        .registration(signed_in.user_id)
        .await?
        .ok_or(ApiError::Unauthenticated("this account no longer exists"))?;
    let email = registration
        .email
        .known()
        .ok_or(ApiError::Unauthenticated("this account no longer exists"))?;
    let rows = vcintel_projections::identity::invitations_addressed_to(&state.pool, email).await?;
    let items = rows
        .into_iter()
        .filter_map(|row| {
            Some(ReceivedInvitation {
                id: row.id,
                workspace_id: row.workspace_id,
                workspace_name: row.workspace_name,
                role: row.role.parse().ok()?,
                invited_at: row.invited_at,
            })
        })
        .collect();
    Ok(axum::Json(ReceivedInvitationList { items }))
}

async fn answer(
    state: &AppState,
    signed_in: &SignedIn,
    invitation_id: Uuid,
    answer: vcintel_commands::sessions::InvitationAnswer,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let metadata = crate::http::metadata::command_metadata(headers);
    let (workspace, committed) = state
        .accounts
        .answer_invitation(
            state.session_ports(),
            signed_in.user_id,
            invitation_id,
            answer,
            &metadata,
        )
        .await?;
    Ok(answering(
        axum::Json(InvitationAnswered {
            workspace_id: workspace.0,
            version: committed.version,
        })
        .into_response(),
        &committed,
    ))
}

/// Accept an invitation addressed to you: you join its workspace with its
/// role.
#[utoipa::path(
    post, path = "/v1/me/invitations/{invitation_id}/accept", tag = TAG, operation_id = "acceptInvitation",
    params(("invitation_id" = Uuid, Path, description = "The invitation's id")),
    responses(
        (status = 200, description = "You are a member now", body = InvitationAnswered),
        (status = 400, description = "Malformed id", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "API keys act on workspaces, not accounts", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such invitation addressed to you", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn accept_invitation(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Path(invitation_id): Path<Uuid>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    use vcintel_commands::sessions::InvitationAnswer;
    answer(
        &state,
        &signed_in,
        invitation_id,
        InvitationAnswer::Accept,
        &headers,
    )
    .await
}

/// Decline an invitation addressed to you; the workspace sees it declined.
#[utoipa::path(
    post, path = "/v1/me/invitations/{invitation_id}/decline", tag = TAG, operation_id = "declineInvitation",
    params(("invitation_id" = Uuid, Path, description = "The invitation's id")),
    responses(
        (status = 200, description = "Declined", body = InvitationAnswered),
        (status = 400, description = "Malformed id", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "API keys act on workspaces, not accounts", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such invitation addressed to you", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn decline_invitation(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Path(invitation_id): Path<Uuid>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    use vcintel_commands::sessions::InvitationAnswer;
    answer(
        &state,
        &signed_in,
        invitation_id,
        InvitationAnswer::Decline,
        &headers,
    )
    .await
}
