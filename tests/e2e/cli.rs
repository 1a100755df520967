//! The `vcintel` binary's own subcommands.

use crate::helpers::{admin_database_url, eventually, TestEnv, JWT_SECRET};
use reqwest::{Method, StatusCode};
use sqlx::{Connection, Executor, PgConnection};
use std::collections::HashSet;
use std::process::Command;
use std::time::Duration;
use uuid::Uuid;
use vcintel_domain::Role;

fn vcintel(args: &[&str], database_url: &str) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_vcintel"))
        .env(
            "VCINTEL_PRIVACY_MASTER_KEY",
            crate::helpers::PRIVACY_MASTER_KEY,
        )
        .args(args)
        .env("DATABASE_URL", database_url)
        .env("VCINTEL_JWT_SECRET", JWT_SECRET)
        .output()
        .expect("run vcintel");
    assert!(
        output.status.success(),
        "vcintel {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test]
async fn migrate_up_down_and_status_walk_the_migrations_both_ways() {
    let admin = admin_database_url();
    let name = format!("vcintel_cli_{}", Uuid::new_v4().simple());
    let mut conn = PgConnection::connect(&admin).await.unwrap();
    conn.execute(format!("create database {name}").as_str())
        .await
        .unwrap();
    let url = {
        let (base, _) = admin.rsplit_once('/').unwrap();
        format!("{base}/{name}")
    };

    let versions: Vec<i64> = vcintel_infra::db::MIGRATOR
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .map(|m| m.version)
        .collect();
    let count = versions.len();
    let status = vcintel(&["migrate", "status"], &url);
    assert_eq!(status.matches("pending").count(), count, "{status}");
    vcintel(&["migrate", "up"], &url);
    let status = vcintel(&["migrate", "status"], &url);
    assert_eq!(status.matches("applied").count(), count, "{status}");

    // Down walks back one migration at a time, newest first.
    let mut db = PgConnection::connect(&url).await.unwrap();
    for version in versions.iter().rev() {
        let reverted = vcintel(&["migrate", "down"], &url);
        assert!(
            reverted.contains(&format!("reverted {version}")),
            "{reverted}"
        );
        if *version == 20261121000002 {
            let companies: Option<String> =
                sqlx::query_scalar("select to_regclass('companies')::text")
                    .fetch_one(&mut db)
                    .await
                    .unwrap();
            assert_eq!(companies, None, "the read model table is gone");
        }
    }
    let events: Option<String> = sqlx::query_scalar("select to_regclass('events')::text")
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(events, None, "the event store is gone");
    let left: Vec<String> = sqlx::query_scalar(
        "select tablename::text from pg_tables
         where schemaname = 'public' and tablename <> '_sqlx_migrations'",
    )
    .fetch_all(&mut db)
    .await
    .unwrap();
    assert!(left.is_empty(), "every down migration cleans up: {left:?}");
    assert!(vcintel(&["migrate", "down"], &url).contains("nothing to revert"));
    vcintel(&["migrate", "up"], &url);
    let status = vcintel(&["migrate", "status"], &url);
    assert_eq!(status.matches("applied").count(), count, "{status}");
}

#[tokio::test]
async fn token_issue_mints_a_token_the_api_accepts_for_that_workspace_user_and_role() {
    let env = TestEnv::new().await;
    let workspace = Uuid::now_v7();
    let user = Uuid::now_v7();
    let token = vcintel(
        &[
            "token",
            "issue",
            "--workspace",
            &workspace.to_string(),
            "--user",
            &user.to_string(),
            "--role",
            "viewer",
        ],
        &env.database_url,
    );
    let claims = env.keys.verify(token.trim()).expect("a valid token");
    assert_eq!(claims.ws, Some(workspace));
    assert_eq!(claims.sub, user);
    assert_eq!(claims.role, Some(Role::Viewer));
    assert_eq!(claims.sid, None, "a development token has no session");
}

#[tokio::test]
async fn demo_seed_fills_a_workspace_a_new_user_signs_in_to_and_rerunning_adds_nothing() {
    let mut env = TestEnv::new().await;
    let password = "Demo-password-for-tests-42";
    let database_url = env.database_url.clone();
    let seed = || {
        let output = Command::new(env!("CARGO_BIN_EXE_vcintel"))
            .env(
                "VCINTEL_PRIVACY_MASTER_KEY",
                crate::helpers::PRIVACY_MASTER_KEY,
            )
            .args(["demo", "seed", "--email", "analyst@demo.test"])
            .env("DATABASE_URL", &database_url)
            .env("VCINTEL_DEMO_PASSWORD", password)
            .output()
            .expect("run vcintel");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(!stdout.contains(password), "the password is never printed");
        stdout
    };
    let first = seed();
    assert!(first.contains("(account created)"), "{first}");
    assert!(
        first.contains("300 companies added (0 already there)"),
        "{first}"
    );

    let base = env.start_all().await;
    let session = env.login(&base, "analyst@demo.test", password).await;
    assert_eq!(session.status, StatusCode::OK, "{}", session.body);
    let token = session.body["access_token"].as_str().unwrap().to_owned();
    let env = &env;
    let get = |path: String| {
        let (base, token) = (base.clone(), token.clone());
        async move {
            env.call(
                Method::GET,
                &format!("{base}{path}"),
                Some(&token),
                None,
                None,
            )
            .await
        }
    };
    let get = &get;

    // Everything arrives through relay and projections.
    let companies = eventually(Duration::from_secs(60), "the sample projected", || async {
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let query = cursor
                .as_ref()
                .map_or(String::new(), |c| format!("&cursor={c}"));
            let page = get(format!("/v1/companies?limit=200{query}")).await;
            all.extend(page.body["items"].as_array().cloned().unwrap_or_default());
            match page.body["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => break,
            }
        }
        (all.len() == 300).then_some(all)
    })
    .await;
    let sectors: HashSet<&str> = companies
        .iter()
        .filter_map(|c| c["sector"].as_str())
        .collect();
    let stages: HashSet<&str> = companies
        .iter()
        .filter_map(|c| c["stage"].as_str())
        .collect();
    assert!(
        sectors.len() >= 10 && stages.len() >= 5,
        "{sectors:?} {stages:?}"
    );

    let lists = eventually(Duration::from_secs(60), "lists projected", || async {
        let lists = get("/v1/lists".to_owned()).await;
        let items = lists.body["items"].as_array().cloned().unwrap_or_default();
        (items.len() == 4 && items.iter().all(|l| l["company_count"].as_i64() > Some(0)))
            .then_some(items)
    })
    .await;
    let list_id = lists[0]["id"].as_str().unwrap();
    let members = get(format!("/v1/lists/{list_id}/companies")).await;
    let member = members.body["items"][0]["company_id"].as_str().unwrap();
    let detail = get(format!("/v1/companies/{member}")).await;
    assert!(
        detail.body["lists"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["id"] == list_id),
        "{}",
        detail.body
    );

    let noted = eventually(Duration::from_secs(60), "notes projected", || async {
        for company in &companies {
            let id = company["id"].as_str().unwrap();
            let detail = get(format!("/v1/companies/{id}")).await;
            if detail.body["note_count"].as_i64() > Some(0) {
                return Some(detail.body);
            }
        }
        None
    })
    .await;
    assert!(noted["notes"][0]["content"].as_str().unwrap().len() > 20);

    let searches = get("/v1/saved-searches".to_owned()).await;
    let searches = searches.body["items"].as_array().unwrap().clone();
    assert_eq!(searches.len(), 3);
    let robotics = searches
        .iter()
        .find(|s| s["name"] == "Anything robotics")
        .unwrap();
    let results = get(format!(
        "/v1/saved-searches/{}/results",
        robotics["id"].as_str().unwrap()
    ))
    .await;
    assert_eq!(results.status, StatusCode::OK, "{}", results.body);
    assert!(!results.body["items"].as_array().unwrap().is_empty());

    // Enriched offline through the job's events: scores against the demo
    // thesis to sort and filter by, and the pages' words to search.
    assert!(first.contains("300 enrichments"), "{first}");
    let top = eventually(Duration::from_secs(60), "enrichments projected", || async {
        let ranked = get("/v1/companies?sort=-score&limit=5".to_owned()).await;
        let first = ranked.body["items"].as_array()?.first()?.clone();
        (first["score"].as_i64()? > 0).then_some(first)
    })
    .await;
    let strong = get("/v1/companies?min_score=60&limit=200".to_owned()).await;
    let strong = strong.body["items"].as_array().unwrap().clone();
    assert!(
        !strong.is_empty() && strong.len() < 300,
        "some companies fit the thesis well, not all: {}",
        strong.len()
    );
    assert!(strong.iter().all(|c| c["score"].as_i64() >= Some(60)));
    let detail = get(format!("/v1/companies/{}", top["id"].as_str().unwrap())).await;
    assert!(
        detail.body["enrichment"]["summary"]
            .as_str()
            .is_some_and(|s| !s.is_empty()),
        "{}",
        detail.body
    );
    let robots = eventually(Duration::from_secs(30), "page words searchable", || async {
        let found = get("/v1/companies?q=robots&limit=200".to_owned()).await;
        let items = found.body["items"].as_array()?.clone();
        (!items.is_empty()).then_some(items)
    })
    .await;
    assert!(
        robots.iter().all(|c| c["sector"] == "Robotics"),
        "{robots:?}"
    );

    // A second run finds everything there and appends nothing.
    let events_before: i64 = sqlx::query_scalar("select count(*) from events")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    let second = seed();
    assert!(
        second.contains("0 companies added (300 already there), 0 notes, 0 lists"),
        "{second}"
    );
    let events_after: i64 = sqlx::query_scalar("select count(*) from events")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(events_before, events_after);
}

fn vcintel_output(args: &[&str], database_url: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_vcintel"))
        .env(
            "VCINTEL_PRIVACY_MASTER_KEY",
            crate::helpers::PRIVACY_MASTER_KEY,
        )
        .args(args)
        .env("DATABASE_URL", database_url)
        .output()
        .expect("run vcintel")
}

#[tokio::test]
async fn events_tail_export_and_verify_read_the_store_in_commit_order() {
    let mut env = TestEnv::new().await;
    let base = env.start_all().await;
    let token = env.token(&env.actor(Uuid::now_v7(), Role::Member));
    let mut ids = Vec::new();
    for i in 0..5 {
        let (_, body) = env
            .post_json(
                &format!("{base}/v1/companies"),
                &token,
                &serde_json::json!({"name": format!("Tailed {i}"), "website": format!("tailed{i}.example")}),
            )
            .await;
        ids.push(body["id"].as_str().unwrap().to_owned());
    }
    env.post_json(
        &format!("{base}/v1/companies/{}/notes", ids[0]),
        &token,
        &serde_json::json!({"content": "A note"}),
    )
    .await;
    let url = env.database_url.clone();
    // Followers only see events below every running transaction; once the
    // relay has published all six, so will `tail`.
    crate::helpers::eventually(Duration::from_secs(20), "all six published", || async {
        (env.stream_message_count().await >= 6).then_some(())
    })
    .await;

    let tail = vcintel(&["events", "tail"], &url);
    let lines: Vec<serde_json::Value> = tail
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 6);
    assert_eq!(lines[0]["specversion"], "1.0");
    assert_eq!(lines[0]["type"], "vcintel.company.added.v1");
    assert_eq!(lines[5]["type"], "vcintel.note.added.v2");
    assert!(
        lines[5]["data"]["content"]["sealed"].is_string(),
        "tail shows events as stored: {}",
        lines[5]
    );
    let only_notes = vcintel(&["events", "tail", "--type", "note.added"], &url);
    assert_eq!(only_notes.lines().count(), 1);
    let third = lines[2]["position"].as_i64().unwrap().to_string();
    let rest = vcintel(&["events", "tail", "--from", &third], &url);
    assert_eq!(rest.lines().count(), 3, "after the third event");

    let file = std::env::temp_dir().join(format!("vcintel-export-{}.ndjson", Uuid::new_v4()));
    vcintel(
        &["events", "export", "--output", file.to_str().unwrap()],
        &url,
    );
    let exported = std::fs::read_to_string(&file).unwrap();
    std::fs::remove_file(&file).ok();
    assert_eq!(exported, tail, "export and tail agree");

    let verified = vcintel(&["events", "verify"], &url);
    assert!(
        verified.contains("6 events in 6 aggregates: no gaps, everything decodes"),
        "{verified}"
    );

    // A gap and an event today's code cannot read are both reported.
    sqlx::query(
        "insert into events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         values ('company', $1, 3, 'company.renamed', '1', '{\"company.renamed\": {}}', '{}')",
    )
    .bind(&ids[1])
    .execute(&env.pool)
    .await
    .unwrap();
    let broken = vcintel_output(&["events", "verify"], &url);
    assert!(!broken.status.success());
    let report = String::from_utf8_lossy(&broken.stdout);
    assert!(report.contains("2 problems"), "{report}");
    assert!(
        report.contains("(a gap)") && report.contains("does not decode"),
        "{report}"
    );
}

#[tokio::test]
async fn projections_status_shows_failures_and_a_parked_event_is_retried_after_a_fix() {
    let mut env = TestEnv::new().await;
    let base = env.start_all().await;
    let token = env.token(&env.actor(Uuid::now_v7(), Role::Member));
    env.post_json(
        &format!("{base}/v1/companies"),
        &token,
        &serde_json::json!({"name": "Healthy", "website": "healthy.example"}),
    )
    .await;
    // An event today's code cannot read, as a bad deploy might have written.
    let broken = Uuid::now_v7();
    let workspace = Uuid::now_v7();
    sqlx::query(
        "insert into events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         values ('company', $1, 1, 'company.added', '1', '{\"company.added\": {\"name\": 42}}', $2)",
    )
    .bind(broken.to_string())
    .bind(serde_json::json!({"workspace_id": workspace.to_string()}))
    .execute(&env.pool)
    .await
    .unwrap();
    let status = || env.vcintel(&["projections", "status"]);
    let report =
        crate::helpers::eventually(Duration::from_secs(20), "the failure recorded", || async {
            let report = status();
            report
                .lines()
                .any(|l| l.starts_with("companies") && l.contains(&broken.to_string()))
                .then_some(report)
        })
        .await;
    for model in vcintel_projections::READ_MODELS {
        assert!(
            report.lines().any(|l| l.starts_with(model.name)),
            "{report}"
        );
    }
    let companies = report
        .lines()
        .find(|l| l.starts_with("companies "))
        .unwrap();
    assert!(companies.contains("cannot be decoded"), "{companies}");
    let users = report.lines().find(|l| l.starts_with("users ")).unwrap();
    assert!(users.ends_with("none"), "{users}");

    // After 3 deliveries the event is parked and the projection moves on.
    let dead = |line: &str| {
        line.split_whitespace()
            .nth(4)
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    crate::helpers::eventually(Duration::from_secs(30), "the event parked", || async {
        let report = status();
        let companies = report
            .lines()
            .find(|l| l.starts_with("companies "))
            .unwrap()
            .to_owned();
        (dead(&companies) == 1).then_some(())
    })
    .await;

    // Fix the cause (here: the stored event), then retry the dead letter.
    sqlx::query("update events set payload = $2 where aggregate_id = $1")
        .bind(broken.to_string())
        .bind(serde_json::json!({"company.added": {
            "company_id": broken, "workspace_id": workspace, "added_by": Uuid::now_v7(),
            "name": "Fixed", "website": "fixed.example", "sector": null, "stage": null, "location": null}}))
        .execute(&env.pool)
        .await
        .unwrap();
    let retried = Command::new(env!("CARGO_BIN_EXE_vcintel"))
        .env(
            "VCINTEL_PRIVACY_MASTER_KEY",
            crate::helpers::PRIVACY_MASTER_KEY,
        )
        .args(["projections", "retry-dead-letters", "companies"])
        .env("DATABASE_URL", &env.database_url)
        .env("NATS_URL", crate::helpers::nats_url())
        .env("VCINTEL_NATS_PREFIX", &env.prefix)
        .output()
        .expect("run vcintel");
    assert!(
        retried.status.success(),
        "{}",
        String::from_utf8_lossy(&retried.stderr)
    );
    assert!(String::from_utf8_lossy(&retried.stdout).contains("republished 1 parked events"));
    let owner = env.token(&env.actor(workspace, Role::Owner));
    crate::helpers::eventually(
        Duration::from_secs(20),
        "the fixed company projected",
        || async {
            let (status, body) = env
                .get_json(&format!("{base}/v1/companies/{broken}"), &owner)
                .await;
            (status == reqwest::StatusCode::OK && body["name"] == "Fixed").then_some(())
        },
    )
    .await;
    let report = status();
    let companies = report
        .lines()
        .find(|l| l.starts_with("companies "))
        .unwrap();
    assert_eq!(dead(companies), 0, "{report}");
}
