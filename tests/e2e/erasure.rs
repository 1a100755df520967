//! Erasure by crypto-shredding, end to end on a real Postgres, nats-server
//! and `vcintel serve` process: personal values are sealed as they are
//! written; once a person is erased, a byte search of every table, the
//! stream, the service's log and a restore of a backup taken before the
//! erasure finds none of their values, while the log keeps every event in
//! the same order with their fields masked.

use crate::helpers::{eventually, nats_url, url_with_database, KillOnDrop, TestEnv, PASSWORD};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;
use std::time::Duration;

/// The tables (of any schema but the catalogs) whose rows hold `needle`,
/// as text or as the hex of bytes.
async fn tables_holding(pool: &PgPool, needle: &str) -> Vec<String> {
    let tables: Vec<(String, String)> = sqlx::query_as(
        "select table_schema::text, table_name::text from information_schema.tables
         where table_type = 'BASE TABLE'
           and table_schema not in ('pg_catalog', 'information_schema')",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert!(tables.len() > 30, "{tables:?}");
    let hex: String = needle.bytes().map(|b| format!("{b:02x}")).collect();
    let mut holding = Vec::new();
    for (schema, table) in tables {
        let found: bool = sqlx::query_scalar(&format!(
            r#"select exists(select 1 from "{schema}"."{table}" t
                             where t::text like '%' || $1 || '%'
                                or t::text like '%' || $2 || '%')"#
        ))
        .bind(needle)
        .bind(&hex)
        .fetch_one(pool)
        .await
        .unwrap();
        if found {
            holding.push(format!("{schema}.{table}"));
        }
    }
    holding
}

/// Runs the `vcintel` binary against this test's database and stream
/// without blocking the runtime (the service under test runs on it, and
/// the command may wait on a lock the service holds); its standard output.
async fn vcintel(env: &TestEnv, args: &[&str]) -> String {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_vcintel"))
        .args(args)
        .env("DATABASE_URL", &env.database_url)
        .env("NATS_URL", nats_url())
        .env("VCINTEL_NATS_PREFIX", &env.prefix)
        .env("VCINTEL_JWT_SECRET", crate::helpers::JWT_SECRET)
        .env(
            "VCINTEL_PRIVACY_MASTER_KEY",
            crate::helpers::PRIVACY_MASTER_KEY,
        )
        .kill_on_drop(true)
        .output()
        .await
        .expect("run vcintel");
    assert!(
        output.status.success(),
        "vcintel {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Every read model's rows, each table in a stable order, without the
/// time each row was projected (a rebuild projects it again, later).
async fn read_models(pool: &PgPool) -> Vec<(String, Value)> {
    let mut all = Vec::new();
    for model in vcintel_projections::READ_MODELS {
        for table in model.tables {
            let rows: Value = sqlx::query_scalar(&format!(
                "select coalesce(json_agg(to_jsonb(t) - 'projected_at' order by t::text), '[]'::json)
                 from {table} t"
            ))
            .fetch_one(pool)
            .await
            .unwrap();
            all.push(((*table).to_owned(), rows));
        }
    }
    all
}

/// The workspace's audit feed: (event id, type, data) in feed order.
async fn feed(env: &TestEnv, base: &str, token: &str) -> Vec<(String, String, Value)> {
    let (status, page) = env
        .get_json(&format!("{base}/v1/events?limit=200"), token)
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| {
            (
                e["id"].as_str().unwrap().to_owned(),
                e["type"].as_str().unwrap().to_owned(),
                e["data"].clone(),
            )
        })
        .collect()
}

#[tokio::test]
async fn an_erased_person_can_be_read_nowhere_and_the_log_keeps_its_shape() {
    let env = TestEnv::new().await;
    let log = std::env::temp_dir().join(format!("{}-service.log", env.prefix));
    let (service, base) = env
        .spawn_logged(
            "api,relay,projector",
            &[
                ("VCINTEL_ERASURE_GRACE_HOURS", "0"),
                ("VCINTEL_ERASURE_SWEEP_SECS", "1"),
                ("VCINTEL_SNAPSHOT_EVERY", "2"),
            ],
            &log,
        )
        .await;
    // Killed however the test ends.
    let mut service = KillOnDrop(service);
    let email = format!("ada-{}@example.com", env.prefix);
    let name = format!("Ada Lovelace {}", env.prefix);
    let note = format!("ada-private-thought-{}", env.prefix);
    let ada = env.register(&base, &email, &name).await;
    let bob = env
        .register(&base, &format!("bob-{}@example.com", env.prefix), "Bob")
        .await;
    let ada_token = ada["access_token"].as_str().unwrap().to_owned();
    let bob_token = bob["access_token"].as_str().unwrap().to_owned();
    let post = |token: &str, path: &str, body: Value| {
        let (env, url, token) = (&env, format!("{base}{path}"), token.to_owned());
        async move {
            let reply = env
                .call(Method::POST, &url, Some(&token), None, Some(&body))
                .await;
            assert!(reply.status.is_success(), "{url}: {}", reply.body);
            reply.body
        }
    };
    let company = post(
        &ada_token,
        "/v1/companies",
        json!({"name": "Analytical Engines", "website": "engines.example"}),
    )
    .await;
    let company = company["id"].as_str().unwrap().to_owned();
    let notes = format!("/v1/companies/{company}/notes");
    let written = post(&ada_token, &notes, json!({"content": note})).await;
    // Edited twice: the note's aggregate is snapshotted (every 2 events).
    let note_id = written["id"].as_str().unwrap().to_owned();
    for edit in 1..=2 {
        let reply = env
            .call(
                Method::PATCH,
                &format!("{base}/v1/notes/{note_id}"),
                Some(&ada_token),
                None,
                Some(&json!({"content": format!("{note} (edit {edit})")})),
            )
            .await;
        assert!(reply.status.is_success(), "{}", reply.body);
    }
    // Bob invites her address: an invitee subject of its own.
    post(
        &bob_token,
        "/v1/workspace/members",
        json!({"email": email, "role": "member"}),
    )
    .await;

    // Sealed as written: the log never held her values in the clear.
    for needle in [&email, &name, &note] {
        let events = tables_holding(&env.pool, needle).await;
        assert!(
            !events.contains(&"public.events".to_owned()),
            "{needle} in the events"
        );
    }
    // Readers see them opened: her own workspace's feed (read with an
    // operator's development token), its members, and Bob's feed.
    let ada_workspace = ada["default_workspace_id"].as_str().unwrap().to_owned();
    let auditor =
        env.token(&env.actor(ada_workspace.parse().unwrap(), vcintel_domain::Role::Owner));
    let (_, members) = env
        .get_json(&format!("{base}/v1/workspace/members"), &auditor)
        .await;
    assert!(members.to_string().contains(&email), "{members}");
    let hers_before = feed(&env, &base, &auditor).await;
    assert!(
        hers_before
            .iter()
            .any(|(_, kind, data)| kind == "note.added" && data["content"] == note),
        "{hers_before:?}"
    );
    let before = eventually(
        Duration::from_secs(20),
        "the invitation in the feed",
        || async {
            let events = feed(&env, &base, &bob_token).await;
            events
                .iter()
                .any(|(_, kind, data)| kind == "workspace.member_invited" && data["email"] == email)
                .then_some(events)
        },
    )
    .await;

    let backups = std::env::temp_dir().join(format!("{}-backups", env.prefix));
    let (older, newer) = (backups.join("older"), backups.join("newer"));
    vcintel(
        &env,
        &["backup", "create", "--output", &older.display().to_string()],
    )
    .await;

    // The erasure: the password again, then the (zero) grace period.
    let url = format!("{base}/v1/me/erasure");
    let wrong = env
        .call(
            Method::POST,
            &url,
            Some(&ada_token),
            None,
            Some(&json!({"password": "not-her-password-at-all"})),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN, "{}", wrong.body);
    let asked = env
        .call(
            Method::POST,
            &url,
            Some(&ada_token),
            None,
            Some(&json!({"password": PASSWORD})),
        )
        .await;
    assert_eq!(asked.status, StatusCode::ACCEPTED, "{}", asked.body);
    assert!(asked.body["erase_after"].is_string(), "{}", asked.body);
    eventually(Duration::from_secs(30), "the erasure projected", || async {
        let row: Option<(String, String)> =
            sqlx::query_as("select email, name from users where id = $1")
                .bind(uuid::Uuid::parse_str(ada["user_id"].as_str().unwrap()).unwrap())
                .fetch_optional(&env.pool)
                .await
                .unwrap();
        (row == Some(("[erased]".to_owned(), "[erased]".to_owned()))).then_some(())
    })
    .await;
    eventually(Duration::from_secs(20), "the notes masked", || async {
        let content: Option<String> = sqlx::query_scalar("select content from notes")
            .fetch_optional(&env.pool)
            .await
            .unwrap();
        (content.as_deref() == Some("[erased]")).then_some(())
    })
    .await;

    // Her sessions ended; her address is free again.
    let (status, _) = env.get_json(&format!("{base}/v1/me"), &ada_token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let login = env.login(&base, &email, PASSWORD).await;
    assert_eq!(login.status, StatusCode::UNAUTHORIZED, "{}", login.body);

    // The same events in the same order; her values masked.
    let after = feed(&env, &base, &bob_token).await;
    let ids = |events: &[(String, String, Value)]| -> Vec<String> {
        events.iter().map(|(id, ..)| id.clone()).collect()
    };
    assert_eq!(
        ids(&after),
        ids(&before),
        "the feed keeps its events and order"
    );
    let invited = after
        .iter()
        .find(|(_, kind, _)| kind == "workspace.member_invited")
        .unwrap();
    assert_eq!(invited.2["email"], "[erased]", "{invited:?}");
    let hers_after = feed(&env, &base, &auditor).await;
    assert_eq!(
        ids(&hers_after)[..hers_before.len()],
        ids(&hers_before)[..],
        "her workspace's feed keeps its events and order"
    );
    for (_, kind, data) in &hers_after {
        match kind.as_str() {
            "note.added" | "note.edited" => assert_eq!(data["content"], "[erased]"),
            "user.registered" => {
                assert_eq!(
                    (&data["email"], &data["name"]),
                    (&json!("[erased]"), &json!("[erased]"))
                )
            }
            _ => {}
        }
    }
    // The API's cached copy of her workspace forgot her address too.
    let (_, members) = env
        .get_json(&format!("{base}/v1/workspace/members"), &auditor)
        .await;
    assert!(!members.to_string().contains(&email), "{members}");

    vcintel(
        &env,
        &["backup", "create", "--output", &newer.display().to_string()],
    )
    .await;

    // Nothing of hers anywhere: every table, the stream, the log.
    for needle in [&email, &name, &note] {
        assert_eq!(
            tables_holding(&env.pool, needle).await,
            Vec::<String>::new(),
            "{needle} survives in the database"
        );
        for message in env.stream_messages().await {
            assert!(
                !message.body.to_string().contains(needle.as_str()),
                "{needle} on the stream: {}",
                message.body
            );
        }
    }

    // Rebuilt from the events, every read model equals the live one.
    let live = read_models(&env.pool).await;
    vcintel(&env, &["projections", "rebuild"]).await;
    assert_eq!(
        read_models(&env.pool).await,
        live,
        "rebuilds equal the live tables"
    );

    // A backup from before the erasure, restored with the newer backup's
    // record of erasures, holds nothing of hers either.
    let target_name = format!("{}_restored", env.prefix);
    sqlx::query(&format!("create database {target_name}"))
        .execute(&env.pool)
        .await
        .unwrap();
    let target = url_with_database(&env.database_url, &target_name);
    let restored = std::process::Command::new(env!("CARGO_BIN_EXE_vcintel"))
        .env(
            "VCINTEL_PRIVACY_MASTER_KEY",
            crate::helpers::PRIVACY_MASTER_KEY,
        )
        .env("DATABASE_URL", &target)
        .args(["backup", "restore", &older.display().to_string()])
        .args(["--erasures-from", &newer.display().to_string()])
        .output()
        .unwrap();
    assert!(
        restored.status.success(),
        "{}",
        String::from_utf8_lossy(&restored.stderr)
    );
    let restored_pool = PgPool::connect(&target).await.unwrap();
    for needle in [&email, &name, &note] {
        assert_eq!(
            tables_holding(&restored_pool, needle).await,
            Vec::<String>::new(),
            "{needle} comes back with the older backup"
        );
    }
    restored_pool.close().await;

    // Anyone may take the address now.
    env.register(&base, &email, "Someone Else").await;
    let _ = service.0.kill();
    let _ = service.0.wait();
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.len() > 100, "the service logged: {logged}");
    for needle in [&email, &name, &note] {
        assert!(!logged.contains(needle.as_str()), "{needle} in the log");
    }
    let _ = std::fs::remove_dir_all(&backups);
    let _ = std::fs::remove_file(&log);
}

#[tokio::test]
async fn an_erasure_can_be_cancelled_old_events_are_sealed_in_place_and_an_operator_erases_at_once()
{
    let mut env = TestEnv::new().await;
    let base = env.start_all().await;
    let email = format!("grace-{}@example.com", env.prefix);
    let name = format!("Grace Hopper {}", env.prefix);
    let grace = env.register(&base, &email, &name).await;
    let token = grace["access_token"].as_str().unwrap().to_owned();
    let user = grace["user_id"].as_str().unwrap().to_owned();
    let url = format!("{base}/v1/me/erasure");

    // Asked for (the default grace period: days), then withdrawn.
    let asked = env
        .call(
            Method::POST,
            &url,
            Some(&token),
            None,
            Some(&json!({"password": PASSWORD})),
        )
        .await;
    assert_eq!(asked.status, StatusCode::ACCEPTED, "{}", asked.body);
    let due: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(asked.body["erase_after"].clone()).unwrap();
    assert!(due > chrono::Utc::now() + chrono::Duration::hours(71));
    let cancelled = env
        .call(Method::DELETE, &url, Some(&token), None, None)
        .await;
    assert_eq!(
        cancelled.status,
        StatusCode::NO_CONTENT,
        "{}",
        cancelled.body
    );
    let again = env
        .call(Method::DELETE, &url, Some(&token), None, None)
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND, "{}", again.body);
    assert_eq!(
        again.headers["content-type"], "application/problem+json",
        "{}",
        again.body
    );
    let malformed = env
        .call(Method::POST, &url, Some(&token), None, Some(&json!({})))
        .await;
    assert_eq!(malformed.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        malformed.body.to_string().contains("password"),
        "{}",
        malformed.body
    );

    // An event an earlier release wrote in the clear (v1) ...
    let registered: Value = sqlx::query_scalar(
        "select payload::jsonb from events
         where aggregate_id = $1 and event_type = 'user.registered'",
    )
    .bind(&user)
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert!(registered["user.registered"]["email"]["sealed"].is_string());
    let mut plain = registered.clone();
    plain["user.registered"]["email"] = json!(email);
    plain["user.registered"]["name"] = json!(name);
    sqlx::query(
        "update events set payload = $2::json, event_version = '1'
         where aggregate_id = $1 and event_type = 'user.registered'",
    )
    .bind(&user)
    .bind(plain.to_string())
    .execute(&env.pool)
    .await
    .unwrap();
    // ... reads the same, and `privacy migrate` seals it where it lies.
    let (status, me) = env.get_json(&format!("{base}/v1/me"), &token).await;
    assert_eq!(
        (status, me["email"].as_str()),
        (StatusCode::OK, Some(email.as_str()))
    );
    let migrated = vcintel(&env, &["privacy", "migrate"]).await;
    assert!(migrated.contains("1 event(s) sealed"), "{migrated}");
    let (version, stored): (String, String) = sqlx::query_as(
        "select event_version, payload::text from events
         where aggregate_id = $1 and event_type = 'user.registered'",
    )
    .bind(&user)
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!(version, "2");
    assert!(
        !stored.contains(&email) && !stored.contains(&name),
        "{stored}"
    );
    let (_, me) = env.get_json(&format!("{base}/v1/me"), &token).await;
    assert_eq!(me["name"].as_str(), Some(name.as_str()), "opened as before");
    assert!(env
        .vcintel(&["privacy", "migrate"])
        .contains("sealed already"));

    // The operator's erasure does not wait for a grace period.
    let erased = vcintel(&env, &["privacy", "erase", &user]).await;
    assert!(erased.contains("erased"), "{erased}");
    eventually(Duration::from_secs(20), "the erasure projected", || async {
        let email_now: Option<String> =
            sqlx::query_scalar("select email from users where id = $1::uuid")
                .bind(&user)
                .fetch_optional(&env.pool)
                .await
                .unwrap();
        (email_now.as_deref() == Some("[erased]")).then_some(())
    })
    .await;
    let repeated = vcintel(&env, &["privacy", "erase", &user]).await;
    assert!(repeated.contains("already recorded"), "{repeated}");
    assert_eq!(
        tables_holding(&env.pool, &email).await,
        Vec::<String>::new()
    );
}
