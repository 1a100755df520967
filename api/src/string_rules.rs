//! What the server accepts in each string a client sends, stated in the
//! OpenAPI document as the same rule: free text as the pattern
//! [`vcintel_domain::validation`] derives from the checks it runs, e-mail
//! addresses and websites as the patterns their value types compile. A
//! generated client (or Schemathesis) that follows the schema is accepted,
//! and what the schema forbids is refused. A test finds any string a
//! client sends that states no rule.

use serde_json::{Map, Value};
use vcintel_domain::validation::{
    control_class, multiline_text_pattern, optional_query_text_pattern, optional_text_pattern,
    required_text_pattern,
};
use vcintel_domain::{company, enrichment, list, note, saved_search, user, website, workspace};

/// The rule for one string.
#[derive(Debug, Clone, Copy)]
enum Rule {
    /// One line of text, required: 1 to N characters after trimming.
    Line(usize),
    /// One line of text or blank (which clears it).
    OptionalLine(usize),
    /// [`Rule::OptionalLine`] in a query parameter, where control
    /// characters are refused even where trimming would drop them.
    QueryText(usize),
    /// Any text without control characters (what every query parameter
    /// must be).
    NoControls,
    /// Text of several lines (tabs and line breaks allowed).
    Lines(usize),
    Email,
    Website,
    /// A new password: its length (how guessable it is the schema cannot say).
    NewPassword,
    /// A value only the service issues (a signed cursor) in a query: any
    /// non-empty string without control characters is well-formed, and the
    /// service refuses one it did not issue.
    Issued,
}

impl Rule {
    fn apply(self, schema: &mut Value) {
        let (pattern, min_length, max_length) = match self {
            Rule::Line(max) => (Some(required_text_pattern(max)), None, None),
            Rule::OptionalLine(max) => (Some(optional_text_pattern(max)), None, None),
            Rule::Lines(max) => (Some(multiline_text_pattern(max)), None, None),
            Rule::Email => (
                Some(user::email_pattern()),
                None,
                Some(user::MAX_EMAIL_CHARS),
            ),
            Rule::Website => (
                Some(website::website_pattern()),
                None,
                Some(website::Website::MAX_CHARS),
            ),
            Rule::NewPassword => (
                None,
                Some(user::MIN_PASSWORD_CHARS),
                Some(user::MAX_PASSWORD_CHARS),
            ),
            Rule::QueryText(max) => (Some(optional_query_text_pattern(max)), None, None),
            Rule::NoControls => (Some(no_controls()), None, None),
            Rule::Issued => (Some(no_controls()), Some(1), None),
        };
        let schema = schema
            .as_object_mut()
            .expect("a string's schema is an object");
        if let Some(pattern) = pattern {
            schema.insert("pattern".to_owned(), pattern.into());
        }
        if let Some(min) = min_length {
            schema.insert("minLength".to_owned(), min.into());
        }
        if let Some(max) = max_length {
            schema.insert("maxLength".to_owned(), max.into());
        }
    }
}

fn no_controls() -> String {
    format!("^[^{}]*$", control_class())
}

/// Request-body strings: (schema, property, rule); `property[]` names the
/// items of an array.
const BODY_STRINGS: &[(&str, &str, Rule)] = &[
    ("ConsoleSignIn", "token", Rule::Issued),
    (
        "AddCompanyRequest",
        "name",
        Rule::Line(company::MAX_NAME_CHARS),
    ),
    ("AddCompanyRequest", "website", Rule::Website),
    (
        "AddCompanyRequest",
        "sector",
        Rule::OptionalLine(company::MAX_SECTOR_CHARS),
    ),
    (
        "AddCompanyRequest",
        "location",
        Rule::OptionalLine(company::MAX_LOCATION_CHARS),
    ),
    (
        "UpdateCompanyRequest",
        "name",
        Rule::Line(company::MAX_NAME_CHARS),
    ),
    ("UpdateCompanyRequest", "website", Rule::Website),
    (
        "UpdateCompanyRequest",
        "sector",
        Rule::OptionalLine(company::MAX_SECTOR_CHARS),
    ),
    (
        "UpdateCompanyRequest",
        "location",
        Rule::OptionalLine(company::MAX_LOCATION_CHARS),
    ),
    (
        "CreateApiKeyRequest",
        "name",
        Rule::Line(workspace::MAX_API_KEY_NAME_CHARS),
    ),
    (
        "CreateWorkspaceRequest",
        "name",
        Rule::Line(workspace::MAX_WORKSPACE_NAME_CHARS),
    ),
    (
        "CreateSavedSearchRequest",
        "name",
        Rule::Line(saved_search::MAX_SEARCH_NAME_CHARS),
    ),
    (
        "RenameSavedSearchRequest",
        "name",
        Rule::Line(saved_search::MAX_SEARCH_NAME_CHARS),
    ),
    (
        "SearchFilters",
        "sector",
        Rule::OptionalLine(saved_search::MAX_FILTER_TEXT_CHARS),
    ),
    (
        "SearchFilters",
        "location",
        Rule::OptionalLine(saved_search::MAX_FILTER_TEXT_CHARS),
    ),
    (
        "SearchFilters",
        "text",
        Rule::OptionalLine(saved_search::MAX_FILTER_TEXT_CHARS),
    ),
    ("ListName", "name", Rule::Line(list::MAX_LIST_NAME_CHARS)),
    ("NoteContent", "content", Rule::Lines(note::MAX_NOTE_CHARS)),
    (
        "RegisterRequest",
        "name",
        Rule::Line(user::MAX_USER_NAME_CHARS),
    ),
    ("RegisterRequest", "email", Rule::Email),
    ("RegisterRequest", "password", Rule::NewPassword),
    ("LoginRequest", "email", Rule::Email),
    ("InviteMemberRequest", "email", Rule::Email),
    (
        "Thesis",
        "sectors[]",
        Rule::Line(enrichment::MAX_THESIS_ENTRY_CHARS),
    ),
    (
        "Thesis",
        "locations[]",
        Rule::Line(enrichment::MAX_THESIS_ENTRY_CHARS),
    ),
];

/// Query-parameter strings: (operation id or `*` for every operation,
/// parameter, rule).
const QUERY_STRINGS: &[(&str, &str, Rule)] = &[
    ("*", "cursor", Rule::Issued),
    (
        "listCompanies",
        "sector",
        Rule::QueryText(saved_search::MAX_FILTER_TEXT_CHARS),
    ),
    (
        "listCompanies",
        "location",
        Rule::QueryText(saved_search::MAX_FILTER_TEXT_CHARS),
    ),
    (
        "listCompanies",
        "q",
        Rule::QueryText(saved_search::MAX_FILTER_TEXT_CHARS),
    ),
    ("listEvents", "aggregate_type", Rule::NoControls),
    ("listEvents", "aggregate_id", Rule::NoControls),
    ("listEvents", "event_type", Rule::NoControls),
];

/// Strings whose only rule is that the server recognises them (tokens,
/// cursors, a password being checked): any value is well-formed input.
#[cfg(test)]
const OPAQUE_STRINGS: &[(&str, &str)] = &[
    ("LoginRequest", "password"),
    ("RefreshRequest", "refresh_token"),
];

/// Writes the body rules into `schemas` (a document's
/// `components.schemas`); `every` says all the schemas named must be there
/// (the OpenAPI document), else those absent are skipped (the AsyncAPI
/// document holds only the event payloads'). Returns the schemas changed.
pub fn state_in_schemas(schemas: &mut Map<String, Value>, every: bool) -> Vec<&'static str> {
    let mut changed = Vec::new();
    for &(schema, property, rule) in BODY_STRINGS {
        let Some(owner) = schemas.get_mut(schema) else {
            assert!(!every, "no schema {schema}");
            continue;
        };
        let (name, items) = match property.strip_suffix("[]") {
            Some(name) => (name, true),
            None => (property, false),
        };
        let field = &mut owner["properties"][name];
        assert!(field.is_object(), "no property {schema}.{name}");
        rule.apply(if items { &mut field["items"] } else { field });
        if !changed.contains(&schema) {
            changed.push(schema);
        }
    }
    changed
}

/// Writes the rule the query parameter `parameter` of the operation
/// `operation_id` follows into its `schema`; false when it follows none.
pub fn state_in_parameter(operation_id: &str, parameter: &str, schema: &mut Value) -> bool {
    let rule = QUERY_STRINGS
        .iter()
        .find(|(op, name, _)| (*op == operation_id || *op == "*") && *name == parameter);
    match rule {
        Some(&(_, _, rule)) => {
            rule.apply(schema);
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_string(schema: &Value) -> bool {
        match &schema["type"] {
            Value::String(t) => t == "string",
            Value::Array(types) => types.iter().any(|t| t == "string"),
            _ => false,
        }
    }

    fn states_a_rule(schema: &Value) -> bool {
        ["pattern", "enum", "format", "maxLength", "minLength"]
            .iter()
            .any(|key| !schema[key].is_null())
    }

    fn opaque(owner: &str, name: &str) -> bool {
        OPAQUE_STRINGS
            .iter()
            .any(|(o, n)| (*o == owner || *o == "*") && *n == name)
    }

    /// Strings in `schema` (following references) that state no rule.
    fn unruled(
        doc: &Value,
        owner: &str,
        schema: &Value,
        seen: &mut Vec<String>,
        out: &mut Vec<String>,
    ) {
        if let Some(target) = schema["$ref"].as_str() {
            let name = target.trim_start_matches("#/components/schemas/");
            if !seen.iter().any(|s| s == name) {
                seen.push(name.to_owned());
                unruled(doc, name, &doc["components"]["schemas"][name], seen, out);
            }
            return;
        }
        for key in ["oneOf", "anyOf", "allOf"] {
            for part in schema[key].as_array().into_iter().flatten() {
                unruled(doc, owner, part, seen, out);
            }
        }
        for (name, property) in schema["properties"].as_object().into_iter().flatten() {
            let items = &property["items"];
            if is_string(property) && !states_a_rule(property) && !opaque(owner, name) {
                out.push(format!("{owner}.{name}"));
            } else if is_string(items) && !states_a_rule(items) {
                out.push(format!("{owner}.{name}[]"));
            } else {
                unruled(doc, owner, property, seen, out);
                unruled(doc, owner, items, seen, out);
            }
        }
    }

    /// A string a client sends that states no rule is one a generated
    /// client fills with anything and the server may refuse: every one is
    /// ruled or named as opaque.
    #[test]
    fn every_string_a_client_sends_states_the_rule_the_server_applies() {
        let doc = serde_json::to_value(crate::openapi::openapi()).unwrap();
        let mut out = Vec::new();
        for (path, operations) in doc["paths"].as_object().unwrap() {
            for (_, operation) in operations.as_object().unwrap() {
                let id = operation["operationId"].as_str().unwrap_or(path);
                for parameter in operation["parameters"].as_array().into_iter().flatten() {
                    let name = parameter["name"].as_str().unwrap();
                    let schema = &parameter["schema"];
                    if parameter["in"] == "query"
                        && is_string(schema)
                        && !states_a_rule(schema)
                        && !opaque(id, name)
                    {
                        out.push(format!("{id}?{name}"));
                    }
                }
                let body = &operation["requestBody"]["content"]["application/json"]["schema"];
                unruled(&doc, id, body, &mut Vec::new(), &mut out);
            }
        }
        assert!(out.is_empty(), "strings without a rule: {out:?}");
    }
}
