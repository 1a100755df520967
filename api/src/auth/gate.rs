//! What authenticating and rate-limiting a request need of the shared
//! state: the middleware and the caller extractors take this part (axum
//! `FromRef`), not the whole `AppState`.

use super::token::TokenKeys;
use crate::limits::budgets::RateLimits;
use sqlx::PgPool;
use vcintel_infra::accounts::WorkspaceDirectory;
use vcintel_infra::identity_cache::IdentityCache;

#[derive(Debug)]
pub struct Gate {
    pub pool: PgPool,
    pub tokens: TokenKeys,
    /// Sessions, API keys and workspaces remembered between requests.
    pub identity: IdentityCache,
    pub directory: WorkspaceDirectory,
    pub limits: RateLimits,
    /// Development tokens (naming a workspace and role) are accepted.
    pub dev_tokens: bool,
    /// The client's IP is the last `X-Forwarded-For` entry.
    pub trust_forwarded_for: bool,
}
