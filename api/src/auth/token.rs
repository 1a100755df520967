//! Bearer access tokens: HS256 JWTs naming a login session (or, for
//! development, a workspace and role directly).

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
    /// The login session; revoking it invalidates the token at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<Uuid>,
    /// The workspace used when a request names none (the personal one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dws: Option<Uuid>,
    /// Development tokens only: the workspace and role, taken on trust.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ws: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    pub iss: String,
    pub iat: u64,
    /// Not valid before (honoured when present; issued equal to `iat`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
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

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

impl TokenKeys {
    pub fn new(secret: &[u8]) -> Self {
        // Only HS256 is accepted: a token naming any other algorithm,
        // including `none`, fails validation.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "sub", "iss"]);
        validation.validate_nbf = true;
        validation.leeway = 5;
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
        }
    }

    fn sign(&self, claims: &Claims) -> Result<String, jsonwebtoken::errors::Error> {
        encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
    }

    /// An access token for a login session.
    pub fn issue_access(
        &self,
        user: UserId,
        session: Uuid,
        default_workspace: WorkspaceId,
        ttl: Duration,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let now = now_secs();
        self.sign(&Claims {
            sub: user.0,
            sid: Some(session),
            dws: Some(default_workspace.0),
            ws: None,
            role: None,
            iss: ISSUER.to_owned(),
            iat: now,
            nbf: Some(now),
            exp: now + ttl.as_secs(),
        })
    }

    /// A development token (`vcintel token issue`): only accepted by a
    /// server started with `VCINTEL_DEV_TOKENS=true`.
    pub fn issue(
        &self,
        actor: &Actor,
        ttl: Duration,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let now = now_secs();
        self.sign(&Claims {
            sub: actor.user_id.0,
            sid: None,
            dws: None,
            ws: Some(actor.workspace_id.0),
            role: Some(actor.role),
            iss: ISSUER.to_owned(),
            iat: now,
            nbf: Some(now),
            exp: now + ttl.as_secs(),
        })
    }

    pub fn verify(&self, token: &str) -> Option<Claims> {
        decode::<Claims>(token, &self.decoding, &self.validation)
            .ok()
            .map(|data| data.claims)
    }
}
