//! The HTTP surface end to end: command → event store → JetStream → read model → query.

use crate::helpers::{eventually, TestEnv};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::time::Duration;
use uuid::Uuid;
use vcintel_domain::Role;

#[tokio::test]
async fn a_company_added_over_http_is_stored_published_and_queryable() {
    let mut env = TestEnv::new().await;
    let base = env.start_all().await;
    let workspace = Uuid::now_v7();
    let actor = env.actor(workspace, Role::Member);
    let token = env.token(&actor);

    let response = env
        .http
        .post(format!("{base}/v1/companies"))
        .bearer_auth(&token)
        .json(&json!({"name": "Acme Robotics", "website": "HTTPS://www.Acme.io/", "sector": "Robotics", "stage": "seed", "location": "Berlin"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    assert!(response.headers().contains_key("x-request-id"));
    assert_eq!(response.headers()["etag"], "\"1\"");
    let created: Value = response.json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["version"], 1);

    // In the event store, with workspace and actor in its metadata.
    let (event_id, event_type, metadata): (String, String, Value) = sqlx::query_as(
        "select event_id::text, event_type, metadata::jsonb from events where aggregate_id = $1",
    )
    .bind(&id)
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!(event_type, "company.added");
    assert_eq!(metadata["workspace_id"], workspace.to_string());
    assert_eq!(metadata["actor_id"], actor.user_id.to_string());

    // On JetStream, on the documented subject, deduplicable by event id.
    let message = eventually(
        Duration::from_secs(10),
        "the event on JetStream",
        || async {
            env.stream_messages()
                .await
                .into_iter()
                .find(|m| m.msg_id == event_id)
        },
    )
    .await;
    assert_eq!(
        message.subject,
        format!("{}.events.{workspace}.company.added", env.prefix)
    );
    assert_eq!(message.body["specversion"], "1.0");
    assert_eq!(message.body["id"], event_id);
    assert_eq!(message.body["type"], "vcintel.company.added.v1");
    assert_eq!(message.body["aggregateid"], id);
    assert_eq!(message.body["sequence"], 1);
    assert_eq!(message.body["workspaceid"], workspace.to_string());
    assert_eq!(message.body["data"]["website"], "www.acme.io");
    assert_eq!(message.body["data"]["name"], "Acme Robotics");

    // In the read model, waiting for our own write.
    let response = env
        .http
        .get(format!("{base}/v1/companies/{id}?min_version=1"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let tag = response.headers()["etag"].to_str().unwrap().to_owned();
    assert!(tag.starts_with("\"1-"), "version 1, then a digest: {tag}");
    let company: Value = response.json().await.unwrap();
    assert_eq!(company["name"], "Acme Robotics");
    assert_eq!(company["website"], "www.acme.io");
    assert_eq!(company["url"], "https://www.acme.io");
    assert_eq!(company["stage"], "seed");
    assert_eq!(company["added_by"], actor.user_id.to_string());

    // Unchanged since that ETag: 304.
    let response = env
        .http
        .get(format!("{base}/v1/companies/{id}"))
        .bearer_auth(&token)
        .header("if-none-match", &tag)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
}

#[tokio::test]
async fn update_and_delete_flow_through_to_the_read_model() {
    let mut env = TestEnv::new().await;
    let base = env.start_all().await;
    let token = env.token(&env.actor(Uuid::now_v7(), Role::Admin));
    let created: Value = env.post_json(&format!("{base}/v1/companies"), &token, &json!({"name": "Beta", "website": "beta.dev", "location": "Paris", "sector": "Fintech"})).await.1;
    let id = created["id"].as_str().unwrap().to_owned();

    let response = env
        .http
        .patch(format!("{base}/v1/companies/{id}"))
        .bearer_auth(&token)
        .header("if-match", "\"1\"")
        .json(&json!({"name": "Beta Labs", "location": null, "stage": "series_a"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let updated: Value = response.json().await.unwrap();
    assert_eq!(updated["version"], 2);

    let company: Value = env
        .get_json(&format!("{base}/v1/companies/{id}?min_version=2"), &token)
        .await
        .1;
    assert_eq!(company["name"], "Beta Labs");
    assert_eq!(company["location"], Value::Null, "null clears a field");
    assert_eq!(company["sector"], "Fintech", "omitted fields are unchanged");
    assert_eq!(company["stage"], "series_a");
    assert_eq!(company["version"], 2);

    let response = env
        .http
        .delete(format!("{base}/v1/companies/{id}"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let deleted: Value = response.json().await.unwrap();
    assert_eq!(deleted["version"], 3);

    let response = env
        .http
        .get(format!("{base}/v1/companies/{id}?min_version=3"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let list: Value = env
        .get_json(&format!("{base}/v1/companies"), &token)
        .await
        .1;
    assert_eq!(list["items"], json!([]));

    // A deleted company cannot be changed again.
    let response = env
        .http
        .patch(format!("{base}/v1/companies/{id}"))
        .bearer_auth(&token)
        .json(&json!({"name": "Zombie"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn listing_pages_through_every_company_once_in_order() {
    let mut env = TestEnv::new().await;
    let base = env.start_all().await;
    let token = env.token(&env.actor(Uuid::now_v7(), Role::Member));
    let mut ids = Vec::new();
    let mut last_version_id = String::new();
    for i in 0..7 {
        let created: Value = env
            .post_json(
                &format!("{base}/v1/companies"),
                &token,
                &json!({"name": format!("Company {i}"), "website": format!("company{i}.io")}),
            )
            .await
            .1;
        last_version_id = created["id"].as_str().unwrap().to_owned();
        ids.push(last_version_id.clone());
    }
    let (ok_status, _) = env
        .get_json(
            &format!("{base}/v1/companies/{last_version_id}?min_version=1"),
            &token,
        )
        .await;
    assert_eq!(ok_status, StatusCode::OK);
    // Earlier companies were projected before the last (one consumer, in order).
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut url = format!("{base}/v1/companies?limit=3");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let page: Value = env.get_json(&url, &token).await.1;
        pages += 1;
        for item in page["items"].as_array().unwrap() {
            seen.push(item["id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, ids, "every company once, in the order added");
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 7);

    let response = env
        .http
        .get(format!("{base}/v1/companies?cursor=garbage"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["errors"][0]["field"], "cursor");
}

#[tokio::test]
async fn client_mistakes_get_problem_json_naming_the_field() {
    let mut env = TestEnv::new().await;
    let base = env.start_all().await;
    let token = env.token(&env.actor(Uuid::now_v7(), Role::Member));

    let cases: Vec<(reqwest::RequestBuilder, StatusCode, Option<&str>)> = vec![
        (
            env.http
                .post(format!("{base}/v1/companies"))
                .bearer_auth(&token)
                .header("content-type", "application/json")
                .body("{not json"),
            StatusCode::BAD_REQUEST,
            None,
        ),
        (
            env.http
                .post(format!("{base}/v1/companies"))
                .bearer_auth(&token)
                .json(&json!({"name": "X", "website": "x.io", "colour": "red"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("colour"),
        ),
        (
            env.http
                .post(format!("{base}/v1/companies"))
                .bearer_auth(&token)
                .json(&json!({"name": "X", "website": "javascript:alert(1)"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("website"),
        ),
        (
            env.http
                .post(format!("{base}/v1/companies"))
                .bearer_auth(&token)
                .json(&json!({"name": "X", "website": "x.io", "stage": "unicorn"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("stage"),
        ),
        (
            env.http
                .post(format!("{base}/v1/companies"))
                .bearer_auth(&token)
                .header("content-type", "text/plain")
                .body("hello"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            None,
        ),
        (
            env.http
                .post(format!("{base}/v1/companies"))
                .bearer_auth(&token)
                .json(&json!({"name": "x".repeat(70_000), "website": "x.io"})),
            StatusCode::PAYLOAD_TOO_LARGE,
            None,
        ),
        (
            env.http
                .get(format!("{base}/v1/companies/not-a-uuid"))
                .bearer_auth(&token),
            StatusCode::BAD_REQUEST,
            Some("id"),
        ),
        // A route with two ids names the one at fault, as the document does.
        (
            env.http
                .put(format!(
                    "{base}/v1/lists/not-a-uuid/companies/{}",
                    Uuid::now_v7()
                ))
                .bearer_auth(&token),
            StatusCode::BAD_REQUEST,
            Some("list_id"),
        ),
        (
            env.http
                .put(format!(
                    "{base}/v1/lists/{}/companies/not-a-uuid",
                    Uuid::now_v7()
                ))
                .bearer_auth(&token),
            StatusCode::BAD_REQUEST,
            Some("id"),
        ),
        (
            env.http
                .get(format!("{base}/v1/enrichment-jobs/not-a-uuid"))
                .bearer_auth(&token),
            StatusCode::BAD_REQUEST,
            Some("job_id"),
        ),
        (
            env.http
                .patch(format!("{base}/v1/companies/{}", Uuid::now_v7()))
                .bearer_auth(&token)
                .header("if-match", "W/\"x\"")
                .json(&json!({})),
            StatusCode::BAD_REQUEST,
            Some("If-Match"),
        ),
        (
            env.http
                .get(format!("{base}/v1/companies?limit=1000"))
                .bearer_auth(&token),
            StatusCode::BAD_REQUEST,
            Some("limit"),
        ),
        (
            env.http.get(format!("{base}/no/such/route")),
            StatusCode::NOT_FOUND,
            None,
        ),
        (
            env.http
                .put(format!("{base}/v1/companies"))
                .bearer_auth(&token),
            StatusCode::METHOD_NOT_ALLOWED,
            None,
        ),
    ];
    for (request, status, field) in cases {
        let response = request.send().await.unwrap();
        let url = response.url().clone();
        assert_eq!(response.status(), status, "{url}");
        if status == StatusCode::METHOD_NOT_ALLOWED {
            assert_eq!(response.headers()["allow"], "GET, POST", "{url}");
        }
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json",
            "{url}"
        );
        let request_id = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["status"], status.as_u16(), "{url}");
        assert!(
            problem["type"].is_string() && problem["title"].is_string(),
            "{problem}"
        );
        assert_eq!(problem["request_id"], request_id);
        if let Some(field) = field {
            assert_eq!(problem["errors"][0]["field"], field, "{problem}");
        }
    }
    // Nothing was appended by any of them.
    let count: i64 = sqlx::query_scalar("select count(*) from events")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(count, 0);
}

#[tokio::test]
async fn bad_missing_forged_and_expired_tokens_are_401_and_viewers_cannot_write() {
    use jsonwebtoken::{encode, EncodingKey, Header};
    let mut env = TestEnv::new().await;
    let base = env.start_all().await;
    let now = chrono::Utc::now().timestamp() as u64;
    let claims = |exp: u64| json!({"sub": Uuid::now_v7(), "ws": Uuid::now_v7(), "role": "owner", "iss": "vcintel", "iat": now, "exp": exp});
    let forged = encode(
        &Header::default(),
        &claims(now + 600),
        &EncodingKey::from_secret(b"some-other-secret-some-other-secret!!"),
    )
    .unwrap();
    let expired = encode(
        &Header::default(),
        &claims(now - 600),
        &EncodingKey::from_secret(crate::helpers::JWT_SECRET.as_bytes()),
    )
    .unwrap();
    let b64 = |v: &Value| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let alg_none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&claims(now + 600))
    );
    for token in [
        None,
        Some("garbage".to_owned()),
        Some(forged),
        Some(expired),
        Some(alg_none),
    ] {
        let mut request = env.http.get(format!("{base}/v1/companies"));
        if let Some(token) = &token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{token:?}");
        assert!(response.headers().contains_key("www-authenticate"));
    }

    let viewer = env.token(&env.actor(Uuid::now_v7(), Role::Viewer));
    let response = env
        .http
        .post(format!("{base}/v1/companies"))
        .bearer_auth(&viewer)
        .json(&json!({"name": "X", "website": "x.io"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let (response_status, _) = env.get_json(&format!("{base}/v1/companies"), &viewer).await;
    assert_eq!(response_status, StatusCode::OK, "viewers read");
}

#[tokio::test]
async fn the_openapi_document_and_swagger_ui_are_served_offline() {
    let mut env = TestEnv::new().await;
    let base = env.start_all().await;
    let spec: Value = env
        .http
        .get(format!("{base}/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(spec["openapi"].as_str().unwrap().starts_with("3.1"));
    assert!(spec["paths"]["/v1/companies/{id}"]["patch"].is_object());
    let docs = env.http.get(format!("{base}/docs/")).send().await.unwrap();
    assert_eq!(docs.status(), StatusCode::OK);
    let html = docs.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "Swagger UI page");
    let bundle = env
        .http
        .get(format!("{base}/docs/swagger-ui-bundle.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        bundle.status(),
        StatusCode::OK,
        "assets are vendored, not fetched"
    );
}

#[tokio::test]
async fn a_read_that_cannot_reach_the_requested_version_in_time_answers_503_with_retry_after() {
    let mut env = TestEnv::new().await;
    let mut settings = env.settings();
    settings.consistency_wait_ms = 200;
    // No relay and no projector: the write is committed, and no read model
    // will ever reflect it.
    let running = env
        .start_with(settings, &[vcintel_api::Component::Api])
        .await;
    let base = running.address.clone().unwrap();
    let token = env.token(&env.actor(Uuid::now_v7(), Role::Member));
    let (status, created) = env
        .post_json(
            &format!("{base}/v1/companies"),
            &token,
            &json!({"name": "Patience", "website": "patience.io"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let id = created["id"].as_str().unwrap();
    let version = created["version"].as_u64().unwrap();

    let response = env
        .http
        .get(format!("{base}/v1/companies/{id}?min_version={version}"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "1");
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["type"], "urn:vcintel:problem:read-model-behind");
    running.stop().await;
}

#[tokio::test]
async fn a_wrong_method_on_a_templated_path_names_the_allowed_ones() {
    let mut env = TestEnv::new().await;
    let base = env.start_all().await;
    let token = env.token(&env.actor(Uuid::now_v7(), Role::Member));
    let response = env
        .http
        .put(format!("{base}/v1/notes/{}", Uuid::now_v7()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.headers()["allow"], "GET, PATCH, DELETE");
}
