//! Liveness and readiness.

use crate::helpers::{eventually, TestEnv};
use reqwest::StatusCode;
use serde_json::Value;
use std::time::Duration;
use uuid::Uuid;
use vcintel_api::Component;
use vcintel_domain::Role;

#[tokio::test]
async fn readiness_names_the_lagging_component_and_recovers_when_it_catches_up() {
    let mut env = TestEnv::new().await;
    let mut settings = env.settings();
    settings.ready_max_lag = 0;
    let api = env.start_with(settings, &[Component::Api]).await;
    let base = api.address.clone().unwrap();
    env.add_companies(env.actor(Uuid::now_v7(), Role::Member), 0..1)
        .await;

    let live = env.http.get(format!("{base}/health")).send().await.unwrap();
    assert_eq!(live.status(), StatusCode::OK);
    let response = env
        .http
        .get(format!("{base}/health/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = response.json().await.unwrap();
    let failing: Vec<&str> = body["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == false)
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(failing.contains(&"relay_lag"), "{body}");
    assert!(
        !failing.contains(&"postgres") && !failing.contains(&"nats"),
        "{body}"
    );

    let _workers = env.start(&[Component::Relay, Component::Projector]).await;
    eventually(Duration::from_secs(20), "readiness", || async {
        let response = env
            .http
            .get(format!("{base}/health/ready"))
            .send()
            .await
            .ok()?;
        (response.status() == StatusCode::OK).then_some(())
    })
    .await;
    api.stop().await;
}
