//! Keyset pagination: page sizes and the one opaque cursor type.
//!
//! A cursor is the position of a page's last row, of whatever type the
//! listing orders by, as URL-safe base64 of its JSON: clients treat it as
//! opaque, and a cursor that does not decode to the listing's position
//! type is a 400 naming the `cursor` parameter.

use crate::error::ApiError;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::de::DeserializeOwned;
use serde::Serialize;

const DEFAULT_PAGE_SIZE: u32 = 50;
const MAX_PAGE_SIZE: u32 = 200;

/// The page size asked for, 1–200 (default 50).
pub fn page_limit(limit: Option<u32>) -> Result<u32, ApiError> {
    let limit = limit.unwrap_or(DEFAULT_PAGE_SIZE);
    if (1..=MAX_PAGE_SIZE).contains(&limit) {
        Ok(limit)
    } else {
        Err(ApiError::BadRequest {
            detail: format!("must be between 1 and {MAX_PAGE_SIZE}"),
            field: Some("limit".to_owned()),
        })
    }
}

/// Pages fetch `limit + 1` rows: an extra row means there is a next page,
/// which starts after the last row kept. Returns its cursor.
pub fn next_cursor<T, P: Serialize>(
    rows: &mut Vec<T>,
    limit: u32,
    position_of: impl Fn(&T) -> P,
) -> Option<String> {
    if rows.len() <= limit as usize {
        return None;
    }
    rows.truncate(limit as usize);
    rows.last().map(|row| encode_cursor(&position_of(row)))
}

/// The cursor naming `position`.
pub fn encode_cursor<P: Serialize>(position: &P) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(position).unwrap_or_default())
}

/// The position a cursor names (the `cursor` query parameter).
pub fn decode_cursor<P: DeserializeOwned>(cursor: &str) -> Result<P, ApiError> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or_else(|| ApiError::BadRequest {
            detail: "is not a cursor this API returned".to_owned(),
            field: Some("cursor".to_owned()),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn a_cursor_names_its_position_and_nothing_else_decodes() {
        let position = (chrono::DateTime::<chrono::Utc>::MIN_UTC, Uuid::now_v7());
        let cursor = encode_cursor(&position);
        assert_eq!(
            decode_cursor::<(chrono::DateTime<chrono::Utc>, Uuid)>(&cursor).ok(),
            Some(position)
        );
        assert!(decode_cursor::<Uuid>(&cursor).is_err());
        assert!(decode_cursor::<Uuid>("not base64!").is_err());
    }

    #[test]
    fn the_next_cursor_exists_only_when_a_row_is_left_over() {
        let mut rows = vec![1, 2, 3];
        assert_eq!(next_cursor(&mut rows, 3, |r| *r), None);
        let cursor = next_cursor(&mut rows, 2, |r| *r).expect("a next page");
        assert_eq!(rows, vec![1, 2]);
        assert_eq!(decode_cursor::<i32>(&cursor).ok(), Some(2));
    }
}
