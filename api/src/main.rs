//! The `vcintel` binary: `serve`, `migrate`, and the development token issuer.

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::time::Duration;
use uuid::Uuid;
use vcintel_api::auth::TokenKeys;
use vcintel_api::{telemetry, Application, Component, Settings};
use vcintel_domain::{Actor, Role, UserId, WorkspaceId};
use vcintel_infra::{db, CancellationToken};

#[derive(Debug, Parser)]
#[command(
    name = "vcintel",
    version,
    about = "VC Intel: event-sourced deal-sourcing backend"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
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
        action: MigrateAction,
    },
    /// Read-model maintenance.
    Projections {
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: String,
        #[command(subcommand)]
        action: ProjectionsAction,
    },
    /// Sample data for trying the product.
    Demo {
        #[command(subcommand)]
        action: DemoAction,
    },
    /// Development and test bearer tokens.
    Token {
        #[command(subcommand)]
        action: TokenAction,
    },
}

#[derive(Debug, Subcommand)]
enum MigrateAction {
    /// Apply every pending migration.
    Up,
    /// Revert the newest applied migration.
    Down,
    /// List migrations and whether each is applied.
    Status,
}

#[derive(Debug, Subcommand)]
enum ProjectionsAction {
    /// Rebuild read models from the event store, each in one transaction
    /// (readers see the old one until the new one commits; the running
    /// projector waits and then carries on from it).
    Rebuild {
        /// Read models to rebuild (default: all of them).
        names: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
enum DemoAction {
    /// Fill the demo account's personal workspace with a few hundred
    /// companies across sectors and stages, notes, lists and saved searches
    /// (creating the account if needed). Safe to re-run.
    Seed {
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: String,
        #[arg(long, default_value = "demo@vcintel.dev")]
        email: String,
        /// Creates the account with this password if it does not exist.
        #[arg(long, env = "VCINTEL_DEMO_PASSWORD", hide_env_values = true)]
        password: Option<secrecy::SecretString>,
        #[arg(long, default_value_t = 300)]
        companies: usize,
    },
}

#[derive(Debug, Subcommand)]
enum TokenAction {
    /// Mint a signed token for a user acting in a workspace (development and tests).
    Issue {
        #[arg(long)]
        workspace: Uuid,
        #[arg(long)]
        user: Uuid,
        #[arg(long, value_parser = parse_role)]
        role: Role,
        #[arg(long, default_value_t = 3600)]
        ttl_secs: u64,
        #[arg(long, env = "VCINTEL_JWT_SECRET", hide_env_values = true, value_parser = vcintel_api::settings::parse_secret)]
        jwt_secret: secrecy::SecretString,
    },
}

fn parse_role(value: &str) -> Result<Role, String> {
    value.parse()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    telemetry::init();
    match cli.command {
        Command::Serve { settings, only } => serve(*settings, only).await,
        Command::Migrate {
            database_url,
            action,
        } => migrate(&database_url, action).await,
        Command::Projections {
            database_url,
            action: ProjectionsAction::Rebuild { names },
        } => rebuild_projections(&database_url, names).await,
        Command::Demo {
            action:
                DemoAction::Seed {
                    database_url,
                    email,
                    password,
                    companies,
                },
        } => demo_seed(&database_url, &email, password, companies).await,
        Command::Token {
            action:
                TokenAction::Issue {
                    workspace,
                    user,
                    role,
                    ttl_secs,
                    jwt_secret,
                },
        } => {
            use secrecy::ExposeSecret;
            let keys = TokenKeys::new(jwt_secret.expose_secret().as_bytes());
            let actor = Actor {
                workspace_id: WorkspaceId(workspace),
                user_id: UserId(user),
                role,
            };
            println!("{}", keys.issue(&actor, Duration::from_secs(ttl_secs))?);
            Ok(())
        }
    }
}

async fn rebuild_projections(database_url: &str, names: Vec<String>) -> anyhow::Result<()> {
    let names = if names.is_empty() {
        vcintel_projections::READ_MODELS
            .iter()
            .map(|m| m.name.to_owned())
            .collect()
    } else {
        names
    };
    let pool = db::connect(database_url, 2).await?;
    for name in names {
        let started = std::time::Instant::now();
        let rebuilt = vcintel_projections::rebuild::rebuild_by_name(&pool, &name).await?;
        println!(
            "rebuilt {} from {} events in {:?}",
            rebuilt.read_model,
            rebuilt.events,
            started.elapsed()
        );
    }
    Ok(())
}

async fn demo_seed(
    database_url: &str,
    email: &str,
    password: Option<secrecy::SecretString>,
    companies: usize,
) -> anyhow::Result<()> {
    use secrecy::ExposeSecret;
    let email = vcintel_domain::user::Email::parse(email)
        .map_err(|reason| anyhow::anyhow!("--email {reason}"))?;
    let pool = db::connect(database_url, 8).await?;
    db::MIGRATOR.run(&pool).await?;
    let passwords = vcintel_infra::accounts::Passwords::new(Default::default())?;
    let commands = vcintel_infra::event_store::command_services(pool.clone());
    let options = vcintel_api::demo::DemoOptions {
        email: email.clone(),
        password: password.map(|p| p.expose_secret().to_owned()),
        companies,
    };
    let report = vcintel_api::demo::seed(&pool, &passwords, &commands, &options).await?;
    println!(
        "demo workspace {} of {email}{}: {} companies added ({} already there), {} notes, {} lists ({} memberships), {} saved searches",
        report.workspace.map(|w| w.to_string()).unwrap_or_default(),
        if report.account_created { " (account created)" } else { "" },
        report.companies_added,
        report.companies_already_there,
        report.notes_added,
        report.lists_created,
        report.list_memberships,
        report.saved_searches_created,
    );
    println!("sign in with POST /v1/auth/login as {email}; the running relay and projector publish and project the sample");
    Ok(())
}

async fn serve(settings: Settings, only: Vec<Component>) -> anyhow::Result<()> {
    let components = if only.is_empty() {
        Component::ALL.to_vec()
    } else {
        only
    };
    let app = Application::build(settings, &components).await?;
    if let Some(port) = app.port() {
        tracing::info!(port, components = ?components, "vcintel serving");
    } else {
        tracing::info!(components = ?components, "vcintel running");
    }
    let shutdown = CancellationToken::new();
    let signal = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown signal received");
        signal.cancel();
    });
    app.run(shutdown).await
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

async fn migrate(database_url: &str, action: MigrateAction) -> anyhow::Result<()> {
    let pool = db::connect(database_url, 2)
        .await
        .context("connecting to Postgres (DATABASE_URL)")?;
    match action {
        MigrateAction::Up => {
            db::MIGRATOR.run(&pool).await?;
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
