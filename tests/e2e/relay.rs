//! The relay never skips an event whose transaction commits late, and
//! publishes each event once, in per-aggregate order.

use crate::helpers::{eventually, sequences_by_aggregate, TestEnv};
use futures::future::join_all;
use rand_like::pseudo_random;
use serde_json::json;
use sqlx::{Connection, PgConnection};
use std::collections::HashSet;
use std::time::Duration;
use uuid::Uuid;
use vcintel_api::Component;
use vcintel_domain::company::CompanyInput;
use vcintel_domain::Role;

/// Appends one raw event the way postgres-es does (named columns only).
async fn insert_event(conn: &mut PgConnection, aggregate_id: &str, sequence: i64, workspace: Uuid) {
    sqlx::query(
        "insert into events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         values ('probe', $1, $2, 'probe.happened', '1', $3, $4)",
    )
    .bind(aggregate_id)
    .bind(sequence)
    .bind(json!({"probe.happened": {"n": sequence}}))
    .bind(json!({"workspace_id": workspace.to_string()}))
    .execute(conn)
    .await
    .unwrap();
}

mod rand_like {
    /// A deterministic spread of delays, so a failure reproduces.
    pub fn pseudo_random(i: u64) -> f64 {
        let x = i
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((x >> 33) % 1000) as f64 / 1000.0
    }
}

#[tokio::test]
async fn an_event_committed_after_a_later_positioned_one_is_still_published() {
    let mut env = TestEnv::new().await;
    let _relay = env.start(&[Component::Relay]).await;
    let workspace = Uuid::now_v7();

    // A takes the lower position but commits last.
    let mut slow = PgConnection::connect(&env.database_url).await.unwrap();
    sqlx::query("begin").execute(&mut slow).await.unwrap();
    insert_event(&mut slow, "slow", 1, workspace).await;
    let mut fast = PgConnection::connect(&env.database_url).await.unwrap();
    insert_event(&mut fast, "fast", 1, workspace).await;
    let positions: Vec<(String, i64)> =
        sqlx::query_as("select aggregate_id, position from events order by position")
            .fetch_all(&env.pool)
            .await
            .unwrap();
    assert_eq!(positions.len(), 1, "only the fast one is committed yet");

    // Give the relay ample time to (wrongly) advance past the open transaction.
    tokio::time::sleep(Duration::from_millis(500)).await;
    sqlx::query("commit").execute(&mut slow).await.unwrap();

    let messages = eventually(
        Duration::from_secs(10),
        "both events on JetStream",
        || async {
            let messages = env.stream_messages().await;
            (messages.len() >= 2).then_some(messages)
        },
    )
    .await;
    let aggregates: Vec<&str> = messages
        .iter()
        .map(|m| m.body["aggregateid"].as_str().unwrap())
        .collect();
    assert_eq!(messages.len(), 2);
    assert!(
        aggregates.contains(&"slow"),
        "the late committer was skipped"
    );
    assert!(aggregates.contains(&"fast"));
}

#[tokio::test]
async fn concurrent_out_of_order_commits_reach_jetstream_exactly_once_in_aggregate_order() {
    let mut env = TestEnv::new().await;
    let _relay = env.start(&[Component::Relay]).await;
    let workspace = Uuid::now_v7();

    // Raw writers hold their transactions open for varying times, so
    // positions commit out of order; some roll back.
    let raw_writers = (0..40u64).map(|i| {
        let url = env.database_url.clone();
        async move {
            let mut conn = PgConnection::connect(&url).await.unwrap();
            let aggregate = format!("probe-{i}");
            sqlx::query("begin").execute(&mut conn).await.unwrap();
            for seq in 1..=(1 + i % 3) as i64 {
                insert_event(&mut conn, &aggregate, seq, workspace).await;
            }
            sqlx::query("select pg_sleep($1)")
                .bind(pseudo_random(i) * 0.4)
                .execute(&mut conn)
                .await
                .unwrap();
            let end = if i % 10 == 7 { "rollback" } else { "commit" };
            sqlx::query(end).execute(&mut conn).await.unwrap();
        }
    });
    // Real commands, several versions per aggregate, at the same time.
    let commands = env.company_commands();
    let actor = env.actor(workspace, Role::Member);
    let command_writers = (0..6).map(|i| {
        let commands = &commands;
        async move {
            let meta = Default::default();
            let added = commands
                .add(
                    actor,
                    CompanyInput {
                        name: format!("Co {i}"),
                        website: format!("co{i}.io"),
                        sector: None,
                        stage: None,
                        location: None,
                    },
                    &meta,
                )
                .await
                .unwrap();
            let id = vcintel_domain::company::CompanyId(added.aggregate_id.parse().unwrap());
            for n in 0..4 {
                let changes = vcintel_domain::company::CompanyChanges {
                    name: Some(format!("Co {i} v{n}")),
                    ..Default::default()
                };
                commands
                    .update_details(actor, id, changes, None, &meta)
                    .await
                    .unwrap();
            }
        }
    });
    let raw = join_all(raw_writers);
    let cmd = join_all(command_writers);
    tokio::join!(raw, cmd);

    let in_store: Vec<String> = env.event_ids_in_store().await;
    assert_eq!(
        in_store.len(),
        (0..40u64)
            .filter(|i| i % 10 != 7)
            .map(|i| 1 + i % 3)
            .sum::<u64>() as usize
            + 6 * 5
    );
    let messages = eventually(
        Duration::from_secs(30),
        "every event on JetStream",
        || async {
            let messages = env.stream_messages().await;
            (messages.len() >= in_store.len()).then_some(messages)
        },
    )
    .await;
    // A moment more: nothing else may arrive.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(env.stream_message_count().await as usize, in_store.len());

    let published: Vec<String> = messages.iter().map(|m| m.msg_id.clone()).collect();
    let unique: HashSet<&String> = published.iter().collect();
    assert_eq!(unique.len(), published.len(), "no duplicates");
    assert_eq!(
        unique,
        in_store.iter().collect::<HashSet<_>>(),
        "the stream holds exactly the store's events"
    );
    for m in &messages {
        assert_eq!(m.body["id"].as_str(), Some(m.msg_id.as_str()));
    }
    for (aggregate, sequences) in sequences_by_aggregate(&messages) {
        let expected: Vec<i64> = (1..=sequences.len() as i64).collect();
        assert_eq!(sequences, expected, "aggregate {aggregate} out of order");
    }
}

#[tokio::test]
async fn a_standby_relay_takes_over_when_the_leader_dies_and_publishes_each_event_once() {
    let mut env = TestEnv::new().await;
    let workspace = Uuid::now_v7();
    let mut conn = PgConnection::connect(&env.database_url).await.unwrap();
    let mut leader = env.spawn_process("relay", &[]);
    // Give the process time to take the lock before the standby starts.
    eventually(Duration::from_secs(20), "the leader's stream", || async {
        env.js.get_stream(env.topology().stream_name()).await.ok()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _standby = env.start(&[Component::Relay]).await;
    for i in 0..10 {
        insert_event(&mut conn, &format!("before-{i}"), 1, workspace).await;
    }
    eventually(Duration::from_secs(20), "the leader to publish", || async {
        (env.stream_message_count().await == 10).then_some(())
    })
    .await;

    leader.kill().unwrap();
    leader.wait().unwrap();
    for i in 0..10 {
        insert_event(&mut conn, &format!("after-{i}"), 1, workspace).await;
    }
    eventually(
        Duration::from_secs(30),
        "the standby to publish",
        || async { (env.stream_message_count().await >= 20).then_some(()) },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let messages = env.stream_messages().await;
    let ids: HashSet<String> = messages.iter().map(|m| m.msg_id.clone()).collect();
    assert_eq!(messages.len(), 20);
    assert_eq!(ids, env.event_ids_in_store().await.into_iter().collect());
}

#[tokio::test]
async fn transaction_ids_that_gain_a_digit_are_still_read_in_numeric_order() {
    // 99 sorts after 599 as text; a relay batch of 500 read in text order
    // would end at 599 and skip 99 for good.
    let mut env = TestEnv::new().await;
    let workspace = Uuid::now_v7();
    sqlx::query(
        "insert into events (aggregate_type, aggregate_id, sequence, event_type, event_version,
                             payload, metadata, tx_id)
         select 'probe', 'p' || n, 1, 'probe.happened', '1', json_build_object('probe.happened', json_build_object('n', n)),
                json_build_object('workspace_id', $1::text), n::text::xid8
         from generate_series(99, 599) as n",
    )
    .bind(workspace.to_string())
    .execute(&env.pool)
    .await
    .unwrap();

    let first = vcintel_infra::event_log::read_committed_after(
        &env.pool,
        None,
        vcintel_infra::event_log::CommitCursor::default(),
        2,
        vcintel_infra::event_log::Reading::AsStored,
    )
    .await
    .unwrap();
    let ids: Vec<u64> = first.iter().map(|e| e.cursor().tx_id).collect();
    assert_eq!(ids, [99, 100]);

    let _relay = env.start(&[Component::Relay]).await;
    let messages = eventually(
        Duration::from_secs(20),
        "501 events on JetStream",
        || async {
            let count = env.stream_message_count().await;
            (count >= 501).then_some(count)
        },
    )
    .await;
    assert_eq!(messages, 501);
}
