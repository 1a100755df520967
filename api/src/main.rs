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
    /// Read, export and check the event store.
    Events {
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: String,
        #[command(subcommand)]
        action: EventsAction,
    },
    /// Read-model maintenance.
    Projections {
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: String,
        #[command(subcommand)]
        action: ProjectionsAction,
    },
    /// The events stream: what the relay has proven it holds, the
    /// divergences it found and repaired, and the refill command.
    Stream {
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: String,
        #[command(subcommand)]
        action: StreamAction,
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
enum EventsAction {
    /// Print events in commit order as JSON lines (CloudEvents envelopes).
    Tail {
        /// Keep printing new events as they commit.
        #[arg(long)]
        follow: bool,
        /// Start after the event at this global position.
        #[arg(long)]
        from: Option<i64>,
        /// Only these event types (repeatable), e.g. `company.added`.
        #[arg(long = "type")]
        types: Vec<String>,
    },
    /// Write every event as NDJSON (CloudEvents envelopes), in commit order.
    Export {
        /// File to write; default standard output.
        #[arg(long)]
        output: Option<std::path::PathBuf>,
    },
    /// Check the store: no gaps in any aggregate's sequence, and every
    /// event decodes with today's code. Exits 1 if anything is wrong.
    Verify,
}

#[derive(Debug, Subcommand)]
enum ProjectionsAction {
    /// Rebuild read models from the event store, blue/green: fresh tables
    /// are filled while the live ones keep serving, then swapped in at
    /// once. A rebuild that was interrupted resumes where it stopped.
    Rebuild {
        /// Read models to rebuild (default: all of them).
        names: Vec<String>,
        /// Events replayed per transaction.
        #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(i64).range(1..=100_000))]
        batch_size: i64,
        /// Start over instead of resuming an interrupted rebuild.
        #[arg(long)]
        restart: bool,
    },
    /// Each read model's stream position, lag, aggregates, last failure and
    /// dead letters.
    Status {
        #[arg(long, env = "NATS_URL")]
        nats_url: String,
        #[arg(long, env = "VCINTEL_NATS_PREFIX", default_value = "vcintel")]
        nats_prefix: String,
    },
    /// Republish a read model's parked events from the event store (after
    /// the cause is fixed) and clear its dead letters.
    RetryDeadLetters {
        name: String,
        #[arg(long, env = "NATS_URL")]
        nats_url: String,
        #[arg(long, env = "VCINTEL_NATS_PREFIX", default_value = "vcintel")]
        nats_prefix: String,
    },
}

#[derive(Debug, Subcommand)]
enum StreamAction {
    /// The stream's epoch, how far the relay has proven it holds the
    /// store, the leader, the latest divergences and what was done, and the
    /// orphaned events a restore took back.
    Status,
    /// Refill the stream from the event store: the leading relay purges it
    /// and republishes every event under a new epoch (subscribers see the
    /// epoch change and receive every event again). The way out of
    /// `VCINTEL_STREAM_ON_DIVERGENCE=halt`.
    Refill,
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
    let telemetry = telemetry::init();
    let outcome = run(cli).await;
    telemetry.shutdown().await;
    outcome
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { settings, only } => serve(*settings, only).await,
        Command::Migrate {
            database_url,
            action,
        } => migrate(&database_url, action).await,
        Command::Events {
            database_url,
            action,
        } => events_command(&database_url, action).await,
        Command::Projections {
            database_url,
            action:
                ProjectionsAction::Rebuild {
                    names,
                    batch_size,
                    restart,
                },
        } => {
            let options = vcintel_projections::rebuild::RebuildOptions {
                batch_size,
                restart,
            };
            rebuild_projections(&database_url, names, &options).await
        }
        Command::Projections {
            database_url,
            action:
                ProjectionsAction::Status {
                    nats_url,
                    nats_prefix,
                },
        } => projections_status(&database_url, &nats_url, &nats_prefix).await,
        Command::Projections {
            database_url,
            action:
                ProjectionsAction::RetryDeadLetters {
                    name,
                    nats_url,
                    nats_prefix,
                },
        } => {
            let pool = db::connect(&database_url, 2).await?;
            let js = async_nats::jetstream::new(async_nats::connect(&nats_url).await?);
            let topology = vcintel_infra::wire::Topology::new(&nats_prefix);
            let retried =
                vcintel_projections::runner::retry_dead_letters(&pool, &js, &topology, &name)
                    .await?;
            println!("republished {retried} parked events for {name}");
            Ok(())
        }
        Command::Stream {
            database_url,
            action,
        } => {
            let pool = db::connect(&database_url, 2).await?;
            match action {
                StreamAction::Status => print_stream_health(&pool).await,
                StreamAction::Refill => {
                    vcintel_infra::relay::request_refill(&pool, vcintel_infra::relay::RELAY_NAME)
                        .await?;
                    println!(
                        "refill requested: the leading relay purges the stream and republishes \
                         every event at its next check (within a second while one leads)"
                    );
                    Ok(())
                }
            }
        }
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

async fn events_command(database_url: &str, action: EventsAction) -> anyhow::Result<()> {
    use std::io::{IsTerminal, Write};
    use vcintel_infra::event_log::{self, CommitCursor};
    use vcintel_infra::wire::EventMessage;
    let pool = db::connect(database_url, 2).await?;
    match action {
        EventsAction::Verify => {
            let terminal = std::io::stderr().is_terminal();
            let report = vcintel_infra::verify::verify(&pool, 1_000, |n| {
                if terminal {
                    eprint!("\rverified {n} events");
                }
            })
            .await?;
            if terminal {
                eprintln!();
            }
            println!(
                "{} events in {} aggregates: {}",
                report.events,
                report.aggregates,
                if report.problem_count == 0 {
                    "no gaps, everything decodes".to_owned()
                } else {
                    format!("{} problems", report.problem_count)
                }
            );
            for problem in &report.problems {
                println!("  {problem}");
            }
            if report.problem_count > 0 {
                std::process::exit(1);
            }
            Ok(())
        }
        EventsAction::Export { output } => {
            let total: i64 = sqlx::query_scalar("select count(*) from events")
                .fetch_one(&pool)
                .await?;
            let mut out: Box<dyn Write> = match &output {
                Some(path) => Box::new(std::io::BufWriter::new(std::fs::File::create(path)?)),
                None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
            };
            let terminal = std::io::stderr().is_terminal();
            let mut after = CommitCursor::default();
            let mut written = 0i64;
            loop {
                let events = event_log::read_committed_after(&pool, None, after, 1_000).await?;
                let Some(last) = events.last() else { break };
                after = last.cursor();
                for event in &events {
                    serde_json::to_writer(&mut out, &EventMessage::from_stored(event)?)?;
                    out.write_all(b"\n")?;
                }
                written += events.len() as i64;
                if terminal {
                    eprint!("{}", progress_bar("exported", written as u64, total as u64));
                }
            }
            out.flush()?;
            if terminal {
                eprintln!();
            }
            Ok(())
        }
        EventsAction::Tail {
            follow,
            from,
            types,
        } => {
            let mut after = match from {
                None => CommitCursor::default(),
                Some(position) => {
                    let tx: Option<String> =
                        sqlx::query_scalar("select tx_id::text from events where position = $1")
                            .bind(position)
                            .fetch_optional(&pool)
                            .await?;
                    let tx =
                        tx.ok_or_else(|| anyhow::anyhow!("no event at position {position}"))?;
                    CommitCursor {
                        tx_id: tx.parse()?,
                        position,
                    }
                }
            };
            let mut stdout = std::io::stdout().lock();
            loop {
                let events = event_log::read_committed_after(&pool, None, after, 1_000).await?;
                if let Some(last) = events.last() {
                    after = last.cursor();
                }
                for event in events
                    .iter()
                    .filter(|e| types.is_empty() || types.contains(&e.event_type))
                {
                    serde_json::to_writer(&mut stdout, &EventMessage::from_stored(event)?)?;
                    stdout.write_all(b"\n")?;
                }
                stdout.flush()?;
                if events.is_empty() {
                    if !follow {
                        return Ok(());
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }
}

async fn projections_status(
    database_url: &str,
    nats_url: &str,
    nats_prefix: &str,
) -> anyhow::Result<()> {
    let pool = db::connect(database_url, 2).await?;
    let nats = async_nats::connect(nats_url).await?;
    let js = async_nats::jetstream::new(nats);
    let topology = vcintel_infra::wire::Topology::new(nats_prefix);
    let all = vcintel_projections::runner::status(&pool, &js, &topology).await?;
    let rebuilds = vcintel_projections::rebuild::statuses(&pool).await?;
    println!(
        "{:<16} {:>10} {:>8} {:>10} {:>6}  last failure",
        "read model", "position", "lag", "aggregates", "dead"
    );
    for status in all {
        let failure = match &status.last_error {
            None => "none".to_owned(),
            Some((event, error, times, at)) => format!("{at}: {event} ({times}×): {error}"),
        };
        println!(
            "{:<16} {:>10} {:>8} {:>10} {:>6}  {failure}",
            status.name, status.delivered, status.lag, status.aggregates, status.dead_letters
        );
        if let Some((fills, events, aggregate, at)) = &status.gap_fills {
            println!(
                "{:<16} filled {events} version(s) missing from the stream from the store, \
                 {fills} time(s), the last for {aggregate} at {at}",
                ""
            );
        }
    }
    print_stream_health(&pool).await?;
    for rebuild in rebuilds {
        let state = match (rebuild.state.as_str(), rebuild.active) {
            ("swapped", _) => format!("swapped in at {}", rebuild.updated_at),
            (_, true) => "running".to_owned(),
            (_, false) => "interrupted: `projections rebuild` resumes it".to_owned(),
        };
        println!(
            "rebuild of {}: {state}, {}/{} events, {} run(s){}",
            rebuild.read_model,
            rebuild.replayed,
            rebuild.total,
            rebuild.runs,
            rebuild
                .last_error
                .map(|e| format!(", last error: {e}"))
                .unwrap_or_default()
        );
    }
    Ok(())
}

/// What the relay has proven and repaired (`stream status`, and the end of
/// `projections status`).
async fn print_stream_health(pool: &sqlx::PgPool) -> anyhow::Result<()> {
    let health =
        vcintel_infra::relay::stream_health(pool, vcintel_infra::relay::RELAY_NAME).await?;
    println!(
        "stream: epoch {}, proven through sequence {} ({} published event(s) not yet proven), \
         checked {}, leader {}",
        health.epoch,
        health.verified_seq,
        health.unverified,
        health
            .verified_at
            .map_or("never".to_owned(), |at| at.to_rfc3339()),
        health.leader.as_deref().unwrap_or("none")
    );
    if let Some(diverged) = &health.diverged {
        println!("stream HALTED: {diverged}; `vcintel stream refill` refills it from the store");
    }
    if health.orphans > 0 {
        println!(
            "{} event(s) the stream held that the store does not (taken back by a restore) \
             are kept in the stream_orphans table",
            health.orphans
        );
    }
    if health.repairs.is_empty() {
        println!("no divergence found between the stream and the store");
    }
    for (at, kind, detail, republished) in &health.repairs {
        println!("  {at} {kind}: {detail} ({republished} republished)");
    }
    Ok(())
}

/// A progress bar that redraws itself in place on a terminal line.
fn progress_bar(label: &str, done: u64, total: u64) -> String {
    const WIDTH: u64 = 30;
    let total = total.max(done);
    let filled = (done * WIDTH).checked_div(total).unwrap_or(WIDTH);
    let percent = (done * 100).checked_div(total).unwrap_or(100);
    format!(
        "\r{label} [{}{}] {done}/{total} events ({percent}%)",
        "#".repeat(filled as usize),
        "-".repeat((WIDTH - filled) as usize)
    )
}

async fn rebuild_projections(
    database_url: &str,
    names: Vec<String>,
    options: &vcintel_projections::rebuild::RebuildOptions,
) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    let names = if names.is_empty() {
        vcintel_projections::READ_MODELS
            .iter()
            .map(|m| m.name.to_owned())
            .collect()
    } else {
        names
    };
    for name in &names {
        vcintel_projections::rebuild::read_model_named(name)?;
    }
    let pool = db::connect(database_url, 2).await?;
    let terminal = std::io::stderr().is_terminal();
    for name in names {
        let started = std::time::Instant::now();
        let progress = |replayed: u64, total: u64| {
            if terminal {
                eprint!(
                    "{}",
                    progress_bar(&format!("rebuilding {name}"), replayed, total)
                );
            }
        };
        let rebuilt =
            vcintel_projections::rebuild::rebuild_by_name(&pool, &name, options, &progress).await?;
        if terminal {
            eprintln!();
        }
        let elapsed = started.elapsed();
        let fresh = rebuilt.events - rebuilt.resumed_from;
        let resumed = if rebuilt.resumed_from > 0 {
            format!(" (resumed after {} events)", rebuilt.resumed_from)
        } else {
            String::new()
        };
        println!(
            "rebuilt {} from {} events{resumed} in {elapsed:?}: {:.0} events/s, swapped in",
            rebuilt.read_model,
            rebuilt.events,
            fresh as f64 / elapsed.as_secs_f64().max(1e-9)
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
