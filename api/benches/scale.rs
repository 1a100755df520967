//! Scaling benchmark: prints figures, asserts nothing about speed.
//!
//! One run starts a Postgres and nats-servers of its own and measures five
//! deployments of the same release binary, each on a fresh database and
//! stream (every process separate, as in production):
//! 1. the reference: one API, one relay, one projector; one nats-server;
//!    the primary alone;
//! 2. three API instances, the load spread over them in turn;
//! 3. two projectors sharing each durable consumer;
//! 4. a three-node JetStream cluster, streams in three copies;
//! 5. a streaming replica (`pg_basebackup -R`) serving the reads.
//!
//! Each runs a POST phase (`POST /v1/companies`, CLIENTS loops) and a GET
//! phase (`GET /v1/companies/{id}`), and prints throughput, p99 and CPU
//! per request: the CPU time of every server-side process (the service's,
//! Postgres with its backends and any replica, every nats-server) over the
//! requests served. "Visible" is commit → row in the read model (p50/p99)
//! for the POST phase's companies, under that full load. On two cores the
//! processes share the same two CPUs, so more instances cannot add
//! throughput here; the figures show what each arrangement costs.
//! `BENCH_SECONDS` sets each phase's length (default 10).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../tests/e2e/helpers.rs"]
#[allow(dead_code)]
mod helpers;
#[path = "../../tests/e2e/mail_sink.rs"]
#[allow(dead_code)]
mod mail_sink;
#[allow(dead_code)]
mod support;

use helpers::{KillOnDrop, PrivateNats, PrivatePostgres, TestEnv};
use std::sync::Arc;
use std::time::Duration;
use support::{
    fresh_name, load_phase, percentile, sign_in, spawn_vcintel, wait_for_health, Client, Phase,
    Process,
};
use uuid::Uuid;

/// What scripts/lib.sh deploys (docs/guarantees.md explains the choice).
const NATS_SYNC_INTERVAL: &str = "1s";

fn main() {
    tokio::runtime::Runtime::new().unwrap().block_on(run());
}

fn phase_length() -> Duration {
    std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(Duration::from_secs(10), Duration::from_secs)
}

/// One deployment to measure.
struct Topology {
    label: &'static str,
    apis: usize,
    projectors: usize,
    nats_cluster: bool,
    replica: bool,
}

struct Measured {
    label: &'static str,
    posted: Phase,
    got: Phase,
    visible: (f64, f64),
}

async fn run() {
    let run_for = phase_length();
    let env = TestEnv::new().await;
    let primary = PrivatePostgres::start();
    let nats = PrivateNats::start_syncing_every(NATS_SYNC_INTERVAL);
    let topologies = [
        Topology {
            label: "reference: 1 API, 1 projector",
            apis: 1,
            projectors: 1,
            nats_cluster: false,
            replica: false,
        },
        Topology {
            label: "3 API instances",
            apis: 3,
            projectors: 1,
            nats_cluster: false,
            replica: false,
        },
        Topology {
            label: "2 projectors",
            apis: 1,
            projectors: 2,
            nats_cluster: false,
            replica: false,
        },
        Topology {
            label: "NATS cluster, R3",
            apis: 1,
            projectors: 1,
            nats_cluster: true,
            replica: false,
        },
        Topology {
            label: "read replica",
            apis: 1,
            projectors: 1,
            nats_cluster: false,
            replica: true,
        },
    ];
    println!(
        "scaling benchmark: {} s per phase, {} client loops, {} CPU cores",
        run_for.as_secs(),
        support::CLIENTS,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let mut results = Vec::new();
    for topology in &topologies {
        results.push(measure(&env, &primary, &nats, topology, run_for).await);
    }
    print_table(&results);
}

async fn measure(
    env: &TestEnv,
    primary: &PrivatePostgres,
    single_nats: &PrivateNats,
    topology: &Topology,
    run_for: Duration,
) -> Measured {
    let prefix = format!("SCALE{}", Uuid::now_v7().simple());
    let database = format!("scale_{}", Uuid::now_v7().simple());
    let admin = vcintel_infra::db::connect(&primary.url(), 1).await.unwrap();
    sqlx::query(&format!("create database {database}"))
        .execute(&admin)
        .await
        .unwrap();
    let database_url = helpers::url_with_database(&primary.url(), &database);
    let pool = vcintel_infra::db::connect(&database_url, 2).await.unwrap();
    vcintel_infra::db::migrate(&pool).await.unwrap();

    let cluster = topology
        .nats_cluster
        .then(|| PrivateNats::cluster_syncing_every(3, NATS_SYNC_INTERVAL));
    let nats_url = match &cluster {
        Some(nodes) => PrivateNats::urls(nodes),
        None => single_nats.url(),
    };
    let replica = topology
        .replica
        .then(|| PrivatePostgres::replica_of(primary));
    let replica_url = replica
        .as_ref()
        .map(|r| helpers::url_with_database(&r.url(), &database));

    let mut engines = vec![Process::listening_on(primary.port, "postgres")];
    match &cluster {
        Some(nodes) => {
            for node in nodes {
                engines.push(Process::listening_on(node.port, "nats-server"));
            }
        }
        None => engines.push(Process::listening_on(single_nats.port, "nats-server")),
    }
    if let Some(replica) = &replica {
        engines.push(Process::listening_on(replica.port, "replica"));
    }

    let mut extra: Vec<(&str, &str)> = vec![("VCINTEL_ADMIN_TOKEN", helpers::ADMIN_TOKEN)];
    if let Some(url) = &replica_url {
        extra.push(("VCINTEL_READ_DATABASE_URL", url.as_str()));
    }
    let mut guards = Vec::new();
    let mut servers = engines;
    let mut bases = Vec::new();
    let mut components: Vec<&str> = vec!["relay"];
    components.extend(std::iter::repeat_n("projector", topology.projectors));
    components.extend(std::iter::repeat_n("api", topology.apis));
    for component in components {
        let port = if component == "api" {
            helpers::free_port()
        } else {
            0
        };
        let child = spawn_vcintel(component, port, &database_url, &nats_url, &prefix, &extra);
        servers.push(Process::new(component, child.id()));
        guards.push(KillOnDrop(child));
        if component == "api" {
            bases.push(format!("http://127.0.0.1:{port}"));
        }
    }
    for base in &bases {
        wait_for_health(&env.http, base).await;
    }
    if replica.is_some() {
        wait_for_fit_replica(env, &bases[0]).await;
    }
    let token = sign_in(env, &bases[0]).await;
    let clients: Arc<Vec<Client>> =
        Arc::new(bases.iter().map(|b| Client::new(b, &token)).collect());
    // Measure a working pipeline: a company posted now must reach the read
    // model (relay leading, stream placed, projectors consuming) first.
    let warm_up = clients[0].post(&fresh_name("warm-up")).await;
    visible_after_commit(&pool, &[warm_up]).await;

    let posting = clients.clone();
    let posted = load_phase(&servers, run_for, move |n| {
        let client = posting[n as usize % posting.len()].clone();
        let name = fresh_name("scale");
        async move { Some(client.post(&name).await) }
    })
    .await;
    let visible = visible_after_commit(&pool, &posted.ids).await;
    let ids = Arc::new(posted.ids.clone());
    let getting = clients.clone();
    let got = load_phase(&servers, run_for, move |n| {
        let client = getting[n as usize % getting.len()].clone();
        let id = ids[(n as usize).wrapping_mul(7919) % ids.len()];
        async move {
            client.get(id).await;
            None
        }
    })
    .await;
    println!(
        "{}: POST {:.0}/s p99 {:.1} ms, {:.0} µs CPU/request ({}); GET {:.0}/s p99 {:.1} ms, {:.0} µs CPU/request ({}); visible p50 {:.0} ms p99 {:.0} ms",
        topology.label,
        posted.rate(),
        posted.percentile(0.99),
        posted.cpu_per_request(),
        posted.split(),
        got.rate(),
        got.percentile(0.99),
        got.cpu_per_request(),
        got.split(),
        visible.0,
        visible.1
    );
    drop(guards);
    drop(replica);
    drop(cluster);
    pool.close().await;
    Measured {
        label: topology.label,
        posted,
        got,
        visible,
    }
}

/// Waits until the API's watch serves reads from the replica.
async fn wait_for_fit_replica(env: &TestEnv, base: &str) {
    helpers::eventually(Duration::from_secs(30), "the replica fit", || async {
        let check = env.readiness_check(base, "read_replicas").await?;
        check["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with("1 of 1 serve reads"))
            .then_some(())
    })
    .await;
}

/// Commit → row in the companies read model for `ids`, p50 and p99 in ms
/// (both clocks are Postgres'), once every one is visible.
async fn visible_after_commit(pool: &sqlx::PgPool, ids: &[Uuid]) -> (f64, f64) {
    helpers::eventually(
        Duration::from_secs(300),
        "every company projected",
        || async {
            let projected: i64 =
                sqlx::query_scalar("select count(*) from companies where id = any($1)")
                    .bind(ids)
                    .fetch_one(pool)
                    .await
                    .ok()?;
            (projected as usize == ids.len()).then_some(())
        },
    )
    .await;
    let mut lags: Vec<f64> = sqlx::query_scalar(
        "select extract(epoch from (c.projected_at - e.recorded_at))::float8 * 1000
         from unnest($1::uuid[]) as ids(id)
         join companies c on c.id = ids.id
         join events e on e.aggregate_type = 'company' and e.aggregate_id = ids.id::text
                      and e.sequence = 1",
    )
    .bind(ids)
    .fetch_all(pool)
    .await
    .unwrap();
    lags.sort_by(f64::total_cmp);
    (percentile(&lags, 0.5), percentile(&lags, 0.99))
}

fn print_table(results: &[Measured]) {
    let reference = &results[0];
    println!();
    println!(
        "| deployment | POST/s | POST p99 ms | POST CPU µs/req | GET/s | GET p99 ms | GET CPU µs/req | visible p50/p99 ms |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for m in results {
        println!(
            "| {} | {:.0} ({:.2}×) | {:.1} | {:.0} ({:.2}×) | {:.0} ({:.2}×) | {:.1} | {:.0} ({:.2}×) | {:.0} / {:.0} |",
            m.label,
            m.posted.rate(),
            m.posted.rate() / reference.posted.rate(),
            m.posted.percentile(0.99),
            m.posted.cpu_per_request(),
            m.posted.cpu_per_request() / reference.posted.cpu_per_request(),
            m.got.rate(),
            m.got.rate() / reference.got.rate(),
            m.got.percentile(0.99),
            m.got.cpu_per_request(),
            m.got.cpu_per_request() / reference.got.cpu_per_request(),
            m.visible.0,
            m.visible.1
        );
    }
    println!("(ratios against the reference row, measured in the same run)");
}
