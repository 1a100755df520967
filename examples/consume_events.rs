//! Another team's service reading VC Intel's event stream with a durable
//! consumer of its own (docs/consuming-events.md): it replays everything
//! first, then follows new events, and applies each event once although
//! JetStream delivers at least once.
//!
//! Run it against a running service's NATS server:
//!
//! ```sh
//! NATS_URL=nats://127.0.0.1:4222 cargo run -p vcintel_api --example consume_events -- crm-sync
//! ```
//!
//! `VCINTEL_NATS_PREFIX` (default `vcintel`) names the deployment's subjects
//! and stream, as it does for the service. It uses only `async-nats`,
//! `serde_json`, `futures` and `tokio`: nothing of VC Intel's own crates.

use async_nats::jetstream::{self, consumer::pull, consumer::AckPolicy, consumer::DeliverPolicy};
use futures::StreamExt;
use std::collections::HashSet;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let nats_url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let prefix = std::env::var("VCINTEL_NATS_PREFIX").unwrap_or_else(|_| "vcintel".into());
    let durable = std::env::args().nth(1).unwrap_or_else(|| "crm-sync".into());
    let stream_name = format!("{}_EVENTS", prefix.replace(['.', '-'], "_").to_uppercase());

    let js = jetstream::new(async_nats::connect(&nats_url).await?);
    let stream = js.get_stream(&stream_name).await?;
    let consumer = stream
        .get_or_create_consumer(
            &durable,
            pull::Config {
                durable_name: Some(durable.clone()),
                // One workspace: "<prefix>.events.<ws>.>"; one type:
                // "<prefix>.events.*.company.added".
                filter_subject: format!("{prefix}.events.*.company.>"),
                // Replay everything first.
                deliver_policy: DeliverPolicy::All,
                ack_policy: AckPolicy::Explicit,
                ..Default::default()
            },
        )
        .await?;

    // A real consumer keeps what it applied in its own database, in the
    // transaction that applies the event; a set shows the rule.
    let mut applied: HashSet<String> = HashSet::new();
    let mut messages = consumer.messages().await?;
    while let Some(message) = messages.next().await {
        let message = message?;
        let event: serde_json::Value = serde_json::from_slice(&message.payload)?;
        // At-least-once delivery: dedupe by the CloudEvents `id` (the event
        // id), or, per aggregate, apply only `sequence` = last applied + 1.
        let id = event["id"].as_str().unwrap_or_default().to_owned();
        if applied.insert(id) {
            println!(
                "{} {} #{}",
                event["type"].as_str().unwrap_or_default(),
                event["subject"].as_str().unwrap_or_default(),
                event["sequence"],
            );
        }
        message.ack().await?;
    }
    Ok(())
}
