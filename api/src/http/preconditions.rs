//! Conditional requests (RFC 9110 §13): `If-Match` guards a command
//! against a lost update, `If-None-Match` spares a client a body it has.

use crate::error::ApiError;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// `If-Match: "3"` (or `3`, or a company detail's `"3-<digest>"`, whose
/// leading number is the version) → Some(3); absent, or `*` ("any current
/// version": the command itself answers 404 for what does not exist) →
/// None.
pub fn if_match_version(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let bad = || ApiError::BadRequest {
        detail: "must be `*` or a strong ETag holding a version, e.g. \"3\"".to_owned(),
        field: Some("If-Match".to_owned()),
    };
    let text = value.to_str().map_err(|_| bad())?.trim();
    if text == "*" {
        return Ok(None);
    }
    let unquoted = text
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(text);
    let version = unquoted.split_once('-').map_or(unquoted, |(v, _)| v);
    version.parse().map(Some).map_err(|_| bad())
}

/// `body` tagged `tag`, or 304 when `If-None-Match` names the tag.
pub fn conditional(headers: &HeaderMap, tag: HeaderValue, body: impl IntoResponse) -> Response {
    let named = headers.get_all(header::IF_NONE_MATCH).iter().any(|value| {
        value.to_str().is_ok_and(|list| {
            list.split(',')
                .map(str::trim)
                .any(|t| t == "*" || t.trim_start_matches("W/").as_bytes() == tag.as_bytes())
        })
    });
    if named {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, tag)]).into_response();
    }
    ([(header::ETAG, tag)], body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_if_match(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::IF_MATCH, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn if_match_takes_a_version_or_any_and_names_itself_otherwise() {
        assert_eq!(if_match_version(&HeaderMap::new()).ok(), Some(None));
        assert_eq!(if_match_version(&with_if_match("*")).ok(), Some(None));
        assert_eq!(
            if_match_version(&with_if_match("\"3\"")).ok(),
            Some(Some(3))
        );
        assert_eq!(
            if_match_version(&with_if_match("\"7-abc\"")).ok(),
            Some(Some(7))
        );
        assert!(matches!(
            if_match_version(&with_if_match("\"x\"")),
            Err(ApiError::BadRequest { field: Some(ref f), .. }) if f == "If-Match"
        ));
    }
}
