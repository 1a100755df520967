//! The contract as its real users meet it, with the standard tools
//! `scripts/test.sh` installs (pinned, see `scripts/lib.sh`):
//! openapi-spec-validator and the official AsyncAPI parser over the served
//! documents, Schemathesis (every check, the stateful phase) against a
//! running instance, and a client generated with openapi-python-client
//! running a short session. A dangling reference or a malformed schema
//! silently drops operations from generated clients; an undocumented
//! status or a rule only in prose breaks them at run time.

use crate::helpers::TestEnv;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn the_served_openapi_document_passes_openapi_spec_validator() {
    let mut env = TestEnv::new().await;
    let base = env.start_all().await;
    let response = env
        .http
        .get(format!("{base}/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let document = response.text().await.unwrap();
    let path = std::env::temp_dir().join(format!("{}-openapi.json", env.prefix));
    std::fs::write(&path, &document).unwrap();
    let validated = std::process::Command::new(tool("python3"))
        .args(["-m", "openapi_spec_validator"])
        .arg(&path)
        .output()
        .expect("the contract tools' python3 runs");
    let _ = std::fs::remove_file(&path);
    assert!(
        validated.status.success(),
        "openapi-spec-validator refused the document:\n{}{}",
        String::from_utf8_lossy(&validated.stdout),
        String::from_utf8_lossy(&validated.stderr)
    );
}

/// Where `scripts/test.sh` installs the contract tools (Schemathesis,
/// openapi-python-client) and the AsyncAPI parser; the same default.
pub fn contract_tools() -> std::path::PathBuf {
    std::env::var_os("VCINTEL_CONTRACT_TOOLS")
        .map(Into::into)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").expect("HOME is set");
            std::path::Path::new(&home).join(".cache/vcintel-tools")
        })
}

fn tool(name: &str) -> std::path::PathBuf {
    let path = contract_tools().join("venv/bin").join(name);
    assert!(
        path.exists(),
        "{} is missing: run scripts/test.sh once (it installs the contract tools)",
        path.display()
    );
    path
}

/// The contract folder: Schemathesis' configuration and hooks, the
/// generated client's script, the AsyncAPI parser's lock file.
pub fn contract_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/contract")
}

/// A running instance as a real client meets it: a verified user signed
/// in, an owner API key (the run's credential, so signing out or revoking
/// sessions cannot end the run), a spare key to revoke, the workspace and
/// one write's consistency token.
struct SignedIn {
    base: String,
    /// The verified user's session, for the routes about their account.
    session: String,
    /// Other accounts' sessions, for signing out and revoking sessions.
    disposable_session: String,
    revoked_session: String,
    api_key: String,
    spare_key_id: String,
    workspace_id: String,
}

async fn signed_in(env: &mut TestEnv) -> SignedIn {
    let mut settings = env.settings();
    settings.dev_tokens = false;
    settings.access_token_ttl_secs = 3600;
    let base = env.start_all_with(settings).await;
    let email = "contract@vcintel.test";
    let session = env.register(&base, email, "Contract Tester").await;
    env.verify_email(&base, email).await;
    let access = session["access_token"].as_str().unwrap().to_owned();
    let workspace_id = session["default_workspace_id"].as_str().unwrap().to_owned();
    let mut keys = Vec::new();
    for name in ["contract run", "spare"] {
        let reply = env
            .call(
                reqwest::Method::POST,
                &format!("{base}/v1/workspace/api-keys"),
                Some(&access),
                None,
                Some(&json!({"name": name, "role": "owner"})),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        keys.push(reply.body);
    }
    let disposable = env
        .register(&base, "contract-sessions@vcintel.test", "Session Tester")
        .await;
    let revoked = env
        .register(&base, "contract-revoked@vcintel.test", "Revoked Tester")
        .await;
    SignedIn {
        session: access,
        disposable_session: disposable["access_token"].as_str().unwrap().to_owned(),
        revoked_session: revoked["access_token"].as_str().unwrap().to_owned(),
        base,
        api_key: keys[0]["key"].as_str().unwrap().to_owned(),
        spare_key_id: keys[1]["id"].as_str().unwrap().to_owned(),
        workspace_id,
    }
}

/// Schemathesis, with every check and the stateful phase, finds nothing:
/// every answer is documented, matches its schema and headers, valid
/// input is accepted, invalid input refused, a deleted resource stays
/// gone and a created one can be read through the document's links. A
/// fixed seed and a bounded number of examples keep it repeatable and
/// within minutes.
#[tokio::test]
async fn schemathesis_finds_nothing_against_the_running_service() {
    let mut env = TestEnv::new().await;
    let run = signed_in(&mut env).await;
    let dir = contract_dir();
    let report = std::env::temp_dir().join(format!("{}-schemathesis", env.prefix));
    let mut st = tokio::process::Command::new(tool("st"));
    st.arg("--config-file")
        .arg(dir.join("schemathesis.toml"))
        .arg("run")
        .arg(format!("{}/openapi.json", run.base))
        .args(["--report", "junit", "--report-dir"])
        .arg(&report)
        .env("API_BASE_URL", &run.base)
        .env("API_TOKEN", &run.api_key)
        .env("SESSION_TOKEN", &run.session)
        .env("DISPOSABLE_SESSION_TOKEN", &run.disposable_session)
        .env("REVOKED_SESSION_TOKEN", &run.revoked_session)
        .env("API_WORKSPACE_ID", &run.workspace_id)
        .env("SPARE_KEY_ID", &run.spare_key_id)
        .env("ADMIN_TOKEN", crate::helpers::ADMIN_TOKEN)
        .env("ST_HOOKS", dir.join("st_hooks.py"))
        .env("NO_COLOR", "1")
        .kill_on_drop(true);
    if let Ok(seed) = std::env::var("VCINTEL_ST_SEED") {
        st.args(["--seed", &seed]);
    }
    let output = st.output().await.expect("Schemathesis runs");
    let _ = std::fs::remove_dir_all(&report);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "Schemathesis found failures:\n{}\n{}",
        stdout,
        String::from_utf8_lossy(&output.stderr)
    );
    // What it covered (operations, phases, links, warnings), in the
    // test's output.
    println!("{stdout}");
    // A run that tested nothing also exits 0 on some versions: make sure
    // it exercised the API.
    assert!(
        stdout.contains("passed") && !stdout.contains("No operations"),
        "{stdout}"
    );
}

/// The official AsyncAPI parser (`@asyncapi/parser`, as the AsyncAPI
/// tools use it) reads the served document with no error.
#[tokio::test]
async fn the_served_asyncapi_document_passes_the_official_parser() {
    let mut env = TestEnv::new().await;
    let base = env.start_all().await;
    let response = env
        .http
        .get(format!("{base}/asyncapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let path = std::env::temp_dir().join(format!("{}-asyncapi.json", env.prefix));
    std::fs::write(&path, response.text().await.unwrap()).unwrap();
    let parsed = std::process::Command::new("node")
        .arg(contract_dir().join("asyncapi/validate.cjs"))
        .arg(&path)
        .env("NODE_PATH", contract_tools().join("asyncapi/node_modules"))
        .output()
        .expect("node runs (scripts/test.sh installs it)");
    let _ = std::fs::remove_file(&path);
    let report = String::from_utf8_lossy(&parsed.stdout);
    assert!(
        parsed.status.success(),
        "the AsyncAPI parser refused the document:\n{report}{}",
        String::from_utf8_lossy(&parsed.stderr)
    );
    assert!(report.contains("parsed AsyncAPI 3.0.0"), "{report}");
}

/// A client generated with openapi-python-client from the served
/// document builds without a warning (each warning is an operation or a
/// schema the client lost) and a short session through it works.
#[tokio::test]
async fn a_generated_python_client_works_against_the_service() {
    let mut env = TestEnv::new().await;
    let run = signed_in(&mut env).await;
    let document = env
        .http
        .get(format!("{}/openapi.json", run.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let work = std::env::temp_dir().join(format!("{}-pyclient", env.prefix));
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(work.join("openapi.json"), document).unwrap();
    let bin = tool("python3").parent().unwrap().to_owned();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let generated = std::process::Command::new(tool("openapi-python-client"))
        .args([
            "generate",
            "--meta",
            "none",
            "--fail-on-warning",
            "--overwrite",
        ])
        .arg("--path")
        .arg(work.join("openapi.json"))
        .arg("--output-path")
        .arg(work.join("vc_intel_api_client"))
        .env("PATH", &path)
        .output()
        .expect("openapi-python-client runs");
    assert!(
        generated.status.success(),
        "openapi-python-client warned or failed:\n{}{}",
        String::from_utf8_lossy(&generated.stdout),
        String::from_utf8_lossy(&generated.stderr)
    );
    // Async: the service runs on this test's runtime and must keep
    // answering while the script talks to it.
    let session = tokio::process::Command::new(tool("python3"))
        .arg(contract_dir().join("client_check.py"))
        .env("PYTHONPATH", &work)
        .env("VCINTEL_BASE_URL", &run.base)
        .env("VCINTEL_TOKEN", &run.api_key)
        .kill_on_drop(true)
        .output()
        .await
        .expect("the client script runs");
    let _ = std::fs::remove_dir_all(&work);
    assert!(
        session.status.success(),
        "the generated client's session failed:\n{}{}",
        String::from_utf8_lossy(&session.stdout),
        String::from_utf8_lossy(&session.stderr)
    );
}
