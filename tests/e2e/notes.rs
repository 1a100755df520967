//! Notes on companies over HTTP, and their removal with the company.

use crate::helpers::{eventually, TestEnv};
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::time::Duration;
use uuid::Uuid;
use vcintel_domain::Role;

#[tokio::test]
async fn notes_are_added_read_edited_and_deleted_with_versions_and_etags() {
    let mut env = TestEnv::new().await;
    let base = env.start_all().await;
    let workspace = Uuid::now_v7();
    let author = env.token(&env.actor(workspace, Role::Member));
    let company = env
        .call(
            Method::POST,
            &format!("{base}/v1/companies"),
            Some(&author),
            None,
            Some(&json!({"name": "Noted", "website": "noted.io"})),
        )
        .await;
    let company_id = company.body["id"].as_str().unwrap().to_owned();

    let text = "Met the founders.\n<script>alert(1)</script> is just text.";
    let added = env
        .call(
            Method::POST,
            &format!("{base}/v1/companies/{company_id}/notes"),
            Some(&author),
            None,
            Some(&json!({"content": format!("  {text}  ")})),
        )
        .await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.body);
    let note_id = added.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        added.header("location"),
        Some(format!("/v1/notes/{note_id}").as_str())
    );
    let note = env
        .call(
            Method::GET,
            &format!("{base}/v1/notes/{note_id}?min_version=1"),
            Some(&author),
            None,
            None,
        )
        .await;
    assert_eq!(note.status, StatusCode::OK);
    assert_eq!(
        note.body["content"], text,
        "stored as written, trimmed, never interpreted"
    );
    assert_eq!(note.header("etag"), Some("\"1\""));

    let edit = |token: String, if_match: Option<&'static str>, content: &'static str| {
        let env = &env;
        let url = format!("{base}/v1/notes/{note_id}");
        async move {
            let mut request = env
                .http
                .patch(url)
                .bearer_auth(token)
                .json(&json!({"content": content}));
            if let Some(tag) = if_match {
                request = request.header("if-match", tag);
            }
            request.send().await.unwrap().status()
        }
    };
    assert_eq!(
        edit(author.clone(), Some("\"1\""), "Second thoughts").await,
        StatusCode::OK
    );
    assert_eq!(
        edit(author.clone(), Some("\"1\""), "Stale").await,
        StatusCode::PRECONDITION_FAILED
    );
    assert_eq!(
        edit(author.clone(), None, "").await,
        StatusCode::UNPROCESSABLE_ENTITY
    );

    // Another member may not change it; an admin may; a viewer may not write at all.
    let colleague = env.token(&env.actor(workspace, Role::Member));
    let admin = env.token(&env.actor(workspace, Role::Admin));
    let viewer = env.token(&env.actor(workspace, Role::Viewer));
    assert_eq!(
        edit(colleague, None, "Mine now").await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(edit(admin.clone(), None, "Moderated").await, StatusCode::OK);
    let viewer_add = env
        .call(
            Method::POST,
            &format!("{base}/v1/companies/{company_id}/notes"),
            Some(&viewer),
            None,
            Some(&json!({"content": "hi"})),
        )
        .await;
    assert_eq!(viewer_add.status, StatusCode::FORBIDDEN);

    // Listing: newest first, paged.
    for i in 0..3 {
        env.call(
            Method::POST,
            &format!("{base}/v1/companies/{company_id}/notes"),
            Some(&author),
            None,
            Some(&json!({"content": format!("Note {i}")})),
        )
        .await;
    }
    let page = eventually(Duration::from_secs(10), "four notes listed", || async {
        let reply = env
            .call(
                Method::GET,
                &format!("{base}/v1/companies/{company_id}/notes?limit=3"),
                Some(&viewer),
                None,
                None,
            )
            .await;
        (reply.body["items"].as_array()?.len() == 3 && reply.body["next_cursor"].is_string())
            .then_some(reply.body)
    })
    .await;
    assert_eq!(page["items"][0]["content"], "Note 2");
    let cursor = page["next_cursor"].as_str().unwrap();
    let rest = env
        .call(
            Method::GET,
            &format!("{base}/v1/companies/{company_id}/notes?limit=3&cursor={cursor}"),
            Some(&viewer),
            None,
            None,
        )
        .await;
    assert_eq!(rest.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(rest.body["items"][0]["content"], "Moderated");

    let deleted = env
        .call(
            Method::DELETE,
            &format!("{base}/v1/notes/{note_id}"),
            Some(&author),
            None,
            None,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::OK);
    eventually(Duration::from_secs(10), "the deleted note gone", || async {
        let status = env
            .call(
                Method::GET,
                &format!("{base}/v1/notes/{note_id}"),
                Some(&author),
                None,
                None,
            )
            .await
            .status;
        (status == StatusCode::NOT_FOUND).then_some(())
    })
    .await;
}

#[tokio::test]
async fn deleting_a_company_removes_its_notes_from_the_read_model_and_refuses_new_ones() {
    let mut env = TestEnv::new().await;
    let base = env.start_all().await;
    let token = env.token(&env.actor(Uuid::now_v7(), Role::Member));
    let company = env
        .call(
            Method::POST,
            &format!("{base}/v1/companies"),
            Some(&token),
            None,
            Some(&json!({"name": "Doomed", "website": "doomed.io"})),
        )
        .await;
    let company_id = company.body["id"].as_str().unwrap().to_owned();
    let mut notes = Vec::new();
    for i in 0..3 {
        let added = env
            .call(
                Method::POST,
                &format!("{base}/v1/companies/{company_id}/notes"),
                Some(&token),
                None,
                Some(&json!({"content": format!("Note {i}")})),
            )
            .await;
        notes.push(added.body["id"].as_str().unwrap().to_owned());
    }
    let count_notes = || async {
        sqlx::query_scalar::<_, i64>("select count(*) from notes where company_id = $1::uuid")
            .bind(&company_id)
            .fetch_one(&env.pool)
            .await
            .unwrap()
    };
    eventually(Duration::from_secs(10), "the notes projected", || async {
        (count_notes().await == 3).then_some(())
    })
    .await;
    let removed = env
        .call(
            Method::DELETE,
            &format!("{base}/v1/companies/{company_id}"),
            Some(&token),
            None,
            None,
        )
        .await;
    assert_eq!(removed.status, StatusCode::OK);
    eventually(Duration::from_secs(10), "the notes removed", || async {
        let left: i64 =
            sqlx::query_scalar("select count(*) from notes where company_id = $1::uuid")
                .bind(&company_id)
                .fetch_one(&env.pool)
                .await
                .unwrap();
        (left == 0).then_some(())
    })
    .await;
    for note in &notes {
        let status = env
            .call(
                Method::GET,
                &format!("{base}/v1/notes/{note}"),
                Some(&token),
                None,
                None,
            )
            .await
            .status;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    let late = env
        .call(
            Method::POST,
            &format!("{base}/v1/companies/{company_id}/notes"),
            Some(&token),
            None,
            Some(&json!({"content": "too late"})),
        )
        .await;
    assert_eq!(late.status, StatusCode::NOT_FOUND);
    let list = env
        .call(
            Method::GET,
            &format!("{base}/v1/companies/{company_id}/notes"),
            Some(&token),
            None,
            None,
        )
        .await;
    assert_eq!(list.status, StatusCode::NOT_FOUND);
    // The notes' own histories are intact in the event store: only read models forget.
    let note_events: i64 =
        sqlx::query_scalar("select count(*) from events where aggregate_type = 'note'")
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert_eq!(note_events, 3);
}
