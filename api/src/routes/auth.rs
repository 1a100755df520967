//! `/v1/auth`: sign up, sign in, refresh, sign out, and "sign out everywhere".

use crate::auth::SignedIn;
use crate::error::{ApiError, InvalidField, Problem};
use crate::http::extract::Json;
use crate::http::headers::with_rate_limit_headers;
use crate::http::metadata::command_metadata;
use crate::limits::{charge_auth_attempt, log_security_event, ClientIp, LOGIN_PATH, REGISTER_PATH};
use crate::state::AppState;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;
use vcintel_commands::CommandError;
use vcintel_domain::user::{check_password_policy, Email, MAX_USER_NAME_CHARS};
use vcintel_domain::validation::required_text;
use vcintel_domain::workspace::WorkspaceError;
use vcintel_domain::{UserId, ValidationErrors, WorkspaceId};
use vcintel_infra::accounts::{self, security_kind, ClientInfo, Refresh, SecurityEvent};
use vcintel_projections::identity;

pub const TAG: &str = "auth";

/// A new account.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "ann@fund.example", "password": "correct horse battery staple", "name": "Ann Analyst"}))]
pub struct RegisterRequest {
    /// The sign-in email; unique across the system, compared case-insensitively.
    pub email: String,
    /// 12 to 256 bytes, at least 4 different characters, not a well-known
    /// password and not the email address.
    pub password: String,
    /// Display name, 1–100 characters.
    pub name: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "ann@fund.example", "password": "correct horse battery staple"}))]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    /// The refresh token from the last sign-in or refresh. Each is good for
    /// one refresh; presenting a used one ends the session.
    pub refresh_token: String,
}

/// A signed-in session's tokens.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SessionTokens {
    /// Send as `Authorization: Bearer <access_token>`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Exchange at `/v1/auth/refresh` for new tokens; single use.
    pub refresh_token: String,
    /// When the session ends at the latest.
    pub refresh_token_expires_at: DateTime<Utc>,
    pub user_id: Uuid,
    /// The workspace requests act in when they send no `X-Workspace-Id`
    /// (the personal workspace created at sign-up).
    pub default_workspace_id: Uuid,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SessionsRevoked {
    /// How many live sessions were ended.
    pub revoked: u64,
}

fn client_info(ip: &ClientIp, headers: &HeaderMap) -> ClientInfo {
    ClientInfo {
        ip: Some(ip.0.clone()),
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.chars().take(256).collect()),
    }
}

async fn start_session(
    state: &AppState,
    user: UserId,
    default_workspace: WorkspaceId,
    client: &ClientInfo,
) -> Result<SessionTokens, ApiError> {
    let session = accounts::create_session(&state.pool, user, state.session_ttl, client).await?;
    tokens_for(state, user, default_workspace, session)
}

fn tokens_for(
    state: &AppState,
    user: UserId,
    default_workspace: WorkspaceId,
    session: accounts::NewSession,
) -> Result<SessionTokens, ApiError> {
    let access_token = state
        .tokens
        .issue_access(
            user,
            session.session_id,
            default_workspace,
            state.access_token_ttl,
        )
        .map_err(|e| ApiError::Internal(e.into()))?;
    Ok(SessionTokens {
        access_token,
        token_type: "Bearer".to_owned(),
        expires_in: state.access_token_ttl.as_secs(),
        refresh_token: session.refresh_token,
        refresh_token_expires_at: session.expires_at,
        user_id: user.0,
        default_workspace_id: default_workspace.0,
    })
}

/// Joins every workspace that invited `email`. Runs at sign-up and at each
/// sign-in, so an invitation the read model had not yet shown at sign-up is
/// taken up at the next sign-in.
async fn accept_invitations(
    state: &AppState,
    user: UserId,
    email: &Email,
    metadata: &vcintel_commands::CommandMetadata,
) -> Result<(), ApiError> {
    for workspace in identity::invitations_for(&state.pool, email).await? {
        match state
            .workspaces
            .accept_invitation(workspace, user, email.clone(), metadata)
            .await
        {
            Ok(joined) => state.directory.changed(workspace, joined.version).await,
            // Cancelled or taken up in the meantime.
            Err(CommandError::Workspace(WorkspaceError::InvitationNotFound)) => {}
            Err(error) => return Err(error.into()),
        }
    }
    Ok(())
}

/// Creates an account (email, name, password) and its personal workspace;
/// the one way accounts come to be, for the API and the demo seeder.
pub async fn sign_up(
    pool: &sqlx::PgPool,
    passwords: &vcintel_infra::accounts::Passwords,
    commands: &vcintel_infra::event_store::PgAccountCommands,
    email: &Email,
    name: String,
    password: &str,
    metadata: &vcintel_commands::CommandMetadata,
) -> Result<(UserId, WorkspaceId), ApiError> {
    let user = UserId(Uuid::now_v7());
    let workspace = WorkspaceId(Uuid::now_v7());
    // The hash first: if the sign-up then fails, an orphan hash that no
    // email points to is harmless; the reverse would be an account that can
    // never sign in.
    let hash = passwords.hash(password).await?;
    accounts::store_password_hash(pool, user, &hash).await?;
    commands
        .register(user, email.to_string(), name, workspace, metadata)
        .await?;
    commands
        .create_workspace(
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

fn invalid_credentials() -> ApiError {
    ApiError::Unauthenticated("invalid email or password")
}

/// Create an account and its personal workspace (you are its owner), and sign in.
#[utoipa::path(
    post, path = "/v1/auth/register", tag = TAG, operation_id = "register",
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "Registered and signed in", body = SessionTokens),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The email is already registered", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid email, password or name", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many attempts from this IP or for this email", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The rate limiter is unreachable (sign-up fails closed)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn register(
    State(state): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    Json(body): Json<RegisterRequest>,
) -> Result<Response, ApiError> {
    let mut errors = ValidationErrors::default();
    let email = match Email::parse(&body.email) {
        Ok(email) => Some(email),
        Err(message) => {
            errors.add("email", message);
            None
        }
    };
    if let Err(message) = check_password_policy(&body.password, email.as_ref()) {
        errors.add("password", message);
    }
    let name = required_text(&mut errors, "name", &body.name, MAX_USER_NAME_CHARS);
    let decision = charge_auth_attempt(&state, &ip.0, email.as_ref(), REGISTER_PATH).await?;
    errors.into_result().map_err(|e| ApiError::invalid(&e))?;
    let Some(email) = email else {
        return Err(ApiError::Invalid(vec![InvalidField {
            field: "email".to_owned(),
            message: "is required".to_owned(),
        }]));
    };
    let metadata = command_metadata(&headers);
    let (user, workspace) = sign_up(
        &state.pool,
        &state.passwords,
        &state.accounts,
        &email,
        name,
        &body.password,
        &metadata,
    )
    .await?;
    accept_invitations(&state, user, &email, &metadata).await?;
    let tokens = start_session(&state, user, workspace, &client_info(&ip, &headers)).await?;
    let mut response = (StatusCode::CREATED, axum::Json(tokens)).into_response();
    response
        .headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static("/v1/me"));
    Ok(match decision {
        Some(d) => with_rate_limit_headers(response, &d),
        None => response,
    })
}

/// Sign in with email and password. A wrong email and a wrong password get
/// the same answer in the same time.
#[utoipa::path(
    post, path = "/v1/auth/login", tag = TAG, operation_id = "login",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in", body = SessionTokens),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Invalid email or password", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The email is not an email address", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many attempts from this IP or for this email (locked out for a while)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The rate limiter is unreachable (sign-in fails closed)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn login(
    State(state): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    Json(body): Json<LoginRequest>,
) -> Result<Response, ApiError> {
    let email = Email::parse(&body.email).map_err(|message| {
        ApiError::Invalid(vec![InvalidField {
            field: "email".to_owned(),
            message,
        }])
    })?;
    let decision = charge_auth_attempt(&state, &ip.0, Some(&email), LOGIN_PATH).await?;
    let found = accounts::login_credentials(&state.pool, &email).await?;
    let user = found.as_ref().map(|(user, _)| *user);
    let stored = found.and_then(|(_, hash)| hash);
    let verified = state.passwords.verify(&body.password, stored).await?;
    let registration = match user {
        Some(user) if verified => accounts::registered_user(&state.pool, user).await?,
        _ => None,
    };
    let Some(registration) = registration else {
        log_security_event(
            &state,
            SecurityEvent {
                kind: security_kind::LOGIN_FAILED,
                user_id: user,
                ip: Some(ip.0.clone()),
                detail: json!({"reason": "invalid email or password"}),
                ..Default::default()
            },
        )
        .await;
        let response = invalid_credentials().into_response();
        return Ok(match decision {
            Some(d) => with_rate_limit_headers(response, &d),
            None => response,
        });
    };
    let user = registration.user_id;
    let workspace = registration.personal_workspace_id;
    // Completes a sign-up that stopped between the account and its workspace.
    if state.directory.current(workspace).await?.is_none() {
        state
            .accounts
            .create_workspace(
                workspace,
                "Personal".to_owned(),
                user,
                registration.email.clone(),
                true,
                &command_metadata(&headers),
            )
            .await?;
    }
    accept_invitations(
        &state,
        user,
        &registration.email,
        &command_metadata(&headers),
    )
    .await?;
    let tokens = start_session(&state, user, workspace, &client_info(&ip, &headers)).await?;
    log_security_event(
        &state,
        SecurityEvent {
            kind: security_kind::LOGIN_SUCCEEDED,
            user_id: Some(user),
            ip: Some(ip.0),
            ..Default::default()
        },
    )
    .await;
    let response = axum::Json(tokens).into_response();
    Ok(match decision {
        Some(d) => with_rate_limit_headers(response, &d),
        None => response,
    })
}

/// Exchange a refresh token for new tokens. Each refresh token works once:
/// presenting one that was already used ends the whole session (someone
/// else holds a copy).
#[utoipa::path(
    post, path = "/v1/auth/refresh", tag = TAG, operation_id = "refreshSession",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "New tokens; the presented refresh token is spent", body = SessionTokens),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Unknown, expired, revoked or reused refresh token", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests from this IP", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn refresh(
    State(state): State<AppState>,
    ip: ClientIp,
    Json(body): Json<RefreshRequest>,
) -> Result<Response, ApiError> {
    match accounts::rotate_refresh_token(&state.pool, body.refresh_token.trim()).await? {
        Refresh::Rotated { user, session } => {
            let registration = accounts::registered_user(&state.pool, user)
                .await?
                .ok_or(ApiError::Unauthenticated("the account no longer exists"))?;
            let tokens = tokens_for(&state, user, registration.personal_workspace_id, session)?;
            Ok(axum::Json(tokens).into_response())
        }
        Refresh::ReuseDetected { user, session_id } => {
            state
                .identity
                .sessions_ended(&state.pool, &[session_id])
                .await;
            log_security_event(
                &state,
                SecurityEvent {
                    kind: security_kind::REFRESH_TOKEN_REUSED,
                    user_id: Some(user),
                    ip: Some(ip.0),
                    detail: json!({"session_id": session_id}),
                    ..Default::default()
                },
            )
            .await;
            Err(ApiError::Unauthenticated(
                "this refresh token was already used; the session has been ended",
            ))
        }
        Refresh::Invalid => Err(ApiError::Unauthenticated(
            "unknown, expired or revoked refresh token",
        )),
    }
}

/// End the current session: its access and refresh tokens stop working.
#[utoipa::path(
    post, path = "/v1/auth/logout", tag = TAG, operation_id = "logout",
    responses(
        (status = 204, description = "Signed out"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "API keys have no session", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn logout(
    State(state): State<AppState>,
    caller: SignedIn,
) -> Result<StatusCode, ApiError> {
    if let Some(session) = caller.session_id {
        if accounts::revoke_session(&state.pool, session, "logout").await? {
            state.identity.sessions_ended(&state.pool, &[session]).await;
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

/// End every session of the caller, on every device (the incident step
/// "revoke all sessions"). Access tokens stop working at once.
#[utoipa::path(
    post, path = "/v1/auth/revoke-all", tag = TAG, operation_id = "revokeAllSessions",
    responses(
        (status = 200, description = "Sessions ended", body = SessionsRevoked),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "API keys have no sessions", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn revoke_all(
    State(state): State<AppState>,
    ip: ClientIp,
    caller: SignedIn,
) -> Result<axum::Json<SessionsRevoked>, ApiError> {
    let ended = accounts::revoke_all_sessions(&state.pool, caller.user_id, "revoke_all").await?;
    state.identity.sessions_ended(&state.pool, &ended).await;
    let revoked = ended.len() as u64;
    log_security_event(
        &state,
        SecurityEvent {
            kind: security_kind::SESSIONS_REVOKED,
            user_id: Some(caller.user_id),
            ip: Some(ip.0),
            detail: json!({"sessions": revoked}),
            ..Default::default()
        },
    )
    .await;
    Ok(axum::Json(SessionsRevoked { revoked }))
}
