//! The served OpenAPI document, checked by the standard tool its users'
//! generators rely on (openapi-spec-validator, which `scripts/test.sh`
//! installs from PyPI): a dangling reference or a malformed schema there
//! silently drops operations from generated clients.

use crate::helpers::TestEnv;
use reqwest::StatusCode;

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
    let validated = std::process::Command::new("python3")
        .args(["-m", "openapi_spec_validator"])
        .arg(&path)
        .output()
        .expect("python3 runs (scripts/test.sh installs openapi-spec-validator)");
    let _ = std::fs::remove_file(&path);
    assert!(
        validated.status.success(),
        "openapi-spec-validator refused the document:\n{}{}",
        String::from_utf8_lossy(&validated.stdout),
        String::from_utf8_lossy(&validated.stderr)
    );
}
