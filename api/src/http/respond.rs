//! The shapes of answers: what a command answers (id, version, `ETag`,
//! `Location`, the consistency token) and a tagged representation.

use super::preconditions::conditional;
use crate::consistency::token::answering;
use crate::error::ApiError;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;
use vcintel_commands::Committed;

/// A command was applied.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": "0193a5a0-7c1e-7000-8000-00000000002a", "version": 3}))]
pub struct CommandAccepted {
    /// The id of what the command acted on: the resource (a company, a
    /// note, a list, …) or, for a member change, the member's user id.
    pub id: Uuid,
    /// Its version after the command. Pass it as `If-Match` to update
    /// safely, or as `min_version` to read your own write.
    pub version: u64,
}

/// 201 for a command that created `collection/<id>`: its id and version,
/// `ETag` and `Location`.
pub fn created(committed: &Committed, collection: &str) -> Result<Response, ApiError> {
    let id: Uuid = committed
        .aggregate_id
        .parse()
        .map_err(|e| ApiError::Internal(anyhow::Error::new(e)))?;
    let mut response = accepted(id, committed);
    *response.status_mut() = StatusCode::CREATED;
    if let Ok(location) = HeaderValue::from_str(&format!("{collection}/{id}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// A command's answer: the id it acted on (which a member change names by
/// the member, not the workspace), the version, `ETag`, and the write the
/// consistency token will name.
pub fn accepted(id: Uuid, committed: &Committed) -> Response {
    let version = committed.version;
    let response = (
        [(header::ETAG, etag(version))],
        axum::Json(CommandAccepted { id, version }),
    )
        .into_response();
    answering(response, committed)
}

/// A single resource at `version`: `ETag`, or 304 when `If-None-Match` names it.
pub fn representation<T: Serialize>(headers: &HeaderMap, version: u64, body: T) -> Response {
    conditional(headers, etag(version), axum::Json(body))
}

pub fn etag(version: u64) -> HeaderValue {
    tag(&version.to_string())
}

/// A strong entity tag; `opaque` is digits, hex and `-` only.
pub fn tag(opaque: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{opaque}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
}
