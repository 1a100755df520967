//! Cost flat with the data: every statement the API, relay, projector and
//! enrichment worker run uses an index on the tables that grow, however
//! large they are, whether Postgres plans it for its values (custom plan)
//! or once for any values (the generic plan a prepared statement falls back
//! to after five runs).
//!
//! The store is loaded with 100,000 companies (events, unique values, the
//! companies read model and its versions), notes, list items, sessions and
//! security-log entries, the relay is put at its end, and a scripted flow
//! of real requests runs through the real components. Postgres'
//! `auto_explain` reports the plan of every statement those components run
//! (nested ones included) back to them as a notice, which this test
//! collects, and no plan may scan a large table sequentially.

use crate::fixtures::{fixture_site, target_listener, FakeModel};
use crate::helpers::{bulk_add_companies, eventually, Reply, TestEnv, PASSWORD};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing_subscriber::layer::SubscriberExt;
use uuid::Uuid;

const COMPANIES: i64 = 100_000;
/// Tables at least this large must never be scanned.
const LARGE: f64 = 10_000.0;

#[tokio::test(flavor = "current_thread")]
async fn no_statement_scans_a_large_table_with_generic_plans() {
    statements_use_indexes("force_generic_plan").await;
}

#[tokio::test(flavor = "current_thread")]
async fn no_statement_scans_a_large_table_with_custom_plans() {
    statements_use_indexes("force_custom_plan").await;
}

/// Collects the notices sqlx turns into tracing events.
#[derive(Clone, Default)]
struct Notices(Arc<Mutex<Vec<String>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Notices {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if event.metadata().target() != "sqlx::postgres::notice" {
            return;
        }
        struct Message(Option<String>);
        impl tracing::field::Visit for Message {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.0 = Some(format!("{value:?}"));
                }
            }
            fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
                if field.name() == "message" {
                    self.0 = Some(value.to_owned());
                }
            }
        }
        let mut message = Message(None);
        event.record(&mut message);
        if let Some(text) = message.0 {
            self.0.lock().unwrap().push(text);
        }
    }
}

async fn statements_use_indexes(plan_cache_mode: &str) {
    let mut env = TestEnv::new().await;
    load_realistic_store(&env).await;

    // The service connects as a role of its own, for which Postgres
    // explains every statement; the test's own queries are not explained.
    let role = format!("planned_{}", &Uuid::new_v4().simple().to_string()[..12]);
    let database: String = sqlx::query_scalar("select current_database()")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    for statement in [
        format!("create role {role} login superuser"),
        format!("alter role {role} in database {database} set session_preload_libraries = 'auto_explain'"),
        format!("alter role {role} in database {database} set auto_explain.log_min_duration = 0"),
        format!("alter role {role} in database {database} set auto_explain.log_level = 'notice'"),
        format!("alter role {role} in database {database} set auto_explain.log_format = 'json'"),
        format!("alter role {role} in database {database} set auto_explain.log_nested_statements = on"),
        format!("alter role {role} in database {database} set plan_cache_mode = '{plan_cache_mode}'"),
    ] {
        sqlx::query(&statement).execute(&env.pool).await.unwrap();
    }

    let notices = Notices::default();
    let subscriber = tracing_subscriber::registry().with(notices.clone());
    let _collecting = tracing::subscriber::set_default(subscriber);

    let (target, _) = target_listener().await;
    let site = fixture_site(target).await;
    let (_model, model_url) = FakeModel::start(vec![]).await;
    let mut settings = env.settings();
    settings.database_url = with_user(&env.database_url, &role);
    settings.dev_tokens = false;
    settings.rate_limit_per_user = 1_000_000;
    settings.rate_limit_auth = 1_000;
    settings.enrich_allow_addresses = vec![site];
    settings.llm_base_url = Some(model_url);
    let base = env.start_all_with(settings).await;
    scripted_flow(&env, &base, &format!("http://{site}/")).await;
    // Let the relay, the projector and the worker go idle, polling.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let large: Vec<String> = sqlx::query_scalar(
        "select relname::text from pg_class
         where relkind = 'r' and relnamespace = 'public'::regnamespace and reltuples >= $1",
    )
    .bind(LARGE)
    .fetch_all(&env.pool)
    .await
    .unwrap();
    for table in [
        "events",
        "unique_values",
        "companies",
        "projection_versions",
        "notes",
    ] {
        assert!(
            large.iter().any(|t| t == table),
            "{table} is loaded: {large:?}"
        );
    }
    let collected = notices.0.lock().unwrap().clone();
    let mut explained = 0;
    let mut used = std::collections::BTreeSet::new();
    let mut scans = Vec::new();
    for notice in &collected {
        let Some(start) = notice.find('{') else {
            continue;
        };
        let Ok(plan) = serde_json::from_str::<Value>(&notice[start..]) else {
            continue;
        };
        explained += 1;
        let query = plan["Query Text"].as_str().unwrap_or_default().to_owned();
        walk(&plan["Plan"], &mut |node| {
            let Some(relation) = node["Relation Name"].as_str() else {
                return;
            };
            if !large.iter().any(|t| t == relation) {
                return;
            }
            used.insert(relation.to_owned());
            if node["Node Type"] == "Seq Scan" {
                scans.push(format!("{relation}: {}", squeeze(&query)));
            }
        });
    }
    // The collection itself is checked, so an empty one cannot pass.
    assert!(explained > 100, "{explained} plans explained");
    for table in [
        "events",
        "unique_values",
        "companies",
        "projection_versions",
        "notes",
    ] {
        assert!(
            used.contains(table),
            "no explained statement read {table}: {used:?}"
        );
    }
    scans.sort();
    scans.dedup();
    assert!(
        scans.is_empty(),
        "{plan_cache_mode}: {} statements scan a large table:\n{}",
        scans.len(),
        scans.join("\n")
    );
}

fn walk(node: &Value, visit: &mut impl FnMut(&Value)) {
    visit(node);
    if let Some(children) = node["Plans"].as_array() {
        for child in children {
            walk(child, visit);
        }
    }
}

fn squeeze(query: &str) -> String {
    query.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn with_user(url: &str, user: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let rest = rest.split_once('@').map_or(rest, |(_, host)| host);
    format!("{scheme}://{user}@{rest}")
}

/// 100,000 companies in 100 workspaces with their read model and versions,
/// 50,000 notes, 50,000 list items, 10,000 sessions and 20,000 security-log
/// entries; the relay checkpoint at the end of the store, and the stream
/// holding the newest event, as a relay that published everything leaves
/// them.
async fn load_realistic_store(env: &TestEnv) {
    bulk_add_companies(&env.pool, 0, COMPANIES).await;
    for statement in [
        "insert into companies (id, workspace_id, name, website, sector, stage, location,
                                added_by, added_at, updated_at, version)
         select aggregate_id::uuid, (payload -> 'company.added' ->> 'workspace_id')::uuid,
                payload -> 'company.added' ->> 'name', payload -> 'company.added' ->> 'website',
                payload -> 'company.added' ->> 'sector', payload -> 'company.added' ->> 'stage',
                payload -> 'company.added' ->> 'location',
                (payload -> 'company.added' ->> 'added_by')::uuid, recorded_at, recorded_at, 1
         from events where aggregate_type = 'company'",
        "insert into projection_versions (projection, aggregate_id, version)
         select 'companies', aggregate_id, 1 from events where aggregate_type = 'company'",
        "insert into notes (id, workspace_id, company_id, content, added_by, added_at, updated_at, version,
                            content_by)
         select gen_random_uuid(), workspace_id, id, 'Stored note', workspace_id, now(), now(), 1,
                workspace_id
         from (select workspace_id, id from companies limit 50000) c",
        "insert into projection_versions (projection, aggregate_id, version)
         select 'notes', id::text, 1 from notes",
        "insert into lists (id, workspace_id, name, created_by, created_at, updated_at, version)
         select gen_random_uuid(), w, 'Stored list', w, now(), now(), 1
         from (select distinct workspace_id as w from companies) ws",
        "insert into list_items (list_id, company_id, workspace_id, added_by, added_at)
         select l.id, c.id, c.workspace_id, c.workspace_id, now()
         from (select id, workspace_id from companies limit 50000) c
         join lists l on l.workspace_id = c.workspace_id",
        "insert into security_events (id, kind, workspace_id, user_id, ip)
         select gen_random_uuid(), 'login.failed', null, user_id, '192.0.2.1'
         from auth_sessions limit 10000",
        "insert into security_events (id, kind, workspace_id, user_id)
         select gen_random_uuid(), 'member.added', workspace_id, added_by
         from companies limit 10000",
        "analyze",
    ] {
        sqlx::query(statement).execute(&env.pool).await.unwrap();
    }
    let newest: vcintel_infra::event_log::StoredEvent = sqlx::query_as(
        "select event_id, position, tx_id::text as tx_id_text, aggregate_type, aggregate_id,
                sequence, event_type, event_version, payload, metadata, recorded_at
         from events order by position desc limit 1",
    )
    .fetch_one(&env.pool)
    .await
    .unwrap();
    sqlx::query(
        "insert into relay_checkpoints (relay_name, last_tx_id, last_position)
         values ($1, $2::text::xid8, $3)",
    )
    .bind(vcintel_infra::relay::RELAY_NAME)
    .bind(newest.tx_id.to_string())
    .bind(newest.position)
    .execute(&env.pool)
    .await
    .unwrap();
    vcintel_infra::stream::ensure_events_stream(
        &env.js,
        &env.topology(),
        &vcintel_infra::stream::StreamSettings::default(),
    )
    .await
    .unwrap();
    let message = vcintel_infra::wire::EventMessage::from_stored(&newest).unwrap();
    let subject = env.topology().subject_for(
        &message.workspaceid,
        &newest.aggregate_type,
        &newest.event_type,
    );
    let ack = env
        .js
        .publish(subject, serde_json::to_vec(&message).unwrap().into())
        .await
        .unwrap()
        .await
        .unwrap();
    // As if the relay had published and proven the whole history (else it
    // would find 100k events missing from the stream and republish them).
    let created = env.stream().await.info().await.unwrap().created;
    let created =
        chrono::DateTime::from_timestamp_micros((created.unix_timestamp_nanos() / 1_000) as i64)
            .unwrap();
    sqlx::query(
        "update relay_checkpoints set stream_created = $2, verified_seq = $3,
                verified_event_id = $4, verified_tx_id = last_tx_id,
                verified_position = last_position, first_seq_seen = 1
         where relay_name = $1",
    )
    .bind(vcintel_infra::relay::RELAY_NAME)
    .bind(created)
    .bind(ack.sequence as i64)
    .bind(newest.event_id)
    .execute(&env.pool)
    .await
    .unwrap();
}

/// What analysts, scripts and operators do, through every kind of route.
async fn scripted_flow(env: &TestEnv, base: &str, website: &str) {
    let url = |path: &str| format!("{base}{path}");
    let call = |method: Method, path: &str, token: &str, body: Option<Value>| {
        let (url, token) = (url(path), token.to_owned());
        async move {
            env.call(method, &url, Some(&token), None, body.as_ref())
                .await
        }
    };
    // A GET that reflects a write, through its consistency token.
    let read_after = |path: &str, token: &str, written: &Reply| {
        let (url, token) = (url(path), token.to_owned());
        let consistency = written
            .header("x-consistency-token")
            .unwrap_or_default()
            .to_owned();
        async move {
            let response = env
                .http
                .get(&url)
                .bearer_auth(&token)
                .header("x-consistency-token", consistency)
                .send()
                .await
                .unwrap();
            (response.status(), url)
        }
    };
    let ok = |reply: &Reply, what: &str| {
        assert!(
            reply.status.is_success(),
            "{what}: {} {}",
            reply.status,
            reply.body
        );
    };
    let signed_up = env.register(base, "planner@fund.example", "Planner").await;
    let login = env.login(base, "planner@fund.example", PASSWORD).await;
    assert_eq!(login.status, StatusCode::OK);
    let token = login.body["access_token"].as_str().unwrap().to_owned();
    let refresh = signed_up["refresh_token"].as_str().unwrap().to_owned();

    // Companies, many times each, so prepared statements reach their
    // generic plans (Postgres switches after five executions).
    let mut companies = Vec::new();
    for n in 0..8 {
        let added = call(
            Method::POST,
            "/v1/companies",
            &token,
            Some(
                json!({"name": format!("Planned {n}"), "website": format!("planned-{n}.example"),
                        "sector": "AI", "stage": "seed", "location": "Berlin"}),
            ),
        )
        .await;
        ok(&added, "add company");
        companies.push(added.body["id"].as_str().unwrap().to_owned());
    }
    let first = companies[0].clone();
    let taken = call(
        Method::POST,
        "/v1/companies",
        &token,
        Some(json!({"name": "Again", "website": "planned-0.example"})),
    )
    .await;
    assert_eq!(taken.status, StatusCode::CONFLICT);
    for (n, id) in companies.iter().enumerate() {
        let changed = call(
            Method::PATCH,
            &format!("/v1/companies/{id}"),
            &token,
            Some(json!({"website": format!("moved-{n}.example"), "stage": "series_a"})),
        )
        .await;
        ok(&changed, "update company");
        for path in [
            format!("/v1/companies/{id}"),
            format!("/v1/companies/{id}/history"),
        ] {
            let (status, url) = read_after(&path, &token, &changed).await;
            assert_eq!(status, StatusCode::OK, "{url}");
        }
    }
    for query in [
        "",
        "?sector=AI&sort=-score",
        "?stage=series_a&location=berlin&min_score=0&sort=name",
        "?q=planned",
        "?limit=2",
    ] {
        for _ in 0..6 {
            ok(
                &call(Method::GET, &format!("/v1/companies{query}"), &token, None).await,
                query,
            );
        }
    }

    // Notes and lists.
    let mut notes = Vec::new();
    for n in 0..6 {
        let note = call(
            Method::POST,
            &format!("/v1/companies/{first}/notes"),
            &token,
            Some(json!({"content": format!("Met the founders, take {n}")})),
        )
        .await;
        ok(&note, "add note");
        notes.push(note.body["id"].as_str().unwrap().to_owned());
    }
    for note in &notes {
        let edited = call(
            Method::PATCH,
            &format!("/v1/notes/{note}"),
            &token,
            Some(json!({"content": "Edited"})),
        )
        .await;
        ok(&edited, "edit note");
        let (status, url) = read_after(&format!("/v1/notes/{note}"), &token, &edited).await;
        assert_eq!(status, StatusCode::OK, "{url}");
    }
    for _ in 0..6 {
        ok(
            &call(
                Method::GET,
                &format!("/v1/companies/{first}/notes"),
                &token,
                None,
            )
            .await,
            "notes",
        );
    }
    let list = call(
        Method::POST,
        "/v1/lists",
        &token,
        Some(json!({"name": "Shortlist"})),
    )
    .await;
    ok(&list, "create list");
    let list_id = list.body["id"].as_str().unwrap().to_owned();
    let mut listed = list;
    for id in &companies {
        listed = call(
            Method::PUT,
            &format!("/v1/lists/{list_id}/companies/{id}"),
            &token,
            None,
        )
        .await;
        ok(&listed, "add to list");
    }
    for path in [
        "/v1/lists".to_owned(),
        format!("/v1/lists/{list_id}"),
        format!("/v1/lists/{list_id}/companies"),
    ] {
        for _ in 0..6 {
            let (status, url) = read_after(&path, &token, &listed).await;
            assert_eq!(status, StatusCode::OK, "{url}");
        }
    }
    let search = call(
        Method::POST,
        "/v1/saved-searches",
        &token,
        Some(json!({"name": "Berlin AI", "filters": {"sector": "AI", "location": "Berlin"}})),
    )
    .await;
    ok(&search, "save search");
    let search_id = search.body["id"].as_str().unwrap().to_owned();
    for path in [
        "/v1/saved-searches".to_owned(),
        format!("/v1/saved-searches/{search_id}"),
        format!("/v1/saved-searches/{search_id}/results"),
    ] {
        for _ in 0..6 {
            let (status, url) = read_after(&path, &token, &search).await;
            assert_eq!(status, StatusCode::OK, "{url}");
        }
    }

    // Enrichment, through the worker and the model.
    let enriched = call(
        Method::POST,
        "/v1/companies",
        &token,
        Some(json!({"name": "Quillstack", "website": website})),
    )
    .await;
    ok(&enriched, "add the enriched company");
    let enriched = enriched.body["id"].as_str().unwrap().to_owned();
    let job = call(
        Method::POST,
        &format!("/v1/companies/{enriched}/enrichments"),
        &token,
        None,
    )
    .await;
    assert_eq!(job.status, StatusCode::ACCEPTED, "{}", job.body);
    let job_id = job.body["job_id"].as_str().unwrap().to_owned();
    eventually(
        Duration::from_secs(60),
        "the enrichment to succeed",
        || async {
            let reply = call(
                Method::GET,
                &format!("/v1/enrichment-jobs/{job_id}"),
                &token,
                None,
            )
            .await;
            (reply.body["state"] == "succeeded").then_some(())
        },
    )
    .await;

    // Workspace, identity, audit, usage, health.
    let key = call(
        Method::POST,
        "/v1/workspace/api-keys",
        &token,
        Some(json!({"name": "sync", "role": "viewer"})),
    )
    .await;
    ok(&key, "create key");
    let key = key.body["key"].as_str().unwrap().to_owned();
    for path in [
        "/v1/me",
        "/v1/workspaces",
        "/v1/workspace",
        "/v1/workspace/members",
        "/v1/workspace/api-keys",
        "/v1/workspace/invitations",
        "/v1/workspace/security-events",
        "/v1/workspace/thesis",
        "/v1/usage",
        "/v1/events",
        "/v1/events?aggregate_type=company&limit=5",
    ] {
        for credential in [&token, &key] {
            for _ in 0..3 {
                let reply = call(Method::GET, path, credential, None).await;
                assert_ne!(reply.status, StatusCode::INTERNAL_SERVER_ERROR, "{path}");
            }
        }
    }
    let invited = call(
        Method::POST,
        "/v1/workspace/members",
        &token,
        Some(json!({"email": "newcomer@fund.example", "role": "member"})),
    )
    .await;
    ok(&invited, "invite");
    for _ in 0..6 {
        let ready = env.http.get(url("/health/ready")).send().await.unwrap();
        assert_ne!(ready.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
    let refreshed = env
        .call(
            Method::POST,
            &url("/v1/auth/refresh"),
            None,
            None,
            Some(&json!({"refresh_token": refresh})),
        )
        .await;
    ok(&refreshed, "refresh");

    // A deletion reaches notes and lists.
    let deleted = call(
        Method::DELETE,
        &format!("/v1/companies/{first}"),
        &token,
        None,
    )
    .await;
    ok(&deleted, "delete company");
    let token_after = deleted.header("x-consistency-token").unwrap().to_owned();
    let gone = env
        .http
        .get(url(&format!("/v1/notes/{}", notes[0])))
        .bearer_auth(&token)
        .header("x-consistency-token", token_after)
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
    ok(
        &call(Method::POST, "/v1/auth/logout", &token, None).await,
        "logout",
    );
}
