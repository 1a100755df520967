//! `/v1/workspace/invitations`: addresses invited that have no account yet.

use super::{current_state, TAG};
use crate::auth::Caller;
use crate::error::{ApiError, Problem};
use crate::http::extract::Path;
use crate::http::respond::{accepted, CommandAccepted};
use crate::state::AppState;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;
use vcintel_domain::workspace::WorkspaceCommand;
use vcintel_domain::{Permission, Role};

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
