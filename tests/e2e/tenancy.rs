//! A token for another workspace never sees or changes a company.

use crate::helpers::TestEnv;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;
use vcintel_domain::Role;

#[tokio::test]
async fn another_workspace_gets_404_on_every_route_that_takes_an_id_and_sees_nothing_in_lists() {
    let mut env = TestEnv::new().await;
    let base = env.start_all().await;
    let owner_token = env.token(&env.actor(Uuid::now_v7(), Role::Owner));
    let intruder_token = env.token(&env.actor(Uuid::now_v7(), Role::Owner));
    let created: Value = env
        .post_json(
            &format!("{base}/v1/companies"),
            &owner_token,
            &json!({"name": "Secret Co", "website": "secret.co"}),
        )
        .await
        .1;
    let id = created["id"].as_str().unwrap();
    let (visible_status, _) = env
        .get_json(
            &format!("{base}/v1/companies/{id}?min_version=1"),
            &owner_token,
        )
        .await;
    assert_eq!(visible_status, StatusCode::OK);

    // Every route in the spec, so routes added later are covered too.
    let spec: Value = env
        .http
        .get(format!("{base}/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut probed = 0;
    for (path, operations) in spec["paths"].as_object().unwrap() {
        if !path.starts_with("/v1/") {
            continue;
        }
        for method in operations.as_object().unwrap().keys() {
            let method: Method = method.to_uppercase().parse().unwrap();
            let url = format!("{base}{}", path.replace("{id}", id));
            for if_match in [None, Some("\"1\"")] {
                let mut request = env
                    .http
                    .request(method.clone(), &url)
                    .bearer_auth(&intruder_token);
                if method != Method::GET && method != Method::DELETE {
                    request = request.json(&json!({"name": "Stolen", "website": "stolen.io"}));
                }
                if let Some(tag) = if_match {
                    request = request.header("if-match", tag);
                }
                let response = request.send().await.unwrap();
                let status = response.status();
                let body = response.text().await.unwrap();
                assert!(
                    !body.contains("Secret Co"),
                    "{method} {path} leaked data: {body}"
                );
                if path.contains("{id}") {
                    assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {body}");
                    probed += 1;
                }
            }
        }
    }
    assert!(probed >= 6, "probed {probed} id routes");

    // The owner's company is untouched.
    let company: Value = env
        .get_json(&format!("{base}/v1/companies/{id}"), &owner_token)
        .await
        .1;
    assert_eq!(company["name"], "Secret Co");
    assert_eq!(company["version"], 1);
    let versions: i64 =
        sqlx::query_scalar("select max(sequence) from events where aggregate_id = $1")
            .bind(id)
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert_eq!(versions, 1, "no event was appended by the intruder");
}
