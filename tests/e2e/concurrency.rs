//! Concurrency over HTTP: no lost update, and set rules that hold.

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

#[tokio::test]
async fn fifty_concurrent_adds_of_one_site_in_different_spellings_make_one_company() {
    let mut env = TestEnv::new().await;
    let base = env.start_all().await;
    let token = env.token(&env.actor(Uuid::now_v7(), Role::Member));
    let spellings = [
        "acme.io",
        "https://acme.io",
        "HTTPS://WWW.ACME.IO/",
        "http://www.acme.io",
        "Acme.io/",
    ];
    let url = format!("{base}/v1/companies");
    let bodies: Vec<serde_json::Value> = (0..50)
        .map(|i| json!({"name": format!("Acme {i}"), "website": spellings[i % spellings.len()]}))
        .collect();
    let replies = futures::future::join_all(
        bodies
            .iter()
            .map(|body| env.http.post(&url).bearer_auth(&token).json(body).send()),
    )
    .await;
    let mut created = Vec::new();
    let mut conflicts = Vec::new();
    for reply in replies {
        let reply = reply.unwrap();
        let status = reply.status();
        let location = reply
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_owned());
        let body: serde_json::Value = reply.json().await.unwrap();
        match status {
            StatusCode::CREATED => created.push(body["id"].as_str().unwrap().to_owned()),
            StatusCode::CONFLICT => conflicts.push((body, location)),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(created.len(), 1, "exactly one company");
    assert_eq!(conflicts.len(), 49);
    for (problem, location) in &conflicts {
        assert_eq!(problem["type"], "urn:vcintel:problem:website-taken");
        assert_eq!(
            problem["existing_id"],
            created[0].as_str(),
            "names the existing company"
        );
        assert_eq!(
            location.as_deref(),
            Some(format!("/v1/companies/{}", created[0]).as_str())
        );
    }
    let added: i64 =
        sqlx::query_scalar("select count(*) from events where event_type = 'company.added'")
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert_eq!(added, 1);
}

#[tokio::test]
async fn a_website_is_freed_by_renaming_or_deleting_its_company_and_is_per_workspace() {
    let mut env = TestEnv::new().await;
    let base = env.start_all().await;
    let token = env.token(&env.actor(Uuid::now_v7(), Role::Member));
    let other_workspace = env.token(&env.actor(Uuid::now_v7(), Role::Member));
    let add = |token: String, website: &'static str| {
        let env = &env;
        let url = format!("{base}/v1/companies");
        async move {
            let reply = env
                .http
                .post(url)
                .bearer_auth(token)
                .json(&json!({"name": website, "website": website}))
                .send()
                .await
                .unwrap();
            let status = reply.status();
            (status, reply.json::<serde_json::Value>().await.unwrap())
        }
    };
    let (status, a) = add(token.clone(), "alpha.io").await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, b) = add(token.clone(), "beta.io").await;
    assert_eq!(status, StatusCode::CREATED);
    // Another workspace may track the same site.
    assert_eq!(
        add(other_workspace, "alpha.io").await.0,
        StatusCode::CREATED
    );

    let patch = |id: String, website: &'static str| {
        let env = &env;
        let url = format!("{base}/v1/companies/{id}");
        let token = token.clone();
        async move {
            env.http
                .patch(url)
                .bearer_auth(token)
                .json(&json!({"website": website}))
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    let a_id = a["id"].as_str().unwrap().to_owned();
    let b_id = b["id"].as_str().unwrap().to_owned();
    assert_eq!(
        patch(b_id.clone(), "https://www.alpha.io").await,
        StatusCode::CONFLICT
    );
    assert_eq!(patch(b_id.clone(), "gamma.io").await, StatusCode::OK);
    // beta.io is free again.
    assert_eq!(add(token.clone(), "beta.io").await.0, StatusCode::CREATED);
    // Deleting alpha frees it.
    let deleted = env
        .http
        .delete(format!("{base}/v1/companies/{a_id}"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::OK);
    assert_eq!(add(token.clone(), "alpha.io").await.0, StatusCode::CREATED);
    assert_eq!(add(token.clone(), "gamma.io").await.0, StatusCode::CONFLICT);
}
