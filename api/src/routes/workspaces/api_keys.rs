//! `/v1/workspace/api-keys`: keys that act in the workspace for scripts.

use super::{current_state, TAG};
use crate::auth::Caller;
use crate::consistency::answering;
use crate::error::{ApiError, Problem};
use crate::http::extract::{Json, Path};
use crate::http::respond::{accepted, CommandAccepted};
use crate::state::AppState;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;
use vcintel_domain::workspace::WorkspaceCommand;
use vcintel_domain::{Permission, Role};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "CI pipeline", "role": "viewer"}))]
pub struct CreateApiKeyRequest {
    /// What the key is for, 1–100 characters.
    pub name: String,
    /// No higher than your own role; default: your role.
    #[serde(default)]
    pub role: Option<Role>,
}

/// A new API key. `key` is shown only in this response; store it now.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreatedApiKey {
    pub id: Uuid,
    /// Send as `Authorization: Bearer <key>`.
    #[schema(
        example = "vci_0193a5a31c4e7000800000000000000d_Qm9yG3kTz1xPa7c2Lw0vYgJx7cQ2mP9vRkT4wZ8nL3b"
    )]
    pub key: String,
    #[schema(example = "vci_0193a5a3…000d")]
    pub prefix: String,
    #[schema(example = "CRM sync")]
    pub name: String,
    pub role: Role,
    /// The workspace aggregate's version after the change.
    #[schema(example = 12)]
    pub version: u64,
}

/// An API key as listings show it: never the secret.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ApiKeySummary {
    pub id: Uuid,
    #[schema(example = "CRM sync")]
    pub name: String,
    #[schema(example = "vci_0193a5a3…000d")]
    pub prefix: String,
    pub role: Role,
    pub created_by: Uuid,
    #[schema(example = false)]
    pub revoked: bool,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ApiKeyList {
    pub items: Vec<ApiKeySummary>,
}

/// API keys: owners and admins see all, others their own.
#[utoipa::path(
    get, path = "/v1/workspace/api-keys", tag = TAG, operation_id = "listApiKeys",
    responses(
        (status = 200, description = "Keys (prefixes only)", body = ApiKeyList),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such workspace, or you are not a member", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn list_api_keys(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<axum::Json<ApiKeyList>, ApiError> {
    let (_, ws) = current_state(&state, caller.actor.workspace_id).await?;
    let see_all = caller.may(Permission::ManageApiKeys);
    Ok(axum::Json(ApiKeyList {
        items: ws
            .api_keys
            .into_iter()
            .filter(|(_, k)| see_all || k.created_by == caller.actor.user_id)
            .map(|(id, k)| ApiKeySummary {
                id,
                name: k.name,
                prefix: k.prefix,
                role: k.role,
                created_by: k.created_by.0,
                revoked: k.revoked,
            })
            .collect(),
    }))
}

/// Create an API key acting as you, with a role no higher than yours.
#[utoipa::path(
    post, path = "/v1/workspace/api-keys", tag = TAG, operation_id = "createApiKey",
    request_body = CreateApiKeyRequest,
    responses(
        (status = 201, description = "Created; the key is shown only now", body = CreatedApiKey),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Viewers may not create keys", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such workspace, or you are not a member", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid name, or a role above yours", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn create_api_key(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Json(body): Json<CreateApiKeyRequest>,
) -> Result<Response, ApiError> {
    let name = body.name.trim().to_owned();
    let (key, committed) = state
        .workspaces
        .create_api_key(
            &state.api_key_secrets,
            &caller.actor,
            &name,
            body.role,
            &caller.metadata(&headers),
        )
        .await?;
    let role = body.role.unwrap_or(caller.actor.role);
    let mut response = (
        StatusCode::CREATED,
        axum::Json(CreatedApiKey {
            id: key.key_id,
            key: key.secret,
            prefix: key.display_prefix,
            name,
            role,
            version: committed.version,
        }),
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(answering(response, &committed))
}

/// Revoke an API key: yours, or any if you are an owner or admin.
#[utoipa::path(
    delete, path = "/v1/workspace/api-keys/{key_id}", tag = TAG, operation_id = "revokeApiKey",
    params(("key_id" = Uuid, Path, description = "The key's id")),
    responses(
        (status = 200, description = "Revoked (or already revoked)", body = CommandAccepted),
        (status = 400, description = "Malformed id", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such key that you may see", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn revoke_api_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(key_id): Path<Uuid>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let command = WorkspaceCommand::RevokeApiKey {
        actor: caller.actor,
        key_id,
    };
    let committed = state
        .workspaces
        .run(&caller.actor, command, &caller.metadata(&headers))
        .await?;
    Ok(accepted(key_id, &committed))
}
