//! Bearer-token authentication: HS256 JWTs carrying the caller's user id,
//! workspace id and role.
//!
//! This is the seam real sign-up and login will issue tokens through; for now
//! `vcintel token issue` mints them for development and tests.

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use uuid::Uuid;
use vcintel_domain::{Actor, Role, UserId, WorkspaceId};

pub const ISSUER: &str = "vcintel";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: Uuid,
    /// The workspace the token acts in.
    pub ws: Uuid,
    pub role: Role,
    pub iss: String,
    pub iat: u64,
    pub exp: u64,
}

/// Signs and verifies tokens with one HS256 key.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKeys(<redacted>)")
    }
}

impl TokenKeys {
    pub fn new(secret: &[u8]) -> Self {
        // Only HS256 is accepted: a token naming any other algorithm,
        // including `none`, fails validation.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "sub", "iss"]);
        validation.leeway = 5;
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
        }
    }

    pub fn issue(
        &self,
        actor: &Actor,
        ttl: Duration,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let claims = Claims {
            sub: actor.user_id.0,
            ws: actor.workspace_id.0,
            role: actor.role,
            iss: ISSUER.to_owned(),
            iat: now,
            exp: now + ttl.as_secs(),
        };
        encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
    }

    pub fn verify(&self, token: &str) -> Option<Actor> {
        let data = decode::<Claims>(token, &self.decoding, &self.validation).ok()?;
        Some(Actor {
            workspace_id: WorkspaceId(data.claims.ws),
            user_id: UserId(data.claims.sub),
            role: data.claims.role,
        })
    }
}

/// The authenticated caller of a `/v1` route.
#[derive(Debug, Clone, Copy)]
pub struct Caller(pub Actor);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .ok_or(ApiError::Unauthenticated("missing Authorization header"))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(ApiError::Unauthenticated(
                "expected `Authorization: Bearer <token>`",
            ))?;
        let actor = state
            .tokens
            .verify(token.trim())
            .ok_or(ApiError::Unauthenticated("invalid or expired token"))?;
        let span = tracing::Span::current();
        span.record("workspace_id", tracing::field::display(actor.workspace_id));
        span.record("user_id", tracing::field::display(actor.user_id));
        Ok(Caller(actor))
    }
}
