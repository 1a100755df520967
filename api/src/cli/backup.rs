//! `vcintel backup`: consistent logical backups of what cannot be rebuilt,
//! their verification, and restores into an empty database (then read
//! models rebuilt; the relay refills the stream when the service starts).
//! Point-in-time recovery uses Postgres' own machinery instead: see
//! `scripts/pitr.sh` and the README's "Backups and recovery".

use super::progress;
use clap::Subcommand;
use indicatif::ProgressBar;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use vcintel_infra::backup::{self, Manifest};
use vcintel_infra::db;

#[derive(Debug, Subcommand)]
pub enum BackupAction {
    /// Copy the event store and every table no event can rebuild, in one
    /// consistent snapshot, into a new directory with a manifest.
    Create {
        /// The directory to create (default: `vcintel-backup-<UTC time>`).
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Check a backup against its manifest: sizes, checksums, row counts.
    Verify { dir: PathBuf },
    /// Restore a verified backup into an empty database, then rebuild every
    /// read model from the restored events.
    Restore {
        dir: PathBuf,
        /// Leave the read models empty (rebuild them later with
        /// `vcintel projections rebuild`).
        #[arg(long)]
        skip_rebuild: bool,
        /// A newer backup whose erasures are applied again after the
        /// restore: a person erased since `DIR` was taken stays erased.
        #[arg(long)]
        erasures_from: Option<PathBuf>,
    },
}

/// One bar per table, drawn while it is copied (hidden off a terminal).
struct TableBars {
    bars: Mutex<HashMap<String, ProgressBar>>,
}

impl TableBars {
    fn new() -> Self {
        Self {
            bars: Mutex::default(),
        }
    }

    fn report(&self, verb: &str, table: &str, done: u64, total: u64) {
        let Ok(mut bars) = self.bars.lock() else {
            return;
        };
        let bar = bars
            .entry(table.to_owned())
            .or_insert_with(|| progress::rows_bar(&format!("{verb} {table}"), total));
        bar.set_length(total.max(done));
        bar.set_position(done);
    }

    fn finish(&self) {
        if let Ok(bars) = self.bars.lock() {
            for bar in bars.values() {
                bar.finish();
            }
        }
    }
}

fn summary(manifest: &Manifest) -> String {
    let rows: u64 = manifest.tables.iter().map(|t| t.rows).sum();
    let bytes: u64 = manifest.tables.iter().map(|t| t.bytes).sum();
    format!(
        "{} events (last position {}), {} rows in {} tables, {}, migration {}, store {}",
        manifest.events.count,
        manifest
            .events
            .last_position
            .map_or_else(|| "none".to_owned(), |p| p.to_string()),
        rows,
        manifest.tables.len(),
        progress::human_bytes(bytes),
        manifest.migration_version,
        manifest.store_id
    )
}

pub async fn run(
    database_url: Option<&str>,
    keys: &crate::settings::MasterKeys,
    action: BackupAction,
) -> anyhow::Result<()> {
    let bars = TableBars::new();
    let database_url =
        || database_url.ok_or_else(|| anyhow::anyhow!("set DATABASE_URL (or --database-url)"));
    match action {
        BackupAction::Create { output } => {
            let dir = output.unwrap_or_else(|| {
                PathBuf::from(format!(
                    "vcintel-backup-{}",
                    chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
                ))
            });
            let pool = db::connect(database_url()?, 2).await?;
            let started = std::time::Instant::now();
            let manifest = backup::create(&pool, &dir, &|table, done, total| {
                bars.report("copying", table, done, total);
            })
            .await?;
            bars.finish();
            println!(
                "backed up into {} in {}: {}",
                dir.display(),
                progress::human_duration(started.elapsed()),
                summary(&manifest)
            );
        }
        BackupAction::Verify { dir } => {
            let manifest = backup::verify(&dir, &|table, done, total| {
                bars.report("checking", table, done, total);
            })?;
            bars.finish();
            println!(
                "{} is a sound backup: {}",
                dir.display(),
                summary(&manifest)
            );
        }
        BackupAction::Restore {
            dir,
            skip_rebuild,
            erasures_from,
        } => {
            // Read before anything is written: a bad newer backup stops
            // the restore instead of leaving erased people readable.
            let erased = erasures_from
                .as_deref()
                .map(backup::erased_subjects)
                .transpose()?;
            let pool = db::connect(database_url()?, 2).await?;
            let started = std::time::Instant::now();
            let manifest = backup::restore(&pool, &dir, &|table, done, total| {
                bars.report("restoring", table, done, total);
            })
            .await?;
            bars.finish();
            // Keys first, before anything reads the restored store.
            if let Some(erased) = &erased {
                let shredded = backup::reapply_erasures(&pool, erased).await?;
                println!(
                    "erasures applied again: {} subject(s) erased since, {shredded} key(s) deleted",
                    erased.len()
                );
            }
            println!(
                "restored {} in {}: {}",
                dir.display(),
                progress::human_duration(started.elapsed()),
                summary(&manifest)
            );
            if skip_rebuild {
                println!("read models left empty: run `vcintel projections rebuild`");
            } else {
                super::projections::rebuild(
                    database_url()?,
                    keys,
                    vec![],
                    &vcintel_projections::rebuild::RebuildOptions::default(),
                )
                .await?;
            }
            if let Some(erased) = &erased {
                // The rest of each person's erasure, with the read models
                // in place: their tables' rows, API keys and `user.erased`.
                let erased_people = erase_people_again(keys, pool.clone(), erased).await?;
                println!("{erased_people} person(s) erased again in full");
            }
            println!(
                "start the service: the relay finds the stream unproven for this store and \
                 refills it from the restored events (events the backup lacks are kept in \
                 stream_orphans)"
            );
        }
    }
    Ok(())
}

/// Carries out again the erasure of every person among `subjects` that
/// the restored store holds (one registered after the backup is not in it).
async fn erase_people_again(
    keys: &crate::settings::MasterKeys,
    pool: sqlx::PgPool,
    subjects: &[String],
) -> anyhow::Result<usize> {
    let vault = keys.vault(pool)?;
    let services = vcintel_infra::event_store::command_services(&vault);
    let metadata = vcintel_commands::CommandMetadata {
        request_id: Some("vcintel-backup-restore".to_owned()),
        ..Default::default()
    };
    let mut erased = 0;
    for user in subjects
        .iter()
        .filter_map(|subject| subject.strip_prefix("user:")?.parse().ok())
    {
        match crate::erasure::erase_person(
            &vault,
            &services.accounts,
            &services.workspaces,
            vcintel_domain::UserId(user),
            &metadata,
        )
        .await
        {
            Ok(_) => erased += 1,
            Err(vcintel_infra::erasure::ErasureError::NotFound) => {}
            Err(error) => return Err(error.into()),
        }
    }
    Ok(erased)
}
