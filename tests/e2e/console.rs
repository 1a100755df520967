//! The operator console in a real headless browser (Debian's chromium,
//! driven by playwright-core): it signs in with the operator token, loads
//! with no console error, and plots data after a scripted flow; the
//! screenshot is kept as an artifact. Its cookie only reads.

use crate::fixtures::{fixture_site, target_listener, FakeModel};
use crate::helpers::{eventually, TestEnv, ADMIN_TOKEN};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::Duration;
use uuid::Uuid;
use vcintel_domain::Role;

/// Where test artifacts (the console's screenshot) are written.
fn artifacts() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn the_console_signs_in_and_plots_a_scripted_flow_in_a_real_browser() {
    let (target, _) = target_listener().await;
    let site = fixture_site(target).await;
    let (_model, model_url) = FakeModel::start(vec![]).await;
    let mut env = TestEnv::new().await;
    let mut settings = env.settings();
    settings.enrich_allow_addresses = vec![site];
    settings.llm_base_url = Some(model_url);
    let base = env.start_all_with(settings).await;
    let workspace = Uuid::now_v7();
    let token = env.token(&env.actor(workspace, Role::Owner));

    // The flow: companies added, one enriched by the model.
    let mut company = String::new();
    for (name, website) in [
        ("Ledgerline", "ledgerline.example".to_owned()),
        ("Orbitforge", "orbitforge.example".to_owned()),
        ("Quillstack", format!("http://{site}/")),
    ] {
        let added = env
            .call(
                Method::POST,
                &format!("{base}/v1/companies"),
                Some(&token),
                None,
                Some(&json!({"name": name, "website": website})),
            )
            .await;
        assert_eq!(added.status, StatusCode::CREATED, "{}", added.body);
        company = added.body["id"].as_str().unwrap().to_owned();
    }
    let requested = env
        .call(
            Method::POST,
            &format!("{base}/v1/companies/{company}/enrichments"),
            Some(&token),
            None,
            None,
        )
        .await;
    assert_eq!(requested.status, StatusCode::ACCEPTED, "{}", requested.body);
    let job = requested.body["job_id"].as_str().unwrap().to_owned();
    eventually(Duration::from_secs(30), "the enrichment to succeed", || {
        let env = &env;
        let url = format!("{base}/v1/enrichment-jobs/{job}");
        let token = token.clone();
        async move {
            let reply = env.call(Method::GET, &url, Some(&token), None, None).await;
            (reply.body["state"] == "succeeded").then_some(())
        }
    })
    .await;
    // Its cost reached the usage read model the console plots.
    let costs = eventually(Duration::from_secs(15), "the cost to be projected", || {
        let env = &env;
        let url = format!("{base}/admin/enrichment-costs");
        async move {
            let reply = env
                .call(Method::GET, &url, Some(ADMIN_TOKEN), None, None)
                .await;
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
            (reply.body["top_workspaces"].as_array()?.len() == 1).then_some(reply.body)
        }
    })
    .await;
    assert_eq!(
        costs["top_workspaces"][0]["workspace_id"],
        workspace.to_string()
    );
    assert!(
        costs["top_workspaces"][0]["cost_micro_usd"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert_eq!(costs["by_month"].as_array().unwrap().len(), 1);

    // Traffic while the console watches, so its rates move.
    let traffic = {
        let http = env.http.clone();
        let url = format!("{base}/v1/companies");
        let token = token.clone();
        tokio::spawn(async move {
            loop {
                let _ = http.get(&url).bearer_auth(&token).send().await;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };

    // The browser.
    let screenshot = artifacts().join("operator-console.png");
    let _ = std::fs::remove_file(&screenshot);
    let run = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new("node")
            .arg(crate::contract::contract_dir().join("console/console_check.cjs"))
            .arg(&base)
            .arg(ADMIN_TOKEN)
            .arg(&screenshot)
            .env(
                "NODE_PATH",
                crate::contract::contract_tools().join("console/node_modules"),
            )
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the browser run ends within two minutes")
    .expect("node runs (scripts/test.sh installs it)");
    traffic.abort();
    assert!(
        run.status.success(),
        "the browser run failed: {}\n{}",
        String::from_utf8_lossy(&run.stderr),
        String::from_utf8_lossy(&run.stdout)
    );
    let report: Value = serde_json::from_slice(&run.stdout).unwrap();
    println!("console report: {report:#}");
    assert_eq!(report["signInStatus"], 401, "no session: the sign-in page");
    assert_eq!(
        report["wrongTokenMessage"], "That is not the operator token.",
        "{report:#}"
    );
    assert!(
        report["consoleUrl"]
            .as_str()
            .unwrap()
            .ends_with("/admin/console"),
        "{report:#}"
    );
    assert_eq!(
        report["consoleErrors"],
        json!([]),
        "the console logs no error"
    );
    // The sign-in page's only complaint is its own 401s.
    for error in report["signInErrors"].as_array().unwrap() {
        assert!(
            error.as_str().unwrap().contains("401"),
            "sign-in page error: {error}"
        );
    }
    let plots = &report["plots"];
    for plot in [
        "throughput",
        "published",
        "relay-lag",
        "read-model-lag",
        "dead-letters",
        "cost-by-month",
        "cost-by-workspace",
    ] {
        assert!(
            plots[plot]["points"].as_u64().unwrap() > 0,
            "{plot} has data: {report:#}"
        );
    }
    let lines = |plot: &str| plots[plot]["paths"].as_u64().unwrap();
    assert!(lines("throughput") >= 2, "requests and 5xx");
    assert!(
        lines("read-model-lag") as usize >= vcintel_projections::READ_MODELS.len(),
        "one line per read model: {report:#}"
    );
    let labels = |plot: &str| -> Vec<String> {
        plots[plot]["labels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l.as_str().unwrap().to_owned())
            .collect()
    };
    assert!(labels("read-model-lag")
        .iter()
        .any(|l| l.starts_with("companies: ")));
    assert_eq!(
        plots["dead-letters"]["bars"].as_u64().unwrap() as usize,
        vcintel_projections::READ_MODELS.len()
    );
    assert_eq!(plots["cost-by-month"]["bars"], 1);
    let prefix = format!("{}…", &workspace.to_string()[..8]);
    assert!(
        labels("cost-by-workspace").contains(&prefix),
        "{prefix} in {:?}",
        labels("cost-by-workspace")
    );
    assert_eq!(report["badges"]["relay-badge"], "publishing");
    assert_eq!(report["badges"]["breaker-badge"], "closed");
    assert_eq!(report["badges"]["dead-badge"], "0");
    assert_eq!(report["badges"]["database-badge"], "up");
    let png = std::fs::read(&screenshot).expect("the screenshot was written");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "a real screenshot"
    );
    println!("screenshot: {}", screenshot.display());
}

/// The console's cookie reads and never acts: a forged cross-site POST
/// carrying it is refused; the page itself is sealed with the token.
#[tokio::test]
async fn the_console_session_only_reads() {
    let mut env = TestEnv::new().await;
    let base = env.start_all().await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let refused = http
        .post(format!("{base}/admin/console/session"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("token=wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert!(refused.headers().get("set-cookie").is_none());
    let signed_in = http
        .post(format!("{base}/admin/console/session"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={ADMIN_TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
    assert_eq!(signed_in.headers()["location"], "/admin/console");
    let cookie = signed_in.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    assert!(!cookie.contains(ADMIN_TOKEN), "the cookie is not the token");
    let session = cookie.split(';').next().unwrap().to_owned();

    let page = http
        .get(format!("{base}/admin/console"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe"));
    assert!(page.text().await.unwrap().contains("console.js"));
    for read in ["/admin/read-models", "/admin/relay", "/metrics"] {
        let reply = http
            .get(format!("{base}{read}"))
            .header("cookie", &session)
            .send()
            .await
            .unwrap();
        assert_eq!(
            reply.status(),
            StatusCode::OK,
            "{read} reads with the cookie"
        );
    }
    let act = http
        .post(format!("{base}/admin/read-models/companies/rebuild"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(
        act.status(),
        StatusCode::UNAUTHORIZED,
        "the cookie never acts"
    );
    let forged = http
        .get(format!("{base}/admin/relay"))
        .header(
            "cookie",
            "vcintel_console=AAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
}

/// The operator's requests (the console polls three admin routes every two
/// seconds) are not charged to the per-address budget that bounds token
/// guesses; guesses still are.
#[tokio::test]
async fn operator_requests_are_not_rate_limited_like_guesses() {
    let mut env = TestEnv::new().await;
    let mut settings = env.settings();
    settings.rate_limit_anonymous = 2;
    let base = env.start_all_with(settings).await;
    for _ in 0..6 {
        let reply = env
            .http
            .get(format!("{base}/admin/relay"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), StatusCode::OK);
    }
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let reply = env
            .http
            .get(format!("{base}/admin/relay"))
            .bearer_auth("a-guess-at-the-operator-token-0000000000")
            .send()
            .await
            .unwrap();
        statuses.push(reply.status());
    }
    assert_eq!(statuses[0], StatusCode::UNAUTHORIZED);
    assert!(
        statuses.contains(&StatusCode::TOO_MANY_REQUESTS),
        "guesses are limited: {statuses:?}"
    );
}
