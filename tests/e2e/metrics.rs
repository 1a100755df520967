//! `/metrics`: the Prometheus text format (parsed with a real parser),
//! served to the operator token on the API port and without credentials
//! on `VCINTEL_METRICS_BIND`, with series that move as a scripted flow
//! runs and labels that stay bounded (route templates, never raw paths,
//! ids or e-mail addresses).

use crate::helpers::{eventually, free_port, TestEnv, ADMIN_TOKEN};
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::collections::HashSet;
use std::time::Duration;
use uuid::Uuid;
use vcintel_domain::Role;

/// One sample as Prometheus' own Python client parses it.
#[derive(Debug, serde::Deserialize)]
struct Sample {
    name: String,
    labels: std::collections::HashMap<String, String>,
    value: f64,
}

/// Runs `command` with `text` on its standard input; its output. Async:
/// the service under test runs on this test's runtime.
async fn pipe(command: &mut tokio::process::Command, text: &str) -> std::process::Output {
    use tokio::io::AsyncWriteExt;
    let mut child = command
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("{command:?} runs (scripts/test.sh installs it): {e}"));
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(text.as_bytes()).await.unwrap();
    drop(stdin);
    child.wait_with_output().await.unwrap()
}

/// Parses the text format with the official Python client's parser
/// (`tests/contract/parse_metrics.py`; `scripts/test.sh` installs it).
async fn parse(text: &str) -> Vec<Sample> {
    let python = crate::contract::contract_tools().join("venv/bin/python3");
    let output = pipe(
        tokio::process::Command::new(python)
            .arg(crate::contract::contract_dir().join("parse_metrics.py")),
        text,
    )
    .await;
    assert!(
        output.status.success(),
        "not the Prometheus text format: {}\n{text}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// The sum of the samples named `name` whose labels include `labels`.
fn total(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .sum()
}

#[tokio::test]
async fn metrics_move_with_a_scripted_flow_and_keep_their_labels_bounded() {
    let mut env = TestEnv::new().await;
    let metrics_port = free_port();
    let mut settings = env.settings();
    settings.metrics_bind = Some(format!("127.0.0.1:{metrics_port}").parse().unwrap());
    let base = env.start_all_with(settings).await;
    let workspace = Uuid::now_v7();
    let token = env.token(&env.actor(workspace, Role::Owner));

    // The flow: a company added and read, a missing one, a route that
    // does not exist.
    let added = env
        .call(
            Method::POST,
            &format!("{base}/v1/companies"),
            Some(&token),
            None,
            Some(&json!({"name": "Metered", "website": "metered.example"})),
        )
        .await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.body);
    let id = added.body["id"].as_str().unwrap().to_owned();
    let written = added.header("x-consistency-token").unwrap().to_owned();
    let read = env
        .http
        .get(format!("{base}/v1/companies/{id}"))
        .bearer_auth(&token)
        .header("x-consistency-token", &written)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), StatusCode::OK);
    let missing = env
        .call(
            Method::GET,
            &format!("{base}/v1/companies/{}", Uuid::now_v7()),
            Some(&token),
            None,
            None,
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let nowhere = env
        .call(
            Method::GET,
            &format!("{base}/v1/nowhere/{id}"),
            Some(&token),
            None,
            None,
        )
        .await;
    assert_eq!(nowhere.status, StatusCode::NOT_FOUND);

    // On the API port only the operator may scrape.
    let anonymous = env
        .http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let user = env
        .http
        .get(format!("{base}/metrics"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(user.status(), StatusCode::UNAUTHORIZED, "as /admin answers");

    let scraped = eventually(
        Duration::from_secs(15),
        "the relay and projector to report",
        || {
            let env = &env;
            let base = base.clone();
            async move {
                let response = env
                    .http
                    .get(format!("{base}/metrics"))
                    .bearer_auth(ADMIN_TOKEN)
                    .send()
                    .await
                    .ok()?;
                assert_eq!(response.status(), StatusCode::OK);
                let scrape = parse(&response.text().await.ok()?).await;
                let published = total(
                    &scrape,
                    "vcintel_events_published_total",
                    &[("event_type", "company.added")],
                );
                let applied = total(
                    &scrape,
                    "vcintel_projection_events_applied_total",
                    &[("read_model", "companies")],
                );
                (published >= 1.0 && applied >= 1.0).then_some(scrape)
            }
        },
    )
    .await;

    // RED per route template.
    let requests = |route: &str, method: &str, status: &str| {
        total(
            &scraped,
            "vcintel_http_requests_total",
            &[("route", route), ("method", method), ("status", status)],
        )
    };
    assert_eq!(requests("/v1/companies", "POST", "2xx"), 1.0);
    assert!(requests("/v1/companies/{id}", "GET", "2xx") >= 1.0);
    assert_eq!(requests("/v1/companies/{id}", "GET", "4xx"), 1.0);
    assert!(requests("unmatched", "GET", "4xx") >= 1.0);
    assert!(
        total(
            &scraped,
            "vcintel_http_request_duration_seconds_count",
            &[("route", "/v1/companies/{id}"), ("method", "GET")]
        ) >= 2.0,
        "the latency histogram counts both reads"
    );
    // The database pool and every component's lag.
    assert!(total(&scraped, "vcintel_db_pool_max_connections", &[]) >= 1.0);
    let components: HashSet<&str> = scraped
        .iter()
        .filter(|s| s.name == "vcintel_component_lag_events")
        .filter_map(|s| s.labels.get("component").map(String::as_str))
        .collect();
    for component in ["projection:companies", "enricher", "mailer"] {
        assert!(
            components.contains(component),
            "{component}: {components:?}"
        );
    }
    assert_eq!(total(&scraped, "vcintel_relay_halted", &[]), 0.0);
    assert_eq!(total(&scraped, "vcintel_relay_has_leader", &[]), 1.0);
    assert!(total(&scraped, "vcintel_relay_batches_total", &[]) >= 1.0);
    assert!(
        total(&scraped, "vcintel_relay_publish_delay_seconds_count", &[]) >= 1.0,
        "commit-to-publish delay recorded per event"
    );
    // Bounded labels: route templates only, no ids or addresses anywhere.
    let routes: HashSet<&str> = scraped
        .iter()
        .filter_map(|s| s.labels.get("route").map(String::as_str))
        .collect();
    for route in &routes {
        assert!(
            *route == "unmatched" || route.starts_with('/') && !route.contains(&id),
            "{route}"
        );
    }
    for sample in &scraped {
        for value in sample.labels.values() {
            assert!(
                !value.contains('@') && Uuid::parse_str(value).is_err() && !value.contains(&id),
                "{}: {value}",
                sample.name
            );
        }
    }

    // The scrape port needs no credentials and serves the same series.
    let open = env
        .http
        .get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(open.status(), StatusCode::OK);
    let open = parse(&open.text().await.unwrap()).await;
    assert!(total(&open, "vcintel_http_requests_total", &[]) >= 4.0);
}

/// The series names `text` mentions (histogram suffixes folded into their
/// histogram).
fn series_in(text: &str) -> HashSet<String> {
    let pattern = regex::Regex::new(r"vcintel_[a-z0-9_]+").unwrap();
    pattern
        .find_iter(text)
        .map(|found| {
            let name = found.as_str();
            ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .filter(|base| base.ends_with("_seconds"))
                .unwrap_or(name)
                .to_owned()
        })
        .collect()
}

fn repository_file(path: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The alert rules pass `promtool check rules`, and they and the Grafana
/// dashboard use only series the service declares and exports; the
/// exported text passes `promtool check metrics` (Prometheus' own lint),
/// and exports nothing the catalogue does not declare.
#[tokio::test]
async fn the_dashboard_and_alerts_use_only_exported_series_and_promtool_accepts_both() {
    let declared: HashSet<String> = vcintel_api::metrics::CATALOGUE
        .iter()
        .map(|(name, ..)| (*name).to_owned())
        .collect();
    let rules_path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/prometheus/vcintel-alerts.yml");
    let rules = repository_file("deploy/prometheus/vcintel-alerts.yml");
    let dashboard = repository_file("deploy/grafana/vcintel.json");
    serde_json::from_str::<serde_json::Value>(&dashboard).expect("the dashboard is JSON");
    for (what, text) in [("alert rules", &rules), ("dashboard", &dashboard)] {
        let used = series_in(text);
        assert!(used.len() >= 10, "{what}: {used:?}");
        let unknown: Vec<_> = used.difference(&declared).collect();
        assert!(
            unknown.is_empty(),
            "{what} uses undeclared series: {unknown:?}"
        );
    }
    let checked = std::process::Command::new("promtool")
        .arg("check")
        .arg("rules")
        .arg(&rules_path)
        .output()
        .expect("promtool runs (scripts/test.sh installs Debian's prometheus package)");
    assert!(
        checked.status.success(),
        "{}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );

    // What a running service exports after some traffic.
    let mut env = TestEnv::new().await;
    let base = env.start_all().await;
    let token = env.token(&env.actor(Uuid::now_v7(), Role::Owner));
    let added = env
        .call(
            Method::POST,
            &format!("{base}/v1/companies"),
            Some(&token),
            None,
            Some(&json!({"name": "Linted", "website": "linted.example"})),
        )
        .await;
    assert_eq!(added.status, StatusCode::CREATED);
    let text = env
        .http
        .get(format!("{base}/metrics"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let exported = series_in(&text);
    let undeclared: Vec<_> = exported.difference(&declared).collect();
    assert!(
        undeclared.is_empty(),
        "exported but not declared: {undeclared:?}"
    );
    let linted = pipe(
        tokio::process::Command::new("promtool").args(["check", "metrics"]),
        &text,
    )
    .await;
    assert!(
        linted.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&linted.stdout),
        String::from_utf8_lossy(&linted.stderr)
    );
}
