//! The `vcintel` command line: one module per subcommand. `serve` runs the
//! service; the others are operators' tools over the same crates the
//! service uses.

mod backup;
mod demo;
mod events;
mod migrate;
mod privacy;
mod progress;
mod projections;
mod serve;
mod stream;
mod token;

use crate::{telemetry, Component, Settings};
use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "vcintel",
    version,
    about = "VC Intel: event-sourced deal-sourcing backend"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the API, the relay and the projection workers (or some of them).
    Serve {
        #[command(flatten)]
        settings: Box<Settings>,
        /// Run only these components (comma-separated); default: all.
        #[arg(long, value_enum, value_delimiter = ',')]
        only: Vec<Component>,
    },
    /// Apply, revert or list database migrations.
    Migrate {
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: String,
        #[command(subcommand)]
        action: migrate::MigrateAction,
    },
    /// Read, export and check the event store.
    Events {
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: String,
        #[command(flatten)]
        keys: privacy::MasterKeys,
        #[command(subcommand)]
        action: events::EventsAction,
    },
    /// Read-model maintenance.
    Projections {
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: String,
        #[command(flatten)]
        keys: privacy::MasterKeys,
        #[command(subcommand)]
        action: projections::ProjectionsAction,
    },
    /// The events stream: what the relay has proven it holds, the
    /// divergences it found and repaired, and the refill command.
    Stream {
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: String,
        #[command(subcommand)]
        action: stream::StreamAction,
    },
    /// Consistent backups of what cannot be rebuilt, their verification,
    /// and restores into an empty database.
    Backup {
        /// Needed to create and restore, not to verify.
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: Option<String>,
        #[command(flatten)]
        keys: privacy::MasterKeys,
        #[command(subcommand)]
        action: backup::BackupAction,
    },
    /// Crypto-shredding keys: rotate the master key.
    Privacy {
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: String,
        #[command(flatten)]
        keys: privacy::MasterKeys,
        #[command(subcommand)]
        action: privacy::PrivacyAction,
    },
    /// Sample data for trying the product.
    Demo {
        #[command(subcommand)]
        action: demo::DemoAction,
    },
    /// Development and test bearer tokens.
    Token {
        #[command(subcommand)]
        action: token::TokenAction,
    },
}

/// Parses the command line, runs the command, and flushes telemetry before
/// the process exits, whatever the outcome.
pub async fn main() -> ExitCode {
    let cli = Cli::parse();
    let telemetry = telemetry::init();
    let outcome = run(cli).await;
    telemetry.shutdown().await;
    outcome.unwrap_or_else(|error| {
        eprintln!("Error: {error:?}");
        ExitCode::FAILURE
    })
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve { settings, only } => serve::run(*settings, only).await?,
        Command::Migrate {
            database_url,
            action,
        } => migrate::run(&database_url, action).await?,
        Command::Events {
            database_url,
            keys,
            action,
        } => return events::run(&database_url, &keys, action).await,
        Command::Projections {
            database_url,
            keys,
            action,
        } => projections::run(&database_url, &keys, action).await?,
        Command::Stream {
            database_url,
            action,
        } => stream::run(&database_url, action).await?,
        Command::Backup {
            database_url,
            keys,
            action,
        } => backup::run(database_url.as_deref(), &keys, action).await?,
        Command::Privacy {
            database_url,
            keys,
            action,
        } => privacy::run(&database_url, &keys, action).await?,
        Command::Demo { action } => demo::run(action).await?,
        Command::Token { action } => token::run(action)?,
    }
    Ok(ExitCode::SUCCESS)
}
