//! Rate limits shared by API processes, their headers, what happens when
//! the counter store is down, security headers and CORS.

use crate::helpers::{KillOnDrop, TestEnv, PASSWORD};
use reqwest::{Method, StatusCode};
use serde_json::json;

fn assert_rate_headers(reply: &crate::helpers::Reply, limit: &str) {
    assert_eq!(
        reply.header("x-ratelimit-limit"),
        Some(limit),
        "{:?}",
        reply.headers
    );
    assert!(reply.header("x-ratelimit-remaining").is_some());
    assert!(reply.header("x-ratelimit-reset").is_some());
}

#[tokio::test]
async fn two_api_processes_share_one_budget_per_user_per_ip_and_per_sign_in() {
    let mut env = TestEnv::new().await;
    // Projections for the workspace the sign-up creates.
    env.start_all().await;
    let limits = [
        ("VCINTEL_RATE_LIMIT_PER_USER", "6"),
        ("VCINTEL_RATE_LIMIT_ANONYMOUS", "4"),
        ("VCINTEL_RATE_LIMIT_AUTH", "4"),
        ("VCINTEL_DEV_TOKENS", "false"),
    ];
    let (first, a) = env.spawn_api_process(&limits).await;
    let _first = KillOnDrop(first);
    let (second, b) = env.spawn_api_process(&limits).await;
    let _second = KillOnDrop(second);

    // Sign-up is attempt 1 of the IP's 4.
    let tokens = env.register(&a, "busy@fund.example", "Busy").await;
    let token = tokens["access_token"].as_str().unwrap().to_owned();

    // Per user: 6 requests in all, alternating between the processes.
    let mut statuses = Vec::new();
    for i in 0..8 {
        let base = if i % 2 == 0 { &a } else { &b };
        let reply = env
            .call(
                Method::GET,
                &format!("{base}/v1/companies"),
                Some(&token),
                None,
                None,
            )
            .await;
        assert_rate_headers(&reply, "6");
        if reply.status == StatusCode::TOO_MANY_REQUESTS {
            let retry: u64 = reply.header("retry-after").unwrap().parse().unwrap();
            // Up to the rest of this window plus the fade into the next.
            assert!((1..=120).contains(&retry), "{retry}");
            assert_eq!(reply.body["type"], "urn:vcintel:problem:rate-limited");
            assert_eq!(
                reply.header("content-type"),
                Some("application/problem+json")
            );
        }
        statuses.push(reply.status.as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 200, 429, 429]);

    // Anonymous: 4 per IP, 401s included, on both processes.
    let mut anonymous = Vec::new();
    for i in 0..5 {
        let base = if i % 2 == 0 { &a } else { &b };
        let reply = env
            .call(
                Method::GET,
                &format!("{base}/v1/companies"),
                None,
                None,
                None,
            )
            .await;
        assert_rate_headers(&reply, "4");
        anonymous.push(reply.status.as_u16());
    }
    assert_eq!(anonymous, [401, 401, 401, 401, 429]);

    // Sign-in: attempts 2-4 pass (right or wrong), the 5th is refused.
    let mut logins = Vec::new();
    for (i, password) in ["wrong password 1", "wrong password 2", PASSWORD, PASSWORD]
        .iter()
        .enumerate()
    {
        let base = if i % 2 == 0 { &a } else { &b };
        let reply = env
            .call(
                Method::POST,
                &format!("{base}/v1/auth/login"),
                None,
                None,
                Some(&json!({"email": "busy@fund.example", "password": password})),
            )
            .await;
        if reply.status != StatusCode::TOO_MANY_REQUESTS {
            assert_rate_headers(&reply, "4");
        } else {
            assert!(reply.header("retry-after").is_some());
        }
        logins.push(reply.status.as_u16());
    }
    assert_eq!(logins, [401, 401, 200, 429]);

    // Hitting a limit is in the security log.
    let hits: i64 = sqlx::query_scalar(
        "select count(*) from security_events where kind in ('rate_limit.exceeded', 'login.locked_out')",
    )
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert!(hits >= 2, "{hits}");
}

#[tokio::test]
async fn with_the_counter_store_down_sign_in_fails_closed_and_the_rest_fails_open() {
    let mut env = TestEnv::new().await;
    env.start_all().await;
    let mut settings = env.settings();
    settings.rate_limit_per_user = 100;
    settings.rate_limit_anonymous = 10;
    settings.rate_limit_auth = 5;
    // Nothing listens on port 1.
    settings.rate_limit_database_url = Some("postgres://postgres@127.0.0.1:1/none".to_owned());
    let running = env
        .start_with(settings, &[vcintel_api::Component::Api])
        .await;
    let base = running.address.clone().unwrap();

    let login = env.login(&base, "someone@fund.example", PASSWORD).await;
    assert_eq!(
        login.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        login.body
    );
    assert_eq!(
        login.body["type"],
        "urn:vcintel:problem:rate-limiter-unavailable"
    );
    assert!(login.header("retry-after").is_some());
    let register = env
        .call(
            Method::POST,
            &format!("{base}/v1/auth/register"),
            None,
            None,
            Some(&json!({"email": "x@fund.example", "password": PASSWORD, "name": "X"})),
        )
        .await;
    assert_eq!(register.status, StatusCode::SERVICE_UNAVAILABLE);

    let token = env.token(&env.actor(uuid::Uuid::now_v7(), vcintel_domain::Role::Member));
    let list = env
        .call(
            Method::GET,
            &format!("{base}/v1/companies"),
            Some(&token),
            None,
            None,
        )
        .await;
    assert_eq!(list.status, StatusCode::OK, "served without a budget");
    assert!(list.header("x-ratelimit-limit").is_none());
    running.stop().await;
}

#[tokio::test]
async fn every_response_carries_security_headers_and_cors_follows_the_allow_list() {
    let mut env = TestEnv::new().await;
    let mut settings = env.settings();
    settings.cors_origins = vec!["https://app.vcintel.example".to_owned()];
    let running = env
        .start_with(settings, &[vcintel_api::Component::Api])
        .await;
    let base = running.address.clone().unwrap();

    for path in [
        "/health",
        "/v1/companies",
        "/no/such/route",
        "/openapi.json",
    ] {
        let reply = env
            .call(Method::GET, &format!("{base}{path}"), None, None, None)
            .await;
        assert_eq!(
            reply.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
        assert_eq!(reply.header("x-frame-options"), Some("DENY"), "{path}");
        assert_eq!(
            reply.header("referrer-policy"),
            Some("no-referrer"),
            "{path}"
        );
        assert!(reply
            .header("strict-transport-security")
            .unwrap()
            .contains("max-age="));
        assert!(reply
            .header("content-security-policy")
            .unwrap()
            .starts_with("default-src 'none'"));
    }
    let docs = env.http.get(format!("{base}/docs/")).send().await.unwrap();
    assert_eq!(docs.status(), StatusCode::OK);
    let csp = docs.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'"), "{csp}");

    let preflight = |origin: &'static str| {
        env.http
            .request(Method::OPTIONS, format!("{base}/v1/companies"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type,x-workspace-id",
            )
            .send()
    };
    let allowed = preflight("https://app.vcintel.example").await.unwrap();
    assert!(allowed.status().is_success(), "{}", allowed.status());
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://app.vcintel.example"
    );
    let refused = preflight("https://evil.example").await.unwrap();
    assert!(refused
        .headers()
        .get("access-control-allow-origin")
        .is_none());
    running.stop().await;
}

#[tokio::test]
async fn a_client_guessing_an_emails_password_is_locked_out_but_its_owner_is_not() {
    let mut env = TestEnv::new().await;
    let mut settings = env.settings();
    settings.rate_limit_auth = 3;
    settings.trust_forwarded_for = true;
    let running = env.start_with(settings, &vcintel_api::Component::ALL).await;
    let base = running.address.clone().unwrap();
    let login_from = |ip: &'static str, email: &'static str, password: &'static str| {
        let env = &env;
        let url = format!("{base}/v1/auth/login");
        async move {
            let response = env
                .http
                .post(url)
                .header("x-forwarded-for", format!("203.0.113.99, {ip}"))
                .json(&json!({"email": email, "password": password}))
                .send()
                .await
                .unwrap();
            (response.status(), response.headers().clone())
        }
    };
    let wrong = "a wrong password here";
    // The account exists (sign-up from its owner's IP).
    let signed_up = env
        .http
        .post(format!("{base}/v1/auth/register"))
        .header("x-forwarded-for", "198.51.100.1")
        .json(&json!({"email": "target@fund.example", "password": PASSWORD, "name": "Target"}))
        .send()
        .await
        .unwrap();
    assert_eq!(signed_up.status(), StatusCode::CREATED);
    // Sign-ups with the address, from elsewhere, spend nothing of its budget.
    for _ in 0..2 {
        let again = env
            .http
            .post(format!("{base}/v1/auth/register"))
            .header("x-forwarded-for", "192.0.2.50")
            .json(
                &json!({"email": "target@fund.example", "password": PASSWORD, "name": "Squatter"}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), StatusCode::CONFLICT);
    }
    // A stranger guesses from one address: three tries, then locked out.
    for _ in 0..3 {
        assert_eq!(
            login_from("192.0.2.3", "target@fund.example", wrong)
                .await
                .0,
            StatusCode::UNAUTHORIZED
        );
    }
    let (status, headers) = login_from("192.0.2.3", "target@fund.example", wrong).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(headers.contains_key("retry-after"));
    // The owner, from their own address, still signs in.
    assert_eq!(
        login_from("198.51.100.1", "target@fund.example", PASSWORD)
            .await
            .0,
        StatusCode::OK
    );
    // Another email from the stranger's address is unaffected by that
    // email's budget (the address has its own, shared by every email).
    assert_eq!(
        login_from("192.0.2.4", "other@fund.example", wrong).await.0,
        StatusCode::UNAUTHORIZED
    );

    let (kind, user, ip): (String, Option<uuid::Uuid>, Option<String>) = sqlx::query_as(
        "select kind, user_id, ip from security_events where kind = 'login.locked_out'",
    )
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!(kind, "login.locked_out");
    assert!(user.is_some(), "the lockout names the account");
    assert_eq!(
        ip.as_deref(),
        Some("192.0.2.3"),
        "the last X-Forwarded-For entry"
    );
    running.stop().await;
}

#[tokio::test]
async fn leased_budgets_never_pass_their_limit_across_processes_and_waste_little() {
    let mut env = TestEnv::new().await;
    env.start_all().await;
    // 200 a minute: each process may lease up to 4 at a time.
    let limits = [
        ("VCINTEL_RATE_LIMIT_PER_USER", "200"),
        ("VCINTEL_DEV_TOKENS", "false"),
    ];
    let (first, a) = env.spawn_api_process(&limits).await;
    let _first = KillOnDrop(first);
    let (second, b) = env.spawn_api_process(&limits).await;
    let _second = KillOnDrop(second);
    let tokens = env.register(&a, "burst@fund.example", "Burst").await;
    let token = tokens["access_token"].as_str().unwrap().to_owned();

    // 300 requests, 16 at a time, spread over both processes.
    let statuses: Vec<u16> = futures::future::join_all((0..16).map(|worker| {
        let (http, token) = (env.http.clone(), token.clone());
        let bases = [a.clone(), b.clone()];
        async move {
            let mut statuses = Vec::new();
            for i in 0..300 / 16 + 1 {
                let n = worker * 19 + i;
                if n >= 300 {
                    break;
                }
                let response = http
                    .get(format!("{}/v1/companies", bases[n % 2]))
                    .bearer_auth(&token)
                    .send()
                    .await
                    .unwrap();
                statuses.push(response.status().as_u16());
            }
            statuses
        }
    }))
    .await
    .into_iter()
    .flatten()
    .collect();
    assert_eq!(statuses.len(), 300);
    let admitted = statuses.iter().filter(|s| **s == 200).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(admitted + refused, 300, "{statuses:?}");
    assert!(admitted <= 200, "never past the limit: {admitted}");
    // Each process can hold at most 4 reserved and unused when the budget
    // runs out.
    assert!(admitted >= 200 - 2 * 4, "little wasted: {admitted}");
    let counted: i64 = sqlx::query_scalar(
        "select coalesce(sum(hits), 0)::bigint from rate_limit_windows where bucket like 'user:%'",
    )
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert!(
        counted <= 200,
        "the shared window holds at most the limit: {counted}"
    );
}

#[tokio::test]
async fn a_users_api_keys_draw_on_the_users_own_budget() {
    let mut env = TestEnv::new().await;
    env.start_all().await;
    let limits = [
        ("VCINTEL_RATE_LIMIT_PER_USER", "6"),
        ("VCINTEL_DEV_TOKENS", "false"),
    ];
    let (api, base) = env.spawn_api_process(&limits).await;
    let _api = KillOnDrop(api);
    let tokens = env.register(&base, "keys@fund.example", "Keys").await;
    let token = tokens["access_token"].as_str().unwrap().to_owned();
    let mut keys = Vec::new();
    for name in ["sync one", "sync two"] {
        let created = env
            .call(
                Method::POST,
                &format!("{base}/v1/workspace/api-keys"),
                Some(&token),
                None,
                Some(&json!({"name": name, "role": "viewer"})),
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
        keys.push(created.body["key"].as_str().unwrap().to_owned());
    }
    // Two requests spent creating keys; four more, from the session and
    // both keys, use up the user's six; then every credential is refused.
    let credentials = [&token, &keys[0], &keys[1], &keys[0], &token, &keys[1]];
    let mut statuses = Vec::new();
    for credential in credentials {
        let reply = env
            .call(
                Method::GET,
                &format!("{base}/v1/companies"),
                Some(credential),
                None,
                None,
            )
            .await;
        statuses.push(reply.status.as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 200, 429, 429]);
}
