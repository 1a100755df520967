//! The Postgres event store behind the command services.

use cqrs_es::persist::PersistedEventStore;
use postgres_es::PostgresEventRepository;
use sqlx::PgPool;
use vcintel_commands::{CompanyAggregate, CompanyCommands};

pub type PgEventStore<A> = PersistedEventStore<PostgresEventRepository, A>;
pub type PgCompanyCommands = CompanyCommands<PgEventStore<CompanyAggregate>>;

pub fn company_commands(pool: PgPool) -> PgCompanyCommands {
    CompanyCommands::new(PersistedEventStore::new_event_store(
        PostgresEventRepository::new(pool),
    ))
}
