//! The Postgres pool and the embedded migrations.

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use std::str::FromStr;
use std::time::Duration;

/// Every migration under `migrations/`, compiled into the binary.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

pub async fn connect(database_url: &str, max_connections: u32) -> Result<PgPool, sqlx::Error> {
    let options = PgConnectOptions::from_str(database_url)?.application_name("vcintel");
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await
}

/// One line per known migration: version, name, and whether it is applied.
pub async fn migration_status(pool: &PgPool) -> Result<Vec<(i64, String, bool)>, sqlx::Error> {
    let applied: Vec<i64> = match sqlx::query_scalar(
        "select version from _sqlx_migrations where success order by version",
    )
    .fetch_all(pool)
    .await
    {
        Ok(v) => v,
        // A database that was never migrated has no bookkeeping table yet.
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P01") => vec![],
        Err(e) => return Err(e),
    };
    Ok(MIGRATOR
        .iter()
        .filter(|m| m.migration_type.is_up_migration())
        .map(|m| {
            (
                m.version,
                m.description.to_string(),
                applied.contains(&m.version),
            )
        })
        .collect())
}

/// Reverts the newest applied migration, if any; returns its version.
pub async fn migrate_down_one(pool: &PgPool) -> Result<Option<i64>, sqlx::migrate::MigrateError> {
    let status = migration_status(pool).await?;
    let Some(&(latest, _, _)) = status.iter().rev().find(|(_, _, applied)| *applied) else {
        return Ok(None);
    };
    let target = status
        .iter()
        .rev()
        .find(|(v, _, applied)| *applied && *v < latest)
        .map_or(0, |(v, _, _)| *v);
    MIGRATOR.undo(pool, target).await?;
    Ok(Some(latest))
}
