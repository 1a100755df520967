//! The mailer: JetStream consumers of the events that owe someone a mail
//! (the outbox), sending it over SMTP (lettre): `user.verification_requested`
//! (it mints the mail's verification token) and `workspace.member_invited`
//! (the invitee learns of the invitation and how to accept it).
//!
//! The token exists nowhere but in the mail and, hashed, in
//! `email_verification_tokens`: never in an event, which every subscriber
//! reads. A redelivered event whose mail went out sends nothing more; one
//! whose mail did not gets a fresh token. Without an SMTP server the mail
//! cannot go out: in development the link is logged (so a developer can
//! verify an account), in production nothing is, and readiness says so.
//! An invitation mail goes out once per event (`sent_mail`); one lost
//! between sending and recording is sent again, never not at all.

use crate::accounts::{
    mail_sent_for, mint_verification_token, record_mail_sent, verification_mail_sent,
    workspace_name,
};
use crate::wire::{EventMessage, Topology};
use async_nats::jetstream::{self, consumer::pull, AckKind};
use futures::StreamExt;
use lettre::message::header::ContentType;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::{ExposeSecret, SecretString};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use vcintel_domain::user::{UserEvent, VerificationRequested};
use vcintel_domain::workspace::{MemberInvited, WorkspaceEvent};

/// The durable consumer of verification requests.
pub const MAILER_NAME: &str = "mailer";
/// The durable consumer of invitations.
pub const INVITATION_MAILER_NAME: &str = "mailer-invitations";

/// What each durable consumer of the mailer reads: (name, aggregate type,
/// event type).
pub const MAIL_CONSUMERS: &[(&str, &str, &str)] = &[
    (
        MAILER_NAME,
        vcintel_domain::user::AGGREGATE_TYPE,
        "user.verification_requested",
    ),
    (
        INVITATION_MAILER_NAME,
        vcintel_domain::workspace::AGGREGATE_TYPE,
        "workspace.member_invited",
    ),
];

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
    vault: crate::vault::Vault,
    js: jetstream::Context,
    topology: Topology,
    transport: Option<AsyncSmtpTransport<Tokio1Executor>>,
    from: lettre::message::Mailbox,
    settings: MailSettings,
}

/// Why one mail did not go out.
#[derive(Debug, thiserror::Error)]
enum MailError {
    #[error("the event is not one the mailer sends mail for: {0}")]
    Undecodable(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("opening the address: {0}")]
    Key(#[from] crate::privacy::KeyError),
    #[error("the address cannot be mailed: {0}")]
    Address(#[from] lettre::address::AddressError),
    #[error("building the mail: {0}")]
    Build(#[from] lettre::error::Error),
    #[error("SMTP: {0}")]
    Smtp(#[from] lettre::transport::smtp::Error),
}

impl MailError {
    /// Whether trying again cannot help: an address the mail library or
    /// the server refuses, a mail that cannot be built, a 5xx answer.
    fn is_permanent(&self) -> bool {
        match self {
            MailError::Address(_) | MailError::Build(_) => true,
            MailError::Smtp(error) => error.is_permanent() || error.is_client(),
            MailError::Undecodable(_) | MailError::Database(_) | MailError::Key(_) => false,
        }
    }
}

impl Mailer {
    pub fn new(
        pool: sqlx::PgPool,
        vault: crate::vault::Vault,
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
            vault,
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

    /// Runs every consumer until `shutdown`, each reconnecting with
    /// backoff on errors.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let mailer = std::sync::Arc::new(self);
        tracing::info!(mail = mailer.describe(), "mailer starting");
        let consumers = MAIL_CONSUMERS.iter().map(|&(name, aggregate, event)| {
            let mailer = mailer.clone();
            let shutdown = shutdown.clone();
            async move {
                crate::supervise::restarting(name, &shutdown, || {
                    mailer.consume(name, aggregate, event, &shutdown)
                })
                .await;
            }
        });
        futures::future::join_all(consumers).await;
        Ok(())
    }

    async fn consume(
        &self,
        name: &str,
        aggregate_type: &str,
        event_type: &str,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<()> {
        let stream = self.js.get_stream(self.topology.stream_name()).await?;
        let durable = self.topology.durable_name(name);
        let consumer = stream
            .get_or_create_consumer(
                &durable,
                pull::Config {
                    durable_name: Some(durable.clone()),
                    filter_subject: self
                        .topology
                        .event_subject_filter(aggregate_type, event_type),
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
            self.handle(name, message).await;
        }
    }

    async fn handle(&self, consumer: &str, message: jetstream::Message) {
        let mut event = serde_json::from_slice::<EventMessage>(&message.payload).ok();
        let outcome = match &mut event {
            Some(event) => match self.vault.open_messages(std::slice::from_mut(event)).await {
                Err(e) => Err(e.into()),
                Ok(()) if consumer == INVITATION_MAILER_NAME => self.send_invitation(event).await,
                Ok(()) => self.send(event).await,
            },
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
                let permanent = error.is_permanent();
                if permanent {
                    tracing::warn!(%error, consumer, "mail cannot be sent; parking it");
                } else {
                    tracing::warn!(%error, deliveries, consumer, "mail not sent; retrying");
                }
                match &event {
                    Some(event) if permanent || deliveries >= self.settings.max_deliveries => {
                        let parked = crate::stream::park(
                            &self.js,
                            &self.topology,
                            consumer,
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
        let Some(email) = email.into_known() else {
            // The person was erased meanwhile: nobody to write to.
            return Ok(());
        };
        let Some(token) = mint_verification_token(
            &self.pool,
            user_id,
            &email,
            event.id,
            self.settings.token_ttl,
        )
        .await?
        else {
            // Sent before this delivery, or the person was erased since.
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

    /// Tells an invitee of their invitation: which workspace, which role,
    /// and how to take it up (sign in or up with this address, verify it,
    /// accept). Nothing in it is a credential.
    async fn send_invitation(&self, event: &EventMessage) -> Result<(), MailError> {
        let invited = match serde_json::from_value::<WorkspaceEvent>(event.tagged_payload()) {
            Ok(WorkspaceEvent::MemberInvited(invited)) => invited,
            Ok(other) => return Err(MailError::Undecodable(format!("{other:?}"))),
            Err(e) => return Err(MailError::Undecodable(e.to_string())),
        };
        if mail_sent_for(&self.pool, event.id).await? {
            return Ok(());
        }
        let MemberInvited {
            workspace_id,
            invitation_id,
            email,
            role,
            ..
        } = invited;
        let Some(email) = email.into_known() else {
            return Ok(());
        };
        let workspace = workspace_name(&self.pool, workspace_id.0)
            .await?
            .unwrap_or_else(|| "a workspace".to_owned());
        match &self.transport {
            Some(transport) => {
                let mail = Message::builder()
                    .from(self.from.clone())
                    .to(email.as_str().parse()?)
                    .subject(format!("You are invited to {workspace} on VC Intel"))
                    .header(ContentType::TEXT_PLAIN)
                    .body(format!(
                        "You are invited to join the workspace \"{workspace}\" on VC Intel as {role}.\n\n\
                         To accept, sign in with this address (or sign up with it and verify it), \
                         then find the invitation under GET /v1/me/invitations and accept it:\n\n\
                         POST /v1/me/invitations/{invitation_id}/accept\n\n\
                         Or decline it (.../decline). If you do not know this workspace, ignore \
                         this mail: nobody joins a workspace without accepting.\n",
                        role = role.as_str(),
                    ))?;
                transport.send(mail).await?;
            }
            None => {
                tracing::info!(
                    %invitation_id,
                    "no SMTP server configured: invitation mail not sent (the invitee sees it under /v1/me/invitations)"
                );
            }
        }
        record_mail_sent(&self.pool, event.id, "invitation").await?;
        Ok(())
    }
}
