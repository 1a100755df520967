//! Checks of the event store's invariants, for `vcintel events verify`:
//! every aggregate's sequence runs 1..n without gaps, and every stored
//! event decodes with today's code (a failure means an event version
//! needs an upcaster).

use crate::event_log::{self, CommitCursor, StoredEvent};
use serde::de::DeserializeOwned;
use sqlx::PgPool;

/// What a verification found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Verification {
    pub events: u64,
    pub aggregates: u64,
    /// `type/id: problem`, at most 100 of them.
    pub problems: Vec<String>,
    pub problem_count: u64,
}

impl Verification {
    fn problem(&mut self, text: String) {
        self.problem_count += 1;
        if self.problems.len() < 100 {
            self.problems.push(text);
        }
    }
}

fn decodes<E: DeserializeOwned>(event: &StoredEvent) -> Result<(), String> {
    serde_json::from_value::<E>(event.payload.clone())
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Whether `event` decodes into today's event type for its aggregate.
pub fn decode_with_todays_code(event: &StoredEvent) -> Result<(), String> {
    use vcintel_domain::*;
    match event.aggregate_type.as_str() {
        company::AGGREGATE_TYPE => decodes::<company::CompanyEvent>(event),
        user::AGGREGATE_TYPE => decodes::<user::UserEvent>(event),
        workspace::AGGREGATE_TYPE => decodes::<workspace::WorkspaceEvent>(event),
        note::AGGREGATE_TYPE => decodes::<note::NoteEvent>(event),
        list::AGGREGATE_TYPE => decodes::<list::ListEvent>(event),
        saved_search::AGGREGATE_TYPE => decodes::<saved_search::SavedSearchEvent>(event),
        enrichment::AGGREGATE_TYPE => decodes::<enrichment::EnrichmentEvent>(event),
        budget::AGGREGATE_TYPE => decodes::<budget::BudgetEvent>(event),
        other => Err(format!("unknown aggregate type `{other}`")),
    }
}

/// Reads the whole store once, in commit order, `batch` events at a time;
/// `progress` is called with the events read so far.
pub async fn verify(
    pool: &PgPool,
    batch: i64,
    mut progress: impl FnMut(u64),
) -> Result<Verification, sqlx::Error> {
    let mut result = Verification::default();
    let gaps: Vec<(String, String, i64, i64, i64)> = sqlx::query_as(
        "select aggregate_type, aggregate_id, count(*), min(sequence), max(sequence)
         from events group by 1, 2
         having min(sequence) <> 1 or max(sequence) <> count(*)",
    )
    .fetch_all(pool)
    .await?;
    for (kind, id, count, min, max) in gaps {
        result.problem(format!(
            "{kind}/{id}: sequences {min}..{max} but {count} events (a gap)"
        ));
    }
    result.aggregates = sqlx::query_scalar::<_, i64>(
        "select count(*) from (select 1 from events group by aggregate_type, aggregate_id) a",
    )
    .fetch_one(pool)
    .await? as u64;
    let mut after = CommitCursor::default();
    loop {
        let events = event_log::read_visible_after(pool, after, batch).await?;
        let Some(last) = events.last() else { break };
        after = last.cursor();
        for event in &events {
            result.events += 1;
            if let Err(reason) = decode_with_todays_code(event) {
                result.problem(format!(
                    "{}/{} v{} ({} {}): does not decode: {reason}",
                    event.aggregate_type,
                    event.aggregate_id,
                    event.sequence,
                    event.event_type,
                    event.event_version
                ));
            }
        }
        progress(result.events);
    }
    Ok(result)
}
