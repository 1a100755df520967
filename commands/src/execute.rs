//! The one way a command runs against an event store: load, check the
//! caller's precondition, decide, append.

use crate::{CommandError, Committed};
use cqrs_es::event_sink::EventSink;
use cqrs_es::mem_store::MemStoreAggregateContext;
use cqrs_es::persist::EventStoreAggregateContext;
use cqrs_es::{Aggregate, AggregateError, EventStore};
use std::collections::HashMap;

/// The loaded aggregate and the version it was loaded at, whichever store
/// loaded it; cqrs-es's contexts expose both as plain fields.
pub trait LoadedAggregate<A> {
    /// The context of an aggregate that has no events yet.
    fn fresh(aggregate_id: &str) -> Self;
    fn state(&mut self) -> &mut A;
    fn version(&self) -> u64;
}

impl<A: Aggregate> LoadedAggregate<A> for EventStoreAggregateContext<A> {
    fn fresh(aggregate_id: &str) -> Self {
        EventStoreAggregateContext {
            aggregate_id: aggregate_id.to_owned(),
            aggregate: A::default(),
            current_sequence: 0,
            current_snapshot: None,
        }
    }
    fn state(&mut self) -> &mut A {
        &mut self.aggregate
    }
    fn version(&self) -> u64 {
        self.current_sequence as u64
    }
}

impl<A: Aggregate> LoadedAggregate<A> for MemStoreAggregateContext<A> {
    fn fresh(aggregate_id: &str) -> Self {
        MemStoreAggregateContext {
            aggregate_id: aggregate_id.to_owned(),
            aggregate: A::default(),
            current_sequence: 0,
        }
    }
    fn state(&mut self) -> &mut A {
        &mut self.aggregate
    }
    fn version(&self) -> u64 {
        self.current_sequence as u64
    }
}

/// Where a command's aggregate comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Load {
    /// Read its events from the store.
    Stored,
    /// A freshly minted id: nothing can be stored under it yet, so skip the
    /// read. Should the id exist after all, the append's primary key refuses
    /// it as a conflict.
    Fresh,
}

/// The precondition of a change to an aggregate a workspace owns: tenancy
/// first (a foreign or missing aggregate is "not found" whatever version
/// the caller guessed), then `If-Match` (`expected_version`). Without an
/// expected version the decision itself checks tenancy.
pub(crate) fn owned_at_version<A>(
    expected_version: Option<u64>,
    visible: impl FnOnce(&A) -> bool,
    not_found: impl FnOnce() -> CommandError,
) -> impl FnOnce(&A, u64) -> Result<(), CommandError> {
    move |aggregate, current| {
        let Some(expected) = expected_version else {
            return Ok(());
        };
        if !visible(aggregate) {
            return Err(not_found());
        }
        if expected != current {
            return Err(CommandError::VersionMismatch {
                expected,
                actual: current,
            });
        }
        Ok(())
    }
}

/// How often an unconditional command is decided again after losing a race.
const CONFLICT_ATTEMPTS: u32 = 16;

/// Runs a command that names no expected version again when another writer
/// appended first: it is decided afresh against the new state, so every
/// rule still holds and ordinary concurrency is not the client's problem.
/// (A command with `If-Match` must not be re-run: its conflict is the
/// client's answer.) Between attempts it waits a short, random, growing
/// time, so writers racing for one aggregate spread out instead of
/// colliding again in lockstep (ten at once lost eight times in a row).
pub(crate) async fn rerun_on_conflict<F, Fut>(mut run: F) -> Result<Committed, CommandError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Committed, CommandError>>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        match run().await {
            Err(CommandError::Conflict) if attempt < CONFLICT_ATTEMPTS => {
                tokio::time::sleep(conflict_backoff(attempt)).await;
            }
            other => return other,
        }
    }
}

/// Up to 2^attempt milliseconds (at most 64), uniformly at random.
fn conflict_backoff(attempt: u32) -> std::time::Duration {
    let ceiling = 1u64 << attempt.min(6);
    let random = uuid::Uuid::new_v4().as_u128() as u64;
    std::time::Duration::from_micros(random % (ceiling * 1000))
}

/// Runs `command` on the aggregate `aggregate_id`. `precondition` sees the
/// loaded state and version before the decision (tenancy, `If-Match`).
pub(crate) async fn execute<A, S>(
    store: &S,
    aggregate_id: String,
    load: Load,
    command: A::Command,
    precondition: impl FnOnce(&A, u64) -> Result<(), CommandError>,
    metadata: HashMap<String, String>,
) -> Result<Committed, CommandError>
where
    A: Aggregate<Services = ()>,
    S: EventStore<A>,
    S::AC: LoadedAggregate<A> + Send,
    CommandError: From<A::Error> + From<AggregateError<A::Error>>,
{
    let mut context = match load {
        Load::Stored => store.load_aggregate(&aggregate_id).await?,
        Load::Fresh => S::AC::fresh(&aggregate_id),
    };
    let current_version = context.version();
    precondition(context.state(), current_version)?;
    let sink = EventSink::default();
    context.state().handle(command, &(), &sink).await?;
    let events: Vec<A::Event> = sink.collect().await;
    if events.is_empty() {
        return Ok(Committed {
            aggregate_type: A::TYPE,
            aggregate_id,
            version: current_version,
            appended: 0,
        });
    }
    let appended = events.len();
    let committed = store.commit(events, context, metadata).await?;
    let version = committed
        .last()
        .map_or(current_version, |e| e.sequence as u64);
    Ok(Committed {
        aggregate_type: A::TYPE,
        aggregate_id,
        version,
        appended,
    })
}
