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
    /// Copies of each stream JetStream keeps, on as many servers.
    pub replicas: Replicas,
}

/// How many copies of the streams to ask for (`VCINTEL_STREAM_REPLICAS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replicas {
    /// Three on a cluster of three or more servers, else one.
    Auto,
    Exactly(usize),
}

impl std::str::FromStr for Replicas {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value.trim() {
            "auto" => Ok(Replicas::Auto),
            count => match count.parse::<usize>() {
                // JetStream's own bounds.
                Ok(n @ 1..=5) => Ok(Replicas::Exactly(n)),
                _ => Err("must be `auto` or a count from 1 to 5".to_owned()),
            },
        }
    }
}

impl Replicas {
    /// The count to ask for first: three on a server that belongs to a
    /// cluster (a cluster too small for three is met by falling back to one
    /// at creation).
    fn first_choice(self, js: &jetstream::Context) -> usize {
        match self {
            Replicas::Exactly(n) => n,
            Replicas::Auto if js.client().server_info().cluster.is_some() => 3,
            Replicas::Auto => 1,
        }
    }
}

impl Default for StreamSettings {
    fn default() -> Self {
        Self {
            duplicate_window: Duration::from_secs(120),
            replicas: Replicas::Auto,
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

/// The events stream's configuration with `metadata`, in `replicas` copies.
pub fn events_stream_config(
    topology: &Topology,
    settings: &StreamSettings,
    replicas: usize,
    metadata: HashMap<String, String>,
) -> stream::Config {
    stream::Config {
        name: topology.stream_name(),
        subjects: vec![topology.all_events_subject()],
        storage: stream::StorageType::File,
        retention: stream::RetentionPolicy::Limits,
        duplicate_window: settings.duplicate_window,
        num_replicas: replicas,
        description: Some("VC Intel domain events (CloudEvents 1.0 JSON)".to_owned()),
        metadata,
        ..Default::default()
    }
}

/// Creates the events stream, or brings an existing one to these settings
/// (keeping the metadata the relay wrote), and the dead-letter stream; the
/// copies each has.
pub async fn ensure_events_stream(
    js: &jetstream::Context,
    topology: &Topology,
    settings: &StreamSettings,
) -> anyhow::Result<usize> {
    let existing = match js.get_stream(topology.stream_name()).await {
        Ok(mut existing) => existing.info().await.ok().map(|info| info.config.clone()),
        Err(_) => None,
    };
    let wanted = settings.replicas.first_choice(js);
    if let Some(config) = &existing {
        // Every process checks at start; only a change is written (an
        // update of a replicated stream is a round of its RAFT group).
        if config.num_replicas == wanted
            && config.duplicate_window == settings.duplicate_window
            && config.subjects == [topology.all_events_subject()]
            && js
                .get_stream(topology.dead_letter_stream_name())
                .await
                .is_ok()
        {
            return Ok(config.num_replicas);
        }
    }
    let metadata = existing.map(|config| config.metadata).unwrap_or_default();
    let dead_letters = |replicas| stream::Config {
        name: topology.dead_letter_stream_name(),
        subjects: vec![format!("{}.deadletter.>", topology.prefix)],
        storage: stream::StorageType::File,
        retention: stream::RetentionPolicy::Limits,
        num_replicas: replicas,
        description: Some(
            "Events a projection or reactor could not apply after repeated tries, with the error"
                .to_owned(),
        ),
        ..Default::default()
    };
    let mut replicas = wanted;
    let created = js
        .create_or_update_stream(events_stream_config(
            topology,
            settings,
            replicas,
            metadata.clone(),
        ))
        .await;
    match created {
        Ok(_) => {}
        Err(error)
            if settings.replicas == Replicas::Auto && replicas > 1 && too_few_servers(&error) =>
        {
            tracing::warn!(
                %error,
                "the cluster cannot place three copies of the stream: keeping one; \
                 set VCINTEL_STREAM_REPLICAS to choose"
            );
            replicas = 1;
            js.create_or_update_stream(events_stream_config(topology, settings, 1, metadata))
                .await?;
        }
        Err(error) => return Err(error.into()),
    }
    js.create_or_update_stream(dead_letters(replicas)).await?;
    Ok(replicas)
}

/// JetStream found too few servers to place the copies asked for.
fn too_few_servers(error: &jetstream::context::CreateStreamError) -> bool {
    use jetstream::context::CreateStreamErrorKind;
    use jetstream::ErrorCode;
    matches!(
        error.kind(),
        CreateStreamErrorKind::JetStream(inner)
            if [ErrorCode::CLUSTER_NO_PEERS, ErrorCode::INSUFFICIENT_RESOURCES]
                .contains(&inner.error_code())
    )
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
    #[schema(example = "companies")]
    pub projection: String,
    pub event_id: uuid::Uuid,
    #[schema(example = "company")]
    pub aggregate_type: String,
    #[schema(example = "0193a5a0-7c1e-7000-8000-00000000002a")]
    pub aggregate_id: String,
    #[schema(example = 7)]
    pub sequence: i64,
    /// The subject the event was published on.
    #[schema(
        example = "vcintel.events.0193a59f-0d2c-7000-8000-000000000010.company.details_updated"
    )]
    pub subject: String,
    #[schema(
        example = "event 0193a5a4-5c2e-7000-8000-0000000000f3 cannot be decoded: missing field `name`"
    )]
    pub error: String,
    #[schema(example = 5)]
    pub deliveries: u64,
    pub parked_at: chrono::DateTime<chrono::Utc>,
}

/// Where the events stream lives and how its copies are doing: the
/// stream's RAFT group as its leader reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub configured_replicas: usize,
    pub cluster: Option<String>,
    pub leader: Option<String>,
    /// The copies other than the leader's.
    pub followers: Vec<Follower>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Follower {
    pub server: String,
    /// Caught up with the leader.
    pub current: bool,
    /// The group counts it as gone.
    pub offline: bool,
    /// Operations it is behind the leader.
    pub lag: u64,
}

impl Placement {
    /// Copies caught up, the leader's included.
    pub fn current_copies(&self) -> usize {
        usize::from(self.leader.is_some())
            + self
                .followers
                .iter()
                .filter(|f| f.current && !f.offline)
                .count()
    }

    /// Writes are acknowledged only by a majority of the copies: with a
    /// leader and a majority current the stream takes writes.
    pub fn writable(&self) -> bool {
        self.leader.is_some() && self.current_copies() > self.configured_replicas / 2
    }

    /// Every copy asked for is there and caught up.
    pub fn complete(&self) -> bool {
        self.leader.is_some() && self.current_copies() >= self.configured_replicas
    }

    pub fn describe(&self) -> String {
        let mut text = format!(
            "R{} on {}: leader {}",
            self.configured_replicas,
            self.cluster.as_deref().unwrap_or("a single server"),
            self.leader.as_deref().unwrap_or("none")
        );
        for follower in &self.followers {
            let state = if follower.offline {
                "offline".to_owned()
            } else if follower.current {
                "current".to_owned()
            } else {
                format!("catching up, {} behind", follower.lag)
            };
            text.push_str(&format!("; {} {state}", follower.server));
        }
        text
    }
}

/// The events stream's placement, asked of its leader.
pub async fn placement(js: &jetstream::Context, topology: &Topology) -> anyhow::Result<Placement> {
    let mut stream = js.get_stream(topology.stream_name()).await?;
    let info = stream.info().await?;
    let configured_replicas = info.config.num_replicas.max(1);
    Ok(match &info.cluster {
        Some(cluster) => Placement {
            configured_replicas,
            cluster: cluster.name.clone(),
            leader: cluster.leader.clone(),
            followers: cluster
                .replicas
                .iter()
                .map(|peer| Follower {
                    server: peer.name.clone(),
                    current: peer.current,
                    offline: peer.offline,
                    lag: peer.lag.unwrap_or(0),
                })
                .collect(),
        },
        // A server outside any cluster holds the one copy itself.
        None => Placement {
            configured_replicas,
            cluster: None,
            leader: Some("this server".to_owned()),
            followers: Vec::new(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn placement(leader: Option<&str>, followers: &[(bool, bool)]) -> Placement {
        Placement {
            configured_replicas: 3,
            cluster: Some("c".to_owned()),
            leader: leader.map(str::to_owned),
            followers: followers
                .iter()
                .enumerate()
                .map(|(n, (current, offline))| Follower {
                    server: format!("n{n}"),
                    current: *current,
                    offline: *offline,
                    lag: 0,
                })
                .collect(),
        }
    }

    #[test]
    fn a_majority_of_current_copies_with_a_leader_takes_writes() {
        let all = placement(Some("n"), &[(true, false), (true, false)]);
        assert!(all.writable() && all.complete());
        let one_down = placement(Some("n"), &[(true, false), (false, true)]);
        assert!(one_down.writable() && !one_down.complete());
        assert!(
            one_down.describe().contains("n1 offline"),
            "{}",
            one_down.describe()
        );
        let two_down = placement(Some("n"), &[(false, true), (false, true)]);
        assert!(!two_down.writable());
        let leaderless = placement(None, &[(true, false), (true, false)]);
        assert!(!leaderless.writable());
    }

    #[test]
    fn replicas_are_auto_or_a_count_jetstream_accepts() {
        assert_eq!("auto".parse::<Replicas>(), Ok(Replicas::Auto));
        assert_eq!("3".parse::<Replicas>(), Ok(Replicas::Exactly(3)));
        assert!("0".parse::<Replicas>().is_err());
        assert!("7".parse::<Replicas>().is_err());
        assert!("three".parse::<Replicas>().is_err());
    }
}
