//! The mailer: a JetStream consumer of `user.verification_requested`
//! events (the outbox of mail owed) that mints each mail's verification
//! token and sends it over SMTP (lettre).
//!
//! The token exists nowhere but in the mail and, hashed, in
//! `email_verification_tokens`: never in an event, which every subscriber
//! reads. A redelivered event whose mail went out sends nothing more; one
//! whose mail did not gets a fresh token. Without an SMTP server the mail
//! cannot go out: in development the link is logged (so a developer can
//! verify an account), in production nothing is, and readiness says so.

use crate::accounts::{mint_verification_token, verification_mail_sent};
use crate::wire::{EventMessage, Topology};
use async_nats::jetstream::{self, consumer::pull, AckKind};
use futures::StreamExt;
use lettre::message::header::ContentType;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::{ExposeSecret, SecretString};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use vcintel_domain::user::{UserEvent, VerificationRequested};

/// The durable consumer's name.
pub const MAILER_NAME: &str = "mailer";

#[derive(Debug, Clone)]
pub struct MailSettings {
    /// `smtp://host:port` (a local relay, no TLS), `smtp://…?tls=required`
    /// (STARTTLS) or `smtps://user:password@host` (TLS); `None`: no mail.
    pub smtp_url: Option<SecretString>,
    /// The sender, e.g. `VC Intel <no-reply@vcintel.example>`.
    pub from: String,
    /// The page that takes the token: the mail links to
    /// `<verify_url>?token=<token>`, and that page posts the token to
    /// `POST /v1/auth/verify-email`.
    pub verify_url: String,
    /// How long a token stays valid.
    pub token_ttl: Duration,
    /// Development: without SMTP the link is logged instead of sent.
    pub development: bool,
    /// Deliveries of an event whose mail keeps failing before it is parked.
    pub max_deliveries: u64,
}

impl Default for MailSettings {
    fn default() -> Self {
        Self {
            smtp_url: None,
            from: "VC Intel <no-reply@vcintel.invalid>".to_owned(),
            verify_url: "http://localhost:8080/verify-email".to_owned(),
            token_ttl: Duration::from_secs(24 * 3600),
            development: false,
            max_deliveries: 20,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Mailer {
    pool: sqlx::PgPool,
    js: jetstream::Context,
    topology: Topology,
    transport: Option<AsyncSmtpTransport<Tokio1Executor>>,
    from: lettre::message::Mailbox,
    settings: MailSettings,
}

/// Why one mail did not go out.
#[derive(Debug, thiserror::Error)]
enum MailError {
    #[error("the event is not a verification request: {0}")]
    Undecodable(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("the address cannot be mailed: {0}")]
    Address(#[from] lettre::address::AddressError),
    #[error("building the mail: {0}")]
    Build(#[from] lettre::error::Error),
    #[error("SMTP: {0}")]
    Smtp(#[from] lettre::transport::smtp::Error),
}

impl Mailer {
    pub fn new(
        pool: sqlx::PgPool,
        js: jetstream::Context,
        topology: Topology,
        settings: MailSettings,
    ) -> anyhow::Result<Self> {
        let transport = match &settings.smtp_url {
            Some(url) => Some(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose_secret())
                    .map_err(|e| anyhow::anyhow!("VCINTEL_SMTP_URL: {e}"))?
                    .timeout(Some(Duration::from_secs(10)))
                    .build(),
            ),
            None => None,
        };
        let from = settings
            .from
            .parse()
            .map_err(|e| anyhow::anyhow!("VCINTEL_MAIL_FROM: {e}"))?;
        Ok(Self {
            pool,
            js,
            topology,
            transport,
            from,
            settings,
        })
    }

    /// Where verification links go, for readiness and the startup log.
    pub fn describe(&self) -> &'static str {
        match (&self.transport, self.settings.development) {
            (Some(_), _) => "verification mail goes out over SMTP",
            (None, true) => {
                "no SMTP server (VCINTEL_SMTP_URL): verification links are logged, development only"
            }
            (None, false) => {
                "no SMTP server (VCINTEL_SMTP_URL): verification mail is not sent; accounts cannot be verified"
            }
        }
    }

    /// Runs until `shutdown`, reconnecting with backoff on errors.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let mailer = std::sync::Arc::new(self);
        tracing::info!(mail = mailer.describe(), "mailer starting");
        crate::supervise::restarting(MAILER_NAME, &shutdown, || mailer.consume(&shutdown)).await;
        Ok(())
    }

    async fn consume(&self, shutdown: &CancellationToken) -> anyhow::Result<()> {
        let stream = self.js.get_stream(self.topology.stream_name()).await?;
        let durable = self.topology.durable_name(MAILER_NAME);
        let consumer = stream
            .get_or_create_consumer(
                &durable,
                pull::Config {
                    durable_name: Some(durable.clone()),
                    filter_subject: self.topology.event_subject_filter(
                        vcintel_domain::user::AGGREGATE_TYPE,
                        "user.verification_requested",
                    ),
                    ack_policy: jetstream::consumer::AckPolicy::Explicit,
                    ack_wait: Duration::from_secs(60),
                    ..Default::default()
                },
            )
            .await?;
        let mut messages = consumer
            .stream()
            .expires(Duration::from_secs(10))
            .heartbeat(Duration::from_secs(2))
            .messages()
            .await?;
        loop {
            let message = tokio::select! {
                message = messages.next() => message,
                _ = shutdown.cancelled() => return Ok(()),
            };
            let Some(message) = message else {
                anyhow::bail!("consumer stream ended");
            };
            let message = message.map_err(|e| anyhow::anyhow!("consumer stream: {e}"))?;
            self.handle(message).await;
        }
    }

    async fn handle(&self, message: jetstream::Message) {
        let event = serde_json::from_slice::<EventMessage>(&message.payload).ok();
        let outcome = match &event {
            Some(event) => self.send(event).await,
            None => Err(MailError::Undecodable("not an event message".to_owned())),
        };
        match outcome {
            Ok(()) => {
                let _ = message.ack().await;
            }
            Err(MailError::Undecodable(why)) => {
                tracing::error!(subject = %message.subject, why, "undecodable mail request; terminating it");
                let _ = message.ack_with(AckKind::Term).await;
            }
            Err(error) => {
                let deliveries = message.info().map_or(1, |info| info.delivered as u64);
                tracing::warn!(%error, deliveries, "verification mail not sent; retrying");
                match &event {
                    Some(event) if deliveries >= self.settings.max_deliveries => {
                        let parked = crate::stream::park(
                            &self.js,
                            &self.topology,
                            MAILER_NAME,
                            &message,
                            event,
                            &error.to_string(),
                            deliveries,
                        )
                        .await;
                        if parked.is_ok() {
                            let _ = message.ack_with(AckKind::Term).await;
                            return;
                        }
                        let _ = message
                            .ack_with(AckKind::Nak(Some(Duration::from_secs(5))))
                            .await;
                    }
                    _ => {
                        let _ = message
                            .ack_with(AckKind::Nak(Some(Duration::from_secs(5))))
                            .await;
                    }
                }
            }
        }
    }

    async fn send(&self, event: &EventMessage) -> Result<(), MailError> {
        let requested = match serde_json::from_value::<UserEvent>(event.tagged_payload()) {
            Ok(UserEvent::VerificationRequested(requested)) => requested,
            Ok(other) => return Err(MailError::Undecodable(format!("{other:?}"))),
            Err(e) => return Err(MailError::Undecodable(e.to_string())),
        };
        let VerificationRequested { user_id, email, .. } = requested;
        let Some(token) = mint_verification_token(
            &self.pool,
            user_id,
            &email,
            event.id,
            self.settings.token_ttl,
        )
        .await?
        else {
            // Sent before this delivery.
            return Ok(());
        };
        let link = format!("{}?token={token}", self.settings.verify_url);
        match &self.transport {
            Some(transport) => {
                let mail = Message::builder()
                    .from(self.from.clone())
                    .to(email.as_str().parse()?)
                    .subject("Verify your e-mail address for VC Intel")
                    .header(ContentType::TEXT_PLAIN)
                    .body(format!(
                        "Someone, hopefully you, signed up to VC Intel with this address.\n\n\
                         To verify it, open this link within {} hours:\n\n{link}\n\n\
                         Or send this token to POST /v1/auth/verify-email:\n\n{token}\n\n\
                         If it was not you, ignore this mail: the account cannot join any \
                         workspace through this address until it is verified.\n",
                        self.settings.token_ttl.as_secs() / 3600
                    ))?;
                transport.send(mail).await?;
            }
            // The link is a credential for the account: only a development
            // setup, where nobody else reads the logs, may print it.
            None if self.settings.development => {
                tracing::warn!(
                    user_id = %user_id,
                    %link,
                    "no SMTP server configured: verification link (development only)"
                );
            }
            None => {
                tracing::error!(
                    user_id = %user_id,
                    "no SMTP server configured: verification mail not sent"
                );
            }
        }
        verification_mail_sent(&self.pool, event.id).await?;
        Ok(())
    }
}
