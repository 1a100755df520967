//! Saved searches over HTTP: their filters run as a company search.

use crate::helpers::{eventually, TestEnv};
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::time::Duration;
use uuid::Uuid;
use vcintel_domain::Role;

#[tokio::test]
async fn a_saved_search_runs_its_filters_and_can_be_renamed_and_deleted() {
    let mut env = TestEnv::new().await;
    let base = env.start_all().await;
    let workspace = Uuid::now_v7();
    let token = env.token(&env.actor(workspace, Role::Member));
    for (name, website, sector, stage) in [
        ("Acme Robotics", "acme.io", "Robotics", "seed"),
        ("Bolt Robotics", "bolt.io", "Robotics", "series_b"),
        ("Cedar Health", "cedar.health", "Health", "seed"),
    ] {
        env.call(
            Method::POST,
            &format!("{base}/v1/companies"),
            Some(&token),
            None,
            Some(&json!({"name": name, "website": website, "sector": sector, "stage": stage})),
        )
        .await;
    }
    let created = env
        .call(Method::POST, &format!("{base}/v1/saved-searches"), Some(&token), None,
              Some(&json!({"name": "Seed robotics", "filters": {"sector": " robotics ", "stage": "seed"}})))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    let results = eventually(
        Duration::from_secs(10),
        "the search and companies projected",
        || async {
            let reply = env
                .call(
                    Method::GET,
                    &format!("{base}/v1/saved-searches/{id}/results"),
                    Some(&token),
                    None,
                    None,
                )
                .await;
            (reply.status == StatusCode::OK && !reply.body["items"].as_array()?.is_empty())
                .then_some(reply.body)
        },
    )
    .await;
    let names: Vec<&str> = results["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Acme Robotics"]);
    let shown = env
        .call(
            Method::GET,
            &format!("{base}/v1/saved-searches/{id}"),
            Some(&token),
            None,
            None,
        )
        .await;
    assert_eq!(
        shown.body["filters"]["sector"], "robotics",
        "stored trimmed"
    );
    let unchanged = env
        .http
        .get(format!("{base}/v1/saved-searches/{id}"))
        .bearer_auth(&token)
        .header("if-none-match", shown.header("etag").unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(unchanged.status(), StatusCode::NOT_MODIFIED);

    // Invalid filters name the field; a viewer cannot save.
    let invalid = env
        .call(
            Method::POST,
            &format!("{base}/v1/saved-searches"),
            Some(&token),
            None,
            Some(&json!({"name": "x", "filters": {"min_score": 150}})),
        )
        .await;
    assert_eq!(invalid.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(invalid.body["errors"][0]["field"], "filters.min_score");
    let viewer = env.token(&env.actor(workspace, Role::Viewer));
    let refused = env
        .call(
            Method::POST,
            &format!("{base}/v1/saved-searches"),
            Some(&viewer),
            None,
            Some(&json!({"name": "x"})),
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);

    let renamed = env
        .call(
            Method::PATCH,
            &format!("{base}/v1/saved-searches/{id}"),
            Some(&token),
            None,
            Some(&json!({"name": "Early robotics"})),
        )
        .await;
    assert_eq!(renamed.status, StatusCode::OK);
    eventually(Duration::from_secs(10), "the new name", || async {
        let listed = env
            .call(
                Method::GET,
                &format!("{base}/v1/saved-searches"),
                Some(&viewer),
                None,
                None,
            )
            .await;
        (listed.body["items"][0]["name"] == "Early robotics").then_some(())
    })
    .await;
    let deleted = env
        .call(
            Method::DELETE,
            &format!("{base}/v1/saved-searches/{id}"),
            Some(&token),
            None,
            None,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::OK);
    eventually(Duration::from_secs(10), "the search gone", || async {
        let status = env
            .call(
                Method::GET,
                &format!("{base}/v1/saved-searches/{id}/results"),
                Some(&token),
                None,
                None,
            )
            .await
            .status;
        (status == StatusCode::NOT_FOUND).then_some(())
    })
    .await;
}
