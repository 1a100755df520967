//! Read-your-writes with consistency tokens, and the company detail that
//! embeds notes and lists (whose ETag must change with them).

use crate::helpers::{Reply, TestEnv};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;
use vcintel_api::Component;
use vcintel_domain::Role;

impl TestEnv {
    /// GET with consistency tokens and an optional `If-None-Match`.
    async fn read_after(
        &self,
        url: &str,
        token: &str,
        consistency: &[&str],
        if_none_match: Option<&str>,
    ) -> Reply {
        let mut request = self.http.get(url).bearer_auth(token);
        if !consistency.is_empty() {
            request = request.header("x-consistency-token", consistency.join(", "));
        }
        if let Some(tag) = if_none_match {
            request = request.header("if-none-match", tag);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.json().await.unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
        }
    }
}

fn consistency_token(reply: &Reply) -> String {
    reply
        .header("x-consistency-token")
        .unwrap_or_else(|| panic!("no consistency token on {}: {}", reply.status, reply.body))
        .to_owned()
}

#[tokio::test]
async fn tokens_from_writes_on_notes_and_lists_make_the_company_detail_show_them() {
    let mut env = TestEnv::new().await;
    let base = env.start_all().await;
    let token = env.token(&env.actor(Uuid::now_v7(), Role::Member));
    let post = |url: String, body: Value| {
        let env = &env;
        let token = token.clone();
        async move {
            env.call(Method::POST, &url, Some(&token), None, Some(&body))
                .await
        }
    };

    let added = post(
        format!("{base}/v1/companies"),
        json!({"name": "Detailed", "website": "detailed.io"}),
    )
    .await;
    assert_eq!(added.status, StatusCode::CREATED);
    let id = added.body["id"].as_str().unwrap().to_owned();
    let company_written = consistency_token(&added);
    let url = format!("{base}/v1/companies/{id}");

    // Read straight after the write: the token makes the read wait for it.
    let bare = env
        .read_after(&url, &token, &[&company_written], None)
        .await;
    assert_eq!(bare.status, StatusCode::OK, "{}", bare.body);
    assert_eq!(bare.body["name"], "Detailed");
    assert_eq!(bare.body["notes"], json!([]));
    assert_eq!(bare.body["note_count"], 0);
    assert_eq!(bare.body["lists"], json!([]));
    let bare_tag = bare.header("etag").unwrap().to_owned();
    assert!(bare_tag.starts_with("\"1-"), "leading version: {bare_tag}");

    let note = post(
        format!("{base}/v1/companies/{id}/notes"),
        json!({"content": "Strong founders."}),
    )
    .await;
    assert_eq!(note.status, StatusCode::CREATED);
    let list = post(format!("{base}/v1/lists"), json!({"name": "Pipeline"})).await;
    let list_id = list.body["id"].as_str().unwrap().to_owned();
    let membership = env
        .call(
            Method::PUT,
            &format!("{base}/v1/lists/{list_id}/companies/{id}"),
            Some(&token),
            None,
            None,
        )
        .await;
    assert!(membership.status.is_success(), "{}", membership.body);

    // Two writes on other aggregates, carried into one read.
    let tokens = [consistency_token(&note), consistency_token(&membership)];
    let tokens: Vec<&str> = tokens.iter().map(String::as_str).collect();
    let full = env.read_after(&url, &token, &tokens, Some(&bare_tag)).await;
    assert_eq!(
        full.status,
        StatusCode::OK,
        "the old tag no longer matches: notes and lists are part of it"
    );
    assert_eq!(full.body["note_count"], 1);
    assert_eq!(full.body["notes"][0]["content"], "Strong founders.");
    assert_eq!(
        full.body["lists"],
        json!([{"id": list_id, "name": "Pipeline"}])
    );
    let full_tag = full.header("etag").unwrap().to_owned();
    assert_ne!(full_tag, bare_tag);
    assert!(
        full_tag.starts_with("\"1-"),
        "the company itself is unchanged"
    );

    let unchanged = env.read_after(&url, &token, &[], Some(&full_tag)).await;
    assert_eq!(unchanged.status, StatusCode::NOT_MODIFIED);

    // The detail's tag works as If-Match for an update: its version part counts.
    let update = env
        .http
        .patch(&url)
        .bearer_auth(&token)
        .header("if-match", &full_tag)
        .json(&json!({"sector": "Fintech"}))
        .send()
        .await
        .unwrap();
    assert_eq!(update.status(), StatusCode::OK);
    let stale = env
        .http
        .patch(&url)
        .bearer_auth(&token)
        .header("if-match", &full_tag)
        .json(&json!({"sector": "Health"}))
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), StatusCode::PRECONDITION_FAILED);

    // Removing the company from the list: the list page reflects the token.
    let removal = env
        .call(
            Method::DELETE,
            &format!("{base}/v1/lists/{list_id}/companies/{id}"),
            Some(&token),
            None,
            None,
        )
        .await;
    let page = env
        .read_after(
            &format!("{base}/v1/lists/{list_id}/companies"),
            &token,
            &[&consistency_token(&removal)],
            None,
        )
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.body["items"], json!([]));
}

#[tokio::test]
async fn a_forged_or_garbled_token_is_400_naming_the_header() {
    let mut env = TestEnv::new().await;
    let base = env.start_all().await;
    let token = env.token(&env.actor(Uuid::now_v7(), Role::Member));
    let added = env
        .call(
            Method::POST,
            &format!("{base}/v1/companies"),
            Some(&token),
            None,
            Some(&json!({"name": "Forged", "website": "forged.io"})),
        )
        .await;
    let genuine = consistency_token(&added);
    let (payload, mac) = genuine.split_once('.').unwrap();
    // Same MAC, payload bumped to a later version.
    use base64::Engine;
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let text = String::from_utf8(engine.decode(payload).unwrap()).unwrap();
    let bumped = text.replacen(":1", ":9", 1);
    assert_ne!(bumped, text);
    let forged = format!("{}.{mac}", engine.encode(bumped));

    for bad in [forged.as_str(), "garbage", &format!("{payload}.")] {
        let reply = env
            .read_after(&format!("{base}/v1/companies"), &token, &[bad], None)
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(reply.body["errors"][0]["field"], "X-Consistency-Token");
    }
}

#[tokio::test]
async fn a_token_the_read_models_cannot_reach_in_time_is_503_with_retry_after() {
    let mut env = TestEnv::new().await;
    let mut settings = env.settings();
    settings.consistency_wait_ms = 300;
    // No projector: nothing will ever apply the write.
    let running = env
        .start_with(settings, &[Component::Api, Component::Relay])
        .await;
    let base = running.address.clone().unwrap();
    let token = env.token(&env.actor(Uuid::now_v7(), Role::Member));
    let added = env
        .call(
            Method::POST,
            &format!("{base}/v1/companies"),
            Some(&token),
            None,
            Some(&json!({"name": "Waiting", "website": "waiting.io"})),
        )
        .await;
    let written = consistency_token(&added);
    let reply = env
        .read_after(&format!("{base}/v1/companies"), &token, &[&written], None)
        .await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.header("retry-after"), Some("1"));
    assert_eq!(reply.body["type"], "urn:vcintel:problem:read-model-behind");
    running.stop().await;
}

#[tokio::test]
async fn every_get_documents_the_token_and_every_command_answer_carries_it() {
    let spec = serde_json::to_value(vcintel_api::openapi::openapi()).unwrap();
    let mut gets = 0;
    let mut answers = 0;
    for (path, item) in spec["paths"].as_object().unwrap() {
        if !path.starts_with("/v1/") {
            continue;
        }
        let commands_answer = !path.starts_with("/v1/auth/");
        if let Some(get) = item.get("get") {
            gets += 1;
            let parameters = get["parameters"].as_array().unwrap();
            assert!(
                parameters
                    .iter()
                    .any(|p| p["name"] == "X-Consistency-Token" && p["in"] == "header"),
                "GET {path}"
            );
            assert!(get["responses"].get("503").is_some(), "GET {path}");
        }
        for method in ["post", "put", "patch", "delete"] {
            let Some(operation) = item.get(method) else {
                continue;
            };
            for (status, response) in operation["responses"].as_object().unwrap() {
                if commands_answer && status.starts_with('2') {
                    answers += 1;
                    assert!(
                        response["headers"].get("X-Consistency-Token").is_some(),
                        "{method} {path} {status}"
                    );
                }
            }
        }
    }
    assert!(gets > 10 && answers > 10, "{gets} GETs, {answers} answers");
}
