//! `vcintel privacy`: the crypto-shredding keys' maintenance (see
//! docs/privacy.md).

use clap::{Args, Subcommand};
use secrecy::{ExposeSecret, SecretString};
use vcintel_infra::db;
use vcintel_infra::privacy::{self, KeyRing};

/// The master keys, from the environment.
#[derive(Debug, Args)]
pub struct MasterKeys {
    /// The master key that wraps every subject's data key: 32 random bytes,
    /// base64 (`openssl rand -base64 32`).
    #[arg(long, env = "VCINTEL_PRIVACY_MASTER_KEY", hide_env_values = true)]
    master_key: Option<SecretString>,
    /// Its version, stored beside each key it wraps; raise it with a new key.
    #[arg(long, env = "VCINTEL_PRIVACY_MASTER_KEY_VERSION", default_value_t = 1)]
    master_key_version: i32,
    /// Earlier master keys still needed to unwrap, as `version:base64`,
    /// comma-separated (during a rotation).
    #[arg(
        long,
        env = "VCINTEL_PRIVACY_PREVIOUS_MASTER_KEYS",
        hide_env_values = true
    )]
    previous_master_keys: Option<SecretString>,
}

impl MasterKeys {
    pub fn ring(&self) -> anyhow::Result<KeyRing> {
        let master_key = self
            .master_key
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("set VCINTEL_PRIVACY_MASTER_KEY"))?;
        KeyRing::from_settings(
            master_key.expose_secret(),
            self.master_key_version,
            self.previous_master_keys
                .as_ref()
                .map_or("", |keys| keys.expose_secret()),
        )
        .map_err(|error| anyhow::anyhow!("VCINTEL_PRIVACY_MASTER_KEY*: {error}"))
    }
}

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
                pool,
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
