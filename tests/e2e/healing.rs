//! The derived world heals itself: whatever JetStream or an operator loses
//! or rolls back, the stream, the read models and a subscriber replaying
//! the stream converge to the event store, with no process restarted. Each
//! test prints what it injected and how long convergence took.

use crate::crash::read_model_matches_a_fresh_fold;
use crate::helpers::{
    copy_dir, eventually, jetstream_at, replay_stream, signal, KillOnDrop, PrivateNats, TestEnv,
};
use std::collections::HashSet;
use std::time::{Duration, Instant};
use uuid::Uuid;
use vcintel_api::Component;
use vcintel_domain::Role;

/// Every event of the store is in the stream, as a subscriber replaying
/// it from the start sees it.
async fn stream_holds_the_store(env: &TestEnv, js: &async_nats::jetstream::Context) -> bool {
    let store: HashSet<String> = env.event_ids_in_store().await.into_iter().collect();
    let streamed: HashSet<String> = replay_stream(js, &env.topology().stream_name())
        .await
        .into_iter()
        .map(|(_, id, _)| id)
        .collect();
    if std::env::var_os("TEST_LOG").is_some() && store != streamed {
        eprintln!(
            "stream lacks {} of the store's {} events and has {} it lacks",
            store.difference(&streamed).count(),
            store.len(),
            streamed.difference(&store).count()
        );
    }
    store == streamed
}

async fn converged(env: &TestEnv, js: &async_nats::jetstream::Context) -> Option<()> {
    (stream_holds_the_store(env, js).await && read_model_matches_a_fresh_fold(env).await.is_ok())
        .then_some(())
}

async fn repairs(env: &TestEnv) -> Vec<(String, String, i64)> {
    sqlx::query_as("select kind, detail, republished from relay_repairs order by id")
        .fetch_all(&env.pool)
        .await
        .unwrap()
}

async fn frontier_reaches_the_end(env: &TestEnv) -> bool {
    let stream_last = env.stream().await.info().await.unwrap().state.last_sequence;
    let verified: Option<i64> = sqlx::query_scalar(
        "select verified_seq from relay_checkpoints where relay_name = 'jetstream'",
    )
    .fetch_optional(&env.pool)
    .await
    .unwrap();
    verified == Some(stream_last as i64) && stream_last > 0
}

#[tokio::test]
async fn messages_deleted_from_the_middle_of_the_stream_are_republished_and_a_lagging_projector_converges(
) {
    let mut env = TestEnv::new().await;
    let _relay = env.start(&[Component::Relay]).await;
    let actor = env.actor(Uuid::now_v7(), Role::Member);
    env.add_companies(actor, 0..30).await;
    proven_through(&env, &env.js.clone(), 30).await;

    // Messages vanish from the middle while the projector has not read them.
    let stream = env.stream().await;
    for seq in 8..=18 {
        assert!(stream.delete_message(seq).await.unwrap());
    }
    println!("injected: deleted stream sequences 8..=18 (11 events) before any projector ran");
    let started = Instant::now();
    let _projector = env.start(&[Component::Projector]).await;
    let js = env.js.clone();
    eventually(
        Duration::from_secs(30),
        "stream and read model to converge",
        || converged(&env, &js),
    )
    .await;
    println!("converged in {:?}", started.elapsed());
    let repairs = repairs(&env).await;
    assert!(
        repairs
            .iter()
            .any(|(kind, _, n)| kind == "republished" && *n == 11),
        "the relay republished exactly the 11 missing events: {repairs:?}"
    );
    let companies: i64 = sqlx::query_scalar("select count(*) from companies")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(companies, 30);

    // A later deletion repairs that one message only: JetStream keeps
    // listing the earlier deleted sequences, which were handled.
    eventually(
        Duration::from_secs(20),
        "the relay to prove the stream again",
        || async { frontier_reaches_the_end(&env).await.then_some(()) },
    )
    .await;
    assert!(env.stream().await.delete_message(25).await.unwrap());
    println!("injected: deleted stream sequence 25");
    eventually(
        Duration::from_secs(30),
        "stream and read model to converge",
        || converged(&env, &js),
    )
    .await;
    let republished: i64 = repairs_of(&env, "republished").await;
    assert_eq!(republished, 12, "11, then 1: nothing repaired twice");

    // Someone purges the whole stream while nothing else happens.
    env.stream().await.purge().await.unwrap();
    println!("injected: purged the stream");
    let purged = Instant::now();
    eventually(
        Duration::from_secs(30),
        "the purged stream to be refilled",
        || converged(&env, &js),
    )
    .await;
    println!("refilled {:?} after the purge", purged.elapsed());
}

/// Waits until the stream ends at `through` and the relay has proven it all.
async fn proven_through(env: &TestEnv, js: &async_nats::jetstream::Context, through: u64) {
    eventually(
        Duration::from_secs(20),
        &format!("{through} messages proven"),
        || async {
            let stream = js.get_stream(env.topology().stream_name()).await.ok()?;
            let verified: i64 = sqlx::query_scalar(
                "select verified_seq from relay_checkpoints where relay_name = 'jetstream'",
            )
            .fetch_one(&env.pool)
            .await
            .ok()?;
            (stream.cached_info().state.last_sequence == through && verified == through as i64)
                .then_some(())
        },
    )
    .await;
}

async fn repairs_of(env: &TestEnv, kind: &str) -> i64 {
    sqlx::query_scalar::<_, Option<i64>>(
        "select sum(republished)::bigint from relay_repairs where kind = $1",
    )
    .bind(kind)
    .fetch_one(&env.pool)
    .await
    .unwrap()
    .unwrap_or(0)
}

#[tokio::test]
async fn a_stream_deleted_under_load_is_recreated_and_refilled_without_restarting_anything() {
    let mut env = TestEnv::new().await;
    let _running = env.start(&[Component::Relay, Component::Projector]).await;
    let actor = env.actor(Uuid::now_v7(), Role::Member);
    let writer = {
        let commands = env.company_commands();
        tokio::spawn(async move {
            for i in 0..120 {
                commands
                    .add(
                        actor,
                        vcintel_domain::company::CompanyInput {
                            name: format!("Loaded {i}"),
                            website: format!("loaded{i}.example"),
                            sector: None,
                            stage: None,
                            location: None,
                        },
                        &Default::default(),
                    )
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    env.js
        .delete_stream(env.topology().stream_name())
        .await
        .unwrap();
    let started = Instant::now();
    println!("injected: deleted the events stream (and with it every consumer) under load");
    writer.await.unwrap();
    let js = env.js.clone();
    eventually(
        Duration::from_secs(60),
        "stream and read model to converge",
        || converged(&env, &js),
    )
    .await;
    println!("converged in {:?} after the deletion", started.elapsed());
    let repairs = repairs(&env).await;
    assert!(
        repairs.iter().any(|(kind, _, _)| kind == "stream_missing"),
        "{repairs:?}"
    );
    let epoch = env.stream().await.info().await.unwrap().config.metadata["vcintel_epoch"].clone();
    assert_eq!(epoch, "2", "a recreated stream starts a new epoch");
}

#[tokio::test]
async fn a_stalled_relay_leader_loses_leadership_and_cannot_write_when_it_wakes() {
    let env = TestEnv::new().await;
    let lease = [("VCINTEL_RELAY_LEASE_SECS", "2")];
    let first = KillOnDrop(env.spawn_process("relay", &lease));
    let second = KillOnDrop(env.spawn_process("relay", &lease));
    let actor = env.actor(Uuid::now_v7(), Role::Member);
    env.add_companies(actor, 0..5).await;
    let (holder, token): (String, i64) =
        eventually(Duration::from_secs(20), "a leader", || async {
            sqlx::query_as("select holder, token from leases where name = 'relay:jetstream'")
                .fetch_optional(&env.pool)
                .await
                .unwrap()
        })
        .await;
    let leader_pid: u32 = holder.split(':').nth(1).unwrap().parse().unwrap();
    let (leader, standby) = if leader_pid == first.0.id() {
        (&first, &second)
    } else {
        (&second, &first)
    };
    assert_eq!(leader.0.id(), leader_pid);
    eventually(
        Duration::from_secs(20),
        "the first events on the stream",
        || async { (env.stream_message_count().await == 5).then_some(()) },
    )
    .await;

    signal(leader_pid, "STOP");
    println!("injected: SIGSTOP to the leading relay (pid {leader_pid}, lease 2 s)");
    let stopped = Instant::now();
    env.add_companies(actor, 5..10).await;
    eventually(
        Duration::from_secs(20),
        "the standby to publish",
        || async { (env.stream_message_count().await == 10).then_some(()) },
    )
    .await;
    let took_over = stopped.elapsed();
    println!("the standby published within {took_over:?}");
    assert!(took_over < Duration::from_secs(10));
    let (new_holder, new_token): (String, i64) =
        sqlx::query_as("select holder, token from leases where name = 'relay:jetstream'")
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert!(
        new_holder.contains(&format!(":{}:", standby.0.id())),
        "{new_holder}"
    );
    assert!(new_token > token);

    // The stale leader wakes up mid-work: its writes are fenced off, it
    // steps down, and nothing is published twice.
    signal(leader_pid, "CONT");
    env.add_companies(actor, 10..15).await;
    let end: i64 = sqlx::query_scalar("select max(position) from events")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    eventually(Duration::from_secs(20), "the checkpoint to reach the end", || async {
        let (position, fencing): (i64, i64) = sqlx::query_as(
            "select last_position, fencing_token from relay_checkpoints where relay_name = 'jetstream'",
        )
        .fetch_one(&env.pool)
        .await
        .unwrap();
        (position == end && fencing == new_token).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (holder_after, fencing_after): (String, i64) = sqlx::query_as(
        "select l.holder, c.fencing_token from leases l, relay_checkpoints c
         where l.name = 'relay:jetstream' and c.relay_name = 'jetstream'",
    )
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!(
        holder_after, new_holder,
        "the woken relay did not take over"
    );
    assert_eq!(
        fencing_after, new_token,
        "the woken relay wrote no checkpoint"
    );
    let js = env.js.clone();
    let replayed = replay_stream(&js, &env.topology().stream_name()).await;
    assert_eq!(replayed.len(), 15, "each event once");
    assert!(stream_holds_the_store(&env, &js).await);
}

#[tokio::test]
async fn a_lease_taken_over_fences_off_the_old_holder() {
    let env = TestEnv::new().await;
    let ttl = Duration::from_secs(30);
    let mut old = vcintel_infra::lease::Lease::new(env.pool.clone(), "probe", ttl);
    let mut new = vcintel_infra::lease::Lease::new(env.pool.clone(), "probe", ttl);
    assert!(old.try_acquire().await.unwrap());
    assert!(
        !new.try_acquire().await.unwrap(),
        "held leases are not taken"
    );
    // The old holder stalls past its expiry.
    sqlx::query("update leases set expires_at = now() - interval '1 second' where name = 'probe'")
        .execute(&env.pool)
        .await
        .unwrap();
    assert!(new.try_acquire().await.unwrap());
    assert!(new.token() > old.token());
    assert!(matches!(
        old.renew().await,
        Err(vcintel_infra::lease::LeaseError::Lost { .. })
    ));
    new.renew().await.unwrap();
}

#[tokio::test]
async fn jetstream_losing_its_last_acknowledged_messages_is_repaired_and_consumers_converge() {
    let mut env = TestEnv::new().await;
    let mut nats = PrivateNats::start();
    let mut settings = env.settings();
    settings.nats_url = nats.url();
    let _relay = env.start_with(settings.clone(), &[Component::Relay]).await;
    let js = jetstream_at(&nats.url()).await;
    let actor = env.actor(Uuid::now_v7(), Role::Member);
    env.add_companies(actor, 0..20).await;
    proven_through(&env, &js, 20).await;

    // The store as it was on disk "one second before the power went".
    nats.kill();
    let snapshot = nats.dir.join("snapshot");
    copy_dir(&nats.store(), &snapshot);
    nats.restart();
    env.add_companies(actor, 20..35).await;
    proven_through(&env, &js, 35).await;
    nats.kill();
    std::fs::remove_dir_all(nats.store()).unwrap();
    std::fs::rename(&snapshot, nats.store()).unwrap();
    nats.restart();
    let started = Instant::now();
    println!("injected: nats-server restarted on its store as of 15 acknowledged messages earlier");
    // New commands land on top of the hole before anything is repaired.
    env.add_companies(actor, 35..40).await;
    let _projector = env.start_with(settings, &[Component::Projector]).await;
    eventually(
        Duration::from_secs(40),
        "stream and read model to converge",
        || converged(&env, &js),
    )
    .await;
    println!("converged in {:?}", started.elapsed());
    let repairs = repairs(&env).await;
    assert!(
        repairs.iter().any(|(kind, _, _)| kind == "diverged"),
        "the loss was detected: {repairs:?}"
    );
    assert_eq!(
        repairs
            .iter()
            .filter(|(kind, _, _)| kind == "republished")
            .map(|(_, _, n)| n)
            .sum::<i64>(),
        15,
        "exactly the lost events were republished: {repairs:?}"
    );
}

#[tokio::test]
async fn a_repair_that_jetstream_loses_again_is_repaired_again() {
    let mut env = TestEnv::new().await;
    let mut nats = PrivateNats::start();
    let mut settings = env.settings();
    settings.nats_url = nats.url();
    let relay = env.start_with(settings.clone(), &[Component::Relay]).await;
    let js = jetstream_at(&nats.url()).await;
    let actor = env.actor(Uuid::now_v7(), Role::Member);
    env.add_companies(actor, 0..20).await;
    proven_through(&env, &js, 20).await;
    relay.stop().await;
    // A message vanishes; the store is copied as it is now.
    let stream = js.get_stream(env.topology().stream_name()).await.unwrap();
    assert!(stream.delete_message(5).await.unwrap());
    nats.kill();
    let snapshot = nats.dir.join("snapshot");
    copy_dir(&nats.store(), &snapshot);
    nats.restart();
    // The relay repairs it at sequence 21 and proves that too ...
    let _relay = env.start_with(settings, &[Component::Relay]).await;
    proven_through(&env, &js, 21).await;
    // ... and JetStream loses its tail again, the repair with it.
    nats.kill();
    std::fs::remove_dir_all(nats.store()).unwrap();
    std::fs::rename(&snapshot, nats.store()).unwrap();
    nats.restart();
    println!("injected: message 5 deleted, repaired at 21, then the stream rolled back to 20");
    let started = Instant::now();
    eventually(
        Duration::from_secs(30),
        "the stream to hold the store",
        || {
            let (env, js) = (&env, &js);
            async move { stream_holds_the_store(env, js).await.then_some(()) }
        },
    )
    .await;
    println!("repaired again in {:?}", started.elapsed());
    // The stream can hold the store before the second repair is recorded:
    // a republish whose duplicate is still in JetStream's window is
    // confirmed (and recorded) at a later check.
    eventually(
        Duration::from_secs(30),
        "the event to be recorded as republished twice",
        || {
            let env = &env;
            async move { (repairs_of(env, "republished").await == 2).then_some(()) }
        },
    )
    .await;
}

#[tokio::test]
async fn a_store_restored_from_an_older_backup_refills_the_stream_under_a_new_epoch() {
    let mut env = TestEnv::new().await;
    let _running = env.start(&[Component::Relay, Component::Projector]).await;
    let actor = env.actor(Uuid::now_v7(), Role::Member);
    env.add_companies(actor, 0..10).await;
    let js = env.js.clone();
    eventually(Duration::from_secs(20), "the first ten to converge", || {
        converged(&env, &js)
    })
    .await;
    let database = env.database_url.rsplit('/').next().unwrap().to_owned();
    let dump = std::env::temp_dir().join(format!("{database}.dump"));
    pg_tool(
        "pg_dump",
        &["-Fc", "-f", dump.to_str().unwrap(), &env.database_url],
    );
    let lost: Vec<String> = {
        let before: HashSet<String> = env.event_ids_in_store().await.into_iter().collect();
        env.add_companies(actor, 10..20).await;
        eventually(Duration::from_secs(20), "the next ten to converge", || {
            converged(&env, &js)
        })
        .await;
        env.event_ids_in_store()
            .await
            .into_iter()
            .filter(|id| !before.contains(id))
            .collect()
    };

    // The operator restores the backup taken before the last ten.
    env.pool.close().await;
    let admin = crate::helpers::admin_database_url();
    pg_tool(
        "psql",
        &[
            &admin,
            "-c",
            &format!("drop database {database} with (force)"),
        ],
    );
    pg_tool(
        "psql",
        &[&admin, "-c", &format!("create database {database}")],
    );
    pg_tool(
        "pg_restore",
        &[
            "--no-owner",
            "-d",
            &env.database_url,
            dump.to_str().unwrap(),
        ],
    );
    let _ = std::fs::remove_file(&dump);
    env.pool = vcintel_infra::db::connect(&env.database_url, 5)
        .await
        .unwrap();
    println!("injected: event store restored from a dump taken 10 events earlier");
    let started = Instant::now();
    env.add_companies(actor, 100..105).await;
    eventually(
        Duration::from_secs(60),
        "stream and read model to converge",
        || converged(&env, &js),
    )
    .await;
    println!("converged in {:?}", started.elapsed());
    let replayed = replay_stream(&js, &env.topology().stream_name()).await;
    assert_eq!(
        replayed.len(),
        15,
        "the stream holds the store exactly once"
    );
    assert!(
        replayed.iter().all(|(_, _, epoch)| epoch == "2"),
        "{replayed:?}"
    );
    let orphans: Vec<String> =
        sqlx::query_scalar("select event_id::text from stream_orphans order by stream_seq")
            .fetch_all(&env.pool)
            .await
            .unwrap();
    assert_eq!(
        orphans.into_iter().collect::<HashSet<_>>(),
        lost.into_iter().collect::<HashSet<_>>(),
        "the events the restore took back are kept for the operator"
    );
    let companies: i64 = sqlx::query_scalar("select count(*) from companies")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(companies, 15);
}

/// Runs a PostgreSQL client tool (from `PG_BIN` when the scripts set it).
fn pg_tool(name: &str, args: &[&str]) {
    let program = std::env::var("PG_BIN")
        .map(|dir| format!("{dir}/{name}"))
        .unwrap_or_else(|_| name.to_owned());
    let output = std::process::Command::new(&program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn under_the_halt_policy_a_stream_holding_unknown_events_stops_the_relay_until_the_operator_refills(
) {
    let mut env = TestEnv::new().await;
    let mut settings = env.settings();
    settings.stream_on_divergence = vcintel_infra::relay::DivergencePolicy::Halt;
    settings.stall_after_secs = 2;
    settings.health_bind = Some("127.0.0.1:0".parse().unwrap());
    let relay = env.start_with(settings, &[Component::Relay]).await;
    let health = relay.address.clone().unwrap();
    let actor = env.actor(Uuid::now_v7(), Role::Member);
    env.add_companies(actor, 0..5).await;
    proven_through(&env, &env.js.clone(), 5).await;

    // A message of an event this store never had (another deployment's,
    // or one a restore took back).
    let stranger = Uuid::new_v4();
    let foreign = serde_json::json!({
        "specversion": "1.0", "id": stranger, "source": "/elsewhere", "type": "vcintel.company.added.v1",
        "subject": "x", "time": "2026-01-01T00:00:00Z", "datacontenttype": "application/json",
        "data": {}, "workspaceid": "w", "aggregatetype": "company", "aggregateid": "x",
        "sequence": 1, "position": 999999, "eventtype": "company.added", "eventversion": "1"
    });
    env.js
        .publish(
            env.topology().subject_for("w", "company", "company.added"),
            serde_json::to_vec(&foreign).unwrap().into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    env.add_companies(actor, 5..7).await;
    let body = eventually(Duration::from_secs(20), "the relay to halt", || async {
        let response = env
            .http
            .get(format!("{health}/health/ready"))
            .send()
            .await
            .ok()?;
        let body: serde_json::Value = response.json().await.ok()?;
        body["checks"]
            .as_array()?
            .iter()
            .find(|c| {
                c["name"] == "relay" && c["detail"].as_str().unwrap_or("").starts_with("halted")
            })
            .cloned()
    })
    .await;
    assert_eq!(body["ok"], false, "{body}");
    let status = env.vcintel(&["stream", "status"]);
    assert!(status.contains("HALTED"), "{status}");

    let started = Instant::now();
    println!("operator: vcintel stream refill");
    env.vcintel(&["stream", "refill"]);
    let js = env.js.clone();
    eventually(
        Duration::from_secs(30),
        "the refilled stream to hold the store",
        || async {
            let replayed = replay_stream(&js, &env.topology().stream_name()).await;
            (replayed.len() == 7
                && replayed.iter().all(|(_, _, epoch)| epoch == "2")
                && stream_holds_the_store(&env, &js).await)
                .then_some(())
        },
    )
    .await;
    println!("refilled in {:?}", started.elapsed());
    let kept: Vec<Uuid> = sqlx::query_scalar("select event_id from stream_orphans")
        .fetch_all(&env.pool)
        .await
        .unwrap();
    assert_eq!(
        kept,
        vec![stranger],
        "the unknown event is kept for the operator"
    );
    let status = env.vcintel(&["stream", "status"]);
    assert!(
        status.contains("epoch 2") && status.contains("refilled"),
        "{status}"
    );
    assert!(!status.contains("HALTED"), "{status}");
    let projections = env.vcintel(&["projections", "status"]);
    assert!(projections.contains("stream: epoch 2"), "{projections}");
}

#[tokio::test]
async fn a_store_whose_transaction_ids_are_ahead_of_its_cluster_halts_the_relay_with_the_fix() {
    let mut env = TestEnv::new().await;
    // As a pg_dump restored into a younger cluster leaves it: an event
    // written by a transaction this cluster has not reached.
    sqlx::query(
        "insert into events (aggregate_type, aggregate_id, sequence, event_type, event_version,
                             payload, metadata, tx_id)
         values ('probe', 'restored', 1, 'probe.happened', '1', '{\"probe.happened\": {}}',
                 '{\"workspace_id\": \"00000000-0000-7000-8000-000000000001\"}', '4294967396'::xid8)",
    )
    .execute(&env.pool)
    .await
    .unwrap();
    let mut settings = env.settings();
    settings.health_bind = Some("127.0.0.1:0".parse().unwrap());
    let relay = env.start_with(settings.clone(), &[Component::Relay]).await;
    let health = relay.address.clone().unwrap();
    let check = eventually(Duration::from_secs(20), "the relay to halt", || async {
        let response = env
            .http
            .get(format!("{health}/health/ready"))
            .send()
            .await
            .ok()?;
        let body: serde_json::Value = response.json().await.ok()?;
        body["checks"]
            .as_array()?
            .iter()
            .find(|c| c["name"] == "relay" && c["ok"] == false)
            .cloned()
    })
    .await;
    let detail = check["detail"].as_str().unwrap();
    assert!(
        detail.contains("transaction ids are ahead") && detail.contains("pg_resetwal -e 1 -x 1100"),
        "{detail}"
    );
    relay.stop().await;

    // Once the cluster's counter is past the store's (here: the event is
    // gone), the next leader carries on.
    sqlx::query("delete from events where aggregate_id = 'restored'")
        .execute(&env.pool)
        .await
        .unwrap();
    let relay = env.start_with(settings, &[Component::Relay]).await;
    let health = relay.address.clone().unwrap();
    eventually(
        Duration::from_secs(20),
        "the relay to lead again",
        || async {
            let response = env
                .http
                .get(format!("{health}/health/ready"))
                .send()
                .await
                .ok()?;
            (response.status() == reqwest::StatusCode::OK).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn a_projector_meeting_a_hole_fills_it_from_the_store_and_status_says_so() {
    let mut env = TestEnv::new().await;
    let actor = env.actor(Uuid::now_v7(), Role::Member);
    let ids = env.add_companies(actor, 0..3).await;
    env.company_commands()
        .update_details(
            actor,
            ids[1],
            vcintel_domain::company::CompanyChanges {
                name: Some("Renamed".into()),
                ..Default::default()
            },
            None,
            &Default::default(),
        )
        .await
        .unwrap();
    let relay = env.start(&[Component::Relay]).await;
    let js = env.js.clone();
    proven_through(&env, &js, 4).await;
    relay.stop().await;
    // The second company's first version vanishes before any projector
    // read it, and no relay runs to repair it.
    assert!(env.stream().await.delete_message(2).await.unwrap());
    let _projector = env.start(&[Component::Projector]).await;
    eventually(
        Duration::from_secs(20),
        "the read model to match the store",
        || async { read_model_matches_a_fresh_fold(&env).await.ok() },
    )
    .await;
    let status = env.vcintel(&["projections", "status"]);
    assert!(
        status.contains("filled 1 version(s) missing from the stream from the store, 1 time(s)"),
        "{status}"
    );
}

#[tokio::test]
async fn a_projector_never_applies_a_message_whose_event_the_store_lacks() {
    let mut env = TestEnv::new().await;
    let actor = env.actor(Uuid::now_v7(), Role::Member);
    env.add_companies(actor, 0..3).await;
    let relay = env.start(&[Component::Relay]).await;
    let js = env.js.clone();
    proven_through(&env, &js, 3).await;
    relay.stop().await;

    // What a point-in-time recovery leaves until the relay purges the
    // stream: a well-formed message of a company the restored store never
    // had. A copy of a real one, under new ids.
    let mut orphan = env.stream_messages().await[0].clone();
    let (event_id, company_id) = (Uuid::now_v7(), Uuid::now_v7());
    orphan.body["id"] = event_id.to_string().into();
    orphan.body["aggregateid"] = company_id.to_string().into();
    orphan.body["subject"] = company_id.to_string().into();
    orphan.body["data"]["company_id"] = company_id.to_string().into();
    orphan.body["data"]["name"] = "Taken Back".into();
    env.js
        .publish(
            orphan.subject.clone(),
            serde_json::to_vec(&orphan.body).unwrap().into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    println!("published an orphan message: event {event_id}, company {company_id}");

    let _projector = env.start(&[Component::Projector]).await;
    let durable = env.topology().durable_name("companies");
    eventually(
        Duration::from_secs(20),
        "the projector to ack every message",
        || async {
            let mut consumer: async_nats::jetstream::consumer::PullConsumer =
                env.stream().await.get_consumer(&durable).await.ok()?;
            let info = consumer.info().await.ok()?;
            (info.ack_floor.stream_sequence == 4 && info.num_ack_pending == 0).then_some(())
        },
    )
    .await;
    let taken_back: Option<String> = sqlx::query_scalar("select name from companies where id = $1")
        .bind(company_id)
        .fetch_optional(&env.pool)
        .await
        .unwrap();
    assert_eq!(taken_back, None, "the read model shows only stored events");
    read_model_matches_a_fresh_fold(&env).await.unwrap();
}
