//! Spans go out over OTLP/HTTP to a collector, continuing the caller's
//! trace, and the events a request appends carry that trace on.

use crate::helpers::TestEnv;
use axum::body::Bytes;
use axum::http::HeaderMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use uuid::Uuid;
use vcintel_domain::Role;

/// Each export a collector received: its content type and protobuf body.
type Exports = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// A local OTLP/HTTP trace receiver.
async fn collector() -> (String, Exports) {
    let received: Exports = Arc::default();
    let store = received.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let store = store.clone();
            async move {
                let content_type = headers
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                store.lock().unwrap().push((content_type, body.to_vec()));
                // An empty ExportTraceServiceResponse.
                (
                    [("content-type", "application/x-protobuf")],
                    Vec::<u8>::new(),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{address}"), received)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn a_request_continues_the_callers_trace_in_exported_spans_and_in_its_events() {
    let (endpoint, received) = collector().await;
    let env = TestEnv::new().await;
    let (mut api, base) = env
        .spawn_api_process(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ("OTEL_SERVICE_NAME", "vcintel-under-test"),
        ])
        .await;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let token = env.token(&env.actor(Uuid::now_v7(), Role::Member));
    let reply = env
        .http
        .post(format!("{base}/v1/companies"))
        .bearer_auth(&token)
        .header("traceparent", format!("00-{trace_id}-{caller_span}-01"))
        .json(&serde_json::json!({"name": "Traced", "website": "traced.example"}))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), reqwest::StatusCode::CREATED);

    // The span reached the collector, in the caller's trace.
    let trace_bytes: Vec<u8> = (0..16)
        .map(|i| u8::from_str_radix(&trace_id[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    crate::helpers::eventually(Duration::from_secs(20), "the span exported", || {
        let received = received.clone();
        let trace_bytes = trace_bytes.clone();
        async move {
            let received = received.lock().unwrap();
            received
                .iter()
                .any(|(content_type, body)| {
                    content_type == "application/x-protobuf"
                        && contains(body, &trace_bytes)
                        && contains(body, b"vcintel-under-test")
                })
                .then_some(())
        }
    })
    .await;

    // The event names the same trace, with our request span as the parent.
    let traceparent: String =
        sqlx::query_scalar("select metadata->>'traceparent' from events limit 1")
            .fetch_one(&env.pool)
            .await
            .unwrap();
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(parts.len(), 4, "{traceparent}");
    assert_eq!(parts[1], trace_id, "{traceparent}");
    assert_ne!(
        parts[2], caller_span,
        "the API's own span is the parent: {traceparent}"
    );
    api.kill().unwrap();
    let _ = api.wait();
}

/// Even with every log level on (`RUST_LOG=trace`), what people wrote
/// (a company's name, a note's text) never reaches the logs: the wire
/// libraries' payload logging stays off unless asked for by name.
#[tokio::test]
async fn no_payload_reaches_the_logs_even_at_trace() {
    let env = crate::helpers::TestEnv::new().await;
    let port = crate::helpers::free_port();
    let log_path = std::env::temp_dir().join(format!("{}-trace.log", env.prefix));
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_vcintel"))
        .args(["serve", "--only", "api,relay,projector", "--bind"])
        .arg(format!("127.0.0.1:{port}"))
        .env("DATABASE_URL", &env.database_url)
        .env("NATS_URL", crate::helpers::nats_url())
        .env("VCINTEL_JWT_SECRET", crate::helpers::JWT_SECRET)
        .env("VCINTEL_NATS_PREFIX", &env.prefix)
        .env("VCINTEL_DEV_TOKENS", "true")
        .env("VCINTEL_LOG_FORMAT", "json")
        .env("RUST_LOG", "trace")
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("spawn vcintel");
    let base = format!("http://127.0.0.1:{port}");
    crate::helpers::wait_until_answering(&env.http, &base).await;
    let workspace = uuid::Uuid::now_v7();
    let token = env.token(&env.actor(workspace, vcintel_domain::Role::Owner));
    let secret_name = "Quetzalcoatl Confidential Robotics";
    let added = env
        .call(
            reqwest::Method::POST,
            &format!("{base}/v1/companies"),
            Some(&token),
            None,
            Some(&serde_json::json!({"name": secret_name, "website": "quetzal-secret.example"})),
        )
        .await;
    assert_eq!(added.status, reqwest::StatusCode::CREATED, "{}", added.body);
    let written = added.header("x-consistency-token").unwrap().to_owned();
    let read = env
        .http
        .get(format!(
            "{base}/v1/companies/{}",
            added.body["id"].as_str().unwrap()
        ))
        .bearer_auth(&token)
        .header("x-consistency-token", &written)
        .send()
        .await
        .unwrap();
    assert_eq!(
        read.status(),
        reqwest::StatusCode::OK,
        "published and projected"
    );
    let _ = child.kill();
    let _ = child.wait();
    let logged = std::fs::read_to_string(&log_path).unwrap();
    let _ = std::fs::remove_file(&log_path);
    assert!(
        logged.lines().count() > 50,
        "trace logging was on: {} lines",
        logged.lines().count()
    );
    for (i, line) in logged.lines().enumerate() {
        assert!(
            !line.contains("Quetzalcoatl") && !line.contains("quetzal-secret"),
            "line {i} carries what a person wrote: {}",
            line.chars().take(400).collect::<String>()
        );
    }
}
