//! The point-in-time recovery drill (`scripts/pitr.sh`) on a real cluster of
//! the test's own: WAL archiving on, a base backup, more commands, then a
//! restore to a time between them. The service started on the recovered
//! cluster holds exactly the events up to that time; the relay refills the
//! stream (keeping the later commands' events as orphans) and the read
//! models match the store.

use crate::helpers::{eventually, PrivatePostgres, TestEnv};
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::time::{Duration, Instant};
use uuid::Uuid;
use vcintel_api::Component;
use vcintel_domain::Role;

async fn pitr(args: &[&str]) {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/pitr.sh");
    let output = tokio::process::Command::new(script)
        .args(args)
        .kill_on_drop(true)
        .output()
        .await
        .expect("run scripts/pitr.sh");
    assert!(
        output.status.success(),
        "pitr.sh {args:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

async fn add_companies(env: &TestEnv, base: &str, token: &str, names: &[&str]) -> Vec<String> {
    let mut ids = Vec::new();
    for name in names {
        let added = env
            .call(
                Method::POST,
                &format!("{base}/v1/companies"),
                Some(token),
                None,
                Some(&json!({"name": name, "website": format!("{}.example", name.to_lowercase())})),
            )
            .await;
        assert_eq!(added.status, StatusCode::CREATED, "{}", added.body);
        ids.push(added.body["id"].as_str().unwrap().to_owned());
    }
    ids
}

#[tokio::test]
async fn a_cluster_recovered_to_a_point_in_time_holds_exactly_the_events_up_to_it() {
    let mut env = TestEnv::new().await;
    let pg = PrivatePostgres::start();
    let archive = pg.dir().join("archive");
    let archive_arg = archive.display().to_string();
    pitr(&["archive", &pg.url(), &archive_arg]).await;
    pg.restart();
    env.database_url = pg.url();
    env.pool = vcintel_infra::db::connect(&env.database_url, 5)
        .await
        .unwrap();
    let running = env.start(&Component::ALL).await;
    let base = running.address.clone().unwrap();
    let token = env.token(&env.actor(Uuid::now_v7(), Role::Owner));

    add_companies(&env, &base, &token, &["Alpha", "Beta"]).await;
    let backup = pg.dir().join("base");
    pitr(&["base-backup", &pg.url(), &backup.display().to_string()]).await;
    add_companies(&env, &base, &token, &["Gamma", "Delta"]).await;
    let target: String =
        sqlx::query_scalar("select to_char(clock_timestamp(), 'YYYY-MM-DD HH24:MI:SS.US TZH:TZM')")
            .fetch_one(&env.pool)
            .await
            .unwrap();
    let kept: Vec<String> =
        sqlx::query_scalar("select event_id::text from events order by tx_id, position")
            .fetch_all(&env.pool)
            .await
            .unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let later = add_companies(&env, &base, &token, &["Epsilon", "Zeta"]).await;
    eventually(Duration::from_secs(15), "every event published", || async {
        (env.stream_message_count().await as usize == kept.len() + 2).then_some(())
    })
    .await;
    // Close the WAL segment holding the last commands, and wait for the
    // archive to have it.
    let segment: String = sqlx::query_scalar("select pg_walfile_name(pg_switch_wal())")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    eventually(Duration::from_secs(30), "the segment archived", || {
        let path = archive.join(&segment);
        async move { path.exists().then_some(()) }
    })
    .await;
    running.stop().await;
    env.pool.close().await;
    pg.crash();

    // The drill: a new cluster from the base backup, replayed to `target`.
    let recovered_dir = std::env::temp_dir().join(format!("vcintel-pitr-{}", env.prefix));
    std::fs::create_dir_all(&recovered_dir).unwrap();
    let started = Instant::now();
    pitr(&[
        "restore",
        &backup.display().to_string(),
        &archive_arg,
        &target,
        &recovered_dir.join("data").display().to_string(),
    ])
    .await;
    let recovered = PrivatePostgres::adopt(recovered_dir);
    env.database_url = recovered.url();
    env.pool = vcintel_infra::db::connect(&env.database_url, 5)
        .await
        .unwrap();
    eventually(
        Duration::from_secs(60),
        "recovery to end and promote",
        || {
            let pool = env.pool.clone();
            async move {
                let recovering: bool = sqlx::query_scalar("select pg_is_in_recovery()")
                    .fetch_one(&pool)
                    .await
                    .ok()?;
                (!recovering).then_some(())
            }
        },
    )
    .await;
    println!(
        "recovered to {target} in {:.1} s (restore, replay, promote)",
        started.elapsed().as_secs_f64()
    );
    let store: Vec<String> =
        sqlx::query_scalar("select event_id::text from events order by tx_id, position")
            .fetch_all(&env.pool)
            .await
            .unwrap();
    assert_eq!(store, kept, "exactly the events up to the target time");

    // The service on the recovered cluster: the stream converges to the
    // store, the later commands' events kept as orphans, and the read
    // model holds what the store does.
    let running = env.start(&Component::ALL).await;
    let base = running.address.clone().unwrap();
    let converging = Instant::now();
    eventually(
        Duration::from_secs(30),
        "the stream to equal the store",
        || {
            let env = &env;
            let kept = kept.clone();
            async move {
                // None while the relay purges: not yet.
                (env.streamed_event_ids().await? == kept).then_some(())
            }
        },
    )
    .await;
    println!(
        "stream converged {:.1} s after the service started",
        converging.elapsed().as_secs_f64()
    );
    let orphans: Vec<String> =
        sqlx::query_scalar("select message->>'aggregateid' from stream_orphans")
            .fetch_all(&env.pool)
            .await
            .unwrap();
    for id in &later {
        assert!(orphans.contains(id), "{id} kept among {orphans:?}");
    }
    let names = eventually(
        Duration::from_secs(15),
        "the read model to match",
        || async {
            let reply = env
                .call(
                    Method::GET,
                    &format!("{base}/v1/companies?sort=name"),
                    Some(&token),
                    None,
                    None,
                )
                .await;
            let names: Vec<String> = reply.body["items"]
                .as_array()?
                .iter()
                .map(|c| c["name"].as_str().unwrap_or_default().to_owned())
                .collect();
            (names.len() == 4).then_some(names)
        },
    )
    .await;
    let mut names = names;
    names.sort();
    assert_eq!(names, ["Alpha", "Beta", "Delta", "Gamma"]);
    running.stop().await;
}
