//! HTTP handlers, one module per resource.

pub mod auth;
pub mod companies;
pub mod health;
pub mod lists;
pub mod notes;
pub mod saved_searches;
pub mod workspaces;

use axum::http::HeaderMap;
use vcintel_commands::CommandMetadata;

/// Request facts recorded with every event a command appends.
pub fn command_metadata(headers: &HeaderMap) -> CommandMetadata {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    CommandMetadata {
        request_id: header("x-request-id"),
        traceparent: header("traceparent"),
        api_key_id: None,
    }
}

/// Waits until `projection` reflects at least `min_version` of
/// `aggregate_id`, for a bounded time (read-your-writes).
pub async fn wait_for_version(
    state: &crate::state::AppState,
    projection: &str,
    aggregate_id: &str,
    min_version: u64,
) -> Result<(), crate::error::ApiError> {
    let deadline = std::time::Instant::now() + state.consistency_wait;
    let mut pause = std::time::Duration::from_millis(2);
    loop {
        let applied =
            vcintel_projections::versions::applied_version(&state.pool, projection, aggregate_id)
                .await?;
        if applied as u64 >= min_version {
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            return Err(crate::error::ApiError::NotCaughtUp(min_version));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(std::time::Duration::from_millis(25));
    }
}
