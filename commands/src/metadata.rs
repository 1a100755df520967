//! Metadata stored with every event: who caused it, in which workspace, and
//! which request, so audit and tracing can follow it.

use std::collections::HashMap;
use vcintel_domain::{Actor, UserId, WorkspaceId};

pub const WORKSPACE_ID: &str = "workspace_id";
pub const ACTOR_ID: &str = "actor_id";
pub const API_KEY_ID: &str = "api_key_id";
pub const REQUEST_ID: &str = "request_id";
pub const TRACEPARENT: &str = "traceparent";
/// The request (or chain of work) an event belongs to: the request id of
/// the HTTP request that started it, carried through reactors.
pub const CORRELATION_ID: &str = "correlation_id";
/// The event that directly caused this one (for events a reactor appends).
pub const CAUSATION_ID: &str = "causation_id";
/// The digest of the `Idempotency-Key` the request ran under: the store
/// marks the key executed in the same transaction as these events.
pub const IDEMPOTENCY: &str = "idempotency";

#[derive(Debug, Clone, Default)]
pub struct CommandMetadata {
    pub request_id: Option<String>,
    pub traceparent: Option<String>,
    /// Set when the caller authenticated with an API key: the actor is its creator.
    pub api_key_id: Option<uuid::Uuid>,
    /// Defaults to the request id.
    pub correlation_id: Option<String>,
    pub causation_id: Option<uuid::Uuid>,
    /// The digest of the request's `Idempotency-Key`, if it carried one.
    pub idempotency: Option<String>,
}

impl CommandMetadata {
    pub fn for_actor(&self, actor: &Actor) -> HashMap<String, String> {
        self.for_user(actor.workspace_id, actor.user_id)
    }

    /// For commands outside a member's session (sign-up): the workspace the
    /// events are filed under and the user who caused them.
    pub fn for_user(&self, workspace_id: WorkspaceId, user_id: UserId) -> HashMap<String, String> {
        let mut map = HashMap::new();
        map.insert(WORKSPACE_ID.to_owned(), workspace_id.to_string());
        map.insert(ACTOR_ID.to_owned(), user_id.to_string());
        if let Some(id) = &self.request_id {
            map.insert(REQUEST_ID.to_owned(), id.clone());
        }
        if let Some(tp) = &self.traceparent {
            map.insert(TRACEPARENT.to_owned(), tp.clone());
        }
        if let Some(key) = &self.api_key_id {
            map.insert(API_KEY_ID.to_owned(), key.to_string());
        }
        if let Some(correlation) = self.correlation_id.as_ref().or(self.request_id.as_ref()) {
            map.insert(CORRELATION_ID.to_owned(), correlation.clone());
        }
        if let Some(cause) = &self.causation_id {
            map.insert(CAUSATION_ID.to_owned(), cause.to_string());
        }
        if let Some(digest) = &self.idempotency {
            map.insert(IDEMPOTENCY.to_owned(), digest.clone());
        }
        map
    }
}
