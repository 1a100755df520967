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
    Ok(())
}
