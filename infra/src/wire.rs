//! The published form of an event: a CloudEvents 1.0 structured-mode JSON
//! envelope, and the subject it is published on.
//!
//! Subjects: `<prefix>.events.<workspace id>.<aggregate type>.<event name>`,
//! for example `vcintel.events.0190….company.details_updated`, so that a
//! subscriber can take one workspace (`vcintel.events.<ws>.>`), one aggregate
//! type (`vcintel.events.*.company.>`) or one event type
//! (`vcintel.events.*.company.added`).

use crate::stored_event::StoredEvent;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

pub const CLOUDEVENTS_SPEC_VERSION: &str = "1.0";

/// Names of the stream and subjects for one deployment (or one test run).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    /// Subject prefix, e.g. `vcintel`; tests use a unique one per test.
    pub prefix: String,
}

impl Topology {
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    /// Stream names cannot contain dots; the prefix is upper-cased.
    pub fn stream_name(&self) -> String {
        format!(
            "{}_EVENTS",
            self.prefix.replace(['.', '-'], "_").to_uppercase()
        )
    }

    pub fn all_events_subject(&self) -> String {
        format!("{}.events.>", self.prefix)
    }

    pub fn workspace_subject_filter(&self, workspace_id: &str) -> String {
        format!("{}.events.{workspace_id}.>", self.prefix)
    }

    pub fn aggregate_subject_filter(&self, aggregate_type: &str) -> String {
        format!("{}.events.*.{aggregate_type}.>", self.prefix)
    }

    /// One event type, in every workspace.
    pub fn event_subject_filter(&self, aggregate_type: &str, event_type: &str) -> String {
        self.subject_for("*", aggregate_type, event_type)
    }

    pub fn subject_for(
        &self,
        workspace_id: &str,
        aggregate_type: &str,
        event_type: &str,
    ) -> String {
        let event_name = event_type
            .strip_prefix(aggregate_type)
            .and_then(|rest| rest.strip_prefix('.'))
            .unwrap_or(event_type)
            .replace('.', "_");
        format!(
            "{}.events.{workspace_id}.{aggregate_type}.{event_name}",
            self.prefix
        )
    }

    /// Where messages a projection gave up on are parked.
    pub fn dead_letter_stream_name(&self) -> String {
        format!(
            "{}_DEAD_LETTERS",
            self.prefix.replace(['.', '-'], "_").to_uppercase()
        )
    }

    pub fn dead_letter_subject(&self, projection: &str) -> String {
        format!("{}.deadletter.{projection}", self.prefix)
    }

    /// The durable consumer name of a projection or reactor.
    pub fn durable_name(&self, worker: &str) -> String {
        format!("{}_{worker}", self.stream_name())
    }
}

/// A CloudEvents 1.0 envelope. Extension attributes are lowercase
/// alphanumeric, as the spec requires.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = CloudEvent)]
pub struct EventMessage {
    pub specversion: String,
    /// The event's unique id; also the `Nats-Msg-Id` header.
    pub id: Uuid,
    /// `/workspaces/<workspace id>/<aggregate type, plural>/<aggregate id>`,
    /// e.g. `/workspaces/…/companies/…`. Messages published before
    /// 2026-12-07 spelled every plural with a bare `s` (`companys`); the
    /// stream may still hold some, and the attribute is only ever a string.
    pub source: String,
    /// `vcintel.<event type>.v<version>`, e.g. `vcintel.company.added.v1`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The aggregate id.
    pub subject: String,
    pub time: DateTime<Utc>,
    pub datacontenttype: String,
    /// The event payload (the inner object of the stored payload).
    #[schema(value_type = Object)]
    pub data: Value,
    pub workspaceid: String,
    pub aggregatetype: String,
    pub aggregateid: String,
    /// The aggregate's version after this event.
    pub sequence: i64,
    /// Global position in the event store.
    pub position: i64,
    /// The stored event type, e.g. `company.added`.
    pub eventtype: String,
    pub eventversion: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actorid: Option<String>,
    /// The request or chain of work the event belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlationid: Option<String>,
    /// The event that caused this one (events appended by reactors).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causationid: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("event {0} has no workspace_id in its metadata")]
    MissingWorkspace(Uuid),
    #[error("event {0} payload is not an object tagged with its type")]
    UntaggedPayload(Uuid),
}

impl EventMessage {
    pub fn from_stored(event: &StoredEvent) -> Result<Self, WireError> {
        let workspace_id = event
            .metadata_str(vcintel_commands::metadata::WORKSPACE_ID)
            .ok_or(WireError::MissingWorkspace(event.event_id))?
            .to_owned();
        let data = event
            .payload
            .get(&event.event_type)
            .cloned()
            .ok_or(WireError::UntaggedPayload(event.event_id))?;
        Ok(EventMessage {
            specversion: CLOUDEVENTS_SPEC_VERSION.to_owned(),
            id: event.event_id,
            source: format!(
                "/workspaces/{workspace_id}/{}/{}",
                plural(&event.aggregate_type),
                event.aggregate_id
            ),
            kind: format!("vcintel.{}.v{}", event.event_type, event.event_version),
            subject: event.aggregate_id.clone(),
            time: event.recorded_at,
            datacontenttype: "application/json".to_owned(),
            data,
            workspaceid: workspace_id,
            aggregatetype: event.aggregate_type.clone(),
            aggregateid: event.aggregate_id.clone(),
            sequence: event.sequence,
            position: event.position,
            eventtype: event.event_type.clone(),
            eventversion: event.event_version.clone(),
            actorid: event
                .metadata_str(vcintel_commands::metadata::ACTOR_ID)
                .map(str::to_owned),
            correlationid: event
                .metadata_str(vcintel_commands::metadata::CORRELATION_ID)
                .map(str::to_owned),
            causationid: event
                .metadata_str(vcintel_commands::metadata::CAUSATION_ID)
                .map(str::to_owned),
        })
    }

    /// The stored payload shape (`{"<event type>": data}`) that domain events
    /// deserialize from.
    pub fn tagged_payload(&self) -> Value {
        let mut map = serde_json::Map::new();
        map.insert(self.eventtype.clone(), self.data.clone());
        Value::Object(map)
    }
}

/// The plural of an aggregate type (`company` → `companies`,
/// `saved_search` → `saved_searches`).
fn plural(aggregate_type: &str) -> String {
    if let Some(stem) = aggregate_type.strip_suffix('y') {
        format!("{stem}ies")
    } else if ["s", "x", "ch", "sh"]
        .iter()
        .any(|end| aggregate_type.ends_with(end))
    {
        format!("{aggregate_type}es")
    } else {
        format!("{aggregate_type}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_name_the_aggregate_type_in_the_plural() {
        let plurals: Vec<String> = [
            "company",
            "note",
            "list",
            "saved_search",
            "enrichment_job",
            "workspace",
            "user",
        ]
        .iter()
        .map(|t| plural(t))
        .collect();
        assert_eq!(
            plurals,
            [
                "companies",
                "notes",
                "lists",
                "saved_searches",
                "enrichment_jobs",
                "workspaces",
                "users"
            ]
        );
    }

    #[test]
    fn subjects_carry_workspace_aggregate_type_and_event_name() {
        let topology = Topology::new("vcintel");
        assert_eq!(
            topology.subject_for("ws1", "company", "company.details_updated"),
            "vcintel.events.ws1.company.details_updated"
        );
        assert_eq!(topology.stream_name(), "VCINTEL_EVENTS");
        assert_eq!(
            topology.aggregate_subject_filter("company"),
            "vcintel.events.*.company.>"
        );
    }
}
