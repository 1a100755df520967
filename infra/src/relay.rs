//! The relay: tails the event store in commit-safe order and publishes each
//! event to JetStream, checkpointing only after JetStream acknowledged.
//!
//! Commands never publish (no dual write). A crash after publishing and
//! before checkpointing republishes the same events on restart; the
//! `Nats-Msg-Id` header lets the stream's duplicate window drop them, and
//! consumers' version checks absorb any that arrive after it.
//!
//! Only one relay per database publishes at a time: relays lead by lease
//! ([`crate::lease`]), renewed from the publishing loop itself, so a leader
//! that stalls loses leadership within the lease's life and its stale
//! writes are fenced off; extra instances wait as hot standbys.
//!
//! Besides tailing, the leader keeps proving that the stream holds every
//! event it published, and repairs it when it does not
//! ([`anti_entropy`]): JetStream can lose acknowledged messages, lose the
//! whole stream, or hold events a restored store no longer has.

mod anti_entropy;

use crate::event_log::{self, CommitCursor, Reading, StoredEvent};
use crate::failpoint;
use crate::lease::Lease;
use crate::stream::StreamSettings;
use crate::trace_context;
use crate::wire::{EventMessage, Topology};
use async_nats::jetstream::{self, context::PublishAckFuture, message::PublishMessage};
use async_nats::HeaderMap;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgListener;
use sqlx::PgPool;
use std::future::IntoFuture;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub use anti_entropy::{stream_health, StreamHealth};

pub const NOTIFY_CHANNEL: &str = "vcintel_events_appended";

/// The name (and checkpoint key) of the relay that feeds the events stream.
pub const RELAY_NAME: &str = "jetstream";

/// Longest a busy relay goes between checkpoints.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(50);

/// How the relay's report of a store restored into another cluster begins.
const TRANSACTION_IDS_AHEAD: &str = "the event store's transaction ids are ahead of this cluster's";

/// Longest an idle leader goes between checkpoint saves.
const HEARTBEAT: Duration = Duration::from_secs(5);

/// What the relay does when the stream holds events the store does not
/// (the store was restored from an older backup).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, strum::EnumString)]
#[strum(serialize_all = "snake_case")]
pub enum DivergencePolicy {
    /// Keep the stream's extra events in `stream_orphans`, purge the
    /// stream, and republish the store into it under a new epoch.
    #[default]
    Refill,
    /// Stop publishing and report the divergence until an operator runs
    /// `vcintel stream refill`.
    Halt,
}

#[derive(Debug, Clone)]
pub struct RelaySettings {
    pub name: String,
    pub batch_size: i64,
    /// How long to wait for a notification before looking anyway.
    pub idle_poll: Duration,
    /// How long leadership lasts without renewal: a leader that stalls for
    /// longer loses it, and a standby takes over after at most this long.
    pub lease_ttl: Duration,
    /// How often the leader checks the stream against what it proved.
    pub verify_every: Duration,
    pub on_divergence: DivergencePolicy,
    /// To recreate the stream as it was configured.
    pub stream: StreamSettings,
}

impl Default for RelaySettings {
    fn default() -> Self {
        Self {
            name: RELAY_NAME.to_owned(),
            batch_size: 500,
            idle_poll: Duration::from_secs(1),
            lease_ttl: Duration::from_secs(5),
            verify_every: Duration::from_secs(1),
            on_divergence: DivergencePolicy::Refill,
            stream: StreamSettings::default(),
        }
    }
}

#[derive(Debug)]
pub struct Relay {
    pool: PgPool,
    js: jetstream::Context,
    topology: Topology,
    settings: RelaySettings,
    /// This store's id (`store_identity`), read once.
    store_id: tokio::sync::OnceCell<Uuid>,
    /// The role the log last gave this instance (`STANDING_BY`, `LEADING`):
    /// a restart that finds it in the same role says so at DEBUG only.
    told_role: std::sync::atomic::AtomicU8,
}

const STANDING_BY: u8 = 1;
const LEADING: u8 = 2;

/// Where the stream has been proven to hold every event up to `cursor`:
/// the relay read it (or saw it acknowledged in order) through stream
/// sequence `seq`, where the message `event_id` sits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Frontier {
    pub seq: u64,
    pub event_id: Option<Uuid>,
    pub cursor: CommitCursor,
}

/// The leader's bookkeeping, saved with the checkpoint (one row of
/// `relay_checkpoints`).
#[derive(Debug, Clone, Default, PartialEq)]
struct RelayState {
    /// Published (and acknowledged) through here.
    cursor: CommitCursor,
    /// The stream instance the frontier is about.
    stream_created: Option<DateTime<Utc>>,
    epoch: i64,
    frontier: Frontier,
    /// The highest sequence a repair republished to: marks below it could
    /// skip a repaired event when stepping back.
    repaired_up_to_seq: u64,
    /// The highest repair above the frontier still checked on its own
    /// (`relay_pending_repairs`); 0 when none.
    pending_repair_max: u64,
    first_seq_seen: u64,
    deleted_seen: u64,
    diverged: Option<String>,
    /// The operator asked for a refill (`vcintel stream refill`); done
    /// once the leader saves with `refill_done`.
    refill_done: bool,
    last_mark_seq: u64,
    /// How many times the row was saved: a save expecting another count
    /// finds the row changed under the leader.
    saves: i64,
    /// The stream holds messages past the frontier that this relay did not
    /// publish: everything it published is proven, yet the stream goes on
    /// (a store rolled back with its checkpoint, by point-in-time recovery,
    /// while the stream kept what came after). Seen by [`Relay::check`];
    /// the walk then compares them with the store.
    stream_ahead: bool,
}

impl Relay {
    pub fn new(
        pool: PgPool,
        js: jetstream::Context,
        topology: Topology,
        settings: RelaySettings,
    ) -> Self {
        Self {
            pool,
            js,
            topology,
            settings,
            store_id: tokio::sync::OnceCell::new(),
            told_role: std::sync::atomic::AtomicU8::new(0),
        }
    }

    /// Whether `role` is news for the log.
    fn role_changed_to(&self, role: u8) -> bool {
        self.told_role
            .swap(role, std::sync::atomic::Ordering::Relaxed)
            != role
    }

    /// Runs until `shutdown` is cancelled; errors are retried with backoff.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        crate::supervise::restarting("relay", &shutdown, || self.lead(&shutdown)).await;
        Ok(())
    }

    fn lease_name(&self) -> String {
        format!("relay:{}", self.settings.name)
    }

    /// Waits for leadership, then relays until shutdown or an error.
    async fn lead(&self, shutdown: &CancellationToken) -> anyhow::Result<()> {
        let mut lease = Lease::new(
            self.pool.clone(),
            self.lease_name(),
            self.settings.lease_ttl,
        );
        let mut announced = false;
        while !lease.try_acquire().await? {
            if !announced {
                if self.role_changed_to(STANDING_BY) {
                    tracing::info!(
                        relay = %self.settings.name,
                        holder = lease.holder(),
                        "relay standing by: another instance leads; taking over if its lease lapses"
                    );
                } else {
                    tracing::debug!(relay = %self.settings.name, "relay still standing by");
                }
                announced = true;
            }
            tokio::select! {
                _ = tokio::time::sleep(self.settings.lease_ttl / 5) => {}
                _ = shutdown.cancelled() => return Ok(()),
            }
        }
        if self.role_changed_to(LEADING) {
            tracing::info!(
                relay = %self.settings.name,
                holder = lease.holder(),
                token = lease.token(),
                "relay is the leader"
            );
        } else {
            tracing::debug!(relay = %self.settings.name, token = lease.token(), "relay leads again after a restart");
        }
        let outcome = self.relay_as_leader(&mut lease, shutdown).await;
        lease.release().await;
        outcome
    }

    async fn relay_as_leader(
        &self,
        lease: &mut Lease,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<()> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(NOTIFY_CHANNEL).await?;
        let mut state = self.load_state().await?;
        match self.transaction_ids_ahead().await? {
            Some(why) if state.diverged.as_deref() != Some(why.as_str()) => {
                tracing::error!(relay = %self.settings.name, "{why}");
                self.record(lease, "transaction_ids_ahead", &why, 0).await?;
                state.diverged = Some(why);
            }
            Some(_) => {}
            None if state
                .diverged
                .as_deref()
                .is_some_and(|d| d.starts_with(TRANSACTION_IDS_AHEAD)) =>
            {
                state.diverged = None;
            }
            None => {}
        }
        let mut next_check = Instant::now();
        let mut dirty = true;
        let mut last_saved = Instant::now();
        let mut held_back_wait = Duration::from_millis(2);
        loop {
            if shutdown.is_cancelled() {
                if dirty {
                    self.save_state(lease, &mut state).await?;
                }
                return Ok(());
            }
            if lease.renewal_due() {
                lease.renew().await?;
            }
            if Instant::now() >= next_check {
                let before = state.clone();
                self.check(lease, &mut state).await?;
                next_check = Instant::now() + self.settings.verify_every;
                // Idle, the checkpoint is saved only as a heartbeat (what
                // readiness judges a stall by), not at every check.
                dirty |= state != before || last_saved.elapsed() >= HEARTBEAT;
            }
            if state.diverged.is_some() {
                // Halted by policy: nothing is published until the
                // operator asks for a refill (seen at the next check).
                self.save_state(lease, &mut state).await?;
                tokio::select! {
                    _ = tokio::time::sleep(self.settings.verify_every) => {}
                    _ = shutdown.cancelled() => {}
                }
                continue;
            }
            if state.unproven() {
                self.walk_step(lease, &mut state).await?;
                dirty = true;
                if state.diverged.is_some() {
                    continue; // halted by the walk: publish nothing more
                }
            }
            let batch = event_log::read_committed_after(
                &self.pool,
                None,
                state.cursor,
                self.settings.batch_size,
                // Published as stored: the stream never holds a personal
                // value in the clear.
                Reading::AsStored,
            )
            .await?;
            let full = batch.len() as i64 >= self.settings.batch_size;
            if let Some(last) = batch.last() {
                let before = state.cursor;
                let acks = self.publish(&batch, state.epoch).await?;
                failpoint::hit("relay.after_publish");
                state.cursor = last.cursor();
                if state.advance_by_acks(before, &batch, &acks) {
                    // A fresh message took a sequence the frontier had
                    // passed: the stream went back. Look at once.
                    next_check = Instant::now();
                }
                dirty = true;
                // Under load, checkpoint at most every CHECKPOINT_EVERY (a
                // crash republishes a little more, and the stream drops it
                // as duplicates); when idle, checkpoint at once.
                if last_saved.elapsed() >= CHECKPOINT_EVERY {
                    self.save_state(lease, &mut state).await?;
                    (dirty, last_saved) = (false, Instant::now());
                }
                held_back_wait = Duration::from_millis(2);
                // A full batch may have more behind it; after a partial one,
                // whatever committed meanwhile has sent a notification.
                if full || drain(&mut listener) {
                    continue;
                }
            }
            if dirty {
                self.save_state(lease, &mut state).await?;
                (dirty, last_saved) = (false, Instant::now());
            }
            if state.unproven() {
                continue; // more to prove
            }
            // Nothing visible yet. If events exist behind an older running
            // transaction, look again soon; else sleep until notified (or
            // until the lease or the stream check is due).
            let wait = if event_log::has_events_after(&self.pool, state.cursor).await? {
                let wait = held_back_wait;
                held_back_wait = (held_back_wait * 2).min(Duration::from_millis(50));
                wait
            } else {
                self.settings.idle_poll
            };
            let wait = wait
                .min(next_check.saturating_duration_since(Instant::now()))
                .min(self.settings.lease_ttl / 3);
            tokio::select! {
                notification = listener.recv() => {
                    notification?;
                    // One look serves every commit notified so far: a burst
                    // of commits wakes the relay once, not once per commit.
                    drain(&mut listener);
                }
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.cancelled() => {}
            }
        }
    }

    /// Publishes `events` in order and waits for every acknowledgement.
    async fn publish(
        &self,
        events: &[StoredEvent],
        epoch: i64,
    ) -> anyhow::Result<Vec<jetstream::publish::PublishAck>> {
        let mut pending = Vec::with_capacity(events.len());
        // Each event's span lasts until its acknowledgement.
        let mut spans = Vec::with_capacity(events.len());
        for event in events {
            let (ack, span) = self.send(event, epoch, None).await?;
            pending.push(ack);
            spans.push(span);
        }
        // Publishes are pipelined on one connection, so the stream stores
        // them in commit order; the acks are awaited together.
        let mut acks = Vec::with_capacity(pending.len());
        for ack in futures::future::join_all(pending.into_iter().map(IntoFuture::into_future)).await
        {
            acks.push(ack?);
        }
        metrics::counter!("vcintel_relay_batches_total").increment(1);
        let acknowledged = Utc::now();
        for event in events {
            metrics::histogram!("vcintel_relay_publish_delay_seconds").record(
                (acknowledged - event.recorded_at)
                    .to_std()
                    .unwrap_or_default()
                    .as_secs_f64(),
            );
            metrics::counter!(
                "vcintel_events_published_total",
                "aggregate_type" => event.aggregate_type.clone(),
                "event_type" => event.event_type.clone()
            )
            .increment(1);
        }
        Ok(acks)
    }

    /// Sends one event; `message_id` overrides its `Nats-Msg-Id` (a repair
    /// whose event id the duplicate window still remembers). The span, in
    /// the trace of the request that appended the event, is the parent of
    /// every consumer's span; keep it until the acknowledgement.
    async fn send(
        &self,
        event: &StoredEvent,
        epoch: i64,
        message_id: Option<String>,
    ) -> anyhow::Result<(PublishAckFuture, tracing::Span)> {
        let message = EventMessage::from_stored(event)?;
        let subject = self.topology.subject_for(
            &message.workspaceid,
            &event.aggregate_type,
            &event.event_type,
        );
        let mut headers = HeaderMap::new();
        headers.insert("Content-Type", "application/cloudevents+json");
        headers.insert(crate::stream::EPOCH_HEADER, epoch.to_string().as_str());
        let appended_in = event.metadata_str(vcintel_commands::metadata::TRACEPARENT);
        let span = tracing::info_span!(
            "relay.publish",
            otel.name = %format_args!("publish {}", event.event_type),
            otel.kind = "producer",
            messaging.system = "nats",
            messaging.operation.type = "send",
            event_type = %event.event_type,
            position = event.position,
        );
        trace_context::continue_trace(&span, appended_in);
        if let Some(traceparent) = trace_context::traceparent_of(&span)
            .as_deref()
            .or(appended_in)
        {
            trace_context::set_message_traceparent(&mut headers, traceparent);
        }
        let publish = PublishMessage::build()
            .headers(headers)
            .message_id(message_id.unwrap_or_else(|| event.event_id.to_string()))
            .payload(serde_json::to_vec(&message)?.into());
        let ack = self.js.send_publish(subject, publish).await?;
        Ok((ack, span))
    }

    async fn load_state(&self) -> anyhow::Result<RelayState> {
        sqlx::query!(
            "insert into relay_checkpoints (relay_name, last_tx_id, last_position)
             values ($1, '0', 0) on conflict (relay_name) do nothing",
            self.settings.name,
        )
        .execute(&self.pool)
        .await?;
        struct Row {
            last_tx: String,
            last_position: i64,
            stream_created: Option<DateTime<Utc>>,
            epoch: i64,
            verified_seq: i64,
            verified_event_id: Option<Uuid>,
            verified_tx: String,
            verified_position: i64,
            repaired_up_to_seq: i64,
            first_seq_seen: i64,
            deleted_seen: i64,
            diverged: Option<String>,
            last_mark_seq: Option<i64>,
            pending_repair_max: Option<i64>,
            saves: i64,
        }
        let row = sqlx::query_as!(
            Row,
            r#"select last_tx_id::text as "last_tx!", last_position, stream_created, epoch,
                    verified_seq, verified_event_id, verified_tx_id::text as "verified_tx!",
                    verified_position, repaired_up_to_seq, first_seq_seen, deleted_seen, diverged,
                    saves,
                    (select max(seq) from relay_stream_marks m
                      where m.relay_name = c.relay_name) as "last_mark_seq?",
                    (select max(seq) from relay_pending_repairs p
                      where p.relay_name = c.relay_name) as "pending_repair_max?"
             from relay_checkpoints c where relay_name = $1"#,
            &self.settings.name
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(RelayState {
            cursor: CommitCursor {
                tx_id: row.last_tx.parse()?,
                position: row.last_position,
            },
            stream_created: row.stream_created,
            epoch: row.epoch,
            frontier: Frontier {
                seq: row.verified_seq as u64,
                event_id: row.verified_event_id,
                cursor: CommitCursor {
                    tx_id: row.verified_tx.parse()?,
                    position: row.verified_position,
                },
            },
            repaired_up_to_seq: row.repaired_up_to_seq as u64,
            pending_repair_max: row.pending_repair_max.unwrap_or(0) as u64,
            first_seq_seen: row.first_seq_seen as u64,
            deleted_seen: row.deleted_seen as u64,
            diverged: row.diverged,
            refill_done: false,
            last_mark_seq: row.last_mark_seq.unwrap_or(0) as u64,
            saves: row.saves,
            stream_ahead: false,
        })
    }

    /// The relay reads events in commit order by their writing transaction
    /// (`tx_id`) below the current snapshot's horizon. A store restored
    /// with pg_dump into another cluster keeps its `tx_id`s while the new
    /// cluster counts from lower ones: its events stay invisible and new
    /// ones sort before them. Nothing the relay can repair; the operator
    /// must advance the cluster's transaction counter.
    async fn transaction_ids_ahead(&self) -> anyhow::Result<Option<String>> {
        let row = sqlx::query!(
            r#"select newest.tx_id::text as "newest!",
                      pg_snapshot_xmax(pg_current_snapshot())::text as "current!"
               from (select tx_id from events order by tx_id desc, position desc limit 1) newest
               where newest.tx_id >= pg_snapshot_xmax(pg_current_snapshot())"#,
        )
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|row| {
            let (newest, current) = (row.newest, row.current);
            let newest: u64 = newest.parse().unwrap_or_default();
            format!(
                "{TRANSACTION_IDS_AHEAD} (the newest event was written by transaction {newest}, \
                 the cluster is at {current}): it was restored with pg_dump into another \
                 cluster, and its events are invisible to the relay. Stop Postgres and run \
                 `pg_resetwal -e {} -x {}` on it (or restore a physical backup instead)",
                newest >> 32,
                (newest & 0xffff_ffff) + 1_000
            )
        }))
    }

    /// Saves the checkpoint and the frontier, fenced by the lease: a relay
    /// that lost its lease (it stalled, and another leads now) writes
    /// nothing and stops leading.
    async fn save_state(&self, lease: &Lease, state: &mut RelayState) -> anyhow::Result<()> {
        let token = lease.token().ok_or_else(|| lease.lost())?;
        let saved = sqlx::query!(
            "update relay_checkpoints set
                progressed_at = case
                    when (last_tx_id, last_position) = ($2::text::xid8, $3) then progressed_at
                    else now() end,
                last_tx_id = $2::text::xid8, last_position = $3, updated_at = now(),
                fencing_token = $4, stream_created = $5, epoch = $6,
                verified_seq = $7, verified_event_id = $8,
                verified_tx_id = $9::text::xid8, verified_position = $10,
                repaired_up_to_seq = $11, first_seq_seen = $12, deleted_seen = $13,
                diverged = $14, verified_at = now(),
                refill_requested = refill_requested and not $15, saves = saves + 1
             where relay_name = $1 and fencing_token <= $4 and saves = $18
               and lease_held($16, $17, $4)",
            &self.settings.name,
            state.cursor.tx_id.to_string(),
            state.cursor.position,
            token,
            state.stream_created,
            state.epoch,
            state.frontier.seq as i64,
            state.frontier.event_id,
            state.frontier.cursor.tx_id.to_string(),
            state.frontier.cursor.position,
            state.repaired_up_to_seq as i64,
            state.first_seq_seen as i64,
            state.deleted_seen as i64,
            state.diverged.as_deref(),
            state.refill_done,
            lease.name(),
            lease.holder(),
            state.saves
        )
        .execute(&self.pool)
        .await?;
        if saved.rows_affected() == 0 {
            // Either another relay leads now, or the row is not the one
            // this leader wrote (the store was restored from a backup):
            // either way, start over from what the database says.
            anyhow::bail!(
                "the relay's checkpoint is not the one it last wrote: another relay leads now, \
                 or the store was restored from a backup; starting over"
            );
        }
        state.saves += 1;
        state.refill_done = false;
        self.mark_if_due(lease, state).await
    }

    /// One mark per thousand sequences the frontier passes, where stepping
    /// back to it is safe (no repair republished an older event above it).
    async fn mark_if_due(&self, lease: &Lease, state: &mut RelayState) -> anyhow::Result<()> {
        const MARK_EVERY: u64 = 1_000;
        let frontier = state.frontier;
        let Some(event_id) = frontier.event_id else {
            return Ok(());
        };
        if frontier.seq < state.last_mark_seq + MARK_EVERY
            || frontier.seq < state.repaired_up_to_seq
        {
            return Ok(());
        }
        sqlx::query!(
            "insert into relay_stream_marks (relay_name, seq, event_id, tx_id, position)
             select $1, $2, $3, $4::text::xid8, $5
             where lease_held($6, $7, $8)
             on conflict do nothing",
            &self.settings.name,
            frontier.seq as i64,
            event_id,
            frontier.cursor.tx_id.to_string(),
            frontier.cursor.position,
            lease.name(),
            lease.holder(),
            lease.token()
        )
        .execute(&self.pool)
        .await?;
        state.last_mark_seq = frontier.seq;
        Ok(())
    }
}

impl RelayState {
    /// Whether the stream holds something not yet proven: events published
    /// past the frontier, repairs stored above it, or messages past it that
    /// this relay never published.
    fn unproven(&self) -> bool {
        self.frontier.cursor < self.cursor
            || self.pending_repair_max > self.frontier.seq
            || self.stream_ahead
    }

    /// Moves the frontier with a batch the stream acknowledged right after
    /// it, in order, none a duplicate: nothing needs reading back. Returns
    /// whether a fresh message took a sequence at or below the frontier
    /// (the stream lost its tail and reused the sequences).
    fn advance_by_acks(
        &mut self,
        before: CommitCursor,
        batch: &[StoredEvent],
        acks: &[jetstream::publish::PublishAck],
    ) -> bool {
        if acks
            .iter()
            .any(|ack| !ack.duplicate && ack.sequence <= self.frontier.seq)
        {
            return true;
        }
        let in_order = acks
            .iter()
            .enumerate()
            .all(|(i, ack)| !ack.duplicate && ack.sequence == self.frontier.seq + 1 + i as u64);
        // Repairs waiting above the frontier must be read back, not
        // stepped over: their sequences could be reused.
        if self.frontier.cursor == before && in_order && self.pending_repair_max == 0 {
            if let (Some(event), Some(ack)) = (batch.last(), acks.last()) {
                self.frontier = Frontier {
                    seq: ack.sequence,
                    event_id: Some(event.event_id),
                    cursor: event.cursor(),
                };
            }
        }
        false
    }
}

/// Takes every notification already received, without waiting; whether
/// there was any. (Polling `try_recv` once is safe: sqlx reads a message
/// only once it has arrived whole.)
fn drain(listener: &mut PgListener) -> bool {
    use futures::FutureExt;
    let mut any = false;
    while let Some(Ok(Some(_))) = listener.try_recv().now_or_never() {
        any = true;
    }
    any
}

/// Where the named relay has published up to (the start if it never ran).
pub async fn load_checkpoint(pool: &PgPool, relay_name: &str) -> Result<CommitCursor, sqlx::Error> {
    let row = sqlx::query!(
        r#"select last_tx_id::text as "tx!", last_position from relay_checkpoints
           where relay_name = $1"#,
        relay_name,
    )
    .fetch_optional(pool)
    .await?;
    Ok(match row {
        Some(row) => CommitCursor {
            tx_id: row
                .tx
                .parse()
                .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
            position: row.last_position,
        },
        None => CommitCursor::default(),
    })
}

/// How far the named relay is behind the event store, counting at most `cap`.
pub async fn relay_lag(pool: &PgPool, relay_name: &str, cap: i64) -> Result<i64, sqlx::Error> {
    let cursor = load_checkpoint(pool, relay_name).await?;
    event_log::count_events_after(pool, cursor, cap).await
}

/// Asks the leading relay to refill the stream from the store (purge it,
/// republish everything under a new epoch) at its next check.
pub async fn request_refill(pool: &PgPool, relay_name: &str) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "insert into relay_checkpoints (relay_name, last_tx_id, last_position, refill_requested)
         values ($1, '0', 0, true)
         on conflict (relay_name) do update set refill_requested = true",
        relay_name,
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// The relay as readiness sees it (index reads only: it runs on every
/// readiness probe).
#[derive(Debug, Clone)]
pub struct RelayHealth {
    /// Events committed but not yet published, counted up to a cap.
    pub lag: i64,
    /// How long the oldest of them has waited.
    pub oldest_waiting: Option<Duration>,
    /// How long ago the leader last saved its checkpoint (a heartbeat at
    /// least every 5 s while it leads).
    pub since_checkpoint: Option<Duration>,
    /// How long ago the checkpoint last moved.
    pub since_progress: Option<Duration>,
    pub leader: Option<String>,
    pub epoch: i64,
    /// Stream sequence the proof reaches.
    pub verified_seq: i64,
    /// Set while the relay is halted by a divergence it will not repair
    /// by itself.
    pub diverged: Option<String>,
    /// The latest divergence found and what was done, and how long ago.
    pub last_repair: Option<(String, Duration)>,
}

pub async fn relay_health(pool: &PgPool, relay_name: &str) -> anyhow::Result<RelayHealth> {
    const LAG_CAP: i64 = 10_000;
    struct Row {
        last_tx: String,
        last_position: i64,
        since_checkpoint: f64,
        since_progress: f64,
        diverged: Option<String>,
        epoch: i64,
        verified_seq: i64,
        leader: Option<String>,
        last_repair: Option<String>,
        since_repair: Option<f64>,
    }
    let row = sqlx::query_as!(
        Row,
        r#"select c.last_tx_id::text as "last_tx!", c.last_position,
                extract(epoch from now() - c.updated_at)::float8 as "since_checkpoint!",
                extract(epoch from now() - c.progressed_at)::float8 as "since_progress!",
                c.diverged, c.epoch, c.verified_seq,
                (select holder from leases where name = $2 and expires_at > now()) as "leader?",
                r.kind || ': ' || r.detail as "last_repair?",
                extract(epoch from now() - r.occurred_at)::float8 as "since_repair?"
         from relay_checkpoints c
         left join lateral (select kind, detail, occurred_at from relay_repairs
                             where relay_name = c.relay_name order by id desc limit 1) r on true
         where c.relay_name = $1"#,
        relay_name,
        format!("relay:{relay_name}")
    )
    .fetch_optional(pool)
    .await?;
    let cursor = match &row {
        Some(row) => CommitCursor {
            tx_id: row.last_tx.parse()?,
            position: row.last_position,
        },
        None => CommitCursor::default(),
    };
    let lag = event_log::count_events_after(pool, cursor, LAG_CAP).await?;
    let oldest: Option<DateTime<Utc>> = if lag > 0 {
        sqlx::query_scalar!(
            "select recorded_at from events where (tx_id, position) > ($1::text::xid8, $2)
             order by tx_id, position limit 1",
            cursor.tx_id.to_string(),
            cursor.position
        )
        .fetch_optional(pool)
        .await?
    } else {
        None
    };
    let seconds = |s: f64| Duration::from_secs_f64(s.max(0.0));
    Ok(RelayHealth {
        lag,
        oldest_waiting: oldest.map(|t| (Utc::now() - t).to_std().unwrap_or_default()),
        since_checkpoint: row.as_ref().map(|r| seconds(r.since_checkpoint)),
        since_progress: row.as_ref().map(|r| seconds(r.since_progress)),
        leader: row.as_ref().and_then(|r| r.leader.clone()),
        epoch: row.as_ref().map_or(1, |r| r.epoch),
        verified_seq: row.as_ref().map_or(0, |r| r.verified_seq),
        diverged: row.as_ref().and_then(|r| r.diverged.clone()),
        last_repair: row.and_then(|r| Some((r.last_repair?, seconds(r.since_repair?)))),
    })
}
