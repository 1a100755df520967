//! The operators' API: read models' health, dead letters retried after a
//! fix, and blue/green rebuilds started over HTTP.

use crate::helpers::{eventually, TestEnv, ADMIN_TOKEN};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::Connection;
use std::time::Duration;
use uuid::Uuid;
use vcintel_domain::Role;

async fn admin(
    env: &TestEnv,
    method: Method,
    url: &str,
    token: Option<&str>,
) -> (StatusCode, Value) {
    let mut request = env.http.request(method, url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

fn read_model<'a>(all: &'a Value, name: &str) -> &'a Value {
    all.as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == name)
        .unwrap_or_else(|| panic!("{name} missing from {all}"))
}

#[tokio::test]
async fn operators_see_read_models_retry_dead_letters_and_rebuild_over_http() {
    let mut env = TestEnv::new().await;
    let base = env.start_all().await;
    let models = format!("{base}/admin/read-models");

    // Only the operator token opens it; a workspace owner's token does not.
    let owner = env.token(&env.actor(Uuid::now_v7(), Role::Owner));
    for token in [
        None,
        Some(owner.as_str()),
        Some("operator-token-but-not-the-right-one"),
    ] {
        let (status, body) = admin(&env, Method::GET, &models, token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(body["status"], 401);
    }
    let (status, all) = admin(&env, Method::GET, &models, Some(ADMIN_TOKEN)).await;
    assert_eq!(status, StatusCode::OK, "{all}");
    assert_eq!(
        all.as_array().unwrap().len(),
        vcintel_projections::READ_MODELS.len()
    );
    assert_eq!(read_model(&all, "companies")["dead_letters"], 0);

    // An event today's code cannot read, as a bad deploy might have written.
    let broken = Uuid::now_v7();
    let workspace = Uuid::now_v7();
    sqlx::query(
        "insert into events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         values ('company', $1, 1, 'company.added', '1', '{\"company.added\": {\"name\": 42}}', $2)",
    )
    .bind(broken.to_string())
    .bind(json!({"workspace_id": workspace.to_string()}))
    .execute(&env.pool)
    .await
    .unwrap();
    let parked = eventually(Duration::from_secs(30), "the event parked", || async {
        let (_, all) = admin(&env, Method::GET, &models, Some(ADMIN_TOKEN)).await;
        let companies = read_model(&all, "companies").clone();
        (companies["dead_letters"] == 1).then_some(companies)
    })
    .await;
    let failure = &parked["last_failure"];
    assert!(
        failure["event"]
            .as_str()
            .unwrap()
            .contains(&broken.to_string())
            && failure["error"]
                .as_str()
                .unwrap()
                .contains("cannot be decoded"),
        "{parked}"
    );

    let (status, letters) = admin(
        &env,
        Method::GET,
        &format!("{base}/admin/dead-letters"),
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{letters}");
    assert!(
        letters
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["letter"]["projection"] == "companies"
                && l["letter"]["aggregate_id"] == broken.to_string()
                && l["letter"]["error"]
                    .as_str()
                    .unwrap()
                    .contains("cannot be decoded")),
        "{letters}"
    );

    // Fix the cause (here: the stored event), then retry over HTTP.
    sqlx::query("update events set payload = $2 where aggregate_id = $1")
        .bind(broken.to_string())
        .bind(json!({"company.added": {
            "company_id": broken, "workspace_id": workspace, "added_by": Uuid::now_v7(),
            "name": "Fixed", "website": "fixed.example", "sector": null, "stage": null, "location": null}}))
        .execute(&env.pool)
        .await
        .unwrap();
    let (status, retried) = admin(
        &env,
        Method::POST,
        &format!("{base}/admin/dead-letters/companies/retry"),
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{retried}");
    assert_eq!(retried["retried"], 1);
    let reader = env.token(&env.actor(workspace, Role::Viewer));
    eventually(
        Duration::from_secs(20),
        "the fixed company projected",
        || async {
            let (status, body) = env
                .get_json(&format!("{base}/v1/companies/{broken}"), &reader)
                .await;
            (status == StatusCode::OK && body["name"] == "Fixed").then_some(())
        },
    )
    .await;
    let (_, all) = admin(&env, Method::GET, &models, Some(ADMIN_TOKEN)).await;
    assert_eq!(read_model(&all, "companies")["dead_letters"], 0);

    // A rebuild started over HTTP runs in the background and is followed
    // through the same listing.
    let (status, body) = admin(
        &env,
        Method::POST,
        &format!("{models}/compnies/rebuild"),
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    // While another process holds the rebuild of a read model, starting it
    // again is refused, not queued.
    let mut other = sqlx::PgConnection::connect(&env.database_url)
        .await
        .unwrap();
    sqlx::query("select pg_advisory_lock(x'56435242'::int, hashtext('notes'))")
        .execute(&mut other)
        .await
        .unwrap();
    let (status, body) = admin(
        &env,
        Method::POST,
        &format!("{models}/notes/rebuild"),
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("already running"),
        "{body}"
    );
    other.close().await.unwrap();

    sqlx::query("update companies set name = 'stale'")
        .execute(&env.pool)
        .await
        .unwrap();
    let (status, body) = admin(
        &env,
        Method::POST,
        &format!("{models}/companies/rebuild"),
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["name"], "companies");
    let rebuild = eventually(
        Duration::from_secs(30),
        "the rebuild swapped in",
        || async {
            let (_, all) = admin(&env, Method::GET, &models, Some(ADMIN_TOKEN)).await;
            let rebuild = read_model(&all, "companies")["rebuild"].clone();
            (rebuild["state"] == "swapped" && rebuild["active"] == false).then_some(rebuild)
        },
    )
    .await;
    assert_eq!(rebuild["replayed"], rebuild["total"], "{rebuild}");
    assert_eq!(rebuild["replayed"], 1, "{rebuild}");
    // /metrics shows the same progress.
    let metrics = env
        .http
        .get(format!("{base}/metrics"))
        .bearer_auth(crate::helpers::ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "vcintel_rebuild_progress_ratio{read_model=\"companies\"} 1",
        "vcintel_rebuild_running{read_model=\"companies\"} 0",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in {metrics}");
    }
    let (_, body) = env
        .get_json(&format!("{base}/v1/companies/{broken}"), &reader)
        .await;
    assert_eq!(body["name"], "Fixed");
}
