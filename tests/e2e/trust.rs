//! What attackers and generated clients found (the trust-and-contract
//! review): each test asserts the fixed behaviour through the running API,
//! on a real Postgres and nats-server.

use crate::helpers::{Reply, TestEnv};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// A signed-up user's access token.
struct User {
    token: String,
}

async fn sign_up(env: &TestEnv, base: &str, email: &str) -> User {
    let session = env.register(base, email, "Trust Tester").await;
    User {
        token: session["access_token"].as_str().unwrap().to_owned(),
    }
}

async fn get(env: &TestEnv, url: &str, user: &User) -> Reply {
    env.call(Method::GET, url, Some(&user.token), None, None)
        .await
}

async fn add_company(env: &TestEnv, base: &str, user: &User, name: &str, site: &str) -> Value {
    let reply = env
        .call(
            Method::POST,
            &format!("{base}/v1/companies"),
            Some(&user.token),
            None,
            Some(&json!({"name": name, "website": site})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    reply.body
}

fn assert_bad_parameter(reply: &Reply, field: &str) {
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
    assert_eq!(
        reply.header("content-type"),
        Some("application/problem+json")
    );
    assert_eq!(reply.body["errors"][0]["field"], field, "{}", reply.body);
}

#[tokio::test]
async fn an_edited_or_hand_made_cursor_is_refused_as_such() {
    let mut env = TestEnv::new().await;
    let base = env.start_all().await;
    let user = sign_up(&env, &base, "cursor@trust.example").await;
    for (name, site) in [("Alpha", "alpha.example"), ("Beta", "beta.example")] {
        add_company(&env, &base, &user, name, site).await;
    }
    let first = crate::helpers::eventually(Duration::from_secs(10), "two companies listed", || {
        let env = &env;
        let user = &user;
        let url = format!("{base}/v1/companies?limit=1&sort=-score");
        async move {
            let reply = get(env, &url, user).await;
            reply.body["next_cursor"].as_str().map(str::to_owned)
        }
    })
    .await;
    let next = get(
        &env,
        &format!("{base}/v1/companies?limit=1&sort=-score&cursor={first}"),
        &user,
    )
    .await;
    assert_eq!(next.status, StatusCode::OK, "{}", next.body);

    // The review's forgery: a score cursor whose value is not a number
    // (a 500 from Postgres before), edited under the real tag...
    let (_, tag) = first.split_once('.').expect("a sealed cursor");
    let forged = URL_SAFE_NO_PAD.encode(
        json!({"sort": "-score", "value": "not a number", "id": uuid::Uuid::nil()}).to_string(),
    );
    let edited = get(
        &env,
        &format!("{base}/v1/companies?limit=1&sort=-score&cursor={forged}.{tag}"),
        &user,
    )
    .await;
    assert_bad_parameter(&edited, "cursor");
    // ...and hand-made, as a first-wave cursor looked.
    let hand_made = get(
        &env,
        &format!("{base}/v1/companies?limit=1&sort=-score&cursor={forged}"),
        &user,
    )
    .await;
    assert_bad_parameter(&hand_made, "cursor");
}

#[tokio::test]
async fn control_characters_and_oversized_searches_are_400_naming_the_parameter() {
    let mut env = TestEnv::new().await;
    let base = env.start_all().await;
    let user = sign_up(&env, &base, "input@trust.example").await;
    for (query, field) in [
        ("q=acme%00", "q"),
        ("sector=fin%00tech", "sector"),
        ("location=%00", "location"),
        ("q=ok&sort=name&cursor=%00", "cursor"),
    ] {
        let reply = get(&env, &format!("{base}/v1/companies?{query}"), &user).await;
        assert_bad_parameter(&reply, field);
    }
    // 20,000 terms exhausted Postgres's stack depth (a 500).
    let terms = vec!["a"; 20_000].join("+");
    let reply = get(&env, &format!("{base}/v1/companies?q={terms}"), &user).await;
    assert_bad_parameter(&reply, "q");
    // A bidi override in a search reads one way and matches another.
    let reply = get(&env, &format!("{base}/v1/companies?q=%E2%80%AEacme"), &user).await;
    assert_bad_parameter(&reply, "q");
    let reply = get(&env, &format!("{base}/v1/companies?min_score=300"), &user).await;
    assert_bad_parameter(&reply, "min_score");
    // The same searches still work without the bad characters.
    let reply = get(
        &env,
        &format!("{base}/v1/companies?q=acme&sector=fintech"),
        &user,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
}

#[tokio::test]
async fn names_with_bidi_overrides_or_invisible_characters_are_refused() {
    let mut env = TestEnv::new().await;
    let base = env.start_all().await;
    let user = sign_up(&env, &base, "names@trust.example").await;
    for name in [
        "Acme\u{202E}gnp.exe",
        "Ac\u{200B}me",
        "Acme\u{E0041}\u{E0042}",
    ] {
        let reply = env
            .call(
                Method::POST,
                &format!("{base}/v1/companies"),
                Some(&user.token),
                None,
                Some(&json!({"name": name, "website": "deceptive.example"})),
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{name:?}: {}",
            reply.body
        );
        assert_eq!(reply.body["errors"][0]["field"], "name", "{}", reply.body);
    }
    // Scripts that need joiners keep them.
    add_company(&env, &base, &user, "می\u{200C}خواهم", "joiner.example").await;
}

#[tokio::test]
async fn a_json_array_is_not_taken_for_an_object() {
    let mut env = TestEnv::new().await;
    let base = env.start_all().await;
    let user = sign_up(&env, &base, "arrays@trust.example").await;
    let sign_in = env
        .call(
            Method::POST,
            &format!("{base}/v1/auth/login"),
            None,
            None,
            Some(&json!(["arrays@trust.example", crate::helpers::PASSWORD])),
        )
        .await;
    assert_eq!(
        sign_in.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        sign_in.body
    );
    assert_eq!(sign_in.body["errors"][0]["field"], "body");
    let create = env
        .call(
            Method::POST,
            &format!("{base}/v1/companies"),
            Some(&user.token),
            None,
            Some(&json!(["Array Co", "array-co.example"])),
        )
        .await;
    assert_eq!(
        create.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        create.body
    );
    assert_eq!(create.body["errors"][0]["field"], "body");
    let listed = get(&env, &format!("{base}/v1/companies"), &user).await;
    assert_eq!(listed.body["items"], json!([]), "nothing was created");
}

#[tokio::test]
async fn min_version_answers_a_foreign_id_and_an_unknown_id_alike_at_once() {
    let mut env = TestEnv::new().await;
    let base = env.start_all().await;
    let owner = sign_up(&env, &base, "owner@trust.example").await;
    let stranger = sign_up(&env, &base, "stranger@trust.example").await;
    let company = add_company(&env, &base, &owner, "Owned", "owned.example").await;
    let company_id = company["id"].as_str().unwrap();
    let unknown = uuid::Uuid::now_v7();
    for id in [company_id.to_owned(), unknown.to_string()] {
        let started = Instant::now();
        let reply = get(
            &env,
            &format!("{base}/v1/companies/{id}?min_version=1"),
            &stranger,
        )
        .await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{id}: {}", reply.body);
        assert_eq!(reply.header("retry-after"), None);
        // The consistency wait is seconds long; 404 must not wait for it.
        assert!(started.elapsed() < Duration::from_secs(2), "{id} waited");
    }
    // The owner's own read waits for its write; a version never written
    // conflicts with the company's state (409, naming the parameter, at
    // once), and 2^63 no longer wraps around.
    let own = get(
        &env,
        &format!("{base}/v1/companies/{company_id}?min_version=1"),
        &owner,
    )
    .await;
    assert_eq!(own.status, StatusCode::OK, "{}", own.body);
    for version in ["2", "9223372036854775808", "18446744073709551615"] {
        let reply = get(
            &env,
            &format!("{base}/v1/companies/{company_id}?min_version={version}"),
            &owner,
        )
        .await;
        assert_eq!(
            reply.status,
            StatusCode::CONFLICT,
            "{version}: {}",
            reply.body
        );
        assert_eq!(
            reply.body["type"], "urn:vcintel:problem:version-not-reached",
            "{version}"
        );
        assert_eq!(reply.body["errors"][0]["field"], "min_version");
    }
}

#[tokio::test]
async fn the_lists_listing_takes_only_the_parameters_it_documents() {
    let mut env = TestEnv::new().await;
    let base = env.start_all().await;
    let user = sign_up(&env, &base, "lists@trust.example").await;
    let reply = get(&env, &format!("{base}/v1/lists?min_version=3"), &user).await;
    assert_bad_parameter(&reply, "min_version");
    let spec: Value = env
        .http
        .get(format!("{base}/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = spec["paths"]["/v1/lists"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert!(!names.contains(&"min_version"), "{names:?}");
    assert!(names.contains(&"cursor"), "{names:?}");
}

/// A team workspace owned by one user, with a second user as its admin
/// (added the way the product adds members), each signed in.
struct Team {
    workspace: String,
    owner: User,
    admin: User,
    admin_id: String,
}

async fn team(env: &TestEnv, base: &str, tag: &str) -> Team {
    let owner = sign_up(env, base, &format!("owner-{tag}@trust.example")).await;
    let created = env
        .call(
            Method::POST,
            &format!("{base}/v1/workspaces"),
            Some(&owner.token),
            None,
            Some(&json!({"name": format!("Fund {tag}")})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let workspace = created.body["id"].as_str().unwrap().to_owned();
    let admin_email = format!("admin-{tag}@trust.example");
    let admin_session = env.register(base, &admin_email, "Admin").await;
    let admin = User {
        token: admin_session["access_token"].as_str().unwrap().to_owned(),
    };
    let admin_id = admin_session["user_id"].as_str().unwrap().to_owned();
    crate::helpers::join(
        env,
        base,
        &owner.token,
        &workspace,
        &admin.token,
        &admin_email,
        "admin",
    )
    .await;
    Team {
        workspace,
        owner,
        admin,
        admin_id,
    }
}

async fn create_key(
    env: &TestEnv,
    base: &str,
    user: &User,
    workspace: &str,
    role: &str,
) -> (String, String) {
    let reply = env
        .call(
            Method::POST,
            &format!("{base}/v1/workspace/api-keys"),
            Some(&user.token),
            Some(workspace),
            Some(&json!({"name": format!("{role} key"), "role": role})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    (
        reply.body["id"].as_str().unwrap().to_owned(),
        reply.body["key"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn a_viewer_key_cannot_revoke_its_creators_keys_or_remove_its_creator() {
    let mut env = TestEnv::new().await;
    let base = env.start_all().await;
    let t = team(&env, &base, "keys").await;
    let (admin_key_id, admin_key) = create_key(&env, &base, &t.admin, &t.workspace, "admin").await;
    let (viewer_key_id, viewer_key) =
        create_key(&env, &base, &t.admin, &t.workspace, "viewer").await;
    let through_viewer_key = |method: Method, path: String, body: Option<Value>| {
        let env = &env;
        let url = format!("{base}{path}");
        let key = viewer_key.clone();
        async move {
            env.call(method, &url, Some(&key), None, body.as_ref())
                .await
        }
    };
    for (method, path) in [
        (
            Method::DELETE,
            format!("/v1/workspace/api-keys/{admin_key_id}"),
        ),
        (Method::POST, "/v1/workspace/leave".to_owned()),
        (
            Method::DELETE,
            format!("/v1/workspace/members/{}", t.admin_id),
        ),
    ] {
        let reply = through_viewer_key(method.clone(), path.clone(), None).await;
        assert_eq!(
            reply.status,
            StatusCode::FORBIDDEN,
            "{method} {path}: {}",
            reply.body
        );
    }
    let minted = through_viewer_key(
        Method::POST,
        "/v1/workspace/api-keys".to_owned(),
        Some(json!({"name": "minted", "role": "viewer"})),
    )
    .await;
    assert_eq!(minted.status, StatusCode::FORBIDDEN, "{}", minted.body);
    // Nothing changed: the admin key still works, the admin is still in.
    let still = env
        .call(
            Method::GET,
            &format!("{base}/v1/workspace/members"),
            Some(&admin_key),
            None,
            None,
        )
        .await;
    assert_eq!(still.status, StatusCode::OK, "{}", still.body);
    assert!(still.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["user_id"] == t.admin_id.as_str()));
    // A key may still revoke itself.
    let revoked = through_viewer_key(
        Method::DELETE,
        format!("/v1/workspace/api-keys/{viewer_key_id}"),
        None,
    )
    .await;
    assert!(revoked.status.is_success(), "{}", revoked.body);
}

#[tokio::test]
async fn a_removed_members_keys_stay_revoked_when_they_are_added_again() {
    let mut env = TestEnv::new().await;
    let base = env.start_all().await;
    let t = team(&env, &base, "removal").await;
    let (key_id, key) = create_key(&env, &base, &t.admin, &t.workspace, "member").await;
    let removed = env
        .call(
            Method::DELETE,
            &format!("{base}/v1/workspace/members/{}", t.admin_id),
            Some(&t.owner.token),
            Some(&t.workspace),
            None,
        )
        .await;
    assert!(removed.status.is_success(), "{}", removed.body);
    crate::helpers::join(
        &env,
        &base,
        &t.owner.token,
        &t.workspace,
        &t.admin.token,
        "admin-removal@trust.example",
        "admin",
    )
    .await;
    let with_key = env
        .call(
            Method::GET,
            &format!("{base}/v1/companies"),
            Some(&key),
            None,
            None,
        )
        .await;
    assert_eq!(
        with_key.status,
        StatusCode::UNAUTHORIZED,
        "{}",
        with_key.body
    );
    let keys =
        crate::helpers::eventually(Duration::from_secs(10), "the key listed as revoked", || {
            let env = &env;
            let t = &t;
            let url = format!("{base}/v1/workspace/api-keys");
            let key_id = key_id.clone();
            async move {
                let reply = env
                    .call(
                        Method::GET,
                        &url,
                        Some(&t.owner.token),
                        Some(&t.workspace),
                        None,
                    )
                    .await;
                let key = reply.body["items"]
                    .as_array()?
                    .iter()
                    .find(|k| k["id"] == key_id.as_str())?
                    .clone();
                (key["revoked"] == true).then_some(key)
            }
        })
        .await;
    assert_eq!(keys["revoked"], true);
}

#[tokio::test]
async fn a_workspace_security_log_shows_no_members_account_events() {
    let mut env = TestEnv::new().await;
    let base = env.start_all().await;
    let t = team(&env, &base, "log").await;
    for _ in 0..2 {
        let failed = env
            .login(&base, "admin-log@trust.example", "not the password")
            .await;
        assert_eq!(failed.status, StatusCode::UNAUTHORIZED);
    }
    let log = crate::helpers::eventually(
        Duration::from_secs(10),
        "the member's joining logged",
        || {
            let env = &env;
            let t = &t;
            let url = format!("{base}/v1/workspace/security-events");
            async move {
                let reply = env
                    .call(
                        Method::GET,
                        &url,
                        Some(&t.owner.token),
                        Some(&t.workspace),
                        None,
                    )
                    .await;
                let items = reply.body["items"].as_array()?.clone();
                items
                    .iter()
                    .any(|e| e["kind"] == "member.added")
                    .then_some(items)
            }
        },
    )
    .await;
    for entry in &log {
        assert_eq!(entry["workspace_id"], t.workspace.as_str(), "{entry}");
        let kind = entry["kind"].as_str().unwrap();
        assert!(
            !kind.starts_with("login.") && !kind.starts_with("session."),
            "{entry}"
        );
    }
    // The account holder still sees their own.
    let own = env
        .call(
            Method::GET,
            &format!("{base}/v1/me/security-events"),
            Some(&t.admin.token),
            None,
            None,
        )
        .await;
    let failures = own.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "login.failed")
        .count();
    assert_eq!(failures, 2, "{}", own.body);
}

#[tokio::test]
async fn readiness_shows_strangers_only_up_or_down() {
    let mut env = TestEnv::new().await;
    let base = env.start_all().await;
    let anonymous: Value = env
        .http
        .get(format!("{base}/health/ready"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(anonymous.get("runs").is_none(), "{anonymous}");
    for check in anonymous["checks"].as_array().unwrap() {
        let keys: Vec<&str> = check
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, ["name", "ok"], "{check}");
    }
    let operator: Value = env
        .http
        .get(format!("{base}/health/ready"))
        .bearer_auth(crate::helpers::ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(operator["checks"][0]["detail"].is_string(), "{operator}");
}

#[tokio::test]
async fn a_token_that_is_not_valid_yet_is_refused() {
    let mut env = TestEnv::new().await;
    let base = env.start_all().await;
    let session = env.register(&base, "nbf@trust.example", "Early").await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = vcintel_api::auth::token::Claims {
        sub: session["user_id"].as_str().unwrap().parse().unwrap(),
        sid: None,
        dws: None,
        ws: Some(
            session["default_workspace_id"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap(),
        ),
        role: Some(vcintel_domain::Role::Owner),
        iss: vcintel_api::auth::token::ISSUER.to_owned(),
        iat: now,
        nbf: Some(now + 3_600),
        exp: now + 7_200,
    };
    let early = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(env.settings().jwt_secret_bytes()),
    )
    .unwrap();
    let reply = env
        .call(
            Method::GET,
            &format!("{base}/v1/companies"),
            Some(&early),
            None,
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.body);
    // The same token without `nbf` is accepted (test servers take
    // development tokens), so `nbf` alone refused it.
    let now_valid = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &vcintel_api::auth::token::Claims {
            nbf: None,
            ..claims
        },
        &jsonwebtoken::EncodingKey::from_secret(env.settings().jwt_secret_bytes()),
    )
    .unwrap();
    let reply = env
        .call(
            Method::GET,
            &format!("{base}/v1/companies"),
            Some(&now_valid),
            None,
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
}

#[tokio::test]
async fn inviting_answers_alike_for_any_address_and_nobody_joins_without_accepting() {
    let mut env = TestEnv::new().await;
    let base = env.start_all().await;
    let t = team(&env, &base, "consent").await;
    let victim = sign_up(&env, &base, "victim@trust.example").await;
    let invite = |email: &'static str| {
        let env = &env;
        let t = &t;
        let url = format!("{base}/v1/workspace/members");
        async move {
            env.call(
                Method::POST,
                &url,
                Some(&t.owner.token),
                Some(&t.workspace),
                Some(&json!({"email": email, "role": "member"})),
            )
            .await
        }
    };
    let existing = invite("victim@trust.example").await;
    let unknown = invite("nobody-yet@trust.example").await;
    // The same status and the same shape: no existence oracle.
    assert_eq!(existing.status, StatusCode::ACCEPTED, "{}", existing.body);
    assert_eq!(unknown.status, existing.status, "{}", unknown.body);
    let keys = |reply: &Reply| {
        let mut keys: Vec<String> = reply.body.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    };
    assert_eq!(keys(&existing), keys(&unknown));
    assert!(existing.body.get("user_id").is_none(), "{}", existing.body);
    // The victim is not a member: the workspace's data is not theirs, and
    // their account shows no trace of it.
    let reads = env
        .call(
            Method::GET,
            &format!("{base}/v1/companies"),
            Some(&victim.token),
            Some(&t.workspace),
            None,
        )
        .await;
    assert_eq!(reads.status, StatusCode::NOT_FOUND);
    let me = get(&env, &format!("{base}/v1/me"), &victim).await;
    assert!(!me.body.to_string().contains(&t.workspace), "{}", me.body);
    let members = env
        .call(
            Method::GET,
            &format!("{base}/v1/workspace/members"),
            Some(&t.owner.token),
            Some(&t.workspace),
            None,
        )
        .await;
    assert!(
        !members.body.to_string().contains("victim@trust.example"),
        "{}",
        members.body
    );
    // Each invitee, with an account or not, is told by mail, once, with
    // the invitation to accept and nothing that is a credential.
    let invitation = existing.body["invitation_id"].as_str().unwrap().to_owned();
    for (address, id) in [
        ("victim@trust.example", invitation.clone()),
        (
            "nobody-yet@trust.example",
            unknown.body["invitation_id"].as_str().unwrap().to_owned(),
        ),
    ] {
        let mail =
            crate::helpers::eventually(Duration::from_secs(15), "an invitation mail", || async {
                env.mail
                    .to(address)
                    .into_iter()
                    .find(|mail| mail.data.contains("invited"))
            })
            .await;
        let text = mail.data.replace("=\r\n", "").replace("=\n", "");
        assert!(text.contains(&id), "{text}");
        assert!(text.contains("consent"), "names the workspace: {text}");
        assert!(!text.contains("vcv_"), "{text}");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let invitation_mails = env
        .mail
        .to("nobody-yet@trust.example")
        .iter()
        .filter(|mail| mail.data.contains("invited"))
        .count();
    assert_eq!(invitation_mails, 1, "one mail per invitation");
    // Declining ends it; the workspace sees the invitation gone.
    let declined = crate::helpers::eventually(Duration::from_secs(10), "the decline", || {
        let env = &env;
        let url = format!("{base}/v1/me/invitations/{invitation}/decline");
        let token = victim.token.clone();
        async move {
            let reply = env.call(Method::POST, &url, Some(&token), None, None).await;
            (reply.status != StatusCode::NOT_FOUND).then_some(reply)
        }
    })
    .await;
    assert_eq!(declined.status, StatusCode::OK, "{}", declined.body);
    let accept_after = env
        .call(
            Method::POST,
            &format!("{base}/v1/me/invitations/{invitation}/accept"),
            Some(&victim.token),
            None,
            None,
        )
        .await;
    assert_eq!(
        accept_after.status,
        StatusCode::NOT_FOUND,
        "{}",
        accept_after.body
    );
    // Someone else cannot take up another address's invitation.
    let other = invite("nobody-yet@trust.example").await;
    let stranger = sign_up(&env, &base, "stranger-consent@trust.example").await;
    let taken = env
        .call(
            Method::POST,
            &format!(
                "{base}/v1/me/invitations/{}/accept",
                other.body["invitation_id"].as_str().unwrap()
            ),
            Some(&stranger.token),
            None,
            None,
        )
        .await;
    assert_eq!(taken.status, StatusCode::NOT_FOUND, "{}", taken.body);
}

#[tokio::test]
async fn an_address_is_verified_once_by_the_token_mailed_to_it() {
    let mut env = TestEnv::new().await;
    let base = env.start_all().await;
    let user = sign_up(&env, &base, "verify@trust.example").await;
    let me = get(&env, &format!("{base}/v1/me"), &user).await;
    assert_eq!(me.body["email_verified"], false, "{}", me.body);
    // The mail went to the address over SMTP, with a link to the app.
    let token = env.verification_token("verify@trust.example").await;
    let mail = env.mail.to("verify@trust.example").pop().unwrap();
    assert!(
        mail.data.contains("Subject: Verify your e-mail address"),
        "{}",
        mail.data
    );
    assert!(
        mail.data.contains("app.vcintel.test/verify-email"),
        "{}",
        mail.data
    );
    // The token is in no event: events reach every subscriber.
    let leaked: i64 =
        sqlx::query_scalar("select count(*) from events where payload::text like '%vcv_%'")
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert_eq!(leaked, 0);
    let verify = |token: String| {
        let env = &env;
        let url = format!("{base}/v1/auth/verify-email");
        async move {
            env.call(
                Method::POST,
                &url,
                None,
                None,
                Some(&json!({"token": token})),
            )
            .await
        }
    };
    let forged = verify(format!("{token}x")).await;
    assert_bad_parameter(&forged, "token");
    let verified = verify(token.clone()).await;
    assert_eq!(verified.status, StatusCode::OK, "{}", verified.body);
    let me = get(&env, &format!("{base}/v1/me"), &user).await;
    assert_eq!(me.body["email_verified"], true, "{}", me.body);
    // Single use.
    assert_bad_parameter(&verify(token).await, "token");
    // Asking again once verified is refused.
    let again = env
        .call(
            Method::POST,
            &format!("{base}/v1/me/verification-mail"),
            Some(&user.token),
            None,
            None,
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);
}

#[tokio::test]
async fn an_expired_token_is_refused_and_a_new_mail_brings_a_fresh_one() {
    let mut env = TestEnv::new().await;
    let mut settings = env.settings();
    settings.verify_token_ttl_secs = 1;
    let base = env.start_all_with(settings).await;
    let user = sign_up(&env, &base, "late@trust.example").await;
    let first = env.verification_token("late@trust.example").await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let late = env
        .call(
            Method::POST,
            &format!("{base}/v1/auth/verify-email"),
            None,
            None,
            Some(&json!({"token": first})),
        )
        .await;
    assert_bad_parameter(&late, "token");
    let resent = env
        .call(
            Method::POST,
            &format!("{base}/v1/me/verification-mail"),
            Some(&user.token),
            None,
            None,
        )
        .await;
    assert_eq!(resent.status, StatusCode::ACCEPTED, "{}", resent.body);
    crate::helpers::eventually(Duration::from_secs(15), "a second mail", || async {
        (env.mail.to("late@trust.example").len() == 2).then_some(())
    })
    .await;
    let fresh = env.verification_token("late@trust.example").await;
    assert_ne!(fresh, first);
    let verified = env
        .call(
            Method::POST,
            &format!("{base}/v1/auth/verify-email"),
            None,
            None,
            Some(&json!({"token": fresh})),
        )
        .await;
    assert_eq!(verified.status, StatusCode::OK, "{}", verified.body);
}

#[tokio::test]
async fn one_site_is_one_company_whatever_its_port_or_path_case() {
    let mut env = TestEnv::new().await;
    let base = env.start_all().await;
    let user = sign_up(&env, &base, "sites@trust.example").await;
    let first = add_company(&env, &base, &user, "Acme", "acme-sites.example/About").await;
    for spelling in [
        "http://acme-sites.example:443/about",
        "https://www.ACME-sites.example/about/",
        "http://acme-sites.example:80/ABOUT",
    ] {
        let reply = env
            .call(
                Method::POST,
                &format!("{base}/v1/companies"),
                Some(&user.token),
                None,
                Some(&json!({"name": "Acme again", "website": spelling})),
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::CONFLICT,
            "{spelling}: {}",
            reply.body
        );
        assert_eq!(reply.body["existing_id"], first["id"], "{spelling}");
    }
    // The host is fetched as given: `www.` stays in the website.
    let www = add_company(
        &env,
        &base,
        &user,
        "Beta",
        "https://www.Beta-sites.example/",
    )
    .await;
    let id = www["id"].as_str().unwrap();
    let read = crate::helpers::eventually(Duration::from_secs(10), "the company", || async {
        let reply = get(&env, &format!("{base}/v1/companies/{id}"), &user).await;
        (reply.status == StatusCode::OK).then_some(reply.body)
    })
    .await;
    assert_eq!(read["website"], "www.beta-sites.example", "{read}");
    assert_eq!(read["url"], "https://www.beta-sites.example", "{read}");
}

#[tokio::test]
async fn if_match_any_is_taken_and_a_replay_is_not_served_for_bad_headers() {
    let mut env = TestEnv::new().await;
    let base = env.start_all().await;
    let user = sign_up(&env, &base, "headers@trust.example").await;
    let company = add_company(&env, &base, &user, "Headers", "headers.example").await;
    let id = company["id"].as_str().unwrap();
    let patched = env
        .http
        .patch(format!("{base}/v1/companies/{id}"))
        .bearer_auth(&user.token)
        .header("if-match", "*")
        .json(&json!({"sector": "Fintech"}))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), StatusCode::OK);
    // A stored answer is not served to a request whose headers the handler
    // would refuse.
    let post = |workspace: &'static str| {
        env.http
            .post(format!("{base}/v1/lists"))
            .bearer_auth(&user.token)
            .header("idempotency-key", "replay-headers-1")
            .header("x-workspace-id", workspace)
            .json(&json!({"name": "Replayed"}))
            .send()
    };
    let own = get(&env, &format!("{base}/v1/workspace"), &user).await;
    let workspace: &'static str =
        Box::leak(own.body["id"].as_str().unwrap().to_owned().into_boxed_str());
    let first = post(workspace).await.unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    let bad = post("not-a-uuid").await.unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    assert!(bad.headers().get("idempotent-replayed").is_none());
}

#[tokio::test]
async fn ten_parallel_key_creations_all_succeed() {
    let mut env = TestEnv::new().await;
    let base = env.start_all().await;
    let user = sign_up(&env, &base, "parallel@trust.example").await;
    let creations = (0..10).map(|i| {
        let env = &env;
        let url = format!("{base}/v1/workspace/api-keys");
        let token = user.token.clone();
        async move {
            env.call(
                Method::POST,
                &url,
                Some(&token),
                None,
                Some(&json!({"name": format!("key {i}"), "role": "viewer"})),
            )
            .await
            .status
        }
    });
    let statuses = futures::future::join_all(creations).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::CREATED),
        "{statuses:?}"
    );
}

#[tokio::test]
async fn the_job_cap_answers_an_unknown_and_a_foreign_company_alike() {
    let mut env = TestEnv::new().await;
    let mut settings = env.settings();
    settings.enrich_max_active_per_user = 0;
    let base = env.start_all_with(settings).await;
    let owner = sign_up(&env, &base, "cap-owner@trust.example").await;
    let stranger = sign_up(&env, &base, "cap-stranger@trust.example").await;
    let company = add_company(&env, &base, &owner, "Capped", "capped.example").await;
    let foreign = company["id"].as_str().unwrap();
    let unknown = uuid::Uuid::now_v7().to_string();
    for id in [foreign, unknown.as_str()] {
        let reply = env
            .call(
                Method::POST,
                &format!("{base}/v1/companies/{id}/enrichments"),
                Some(&stranger.token),
                None,
                None,
            )
            .await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{id}: {}", reply.body);
    }
    // The cap itself still holds for the owner's own company.
    let own = env
        .call(
            Method::POST,
            &format!("{base}/v1/companies/{foreign}/enrichments"),
            Some(&owner.token),
            None,
            None,
        )
        .await;
    assert_eq!(own.status, StatusCode::TOO_MANY_REQUESTS, "{}", own.body);
}

#[tokio::test]
async fn guessing_the_operator_token_is_rate_limited() {
    let mut env = TestEnv::new().await;
    let mut settings = env.settings();
    settings.rate_limit_anonymous = 3;
    let base = env.start_all_with(settings).await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let reply = env
            .http
            .get(format!("{base}/admin/read-models"))
            .bearer_auth("a guess at the operator token")
            .send()
            .await
            .unwrap();
        statuses.push(reply.status());
    }
    assert_eq!(
        &statuses[..3],
        [StatusCode::UNAUTHORIZED; 3],
        "{statuses:?}"
    );
    assert_eq!(statuses[4], StatusCode::TOO_MANY_REQUESTS, "{statuses:?}");
}

#[tokio::test]
async fn a_job_stream_ends_when_its_caller_loses_access() {
    let mut env = TestEnv::new().await;
    // No enricher: the job stays queued and the stream stays open.
    let running = env
        .start_with(
            env.settings(),
            &[
                vcintel_api::Component::Api,
                vcintel_api::Component::Relay,
                vcintel_api::Component::Projector,
                vcintel_api::Component::Mailer,
            ],
        )
        .await;
    let base = running.address.clone().unwrap();
    let t = team(&env, &base, "stream").await;
    let company = env
        .call(
            Method::POST,
            &format!("{base}/v1/companies"),
            Some(&t.owner.token),
            Some(&t.workspace),
            Some(&json!({"name": "Streamed", "website": "streamed.example"})),
        )
        .await;
    assert_eq!(company.status, StatusCode::CREATED, "{}", company.body);
    let id = company.body["id"].as_str().unwrap();
    let job = env
        .call(
            Method::POST,
            &format!("{base}/v1/companies/{id}/enrichments"),
            Some(&t.admin.token),
            Some(&t.workspace),
            None,
        )
        .await;
    assert_eq!(job.status, StatusCode::ACCEPTED, "{}", job.body);
    let job_id = job.body["job_id"].as_str().unwrap().to_owned();
    let events_url = format!("{base}/v1/enrichment-jobs/{job_id}/events");
    // Wait until the job is projected, then open the stream as the admin.
    crate::helpers::eventually(Duration::from_secs(10), "the job projected", || async {
        let reply = env
            .call(
                Method::GET,
                &format!("{base}/v1/enrichment-jobs/{job_id}"),
                Some(&t.admin.token),
                Some(&t.workspace),
                None,
            )
            .await;
        (reply.status == StatusCode::OK).then_some(())
    })
    .await;
    let mut stream = env
        .http
        .get(&events_url)
        .bearer_auth(&t.admin.token)
        .header("x-workspace-id", &t.workspace)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    let first = tokio::time::timeout(Duration::from_secs(5), stream.chunk())
        .await
        .expect("the first event")
        .unwrap();
    assert!(first.is_some());
    let removed = env
        .call(
            Method::DELETE,
            &format!("{base}/v1/workspace/members/{}", t.admin_id),
            Some(&t.owner.token),
            Some(&t.workspace),
            None,
        )
        .await;
    assert!(removed.status.is_success(), "{}", removed.body);
    // The stream ends within seconds (it would stay open ten minutes).
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match stream.chunk().await {
                Ok(Some(_)) => continue,
                _ => return,
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the stream outlived the membership");
    running.stop().await;
}

#[tokio::test]
async fn a_member_holds_at_most_twenty_live_keys() {
    let mut env = TestEnv::new().await;
    let base = env.start_all().await;
    let user = sign_up(&env, &base, "many-keys@trust.example").await;
    let own = get(&env, &format!("{base}/v1/workspace"), &user).await;
    let workspace = own.body["id"].as_str().unwrap().to_owned();
    for _ in 0..vcintel_domain::workspace::MAX_LIVE_API_KEYS_PER_MEMBER {
        create_key(&env, &base, &user, &workspace, "viewer").await;
    }
    let one_more = env
        .call(
            Method::POST,
            &format!("{base}/v1/workspace/api-keys"),
            Some(&user.token),
            None,
            Some(&json!({"name": "one more", "role": "viewer"})),
        )
        .await;
    assert_eq!(one_more.status, StatusCode::CONFLICT, "{}", one_more.body);
}

#[tokio::test]
async fn guessable_and_published_passwords_are_refused_at_sign_up() {
    let mut env = TestEnv::new().await;
    let base = env.start_all().await;
    for password in [
        "Password123!",
        "correct horse battery staple",
        "qwertyuiop123",
    ] {
        let reply = env
            .call(
                Method::POST,
                &format!("{base}/v1/auth/register"),
                None,
                None,
                Some(&json!({"email": "weak@trust.example", "password": password, "name": "Weak"})),
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{password}: {}",
            reply.body
        );
        assert_eq!(
            reply.body["errors"][0]["field"], "password",
            "{}",
            reply.body
        );
    }
}

#[tokio::test]
async fn the_202_for_an_existing_job_carries_a_consistency_token_too() {
    let mut env = TestEnv::new().await;
    // No enricher: the first job stays queued.
    let running = env
        .start_with(
            env.settings(),
            &[vcintel_api::Component::Api, vcintel_api::Component::Relay],
        )
        .await;
    let base = running.address.clone().unwrap();
    let user = sign_up(&env, &base, "existing-job@trust.example").await;
    let company = add_company(&env, &base, &user, "Queued", "queued.example").await;
    let id = company["id"].as_str().unwrap();
    let url = format!("{base}/v1/companies/{id}/enrichments");
    let first = env
        .call(Method::POST, &url, Some(&user.token), None, None)
        .await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.body);
    let again = env
        .call(Method::POST, &url, Some(&user.token), None, None)
        .await;
    assert_eq!(again.status, StatusCode::ACCEPTED, "{}", again.body);
    assert_eq!(again.body["existing"], true, "{}", again.body);
    assert!(
        again.header("x-consistency-token").is_some(),
        "{:?}",
        again.headers
    );
    running.stop().await;
}

#[tokio::test]
async fn a_past_state_has_its_own_etag_and_answers_if_none_match() {
    let mut env = TestEnv::new().await;
    let base = env.start_all().await;
    let user = sign_up(&env, &base, "past@trust.example").await;
    let company = add_company(&env, &base, &user, "Past", "past.example").await;
    let id = company["id"].as_str().unwrap();
    let url = format!("{base}/v1/companies/{id}?as_of=1");
    let past = get(&env, &url, &user).await;
    assert_eq!(past.status, StatusCode::OK, "{}", past.body);
    let etag = past
        .header("etag")
        .expect("an ETag on a past state")
        .to_owned();
    assert_eq!(etag, "\"1-past\"");
    let again = env
        .http
        .get(&url)
        .bearer_auth(&user.token)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
}
