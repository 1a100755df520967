//! The JetStream stream that carries domain events.

use crate::wire::Topology;
use async_nats::jetstream::{self, stream};
use std::collections::HashMap;
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

/// Stream metadata: the event store the stream is filled from (a relay
/// never repairs a stream that another store filled).
pub const STORE_ID_KEY: &str = "vcintel_store_id";
/// Stream metadata: how many times the stream was refilled from the store
/// from scratch (see docs/self-healing.md). Every message also carries it
/// in the [`EPOCH_HEADER`] header.
pub const EPOCH_KEY: &str = "vcintel_epoch";
pub const EPOCH_HEADER: &str = "Vcintel-Stream-Epoch";

/// The events stream's configuration with `metadata`.
pub fn events_stream_config(
    topology: &Topology,
    settings: &StreamSettings,
    metadata: HashMap<String, String>,
) -> stream::Config {
    stream::Config {
        name: topology.stream_name(),
        subjects: vec![topology.all_events_subject()],
        storage: stream::StorageType::File,
        retention: stream::RetentionPolicy::Limits,
        duplicate_window: settings.duplicate_window,
        num_replicas: settings.replicas,
        description: Some("VC Intel domain events (CloudEvents 1.0 JSON)".to_owned()),
        metadata,
        ..Default::default()
    }
}

/// Creates the events stream, or brings an existing one to these settings
/// (keeping the metadata the relay wrote), and the dead-letter stream.
pub async fn ensure_events_stream(
    js: &jetstream::Context,
    topology: &Topology,
    settings: &StreamSettings,
) -> anyhow::Result<()> {
    let metadata = match js.get_stream(topology.stream_name()).await {
        Ok(mut existing) => existing
            .info()
            .await
            .map(|info| info.config.metadata.clone())
            .unwrap_or_default(),
        Err(_) => HashMap::new(),
    };
    js.create_or_update_stream(events_stream_config(topology, settings, metadata))
        .await?;
    let dead_letters = stream::Config {
        name: topology.dead_letter_stream_name(),
        subjects: vec![format!("{}.deadletter.>", topology.prefix)],
        storage: stream::StorageType::File,
        retention: stream::RetentionPolicy::Limits,
        num_replicas: settings.replicas,
        description: Some(
            "Events a projection or reactor could not apply after repeated tries, with the error"
                .to_owned(),
        ),
        ..Default::default()
    };
    js.create_or_update_stream(dead_letters).await?;
    Ok(())
}

/// Parks `event` (delivered as `message` to `consumer`, a projection or a
/// reactor, and failed `deliveries` times with `error`) on the dead-letter
/// stream, then terminates the message so the consumer moves on.
pub async fn park(
    js: &jetstream::Context,
    topology: &Topology,
    consumer: &str,
    message: &jetstream::Message,
    event: &crate::wire::EventMessage,
    error: &str,
    deliveries: u64,
) -> anyhow::Result<()> {
    metrics::counter!("vcintel_dead_letters_total", "consumer" => consumer.to_owned()).increment(1);
    let letter = DeadLetter {
        projection: consumer.to_owned(),
        event_id: event.id,
        aggregate_type: event.aggregatetype.clone(),
        aggregate_id: event.aggregateid.clone(),
        sequence: event.sequence,
        subject: message.subject.to_string(),
        error: error.chars().take(500).collect(),
        deliveries,
        parked_at: chrono::Utc::now(),
    };
    js.publish(
        topology.dead_letter_subject(consumer),
        serde_json::to_vec(&letter)?.into(),
    )
    .await
    .map_err(|e| anyhow::anyhow!("dead letter: {e}"))?
    .await
    .map_err(|e| anyhow::anyhow!("dead letter ack: {e}"))?;
    tracing::error!(consumer, event_id = %event.id, deliveries, "event parked as a dead letter");
    message
        .ack_with(jetstream::AckKind::Term)
        .await
        .map_err(|e| anyhow::anyhow!("term: {e}"))
}

/// A parked event, as the dead-letter stream holds it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct DeadLetter {
    /// The consumer that gave up on it: a read model, or `enricher`.
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
