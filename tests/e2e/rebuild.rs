//! Rebuilding read models from the event store gives the read models the
//! projector built, even while the projector keeps running.

use crate::helpers::{eventually, TestEnv};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;
use std::process::Command;
use std::time::Duration;

/// Every read-model table, and the bookkeeping the projections keep.
const READ_MODEL_TABLES: [&str; 12] = [
    "companies",
    "notes",
    "company_tombstones",
    "lists",
    "list_items",
    "saved_searches",
    "users",
    "workspaces",
    "workspace_members",
    "workspace_invitations",
    "api_keys",
    "projection_versions",
];

/// Each table's rows, as JSON, in a stable order; `projected_at` (when the
/// projector wrote the row, for lag metrics) is bookkeeping, not content.
async fn dump(pool: &PgPool) -> Vec<(String, Value)> {
    let mut tables = Vec::new();
    for table in READ_MODEL_TABLES {
        let rows: Value = sqlx::query_scalar(&format!(
            "select coalesce(jsonb_agg(r order by r::text), '[]'::jsonb)
             from (select to_jsonb(t) - 'projected_at' as r from {table} t) rows"
        ))
        .fetch_one(pool)
        .await
        .unwrap();
        tables.push((table.to_owned(), rows));
    }
    tables
}

/// Aggregates some read model has not caught up with: one it follows
/// behind its latest event, or one it reacts to behind its latest event of
/// that type.
async fn behind(pool: &PgPool) -> i64 {
    let mut names = Vec::new();
    let mut types = Vec::new();
    let mut event_types: Vec<Option<&str>> = Vec::new();
    for model in vcintel_projections::READ_MODELS.iter() {
        for aggregate in model.aggregate_types {
            names.push(model.name);
            types.push(*aggregate);
            event_types.push(None);
        }
        for (aggregate, event_type) in model.reacts_to {
            names.push(model.name);
            types.push(*aggregate);
            event_types.push(Some(*event_type));
        }
    }
    sqlx::query_scalar(
        "select count(*)
         from unnest($1::text[], $2::text[], $3::text[]) as m(projection, aggregate_type, event_type)
         join lateral (
           select aggregate_id, max(sequence) as version from events e
           where e.aggregate_type = m.aggregate_type
             and (m.event_type is null or e.event_type = m.event_type)
           group by aggregate_id) l on true
         left join projection_versions v
           on v.projection = m.projection and v.aggregate_id = l.aggregate_id
         where coalesce(v.version, 0) < l.version",
    )
    .bind(&names)
    .bind(&types)
    .bind(&event_types)
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn caught_up(env: &TestEnv) {
    eventually(Duration::from_secs(60), "read models caught up", || async {
        (behind(&env.pool).await == 0).then_some(())
    })
    .await;
}

/// `vcintel projections rebuild` (all read models), as an operator runs it.
async fn rebuild_all(database_url: &str) {
    let output = rebuild_process(database_url, &[], "").await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for model in vcintel_projections::READ_MODELS {
        assert!(
            stdout.contains(&format!("rebuilt {} from ", model.name)),
            "{stdout}"
        );
    }
}

fn assert_same(expected: &[(String, Value)], actual: &[(String, Value)]) {
    for ((table, expected), (_, actual)) in expected.iter().zip(actual) {
        if expected != actual {
            let (e, a) = (expected.as_array().unwrap(), actual.as_array().unwrap());
            let missing: Vec<_> = e.iter().filter(|r| !a.contains(r)).take(3).collect();
            let extra: Vec<_> = a.iter().filter(|r| !e.contains(r)).take(3).collect();
            panic!("{table} differs after the rebuild: missing {missing:?}, extra {extra:?}");
        }
    }
}

#[tokio::test]
async fn rebuilding_every_read_model_from_the_events_gives_identical_read_models() {
    let mut env = TestEnv::new().await;
    let base = env.start_all().await;
    let env = &env;

    // A history touching every read model: accounts, a shared workspace with
    // members, invitations and keys; companies updated and deleted; notes
    // edited, deleted and orphaned by deletion; lists renamed, emptied and
    // deleted; saved searches renamed and deleted.
    let owner = env.register(&base, "owner@rebuild.test", "Owner").await;
    let owner = owner["access_token"].as_str().unwrap().to_owned();
    env.register(&base, "member@rebuild.test", "Member").await;
    let call = |method: Method, path: String, body: Option<Value>| {
        let (base, owner) = (base.clone(), owner.clone());
        async move {
            let reply = env
                .call(
                    method,
                    &format!("{base}{path}"),
                    Some(&owner),
                    None,
                    body.as_ref(),
                )
                .await;
            assert!(
                reply.status.is_success(),
                "{path}: {} {}",
                reply.status,
                reply.body
            );
            reply.body
        }
    };
    let call = &call;
    call(
        Method::POST,
        "/v1/workspace/members".into(),
        Some(json!({"email": "member@rebuild.test", "role": "member"})),
    )
    .await;
    call(
        Method::POST,
        "/v1/workspace/members".into(),
        Some(json!({"email": "later@rebuild.test", "role": "viewer"})),
    )
    .await;
    let key = call(
        Method::POST,
        "/v1/workspace/api-keys".into(),
        Some(json!({"name": "CRM sync", "role": "member"})),
    )
    .await;
    call(
        Method::DELETE,
        format!("/v1/workspace/api-keys/{}", key["id"].as_str().unwrap()),
        None,
    )
    .await;

    let mut companies = Vec::new();
    for i in 0..24 {
        let sector = ["Fintech", "Climate", "Health"][i % 3];
        let stage = ["seed", "series_a"][i % 2];
        let added = call(
            Method::POST,
            "/v1/companies".into(),
            Some(json!({
                "name": format!("Rebuilt {i}"),
                "website": format!("rebuilt{i}.io"),
                "sector": sector,
                "stage": stage,
                "location": "Berlin",
            })),
        )
        .await;
        companies.push(added["id"].as_str().unwrap().to_owned());
    }
    let list = call(
        Method::POST,
        "/v1/lists".into(),
        Some(json!({"name": "Pipeline"})),
    )
    .await;
    let list = list["id"].as_str().unwrap().to_owned();
    let doomed_list = call(
        Method::POST,
        "/v1/lists".into(),
        Some(json!({"name": "Old"})),
    )
    .await;
    let doomed_list = doomed_list["id"].as_str().unwrap().to_owned();
    for (i, company) in companies.iter().enumerate() {
        if i % 2 == 0 {
            call(
                Method::PUT,
                format!("/v1/lists/{list}/companies/{company}"),
                None,
            )
            .await;
        }
        if i % 5 == 0 {
            call(
                Method::PUT,
                format!("/v1/lists/{doomed_list}/companies/{company}"),
                None,
            )
            .await;
        }
        let note = call(
            Method::POST,
            format!("/v1/companies/{company}/notes"),
            Some(json!({"content": format!("First impression of {i}")})),
        )
        .await;
        let note = note["id"].as_str().unwrap();
        if i % 3 == 0 {
            call(
                Method::PATCH,
                format!("/v1/notes/{note}"),
                Some(json!({"content": "Revised after the call"})),
            )
            .await;
        }
        if i % 7 == 0 {
            call(Method::DELETE, format!("/v1/notes/{note}"), None).await;
        }
        if i % 4 == 1 {
            call(
                Method::PATCH,
                format!("/v1/companies/{company}"),
                Some(json!({"stage": "series_b", "location": "Paris"})),
            )
            .await;
        }
    }
    call(
        Method::DELETE,
        format!("/v1/lists/{list}/companies/{}", companies[2]),
        None,
    )
    .await;
    call(
        Method::PATCH,
        format!("/v1/lists/{list}"),
        Some(json!({"name": "Q3 pipeline"})),
    )
    .await;
    call(Method::DELETE, format!("/v1/lists/{doomed_list}"), None).await;
    for company in companies.iter().step_by(6) {
        call(Method::DELETE, format!("/v1/companies/{company}"), None).await;
    }
    let search = call(
        Method::POST,
        "/v1/saved-searches".into(),
        Some(json!({"name": "Climate", "filters": {"sector": "Climate"}})),
    )
    .await;
    call(
        Method::PATCH,
        format!("/v1/saved-searches/{}", search["id"].as_str().unwrap()),
        Some(json!({"name": "Climate deals"})),
    )
    .await;
    let gone = call(
        Method::POST,
        "/v1/saved-searches".into(),
        Some(json!({"name": "Gone", "filters": {"text": "robot"}})),
    )
    .await;
    call(
        Method::DELETE,
        format!("/v1/saved-searches/{}", gone["id"].as_str().unwrap()),
        None,
    )
    .await;

    caught_up(env).await;
    let projected = dump(&env.pool).await;
    for (table, rows) in &projected {
        assert!(
            !rows.as_array().unwrap().is_empty(),
            "the history leaves rows in {table}"
        );
    }

    // Damage the read models, so only a real rebuild can restore them.
    sqlx::raw_sql(
        "update companies set name = 'damaged';
         delete from notes where ctid in (select ctid from notes limit 3);
         delete from list_items;
         update projection_versions set version = version + 100 where projection = 'saved_searches';",
    )
    .execute(&env.pool)
    .await
    .unwrap();
    assert_ne!(dump(&env.pool).await, projected);

    // The projector keeps running while the rebuild runs.
    rebuild_all(&env.database_url).await;
    assert_same(&projected, &dump(&env.pool).await);

    // Rebuild again while commands keep coming: the projector waits for the
    // rebuild, then applies what the rebuild's snapshot did not contain; a
    // quiet rebuild afterwards must find nothing to correct.
    let writes = async {
        for i in 0..30 {
            let added = call(
                Method::POST,
                "/v1/companies".into(),
                Some(json!({"name": format!("During {i}"), "website": format!("during{i}.io")})),
            )
            .await;
            let id = added["id"].as_str().unwrap().to_owned();
            call(
                Method::POST,
                format!("/v1/companies/{id}/notes"),
                Some(json!({"content": "Written during a rebuild"})),
            )
            .await;
            call(
                Method::PUT,
                format!("/v1/lists/{list}/companies/{id}"),
                None,
            )
            .await;
        }
    };
    tokio::join!(writes, rebuild_all(&env.database_url));
    caught_up(env).await;
    let live = dump(&env.pool).await;
    let during = live[0].1.as_array().unwrap().iter();
    assert_eq!(
        during
            .filter(|c| c["name"].as_str().unwrap().starts_with("During"))
            .count(),
        30
    );
    rebuild_all(&env.database_url).await;
    assert_same(&live, &dump(&env.pool).await);

    // And the projector carries on from the rebuilt state.
    let after = call(
        Method::POST,
        "/v1/companies".into(),
        Some(json!({"name": "After the rebuild", "website": "after-rebuild.io"})),
    )
    .await;
    let id = after["id"].as_str().unwrap();
    let detail = env
        .call(
            Method::GET,
            &format!("{base}/v1/companies/{id}?min_version=1"),
            Some(&owner),
            None,
            None,
        )
        .await;
    assert_eq!(detail.status, StatusCode::OK);
}

#[tokio::test]
async fn an_unknown_read_model_is_refused_by_name() {
    let env = TestEnv::new().await;
    let output = Command::new(env!("CARGO_BIN_EXE_vcintel"))
        .env(
            "VCINTEL_PRIVACY_MASTER_KEY",
            crate::helpers::PRIVACY_MASTER_KEY,
        )
        .args(["projections", "rebuild", "compnies"])
        .env("DATABASE_URL", &env.database_url)
        .output()
        .expect("run vcintel");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no read model is called `compnies`") && stderr.contains("companies"),
        "{stderr}"
    );
}

/// The companies read model and its bookkeeping rows, as JSON.
async fn companies_read_model(pool: &PgPool) -> Value {
    sqlx::query_scalar(
        "select jsonb_build_array(
           (select coalesce(jsonb_agg(r order by r::text), '[]') from
              (select to_jsonb(c) - 'projected_at' as r from companies c) rows),
           (select coalesce(jsonb_agg(r order by r::text), '[]') from
              (select to_jsonb(v) as r from projection_versions v
                where projection = 'companies') rows))",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn index_names(pool: &PgPool, table: &str) -> Vec<String> {
    sqlx::query_scalar(
        "select indexname::text from pg_indexes
         where schemaname = 'public' and tablename = $1 order by 1",
    )
    .bind(table)
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn rebuild_process(
    database_url: &str,
    args: &[&str],
    failpoints: &str,
) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_vcintel"))
        .env(
            "VCINTEL_PRIVACY_MASTER_KEY",
            crate::helpers::PRIVACY_MASTER_KEY,
        )
        .args(["projections", "rebuild"])
        .args(args)
        .env("DATABASE_URL", database_url)
        .env(vcintel_infra::failpoint::ENV, failpoints)
        .output()
        .await
        .expect("run vcintel")
}

#[tokio::test]
async fn a_rebuild_killed_halfway_resumes_and_swaps_in_what_a_fresh_rebuild_builds() {
    let mut env = TestEnv::new().await;
    let base = env.start_all().await;
    let env = &env;
    let owner = env.register(&base, "owner@resume.test", "Owner").await;
    let owner = owner["access_token"].as_str().unwrap().to_owned();
    let owner = owner.as_str();
    for i in 0..60 {
        let added = env
            .call(
                Method::POST,
                &format!("{base}/v1/companies"),
                Some(owner),
                None,
                Some(&json!({"name": format!("Resumed {i}"), "website": format!("resumed{i}.io")})),
            )
            .await;
        assert_eq!(added.status, StatusCode::CREATED, "{}", added.body);
        let id = added.body["id"].as_str().unwrap().to_owned();
        if i % 3 == 0 {
            let updated = env
                .call(
                    Method::PATCH,
                    &format!("{base}/v1/companies/{id}"),
                    Some(owner),
                    None,
                    Some(&json!({"stage": "series_a"})),
                )
                .await;
            assert_eq!(updated.status, StatusCode::OK, "{}", updated.body);
        }
    }
    caught_up(env).await;
    let expected = companies_read_model(&env.pool).await;
    let indexes = index_names(&env.pool, "companies").await;
    assert!(indexes.len() > 3, "{indexes:?}");

    // A reporting role reads the live table; it must keep reading the new one.
    let reader = format!("vcintel_reader_{}", uuid::Uuid::new_v4().simple());
    sqlx::raw_sql(&format!(
        "create role {reader}; grant select on companies to {reader}"
    ))
    .execute(&env.pool)
    .await
    .unwrap();

    // Mark the live table, so what serves can be told apart: the old table
    // until the swap, the rebuilt one after it.
    sqlx::query("update companies set name = 'served by the old table'")
        .execute(&env.pool)
        .await
        .unwrap();

    // Killed (abort, as kill -9) after its third batch of ten.
    let killed = rebuild_process(
        &env.database_url,
        &["companies", "--batch-size", "10"],
        "rebuild.after_batch=3",
    )
    .await;
    assert!(!killed.status.success());
    let (state, replayed, runs): (String, i64, i32) = sqlx::query_as(
        "select state, replayed, runs from projection_rebuilds where read_model = 'companies'",
    )
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!((state.as_str(), replayed, runs), ("running", 30, 1));
    let page = env
        .call(
            Method::GET,
            &format!("{base}/v1/companies?limit=100"),
            Some(owner),
            None,
            None,
        )
        .await;
    assert_eq!(page.status, StatusCode::OK);
    let items = page.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 60);
    assert!(items.iter().all(|c| c["name"] == "served by the old table"));

    // Resumed while clients keep reading: every read answers, from the old
    // table or from the new one, never from a half-built one.
    let resumed = rebuild_process(&env.database_url, &["companies", "--batch-size", "10"], "");
    let reads = async {
        let mut served = 0;
        loop {
            let page = env
                .call(
                    Method::GET,
                    &format!("{base}/v1/companies?limit=100"),
                    Some(owner),
                    None,
                    None,
                )
                .await;
            assert_eq!(page.status, StatusCode::OK, "{}", page.body);
            let items = page.body["items"].as_array().unwrap();
            assert_eq!(items.len(), 60);
            served += 1;
            let old = items
                .iter()
                .filter(|c| c["name"] == "served by the old table");
            match old.count() {
                60 => {}
                0 => return served,
                n => {
                    panic!("{n} of 60 companies from the old table: a half-built read model served")
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    let (resumed, served) = tokio::join!(resumed, reads);
    let stdout = String::from_utf8_lossy(&resumed.stdout);
    assert!(
        resumed.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    assert!(stdout.contains("resumed after 30 events"), "{stdout}");
    assert!(served >= 1);
    assert_eq!(companies_read_model(&env.pool).await, expected);
    assert_eq!(index_names(&env.pool, "companies").await, indexes);
    let (can_read, can_write): (bool, bool) = sqlx::query_as(
        "select has_table_privilege($1, 'public.companies', 'select'),
                has_table_privilege($1, 'public.companies', 'insert')",
    )
    .bind(&reader)
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!(
        (can_read, can_write),
        (true, false),
        "grants follow the swap"
    );
    sqlx::raw_sql(&format!("drop owned by {reader}; drop role {reader}"))
        .execute(&env.pool)
        .await
        .unwrap();
    let (state, runs, leftover): (String, i32, bool) = sqlx::query_as(
        "select state, runs, exists(select 1 from pg_namespace where nspname = 'rebuild_companies')
         from projection_rebuilds where read_model = 'companies'",
    )
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!((state.as_str(), runs, leftover), ("swapped", 2, false));

    // A fresh, uninterrupted rebuild builds exactly the same tables.
    let fresh = rebuild_process(&env.database_url, &["companies"], "").await;
    assert!(fresh.status.success());
    let fresh = String::from_utf8_lossy(&fresh.stdout);
    assert!(!fresh.contains("resumed after"), "{fresh}");
    assert_eq!(companies_read_model(&env.pool).await, expected);

    // And the projector carries on on top of the swapped-in table.
    let after = env
        .call(
            Method::POST,
            &format!("{base}/v1/companies"),
            Some(owner),
            None,
            Some(&json!({"name": "After the swap", "website": "after-swap.io"})),
        )
        .await;
    let id = after.body["id"].as_str().unwrap();
    let detail = env
        .call(
            Method::GET,
            &format!("{base}/v1/companies/{id}?min_version=1"),
            Some(owner),
            None,
            None,
        )
        .await;
    assert_eq!(detail.status, StatusCode::OK, "{}", detail.body);
}
