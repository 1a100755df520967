//! What every handler can reach, built once in the bootstrap.

use crate::auth::TokenKeys;
use async_nats::jetstream;
use sqlx::PgPool;
use std::sync::Arc;
use std::time::Duration;
use vcintel_infra::event_store::PgCompanyCommands;
use vcintel_infra::wire::Topology;

#[derive(Clone, Debug)]
pub struct AppState {
    pub pool: PgPool,
    pub companies: Arc<PgCompanyCommands>,
    pub tokens: Arc<TokenKeys>,
    pub nats: async_nats::Client,
    pub jetstream: jetstream::Context,
    pub topology: Topology,
    pub consistency_wait: Duration,
    pub ready_max_lag: i64,
}
