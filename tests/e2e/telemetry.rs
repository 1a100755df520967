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

/// One OTLP span as the test reads it.
#[derive(Debug, Clone)]
struct ExportedSpan {
    service: String,
    name: String,
    trace_id: Vec<u8>,
    span_id: Vec<u8>,
    parent_span_id: Vec<u8>,
    attributes: Vec<(String, String)>,
}

/// Every span the collector received, decoded with OpenTelemetry's own
/// protobuf definitions.
fn decode_spans(exports: &Exports) -> Vec<ExportedSpan> {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
    use prost::Message as _;
    let text = |value: &Option<opentelemetry_proto::tonic::common::v1::AnyValue>| match value
        .as_ref()
        .and_then(|v| v.value.as_ref())
    {
        Some(AnyValue::StringValue(s)) => s.clone(),
        Some(AnyValue::IntValue(i)) => i.to_string(),
        Some(AnyValue::BoolValue(b)) => b.to_string(),
        Some(AnyValue::DoubleValue(d)) => d.to_string(),
        _ => String::new(),
    };
    let mut spans = Vec::new();
    for (content_type, body) in exports.lock().unwrap().iter() {
        assert_eq!(content_type, "application/x-protobuf");
        let request = ExportTraceServiceRequest::decode(body.as_slice()).expect("OTLP protobuf");
        for resource_spans in request.resource_spans {
            let service = resource_spans
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|a| a.key == "service.name")
                .map(|a| text(&a.value))
                .unwrap_or_default();
            for scope in resource_spans.scope_spans {
                for span in scope.spans {
                    spans.push(ExportedSpan {
                        service: service.clone(),
                        name: span.name,
                        trace_id: span.trace_id,
                        span_id: span.span_id,
                        parent_span_id: span.parent_span_id,
                        attributes: span
                            .attributes
                            .iter()
                            .map(|a| (a.key.clone(), text(&a.value)))
                            .collect(),
                    });
                }
            }
        }
    }
    spans
}

impl ExportedSpan {
    fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Four processes (the API, the relay, a projector, the enricher), each
/// exporting spans as its own service: one trace id runs from the caller's
/// request through the append, the relay's publish, the projections and the
/// enrichment job to the model call, every span's parent in the same trace.
#[tokio::test]
async fn one_trace_runs_from_the_request_through_every_process_to_the_model_call() {
    use crate::fixtures::{fixture_site, target_listener, FakeModel};
    let (endpoint, received) = collector().await;
    let (target, _) = target_listener().await;
    let site = fixture_site(target).await;
    let (model, model_url) = FakeModel::start(vec![]).await;
    let env = TestEnv::new().await;
    let otel = |service: &'static str| {
        vec![
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.clone()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100".to_owned()),
            ("OTEL_SERVICE_NAME", service.to_owned()),
            ("VCINTEL_LLM_BASE_URL", model_url.clone()),
            ("VCINTEL_ENRICH_ALLOW_ADDRESSES", site.to_string()),
        ]
    };
    let mut processes = Vec::new();
    for (component, service) in [
        ("relay", "vcintel-relay"),
        ("projector", "vcintel-projector"),
        ("enricher", "vcintel-enricher"),
    ] {
        let settings = otel(service);
        let settings: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
        processes.push(env.spawn_process(component, &settings));
    }
    let settings = otel("vcintel-api");
    let settings: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (api, base) = env.spawn_api_process(&settings).await;
    processes.push(api);

    // One piece of work in the caller's trace: add a company, enrich it.
    let trace_id = "0af7651916cd43dd8448eb211c80319c";
    let caller = format!("00-{trace_id}-b7ad6b7169203331-01");
    let token = env.token(&env.actor(Uuid::now_v7(), Role::Member));
    let added = env
        .http
        .post(format!("{base}/v1/companies"))
        .bearer_auth(&token)
        .header("traceparent", &caller)
        .json(&serde_json::json!({"name": "Quillstack", "website": format!("http://{site}/")}))
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), reqwest::StatusCode::CREATED);
    let company: serde_json::Value = added.json().await.unwrap();
    let company = company["id"].as_str().unwrap().to_owned();
    let requested = env
        .http
        .post(format!("{base}/v1/companies/{company}/enrichments"))
        .bearer_auth(&token)
        .header("traceparent", &caller)
        .send()
        .await
        .unwrap();
    assert_eq!(requested.status(), reqwest::StatusCode::ACCEPTED);
    let job: serde_json::Value = requested.json().await.unwrap();
    let job = job["job_id"].as_str().unwrap().to_owned();
    crate::helpers::eventually(Duration::from_secs(30), "the job to succeed", || {
        let http = env.http.clone();
        let url = format!("{base}/v1/enrichment-jobs/{job}");
        let token = token.clone();
        async move {
            let reply = http.get(&url).bearer_auth(&token).send().await.ok()?;
            let body: serde_json::Value = reply.json().await.ok()?;
            (body["state"] == "succeeded").then_some(())
        }
    })
    .await;
    assert_eq!(model.calls().len(), 1, "the model was called once");

    let trace_bytes: Vec<u8> = (0..16)
        .map(|i| u8::from_str_radix(&trace_id[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let wanted = [
        ("vcintel-api", "POST /v1/companies"),
        ("vcintel-api", "POST /v1/companies/{id}/enrichments"),
        ("vcintel-api", "append events"),
        ("vcintel-relay", "publish company.added"),
        ("vcintel-relay", "publish enrichment.requested"),
        ("vcintel-projector", "apply to read model"),
        ("vcintel-enricher", "enrich company"),
        ("vcintel-enricher", "append events"),
        ("vcintel-enricher", "chat"),
    ];
    let spans = crate::helpers::eventually(Duration::from_secs(30), "every hop's span", || {
        let received = received.clone();
        let trace_bytes = trace_bytes.clone();
        async move {
            let spans: Vec<ExportedSpan> = decode_spans(&received)
                .into_iter()
                .filter(|s| s.trace_id == trace_bytes)
                .collect();
            // Each process exports in its own batches: wait for every
            // span's parent too (a broken link never arrives, and this
            // times out).
            let caller: &[u8] = &[0xb7, 0xad, 0x6b, 0x71, 0x69, 0x20, 0x33, 0x31];
            let linked = spans.iter().all(|span| {
                span.parent_span_id == caller
                    || spans.iter().any(|s| s.span_id == span.parent_span_id)
            });
            let complete = wanted.iter().all(|(service, name)| {
                spans
                    .iter()
                    .any(|s| s.service == *service && s.name.starts_with(name))
            });
            (complete && linked).then_some(spans)
        }
    })
    .await;
    for (service, name) in wanted {
        assert!(
            spans
                .iter()
                .any(|s| s.service == service && s.name.starts_with(name)),
            "{service}: {name}"
        );
    }
    // Every span hangs off the caller's or another span of the trace: no hop
    // started a trace of its own and was stitched on by id only.
    let caller_span = vec![0xb7, 0xad, 0x6b, 0x71, 0x69, 0x20, 0x33, 0x31];
    for span in &spans {
        assert!(
            span.parent_span_id == caller_span
                || spans.iter().any(|s| s.span_id == span.parent_span_id),
            "{} ({}) has a parent in the trace: {spans:#?}",
            span.name,
            span.service
        );
    }
    // Consumers are children of the relay's publish.
    let publishes: Vec<&Vec<u8>> = spans
        .iter()
        .filter(|s| s.service == "vcintel-relay")
        .map(|s| &s.span_id)
        .collect();
    let job_span = spans.iter().find(|s| s.name == "enrich company").unwrap();
    assert!(
        publishes.contains(&&job_span.parent_span_id),
        "{job_span:?}"
    );
    assert!(spans
        .iter()
        .filter(|s| s.service == "vcintel-projector" && s.name.starts_with("project "))
        .all(|s| publishes.contains(&&s.parent_span_id)));
    // The model call carries its tokens; Postgres spans their operation only.
    let call = spans.iter().find(|s| s.name.starts_with("chat")).unwrap();
    assert_eq!(call.attribute("gen_ai.usage.input_tokens"), Some("1000"));
    assert_eq!(call.attribute("gen_ai.usage.output_tokens"), Some("200"));
    let mut ancestor = call;
    while ancestor.span_id != job_span.span_id {
        ancestor = spans
            .iter()
            .find(|s| s.span_id == ancestor.parent_span_id)
            .unwrap_or_else(|| panic!("the model call runs inside the job: {spans:#?}"));
    }
    for db in spans
        .iter()
        .filter(|s| s.attribute("db.system.name").is_some())
    {
        assert_eq!(db.attribute("db.system.name"), Some("postgresql"));
        assert!(
            !db.attributes.iter().any(|(_, v)| v.contains("Quillstack")),
            "no values in a Postgres span: {db:?}"
        );
    }
    for mut process in processes {
        let _ = process.kill();
        let _ = process.wait();
    }
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
        .env(
            "VCINTEL_PRIVACY_MASTER_KEY",
            crate::helpers::PRIVACY_MASTER_KEY,
        )
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
