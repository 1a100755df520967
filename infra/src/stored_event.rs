//! A row of the `events` table as every reader sees it, and the point in
//! commit-safe order a reader has reached: the types the event log hands
//! out and the vault, the wire format and the relay take in.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::postgres::PgRow;
use sqlx::{FromRow, Row};
use uuid::Uuid;

/// A row of the `events` table with the columns postgres-es does not know.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub event_id: Uuid,
    pub position: i64,
    pub tx_id: u64,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    pub payload: Value,
    pub metadata: Value,
    pub recorded_at: DateTime<Utc>,
}

impl StoredEvent {
    pub fn metadata_str(&self, key: &str) -> Option<&str> {
        self.metadata.get(key).and_then(Value::as_str)
    }

    pub fn cursor(&self) -> CommitCursor {
        CommitCursor {
            tx_id: self.tx_id,
            position: self.position,
        }
    }
}

impl<'r> FromRow<'r, PgRow> for StoredEvent {
    fn from_row(row: &'r PgRow) -> Result<Self, sqlx::Error> {
        let tx_text: String = row.try_get("tx_id_text")?;
        let tx_id = tx_text.parse().map_err(|e| sqlx::Error::ColumnDecode {
            index: "tx_id_text".into(),
            source: Box::new(e),
        })?;
        let event_type: String = row.try_get("event_type")?;
        let (event_version, payload) = to_current_version(
            &event_type,
            row.try_get("event_version")?,
            row.try_get("payload")?,
        );
        Ok(StoredEvent {
            event_id: row.try_get("event_id")?,
            position: row.try_get("position")?,
            tx_id,
            aggregate_type: row.try_get("aggregate_type")?,
            aggregate_id: row.try_get("aggregate_id")?,
            sequence: row.try_get("sequence")?,
            event_type,
            event_version,
            payload,
            metadata: row.try_get("metadata")?,
            recorded_at: row.try_get("recorded_at")?,
        })
    }
}

/// Every stored event is read as today's version of its type. One that
/// cannot be (written by newer code, or a missing step) stays as stored, so
/// decoding it fails and names it (`vcintel events verify` reports why).
fn to_current_version(event_type: &str, version: String, payload: Value) -> (String, Value) {
    if !crate::upcast::is_outdated(event_type, &version) {
        return (version, payload);
    }
    match crate::upcast::upcast(event_type, &version, payload.clone()) {
        Ok((current, upcast)) => (current.to_string(), upcast),
        Err(error) => {
            tracing::warn!(%error, "event read as stored");
            (version, payload)
        }
    }
}

/// A point in commit-safe order: everything at or before it has been handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct CommitCursor {
    pub tx_id: u64,
    pub position: i64,
}
