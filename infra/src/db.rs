//! The Postgres pool and the embedded migrations.

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use std::str::FromStr;
use std::time::Duration;

/// Every migration under `migrations/`, compiled into the binary.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

/// The advisory lock whose holder applies migrations ("VCMI").
const MIGRATING_LOCK: i64 = 0x5643_4d49;

/// Applies the pending migrations, one process at a time. Processes
/// starting together poll for their turn with `pg_try_advisory_lock`
/// instead of queueing in `pg_advisory_lock` (what `Migrator::run` does
/// alone): a session queued in a lock keeps a transaction open, which a
/// migration's `create index concurrently` waits for while the queued
/// session waits for the migration, and Postgres breaks that deadlock by
/// failing one of them.
pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    let mut conn = pool.acquire().await?;
    loop {
        let turn: bool = sqlx::query_scalar("select pg_try_advisory_lock($1)")
            .bind(MIGRATING_LOCK)
            .fetch_one(&mut *conn)
            .await?;
        if turn {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let migrated = MIGRATOR.run(&mut *conn).await;
    let unlocked = sqlx::query("select pg_advisory_unlock($1)")
        .bind(MIGRATING_LOCK)
        .execute(&mut *conn)
        .await;
    migrated?;
    unlocked?;
    Ok(())
}

/// A pool for tools and workers that would rather wait than fail (10 s
/// for a connection).
pub async fn connect(database_url: &str, max_connections: u32) -> Result<PgPool, sqlx::Error> {
    connect_failing_after(database_url, max_connections, Duration::from_secs(10)).await
}

/// A pool whose callers give up after `acquire_timeout` without a
/// connection: the API's, so that with the database unreachable (or the
/// pool exhausted) a request fails fast with 503 instead of hanging.
pub async fn connect_failing_after(
    database_url: &str,
    max_connections: u32,
    acquire_timeout: Duration,
) -> Result<PgPool, sqlx::Error> {
    let options = PgConnectOptions::from_str(database_url)?.application_name("vcintel");
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(acquire_timeout)
        .connect_with(options)
        .await
}

/// Where `database_url` points, for messages and logs: `host:port/database`,
/// never the credentials.
pub fn target_of(database_url: &str) -> String {
    match PgConnectOptions::from_str(database_url) {
        Ok(options) => format!(
            "{}:{}/{}",
            options.get_host(),
            options.get_port(),
            options.get_database().unwrap_or("postgres")
        ),
        Err(_) => "a URL that does not parse".to_owned(),
    }
}

/// Connects once, directly, to say why the database cannot be reached (a
/// pool only says it timed out waiting): the cause in words, naming no
/// credential.
pub async fn reach(database_url: &str, within: Duration) -> Result<(), String> {
    use sqlx::Connection as _;
    let options = PgConnectOptions::from_str(database_url)
        .map_err(|error| format!("the URL does not parse ({})", error_kind(&error)))?;
    match tokio::time::timeout(within, sqlx::PgConnection::connect_with(&options)).await {
        Err(_) => Err(format!("no answer within {within:?}")),
        Ok(Err(error)) => Err(error_kind(&error)),
        Ok(Ok(connection)) => {
            let _ = connection.close().await;
            Ok(())
        }
    }
}

/// A connection error in words.
fn error_kind(error: &sqlx::Error) -> String {
    match error {
        sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            "connection refused: is Postgres running and listening there?".to_owned()
        }
        sqlx::Error::Io(io) => format!("cannot connect: {io}"),
        sqlx::Error::Database(db) => db.message().to_owned(),
        sqlx::Error::Configuration(_) => "malformed".to_owned(),
        other => other.to_string(),
    }
}

/// One line per known migration: version, name, and whether it is applied.
pub async fn migration_status(pool: &PgPool) -> Result<Vec<(i64, String, bool)>, sqlx::Error> {
    let applied: Vec<i64> = match sqlx::query_scalar!(
        "select version from _sqlx_migrations where success order by version"
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

/// Whether `error` (or anything in its chain of causes) says the database
/// cannot be reached right now, rather than that a statement is wrong: the
/// API answers those with 503 and `Retry-After` instead of 500.
pub fn is_unavailable(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(error) = cause {
        if let Some(sqlx_error) = error.downcast_ref::<sqlx::Error>() {
            match sqlx_error {
                sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
                // What a proxy (HAProxy before Patroni, a managed
                // endpoint) says when the server behind it is gone: it
                // accepts, then closes before the server's first byte.
                | sqlx::Error::Protocol(_)
                | sqlx::Error::WorkerCrashed => return true,
                sqlx::Error::Database(db) => {
                    // Class 08: connection exceptions; 57P01-03: the server
                    // is shutting down or starting; 53300: no free slots;
                    // 25006: a write reached a standby (a failover under way).
                    let code = db.code().unwrap_or_default();
                    if code.starts_with("08")
                        || ["57P01", "57P02", "57P03", "53300", "25006"].contains(&&*code)
                    {
                        return true;
                    }
                }
                _ => {}
            }
        }
        if error.downcast_ref::<std::io::Error>().is_some() {
            return true;
        }
        cause = error.source();
    }
    false
}
