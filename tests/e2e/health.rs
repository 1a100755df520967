//! Liveness and readiness: an API instance is ready when it can serve; a
//! process running a stalled relay or projection is not, and says which.

use crate::helpers::{eventually, TestEnv};
use reqwest::StatusCode;
use serde_json::Value;
use sqlx::Connection;
use std::time::{Duration, Instant};
use uuid::Uuid;
use vcintel_api::Component;
use vcintel_domain::Role;

async fn readiness(env: &TestEnv, base: &str) -> (StatusCode, Value) {
    let response = env
        .http
        .get(format!("{base}/health/ready"))
        .bearer_auth(crate::helpers::ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

fn check<'a>(body: &'a Value, name: &str) -> &'a Value {
    body["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name}: {body}"))
}

#[tokio::test]
async fn an_api_instance_stays_ready_while_the_relay_and_projections_lag_and_reports_their_lag() {
    let mut env = TestEnv::new().await;
    let api = env.start(&[Component::Api]).await;
    let base = api.address.clone().unwrap();
    env.add_companies(env.actor(Uuid::now_v7(), Role::Member), 0..3)
        .await;

    let live = env.http.get(format!("{base}/health")).send().await.unwrap();
    assert_eq!(live.status(), StatusCode::OK);
    let (status, body) = readiness(&env, &base).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["runs"], serde_json::json!(["api"]));
    let relay = check(&body, "relay");
    assert_eq!(relay["ok"], true, "{body}");
    assert_eq!(relay["lag"], 3, "the lag is reported: {body}");
    assert!(relay["oldest_waiting_seconds"].as_f64().is_some(), "{body}");
    assert_eq!(check(&body, "postgres")["ok"], true);

    let _workers = env.start(&[Component::Relay, Component::Projector]).await;
    eventually(Duration::from_secs(20), "the relay to catch up", || async {
        let (_, body) = readiness(&env, &base).await;
        (check(&body, "relay")["lag"] == 0).then_some(())
    })
    .await;
    api.stop().await;
}

#[tokio::test]
async fn a_process_whose_relay_or_projection_stalls_is_not_ready_until_it_moves_again() {
    let mut env = TestEnv::new().await;
    let mut settings = env.settings();
    settings.stall_after_secs = 2;
    settings.health_bind = Some("127.0.0.1:0".parse().unwrap());
    let workers = env
        .start_with(settings.clone(), &[Component::Relay, Component::Projector])
        .await;
    let health = workers
        .address
        .clone()
        .expect("the workers' health address");
    let api = env.start_with(settings, &[Component::Api]).await;
    let api_base = api.address.clone().unwrap();
    let actor = env.actor(Uuid::now_v7(), Role::Member);
    env.add_companies(actor, 0..2).await;
    eventually(
        Duration::from_secs(20),
        "the workers to be ready",
        || async {
            let (status, body) = readiness(&env, &health).await;
            (status == StatusCode::OK && check(&body, "projection:companies")["lag"] == 0)
                .then_some(())
        },
    )
    .await;

    // The companies read model cannot be written: its projection stalls.
    let mut blocker: sqlx::PgConnection = sqlx::PgConnection::connect(&env.database_url)
        .await
        .unwrap();
    sqlx::query("begin").execute(&mut blocker).await.unwrap();
    sqlx::query("lock table companies in exclusive mode")
        .execute(&mut blocker)
        .await
        .unwrap();
    env.add_companies(actor, 2..4).await;
    let blocked = Instant::now();
    let body = eventually(
        Duration::from_secs(20),
        "the stall to be reported",
        || async {
            let (status, body) = readiness(&env, &health).await;
            (status == StatusCode::SERVICE_UNAVAILABLE).then_some(body)
        },
    )
    .await;
    println!("stall reported {:?} after it began", blocked.elapsed());
    let companies = check(&body, "projection:companies");
    assert_eq!(companies["ok"], false, "{body}");
    assert_eq!(companies["stalled"], true, "{body}");
    assert!(companies["lag"].as_i64().unwrap() >= 1, "{body}");
    assert_eq!(
        check(&body, "projection:notes")["ok"],
        true,
        "only the stalled one: {body}"
    );
    assert_eq!(check(&body, "relay")["ok"], true, "{body}");
    // The API instance serves on, reporting the lag without failing.
    let (status, api_body) = readiness(&env, &api_base).await;
    assert_eq!(status, StatusCode::OK, "{api_body}");
    sqlx::query("commit").execute(&mut blocker).await.unwrap();
    eventually(Duration::from_secs(20), "readiness to recover", || async {
        (readiness(&env, &health).await.0 == StatusCode::OK).then_some(())
    })
    .await;

    // The relay cannot save its checkpoint: it stalls with events waiting.
    sqlx::query("begin").execute(&mut blocker).await.unwrap();
    sqlx::query("select * from relay_checkpoints for update")
        .execute(&mut blocker)
        .await
        .unwrap();
    env.add_companies(actor, 4..6).await;
    let body = eventually(
        Duration::from_secs(20),
        "the relay stall to be reported",
        || async {
            let (status, body) = readiness(&env, &health).await;
            (status == StatusCode::SERVICE_UNAVAILABLE && check(&body, "relay")["stalled"] == true)
                .then_some(body)
        },
    )
    .await;
    assert_eq!(check(&body, "relay")["ok"], false, "{body}");
    let (status, api_body) = readiness(&env, &api_base).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the API instance is not failed by the relay: {api_body}"
    );
    assert_eq!(check(&api_body, "relay")["stalled"], true, "{api_body}");
    sqlx::query("commit").execute(&mut blocker).await.unwrap();
    eventually(Duration::from_secs(30), "readiness to recover", || async {
        (readiness(&env, &health).await.0 == StatusCode::OK).then_some(())
    })
    .await;
    workers.stop().await;
    api.stop().await;
}
