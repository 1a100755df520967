//! Beyond one machine: N of every process (three API instances, a relay
//! leader with a standby, two projectors sharing each durable consumer,
//! two enrichers) on a three-node JetStream cluster, under load, while
//! nodes are killed. No acknowledged command is lost, and the stream and
//! the read models converge to the store. Each test prints what it
//! injected and how long convergence took.

use crate::crash::until_converged;
use crate::helpers::{
    eventually, free_port, jetstream_at, wait_until_answering, KillOnDrop, PrivateNats, TestEnv,
    ADMIN_TOKEN,
};
use crate::outage::{answers_through_faults, assert_each_stored_once, load};
use std::time::{Duration, Instant};
use uuid::Uuid;
use vcintel_domain::Role;
use vcintel_infra::stream::Placement;

/// The events stream's placement, once it can be read.
async fn placement(env: &TestEnv) -> Option<Placement> {
    tokio::time::timeout(
        Duration::from_secs(2),
        vcintel_infra::stream::placement(&env.js, &env.topology()),
    )
    .await
    .ok()?
    .ok()
}

/// Waits until every copy of the stream is back and caught up; how long.
async fn until_complete(env: &TestEnv, what: &str) -> Duration {
    let started = Instant::now();
    let complete = eventually(Duration::from_secs(30), what, || async {
        placement(env).await.filter(Placement::complete)
    })
    .await;
    println!(
        "{what} after {:?}: {}",
        started.elapsed(),
        complete.describe()
    );
    started.elapsed()
}

fn node_named<'a>(nodes: &'a mut [PrivateNats], name: &str) -> &'a mut PrivateNats {
    nodes
        .iter_mut()
        .find(|node| node.name() == name)
        .unwrap_or_else(|| panic!("no node named {name}"))
}

#[tokio::test]
async fn every_process_runs_several_times_on_a_three_node_cluster_that_loses_a_node_and_its_stream_leader(
) {
    let mut env = TestEnv::new().await;
    let mut nodes = PrivateNats::cluster(3);
    let nats_url = PrivateNats::urls(&nodes);
    env.js = jetstream_at(&nats_url).await;
    let relay_metrics = free_port();
    let relay_metrics_bind = format!("127.0.0.1:{relay_metrics}");
    let common: Vec<(&str, &str)> = vec![
        ("NATS_URL", nats_url.as_str()),
        ("VCINTEL_RELAY_LEASE_SECS", "2"),
        ("VCINTEL_ADMIN_TOKEN", ADMIN_TOKEN),
    ];
    let mut processes = Vec::new();
    let mut bases = Vec::new();
    for _ in 0..3 {
        let port = free_port();
        processes.push(KillOnDrop(env.spawn_process_at("api", port, &common)));
        bases.push(format!("http://127.0.0.1:{port}"));
    }
    // The first relay answers /metrics; the second waits as its standby.
    let mut with_metrics = common.clone();
    with_metrics.push(("VCINTEL_METRICS_BIND", relay_metrics_bind.as_str()));
    processes.push(KillOnDrop(env.spawn_process_at("relay", 0, &with_metrics)));
    for component in ["relay", "enricher", "enricher"] {
        processes.push(KillOnDrop(env.spawn_process_at(component, 0, &common)));
    }
    // Two projectors share each durable consumer; each tells what it applied.
    let projector_metrics: Vec<String> = (0..2)
        .map(|_| format!("127.0.0.1:{}", free_port()))
        .collect();
    for bind in &projector_metrics {
        let mut with_metrics = common.clone();
        with_metrics.push(("VCINTEL_METRICS_BIND", bind.as_str()));
        processes.push(KillOnDrop(env.spawn_process_at(
            "projector",
            0,
            &with_metrics,
        )));
    }
    for base in &bases {
        wait_until_answering(&env.http, base).await;
    }
    until_complete(&env, "the stream placed on three servers").await;
    let placed = placement(&env).await.unwrap();
    assert_eq!(
        placed.configured_replicas, 3,
        "R3 by default on three nodes"
    );
    assert_eq!(placed.followers.len(), 2, "{}", placed.describe());

    let token = env.token(&env.actor(Uuid::now_v7(), Role::Member));
    let clients = load(&env, &bases, &token, 6, Duration::from_secs(10));
    let started = Instant::now();

    // A follower first, then back; then the leader itself.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before = placement(&env).await.expect("placement");
    let follower = before.followers[0].server.clone();
    node_named(&mut nodes, &follower).kill();
    println!(
        "injected: kill -9 nats node {follower} (a follower) at {:?}",
        started.elapsed()
    );
    let seen = eventually(Duration::from_secs(20), "the node seen offline", || async {
        placement(&env)
            .await
            .filter(|p| p.writable() && !p.complete())
    })
    .await;
    println!("placement without it: {}", seen.describe());
    // The API's own connection may be moving off the dead node: its
    // readiness names the placement once it is through.
    let stream_check = eventually(
        Duration::from_secs(15),
        "readiness to show the copies",
        || async {
            env.readiness_check(&bases[0], "stream").await.filter(|c| {
                c["detail"]
                    .as_str()
                    .is_some_and(|d| d.starts_with("R3 on vcintel-test: leader n"))
            })
        },
    )
    .await;
    println!("readiness: {}", stream_check["detail"]);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    node_named(&mut nodes, &follower).restart();
    println!("restarted {follower} at {:?}", started.elapsed());
    until_complete(&env, "the stream whole again").await;

    let leader = placement(&env).await.unwrap().leader.expect("a leader");
    node_named(&mut nodes, &leader).kill();
    println!(
        "injected: kill -9 nats node {leader} (the stream leader) at {:?}",
        started.elapsed()
    );
    let elected = Instant::now();
    let new_leader = eventually(Duration::from_secs(30), "a new stream leader", || async {
        placement(&env)
            .await
            .and_then(|p| p.leader.filter(|l| *l != leader))
    })
    .await;
    println!("{new_leader} leads after {:?}", elected.elapsed());
    tokio::time::sleep(Duration::from_millis(1000)).await;
    node_named(&mut nodes, &leader).restart();
    println!("restarted {leader} at {:?}", started.elapsed());

    let answers = answers_through_faults(clients).await;
    assert_each_stored_once(&env.pool, &answers).await;
    until_complete(&env, "the stream whole after the leader came back").await;
    let converged_in = until_converged(&env, Duration::from_secs(60)).await;
    println!(
        "converged {converged_in:?} after the last acknowledgement ({:?} after the first kill), {} commands",
        started.elapsed(),
        answers.len()
    );

    // What the operator's scraper sees of the copies (the relay's own
    // connection judges them, so give it its moment too).
    let metrics = eventually(
        Duration::from_secs(15),
        "/metrics to show 3 of 3",
        || async {
            let text = env
                .http
                .get(format!("http://{relay_metrics_bind}/metrics"))
                .send()
                .await
                .ok()?
                .text()
                .await
                .ok()?;
            text.lines()
                .any(|l| l == "vcintel_stream_replicas_current 3")
                .then_some(text)
        },
    )
    .await;
    for line in [
        "vcintel_stream_replicas_configured 3",
        "vcintel_stream_has_leader 1",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in /metrics");
    }
    for bind in &projector_metrics {
        let text = env
            .http
            .get(format!("http://{bind}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let applied: f64 = text
            .lines()
            .filter(|l| {
                l.starts_with("vcintel_projection_events_applied_total{")
                    && l.contains("read_model=\"companies\"")
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        println!("projector at {bind} applied {applied} company events");
        assert!(applied > 0.0, "both projectors share the work");
    }
    drop(processes);
}
