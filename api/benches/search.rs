//! Search benchmark: prints figures, asserts nothing about speed.
//!
//! Loads 100,000 companies into one workspace's read model (plus 50,000 in
//! another, so the workspace filter matters), then times filtered, sorted,
//! searched and deep-paged `GET /v1/companies` requests over HTTP (API in
//! this process, release build) and prints the plans Postgres chose.
//!
//! The rows are written straight into the read model: this measures the
//! query side only (the write path has its own benchmark).

#![allow(clippy::unwrap_used)]

#[path = "../../tests/e2e/helpers.rs"]
#[allow(dead_code)]
mod helpers;
#[path = "../../tests/e2e/mail_sink.rs"]
#[allow(dead_code)]
mod mail_sink;

use helpers::TestEnv;
use reqwest::Method;
use std::time::Instant;
use uuid::Uuid;
use vcintel_api::Component;
use vcintel_domain::Role;

const ROWS: i64 = 100_000;

async fn load(env: &TestEnv, workspace: Uuid, rows: i64) {
    sqlx::query(
        "insert into companies (id, workspace_id, name, website, sector, stage, location,
                                added_by, added_at, updated_at, version, score)
         select gen_random_uuid(), $1, 'Company ' || i, 'company' || i || '.example',
                (array['AI','Fintech','Climate','Health','Robotics'])[1 + i % 5],
                (array['pre_seed','seed','series_a','series_b','growth'])[1 + i % 5],
                (array['Berlin','London','Paris','Lisbon','Oslo','Madrid'])[1 + i % 6],
                $1, now(), now(), 1, case when i % 10 = 0 then null else (i * 37) % 101 end
         from generate_series(1, $2) i",
    )
    .bind(workspace)
    .bind(rows)
    .execute(&env.pool)
    .await
    .unwrap();
}

fn percentile(samples: &mut [f64], p: f64) -> f64 {
    samples.sort_by(|a, b| a.total_cmp(b));
    samples[((samples.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let mut env = TestEnv::new().await;
    let workspace = Uuid::now_v7();
    let started = Instant::now();
    load(&env, workspace, ROWS).await;
    load(&env, Uuid::now_v7(), ROWS / 2).await;
    sqlx::query("analyze companies")
        .execute(&env.pool)
        .await
        .unwrap();
    println!(
        "loaded {} companies in {:.1}s",
        ROWS + ROWS / 2,
        started.elapsed().as_secs_f64()
    );
    let running = env.start_with(env.settings(), &[Component::Api]).await;
    let base = running.address.clone().unwrap();
    let token = env.token(&env.actor(workspace, Role::Member));

    // A cursor 20 pages deep, for the deep-paging case.
    let mut cursor = String::new();
    for _ in 0..20 {
        let mut url = format!("{base}/v1/companies?limit=50&sort=name");
        if !cursor.is_empty() {
            url.push_str(&format!("&cursor={cursor}"));
        }
        let reply = env.call(Method::GET, &url, Some(&token), None, None).await;
        cursor = reply.body["next_cursor"].as_str().unwrap().to_owned();
    }
    let cases = [
        ("first page, by added time", "limit=50".to_owned()),
        (
            "sector, by score desc",
            "sector=AI&sort=-score&limit=50".to_owned(),
        ),
        (
            "stage + location + min score, by name",
            "stage=seed&location=berlin&min_score=50&sort=name&limit=50".to_owned(),
        ),
        (
            "full text, 1 match",
            "q=%22company%2042424%22&limit=50".to_owned(),
        ),
        ("full text, common word", "q=company&limit=50".to_owned()),
        (
            "full text + sector, by name",
            "q=company&sector=Climate&sort=name&limit=50".to_owned(),
        ),
        (
            "page 21 by name (keyset)",
            format!("sort=name&limit=50&cursor={cursor}"),
        ),
    ];
    println!("GET /v1/companies over HTTP, one workspace of {ROWS}, 200 requests each:");
    for (what, query) in &cases {
        let url = format!("{base}/v1/companies?{query}");
        let mut samples = Vec::new();
        for _ in 0..200 {
            let t = Instant::now();
            let reply = env.call(Method::GET, &url, Some(&token), None, None).await;
            assert!(reply.status.is_success(), "{what}: {}", reply.body);
            samples.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        println!(
            "  {what:<40} p50 {:6.2} ms   p99 {:6.2} ms",
            percentile(&mut samples, 0.5),
            percentile(&mut samples, 0.99)
        );
    }
    running.stop().await;

    println!("plans (EXPLAIN ANALYZE of the statements the API runs):");
    let plans = [
        (
            "sector, by score desc",
            "select id from companies where workspace_id = $1 and lower(sector) = lower('AI')
             order by coalesce(score, -1) desc, id desc limit 51",
        ),
        (
            "stage + location + min score, by name",
            "select id from companies where workspace_id = $1 and stage = 'seed'
             and lower(location) = lower('berlin') and score >= 50
             order by lower(name) asc, id asc limit 51",
        ),
        (
            "full text, few matches (GIN first, then sort)",
            "select id from (select * from companies where workspace_id = $1
             and search @@ websearch_to_tsquery('simple', '\"company 42424\"') offset 0) c
             where workspace_id = $1 order by id asc limit 51",
        ),
        (
            "full text (common word) + sector, by name (walks the name index)",
            "select id from companies where workspace_id = $1 and lower(sector) = lower('Climate')
             and search @@ websearch_to_tsquery('simple', 'company')
             order by lower(name) asc, id asc limit 51",
        ),
    ];
    for (what, sql) in plans {
        let lines: Vec<String> = sqlx::query_scalar(&format!("explain (analyze, buffers) {sql}"))
            .bind(workspace)
            .fetch_all(&env.pool)
            .await
            .unwrap();
        println!("  -- {what}");
        for line in lines {
            println!("     {line}");
        }
    }
}
