//! The relay: tails the event store in commit-safe order and publishes each
//! event to JetStream, checkpointing only after JetStream acknowledged.
//!
//! Commands never publish (no dual write). A crash after publishing and
//! before checkpointing republishes the same events on restart; the
//! `Nats-Msg-Id` header lets the stream's duplicate window drop them, and
//! consumers' version checks absorb any that arrive after it.
//!
//! Only one relay per database publishes at a time: each holds a Postgres
//! advisory lock on a dedicated connection, so extra instances wait as hot
//! standbys and take over when the holder's connection dies.

use crate::event_log::{self, CommitCursor, StoredEvent};
use crate::failpoint;
use crate::wire::{EventMessage, Topology};
use async_nats::jetstream::{self, message::PublishMessage};
use async_nats::HeaderMap;
use sqlx::postgres::PgListener;
use sqlx::{Connection, PgConnection, PgPool};
use std::future::IntoFuture;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

pub const NOTIFY_CHANNEL: &str = "vcintel_events_appended";

/// The name (and checkpoint key) of the relay that feeds the events stream.
pub const RELAY_NAME: &str = "jetstream";

/// Longest a busy relay goes between checkpoints.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(50);

#[derive(Debug, Clone)]
pub struct RelaySettings {
    pub name: String,
    pub batch_size: i64,
    /// How long to wait for a notification before looking anyway.
    pub idle_poll: Duration,
}

impl Default for RelaySettings {
    fn default() -> Self {
        Self {
            name: RELAY_NAME.to_owned(),
            batch_size: 500,
            idle_poll: Duration::from_secs(1),
        }
    }
}

#[derive(Debug)]
pub struct Relay {
    pool: PgPool,
    database_url: String,
    js: jetstream::Context,
    topology: Topology,
    settings: RelaySettings,
}

impl Relay {
    pub fn new(
        pool: PgPool,
        database_url: String,
        js: jetstream::Context,
        topology: Topology,
        settings: RelaySettings,
    ) -> Self {
        Self {
            pool,
            database_url,
            js,
            topology,
            settings,
        }
    }

    /// Runs until `shutdown` is cancelled; errors are retried with backoff.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let mut backoff = Duration::from_millis(100);
        while !shutdown.is_cancelled() {
            match self.lead(&shutdown).await {
                Ok(()) => return Ok(()),
                Err(error) => {
                    tracing::error!(error = format!("{error:#}"), "relay failed; restarting");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.cancelled() => return Ok(()),
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        Ok(())
    }

    /// Waits for leadership, then relays until shutdown or an error.
    async fn lead(&self, shutdown: &CancellationToken) -> anyhow::Result<()> {
        let mut lock_conn = PgConnection::connect(&self.database_url).await?;
        let lock_key = self.lock_key();
        loop {
            let acquired: bool =
                sqlx::query_scalar("select pg_try_advisory_lock(hashtextextended($1, 0))")
                    .bind(&lock_key)
                    .fetch_one(&mut lock_conn)
                    .await?;
            if acquired {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = shutdown.cancelled() => return Ok(()),
            }
        }
        tracing::info!(relay = %self.settings.name, "relay is the leader");

        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(NOTIFY_CHANNEL).await?;
        let mut cursor = self
            .reconcile_with_stream(load_checkpoint(&self.pool, &self.settings.name).await?)
            .await?;
        let mut saved = cursor;
        let mut last_saved = Instant::now();
        let mut held_back_wait = Duration::from_millis(2);
        loop {
            if shutdown.is_cancelled() {
                return Ok(());
            }
            let batch =
                event_log::read_committed_after(&self.pool, None, cursor, self.settings.batch_size)
                    .await?;
            let full = batch.len() as i64 >= self.settings.batch_size;
            if let Some(last) = batch.last() {
                cursor = last.cursor();
                self.publish(&batch).await?;
                failpoint::hit("relay.after_publish");
                // Under load, checkpoint at most every CHECKPOINT_EVERY (a
                // crash republishes a little more, and the stream drops it
                // as duplicates); when idle, checkpoint at once.
                if last_saved.elapsed() >= CHECKPOINT_EVERY {
                    self.checkpoint(&mut lock_conn, cursor).await?;
                    (saved, last_saved) = (cursor, Instant::now());
                }
                held_back_wait = Duration::from_millis(2);
                // A full batch may have more behind it; after a partial one,
                // whatever committed meanwhile has sent a notification.
                if full || drain(&mut listener) {
                    continue;
                }
            }
            if saved != cursor {
                self.checkpoint(&mut lock_conn, cursor).await?;
                (saved, last_saved) = (cursor, Instant::now());
            }
            // Nothing visible yet. If events exist behind an older running
            // transaction, look again soon; else sleep until notified.
            let wait = if event_log::has_events_after(&self.pool, cursor).await? {
                let wait = held_back_wait;
                held_back_wait = (held_back_wait * 2).min(Duration::from_millis(50));
                wait
            } else {
                self.settings.idle_poll
            };
            tokio::select! {
                notification = listener.recv() => {
                    notification?;
                    // One look serves every commit notified so far: a burst
                    // of commits wakes the relay once, not once per commit.
                    drain(&mut listener);
                }
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.cancelled() => return Ok(()),
            }
        }
    }

    /// Saves the checkpoint through the session that holds the leader lock:
    /// a session lock lasts as long as its session, so a statement that runs
    /// on it proves this relay still leads, and one that fails (the session
    /// ended; another relay may lead now) writes nothing.
    async fn checkpoint(
        &self,
        lock_conn: &mut PgConnection,
        cursor: CommitCursor,
    ) -> anyhow::Result<()> {
        save_checkpoint(&mut *lock_conn, &self.settings.name, cursor).await?;
        Ok(())
    }

    fn lock_key(&self) -> String {
        format!("vcintel-relay:{}", self.settings.name)
    }

    async fn publish(&self, batch: &[StoredEvent]) -> anyhow::Result<()> {
        let mut acks = Vec::with_capacity(batch.len());
        for event in batch {
            let message = EventMessage::from_stored(event)?;
            let subject = self.topology.subject_for(
                &message.workspaceid,
                &event.aggregate_type,
                &event.event_type,
            );
            let mut headers = HeaderMap::new();
            headers.insert("Content-Type", "application/cloudevents+json");
            if let Some(traceparent) = event.metadata_str(vcintel_commands::metadata::TRACEPARENT) {
                headers.insert("traceparent", traceparent);
            }
            let publish = PublishMessage::build()
                .headers(headers)
                .message_id(event.event_id.to_string())
                .payload(serde_json::to_vec(&message)?.into());
            acks.push(self.js.send_publish(subject, publish).await?);
        }
        // Publishes are pipelined on one connection, so the stream stores
        // them in commit order; the acks are awaited together.
        for ack in futures::future::join_all(acks.into_iter().map(IntoFuture::into_future)).await {
            ack?;
        }
        Ok(())
    }

    /// JetStream can lose acknowledged messages (a power loss within its
    /// fsync interval, or a lost stream). Postgres is the truth: if the
    /// stream's newest message is older than the checkpoint, the checkpoint
    /// moves back to it and the missing tail is published again.
    async fn reconcile_with_stream(
        &self,
        checkpoint: CommitCursor,
    ) -> anyhow::Result<CommitCursor> {
        let mut stream = self.js.get_stream(self.topology.stream_name()).await?;
        let state = stream.info().await?.state.clone();
        let stream_cursor = if state.messages == 0 {
            CommitCursor::default()
        } else {
            let last = stream.get_raw_message(state.last_sequence).await?;
            let message: EventMessage = serde_json::from_slice(&last.payload)?;
            let tx_id: Option<String> =
                sqlx::query_scalar("select tx_id::text from events where position = $1")
                    .bind(message.position)
                    .fetch_optional(&self.pool)
                    .await?;
            match tx_id {
                Some(tx) => CommitCursor {
                    tx_id: tx.parse()?,
                    position: message.position,
                },
                None => anyhow::bail!(
                    "the stream's newest message (position {}) is not in this event store: \
                     is the relay pointed at the right stream?",
                    message.position
                ),
            }
        };
        if stream_cursor < checkpoint {
            tracing::warn!(
                checkpoint = ?checkpoint,
                stream = ?stream_cursor,
                "the stream lacks events the relay had published; publishing them again"
            );
            save_checkpoint(&self.pool, &self.settings.name, stream_cursor).await?;
            return Ok(stream_cursor);
        }
        Ok(checkpoint)
    }
}

async fn save_checkpoint(
    db: impl sqlx::PgExecutor<'_>,
    relay_name: &str,
    cursor: CommitCursor,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into relay_checkpoints (relay_name, last_tx_id, last_position)
         values ($1, $2::text::xid8, $3)
         on conflict (relay_name) do update
           set last_tx_id = excluded.last_tx_id,
               last_position = excluded.last_position,
               updated_at = now()",
    )
    .bind(relay_name)
    .bind(cursor.tx_id.to_string())
    .bind(cursor.position)
    .execute(db)
    .await?;
    Ok(())
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
    let row: Option<(String, i64)> = sqlx::query_as(
        "select last_tx_id::text, last_position from relay_checkpoints where relay_name = $1",
    )
    .bind(relay_name)
    .fetch_optional(pool)
    .await?;
    Ok(match row {
        Some((tx, position)) => CommitCursor {
            tx_id: tx.parse().map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
            position,
        },
        None => CommitCursor::default(),
    })
}

/// How far the named relay is behind the event store, counting at most `cap`.
pub async fn relay_lag(pool: &PgPool, relay_name: &str, cap: i64) -> Result<i64, sqlx::Error> {
    let cursor = load_checkpoint(pool, relay_name).await?;
    event_log::count_events_after(pool, cursor, cap).await
}
