//! Extractors whose rejections are problem+json naming the field at fault.

use crate::error::ApiError;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use bytes::Bytes;
use serde::de::DeserializeOwned;

/// A JSON body. Malformed JSON is 400; JSON of the wrong shape (missing,
/// mistyped or unknown fields) is 422 naming the field's path.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge(rejection.body_text())
            } else {
                ApiError::BadRequest {
                    detail: rejection.body_text(),
                    field: None,
                }
            }
        })?;
        parse_json(&bytes).map(Json)
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|mime| {
            let mime = mime.trim().to_ascii_lowercase();
            mime == "application/json"
                || (mime.starts_with("application/") && mime.ends_with("+json"))
        })
        .unwrap_or(false)
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // Every body is an object: serde would otherwise fill a struct from an
    // array by position (`["ann@…", "pw"]` as a sign-in).
    let starts_with_object = bytes
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{');
    if !starts_with_object && serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok() {
        return Err(ApiError::invalid_field("body", "must be a JSON object"));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        if inner.is_data() {
            ApiError::Invalid(vec![crate::error::InvalidField {
                field: if path == "." { "body".to_owned() } else { path },
                message: strip_position(&inner.to_string()),
            }])
        } else {
            ApiError::BadRequest {
                detail: format!("the body is not valid JSON: {inner}"),
                field: None,
            }
        }
    })?;
    deserializer.end().map_err(|e| ApiError::BadRequest {
        detail: format!("the body is not valid JSON: {e}"),
        field: None,
    })?;
    Ok(value)
}

fn strip_position(message: &str) -> String {
    match message.find(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// A path parameter; an unparsable one (a malformed id) is 400 naming it
/// as the document does (`list_id`, `id`, …).
#[derive(Debug)]
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(rejection) => {
                let parameters: Vec<(String, String)> =
                    axum::extract::RawPathParams::from_request_parts(parts, state)
                        .await
                        .map(|raw| {
                            raw.iter()
                                .map(|(name, value)| (name.to_owned(), value.to_owned()))
                                .collect()
                        })
                        .unwrap_or_default();
                let field = parameter_at_fault(&rejection, &parameters);
                Err(match parameters.iter().find(|(name, _)| *name == field) {
                    Some((_, value)) => ApiError::malformed_id(&field, value),
                    None => ApiError::BadRequest {
                        detail: rejection.body_text(),
                        field: Some(field),
                    },
                })
            }
        }
    }
}

/// Which of the route's path `parameters` (name, value, in order) a
/// rejection is about: axum names it, gives its place, or gives its value;
/// a route with one parameter has only that one to blame.
fn parameter_at_fault(
    rejection: &axum::extract::rejection::PathRejection,
    parameters: &[(String, String)],
) -> String {
    use axum::extract::path::ErrorKind;
    use axum::extract::rejection::PathRejection;
    let named = |name: &str| Some(name.to_owned());
    let found = match rejection {
        PathRejection::FailedToDeserializePathParams(failed) => match failed.kind() {
            ErrorKind::ParseErrorAtKey { key, .. }
            | ErrorKind::DeserializeError { key, .. }
            | ErrorKind::InvalidUtf8InPathParam { key } => named(key),
            ErrorKind::ParseErrorAtIndex { index, .. } => {
                parameters.get(*index).and_then(|(name, _)| named(name))
            }
            ErrorKind::ParseError { value, .. } => parameters
                .iter()
                .find(|(_, given)| given == value)
                .and_then(|(name, _)| named(name)),
            _ => None,
        },
        _ => None,
    };
    found
        .or_else(|| match parameters {
            [(only, _)] => named(only),
            _ => None,
        })
        .unwrap_or_else(|| "path".to_owned())
}

/// Query parameters; a bad one is 400 naming the parameter.
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        // No parameter is meant to carry control characters, and a NUL
        // cannot even reach Postgres.
        if let Some((name, _)) = form_urlencoded::parse(query.as_bytes())
            .find(|(name, value)| name.chars().chain(value.chars()).any(char::is_control))
        {
            return Err(ApiError::BadRequest {
                detail: "must not contain control characters".to_owned(),
                field: Some(name.chars().filter(|c| !c.is_control()).collect()),
            });
        }
        let deserializer =
            serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(deserializer)
            .map(Query)
            .map_err(|error| {
                let path = error.path().to_string();
                let detail = error.into_inner().to_string();
                // serde names an unknown parameter only in its message.
                let unknown = detail
                    .strip_prefix("unknown field `")
                    .and_then(|rest| rest.split_once('`'))
                    .map(|(name, _)| name.to_owned());
                ApiError::BadRequest {
                    field: Some(match (path.as_str(), unknown) {
                        (".", Some(name)) => name,
                        (".", None) => "query".to_owned(),
                        _ => path,
                    }),
                    detail,
                }
            })
    }
}
