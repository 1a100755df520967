//! Retention: the security log and ended sessions are deleted past their
//! retention, in batches along an index (checked with EXPLAIN at 200k
//! rows), while what is within it stays; refresh tokens go with their
//! session.

use crate::helpers::TestEnv;
use serde_json::Value;
use std::time::Duration;
use uuid::Uuid;
use vcintel_infra::retention::{sweep, RetentionPolicy};

async fn count(env: &TestEnv, query: &str) -> i64 {
    sqlx::query_scalar(query)
        .fetch_one(&env.pool)
        .await
        .unwrap()
}

/// Every relation the generic plan of `statement` (with `arguments` for
/// its parameters) scans sequentially.
async fn sequential_scans(env: &TestEnv, statement: &str, arguments: &str) -> Vec<String> {
    let mut db = env.pool.acquire().await.unwrap();
    for setup in [
        "set plan_cache_mode = force_generic_plan".to_owned(),
        format!("prepare sweep as {statement}"),
    ] {
        sqlx::query(&setup).execute(&mut *db).await.unwrap();
    }
    let plan: Value =
        sqlx::query_scalar(&format!("explain (format json) execute sweep{arguments}"))
            .fetch_one(&mut *db)
            .await
            .unwrap();
    sqlx::query("deallocate sweep")
        .execute(&mut *db)
        .await
        .unwrap();
    let mut found = Vec::new();
    fn walk(node: &Value, found: &mut Vec<String>) {
        if node["Node Type"] == "Seq Scan" {
            found.push(node["Relation Name"].as_str().unwrap_or("?").to_owned());
        }
        for child in node["Plans"].as_array().into_iter().flatten() {
            walk(child, found);
        }
    }
    walk(&plan[0]["Plan"], &mut found);
    found
}

#[tokio::test]
async fn records_past_their_retention_are_deleted_and_the_rest_kept() {
    let env = TestEnv::new().await;
    let user = Uuid::now_v7();
    // The security log: one entry 400 days old, one 10 days old.
    for days in [400, 10] {
        sqlx::query(
            "insert into security_events (id, occurred_at, kind, user_id, ip)
             values ($1, now() - make_interval(days => $2), 'login_failed', $3, '203.0.113.7')",
        )
        .bind(Uuid::now_v7())
        .bind(days)
        .bind(user)
        .execute(&env.pool)
        .await
        .unwrap();
    }
    // Sessions: expired 40 days ago, revoked 40 days ago (expiry still
    // ahead), revoked yesterday, live; each with a refresh token.
    let sessions = [
        ("now() - interval '40 days'", "null"),
        ("now() + interval '20 days'", "now() - interval '40 days'"),
        ("now() + interval '20 days'", "now() - interval '1 day'"),
        ("now() + interval '20 days'", "null"),
    ];
    for (expires, revoked) in sessions {
        let id = Uuid::now_v7();
        sqlx::query(&format!(
            "insert into auth_sessions (id, user_id, expires_at, revoked_at, ip, user_agent)
             values ($1, $2, {expires}, {revoked}, '203.0.113.7', 'curl/8')"
        ))
        .bind(id)
        .bind(user)
        .execute(&env.pool)
        .await
        .unwrap();
        sqlx::query("insert into refresh_tokens (token_hash, session_id) values ($1, $2)")
            .bind(id.as_bytes().to_vec())
            .bind(id)
            .execute(&env.pool)
            .await
            .unwrap();
    }

    let swept = sweep(&env.pool, &RetentionPolicy::default()).await.unwrap();
    assert_eq!((swept.security_events, swept.sessions), (1, 2));
    assert_eq!(count(&env, "select count(*) from security_events").await, 1);
    assert_eq!(count(&env, "select count(*) from auth_sessions").await, 2);
    assert_eq!(count(&env, "select count(*) from refresh_tokens").await, 2);
    // A shorter policy takes more; a second sweep finds nothing left.
    let week = RetentionPolicy {
        security_events: Duration::from_secs(7 * 24 * 3600),
        ended_sessions: Duration::from_secs(3600),
    };
    let swept = sweep(&env.pool, &week).await.unwrap();
    assert_eq!((swept.security_events, swept.sessions), (1, 1));
    let swept = sweep(&env.pool, &week).await.unwrap();
    assert_eq!((swept.security_events, swept.sessions), (0, 0));
    assert_eq!(
        count(&env, "select count(*) from auth_sessions").await,
        1,
        "the live session"
    );
}

#[tokio::test]
async fn sweeps_read_an_index_not_the_table_at_200k_rows() {
    let env = TestEnv::new().await;
    sqlx::query(
        "insert into security_events (id, occurred_at, kind, user_id, ip)
         select gen_random_uuid(), now() - make_interval(mins => i), 'login', gen_random_uuid(), '198.51.100.1'
         from generate_series(1, 200000) i",
    )
    .execute(&env.pool)
    .await
    .unwrap();
    sqlx::query(
        "insert into auth_sessions (id, user_id, expires_at)
         select gen_random_uuid(), gen_random_uuid(), now() + make_interval(mins => i)
         from generate_series(1, 200000) i",
    )
    .execute(&env.pool)
    .await
    .unwrap();
    sqlx::query(
        "insert into rate_limit_windows (bucket, window_start, hits)
         select 'user:' || i, i, 1 from generate_series(1, 200000) i",
    )
    .execute(&env.pool)
    .await
    .unwrap();
    for table in ["security_events", "auth_sessions", "rate_limit_windows"] {
        sqlx::query(&format!("analyze {table}"))
            .execute(&env.pool)
            .await
            .unwrap();
    }
    for (statement, arguments) in [
        (
            vcintel_infra::retention::SECURITY_EVENTS_BATCH,
            "(31536000, 5000)",
        ),
        (vcintel_infra::retention::SESSIONS_BATCH, "(2592000, 5000)"),
        // The rate limiter's own sweep (infra/src/rate_limit.rs).
        (
            "delete from rate_limit_windows where window_start < $1",
            "(1000)",
        ),
    ] {
        let scans = sequential_scans(&env, statement, arguments).await;
        assert!(
            scans.is_empty(),
            "{statement}: sequential scans of {scans:?}"
        );
    }
}
