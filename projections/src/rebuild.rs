//! Rebuilding a read model from the event store, blue/green.
//!
//! The fresh tables are built in a schema of their own,
//! `rebuild_<read model>`, created `like` the live ones, while the live tables
//! keep serving and the projector keeps updating them. The replay runs the
//! projector's own code (with `search_path` pointing at the fresh schema
//! first) over the read model's events in commit-safe order, one batch per
//! transaction, recording its cursor in `projection_rebuilds` in that same
//! transaction: a rebuild killed at any point resumes from its last batch.
//!
//! The swap is one transaction: it takes the read model's rebuild lock
//! exclusively (so the projector's transactions for it wait, their messages
//! unacknowledged), replays whatever committed since the last batch, moves
//! the fresh tables into `public` in place of the live ones (with the live
//! indexes' names, so later migrations find them), and replaces the read
//! model's rows in the shared bookkeeping tables. Readers see the old tables
//! until it commits, then the new ones whole; the projector resumes on top,
//! and the versions make it skip what the rebuild applied.
//!
//! A rebuild never calls anything outside the database: enrichments come
//! back from their events.

use crate::runner::{apply_events, REBUILD_LOCK_CLASS};
use crate::{Projection, ProjectionError, READ_MODELS};
use chrono::{DateTime, Utc};
use sqlx::{Connection, PgConnection, PgPool};
use std::time::Duration;
use vcintel_infra::event_log::{self, CommitCursor, Reading, StoredEvent};
use vcintel_infra::failpoint;
use vcintel_infra::vault::Vault;
use vcintel_infra::wire::EventMessage;

/// Tables every projection keeps rows in, keyed by a `projection` column.
pub const SHARED_TABLES: [&str; 2] = ["projection_versions", "company_tombstones"];

/// The advisory-lock class held by the one process running a rebuild of a
/// read model (distinct from the rebuild lock the projector shares).
const RUNNER_LOCK_CLASS: i32 = 0x5643_5242; // "VCRB"

/// How a rebuild runs.
#[derive(Debug, Clone)]
pub struct RebuildOptions {
    /// Events replayed per transaction (and per progress report).
    pub batch_size: i64,
    /// Discard a rebuild left half-done and start from the first event.
    pub restart: bool,
}

impl Default for RebuildOptions {
    fn default() -> Self {
        RebuildOptions {
            batch_size: 1_000,
            restart: false,
        }
    }
}

/// What a finished rebuild did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rebuilt {
    pub read_model: &'static str,
    /// Events replayed into the fresh tables, over every run.
    pub events: u64,
    /// Events a previous, interrupted run had already replayed.
    pub resumed_from: u64,
    /// How long the swap transaction ran: the time the projector waited
    /// for this read model and the window in which readers may queue.
    pub swap_took: Duration,
}

/// A blue/green rebuild of a read model.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schema", schema(as = RebuildProgress))]
pub struct RebuildStatus {
    #[cfg_attr(feature = "schema", schema(example = "companies"))]
    pub read_model: String,
    /// `running` (fresh tables being filled; live ones serve) or `swapped`.
    #[cfg_attr(feature = "schema", schema(example = "swapped"))]
    pub state: String,
    /// Whether a process is working on it now; a `running` rebuild nobody
    /// works on was interrupted and resumes when started again.
    #[cfg_attr(feature = "schema", schema(example = false))]
    pub active: bool,
    #[cfg_attr(feature = "schema", schema(example = 18420))]
    pub replayed: i64,
    /// Events that feed the read model (counted at the start, raised as
    /// more arrive).
    #[cfg_attr(feature = "schema", schema(example = 18420))]
    pub total: i64,
    /// Runs so far: above 1 when it was resumed.
    #[cfg_attr(feature = "schema", schema(example = 1))]
    pub runs: i32,
    pub started_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    #[cfg_attr(
        feature = "schema",
        schema(example = "connection to the database was lost; resumes when started again")
    )]
    pub last_error: Option<String>,
}

fn unknown_read_model(name: &str) -> ProjectionError {
    ProjectionError::UnknownReadModel {
        name: name.to_owned(),
        known: READ_MODELS
            .iter()
            .map(|m| m.name)
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// The read model's canonical name, or the error naming the known ones.
pub fn read_model_named(name: &str) -> Result<&'static str, ProjectionError> {
    READ_MODELS
        .iter()
        .map(|m| m.name)
        .find(|known| *known == name)
        .ok_or_else(|| unknown_read_model(name))
}

/// The right to run a read model's rebuild: its runner lock, held by a
/// connection of its own for as long as the claim lives. Taking it first
/// lets a caller answer "already running" before starting in the
/// background.
#[derive(Debug)]
pub struct RebuildClaim {
    read_model: &'static str,
    connection: PgConnection,
}

/// Claims the rebuild of the read model named `name`, or says who cannot.
pub async fn claim(pool: &PgPool, name: &str) -> Result<RebuildClaim, ProjectionError> {
    let read_model = read_model_named(name)?;
    // Detached: the session lock must never go back to the pool with it.
    let mut connection = pool.acquire().await?.detach();
    let locked: bool = sqlx::query_scalar!(
        r#"select pg_try_advisory_lock($1, hashtext($2)) as "locked!""#,
        RUNNER_LOCK_CLASS,
        read_model
    )
    .fetch_one(&mut connection)
    .await?;
    if !locked {
        connection.close().await?;
        return Err(ProjectionError::RebuildRunning {
            read_model: read_model.to_owned(),
        });
    }
    Ok(RebuildClaim {
        read_model,
        connection,
    })
}

/// Rebuilds the read model named `name` (see [`READ_MODELS`]), reporting
/// `(replayed, total)` after every batch.
pub async fn rebuild_by_name(
    vault: &Vault,
    name: &str,
    options: &RebuildOptions,
    on_progress: &(dyn Fn(u64, u64) + Send + Sync),
) -> Result<Rebuilt, ProjectionError> {
    let claim = claim(vault.pool(), name).await?;
    run_claimed(vault, claim, options, on_progress).await
}

/// Runs the rebuild `claim` holds the right to.
pub async fn run_claimed(
    vault: &Vault,
    claim: RebuildClaim,
    options: &RebuildOptions,
    on_progress: &(dyn Fn(u64, u64) + Send + Sync),
) -> Result<Rebuilt, ProjectionError> {
    let read_model = claim.read_model;
    let rebuild = Rebuild {
        vault,
        claim,
        options,
        on_progress,
    };
    crate::with_read_model(read_model, rebuild)
        .await
        .unwrap_or_else(|| Err(unknown_read_model(read_model)))
}

/// A rebuild, waiting for its read model's projection type.
struct Rebuild<'a> {
    vault: &'a Vault,
    claim: RebuildClaim,
    options: &'a RebuildOptions,
    on_progress: &'a (dyn Fn(u64, u64) + Send + Sync),
}

impl crate::ReadModelTask for Rebuild<'_> {
    type Output = Result<Rebuilt, ProjectionError>;

    fn run<P: Projection>(self) -> impl std::future::Future<Output = Self::Output> + Send {
        rebuild_with::<P>(self.vault, self.claim, self.options, self.on_progress)
    }
}

/// Every rebuild on record, running, interrupted or finished.
pub async fn statuses(pool: &PgPool) -> Result<Vec<RebuildStatus>, ProjectionError> {
    // A run holds its runner lock for its whole life: if nobody holds it, a
    // `running` row is an interrupted rebuild waiting to be resumed.
    Ok(sqlx::query_as!(
        RebuildStatus,
        r#"select r.read_model, r.state, r.replayed, r.total, r.runs, r.started_at,
                r.updated_at, r.finished_at, r.last_error,
                exists(select 1 from pg_locks l
                        where l.locktype = 'advisory' and l.granted
                          and l.classid = $1::int4::oid
                          and l.objid = hashtext(r.read_model)::oid
                          and l.objsubid = 2) as "active!"
         from projection_rebuilds r order by r.read_model"#,
        RUNNER_LOCK_CLASS
    )
    .fetch_all(pool)
    .await?)
}

fn shadow_schema<P: Projection>() -> String {
    format!("rebuild_{}", P::NAME)
}

/// Rebuilds P's read model from every event in the store.
pub async fn rebuild<P: Projection>(
    vault: &Vault,
    options: &RebuildOptions,
    on_progress: &(dyn Fn(u64, u64) + Send + Sync),
) -> Result<Rebuilt, ProjectionError> {
    let claim = claim(vault.pool(), P::NAME).await?;
    rebuild_with::<P>(vault, claim, options, on_progress).await
}

async fn rebuild_with<P: Projection>(
    vault: &Vault,
    claim: RebuildClaim,
    options: &RebuildOptions,
    on_progress: &(dyn Fn(u64, u64) + Send + Sync),
) -> Result<Rebuilt, ProjectionError> {
    let mut runner = claim.connection;
    let outcome = run::<P>(vault, options, on_progress).await;
    if let Err(error) = &outcome {
        // Best effort: the run's own failure is what the caller needs.
        let _ = sqlx::query!(
            "update projection_rebuilds set last_error = $2, updated_at = now()
             where read_model = $1",
            P::NAME,
            error.to_string()
        )
        .execute(&mut runner)
        .await;
    }
    runner.close().await?;
    let rebuilt = outcome?;
    // Callers report the outcome (the CLI under its progress bar, the
    // admin API in its log): at INFO here it would land inside the bar.
    tracing::debug!(
        read_model = P::NAME,
        events = rebuilt.events,
        resumed_from = rebuilt.resumed_from,
        "read model rebuilt from the event store and swapped in"
    );
    Ok(rebuilt)
}

async fn run<P: Projection>(
    vault: &Vault,
    options: &RebuildOptions,
    on_progress: &(dyn Fn(u64, u64) + Send + Sync),
) -> Result<Rebuilt, ProjectionError> {
    let pool = vault.pool();
    let (mut cursor, mut replayed, mut total) = prepare::<P>(pool, options.restart).await?;
    let resumed_from = replayed;
    on_progress(replayed, total);
    let schema = shadow_schema::<P>();
    loop {
        let mut tx = pool.begin().await?;
        into_shadow(&mut tx, &schema).await?;
        let stored = event_log::read_committed_after(
            &mut *tx,
            Some(&replayed_types::<P>()),
            cursor,
            options.batch_size,
            Reading::AsStored,
        )
        .await?;
        let Some(last) = stored.last() else {
            break;
        };
        cursor = last.cursor();
        let count = stored.len() as u64;
        replay::<P>(&mut tx, vault, stored).await?;
        replayed += count;
        total = total.max(replayed);
        record_progress(&mut tx, P::NAME, cursor, replayed, total).await?;
        tx.commit().await?;
        on_progress(replayed, total);
        failpoint::hit("rebuild.after_batch");
    }
    // Fresh tables have no statistics yet; the planner needs them the
    // moment they serve.
    for table in P::TABLES {
        sqlx::query(&format!("analyze {schema}.{table}"))
            .execute(pool)
            .await?;
    }
    let swap_started = std::time::Instant::now();
    let caught_up = swap_with_retries::<P>(vault, cursor, options.batch_size).await?;
    let swap_took = swap_started.elapsed();
    replayed += caught_up;
    on_progress(replayed, total.max(replayed));
    Ok(Rebuilt {
        read_model: P::NAME,
        events: replayed,
        resumed_from,
        swap_took,
    })
}

/// Makes the fresh schema ready: resumes the interrupted rebuild recorded
/// for P when its tables were copied under the current migrations, else
/// starts a new one. Returns the cursor, events replayed and total.
async fn prepare<P: Projection>(
    pool: &PgPool,
    restart: bool,
) -> Result<(CommitCursor, u64, u64), ProjectionError> {
    let schema = shadow_schema::<P>();
    let mut tx = pool.begin().await?;
    let schema_version: i64 = sqlx::query_scalar!(
        r#"select coalesce(max(version), 0) as "version!" from _sqlx_migrations"#
    )
    .fetch_one(&mut *tx)
    .await?;
    let interrupted = sqlx::query!(
        r#"select r.cursor_tx::text as "cursor_tx!", r.cursor_position, r.replayed, r.total
         from projection_rebuilds r
         where r.read_model = $1 and r.state = 'running' and r.schema_version = $2
           and exists(select 1 from pg_namespace where nspname = $3)"#,
        P::NAME,
        schema_version,
        &schema
    )
    .fetch_optional(&mut *tx)
    .await?
    .map(|r| (r.cursor_tx, r.cursor_position, r.replayed, r.total));
    if let (Some((cursor_tx, position, replayed, total)), false) = (interrupted, restart) {
        sqlx::query!(
            "update projection_rebuilds set runs = runs + 1, updated_at = now(), last_error = null
             where read_model = $1",
            P::NAME
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        let cursor = CommitCursor {
            tx_id: cursor_tx.parse().map_err(|_| {
                ProjectionError::Database(sqlx::Error::Protocol(format!(
                    "projection_rebuilds.cursor_tx of {} is not a transaction id: {cursor_tx}",
                    P::NAME
                )))
            })?,
            position,
        };
        tracing::debug!(
            read_model = P::NAME,
            replayed,
            "resuming an interrupted rebuild"
        );
        return Ok((cursor, replayed as u64, total as u64));
    }
    sqlx::query(&format!("drop schema if exists {schema} cascade"))
        .execute(&mut *tx)
        .await?;
    sqlx::query(&format!("create schema {schema}"))
        .execute(&mut *tx)
        .await?;
    for table in P::TABLES.iter().chain(&SHARED_TABLES) {
        sqlx::query(&format!(
            "create table {schema}.{table} (like public.{table} including all)"
        ))
        .execute(&mut *tx)
        .await?;
    }
    // Fresh statistics keep the replay's reads on the commit-order index:
    // after a bulk import the planner would otherwise sort every remaining
    // event of the types for each batch (measured: 200 ms a batch instead
    // of 1 ms at 150,000 events).
    sqlx::query!("analyze events").execute(&mut *tx).await?;
    let total: i64 = sqlx::query_scalar!(
        r#"select count(*) as "count!" from events where aggregate_type = any($1)"#,
        &replayed_types::<P>() as &[&str]
    )
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query!(
        "insert into projection_rebuilds (read_model, state, schema_version, total)
         values ($1, 'running', $2, $3)
         on conflict (read_model) do update set
           state = 'running', schema_version = $2, total = $3, cursor_tx = '0',
           cursor_position = 0, replayed = 0, runs = 1, started_at = now(),
           updated_at = now(), finished_at = null, last_error = null",
        P::NAME,
        schema_version,
        total
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok((CommitCursor::default(), 0, total as u64))
}

/// The aggregate types whose events a rebuild of P replays: those it
/// follows and those it reacts to (the projector's own code then skips what
/// it does not react to, as it would never have received it).
fn replayed_types<P: Projection>() -> Vec<&'static str> {
    let mut types: Vec<&'static str> = crate::ReadModel::of::<P>().fed_by().collect();
    types.dedup();
    types
}

/// Points the transaction's unqualified table names at the fresh tables
/// (the event store and everything else still resolve to `public`).
async fn into_shadow(tx: &mut PgConnection, schema: &str) -> Result<(), ProjectionError> {
    sqlx::query_scalar!(
        r#"select set_config('search_path', $1, true) as "search_path!""#,
        format!("{schema}, public")
    )
    .fetch_one(&mut *tx)
    .await?;
    Ok(())
}

/// Replays `stored` into the shadow tables, opened as the projector
/// opens what it receives.
async fn replay<P: Projection>(
    tx: &mut PgConnection,
    vault: &Vault,
    stored: Vec<StoredEvent>,
) -> Result<(), ProjectionError> {
    let mut messages = stored
        .iter()
        .map(|event| {
            EventMessage::from_stored(event).map_err(|e| ProjectionError::Undecodable {
                event_id: event.event_id,
                reason: e.to_string(),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    vault
        .open_messages(&mut messages)
        .await
        .map_err(|e| ProjectionError::Database(sqlx::Error::Decode(Box::new(e))))?;
    let batch: Vec<&EventMessage> = messages.iter().collect();
    apply_events::<P>(tx, vault, &batch).await
}

async fn record_progress(
    tx: &mut PgConnection,
    read_model: &str,
    cursor: CommitCursor,
    replayed: u64,
    total: u64,
) -> Result<(), ProjectionError> {
    sqlx::query!(
        "update public.projection_rebuilds
         set cursor_tx = $2::text::xid8, cursor_position = $3, replayed = $4, total = $5,
             updated_at = now()
         where read_model = $1",
        read_model,
        cursor.tx_id.to_string(),
        cursor.position,
        replayed as i64,
        total as i64
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The swap waits for readers of the live tables; it gives up waiting after
/// a while (new readers queue behind a waiting swap, so waiting long would
/// stall them) and tries again.
async fn swap_with_retries<P: Projection>(
    vault: &Vault,
    cursor: CommitCursor,
    batch_size: i64,
) -> Result<u64, ProjectionError> {
    const ATTEMPTS: u32 = 10;
    for attempt in 1.. {
        let mut connection = vault.pool().acquire().await?;
        match swap::<P>(&mut connection, vault, cursor, batch_size).await {
            Err(ProjectionError::Database(sqlx::Error::Database(e)))
                if e.code().as_deref() == Some("55P03") && attempt < ATTEMPTS =>
            {
                tracing::warn!(
                    read_model = P::NAME,
                    attempt,
                    "swap waited too long for readers; retrying"
                );
                tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
            }
            outcome => return outcome,
        }
    }
    unreachable!("the loop returns on its last attempt")
}

async fn swap<P: Projection>(
    connection: &mut PgConnection,
    vault: &Vault,
    mut cursor: CommitCursor,
    batch_size: i64,
) -> Result<u64, ProjectionError> {
    let schema = shadow_schema::<P>();
    // Read committed: every statement after the lock sees every commit
    // before it (a repeatable-read snapshot would be taken by the lock
    // statement itself, before the wait).
    let mut tx = connection.begin().await?;
    sqlx::query!("set local lock_timeout = '3s'")
        .execute(&mut *tx)
        .await?;
    sqlx::query!(
        "select pg_advisory_xact_lock($1, hashtext($2))",
        REBUILD_LOCK_CLASS,
        P::NAME
    )
    .execute(&mut *tx)
    .await?;
    into_shadow(&mut tx, &schema).await?;
    let mut caught_up = 0u64;
    loop {
        let stored = event_log::read_visible_after(
            &mut *tx,
            Some(&replayed_types::<P>()),
            cursor,
            batch_size,
            Reading::AsStored,
        )
        .await?;
        let Some(last) = stored.last() else {
            break;
        };
        cursor = last.cursor();
        let count = stored.len() as u64;
        replay::<P>(&mut tx, vault, stored).await?;
        caught_up += count;
    }
    sqlx::query_scalar!(r#"select set_config('search_path', 'public', true) as "search_path!""#)
        .fetch_one(&mut *tx)
        .await?;
    // The bookkeeping first: the live tables' exclusive locks, which
    // readers queue behind, are then held only for the renames.
    for table in SHARED_TABLES {
        sqlx::query(&format!("delete from public.{table} where projection = $1"))
            .bind(P::NAME)
            .execute(&mut *tx)
            .await?;
        sqlx::query(&format!(
            "insert into public.{table} select * from {schema}.{table} where projection = $1"
        ))
        .bind(P::NAME)
        .execute(&mut *tx)
        .await?;
    }
    lock_live_tables(&mut tx, P::TABLES).await?;
    for table in P::TABLES {
        name_indexes_like_live(&mut tx, &schema, table).await?;
        grant_like_live(&mut tx, &schema, table).await?;
        sqlx::query(&format!("drop table public.{table}"))
            .execute(&mut *tx)
            .await?;
        sqlx::query(&format!("alter table {schema}.{table} set schema public"))
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query(&format!("drop schema {schema} cascade"))
        .execute(&mut *tx)
        .await?;
    sqlx::query!(
        "update projection_rebuilds
         set state = 'swapped', replayed = replayed + $2, total = greatest(total, replayed + $2),
             cursor_tx = $3::text::xid8, cursor_position = $4,
             finished_at = now(), updated_at = now(), last_error = null
         where read_model = $1",
        P::NAME,
        caught_up as i64,
        cursor.tx_id.to_string(),
        cursor.position
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(caught_up)
}

/// Takes every live table's exclusive lock, all or none: a reader joining
/// two of the tables takes its shared locks one after the other, so a swap
/// holding one table while waiting for another could deadlock with it (and
/// Postgres would end the reader with an error). Each try waits at most
/// `LOCK_TRY` for the whole set, then lets go of what it got and tries
/// again a moment later; the last try waits as long as it takes.
async fn lock_live_tables(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    tables: &[&str],
) -> Result<(), sqlx::Error> {
    const LOCK_TRIES: u32 = 50;
    const LOCK_TRY: &str = "200ms";
    let all = tables
        .iter()
        .map(|table| format!("public.{table}"))
        .collect::<Vec<_>>()
        .join(", ");
    let lock = format!("lock table {all} in access exclusive mode");
    for attempt in 1..LOCK_TRIES {
        sqlx::query("savepoint swap_locks")
            .execute(&mut **tx)
            .await?;
        sqlx::query_scalar!(
            r#"select set_config('lock_timeout', $1, true) as "lock_timeout!""#,
            LOCK_TRY
        )
        .fetch_one(&mut **tx)
        .await?;
        match sqlx::query(&lock).execute(&mut **tx).await {
            Ok(_) => {
                sqlx::query_scalar!(
                    r#"select set_config('lock_timeout', '0', true) as "lock_timeout!""#
                )
                .fetch_one(&mut **tx)
                .await?;
                sqlx::query("release savepoint swap_locks")
                    .execute(&mut **tx)
                    .await?;
                return Ok(());
            }
            Err(sqlx::Error::Database(error)) if error.code().as_deref() == Some("55P03") => {
                sqlx::query("rollback to savepoint swap_locks")
                    .execute(&mut **tx)
                    .await?;
                let pause = 20 + u64::from(attempt.min(10)) * 10;
                tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
            }
            Err(error) => return Err(error),
        }
    }
    sqlx::query(&lock).execute(&mut **tx).await?;
    Ok(())
}

/// Gives the fresh table the privileges other roles hold on the live one
/// (`like` copies none), so a reporting role that reads it keeps reading.
async fn grant_like_live(
    tx: &mut PgConnection,
    schema: &str,
    table: &str,
) -> Result<(), ProjectionError> {
    let grants: Vec<String> = sqlx::query_scalar!(
        r#"select format('grant %s on %s.%s to %s%s', a.privilege_type,
                         quote_ident($1::text), quote_ident($2::text),
                       case when a.grantee = 0 then 'public'
                            else quote_ident(pg_get_userbyid(a.grantee)) end,
                       case when a.is_grantable then ' with grant option' else '' end)
                  as "grant!"
         from pg_class c cross join lateral aclexplode(c.relacl) a
         where c.oid = ('public.' || quote_ident($2::text))::regclass
           and a.grantee <> c.relowner"#,
        schema,
        table
    )
    .fetch_all(&mut *tx)
    .await?;
    for grant in grants {
        sqlx::query(&grant).execute(&mut *tx).await?;
    }
    Ok(())
}

/// Gives each fresh index the name of the live index it copies (`like`
/// names them after their columns), so migrations written against the
/// live names keep working after the swap.
async fn name_indexes_like_live(
    tx: &mut PgConnection,
    schema: &str,
    table: &str,
) -> Result<(), ProjectionError> {
    // An index is its definition after the name and table: uniqueness,
    // method, keys, predicate. Equal definitions pair up in name order.
    let pairs = sqlx::query!(
        r#"with defs as (
           select n.nspname as schema, c.relname as name,
                  x.indisunique as is_unique,
                  substring(pg_get_indexdef(x.indexrelid) from ' USING .*$') as def
           from pg_index x
           join pg_class c on c.oid = x.indexrelid
           join pg_class t on t.oid = x.indrelid
           join pg_namespace n on n.oid = t.relnamespace
           where t.relname = $2 and n.nspname in ('public', $1)
         ), ranked as (
           select *, row_number() over (partition by schema, is_unique, def order by name) as n
           from defs
         )
         select live.name as "live?", fresh.name as "fresh?"
         from (select * from ranked where schema = 'public') live
         full join (select * from ranked where schema = $1) fresh
           using (is_unique, def, n)"#,
        schema,
        table
    )
    .fetch_all(&mut *tx)
    .await?;
    let mut renames = Vec::new();
    for pair in pairs {
        match (pair.live, pair.fresh) {
            (Some(live), Some(fresh)) if live != fresh => renames.push((fresh, live)),
            (Some(_), Some(_)) => {}
            (live, fresh) => {
                return Err(ProjectionError::RebuildMismatch {
                    table: table.to_owned(),
                    index: live.or(fresh).unwrap_or_default(),
                })
            }
        }
    }
    // Through temporary names, so two fresh indexes can trade names.
    for (i, (fresh, _)) in renames.iter().enumerate() {
        sqlx::query(&format!(
            "alter index {schema}.\"{fresh}\" rename to \"swap_{i}\""
        ))
        .execute(&mut *tx)
        .await?;
    }
    for (i, (_, live)) in renames.iter().enumerate() {
        sqlx::query(&format!(
            "alter index {schema}.\"swap_{i}\" rename to \"{live}\""
        ))
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}
