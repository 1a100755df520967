//! What every handler can reach, built once in the bootstrap.

use crate::auth::gate::Gate;
use crate::consistency::ReadYourWrites;
use crate::idempotency::Idempotency;
use async_nats::jetstream;
use axum::extract::FromRef;
use sqlx::PgPool;
use std::sync::Arc;
use std::time::Duration;
use vcintel_infra::enrichment::breaker::CircuitBreaker;
use vcintel_infra::event_store::{
    PgAccountCommands, PgBudgetCommands, PgCompanyCommands, PgEnrichmentCommands, PgListCommands,
    PgNoteCommands, PgSavedSearchCommands, PgWorkspaceCommands,
};
use vcintel_infra::wire::Topology;

/// What handlers and middleware share, behind one `Arc`: axum clones the
/// state for every middleware and extractor of every request, and a clone
/// of the fields themselves (a NATS client, pools, strings) cost about 5 %
/// of the API's CPU per request (measured with perf).
#[derive(Clone, Debug)]
pub struct AppState(Arc<Services>);

impl AppState {
    pub fn new(services: Services) -> Self {
        Self(Arc::new(services))
    }
}

impl FromRef<AppState> for Arc<ReadYourWrites> {
    fn from_ref(state: &AppState) -> Self {
        state.read_your_writes.clone()
    }
}

impl FromRef<AppState> for Arc<Gate> {
    fn from_ref(state: &AppState) -> Self {
        state.gate.clone()
    }
}

impl FromRef<AppState> for Arc<Idempotency> {
    fn from_ref(state: &AppState) -> Self {
        state.idempotency.clone()
    }
}

impl AppState {
    /// The ports of the sign-up, sign-in and refresh use cases.
    pub fn session_ports(&self) -> vcintel_commands::sessions::SessionPorts<'_> {
        vcintel_commands::sessions::SessionPorts {
            credentials: &self.credentials,
            sessions: &self.sessions,
            workspaces: &self.identity_workspaces,
            security_log: &self.security_log,
        }
    }
}

impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

/// Everything built once in the bootstrap.
#[derive(Debug)]
pub struct Services {
    /// Seals and opens personal values (docs/privacy.md).
    pub vault: vcintel_infra::vault::Vault,
    /// How long an erasure request waits before it is carried out.
    pub erasure_grace_hours: u32,
    pub pool: PgPool,
    pub companies: Arc<PgCompanyCommands>,
    pub accounts: Arc<PgAccountCommands>,
    pub workspaces: Arc<PgWorkspaceCommands>,
    pub notes: Arc<PgNoteCommands>,
    pub lists: Arc<PgListCommands>,
    pub saved_searches: Arc<PgSavedSearchCommands>,
    pub enrichments: Arc<PgEnrichmentCommands>,
    pub budgets: Arc<PgBudgetCommands>,
    /// The model breaker, when a model is configured (shared with this
    /// process's enrichment worker).
    pub model_breaker: Option<Arc<CircuitBreaker>>,
    /// Authentication and rate limiting: tokens, the identity cache, the
    /// workspace directory and the request budgets.
    pub gate: Arc<Gate>,
    /// What the session use cases run against.
    pub credentials: vcintel_infra::accounts::PgCredentials,
    pub sessions: vcintel_infra::accounts::PgSessions,
    pub security_log: vcintel_infra::accounts::PgSecurityLog,
    pub identity_workspaces: vcintel_projections::identity::IdentityWorkspaces,
    /// Where API key secrets are minted and kept (as hashes).
    pub api_key_secrets: vcintel_infra::accounts::PgAccounts,
    /// Seals and opens the page cursors listings hand out.
    pub cursors: crate::http::pagination::Cursors,
    /// Read-your-writes: the token key, the wait, and what it reads.
    pub read_your_writes: Arc<ReadYourWrites>,
    /// What the idempotency layer needs.
    pub idempotency: Arc<Idempotency>,
    pub nats: async_nats::Client,
    pub jetstream: jetstream::Context,
    pub topology: Topology,
    /// The stream's AsyncAPI document, built once for this deployment.
    pub asyncapi: bytes::Bytes,
    /// The quotas enrichment requests are admitted against (no monthly
    /// budget when no model is configured: the built-in enricher is free).
    pub admission_policy: vcintel_commands::admission::AdmissionPolicy,
    /// Where admission reads and locks.
    pub admission: vcintel_infra::enrichment::admission::PgAdmission,
    /// This month's spending per workspace (the usage read model).
    pub spending: Arc<vcintel_projections::usage::MonthlySpending>,
    /// A component with work waiting that has not moved for this long is
    /// stalled, and the process running it is not ready.
    pub stall_after: Duration,
    /// What this process runs (readiness judges those).
    pub components: Vec<crate::component::Component>,
    /// The progress this process's workers report.
    pub progress: vcintel_infra::health::Progress,
    pub access_token_ttl: Duration,
    /// SHA-256 of the operator token; `None` turns the admin API off.
    pub admin_token_digest: Option<Arc<[u8; 32]>>,
    /// How long a request may run: an idempotency claim older than this
    /// that never answered is taken over.
    pub request_timeout: Duration,
}
