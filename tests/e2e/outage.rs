//! Outages under load, on servers of the test's own: clients that retry
//! with their `Idempotency-Key` get every command executed exactly once,
//! errors come fast as 503 with `Retry-After`, and after processes, NATS and
//! Postgres are killed (-9) and restarted, no acknowledged command is lost
//! and the read models converge.

use crate::crash::read_model_matches_a_fresh_fold;
use crate::helpers::{
    eventually, free_port, jetstream_at, replay_stream, signal, wait_until_answering, KillOnDrop,
    PrivateNats, PrivatePostgres, TestEnv,
};
use reqwest::StatusCode;
use serde_json::json;
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;
use vcintel_domain::Role;

/// One answer a client got: status (0: no connection), how long it took,
/// and whether it carried `Retry-After`.
pub(crate) type Answer = (u16, Duration, bool);

/// Adds company `i` under one `Idempotency-Key`, retrying whatever went
/// wrong until the command is acknowledged; every answer on the way. With
/// several instances, as a load balancer would, each try goes to the next.
async fn add_until_acknowledged(
    http: reqwest::Client,
    bases: Vec<String>,
    token: String,
    i: usize,
) -> Vec<Answer> {
    let key = Uuid::new_v4().to_string();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut answers = Vec::new();
    for attempt in i.. {
        if Instant::now() >= deadline {
            break;
        }
        let base = &bases[attempt % bases.len()];
        let sent = Instant::now();
        let reply = http
            .post(format!("{base}/v1/companies"))
            .bearer_auth(&token)
            .header("idempotency-key", &key)
            .json(&json!({"name": format!("Outage {i}"), "website": format!("outage{i}.example")}))
            .timeout(Duration::from_secs(15))
            .send()
            .await;
        match reply {
            Ok(response) => {
                let status = response.status();
                let retry_after = response.headers().contains_key("retry-after");
                let body: serde_json::Value = response.json().await.unwrap_or_default();
                answers.push((status.as_u16(), sent.elapsed(), retry_after));
                let response_lost = status == StatusCode::CONFLICT
                    && body["type"] == "urn:vcintel:problem:idempotency-response-lost";
                if status == StatusCode::CREATED || response_lost {
                    return answers;
                }
            }
            Err(_) => answers.push((0, sent.elapsed(), false)),
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    panic!(
        "company {i} was never acknowledged: {} tries, by status {:?}, the last {:?}",
        answers.len(),
        summary(std::slice::from_ref(&answers)),
        answers.last()
    );
}

/// `clients` clients adding companies one after another for `period`, each
/// until acknowledged, spread over the API instances at `bases`; every
/// command's answers.
pub(crate) fn load(
    env: &TestEnv,
    bases: &[String],
    token: &str,
    clients: usize,
    period: Duration,
) -> Vec<tokio::task::JoinHandle<Vec<Vec<Answer>>>> {
    let until = Instant::now() + period;
    (0..clients)
        .map(|c| {
            let (http, bases, token) = (env.http.clone(), bases.to_vec(), token.to_owned());
            tokio::spawn(async move {
                let mut commands = Vec::new();
                let mut n = 0;
                while Instant::now() < until {
                    let answers = add_until_acknowledged(
                        http.clone(),
                        bases.clone(),
                        token.clone(),
                        c * 100_000 + n,
                    )
                    .await;
                    commands.push(answers);
                    n += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                commands
            })
        })
        .collect()
}

pub(crate) fn summary(answers: &[Vec<Answer>]) -> BTreeMap<u16, usize> {
    let mut by_status = BTreeMap::new();
    for (status, _, _) in answers.iter().flatten() {
        *by_status.entry(*status).or_insert(0) += 1;
    }
    by_status
}

/// Waits for the load's clients and returns every command's answers,
/// having checked that the faults were answered 503 or not at all (409: a
/// retry while its key's first try is still recorded as under way, cut
/// off by the fault, until the claim may be taken over), never otherwise.
pub(crate) async fn answers_through_faults(
    clients: Vec<tokio::task::JoinHandle<Vec<Vec<Answer>>>>,
) -> Vec<Vec<Answer>> {
    let mut answers = Vec::new();
    for client in clients {
        answers.extend(client.await.unwrap());
    }
    let by_status = summary(&answers);
    println!("answers by status: {by_status:?}");
    assert!(
        by_status
            .keys()
            .all(|status| [0, 201, 409, 503].contains(status)),
        "a fault is answered 503 (or not at all), never {by_status:?}"
    );
    answers
}

/// Every acknowledged command of `answers` is in the store at `pool`,
/// exactly once.
pub(crate) async fn assert_each_stored_once(pool: &sqlx::PgPool, answers: &[Vec<Answer>]) {
    let (added, websites) = store_counts(pool).await;
    assert_eq!(
        (added, websites),
        (answers.len() as i64, answers.len() as i64),
        "every acknowledged command is in the store, once"
    );
}

pub(crate) async fn store_counts(pool: &sqlx::PgPool) -> (i64, i64) {
    sqlx::query_as(
        "select count(*), count(distinct payload->'company.added'->>'website')
         from events where event_type = 'company.added'",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn postgres_down_longer_than_the_request_timeout_fails_fast_and_each_retried_command_runs_once(
) {
    let mut env = TestEnv::new().await;
    let pg = PrivatePostgres::start();
    env.database_url = pg.url();
    env.pool = vcintel_infra::db::connect(&env.database_url, 5)
        .await
        .unwrap();
    vcintel_infra::db::MIGRATOR.run(&env.pool).await.unwrap();
    let port = free_port();
    let service = KillOnDrop(env.spawn_process_at(
        "api,relay,projector",
        port,
        &[
            ("VCINTEL_REQUEST_TIMEOUT_SECS", "2"),
            ("VCINTEL_DB_ACQUIRE_TIMEOUT_MS", "1000"),
        ],
    ));
    let base = format!("http://127.0.0.1:{port}");
    wait_until_answering(&env.http, &base).await;
    let token = env.token(&env.actor(Uuid::now_v7(), Role::Member));

    let clients = load(
        &env,
        std::slice::from_ref(&base),
        &token,
        8,
        Duration::from_secs(9),
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    pg.crash();
    let down = Instant::now();
    println!("injected: Postgres stopped (immediate) under load for 5 s, request timeout 2 s");
    tokio::time::sleep(Duration::from_secs(5)).await;
    pg.start_server();
    let outage = down.elapsed();
    let mut answers = Vec::new();
    for client in clients {
        answers.extend(client.await.unwrap());
    }
    println!(
        "{} commands, the last acknowledged {:?} after Postgres came back",
        answers.len(),
        down.elapsed() - outage
    );
    println!("answers by status: {:?}", summary(&answers));

    let all: Vec<&Answer> = answers.iter().flatten().collect();
    assert!(
        all.iter().all(|(status, _, _)| *status != 500),
        "no 500 for an outage"
    );
    let unavailable: Vec<&&Answer> = all.iter().filter(|(s, _, _)| *s == 503).collect();
    assert!(!unavailable.is_empty(), "the outage was seen by clients");
    assert!(
        unavailable.iter().all(|(_, _, retry_after)| *retry_after),
        "every 503 says when to retry"
    );
    let slowest = unavailable.iter().map(|(_, took, _)| *took).max().unwrap();
    println!("slowest 503: {slowest:?}");
    assert!(
        slowest < Duration::from_millis(2_500),
        "503s come fast: {slowest:?}"
    );

    let (added, websites) = store_counts(&env.pool).await;
    assert_eq!(
        (added, websites),
        (answers.len() as i64, answers.len() as i64),
        "each command ran exactly once"
    );
    // A key whose command ran but whose answer was lost in the outage is
    // final by design (it answers `idempotency-response-lost` with the
    // resource); a key claimed and never run would be stuck.
    let stuck: i64 = sqlx::query_scalar(
        "select count(*) from idempotency_keys where status is null and executed_at is null",
    )
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!(stuck, 0, "no key is left in progress");
    drop(service);
}

#[tokio::test]
async fn killing_every_process_nats_and_postgres_under_load_loses_no_acknowledged_command() {
    let mut env = TestEnv::new().await;
    let pg = PrivatePostgres::start();
    let mut nats = PrivateNats::start();
    env.database_url = pg.url();
    env.pool = vcintel_infra::db::connect(&env.database_url, 5)
        .await
        .unwrap();
    vcintel_infra::db::MIGRATOR.run(&env.pool).await.unwrap();
    let nats_url = nats.url();
    let port = free_port();
    let overrides: Vec<(&str, &str)> = vec![
        ("NATS_URL", nats_url.as_str()),
        ("VCINTEL_RELAY_LEASE_SECS", "2"),
    ];
    let spawn = |component: &str| {
        let port = if component == "api" { port } else { 0 };
        Arc::new(Mutex::new(KillOnDrop(
            env.spawn_process_at(component, port, &overrides),
        )))
    };
    let processes: BTreeMap<&str, Arc<Mutex<KillOnDrop>>> =
        ["api", "relay", "projector", "enricher"]
            .into_iter()
            .map(|c| (c, spawn(c)))
            .collect();
    let base = format!("http://127.0.0.1:{port}");
    wait_until_answering(&env.http, &base).await;
    let token = env.token(&env.actor(Uuid::now_v7(), Role::Member));

    let clients = load(
        &env,
        std::slice::from_ref(&base),
        &token,
        6,
        Duration::from_secs(7),
    );

    let started = Instant::now();
    for victim in ["relay", "projector", "api", "enricher"] {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let mut process = processes[victim].lock().unwrap();
        signal(process.0.id(), "KILL");
        let _ = process.0.wait();
        println!("injected: kill -9 {victim} at {:?}", started.elapsed());
        let port = if victim == "api" { port } else { 0 };
        *process = KillOnDrop(env.spawn_process_at(victim, port, &overrides));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    nats.kill();
    println!("injected: kill -9 nats-server at {:?}", started.elapsed());
    tokio::time::sleep(Duration::from_millis(500)).await;
    nats.restart();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let postmaster: u32 = std::fs::read_to_string(pg_pid_file(&pg))
        .ok()
        .and_then(|text| text.lines().next().and_then(|l| l.trim().parse().ok()))
        .expect("postmaster pid");
    // Every server process at once, as a power cut would: a postmaster
    // killed alone leaves backends holding its shared memory.
    let _ = std::process::Command::new("pkill")
        .args(["-KILL", "-P", &postmaster.to_string()])
        .status();
    signal(postmaster, "KILL");
    println!(
        "injected: kill -9 postgres (postmaster {postmaster} and its backends) at {:?}",
        started.elapsed()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    pg.start_server();

    let mut answers = Vec::new();
    for client in clients {
        answers.extend(client.await.unwrap());
    }
    println!("answers by status: {:?}", summary(&answers));
    assert_each_stored_once(&env.pool, &answers).await;
    let js = jetstream_at(&nats.url()).await;
    let converge_from = Instant::now();
    eventually(
        Duration::from_secs(60),
        "stream and read model to converge",
        || async {
            let store: HashSet<String> = env.event_ids_in_store().await.into_iter().collect();
            let streamed: HashSet<String> = replay_stream(&js, &env.topology().stream_name())
                .await
                .into_iter()
                .map(|(_, id, _)| id)
                .collect();
            (store == streamed && read_model_matches_a_fresh_fold(&env).await.is_ok()).then_some(())
        },
    )
    .await;
    println!(
        "converged {:?} after the last acknowledgement ({:?} after the first kill)",
        converge_from.elapsed(),
        started.elapsed()
    );
}

fn pg_pid_file(pg: &PrivatePostgres) -> std::path::PathBuf {
    pg.data_dir().join("postmaster.pid")
}

#[tokio::test]
async fn with_nats_down_commands_are_still_acknowledged_and_what_needs_nats_fails_fast() {
    let mut env = TestEnv::new().await;
    let mut nats = PrivateNats::start();
    let mut settings = env.settings();
    settings.nats_url = nats.url();
    let base = env.start_all_with(settings).await;
    let token = env.token(&env.actor(Uuid::now_v7(), Role::Member));
    nats.kill();
    println!("injected: kill -9 nats-server");
    eventually(Duration::from_secs(10), "the API to notice", || async {
        let sent = Instant::now();
        let reply = env
            .http
            .get(format!("{base}/admin/dead-letters"))
            .bearer_auth(crate::helpers::ADMIN_TOKEN)
            .send()
            .await
            .ok()?;
        (reply.status() == StatusCode::SERVICE_UNAVAILABLE).then(|| {
            assert!(reply.headers().contains_key("retry-after"));
            assert!(
                sent.elapsed() < Duration::from_secs(2),
                "{:?}",
                sent.elapsed()
            );
        })
    })
    .await;
    // Commands need only Postgres: acknowledged now, published later.
    let (status, body) = env
        .post_json(
            &format!("{base}/v1/companies"),
            &token,
            &json!({"name": "Offline", "website": "offline.example"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    nats.restart();
    let js = jetstream_at(&nats.url()).await;
    eventually(
        Duration::from_secs(30),
        "the command to reach the stream",
        || async {
            let replayed = replay_stream(&js, &env.topology().stream_name()).await;
            let store: HashSet<String> = env.event_ids_in_store().await.into_iter().collect();
            let streamed: HashSet<String> = replayed.into_iter().map(|(_, id, _)| id).collect();
            (store == streamed).then_some(())
        },
    )
    .await;
}
