//! Enrichment benchmark: prints figures, asserts nothing about speed.
//!
//! Does a slow model (10–30 s an answer) with 20 enrichments pending hurt
//! the API? Times plain commands (`POST /v1/companies`) and enrichment
//! requests (`POST /v1/companies/{id}/enrichments`) over HTTP, first with
//! nothing pending (the local chat-completions server answers at once), then
//! with 20 enrichments waiting on a model that takes 10–30 s. The whole
//! service (API, relay, projector, enrichment worker) runs in this process,
//! against the real Postgres and NATS the bench script starts.

#![allow(clippy::unwrap_used)]

#[path = "../../tests/e2e/helpers.rs"]
#[allow(dead_code)]
mod helpers;
#[path = "../../tests/e2e/mail_sink.rs"]
#[allow(dead_code)]
mod mail_sink;

#[path = "../../tests/e2e/fixtures.rs"]
#[allow(dead_code)]
mod fixtures;

use helpers::TestEnv;
use reqwest::Method;
use serde_json::json;
use std::time::{Duration, Instant};
use uuid::Uuid;
use vcintel_domain::Role;

const REQUESTS: usize = 100;
const PENDING: usize = 20;

fn percentile(samples: &mut [f64], p: f64) -> f64 {
    samples.sort_by(|a, b| a.total_cmp(b));
    samples[((samples.len() as f64 - 1.0) * p).round() as usize]
}

struct Bench {
    env: TestEnv,
    base: String,
    token: String,
    fixture: std::net::SocketAddr,
    next: usize,
}

impl Bench {
    async fn add_company(&mut self) -> (String, f64) {
        self.next += 1;
        let started = Instant::now();
        let reply = self
            .env
            .call(
                Method::POST,
                &format!("{}/v1/companies", self.base),
                Some(&self.token),
                None,
                Some(&json!({"name": format!("Bench {}", self.next),
                             "website": format!("{}/pages/{}", self.fixture, self.next)})),
            )
            .await;
        let elapsed = started.elapsed().as_secs_f64() * 1000.0;
        assert!(reply.status.is_success(), "{}", reply.body);
        (reply.body["id"].as_str().unwrap().to_owned(), elapsed)
    }

    async fn enrich(&self, company: &str) -> f64 {
        let started = Instant::now();
        let reply = self
            .env
            .call(
                Method::POST,
                &format!("{}/v1/companies/{company}/enrichments", self.base),
                Some(&self.token),
                None,
                None,
            )
            .await;
        let elapsed = started.elapsed().as_secs_f64() * 1000.0;
        assert_eq!(reply.status.as_u16(), 202, "{}", reply.body);
        elapsed
    }

    /// p50/p95 of plain commands and of enrichment requests.
    async fn phase(&mut self, label: &str) -> (f64, f64) {
        let mut plain = Vec::with_capacity(REQUESTS);
        let mut companies = Vec::with_capacity(REQUESTS);
        for _ in 0..REQUESTS {
            let (id, ms) = self.add_company().await;
            plain.push(ms);
            companies.push(id);
        }
        let mut enrich = Vec::with_capacity(REQUESTS);
        for company in &companies {
            enrich.push(self.enrich(company).await);
        }
        let (plain50, plain95) = (percentile(&mut plain, 0.5), percentile(&mut plain, 0.95));
        let (enrich50, enrich95) = (percentile(&mut enrich, 0.5), percentile(&mut enrich, 0.95));
        println!(
            "  {label:<34} plain command p50 {plain50:6.2} ms  p95 {plain95:6.2} ms | enrichment POST p50 {enrich50:6.2} ms  p95 {enrich95:6.2} ms"
        );
        (plain95, enrich95)
    }

    async fn active_jobs(&self) -> i64 {
        sqlx::query_scalar(
            "select count(*) from enrichment_jobs where state in ('queued', 'running', 'deferred')",
        )
        .fetch_one(&self.env.pool)
        .await
        .unwrap()
    }
}

#[tokio::main]
async fn main() {
    let (target, _) = fixtures::target_listener().await;
    let fixture = fixtures::fixture_site(target).await;
    let (model, url) = fixtures::FakeModel::start(vec![]).await;
    let mut env = TestEnv::new().await;
    let mut settings = env.settings();
    settings.enrich_allow_addresses = vec![fixture];
    settings.llm_base_url = Some(url);
    settings.llm_timeout_secs = 60;
    settings.enrich_monthly_budget_usd = 0.0;
    let base = env.start_all_with(settings).await;
    let token = env.token(&env.actor(Uuid::now_v7(), Role::Member));
    let mut bench = Bench {
        env,
        base,
        token,
        fixture,
        next: 0,
    };
    // Warm up connections and caches.
    for _ in 0..20 {
        let (id, _) = bench.add_company().await;
        bench.enrich(&id).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;

    println!("{REQUESTS} sequential requests of each kind, over HTTP:");
    let (quiet_plain, quiet_enrich) = bench.phase("nothing pending").await;

    model.set_latency(10_000, 30_000);
    for _ in 0..PENDING {
        let (id, _) = bench.add_company().await;
        bench.enrich(&id).await;
    }
    let pending = bench.active_jobs().await;
    let (busy_plain, busy_enrich) = bench
        .phase(&format!("{pending} enrichments pending (10–30 s model)"))
        .await;
    println!(
        "  plain p95 with pending / without: {:.2} (goal ≤ 1.20); enrichment POST p95 / plain p95 with pending: {:.2} (goal ≤ 1.50); quiet enrichment/plain: {:.2}",
        busy_plain / quiet_plain,
        busy_enrich / busy_plain,
        quiet_enrich / quiet_plain
    );
    println!(
        "  jobs still pending at the end: {}",
        bench.active_jobs().await
    );
}
