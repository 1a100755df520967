//! The AsyncAPI 3.0 document of the event stream, served at `/asyncapi.json`.
//!
//! Generated, never written by hand, from the types that are serialized
//! onto the stream: the CloudEvents envelope ([`EventMessage`]), each event
//! type's data (the domain events, through the same utoipa derive the
//! OpenAPI schemas come from), the dead letters ([`DeadLetter`]); channel
//! addresses come from the [`Topology`] the relay publishes with, and
//! versions from the event catalogue. So the document cannot drift from
//! what subscribers receive; an end-to-end test validates it against the
//! AsyncAPI 3.0 schema and every streamed message against it.

use serde_json::{json, Map, Value};
use vcintel_domain as domain;
use vcintel_domain::events::{EventFamily, FamilyVisitor};
use vcintel_infra::stream::DeadLetter;
use vcintel_infra::upcast::current_version;
use vcintel_infra::wire::{EventMessage, Topology};

/// One aggregate type's event enum, externally tagged by event type.
struct Family {
    aggregate_type: &'static str,
    schema: Value,
    referenced: Vec<(String, Value)>,
}

/// Collects each family's schemas.
struct Families(Vec<Family>);

impl FamilyVisitor for Families {
    type Output = ();
    fn visit<E: EventFamily>(&mut self) {
        let mut referenced = Vec::new();
        E::schemas(&mut referenced);
        self.0.push(Family {
            aggregate_type: E::AGGREGATE_TYPE,
            schema: to_json(E::schema()),
            referenced: referenced
                .into_iter()
                .map(|(name, schema)| (name, to_json(schema)))
                .collect(),
        });
    }
}

fn to_json(schema: impl serde::Serialize) -> Value {
    serde_json::to_value(schema).unwrap_or(Value::Null)
}

fn families() -> Vec<Family> {
    let mut families = Families(Vec::new());
    domain::events::for_each_family(&mut families);
    families.0
}

/// `(event type, data schema)` for each variant of an externally tagged
/// enum's schema: `oneOf` objects with the event type as their one property.
fn variants(enum_schema: &Value) -> Vec<(String, Value)> {
    enum_schema["oneOf"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|variant| {
            let properties = variant["properties"].as_object()?;
            let (event_type, data) = properties.iter().next()?;
            Some((event_type.clone(), data.clone()))
        })
        .collect()
}

/// `(event type, data schema)` of every event type in the catalogue, the
/// data schema as the family's derive gives it (a `$ref` to the payload).
pub(crate) fn event_data_schemas() -> Vec<(String, Value)> {
    families()
        .iter()
        .flat_map(|family| variants(&family.schema))
        .collect()
}

/// The message name of an event type at its current version.
fn message_name(event_type: &str, version: u32) -> String {
    format!("{event_type}.v{version}")
}

/// The document for a deployment whose stream uses `topology`, reached at
/// `nats_host` (`host:port`).
/// The schema of a personal value as the stream carries it.
const SEALED_VALUE: &str = "SealedValue";

fn sealed_value_schema() -> Value {
    json!({
        "description": "A personal value (docs/privacy.md), sealed under its subject's data key \
            with XChaCha20-Poly1305: `sealed` is base64 of nonce ‖ ciphertext ‖ tag, with the \
            subject as associated data. Only VC Intel opens it (its API and audit feed show the \
            value). Once the subject is erased (`user.erased`) nobody can, ever; `[erased]` \
            stands in for a value written after its subject's erasure. Events of version 1 \
            written before sealing carried the plain value; `vcintel privacy migrate` seals \
            them in place and refills the stream.",
        "x-personal": true,
        "oneOf": [
            {
                "type": "object",
                "required": ["sealed", "subject", "kid"],
                "additionalProperties": false,
                "properties": {
                    "sealed": {"type": "string", "contentEncoding": "base64"},
                    "subject": {"type": "string", "pattern": "^(user|invitee):[0-9a-f-]{36}$",
                        "description": "Whose value it is: `user:<user id>` or `invitee:<invitation id>`."},
                    "kid": {"type": "string", "format": "uuid",
                        "description": "The data key it was sealed under."}
                }
            },
            {"const": vcintel_domain::personal::ERASED}
        ]
    })
}

/// An event's data schema as the stream carries it: its personal fields
/// (`PERSONAL_FIELDS`) hold sealed values, where the API shows them opened.
/// The shared schema is left alone (the OpenAPI document's is the same);
/// the message gets a copy.
fn sealed_on_the_wire(event_type: &str, data: Value, schemas: &Map<String, Value>) -> Value {
    let fields: Vec<&str> = vcintel_domain::personal::PERSONAL_FIELDS
        .iter()
        .filter(|f| f.event_type == event_type)
        .map(|f| f.field)
        .collect();
    if fields.is_empty() {
        return data;
    }
    let mut wire = match data
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix("#/components/schemas/"))
    {
        Some(name) => schemas.get(name).cloned().unwrap_or(data),
        None => data,
    };
    for field in fields {
        wire["properties"][field] = json!({"$ref": format!("#/components/schemas/{SEALED_VALUE}")});
    }
    wire
}

pub fn document(topology: &Topology, nats_host: &str) -> Value {
    let mut schemas = Map::new();
    let mut messages = Map::new();
    let mut channels = Map::new();
    let mut operations = Map::new();
    schemas.insert(
        "CloudEvent".to_owned(),
        to_json(<EventMessage as utoipa::PartialSchema>::schema()),
    );
    schemas.insert(
        "DeadLetter".to_owned(),
        to_json(<DeadLetter as utoipa::PartialSchema>::schema()),
    );
    schemas.insert(
        "NatsHeaders".to_owned(),
        json!({
            "type": "object",
            "required": ["Nats-Msg-Id"],
            "properties": {
                "Nats-Msg-Id": {"type": "string",
                    "pattern": "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}(:repair:[0-9a-f]{32})?$",
                    "description": "The event id (JetStream deduplicates publications by it); \
                        `<event id>:repair:<random>` for a message republished while the \
                        duplicate window still remembers a lost copy."},
                "Vcintel-Stream-Epoch": {"type": "string", "pattern": "^[0-9]+$",
                    "description": "How many times the stream was refilled from the event store \
                        from scratch (also the stream metadata `vcintel_epoch`). When it rises, \
                        every event is delivered again; events you applied that do not come \
                        again were taken back by a restore of the store."},
                "traceparent": {"type": "string",
                    "pattern": "^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$",
                    "description": "W3C trace context of the request that caused the event."}
            }
        }),
    );
    schemas.insert(SEALED_VALUE.to_owned(), sealed_value_schema());
    for family in families() {
        for (name, schema) in family.referenced {
            schemas.insert(name, schema);
        }
        crate::string_rules::state_in_schemas(&mut schemas, false);
        for (event_type, data) in variants(&family.schema) {
            let Some(version) = current_version(&event_type) else {
                continue;
            };
            let data = sealed_on_the_wire(&event_type, data, &schemas);
            let name = message_name(&event_type, version);
            let kind = format!("vcintel.{name}");
            schemas.insert(
                kind.clone(),
                json!({
                    "description": format!("A `{event_type}` event (version {version}) in its CloudEvents envelope."),
                    "allOf": [
                        {"$ref": "#/components/schemas/CloudEvent"},
                        {
                            "type": "object",
                            "properties": {
                                "type": {"const": kind},
                                "eventtype": {"const": event_type},
                                "eventversion": {"const": version.to_string()},
                                "aggregatetype": {"const": family.aggregate_type},
                                "data": data,
                            }
                        }
                    ]
                }),
            );
            messages.insert(
                name.clone(),
                json!({
                    "name": event_type,
                    "title": format!("{event_type} v{version}"),
                    "contentType": "application/cloudevents+json",
                    "headers": {"$ref": "#/components/schemas/NatsHeaders"},
                    "payload": {"$ref": format!("#/components/schemas/{kind}")},
                    "correlationId": {"location": "$message.payload#/correlationid"},
                }),
            );
            let address = topology.subject_for("{workspaceId}", family.aggregate_type, &event_type);
            channels.insert(
                event_type.clone(),
                json!({
                    "address": address,
                    "title": event_type,
                    "messages": {name.clone(): {"$ref": format!("#/components/messages/{name}")}},
                    "parameters": {"workspaceId": {"description": "The workspace the event belongs to (a UUID)."}},
                }),
            );
            operations.insert(
                format!("receive.{event_type}"),
                json!({
                    "action": "receive",
                    "channel": {"$ref": format!("#/channels/{event_type}")},
                    "messages": [{"$ref": format!("#/channels/{event_type}/messages/{name}")}],
                }),
            );
        }
    }
    messages.insert(
        "deadletter".to_owned(),
        json!({
            "name": "deadletter",
            "title": "A parked event",
            "contentType": "application/json",
            "payload": {"$ref": "#/components/schemas/DeadLetter"},
        }),
    );
    channels.insert(
        "deadletter".to_owned(),
        json!({
            "address": topology.dead_letter_subject("{readModel}"),
            "title": "Dead letters",
            "description": format!(
                "Events a read model failed to apply too many times, with the error, on the `{}` stream.",
                topology.dead_letter_stream_name()
            ),
            "messages": {"deadletter": {"$ref": "#/components/messages/deadletter"}},
            "parameters": {"readModel": {"description": "The read model that parked it, e.g. `companies`."}},
        }),
    );
    operations.insert(
        "receive.deadletter".to_owned(),
        json!({
            "action": "receive",
            "channel": {"$ref": "#/channels/deadletter"},
            "messages": [{"$ref": "#/channels/deadletter/messages/deadletter"}],
        }),
    );
    crate::string_rules::state_in_schemas(&mut schemas, false);
    let all = topology.all_events_subject();
    json!({
        "asyncapi": "3.0.0",
        "info": {
            "title": "VC Intel events",
            "version": env!("CARGO_PKG_VERSION"),
            "description": format!(
                "Every event the VC Intel event store commits, in commit order, on the JetStream \
                 stream `{stream}` (subjects `{all}`). Each message is a CloudEvents 1.0 envelope \
                 (structured mode, JSON) whose `id` is the event id, also sent as the \
                 `Nats-Msg-Id` header: deduplicate by the `id` (delivery is at least once, and \
                 a message the stream lost is republished at its end). Subjects are \
                 `<prefix>.events.<workspace id>.<aggregate type>.<event name>`, so a wildcard \
                 takes one workspace (`{one_ws}`), one aggregate type (`{one_type}`) or one \
                 event type. Replay from the start with a durable consumer of your own and \
                 `deliver_policy = all`. Personal values (e-mail addresses, names, the text of \
                 notes) arrive sealed (`SealedValue`): subscribers cannot read them. A \
                 `user.erased` event obliges every subscriber to delete, within 30 days, \
                 everything it keeps about that person (`user_id`) and the invitations it \
                 names: rows keyed by them, values copied from the API, caches and logs.",
                stream = topology.stream_name(),
                one_ws = topology.workspace_subject_filter("<workspace id>"),
                one_type = topology.aggregate_subject_filter("company"),
            ),
        },
        "defaultContentType": "application/cloudevents+json",
        "servers": {
            "jetstream": {
                "host": nats_host,
                "protocol": "nats",
                "description": "The deployment's NATS server with JetStream.",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "schemas": schemas,
            "messages": messages,
        },
    })
}

/// `host:port` of a NATS URL, without credentials.
pub fn nats_host(nats_url: &str) -> String {
    let without_scheme = nats_url
        .split_once("://")
        .map_or(nats_url, |(_, rest)| rest);
    let first = without_scheme.split(',').next().unwrap_or_default();
    let host = first.rsplit_once('@').map_or(first, |(_, host)| host);
    host.trim_end_matches('/').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// String fields of events that are not personal, each with why: a new
    /// string field must be classified, here or as `Personal<T>`.
    const NOT_PERSONAL: &[(&str, &str, &str)] = &[
        (
            "ApiKeyCreated",
            "name",
            "a label for a key, the workspace's",
        ),
        ("ApiKeyCreated", "prefix", "the public part of a key"),
        ("BudgetThresholdReached", "month", "a month"),
        ("CompanyDetails", "name", "a company, not a person"),
        ("CompanyDetails", "website", "a company's"),
        ("CompanyDetails", "sector", "a company's"),
        ("CompanyDetails", "location", "a company's city or country"),
        ("CompanyDetailsUpdated", "changed_fields[]", "field names"),
        (
            "EnrichmentAttemptFailed",
            "error",
            "a fetch or model error, about a site",
        ),
        ("EnrichmentDeferred", "reason", "a fixed reason"),
        (
            "EnrichmentGivenUp",
            "error",
            "a fetch or model error, about a site",
        ),
        ("EnrichmentRequested", "website", "a company's"),
        (
            "EnrichmentResult",
            "content_hash",
            "a digest of a public page",
        ),
        ("EnrichmentSource", "model", "a model's name"),
        ("EnrichmentSource", "prompt_version", "a version"),
        ("EnrichmentSource", "version", "a version"),
        ("EnrichmentStarted", "worker", "a worker process's name"),
        ("Extraction", "keywords[]", "from a company's public site"),
        ("Extraction", "sector", "from a company's public site"),
        ("Extraction", "summary", "from a company's public site"),
        ("Extraction", "what_it_does", "from a company's public site"),
        ("Signal", "evidence", "a quote from a company's public site"),
        ("ListCreated", "name", "the workspace's label for a list"),
        ("ListRenamed", "name", "the workspace's label for a list"),
        (
            "SavedSearchCreated",
            "name",
            "the workspace's label for a search",
        ),
        (
            "SavedSearchRenamed",
            "name",
            "the workspace's label for a search",
        ),
        ("SearchFilters", "sector", "a filter on companies"),
        ("SearchFilters", "location", "a filter on companies"),
        (
            "SearchFilters",
            "text",
            "a query on companies, the workspace's",
        ),
        ("Thesis", "sectors[]", "the workspace's investment thesis"),
        ("Thesis", "locations[]", "the workspace's investment thesis"),
        (
            "WorkspaceCreated",
            "name",
            "a team's name (a personal one is \"Personal\")",
        ),
    ];

    /// Every string field (`schema.property`) of the event data `data`
    /// (whose `$ref`s point into `schemas`) that is neither personal
    /// (`x-personal`), nor an id, time or enum, nor in [`NOT_PERSONAL`].
    fn unclassified_in(schemas: &Map<String, Value>, data: &[(String, Value)]) -> Vec<String> {
        fn walk(
            schemas: &Map<String, Value>,
            owner: &str,
            schema: &Value,
            seen: &mut Vec<String>,
            out: &mut Vec<String>,
        ) {
            if let Some(target) = schema["$ref"].as_str() {
                let name = target.trim_start_matches("#/components/schemas/");
                if !seen.iter().any(|s| s == name) {
                    seen.push(name.to_owned());
                    if let Some(found) = schemas.get(name) {
                        walk(schemas, name, found, seen, out);
                    }
                }
                return;
            }
            for key in ["oneOf", "anyOf", "allOf"] {
                for part in schema[key].as_array().into_iter().flatten() {
                    walk(schemas, owner, part, seen, out);
                }
            }
            walk_items(schemas, owner, &schema["items"], seen, out);
            // A named string type (`Email`, `Website`) is a string too.
            let resolved = |property: &Value| -> Value {
                property["$ref"]
                    .as_str()
                    .and_then(|target| {
                        schemas.get(target.trim_start_matches("#/components/schemas/"))
                    })
                    .cloned()
                    .unwrap_or_else(|| property.clone())
            };
            for (name, property) in schema["properties"].as_object().into_iter().flatten() {
                if is_plain_string(&resolved(property)) {
                    out.push(format!("{owner}.{name}"));
                } else if is_plain_string(&resolved(&property["items"])) {
                    out.push(format!("{owner}.{name}[]"));
                } else {
                    walk(schemas, owner, property, seen, out);
                }
            }
        }
        fn walk_items(
            schemas: &Map<String, Value>,
            owner: &str,
            items: &Value,
            seen: &mut Vec<String>,
            out: &mut Vec<String>,
        ) {
            if !items.is_null() {
                walk(schemas, owner, items, seen, out);
            }
        }
        fn is_plain_string(schema: &Value) -> bool {
            let string = schema["type"] == "string"
                || schema["type"]
                    .as_array()
                    .is_some_and(|types| types.iter().any(|t| t == "string"));
            string
                && schema[vcintel_domain::personal::PERSONAL_EXTENSION] != true
                && schema.get("enum").is_none()
                && !matches!(
                    schema["format"].as_str(),
                    Some("uuid" | "date-time" | "date")
                )
        }
        let mut out = Vec::new();
        for (_, schema) in data {
            walk(schemas, "?", schema, &mut Vec::new(), &mut out);
        }
        out.sort();
        out.dedup();
        out.retain(|field| {
            !NOT_PERSONAL
                .iter()
                .any(|(owner, name, _)| *field == format!("{owner}.{name}"))
        });
        out
    }

    /// The catalogue's schemas, and each event type's data schema.
    fn catalogue() -> (Map<String, Value>, Vec<(String, Value)>) {
        let mut schemas = Map::new();
        let mut data = Vec::new();
        for family in families() {
            for (name, schema) in family.referenced {
                schemas.insert(name, schema);
            }
            data.extend(variants(&family.schema));
        }
        (schemas, data)
    }

    /// Every `x-personal` field has its subject declared (and only those),
    /// and each subject field is an id in that payload.
    #[test]
    fn every_personal_field_has_a_subject() {
        use vcintel_domain::personal::{PERSONAL_EXTENSION, PERSONAL_FIELDS};
        let (schemas, data) = catalogue();
        let resolve = |schema: &Value| -> Value {
            schema["$ref"]
                .as_str()
                .and_then(|target| schemas.get(target.trim_start_matches("#/components/schemas/")))
                .cloned()
                .unwrap_or_else(|| schema.clone())
        };
        let mut marked = std::collections::BTreeSet::new();
        for (event_type, schema) in &data {
            let payload = resolve(schema);
            for (name, property) in payload["properties"].as_object().into_iter().flatten() {
                if property[PERSONAL_EXTENSION] == true {
                    marked.insert((event_type.clone(), name.clone()));
                }
            }
        }
        let declared: std::collections::BTreeSet<(String, String)> = PERSONAL_FIELDS
            .iter()
            .map(|f| (f.event_type.to_owned(), f.field.to_owned()))
            .collect();
        assert_eq!(
            marked, declared,
            "x-personal marks and PERSONAL_FIELDS differ"
        );
        for field in PERSONAL_FIELDS {
            let (_, schema) = data
                .iter()
                .find(|(event_type, _)| event_type == field.event_type)
                .unwrap_or_else(|| panic!("{} is an event type", field.event_type));
            let subject = resolve(&resolve(schema)["properties"][field.subject_field]);
            assert_eq!(
                subject["format"], "uuid",
                "{}.{}: the subject field is an id",
                field.event_type, field.subject_field
            );
        }
    }

    #[test]
    fn the_classification_check_finds_an_unmarked_string_or_named_string_type() {
        let schemas = serde_json::from_value::<Map<String, Value>>(json!({
            "Email": {"type": "string", "format": "email"},
            "Invited": {"type": "object", "properties": {
                "id": {"type": "string", "format": "uuid"},
                "role": {"type": "string", "enum": ["member"]},
                "email": {"$ref": "#/components/schemas/Email"},
                "name": {"type": "string"},
                "aliases": {"type": "array", "items": {"type": "string"}},
                "note": {"type": "string", "x-personal": true}
            }}
        }))
        .unwrap();
        let data = vec![(
            "x.invited".to_owned(),
            json!({"$ref": "#/components/schemas/Invited"}),
        )];
        assert_eq!(
            unclassified_in(&schemas, &data),
            ["Invited.aliases[]", "Invited.email", "Invited.name"]
        );
    }

    /// A string field added to an event without saying whether it is
    /// personal fails here.
    #[test]
    fn every_string_field_of_every_event_is_classified() {
        let (schemas, data) = catalogue();
        let unclassified = unclassified_in(&schemas, &data);
        assert!(
            unclassified.is_empty(),
            "classify these event fields: `Personal<T>` (domain/src/personal.rs) for what \
             identifies a person, else a line in NOT_PERSONAL saying why not: {unclassified:#?}"
        );
    }

    #[test]
    fn every_event_type_in_the_catalogue_has_a_message_with_its_data_schema() {
        let doc = document(&Topology::new("vcintel"), "localhost:4222");
        for (
            aggregate,
            domain::events::EventType {
                name: event_type,
                version,
            },
        ) in domain::events::event_types()
        {
            let name = format!("{event_type}.v{version}");
            let message = &doc["components"]["messages"][&name];
            assert!(message.is_object(), "no message for {name}");
            let payload = &doc["components"]["schemas"][format!("vcintel.{name}")];
            let data = &payload["allOf"][1]["properties"]["data"];
            assert!(data.is_object(), "{name}: {payload}");
            assert_eq!(
                payload["allOf"][1]["properties"]["aggregatetype"]["const"],
                aggregate
            );
            let address = doc["channels"][event_type]["address"].as_str().unwrap();
            assert!(
                address.starts_with("vcintel.events.{workspaceId}."),
                "{address}"
            );
        }
    }

    /// Both documents take the events' schemas from one derive; a name
    /// the API also uses for a type of its own would make one document
    /// describe the other's type, so every event schema must be in the
    /// OpenAPI document exactly as the AsyncAPI document has it.
    #[test]
    fn the_event_schemas_are_the_openapi_documents_own() {
        let openapi = serde_json::to_value(crate::openapi::openapi()).unwrap();
        let in_openapi = openapi["components"]["schemas"].as_object().unwrap();
        let asyncapi = document(&Topology::new("vcintel"), "localhost:4222");
        let in_asyncapi = asyncapi["components"]["schemas"].as_object().unwrap();
        let mut compared = 0;
        for family in families() {
            for (name, _) in family.referenced {
                assert_eq!(
                    in_openapi.get(&name),
                    in_asyncapi.get(&name),
                    "{name} differs between the documents"
                );
                compared += 1;
            }
            for (event_type, _) in variants(&family.schema) {
                assert!(
                    current_version(&event_type).is_some(),
                    "{event_type} is not in the catalogue"
                );
            }
        }
        assert!(compared > 20, "{compared} schemas compared");
    }

    #[test]
    fn the_server_host_never_carries_credentials() {
        assert_eq!(
            nats_host("nats://user:secret@nats.internal:4222"),
            "nats.internal:4222"
        );
        assert_eq!(nats_host("nats://127.0.0.1:4222"), "127.0.0.1:4222");
    }
}
