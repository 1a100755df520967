//! Drives a [`Projection`] from its durable JetStream consumer.

use crate::versions::{lock_versions, store_versions};
use crate::{AggregateChanges, Projection, ProjectionError};
use async_nats::jetstream::{self, consumer::pull, AckKind};
use futures::StreamExt;
use sqlx::{PgConnection, PgPool};
use std::collections::HashMap;
use std::time::Duration;
use tracing::{Instrument as _, Span};
use vcintel_infra::event_log::{self, Reading};
use vcintel_infra::supervise::restarting;
use vcintel_infra::trace_context;
use vcintel_infra::vault::Vault;
use vcintel_infra::wire::{EventMessage, Topology};
use vcintel_infra::{failpoint, CancellationToken};

#[derive(Debug, Clone)]
pub struct ProjectionSettings {
    /// Most messages applied in one database transaction.
    pub batch_size: usize,
    /// How long JetStream waits for an ack before redelivering.
    pub ack_wait: Duration,
    /// Deliveries of a message that fails before it is parked as a dead
    /// letter (and the stream moves on).
    pub max_deliveries: u64,
}

impl Default for ProjectionSettings {
    fn default() -> Self {
        Self {
            batch_size: 256,
            ack_wait: Duration::from_secs(30),
            max_deliveries: 5,
        }
    }
}

/// Runs until `shutdown` is cancelled, reconnecting with backoff on errors.
pub async fn run_projection<P: Projection>(
    vault: Vault,
    js: jetstream::Context,
    topology: Topology,
    settings: ProjectionSettings,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    restarting(P::NAME, &shutdown, || {
        consume::<P>(&vault, &js, &topology, &settings, &shutdown)
    })
    .await;
    Ok(())
}

/// The projection's durable consumer, created on first use.
pub async fn consumer<P: Projection>(
    js: &jetstream::Context,
    topology: &Topology,
    ack_wait: Duration,
) -> anyhow::Result<jetstream::consumer::Consumer<pull::Config>> {
    let stream = js.get_stream(topology.stream_name()).await?;
    let durable = topology.durable_name(P::NAME);
    let mut filters: Vec<String> = P::AGGREGATE_TYPES
        .iter()
        .map(|t| topology.aggregate_subject_filter(t))
        .chain(
            P::REACTS_TO
                .iter()
                .map(|(aggregate, event)| topology.event_subject_filter(aggregate, event)),
        )
        .collect();
    // One type keeps the single-filter form, which older servers understand.
    let (filter_subject, filter_subjects) = if filters.len() == 1 {
        (filters.remove(0), vec![])
    } else {
        (String::new(), filters)
    };
    // Create or update: a durable made by an older release takes today's
    // filters (a projection that stopped receiving events it ignores).
    let consumer = stream
        .create_consumer(pull::Config {
            durable_name: Some(durable.clone()),
            filter_subject,
            filter_subjects,
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            deliver_policy: jetstream::consumer::DeliverPolicy::All,
            ack_wait,
            max_ack_pending: 20_000,
            ..Default::default()
        })
        .await?;
    Ok(consumer)
}

async fn consume<P: Projection>(
    vault: &Vault,
    js: &jetstream::Context,
    topology: &Topology,
    settings: &ProjectionSettings,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let consumer = consumer::<P>(js, topology, settings.ack_wait).await?;
    // Short heartbeats: a consumer deleted under us (the stream was lost
    // and recreated) ends this stream within seconds, and the projection
    // starts again on the new stream.
    let mut chunks = consumer
        .stream()
        .expires(Duration::from_secs(10))
        .heartbeat(Duration::from_secs(2))
        .messages()
        .await?
        .ready_chunks(settings.batch_size);
    tracing::debug!(projection = P::NAME, "projection consuming");
    loop {
        let chunk = tokio::select! {
            chunk = chunks.next() => chunk,
            _ = shutdown.cancelled() => return Ok(()),
        };
        let Some(chunk) = chunk else {
            anyhow::bail!("consumer stream ended");
        };
        let mut batch = Vec::with_capacity(chunk.len());
        for item in chunk {
            let message = item.map_err(|e| anyhow::anyhow!("consumer stream: {e}"))?;
            match serde_json::from_slice::<EventMessage>(&message.payload) {
                Ok(event) => batch.push((message, event)),
                Err(error) => {
                    // Retrying cannot fix a malformed envelope: stop redelivery.
                    tracing::error!(projection = P::NAME, subject = %message.subject, %error, "undecodable message; terminating it");
                    message
                        .ack_with(AckKind::Term)
                        .await
                        .map_err(|e| anyhow::anyhow!("term: {e}"))?;
                }
            }
        }
        // Opened here, once per batch (one key query); the messages are
        // only ever parked by id, so nothing opened leaves the process.
        let mut events: Vec<EventMessage> = batch.iter().map(|(_, e)| e.clone()).collect();
        vault.open_messages(&mut events).await?;
        for ((_, event), opened) in batch.iter_mut().zip(events) {
            *event = opened;
        }
        apply_and_ack::<P>(vault, js, topology, settings, batch).await?;
    }
}

async fn apply_and_ack<P: Projection>(
    vault: &Vault,
    js: &jetstream::Context,
    topology: &Topology,
    settings: &ProjectionSettings,
    batch: Vec<(jetstream::Message, EventMessage)>,
) -> anyhow::Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    let events: Vec<&EventMessage> = batch.iter().map(|(_, e)| e).collect();
    let (applying, write) = batch_spans::<P>(&batch);
    match apply_in_one_transaction::<P>(vault, &events)
        .instrument(write)
        .await
    {
        Ok(()) => {
            metrics::counter!("vcintel_projection_events_applied_total", "read_model" => P::NAME)
                .increment(events.len() as u64);
            failpoint::hit("projector.after_commit");
            for (message, _) in &batch {
                message
                    .ack()
                    .await
                    .map_err(|e| anyhow::anyhow!("ack: {e}"))?;
            }
        }
        Err(error) if error.is_unavailable() => {
            // Every message would fail alike; they come back once the
            // database does, their deliveries not held against them.
            for (message, _) in &batch {
                let _ = message
                    .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                    .await;
            }
            anyhow::bail!("database unavailable: {error}");
        }
        Err(error) => {
            // Isolate the failing message so the others still land.
            tracing::warn!(projection = P::NAME, %error, "batch failed; applying one by one");
            for ((message, event), span) in batch.iter().zip(&applying) {
                match apply_in_one_transaction::<P>(vault, &[event])
                    .instrument(trace_context::db_span_under(span, "apply to read model"))
                    .await
                {
                    Ok(()) => {
                        metrics::counter!(
                            "vcintel_projection_events_applied_total",
                            "read_model" => P::NAME
                        )
                        .increment(1);
                        message
                            .ack()
                            .await
                            .map_err(|e| anyhow::anyhow!("ack: {e}"))?
                    }
                    Err(error) if error.is_unavailable() => {
                        let _ = message
                            .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                            .await;
                        anyhow::bail!("database unavailable: {error}");
                    }
                    Err(error) => {
                        tracing::error!(projection = P::NAME, event_id = %event.id, %error, "event not applied; redelivering later");
                        record_failure(vault.pool(), P::NAME, event, &error.to_string()).await;
                        let deliveries = message.info().map_or(1, |info| info.delivered as u64);
                        if deliveries >= settings.max_deliveries {
                            vcintel_infra::stream::park(
                                js,
                                topology,
                                P::NAME,
                                message,
                                event,
                                &error.to_string(),
                                deliveries,
                            )
                            .await?;
                        } else {
                            message
                                .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                                .await
                                .map_err(|e| anyhow::anyhow!("nak: {e}"))?;
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

/// One span per message, each continuing the trace its event was
/// published in, and the span of the batch's one transaction: a child of
/// the first message's span, linked to the others'.
fn batch_spans<P: Projection>(batch: &[(jetstream::Message, EventMessage)]) -> (Vec<Span>, Span) {
    let applying: Vec<Span> = batch
        .iter()
        .map(|(message, event)| {
            let span = tracing::info_span!(
                "projection.apply",
                otel.name = %format_args!("project {} into {}", event.eventtype, P::NAME),
                otel.kind = "consumer",
                messaging.system = "nats",
                messaging.operation.type = "process",
                read_model = P::NAME,
                event_type = %event.eventtype,
            );
            trace_context::continue_trace(&span, trace_context::message_traceparent(message));
            span
        })
        .collect();
    let write = match applying.split_first() {
        Some((first, rest)) => {
            let write = trace_context::db_span_under(first, "apply to read model");
            trace_context::link_spans(&write, rest);
            write
        }
        None => trace_context::db_span("apply to read model"),
    };
    (applying, write)
}

async fn apply_in_one_transaction<P: Projection>(
    vault: &Vault,
    events: &[&EventMessage],
) -> Result<(), ProjectionError> {
    let mut tx = vault.pool().begin().await?;
    // Shared: projector transactions run side by side, but not while a
    // rebuild of this read model holds the lock exclusively.
    sqlx::query!(
        "select pg_advisory_xact_lock_shared($1, hashtext($2))",
        REBUILD_LOCK_CLASS,
        P::NAME
    )
    .execute(&mut *tx)
    .await?;
    let stored = in_the_store(&mut tx, events).await?;
    if stored.len() < events.len() {
        // The store was restored to an earlier point (a backup, a
        // point-in-time recovery) while the stream still holds what it took
        // back, until the relay purges it: a read model must never show
        // an event the store does not have.
        let skipped = events.len() - stored.len();
        metrics::counter!("vcintel_projection_orphans_skipped_total", "read_model" => P::NAME)
            .increment(skipped as u64);
        tracing::warn!(
            projection = P::NAME,
            skipped,
            "messages whose events the store lacks were not applied"
        );
    }
    apply_events::<P>(&mut tx, vault, &stored).await?;
    tx.commit().await?;
    Ok(())
}

/// The events of `events` the store holds, in their order. The relay
/// publishes committed events only, so a message whose event is missing
/// was taken back by a restore.
async fn in_the_store<'e>(
    tx: &mut PgConnection,
    events: &[&'e EventMessage],
) -> Result<Vec<&'e EventMessage>, sqlx::Error> {
    let ids: Vec<uuid::Uuid> = events.iter().map(|e| e.id).collect();
    let found: std::collections::HashSet<uuid::Uuid> =
        sqlx::query_scalar("select event_id from events where event_id = any($1)")
            .bind(&ids)
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .collect();
    Ok(events
        .iter()
        .copied()
        .filter(|e| found.contains(&e.id))
        .collect())
}

/// The advisory-lock class of "this read model is being rebuilt".
pub(crate) const REBUILD_LOCK_CLASS: i32 = 0x5643_5250; // "VCRP"

/// Applies `events` (in commit order) to P's read model inside `tx`.
/// Events of the aggregates it follows are applied version by version;
/// those it only reacts to (see [`Projection::REACTS_TO`]) as they come.
pub(crate) async fn apply_events<P: Projection>(
    tx: &mut PgConnection,
    vault: &Vault,
    events: &[&EventMessage],
) -> Result<(), ProjectionError> {
    let followed = |e: &&&EventMessage| P::AGGREGATE_TYPES.contains(&e.aggregatetype.as_str());
    let ids: Vec<&str> = events
        .iter()
        .filter(followed)
        .map(|e| e.aggregateid.as_str())
        .collect();
    let mut versions = if ids.is_empty() {
        HashMap::new()
    } else {
        lock_versions(&mut *tx, P::NAME, &ids).await?
    };
    let mut changes: Vec<AggregateChanges> = Vec::new();
    let mut reacted: HashMap<String, i64> = HashMap::new();
    for event in events {
        if followed(&event) {
            plan_in_order::<P>(&mut *tx, vault, &mut versions, &mut changes, event).await?;
        } else if reacts_to::<P>(event) {
            let seen = reacted.entry(event.aggregateid.clone()).or_default();
            *seen = (*seen).max(event.sequence);
            changes.push(AggregateChanges {
                aggregate_type: event.aggregatetype.clone(),
                aggregate_id: event.aggregateid.clone(),
                from_version: event.sequence - 1,
                events: vec![(*event).clone()],
            });
        }
        failpoint::hit("projector.mid_batch");
    }
    if !changes.is_empty() {
        P::apply_batch(&mut *tx, &changes).await?;
        let mut moved: HashMap<String, i64> = changes
            .iter()
            .filter(|c| P::AGGREGATE_TYPES.contains(&c.aggregate_type.as_str()))
            .map(|c| {
                (
                    c.aggregate_id.clone(),
                    c.from_version + c.events.len() as i64,
                )
            })
            .collect();
        moved.extend(reacted);
        store_versions(&mut *tx, P::NAME, &moved).await?;
    }
    Ok(())
}

/// Whether P reacts to this event of an aggregate it does not follow.
fn reacts_to<P: Projection>(event: &EventMessage) -> bool {
    P::REACTS_TO.iter().any(|(aggregate, event_type)| {
        *aggregate == event.aggregatetype && *event_type == event.eventtype
    })
}

/// Decides what `event` means for its aggregate given the version the read
/// model reflects (in `versions`, locked by the caller): the next version is
/// queued to apply; an older one is a duplicate and ignored; a newer one
/// queues the missing versions from the event store first. Updates `versions`.
pub async fn plan_in_order<P: Projection>(
    tx: &mut PgConnection,
    vault: &Vault,
    versions: &mut HashMap<String, i64>,
    changes: &mut Vec<AggregateChanges>,
    event: &EventMessage,
) -> Result<(), ProjectionError> {
    let current = versions.get(&event.aggregateid).copied().unwrap_or(0);
    if event.sequence <= current {
        return Ok(());
    }
    let to_apply = if event.sequence == current + 1 {
        vec![event.clone()]
    } else {
        let history = event_log::read_aggregate(
            &mut *tx,
            &event.aggregatetype,
            &event.aggregateid,
            current,
            event.sequence,
            Reading::Opened(vault),
        )
        .await?;
        let expected = (event.sequence - current) as usize;
        if history.len() != expected {
            return Err(ProjectionError::MissingHistory {
                aggregate_id: event.aggregateid.clone(),
                from: current,
                to: event.sequence,
                found: history.len(),
                expected,
            });
        }
        let filled = history
            .iter()
            .map(|stored| {
                EventMessage::from_stored(stored).map_err(|e| ProjectionError::Undecodable {
                    event_id: stored.event_id,
                    reason: e.to_string(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        metrics::counter!("vcintel_projection_gap_fills_total", "read_model" => P::NAME)
            .increment(1);
        tracing::warn!(
            projection = P::NAME,
            aggregate_id = %event.aggregateid,
            from = current,
            to = event.sequence,
            "versions missing from the stream; filled from the event store"
        );
        sqlx::query!(
            "insert into projection_gap_fills (projection, fills, events, last_aggregate, last_at)
             values ($1, 1, $2, $3, now())
             on conflict (projection) do update set
               fills = projection_gap_fills.fills + 1,
               events = projection_gap_fills.events + excluded.events,
               last_aggregate = excluded.last_aggregate, last_at = now()",
            P::NAME,
            (filled.len() - 1) as i64,
            format!("{}/{}", event.aggregatetype, event.aggregateid)
        )
        .execute(&mut *tx)
        .await?;
        filled
    };
    match changes
        .iter_mut()
        .find(|c| c.aggregate_id == event.aggregateid)
    {
        Some(existing) => existing.events.extend(to_apply),
        None => changes.push(AggregateChanges {
            aggregate_type: event.aggregatetype.clone(),
            aggregate_id: event.aggregateid.clone(),
            from_version: current,
            events: to_apply,
        }),
    }
    versions.insert(event.aggregateid.clone(), event.sequence);
    Ok(())
}

/// Parks a message the projection keeps failing on: the dead letter (with
/// the error) goes to its own stream, then the message is terminated so the
/// projection moves on. Later events of the same aggregate will try to fill
/// the gap from the event store and fail the same way until the cause is
/// fixed; `vcintel projections retry-dead-letters` then republishes them.
/// Remembers the projection's latest failure for operators; best effort.
async fn record_failure(pool: &PgPool, projection: &str, event: &EventMessage, error: &str) {
    let result = sqlx::query!(
        "insert into projection_errors (projection, event_id, aggregate, error)
         values ($1, $2, $3, $4)
         on conflict (projection) do update set
           failures = case when projection_errors.event_id = excluded.event_id
                           then projection_errors.failures + 1 else 1 end,
           event_id = excluded.event_id, aggregate = excluded.aggregate,
           error = excluded.error, occurred_at = now()",
        projection,
        event.id,
        format!(
            "{}/{} v{}",
            event.aggregatetype, event.aggregateid, event.sequence
        ),
        error.chars().take(500).collect::<String>()
    )
    .execute(pool)
    .await;
    if let Err(failure) = result {
        tracing::warn!(%failure, "could not record the projection failure");
    }
}

/// One projection's health, for `vcintel projections status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectionStatus {
    pub name: &'static str,
    /// The last stream sequence delivered to it (its position in the stream).
    pub delivered: u64,
    /// Messages not yet applied (pending plus awaiting acknowledgement).
    pub lag: u64,
    /// Aggregates it reflects.
    pub aggregates: i64,
    /// Its latest failure: `event`, error, how many times, when.
    pub last_error: Option<(String, String, i64, chrono::DateTime<chrono::Utc>)>,
    /// Events parked because it kept failing on them.
    pub dead_letters: u64,
    /// Versions it found missing from the stream and filled from the
    /// store: how many times, how many events, the last aggregate, when.
    pub gap_fills: Option<(i64, i64, String, chrono::DateTime<chrono::Utc>)>,
}

/// Every read model's position, lag and last failure.
pub async fn status(
    pool: &PgPool,
    js: &jetstream::Context,
    topology: &Topology,
) -> anyhow::Result<Vec<ProjectionStatus>> {
    let stream = js.get_stream(topology.stream_name()).await?;
    let letters = dead_letters(js, topology, None).await?;
    let mut all = Vec::new();
    for model in crate::READ_MODELS {
        let (delivered, lag) = match stream
            .consumer_info(topology.durable_name(model.name))
            .await
        {
            Ok(info) => (
                info.delivered.stream_sequence,
                info.num_pending + info.num_ack_pending as u64,
            ),
            // Not created yet: nothing delivered, everything pending.
            Err(_) => (0, stream.cached_info().state.messages),
        };
        let aggregates: i64 = sqlx::query_scalar!(
            r#"select count(*) as "count!" from projection_versions where projection = $1"#,
            model.name
        )
        .fetch_one(pool)
        .await?;
        let last_error = sqlx::query!(
            "select aggregate, error, failures, occurred_at from projection_errors
             where projection = $1",
            model.name
        )
        .fetch_optional(pool)
        .await?
        .map(|e| (e.aggregate, e.error, e.failures, e.occurred_at));
        let gap_fills = sqlx::query!(
            "select fills, events, last_aggregate, last_at from projection_gap_fills
             where projection = $1",
            model.name
        )
        .fetch_optional(pool)
        .await?
        .map(|g| (g.fills, g.events, g.last_aggregate, g.last_at));
        all.push(ProjectionStatus {
            gap_fills,
            name: model.name,
            delivered,
            lag,
            aggregates,
            last_error,
            dead_letters: letters
                .iter()
                .filter(|(_, l)| l.projection == model.name)
                .count() as u64,
        });
    }
    Ok(all)
}

/// The parked events (of one projection, or all), with their sequence in
/// the dead-letter stream.
pub async fn dead_letters(
    js: &jetstream::Context,
    topology: &Topology,
    projection: Option<&str>,
) -> anyhow::Result<Vec<(u64, vcintel_infra::stream::DeadLetter)>> {
    let mut stream = js.get_stream(topology.dead_letter_stream_name()).await?;
    let state = stream.info().await?.state.clone();
    let mut letters = Vec::new();
    if state.messages == 0 {
        return Ok(letters);
    }
    for sequence in state.first_sequence..=state.last_sequence {
        // Retried letters are deleted, leaving holes in the sequence.
        let Ok(message) = stream.get_raw_message(sequence).await else {
            continue;
        };
        let letter: vcintel_infra::stream::DeadLetter = serde_json::from_slice(&message.payload)?;
        if projection.is_none_or(|p| p == letter.projection) {
            letters.push((sequence, letter));
        }
    }
    Ok(letters)
}

/// Republishes a projection's parked events from the event store (the
/// truth, so a fixed event or fixed code now applies) and removes the dead
/// letters. Other consumers of the subject skip the copy by version or
/// event id, as they skip any redelivery. Returns how many it retried.
pub async fn retry_dead_letters(
    pool: &PgPool,
    js: &jetstream::Context,
    topology: &Topology,
    projection: &str,
) -> anyhow::Result<usize> {
    let parkers = consumers_that_park();
    anyhow::ensure!(
        parkers.contains(&projection),
        "no consumer parks dead letters as `{projection}`; known: {}",
        parkers.join(", ")
    );
    let letters = dead_letters(js, topology, Some(projection)).await?;
    let stream = js.get_stream(topology.dead_letter_stream_name()).await?;
    for (sequence, letter) in &letters {
        let stored = event_log::read_aggregate(
            pool,
            &letter.aggregate_type,
            &letter.aggregate_id,
            letter.sequence - 1,
            letter.sequence,
            // Republished as stored: sealed, as the relay publishes it.
            Reading::AsStored,
        )
        .await?;
        let event = stored
            .first()
            .ok_or_else(|| anyhow::anyhow!("event {} is not in the store", letter.event_id))?;
        let message = EventMessage::from_stored(event)?;
        js.publish(letter.subject.clone(), serde_json::to_vec(&message)?.into())
            .await?
            .await?;
        stream.delete_message(*sequence).await?;
    }
    Ok(letters.len())
}

/// Every consumer that parks dead letters: the read models, the enricher
/// and the mailers.
pub fn consumers_that_park() -> Vec<&'static str> {
    crate::READ_MODELS
        .iter()
        .map(|model| model.name)
        .chain([vcintel_infra::enrichment::worker::WORKER_NAME])
        .chain(
            vcintel_infra::mail::MAIL_CONSUMERS
                .iter()
                .map(|(name, ..)| *name),
        )
        .collect()
}
