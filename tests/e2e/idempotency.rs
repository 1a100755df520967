//! `Idempotency-Key`: a retried POST has one effect and gets the first response.

use crate::helpers::TestEnv;
use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;
use vcintel_domain::Role;

async fn company_events(env: &TestEnv) -> i64 {
    sqlx::query_scalar("select count(*) from events where event_type = 'company.added'")
        .fetch_one(&env.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_retry_with_the_same_key_replays_the_first_response_and_appends_nothing() {
    let mut env = TestEnv::new().await;
    let base = env.start_all().await;
    let token = env.token(&env.actor(Uuid::now_v7(), Role::Member));
    let post = |key: &'static str, body: Value| {
        let env = &env;
        let url = format!("{base}/v1/companies");
        let token = token.clone();
        async move {
            env.http
                .post(url)
                .bearer_auth(token)
                .header("idempotency-key", key)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let body = json!({"name": "Once", "website": "once.io"});
    let first = post("key-1", body.clone()).await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let location = first.headers()["location"].clone();
    let etag = first.headers()["etag"].clone();
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first_body: Value = first.json().await.unwrap();

    let retry = post("key-1", body.clone()).await;
    assert_eq!(retry.status(), StatusCode::CREATED);
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    assert_eq!(retry.headers()["location"], location);
    assert_eq!(retry.headers()["etag"], etag);
    assert_eq!(retry.json::<Value>().await.unwrap(), first_body);
    assert_eq!(company_events(&env).await, 1);

    // The same key with another request is refused, naming the header.
    let other = post("key-1", json!({"name": "Twice", "website": "twice.io"})).await;
    assert_eq!(other.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let problem: Value = other.json().await.unwrap();
    assert_eq!(problem["errors"][0]["field"], "Idempotency-Key");

    // Keys belong to their caller: someone else's "key-1" is a new request.
    let stranger = env.token(&env.actor(Uuid::now_v7(), Role::Member));
    let theirs = env
        .http
        .post(format!("{base}/v1/companies"))
        .bearer_auth(stranger)
        .header("idempotency-key", "key-1")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(theirs.status(), StatusCode::CREATED);
    assert!(theirs.headers().get("idempotent-replayed").is_none());

    // A client error is remembered too: its retry gets the same 422.
    let invalid = json!({"name": "", "website": "x"});
    let bad = post("key-2", invalid.clone()).await;
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let bad_again = post("key-2", invalid).await;
    assert_eq!(bad_again.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad_again.headers()["idempotent-replayed"], "true");

    // A malformed key is a 400 naming the header.
    let malformed = post("has spaces", body).await;
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
    assert_eq!(company_events(&env).await, 2);
}

#[tokio::test]
async fn concurrent_requests_with_one_key_have_one_effect() {
    let mut env = TestEnv::new().await;
    let base = env.start_all().await;
    let token = env.token(&env.actor(Uuid::now_v7(), Role::Member));
    let url = format!("{base}/v1/companies");
    let body = json!({"name": "Racy", "website": "racy.io"});
    let replies = join_all((0..20).map(|_| {
        env.http
            .post(&url)
            .bearer_auth(&token)
            .header("idempotency-key", "same-key")
            .json(&body)
            .send()
    }))
    .await;
    let mut ids = Vec::new();
    for reply in replies {
        let reply = reply.unwrap();
        match reply.status() {
            StatusCode::CREATED => ids.push(reply.json::<Value>().await.unwrap()["id"].clone()),
            StatusCode::CONFLICT => {
                assert!(reply.headers().contains_key("retry-after"));
                let problem: Value = reply.json().await.unwrap();
                assert_eq!(
                    problem["type"],
                    "urn:vcintel:problem:idempotency-key-in-use"
                );
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!(!ids.is_empty());
    assert!(
        ids.iter().all(|id| *id == ids[0]),
        "every 201 names the one company"
    );
    assert_eq!(company_events(&env).await, 1);
}

#[tokio::test]
async fn a_response_holding_a_secret_is_never_replayed() {
    let mut env = TestEnv::new().await;
    let base = env.start_all().await;
    let tokens = env.register(&base, "keys@fund.example", "Keys").await;
    let access = tokens["access_token"].as_str().unwrap();
    let create = || {
        env.http
            .post(format!("{base}/v1/workspace/api-keys"))
            .bearer_auth(access)
            .header("idempotency-key", "new-key")
            .json(&json!({"name": "ci"}))
            .send()
    };
    assert_eq!(create().await.unwrap().status(), StatusCode::CREATED);
    let retry = create().await.unwrap();
    assert_eq!(retry.status(), StatusCode::CONFLICT);
    let stored: Vec<Option<Vec<u8>>> =
        sqlx::query_scalar("select response_body from idempotency_keys")
            .fetch_all(&env.pool)
            .await
            .unwrap();
    assert_eq!(stored, vec![None], "the key's secret is not stored");
    let keys: i64 = sqlx::query_scalar(
        "select count(*) from events where event_type = 'workspace.api_key_created'",
    )
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!(keys, 1);
}
