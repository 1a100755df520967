//! Typed settings: defaults, overridden by environment variables or flags,
//! validated at start-up. Secrets are held in `secrecy` types, so `Debug`
//! and logs never show them.

use secrecy::{ExposeSecret, SecretString};
use std::net::SocketAddr;
use std::time::Duration;
use vcintel_infra::privacy::KeyRing;
use vcintel_infra::vault::Vault;

#[derive(Debug, Clone, clap::Args)]
pub struct Settings {
    /// Postgres connection URL.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,

    /// NATS server URL (JetStream must be enabled), or a cluster's nodes
    /// separated by commas.
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,

    /// Address the API listens on; port 0 picks a free one.
    #[arg(long, env = "VCINTEL_BIND", default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,

    /// HS256 key for bearer tokens: at least 32 bytes, from the environment only.
    #[arg(long, env = "VCINTEL_JWT_SECRET", hide_env_values = true, value_parser = parse_secret)]
    pub jwt_secret: SecretString,

    /// The operator token for the admin API (`/admin`): at least 32 bytes,
    /// from the environment only. Unset: the admin API is off.
    #[arg(long, env = "VCINTEL_ADMIN_TOKEN", hide_env_values = true, value_parser = parse_secret)]
    pub admin_token: Option<SecretString>,

    /// Snapshot each aggregate's state every N events (0: never), so
    /// commands on long aggregates load a snapshot and the events after it.
    #[arg(long, env = "VCINTEL_SNAPSHOT_EVERY", default_value_t = 100)]
    pub snapshot_every: usize,

    /// Prefix of the JetStream stream and subjects (one per deployment or test).
    #[arg(long, env = "VCINTEL_NATS_PREFIX", default_value = "vcintel", value_parser = parse_prefix)]
    pub nats_prefix: String,

    /// JetStream duplicate window in seconds (dedupe by Nats-Msg-Id).
    #[arg(long, env = "VCINTEL_DUPLICATE_WINDOW_SECS", default_value_t = 120)]
    pub duplicate_window_secs: u64,

    /// Copies of the streams JetStream keeps: `auto` asks for three on a
    /// cluster of three or more servers and one otherwise, or a count from
    /// 1 to 5. An existing stream is brought to it at start.
    #[arg(long, env = "VCINTEL_STREAM_REPLICAS", default_value = "auto")]
    pub stream_replicas: vcintel_infra::stream::Replicas,

    /// How long relay leadership lasts without renewal: a leader that stalls
    /// this long loses it to a standby, and its late writes are refused.
    #[arg(long, env = "VCINTEL_RELAY_LEASE_SECS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=300))]
    pub relay_lease_secs: u64,

    /// What the relay does when the stream holds events the store does not
    /// (the store was restored from an older backup): `refill` keeps them
    /// in `stream_orphans` and refills the stream from the store under a
    /// new epoch; `halt` stops publishing until `vcintel stream refill`.
    #[arg(long, env = "VCINTEL_STREAM_ON_DIVERGENCE", default_value = "refill")]
    pub stream_on_divergence: vcintel_infra::relay::DivergencePolicy,

    /// A component (the relay, a projection, the enricher) with work waiting
    /// that has not moved for this many seconds is stalled: the process
    /// running it reports not ready.
    #[arg(long, env = "VCINTEL_STALL_AFTER_SECS", default_value_t = 30)]
    pub stall_after_secs: u64,

    /// Where a process without the API answers `/health` and
    /// `/health/ready` (unset: nowhere). API processes answer on their port.
    #[arg(long, env = "VCINTEL_HEALTH_BIND")]
    pub health_bind: Option<std::net::SocketAddr>,

    /// Where any process (API or worker) answers `GET /metrics` in the
    /// Prometheus text format, with `/health` and `/health/ready`, without
    /// credentials: an address only the scraper reaches. Unset: API
    /// processes answer `/metrics` on their port to the operator token,
    /// and workers on `VCINTEL_HEALTH_BIND`.
    #[arg(long, env = "VCINTEL_METRICS_BIND")]
    pub metrics_bind: Option<std::net::SocketAddr>,

    /// Record metrics (default on). Off, `/metrics` answers 404 and no
    /// request is measured: the benchmark compares the two.
    #[arg(long, env = "VCINTEL_METRICS", default_value_t = true, action = clap::ArgAction::Set)]
    pub metrics: bool,

    /// Postgres streaming replicas that serve the read models' queries,
    /// separated by commas. Commands, workers, the event store's reads and
    /// identity stay on `DATABASE_URL`. Unset: everything reads the primary.
    #[arg(
        long,
        env = "VCINTEL_READ_DATABASE_URL",
        hide_env_values = true,
        value_delimiter = ','
    )]
    pub read_database_urls: Vec<String>,

    /// A replica whose replay is further behind the primary than this
    /// serves no reads (they go to the primary until it catches up).
    #[arg(long, env = "VCINTEL_READ_MAX_STALENESS_MS", default_value_t = 2000)]
    pub read_max_staleness_ms: u64,

    /// Longest a read waits for a replica's answer before the primary
    /// answers it instead (a replica paused or cut off mid-request).
    #[arg(long, env = "VCINTEL_READ_REPLICA_TIMEOUT_MS", default_value_t = 2000)]
    pub read_replica_timeout_ms: u64,

    /// Most Postgres connections this process opens.
    #[arg(long, env = "VCINTEL_DB_MAX_CONNECTIONS", default_value_t = 20)]
    pub db_max_connections: u32,

    /// Longest a request waits for a database connection before it is
    /// answered 503 with `Retry-After` (the database is down, or every
    /// connection is busy).
    #[arg(long, env = "VCINTEL_DB_ACQUIRE_TIMEOUT_MS", default_value_t = 1000)]
    pub db_acquire_timeout_ms: u64,

    /// Longest a query waits for the read model to reach a requested version.
    #[arg(long, env = "VCINTEL_CONSISTENCY_WAIT_MS", default_value_t = 3000)]
    pub consistency_wait_ms: u64,

    /// Requests taking longer are answered 408.
    #[arg(long, env = "VCINTEL_REQUEST_TIMEOUT_SECS", default_value_t = 30)]
    pub request_timeout_secs: u64,

    /// Seconds JetStream waits for a projector's ack before redelivering.
    #[arg(long, env = "VCINTEL_PROJECTOR_ACK_WAIT_SECS", default_value_t = 30)]
    pub projector_ack_wait_secs: u64,

    /// Deliveries of an event a projection keeps failing on before it is
    /// parked as a dead letter.
    #[arg(long, env = "VCINTEL_PROJECTOR_MAX_DELIVERIES", default_value_t = 5)]
    pub projector_max_deliveries: u64,

    /// Deliveries of an enrichment request whose job keeps failing outside
    /// the job itself (deferrals by the breaker count too) before it is
    /// parked as a dead letter.
    #[arg(long, env = "VCINTEL_ENRICH_MAX_DELIVERIES", default_value_t = 20)]
    pub enrich_max_deliveries: u64,

    /// Largest accepted request body in bytes.
    #[arg(long, env = "VCINTEL_MAX_BODY_BYTES", default_value_t = 256 * 1024)]
    pub max_body_bytes: usize,

    /// Lifetime of an access token (JWT) in seconds.
    #[arg(long, env = "VCINTEL_ACCESS_TOKEN_TTL_SECS", default_value_t = 900)]
    pub access_token_ttl_secs: u64,

    /// Lifetime of a login session (its refresh tokens) in seconds.
    #[arg(long, env = "VCINTEL_SESSION_TTL_SECS", default_value_t = 30 * 24 * 3600)]
    pub session_ttl_secs: u64,

    /// Accept development tokens minted by `vcintel token issue` (they name
    /// a workspace and role without a session). For tests only; never in
    /// production.
    #[arg(long, env = "VCINTEL_DEV_TOKENS", default_value_t = false)]
    pub dev_tokens: bool,

    /// `production` (the default) or `development`. In development, with no
    /// SMTP server, verification links are logged instead of mailed.
    #[arg(long, env = "VCINTEL_ENVIRONMENT", value_enum, default_value_t = Environment::Production)]
    pub environment: Environment,

    /// Where verification mail goes out: `smtp://host:port` (a local relay),
    /// `smtp://host:587?tls=required` (STARTTLS) or
    /// `smtps://user:password@host` (TLS). Unset: no mail is sent.
    #[arg(long, env = "VCINTEL_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<SecretString>,

    /// The sender of the mail the service sends.
    #[arg(
        long,
        env = "VCINTEL_MAIL_FROM",
        default_value = "VC Intel <no-reply@vcintel.invalid>"
    )]
    pub mail_from: String,

    /// The page a verification mail links to (`<url>?token=…`); it posts
    /// the token to `POST /v1/auth/verify-email`.
    #[arg(
        long,
        env = "VCINTEL_VERIFY_URL",
        default_value = "http://localhost:8080/verify-email"
    )]
    pub verify_url: String,

    /// How long a verification token stays valid, in seconds.
    #[arg(long, env = "VCINTEL_VERIFY_TOKEN_TTL_SECS", default_value_t = 24 * 3600)]
    pub verify_token_ttl_secs: u64,

    /// argon2id memory cost in KiB.
    #[arg(long, env = "VCINTEL_ARGON2_MEMORY_KIB", default_value_t = 19 * 1024)]
    pub argon2_memory_kib: u32,

    /// argon2id passes.
    #[arg(long, env = "VCINTEL_ARGON2_ITERATIONS", default_value_t = 2)]
    pub argon2_iterations: u32,

    /// Requests per minute for each user, across their sessions and API
    /// keys (0 = unlimited). 1,200 lets a screen's burst of reads and a sync
    /// script paging at full speed through; it stops runaway loops.
    #[arg(long, env = "VCINTEL_RATE_LIMIT_PER_USER", default_value_t = 1200)]
    pub rate_limit_per_user: u32,

    /// Requests per minute for each IP without valid credentials (0 =
    /// unlimited): enough for an office behind one address whose tokens
    /// expire, too few to probe credentials.
    #[arg(long, env = "VCINTEL_RATE_LIMIT_ANONYMOUS", default_value_t = 60)]
    pub rate_limit_anonymous: u32,

    /// Sign-in and sign-up attempts per 15 minutes, per IP and per email (0 = unlimited).
    #[arg(long, env = "VCINTEL_RATE_LIMIT_AUTH", default_value_t = 5)]
    pub rate_limit_auth: u32,

    /// Verification mails a user may ask for per hour (0 = unlimited).
    #[arg(
        long,
        env = "VCINTEL_RATE_LIMIT_VERIFICATION_MAIL",
        default_value_t = 5
    )]
    pub rate_limit_verification_mail: u32,

    /// Days the security log keeps an entry (sign-ins, failures, key and
    /// session changes, with their IP addresses).
    #[arg(
        long,
        env = "VCINTEL_RETENTION_SECURITY_EVENTS_DAYS",
        default_value_t = 365,
        value_parser = clap::value_parser!(u32).range(1..=36_500)
    )]
    pub retention_security_events_days: u32,

    /// Days an ended (expired or revoked) session is kept, with its IP
    /// address and user agent, before it is deleted.
    #[arg(
        long,
        env = "VCINTEL_RETENTION_SESSIONS_DAYS",
        default_value_t = 30,
        value_parser = clap::value_parser!(u32).range(1..=36_500)
    )]
    pub retention_sessions_days: u32,

    /// Postgres holding the shared rate-limit counters; default: DATABASE_URL.
    #[arg(long, env = "VCINTEL_RATE_LIMIT_DATABASE_URL", hide_env_values = true)]
    pub rate_limit_database_url: Option<String>,

    /// Take the client IP from the last `X-Forwarded-For` entry (only behind
    /// a proxy that sets it; otherwise clients could choose their IP).
    #[arg(long, env = "VCINTEL_TRUST_FORWARDED_FOR", default_value_t = false)]
    pub trust_forwarded_for: bool,

    /// Origins allowed to call the API from a browser, comma-separated
    /// (e.g. `https://app.vcintel.example`); empty: none.
    #[arg(
        long,
        env = "VCINTEL_CORS_ORIGINS",
        value_delimiter = ',',
        default_value = ""
    )]
    pub cors_origins: Vec<String>,

    /// Exact `ip:port` addresses the enrichment fetcher may reach although
    /// they are private or loopback (test fixtures). Empty by default:
    /// never set this in production.
    #[arg(long, env = "VCINTEL_ENRICH_ALLOW_ADDRESSES", value_delimiter = ',')]
    pub enrich_allow_addresses: Vec<std::net::SocketAddr>,

    /// An OpenAI-compatible API for enrichment, e.g. `https://api.openai.com/v1`.
    /// Unset: the built-in heuristic enricher serves (offline, labelled).
    #[arg(long, env = "VCINTEL_LLM_BASE_URL")]
    pub llm_base_url: Option<String>,

    #[arg(long, env = "VCINTEL_LLM_MODEL", default_value = "gpt-4o-mini")]
    pub llm_model: String,

    /// The provider's API key (never logged).
    #[arg(long, env = "VCINTEL_LLM_API_KEY", hide_env_values = true)]
    pub llm_api_key: Option<SecretString>,

    /// US dollars per million input tokens of the model.
    #[arg(long, env = "VCINTEL_LLM_PRICE_IN_PER_MTOK", default_value_t = 0.15)]
    pub llm_price_in_per_mtok: f64,

    /// US dollars per million output tokens of the model.
    #[arg(long, env = "VCINTEL_LLM_PRICE_OUT_PER_MTOK", default_value_t = 0.60)]
    pub llm_price_out_per_mtok: f64,

    /// Longest wait for one model answer.
    #[arg(long, env = "VCINTEL_LLM_TIMEOUT_SECS", default_value_t = 60)]
    pub llm_timeout_secs: u64,

    /// Provider failures in a row that open the circuit breaker.
    #[arg(long, env = "VCINTEL_LLM_BREAKER_THRESHOLD", default_value_t = 5)]
    pub llm_breaker_threshold: u32,

    /// How long an open breaker defers jobs before it probes the provider.
    #[arg(
        long,
        env = "VCINTEL_LLM_BREAKER_COOLDOWN_MS",
        default_value_t = 30_000
    )]
    pub llm_breaker_cooldown_ms: u64,

    /// How long a result is reused for the same website content, model and
    /// prompt in a workspace (0: never).
    #[arg(long, env = "VCINTEL_ENRICH_CACHE_MAX_AGE_SECS", default_value_t = 7 * 24 * 3600)]
    pub enrich_cache_max_age_secs: u64,

    /// Enrichments per user per hour on the free tier (0: unlimited).
    #[arg(long, env = "VCINTEL_ENRICH_PER_HOUR_FREE", default_value_t = 10)]
    pub enrich_per_hour_free: u32,

    /// Enrichments per user per hour on the pro tier (0: unlimited).
    #[arg(long, env = "VCINTEL_ENRICH_PER_HOUR_PRO", default_value_t = 100)]
    pub enrich_per_hour_pro: u32,

    /// Enrichments per user per hour on the enterprise tier (0: unlimited).
    #[arg(long, env = "VCINTEL_ENRICH_PER_HOUR_ENTERPRISE", default_value_t = 0)]
    pub enrich_per_hour_enterprise: u32,

    /// Each workspace's monthly model budget in US dollars: an event at 80 %,
    /// new enrichments refused (402) at 100 % (0: no budget). Applies only
    /// when a model is configured; the built-in enricher costs nothing.
    #[arg(
        long,
        env = "VCINTEL_ENRICH_MONTHLY_BUDGET_USD",
        default_value_t = 50.0
    )]
    pub enrich_monthly_budget_usd: f64,

    /// Most enrichment jobs one user may have queued, running or deferred.
    #[arg(long, env = "VCINTEL_ENRICH_MAX_ACTIVE_PER_USER", default_value_t = 5)]
    pub enrich_max_active_per_user: u32,

    /// First retry delay of a failed enrichment attempt (doubles per attempt).
    #[arg(long, env = "VCINTEL_ENRICH_BACKOFF_MS", default_value_t = 2000)]
    pub enrich_backoff_ms: u64,

    /// The keys that seal personal values (docs/privacy.md).
    #[command(flatten)]
    pub privacy: MasterKeys,

    /// Seal personal values as they are written (default on). Off only to
    /// measure what sealing costs: values written so are out of an
    /// erasure's reach.
    #[arg(long, env = "VCINTEL_PRIVACY_SEALING", default_value_t = true, action = clap::ArgAction::Set)]
    pub privacy_sealing: bool,

    /// Hours between a person's erasure request and the erasure, during
    /// which they can cancel it.
    #[arg(long, env = "VCINTEL_ERASURE_GRACE_HOURS", default_value_t = 72)]
    pub erasure_grace_hours: u32,

    /// Seconds between two looks for erasures whose grace period is over.
    #[arg(long, env = "VCINTEL_ERASURE_SWEEP_SECS", default_value_t = 60)]
    pub erasure_sweep_secs: u64,
}

impl Settings {
    /// How long the security log and ended sessions are kept.
    pub fn retention(&self) -> vcintel_infra::retention::RetentionPolicy {
        let days = |n: u32| Duration::from_secs(u64::from(n) * 24 * 3600);
        vcintel_infra::retention::RetentionPolicy {
            security_events: days(self.retention_security_events_days),
            ended_sessions: days(self.retention_sessions_days),
        }
    }

    /// The vault over `pool` these settings describe.
    pub fn vault(&self, pool: sqlx::PgPool) -> anyhow::Result<Vault> {
        Ok(Vault::with_sealing(
            pool,
            self.privacy.ring()?,
            self.privacy_sealing,
        ))
    }

    pub fn duplicate_window(&self) -> Duration {
        Duration::from_secs(self.duplicate_window_secs)
    }

    /// The monthly enrichment budget in millionths of a dollar (0: none).
    pub fn monthly_budget_micro_usd(&self) -> u64 {
        (self.enrich_monthly_budget_usd.max(0.0) * 1_000_000.0).round() as u64
    }

    pub fn consistency_wait(&self) -> Duration {
        Duration::from_millis(self.consistency_wait_ms)
    }

    pub fn access_token_ttl(&self) -> Duration {
        Duration::from_secs(self.access_token_ttl_secs)
    }

    pub fn session_ttl(&self) -> Duration {
        Duration::from_secs(self.session_ttl_secs)
    }

    pub fn jwt_secret_bytes(&self) -> &[u8] {
        self.jwt_secret.expose_secret().as_bytes()
    }
}

/// Parses an HS256 key, refusing ones too short to resist brute force.
pub fn parse_secret(value: &str) -> Result<SecretString, String> {
    if value.len() < 32 {
        return Err("must be at least 32 bytes".to_owned());
    }
    Ok(SecretString::from(value.to_owned()))
}

fn parse_prefix(value: &str) -> Result<String, String> {
    let ok = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(value.to_owned())
    } else {
        Err("must be non-empty ASCII letters, digits, '_' or '-'".to_owned())
    }
}

/// Where the service runs: it decides what may be logged for a developer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Environment {
    Production,
    Development,
}

/// The master keys, from the environment.
#[derive(Debug, Clone, clap::Args)]
pub struct MasterKeys {
    /// The master key that wraps every subject's data key: 32 random bytes,
    /// base64 (`openssl rand -base64 32`).
    #[arg(long, env = "VCINTEL_PRIVACY_MASTER_KEY", hide_env_values = true)]
    pub master_key: Option<SecretString>,
    /// Its version, stored beside each key it wraps; raise it with a new key.
    #[arg(long, env = "VCINTEL_PRIVACY_MASTER_KEY_VERSION", default_value_t = 1)]
    pub master_key_version: i32,
    /// Earlier master keys still needed to unwrap, as `version:base64`,
    /// comma-separated (during a rotation).
    #[arg(
        long,
        env = "VCINTEL_PRIVACY_PREVIOUS_MASTER_KEYS",
        hide_env_values = true
    )]
    pub previous_master_keys: Option<SecretString>,
}

impl MasterKeys {
    /// The vault over `pool` that seals with these keys.
    pub fn vault(&self, pool: sqlx::PgPool) -> anyhow::Result<Vault> {
        Ok(Vault::new(pool, self.ring()?))
    }

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

/// The NATS servers `NATS_URL` names: one URL, or a cluster's nodes
/// separated by commas (the client moves to another node when it loses
/// one). An address that does not parse is named by its place in the
/// list, never echoed (it may carry credentials).
pub fn nats_servers(url: &str) -> anyhow::Result<Vec<async_nats::ServerAddr>> {
    let servers = url
        .split(',')
        .map(str::trim)
        .filter(|server| !server.is_empty())
        .enumerate()
        .map(|(n, server)| {
            server
                .parse::<async_nats::ServerAddr>()
                .map_err(|error| anyhow::anyhow!("NATS_URL: server {} of the list: {error}", n + 1))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    anyhow::ensure!(!servers.is_empty(), "NATS_URL names no server");
    Ok(servers)
}

#[cfg(test)]
mod nats_server_list_tests {
    use super::nats_servers;

    #[test]
    fn one_url_or_a_cluster_list_parses_and_a_bad_entry_is_named_not_echoed() {
        assert_eq!(nats_servers("nats://127.0.0.1:4222").unwrap().len(), 1);
        let cluster = nats_servers("nats://a:4222, nats://b:4223,nats://c:4224").unwrap();
        assert_eq!(cluster.len(), 3);
        let error = nats_servers("nats://a:4222,nats://user:secret@b:notaport")
            .unwrap_err()
            .to_string();
        assert!(error.contains("server 2"), "{error}");
        assert!(!error.contains("secret"), "{error}");
        assert!(nats_servers(" , ").is_err());
    }
}
