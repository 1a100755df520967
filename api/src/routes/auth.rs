//! `/v1/auth`: sign up, sign in, refresh, sign out, and "sign out everywhere".

use crate::auth::SignedIn;
use crate::error::{ApiError, Problem};
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
use vcintel_commands::sessions::SignedIn as SignedInUser;
use vcintel_commands::CommandError;
use vcintel_domain::user::{check_password_policy, Email, MAX_USER_NAME_CHARS};
use vcintel_domain::validation::required_text;
use vcintel_domain::ValidationErrors;
use vcintel_infra::accounts::{self, security_kind, ClientInfo, SecurityEvent};

pub const TAG: &str = "auth";

/// A new account.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "ann@fund.example", "password": "<a long passphrase of your own>", "name": "Ann Analyst"}))]
pub struct RegisterRequest {
    /// The sign-in email; unique across the system, compared case-insensitively.
    pub email: String,
    /// 12 to 256 characters, at least 4 different characters, not the email
    /// address, and not guessable: common passwords, words with digits and
    /// keyboard patterns are refused (zxcvbn score of at least 3 of 4).
    pub password: String,
    /// Display name, 1–100 characters.
    pub name: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "ann@fund.example", "password": "<a long passphrase of your own>"}))]
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
    #[schema(example = "eyJhbGciOiJIUzI1NiJ9.…")]
    pub access_token: String,
    /// Always `Bearer`.
    #[schema(example = "Bearer")]
    pub token_type: String,
    /// Seconds until the access token expires.
    #[schema(example = 900)]
    pub expires_in: u64,
    /// Exchange at `/v1/auth/refresh` for new tokens; single use.
    #[schema(example = "vcr_Jx7cQ2mP9vRkT4wZ8nL3bY6hF1sD5gA0Qm9yG3kTz1x")]
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
    #[schema(example = 2)]
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

/// The bearer tokens of a signed-in session.
fn tokens_for(state: &AppState, signed_in: SignedInUser) -> Result<SessionTokens, ApiError> {
    let SignedInUser {
        user,
        default_workspace,
        session,
    } = signed_in;
    let access_token = state
        .gate
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
    // Per client only: a sign-up must not spend the budget of an account
    // that may hold the address.
    let decision = charge_auth_attempt(&state.gate, &ip.0, None, REGISTER_PATH).await?;
    errors.into_result().map_err(|e| ApiError::invalid(&e))?;
    let Some(email) = email else {
        return Err(ApiError::invalid_field("email", "is required"));
    };
    let signed_in = state
        .accounts
        .sign_up(
            state.session_ports(),
            &email,
            name,
            &body.password,
            &client_info(&ip, &headers),
            &command_metadata(&headers),
        )
        .await?;
    let tokens = tokens_for(&state, signed_in)?;
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
    let email =
        Email::parse(&body.email).map_err(|message| ApiError::invalid_field("email", message))?;
    let decision = charge_auth_attempt(&state.gate, &ip.0, Some(&email), LOGIN_PATH).await?;
    let signed_in = state
        .accounts
        .sign_in(
            state.session_ports(),
            &email,
            &body.password,
            &client_info(&ip, &headers),
            &command_metadata(&headers),
        )
        .await;
    let response = match signed_in {
        Ok(signed_in) => axum::Json(tokens_for(&state, signed_in)?).into_response(),
        // Refused sign-ins still show what is left of the budget.
        Err(CommandError::Unauthenticated(why)) => ApiError::Unauthenticated(why).into_response(),
        Err(error) => return Err(error.into()),
    };
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
    let client = ClientInfo {
        ip: Some(ip.0),
        user_agent: None,
    };
    let signed_in = state
        .accounts
        .refresh(state.session_ports(), &body.refresh_token, &client)
        .await?;
    Ok(axum::Json(tokens_for(&state, signed_in)?).into_response())
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
            state
                .gate
                .identity
                .sessions_ended(&state.pool, &[session])
                .await;
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
    state
        .gate
        .identity
        .sessions_ended(&state.pool, &ended)
        .await;
    let revoked = ended.len() as u64;
    log_security_event(
        &state.gate,
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

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"token": "vcv_…"}))]
pub struct VerifyEmailRequest {
    /// The token from the verification mail.
    #[schema(min_length = 1, max_length = 200)]
    pub token: String,
}

/// A verified address.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EmailVerification {
    pub user_id: Uuid,
    #[schema(example = true)]
    pub email_verified: bool,
}

/// Verify your e-mail address with the token a verification mail carried.
/// Each token works once and expires (24 hours by default).
#[utoipa::path(
    post, path = "/v1/auth/verify-email", tag = TAG, operation_id = "verifyEmail",
    request_body = VerifyEmailRequest,
    responses(
        (status = 200, description = "Verified", body = EmailVerification),
        (status = 400, description = "Malformed JSON, or a token unknown, used or expired (`token`)", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The body has the wrong shape", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn verify_email(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(body): Json<VerifyEmailRequest>,
) -> Result<Response, ApiError> {
    // 256-bit tokens cannot be guessed; the anonymous budget per IP
    // applies like on any route without credentials.
    let (user, committed) = state
        .accounts
        .verify_email(
            &vcintel_infra::accounts::PgVerificationTokens::new(state.pool.clone()),
            body.token.trim(),
            &command_metadata(&headers),
        )
        .await?;
    let response = crate::consistency::answering(
        axum::Json(EmailVerification {
            user_id: user.0,
            email_verified: true,
        })
        .into_response(),
        &committed,
    );
    Ok(response)
}

/// Send another verification mail to your address (at most 5 an hour).
#[utoipa::path(
    post, path = "/v1/me/verification-mail", tag = "workspaces", operation_id = "requestVerificationMail",
    responses(
        (status = 202, description = "A mail is on its way", body = crate::http::respond::CommandAccepted),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "API keys have no account", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Your address is already verified", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many mails asked for this hour", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn request_verification_mail(
    State(state): State<AppState>,
    caller: SignedIn,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let decision = crate::limits::charge(
        &state.gate,
        vcintel_commands::limits::LimitedAction::VerificationMail,
        &caller.user_id.to_string(),
    )
    .await?;
    let committed = state
        .accounts
        .request_verification(
            caller.user_id,
            caller.default_workspace,
            &command_metadata(&headers),
        )
        .await?;
    let mut response = crate::http::respond::accepted(caller.user_id.0, &committed);
    // The mail goes out later, from the event.
    *response.status_mut() = StatusCode::ACCEPTED;
    Ok(match decision {
        Some(decision) => with_rate_limit_headers(response, &decision),
        None => response,
    })
}
