//! `vcintel stream`: what the relay has proven the stream holds, and the
//! refill that is the way out of a halt.

use clap::Subcommand;
use vcintel_infra::db;

#[derive(Debug, Subcommand)]
pub enum StreamAction {
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

/// What the relay has proven and repaired (`stream status`, and the end of
/// `projections status`).
pub async fn print_health(pool: &sqlx::PgPool) -> anyhow::Result<()> {
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

pub async fn run(database_url: &str, action: StreamAction) -> anyhow::Result<()> {
    let pool = db::connect(database_url, 2).await?;
    match action {
        StreamAction::Status => print_health(&pool).await,
        StreamAction::Refill => {
            vcintel_infra::relay::request_refill(&pool, vcintel_infra::relay::RELAY_NAME).await?;
            println!(
                "refill requested: the leading relay purges the stream and republishes \
                 every event at its next check (within a second while one leads)"
            );
            Ok(())
        }
    }
}
