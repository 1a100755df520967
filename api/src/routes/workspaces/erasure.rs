//! A person's erasure (`/v1/me/erasure`, docs/privacy.md): asked for with
//! the password again, carried out after a grace period unless cancelled.

use crate::auth::SignedIn;
use crate::error::{ApiError, Problem};
use crate::http::extract::Json;
use crate::http::metadata::command_metadata;
use crate::limits::{charge_auth_attempt, ClientIp, LOGIN_PATH};
use crate::routes::workspaces::TAG;
use crate::state::AppState;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use vcintel_commands::sessions::Credentials as _;
use vcintel_domain::user::UserCommand;

/// Your password again: erasure cannot be asked for with a stolen token
/// alone.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ErasureRequest {
    #[schema(value_type = String, format = Password)]
    pub password: SecretString,
}

/// When you will be forgotten unless you cancel first.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErasureScheduled {
    pub erase_after: DateTime<Utc>,
}

/// Asks to be forgotten: after the grace period your data keys are
/// shredded, so every personal value of yours (your address, your name,
/// the text of your notes) reads `[erased]` everywhere, your sessions and
/// API keys end and your address can be registered again. Asking again
/// keeps the first request's time.
#[utoipa::path(
    post, path = "/v1/me/erasure", tag = TAG, operation_id = "requestErasure",
    request_body = ErasureRequest,
    responses(
        (status = 202, description = "Erasure scheduled", body = ErasureScheduled),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not your password, or an API key (keys act on workspaces, not accounts)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A required field is missing or of the wrong type", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many password attempts for this account or from this IP", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The rate limiter is unreachable (password checks fail closed)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn request_erasure(
    State(state): State<AppState>,
    caller: SignedIn,
    ip: ClientIp,
    headers: HeaderMap,
    Json(body): Json<ErasureRequest>,
) -> Result<Response, ApiError> {
    let registration = state
        .credentials
        .registration(caller.user_id)
        .await?
        .ok_or(ApiError::Unauthenticated("this account no longer exists"))?;
    let email = registration
        .email
        .known()
        .ok_or(ApiError::Unauthenticated("this account no longer exists"))?;
    charge_auth_attempt(&state.gate, &ip.0, Some(email), LOGIN_PATH).await?;
    let stored = state
        .credentials
        .credentials_of(email)
        .await?
        .and_then(|(user, hash)| (user == caller.user_id).then_some(hash))
        .flatten();
    if !state
        .credentials
        .verify(body.password.expose_secret(), stored)
        .await?
    {
        return Err(ApiError::Forbidden(
            "the password does not match this account".to_owned(),
        ));
    }
    let requested_at = Utc::now();
    let grace_hours = state.erasure_grace_hours;
    state
        .accounts
        .change_erasure(
            caller.user_id,
            UserCommand::RequestErasure { grace_hours },
            &command_metadata(&headers),
        )
        .await?;
    let erase_after = requested_at + chrono::Duration::hours(i64::from(state.erasure_grace_hours));
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(ErasureScheduled { erase_after }),
    )
        .into_response())
}

/// Withdraws your erasure request while its grace period runs.
#[utoipa::path(
    delete, path = "/v1/me/erasure", tag = TAG, operation_id = "cancelErasure",
    responses(
        (status = 204, description = "Erasure cancelled"),
        (status = 401, description = "Missing or invalid token, or the account was erased", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "API keys act on workspaces, not accounts", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No erasure is pending", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn cancel_erasure(
    State(state): State<AppState>,
    caller: SignedIn,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    state
        .accounts
        .change_erasure(
            caller.user_id,
            UserCommand::CancelErasure,
            &command_metadata(&headers),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
