//! The OpenAPI document: its head (info, tags, security schemes, shared
//! components), what every `/v1` operation shares, and the finished
//! document. The operations come from the route table
//! ([`crate::routes::table`]), so the document cannot drift from the router.

use crate::error::{Problem, PROBLEM_JSON};
use crate::routes;
use crate::state::AppState;
use axum::Router;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "VC Intel API",
        description = "Source and judge companies. Sign up or sign in under `/v1/auth` and send `Authorization: Bearer <access token or API key>` to every other `/v1` route. Workspace routes act in the workspace named by the `X-Workspace-Id` header (default: your personal workspace; an API key always acts in its own). A workspace you do not belong to answers 404. Errors are RFC 9457 problem+json. `/v1` routes are rate-limited (429 with `Retry-After`; `X-RateLimit-*` headers on every response). Commands return the aggregate version: send it back as `If-Match` for safe updates, or as `min_version` to read your own write.",
        license(name = "MIT")
    ),
    modifiers(&BearerAuth, &EventSchemas),
    // Schemas only query parameters name (utoipa collects bodies' and
    // responses' schemas by itself).
    components(schemas(
        Problem,
        routes::companies::CompanySort,
        routes::companies::PastPoint,
        routes::enrichments::EnrichmentJobStreamEvent,
    )),
    tags(
        (name = "auth", description = "Sign up, sign in, sessions"),
        (name = "workspaces", description = "Your account, workspaces, members, API keys and the security log"),
        (name = "companies", description = "Companies analysts track"),
        (name = "enrichment", description = "AI enrichment of companies: jobs, results, progress as server-sent events"),
        (name = "notes", description = "Analysts' notes on companies"),
        (name = "lists", description = "Lists of companies"),
        (name = "saved-searches", description = "Saved company searches"),
        (name = "audit", description = "The workspace's events and histories (owners and admins)"),
        (name = "health", description = "Liveness and readiness"),
        (name = "admin", description = "Operators (the operator token): read models' health, blue/green rebuilds, dead-letter retries"),
    )
)]
struct ApiDoc;

struct BearerAuth;

/// The events' data, from the same derive the AsyncAPI document uses: the
/// audit feed's and histories' `data` is one of these variants. Every
/// family of the event catalogue is there.
struct EventSchemas;

impl Modify for EventSchemas {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use vcintel_domain::events::{for_each_family, EventFamily, FamilyVisitor};
        struct Add<'a>(&'a mut utoipa::openapi::Components);
        impl FamilyVisitor for Add<'_> {
            type Output = ();
            fn visit<F: EventFamily>(&mut self) {
                let mut referenced = Vec::new();
                F::schemas(&mut referenced);
                self.0.schemas.insert(F::name().into_owned(), F::schema());
                self.0.schemas.extend(referenced);
            }
        }
        let components = openapi.components.get_or_insert_with(Default::default);
        for_each_family(&mut Add(components));
    }
}

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "operator",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The operator token (`VCINTEL_ADMIN_TOKEN`) for `/admin`",
                    ))
                    .build(),
            ),
        );
    }
}

/// Every operation of a path, to change each the same way.
pub(crate) fn operations_mut(
    item: &mut utoipa::openapi::PathItem,
) -> impl Iterator<Item = &mut utoipa::openapi::path::Operation> {
    [
        &mut item.get,
        &mut item.post,
        &mut item.put,
        &mut item.patch,
        &mut item.delete,
    ]
    .into_iter()
    .flatten()
}

/// Routes that are about the caller's account rather than one workspace's
/// resources: they ignore `X-Workspace-Id`.
fn is_account_route(path: &str) -> bool {
    path.starts_with("/v1/auth/") || path.starts_with("/v1/me") || path == "/v1/workspaces"
}

/// What every `/v1` operation shares, added to the generated document so
/// no handler can forget it: the workspace header, the 429 response,
/// `Idempotency-Key` on POSTs, and read-your-writes (the token every
/// command answer carries and every GET accepts).
fn document_cross_cutting(spec: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::header::HeaderBuilder;
    use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
    use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
    use utoipa::openapi::{ContentBuilder, Ref, RefOr, Required, ResponseBuilder};
    let consistency_parameter = ParameterBuilder::new()
        .name("X-Consistency-Token")
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(
            "Read your own writes: the `X-Consistency-Token` of one or more command \
             responses (comma-separated). The API waits a bounded time until every read \
             model fed by those writes reflects them; if they do not in time it answers 503 \
             `read-model-behind` with `Retry-After` instead of stale data.",
        ))
        .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
        .build();
    let consistency_header = HeaderBuilder::new()
        .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
        .description(Some(
            "Opaque token naming this write; send it as `X-Consistency-Token` on a later GET \
             to read a state that includes it.",
        ))
        .build();
    let problem_response = |description: &str| {
        ResponseBuilder::new()
            .description(description)
            .content(
                PROBLEM_JSON,
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("Problem")))
                    .build(),
            )
            .build()
    };
    let unavailable = problem_response(
        "The database cannot be reached right now (`unavailable`); nothing was changed, \
         retry after `Retry-After` seconds",
    );
    let key_conflict = problem_response(
        "This `Idempotency-Key` is in use by a request still running \
         (`idempotency-key-in-use`, retry after `Retry-After`), or its request was executed \
         and the response lost (`idempotency-response-lost`, the resource at `Location`)",
    );
    let behind = ResponseBuilder::new()
        .description(
            "The read models did not reflect the requested writes (`X-Consistency-Token` \
             or `min_version`) in time (`read-model-behind`), or the database cannot be \
             reached right now (`unavailable`); retry after `Retry-After` seconds",
        )
        .content(
            PROBLEM_JSON,
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        )
        .build();
    let workspace_header = ParameterBuilder::new()
        .name("X-Workspace-Id")
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(
            "The workspace to act in; default: the caller's personal workspace \
             (an API key always acts in its own). One you do not belong to answers 404.",
        ))
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid))),
        ))
        .build();
    let too_many = ResponseBuilder::new()
        .description("Rate limit exceeded; retry after `Retry-After` seconds")
        .content(
            PROBLEM_JSON,
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        )
        .build();
    let idempotency_key = ParameterBuilder::new()
        .name("Idempotency-Key")
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(
            "Makes a retry safe: the same key with the same request within 24 hours \
             returns the first response (`Idempotent-Replayed: true`) and changes nothing; \
             with a different request it is 422; while the first is still running, 409. \
             A first request that died without answering is taken over after the request \
             timeout: it runs then only if its command never ran, else 409 \
             `idempotency-response-lost` names the resource it made.",
        ))
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .max_length(Some(255))
                .pattern(Some("^[!-~]+$")),
        ))
        .build();
    let bad_request = problem_response(
        "A malformed header (`X-Workspace-Id`, `X-Consistency-Token`, `If-Match`), \
         parameter or JSON body; `errors[].field` names it",
    );
    let not_a_member = problem_response(
        "No such resource in this workspace, or no such workspace (or you are not a member)",
    );
    let not_json = problem_response("The body is not `application/json`");
    let bad_key =
        problem_response("A malformed header (`Idempotency-Key`); `errors[].field` names it");
    let key_reused = problem_response(
        "This `Idempotency-Key` was already used with a different request; use a new key",
    );
    let wrong_shape = problem_response(
        "The body has the wrong shape or invalid values; `errors[].field` names each",
    );
    for (path, item) in spec.paths.paths.iter_mut() {
        if path.starts_with("/admin/") {
            for operation in operations_mut(item) {
                operation
                    .responses
                    .responses
                    .entry("503".to_owned())
                    .or_insert_with(|| unavailable.clone().into());
                operation
                    .responses
                    .responses
                    .entry("429".to_owned())
                    .or_insert_with(|| too_many.clone().into());
            }
        }
        if !path.starts_with("/v1/") {
            continue;
        }
        if let Some(post) = item
            .post
            .as_mut()
            .filter(|_| !path.starts_with("/v1/auth/"))
        {
            post.parameters
                .get_or_insert_with(Vec::new)
                .push(idempotency_key.clone().into());
            post.responses
                .responses
                .entry("409".to_owned())
                .or_insert_with(|| key_conflict.clone().into());
            post.responses
                .responses
                .entry("400".to_owned())
                .or_insert_with(|| bad_key.clone().into());
            post.responses
                .responses
                .entry("422".to_owned())
                .or_insert_with(|| key_reused.clone().into());
        }
        if let Some(get) = item.get.as_mut() {
            get.parameters
                .get_or_insert_with(Vec::new)
                .push(consistency_parameter.clone().into());
            get.responses
                .responses
                .entry("503".to_owned())
                .or_insert_with(|| behind.clone().into());
        }
        let writes = [
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ];
        // Sign-in routes answer with credentials, not with a write's token.
        let commands = writes
            .into_iter()
            .flatten()
            .filter(|_| !path.starts_with("/v1/auth/"));
        for operation in commands {
            for (status, response) in operation.responses.responses.iter_mut() {
                if let (true, RefOr::T(response)) = (status.starts_with('2'), response) {
                    response.headers.insert(
                        "X-Consistency-Token".to_owned(),
                        consistency_header.clone().into(),
                    );
                }
            }
        }
        for operation in operations_mut(item) {
            let responses = &mut operation.responses.responses;
            if !is_account_route(path) {
                operation
                    .parameters
                    .get_or_insert_with(Vec::new)
                    .push(workspace_header.clone().into());
                // Every workspace route answers these before its handler.
                responses
                    .entry("400".to_owned())
                    .or_insert_with(|| bad_request.clone().into());
                responses
                    .entry("404".to_owned())
                    .or_insert_with(|| not_a_member.clone().into());
            }
            // Every route that takes a body reads it as JSON.
            if operation.request_body.is_some() {
                responses
                    .entry("400".to_owned())
                    .or_insert_with(|| bad_request.clone().into());
                responses
                    .entry("415".to_owned())
                    .or_insert_with(|| not_json.clone().into());
                responses
                    .entry("422".to_owned())
                    .or_insert_with(|| wrong_shape.clone().into());
            }
            let responses = &mut operation.responses.responses;
            responses
                .entry("429".to_owned())
                .or_insert_with(|| too_many.clone().into());
            operation
                .responses
                .responses
                .entry("503".to_owned())
                .or_insert_with(|| unavailable.clone().into());
        }
    }
}

/// The audit feed's events typed by their `type`: one schema per event type
/// (`AuditEvent.company.added`, …) whose `data` is that type's payload,
/// joined in a union discriminated by `type`, so a generated client reads
/// `data` as the right class. The derived `AuditEvent` gives the metadata
/// every event carries.
fn type_audit_events(spec: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::schema::{AllOfBuilder, Discriminator, ObjectBuilder, OneOfBuilder, Type};
    use utoipa::openapi::{Ref, RefOr, Schema};
    let schemas = &mut spec.components.get_or_insert_with(Default::default).schemas;
    let Some(RefOr::T(Schema::Object(mut metadata))) = schemas.remove("AuditEvent") else {
        panic!("the audit feed's AuditEvent schema is missing");
    };
    metadata.properties.remove("type");
    metadata.properties.remove("data");
    metadata
        .required
        .retain(|field| field != "type" && field != "data");
    metadata.description =
        Some("What every event in the audit feed carries besides its type and data.".to_owned());
    schemas.insert(
        "AuditEventMetadata".to_owned(),
        Schema::Object(metadata).into(),
    );
    let mut discriminator = Discriminator::new("type");
    let mut union = OneOfBuilder::new().description(Some(
        "One event as the audit feed shows it: its metadata, its `type` (e.g. \
         `company.added`) and that type's `data`, the same schema `/asyncapi.json` gives \
         the stream's `data`.",
    ));
    for (event_type, data) in crate::asyncapi::event_data_schemas() {
        let name = format!("AuditEvent.{event_type}");
        let data: RefOr<Schema> =
            serde_json::from_value(data).expect("an event's data schema is a schema");
        let typed = ObjectBuilder::new()
            .property(
                "type",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some([event_type.clone()])),
            )
            .required("type")
            .property("data", data)
            .required("data");
        let variant = AllOfBuilder::new()
            .description(Some(format!("A `{event_type}` event.")))
            .item(Ref::from_schema_name("AuditEventMetadata"))
            .item(typed);
        schemas.insert(name.clone(), variant.into());
        union = union.item(Ref::from_schema_name(&name));
        discriminator
            .mapping
            .insert(event_type, format!("#/components/schemas/{name}"));
    }
    schemas.insert(
        "AuditEvent".to_owned(),
        union.discriminator(Some(discriminator)).into(),
    );
}

/// What a create answers with and the operations it leads to: (the
/// create's operation id, its success status, the body field holding the
/// new id, the path parameter the others take it as, the operations).
const CREATES: &[(&str, &str, &str, &str, &[&str])] = &[
    (
        "addCompany",
        "201",
        "id",
        "id",
        &[
            "getCompany",
            "updateCompany",
            "deleteCompany",
            "listNotes",
            "addNote",
            "requestEnrichment",
            "getCompanyHistory",
        ],
    ),
    (
        "addNote",
        "201",
        "id",
        "note_id",
        &["getNote", "editNote", "deleteNote"],
    ),
    (
        "createList",
        "201",
        "id",
        "list_id",
        &["getList", "renameList", "deleteList", "listListCompanies"],
    ),
    (
        "createSavedSearch",
        "201",
        "id",
        "search_id",
        &[
            "getSavedSearch",
            "renameSavedSearch",
            "deleteSavedSearch",
            "runSavedSearch",
        ],
    ),
    (
        "requestEnrichment",
        "202",
        "job_id",
        "job_id",
        &["getEnrichmentJob", "streamEnrichmentJob"],
    ),
    ("createApiKey", "201", "id", "key_id", &["revokeApiKey"]),
    (
        "inviteMember",
        "202",
        "invitation_id",
        "invitation_id",
        &["cancelInvitation"],
    ),
];

/// Deletes and the read that shows the resource gone: (the delete's
/// operation id, its path parameter, the read).
const DELETES: &[(&str, &str, &str)] = &[
    ("deleteCompany", "id", "getCompany"),
    ("deleteNote", "note_id", "getNote"),
    ("deleteList", "list_id", "getList"),
    ("deleteSavedSearch", "search_id", "getSavedSearch"),
];

/// OpenAPI links from each create to the operations on what it made, and
/// from each delete to the read that shows it gone. A link to a read
/// carries the write's `X-Consistency-Token`, so the read reflects the
/// write (read-your-writes, as a client should use it).
fn link_writes_to_reads(spec: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::link::LinkBuilder;
    use utoipa::openapi::RefOr;
    let mut reads = std::collections::BTreeSet::new();
    for item in spec.paths.paths.values() {
        if let Some(id) = item.get.as_ref().and_then(|get| get.operation_id.clone()) {
            reads.insert(id);
        }
    }
    let token = "$response.header.X-Consistency-Token";
    let mut links: Vec<(&str, &str, String, utoipa::openapi::link::Link)> = Vec::new();
    for &(create, status, field, parameter, targets) in CREATES {
        for &target in targets {
            let mut link = LinkBuilder::new()
                .operation_id(target)
                .parameter(
                    format!("path.{parameter}"),
                    format!("$response.body#/{field}"),
                )
                .description(format!("The `{parameter}` of what `{create}` made"));
            if reads.contains(target) {
                link = link.parameter("header.X-Consistency-Token", token);
            }
            links.push((create, status, target.to_owned(), link.build()));
        }
    }
    for &(delete, parameter, read) in DELETES {
        let link = LinkBuilder::new()
            .operation_id(read)
            .parameter(
                format!("path.{parameter}"),
                format!("$request.path.{parameter}"),
            )
            .parameter("header.X-Consistency-Token", token)
            .description("The deleted resource, which now answers 404");
        links.push((delete, "200", read.to_owned(), link.build()));
    }
    for item in spec.paths.paths.values_mut() {
        for operation in operations_mut(item) {
            let id = operation.operation_id.clone().unwrap_or_default();
            for (source, status, target, link) in links.iter().filter(|(source, ..)| *source == id)
            {
                let Some(RefOr::T(response)) = operation.responses.responses.get_mut(*status)
                else {
                    panic!("{source} has no {status} response to link from");
                };
                response.links.insert(target.clone(), link.clone().into());
            }
        }
    }
}

/// The job stream's events as a type: the `text/event-stream` content
/// names the schema of each event in `x-itemSchema` (OpenAPI 3.2's
/// `itemSchema`; generated clients for 3.1 read the body as text).
fn type_event_streams(spec: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::extensions::ExtensionsBuilder;
    use utoipa::openapi::RefOr;
    let stream = spec
        .paths
        .paths
        .get_mut("/v1/enrichment-jobs/{job_id}/events")
        .and_then(|item| item.get.as_mut())
        .and_then(|get| get.responses.responses.get_mut("200"));
    let Some(RefOr::T(response)) = stream else {
        panic!("the job stream's 200 response is missing");
    };
    let Some(RefOr::T(content)) = response.content.get_mut("text/event-stream") else {
        panic!("the job stream answers text/event-stream");
    };
    content.extensions = Some(
        ExtensionsBuilder::new()
            .add(
                "x-itemSchema",
                serde_json::json!({"$ref": "#/components/schemas/EnrichmentJobStreamEvent"}),
            )
            .build(),
    );
}

/// Writes what the server accepts in each string a client sends
/// (`crate::string_rules`) into the bodies' schemas and the query
/// parameters.
fn state_string_rules(spec: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::RefOr;
    let components = spec.components.get_or_insert_with(Default::default);
    let Ok(serde_json::Value::Object(mut schemas)) = serde_json::to_value(&components.schemas)
    else {
        panic!("the schemas serialise to an object");
    };
    for name in crate::string_rules::state_in_schemas(&mut schemas, true) {
        let stated = serde_json::from_value(schemas[name].clone()).expect("a schema");
        components.schemas.insert(name.to_owned(), stated);
    }
    for item in spec.paths.paths.values_mut() {
        for operation in operations_mut(item) {
            let id = operation.operation_id.clone().unwrap_or_default();
            for parameter in operation.parameters.iter_mut().flatten() {
                let RefOr::T(parameter) = parameter else {
                    continue;
                };
                let mut schema = serde_json::to_value(&parameter.schema).expect("a schema");
                if crate::string_rules::state_in_parameter(&id, &parameter.name, &mut schema) {
                    parameter.schema = serde_json::from_value(schema).expect("a schema");
                }
            }
        }
    }
}

/// The router of every route and the finished document describing it.
pub fn split() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (api, mut spec) = routes::table(ApiDoc::openapi()).split_for_parts();
    document_cross_cutting(&mut spec);
    type_audit_events(&mut spec);
    state_string_rules(&mut spec);
    link_writes_to_reads(&mut spec);
    type_event_streams(&mut spec);
    exemplify_problems(&mut spec);
    (api, spec)
}

/// Gives every problem response an example of what that status answers
/// there, as the service words it (`ApiError::one_of_each`): the problem
/// type the response's description names (`read-model-behind`, …), else
/// the first kind with that status; a path the operation serves as the
/// instance.
fn exemplify_problems(spec: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::RefOr;
    let kinds = crate::error::ApiError::one_of_each();
    for (path, item) in spec.paths.paths.iter_mut() {
        for operation in operations_mut(item) {
            for (status, response) in operation.responses.responses.iter_mut() {
                let RefOr::T(response) = response else {
                    continue;
                };
                let Ok(code) = status.parse::<u16>() else {
                    continue;
                };
                let Some(RefOr::T(content)) = response.content.get_mut(PROBLEM_JSON) else {
                    continue;
                };
                let of_status = || kinds.iter().filter(|k| k.status().as_u16() == code);
                let named =
                    of_status().find(|k| response.description.contains(&format!("`{}`", k.slug())));
                let Some(kind) = named.or_else(|| of_status().next()) else {
                    continue;
                };
                let (mut problem, instance) =
                    match bad_request_example(code, &response.description, path) {
                        Some((error, instance)) => (error.to_problem(), instance),
                        None => (kind.to_problem(), example_path(path)),
                    };
                problem.instance = Some(instance);
                content.example = serde_json::to_value(problem).ok();
            }
        }
    }
}

/// A 400 as the service words the first mistake the response's
/// description names ("Malformed JSON…", "Malformed id…"), with the path
/// it would be answered on; `None` for the general example (a cursor).
fn bad_request_example(
    status: u16,
    description: &str,
    template: &str,
) -> Option<(crate::error::ApiError, String)> {
    use crate::error::ApiError;
    if status != 400 {
        return None;
    }
    let named = description
        .trim_start_matches("Malformed ")
        .trim_start_matches("Bad ");
    if named.starts_with("JSON") {
        let detail = "the body is not valid JSON: expected `,` or `}` at line 1 column 24";
        let error = ApiError::BadRequest {
            detail: detail.to_owned(),
            field: None,
        };
        return Some((error, example_path(template)));
    }
    if !named.starts_with("id") {
        return None;
    }
    // The last id in the path: the resource's own (`…/companies/{id}`).
    let parameter = template
        .rsplit('/')
        .find(|segment| segment.starts_with('{') && !matches!(*segment, "{name}" | "{consumer}"))?;
    let error = ApiError::malformed_id(parameter.trim_matches(['{', '}']), "not-an-id");
    Some((
        error,
        example_path(&template.replace(parameter, "not-an-id")),
    ))
}

/// `template` with example values for its parameters, as a request's
/// path would read: `/v1/companies/{id}` → `/v1/companies/0193a5a0-…`.
fn example_path(template: &str) -> String {
    template
        .split('/')
        .map(|segment| match segment {
            "{name}" => "companies",
            "{consumer}" => "enricher",
            s if s.starts_with('{') => crate::error::EXAMPLE_ID,
            s => s,
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The OpenAPI document the API serves at `/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    split().1
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every contract change shows up as a reviewed diff of the snapshot
    /// (`api/src/snapshots/`). After an intended change:
    /// `INSTA_UPDATE=always cargo test -p vcintel_api --lib openapi` (or
    /// `cargo insta review`), then review the diff in git.
    #[test]
    fn the_openapi_document_matches_the_reviewed_snapshot() {
        insta::assert_json_snapshot!("openapi", openapi());
    }

    /// utoipa collects the schemas bodies and responses name, not those
    /// query parameters name: a dangling `$ref` makes validators reject the
    /// document and generated clients drop the operations using it.
    #[test]
    fn every_schema_reference_resolves() {
        fn references(value: &serde_json::Value, found: &mut Vec<String>) {
            match value {
                serde_json::Value::Object(map) => {
                    if let Some(serde_json::Value::String(target)) = map.get("$ref") {
                        found.push(target.clone());
                    }
                    map.values().for_each(|v| references(v, found));
                }
                serde_json::Value::Array(items) => items.iter().for_each(|v| references(v, found)),
                _ => {}
            }
        }
        let spec = serde_json::to_value(openapi()).expect("serialize spec");
        let mut found = Vec::new();
        references(&spec, &mut found);
        assert!(
            !found.is_empty(),
            "the document references no schema at all"
        );
        let schemas = spec["components"]["schemas"].as_object().expect("schemas");
        let dangling: Vec<_> = found
            .iter()
            .filter(|target| {
                target
                    .strip_prefix("#/components/schemas/")
                    .is_none_or(|name| !schemas.contains_key(name))
            })
            .collect();
        assert!(dangling.is_empty(), "references to nothing: {dangling:?}");
    }

    /// What Swagger UI shows as a response's "Example Value": the
    /// response's own example, else the schema's, else one composed from
    /// its properties'. `leaves_without` collects where that would fall
    /// back to a placeholder (`"string"`, `0`, `true`).
    fn shown_example(
        schemas: &serde_json::Map<String, serde_json::Value>,
        schema: &serde_json::Value,
        at: &str,
        leaves_without: &mut Vec<String>,
    ) -> serde_json::Value {
        use serde_json::{json, Value};
        if let Some(example) = schema.get("example") {
            return example.clone();
        }
        if let Some(Value::Array(examples)) = schema.get("examples") {
            if let Some(first) = examples.first() {
                return first.clone();
            }
        }
        if let Some(Value::String(target)) = schema.get("$ref") {
            let name = target.trim_start_matches("#/components/schemas/");
            return shown_example(schemas, &schemas[name], name, leaves_without);
        }
        if let Some(Value::Array(parts)) = schema.get("allOf") {
            let mut whole = serde_json::Map::new();
            for part in parts {
                if let Value::Object(fields) = shown_example(schemas, part, at, leaves_without) {
                    whole.extend(fields);
                }
            }
            return Value::Object(whole);
        }
        for choice in ["oneOf", "anyOf"] {
            if let Some(Value::Array(alternatives)) = schema.get(choice) {
                let first = alternatives.iter().find(|a| a["type"] != "null");
                return first.map_or(Value::Null, |a| {
                    shown_example(schemas, a, at, leaves_without)
                });
            }
        }
        if let Some(Value::Array(values)) = schema.get("enum") {
            return values[0].clone();
        }
        let types: Vec<&str> = match &schema["type"] {
            Value::String(one) => vec![one.as_str()],
            Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        let kind = types.into_iter().find(|t| *t != "null").unwrap_or("object");
        match kind {
            "object" => {
                let Some(Value::Object(properties)) = schema.get("properties") else {
                    leaves_without.push(at.to_owned());
                    return json!({});
                };
                let fields = properties.iter().map(|(name, property)| {
                    let at = format!("{at}.{name}");
                    (
                        name.clone(),
                        shown_example(schemas, property, &at, leaves_without),
                    )
                });
                Value::Object(fields.collect())
            }
            "array" => {
                let at = format!("{at}[]");
                json!([shown_example(
                    schemas,
                    &schema["items"],
                    &at,
                    leaves_without
                )])
            }
            // Formats Swagger UI fills with a well-formed value of its own;
            // the same kind of value here, so the validation below checks it.
            "string" => match schema["format"].as_str() {
                Some("uuid") => json!(crate::error::EXAMPLE_ID),
                Some("date-time") => json!("2026-12-07T09:41:12Z"),
                Some("date") => json!("2026-12-07"),
                Some("email") => json!("ada@fund.example"),
                Some("uri") => json!("https://acme-robotics.io/"),
                _ => {
                    leaves_without.push(at.to_owned());
                    Value::Null
                }
            },
            _ => {
                leaves_without.push(at.to_owned());
                Value::Null
            }
        }
    }

    /// An API document whose examples say `"string"` and `0` teaches a
    /// reader nothing; one whose examples break its own schema misleads.
    /// Every JSON response shows a real example, and it is valid.
    #[test]
    fn every_json_response_shows_a_real_example_that_its_schema_accepts() {
        let spec = serde_json::to_value(openapi()).expect("serialize spec");
        let schemas = spec["components"]["schemas"].as_object().expect("schemas");
        let mut leaves_without = Vec::new();
        let mut invalid = Vec::new();
        let mut checked = 0;
        for (path, operations) in spec["paths"].as_object().expect("paths") {
            for (method, operation) in operations.as_object().expect("operations") {
                let Some(responses) = operation["responses"].as_object() else {
                    continue;
                };
                for (status, response) in responses {
                    let Some(content) = response["content"].as_object() else {
                        continue;
                    };
                    for (media_type, body) in content {
                        if !media_type.ends_with("json") {
                            continue;
                        }
                        let at = format!("{method} {path} {status}");
                        let example = match body.get("example") {
                            Some(example) => example.clone(),
                            None => {
                                shown_example(schemas, &body["schema"], &at, &mut leaves_without)
                            }
                        };
                        let mut root = spec.clone();
                        root["x-body"] = body["schema"].clone();
                        root["$ref"] = serde_json::json!("#/x-body");
                        let validator = jsonschema::draft202012::options()
                            .should_validate_formats(true)
                            .build(&root)
                            .unwrap_or_else(|e| panic!("{at}: {e}"));
                        if let Err(error) = validator.validate(&example) {
                            invalid.push(format!("{at}: {error} in {example}"));
                        }
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 100, "only {checked} JSON responses found");
        leaves_without.sort();
        leaves_without.dedup();
        assert!(
            leaves_without.is_empty(),
            "these show a placeholder instead of an example:\n{}",
            leaves_without.join("\n")
        );
        assert!(
            invalid.is_empty(),
            "invalid examples:\n{}",
            invalid.join("\n")
        );
    }

    #[test]
    fn every_operation_has_an_operation_id_and_documents_its_errors() {
        let spec = serde_json::to_value(openapi()).expect("serialize spec");
        assert_eq!(spec["openapi"], "3.1.0");
        for (path, operations) in spec["paths"].as_object().expect("paths") {
            for (method, operation) in operations.as_object().expect("operations") {
                assert!(operation["operationId"].is_string(), "{method} {path}");
                if path.starts_with("/v1/") {
                    let responses = operation["responses"].as_object().expect("responses");
                    assert!(responses.contains_key("429"), "{method} {path} lacks 429");
                    // Only signing up, in and refreshing work without a token.
                    let public = [
                        "/v1/auth/register",
                        "/v1/auth/login",
                        "/v1/auth/refresh",
                        "/v1/auth/verify-email",
                    ];
                    if public.contains(&path.as_str()) {
                        assert!(operation["security"].is_null(), "{method} {path}");
                        continue;
                    }
                    assert!(responses.contains_key("401"), "{method} {path} lacks 401");
                    assert!(
                        operation["security"].is_array(),
                        "{method} {path} lacks security"
                    );
                }
            }
        }
    }
}
