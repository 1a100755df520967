//! `vcintel backup create | verify | restore` on real Postgres and NATS:
//! a backup taken under a running service restores into an empty database
//! with its credentials and unique values, the read models are rebuilt,
//! and the relay refills the stream, keeping the commands the backup lacks
//! as orphans. Every table the migrations create is classified.

use crate::helpers::{admin_database_url, eventually, url_with_database, TestEnv, PASSWORD};
use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::PgPool;
use std::time::Duration;
use uuid::Uuid;
use vcintel_api::Component;
use vcintel_domain::Role;

/// Runs the `vcintel` binary with `database_url`; (success, stdout, stderr).
/// Async: a service under test may run on this test's runtime.
async fn vcintel(database_url: &str, args: &[&str]) -> (bool, String, String) {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_vcintel"))
        .env(
            "VCINTEL_PRIVACY_MASTER_KEY",
            crate::helpers::PRIVACY_MASTER_KEY,
        )
        .args(args)
        .env("DATABASE_URL", database_url)
        .kill_on_drop(true)
        .output()
        .await
        .expect("run vcintel");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

async fn event_rows(pool: &PgPool) -> Vec<(Uuid, i64, String, String, i64, serde_json::Value)> {
    sqlx::query_as(
        "select event_id, position, aggregate_type, aggregate_id, sequence, payload
         from events order by position",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn every_table_is_backed_up_rebuilt_or_declared_transient() {
    let env = TestEnv::new().await;
    let tables: Vec<String> = sqlx::query_scalar(
        "select relname::text from pg_class
         where relkind in ('r', 'p') and relnamespace = 'public'::regnamespace",
    )
    .fetch_all(&env.pool)
    .await
    .unwrap();
    assert!(tables.len() > 30, "{tables:?}");
    let rebuilt: Vec<&str> = vcintel_projections::READ_MODELS
        .iter()
        .flat_map(|m| m.tables.iter().copied())
        .chain(vcintel_projections::rebuild::SHARED_TABLES)
        .collect();
    for table in &tables {
        let classes = [
            vcintel_infra::backup::BACKED_UP.contains(&table.as_str()),
            vcintel_infra::backup::NOT_BACKED_UP.contains(&table.as_str()),
            rebuilt.contains(&table.as_str()),
        ];
        assert_eq!(
            classes.iter().filter(|c| **c).count(),
            1,
            "{table} must be classified exactly once: backed up (vcintel_infra::backup::BACKED_UP), \
             a read model's (Projection::TABLES) or not backed up (NOT_BACKED_UP)"
        );
    }
    for listed in vcintel_infra::backup::BACKED_UP
        .iter()
        .chain(vcintel_infra::backup::NOT_BACKED_UP)
    {
        assert!(tables.iter().any(|t| t == listed), "{listed} exists");
    }
}

#[tokio::test]
async fn a_backup_restores_into_an_empty_database_and_the_world_converges() {
    let mut env = TestEnv::new().await;
    let running = env.start(&Component::ALL).await;
    let base = running.address.clone().unwrap();

    // Before the backup: an account with a password, companies, a note.
    let email = format!("restore-{}@example.com", &env.prefix);
    env.register(&base, &email, "Ada Restore").await;
    let workspace = Uuid::now_v7();
    let token = env.token(&env.actor(workspace, Role::Owner));
    let mut kept = Vec::new();
    for i in 0..3 {
        let added = env
            .call(
                Method::POST,
                &format!("{base}/v1/companies"),
                Some(&token),
                None,
                Some(&json!({"name": format!("Kept {i}"), "website": format!("kept{i}.example")})),
            )
            .await;
        assert_eq!(added.status, StatusCode::CREATED, "{}", added.body);
        kept.push(added.body["id"].as_str().unwrap().to_owned());
    }
    let noted = env
        .call(
            Method::POST,
            &format!("{base}/v1/companies/{}/notes", kept[0]),
            Some(&token),
            None,
            Some(&json!({"content": "Strong founder-market fit"})),
        )
        .await;
    assert_eq!(noted.status, StatusCode::CREATED, "{}", noted.body);
    let backed_up = event_rows(&env.pool).await;

    let dir = std::env::temp_dir().join(format!("{}-backup", env.prefix));
    let _ = std::fs::remove_dir_all(&dir);
    let dir_arg = dir.display().to_string();
    let (ok, out, err) = vcintel(
        &env.database_url,
        &["backup", "create", "--output", &dir_arg],
    )
    .await;
    assert!(ok, "{out}\n{err}");
    println!("{out}");
    assert!(
        out.contains(&format!("{} events", backed_up.len())),
        "{out}"
    );
    let manifest = vcintel_infra::backup::read_manifest(&dir).unwrap();
    assert_eq!(manifest.events.count as usize, backed_up.len());
    assert_eq!(manifest.events.last_position, backed_up.last().map(|e| e.1));
    // Nothing derived and no secret in the clear: read models are absent.
    assert!(!manifest.tables.iter().any(|t| t.table == "companies"));
    let (ok, out, err) = vcintel("", &["backup", "verify", &dir_arg]).await;
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("is a sound backup"), "{out}");

    // A damaged copy is found, naming the file.
    let damaged = std::env::temp_dir().join(format!("{}-damaged", env.prefix));
    crate::helpers::copy_dir(&dir, &damaged);
    let file = damaged.join("unique_values.copy.gz");
    let mut bytes = std::fs::read(&file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&file, bytes).unwrap();
    let (ok, _, err) = vcintel("", &["backup", "verify", &damaged.display().to_string()]).await;
    assert!(!ok);
    assert!(err.contains("unique_values.copy.gz"), "{err}");
    let _ = std::fs::remove_dir_all(&damaged);

    // After the backup: two acknowledged commands the restore takes back.
    let mut lost = Vec::new();
    for i in 0..2 {
        let added = env
            .call(
                Method::POST,
                &format!("{base}/v1/companies"),
                Some(&token),
                None,
                Some(&json!({"name": format!("Lost {i}"), "website": format!("lost{i}.example")})),
            )
            .await;
        assert_eq!(added.status, StatusCode::CREATED, "{}", added.body);
        lost.push(added.body["id"].as_str().unwrap().to_owned());
    }
    eventually(
        Duration::from_secs(15),
        "every event in the stream",
        || async {
            (env.stream_message_count().await as usize == backed_up.len() + 2).then_some(())
        },
    )
    .await;
    running.stop().await;

    // Restore into a new, empty database.
    let target_name = format!("{}_restored", env.prefix);
    let admin = PgPool::connect(&admin_database_url()).await.unwrap();
    sqlx::query(&format!("create database {target_name}"))
        .execute(&admin)
        .await
        .unwrap();
    let target = url_with_database(&env.database_url, &target_name);
    let (ok, out, err) = vcintel(&target, &["backup", "restore", &dir_arg]).await;
    assert!(ok, "{out}\n{err}");
    println!("{out}");
    assert!(out.contains("rebuilt companies"), "{out}");
    let restored = PgPool::connect(&target).await.unwrap();
    assert_eq!(event_rows(&restored).await, backed_up, "the log, exactly");
    for table in ["unique_values", "user_credentials", "store_identity"] {
        let query = format!("select count(*) from {table}");
        let (before, after): (i64, i64) = (
            sqlx::query_scalar(&query)
                .fetch_one(&env.pool)
                .await
                .unwrap(),
            sqlx::query_scalar(&query)
                .fetch_one(&restored)
                .await
                .unwrap(),
        );
        let expected = if table == "unique_values" {
            before - 2
        } else {
            before
        };
        assert_eq!(after, expected, "{table}");
    }
    let companies: i64 = sqlx::query_scalar("select count(*) from companies")
        .fetch_one(&restored)
        .await
        .unwrap();
    assert_eq!(
        companies, 3,
        "the read model rebuilt from the restored events"
    );
    // A second restore would overwrite: refused.
    let (ok, _, err) = vcintel(&target, &["backup", "restore", &dir_arg]).await;
    assert!(!ok);
    assert!(err.contains("not empty"), "{err}");

    // The service on the restored store: the relay refills the stream and
    // keeps the two lost commands' events as orphans.
    let mut settings = env.settings();
    settings.database_url = target.clone();
    let running = env.start_with(settings, &Component::ALL).await;
    let base = running.address.clone().unwrap();
    let store_ids: Vec<String> = backed_up.iter().map(|e| e.0.to_string()).collect();
    let converging = std::time::Instant::now();
    eventually(
        Duration::from_secs(30),
        "the stream refilled from the restored store",
        || {
            let env = &env;
            let store_ids = store_ids.clone();
            async move {
                // None while the relay purges: not yet.
                (env.streamed_event_ids().await? == store_ids).then_some(())
            }
        },
    )
    .await;
    println!(
        "stream converged {:.1} s after the service started on the restored store",
        converging.elapsed().as_secs_f64()
    );
    let orphans: Vec<String> =
        sqlx::query_scalar("select message->>'aggregateid' from stream_orphans")
            .fetch_all(&restored)
            .await
            .unwrap();
    for id in &lost {
        assert!(orphans.contains(id), "{id} kept among {orphans:?}");
    }
    // The account signs in with its password; new commands go on.
    let login = env.login(&base, &email, PASSWORD).await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    let added = env
        .call(
            Method::POST,
            &format!("{base}/v1/companies"),
            Some(&token),
            None,
            Some(&json!({"name": "After restore", "website": "lost0.example"})),
        )
        .await;
    assert_eq!(
        added.status,
        StatusCode::CREATED,
        "the lost company's website is free again: {}",
        added.body
    );
    let position: i64 = sqlx::query_scalar("select max(position) from events")
        .fetch_one(&restored)
        .await
        .unwrap();
    assert!(position > backed_up.last().unwrap().1);
    running.stop().await;
    restored.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// A backup made before a table joined the backup (an older release's)
/// still verifies and restores: the restore goes down to that backup's
/// schema, where the table does not exist yet, and back up.
#[tokio::test]
async fn a_backup_from_before_a_table_joined_the_backup_restores() {
    let env = TestEnv::new().await;
    let dir = std::env::temp_dir().join(format!("{}-older-release", env.prefix));
    let dir_arg = dir.display().to_string();
    let (ok, out, err) = vcintel(
        &env.database_url,
        &["backup", "create", "--output", &dir_arg],
    )
    .await;
    assert!(ok, "{out}\n{err}");
    // As the release before the privacy tables wrote it.
    let path = dir.join(vcintel_infra::backup::MANIFEST);
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    manifest["migration_version"] = json!(20261207000005_i64);
    manifest["tables"]
        .as_array_mut()
        .unwrap()
        .retain(|t| !t["table"].as_str().unwrap().starts_with("privacy_"));
    std::fs::write(&path, serde_json::to_vec_pretty(&manifest).unwrap()).unwrap();
    let (ok, out, err) = vcintel("", &["backup", "verify", &dir_arg]).await;
    assert!(ok, "{out}\n{err}");

    let target_name = format!("{}_older_release", env.prefix);
    let admin = PgPool::connect(&admin_database_url()).await.unwrap();
    sqlx::query(&format!("create database {target_name}"))
        .execute(&admin)
        .await
        .unwrap();
    let target = url_with_database(&env.database_url, &target_name);
    let (ok, out, err) = vcintel(&target, &["backup", "restore", &dir_arg, "--skip-rebuild"]).await;
    assert!(ok, "{out}\n{err}");
    let restored = PgPool::connect(&target).await.unwrap();
    let keys: i64 = sqlx::query_scalar("select count(*) from privacy_keys")
        .fetch_one(&restored)
        .await
        .unwrap();
    assert_eq!(keys, 0, "the newer table exists again, empty");
    restored.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}
