//! Postgres beyond one server: a streaming replica (made with
//! `pg_basebackup -R`) serves the read models' queries with read-your-writes
//! and steps aside while paused; and a synchronous replica promoted after
//! the primary is killed under load takes over with no acknowledged command
//! lost, the stream and read models converging to it.

use crate::crash::until_converged;
use crate::helpers::{
    eventually, free_port, wait_until_answering, Endpoint, KillOnDrop, PrivatePostgres, TestEnv,
};
use crate::outage::{answers_through_faults, assert_each_stored_once, load, store_counts};
use reqwest::StatusCode;
use serde_json::json;
use std::time::{Duration, Instant};
use uuid::Uuid;
use vcintel_api::Component;
use vcintel_domain::Role;

/// The `read_replicas` check's detail, as an operator reads it.
async fn replicas_detail(env: &TestEnv, base: &str) -> String {
    let check = env.readiness_check(base, "read_replicas").await;
    check
        .and_then(|c| c["detail"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Transactions the replica has run for clients (its own statistics).
async fn transactions_on(replica: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar(
        "select xact_commit + xact_rollback from pg_stat_database where datname = 'postgres'",
    )
    .fetch_one(replica)
    .await
    .unwrap()
}

/// Adds a company and reads it back at once with the write's consistency
/// token; how long the read took.
async fn write_then_read(env: &TestEnv, base: &str, token: &str, name: &str) -> Duration {
    let added = env
        .http
        .post(format!("{base}/v1/companies"))
        .bearer_auth(token)
        .json(&json!({"name": name, "website": format!("{}.example", name.to_lowercase())}))
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), StatusCode::CREATED);
    let consistency = added.headers()["x-consistency-token"]
        .to_str()
        .unwrap()
        .to_owned();
    let id = added.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let started = Instant::now();
    let read = env
        .http
        .get(format!("{base}/v1/companies/{id}"))
        .bearer_auth(token)
        .header("x-consistency-token", consistency)
        .send()
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(read.status(), StatusCode::OK, "read-your-writes");
    let body: serde_json::Value = read.json().await.unwrap();
    assert_eq!(body["name"], name);
    took
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streaming_replica_serves_reads_with_read_your_writes_and_steps_aside_while_paused() {
    let mut env = TestEnv::new().await;
    let primary = PrivatePostgres::start();
    env.database_url = primary.url();
    env.pool = vcintel_infra::db::connect(&env.database_url, 5)
        .await
        .unwrap();
    vcintel_infra::db::migrate(&env.pool).await.unwrap();
    let replica = PrivatePostgres::replica_of(&primary);
    let on_replica = vcintel_infra::db::connect(&replica.url(), 2).await.unwrap();
    let mut settings = env.settings();
    settings.read_database_urls = vec![replica.url()];
    settings.consistency_wait_ms = 3_000;
    let running = env.start_with(settings, &Component::ALL).await;
    let base = running.address.clone().unwrap();
    let token = env.token(&env.actor(Uuid::now_v7(), Role::Member));
    eventually(Duration::from_secs(15), "the replica fit", || async {
        replicas_detail(&env, &base)
            .await
            .starts_with("1 of 1 serve reads")
            .then_some(())
    })
    .await;

    let before = transactions_on(&on_replica).await;
    let mut slowest = Duration::ZERO;
    for i in 0..20 {
        slowest = slowest.max(write_then_read(&env, &base, &token, &format!("Replica{i}")).await);
    }
    println!("20 writes read back over the replica; slowest read {slowest:?}");
    let served = eventually(
        Duration::from_secs(10),
        "the replica's statistics to count the reads",
        || async {
            let served = transactions_on(&on_replica).await - before;
            (served >= 20).then_some(served)
        },
    )
    .await;
    println!("the replica ran {served} transactions meanwhile");

    replica.signal_all("STOP");
    let paused = Instant::now();
    println!("injected: SIGSTOP to the replica's every process");
    let mut slowest = Duration::ZERO;
    for i in 0..10 {
        slowest = slowest.max(write_then_read(&env, &base, &token, &format!("Paused{i}")).await);
    }
    println!(
        "10 writes read back while it is paused; slowest read {slowest:?} (the first may wait for the replica timeout)"
    );
    let detail = eventually(Duration::from_secs(10), "the replica unfit", || async {
        let detail = replicas_detail(&env, &base).await;
        detail
            .starts_with("reads go to the primary")
            .then_some(detail)
    })
    .await;
    println!("after {:?}: {detail}", paused.elapsed());
    assert!(detail.contains("unfit: no answer"), "{detail}");

    replica.signal_all("CONT");
    let resumed = Instant::now();
    eventually(Duration::from_secs(20), "the replica fit again", || async {
        replicas_detail(&env, &base)
            .await
            .starts_with("1 of 1 serve reads")
            .then_some(())
    })
    .await;
    println!("resumed; serving reads again after {:?}", resumed.elapsed());
    write_then_read(&env, &base, &token, "Resumed").await;
    let (added, _) = store_counts(&env.pool).await;
    assert_eq!(added, 31, "every acknowledged command is stored");
    let converged_in = until_converged(&env, Duration::from_secs(30)).await;
    println!("converged {converged_in:?} after the last write");
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_synchronous_replica_promoted_after_the_primary_is_killed_under_load_loses_nothing() {
    let mut env = TestEnv::new().await;
    let primary = PrivatePostgres::start();
    let mut setup = vcintel_infra::db::connect(&primary.url(), 2).await.unwrap();
    vcintel_infra::db::migrate(&setup).await.unwrap();
    let replica = PrivatePostgres::replica_of(&primary);
    // Synchronous: a commit is acknowledged once the replica has it.
    sqlx::query("alter system set synchronous_standby_names = '*'")
        .execute(&setup)
        .await
        .unwrap();
    sqlx::query("select pg_reload_conf()")
        .execute(&setup)
        .await
        .unwrap();
    eventually(
        Duration::from_secs(15),
        "the replica synchronous",
        || async {
            let state: Option<String> =
                sqlx::query_scalar("select sync_state from pg_stat_replication")
                    .fetch_optional(&setup)
                    .await
                    .ok()?;
            (state.as_deref() == Some("sync")).then_some(())
        },
    )
    .await;
    setup.close().await;
    setup = vcintel_infra::db::connect(&replica.url(), 2).await.unwrap();

    // Every process reaches Postgres through the stable endpoint.
    let endpoint = Endpoint::start(primary.port).await;
    env.database_url = endpoint.url();
    env.pool = vcintel_infra::db::connect(&env.database_url, 5)
        .await
        .unwrap();
    let common: Vec<(&str, &str)> = vec![
        ("VCINTEL_RELAY_LEASE_SECS", "2"),
        ("VCINTEL_DB_ACQUIRE_TIMEOUT_MS", "2000"),
        // A request cut off by the failover leaves its idempotency claim
        // under way; a retry may take it over after this long.
        ("VCINTEL_REQUEST_TIMEOUT_SECS", "5"),
    ];
    let mut processes = Vec::new();
    let mut bases = Vec::new();
    for _ in 0..3 {
        let port = free_port();
        processes.push(KillOnDrop(env.spawn_process_at("api", port, &common)));
        bases.push(format!("http://127.0.0.1:{port}"));
    }
    for component in ["relay", "relay", "projector", "projector"] {
        processes.push(KillOnDrop(env.spawn_process_at(component, 0, &common)));
    }
    for base in &bases {
        wait_until_answering(&env.http, base).await;
    }
    let token = env.token(&env.actor(Uuid::now_v7(), Role::Member));
    let clients = load(&env, &bases, &token, 6, Duration::from_secs(10));
    let started = Instant::now();

    tokio::time::sleep(Duration::from_secs(3)).await;
    primary.signal_all("KILL");
    println!(
        "injected: kill -9 of the primary at {:?}",
        started.elapsed()
    );
    // The failover an HA manager performs: promote the replica, repoint
    // the endpoint.
    replica.promote();
    endpoint.point_at(replica.port);
    println!(
        "replica promoted and the endpoint repointed at {:?}",
        started.elapsed()
    );

    let answers = answers_through_faults(clients).await;
    env.pool = vcintel_infra::db::connect(&env.database_url, 5)
        .await
        .unwrap();
    assert_each_stored_once(&setup, &answers).await;
    let converged_in = until_converged(&env, Duration::from_secs(60)).await;
    println!(
        "converged {converged_in:?} after the last acknowledgement ({:?} after the kill), {} commands",
        started.elapsed(),
        answers.len()
    );
    let orphans: i64 = sqlx::query_scalar("select count(*) from stream_orphans")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    println!("messages the stream held that the new primary lacks, kept as orphans: {orphans}");
    drop(processes);
}
