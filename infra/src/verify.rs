//! Checks of the event store's invariants, for `vcintel events verify`:
//! every aggregate's sequence runs 1..n without gaps, and every stored
//! event decodes with today's code (a failure means an event version
//! needs an upcaster).

use crate::event_log::{self, CommitCursor, StoredEvent};
use serde_json::Value;
use vcintel_domain::events::{self, EventFamily, FamilyVisitor};

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

/// Whether `event` (read through the upcasters) is today's version of its
/// type and decodes into today's event type for its aggregate.
pub fn decode_with_todays_code(event: &StoredEvent) -> Result<(), String> {
    // The event was read through the upcasters: if it is still not today's
    // version, the chain says why (unknown type, newer code, missing step).
    // Only the chain is checked here, so no payload is needed.
    crate::upcast::upcast(&event.event_type, &event.event_version, Value::Null)
        .map_err(|e| e.to_string())?;
    decode_payload(&event.aggregate_type, &event.payload)
}

/// Whether a stored payload (`{"<event type>": data}`) of `aggregate_type`
/// decodes into today's event type.
pub fn decode_payload(aggregate_type: &str, payload: &serde_json::Value) -> Result<(), String> {
    struct Decodes<'a>(&'a serde_json::Value);
    impl FamilyVisitor for Decodes<'_> {
        type Output = Result<(), String>;
        fn visit<F: EventFamily>(&mut self) -> Self::Output {
            F::deserialize(self.0)
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
    }
    events::visit_family(aggregate_type, &mut Decodes(payload))
        .unwrap_or_else(|| Err(format!("unknown aggregate type `{aggregate_type}`")))
}

/// Reads the whole store once, in commit order, `batch` events at a time;
/// `progress` is called with the events read so far.
/// Personal values are opened first (as every reader does), so a value
/// that does not open under its subject's key is reported too.
pub async fn verify(
    vault: &crate::vault::Vault,
    batch: i64,
    mut progress: impl FnMut(u64),
) -> Result<Verification, sqlx::Error> {
    let pool = vault.pool();
    let mut result = Verification::default();
    let gaps = sqlx::query!(
        r#"select aggregate_type, aggregate_id, count(*) as "count!",
                  min(sequence) as "min!", max(sequence) as "max!"
         from events group by 1, 2
         having min(sequence) <> 1 or max(sequence) <> count(*)"#
    )
    .fetch_all(pool)
    .await?;
    for gap in gaps {
        result.problem(format!(
            "{}/{}: sequences {}..{} but {} events (a gap)",
            gap.aggregate_type, gap.aggregate_id, gap.min, gap.max, gap.count
        ));
    }
    result.aggregates = sqlx::query_scalar!(
        r#"select count(*) as "count!"
         from (select 1 from events group by aggregate_type, aggregate_id) a"#
    )
    .fetch_one(pool)
    .await? as u64;
    let mut after = CommitCursor::default();
    loop {
        let events = event_log::read_visible_after(
            pool,
            None,
            after,
            batch,
            event_log::Reading::Opened(vault),
        )
        .await?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// Frozen payloads, one per event type and version ever written. A new
    /// version adds a file; none is ever edited, so a change that breaks
    /// reading old events fails here.
    fn fixtures() -> Vec<(String, String, serde_json::Value)> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/events");
        let mut all = Vec::new();
        for entry in std::fs::read_dir(dir).expect("fixtures directory") {
            let path = entry.expect("entry").path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let stem = name.strip_suffix(".json").expect("a .json fixture");
            let (event_type, version) = stem.rsplit_once(".v").expect("<type>.v<version>.json");
            let payload = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            all.push((event_type.to_owned(), version.to_owned(), payload));
        }
        all
    }

    #[test]
    fn every_event_version_ever_written_still_decodes() {
        let fixtures = fixtures();
        for (event_type, version, payload) in &fixtures {
            let (aggregate, _) = events::event_type_named(event_type)
                .unwrap_or_else(|| panic!("{event_type} is not in the catalogue"));
            assert!(
                payload.get(event_type).is_some(),
                "{event_type}: tagged payload"
            );
            // Old versions decode through the upcasters, as on every read.
            let (_, current) = crate::upcast::upcast(event_type, version, payload.clone())
                .unwrap_or_else(|e| panic!("{event_type} v{version}: {e}"));
            decode_payload(aggregate, &current)
                .unwrap_or_else(|e| panic!("{event_type} v{version} no longer decodes: {e}"));
        }
        let covered: HashSet<(String, String)> = fixtures
            .iter()
            .map(|(t, v, _)| (t.clone(), v.clone()))
            .collect();
        for (
            _,
            events::EventType {
                name: event_type,
                version,
            },
        ) in events::event_types()
        {
            assert!(
                covered.contains(&(event_type.to_string(), version.to_string())),
                "no fixture for {event_type} v{version}: add tests/fixtures/events/{event_type}.v{version}.json"
            );
        }
    }

    #[test]
    fn a_payload_missing_a_required_field_does_not_decode() {
        let broken = serde_json::json!({"company.added": {"company_id": "not even a uuid"}});
        assert!(decode_payload("company", &broken).is_err());
    }
}
