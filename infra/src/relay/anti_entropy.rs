//! Anti-entropy: the leading relay proves that the stream holds every event
//! it published, and repairs the stream from the store when it does not.
//!
//! The proof is a frontier (`relay_checkpoints.verified_*`): every event up
//! to its commit cursor is in the stream, which the relay has read (or seen
//! acknowledged in order) through its stream sequence. In steady state the
//! publish acknowledgements move it for free: a batch stored right after
//! the frontier, in order, with no duplicates, is proven by its acks.
//! Otherwise the relay reads the stream back from the frontier a window at
//! a time and compares each window's event ids with the store's events in
//! the same commit range; whatever the store has and the stream lacks is
//! republished. The cost is per event published, never per event stored.
//!
//! Once a second a check looks at what could undo the proof, each an O(1)
//! question to JetStream: the stream is gone (recreated and refilled), was
//! replaced (refilled), ends below the frontier or holds another message
//! at the frontier's sequence (it lost its tail and reused the sequences),
//! lost its first messages, or has messages deleted behind the frontier.
//! Then the frontier steps back to the latest mark (one per thousand
//! sequences) that still holds, and the window walk finds what is missing.
//!
//! A message whose event the store does not have means the store was
//! restored from an older backup. Under [`DivergencePolicy::Refill`] those
//! messages are kept in `stream_orphans`, the stream is purged and
//! republished from the store under a new epoch (stream metadata and a
//! header on every message), and consumers converge by their version
//! guards; under `Halt` the relay stops publishing until `vcintel stream
//! refill`.

use super::{DivergencePolicy, Frontier, Relay, RelayState};
use crate::event_log::{self, CommitCursor, Reading, StoredEvent};
use crate::lease::Lease;
use crate::stream::{events_stream_config, EPOCH_KEY, STORE_ID_KEY};
use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
use async_nats::jetstream::stream::Stream;
use async_nats::jetstream::{self, context::GetStreamErrorKind};
use futures::StreamExt;
use sqlx::PgPool;
use std::collections::{HashMap, HashSet};
use std::time::Duration;
use uuid::Uuid;

/// Messages read back from the stream per step of the walk.
const WINDOW: usize = 1_000;
/// Store events compared per page.
const STORE_PAGE: i64 = 1_000;
/// Pages compared per step of the walk, so that one step (and the
/// republishing it does) stays well inside the leader's lease.
const MAX_PAGES_PER_STEP: usize = 10;

/// A message read back from the stream.
#[derive(Debug, Clone)]
struct Streamed {
    seq: u64,
    event_id: Option<Uuid>,
    subject: String,
    payload: bytes::Bytes,
}

impl Relay {
    /// Looks for anything that undid the proof; steps the frontier back (or
    /// resets it, recreating or refilling the stream) when something did.
    pub(super) async fn check(
        &self,
        lease: &mut Lease,
        state: &mut RelayState,
    ) -> anyhow::Result<()> {
        let refill_requested: bool = sqlx::query_scalar!(
            "select refill_requested from relay_checkpoints where relay_name = $1",
            &self.settings.name
        )
        .fetch_one(&self.pool)
        .await?;
        let mut stream = match self.js.get_stream(self.topology.stream_name()).await {
            Ok(stream) => stream,
            Err(error) if is_stream_not_found(&error) => {
                return self.recreate_stream(lease, state).await;
            }
            Err(error) => return Err(error.into()),
        };
        let info = stream.cached_info().clone();
        let store_id = self.store_id().await?;
        match info.config.metadata.get(STORE_ID_KEY) {
            Some(theirs) if *theirs != store_id.to_string() => {
                let why = format!(
                    "the stream {} was filled from another event store ({theirs}, this is {store_id}): \
                     is the relay pointed at the right stream? It will not be touched",
                    info.config.name
                );
                if state.diverged.as_deref() != Some(why.as_str()) {
                    tracing::error!("{why}");
                    self.record(lease, "foreign_stream", &why, 0).await?;
                }
                state.diverged = Some(why);
                return Ok(());
            }
            Some(_) => {}
            None => {
                // A stream made before the relay labelled them.
                self.label_stream(&info.config, state.epoch, &store_id)
                    .await?;
            }
        }
        if let Some(epoch) = info
            .config
            .metadata
            .get(EPOCH_KEY)
            .and_then(|e| e.parse::<i64>().ok())
        {
            // The store may have been restored with an older epoch.
            state.epoch = state.epoch.max(epoch);
        }
        if refill_requested {
            // Halted by a divergence: keep what the store lacks first.
            let orphans_from = state.diverged.is_some().then_some(state.frontier.seq + 1);
            return self
                .refill(
                    lease,
                    state,
                    &mut stream,
                    orphans_from,
                    "the operator asked for a refill",
                )
                .await;
        }
        if state.diverged.is_some() {
            return Ok(()); // halted; waiting for the operator
        }
        if state.stream_created != Some(created_of(&info)) {
            if state.stream_created.is_some() {
                let why = "the stream was replaced by a new one (created at another time)";
                tracing::warn!(relay = %self.settings.name, "{why}; republishing every event into it");
                self.record(lease, "stream_replaced", why, 0).await?;
                state.cursor = CommitCursor::default();
            }
            // First sight of this stream (or a new one): prove it from
            // its start.
            state.stream_created = Some(created_of(&info));
            self.forget_stream_bookkeeping(lease).await?;
            state.frontier = Frontier::default();
            state.last_mark_seq = 0;
            state.repaired_up_to_seq = 0;
            state.pending_repair_max = 0;
            state.first_seq_seen = info.state.first_sequence;
            state.deleted_seen = info.state.deleted_count.unwrap_or(0);
            return Ok(());
        }
        let s = &info.state;
        state.stream_ahead = s.last_sequence > state.frontier.seq
            && state.frontier.cursor >= state.cursor
            && state.pending_repair_max <= state.frontier.seq;
        if s.last_sequence < state.frontier.seq {
            let why = format!(
                "the stream ends at sequence {} but had been proven through {}: JetStream lost its tail",
                s.last_sequence, state.frontier.seq
            );
            return self
                .rewind(lease, state, &stream, s.last_sequence, &why)
                .await;
        }
        if let (Some(expected), true) = (
            state.frontier.event_id,
            state.frontier.seq >= s.first_sequence.max(1),
        ) {
            let found = message_event_id(&stream, state.frontier.seq).await?;
            if found != Some(expected) {
                let why = format!(
                    "sequence {} holds another message than the one proven there: \
                     JetStream lost its tail and reused the sequences",
                    state.frontier.seq
                );
                return self
                    .rewind(lease, state, &stream, state.frontier.seq - 1, &why)
                    .await;
            }
        }
        if s.first_sequence > state.first_seq_seen.max(1) {
            let why = format!(
                "the stream's first messages are gone (it starts at {}, not {})",
                s.first_sequence,
                state.first_seq_seen.max(1)
            );
            state.first_seq_seen = s.first_sequence;
            return self.rewind(lease, state, &stream, 0, &why).await;
        }
        let deleted = s.deleted_count.unwrap_or(0);
        let mut newly_deleted = Vec::new();
        if deleted != state.deleted_seen {
            let details = stream.info_builder().with_deleted(true).fetch().await?;
            let listed: Vec<i64> = details
                .info
                .state
                .deleted
                .unwrap_or_default()
                .into_iter()
                .map(|seq| seq as i64)
                .collect();
            let handled: HashSet<i64> = sqlx::query_scalar!(
                "select seq from relay_deleted_handled where relay_name = $1 and seq = any($2)",
                &self.settings.name,
                &listed
            )
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .collect();
            newly_deleted = listed
                .into_iter()
                .filter(|seq| !handled.contains(seq))
                .map(|seq| seq as u64)
                .collect();
            state.deleted_seen = deleted;
        }
        self.check_pending_repairs(lease, state, &stream, s.last_sequence, &newly_deleted)
            .await?;
        if let Some(first) = newly_deleted
            .iter()
            .copied()
            .filter(|seq| *seq <= state.frontier.seq)
            .min()
        {
            let why = format!(
                "{} message(s) newly deleted from the stream, the first at sequence {first}",
                newly_deleted.len()
            );
            self.rewind(lease, state, &stream, first - 1, &why).await?;
        }
        if !newly_deleted.is_empty() {
            // Remembered once the frontier stepped back before them (the
            // walk repairs them from there), so a crash in between
            // handles them again.
            let seqs: Vec<i64> = newly_deleted.iter().map(|s| *s as i64).collect();
            sqlx::query!(
                "insert into relay_deleted_handled (relay_name, seq)
                 select $1, unnest($2::bigint[]) on conflict do nothing",
                &self.settings.name,
                &seqs
            )
            .execute(&self.pool)
            .await?;
        }
        Ok(())
    }

    /// Steps the frontier back to the latest mark at or below `limit_seq`
    /// whose message is still in place (or to the start).
    async fn rewind(
        &self,
        lease: &mut Lease,
        state: &mut RelayState,
        stream: &Stream,
        limit_seq: u64,
        why: &str,
    ) -> anyhow::Result<()> {
        let marks = sqlx::query!(
            r#"select seq, event_id, tx_id::text as "tx_id!", position from relay_stream_marks
             where relay_name = $1 and seq <= $2 order by seq desc limit 64"#,
            &self.settings.name,
            limit_seq as i64
        )
        .fetch_all(&self.pool)
        .await?;
        let mut frontier = Frontier::default();
        for mark in marks {
            if message_event_id(stream, mark.seq as u64).await? == Some(mark.event_id) {
                frontier = Frontier {
                    seq: mark.seq as u64,
                    event_id: Some(mark.event_id),
                    cursor: CommitCursor {
                        tx_id: mark.tx_id.parse()?,
                        position: mark.position,
                    },
                };
                break;
            }
        }
        tracing::warn!(
            relay = %self.settings.name,
            from_seq = state.frontier.seq,
            to_seq = frontier.seq,
            "{why}; checking the stream again from the last proven point"
        );
        sqlx::query!(
            "delete from relay_stream_marks where relay_name = $1 and seq > $2
               and lease_held($3, $4, $5)",
            &self.settings.name,
            frontier.seq as i64,
            lease.name(),
            lease.holder(),
            lease.token()
        )
        .execute(&self.pool)
        .await?;
        state.frontier = frontier;
        state.last_mark_seq = frontier.seq;
        self.record(lease, "diverged", why, 0).await?;
        self.save_state(lease, state).await
    }

    /// One window of the walk: reads the stream after the frontier, compares
    /// it with the store's events in the same commit range, republishes what
    /// is missing and moves the frontier past the window.
    pub(super) async fn walk_step(
        &self,
        lease: &mut Lease,
        state: &mut RelayState,
    ) -> anyhow::Result<()> {
        let mut stream = match self.js.get_stream(self.topology.stream_name()).await {
            Ok(stream) => stream,
            Err(error) if is_stream_not_found(&error) => {
                return self.recreate_stream(lease, state).await
            }
            Err(error) => return Err(error.into()),
        };
        let last_seq = stream.cached_info().state.last_sequence;
        let start = state.frontier.seq + 1;
        let window = if start <= last_seq {
            read_window(&stream, start, WINDOW).await?
        } else {
            vec![]
        };
        let at_end = window.len() < WINDOW;
        let ids: Vec<Uuid> = window.iter().filter_map(|m| m.event_id).collect();
        let stored = cursors_of(&self.pool, &ids).await?;
        if let Some(first_foreign) = window
            .iter()
            .find(|m| m.event_id.is_none_or(|id| !stored.contains_key(&id)))
        {
            return self
                .diverged(lease, state, &mut stream, first_foreign.seq)
                .await;
        }
        let in_window: HashSet<Uuid> = ids.iter().copied().collect();
        let upper = if at_end {
            state.cursor
        } else {
            stored
                .values()
                .copied()
                .max()
                .unwrap_or(state.frontier.cursor)
                .min(state.cursor)
        }
        // A window of repairs read back (old events) must not move the
        // proof back.
        .max(state.frontier.cursor);
        let mut after = state.frontier.cursor;
        let (mut republished, mut first_missing, mut pages) = (0u64, None, 0);
        while after < upper && pages < MAX_PAGES_PER_STEP {
            pages += 1;
            if lease.renewal_due() {
                lease.renew().await?;
            }
            let page = event_log::read_committed_after(
                &self.pool,
                None,
                after,
                STORE_PAGE,
                Reading::AsStored,
            )
            .await?;
            let Some(last) = page.last() else { break };
            after = last.cursor().min(upper);
            let missing: Vec<StoredEvent> = page
                .into_iter()
                .filter(|e| e.cursor() <= upper && !in_window.contains(&e.event_id))
                .collect();
            if missing.is_empty() {
                continue;
            }
            first_missing.get_or_insert(missing[0].position);
            republished += self.republish(lease, state, &stream, &missing).await?;
        }
        if republished > 0 {
            let detail = format!(
                "{republished} event(s) missing from the stream after sequence {} \
                 (the first at store position {}); republished from the store",
                state.frontier.seq,
                first_missing.unwrap_or_default()
            );
            tracing::warn!(relay = %self.settings.name, "{detail}");
            self.record(lease, "republished", &detail, republished as i64)
                .await?;
        }
        if after < upper && pages == MAX_PAGES_PER_STEP {
            // A long hole: what was compared so far is proven; the rest is
            // compared with the same window next step (the leader saves and
            // renews its lease between steps).
            state.frontier.cursor = after;
            return Ok(());
        }
        if at_end {
            state.stream_ahead = false;
        }
        let (seq, event_id) = match window.last() {
            Some(message) => (message.seq, message.event_id),
            // Every message after the frontier was deleted.
            None if start <= last_seq => (last_seq, None),
            None => (state.frontier.seq, state.frontier.event_id),
        };
        state.frontier = Frontier {
            seq,
            event_id,
            cursor: upper,
        };
        self.passed_repairs(state).await
    }

    /// Publishes `events` again; a duplicate acknowledgement whose original
    /// is no longer in the stream (deleted within the duplicate window) is
    /// sent once more under a repair message id of its own. Returns how
    /// many were stored.
    async fn republish(
        &self,
        lease: &mut Lease,
        state: &mut RelayState,
        stream: &Stream,
        events: &[StoredEvent],
    ) -> anyhow::Result<u64> {
        let epoch = state.epoch;
        let acks = self.publish(events, epoch).await?;
        let mut stored: Vec<(i64, Uuid)> = Vec::new();
        let mut again = Vec::new();
        for (event, ack) in events.iter().zip(&acks) {
            if lease.renewal_due() {
                lease.renew().await?;
            }
            if !ack.duplicate {
                stored.push((ack.sequence as i64, event.event_id));
            } else if message_event_id(stream, ack.sequence).await? != Some(event.event_id) {
                again.push((event, ack.sequence));
            }
        }
        for (event, _gone) in again {
            // Unique per attempt: an earlier repair's id may be remembered
            // by the duplicate window too.
            let message_id = format!("{}:repair:{}", event.event_id, Uuid::new_v4().simple());
            let (ack, span) = self.send(event, epoch, Some(message_id)).await?;
            let ack = ack.await?;
            drop(span);
            stored.push((ack.sequence as i64, event.event_id));
        }
        // Above the frontier until the walk passes them: checked at every
        // check, and repaired again if lost again.
        let (seqs, ids): (Vec<i64>, Vec<Uuid>) = stored.iter().copied().unzip();
        sqlx::query!(
            "insert into relay_pending_repairs (relay_name, seq, event_id)
             select $1, s, e from unnest($2::bigint[], $3::uuid[]) as r(s, e)
             on conflict (relay_name, seq) do update set event_id = excluded.event_id",
            &self.settings.name,
            &seqs,
            &ids
        )
        .execute(&self.pool)
        .await?;
        if let Some(highest) = seqs.iter().max() {
            state.repaired_up_to_seq = state.repaired_up_to_seq.max(*highest as u64);
            state.pending_repair_max = state.pending_repair_max.max(*highest as u64);
        }
        Ok(stored.len() as u64)
    }

    /// Forgets the pending repairs the frontier has passed (it proves them
    /// itself from now on).
    async fn passed_repairs(&self, state: &mut RelayState) -> anyhow::Result<()> {
        if state.pending_repair_max == 0 || state.pending_repair_max > state.frontier.seq {
            return Ok(());
        }
        sqlx::query!(
            "delete from relay_pending_repairs where relay_name = $1 and seq <= $2",
            &self.settings.name,
            state.frontier.seq as i64
        )
        .execute(&self.pool)
        .await?;
        state.pending_repair_max = 0;
        Ok(())
    }

    /// The pending repairs are still where they were stored, or those that
    /// are not are republished (JetStream lost them too).
    async fn check_pending_repairs(
        &self,
        lease: &mut Lease,
        state: &mut RelayState,
        stream: &Stream,
        last_sequence: u64,
        deleted: &[u64],
    ) -> anyhow::Result<()> {
        if state.pending_repair_max == 0 {
            return Ok(());
        }
        let top: Option<Uuid> = sqlx::query_scalar!(
            "select event_id from relay_pending_repairs where relay_name = $1 and seq = $2",
            &self.settings.name,
            state.pending_repair_max as i64
        )
        .fetch_optional(&self.pool)
        .await?;
        let suspect = last_sequence < state.pending_repair_max
            || deleted
                .iter()
                .any(|d| *d > state.frontier.seq && *d <= state.pending_repair_max)
            || message_event_id(stream, state.pending_repair_max).await? != top;
        if !suspect {
            return Ok(());
        }
        let pending = sqlx::query!(
            "select seq, event_id from relay_pending_repairs where relay_name = $1 and seq > $2
             order by seq",
            &self.settings.name,
            state.frontier.seq as i64
        )
        .fetch_all(&self.pool)
        .await?;
        let mut lost = Vec::new();
        for repair in pending {
            if lease.renewal_due() {
                lease.renew().await?;
            }
            if message_event_id(stream, repair.seq as u64).await? != Some(repair.event_id) {
                lost.push(repair.event_id);
            }
        }
        if lost.is_empty() {
            return Ok(());
        }
        let events = event_log::read_by_ids(&self.pool, &lost, Reading::AsStored).await?;
        let republished = self.republish(lease, state, stream, &events).await?;
        let detail = format!(
            "{} republished event(s) were lost from the stream again; republished",
            lost.len()
        );
        tracing::warn!(relay = %self.settings.name, "{detail}");
        self.record(lease, "republished", &detail, republished as i64)
            .await
    }

    /// The stream holds a message (at `first_foreign`) of an event the store
    /// does not have: the store was restored from an older backup, or the
    /// relay is pointed at another store's stream.
    async fn diverged(
        &self,
        lease: &mut Lease,
        state: &mut RelayState,
        stream: &mut Stream,
        first_foreign: u64,
    ) -> anyhow::Result<()> {
        let why = format!(
            "the stream holds events the event store does not, from sequence {first_foreign} \
             (the store was restored from an older backup?)"
        );
        match self.settings.on_divergence {
            DivergencePolicy::Refill => {
                self.refill(lease, state, stream, Some(first_foreign), &why)
                    .await
            }
            DivergencePolicy::Halt => {
                tracing::error!(relay = %self.settings.name, "{why}; publishing stops until `vcintel stream refill`");
                self.record(lease, "halted", &why, 0).await?;
                state.diverged = Some(why);
                Ok(())
            }
        }
    }

    /// Keeps the stream's messages from `orphans_from` on whose events the
    /// store lacks, purges the stream, and starts a new epoch: the relay
    /// republishes every stored event into it.
    async fn refill(
        &self,
        lease: &mut Lease,
        state: &mut RelayState,
        stream: &mut Stream,
        orphans_from: Option<u64>,
        why: &str,
    ) -> anyhow::Result<()> {
        let mut orphans = 0;
        if let Some(from) = orphans_from {
            orphans = self.keep_orphans(lease, stream, from, state.epoch).await?;
        }
        // Proves this relay still leads right before the one step that
        // cannot be taken back.
        lease.renew().await?;
        let purged = stream.purge().await?.purged;
        let epoch = state.epoch + 1;
        let store_id = self.store_id().await?;
        let info = self
            .label_stream(&stream.cached_info().config, epoch, &store_id)
            .await?;
        self.forget_stream_bookkeeping(lease).await?;
        *state = RelayState::new_epoch(&info, epoch, state.saves, true);
        let detail = format!(
            "{why}: kept {orphans} message(s) the store lacks in stream_orphans, purged \
             {purged} message(s), republishing every event under epoch {epoch}"
        );
        tracing::warn!(relay = %self.settings.name, "{detail}");
        self.record(lease, "refilled", &detail, 0).await?;
        self.save_state(lease, state).await
    }

    /// Copies every message from `from` on whose event the store does not
    /// have into `stream_orphans`; how many.
    async fn keep_orphans(
        &self,
        lease: &mut Lease,
        stream: &Stream,
        from: u64,
        epoch: i64,
    ) -> anyhow::Result<u64> {
        let mut next = from;
        let mut kept = 0;
        loop {
            if lease.renewal_due() {
                lease.renew().await?;
            }
            let window = read_window(stream, next, WINDOW).await?;
            let Some(last) = window.last() else { break };
            next = last.seq + 1;
            let ids: Vec<Uuid> = window.iter().filter_map(|m| m.event_id).collect();
            let stored = cursors_of(&self.pool, &ids).await?;
            for message in window
                .iter()
                .filter(|m| m.event_id.is_none_or(|id| !stored.contains_key(&id)))
            {
                let body: serde_json::Value = serde_json::from_slice(&message.payload)
                    .unwrap_or_else(|_| {
                        serde_json::Value::String(
                            String::from_utf8_lossy(&message.payload).into_owned(),
                        )
                    });
                sqlx::query!(
                    "insert into stream_orphans (epoch, stream_seq, event_id, subject, message)
                     values ($1, $2, $3, $4, $5) on conflict do nothing",
                    epoch,
                    message.seq as i64,
                    message.event_id.unwrap_or_default(),
                    &message.subject,
                    body
                )
                .execute(&self.pool)
                .await?;
                kept += 1;
            }
            if window.len() < WINDOW {
                break;
            }
        }
        Ok(kept)
    }

    /// The stream is gone (its store was lost, or someone deleted it):
    /// recreate it as configured, under a new epoch, and republish every
    /// event. Consumers recreate their durable consumers on the new stream.
    async fn recreate_stream(
        &self,
        lease: &mut Lease,
        state: &mut RelayState,
    ) -> anyhow::Result<()> {
        let epoch = state.epoch + 1;
        let store_id = self.store_id().await?;
        lease.renew().await?;
        crate::stream::ensure_events_stream(&self.js, &self.topology, &self.settings.stream)
            .await?;
        let stream = self.js.get_stream(self.topology.stream_name()).await?;
        let info = self
            .label_stream(&stream.cached_info().config, epoch, &store_id)
            .await?;
        self.forget_stream_bookkeeping(lease).await?;
        *state = RelayState::new_epoch(&info, epoch, state.saves, false);
        let detail = format!(
            "the stream {} was missing: recreated, republishing every event under epoch {epoch}",
            info.config.name
        );
        tracing::warn!(relay = %self.settings.name, "{detail}");
        self.record(lease, "stream_missing", &detail, 0).await?;
        self.save_state(lease, state).await
    }

    /// Writes the store id and the epoch into the stream's metadata; the
    /// stream as it is then.
    async fn label_stream(
        &self,
        config: &jetstream::stream::Config,
        epoch: i64,
        store_id: &Uuid,
    ) -> anyhow::Result<jetstream::stream::Info> {
        let mut metadata = config.metadata.clone();
        metadata.insert(STORE_ID_KEY.to_owned(), store_id.to_string());
        metadata.insert(EPOCH_KEY.to_owned(), epoch.to_string());
        Ok(self
            .js
            .update_stream(events_stream_config(
                &self.topology,
                &self.settings.stream,
                config.num_replicas,
                metadata,
            ))
            .await?)
    }

    /// Forgets everything tied to the old stream's sequences (a new
    /// stream, or a purged one, starts a new proof).
    async fn forget_stream_bookkeeping(&self, lease: &Lease) -> anyhow::Result<()> {
        for table in [
            "relay_stream_marks",
            "relay_pending_repairs",
            "relay_deleted_handled",
        ] {
            sqlx::query(&format!(
                "delete from {table} where relay_name = $1
                   and lease_held($2, $3, $4)"
            ))
            .bind(&self.settings.name)
            .bind(lease.name())
            .bind(lease.holder())
            .bind(lease.token())
            .execute(&self.pool)
            .await?;
        }
        Ok(())
    }

    /// Remembers a divergence and what was done about it (for
    /// `vcintel stream status` and `/health/ready`).
    pub(super) async fn record(
        &self,
        lease: &Lease,
        kind: &str,
        detail: &str,
        republished: i64,
    ) -> anyhow::Result<()> {
        metrics::counter!("vcintel_relay_repairs_total", "kind" => kind.to_owned()).increment(1);
        sqlx::query!(
            "insert into relay_repairs (relay_name, kind, detail, republished)
             select $1, $2, $3, $4
             where lease_held($5, $6, $7)",
            &self.settings.name,
            kind,
            detail,
            republished,
            lease.name(),
            lease.holder(),
            lease.token()
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

impl RelayState {
    /// A fresh proof for a stream just created or purged (`info`), under
    /// `epoch`: every event is to be published again.
    fn new_epoch(
        info: &jetstream::stream::Info,
        epoch: i64,
        saves: i64,
        refill_done: bool,
    ) -> Self {
        RelayState {
            cursor: CommitCursor::default(),
            stream_created: Some(created_of(info)),
            epoch,
            frontier: Frontier {
                seq: info.state.last_sequence,
                event_id: None,
                cursor: CommitCursor::default(),
            },
            repaired_up_to_seq: 0,
            pending_repair_max: 0,
            first_seq_seen: info.state.first_sequence,
            deleted_seen: info.state.deleted_count.unwrap_or(0),
            diverged: None,
            refill_done,
            last_mark_seq: 0,
            saves,
            stream_ahead: false,
        }
    }
}

/// When the stream was created, to the microsecond (what Postgres keeps):
/// it tells one stream instance from a later one of the same name.
fn created_of(info: &jetstream::stream::Info) -> chrono::DateTime<chrono::Utc> {
    let micros = (info.created.unix_timestamp_nanos() / 1_000) as i64;
    chrono::DateTime::from_timestamp_micros(micros).unwrap_or_default()
}

fn is_stream_not_found(error: &jetstream::context::GetStreamError) -> bool {
    matches!(error.kind(), GetStreamErrorKind::JetStream(e)
        if e.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND)
}

impl Relay {
    /// This database's id (migration `self_healing`).
    async fn store_id(&self) -> Result<Uuid, sqlx::Error> {
        self.store_id
            .get_or_try_init(|| {
                sqlx::query_scalar!("select store_id from store_identity").fetch_one(&self.pool)
            })
            .await
            .copied()
    }
}

/// The event id of the message at `seq`, if there is one.
async fn message_event_id(stream: &Stream, seq: u64) -> anyhow::Result<Option<Uuid>> {
    match stream.get_raw_message(seq).await {
        Ok(message) => Ok(event_id_of(&message.headers, &message.payload)),
        Err(error)
            if matches!(
                error.kind(),
                jetstream::stream::LastRawMessageErrorKind::NoMessageFound
            ) =>
        {
            Ok(None)
        }
        Err(error) => Err(error.into()),
    }
}

/// A message's event id: the CloudEvents `id` of its body.
fn event_id_of(_headers: &async_nats::HeaderMap, payload: &[u8]) -> Option<Uuid> {
    #[derive(serde::Deserialize)]
    struct Id {
        id: Uuid,
    }
    serde_json::from_slice::<Id>(payload).ok().map(|m| m.id)
}

/// Up to `max` messages from sequence `start` on, in order, through a
/// short-lived consumer that acknowledges nothing.
async fn read_window(stream: &Stream, start: u64, max: usize) -> anyhow::Result<Vec<Streamed>> {
    let consumer = stream
        .create_consumer(pull::Config {
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: start,
            },
            ack_policy: AckPolicy::None,
            inactive_threshold: Duration::from_secs(30),
            memory_storage: true,
            ..Default::default()
        })
        .await?;
    let name = consumer.cached_info().name.clone();
    let mut messages = consumer.fetch().max_messages(max).messages().await?;
    let mut window = Vec::new();
    while let Some(message) = messages.next().await {
        let message = message.map_err(|e| anyhow::anyhow!("reading the stream back: {e}"))?;
        let seq = message
            .info()
            .map_err(|e| anyhow::anyhow!("message info: {e}"))?
            .stream_sequence;
        window.push(Streamed {
            seq,
            event_id: event_id_of(
                message
                    .headers
                    .as_ref()
                    .unwrap_or(&async_nats::HeaderMap::new()),
                &message.payload,
            ),
            subject: message.subject.to_string(),
            payload: message.payload.clone(),
        });
    }
    let _ = stream.delete_consumer(&name).await;
    Ok(window)
}

/// The commit cursor of each of these events the store has.
async fn cursors_of(
    pool: &PgPool,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, CommitCursor>, anyhow::Error> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = sqlx::query!(
        r#"select event_id, tx_id::text as "tx_id!", position from events where event_id = any($1)"#,
        ids
    )
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|row| {
            Ok((
                row.event_id,
                CommitCursor {
                    tx_id: row.tx_id.parse()?,
                    position: row.position,
                },
            ))
        })
        .collect()
}

/// What the relay has proven and repaired, for status and health.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StreamHealth {
    pub epoch: i64,
    /// Stream sequence the proof reaches.
    pub verified_seq: i64,
    /// Events published but not yet proven to be in the stream.
    pub unverified: i64,
    pub verified_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Set while the relay is halted by a divergence it will not repair
    /// by itself.
    pub diverged: Option<String>,
    pub leader: Option<String>,
    /// The latest divergences found and what was done, newest first:
    /// `(when, kind, detail, events republished)`.
    pub repairs: Vec<(chrono::DateTime<chrono::Utc>, String, String, i64)>,
    pub orphans: i64,
}

/// The relay's proof and repairs, as stored.
pub async fn stream_health(pool: &PgPool, relay_name: &str) -> anyhow::Result<StreamHealth> {
    let row = sqlx::query!(
        r#"select epoch, verified_seq, verified_at, diverged,
                last_tx_id::text as "last_tx!", last_position,
                verified_tx_id::text as "verified_tx!", verified_position
         from relay_checkpoints where relay_name = $1"#,
        relay_name
    )
    .fetch_optional(pool)
    .await?;
    let (epoch, verified_seq, verified_at, diverged, unverified) = match row {
        Some(row) => {
            let verified = CommitCursor {
                tx_id: row.verified_tx.parse()?,
                position: row.verified_position,
            };
            let last = CommitCursor {
                tx_id: row.last_tx.parse()?,
                position: row.last_position,
            };
            // Counted up to a cap: a proof far behind reads as "100000".
            let unverified = if verified < last {
                event_log::count_events_after(pool, verified, 100_000).await?
                    - event_log::count_events_after(pool, last, 100_000).await?
            } else {
                0
            };
            (
                row.epoch,
                row.verified_seq,
                row.verified_at,
                row.diverged,
                unverified.max(0),
            )
        }
        None => (1, 0, None, None, 0),
    };
    let repairs = sqlx::query!(
        "select occurred_at, kind, detail, republished from relay_repairs
         where relay_name = $1 order by id desc limit 10",
        relay_name
    )
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(|r| (r.occurred_at, r.kind, r.detail, r.republished))
    .collect();
    let orphans: i64 = sqlx::query_scalar!(r#"select count(*) as "count!" from stream_orphans"#)
        .fetch_one(pool)
        .await?;
    let leader = crate::lease::current_holder(pool, &format!("relay:{relay_name}"))
        .await?
        .map(|(holder, token)| format!("{holder} (token {token})"));
    Ok(StreamHealth {
        epoch,
        verified_seq,
        unverified,
        verified_at,
        diverged,
        leader,
        repairs,
        orphans,
    })
}
