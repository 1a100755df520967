//! The `vcintel` command line: one module per subcommand. `serve` runs the
//! service; the others are operators' tools over the same crates the
//! service uses.

mod arguments;
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
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
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
        /// Postgres connection URL (the event store and read models).
        #[arg(long, env = "DATABASE_URL", hide_env_values = true, global = true)]
        database_url: Option<String>,
        #[command(subcommand)]
        action: migrate::MigrateAction,
    },
    /// Read, export and check the event store.
    Events {
        /// Postgres connection URL (the event store and read models).
        #[arg(long, env = "DATABASE_URL", hide_env_values = true, global = true)]
        database_url: Option<String>,
        #[command(flatten)]
        keys: privacy::MasterKeys,
        #[command(subcommand)]
        action: events::EventsAction,
    },
    /// Read-model maintenance.
    Projections {
        /// Postgres connection URL (the event store and read models).
        #[arg(long, env = "DATABASE_URL", hide_env_values = true, global = true)]
        database_url: Option<String>,
        #[command(flatten)]
        keys: privacy::MasterKeys,
        #[command(subcommand)]
        action: projections::ProjectionsAction,
    },
    /// The events stream: what the relay has proven it holds, the
    /// divergences it found and repaired, and the refill command.
    Stream {
        /// Postgres connection URL (the event store and read models).
        #[arg(long, env = "DATABASE_URL", hide_env_values = true, global = true)]
        database_url: Option<String>,
        #[command(subcommand)]
        action: stream::StreamAction,
    },
    /// Consistent backups of what cannot be rebuilt, their verification,
    /// and restores into an empty database.
    Backup {
        /// Postgres connection URL: needed to create and restore, not to
        /// verify.
        #[arg(long, env = "DATABASE_URL", hide_env_values = true, global = true)]
        database_url: Option<String>,
        #[command(flatten)]
        keys: privacy::MasterKeys,
        #[command(subcommand)]
        action: backup::BackupAction,
    },
    /// Crypto-shredding keys: rotate the master key.
    Privacy {
        /// Postgres connection URL (the event store and read models).
        #[arg(long, env = "DATABASE_URL", hide_env_values = true, global = true)]
        database_url: Option<String>,
        #[command(flatten)]
        keys: privacy::MasterKeys,
        #[command(subcommand)]
        action: privacy::PrivacyAction,
    },
    /// Sample data for trying the product.
    Demo {
        /// Postgres connection URL (the event store and read models).
        #[arg(long, env = "DATABASE_URL", hide_env_values = true, global = true)]
        database_url: Option<String>,
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
    let matches = match arguments::parse(Cli::command(), std::env::args_os()) {
        Ok(matches) => matches,
        Err(Ok(arguments::Refusal(message))) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
        Err(Err(error)) => error.exit(),
    };
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|error| error.exit());
    let telemetry = match telemetry::init() {
        Ok(telemetry) => telemetry,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    let outcome = run(cli).await;
    telemetry.shutdown().await;
    outcome.unwrap_or_else(|error| {
        // `vcintel events tail | head`: the reader has what it wanted.
        if reader_went_away(&error) {
            return ExitCode::SUCCESS;
        }
        if error.downcast_ref::<MissingDatabaseUrl>().is_some() {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
        eprintln!("error: {}", explain(&error));
        ExitCode::FAILURE
    })
}

/// Whether the output's reader closed it (a broken pipe), as Unix tools
/// treat it: a quiet end, not an error.
fn reader_went_away(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .map(std::io::Error::kind)
            .or_else(|| {
                cause
                    .downcast_ref::<serde_json::Error>()
                    .and_then(serde_json::Error::io_error_kind)
            })
            == Some(std::io::ErrorKind::BrokenPipe)
    })
}

/// A setting the command needs and nobody gave (clap cannot require an
/// argument that may come before or after a subcommand).
#[derive(Debug, thiserror::Error)]
#[error("missing settings: DATABASE_URL (--database-url)")]
struct MissingDatabaseUrl;

fn required(database_url: Option<String>) -> Result<String, MissingDatabaseUrl> {
    database_url.ok_or(MissingDatabaseUrl)
}

/// The failure in one line, causes joined; a database without our tables
/// gets what to run instead of the missing relation's name.
fn explain(error: &anyhow::Error) -> String {
    let unmigrated = error.chain().any(|cause| {
        cause
            .downcast_ref::<sqlx::Error>()
            .and_then(|e| e.as_database_error())
            .and_then(|db| db.code())
            .is_some_and(|code| code == "42P01")
    });
    if unmigrated {
        return "the database (DATABASE_URL) has no VC Intel tables yet: run `vcintel migrate up` \
                (or `vcintel serve`, which migrates) first"
            .to_owned();
    }
    one_line(error)
}

/// The error and its causes joined by `: `, leaving out a cause whose words
/// are already there: many errors print their source inside their own
/// message (sqlx's `error occurred while decoding: …`), and `{:#}` would
/// say each of those twice.
fn one_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let words = cause.to_string();
        if line.contains(&words) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&words);
    }
    line
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve { settings, only } => serve::run(*settings, only).await?,
        Command::Migrate {
            database_url,
            action,
        } => migrate::run(&required(database_url)?, action).await?,
        Command::Events {
            database_url,
            keys,
            action,
        } => return events::run(&required(database_url)?, &keys, action).await,
        Command::Projections {
            database_url,
            keys,
            action,
        } => projections::run(&required(database_url)?, &keys, action).await?,
        Command::Stream {
            database_url,
            action,
        } => stream::run(&required(database_url)?, action).await?,
        Command::Backup {
            database_url,
            keys,
            action,
        } => backup::run(database_url.as_deref(), &keys, action).await?,
        Command::Privacy {
            database_url,
            keys,
            action,
        } => privacy::run(&required(database_url)?, &keys, action).await?,
        Command::Demo {
            database_url,
            action,
        } => demo::run(&required(database_url)?, action).await?,
        Command::Token { action } => token::run(action)?,
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[test]
    fn a_cause_already_in_its_error_message_is_said_once() {
        let decoding =
            sqlx::Error::Decode("the data key does not unwrap: wrong master key?".into());
        let error = anyhow::Error::new(decoding).context("rebuilding notes");
        assert_eq!(
            one_line(&error),
            "rebuilding notes: error occurred while decoding: \
             the data key does not unwrap: wrong master key?"
        );
        let separate = anyhow::anyhow!("connection refused").context("DATABASE_URL (127.0.0.1:1)");
        assert_eq!(
            one_line(&separate),
            "DATABASE_URL (127.0.0.1:1): connection refused"
        );
    }
}
