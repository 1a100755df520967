//! The request facts recorded with every event a command appends.

use super::headers::{IDEMPOTENCY_DIGEST, REQUEST_ID};
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
        request_id: header(REQUEST_ID),
        // Our request span's trace when spans are exported (it continues
        // the caller's), else the caller's header as it came.
        traceparent: vcintel_infra::trace_context::current_traceparent()
            .or_else(|| header("traceparent")),
        // A client may name the larger piece of work a request belongs to.
        correlation_id: header("x-correlation-id").filter(|c| c.len() <= 200),
        // Set by the idempotency layer only (it removes any a client sent).
        idempotency: header(IDEMPOTENCY_DIGEST),
        ..CommandMetadata::default()
    }
}
