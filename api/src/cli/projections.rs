//! `vcintel projections`: rebuild read models, show their status, retry
//! their dead letters.

use super::progress;
use clap::Subcommand;
use vcintel_infra::db;

#[derive(Debug, Subcommand)]
pub enum ProjectionsAction {
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
        #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
        nats_url: String,
        #[arg(long, env = "VCINTEL_NATS_PREFIX", default_value = "vcintel")]
        nats_prefix: String,
    },
    /// Republish a read model's parked events from the event store (after
    /// the cause is fixed) and clear its dead letters.
    RetryDeadLetters {
        name: String,
        #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
        nats_url: String,
        #[arg(long, env = "VCINTEL_NATS_PREFIX", default_value = "vcintel")]
        nats_prefix: String,
    },
}

async fn status(database_url: &str, nats_url: &str, nats_prefix: &str) -> anyhow::Result<()> {
    let pool = db::connect(database_url, 2).await?;
    let nats = async_nats::connect(crate::settings::nats_servers(nats_url)?).await?;
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
    super::stream::print_health(&pool).await?;
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

pub(super) async fn rebuild(
    database_url: &str,
    keys: &crate::settings::MasterKeys,
    names: Vec<String>,
    options: &vcintel_projections::rebuild::RebuildOptions,
) -> anyhow::Result<()> {
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
    let vault = keys.vault(pool)?;
    for name in names {
        let started = std::time::Instant::now();
        // Drawn once there is something to count, so it never shows
        // `0/0 (100%)`; an empty read model gets its summary line only.
        let bar = std::sync::OnceLock::new();
        let progress = |replayed: u64, total: u64| {
            if total.max(replayed) == 0 {
                return;
            }
            let bar =
                bar.get_or_init(|| progress::events_bar(&format!("rebuilding {name}"), total));
            bar.set_length(total.max(replayed));
            bar.set_position(replayed);
        };
        let rebuilt =
            vcintel_projections::rebuild::rebuild_by_name(&vault, &name, options, &progress)
                .await?;
        // The summary below replaces the bar: one display, then one line.
        if let Some(bar) = bar.get() {
            bar.finish_and_clear();
        }
        let elapsed = started.elapsed();
        let fresh = rebuilt.events - rebuilt.resumed_from;
        let resumed = if rebuilt.resumed_from > 0 {
            format!(" (resumed after {} events)", rebuilt.resumed_from)
        } else {
            String::new()
        };
        println!(
            "rebuilt {} from {} events{resumed} in {}: {:.0} events/s, swapped in",
            rebuilt.read_model,
            rebuilt.events,
            progress::human_duration(elapsed),
            fresh as f64 / elapsed.as_secs_f64().max(1e-9)
        );
    }
    Ok(())
}

pub async fn run(
    database_url: &str,
    keys: &crate::settings::MasterKeys,
    action: ProjectionsAction,
) -> anyhow::Result<()> {
    match action {
        ProjectionsAction::Rebuild {
            names,
            batch_size,
            restart,
        } => {
            let options = vcintel_projections::rebuild::RebuildOptions {
                batch_size,
                restart,
            };
            rebuild(database_url, keys, names, &options).await
        }
        ProjectionsAction::Status {
            nats_url,
            nats_prefix,
        } => status(database_url, &nats_url, &nats_prefix).await,
        ProjectionsAction::RetryDeadLetters {
            name,
            nats_url,
            nats_prefix,
        } => {
            let pool = db::connect(database_url, 2).await?;
            let js = async_nats::jetstream::new(
                async_nats::connect(crate::settings::nats_servers(&nats_url)?).await?,
            );
            let topology = vcintel_infra::wire::Topology::new(&nats_prefix);
            let retried =
                vcintel_projections::runner::retry_dead_letters(&pool, &js, &topology, &name)
                    .await?;
            println!("republished {retried} parked events for {name}");
            Ok(())
        }
    }
}
