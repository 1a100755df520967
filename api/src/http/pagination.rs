//! Keyset pagination: page sizes and the one opaque cursor type.

use crate::error::ApiError;
use crate::http::signed::Sealer;
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

/// Issues and reads page cursors. A cursor is the position of a page's
/// last row, of whatever type the listing orders by, as JSON sealed with
/// the service's key: clients treat it as opaque, and one that was forged,
/// edited, or does not decode to the listing's position type is a 400
/// naming the `cursor` parameter (never a value reaching a query).
#[derive(Clone, Debug)]
pub struct Cursors {
    sealer: Sealer,
}

impl Cursors {
    pub fn new(secret: &[u8]) -> Self {
        Self {
            sealer: Sealer::new(secret, b"vcintel page cursor v1"),
        }
    }

    /// The cursor naming `position`.
    pub fn encode<P: Serialize>(&self, position: &P) -> String {
        self.sealer
            .seal(&serde_json::to_vec(position).unwrap_or_default())
    }

    /// The position a cursor names (the `cursor` query parameter).
    pub fn decode<P: DeserializeOwned>(&self, cursor: &str) -> Result<P, ApiError> {
        self.sealer
            .open(cursor)
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or_else(|| ApiError::BadRequest {
                detail: "is not a cursor this API returned".to_owned(),
                field: Some("cursor".to_owned()),
            })
    }

    /// Pages fetch `limit + 1` rows: an extra row means there is a next
    /// page, which starts after the last row kept. Returns its cursor.
    pub fn next<T, P: Serialize>(
        &self,
        rows: &mut Vec<T>,
        limit: u32,
        position_of: impl Fn(&T) -> P,
    ) -> Option<String> {
        if rows.len() <= limit as usize {
            return None;
        }
        rows.truncate(limit as usize);
        rows.last().map(|row| self.encode(&position_of(row)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use uuid::Uuid;

    fn cursors() -> Cursors {
        Cursors::new(b"a secret of enough length for tests")
    }

    #[test]
    fn a_cursor_names_its_position_and_nothing_else_decodes() {
        let position = (chrono::DateTime::<chrono::Utc>::MIN_UTC, Uuid::now_v7());
        let cursor = cursors().encode(&position);
        assert_eq!(
            cursors()
                .decode::<(chrono::DateTime<chrono::Utc>, Uuid)>(&cursor)
                .ok(),
            Some(position)
        );
        assert!(cursors().decode::<Uuid>(&cursor).is_err());
        assert!(cursors().decode::<Uuid>("not base64!").is_err());
    }

    #[test]
    fn an_edited_or_hand_made_cursor_is_refused() {
        let cursor = cursors().encode(&("score", 70, Uuid::nil()));
        let (_, tag) = cursor.split_once('.').expect("sealed");
        let edited = URL_SAFE_NO_PAD.encode(br#"["score","x'; --",null]"#);
        let refused = cursors().decode::<serde_json::Value>(&format!("{edited}.{tag}"));
        assert!(matches!(
            refused,
            Err(ApiError::BadRequest { field: Some(ref f), .. }) if f == "cursor"
        ));
        // What an unsealed cursor of the first wave looked like.
        assert!(cursors().decode::<serde_json::Value>(&edited).is_err());
    }

    #[test]
    fn the_next_cursor_exists_only_when_a_row_is_left_over() {
        let mut rows = vec![1, 2, 3];
        assert_eq!(cursors().next(&mut rows, 3, |r| *r), None);
        let cursor = cursors().next(&mut rows, 2, |r| *r).expect("a next page");
        assert_eq!(rows, vec![1, 2]);
        assert_eq!(cursors().decode::<i32>(&cursor).ok(), Some(2));
    }
}
