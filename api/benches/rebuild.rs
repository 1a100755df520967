//! Rebuild benchmark: prints figures, asserts nothing about speed.
//!
//! Writes 100,000 `company.added` and 50,000 `company.details_updated` events into
//! the event store with multi-row `INSERT … SELECT` statements (the fastest
//! way rows get into Postgres: the yardstick), then rebuilds the companies
//! read model from them, blue/green, as `vcintel projections rebuild` does,
//! and compares the rates. Also bulk-inserts the same number of read-model
//! rows directly, the other yardstick (what the rebuild ultimately writes).

#![allow(clippy::unwrap_used)]

#[path = "../../tests/e2e/helpers.rs"]
#[allow(dead_code)]
mod helpers;
#[path = "../../tests/e2e/mail_sink.rs"]
#[allow(dead_code)]
mod mail_sink;

use helpers::TestEnv;
use std::time::Instant;
use uuid::Uuid;
use vcintel_projections::rebuild::{rebuild, RebuildOptions};

const COMPANIES: i64 = 100_000;
const UPDATES: i64 = 50_000;

#[tokio::main]
async fn main() {
    let env = TestEnv::new().await;
    let workspace = Uuid::now_v7();
    let user = Uuid::now_v7();

    let started = Instant::now();
    sqlx::query(
        "insert into events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         select 'company', id::text, 1, 'company.added', '1',
                jsonb_build_object('company.added', jsonb_build_object(
                  'company_id', id, 'workspace_id', $1::uuid, 'added_by', $2::uuid,
                  'name', 'Company ' || i, 'website', 'company' || i || '.example',
                  'sector', (array['AI','Fintech','Climate','Health','Robotics'])[1 + i % 5],
                  'stage', (array['pre_seed','seed','series_a','series_b','growth'])[1 + i % 5],
                  'location', (array['Berlin','London','Paris','Lisbon','Oslo','Madrid'])[1 + i % 6])),
                jsonb_build_object('workspace_id', $1::text, 'actor_id', $2::text)
         from (select i, gen_random_uuid() as id from generate_series(1, $3) i) companies",
    )
    .bind(workspace)
    .bind(user)
    .bind(COMPANIES)
    .execute(&env.pool)
    .await
    .unwrap();
    let added = started.elapsed();
    let started = Instant::now();
    sqlx::query(
        "insert into events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         select 'company', aggregate_id, 2, 'company.details_updated', '1',
                jsonb_build_object('company.details_updated',
                  (payload -> 'company.added')::jsonb - 'company_id' - 'added_by'
                  || jsonb_build_object('updated_by', $2::uuid, 'stage', 'series_c',
                                        'changed_fields', jsonb_build_array('stage'))),
                metadata
         from events where event_type = 'company.added' limit $1",
    )
    .bind(UPDATES)
    .bind(user)
    .execute(&env.pool)
    .await
    .unwrap();
    let updated = started.elapsed();
    let events = (COMPANIES + UPDATES) as f64;
    let insert_rate = events / (added + updated).as_secs_f64();
    println!(
        "multi-row INSERT of {events} events: {:.2}s ({insert_rate:.0} events/s)",
        (added + updated).as_secs_f64()
    );

    let progress = |_, _| {};
    let mut rates = Vec::new();
    for run in 1..=2 {
        let started = Instant::now();
        let rebuilt = rebuild::<vcintel_projections::companies::CompaniesProjection>(
            &env.vault(),
            &RebuildOptions::default(),
            &progress,
        )
        .await
        .unwrap();
        let took = started.elapsed();
        let rate = rebuilt.events as f64 / took.as_secs_f64();
        rates.push(rate);
        println!(
            "rebuild {run} of companies: {} events in {:.2}s ({rate:.0} events/s), swap transaction {:.1} ms",
            rebuilt.events,
            took.as_secs_f64(),
            rebuilt.swap_took.as_secs_f64() * 1e3
        );
    }
    let rows: i64 = sqlx::query_scalar("select count(*) from companies where stage = 'series_c'")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(rows, UPDATES, "the rebuilt read model holds the updates");

    // The read model's own bulk load: what the rebuild writes, as one statement.
    let started = Instant::now();
    sqlx::query(
        "insert into companies (id, workspace_id, name, website, sector, stage, location,
                                added_by, added_at, updated_at, version)
         select gen_random_uuid(), $1, 'Bulk ' || i, 'bulk' || i || '.example', 'AI', 'seed',
                'Berlin', $1, now(), now(), 1
         from generate_series(1, $2) i",
    )
    .bind(Uuid::now_v7())
    .bind(COMPANIES)
    .execute(&env.pool)
    .await
    .unwrap();
    let bulk_rate = COMPANIES as f64 / started.elapsed().as_secs_f64();
    println!("multi-row INSERT of {COMPANIES} read-model rows: {bulk_rate:.0} rows/s");
    let best = rates.iter().copied().fold(0.0, f64::max);
    println!(
        "rebuild rate is {:.0}% of the event INSERT rate and {:.0}% of the read-model INSERT rate",
        best / insert_rate * 100.0,
        best / bulk_rate * 100.0
    );
}
