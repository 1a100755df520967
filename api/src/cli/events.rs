//! `vcintel events`: tail, export and verify the event store.

use super::progress;
use clap::Subcommand;
use std::process::ExitCode;
use std::time::Duration;
use vcintel_infra::db;

#[derive(Debug, Subcommand)]
pub enum EventsAction {
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

/// Export and tail write events as stored (personal values sealed, as the
/// stream carries them); verify opens them, as every reader does.
pub async fn run(
    database_url: &str,
    keys: &crate::settings::MasterKeys,
    action: EventsAction,
) -> anyhow::Result<ExitCode> {
    use std::io::Write;
    use vcintel_infra::event_log::{self, CommitCursor, Reading};
    use vcintel_infra::wire::EventMessage;
    let pool = db::connect(database_url, 2).await?;
    match action {
        EventsAction::Verify => {
            let bar = progress::events_counter("verified");
            let vault = keys.vault(pool.clone())?;
            let report =
                vcintel_infra::verify::verify(&vault, 1_000, |n| bar.set_position(n)).await?;
            bar.finish_and_clear();
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
            Ok(if report.problem_count > 0 {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        EventsAction::Export { output } => {
            let total = event_log::count_all(&pool).await?;
            let mut out: Box<dyn Write> = match &output {
                Some(path) => Box::new(std::io::BufWriter::new(std::fs::File::create(path)?)),
                None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
            };
            let bar = progress::events_bar("exported", total as u64);
            let mut after = CommitCursor::default();
            loop {
                let events =
                    event_log::read_committed_after(&pool, None, after, 1_000, Reading::AsStored)
                        .await?;
                let Some(last) = events.last() else { break };
                after = last.cursor();
                for event in &events {
                    serde_json::to_writer(&mut out, &EventMessage::from_stored(event)?)?;
                    out.write_all(b"\n")?;
                }
                bar.inc(events.len() as u64);
            }
            out.flush()?;
            bar.finish();
            Ok(ExitCode::SUCCESS)
        }
        EventsAction::Tail {
            follow,
            from,
            types,
        } => {
            let mut after = match from {
                None => CommitCursor::default(),
                Some(position) => event_log::cursor_at(&pool, position)
                    .await?
                    .ok_or_else(|| anyhow::anyhow!("no event at position {position}"))?,
            };
            let mut stdout = std::io::stdout().lock();
            loop {
                let events =
                    event_log::read_committed_after(&pool, None, after, 1_000, Reading::AsStored)
                        .await?;
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
                        return Ok(ExitCode::SUCCESS);
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }
}
