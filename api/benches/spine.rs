//! Spine benchmark: prints figures, asserts nothing about speed.
//!
//! Against one Postgres (and one nats-server), in one run:
//! 1. pgbench: 1-row INSERT per transaction, 8 clients — the baseline;
//! 2. HTTP `POST /v1/companies` with 8 concurrent clients — commands/s, and
//!    the ratio to the baseline;
//! 3. at half that peak rate, commit → visible in the read model latency,
//!    p50/p99 (from the event's `recorded_at` to the row's `projected_at`,
//!    both Postgres clock; `recorded_at` is the writing transaction's start,
//!    so the figure slightly overstates the lag).
//!
//! The service runs as its own process (the optimised `vcintel` binary);
//! `scripts/bench.sh` starts Postgres and NATS and runs this.

#![allow(clippy::unwrap_used)]

#[path = "../../tests/e2e/helpers.rs"]
#[allow(dead_code)]
mod helpers;

use helpers::TestEnv;
use serde_json::json;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;
use vcintel_domain::Role;

const CLIENTS: usize = 8;

fn seconds(var: &str, default: u64) -> Duration {
    Duration::from_secs(
        std::env::var(var)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default),
    )
}

#[tokio::main]
async fn main() {
    let run_for = seconds("BENCH_SECONDS", 10);
    let env = TestEnv::new().await;

    // --- 1. pgbench baseline on the same server, in this run.
    sqlx::query("create table bench_insert (id bigserial primary key, payload text not null)")
        .execute(&env.pool)
        .await
        .unwrap();
    let script = std::env::temp_dir().join(format!("vcintel-bench-{}.sql", Uuid::new_v4()));
    std::fs::write(
        &script,
        "insert into bench_insert (payload) values ('x');\n",
    )
    .unwrap();
    let output = Command::new("pgbench")
        .args([
            "-n",
            "-c",
            &CLIENTS.to_string(),
            "-j",
            "2",
            "-T",
            &run_for.as_secs().to_string(),
            "-f",
        ])
        .arg(&script)
        .arg(&env.database_url)
        .output()
        .expect("run pgbench (scripts/bench.sh installs it)");
    let _ = std::fs::remove_file(&script);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let pgbench_tps: f64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("tps = "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "no tps in pgbench output:\n{stdout}\n{}",
                String::from_utf8_lossy(&output.stderr)
            )
        });

    // --- 2. the service, as its own optimised process.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let service = Command::new(env!("CARGO_BIN_EXE_vcintel"))
        .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        // BENCH_ONLY=api measures the command path without the workers.
        .args(
            std::env::var("BENCH_ONLY")
                .map(|c| vec!["--only".to_owned(), c])
                .unwrap_or_default(),
        )
        .env("DATABASE_URL", &env.database_url)
        .env("NATS_URL", helpers::nats_url())
        .env("VCINTEL_JWT_SECRET", helpers::JWT_SECRET)
        .env("VCINTEL_NATS_PREFIX", &env.prefix)
        // The benchmark measures the write path, not sign-in or budgets.
        .env("VCINTEL_DEV_TOKENS", "true")
        .env("VCINTEL_RATE_LIMIT_PER_USER", "0")
        .env("VCINTEL_RATE_LIMIT_ANONYMOUS", "0")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start vcintel");
    let _service = KillOnDrop(service);
    let base = format!("http://127.0.0.1:{port}");
    let token = env.token(&env.actor(Uuid::now_v7(), Role::Member));
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(CLIENTS)
        .build()
        .unwrap();
    helpers::eventually(Duration::from_secs(30), "the service", || async {
        http.get(format!("{base}/health"))
            .send()
            .await
            .ok()
            .filter(|r| r.status().is_success())
    })
    .await;

    let counter = Arc::new(AtomicU64::new(0));
    let target = Target {
        http: http.clone(),
        url: format!("{base}/v1/companies"),
        token: token.clone(),
    };
    // Warm up connections and caches.
    for n in 0..50 {
        target.post(1_000_000 + n).await;
    }
    let started = Instant::now();
    let workers: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let target = target.clone();
            let counter = counter.clone();
            tokio::spawn(async move {
                while started.elapsed() < run_for {
                    let n = counter.fetch_add(1, Ordering::Relaxed);
                    target.post(n).await;
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    let commands_per_sec = counter.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();

    if std::env::var("BENCH_ONLY").is_ok() {
        println!(
            "pgbench {pgbench_tps:.0} tps; HTTP {commands_per_sec:.0} commands/s; ratio {:.2}",
            commands_per_sec / pgbench_tps
        );
        return;
    }
    // The peak phase leaves a backlog; measure the steady state, not its drain.
    wait_for_projection(&env).await;
    // --- 3. commit → visible at half the peak rate (open loop).
    let rate = commands_per_sec / 2.0;
    let interval = Duration::from_secs_f64(1.0 / rate);
    let marker = Instant::now();
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut inflight = Vec::new();
    let mut n = 10_000_000u64;
    while marker.elapsed() < run_for {
        ticker.tick().await;
        n += 1;
        let target = target.clone();
        inflight.push(tokio::spawn(async move {
            target.post_named(&format!("Rate {n}"), n).await
        }));
    }
    for f in inflight {
        f.await.unwrap();
    }
    // Let the projector finish, then read each row's lag.
    wait_for_projection(&env).await;
    let mut lags_ms: Vec<f64> = sqlx::query_scalar(
        "with rated as materialized (
             select id::text as aggregate_id, projected_at from companies where name like 'Rate %')
         select extract(epoch from (r.projected_at - e.recorded_at))::float8 * 1000
         from rated r join events e
           on e.aggregate_type = 'company' and e.aggregate_id = r.aggregate_id and e.sequence = 1",
    )
    .fetch_all(&env.pool)
    .await
    .unwrap();
    lags_ms.sort_by(f64::total_cmp);
    let pct = |p: f64| lags_ms[((lags_ms.len() as f64 - 1.0) * p).round() as usize];

    // Lag by second of the run: a steady climb means the workers cannot keep
    // up; isolated spikes mean stalls.
    if std::env::var_os("BENCH_VERBOSE").is_some() {
        let per_second: Vec<(f64, i64, f64)> = sqlx::query_as(
            "with rated as materialized (
                 select id::text as aggregate_id, projected_at from companies where name like 'Rate %')
             select extract(epoch from date_trunc('second', e.recorded_at))::float8, count(*),
                    max(extract(epoch from (r.projected_at - e.recorded_at))::float8 * 1000)
             from rated r join events e
               on e.aggregate_type = 'company' and e.aggregate_id = r.aggregate_id and e.sequence = 1
             group by 1 order by 1",
        )
        .fetch_all(&env.pool)
        .await
        .unwrap();
        for (second, count, max) in &per_second {
            println!("  t={second:.0} events={count} max_lag={max:.1}ms");
        }
        // Split a sample's lag at JetStream: relay (recorded → stored in the
        // stream) and projector (stored → projected).
        let mut stream = env.stream().await;
        let state = stream.info().await.unwrap().state.clone();
        let mut relay_ms = Vec::new();
        let mut projector_ms = Vec::new();
        let step = ((state.last_sequence - state.first_sequence) / 300).max(1);
        let mut seq = state
            .last_sequence
            .saturating_sub(step * 300)
            .max(state.first_sequence);
        while seq <= state.last_sequence {
            let message = stream.get_raw_message(seq).await.unwrap();
            seq += step;
            let body: serde_json::Value = serde_json::from_slice(&message.payload).unwrap();
            if !body["data"]["name"]
                .as_str()
                .unwrap_or_default()
                .starts_with("Rate ")
            {
                continue;
            }
            let stored_at = message.time.unix_timestamp_nanos() as f64 / 1e6;
            let recorded_at = chrono::DateTime::parse_from_rfc3339(body["time"].as_str().unwrap())
                .unwrap()
                .timestamp_nanos_opt()
                .unwrap() as f64
                / 1e6;
            let projected_at: f64 = sqlx::query_scalar(
                "select extract(epoch from projected_at)::float8 * 1000 from companies where id = $1::uuid",
            )
            .bind(body["aggregateid"].as_str().unwrap())
            .fetch_one(&env.pool)
            .await
            .unwrap();
            relay_ms.push(stored_at - recorded_at);
            projector_ms.push(projected_at - stored_at);
        }
        relay_ms.sort_by(f64::total_cmp);
        projector_ms.sort_by(f64::total_cmp);
        let at = |v: &Vec<f64>, p: f64| v[((v.len() as f64 - 1.0) * p).round() as usize];
        println!(
            "  relay     p50 {:.1} ms p99 {:.1} ms | projector p50 {:.1} ms p99 {:.1} ms ({} samples)",
            at(&relay_ms, 0.5), at(&relay_ms, 0.99), at(&projector_ms, 0.5), at(&projector_ms, 0.99), relay_ms.len()
        );
    }
    println!();
    println!(
        "spine benchmark ({} s per phase, {CLIENTS} clients)",
        run_for.as_secs()
    );
    println!("  pgbench 1-row INSERT, {CLIENTS} clients:    {pgbench_tps:>9.0} tps");
    println!("  HTTP POST /v1/companies, {CLIENTS} clients: {commands_per_sec:>9.0} commands/s");
    println!(
        "  ratio (goal >= 0.7):                 {:>9.2}",
        commands_per_sec / pgbench_tps
    );
    println!(
        "  commit -> read model at {rate:.0}/s ({} samples):",
        lags_ms.len()
    );
    println!(
        "    p50 {:>7.1} ms   p99 {:>7.1} ms   max {:>7.1} ms (goal p99 <= 50 ms)",
        pct(0.50),
        pct(0.99),
        pct(1.0)
    );
}

#[derive(Clone)]
struct Target {
    http: reqwest::Client,
    url: String,
    token: String,
}

impl Target {
    async fn post(&self, n: u64) {
        self.post_named(&format!("Bench {n}"), n).await;
    }

    async fn post_named(&self, name: &str, n: u64) {
        let response = self
            .http
            .post(&self.url)
            .bearer_auth(&self.token)
            .json(&json!({"name": name, "website": format!("bench-{n}.example"), "sector": "Benchmarks"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::CREATED);
    }
}

/// Stops the service even when the benchmark panics.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until every event is reflected, polling gently so as not to slow
/// the projector down.
async fn wait_for_projection(env: &TestEnv) {
    helpers::eventually(
        Duration::from_secs(120),
        "the projection to catch up",
        || async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let (events, applied): (i64, i64) = sqlx::query_as(
                "select (select count(*) from events),
                    (select coalesce(sum(version), 0)::bigint from projection_versions)",
            )
            .fetch_one(&env.pool)
            .await
            .ok()?;
            (events == applied).then_some(())
        },
    )
    .await;
}
