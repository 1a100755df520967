//! Who a request is from, as the authentication middleware concluded, and
//! the header that names the workspace it acts in.

use uuid::Uuid;
use vcintel_domain::{Actor, UserId, WorkspaceId};

/// The header that picks the workspace a request acts in.
pub const WORKSPACE_HEADER: &str = "x-workspace-id";

/// An authenticated client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Principal {
    /// A signed-in user, through a live session.
    User {
        user_id: UserId,
        session_id: Uuid,
        default_workspace: WorkspaceId,
    },
    /// A machine client; it acts only in its workspace, as its creator.
    ApiKey {
        key_id: Uuid,
        workspace_id: WorkspaceId,
    },
    /// A development token (tests only).
    Dev(Actor),
}

impl Principal {
    /// Names the principal for per-caller state: its rate-limit budget and
    /// its idempotency keys.
    pub fn identity_key(&self) -> String {
        match self {
            Principal::User { user_id, .. } => format!("user:{user_id}"),
            Principal::ApiKey { key_id, .. } => format!("key:{key_id}"),
            Principal::Dev(actor) => format!("user:{}", actor.user_id),
        }
    }

    pub fn user_id(&self) -> Option<UserId> {
        match self {
            Principal::User { user_id, .. } => Some(*user_id),
            Principal::Dev(actor) => Some(actor.user_id),
            Principal::ApiKey { .. } => None,
        }
    }
}

/// What the middleware concluded about a request's credentials.
#[derive(Debug, Clone, Copy)]
pub enum Authentication {
    Authenticated(Principal),
    Anonymous,
    Rejected(&'static str),
}
