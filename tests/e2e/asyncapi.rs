//! The AsyncAPI document is a valid AsyncAPI 3.0 document, and every
//! message the stream really carries matches the schema it declares for it.

use crate::helpers::{eventually, StreamedEvent, TestEnv};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::time::Duration;

/// The AsyncAPI 3.0.0 JSON Schema, as published by the AsyncAPI Initiative.
fn asyncapi_schema() -> Value {
    let text = include_str!("../fixtures/asyncapi/asyncapi-3.0.0.schema.json");
    serde_json::from_str(text).unwrap()
}

/// A validator for the schema named `name` in the document's components,
/// resolving its references within the document.
fn payload_validator(doc: &Value, name: &str) -> jsonschema::Validator {
    let mut root = doc.clone();
    root["$ref"] = json!(format!("#/components/schemas/{name}"));
    jsonschema::draft202012::new(&root).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Asserts that `message` was published on the channel the document gives
/// its type and matches the payload schema declared for it.
pub fn check_against_document(doc: &Value, message: &StreamedEvent) {
    let kind = message.body["type"].as_str().unwrap();
    let name = kind.strip_prefix("vcintel.").unwrap();
    let declared = &doc["components"]["messages"][name];
    assert!(declared.is_object(), "{kind} is not in the document");
    let channel = &doc["channels"][declared["name"].as_str().unwrap()];
    let address = channel["address"].as_str().unwrap().replace(
        "{workspaceId}",
        message.body["workspaceid"].as_str().unwrap(),
    );
    assert_eq!(
        message.subject, address,
        "published where the document says"
    );
    let validator = payload_validator(doc, kind);
    let errors: Vec<String> = validator
        .iter_errors(&message.body)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{kind}: {errors:?}\n{}", message.body);
    let epoch = message
        .epoch
        .clone()
        .expect("every message carries its epoch");
    let headers = json!({"Nats-Msg-Id": message.msg_id, "Vcintel-Stream-Epoch": epoch});
    let headers_schema = payload_validator(doc, "NatsHeaders");
    assert!(headers_schema.is_valid(&headers), "{headers}");
    let bad_epoch = json!({"Nats-Msg-Id": message.msg_id, "Vcintel-Stream-Epoch": "first"});
    assert!(!headers_schema.is_valid(&bad_epoch));
    assert_eq!(message.msg_id, message.body["id"].as_str().unwrap());
}

#[tokio::test]
async fn the_asyncapi_document_is_valid_and_describes_every_streamed_message() {
    let mut env = TestEnv::new().await;
    let base = env.start_all().await;

    let reply = env
        .http
        .get(format!("{base}/asyncapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::OK);
    let doc: Value = reply.json().await.unwrap();
    let validator = jsonschema::draft7::new(&asyncapi_schema()).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&doc)
        .take(10)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "not a valid AsyncAPI 3.0 document: {errors:#?}"
    );
    assert_eq!(doc["asyncapi"], "3.0.0");
    // The AsyncAPI schema does look inside: a broken channel or operation
    // is caught.
    let mut broken = doc.clone();
    broken["channels"]["company.added"]["address"] = json!(42);
    assert!(!validator.is_valid(&broken));
    let mut broken = doc.clone();
    broken["operations"]["receive.company.added"]["action"] = json!("listen");
    assert!(!validator.is_valid(&broken));
    let prefix = &env.prefix;
    assert_eq!(
        doc["channels"]["company.added"]["address"],
        format!("{prefix}.events.{{workspaceId}}.company.added")
    );

    // A history with accounts, workspaces, companies, notes, lists and
    // saved searches, as the demo seed writes it.
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_vcintel"))
        .env(
            "VCINTEL_PRIVACY_MASTER_KEY",
            crate::helpers::PRIVACY_MASTER_KEY,
        )
        .args([
            "demo",
            "seed",
            "--email",
            "stream@asyncapi.test",
            "--companies",
            "12",
        ])
        .env("DATABASE_URL", &env.database_url)
        .env("VCINTEL_DEMO_PASSWORD", "tundra-vivid-quartz-harbor-1987")
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let events: i64 = sqlx::query_scalar("select count(*) from events")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    let messages = eventually(Duration::from_secs(30), "every event published", || async {
        let messages = env.stream_messages().await;
        (messages.len() as i64 >= events).then_some(messages)
    })
    .await;
    let mut types = HashSet::new();
    for message in &messages {
        check_against_document(&doc, message);
        types.insert(message.body["eventtype"].as_str().unwrap().to_owned());
    }
    assert!(types.len() >= 6, "a varied history: {types:?}");

    // The schemas are not vacuous: a message whose data breaks its type's
    // shape, or which claims another type, does not validate.
    let added = messages
        .iter()
        .find(|m| m.body["eventtype"] == "company.added")
        .unwrap();
    let validator = payload_validator(&doc, "vcintel.company.added.v1");
    let mut broken = added.body.clone();
    broken["data"]["name"] = json!(42);
    assert!(!validator.is_valid(&broken));
    let mut broken = added.body.clone();
    broken["data"].as_object_mut().unwrap().remove("website");
    assert!(!validator.is_valid(&broken));
    let mut broken = added.body.clone();
    broken["type"] = json!("vcintel.company.deleted.v1");
    assert!(!validator.is_valid(&broken));
}
