//! HTTP handlers, one module per resource.

pub mod admin;
pub mod audit;
pub mod auth;
pub mod companies;
pub mod enrichments;
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
        // Our request span's trace when spans are exported (it continues
        // the caller's), else the caller's header as it came.
        traceparent: crate::telemetry::current_traceparent().or_else(|| header("traceparent")),
        // A client may name the larger piece of work a request belongs to.
        correlation_id: header("x-correlation-id").filter(|c| c.len() <= 200),
        // Set by the idempotency layer only (it removes any a client sent).
        idempotency: header(crate::idempotency::DIGEST_HEADER),
        ..CommandMetadata::default()
    }
}
