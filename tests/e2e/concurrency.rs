//! Optimistic concurrency over HTTP: no lost update.

use crate::helpers::TestEnv;
use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;
use vcintel_domain::Role;

async fn add_company(env: &TestEnv, base: &str, token: &str) -> String {
    let created: Value = env
        .post_json(
            &format!("{base}/v1/companies"),
            token,
            &json!({"name": "Contended", "website": "contended.io"}),
        )
        .await
        .1;
    created["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn thirty_two_concurrent_patches_with_if_match_have_exactly_one_winner() {
    let mut env = TestEnv::new().await;
    let base = env.start_all().await;
    let token = env.token(&env.actor(Uuid::now_v7(), Role::Member));
    let id = add_company(&env, &base, &token).await;

    let responses = join_all((0..32).map(|i| {
        env.http
            .patch(format!("{base}/v1/companies/{id}"))
            .bearer_auth(&token)
            .header("if-match", "\"1\"")
            .json(&json!({"name": format!("Writer {i}")}))
            .send()
    }))
    .await;
    let statuses: Vec<StatusCode> = responses.into_iter().map(|r| r.unwrap().status()).collect();
    let winners = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    assert_eq!(winners, 1, "{statuses:?}");
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK
            || *s == StatusCode::PRECONDITION_FAILED
            || *s == StatusCode::CONFLICT),
        "{statuses:?}"
    );
    let events: i64 = sqlx::query_scalar("select count(*) from events where aggregate_id = $1")
        .bind(&id)
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(events, 2, "one add, one update");
}

#[tokio::test]
async fn thirty_two_concurrent_blind_patches_lose_no_acknowledged_update() {
    let mut env = TestEnv::new().await;
    let base = env.start_all().await;
    let token = env.token(&env.actor(Uuid::now_v7(), Role::Member));
    let id = add_company(&env, &base, &token).await;

    let responses = join_all((0..32).map(|i| {
        let http = env.http.clone();
        let url = format!("{base}/v1/companies/{id}");
        let token = token.clone();
        async move {
            let response = http
                .patch(url)
                .bearer_auth(token)
                .json(&json!({"name": format!("Writer {i}")}))
                .send()
                .await
                .unwrap();
            let status = response.status();
            let body: Value = response.json().await.unwrap();
            (i, status, body)
        }
    }))
    .await;
    let mut acknowledged: Vec<(u64, String)> = Vec::new();
    for (i, status, body) in &responses {
        match *status {
            StatusCode::OK => {
                acknowledged.push((body["version"].as_u64().unwrap(), format!("Writer {i}")))
            }
            StatusCode::CONFLICT => {}
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert!(!acknowledged.is_empty());
    // Every acknowledged update is an event at the version it was told, with its name.
    let stored: Vec<(i64, Value)> = sqlx::query_as(
        "select sequence, payload::jsonb from events where aggregate_id = $1 and sequence > 1 order by sequence",
    )
    .bind(&id)
    .fetch_all(&env.pool)
    .await
    .unwrap();
    assert_eq!(
        stored.len(),
        acknowledged.len(),
        "one event per 200, none per 409"
    );
    for (version, name) in &acknowledged {
        let (_, payload) = stored
            .iter()
            .find(|(seq, _)| *seq as u64 == *version)
            .unwrap_or_else(|| panic!("no event at version {version}"));
        assert_eq!(payload["company.details_updated"]["name"], name.as_str());
    }
    // The read model ends at the last acknowledged update.
    let (last_version, last_name) = acknowledged.iter().max().unwrap();
    let company: Value = env
        .get_json(
            &format!("{base}/v1/companies/{id}?min_version={last_version}"),
            &token,
        )
        .await
        .1;
    assert_eq!(company["name"], last_name.as_str());
    assert_eq!(company["version"].as_u64(), Some(*last_version));
}
