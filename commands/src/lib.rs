//! Command handling: authorise, load the aggregate, decide with the domain,
//! append the events.
//!
//! Adapts the pure domain aggregates to cqrs-es and runs each use case
//! against any cqrs-es `EventStore` (the Postgres one in production, the
//! in-memory one in unit tests). A use case that needs more than the event
//! store (passwords, sessions, a read model, the rate limiter) declares a
//! small port beside it, which infra or projections implement. May depend
//! on `domain`, cqrs-es, tracing and data-only crates; never on a database
//! driver, NATS or HTTP: nothing here talks to the message bus, so a
//! command can never dual-write.

pub mod admission;
pub mod aggregate;
pub mod company;
pub mod enrichment;
pub mod error;
pub mod execute;
pub mod limits;
pub mod list;
pub mod metadata;
pub mod note;
pub mod saved_search;
pub mod sessions;
pub mod unique;
pub mod user;
pub mod workspace;

pub use aggregate::{
    BudgetAggregate, BudgetEventRecord, CompanyAggregate, CompanyEventRecord,
    EnrichmentEventRecord, EnrichmentJobAggregate, ListAggregate, ListEventRecord, NoteAggregate,
    NoteEventRecord, SavedSearchAggregate, SavedSearchEventRecord, UserAggregate, UserEventRecord,
    WorkspaceAggregate, WorkspaceEventRecord,
};
pub use company::CompanyCommands;
pub use enrichment::{BudgetCommands, EnrichmentCommands};
pub use error::CommandError;
pub use execute::LoadedAggregate;
pub use list::ListCommands;
pub use metadata::CommandMetadata;
pub use note::NoteCommands;
pub use saved_search::SavedSearchCommands;
pub use unique::{UniqueValue, UniqueValues};
pub use user::AccountCommands;
pub use workspace::WorkspaceCommands;

/// What a successful command returns so the caller can read its own write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// The aggregate's type, as events and subjects name it.
    pub aggregate_type: &'static str,
    pub aggregate_id: String,
    /// The aggregate's version (sequence of its last event) after the command.
    pub version: u64,
    /// How many events the command appended (0 for a no-op).
    pub appended: usize,
}
