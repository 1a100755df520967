//! A person's data export: everything they made, from the event store,
//! and nothing of anyone else's.

use crate::helpers::{eventually, TestEnv};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::Duration;

#[tokio::test]
async fn the_export_holds_everything_a_person_made_and_nothing_of_anyone_else() {
    let mut env = TestEnv::new().await;
    let base = env.start_all().await;
    let ada_email = format!("ada-{}@example.com", env.prefix);
    let bob_email = format!("bob-{}@example.com", env.prefix);
    let ada = env.register(&base, &ada_email, "Ada Export").await;
    let bob = env.register(&base, &bob_email, "Bob Private").await;
    let ada_token = ada["access_token"].as_str().unwrap().to_owned();
    let bob_token = bob["access_token"].as_str().unwrap().to_owned();
    let call = |token: &str, path: &str, body: Value| {
        let env = &env;
        let url = format!("{base}{path}");
        let token = token.to_owned();
        let path = path.to_owned();
        async move {
            let reply = env
                .call(Method::POST, &url, Some(&token), None, Some(&body))
                .await;
            assert!(reply.status.is_success(), "{path}: {}", reply.body);
            reply.body
        }
    };
    // What Ada makes.
    let first = call(
        &ada_token,
        "/v1/companies",
        json!({"name": "Exported One", "website": "exported-one.example"}),
    )
    .await;
    call(
        &ada_token,
        "/v1/companies",
        json!({"name": "Exported Two", "website": "exported-two.example"}),
    )
    .await;
    let company = first["id"].as_str().unwrap().to_owned();
    call(
        &ada_token,
        &format!("/v1/companies/{company}/notes"),
        json!({"content": "Ada's own observation"}),
    )
    .await;
    call(&ada_token, "/v1/lists", json!({"name": "Ada's pipeline"})).await;
    call(
        &ada_token,
        "/v1/saved-searches",
        json!({"name": "Ada's search", "filters": {"stage": "seed"}}),
    )
    .await;
    let job = call(
        &ada_token,
        &format!("/v1/companies/{company}/enrichments"),
        json!(null),
    )
    .await;
    // The job ends (its site cannot be fetched here) before the export, so
    // the store holds no more of hers than the export read.
    let job = job["job_id"].as_str().unwrap().to_owned();
    eventually(
        Duration::from_secs(30),
        "the enrichment job to end",
        || async {
            let (_, body) = env
                .get_json(&format!("{base}/v1/enrichment-jobs/{job}"), &ada_token)
                .await;
            matches!(body["state"].as_str(), Some("succeeded" | "failed")).then_some(())
        },
    )
    .await;
    // What Bob makes, in his own workspace.
    let his = call(
        &bob_token,
        "/v1/companies",
        json!({"name": "Bob's Startup", "website": "bobs-startup.example"}),
    )
    .await;
    let his = his["id"].as_str().unwrap().to_owned();
    call(
        &bob_token,
        &format!("/v1/companies/{his}/notes"),
        json!({"content": "Bob's confidential thought"}),
    )
    .await;

    let anonymous = env
        .http
        .get(format!("{base}/v1/me/export"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    let (text, export) = eventually(
        Duration::from_secs(15),
        "the memberships projected",
        || async {
            let reply = env
                .http
                .get(format!("{base}/v1/me/export"))
                .bearer_auth(&ada_token)
                .send()
                .await
                .ok()?;
            assert_eq!(reply.status(), StatusCode::OK);
            assert!(reply
                .headers()
                .get("content-disposition")?
                .to_str()
                .ok()?
                .starts_with("attachment"));
            let text = reply.text().await.ok()?;
            let export: Value =
                serde_json::from_str(&text).expect("the export is one JSON document");
            (!export["memberships"].as_array()?.is_empty()).then_some((text, export))
        },
    )
    .await;
    assert_eq!(export["format"], "vcintel.personal-data.v1");
    assert_eq!(export["account"]["email"], ada_email.as_str());
    assert_eq!(export["account"]["name"], "Ada Export");
    assert!(
        !export["sessions"].as_array().unwrap().is_empty(),
        "her sign-up session"
    );

    // Every event about or by her, checked against the store, once each.
    let user_id = export["user_id"].as_str().unwrap().to_owned();
    let in_store: BTreeSet<String> = sqlx::query_scalar(
        "select event_id::text from events
         where (aggregate_type = 'user' and aggregate_id = $1) or metadata ->> 'actor_id' = $1",
    )
    .bind(&user_id)
    .fetch_all(&env.pool)
    .await
    .unwrap()
    .into_iter()
    .collect();
    let exported: Vec<String> = export["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(exported.len(), in_store.len(), "no event twice");
    assert_eq!(exported.into_iter().collect::<BTreeSet<_>>(), in_store);
    let types: BTreeSet<&str> = export["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    for made in [
        "user.registered",
        "company.added",
        "note.added",
        "list.created",
        "saved_search.created",
        "enrichment.requested",
    ] {
        assert!(types.contains(made), "{made} in {types:?}");
    }
    assert!(text.contains("Ada's own observation"));
    // Nothing of Bob's.
    for his in [
        bob_email.as_str(),
        "Bob Private",
        "Bob's confidential thought",
        "Bob's Startup",
    ] {
        assert!(!text.contains(his), "{his} leaked into Ada's export");
    }

    // The operator's command writes the same document.
    let file = std::env::temp_dir().join(format!("{}-export.json", env.prefix));
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_vcintel"))
        .env(
            "VCINTEL_PRIVACY_MASTER_KEY",
            crate::helpers::PRIVACY_MASTER_KEY,
        )
        .args(["privacy", "export", &user_id, "--output"])
        .arg(&file)
        .env("DATABASE_URL", &env.database_url)
        .output()
        .await
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let written: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let _ = std::fs::remove_file(&file);
    assert_eq!(written["events"], export["events"]);
    assert_eq!(written["account"], export["account"]);
}
