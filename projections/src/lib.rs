//! Read models and the workers that build them from the event stream.
//!
//! Each projection consumes JetStream with its own durable consumer, applies
//! an aggregate's events strictly in version order (duplicates are skipped,
//! gaps are filled from the event store, never guessed), and records the
//! version it reflects in the same transaction as the read-model change, so
//! a worker killed at any point converges after restart. Also holds the
//! queries over those read models, and the `commands` ports that read them
//! (the month's spending, recent enrichment results, invitations). May
//! depend on `domain`, `commands`, `infra`, sqlx and async-nats; never on
//! the API.

pub mod companies;
pub mod enrichment_jobs;
pub mod identity;
pub mod lists;
pub mod notes;
pub mod rebuild;
pub mod runner;
pub mod saved_searches;
pub mod usage;
pub mod versions;

pub use runner::{run_projection, ProjectionSettings};

/// A read model's name and the events that feed it.
#[derive(Debug, Clone, Copy)]
pub struct ReadModel {
    pub name: &'static str,
    /// Aggregate types it follows version by version.
    pub aggregate_types: &'static [&'static str],
    /// Single event types of other aggregates it reacts to.
    pub reacts_to: &'static [(&'static str, &'static str)],
    /// The tables it owns.
    pub tables: &'static [&'static str],
}

impl ReadModel {
    pub const fn of<P: Projection>() -> Self {
        ReadModel {
            name: P::NAME,
            aggregate_types: P::AGGREGATE_TYPES,
            reacts_to: P::REACTS_TO,
            tables: P::TABLES,
        }
    }

    /// Every aggregate type whose events reach it.
    pub fn fed_by(&self) -> impl Iterator<Item = &'static str> {
        self.aggregate_types
            .iter()
            .copied()
            .chain(self.reacts_to.iter().map(|(aggregate, _)| *aggregate))
    }
}

/// What of an aggregate's history a read model reflects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reflects {
    /// Every version, in order.
    EveryVersion,
    /// Only events of these types.
    Only(Vec<&'static str>),
}

/// Something done with one read model's projection type, chosen by the
/// read model's name at run time (see [`with_read_model`]).
pub trait ReadModelTask {
    type Output;
    fn run<P: Projection>(self) -> impl std::future::Future<Output = Self::Output> + Send;
}

/// Declares the set of read models once; the list of them, the dispatch by
/// name (rebuilds) and the projector's workers are all derived from it, so
/// a read model cannot be rebuilt but never run, or run but not listed.
macro_rules! read_models {
    ($($projection:ty),+ $(,)?) => {
        /// Every read model the projector maintains.
        pub const READ_MODELS: &[ReadModel] = &[$(ReadModel::of::<$projection>()),+];

        /// Runs `task` with the projection type of the read model named
        /// `name`; `None` when no read model has that name.
        pub async fn with_read_model<T: ReadModelTask>(name: &str, task: T) -> Option<T::Output> {
            $(
                if name == <$projection as Projection>::NAME {
                    return Some(task.run::<$projection>().await);
                }
            )+
            None
        }

        /// Runs every read model's projection until `shutdown`; the first
        /// one to fail ends them all.
        pub async fn run_all(
            vault: vcintel_infra::vault::Vault,
            js: async_nats::jetstream::Context,
            topology: vcintel_infra::wire::Topology,
            settings: ProjectionSettings,
            shutdown: vcintel_infra::CancellationToken,
        ) -> anyhow::Result<()> {
            tokio::try_join!($(
                run_projection::<$projection>(
                    vault.clone(),
                    js.clone(),
                    topology.clone(),
                    settings.clone(),
                    shutdown.clone(),
                )
            ),+)?;
            Ok(())
        }
    };
}

read_models!(
    companies::CompaniesProjection,
    identity::WorkspacesProjection,
    identity::UsersProjection,
    notes::NotesProjection,
    lists::ListsProjection,
    saved_searches::SavedSearchesProjection,
    enrichment_jobs::EnrichmentJobsProjection,
    usage::UsageProjection,
);

/// The read models an aggregate type's events feed, and what of them each
/// reflects.
pub fn read_models_fed_by(
    aggregate_type: &str,
) -> impl Iterator<Item = (&'static str, Reflects)> + '_ {
    READ_MODELS.iter().filter_map(move |m| {
        if m.aggregate_types.contains(&aggregate_type) {
            return Some((m.name, Reflects::EveryVersion));
        }
        let only: Vec<&'static str> = m
            .reacts_to
            .iter()
            .filter(|(aggregate, _)| *aggregate == aggregate_type)
            .map(|(_, event_type)| *event_type)
            .collect();
        (!only.is_empty()).then_some((m.name, Reflects::Only(only)))
    })
}

/// A read model fed by one aggregate type's events.
pub trait Projection: Send + Sync + 'static {
    /// Stable name: the durable consumer and the version bookkeeping use it.
    const NAME: &'static str;
    /// The aggregate types whose events it consumes, in commit order across
    /// all of them (so a projection that must see a company's deletion after
    /// the notes added before it, does).
    const AGGREGATE_TYPES: &'static [&'static str];
    /// Event types of other aggregates it reacts to without following
    /// their versions, as `(aggregate type, event type)`: only events that
    /// are final and whose effect is idempotent (a company's deletion), so
    /// neither order nor duplicates matter. The projection receives no
    /// other event of those aggregates, and keeps no version bookkeeping
    /// for them but the version of the last such event (for read-your-writes).
    const REACTS_TO: &'static [(&'static str, &'static str)] = &[];
    /// The tables the read model owns outright: a rebuild builds fresh
    /// copies of them and swaps them in. Its rows in the shared bookkeeping
    /// tables (`projection_versions`, `company_tombstones`) are swapped too.
    const TABLES: &'static [&'static str];

    /// Writes the effect of each aggregate's new events inside `tx`. Every
    /// `events` list holds exactly the versions after the one the read model
    /// reflects, in order, so the projection may fold them in memory and
    /// write once per batch: the fewer statements, the shorter the
    /// transaction, and the sooner the relay (which waits for every open
    /// transaction) sees the next commits.
    fn apply_batch(
        tx: &mut sqlx::PgConnection,
        changes: &[AggregateChanges],
    ) -> impl std::future::Future<Output = Result<(), ProjectionError>> + Send;
}

/// One aggregate's events to apply, oldest first.
#[derive(Debug, Clone)]
pub struct AggregateChanges {
    pub aggregate_type: String,
    pub aggregate_id: String,
    /// The version the read model reflects before these events.
    pub from_version: i64,
    pub events: Vec<vcintel_infra::wire::EventMessage>,
}

#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("encoding: {0}")]
    Encoding(#[from] serde_json::Error),
    #[error("event {event_id} cannot be decoded: {reason}")]
    Undecodable {
        event_id: uuid::Uuid,
        reason: String,
    },
    #[error("no read model is called `{name}`; known: {known}")]
    UnknownReadModel { name: String, known: String },
    #[error("a rebuild of `{read_model}` is already running")]
    RebuildRunning { read_model: String },
    #[error("the fresh copy of `{table}` does not match the live table: index {index} has no counterpart")]
    RebuildMismatch { table: String, index: String },
    #[error("event store holds {found} events of {aggregate_id} between versions {from} and {to}; expected {expected}")]
    MissingHistory {
        aggregate_id: String,
        from: i64,
        to: i64,
        found: usize,
        expected: usize,
    },
}

impl ProjectionError {
    /// The database could not be reached: not the event's fault, so it
    /// must not count towards parking it.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, ProjectionError::Database(error) if vcintel_infra::db::is_unavailable(error))
    }
}

/// Decodes an event's payload into its domain event type.
pub(crate) fn decode_event<E: serde::de::DeserializeOwned>(
    event: &vcintel_infra::wire::EventMessage,
) -> Result<E, ProjectionError> {
    serde_json::from_value(event.tagged_payload()).map_err(|e| ProjectionError::Undecodable {
        event_id: event.id,
        reason: e.to_string(),
    })
}

/// The event's aggregate id as a UUID (every aggregate id is one).
pub(crate) fn aggregate_uuid(
    event: &vcintel_infra::wire::EventMessage,
) -> Result<uuid::Uuid, ProjectionError> {
    event
        .aggregateid
        .parse()
        .map_err(|e: uuid::Error| ProjectionError::Undecodable {
            event_id: event.id,
            reason: e.to_string(),
        })
}

/// What read models holding a person's values react to: they mask or drop
/// them, as reading the person's events does once their keys are gone.
pub(crate) const USER_ERASED: (&str, &str) = (
    vcintel_domain::user::AGGREGATE_TYPE,
    vcintel_domain::user::ERASED_EVENT_TYPE,
);

/// What read models of companies' notes and lists react to.
pub(crate) const COMPANY_DELETED: (&str, &str) = (
    vcintel_domain::company::AGGREGATE_TYPE,
    vcintel_domain::company::DELETED_EVENT_TYPE,
);

/// A read model of things that belong to companies (notes, list items,
/// enrichment jobs): it follows its own aggregate's events, and a company's
/// deletion removes that company's rows.
pub(crate) trait OfCompanies: Projection {
    /// The events of the aggregate it follows.
    type Event: serde::de::DeserializeOwned + Send;
    /// Removes a deleted company's rows: `$1` is the company id, `$4` its
    /// workspace (see [`forget_deleted_company`]).
    const FORGET_COMPANY: &'static str;
    /// Masks an erased person's values (`$1` the person, `$2` the erased
    /// mark), for read models that react to [`USER_ERASED`].
    const FORGET_PERSON: Option<&'static str> = None;

    /// Writes one of its own aggregate's events.
    fn apply_event(
        tx: &mut sqlx::PgConnection,
        message: &vcintel_infra::wire::EventMessage,
        event: Self::Event,
    ) -> impl std::future::Future<Output = Result<(), ProjectionError>> + Send;
}

/// The `apply_batch` of every [`OfCompanies`] read model: a company's
/// deletion forgets its rows, anything else is the read model's own event.
pub(crate) async fn apply_of_companies<P: OfCompanies>(
    tx: &mut sqlx::PgConnection,
    changes: &[AggregateChanges],
) -> Result<(), ProjectionError> {
    for change in changes {
        for event in &change.events {
            if change.aggregate_type == vcintel_domain::company::AGGREGATE_TYPE {
                forget_deleted_company(tx, P::NAME, event, P::FORGET_COMPANY).await?;
            } else if change.aggregate_type == vcintel_domain::user::AGGREGATE_TYPE {
                forget_person(tx, event, P::FORGET_PERSON).await?;
            } else {
                P::apply_event(tx, event, decode_event(event)?).await?;
            }
        }
    }
    Ok(())
}

/// For projections that react to erasures: masks the person's values.
async fn forget_person(
    tx: &mut sqlx::PgConnection,
    event: &vcintel_infra::wire::EventMessage,
    mask: Option<&str>,
) -> Result<(), ProjectionError> {
    use vcintel_domain::user::UserEvent;
    if let (UserEvent::Erased(erased), Some(mask)) = (decode_event::<UserEvent>(event)?, mask) {
        sqlx::query(mask)
            .bind(erased.user_id.0)
            .bind(vcintel_domain::personal::ERASED)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

/// For projections that react to company deletions: when `event` deletes
/// a company, `delete_rows` (`$1` = the company id, `$4` its workspace, to
/// keep to the read model's indexes) removes its rows from
/// the read model, and a tombstone (per projection, so each can be rebuilt
/// on its own) keeps a later event that raced the deletion from bringing
/// any back. Other company events change nothing here.
pub(crate) async fn forget_deleted_company(
    tx: &mut sqlx::PgConnection,
    projection: &str,
    event: &vcintel_infra::wire::EventMessage,
    delete_rows: &str,
) -> Result<(), ProjectionError> {
    use vcintel_domain::company::CompanyEvent;
    if let CompanyEvent::Deleted(deleted) = decode_event::<CompanyEvent>(event)? {
        sqlx::query(&format!(
            "with tombstone as (
                 insert into company_tombstones (projection, company_id, deleted_at)
                 values ($3, $1, $2) on conflict do nothing
             )
             {delete_rows}"
        ))
        .bind(aggregate_uuid(event)?)
        .bind(event.time)
        .bind(projection)
        .bind(deleted.workspace_id.0)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}
