//! Filtering, full-text search, sorting and keyset paging of companies.

use crate::helpers::{eventually, TestEnv};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::time::Duration;
use uuid::Uuid;
use vcintel_domain::Role;

async fn page(env: &TestEnv, url: &str, token: &str) -> Value {
    let reply = env.call(Method::GET, url, Some(token), None, None).await;
    assert_eq!(reply.status, StatusCode::OK, "{url}: {}", reply.body);
    reply.body
}

fn names(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn companies_filter_by_sector_stage_location_and_score_and_match_free_text() {
    let mut env = TestEnv::new().await;
    let base = env.start_all().await;
    let token = env.token(&env.actor(Uuid::now_v7(), Role::Member));
    let companies = [
        ("Acme Robotics", "acme.io", "Robotics", "seed", "Berlin"),
        (
            "Borealis Energy",
            "borealis.energy",
            "Climate",
            "series_a",
            "Oslo",
        ),
        (
            "Cobalt Labs",
            "cobalt-labs.com",
            "robotics",
            "series_a",
            "berlin",
        ),
        ("Delta Pay", "deltapay.io", "Fintech", "seed", "Lisbon"),
    ];
    for (name, website, sector, stage, location) in companies {
        let reply = env
            .call(Method::POST, &format!("{base}/v1/companies"), Some(&token), None,
                  Some(&json!({"name": name, "website": website, "sector": sector, "stage": stage, "location": location})))
            .await;
        assert_eq!(reply.status, StatusCode::CREATED);
    }
    eventually(Duration::from_secs(10), "all four projected", || async {
        let all = page(&env, &format!("{base}/v1/companies"), &token).await;
        (all["items"].as_array()?.len() == 4).then_some(())
    })
    .await;
    let url = |query: &str| format!("{base}/v1/companies?{query}");
    assert_eq!(
        names(&page(&env, &url("sector=ROBOTICS&sort=name"), &token).await),
        ["Acme Robotics", "Cobalt Labs"]
    );
    assert_eq!(
        names(&page(&env, &url("stage=series_a&location=Oslo"), &token).await),
        ["Borealis Energy"]
    );
    assert_eq!(
        names(&page(&env, &url("location=berlin&sort=-name"), &token).await),
        ["Cobalt Labs", "Acme Robotics"]
    );
    // Full text over name, website words, sector and location.
    assert_eq!(
        names(&page(&env, &url("q=acme"), &token).await),
        ["Acme Robotics"]
    );
    assert_eq!(
        names(&page(&env, &url("q=energy%20oslo"), &token).await),
        ["Borealis Energy"]
    );
    assert_eq!(
        names(&page(&env, &url("q=robotics%20-acme"), &token).await),
        ["Cobalt Labs"]
    );
    assert_eq!(
        names(&page(&env, &url("q=%22delta%20pay%22"), &token).await),
        ["Delta Pay"]
    );

    // Scores arrive with enrichment (issue 5); set them in the read model here.
    for (name, score) in [
        ("Acme Robotics", 91),
        ("Cobalt Labs", 40),
        ("Delta Pay", 75),
    ] {
        sqlx::query("update companies set score = $2 where name = $1")
            .bind(name)
            .bind(score)
            .execute(&env.pool)
            .await
            .unwrap();
    }
    assert_eq!(
        names(&page(&env, &url("min_score=70&sort=-score"), &token).await),
        ["Acme Robotics", "Delta Pay"]
    );
    assert_eq!(
        names(&page(&env, &url("sort=score"), &token).await),
        [
            "Borealis Energy",
            "Cobalt Labs",
            "Delta Pay",
            "Acme Robotics"
        ],
        "no score sorts lowest"
    );

    // Bad parameters name themselves.
    for (query, field) in [
        ("min_score=500", "min_score"),
        ("sort=bogus", "sort"),
        ("stage=unicorn", "stage"),
        ("colour=red", "colour"),
    ] {
        let reply = env
            .call(Method::GET, &url(query), Some(&token), None, None)
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{query}");
        assert!(
            reply.body.to_string().contains(field),
            "{query}: {}",
            reply.body
        );
    }
}

#[tokio::test]
async fn keyset_pages_neither_repeat_nor_skip_while_companies_are_added() {
    let mut env = TestEnv::new().await;
    let base = env.start_all().await;
    let actor = env.actor(Uuid::now_v7(), Role::Member);
    let token = env.token(&actor);
    env.add_companies(actor, 0..30).await;
    eventually(Duration::from_secs(10), "thirty projected", || async {
        let all = page(&env, &format!("{base}/v1/companies?limit=200"), &token).await;
        (all["items"].as_array()?.len() == 30).then_some(())
    })
    .await;
    let mut added = 30;
    for sort in ["added", "-added", "name", "-name", "score"] {
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut url = format!("{base}/v1/companies?limit=7&sort={sort}");
            if let Some(c) = &cursor {
                url.push_str(&format!("&cursor={c}"));
            }
            let body = page(&env, &url, &token).await;
            seen.extend(names(&body));
            // Someone adds companies between every page.
            env.add_companies(actor, added..added + 3).await;
            added += 3;
            match body["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
        let unique: HashSet<&String> = seen.iter().collect();
        assert_eq!(
            unique.len(),
            seen.len(),
            "{sort}: a page repeated a company"
        );
        for i in 0..30 {
            assert!(
                seen.contains(&format!("Company {i}")),
                "{sort}: Company {i} was skipped"
            );
        }
    }
    // A cursor only continues the listing it came from.
    let first = page(
        &env,
        &format!("{base}/v1/companies?limit=2&sort=name"),
        &token,
    )
    .await;
    let cursor = first["next_cursor"].as_str().unwrap();
    let mixed = env
        .call(
            Method::GET,
            &format!("{base}/v1/companies?limit=2&sort=-name&cursor={cursor}"),
            Some(&token),
            None,
            None,
        )
        .await;
    assert_eq!(mixed.status, StatusCode::BAD_REQUEST);
    assert_eq!(mixed.body["errors"][0]["field"], "cursor");
}
