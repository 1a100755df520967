//! Logical backups: a consistent copy of the event store and of everything
//! else that cannot be rebuilt from it (credentials, sessions, unique
//! values, idempotency records, the security log, sent mail, the store's
//! identity), with a manifest that lets a backup be verified on its own and
//! restored into an empty database. Read models are left out: a restore
//! rebuilds them from the events, and the relay refills the stream (the
//! self-healing policy for a restored store).
//!
//! A backup is a directory: `manifest.json` and one gzip'd `COPY` text file
//! per table, each with its SHA-256 (so `sha256sum` can check it too). The
//! manifest is written last; a directory without one is not a backup.

use crate::db::MIGRATOR;
use chrono::{DateTime, Utc};
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// The backup directory layout's version; raised on any change to it.
pub const FORMAT_VERSION: u32 = 1;

pub const MANIFEST: &str = "manifest.json";

/// The tables a backup copies, parents before children (refresh tokens
/// refer to sessions), each of which no event can rebuild.
pub const BACKED_UP: &[&str] = &[
    "events",
    "unique_values",
    "user_credentials",
    "auth_sessions",
    "refresh_tokens",
    "api_key_secrets",
    "email_verification_tokens",
    "security_events",
    "idempotency_keys",
    "sent_mail",
    "store_identity",
    "stream_orphans",
    "privacy_keys",
    "privacy_erasures",
];

/// Tables a backup leaves out besides the read models: bookkeeping a
/// running service recreates (migrations, leases, the relay's proof of the
/// stream, identity-change listeners, rate-limit windows, snapshots that
/// are folded again from the events).
pub const NOT_BACKED_UP: &[&str] = &[
    "_sqlx_migrations",
    "snapshots",
    "leases",
    "relay_checkpoints",
    "relay_deleted_handled",
    "relay_pending_repairs",
    "relay_stream_marks",
    "relay_repairs",
    "identity_listeners",
    "identity_change_acks",
    "rate_limit_windows",
    "projection_errors",
    "projection_gap_fills",
    "projection_rebuilds",
];

/// The events' writing transaction ids belong to the cluster that wrote
/// them; restored events are written by the restore's own transaction, so
/// the relay reads them, in position order, before anything written later.
const NOT_RESTORED_COLUMNS: &[(&str, &str)] = &[("events", "tx_id")];

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Manifest {
    pub format: u32,
    pub created_at: DateTime<Utc>,
    /// The release that made it.
    pub vcintel_version: String,
    /// The newest migration applied to the database it was made from.
    pub migration_version: i64,
    /// The event store's identity (`store_identity`), which a restore keeps.
    pub store_id: uuid::Uuid,
    pub events: EventsSummary,
    pub tables: Vec<TableCopy>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct EventsSummary {
    pub count: i64,
    pub last_position: Option<i64>,
    pub last_recorded_at: Option<DateTime<Utc>>,
}

/// One table's copy.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TableCopy {
    pub table: String,
    /// The columns, in the file's order.
    pub columns: Vec<String>,
    pub rows: u64,
    /// The file, relative to the backup directory.
    pub file: String,
    pub bytes: u64,
    /// SHA-256 of the file as stored, hex.
    pub sha256: String,
}

/// What a long step reports: the table, rows done, rows expected (an
/// estimate while backing up).
pub type Progress<'a> = &'a (dyn Fn(&str, u64, u64) + Send + Sync);

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

fn file_error(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::File {
        path: path.to_owned(),
        source,
    }
}

fn quote(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

/// `table`'s columns that hold data (not generated ones), in order.
async fn columns_of(db: &mut PgConnection, table: &str) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar!(
        r#"select attname::text as "name!" from pg_attribute
           where attrelid = ('public.' || quote_ident($1))::regclass
             and attnum > 0 and not attisdropped and attgenerated = ''
           order by attnum"#,
        table
    )
    .fetch_all(db)
    .await
}

/// Writes a consistent backup of `pool`'s database into `dir` (created;
/// it must not exist or be empty). Every table is read in one
/// repeatable-read transaction, so the copy is of one moment.
pub async fn create(
    pool: &PgPool,
    dir: &Path,
    progress: Progress<'_>,
) -> Result<Manifest, BackupError> {
    if dir.exists()
        && std::fs::read_dir(dir)
            .map_err(file_error(dir))?
            .next()
            .is_some()
    {
        return Err(BackupError::Invalid(format!(
            "{} is not empty: back up into a new directory",
            dir.display()
        )));
    }
    std::fs::create_dir_all(dir).map_err(file_error(dir))?;
    let mut db = pool.begin().await?;
    sqlx::query("set transaction isolation level repeatable read, read only")
        .execute(&mut *db)
        .await?;
    let migration_version: i64 = sqlx::query_scalar!(
        r#"select coalesce(max(version), 0) as "version!" from _sqlx_migrations where success"#
    )
    .fetch_one(&mut *db)
    .await?;
    let store_id = sqlx::query_scalar!("select store_id from store_identity")
        .fetch_one(&mut *db)
        .await?;
    let events = sqlx::query_as!(
        EventsSummary,
        r#"select count(*) as "count!", max(position) as last_position,
                  max(recorded_at) as last_recorded_at
           from events"#
    )
    .fetch_one(&mut *db)
    .await?;
    let mut tables = Vec::with_capacity(BACKED_UP.len());
    for table in BACKED_UP {
        let columns: Vec<String> = columns_of(&mut db, table)
            .await?
            .into_iter()
            .filter(|c| !NOT_RESTORED_COLUMNS.contains(&(table, c.as_str())))
            .collect();
        let estimate: f32 = sqlx::query_scalar!(
            r#"select reltuples as "rows!" from pg_class where oid = ('public.' || quote_ident($1))::regclass"#,
            table
        )
        .fetch_one(&mut *db)
        .await?;
        let estimate = estimate.max(0.0) as u64;
        let file = format!("{table}.copy.gz");
        let path = dir.join(&file);
        let out = std::fs::File::create(&path).map_err(file_error(&path))?;
        let mut writer = GzEncoder::new(
            HashingWriter::new(BufWriter::new(out)),
            flate2::Compression::default(),
        );
        let list: Vec<String> = columns.iter().map(|c| quote(c)).collect();
        // Events in the order they were committed, so the file reads as
        // the log does.
        let order = if *table == "events" {
            " order by tx_id, position"
        } else {
            ""
        };
        let statement = format!(
            "copy (select {} from public.{}{order}) to stdout",
            list.join(", "),
            quote(table)
        );
        let mut rows = 0u64;
        {
            let mut stream = db.copy_out_raw(&statement).await?;
            while let Some(chunk) = stream.try_next().await? {
                rows += chunk.iter().filter(|b| **b == b'\n').count() as u64;
                writer.write_all(&chunk).map_err(file_error(&path))?;
                progress(table, rows, estimate.max(rows));
            }
        }
        let hashing = writer.finish().map_err(file_error(&path))?;
        let (bytes, sha256, mut inner) = hashing.into_parts();
        inner.flush().map_err(file_error(&path))?;
        inner
            .into_inner()
            .map_err(|e| BackupError::File {
                path: path.clone(),
                source: e.into_error(),
            })?
            .sync_all()
            .map_err(file_error(&path))?;
        progress(table, rows, rows);
        tables.push(TableCopy {
            table: (*table).to_owned(),
            columns,
            rows,
            file,
            bytes,
            sha256,
        });
    }
    db.commit().await?;
    let manifest = Manifest {
        format: FORMAT_VERSION,
        created_at: Utc::now(),
        vcintel_version: env!("CARGO_PKG_VERSION").to_owned(),
        migration_version,
        store_id,
        events,
        tables,
    };
    let written = dir.join(format!("{MANIFEST}.partial"));
    let text = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| BackupError::Invalid(format!("manifest: {e}")))?;
    std::fs::write(&written, text).map_err(file_error(&written))?;
    std::fs::rename(&written, dir.join(MANIFEST)).map_err(file_error(&written))?;
    Ok(manifest)
}

/// Counts and hashes what passes through to `inner`.
struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> HashingWriter<W> {
    fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    fn into_parts(self) -> (u64, String, W) {
        (self.bytes, hex(&self.hasher.finalize()), self.inner)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.hasher.update(&buf[..written]);
        self.bytes += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads `dir`'s manifest.
pub fn read_manifest(dir: &Path) -> Result<Manifest, BackupError> {
    let path = dir.join(MANIFEST);
    let text = std::fs::read(&path).map_err(file_error(&path))?;
    let manifest: Manifest = serde_json::from_slice(&text).map_err(|e| {
        BackupError::Invalid(format!("{}: not a backup manifest: {e}", path.display()))
    })?;
    if manifest.format != FORMAT_VERSION {
        return Err(BackupError::Invalid(format!(
            "backup format {} (this release reads format {FORMAT_VERSION})",
            manifest.format
        )));
    }
    Ok(manifest)
}

/// Checks every file against the manifest: present, the recorded size and
/// SHA-256, a readable gzip stream holding the recorded number of rows,
/// and every table a restore needs. Returns the manifest.
pub fn verify(dir: &Path, progress: Progress<'_>) -> Result<Manifest, BackupError> {
    let manifest = read_manifest(dir)?;
    // Tables added to the backup after it was made are checked by the
    // restore, against the schema of the backup's migration.
    if !manifest.tables.iter().any(|t| t.table == "events") {
        return Err(BackupError::Invalid(
            "the backup has no copy of the events".to_owned(),
        ));
    }
    for copy in &manifest.tables {
        if copy.file.contains('/') || copy.file.contains("..") {
            return Err(BackupError::Invalid(format!(
                "{}: not a file name",
                copy.file
            )));
        }
        let path = dir.join(&copy.file);
        let mut file = std::fs::File::open(&path).map_err(file_error(&path))?;
        let mut hasher = Sha256::new();
        let mut bytes = 0u64;
        let mut buffer = vec![0u8; 256 * 1024];
        loop {
            let n = file.read(&mut buffer).map_err(file_error(&path))?;
            if n == 0 {
                break;
            }
            hasher.update(&buffer[..n]);
            bytes += n as u64;
        }
        let sha256 = hex(&hasher.finalize());
        if bytes != copy.bytes || sha256 != copy.sha256 {
            return Err(BackupError::Invalid(format!(
                "{}: {bytes} bytes with SHA-256 {sha256}, the manifest says {} bytes with {}",
                copy.file, copy.bytes, copy.sha256
            )));
        }
        let rows = count_rows(&path, &mut |rows| progress(&copy.table, rows, copy.rows))?;
        if rows != copy.rows {
            return Err(BackupError::Invalid(format!(
                "{}: {rows} rows, the manifest says {}",
                copy.file, copy.rows
            )));
        }
        progress(&copy.table, rows, copy.rows);
    }
    let events = manifest
        .tables
        .iter()
        .find(|t| t.table == "events")
        .map_or(0, |t| t.rows);
    if events as i64 != manifest.events.count {
        return Err(BackupError::Invalid(format!(
            "the events file holds {events} events, the manifest's summary {}",
            manifest.events.count
        )));
    }
    Ok(manifest)
}

fn count_rows(path: &Path, seen: &mut dyn FnMut(u64)) -> Result<u64, BackupError> {
    let file = std::fs::File::open(path).map_err(file_error(path))?;
    let mut reader = GzDecoder::new(BufReader::new(file));
    let mut buffer = vec![0u8; 256 * 1024];
    let mut rows = 0u64;
    loop {
        let n = reader.read(&mut buffer).map_err(file_error(path))?;
        if n == 0 {
            return Ok(rows);
        }
        rows += buffer[..n].iter().filter(|b| **b == b'\n').count() as u64;
        seen(rows);
    }
}

/// Restores the backup in `dir` into `pool`'s database, which must hold no
/// events, credentials or unique values: the schema is migrated to the
/// backup's migration, every table is loaded in one transaction, then the
/// newer migrations run over the restored data. Read models are left empty
/// for the caller to rebuild. Returns the manifest.
/// The subjects a backup records as erased (crypto-shredding): read from
/// a newer backup, so a restore of an older one erases them again.
pub fn erased_subjects(dir: &Path) -> Result<Vec<String>, BackupError> {
    let manifest = verify(dir, &|_, _, _| {})?;
    let copy = manifest
        .tables
        .iter()
        .find(|t| t.table == "privacy_erasures")
        .ok_or_else(|| BackupError::Invalid(format!("{} records no erasures", dir.display())))?;
    let column = copy
        .columns
        .iter()
        .position(|c| c == "subject")
        .ok_or_else(|| BackupError::Invalid("privacy_erasures has no subject column".to_owned()))?;
    let path = dir.join(&copy.file);
    let file = std::fs::File::open(&path).map_err(file_error(&path))?;
    let mut text = String::new();
    GzDecoder::new(BufReader::new(file))
        .read_to_string(&mut text)
        .map_err(file_error(&path))?;
    // COPY's text format: tab-separated, backslash escapes (a subject is
    // `kind:uuid`, which needs none).
    text.lines()
        .map(|line| {
            line.split('\t')
                .nth(column)
                .filter(|subject| !subject.contains('\\'))
                .map(str::to_owned)
                .ok_or_else(|| BackupError::Invalid(format!("{}: a malformed row", copy.file)))
        })
        .collect()
}

/// Erases `subjects` again in a restored database: deletes their data keys
/// and records them as erased. Returns how many keys were deleted.
pub async fn reapply_erasures(pool: &PgPool, subjects: &[String]) -> Result<u64, BackupError> {
    let mut tx = pool.begin().await?;
    let mut deleted = 0;
    for subject in subjects {
        if crate::privacy::shred(&mut tx, subject).await? {
            deleted += 1;
        }
    }
    tx.commit().await?;
    Ok(deleted)
}

pub async fn restore(
    pool: &PgPool,
    dir: &Path,
    progress: Progress<'_>,
) -> Result<Manifest, BackupError> {
    let manifest = verify(dir, &|_, _, _| {})?;
    let newest = MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
    if manifest.migration_version > newest {
        return Err(BackupError::Invalid(format!(
            "the backup was made by a newer release (vcintel {}, migration {}); this one knows \
             migrations up to {newest}: restore with that release or a later one",
            manifest.vcintel_version, manifest.migration_version
        )));
    }
    if !MIGRATOR
        .iter()
        .any(|m| m.version == manifest.migration_version)
    {
        return Err(BackupError::Invalid(format!(
            "the backup's migration {} is not one this release knows",
            manifest.migration_version
        )));
    }
    // A database holding a store is refused before its schema is touched.
    let has_events: bool = sqlx::query_scalar("select to_regclass('public.events') is not null")
        .fetch_one(pool)
        .await?;
    if has_events {
        let any: bool = sqlx::query_scalar("select exists(select 1 from events)")
            .fetch_one(pool)
            .await?;
        if any {
            return Err(BackupError::Invalid(
                "the database is not empty (it holds events): restore into a new database"
                    .to_owned(),
            ));
        }
    }
    crate::db::migrate(pool).await?;
    let held: i64 = sqlx::query_scalar!(
        r#"select (select count(*) from (select 1 from events limit 1) e)
                + (select count(*) from (select 1 from user_credentials limit 1) c)
                + (select count(*) from (select 1 from unique_values limit 1) u) as "held!""#
    )
    .fetch_one(pool)
    .await?;
    if held > 0 {
        return Err(BackupError::Invalid(
            "the database is not empty (it holds events, credentials or unique values): \
             restore into a new database"
                .to_owned(),
        ));
    }
    // Down to the backup's schema, so its rows fit; the newer migrations
    // then transform them as they would have in place.
    if manifest.migration_version < newest {
        MIGRATOR.undo(pool, manifest.migration_version).await?;
    }
    let mut tx = pool.begin().await?;
    for table in BACKED_UP {
        let Some(copy) = manifest.tables.iter().find(|t| t.table == *table) else {
            // A table a later release backs up is absent from an older
            // backup; at the backup's schema it must not exist either.
            let exists: bool = sqlx::query_scalar!(
                r#"select to_regclass('public.' || quote_ident($1)) is not null as "exists!""#,
                table
            )
            .fetch_one(&mut *tx)
            .await?;
            if exists {
                return Err(BackupError::Invalid(format!(
                    "the backup has no copy of {table}"
                )));
            }
            continue;
        };
        // Migrations seed some tables (the store's identity): the backup's
        // rows replace them.
        sqlx::query(&format!("delete from public.{}", quote(table)))
            .execute(&mut *tx)
            .await?;
        let list: Vec<String> = copy.columns.iter().map(|c| quote(c)).collect();
        let statement = format!(
            "copy public.{} ({}) from stdin",
            quote(table),
            list.join(", ")
        );
        let path = dir.join(&copy.file);
        let file = std::fs::File::open(&path).map_err(file_error(&path))?;
        let mut reader = GzDecoder::new(BufReader::new(file));
        let mut copy_in = tx.copy_in_raw(&statement).await?;
        let mut buffer = vec![0u8; 256 * 1024];
        let mut rows = 0u64;
        loop {
            let n = match reader.read(&mut buffer) {
                Ok(n) => n,
                Err(error) => {
                    let _ = copy_in.abort("unreadable backup file").await;
                    return Err(file_error(&path)(error));
                }
            };
            if n == 0 {
                break;
            }
            rows += buffer[..n].iter().filter(|b| **b == b'\n').count() as u64;
            copy_in.send(&buffer[..n]).await?;
            progress(table, rows, copy.rows);
        }
        let loaded = copy_in.finish().await?;
        if loaded != copy.rows {
            return Err(BackupError::Invalid(format!(
                "{table}: loaded {loaded} rows, the manifest says {}",
                copy.rows
            )));
        }
    }
    // New events are numbered after the restored ones.
    sqlx::query_scalar!(
        "select setval(pg_get_serial_sequence('events', 'position'),
                       coalesce((select max(position) from events), 0) + 1, false)"
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    crate::db::migrate(pool).await?;
    Ok(manifest)
}
