//! The JetStream stream that carries domain events.

use crate::wire::Topology;
use async_nats::jetstream::{self, stream};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct StreamSettings {
    /// Messages with a `Nats-Msg-Id` seen within this window are dropped as
    /// duplicates: it must exceed the longest relay outage we retry across.
    pub duplicate_window: Duration,
    pub replicas: usize,
}

impl Default for StreamSettings {
    fn default() -> Self {
        Self {
            duplicate_window: Duration::from_secs(120),
            replicas: 1,
        }
    }
}

/// Creates the events stream, or brings an existing one to these settings.
pub async fn ensure_events_stream(
    js: &jetstream::Context,
    topology: &Topology,
    settings: &StreamSettings,
) -> anyhow::Result<()> {
    let config = stream::Config {
        name: topology.stream_name(),
        subjects: vec![topology.all_events_subject()],
        storage: stream::StorageType::File,
        retention: stream::RetentionPolicy::Limits,
        duplicate_window: settings.duplicate_window,
        num_replicas: settings.replicas,
        description: Some("VC Intel domain events (CloudEvents 1.0 JSON)".to_owned()),
        ..Default::default()
    };
    js.create_or_update_stream(config).await?;
    let dead_letters = stream::Config {
        name: topology.dead_letter_stream_name(),
        subjects: vec![format!("{}.deadletter.>", topology.prefix)],
        storage: stream::StorageType::File,
        retention: stream::RetentionPolicy::Limits,
        num_replicas: settings.replicas,
        description: Some(
            "Events a projection could not apply after repeated tries, with the error".to_owned(),
        ),
        ..Default::default()
    };
    js.create_or_update_stream(dead_letters).await?;
    Ok(())
}

/// A parked event, as the dead-letter stream holds it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct DeadLetter {
    pub projection: String,
    pub event_id: uuid::Uuid,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    /// The subject the event was published on.
    pub subject: String,
    pub error: String,
    pub deliveries: u64,
    pub parked_at: chrono::DateTime<chrono::Utc>,
}
