//! `vcintel migrate`: apply, revert or list database migrations.

use anyhow::Context;
use clap::Subcommand;
use vcintel_infra::db;

#[derive(Debug, Subcommand)]
pub enum MigrateAction {
    /// Apply every pending migration.
    Up,
    /// Revert the newest applied migration.
    Down,
    /// List migrations and whether each is applied.
    Status,
}

pub async fn run(database_url: &str, action: MigrateAction) -> anyhow::Result<()> {
    let pool = db::connect(database_url, 2)
        .await
        .context("connecting to Postgres (DATABASE_URL)")?;
    match action {
        MigrateAction::Up => {
            db::migrate(&pool).await?;
            println!("all migrations applied");
        }
        MigrateAction::Down => match db::migrate_down_one(&pool).await? {
            Some(version) => println!("reverted {version}"),
            None => println!("nothing to revert"),
        },
        MigrateAction::Status => {
            for (version, name, applied) in db::migration_status(&pool).await? {
                let mark = if applied { "applied" } else { "pending" };
                println!("{version} {name:<30} {mark}");
            }
        }
    }
    Ok(())
}
