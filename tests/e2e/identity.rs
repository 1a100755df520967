//! Accounts, sessions, workspaces, roles and API keys, end to end over HTTP.

use crate::helpers::{TestEnv, PASSWORD};
use futures::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::Duration;

fn s(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn sign_up_sign_in_refresh_rotation_reuse_detection_and_revoke_all() {
    let mut env = TestEnv::new().await;
    let base = env.start_all().await;
    let signed_up = env.register(&base, "  Ann@Fund.Example ", "Ann").await;
    let me = env
        .call(
            Method::GET,
            &format!("{base}/v1/me"),
            Some(&s(&signed_up, "access_token")),
            None,
            None,
        )
        .await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);
    assert_eq!(me.body["email"], "ann@fund.example");
    assert_eq!(
        me.body["default_workspace_id"],
        signed_up["default_workspace_id"]
    );

    // Wrong password and unknown email: one answer.
    let wrong = env
        .login(&base, "ann@fund.example", "not the password at all")
        .await;
    let unknown = env.login(&base, "nobody@fund.example", PASSWORD).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.body["detail"], unknown.body["detail"]);

    // Rotation: each refresh token works once; reusing one ends the session.
    let a = env.login(&base, "ANN@fund.example", PASSWORD).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let refresh = |token: String| {
        let env = &env;
        let url = format!("{base}/v1/auth/refresh");
        async move {
            env.call(
                Method::POST,
                &url,
                None,
                None,
                Some(&json!({"refresh_token": token})),
            )
            .await
        }
    };
    let b = refresh(s(&a.body, "refresh_token")).await;
    assert_eq!(b.status, StatusCode::OK, "{}", b.body);
    assert_ne!(b.body["refresh_token"], a.body["refresh_token"]);
    let b_access = s(&b.body, "access_token");
    let companies = format!("{base}/v1/companies");
    assert_eq!(
        env.call(Method::GET, &companies, Some(&b_access), None, None)
            .await
            .status,
        StatusCode::OK
    );
    let reused = refresh(s(&a.body, "refresh_token")).await;
    assert_eq!(reused.status, StatusCode::UNAUTHORIZED);
    assert!(
        s(&reused.body, "detail").contains("already used"),
        "{}",
        reused.body
    );
    assert_eq!(
        env.call(Method::GET, &companies, Some(&b_access), None, None)
            .await
            .status,
        StatusCode::UNAUTHORIZED,
        "the whole family dies with a reuse"
    );
    assert_eq!(
        refresh(s(&b.body, "refresh_token")).await.status,
        StatusCode::UNAUTHORIZED
    );

    // Revoke-all ends every session at once.
    let c = env.login(&base, "ann@fund.example", PASSWORD).await.body;
    let d = env.login(&base, "ann@fund.example", PASSWORD).await.body;
    let revoked = env
        .call(
            Method::POST,
            &format!("{base}/v1/auth/revoke-all"),
            Some(&s(&c, "access_token")),
            None,
            None,
        )
        .await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.body);
    assert!(revoked.body["revoked"].as_u64().unwrap() >= 3);
    for tokens in [&c, &d, &signed_up] {
        let status = env
            .call(
                Method::GET,
                &companies,
                Some(&s(tokens, "access_token")),
                None,
                None,
            )
            .await
            .status;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            refresh(s(tokens, "refresh_token")).await.status,
            StatusCode::UNAUTHORIZED
        );
    }

    // Logout ends just that session.
    let e = env.login(&base, "ann@fund.example", PASSWORD).await.body;
    let f = env.login(&base, "ann@fund.example", PASSWORD).await.body;
    let out = env
        .call(
            Method::POST,
            &format!("{base}/v1/auth/logout"),
            Some(&s(&e, "access_token")),
            None,
            None,
        )
        .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    assert_eq!(
        env.call(
            Method::GET,
            &companies,
            Some(&s(&e, "access_token")),
            None,
            None
        )
        .await
        .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        env.call(
            Method::GET,
            &companies,
            Some(&s(&f, "access_token")),
            None,
            None
        )
        .await
        .status,
        StatusCode::OK
    );

    // The account holder reads all of it in their own security log.
    let log = env
        .call(
            Method::GET,
            &format!("{base}/v1/me/security-events?limit=200"),
            Some(&s(&f, "access_token")),
            None,
            None,
        )
        .await;
    assert_eq!(log.status, StatusCode::OK, "{}", log.body);
    let kinds: Vec<&str> = log.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    for kind in [
        "login.failed",
        "session.refresh_token_reused",
        "session.revoked_all",
        "login.succeeded",
    ] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }
    // The unknown email's failure is not tied to this account.
    assert_eq!(kinds.iter().filter(|k| **k == "login.failed").count(), 1);
}

#[tokio::test]
async fn fifty_concurrent_sign_ups_with_one_email_make_exactly_one_account() {
    let mut env = TestEnv::new().await;
    let base = env.start_all().await;
    let spellings = [
        "race@fund.example",
        "RACE@fund.example",
        " Race@Fund.Example",
        "race@FUND.example",
    ];
    let url = format!("{base}/v1/auth/register");
    let bodies: Vec<Value> = (0..50)
        .map(|i| json!({"email": spellings[i % spellings.len()], "password": PASSWORD, "name": format!("Racer {i}")}))
        .collect();
    let attempts = bodies
        .iter()
        .map(|body| env.call(Method::POST, &url, None, None, Some(body)));
    let replies = join_all(attempts).await;
    let created = replies
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .count();
    let taken = replies
        .iter()
        .filter(|r| {
            r.status == StatusCode::CONFLICT && r.body["type"] == "urn:vcintel:problem:email-taken"
        })
        .count();
    assert_eq!(created, 1, "exactly one account");
    assert_eq!(taken, 49, "every other attempt is told the email is taken");
    let accounts: i64 =
        sqlx::query_scalar("select count(*) from events where event_type = 'user.registered'")
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert_eq!(accounts, 1);
    // The one account signs in whatever the spelling.
    assert_eq!(
        env.login(&base, "RACE@FUND.EXAMPLE", PASSWORD).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn sign_up_names_every_invalid_field_and_keeps_passwords_out_of_events() {
    let mut env = TestEnv::new().await;
    let base = env.start_all().await;
    let reply = env
        .call(
            Method::POST,
            &format!("{base}/v1/auth/register"),
            None,
            None,
            Some(&json!({"email": "not-an-email", "password": "short", "name": " "})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    let mut fields: Vec<&str> = reply.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["field"].as_str())
        .collect();
    fields.sort_unstable();
    assert_eq!(fields, ["email", "name", "password"]);
    let weak = env
        .call(
            Method::POST,
            &format!("{base}/v1/auth/register"),
            None,
            None,
            Some(&json!({"email": "a@b.example", "password": "password1234", "name": "A"})),
        )
        .await;
    assert_eq!(weak.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(weak.body["errors"][0]["field"], "password");
    let unknown_field = env
        .call(
            Method::POST,
            &format!("{base}/v1/auth/register"),
            None,
            None,
            Some(&json!({"email": "a@b.example", "password": PASSWORD, "name": "A", "role": "owner"})),
        )
        .await;
    assert_eq!(unknown_field.status, StatusCode::UNPROCESSABLE_ENTITY);

    env.register(&base, "secret@fund.example", "S").await;
    let payloads: Vec<String> = sqlx::query_scalar("select payload::text from events")
        .fetch_all(&env.pool)
        .await
        .unwrap();
    // Personal values are sealed in the log (docs/privacy.md).
    assert!(payloads.iter().all(|p| !p.contains("secret@fund.example")));
    assert!(
        payloads
            .iter()
            .any(|p| p.contains(r#""email":{"kid":"#) || p.contains(r#""email": {"kid":"#)),
        "{payloads:?}"
    );
    assert!(
        payloads
            .iter()
            .all(|p| !p.contains("argon2") && !p.contains(PASSWORD)),
        "no password or hash in any event"
    );
    let hash: String = sqlx::query_scalar("select password_hash from user_credentials")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );
}

#[tokio::test]
async fn development_tokens_are_refused_unless_explicitly_enabled() {
    let mut env = TestEnv::new().await;
    let mut settings = env.settings();
    settings.dev_tokens = false;
    let running = env
        .start_with(settings, &[vcintel_api::Component::Api])
        .await;
    let base = running.address.clone().unwrap();
    let token = env.token(&env.actor(uuid::Uuid::now_v7(), vcintel_domain::Role::Owner));
    let reply = env
        .call(
            Method::GET,
            &format!("{base}/v1/companies"),
            Some(&token),
            None,
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    running.stop().await;
}

/// A workspace with an owner and one member of every other role.
struct Team {
    workspace: String,
    owner: String,
    admin: String,
    member: String,
    viewer: String,
    member_id: String,
    viewer_id: String,
}

async fn team(env: &TestEnv, base: &str, tag: &str) -> Team {
    let owner = env
        .register(base, &format!("owner-{tag}@fund.example"), "Owner")
        .await;
    let owner_token = s(&owner, "access_token");
    let created = env
        .call(
            Method::POST,
            &format!("{base}/v1/workspaces"),
            Some(&owner_token),
            None,
            Some(&json!({"name": format!("Fund {tag}")})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let workspace = s(&created.body, "id");
    let mut tokens = Vec::new();
    let mut ids = Vec::new();
    for role in ["admin", "member", "viewer"] {
        let email = format!("{role}-{tag}@fund.example");
        let signed_up = env.register(base, &email, role).await;
        crate::helpers::join(
            env,
            base,
            &owner_token,
            &workspace,
            &s(&signed_up, "access_token"),
            &email,
            role,
        )
        .await;
        tokens.push(s(&signed_up, "access_token"));
        ids.push(s(&signed_up, "user_id"));
    }
    Team {
        workspace,
        owner: owner_token,
        admin: tokens[0].clone(),
        member: tokens[1].clone(),
        viewer: tokens[2].clone(),
        member_id: ids[1].clone(),
        viewer_id: ids[2].clone(),
    }
}

#[tokio::test]
async fn each_role_gets_the_documented_answer_on_each_kind_of_route() {
    let mut env = TestEnv::new().await;
    let base = env.start_all().await;
    let t = team(&env, &base, "matrix").await;
    let ws = Some(t.workspace.as_str());
    // (role, token, read data, write data, manage members, create keys, read security log)
    let expectations = [
        ("owner", &t.owner, 200, 201, 200, 201, 200),
        ("admin", &t.admin, 200, 201, 200, 201, 200),
        ("member", &t.member, 200, 201, 403, 201, 403),
        ("viewer", &t.viewer, 200, 403, 403, 403, 403),
    ];
    for (i, (role, token, read, write, manage, keys, log)) in expectations.into_iter().enumerate() {
        let token = Some(token.as_str());
        let got_read = env
            .call(
                Method::GET,
                &format!("{base}/v1/companies"),
                token,
                ws,
                None,
            )
            .await;
        let got_write = env
            .call(
                Method::POST,
                &format!("{base}/v1/companies"),
                token,
                ws,
                Some(&json!({"name": format!("Co {i}"), "website": format!("co{i}.example")})),
            )
            .await;
        // Re-setting the viewer's own role is a permitted no-op for managers.
        let got_manage = env
            .call(
                Method::PATCH,
                &format!("{base}/v1/workspace/members/{}", t.viewer_id),
                token,
                ws,
                Some(&json!({"role": "viewer"})),
            )
            .await;
        let got_keys = env
            .call(
                Method::POST,
                &format!("{base}/v1/workspace/api-keys"),
                token,
                ws,
                Some(&json!({"name": "ci", "role": "viewer"})),
            )
            .await;
        let got_log = env
            .call(
                Method::GET,
                &format!("{base}/v1/workspace/security-events"),
                token,
                ws,
                None,
            )
            .await;
        let got = [
            got_read.status.as_u16(),
            got_write.status.as_u16(),
            got_manage.status.as_u16(),
            got_keys.status.as_u16(),
            got_log.status.as_u16(),
        ];
        assert_eq!(
            got,
            [read, write, manage, keys, log],
            "{role}: {}",
            got_manage.body
        );
    }
    // The permission table in code says the same as the answers above.
    use vcintel_domain::{Permission, Role};
    assert!(Role::Member.allows(Permission::CreateApiKeys));
    assert!(!Role::Viewer.allows(Permission::WriteData));
}

#[tokio::test]
async fn membership_rules_hold_over_http() {
    let mut env = TestEnv::new().await;
    let base = env.start_all().await;
    let t = team(&env, &base, "members").await;
    let ws = Some(t.workspace.as_str());
    let url = |p: &str| format!("{base}{p}");
    let owner_id = env
        .call(Method::GET, &url("/v1/me"), Some(&t.owner), None, None)
        .await
        .body["user_id"]
        .as_str()
        .unwrap()
        .to_owned();

    // The last owner can neither leave nor be demoted.
    let leave = env
        .call(
            Method::POST,
            &url("/v1/workspace/leave"),
            Some(&t.owner),
            ws,
            None,
        )
        .await;
    assert_eq!(leave.status, StatusCode::CONFLICT);
    assert_eq!(leave.body["type"], "urn:vcintel:problem:last-owner");
    let demote = env
        .call(
            Method::PATCH,
            &url(&format!("/v1/workspace/members/{owner_id}")),
            Some(&t.owner),
            ws,
            Some(&json!({"role": "admin"})),
        )
        .await;
    assert_eq!(demote.status, StatusCode::CONFLICT);
    // Admins may not make owners or touch them.
    let promote = env
        .call(
            Method::PATCH,
            &url(&format!("/v1/workspace/members/{}", t.member_id)),
            Some(&t.admin),
            ws,
            Some(&json!({"role": "owner"})),
        )
        .await;
    assert_eq!(promote.status, StatusCode::FORBIDDEN);
    // Inviting an existing member conflicts; an address with no account
    // gets the same answer as one with an account.
    let again = env
        .call(
            Method::POST,
            &url("/v1/workspace/members"),
            Some(&t.owner),
            ws,
            Some(&json!({"email": "member-members@fund.example", "role": "viewer"})),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    let nobody = env
        .call(
            Method::POST,
            &url("/v1/workspace/members"),
            Some(&t.owner),
            ws,
            Some(&json!({"email": "nobody@fund.example", "role": "viewer"})),
        )
        .await;
    assert_eq!(nobody.status, StatusCode::ACCEPTED, "{}", nobody.body);
    assert!(nobody.body["invitation_id"].is_string(), "{}", nobody.body);
    let bad_email = env
        .call(
            Method::POST,
            &url("/v1/workspace/members"),
            Some(&t.owner),
            ws,
            Some(&json!({"email": "not an email", "role": "viewer"})),
        )
        .await;
    assert_eq!(bad_email.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad_email.body["errors"][0]["field"], "email");

    // Promotion takes effect on the next request (no projection lag).
    let promoted = env
        .call(
            Method::PATCH,
            &url(&format!("/v1/workspace/members/{}", t.viewer_id)),
            Some(&t.owner),
            ws,
            Some(&json!({"role": "member"})),
        )
        .await;
    assert_eq!(promoted.status, StatusCode::OK);
    let write = env
        .call(
            Method::POST,
            &url("/v1/companies"),
            Some(&t.viewer),
            ws,
            Some(&json!({"name": "Now allowed", "website": "allowed.example"})),
        )
        .await;
    assert_eq!(write.status, StatusCode::CREATED, "{}", write.body);

    // A removed member sees the workspace as not found at once.
    let removed = env
        .call(
            Method::DELETE,
            &url(&format!("/v1/workspace/members/{}", t.member_id)),
            Some(&t.admin),
            ws,
            None,
        )
        .await;
    assert_eq!(removed.status, StatusCode::OK);
    let gone = env
        .call(
            Method::GET,
            &url("/v1/companies"),
            Some(&t.member),
            ws,
            None,
        )
        .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);

    // With a second owner, the first may leave.
    env.call(
        Method::PATCH,
        &url(&format!("/v1/workspace/members/{}", t.viewer_id)),
        Some(&t.owner),
        ws,
        Some(&json!({"role": "owner"})),
    )
    .await;
    let left = env
        .call(
            Method::POST,
            &url("/v1/workspace/leave"),
            Some(&t.owner),
            ws,
            None,
        )
        .await;
    assert_eq!(left.status, StatusCode::OK, "{}", left.body);
    let members = env
        .call(
            Method::GET,
            &url("/v1/workspace/members"),
            Some(&t.viewer),
            ws,
            None,
        )
        .await;
    let roles: Vec<(String, String)> = members.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (s(m, "email"), s(m, "role")))
        .collect();
    assert_eq!(roles.len(), 2, "{roles:?}");
    assert!(roles.contains(&("viewer-members@fund.example".to_owned(), "owner".to_owned())));

    // Role changes are in the security log (written by the projection).
    let log = crate::helpers::eventually(
        Duration::from_secs(10),
        "role changes in the log",
        || async {
            let reply = env
                .call(
                    Method::GET,
                    &url("/v1/workspace/security-events"),
                    Some(&t.viewer),
                    ws,
                    None,
                )
                .await;
            let changes = reply.body["items"]
                .as_array()?
                .iter()
                .filter(|e| e["kind"] == "member.role_changed")
                .count();
            (changes >= 2).then_some(reply.body)
        },
    )
    .await;
    assert!(log["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["kind"] == "member.removed"));
}

#[tokio::test]
async fn api_keys_act_with_at_most_their_role_show_once_and_die_when_revoked() {
    let mut env = TestEnv::new().await;
    let base = env.start_all().await;
    let t = team(&env, &base, "keys").await;
    let ws = Some(t.workspace.as_str());
    let url = |p: &str| format!("{base}{p}");

    let too_high = env
        .call(
            Method::POST,
            &url("/v1/workspace/api-keys"),
            Some(&t.member),
            ws,
            Some(&json!({"name": "ci", "role": "admin"})),
        )
        .await;
    assert_eq!(too_high.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(too_high.body["errors"][0]["field"], "role");

    let created = env
        .call(
            Method::POST,
            &url("/v1/workspace/api-keys"),
            Some(&t.member),
            ws,
            Some(&json!({"name": "read-only sync", "role": "viewer"})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let key = s(&created.body, "key");
    let key_id = s(&created.body, "id");
    assert!(key.starts_with("vci_"));

    // The key reads, cannot write, and needs no workspace header.
    let read = env
        .call(Method::GET, &url("/v1/companies"), Some(&key), None, None)
        .await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.body);
    let write = env
        .call(
            Method::POST,
            &url("/v1/companies"),
            Some(&key),
            None,
            Some(&json!({"name": "No", "website": "no.example"})),
        )
        .await;
    assert_eq!(write.status, StatusCode::FORBIDDEN);
    // A key is not an account.
    assert_eq!(
        env.call(Method::GET, &url("/v1/me"), Some(&key), None, None)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    // Tampering with the secret fails.
    let mut forged = key.clone();
    forged.pop();
    forged.push(if key.ends_with('A') { 'B' } else { 'A' });
    assert_eq!(
        env.call(
            Method::GET,
            &url("/v1/companies"),
            Some(&forged),
            None,
            None
        )
        .await
        .status,
        StatusCode::UNAUTHORIZED
    );

    // Listings show the prefix, never the key; members see only their own.
    let listed = env
        .call(
            Method::GET,
            &url("/v1/workspace/api-keys"),
            Some(&t.member),
            ws,
            None,
        )
        .await;
    let text = listed.body.to_string();
    assert!(!text.contains(&key[40..]), "the secret is never listed");
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(listed.body["items"][0]["prefix"], created.body["prefix"]);
    let stored: Vec<Vec<u8>> = sqlx::query_scalar("select secret_hash from api_key_secrets")
        .fetch_all(&env.pool)
        .await
        .unwrap();
    assert!(
        stored.iter().all(|h| h.len() == 32),
        "only hashes are stored"
    );

    // The viewer cannot revoke someone else's key (it is invisible to them).
    let viewer_revoke = env
        .call(
            Method::DELETE,
            &url(&format!("/v1/workspace/api-keys/{key_id}")),
            Some(&t.viewer),
            ws,
            None,
        )
        .await;
    assert_eq!(viewer_revoke.status, StatusCode::NOT_FOUND);
    let revoked = env
        .call(
            Method::DELETE,
            &url(&format!("/v1/workspace/api-keys/{key_id}")),
            Some(&t.admin),
            ws,
            None,
        )
        .await;
    assert_eq!(revoked.status, StatusCode::OK);
    assert_eq!(
        env.call(Method::GET, &url("/v1/companies"), Some(&key), None, None)
            .await
            .status,
        StatusCode::UNAUTHORIZED,
        "revocation takes effect on the next request"
    );
}

#[tokio::test]
async fn forged_expired_wrongly_signed_and_unsigned_session_tokens_are_401() {
    use jsonwebtoken::{encode, EncodingKey, Header};
    let mut env = TestEnv::new().await;
    let mut settings = env.settings();
    settings.dev_tokens = false;
    let running = env.start_with(settings, &vcintel_api::Component::ALL).await;
    let base = running.address.clone().unwrap();
    let tokens = env.register(&base, "real@fund.example", "Real").await;
    let genuine = env.keys.verify(&s(&tokens, "access_token")).unwrap();
    let now = chrono::Utc::now().timestamp() as u64;
    let claims = |exp: u64| json!({"sub": genuine.sub, "sid": genuine.sid, "dws": genuine.dws, "iss": "vcintel", "iat": now, "exp": exp});
    let sign = |claims: &Value, key: &[u8]| {
        encode(&Header::default(), claims, &EncodingKey::from_secret(key)).unwrap()
    };
    let b64 = |v: &Value| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let wrong_key = sign(
        &claims(now + 600),
        b"another-secret-another-secret-0123456789",
    );
    let expired = sign(&claims(now - 600), crate::helpers::JWT_SECRET.as_bytes());
    let unsigned = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&claims(now + 600))
    );
    let other_user = sign(
        &json!({"sub": uuid::Uuid::now_v7(), "sid": genuine.sid, "iss": "vcintel", "iat": now, "exp": now + 600}),
        crate::helpers::JWT_SECRET.as_bytes(),
    );
    let mut tampered = s(&tokens, "access_token");
    tampered.insert(tampered.len() / 2, 'x');
    let url = format!("{base}/v1/companies");
    assert_eq!(
        env.call(
            Method::GET,
            &url,
            Some(&s(&tokens, "access_token")),
            None,
            None
        )
        .await
        .status,
        StatusCode::OK
    );
    for (what, token) in [
        ("wrong signing key", wrong_key),
        ("expired", expired),
        ("alg none", unsigned),
        ("someone else's session", other_user),
        ("tampered", tampered),
    ] {
        let reply = env.call(Method::GET, &url, Some(&token), None, None).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{what}");
        assert_eq!(
            reply.header("www-authenticate"),
            Some("Bearer realm=\"vcintel\"")
        );
    }
    running.stop().await;
}

#[tokio::test]
async fn an_invitation_waits_for_its_addressee_to_accept_it_and_a_cancelled_one_grants_nothing() {
    let mut env = TestEnv::new().await;
    let base = env.start_all().await;
    let t = team(&env, &base, "invites").await;
    let ws = Some(t.workspace.as_str());
    let url = |p: &str| format!("{base}{p}");
    let invite = |email: &'static str, role: &'static str| {
        let env = &env;
        let url = url("/v1/workspace/members");
        let token = t.admin.clone();
        async move {
            env.call(
                Method::POST,
                &url,
                Some(&token),
                ws,
                Some(&json!({"email": email, "role": role})),
            )
            .await
        }
    };
    let invited = invite("newbie@fund.example", "member").await;
    assert_eq!(invited.status, StatusCode::ACCEPTED, "{}", invited.body);
    let invitation_id = s(&invited.body, "invitation_id");
    // Inviting again changes the role and keeps the invitation.
    let again = invite("Newbie@Fund.example", "viewer").await;
    assert_eq!(again.body["invitation_id"], invited.body["invitation_id"]);
    let cancelled = invite("gone@fund.example", "member").await;
    let cancelled_id = cancelled.body["invitation_id"].as_str().unwrap().to_owned();

    let listed = env
        .call(
            Method::GET,
            &url("/v1/workspace/invitations"),
            Some(&t.owner),
            ws,
            None,
        )
        .await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 2);
    assert_eq!(
        env.call(
            Method::GET,
            &url("/v1/workspace/invitations"),
            Some(&t.member),
            ws,
            None
        )
        .await
        .status,
        StatusCode::FORBIDDEN
    );
    let cancel = env
        .call(
            Method::DELETE,
            &url(&format!("/v1/workspace/invitations/{cancelled_id}")),
            Some(&t.admin),
            ws,
            None,
        )
        .await;
    assert_eq!(cancel.status, StatusCode::OK, "{}", cancel.body);

    // Signing up joins nothing: the newcomer sees the invitation and
    // accepts it.
    let newbie = env.register(&base, "newbie@fund.example", "Newbie").await;
    let newbie_token = s(&newbie, "access_token");
    let read = env
        .call(
            Method::GET,
            &url("/v1/companies"),
            Some(&newbie_token),
            ws,
            None,
        )
        .await;
    assert_eq!(
        read.status,
        StatusCode::NOT_FOUND,
        "not joined by signing up"
    );
    let mine = crate::helpers::eventually(
        Duration::from_secs(10),
        "the invitation listed for its addressee",
        || async {
            let reply = env
                .call(
                    Method::GET,
                    &url("/v1/me/invitations"),
                    Some(&newbie_token),
                    None,
                    None,
                )
                .await;
            let items = reply.body["items"].as_array()?.clone();
            (!items.is_empty()).then_some(items)
        },
    )
    .await;
    assert_eq!(mine.len(), 1, "{mine:?}");
    assert_eq!(mine[0]["id"], invitation_id.as_str());
    assert_eq!(mine[0]["workspace_id"], t.workspace.as_str());
    assert_eq!(mine[0]["role"], "viewer");
    // Only the proven owner of the address may take it up.
    let accept_url = url(&format!("/v1/me/invitations/{invitation_id}/accept"));
    let unverified = env
        .call(Method::POST, &accept_url, Some(&newbie_token), None, None)
        .await;
    assert_eq!(
        unverified.status,
        StatusCode::FORBIDDEN,
        "{}",
        unverified.body
    );
    env.verify_email(&base, "newbie@fund.example").await;
    let accepted = env
        .call(
            Method::POST,
            &url(&format!("/v1/me/invitations/{invitation_id}/accept")),
            Some(&newbie_token),
            None,
            None,
        )
        .await;
    assert_eq!(accepted.status, StatusCode::OK, "{}", accepted.body);
    let read = env
        .call(
            Method::GET,
            &url("/v1/companies"),
            Some(&newbie_token),
            ws,
            None,
        )
        .await;
    assert_eq!(
        read.status,
        StatusCode::OK,
        "joined by accepting: {}",
        read.body
    );
    let write = env
        .call(
            Method::POST,
            &url("/v1/companies"),
            Some(&newbie_token),
            ws,
            Some(&json!({"name": "N", "website": "n.example"})),
        )
        .await;
    assert_eq!(
        write.status,
        StatusCode::FORBIDDEN,
        "with the role of the latest invitation (viewer)"
    );
    let gone = env.register(&base, "gone@fund.example", "Gone").await;
    let gone_accept = env
        .call(
            Method::POST,
            &url(&format!("/v1/me/invitations/{cancelled_id}/accept")),
            Some(&s(&gone, "access_token")),
            None,
            None,
        )
        .await;
    assert_eq!(
        gone_accept.status,
        StatusCode::NOT_FOUND,
        "a cancelled invitation grants nothing"
    );
    let remaining = env
        .call(
            Method::GET,
            &url("/v1/workspace/invitations"),
            Some(&t.owner),
            ws,
            None,
        )
        .await;
    assert_eq!(remaining.body["items"].as_array().unwrap().len(), 0);
}

/// Two API processes that remember sessions, keys and workspaces between
/// requests: whatever one of them changes acts on the very next request to
/// the other. Each check runs right after the change's answer, a few times
/// over, so a cache that waited for its TTL (5 s) would be caught.
#[tokio::test]
async fn identity_changes_act_on_the_next_request_on_every_api_instance() {
    let mut env = TestEnv::new().await;
    env.start_all().await;
    let no_dev_tokens = [("VCINTEL_DEV_TOKENS", "false")];
    let (first, a) = env.spawn_api_process(&no_dev_tokens).await;
    let _first = crate::helpers::KillOnDrop(first);
    let (second, b) = env.spawn_api_process(&no_dev_tokens).await;
    let _second = crate::helpers::KillOnDrop(second);
    let t = team(&env, &a, "instances").await;
    let ws = Some(t.workspace.as_str());
    let status = |base: &str, method: Method, path: &str, token: &str, body: Option<Value>| {
        let (env, url, token) = (&env, format!("{base}{path}"), token.to_owned());
        async move {
            env.call(method, &url, Some(&token), ws, body.as_ref())
                .await
                .status
        }
    };
    let company = || {
        Some(json!({"name": "Probe", "website": format!("probe-{}.example", uuid::Uuid::now_v7())}))
    };

    // Both instances have the member's session and role in memory.
    for base in [&a, &b] {
        for _ in 0..3 {
            assert_eq!(
                status(base, Method::POST, "/v1/companies", &t.member, company()).await,
                StatusCode::CREATED
            );
        }
    }
    // A role change made through one instance binds the other at once.
    let demoted = status(
        &a,
        Method::PATCH,
        &format!("/v1/workspace/members/{}", t.member_id),
        &t.owner,
        Some(json!({"role": "viewer"})),
    )
    .await;
    assert_eq!(demoted, StatusCode::OK);
    assert_eq!(
        status(&b, Method::POST, "/v1/companies", &t.member, company()).await,
        StatusCode::FORBIDDEN,
        "the demotion acts on the other instance's next request"
    );
    // A removal made through the other one, likewise.
    assert_eq!(
        status(&a, Method::GET, "/v1/companies", &t.viewer, None).await,
        StatusCode::OK
    );
    let removed = status(
        &b,
        Method::DELETE,
        &format!("/v1/workspace/members/{}", t.viewer_id),
        &t.owner,
        None,
    )
    .await;
    assert_eq!(removed, StatusCode::OK);
    assert_eq!(
        status(&a, Method::GET, "/v1/companies", &t.viewer, None).await,
        StatusCode::NOT_FOUND,
        "a removed member's next request finds no workspace"
    );

    // An API key revoked on one instance dies on the other.
    let created = env
        .call(
            Method::POST,
            &format!("{a}/v1/workspace/api-keys"),
            Some(&t.owner),
            ws,
            Some(&json!({"name": "nightly", "role": "viewer"})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let (key, key_id) = (s(&created.body, "key"), s(&created.body, "id"));
    for base in [&a, &b] {
        assert_eq!(
            status(base, Method::GET, "/v1/companies", &key, None).await,
            StatusCode::OK
        );
    }
    let revoked = status(
        &a,
        Method::DELETE,
        &format!("/v1/workspace/api-keys/{key_id}"),
        &t.owner,
        None,
    )
    .await;
    assert!(revoked.is_success(), "{revoked}");
    assert_eq!(
        status(&b, Method::GET, "/v1/companies", &key, None).await,
        StatusCode::UNAUTHORIZED
    );

    // Logout on one instance ends the token on the other, every time.
    for round in 0..5 {
        let signed_in = env
            .login(&a, "admin-instances@fund.example", PASSWORD)
            .await;
        assert_eq!(signed_in.status, StatusCode::OK, "{}", signed_in.body);
        let token = s(&signed_in.body, "access_token");
        let (here, there) = if round % 2 == 0 { (&a, &b) } else { (&b, &a) };
        for base in [here, there] {
            assert_eq!(
                status(base, Method::GET, "/v1/companies", &token, None).await,
                StatusCode::OK
            );
        }
        assert_eq!(
            status(here, Method::POST, "/v1/auth/logout", &token, None).await,
            StatusCode::NO_CONTENT
        );
        assert_eq!(
            status(there, Method::GET, "/v1/companies", &token, None).await,
            StatusCode::UNAUTHORIZED,
            "round {round}: the other instance refuses the ended session at once"
        );
    }
    // Revoke-all through one instance ends every session on the other.
    let sessions: Vec<String> =
        join_all((0..3).map(|_| env.login(&a, "admin-instances@fund.example", PASSWORD)))
            .await
            .into_iter()
            .map(|reply| s(&reply.body, "access_token"))
            .collect();
    for token in &sessions {
        assert_eq!(
            status(&b, Method::GET, "/v1/companies", token, None).await,
            StatusCode::OK
        );
    }
    assert_eq!(
        status(&a, Method::POST, "/v1/auth/revoke-all", &sessions[0], None).await,
        StatusCode::OK
    );
    for token in &sessions {
        assert_eq!(
            status(&b, Method::GET, "/v1/companies", token, None).await,
            StatusCode::UNAUTHORIZED
        );
    }
}
