//! A caller from another workspace never sees or changes anything, on any
//! route of the served spec (so routes added later are covered too).

use crate::helpers::TestEnv;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// A body each route accepts, so only tenancy decides the answer.
fn body_for(path: &str) -> Value {
    if path.starts_with("/v1/saved-searches") {
        json!({"name": "Stolen search"})
    } else if path.starts_with("/v1/lists") {
        json!({"name": "Stolen list"})
    } else if path.contains("notes") {
        json!({"content": "stolen"})
    } else if path.starts_with("/v1/workspace/members") {
        json!({"role": "viewer"})
    } else if path.starts_with("/v1/workspace/api-keys") {
        json!({"name": "stolen"})
    } else if path == "/v1/workspaces" {
        json!({"name": "Intruder's"})
    } else {
        json!({"name": "Stolen", "website": "stolen.io"})
    }
}

#[tokio::test]
async fn another_workspace_gets_404_on_every_route_that_takes_an_id_or_names_the_workspace() {
    let mut env = TestEnv::new().await;
    let base = env.start_all().await;
    let owner = env.register(&base, "owner@secret.example", "Owner").await;
    let owner_token = owner["access_token"].as_str().unwrap().to_owned();
    let owner_id = owner["user_id"].as_str().unwrap().to_owned();
    let workspace = owner["default_workspace_id"].as_str().unwrap().to_owned();
    let created = env
        .call(
            Method::POST,
            &format!("{base}/v1/companies"),
            Some(&owner_token),
            None,
            Some(&json!({"name": "Secret Co", "website": "secret-co.example"})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let company = created.body["id"].as_str().unwrap().to_owned();
    let key = env
        .call(
            Method::POST,
            &format!("{base}/v1/workspace/api-keys"),
            Some(&owner_token),
            None,
            Some(&json!({"name": "secret key"})),
        )
        .await;
    assert_eq!(key.status, StatusCode::CREATED);
    let key_id = key.body["id"].as_str().unwrap().to_owned();
    let invited = env
        .call(
            Method::POST,
            &format!("{base}/v1/workspace/members"),
            Some(&owner_token),
            None,
            Some(&json!({"email": "invitee@secret.example", "role": "member"})),
        )
        .await;
    assert_eq!(invited.status, StatusCode::ACCEPTED);
    let invitation_id = invited.body["invitation_id"].as_str().unwrap().to_owned();
    let note = env
        .call(
            Method::POST,
            &format!("{base}/v1/companies/{company}/notes"),
            Some(&owner_token),
            None,
            Some(&json!({"content": "Secret note"})),
        )
        .await;
    assert_eq!(note.status, StatusCode::CREATED);
    let note_id = note.body["id"].as_str().unwrap().to_owned();
    let list = env
        .call(
            Method::POST,
            &format!("{base}/v1/lists"),
            Some(&owner_token),
            None,
            Some(&json!({"name": "Secret list"})),
        )
        .await;
    let list_id = list.body["id"].as_str().unwrap().to_owned();
    let put = env
        .call(
            Method::PUT,
            &format!("{base}/v1/lists/{list_id}/companies/{company}"),
            Some(&owner_token),
            None,
            None,
        )
        .await;
    assert_eq!(put.status, StatusCode::OK);
    let search = env
        .call(
            Method::POST,
            &format!("{base}/v1/saved-searches"),
            Some(&owner_token),
            None,
            Some(&json!({"name": "Secret search", "filters": {"text": "secret"}})),
        )
        .await;
    let search_id = search.body["id"].as_str().unwrap().to_owned();
    let job = env
        .call(
            Method::POST,
            &format!("{base}/v1/companies/{company}/enrichments"),
            Some(&owner_token),
            None,
            None,
        )
        .await;
    let job_id = job.body["job_id"].as_str().unwrap().to_owned();
    let job_written = job.header("x-consistency-token").unwrap().to_owned();
    let job_visible = env
        .http
        .get(format!("{base}/v1/enrichment-jobs/{job_id}"))
        .bearer_auth(&owner_token)
        .header("x-consistency-token", job_written)
        .send()
        .await
        .unwrap();
    assert_eq!(job_visible.status(), StatusCode::OK);
    let visible = env
        .call(
            Method::GET,
            &format!("{base}/v1/companies/{company}?min_version=1"),
            Some(&owner_token),
            None,
            None,
        )
        .await;
    assert_eq!(visible.status, StatusCode::OK);

    let intruder = env
        .register(&base, "intruder@elsewhere.example", "Intruder")
        .await;
    let intruder_token = intruder["access_token"].as_str().unwrap().to_owned();

    let spec: Value = env
        .http
        .get(format!("{base}/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut id_routes = 0;
    let mut workspace_routes = 0;
    for (path, operations) in spec["paths"].as_object().unwrap() {
        // Sign-in routes take no ids, and revoke-all would end the intruder's own session.
        if !path.starts_with("/v1/") || path.starts_with("/v1/auth/") {
            continue;
        }
        for (method, operation) in operations.as_object().unwrap() {
            let method: Method = method.to_uppercase().parse().unwrap();
            let url = format!(
                "{base}{}",
                path.replace("{id}", &company)
                    .replace("{user_id}", &owner_id)
                    .replace("{key_id}", &key_id)
                    .replace("{invitation_id}", &invitation_id)
                    .replace("{note_id}", &note_id)
                    .replace("{list_id}", &list_id)
                    .replace("{search_id}", &search_id)
                    .replace("{job_id}", &job_id)
            );
            let takes_workspace = operation["parameters"]
                .as_array()
                .is_some_and(|ps| ps.iter().any(|p| p["name"] == "X-Workspace-Id"));
            let body = (method != Method::GET && method != Method::DELETE).then(|| body_for(path));
            // Once in the intruder's own workspace with the victim's ids,
            // once naming the victim's workspace.
            for (header, must_be_404) in [
                (None, path.contains('{')),
                (Some(workspace.as_str()), takes_workspace),
            ] {
                if header.is_some() && !takes_workspace {
                    continue;
                }
                for if_match in [None, Some("\"1\"")] {
                    let mut request = env
                        .http
                        .request(method.clone(), &url)
                        .bearer_auth(&intruder_token);
                    if let Some(ws) = header {
                        request = request.header("x-workspace-id", ws);
                    }
                    if let Some(body) = &body {
                        request = request.json(body);
                    }
                    if let Some(tag) = if_match {
                        request = request.header("if-match", tag);
                    }
                    let response = request.send().await.unwrap();
                    let status = response.status();
                    let text = response.text().await.unwrap();
                    for secret in [
                        "Secret Co",
                        "owner@secret.example",
                        "secret key",
                        "invitee@",
                    ] {
                        assert!(
                            !text.contains(secret),
                            "{method} {path} leaked {secret}: {text}"
                        );
                    }
                    if must_be_404 {
                        assert_eq!(
                            status,
                            StatusCode::NOT_FOUND,
                            "{method} {path} {header:?}: {text}"
                        );
                        if header.is_some() {
                            workspace_routes += 1;
                        } else {
                            id_routes += 1;
                        }
                    }
                }
            }
        }
    }
    assert!(id_routes >= 42, "probed {id_routes} id routes");
    assert!(
        workspace_routes >= 20,
        "probed {workspace_routes} workspace routes"
    );

    // The owner's data is untouched.
    let company_now = env
        .call(
            Method::GET,
            &format!("{base}/v1/companies/{company}"),
            Some(&owner_token),
            None,
            None,
        )
        .await;
    assert_eq!(company_now.body["name"], "Secret Co");
    assert_eq!(company_now.body["version"], 1);
    let versions: i64 = sqlx::query_scalar(
        "select count(*) from events where aggregate_id in ($1, $2, $3, $4, $5)",
    )
    .bind(&company)
    .bind(&workspace)
    .bind(&note_id)
    .bind(&list_id)
    .bind(&search_id)
    .fetch_one(&env.pool)
    .await
    .unwrap();
    // company.added; workspace.created, member_added, api_key_created,
    // member_invited; note.added; list.created, company_added; saved_search.created
    assert_eq!(versions, 9, "no event was appended by the intruder");
}
