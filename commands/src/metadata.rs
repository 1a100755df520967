//! Metadata stored with every event: who caused it, in which workspace, and
//! which request, so audit and tracing can follow it.

use std::collections::HashMap;
use vcintel_domain::Actor;

pub const WORKSPACE_ID: &str = "workspace_id";
pub const ACTOR_ID: &str = "actor_id";
pub const REQUEST_ID: &str = "request_id";
pub const TRACEPARENT: &str = "traceparent";

#[derive(Debug, Clone, Default)]
pub struct CommandMetadata {
    pub request_id: Option<String>,
    pub traceparent: Option<String>,
}

impl CommandMetadata {
    pub fn for_actor(&self, actor: &Actor) -> HashMap<String, String> {
        let mut map = HashMap::new();
        map.insert(WORKSPACE_ID.to_owned(), actor.workspace_id.to_string());
        map.insert(ACTOR_ID.to_owned(), actor.user_id.to_string());
        if let Some(id) = &self.request_id {
            map.insert(REQUEST_ID.to_owned(), id.clone());
        }
        if let Some(tp) = &self.traceparent {
            map.insert(TRACEPARENT.to_owned(), tp.clone());
        }
        map
    }
}
