//! `Idempotency-Key`: a retried POST has one effect and gets the first response.

use crate::helpers::TestEnv;
use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::Duration;
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

/// Claims left behind by requests that died without answering: taken over
/// once older than the request timeout, run again only if their command
/// never ran (the command's events mark the key in their transaction).
#[tokio::test]
async fn a_claim_whose_request_died_is_taken_over_and_never_runs_its_command_twice() {
    let mut env = TestEnv::new().await;
    let mut settings = env.settings();
    settings.request_timeout_secs = 1;
    let base = env.start_all_with(settings).await;
    let token = env.token(&env.actor(Uuid::now_v7(), Role::Member));
    let post = |url: String, key: &'static str, body: Value| {
        let (http, token) = (env.http.clone(), token.clone());
        async move {
            http.post(url)
                .bearer_auth(token)
                .header("idempotency-key", key)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let companies = format!("{base}/v1/companies");
    let added = post(
        companies.clone(),
        "add",
        json!({"name": "Died", "website": "died.io"}),
    )
    .await;
    assert_eq!(added.status(), StatusCode::CREATED);
    let location = added.headers()["location"].to_str().unwrap().to_owned();
    let executed: bool = sqlx::query_scalar(
        "select executed_at is not null from idempotency_keys where key = 'add'",
    )
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert!(executed, "the command's events marked the key");

    // The process died after the command ran, before the response was kept.
    sqlx::query(
        "update idempotency_keys set status = null, response_headers = null, response_body = null,
                created_at = now() - interval '1 minute' where key = 'add'",
    )
    .execute(&env.pool)
    .await
    .unwrap();
    let retry = post(
        companies.clone(),
        "add",
        json!({"name": "Died", "website": "died.io"}),
    )
    .await;
    assert_eq!(retry.status(), StatusCode::CONFLICT);
    assert_eq!(retry.headers()["location"], location.as_str());
    let problem: Value = retry.json().await.unwrap();
    assert_eq!(
        problem["type"],
        "urn:vcintel:problem:idempotency-response-lost"
    );
    assert_eq!(company_events(&env).await, 1, "not run twice");

    // A note request whose process died before its command ran: a copy of
    // its claim, unanswered and unmarked.
    let notes = format!("{base}{location}/notes");
    let note = json!({"content": "Met the founders"});
    assert_eq!(
        post(notes.clone(), "note-1", note.clone()).await.status(),
        StatusCode::CREATED
    );
    sqlx::query(
        "insert into idempotency_keys (principal, key, request_hash, created_at)
         select principal, k.key, request_hash, now() - k.age from idempotency_keys,
                (values ('note-stale', interval '1 minute'), ('note-running', interval '0')) as k(key, age)
         where idempotency_keys.key = 'note-1'",
    )
    .execute(&env.pool)
    .await
    .unwrap();
    let running = post(notes.clone(), "note-running", note.clone()).await;
    assert_eq!(
        running.status(),
        StatusCode::CONFLICT,
        "a fresh claim is still running"
    );
    assert!(running.headers().contains_key("retry-after"));
    let taken_over = post(notes.clone(), "note-stale", note.clone()).await;
    assert_eq!(
        taken_over.status(),
        StatusCode::CREATED,
        "a stale claim is taken over"
    );
    let replayed = post(notes, "note-stale", note).await;
    assert_eq!(replayed.headers()["idempotent-replayed"], "true");
    let notes_added: i64 =
        sqlx::query_scalar("select count(*) from events where event_type = 'note.added'")
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert_eq!(notes_added, 2, "note-1 once, note-stale once");
}

/// A client that gives up (disconnects) does not leave its key in
/// progress: the request finishes and its response is kept for the retry.
#[tokio::test]
async fn a_request_whose_client_disconnected_still_finishes_and_its_retry_is_replayed() {
    let mut env = TestEnv::new().await;
    let base = env.start_all().await;
    let token = env.token(&env.actor(Uuid::now_v7(), Role::Member));
    // Appends wait behind this lock, so the client gives up mid-request.
    let mut blocker: sqlx::PgConnection =
        sqlx::Connection::connect(&env.database_url).await.unwrap();
    sqlx::query("begin").execute(&mut blocker).await.unwrap();
    sqlx::query("lock table events in exclusive mode")
        .execute(&mut blocker)
        .await
        .unwrap();
    let gave_up = env
        .http
        .post(format!("{base}/v1/companies"))
        .bearer_auth(&token)
        .header("idempotency-key", "impatient")
        .json(&json!({"name": "Impatient", "website": "impatient.io"}))
        .timeout(Duration::from_millis(500))
        .send()
        .await;
    assert!(gave_up.is_err(), "the client hung up before the answer");
    let claimed: Option<Option<i16>> =
        sqlx::query_scalar("select status from idempotency_keys where key = 'impatient'")
            .fetch_optional(&env.pool)
            .await
            .unwrap();
    assert_eq!(
        claimed,
        Some(None),
        "the key was claimed and is in progress"
    );
    sqlx::query("commit").execute(&mut blocker).await.unwrap();
    let status: Option<i16> = crate::helpers::eventually(
        Duration::from_secs(10),
        "the abandoned request to finish",
        || async {
            sqlx::query_scalar::<_, Option<i16>>(
                "select status from idempotency_keys where key = 'impatient'",
            )
            .fetch_optional(&env.pool)
            .await
            .unwrap()
            .flatten()
            .map(Some)
        },
    )
    .await;
    assert_eq!(status, Some(201));
    let retry = env
        .http
        .post(format!("{base}/v1/companies"))
        .bearer_auth(&token)
        .header("idempotency-key", "impatient")
        .json(&json!({"name": "Impatient", "website": "impatient.io"}))
        .send()
        .await
        .unwrap();
    assert_eq!(retry.status(), StatusCode::CREATED);
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    assert_eq!(company_events(&env).await, 1);
}

/// A request that outlived its claim (taken over by a retry) can neither
/// release nor complete the retry's claim.
#[tokio::test]
async fn a_request_that_outlived_its_claim_cannot_touch_its_successors() {
    use vcintel_infra::idempotency::{self, Claim, StoredResponse};
    let env = TestEnv::new().await;
    let takeover = Duration::from_secs(1);
    let claim = || idempotency::claim(&env.pool, "user:u", "key", b"request", takeover);
    let Claim::Fresh(first) = claim().await.unwrap() else {
        panic!("a new key is fresh")
    };
    assert_eq!(claim().await.unwrap(), Claim::InProgress);
    sqlx::query("update idempotency_keys set created_at = now() - interval '1 minute'")
        .execute(&env.pool)
        .await
        .unwrap();
    let Claim::Fresh(second) = claim().await.unwrap() else {
        panic!("a stale claim whose command never ran is taken over")
    };
    assert_ne!(first, second);
    // The first request wakes up and fails: its release changes nothing.
    idempotency::release(&env.pool, "user:u", "key", first)
        .await
        .unwrap();
    assert_eq!(
        claim().await.unwrap(),
        Claim::InProgress,
        "still the retry's"
    );
    let response = StoredResponse {
        status: 201,
        headers: Value::Null,
        body: Some(b"{}".to_vec()),
    };
    idempotency::complete(&env.pool, "user:u", "key", first, &response)
        .await
        .unwrap();
    assert_eq!(
        claim().await.unwrap(),
        Claim::InProgress,
        "nor its completion"
    );
    idempotency::complete(&env.pool, "user:u", "key", second, &response)
        .await
        .unwrap();
    assert_eq!(claim().await.unwrap(), Claim::Replay(response));
}
