//! Enrichment end to end: a real API, relay, projector and worker, a local
//! fixture web server the fetcher is explicitly allowed to reach, and a
//! "target" listener standing for internal services, which must never be
//! reached.

use crate::fixtures::{fixture_site, target_listener, FakeModel, ModelReply, GOOD_ANSWER};
use crate::helpers::{eventually, TestEnv};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;
use vcintel_domain::Role;

struct World {
    env: TestEnv,
    base: String,
    token: String,
    workspace: Uuid,
    fixture: SocketAddr,
    target: SocketAddr,
    hits: Arc<AtomicUsize>,
}

async fn world() -> World {
    world_with_model(None).await
}

async fn world_with_model(model: Option<String>) -> World {
    world_with(model, |_| {}).await
}

async fn world_with(
    model: Option<String>,
    adjust: impl FnOnce(&mut vcintel_api::Settings),
) -> World {
    let (target, hits) = target_listener().await;
    let fixture = fixture_site(target).await;
    let mut env = TestEnv::new().await;
    let mut settings = env.settings();
    settings.enrich_allow_addresses = vec![fixture];
    settings.llm_base_url = model;
    adjust(&mut settings);
    let base = env.start_all_with(settings).await;
    let workspace = Uuid::now_v7();
    let token = env.token(&env.actor(workspace, Role::Member));
    World {
        env,
        base,
        token,
        workspace,
        fixture,
        target,
        hits,
    }
}

impl World {
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> crate::helpers::Reply {
        self.env
            .call(
                method,
                &format!("{}{path}", self.base),
                Some(&self.token),
                None,
                body.as_ref(),
            )
            .await
    }

    async fn add_company(&self, name: &str, website: &str) -> String {
        let reply = self
            .call(
                Method::POST,
                "/v1/companies",
                Some(json!({"name": name, "website": website, "stage": "seed"})),
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::CREATED,
            "{website}: {}",
            reply.body
        );
        reply.body["id"].as_str().unwrap().to_owned()
    }

    async fn enrich(&self, company: &str) -> Value {
        let reply = self
            .call(
                Method::POST,
                &format!("/v1/companies/{company}/enrichments"),
                None,
            )
            .await;
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
        reply.body
    }

    async fn finished_job(&self, job: &str) -> Value {
        eventually(Duration::from_secs(30), "the job to end", || async {
            let reply = self
                .call(Method::GET, &format!("/v1/enrichment-jobs/{job}"), None)
                .await;
            let state = reply.body["state"].as_str().unwrap_or_default().to_owned();
            (state == "succeeded" || state == "failed").then_some(reply.body)
        })
        .await
    }
}

#[tokio::test]
async fn a_website_is_enriched_in_the_background_followed_live_and_searchable() {
    let w = world().await;
    let company = w.add_company("Quillstack", &w.fixture.to_string()).await;

    // The first request queues the job; concurrent ones get it back.
    let first = w
        .call(
            Method::POST,
            &format!("/v1/companies/{company}/enrichments"),
            None,
        )
        .await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.body);
    assert_eq!(first.body["existing"], false);
    let job = first.body["job_id"].as_str().unwrap().to_owned();
    assert_eq!(
        first.header("location"),
        Some(format!("/v1/enrichment-jobs/{job}").as_str())
    );
    let written = first.header("x-consistency-token").unwrap().to_owned();
    let answers = futures::future::join_all((0..6).map(|_| w.enrich(&company))).await;
    // Each job is started by exactly one request; the worker may finish the
    // first before all requests arrive, and then one of them starts a second.
    for answer in &answers {
        if answer["job_id"] == job.as_str() {
            assert_eq!(answer["existing"], true, "{answer}");
        }
    }
    let started: Vec<&Value> = answers.iter().filter(|a| a["existing"] == false).collect();
    assert!(started.len() <= 1, "{answers:?}");
    for second in started {
        let same: Vec<&Value> = answers
            .iter()
            .filter(|a| a["job_id"] == second["job_id"])
            .collect();
        assert_eq!(same.iter().filter(|a| a["existing"] == false).count(), 1);
    }

    // Follow it as server-sent events until it ends; the token makes the
    // stream wait for the job's read model.
    let stream = w
        .env
        .http
        .get(format!("{}/v1/enrichment-jobs/{job}/events", w.base))
        .bearer_auth(&w.token)
        .header("x-consistency-token", &written)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    assert_eq!(
        stream.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let text = tokio::time::timeout(Duration::from_secs(30), stream.text())
        .await
        .expect("the stream ends with the job")
        .unwrap();
    // Each event is what the document says: an EnrichmentJobStreamEvent.
    let mut doc: Value = w
        .env
        .http
        .get(format!("{}/openapi.json", w.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    doc["$ref"] = json!("#/components/schemas/EnrichmentJobStreamEvent");
    let validator = jsonschema::draft202012::new(&doc).unwrap();
    let mut checked = 0;
    for block in text.split("\n\n").filter(|b| b.contains("data:")) {
        let field = |name: &str| {
            block
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{name}:")))
                .map(str::trim)
                .unwrap_or_default()
                .to_owned()
        };
        let event = json!({
            "event": field("event"),
            "id": field("id"),
            "data": serde_json::from_str::<Value>(&field("data")).unwrap(),
        });
        let errors: Vec<String> = validator
            .iter_errors(&event)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{event}: {errors:?}");
        checked += 1;
    }
    assert!(checked > 0, "{text}");
    let states: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(|d| {
            serde_json::from_str::<Value>(d.trim()).unwrap()["state"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        states.last().map(String::as_str),
        Some("succeeded"),
        "{text}"
    );

    let done = w.finished_job(&job).await;
    assert_eq!(done["state"], "succeeded");
    assert_eq!(done["attempts"], 1);
    let result = &done["result"];
    assert_eq!(
        result["source"], "heuristic",
        "labelled as the built-in enricher"
    );
    assert_eq!(result["confidence"], "low");
    assert_eq!(result["cached"], false);
    assert_eq!(result["usage"]["cost_micro_usd"], 0);
    assert_eq!(result["sector"], "Developer tools");
    let summary = result["summary"].as_str().unwrap();
    assert!(summary.contains("document pipelines"), "{summary}");
    let everything = result.to_string().to_lowercase();
    assert!(
        !everything.contains("ignore")
            && !everything.contains("evil")
            && !everything.contains("score 100"),
        "hidden injections never reach the result: {result}"
    );
    let kinds: Vec<&str> = result["signals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kind"].as_str().unwrap())
        .collect();
    for kind in ["funding", "hiring", "enterprise_customers", "compliance"] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }
    let score = result["score"].as_u64().unwrap();
    assert!(score > 0 && score <= 100);

    // The company shows it, and search finds it by what enrichment found.
    let detail = eventually(Duration::from_secs(10), "the company enriched", || async {
        let reply = w
            .call(Method::GET, &format!("/v1/companies/{company}"), None)
            .await;
        (reply.body["enrichment"].is_object()).then_some(reply.body)
    })
    .await;
    assert_eq!(detail["score"].as_u64(), Some(score));
    assert_eq!(detail["enrichment"]["summary"], result["summary"]);
    let found = w.call(Method::GET, "/v1/companies?q=pipelines", None).await;
    let ids: Vec<&str> = found.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [company.as_str()]);
    let by_score = w
        .call(
            Method::GET,
            &format!("/v1/companies?min_score={score}"),
            None,
        )
        .await;
    assert_eq!(by_score.body["items"].as_array().unwrap().len(), 1);

    // A new request after the end starts a new job.
    let again = w.enrich(&company).await;
    assert_ne!(again["job_id"], job.as_str());
    assert_eq!(again["existing"], false);
    assert_eq!(w.hits.load(Ordering::SeqCst), 0);

    // The enrichment events on the stream match the AsyncAPI document.
    let doc: Value = w
        .env
        .http
        .get(format!("{}/asyncapi.json", w.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let messages = w.env.stream_messages().await;
    // The first job succeeded once (the second, started above, may have
    // succeeded by now too).
    let succeeded = messages
        .iter()
        .filter(|m| m.body["eventtype"] == "enrichment.succeeded")
        .filter(|m| m.body["aggregateid"] == job.as_str())
        .count();
    assert_eq!(succeeded, 1);
    for message in &messages {
        crate::asyncapi::check_against_document(&doc, message);
    }
}

#[tokio::test]
async fn internal_addresses_are_refused_in_every_spelling_and_through_redirects() {
    let w = world().await;
    let port = w.target.port();
    let fixture = w.fixture;
    // Other spellings of numeric hosts never become websites: refused at
    // input, field named (the schema's pattern says so too).
    for website in [
        format!("2130706433:{port}/decimal"),
        format!("0x7f.1:{port}/hex"),
        format!("017700000001:{port}/octal"),
        format!("http://[::1]:{port}"),
        format!("http://[::ffff:127.0.0.1]:{port}/mapped"),
    ] {
        let reply = w
            .call(
                Method::POST,
                "/v1/companies",
                Some(json!({"name": "Spelled", "website": website})),
            )
            .await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{website}");
        assert_eq!(reply.body["errors"][0]["field"], "website", "{website}");
    }
    let websites = [
        format!("127.0.0.1:{port}"),
        "169.254.169.254".to_owned(),
        format!("{fixture}/to-target"),
        format!("{fixture}/to-metadata"),
        format!("{fixture}/chain/3"),
    ];
    let mut jobs = Vec::new();
    for (i, website) in websites.iter().enumerate() {
        let company = w.add_company(&format!("Internal {i}"), website).await;
        jobs.push((
            website.clone(),
            w.enrich(&company).await["job_id"]
                .as_str()
                .unwrap()
                .to_owned(),
        ));
    }
    for (website, job) in jobs {
        let done = w.finished_job(&job).await;
        assert_eq!(done["state"], "failed", "{website}: {done}");
        assert_eq!(done["attempts"], 1, "not retried: {website}");
        let error = done["error"].as_str().unwrap();
        assert!(error.contains("may not be fetched"), "{website}: {error}");
    }
    assert_eq!(
        w.hits.load(Ordering::SeqCst),
        0,
        "the target listener was reached"
    );
}

#[tokio::test]
async fn pages_that_are_not_html_or_too_large_fail_without_retries() {
    let w = world().await;
    for (path, expected) in [("image", "not HTML"), ("huge", "larger than")] {
        let company = w
            .add_company(&format!("Odd {path}"), &format!("{}/{path}", w.fixture))
            .await;
        let job = w.enrich(&company).await["job_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let done = w.finished_job(&job).await;
        assert_eq!(done["state"], "failed");
        assert_eq!(done["attempts"], 1);
        assert!(done["error"].as_str().unwrap().contains(expected), "{done}");
    }
}

#[tokio::test]
async fn server_errors_are_retried_with_backoff_and_given_up_after_three_attempts() {
    let w = world().await;
    let flaky = w
        .add_company("Flaky", &format!("{}/flaky", w.fixture))
        .await;
    let job = w.enrich(&flaky).await["job_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let done = w.finished_job(&job).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["attempts"], 3, "two 503s, then the page");

    let down = w.add_company("Down", &format!("{}/down", w.fixture)).await;
    let job = w.enrich(&down).await["job_id"].as_str().unwrap().to_owned();
    let done = w.finished_job(&job).await;
    assert_eq!(done["state"], "failed", "{done}");
    assert_eq!(done["attempts"], 3);
    assert!(
        done["error"].as_str().unwrap().contains("HTTP 502"),
        "{done}"
    );
    // Each failure waited before the next attempt (base 50 ms, doubling).
    let events: Vec<(String, Value)> = sqlx::query_as(
        "select event_type, payload::jsonb from events where aggregate_id = $1 order by sequence",
    )
    .bind(&job)
    .fetch_all(&w.env.pool)
    .await
    .unwrap();
    let delays: Vec<u64> = events
        .iter()
        .filter(|(t, _)| t == "enrichment.attempt_failed")
        .filter_map(|(_, p)| p["enrichment.attempt_failed"]["retry_in_ms"].as_u64())
        .collect();
    assert_eq!(
        delays,
        [50, 100],
        "exponential backoff, none after the last attempt"
    );

    // A 404 is final at once.
    let gone = w
        .add_company("Gone", &format!("{}/no-such-page", w.fixture))
        .await;
    let job = w.enrich(&gone).await["job_id"].as_str().unwrap().to_owned();
    let done = w.finished_job(&job).await;
    assert_eq!(done["state"], "failed");
    assert_eq!(done["attempts"], 1, "a 404 is not retried");
}

#[tokio::test]
async fn viewers_cannot_enrich_and_other_workspaces_see_nothing() {
    let w = world().await;
    let company = w.add_company("Private", &w.fixture.to_string()).await;
    let job = w.enrich(&company).await["job_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let viewer = w.env.token(&w.env.actor(w.workspace, Role::Viewer));
    let refused = w
        .env
        .call(
            Method::POST,
            &format!("{}/v1/companies/{company}/enrichments", w.base),
            Some(&viewer),
            None,
            None,
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    let stranger = w.env.token(&w.env.actor(Uuid::now_v7(), Role::Owner));
    let elsewhere = w
        .env
        .call(
            Method::POST,
            &format!("{}/v1/companies/{company}/enrichments", w.base),
            Some(&stranger),
            None,
            None,
        )
        .await;
    assert_eq!(
        elsewhere.status,
        StatusCode::NOT_FOUND,
        "another workspace's company"
    );
    let viewer = stranger;
    let stranger = w
        .env
        .call(
            Method::GET,
            &format!("{}/v1/enrichment-jobs/{job}", w.base),
            Some(&viewer),
            None,
            None,
        )
        .await;
    assert_eq!(stranger.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_model_path_honours_retry_after_retries_server_errors_and_records_cost() {
    let (fake, url) = FakeModel::start(vec![
        ModelReply::Status(429, Some(1)),
        ModelReply::Status(500, None),
    ])
    .await;
    let w = world_with_model(Some(url)).await;
    let company = w.add_company("Quillstack", &w.fixture.to_string()).await;
    let job = w.enrich(&company).await["job_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let done = w.finished_job(&job).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["attempts"], 3, "429, then 500, then an answer");

    let calls = fake.calls();
    assert_eq!(calls.len(), 3);
    // Each call is timed by model and outcome on /metrics.
    let metrics = w
        .env
        .http
        .get(format!("{}/metrics", w.base))
        .bearer_auth(crate::helpers::ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let timed = |outcome: &str| {
        metrics
            .lines()
            .filter(|line| line.starts_with("vcintel_model_call_duration_seconds_count{"))
            .filter(|line| line.contains(&format!("outcome=\"{outcome}\"")))
            .filter(|line| line.contains("model=\"test-model\""))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    assert_eq!((timed("error"), timed("ok")), (2.0, 1.0), "{metrics}");
    // The business counter: one job started, by a requester with no
    // account (a development token) — tier `none`.
    assert!(
        metrics
            .lines()
            .any(|line| line == "vcintel_enrichments_requested_total{tier=\"none\"} 1"),
        "{metrics}"
    );
    let waited = calls[1].0 - calls[0].0;
    assert!(
        waited >= Duration::from_millis(950),
        "Retry-After: 1 was honoured (waited {waited:?}; the backoff alone is 50 ms)"
    );
    let request = &calls[2].1;
    assert_eq!(request["model"], "test-model");
    assert_eq!(request["response_format"]["type"], "json_schema");
    assert_eq!(request["response_format"]["json_schema"]["strict"], true);
    assert!(request.get("tools").is_none(), "the model gets no tools");
    let prompt = request["messages"][1]["content"].as_str().unwrap();
    // The page sits inside a fence with a boundary drawn for this request.
    let boundary: String = prompt
        .split("<<<UNTRUSTED_PAGE ")
        .nth(1)
        .unwrap_or_default()
        .chars()
        .take_while(char::is_ascii_hexdigit)
        .collect();
    assert_eq!(boundary.len(), 32, "{prompt}");
    assert!(prompt.contains(&format!("UNTRUSTED_PAGE {boundary}>>>")));
    assert!(prompt.contains("document pipelines"));
    assert!(
        !prompt.contains("score 100"),
        "hidden text never reaches the model"
    );

    let result = &done["result"];
    assert_eq!(result["source"], "model");
    assert_eq!(result["produced_by"], "test-model");
    assert!(result["prompt_version"].is_string());
    assert_eq!(result["usage"]["tokens_in"], 1000);
    assert_eq!(result["usage"]["tokens_out"], 200);
    // 1000 × $0.15/M + 200 × $0.60/M = $0.00027.
    assert_eq!(result["usage"]["cost_micro_usd"], 270);
    assert_eq!(result["sector"], "Developer tools");

    // The same site again: the cached result, no model call, no cost.
    let again = w.enrich(&company).await["job_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let cached = w.finished_job(&again).await;
    assert_eq!(cached["state"], "succeeded", "{cached}");
    assert_eq!(cached["result"]["cached"], true);
    assert_eq!(cached["result"]["usage"]["cost_micro_usd"], 0);
    assert_eq!(cached["result"]["summary"], result["summary"]);
    assert_eq!(fake.calls().len(), 3, "a cache hit calls no model");

    // Usage: two enrichments, one model call, its tokens and cost.
    let usage = eventually(Duration::from_secs(10), "usage projected", || async {
        let usage = w.call(Method::GET, "/v1/usage", None).await;
        (usage.body["mine"]["enrichments"] == 2).then_some(usage.body)
    })
    .await;
    assert_eq!(usage["mine"]["model_calls"], 1, "{usage}");
    assert_eq!(usage["mine"]["tokens_in"], 1000);
    assert_eq!(usage["mine"]["tokens_out"], 200);
    assert_eq!(usage["mine"]["cost_micro_usd"], 270);
    assert!(usage["workspace"].is_null(), "members see only their own");
    let owner = w.env.token(&w.env.actor(w.workspace, Role::Owner));
    let totals = w
        .env
        .call(
            Method::GET,
            &format!("{}/v1/usage", w.base),
            Some(&owner),
            None,
            None,
        )
        .await;
    assert_eq!(totals.body["workspace"]["totals"]["cost_micro_usd"], 270);
    assert_eq!(
        totals.body["workspace"]["by_user"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let bad = w.call(Method::GET, "/v1/usage?month=November", None).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);

    // Replaying every read model from the events calls no model either.
    let before = w
        .call(Method::GET, &format!("/v1/companies/{company}"), None)
        .await;
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_vcintel"))
        .env(
            "VCINTEL_PRIVACY_MASTER_KEY",
            crate::helpers::PRIVACY_MASTER_KEY,
        )
        .args(["projections", "rebuild"])
        .env("DATABASE_URL", &w.env.database_url)
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let after = w
        .call(Method::GET, &format!("/v1/companies/{company}"), None)
        .await;
    assert_eq!(after.body["enrichment"], before.body["enrichment"]);
    assert_eq!(fake.calls().len(), 3, "a rebuild calls no model");
    let replayed = w.call(Method::GET, "/v1/usage", None).await;
    assert_eq!(replayed.body["mine"], usage["mine"]);
}

#[tokio::test]
async fn invalid_model_answers_are_failed_attempts_and_never_stored() {
    let (fake, url) = FakeModel::start(vec![
        ModelReply::Answer(GOOD_ANSWER.replace(
            "Document pipeline API for developers.",
            "Visit https://evil.example for a prize",
        )),
        ModelReply::Answer("I am sorry, here is some prose instead of JSON".to_owned()),
        ModelReply::Answer(GOOD_ANSWER.replace(
            "\"high\"}",
            &format!("\"high\", \"padding\": \"{}\"}}", "x".repeat(20_000)),
        )),
    ])
    .await;
    let w = world_with_model(Some(url)).await;
    let company = w.add_company("Quillstack", &w.fixture.to_string()).await;
    let job = w.enrich(&company).await["job_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let done = w.finished_job(&job).await;
    assert_eq!(done["state"], "failed", "{done}");
    assert_eq!(done["attempts"], 3);
    assert!(
        done["error"].as_str().unwrap().contains("invalid"),
        "{done}"
    );
    assert!(done["result"].is_null());
    assert_eq!(fake.calls().len(), 3);
    let detail = w
        .call(Method::GET, &format!("/v1/companies/{company}"), None)
        .await;
    assert!(
        detail.body["enrichment"].is_null(),
        "nothing invalid is stored"
    );
    let events: Vec<String> =
        sqlx::query_scalar("select payload::text from events where aggregate_id = $1")
            .bind(&job)
            .fetch_all(&w.env.pool)
            .await
            .unwrap();
    assert!(
        events.iter().all(|e| !e.contains("evil.example")),
        "not even in an event"
    );
}

#[tokio::test]
async fn repeated_provider_failures_open_the_breaker_defer_jobs_and_a_probe_resumes_them() {
    let (fake, url) = FakeModel::start(vec![
        ModelReply::Status(500, None),
        ModelReply::Status(503, None),
    ])
    .await;
    let w = world_with(Some(url), |s| {
        s.llm_breaker_threshold = 2;
        s.llm_breaker_cooldown_ms = 1_500;
    })
    .await;
    let first = w.add_company("Quillstack", &w.fixture.to_string()).await;
    let first_job = w.enrich(&first).await["job_id"]
        .as_str()
        .unwrap()
        .to_owned();
    eventually(
        Duration::from_secs(10),
        "the first job deferred",
        || async {
            let job = w
                .call(
                    Method::GET,
                    &format!("/v1/enrichment-jobs/{first_job}"),
                    None,
                )
                .await;
            (job.body["state"] == "deferred").then_some(())
        },
    )
    .await;

    // While open: readiness says so, new jobs are deferred without a call.
    let ready = w
        .env
        .http
        .get(format!("{}/health/ready", w.base))
        .bearer_auth(crate::helpers::ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    let ready: Value = ready.json().await.unwrap();
    let circuit = ready["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "model_circuit")
        .unwrap()
        .clone();
    assert!(
        circuit["detail"].as_str().unwrap().starts_with("open"),
        "{circuit}"
    );
    let second = w
        .add_company("Second", &format!("{}/about", w.fixture))
        .await;
    let accepted = w.enrich(&second).await;
    assert_eq!(
        accepted["notice"],
        "service temporarily unavailable, job queued"
    );
    let second_job = accepted["job_id"].as_str().unwrap().to_owned();
    let deferred = w
        .call(
            Method::GET,
            &format!("/v1/enrichment-jobs/{first_job}"),
            None,
        )
        .await;
    assert_eq!(
        deferred.body["error"],
        "model service temporarily unavailable; job queued"
    );
    assert_eq!(
        fake.calls().len(),
        2,
        "no model call while the breaker is open"
    );

    // After the cooldown a probe succeeds and both jobs finish.
    let first_done = w.finished_job(&first_job).await;
    let second_done = w.finished_job(&second_job).await;
    assert_eq!(first_done["state"], "succeeded", "{first_done}");
    assert_eq!(first_done["attempts"], 3);
    assert_eq!(second_done["state"], "succeeded", "{second_done}");
    assert_eq!(second_done["attempts"], 1, "deferring costs no attempt");
    assert_eq!(fake.calls().len(), 4);
    let deferrals: i64 = sqlx::query_scalar(
        "select count(*) from events where event_type = 'enrichment.deferred' and aggregate_id in ($1, $2)",
    )
    .bind(&first_job)
    .bind(&second_job)
    .fetch_one(&w.env.pool)
    .await
    .unwrap();
    assert!(deferrals >= 1, "the jobs were deferred, not failed");
}

/// Records a user's registration with `tier`, as billing would have set it
/// (the product has no tier-changing command yet).
async fn registered_with_tier(env: &TestEnv, user: Uuid, workspace: Uuid, tier: &str) {
    sqlx::query(
        "insert into events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         values ('user', $1, 1, 'user.registered', '1', $2, $3)",
    )
    .bind(user.to_string())
    .bind(json!({"user.registered": {
        "user_id": user, "email": format!("{tier}-{user}@tiers.example"), "name": tier,
        "tier": tier, "personal_workspace_id": workspace}}))
    .bind(json!({"workspace_id": workspace.to_string()}))
    .execute(&env.pool)
    .await
    .unwrap();
}

#[tokio::test]
async fn enrichments_are_limited_per_tier_per_hour_and_to_five_active_jobs_per_user() {
    let mut env = TestEnv::new().await;
    let mut settings = env.settings();
    settings.enrich_per_hour_free = 2;
    settings.enrich_per_hour_pro = 4;
    settings.enrich_per_hour_enterprise = 0;
    settings.enrich_max_active_per_user = 5;
    // No enricher: jobs stay queued, so the cap can be reached.
    let running = env
        .start_with(
            settings,
            &[
                vcintel_api::Component::Api,
                vcintel_api::Component::Relay,
                vcintel_api::Component::Projector,
            ],
        )
        .await;
    let base = running.address.clone().unwrap();
    let workspace = Uuid::now_v7();
    let mut companies = Vec::new();
    let adder = env.token(&env.actor(workspace, Role::Member));
    for i in 0..8 {
        let reply = env
            .call(
                Method::POST,
                &format!("{base}/v1/companies"),
                Some(&adder),
                None,
                Some(&json!({"name": format!("Tiered {i}"), "website": format!("tiered{i}.example")})),
            )
            .await;
        companies.push(reply.body["id"].as_str().unwrap().to_owned());
    }
    let enrich = |token: String, company: String| {
        let (env, base) = (&env, base.clone());
        async move {
            env.call(
                Method::POST,
                &format!("{base}/v1/companies/{company}/enrichments"),
                Some(&token),
                None,
                None,
            )
            .await
        }
    };

    // Free: 2 an hour.
    let free = env.token(&env.actor(workspace, Role::Member));
    for company in &companies[..2] {
        let ok = enrich(free.clone(), company.clone()).await;
        assert_eq!(ok.status, StatusCode::ACCEPTED, "{}", ok.body);
        assert_eq!(ok.header("x-ratelimit-limit"), Some("2"));
    }
    let refused = enrich(free.clone(), companies[2].clone()).await;
    assert_eq!(
        refused.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        refused.body
    );
    assert!(
        refused
            .header("retry-after")
            .unwrap()
            .parse::<u64>()
            .unwrap()
            > 0
    );
    assert_eq!(refused.header("x-ratelimit-remaining"), Some("0"));
    // A job already under way is returned without charging anything.
    let existing = enrich(free.clone(), companies[0].clone()).await;
    assert_eq!(existing.status, StatusCode::ACCEPTED);
    assert_eq!(existing.body["existing"], true);

    // Pro: 4 an hour.
    let pro_user = Uuid::now_v7();
    registered_with_tier(&env, pro_user, workspace, "pro").await;
    let pro = env.token(&vcintel_domain::Actor {
        workspace_id: vcintel_domain::WorkspaceId(workspace),
        user_id: vcintel_domain::UserId(pro_user),
        role: Role::Member,
        api_key: None,
    });
    for company in &companies[2..6] {
        let ok = enrich(pro.clone(), company.clone()).await;
        assert_eq!(ok.status, StatusCode::ACCEPTED, "{}", ok.body);
        assert_eq!(ok.header("x-ratelimit-limit"), Some("4"));
    }
    let refused = enrich(pro.clone(), companies[6].clone()).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);

    // Enterprise: no hourly limit, but at most 5 jobs queued or running.
    let big_user = Uuid::now_v7();
    registered_with_tier(&env, big_user, workspace, "enterprise").await;
    let big = env.token(&vcintel_domain::Actor {
        workspace_id: vcintel_domain::WorkspaceId(workspace),
        user_id: vcintel_domain::UserId(big_user),
        role: Role::Member,
        api_key: None,
    });
    let mut others = Vec::new();
    for i in 0..6 {
        let reply = env
            .call(
                Method::POST,
                &format!("{base}/v1/companies"),
                Some(&big),
                None,
                Some(&json!({"name": format!("Big {i}"), "website": format!("big{i}.example")})),
            )
            .await;
        others.push(reply.body["id"].as_str().unwrap().to_owned());
    }
    let answers =
        futures::future::join_all(others.iter().map(|c| enrich(big.clone(), c.clone()))).await;
    let accepted = answers
        .iter()
        .filter(|a| a.status == StatusCode::ACCEPTED)
        .count();
    let capped: Vec<_> = answers
        .iter()
        .filter(|a| a.status == StatusCode::TOO_MANY_REQUESTS)
        .collect();
    assert_eq!(
        accepted,
        5,
        "{answers:?}",
        answers = answers.iter().map(|a| &a.body).collect::<Vec<_>>()
    );
    assert_eq!(capped.len(), 1);
    assert_eq!(
        capped[0].body["type"],
        "urn:vcintel:problem:enrichment-job-cap"
    );
    assert!(capped[0].header("retry-after").is_some());
    assert!(
        answers
            .iter()
            .all(|a| a.header("x-ratelimit-limit").is_none()),
        "enterprise is unlimited"
    );
    running.stop().await;
}

#[tokio::test]
async fn the_budget_alerts_once_at_80_percent_on_nats_and_stops_enrichment_at_100() {
    let (_fake, url) = FakeModel::start(vec![]).await;
    // Each model call costs 270 µ$; the budget is 500 µ$.
    let w = world_with(Some(url), |s| s.enrich_monthly_budget_usd = 0.0005).await;
    let usage_reaches = |micro: u64| {
        let w = &w;
        async move {
            eventually(Duration::from_secs(10), "usage projected", || async {
                let usage = w.call(Method::GET, "/v1/usage", None).await;
                (usage.body["mine"]["cost_micro_usd"] == micro).then_some(())
            })
            .await
        }
    };
    let first = w.add_company("First", &w.fixture.to_string()).await;
    let job = w.enrich(&first).await["job_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(w.finished_job(&job).await["state"], "succeeded");
    usage_reaches(270).await;
    let budget_messages = || async {
        w.env
            .stream_messages()
            .await
            .into_iter()
            .filter(|m| m.subject.ends_with(".budget.threshold_reached"))
            .collect::<Vec<_>>()
    };
    assert!(budget_messages().await.is_empty(), "54 % raises nothing");

    let second = w
        .add_company("Second", &format!("{}/about", w.fixture))
        .await;
    let job = w.enrich(&second).await["job_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(w.finished_job(&job).await["state"], "succeeded");
    usage_reaches(540).await;
    let alerts = eventually(Duration::from_secs(10), "alerts on NATS", || async {
        let messages = budget_messages().await;
        (messages.len() >= 2).then_some(messages)
    })
    .await;
    let percents: Vec<u64> = alerts
        .iter()
        .map(|m| m.body["data"]["percent"].as_u64().unwrap())
        .collect();
    assert_eq!(percents, [80, 100], "each threshold once");
    assert_eq!(alerts[0].body["data"]["budget_micro_usd"], 500);
    assert!(alerts[0].subject.contains(&w.workspace.to_string()));

    let third = w
        .add_company("Third", &format!("{}/flaky", w.fixture))
        .await;
    let refused = w
        .call(
            Method::POST,
            &format!("/v1/companies/{third}/enrichments"),
            None,
        )
        .await;
    assert_eq!(
        refused.status,
        StatusCode::PAYMENT_REQUIRED,
        "{}",
        refused.body
    );
    assert_eq!(refused.body["type"], "urn:vcintel:problem:budget-exhausted");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        budget_messages().await.len(),
        2,
        "no alert twice in a month"
    );
}

#[tokio::test]
async fn the_fit_score_follows_the_workspace_thesis() {
    let w = world().await;
    let session = w
        .env
        .register(&w.base, "thesis@fund.example", "Thesis")
        .await;
    let owner = session["access_token"].as_str().unwrap().to_owned();
    let call = |method: Method, path: &str, body: Option<Value>| {
        let (env, url, owner) = (&w.env, format!("{}{path}", w.base), owner.clone());
        async move {
            env.call(method, &url, Some(&owner), None, body.as_ref())
                .await
        }
    };
    let empty = call(Method::GET, "/v1/workspace/thesis", None).await;
    assert_eq!(
        empty.body,
        json!({"sectors": [], "stages": [], "locations": []})
    );
    let invalid = call(
        Method::PUT,
        "/v1/workspace/thesis",
        Some(json!({"sectors": ["", "x".repeat(61)], "stages": ["seed"]})),
    )
    .await;
    assert_eq!(invalid.status, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<&str> = invalid.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["sectors[0]", "sectors[1]"]);
    let set = call(
        Method::PUT,
        "/v1/workspace/thesis",
        Some(json!({"sectors": ["Developer tools"], "stages": ["seed"], "locations": ["Berlin"]})),
    )
    .await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.body);
    let now = call(Method::GET, "/v1/workspace/thesis", None).await;
    assert_eq!(now.body["sectors"], json!(["Developer tools"]));

    let fit = call(
        Method::POST,
        "/v1/companies",
        Some(json!({"name": "Quillstack", "website": w.fixture.to_string(), "stage": "seed", "location": "Berlin"})),
    )
    .await;
    let fit = fit.body["id"].as_str().unwrap().to_owned();
    let job = call(
        Method::POST,
        &format!("/v1/companies/{fit}/enrichments"),
        None,
    )
    .await;
    let job = job.body["job_id"].as_str().unwrap().to_owned();
    let scored = eventually(Duration::from_secs(20), "the job ends", || async {
        let reply = call(Method::GET, &format!("/v1/enrichment-jobs/{job}"), None).await;
        (reply.body["state"] == "succeeded").then_some(reply.body)
    })
    .await;
    let with_thesis = scored["result"]["score"].as_u64().unwrap();

    // The same company in a workspace without a thesis scores lower.
    let elsewhere = w.add_company("Quillstack", &w.fixture.to_string()).await;
    let other_job = w.enrich(&elsewhere).await["job_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let without = w.finished_job(&other_job).await["result"]["score"]
        .as_u64()
        .unwrap();
    assert!(
        with_thesis >= 70 && with_thesis > without + 20,
        "with the thesis {with_thesis}, without {without}"
    );

    // A member of this workspace may read it but not set it.
    let owner_workspace = call(Method::GET, "/v1/workspace", None).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let member = w
        .env
        .register(&w.base, "analyst@fund.example", "Analyst")
        .await;
    let member = member["access_token"].as_str().unwrap().to_owned();
    crate::helpers::join(
        &w.env,
        &w.base,
        &owner,
        &owner_workspace,
        &member,
        "analyst@fund.example",
        "member",
    )
    .await;
    let as_member = |method: Method, body: Option<Value>| {
        let (env, url) = (&w.env, format!("{}/v1/workspace/thesis", w.base));
        let (member, workspace) = (member.clone(), owner_workspace.clone());
        async move {
            env.call(method, &url, Some(&member), Some(&workspace), body.as_ref())
                .await
        }
    };
    let read = as_member(Method::GET, None).await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.body);
    assert_eq!(read.body["sectors"], json!(["Developer tools"]));
    let refused = as_member(Method::PUT, Some(json!({"sectors": []}))).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
}

#[tokio::test]
async fn a_model_that_answers_too_slowly_times_out_and_the_job_is_retried() {
    let (fake, url) = FakeModel::start(vec![ModelReply::Slow(3_000)]).await;
    let w = world_with(Some(url), |s| s.llm_timeout_secs = 1).await;
    let company = w.add_company("Slowpoke", &w.fixture.to_string()).await;
    let job = w.enrich(&company).await["job_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let done = w.finished_job(&job).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["attempts"], 2, "the slow answer was abandoned");
    assert_eq!(fake.calls().len(), 2);
    let failures: Vec<String> = sqlx::query_scalar(
        "select payload->'enrichment.attempt_failed'->>'error' from events
         where aggregate_id = $1 and event_type = 'enrichment.attempt_failed'",
    )
    .bind(&job)
    .fetch_all(&w.env.pool)
    .await
    .unwrap();
    assert_eq!(failures.len(), 1);
    assert!(failures[0].contains("unavailable"), "{failures:?}");
}

#[tokio::test]
async fn two_workers_share_the_jobs_and_each_job_runs_once() {
    let mut w = world().await;
    let mut settings = w.env.settings();
    settings.enrich_allow_addresses = vec![w.fixture];
    let second = w
        .env
        .start_with(settings, &[vcintel_api::Component::Enricher])
        .await;
    let mut jobs = Vec::new();
    for n in 0..12 {
        let company = w
            .add_company(&format!("Shared {n}"), &format!("{}/pages/{n}", w.fixture))
            .await;
        jobs.push(
            w.enrich(&company).await["job_id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let mut workers = std::collections::HashSet::new();
    for job in &jobs {
        let done = w.finished_job(job).await;
        assert_eq!(done["state"], "succeeded", "{done}");
        assert_eq!(done["attempts"], 1);
        let started: Vec<String> = sqlx::query_scalar(
            "select payload->'enrichment.started'->>'worker' from events
             where aggregate_id = $1 and event_type = 'enrichment.started'",
        )
        .bind(job)
        .fetch_all(&w.env.pool)
        .await
        .unwrap();
        assert_eq!(started.len(), 1, "{job} started {started:?}");
        workers.extend(started);
    }
    println!("jobs ran on {} workers", workers.len());
    second.stop().await;
}

#[tokio::test]
async fn a_request_the_worker_keeps_failing_on_is_parked_and_runs_when_retried_after_a_fix() {
    use vcintel_api::Component;
    let (target, _hits) = target_listener().await;
    let fixture = fixture_site(target).await;
    let mut env = TestEnv::new().await;
    let mut settings = env.settings();
    settings.enrich_allow_addresses = vec![fixture];
    // Everything but the enrichment worker, which starts once the request
    // it will choke on is in place.
    let running = env
        .start_with(
            settings.clone(),
            &[Component::Api, Component::Relay, Component::Projector],
        )
        .await;
    let base = running.address.clone().unwrap();
    let token = env.token(&env.actor(Uuid::now_v7(), Role::Member));
    let (_, company) = env
        .post_json(
            &format!("{base}/v1/companies"),
            &token,
            &json!({"name": "Parked", "website": fixture.to_string()}),
        )
        .await;
    let company = company["id"].as_str().unwrap().to_owned();
    let (status, requested) = env
        .post_json(
            &format!("{base}/v1/companies/{company}/enrichments"),
            &token,
            &json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{requested}");
    let job = requested["job_id"].as_str().unwrap().to_owned();
    // Published and projected as written, before anything goes wrong.
    eventually(Duration::from_secs(20), "the job projected", || async {
        let (status, body) = env
            .get_json(&format!("{base}/v1/enrichment-jobs/{job}"), &token)
            .await;
        (status == StatusCode::OK && body["state"] == "queued").then_some(())
    })
    .await;

    // A bad deploy garbles the stored request: the worker cannot load the
    // job, however often it is delivered.
    let original: Value = sqlx::query_scalar(
        "select payload::jsonb from events where aggregate_id = $1 and sequence = 1",
    )
    .bind(&job)
    .fetch_one(&env.pool)
    .await
    .unwrap();
    sqlx::query(
        "update events set payload = '{\"enrichment.requested\": {\"garbled\": true}}'
         where aggregate_id = $1 and sequence = 1",
    )
    .bind(&job)
    .execute(&env.pool)
    .await
    .unwrap();
    let _worker = env.start_with(settings, &[Component::Enricher]).await;
    let admin = |method: Method, path: String| {
        let request = env
            .http
            .request(method, format!("{base}{path}"))
            .bearer_auth(crate::helpers::ADMIN_TOKEN);
        async move {
            let response = request.send().await.unwrap();
            (response.status(), response.json::<Value>().await.unwrap())
        }
    };
    let letter = eventually(Duration::from_secs(30), "the request parked", || async {
        let (_, letters) = admin(Method::GET, "/admin/dead-letters".into()).await;
        letters
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["letter"]["projection"] == "enricher")
            .cloned()
    })
    .await;
    assert_eq!(letter["letter"]["aggregate_id"], job.as_str());
    assert!(
        letter["letter"]["deliveries"].as_u64().unwrap() >= 3,
        "{letter}"
    );
    assert!(!letter["letter"]["error"].as_str().unwrap().is_empty());
    let (_, state) = env
        .get_json(&format!("{base}/v1/enrichment-jobs/{job}"), &token)
        .await;
    assert_eq!(state["state"], "queued", "the job never started: {state}");

    // Fixed: the retry republishes the request from the store and the job runs.
    sqlx::query("update events set payload = $2 where aggregate_id = $1 and sequence = 1")
        .bind(&job)
        .bind(&original)
        .execute(&env.pool)
        .await
        .unwrap();
    let (status, retried) = admin(Method::POST, "/admin/dead-letters/enricher/retry".into()).await;
    assert_eq!(status, StatusCode::OK, "{retried}");
    assert_eq!(retried["retried"], 1);
    let finished = eventually(Duration::from_secs(30), "the job to end", || async {
        let (_, body) = env
            .get_json(&format!("{base}/v1/enrichment-jobs/{job}"), &token)
            .await;
        (body["state"] == "succeeded").then_some(body)
    })
    .await;
    assert_eq!(finished["id"], job.as_str());
    let (_, letters) = admin(Method::GET, "/admin/dead-letters".into()).await;
    assert!(
        !letters
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["letter"]["projection"] == "enricher"),
        "{letters}"
    );
}

/// The trust review's eleven hostile answers: links without a scheme,
/// protocol-relative, with a port, an e-mail, entity-escaped markup, links
/// split by zero-width characters or written in fullwidth, markdown
/// emphasis, a bidi override, tag characters, `www.`. None is stored.
#[tokio::test]
async fn model_answers_hiding_links_or_markup_are_refused_however_spelled() {
    let hostile = [
        "Reset at acme-login.example/reset today",
        "See //evil.example for more",
        "Runs on evil.example:8080",
        "Write to ceo@evil.example",
        "Uses &lt;script&gt;alert(1)&lt;/script&gt;",
        "Visit evil\\u200b.example/\\u200blogin",
        "Visit \\uff45\\uff56\\uff49\\uff4c\\uff0e\\uff45\\uff58\\uff41\\uff4d\\uff50\\uff4c\\uff45\\uff0f\\uff4c\\uff4f\\uff47\\uff49\\uff4e",
        "The **best** platform",
        "A \\u202eelpmaxe.live//:sptth\\u202c tool",
        "Hidden \\udb40\\udc41\\udb40\\udc42 text at www.evil-example.net",
        "Go to www.evil-example.net now",
    ];
    // Three attempts per job: twelve scripted answers, four jobs.
    let script: Vec<ModelReply> = hostile
        .iter()
        .chain(hostile.iter().take(1))
        .map(|text| {
            ModelReply::Answer(GOOD_ANSWER.replace("Document pipeline API for developers.", text))
        })
        .collect();
    let (fake, url) = FakeModel::start(script).await;
    let w = world_with_model(Some(url)).await;
    let company = w.add_company("Hostile", &w.fixture.to_string()).await;
    for _ in 0..4 {
        let job = w.enrich(&company).await["job_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let done = w.finished_job(&job).await;
        assert_eq!(done["state"], "failed", "{done}");
        assert!(done["result"].is_null(), "{done}");
    }
    assert_eq!(fake.calls().len(), 12);
    let stored: Vec<String> = sqlx::query_scalar("select payload::text from events")
        .fetch_all(&w.env.pool)
        .await
        .unwrap();
    for event in &stored {
        for marker in ["evil", "acme-login", "&lt;", "**", "elpmaxe"] {
            assert!(!event.contains(marker), "{marker} stored in {event}");
        }
    }
}

#[tokio::test]
async fn a_providers_usage_is_billed_at_most_what_the_request_could_cost() {
    let (_fake, url) =
        FakeModel::start(vec![ModelReply::Billed(4_294_967_295, 4_294_967_295)]).await;
    let w = world_with_model(Some(url)).await;
    let company = w.add_company("Quillstack", &w.fixture.to_string()).await;
    let job = w.enrich(&company).await["job_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let done = w.finished_job(&job).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    let usage = &done["result"]["usage"];
    // Out is capped at the request's max_completion_tokens (1,500), in at
    // the request's size in bytes (well under a megabyte).
    assert_eq!(usage["tokens_out"], 1_500, "{usage}");
    assert!(usage["tokens_in"].as_u64().unwrap() < 1_000_000, "{usage}");
    assert!(
        usage["cost_micro_usd"].as_u64().unwrap() < 200_000,
        "{usage}"
    );
}

#[tokio::test]
async fn a_providers_error_text_is_shown_without_its_links_or_markup() {
    let hostile = "bad request <img src=x onerror=alert(1)> see https://evil.example/help";
    let (_fake, url) = FakeModel::start(vec![ModelReply::ErrorBody(400, hostile.to_owned())]).await;
    let w = world_with_model(Some(url)).await;
    let company = w.add_company("Quillstack", &w.fixture.to_string()).await;
    let job = w.enrich(&company).await["job_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let done = w.finished_job(&job).await;
    let error = done["error"].as_str().unwrap_or_default();
    assert!(
        !error.contains('<') && !error.contains("evil.example"),
        "{done}"
    );
}
