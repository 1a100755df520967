//! The `vcintel` binary's own subcommands.

use crate::helpers::{admin_database_url, TestEnv, JWT_SECRET};
use sqlx::{Connection, Executor, PgConnection};
use std::process::Command;
use uuid::Uuid;
use vcintel_domain::Role;

fn vcintel(args: &[&str], database_url: &str) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_vcintel"))
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
