//! `vcintel privacy`: the crypto-shredding keys' maintenance (see
//! docs/privacy.md).

pub use crate::settings::MasterKeys;
use clap::Subcommand;
use vcintel_infra::db;
use vcintel_infra::privacy;

#[derive(Debug, Subcommand)]
pub enum PrivacyAction {
    /// Re-wrap every subject's data key under the current master key. Set
    /// the new key and a higher version, keep the old one in
    /// `VCINTEL_PRIVACY_PREVIOUS_MASTER_KEYS` until this has run (and every
    /// process runs with the new key), then drop it. No event is touched.
    RotateMasterKey,
    /// Everything about one person as `GET /v1/me/export` gives it to them
    /// (an operator answering a data-access request).
    Export {
        /// The person's user id.
        user: uuid::Uuid,
        /// Write here instead of standard output.
        #[arg(long)]
        output: Option<std::path::PathBuf>,
    },
    /// Erase one person now (a request to be forgotten received another
    /// way, or one that must not wait for its grace period): shreds their
    /// keys, removes what the tables hold about them and records
    /// `user.erased`. Safe to repeat.
    Erase {
        /// The person's user id.
        user: uuid::Uuid,
    },
    /// Seal, in place, the personal values of events written before they
    /// were sealed (v1), then have the relay refill the stream so it holds
    /// no plaintext either. Resumable; nothing to do once it has run.
    Migrate {
        /// Events sealed per transaction.
        #[arg(long, default_value_t = 500)]
        batch_size: i64,
    },
}

pub async fn run(
    database_url: &str,
    keys: &MasterKeys,
    action: PrivacyAction,
) -> anyhow::Result<()> {
    let pool = db::connect(database_url, 2).await?;
    match action {
        PrivacyAction::Export { user, output } => {
            use futures::StreamExt as _;
            use tokio::io::AsyncWriteExt as _;
            let document = crate::routes::workspaces::export::export_document(
                keys.vault(pool)?,
                vcintel_domain::UserId(user),
            )
            .await
            .map_err(|error| anyhow::anyhow!("{error}"))?;
            let mut document = std::pin::pin!(document);
            let mut out: Box<dyn tokio::io::AsyncWrite + Unpin> = match &output {
                Some(path) => Box::new(tokio::fs::File::create(path).await?),
                None => Box::new(tokio::io::stdout()),
            };
            while let Some(chunk) = document.next().await {
                out.write_all(&chunk?).await?;
            }
            out.flush().await?;
        }
        PrivacyAction::Erase { user } => {
            let vault = keys.vault(pool)?;
            let services = vcintel_infra::event_store::command_services(&vault);
            let metadata = vcintel_commands::CommandMetadata {
                request_id: Some("vcintel-privacy-erase".to_owned()),
                ..Default::default()
            };
            let erased = crate::erasure::erase_person(
                &vault,
                &services.accounts,
                &services.workspaces,
                vcintel_domain::UserId(user),
                &metadata,
            )
            .await?;
            println!(
                "{user} erased: {} key(s) shredded ({} invitation(s) to their address), {} API key(s) revoked{}",
                erased.subjects.len(),
                erased.invitations.len(),
                erased.api_keys_revoked,
                if erased.recorded { "" } else { "; user.erased was already recorded" }
            );
        }
        PrivacyAction::Migrate { batch_size } => {
            let vault = keys.vault(pool.clone())?;
            let bar = super::progress::counter("sealing", "events");
            let sealed = vault
                .seal_old_events(batch_size.max(1), &|n| bar.set_position(n))
                .await?;
            bar.finish_and_clear();
            if sealed > 0 {
                vcintel_infra::relay::request_refill(&pool, vcintel_infra::relay::RELAY_NAME)
                    .await?;
                println!(
                    "{sealed} event(s) sealed; the relay refills the stream from the store, so \
                     it holds no plaintext either"
                );
            } else {
                println!("every event's personal values are sealed already");
            }
        }
        PrivacyAction::RotateMasterKey => {
            let ring = keys.ring()?;
            let bar = super::progress::counter("re-wrapping", "data keys");
            let rewrapped = privacy::rotate(&pool, &ring, &|n| bar.set_position(n)).await?;
            bar.finish_and_clear();
            println!(
                "{rewrapped} data key(s) re-wrapped under master key version {}",
                ring.current_version()
            );
        }
    }
    Ok(())
}
