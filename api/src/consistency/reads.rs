//! Where a request reads the read models from: a fit replica, or the
//! primary. Chosen once per request by the read-your-writes middleware,
//! so a consistency token's wait and the read itself use the same one.

use crate::state::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use std::convert::Infallible;
use vcintel_infra::replicas::ReadPool;

/// The read models' pool for this request.
#[derive(Debug, Clone)]
pub struct Reads(pub ReadPool);

impl Reads {
    pub fn pool(&self) -> &sqlx::PgPool {
        &self.0.pool
    }
}

impl FromRequestParts<AppState> for Reads {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Infallible> {
        Ok(parts
            .extensions
            .get::<Reads>()
            .cloned()
            .unwrap_or_else(|| Reads(state.read_your_writes.reads.for_read())))
    }
}
