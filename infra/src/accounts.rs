//! Identity storage beside the event store: password hashing, credentials,
//! login sessions with rotating refresh tokens, API-key secrets, the
//! security log, and the current state of users and workspaces read
//! straight from their events (authorisation must not trail a projection).
//!
//! Secrets are stored only as hashes: passwords with argon2id, refresh
//! tokens and API keys (256 random bits each) with SHA-256, which is enough
//! for high-entropy secrets and cheap enough to check on every request.

use crate::event_log::{self, Reading};
pub use crate::identity_cache::CurrentWorkspace;
use crate::identity_cache::IdentityCache;
use crate::privacy::random_bytes;
use crate::vault::Vault;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::{PgExecutor, PgPool};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use uuid::Uuid;
use vcintel_commands::aggregate::EMAIL_SCOPE;
use vcintel_commands::workspace::{ApiKeySecrets, IssuedApiKey};
use vcintel_commands::CommandError;
use vcintel_domain::user::{Email, UserEvent, UserRegistered, AGGREGATE_TYPE as USER_TYPE};
use vcintel_domain::workspace::{WorkspaceEvent, AGGREGATE_TYPE as WORKSPACE_TYPE};
use vcintel_domain::{UserId, WorkspaceId};

/// argon2id cost. The defaults are OWASP's first recommendation
/// (19 MiB, 2 passes, 1 lane): about 20-40 ms per hash on one core here.
#[derive(Debug, Clone, Copy)]
pub struct PasswordCost {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for PasswordCost {
    fn default() -> Self {
        Self {
            memory_kib: Params::DEFAULT_M_COST,
            iterations: Params::DEFAULT_T_COST,
            parallelism: Params::DEFAULT_P_COST,
        }
    }
}

/// Hashes and verifies passwords off the async threads, a bounded number
/// at a time, so a burst of logins cannot exhaust memory or starve requests.
#[derive(Debug, Clone)]
pub struct Passwords {
    params: Params,
    permits: Arc<Semaphore>,
    /// Verified against when the account does not exist, so a failed login
    /// costs the same time either way.
    decoy_hash: Arc<String>,
}

impl Passwords {
    pub fn new(cost: PasswordCost) -> anyhow::Result<Self> {
        let params = Params::new(cost.memory_kib, cost.iterations, cost.parallelism, None)
            .map_err(|e| anyhow::anyhow!("invalid argon2 parameters: {e}"))?;
        let decoy = hasher(&params)
            .hash_password(&random_bytes::<16>())
            .map_err(|e| anyhow::anyhow!("argon2: {e}"))?
            .to_string();
        let lanes = std::thread::available_parallelism().map_or(2, |n| n.get());
        Ok(Self {
            params,
            permits: Arc::new(Semaphore::new(lanes * 2)),
            decoy_hash: Arc::new(decoy),
        })
    }

    pub async fn hash(&self, password: &str) -> anyhow::Result<String> {
        let _permit = self.permits.acquire().await?;
        let params = self.params.clone();
        let password = password.as_bytes().to_vec();
        tokio::task::spawn_blocking(move || {
            hasher(&params)
                .hash_password(&password)
                .map(|h| h.to_string())
                .map_err(|e| anyhow::anyhow!("argon2: {e}"))
        })
        .await?
    }

    /// Whether `password` matches `stored`; with no stored hash, does the
    /// same work against a decoy and answers false.
    pub async fn verify(&self, password: &str, stored: Option<String>) -> anyhow::Result<bool> {
        let _permit = self.permits.acquire().await?;
        let params = self.params.clone();
        let exists = stored.is_some();
        let hash = stored.unwrap_or_else(|| self.decoy_hash.as_str().to_owned());
        let password = password.as_bytes().to_vec();
        let matches = tokio::task::spawn_blocking(move || {
            hasher(&params)
                .verify_password(&password, hash.as_str())
                .is_ok()
        })
        .await?;
        Ok(exists && matches)
    }
}

fn hasher(params: &Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
}

pub fn sha256(text: &str) -> Vec<u8> {
    sha256_bytes(text.as_bytes())
}

pub fn sha256_bytes(bytes: &[u8]) -> Vec<u8> {
    Sha256::digest(bytes).to_vec()
}

/// A fresh secret: `prefix` and 256 random bits, URL-safe.
pub fn new_secret(prefix: &str) -> String {
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(random_bytes::<32>()))
}

// ---------------------------------------------------------------- users

/// The account registered under `email`, from the unique-value index that
/// the registration's own append wrote.
pub async fn user_by_email(
    db: impl PgExecutor<'_>,
    email: &Email,
) -> Result<Option<UserId>, sqlx::Error> {
    let id = sqlx::query_scalar!(
        "select aggregate_id from unique_values where scope = $1 and value = $2",
        EMAIL_SCOPE,
        email.as_str(),
    )
    .fetch_optional(db)
    .await?;
    Ok(id.and_then(|id| id.parse().ok()).map(UserId))
}

/// The account, folded from its events by the domain (`None` if it was
/// never registered).
pub async fn account(
    vault: &Vault,
    user: UserId,
) -> Result<Option<vcintel_domain::user::User>, sqlx::Error> {
    let events = event_log::read_aggregate(
        vault.pool(),
        USER_TYPE,
        &user.to_string(),
        0,
        i64::MAX,
        Reading::Opened(vault),
    )
    .await?;
    let mut account = vcintel_domain::user::User::default();
    for event in events {
        let event = serde_json::from_value::<UserEvent>(event.payload)
            .map_err(|error| sqlx::Error::Decode(Box::new(error)))?;
        account.apply(event);
    }
    Ok(account.registration().is_some().then_some(account))
}

/// The user as registered, folded from their events.
pub async fn registered_user(
    vault: &Vault,
    user: UserId,
) -> Result<Option<UserRegistered>, sqlx::Error> {
    Ok(account(vault, user)
        .await?
        .and_then(|account| account.registration().cloned()))
}

/// The account and password hash for a login, in one read, so a login for
/// an unknown email does the same database work as one for a known email.
pub async fn login_credentials(
    db: impl PgExecutor<'_>,
    email: &Email,
) -> Result<Option<(UserId, Option<String>)>, sqlx::Error> {
    let row = sqlx::query!(
        r#"select u.aggregate_id::uuid as "user_id!", c.password_hash as "password_hash?"
           from unique_values u left join user_credentials c on c.user_id = u.aggregate_id::uuid
           where u.scope = $1 and u.value = $2"#,
        EMAIL_SCOPE,
        email.as_str(),
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(|row| (UserId(row.user_id), row.password_hash)))
}

pub async fn store_password_hash(
    db: impl PgExecutor<'_>,
    user: UserId,
    hash: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "insert into user_credentials (user_id, password_hash) values ($1, $2)
         on conflict (user_id) do update set password_hash = excluded.password_hash, updated_at = now()",
        user.0,
        hash,
    )
    .execute(db)
    .await?;
    Ok(())
}

// ---------------------------------------------------------------- sessions

pub use vcintel_commands::sessions::{ClientInfo, NewSession, Refresh};

pub const REFRESH_TOKEN_PREFIX: &str = "vcr_";

pub async fn create_session(
    pool: &PgPool,
    user: UserId,
    lifetime: Duration,
    client: &ClientInfo,
) -> Result<NewSession, sqlx::Error> {
    let session_id = Uuid::now_v7();
    let refresh_token = new_secret(REFRESH_TOKEN_PREFIX);
    let expires_at = sqlx::query_scalar!(
        r#"with session as (
             insert into auth_sessions (id, user_id, expires_at, ip, user_agent)
             values ($1, $2, now() + make_interval(secs => $3), $4, $5)
             returning id, expires_at
         ), token as (
             insert into refresh_tokens (token_hash, session_id) select $6, id from session
         )
         select expires_at as "expires_at!" from session"#,
        session_id,
        user.0,
        lifetime.as_secs_f64(),
        client.ip.as_deref(),
        client.user_agent.as_deref(),
        sha256(&refresh_token),
    )
    .fetch_one(pool)
    .await?;
    Ok(NewSession {
        session_id,
        refresh_token,
        expires_at,
    })
}

/// One of a person's sessions, as their data export shows it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct SessionRecord {
    pub id: Uuid,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub last_refreshed_at: chrono::DateTime<chrono::Utc>,
    pub expires_at: chrono::DateTime<chrono::Utc>,
    pub revoked_at: Option<chrono::DateTime<chrono::Utc>>,
    #[schema(example = "logout")]
    pub revoked_reason: Option<String>,
    /// The address it was opened from.
    #[schema(example = "203.0.113.24")]
    pub ip: Option<String>,
    #[schema(
        example = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 Safari/605.1.15"
    )]
    pub user_agent: Option<String>,
}

/// Every session of `user` still kept (live, or ended within retention),
/// oldest first.
pub async fn sessions_of(
    db: impl PgExecutor<'_>,
    user: UserId,
) -> Result<Vec<SessionRecord>, sqlx::Error> {
    sqlx::query_as!(
        SessionRecord,
        "select id, created_at, last_refreshed_at, expires_at, revoked_at, revoked_reason, ip,
                user_agent
         from auth_sessions where user_id = $1 order by created_at, id",
        user.0
    )
    .fetch_all(db)
    .await
}

pub async fn rotate_refresh_token(pool: &PgPool, token: &str) -> Result<Refresh, sqlx::Error> {
    let hash = sha256(token);
    let mut tx = pool.begin().await?;
    // Locks the token row: two concurrent refreshes with one token cannot
    // both see it unused.
    let row = sqlx::query!(
        r#"select s.id as session_id, s.user_id, t.used_at is not null as "used!",
                  s.revoked_at is null and s.expires_at > now() as "live!"
           from refresh_tokens t join auth_sessions s on s.id = t.session_id
           where t.token_hash = $1
           for update of t"#,
        hash,
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        return Ok(Refresh::Invalid);
    };
    let (session_id, user_id, used, live) = (row.session_id, row.user_id, row.used, row.live);
    let user = UserId(user_id);
    if used {
        sqlx::query!(
            "update auth_sessions set revoked_at = now(), revoked_reason = 'refresh_token_reuse'
             where id = $1 and revoked_at is null",
            session_id,
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        return Ok(if live {
            Refresh::ReuseDetected { user, session_id }
        } else {
            Refresh::Invalid
        });
    }
    if !live {
        return Ok(Refresh::Invalid);
    }
    let refresh_token = new_secret(REFRESH_TOKEN_PREFIX);
    let expires_at = sqlx::query_scalar!(
        "with used as (
             update refresh_tokens set used_at = now() where token_hash = $1
         ), fresh as (
             insert into refresh_tokens (token_hash, session_id) values ($2, $3)
         )
         update auth_sessions set last_refreshed_at = now() where id = $3 returning expires_at",
        hash,
        sha256(&refresh_token),
        session_id,
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Refresh::Rotated {
        user,
        session: NewSession {
            session_id,
            refresh_token,
            expires_at,
        },
    })
}

/// The session's user if it is neither revoked nor expired: remembered by
/// `cache` (see [`IdentityCache`]), else one indexed read.
pub async fn live_session(
    pool: &PgPool,
    cache: &IdentityCache,
    session_id: Uuid,
) -> Result<Option<UserId>, sqlx::Error> {
    if let Some(user) = cache.session(session_id) {
        return Ok(Some(user));
    }
    let generation = cache.generation();
    let row = sqlx::query!(
        "select user_id, expires_at from auth_sessions
         where id = $1 and revoked_at is null and expires_at > now()",
        session_id,
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|row| {
        let user = UserId(row.user_id);
        cache.remember_session(session_id, user, row.expires_at, generation);
        user
    }))
}

pub async fn revoke_session(
    db: impl PgExecutor<'_>,
    session_id: Uuid,
    reason: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        "update auth_sessions set revoked_at = now(), revoked_reason = $2
         where id = $1 and revoked_at is null",
        session_id,
        reason,
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Ends every live session of `user`; returns their ids.
pub async fn revoke_all_sessions(
    db: impl PgExecutor<'_>,
    user: UserId,
    reason: &str,
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar!(
        "update auth_sessions set revoked_at = now(), revoked_reason = $2
         where user_id = $1 and revoked_at is null
         returning id",
        user.0,
        reason,
    )
    .fetch_all(db)
    .await
}

// ------------------------------------------------- e-mail verification

pub const VERIFICATION_TOKEN_PREFIX: &str = "vcv_";

/// Mints the token a verification mail carries for the
/// `user.verification_requested` event `source_event`, keeping only its
/// hash. `None` when that event's mail already went out (a redelivery)
/// or the person was erased; a mail that was never sent gets a fresh
/// token, so the one unsent is never valid.
pub async fn mint_verification_token(
    db: &PgPool,
    user: UserId,
    email: &Email,
    source_event: Uuid,
    valid_for: std::time::Duration,
) -> Result<Option<String>, sqlx::Error> {
    let token = new_secret(VERIFICATION_TOKEN_PREFIX);
    // Under the person's subject lock, which their erasure takes too: a
    // token (it keeps the address) is never minted for someone erased,
    // nor left behind by a mint that raced the erasure.
    let mut tx = db.begin().await?;
    if crate::privacy::lock_and_check_erased(&mut tx, &format!("user:{}", user.0)).await? {
        return Ok(None);
    }
    let minted = sqlx::query_scalar!(
        r#"insert into email_verification_tokens
               (token_hash, user_id, email, source_event, expires_at)
           values ($1, $2, $3, $4, now() + make_interval(secs => $5))
           on conflict (source_event) do update
               set token_hash = excluded.token_hash, expires_at = excluded.expires_at
               where email_verification_tokens.sent_at is null
           returning true as "minted!""#,
        sha256(&token),
        user.0,
        email.as_str(),
        source_event,
        valid_for.as_secs_f64()
    )
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(minted.map(|_| token))
}

/// Whether the mail for `source_event` (other than a verification
/// request) already went out.
pub async fn mail_sent_for(db: &PgPool, source_event: Uuid) -> Result<bool, sqlx::Error> {
    let sent = sqlx::query_scalar!(
        r#"select true as "sent!" from sent_mail where source_event = $1"#,
        source_event
    )
    .fetch_optional(db)
    .await?;
    Ok(sent.is_some())
}

/// Records that the mail of `kind` for `source_event` went out.
pub async fn record_mail_sent(
    db: &PgPool,
    source_event: Uuid,
    kind: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "insert into sent_mail (source_event, kind) values ($1, $2) on conflict (source_event) do nothing",
        source_event,
        kind
    )
    .execute(db)
    .await?;
    Ok(())
}

/// A workspace's name, for mail about it (from the identity read model,
/// which holds every workspace long before anyone is invited to it).
pub async fn workspace_name(db: &PgPool, workspace: Uuid) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar!("select name from workspaces where id = $1", workspace)
        .fetch_optional(db)
        .await
}

/// Records that the mail carrying `source_event`'s token went out.
pub async fn verification_mail_sent(db: &PgPool, source_event: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "update email_verification_tokens set sent_at = now() where source_event = $1",
        source_event
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Verification tokens as the verify use case redeems them.
#[derive(Debug, Clone)]
pub struct PgVerificationTokens {
    pool: PgPool,
}

impl PgVerificationTokens {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[async_trait::async_trait]
impl vcintel_commands::user::VerificationTokens for PgVerificationTokens {
    async fn redeem(&self, token: &str) -> Result<Option<(UserId, Email)>, CommandError> {
        if !token.starts_with(VERIFICATION_TOKEN_PREFIX) {
            return Ok(None);
        }
        let redeemed = sqlx::query!(
            "update email_verification_tokens set used_at = now()
             where token_hash = $1 and used_at is null and expires_at > now()
             returning user_id, email",
            sha256(token)
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(CommandError::store)?;
        Ok(redeemed.and_then(|row| Some((UserId(row.user_id), Email::parse(&row.email).ok()?))))
    }
}

// ---------------------------------------------------------------- API keys

pub const API_KEY_PREFIX: &str = "vci_";

/// A new API key: `vci_<key id>_<secret>`. The id part finds the stored
/// hash with one indexed read; the secret part is what proves possession.
pub fn new_api_key() -> IssuedApiKey {
    let key_id = Uuid::now_v7();
    let id_part = key_id.simple().to_string();
    let secret = new_secret(&format!("{API_KEY_PREFIX}{id_part}_"));
    IssuedApiKey {
        key_id,
        display_prefix: format!("{API_KEY_PREFIX}{}…{}", &id_part[..8], &id_part[28..]),
        secret,
    }
}

/// The key id a presented API key claims, if it is shaped like one.
pub fn api_key_id(presented: &str) -> Option<Uuid> {
    let rest = presented.strip_prefix(API_KEY_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    if secret.len() < 40 {
        return None;
    }
    Uuid::try_parse(id).ok()
}

pub async fn store_api_key_secret(
    db: impl PgExecutor<'_>,
    key: &IssuedApiKey,
    workspace: WorkspaceId,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "insert into api_key_secrets (key_id, workspace_id, secret_hash) values ($1, $2, $3)",
        key.key_id,
        workspace.0,
        sha256(&key.secret),
    )
    .execute(db)
    .await?;
    Ok(())
}

/// The API key secrets the workspace use cases mint and keep.
#[derive(Debug, Clone)]
pub struct PgAccounts {
    pool: PgPool,
}

impl PgAccounts {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[async_trait::async_trait]
impl ApiKeySecrets for PgAccounts {
    fn issue(&self) -> IssuedApiKey {
        new_api_key()
    }

    async fn store(&self, key: &IssuedApiKey, workspace: WorkspaceId) -> Result<(), CommandError> {
        store_api_key_secret(&self.pool, key, workspace)
            .await
            .map_err(CommandError::store)
    }
}

/// Passwords and the accounts they belong to, for the session use cases.
#[derive(Debug, Clone)]
pub struct PgCredentials {
    pool: PgPool,
    vault: Vault,
    passwords: Passwords,
}

impl PgCredentials {
    pub fn new(vault: Vault, passwords: Passwords) -> Self {
        Self {
            pool: vault.pool().clone(),
            vault,
            passwords,
        }
    }
}

fn hashing_error(error: anyhow::Error) -> CommandError {
    CommandError::Store(error.into())
}

#[async_trait::async_trait]
impl vcintel_commands::sessions::Credentials for PgCredentials {
    async fn hash(&self, password: &str) -> Result<String, CommandError> {
        self.passwords.hash(password).await.map_err(hashing_error)
    }

    async fn store_hash(&self, user: UserId, hash: &str) -> Result<(), CommandError> {
        store_password_hash(&self.pool, user, hash)
            .await
            .map_err(CommandError::store)
    }

    async fn credentials_of(
        &self,
        email: &Email,
    ) -> Result<Option<(UserId, Option<String>)>, CommandError> {
        login_credentials(&self.pool, email)
            .await
            .map_err(CommandError::store)
    }

    async fn verify(&self, password: &str, stored: Option<String>) -> Result<bool, CommandError> {
        self.passwords
            .verify(password, stored)
            .await
            .map_err(hashing_error)
    }

    async fn registration(&self, user: UserId) -> Result<Option<UserRegistered>, CommandError> {
        registered_user(&self.vault, user)
            .await
            .map_err(CommandError::store)
    }
}

/// Login sessions in Postgres; an ended session is forgotten by this
/// process's identity cache at once.
#[derive(Debug, Clone)]
pub struct PgSessions {
    pool: PgPool,
    cache: IdentityCache,
    lifetime: Duration,
}

impl PgSessions {
    pub fn new(pool: PgPool, cache: IdentityCache, lifetime: Duration) -> Self {
        Self {
            pool,
            cache,
            lifetime,
        }
    }
}

#[async_trait::async_trait]
impl vcintel_commands::sessions::Sessions for PgSessions {
    async fn start(&self, user: UserId, client: &ClientInfo) -> Result<NewSession, CommandError> {
        create_session(&self.pool, user, self.lifetime, client)
            .await
            .map_err(CommandError::store)
    }

    async fn rotate(&self, refresh_token: &str) -> Result<Refresh, CommandError> {
        rotate_refresh_token(&self.pool, refresh_token)
            .await
            .map_err(CommandError::store)
    }

    async fn ended(&self, sessions: &[Uuid]) {
        self.cache.sessions_ended(&self.pool, sessions).await;
    }
}

/// The security log in Postgres.
#[derive(Debug, Clone)]
pub struct PgSecurityLog {
    pool: PgPool,
}

impl PgSecurityLog {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[async_trait::async_trait]
impl vcintel_commands::sessions::SecurityLog for PgSecurityLog {
    async fn record(&self, event: SecurityEvent) {
        if let Err(error) = record_security_event(&self.pool, &event).await {
            tracing::error!(%error, kind = event.kind, "could not write the security log");
        }
    }
}

/// The workspace of the API key `presented`, if its secret matches. A key's
/// hash never changes, so `cache` keeps those of keys presented correctly.
pub async fn verify_api_key(
    pool: &PgPool,
    cache: &IdentityCache,
    presented: &str,
) -> Result<Option<(Uuid, WorkspaceId)>, sqlx::Error> {
    use subtle::ConstantTimeEq;
    let Some(key_id) = api_key_id(presented) else {
        return Ok(None);
    };
    let presented_hash = sha256(presented);
    let stored = match cache.api_key(key_id) {
        Some(known) => Some(known),
        None => {
            let row = sqlx::query!(
                "select workspace_id, secret_hash from api_key_secrets where key_id = $1",
                key_id,
            )
            .fetch_optional(pool)
            .await?;
            row.map(|row| (WorkspaceId(row.workspace_id), row.secret_hash))
        }
    };
    Ok(stored.and_then(|(workspace, stored)| {
        let matches: bool = stored.ct_eq(&presented_hash).into();
        if matches {
            cache.remember_api_key(key_id, workspace, stored);
        }
        matches.then_some((key_id, workspace))
    }))
}

// ---------------------------------------------------------------- security log

pub use vcintel_commands::sessions::{security_kind, SecurityEvent};

/// Appends to the security log; with an `id`, at most once.
pub async fn record_security_event(
    db: impl PgExecutor<'_>,
    event: &SecurityEvent,
) -> Result<(), sqlx::Error> {
    let detail = if event.detail.is_null() {
        Value::Object(Default::default())
    } else {
        event.detail.clone()
    };
    sqlx::query!(
        "insert into security_events (id, kind, workspace_id, user_id, ip, detail)
         values ($1, $2, $3, $4, $5, $6) on conflict (id) do nothing",
        event.id.unwrap_or_else(Uuid::now_v7),
        event.kind,
        event.workspace_id.map(|w| w.0),
        event.user_id.map(|u| u.0),
        event.ip.as_deref(),
        detail,
    )
    .execute(db)
    .await?;
    Ok(())
}

// ---------------------------------------------------------------- workspaces

/// Current workspace state for authorisation, folded from the event store.
/// What a process folded is kept in its [`IdentityCache`], which a trigger
/// on every workspace event tells to read again; a lookup costs nothing
/// while nothing changed, and one indexed read of the new events when
/// something did, so a role change, a removed member or a revoked key acts
/// on the next request, with no projection lag.
#[derive(Debug, Clone)]
pub struct WorkspaceDirectory {
    vault: Vault,
    cache: IdentityCache,
}

impl WorkspaceDirectory {
    pub fn new(vault: Vault, cache: IdentityCache) -> Self {
        Self { vault, cache }
    }

    /// The workspace as of its latest event, or `None` if it does not exist.
    pub async fn current(
        &self,
        id: WorkspaceId,
    ) -> Result<Option<Arc<CurrentWorkspace>>, sqlx::Error> {
        let cached = match self.cache.workspace(id) {
            Some((true, trusted)) => return Ok(Some(trusted)),
            Some((false, stale)) => Some(stale),
            None => None,
        };
        let generation = self.cache.generation();
        let after = cached.as_ref().map_or(0, |c| c.version);
        let events = event_log::read_aggregate(
            self.vault.pool(),
            WORKSPACE_TYPE,
            &id.to_string(),
            after,
            i64::MAX,
            Reading::Opened(&self.vault),
        )
        .await?;
        let Some(last) = events.last() else {
            if let Some(unchanged) = &cached {
                self.cache
                    .remember_workspace(id, unchanged.clone(), generation);
            }
            return Ok(cached);
        };
        let version = last.sequence;
        let mut workspace = cached.map(|c| c.workspace.clone()).unwrap_or_default();
        for event in events {
            let decoded: WorkspaceEvent = serde_json::from_value(event.payload)
                .map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
            workspace.apply(decoded);
        }
        let fresh = Arc::new(CurrentWorkspace { version, workspace });
        self.cache.remember_workspace(id, fresh.clone(), generation);
        Ok(Some(fresh))
    }

    /// This process brought the workspace to `version`: read it again on
    /// the next lookup, and wait until every instance has applied it.
    pub async fn changed(&self, id: WorkspaceId, version: u64) {
        self.cache.workspace_changed_here(id);
        self.cache
            .wait_for_acks(
                self.vault.pool(),
                &[format!("workspace:{}:{version}", id.0)],
            )
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_api_key_names_its_id_and_hides_its_secret_in_the_display_prefix() {
        let key = new_api_key();
        assert_eq!(api_key_id(&key.secret), Some(key.key_id));
        assert!(!key.display_prefix.contains(&key.secret[40..]));
        assert_eq!(api_key_id("vci_nonsense"), None);
        assert_eq!(
            api_key_id(&format!("vci_{}_short", key.key_id.simple())),
            None
        );
    }

    #[tokio::test]
    async fn a_password_verifies_against_its_own_hash_only() {
        let passwords = Passwords::new(PasswordCost {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        })
        .unwrap();
        let hash = passwords.hash("correct horse battery").await.unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(passwords
            .verify("correct horse battery", Some(hash.clone()))
            .await
            .unwrap());
        assert!(!passwords.verify("wrong horse", Some(hash)).await.unwrap());
        assert!(!passwords.verify("anything", None).await.unwrap());
    }
}
