//! Who is calling: bearer access tokens (HS256 JWTs naming a login
//! session), API keys, and, only when `VCINTEL_DEV_TOKENS` is set for
//! tests, development tokens that name a workspace and role directly.
//!
//! The [`authenticate_and_limit`](crate::limits::authenticate_and_limit)
//! middleware authenticates each `/v1` request once and leaves an
//! [`Authentication`] in its extensions; the extractors here turn it into
//! the caller of a user-level route ([`SignedIn`]) or of a workspace route
//! ([`Caller`]: the workspace chosen by `X-Workspace-Id` and the caller's
//! current role in it, read from the workspace's events).

pub mod gate;
pub mod principal;
pub mod token;

pub use principal::{Authentication, Principal, WORKSPACE_HEADER};
pub use token::{Claims, TokenKeys, ISSUER};

use crate::error::ApiError;
use axum::extract::FromRef;
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use gate::Gate;
use std::sync::Arc;
use uuid::Uuid;
use vcintel_commands::CommandMetadata;
use vcintel_domain::{Actor, UserId, WorkspaceId};
use vcintel_infra::accounts;

/// Checks the `Authorization` header: signature and expiry of a token and
/// that its session is live, or an API key's secret.
pub async fn authenticate(state: &Gate, headers: &HeaderMap) -> Result<Authentication, ApiError> {
    let Some(header) = headers.get(AUTHORIZATION) else {
        return Ok(Authentication::Anonymous);
    };
    let Some(token) = header
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
    else {
        return Ok(Authentication::Rejected(
            "expected `Authorization: Bearer <token>`",
        ));
    };
    if token.starts_with(accounts::API_KEY_PREFIX) {
        return Ok(
            match accounts::verify_api_key(&state.pool, &state.identity, token).await? {
                Some((key_id, workspace_id)) => Authentication::Authenticated(Principal::ApiKey {
                    key_id,
                    workspace_id,
                }),
                None => Authentication::Rejected("invalid API key"),
            },
        );
    }
    let Some(claims) = state.tokens.verify(token) else {
        return Ok(Authentication::Rejected("invalid or expired token"));
    };
    let user_id = UserId(claims.sub);
    match (claims.sid, claims.ws, claims.role) {
        (Some(session_id), _, _) => {
            let live = accounts::live_session(&state.pool, &state.identity, session_id).await?;
            if live != Some(user_id) {
                return Ok(Authentication::Rejected(
                    "the session has ended; sign in again",
                ));
            }
            let default_workspace = WorkspaceId(claims.dws.unwrap_or_default());
            Ok(Authentication::Authenticated(Principal::User {
                user_id,
                session_id,
                default_workspace,
            }))
        }
        (None, Some(ws), Some(role)) if state.dev_tokens => {
            Ok(Authentication::Authenticated(Principal::Dev(Actor {
                workspace_id: WorkspaceId(ws),
                user_id,
                role,
                api_key: None,
            })))
        }
        _ => Ok(Authentication::Rejected("invalid or expired token")),
    }
}

fn principal(parts: &Parts) -> Result<Principal, ApiError> {
    match parts.extensions.get::<Authentication>() {
        Some(Authentication::Authenticated(p)) => Ok(*p),
        Some(Authentication::Rejected(reason)) => Err(ApiError::Unauthenticated(reason)),
        Some(Authentication::Anonymous) | None => {
            Err(ApiError::Unauthenticated("missing Authorization header"))
        }
    }
}

fn record_span(workspace: Option<WorkspaceId>, user: Option<UserId>) {
    let span = tracing::Span::current();
    if let Some(ws) = workspace {
        span.record("workspace_id", tracing::field::display(ws));
    }
    if let Some(user) = user {
        span.record("user_id", tracing::field::display(user));
    }
}

/// A signed-in user on a route about their own account (not a workspace's
/// data). API keys act only inside their workspace, so they are refused here.
#[derive(Debug, Clone, Copy)]
pub struct SignedIn {
    pub user_id: UserId,
    /// `None` for development tokens.
    pub session_id: Option<Uuid>,
    pub default_workspace: WorkspaceId,
}

impl<S: Send + Sync> FromRequestParts<S> for SignedIn {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let signed_in = match principal(parts)? {
            Principal::User {
                user_id,
                session_id,
                default_workspace,
            } => SignedIn {
                user_id,
                session_id: Some(session_id),
                default_workspace,
            },
            Principal::Dev(actor) => SignedIn {
                user_id: actor.user_id,
                session_id: None,
                default_workspace: actor.workspace_id,
            },
            Principal::ApiKey { .. } => {
                return Err(ApiError::Forbidden(
                    "API keys act only on their workspace's resources, not on accounts".to_owned(),
                ))
            }
        };
        record_span(None, Some(signed_in.user_id));
        Ok(signed_in)
    }
}

/// The caller of a workspace route: who, in which workspace, with which
/// role. A workspace the caller does not belong to is "not found".
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    /// Who acts; `actor.api_key` is set when an API key made the request
    /// (and is recorded with its events).
    pub actor: Actor,
}

impl Caller {
    /// Refuses (403) a caller whose role lacks `permission`: the one way
    /// handlers check a permission the domain does not check itself.
    pub fn require(&self, permission: vcintel_domain::Permission) -> Result<(), ApiError> {
        if self.may(permission) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "the role `{}` may not {}",
                self.actor.role.as_str(),
                permission.describe()
            )))
        }
    }

    /// Whether the caller's role has `permission` (for answers that show
    /// more to some roles).
    pub fn may(&self, permission: vcintel_domain::Permission) -> bool {
        self.actor.may(permission)
    }

    /// Event metadata for a command this caller causes.
    pub fn metadata(&self, headers: &HeaderMap) -> CommandMetadata {
        CommandMetadata {
            api_key_id: self.actor.api_key,
            ..crate::http::metadata::command_metadata(headers)
        }
    }
}

/// The workspace `X-Workspace-Id` names, if any; a malformed one is 400.
pub fn requested_workspace(headers: &HeaderMap) -> Result<Option<WorkspaceId>, ApiError> {
    let Some(value) = headers.get(WORKSPACE_HEADER) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| Uuid::try_parse(v.trim()).ok())
        .map(|id| Some(WorkspaceId(id)))
        .ok_or(ApiError::BadRequest {
            detail: "must be a workspace id (UUID)".to_owned(),
            field: Some("X-Workspace-Id".to_owned()),
        })
}

impl Caller {
    /// Who `principal` acts as in the `requested` workspace (default: its
    /// own), as of now.
    async fn resolve(
        state: &Gate,
        principal: Principal,
        requested: Option<WorkspaceId>,
    ) -> Result<Caller, ApiError> {
        Ok(match principal {
            Principal::Dev(actor) => {
                if requested.is_some_and(|ws| ws != actor.workspace_id) {
                    return Err(ApiError::NotFound);
                }
                Caller { actor }
            }
            Principal::User {
                user_id,
                default_workspace,
                ..
            } => {
                let workspace_id = requested.unwrap_or(default_workspace);
                let workspace = state.directory.current(workspace_id).await?;
                let role = workspace
                    .and_then(|w| w.workspace.role_of(user_id))
                    .ok_or(ApiError::NotFound)?;
                Caller {
                    actor: Actor {
                        workspace_id,
                        user_id,
                        role,
                        api_key: None,
                    },
                }
            }
            Principal::ApiKey {
                key_id,
                workspace_id,
            } => {
                if requested.is_some_and(|ws| ws != workspace_id) {
                    return Err(ApiError::NotFound);
                }
                let workspace = state.directory.current(workspace_id).await?;
                let (creator, role) = workspace
                    .and_then(|w| w.workspace.api_key_access(key_id))
                    .ok_or(ApiError::Unauthenticated(
                        "this API key has been revoked or its creator has left the workspace",
                    ))?;
                Caller {
                    actor: Actor {
                        workspace_id,
                        user_id: creator,
                        role,
                        api_key: Some(key_id),
                    },
                }
            }
        })
    }

    /// Whether the credentials of `headers` still make this caller, with a
    /// role no lower than now, e.g. for a stream that outlives its request:
    /// a session that ended, a key revoked or a membership removed or
    /// lowered stops it.
    pub async fn still_authorised(&self, state: &Gate, headers: &HeaderMap) -> bool {
        let Ok(Authentication::Authenticated(principal)) = authenticate(state, headers).await
        else {
            return false;
        };
        match Caller::resolve(state, principal, Some(self.actor.workspace_id)).await {
            Ok(now) => {
                now.actor.user_id == self.actor.user_id
                    && now.actor.role.rank() >= self.actor.role.rank()
            }
            Err(_) => false,
        }
    }
}

impl<S> FromRequestParts<S> for Caller
where
    S: Send + Sync,
    Arc<Gate>: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let state = Arc::<Gate>::from_ref(state);
        let requested = requested_workspace(&parts.headers)?;
        let caller = Caller::resolve(&state, principal(parts)?, requested).await?;
        record_span(Some(caller.actor.workspace_id), Some(caller.actor.user_id));
        Ok(caller)
    }
}
