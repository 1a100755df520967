//! Identity benchmark: prints figures, asserts nothing about speed.
//!
//! 1. Sign-in latency with the production argon2id cost: a correct
//!    password, a wrong one, and an unknown email (these two should match:
//!    failures must not reveal whether an account exists).
//! 2. Authenticated `GET /v1/companies` throughput, 8 clients, for: a
//!    development token (no session check, no budget), a session token
//!    (one session lookup + the workspace directory), and a session token
//!    with the shared rate limiter counting every request.
//!
//! The API runs in this process (release build); `scripts/bench.sh` starts
//! Postgres and NATS and runs this after the spine benchmark.

#![allow(clippy::unwrap_used)]

#[path = "../../tests/e2e/helpers.rs"]
#[allow(dead_code)]
mod helpers;
#[path = "../../tests/e2e/mail_sink.rs"]
#[allow(dead_code)]
mod mail_sink;

use helpers::{TestEnv, PASSWORD};
use reqwest::Method;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;
use vcintel_api::Component;
use vcintel_domain::Role;

const CLIENTS: usize = 8;

fn percentile(samples: &mut [f64], p: f64) -> f64 {
    samples.sort_by(|a, b| a.total_cmp(b));
    let index = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[index]
}

async fn login_latency(
    env: &TestEnv,
    base: &str,
    email: &str,
    password: &str,
    n: usize,
) -> (f64, f64) {
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        env.login(base, email, password).await;
        samples.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    (
        percentile(&mut samples, 0.5),
        percentile(&mut samples, 0.99),
    )
}

async fn throughput(
    env: &TestEnv,
    url: &str,
    token: &str,
    workspace: Option<&str>,
    run_for: Duration,
) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + run_for;
    let clients = (0..CLIENTS).map(|_| {
        let done = done.clone();
        async move {
            while Instant::now() < deadline {
                let reply = env
                    .call(Method::GET, url, Some(token), workspace, None)
                    .await;
                assert!(reply.status.is_success(), "{}", reply.status);
                done.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    futures::future::join_all(clients).await;
    done.load(Ordering::Relaxed) as f64 / run_for.as_secs_f64()
}

#[tokio::main]
async fn main() {
    let run_for = Duration::from_secs(
        std::env::var("BENCH_SECONDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(10),
    );
    let mut env = TestEnv::new().await;
    let mut settings = env.settings();
    settings.db_max_connections = 20;
    let running = env.start_with(settings.clone(), &Component::ALL).await;
    let base = running.address.clone().unwrap();
    let tokens = env.register(&base, "bench@fund.example", "Bench").await;

    println!("sign-in latency (argon2id m=19456 KiB, t=2, p=1), 20 sequential attempts each:");
    for (what, email, password) in [
        ("correct password", "bench@fund.example", PASSWORD),
        (
            "wrong password",
            "bench@fund.example",
            "not the right one at all",
        ),
        ("unknown email", "nobody@fund.example", PASSWORD),
    ] {
        let (p50, p99) = login_latency(&env, &base, email, password, 20).await;
        println!("  {what:<17} p50 {p50:6.1} ms   p99 {p99:6.1} ms");
    }
    running.stop().await;

    let url = |base: &str| format!("{base}/v1/companies?limit=10");
    let dev_token = env.token(&env.actor(Uuid::now_v7(), Role::Member));
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let workspace = tokens["default_workspace_id"].as_str().unwrap().to_owned();
    println!(
        "GET /v1/companies, {CLIENTS} clients, {}s each:",
        run_for.as_secs()
    );
    for (what, limit, token, ws) in [
        ("development token, no budget", 0, &dev_token, None),
        (
            "session token, no budget",
            0,
            &access,
            Some(workspace.as_str()),
        ),
        (
            "session token, shared budget",
            1_000_000_000,
            &access,
            Some(workspace.as_str()),
        ),
    ] {
        let mut mode = settings.clone();
        mode.rate_limit_per_user = limit;
        let running = env.start_with(mode, &[Component::Api]).await;
        let base = running.address.clone().unwrap();
        let rate = throughput(&env, &url(&base), token, ws, run_for).await;
        println!("  {what:<30} {rate:8.0} requests/s");
        running.stop().await;
    }
}
