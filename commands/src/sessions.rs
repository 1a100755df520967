//! Signing up, signing in and refreshing a session, and creating an account
//! (which the demo seeder also uses): one implementation for every caller. Passwords, sessions, invitations, the
//! workspace directory and the security log sit behind small ports
//! (Postgres in infra, the invitations read model in projections); issuing
//! the bearer token is the API's.

use crate::aggregate::{UserAggregate, WorkspaceAggregate};
use crate::execute::LoadedAggregate;
use crate::user::AccountCommands;
use crate::{CommandError, CommandMetadata};
use chrono::{DateTime, Utc};
use cqrs_es::EventStore;
use serde_json::{json, Value};
use uuid::Uuid;
use vcintel_domain::user::{Email, UserRegistered};
use vcintel_domain::workspace::{WorkspaceCommand, WorkspaceError};
use vcintel_domain::{UserId, WorkspaceId};

/// Where a request came from, for sessions and the security log.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// A session just started or renewed: its id and single-use refresh token.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub session_id: Uuid,
    pub refresh_token: String,
    pub expires_at: DateTime<Utc>,
}

/// What presenting a refresh token did.
#[derive(Debug, Clone)]
pub enum Refresh {
    /// The token was current: here is its successor.
    Rotated { user: UserId, session: NewSession },
    /// The token had already been used: someone holds a copy. The whole
    /// session (every token of the family) has been revoked.
    ReuseDetected { user: UserId, session_id: Uuid },
    /// Unknown, expired or revoked.
    Invalid,
}

/// Kinds of entries in the security log.
pub mod security_kind {
    pub const LOGIN_SUCCEEDED: &str = "login.succeeded";
    pub const LOGIN_FAILED: &str = "login.failed";
    pub const LOGIN_LOCKED_OUT: &str = "login.locked_out";
    pub const REFRESH_TOKEN_REUSED: &str = "session.refresh_token_reused";
    pub const SESSIONS_REVOKED: &str = "session.revoked_all";
    pub const RATE_LIMITED: &str = "rate_limit.exceeded";
    pub const API_KEY_CREATED: &str = "api_key.created";
    pub const API_KEY_REVOKED: &str = "api_key.revoked";
    pub const MEMBER_ADDED: &str = "member.added";
    pub const MEMBER_INVITED: &str = "member.invited";
    pub const INVITATION_DECLINED: &str = "member.invitation_declined";
    pub const MEMBER_ROLE_CHANGED: &str = "member.role_changed";
    pub const MEMBER_REMOVED: &str = "member.removed";
}

/// An entry of the security log.
#[derive(Debug, Clone, Default)]
pub struct SecurityEvent {
    pub id: Option<Uuid>,
    pub kind: &'static str,
    pub workspace_id: Option<WorkspaceId>,
    pub user_id: Option<UserId>,
    pub ip: Option<String>,
    pub detail: Value,
}

/// Password hashes and the accounts they belong to.
#[async_trait::async_trait]
pub trait Credentials: Send + Sync {
    async fn hash(&self, password: &str) -> Result<String, CommandError>;
    async fn store_hash(&self, user: UserId, hash: &str) -> Result<(), CommandError>;
    /// The account of `email` and its stored hash, if there is one.
    async fn credentials_of(
        &self,
        email: &Email,
    ) -> Result<Option<(UserId, Option<String>)>, CommandError>;
    /// Whether `password` matches `stored`; as slow with no hash as with one,
    /// so a wrong e-mail and a wrong password take the same time.
    async fn verify(&self, password: &str, stored: Option<String>) -> Result<bool, CommandError>;
    async fn registration(&self, user: UserId) -> Result<Option<UserRegistered>, CommandError>;
}

/// Login sessions and their refresh tokens.
#[async_trait::async_trait]
pub trait Sessions: Send + Sync {
    async fn start(&self, user: UserId, client: &ClientInfo) -> Result<NewSession, CommandError>;
    async fn rotate(&self, refresh_token: &str) -> Result<Refresh, CommandError>;
    /// Sessions revoked elsewhere stop authenticating at once.
    async fn ended(&self, sessions: &[Uuid]);
}

/// Workspaces as identity sees them: where an invitation addressed to an
/// e-mail waits, and the directory requests are authorised against.
#[async_trait::async_trait]
pub trait Workspaces: Send + Sync {
    /// The workspace holding this invitation, if it is addressed to `email`.
    async fn invitation_workspace(
        &self,
        invitation_id: Uuid,
        email: &Email,
    ) -> Result<Option<WorkspaceId>, CommandError>;
    async fn exists(&self, workspace: WorkspaceId) -> Result<bool, CommandError>;
    /// A membership changed: this process's authorisation sees it before
    /// the next request.
    async fn changed(&self, workspace: WorkspaceId, version: u64);
}

/// The security log; a failure to write is logged, never the caller's.
#[async_trait::async_trait]
pub trait SecurityLog: Send + Sync {
    async fn record(&self, event: SecurityEvent);
}

/// The ports the session use cases run against.
#[derive(Clone, Copy)]
pub struct SessionPorts<'a> {
    pub credentials: &'a dyn Credentials,
    pub sessions: &'a dyn Sessions,
    pub workspaces: &'a dyn Workspaces,
    pub security_log: &'a dyn SecurityLog,
}

impl std::fmt::Debug for SessionPorts<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionPorts")
    }
}

/// What the addressee of an invitation does with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvitationAnswer {
    Accept,
    Decline,
}

/// A signed-in user: who, the workspace a request names by default, and
/// the session (the API issues its access token).
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub user: UserId,
    pub default_workspace: WorkspaceId,
    pub session: NewSession,
}

impl<U, W> AccountCommands<U, W>
where
    U: EventStore<UserAggregate>,
    U::AC: LoadedAggregate<UserAggregate> + Send,
    W: EventStore<WorkspaceAggregate>,
    W::AC: LoadedAggregate<WorkspaceAggregate> + Send,
{
    /// Creates an account and its personal workspace: the one way accounts
    /// come to be. The hash is stored first: if the sign-up then fails, an
    /// orphan hash no e-mail points to is harmless; the reverse would be an
    /// account that can never sign in.
    pub async fn create_account(
        &self,
        credentials: &dyn Credentials,
        email: &Email,
        name: String,
        password: &str,
        metadata: &CommandMetadata,
    ) -> Result<(UserId, WorkspaceId), CommandError> {
        let user = UserId(Uuid::now_v7());
        let workspace = WorkspaceId(Uuid::now_v7());
        let hash = credentials.hash(password).await?;
        credentials.store_hash(user, &hash).await?;
        self.register(user, email.to_string(), name, workspace, metadata)
            .await?;
        self.create_workspace(
            workspace,
            "Personal".to_owned(),
            user,
            email.clone(),
            true,
            metadata,
        )
        .await?;
        Ok((user, workspace))
    }

    /// Creates the account and starts a session. Invitations waiting for
    /// the address are not taken up: their addressee accepts each.
    #[tracing::instrument(skip_all)]
    pub async fn sign_up(
        &self,
        ports: SessionPorts<'_>,
        email: &Email,
        name: String,
        password: &str,
        client: &ClientInfo,
        metadata: &CommandMetadata,
    ) -> Result<SignedIn, CommandError> {
        let (user, workspace) = self
            .create_account(ports.credentials, email, name, password, metadata)
            .await?;
        let session = ports.sessions.start(user, client).await?;
        Ok(SignedIn {
            user,
            default_workspace: workspace,
            session,
        })
    }

    /// Signs in with e-mail and password. A wrong e-mail and a wrong
    /// password get the same error in the same time; both are logged.
    #[tracing::instrument(skip_all)]
    pub async fn sign_in(
        &self,
        ports: SessionPorts<'_>,
        email: &Email,
        password: &str,
        client: &ClientInfo,
        metadata: &CommandMetadata,
    ) -> Result<SignedIn, CommandError> {
        let found = ports.credentials.credentials_of(email).await?;
        let user = found.as_ref().map(|(user, _)| *user);
        let stored = found.and_then(|(_, hash)| hash);
        let verified = ports.credentials.verify(password, stored).await?;
        let registration = match user {
            Some(user) if verified => ports.credentials.registration(user).await?,
            _ => None,
        };
        let Some(registration) = registration else {
            ports
                .security_log
                .record(SecurityEvent {
                    kind: security_kind::LOGIN_FAILED,
                    user_id: user,
                    ip: client.ip.clone(),
                    detail: json!({"reason": "invalid email or password"}),
                    ..Default::default()
                })
                .await;
            return Err(CommandError::Unauthenticated("invalid email or password"));
        };
        let user = registration.user_id;
        let workspace = registration.personal_workspace_id;
        let Some(email) = registration.email.known().cloned() else {
            return Err(CommandError::Unauthenticated(
                "this account no longer exists",
            ));
        };
        // Completes a sign-up that stopped between the account and its workspace.
        if !ports.workspaces.exists(workspace).await? {
            self.create_workspace(
                workspace,
                "Personal".to_owned(),
                user,
                email,
                true,
                metadata,
            )
            .await?;
        }
        let session = ports.sessions.start(user, client).await?;
        ports
            .security_log
            .record(SecurityEvent {
                kind: security_kind::LOGIN_SUCCEEDED,
                user_id: Some(user),
                ip: client.ip.clone(),
                ..Default::default()
            })
            .await;
        Ok(SignedIn {
            user,
            default_workspace: workspace,
            session,
        })
    }

    /// Exchanges a refresh token for the session's next one. A token used
    /// twice ends the whole session (someone else holds a copy).
    #[tracing::instrument(skip_all)]
    pub async fn refresh(
        &self,
        ports: SessionPorts<'_>,
        refresh_token: &str,
        client: &ClientInfo,
    ) -> Result<SignedIn, CommandError> {
        match ports.sessions.rotate(refresh_token.trim()).await? {
            Refresh::Rotated { user, session } => {
                let registration = ports.credentials.registration(user).await?.ok_or(
                    CommandError::Unauthenticated("the account no longer exists"),
                )?;
                Ok(SignedIn {
                    user,
                    default_workspace: registration.personal_workspace_id,
                    session,
                })
            }
            Refresh::ReuseDetected { user, session_id } => {
                ports.sessions.ended(&[session_id]).await;
                ports
                    .security_log
                    .record(SecurityEvent {
                        kind: security_kind::REFRESH_TOKEN_REUSED,
                        user_id: Some(user),
                        ip: client.ip.clone(),
                        detail: json!({"session_id": session_id}),
                        ..Default::default()
                    })
                    .await;
                Err(CommandError::Unauthenticated(
                    "this refresh token was already used; the session has been ended",
                ))
            }
            Refresh::Invalid => Err(CommandError::Unauthenticated(
                "unknown, expired or revoked refresh token",
            )),
        }
    }

    /// The signed-in `user` accepts (joins with the invitation's role) or
    /// declines an invitation addressed to their e-mail. Anyone else's
    /// invitation, or one that no longer waits, is not found.
    #[tracing::instrument(skip_all, fields(user_id = %user, invitation_id = %invitation_id))]
    pub async fn answer_invitation(
        &self,
        ports: SessionPorts<'_>,
        user: UserId,
        invitation_id: Uuid,
        answer: InvitationAnswer,
        metadata: &CommandMetadata,
    ) -> Result<(WorkspaceId, crate::Committed), CommandError> {
        let registration =
            ports
                .credentials
                .registration(user)
                .await?
                .ok_or(CommandError::Unauthenticated(
                    "this account no longer exists",
                ))?;
        let email = registration
            .email
            .into_known()
            .ok_or(CommandError::Unauthenticated(
                "this account no longer exists",
            ))?;
        let workspace = ports
            .workspaces
            .invitation_workspace(invitation_id, &email)
            .await?
            .ok_or(WorkspaceError::InvitationNotFound)?;
        let command = match answer {
            InvitationAnswer::Accept => WorkspaceCommand::AcceptInvitation {
                invitation_id,
                user_id: user,
                email,
                email_verified: self.email_verified(user).await?,
            },
            InvitationAnswer::Decline => WorkspaceCommand::DeclineInvitation {
                invitation_id,
                user_id: user,
                email,
            },
        };
        let committed = self
            .run_for_user(workspace, user, command, metadata)
            .await?;
        ports.workspaces.changed(workspace, committed.version).await;
        Ok((workspace, committed))
    }
}
