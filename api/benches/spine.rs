//! Spine benchmark: prints figures, asserts nothing about speed.
//!
//! In one run, against one Postgres and one nats-server:
//! 1. the baseline: a plain axum + sqlx service built into this benchmark
//!    (an HS256 JWT check, one INSERT per POST, one SELECT per GET), run as
//!    its own process;
//! 2. VC Intel as it is deployed: API, relay, projector and enricher as four
//!    processes, a signed-in user's access token, the rate limiter counting
//!    every request: `POST /v1/companies` and `GET /v1/companies/{id}`;
//! 3. the same at each stored size (`BENCH_SIZES`, default 10k, 100k and 1M
//!    events, bulk-loaded with multi-row INSERTs, then published and
//!    projected by the relay and projector themselves): POST and GET rates,
//!    the idle CPU of relay and projector, and commit → visible in the read
//!    model (p50/p99) at half the peak POST rate;
//! 4. the peak RSS of every process.
//!
//! CPU per request is the CPU time every server-side process used during a
//! phase (the service's processes, Postgres with all its backends, NATS;
//! not this load generator), divided by the requests served: on a shared,
//! noisy two-core machine it is steadier than throughput. "Efficiency" is
//! the baseline's CPU per request divided by ours. `scripts/bench.sh` starts
//! Postgres and NATS and runs this; `BENCH_SECONDS` sets each phase's length.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../tests/e2e/helpers.rs"]
#[allow(dead_code)]
mod helpers;
#[path = "../../tests/e2e/mail_sink.rs"]
#[allow(dead_code)]
mod mail_sink;
#[allow(dead_code)]
mod support;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use helpers::{KillOnDrop, TestEnv};
use serde_json::{json, Value};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{
    cpu_of, fresh_name, load_phase, percentile, sign_in, wait_for_health, Client, Phase, Process,
    CLIENTS,
};
use uuid::Uuid;

const BASELINE_FLAG: &str = "--baseline-server";
const POSTGRES_ES_FLAG: &str = "--postgres-es-server";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    if args.iter().any(|a| a == BASELINE_FLAG) {
        runtime.block_on(baseline::serve());
    } else if args.iter().any(|a| a == POSTGRES_ES_FLAG) {
        runtime.block_on(baseline::serve_postgres_es());
    } else {
        runtime.block_on(run());
    }
}

fn phase_length() -> Duration {
    Duration::from_secs(
        std::env::var("BENCH_SECONDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(10),
    )
}

fn sizes() -> Vec<i64> {
    std::env::var("BENCH_SIZES")
        .unwrap_or_else(|_| "10000,100000,1000000".to_owned())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect()
}

async fn run() {
    let run_for = phase_length();
    let env = TestEnv::new().await;
    let postgres = Process::listening_on(port_of(&env.database_url, 5432), "postgres");
    let nats = Process::listening_on(port_of(&helpers::nats_url(), 4222), "nats-server");
    let engines = vec![postgres.clone(), nats.clone()];
    let mut rss = Vec::new();

    // --- 1. The baseline.
    sqlx::query(
        "create table baseline_companies (id uuid primary key, workspace_id uuid not null,
             name text not null, website text not null, sector text,
             created_at timestamptz not null default now())",
    )
    .execute(&env.pool)
    .await
    .unwrap();
    let (baseline_process, _baseline, baseline_base) =
        spawn_baseline(&env, BASELINE_FLAG, "baseline", &env.database_url).await;
    let baseline_token = baseline::token(Uuid::now_v7(), Uuid::now_v7());
    let baseline_servers = with_engines(std::slice::from_ref(&baseline_process), &engines);
    let client = Client::new(&baseline_base, &baseline_token);
    let baseline_post = post_phase(&client, &baseline_servers, run_for, "baseline").await;
    let baseline_get = get_phase(&client, &baseline_servers, run_for, &baseline_post.ids).await;
    rss.push(baseline_process.clone());

    // --- 1b. cqrs-es + postgres-es as postgres-es' README shows, with our
    // company aggregate, in a database of its own (its events carry none
    // of the metadata our relay needs).
    let bare_database = helpers::fresh_database().await;
    let (bare_process, _bare, bare_base) =
        spawn_baseline(&env, POSTGRES_ES_FLAG, "postgres-es", &bare_database).await;
    let client = Client::new(&bare_base, &baseline_token);
    let bare_servers = with_engines(std::slice::from_ref(&bare_process), &engines);
    let bare_post = post_phase(&client, &bare_servers, run_for, "bare").await;
    rss.push(bare_process);

    // --- 2. VC Intel, deployed as four processes.
    let api_port = helpers::free_port();
    let mut children = Vec::new();
    let mut service = Vec::new();
    for component in ["api", "relay", "projector", "enricher"] {
        let child = spawn_component(&env, component, api_port);
        service.push(Process::new(component, child.id()));
        children.push(KillOnDrop(child));
    }
    let base = format!("http://127.0.0.1:{api_port}");
    wait_for_health(&env.http, &base).await;
    let token = sign_in(&env, &base).await;
    let servers = with_engines(&service, &engines);
    let relay = service[1].clone();
    let projector = service[2].clone();
    let client = Client::new(&base, &token);
    // Warm up connections and caches.
    for n in 0..50 {
        client.post(&format!("warm-{n}")).await;
    }
    wait_until_caught_up(&env).await;

    let mut rows = Vec::new();
    let mut first_post = None;
    for size in sizes() {
        let stored = stored_events(&env).await;
        if size > stored {
            let started = Instant::now();
            helpers::bulk_add_companies(&env.pool, stored, size - stored).await;
            let loaded = started.elapsed();
            let started = Instant::now();
            wait_until_caught_up(&env).await;
            println!(
                "  {size} events: bulk-loaded {} in {:.1} s, published and projected in {:.1} s ({:.0} events/s)",
                size - stored,
                loaded.as_secs_f64(),
                started.elapsed().as_secs_f64(),
                (size - stored) as f64 / started.elapsed().as_secs_f64()
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let idle_for = Duration::from_secs(5);
        let idle = cpu_of(&[relay.clone(), projector.clone()], idle_for).await;
        let idle_percent = |p: &Process| {
            idle.get(&p.name).copied().unwrap_or_default() / idle_for.as_secs_f64() * 100.0
        };
        let (relay_idle, projector_idle) = (idle_percent(&relay), idle_percent(&projector));
        let label = format!("vcintel@{size}");
        let posted = post_phase(&client, &servers, run_for, &label).await;
        wait_until_caught_up(&env).await;
        let got = get_phase(&client, &servers, run_for, &posted.ids).await;
        let lag = lag_at(&env, &client, posted.rate() / 2.0, run_for).await;
        wait_until_caught_up(&env).await;
        first_post.get_or_insert(posted.cpu_per_request());
        rows.push(Row {
            size,
            posted,
            got,
            relay_idle,
            projector_idle,
            lag,
        });
    }
    // --- 3. What recording metrics costs: a second API process with
    // `VCINTEL_METRICS=false` beside the first, same store and workers,
    // measured back to back in this run.
    let quiet_port = helpers::free_port();
    let quiet_child =
        spawn_component_with(&env, "api", quiet_port, &[("VCINTEL_METRICS", "false")]);
    let quiet = Process::new("api (metrics off)", quiet_child.id());
    children.push(KillOnDrop(quiet_child));
    let quiet_base = format!("http://127.0.0.1:{quiet_port}");
    wait_for_health(&env.http, &quiet_base).await;
    let quiet_client = Client::new(&quiet_base, &token);
    let mut quiet_service = vec![quiet];
    quiet_service.extend(service[1..].iter().cloned());
    let quiet_servers = with_engines(&quiet_service, &engines);
    for n in 0..50 {
        quiet_client.post(&format!("warm-off-{n}")).await;
    }
    // Rounds alternate which goes first, so drift on a shared machine
    // (a neighbour's load, a checkpoint) falls on both sides.
    let mut rounds = Vec::with_capacity(METRICS_ROUNDS);
    for round in 0..METRICS_ROUNDS {
        let sides = [
            (&client, &servers, "metrics on"),
            (&quiet_client, &quiet_servers, "metrics off"),
        ];
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        let mut posted: [Option<Phase>; 2] = [None, None];
        let mut got: [Option<Phase>; 2] = [None, None];
        for side in order {
            let (client, servers, label) = sides[side];
            wait_until_caught_up(&env).await;
            posted[side] = Some(post_phase(client, servers, run_for, label).await);
        }
        for side in order {
            let (client, servers, _) = sides[side];
            let ids = &posted[side].as_ref().expect("posted").ids;
            got[side] = Some(get_phase(client, servers, run_for, ids).await);
        }
        let [Some(on_post), Some(off_post)] = posted else {
            unreachable!("both sides posted")
        };
        let [Some(on_get), Some(off_get)] = got else {
            unreachable!("both sides read")
        };
        rounds.push(MetricsRound {
            post_cpu: on_post.cpu_per_request() / off_post.cpu_per_request(),
            post_rate: on_post.rate() / off_post.rate(),
            get_cpu: on_get.cpu_per_request() / off_get.cpu_per_request(),
            get_rate: on_get.rate() / off_get.rate(),
        });
    }
    // --- 4. What sealing personal values costs: a third API process with
    // `VCINTEL_PRIVACY_SEALING=false`; the write is a note (its text is
    // sealed), the read the audit feed (it opens every note of the page).
    let plain_port = helpers::free_port();
    let plain_child = spawn_component_with(
        &env,
        "api",
        plain_port,
        &[("VCINTEL_PRIVACY_SEALING", "false")],
    );
    let plain = Process::new("api (sealing off)", plain_child.id());
    children.push(KillOnDrop(plain_child));
    let plain_base = format!("http://127.0.0.1:{plain_port}");
    wait_for_health(&env.http, &plain_base).await;
    // Each side in a workspace of its own holding only its notes (sealed,
    // or in the clear), so the feeds differ by sealing alone.
    let plain_client = Client::new(&plain_base, &sign_in(&env, &plain_base).await);
    let sealed_client = Client::new(&base, &sign_in(&env, &base).await);
    let mut plain_service = vec![plain];
    plain_service.extend(service[1..].iter().cloned());
    let plain_servers = with_engines(&plain_service, &engines);
    let companies = [
        sealed_client.post(&fresh_name("noted")).await,
        plain_client.post(&fresh_name("noted")).await,
    ];
    for n in 0..50 {
        sealed_client
            .post_note(companies[0], &format!("warm-on-{n}"))
            .await;
        plain_client
            .post_note(companies[1], &format!("warm-off-{n}"))
            .await;
    }
    let mut sealing_rounds = Vec::with_capacity(METRICS_ROUNDS);
    for round in 0..METRICS_ROUNDS {
        let sides = [(&sealed_client, &servers), (&plain_client, &plain_servers)];
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        let mut posted: [Option<Phase>; 2] = [None, None];
        let mut read: [Option<Phase>; 2] = [None, None];
        for side in order {
            let (client, servers) = sides[side];
            wait_until_caught_up(&env).await;
            posted[side] = Some(note_phase(client, servers, run_for, companies[side]).await);
        }
        for side in order {
            let (client, servers) = sides[side];
            read[side] = Some(feed_phase(client, servers, run_for).await);
        }
        let [Some(on_post), Some(off_post)] = posted else {
            unreachable!("both sides posted")
        };
        let [Some(on_get), Some(off_get)] = read else {
            unreachable!("both sides read")
        };
        sealing_rounds.push(MetricsRound {
            post_cpu: on_post.cpu_per_request() / off_post.cpu_per_request(),
            post_rate: on_post.rate() / off_post.rate(),
            get_cpu: on_get.cpu_per_request() / off_get.cpu_per_request(),
            get_rate: on_get.rate() / off_get.rate(),
        });
    }
    rss.extend(service.iter().cloned());

    println!();
    println!(
        "spine benchmark: {} s per phase, {CLIENTS} clients; CPU = every server-side process \
         (service, Postgres, NATS), load generator excluded",
        run_for.as_secs()
    );
    println!(
        "  baseline (axum + sqlx + HS256 JWT): POST {:>6.0}/s {:>6.0} µs CPU p50 {:>5.2} ms p99 {:>5.2} ms | \
         GET {:>6.0}/s {:>6.0} µs CPU p50 {:>5.2} ms p99 {:>5.2} ms",
        baseline_post.rate(),
        baseline_post.cpu_per_request(),
        baseline_post.percentile(0.5),
        baseline_post.percentile(0.99),
        baseline_get.rate(),
        baseline_get.cpu_per_request(),
        baseline_get.percentile(0.5),
        baseline_get.percentile(0.99),
    );
    println!(
        "  cqrs-es + postgres-es as its README shows: POST {:>6.0}/s {:>6.0} µs CPU p50 {:>5.2} ms p99 {:>5.2} ms, efficiency {:.2}",
        bare_post.rate(),
        bare_post.cpu_per_request(),
        bare_post.percentile(0.5),
        bare_post.percentile(0.99),
        baseline_post.cpu_per_request() / bare_post.cpu_per_request(),
    );
    println!(
        "  {:>9} | {:>7} {:>8} {:>6} {:>8} | {:>7} {:>8} {:>6} {:>8} {:>9} | {:>7} {:>7} | {:>8} {:>8}",
        "events",
        "POST/s",
        "µs CPU",
        "eff.",
        "p99 ms",
        "GET/s",
        "µs CPU",
        "eff.",
        "p99 ms",
        "p99/base",
        "relay%",
        "proj.%",
        "lag p50",
        "lag p99"
    );
    for row in &rows {
        println!(
            "  {:>9} | {:>7.0} {:>8.0} {:>6.2} {:>8.2} | {:>7.0} {:>8.0} {:>6.2} {:>8.2} {:>9.2} | {:>7.1} {:>7.1} | {:>8.1} {:>8.1}",
            row.size,
            row.posted.rate(),
            row.posted.cpu_per_request(),
            baseline_post.cpu_per_request() / row.posted.cpu_per_request(),
            row.posted.percentile(0.99),
            row.got.rate(),
            row.got.cpu_per_request(),
            baseline_get.cpu_per_request() / row.got.cpu_per_request(),
            row.got.percentile(0.99),
            row.got.percentile(0.99) / baseline_get.percentile(0.99),
            row.relay_idle,
            row.projector_idle,
            row.lag.0,
            row.lag.1,
        );
    }
    for row in &rows {
        println!(
            "  µs CPU per request at {} events: POST {} | GET {}",
            row.size,
            row.posted.split(),
            row.got.split()
        );
    }
    println!(
        "  baseline: POST {} | GET {}; postgres-es: POST {}",
        baseline_post.split(),
        baseline_get.split(),
        bare_post.split()
    );
    if let (Some(first), Some(last)) = (first_post, rows.last()) {
        println!(
            "  POST CPU per request at {} events / at {} events: {:.2}",
            rows[0].size,
            last.size,
            first / last.posted.cpu_per_request()
        );
    }
    print_rounds("metrics on / off", "POST company", "GET company", &rounds);
    print_rounds(
        "sealing on / off",
        "POST note",
        "GET /v1/events (50 notes)",
        &sealing_rounds,
    );
    println!("  goals: POST efficiency >= 0.5, GET efficiency >= 0.7 with p99 <= 1.5 x baseline, lag p99 <= 50 ms, cost at 1M within 10% of 10k");
    let peaks: Vec<String> = rss
        .iter()
        .map(|p| format!("{} {:.0} MiB", p.name, p.peak_rss_kib() as f64 / 1024.0))
        .chain(engines.iter().map(|p| {
            format!(
                "{} (main process) {:.0} MiB",
                p.name,
                p.peak_rss_kib() as f64 / 1024.0
            )
        }))
        .collect();
    println!("  peak RSS: {}", peaks.join(", "));
}

/// Prints interleaved on / off rounds: the median ratio and each round's.
fn print_rounds(what: &str, write: &str, read: &str, rounds: &[MetricsRound]) {
    let median = |pick: fn(&MetricsRound) -> f64| {
        let mut values: Vec<f64> = rounds.iter().map(pick).collect();
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    let listed = |pick: fn(&MetricsRound) -> f64| {
        rounds
            .iter()
            .map(|r| format!("{:.3}", pick(r)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!(
        "  {what}, {} interleaved rounds (median; each round): \
         {write} CPU/request {:.3} ({}), throughput {:.3} ({}) | \
         {read} CPU/request {:.3} ({}), throughput {:.3} ({})",
        rounds.len(),
        median(|r| r.post_cpu),
        listed(|r| r.post_cpu),
        median(|r| r.post_rate),
        listed(|r| r.post_rate),
        median(|r| r.get_cpu),
        listed(|r| r.get_cpu),
        median(|r| r.get_rate),
        listed(|r| r.get_rate),
    );
}

/// How many times the on and off phases of a comparison are repeated.
const METRICS_ROUNDS: usize = 3;

/// One round of metrics on against off: ratios on / off.
struct MetricsRound {
    post_cpu: f64,
    post_rate: f64,
    get_cpu: f64,
    get_rate: f64,
}

struct Row {
    size: i64,
    posted: Phase,
    got: Phase,
    relay_idle: f64,
    projector_idle: f64,
    lag: (f64, f64),
}

/// Starts this benchmark again as one of its baseline servers (`flag`) on
/// `database`; the process, its guard and its base URL once it answers.
async fn spawn_baseline(
    env: &TestEnv,
    flag: &str,
    name: &str,
    database: &str,
) -> (Process, KillOnDrop, String) {
    let port = helpers::free_port();
    let child = Command::new(std::env::current_exe().unwrap())
        .arg(flag)
        .env("DATABASE_URL", database)
        .env("BASELINE_PORT", port.to_string())
        .env("VCINTEL_JWT_SECRET", helpers::JWT_SECRET)
        .env("VCINTEL_PRIVACY_MASTER_KEY", helpers::PRIVACY_MASTER_KEY)
        .stdout(Stdio::null())
        .spawn()
        .expect("start a baseline server");
    let process = Process::new(name, child.id());
    let base = format!("http://127.0.0.1:{port}");
    let guard = KillOnDrop(child);
    wait_for_health(&env.http, &base).await;
    (process, guard, base)
}

fn with_engines(service: &[Process], engines: &[Process]) -> Vec<Process> {
    service.iter().chain(engines).cloned().collect()
}

/// The port of a `scheme://[user@]host[:port][/…]` URL.
fn port_of(url: &str, default: u16) -> u16 {
    let authority = url
        .split_once("://")
        .map_or(url, |(_, rest)| rest)
        .split(['/', '?'])
        .next()
        .unwrap_or_default();
    let host = authority.rsplit('@').next().unwrap_or_default();
    host.rsplit_once(':')
        .and_then(|(_, port)| port.parse().ok())
        .unwrap_or(default)
}

fn spawn_component(env: &TestEnv, component: &str, port: u16) -> std::process::Child {
    spawn_component_with(env, component, port, &[])
}

fn spawn_component_with(
    env: &TestEnv,
    component: &str,
    port: u16,
    extra: &[(&str, &str)],
) -> std::process::Child {
    support::spawn_vcintel(
        component,
        port,
        &env.database_url,
        &helpers::nats_url(),
        &env.prefix,
        extra,
    )
}

async fn post_phase(client: &Client, servers: &[Process], run_for: Duration, label: &str) -> Phase {
    let (label, client) = (label.to_owned(), client.clone());
    load_phase(servers, run_for, move |_| {
        let client = client.clone();
        let name = fresh_name(&label);
        async move { Some(client.post(&name).await) }
    })
    .await
}

async fn note_phase(
    client: &Client,
    servers: &[Process],
    run_for: Duration,
    company: Uuid,
) -> Phase {
    let client = client.clone();
    load_phase(servers, run_for, move |n| {
        let client = client.clone();
        async move {
            Some(
                client
                    .post_note(company, &format!("A note, number {n}"))
                    .await,
            )
        }
    })
    .await
}

async fn feed_phase(client: &Client, servers: &[Process], run_for: Duration) -> Phase {
    let client = client.clone();
    load_phase(servers, run_for, move |_| {
        let client = client.clone();
        async move {
            client.feed().await;
            None
        }
    })
    .await
}

async fn get_phase(client: &Client, servers: &[Process], run_for: Duration, ids: &[Uuid]) -> Phase {
    let (ids, client) = (Arc::new(ids.to_vec()), client.clone());
    load_phase(servers, run_for, move |n| {
        let client = client.clone();
        let id = ids[(n as usize).wrapping_mul(7919) % ids.len()];
        async move {
            client.get(id).await;
            None
        }
    })
    .await
}

/// Commit → visible in the companies read model at `rate` POSTs per second
/// (open loop), p50 and p99 in ms: from the event's `recorded_at` to the
/// row's `projected_at`, both on the Postgres clock.
async fn lag_at(env: &TestEnv, client: &Client, rate: f64, run_for: Duration) -> (f64, f64) {
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(1.0)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let mut inflight = Vec::new();
    while started.elapsed() < run_for {
        ticker.tick().await;
        let client = client.clone();
        let name = fresh_name("lag");
        inflight.push(tokio::spawn(async move { client.post(&name).await }));
    }
    let mut ids = Vec::with_capacity(inflight.len());
    for f in inflight {
        ids.push(f.await.unwrap());
    }
    wait_until_caught_up(env).await;
    let mut lags: Vec<f64> = sqlx::query_scalar(
        "select extract(epoch from (c.projected_at - e.recorded_at))::float8 * 1000
         from unnest($1::uuid[]) as ids(id)
         join companies c on c.id = ids.id
         join events e on e.aggregate_type = 'company' and e.aggregate_id = ids.id::text
                      and e.sequence = 1",
    )
    .bind(&ids)
    .fetch_all(&env.pool)
    .await
    .unwrap();
    lags.sort_by(f64::total_cmp);
    (percentile(&lags, 0.5), percentile(&lags, 0.99))
}

async fn stored_events(env: &TestEnv) -> i64 {
    sqlx::query_scalar("select coalesce(max(position), 0) from events")
        .fetch_one(&env.pool)
        .await
        .unwrap()
}

/// Waits until the relay has published every event and every durable
/// consumer has applied everything, polling gently.
async fn wait_until_caught_up(env: &TestEnv) {
    helpers::eventually(
        Duration::from_secs(1800),
        "relay and projector to catch up",
        || async {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let (last, published): (i64, Option<i64>) = sqlx::query_as(
                "select coalesce((select max(position) from events), 0),
                        (select last_position from relay_checkpoints)",
            )
            .fetch_one(&env.pool)
            .await
            .ok()?;
            if published.unwrap_or(0) < last {
                return None;
            }
            let stream = env.stream().await;
            let mut names = stream.consumer_names();
            use futures::StreamExt;
            while let Some(name) = names.next().await {
                let info = stream.consumer_info(name.ok()?).await.ok()?;
                if info.num_pending > 0 || info.num_ack_pending > 0 {
                    return None;
                }
            }
            Some(())
        },
    )
    .await;
}

/// The plain service VC Intel is measured against: what a team would write
/// without event sourcing. Same JWT algorithm, same JSON, one statement per
/// request.
mod baseline {
    use super::*;
    use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
    use sqlx::PgPool;

    #[derive(serde::Serialize, serde::Deserialize)]
    struct Claims {
        sub: Uuid,
        ws: Uuid,
        iss: String,
        exp: u64,
    }

    #[derive(Clone)]
    struct Baseline {
        pool: PgPool,
        key: DecodingKey,
        validation: Validation,
    }

    pub fn token(user: Uuid, workspace: Uuid) -> String {
        let exp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 86_400;
        encode(
            &Header::new(Algorithm::HS256),
            &Claims {
                sub: user,
                ws: workspace,
                iss: "baseline".to_owned(),
                exp,
            },
            &EncodingKey::from_secret(helpers::JWT_SECRET.as_bytes()),
        )
        .unwrap()
    }

    /// The state both baseline servers start from (pool from
    /// `DATABASE_URL`, the JWT key), and serving `app` on `BASELINE_PORT`.
    async fn baseline_state() -> Baseline {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let pool = vcintel_infra::db::connect(&std::env::var("DATABASE_URL").unwrap(), 20)
            .await
            .unwrap();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&["baseline"]);
        Baseline {
            pool,
            key: DecodingKey::from_secret(std::env::var("VCINTEL_JWT_SECRET").unwrap().as_bytes()),
            validation,
        }
    }

    async fn listen(app: Router) {
        let port: u16 = std::env::var("BASELINE_PORT").unwrap().parse().unwrap();
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        axum::serve(listener, app).await.unwrap();
    }

    pub async fn serve() {
        let app = Router::new()
            .route("/health", get(|| async { "ok" }))
            .route("/v1/companies", post(add))
            .route("/v1/companies/{id}", get(read))
            .with_state(baseline_state().await);
        listen(app).await;
    }

    fn claims(state: &Baseline, headers: &HeaderMap) -> Result<Claims, StatusCode> {
        let token = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(StatusCode::UNAUTHORIZED)?;
        decode::<Claims>(token, &state.key, &state.validation)
            .map(|d| d.claims)
            .map_err(|_| StatusCode::UNAUTHORIZED)
    }

    /// cqrs-es' framework over postgres-es' repository, as its README sets
    /// them up, executing our company aggregate's `Add`.
    pub async fn serve_postgres_es() {
        let state = baseline_state().await;
        let cqrs = Arc::new(postgres_es::postgres_cqrs::<
            vcintel_commands::CompanyAggregate,
        >(state.pool.clone(), vec![], ()));
        let app = Router::new()
            .route("/health", get(|| async { "ok" }))
            .route(
                "/v1/companies",
                post(
                    move |State(state): State<Baseline>,
                          headers: HeaderMap,
                          Json(body): Json<NewCompany>| {
                        let cqrs = cqrs.clone();
                        async move {
                            let claims = claims(&state, &headers)?;
                            let id = Uuid::now_v7();
                            let command = vcintel_domain::company::CompanyCommand::Add {
                                actor: vcintel_domain::Actor {
                                    workspace_id: vcintel_domain::WorkspaceId(claims.ws),
                                    user_id: vcintel_domain::UserId(claims.sub),
                                    role: vcintel_domain::Role::Member,
                                    api_key: None,
                                },
                                company_id: vcintel_domain::company::CompanyId(id),
                                input: vcintel_domain::company::CompanyInput {
                                    name: body.name,
                                    website: body.website,
                                    sector: body.sector,
                                    stage: None,
                                    location: None,
                                },
                            };
                            cqrs.execute(&id.to_string(), command)
                                .await
                                .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
                            Ok::<_, StatusCode>((
                                StatusCode::CREATED,
                                Json(json!({"id": id, "version": 1})),
                            ))
                        }
                    },
                ),
            )
            .with_state(state);
        listen(app).await;
    }

    type CompanyRow = (
        Uuid,
        String,
        String,
        Option<String>,
        chrono::DateTime<chrono::Utc>,
    );

    #[derive(serde::Deserialize)]
    struct NewCompany {
        name: String,
        website: String,
        sector: Option<String>,
    }

    async fn add(
        State(state): State<Baseline>,
        headers: HeaderMap,
        Json(body): Json<NewCompany>,
    ) -> Result<(StatusCode, Json<Value>), StatusCode> {
        let claims = claims(&state, &headers)?;
        let id = Uuid::now_v7();
        sqlx::query(
            "insert into baseline_companies (id, workspace_id, name, website, sector)
             values ($1, $2, $3, $4, $5)",
        )
        .bind(id)
        .bind(claims.ws)
        .bind(&body.name)
        .bind(&body.website)
        .bind(&body.sector)
        .execute(&state.pool)
        .await
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
        Ok((StatusCode::CREATED, Json(json!({"id": id, "version": 1}))))
    }

    async fn read(
        State(state): State<Baseline>,
        headers: HeaderMap,
        Path(id): Path<Uuid>,
    ) -> Result<Json<Value>, StatusCode> {
        let claims = claims(&state, &headers)?;
        let row: Option<CompanyRow> = sqlx::query_as(
            "select id, name, website, sector, created_at from baseline_companies
                 where workspace_id = $1 and id = $2",
        )
        .bind(claims.ws)
        .bind(id)
        .fetch_optional(&state.pool)
        .await
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
        let (id, name, website, sector, created_at) = row.ok_or(StatusCode::NOT_FOUND)?;
        Ok(Json(json!({
            "id": id, "name": name, "website": website, "sector": sector,
            "added_at": created_at, "version": 1
        })))
    }
}
