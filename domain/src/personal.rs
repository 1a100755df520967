//! Personal data, classified where it is declared: an event field that
//! identifies a person (an e-mail address, a name, text a person wrote)
//! has the type [`Personal<T>`]. The type never prints its value
//! (`Debug` shows `Personal(…)`), and its schema must say so: a
//! `Personal` field does not derive a schema without
//! `schema(value_type = …, extensions(("x-personal" = json!(true))))`, the
//! mark the documents, the classification test and crypto-shredding
//! (docs/privacy.md) go by. Its JSON is the value's.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::ops::Deref;

/// A value that identifies a person.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Personal<T>(T);

impl<T> Personal<T> {
    pub fn new(value: T) -> Self {
        Self(value)
    }

    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> From<T> for Personal<T> {
    fn from(value: T) -> Self {
        Self(value)
    }
}

impl<T> Deref for Personal<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Personal<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Personal(…)")
    }
}

/// The schema extension that marks a personal value.
pub const PERSONAL_EXTENSION: &str = "x-personal";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_personal_value_is_its_json_and_never_its_debug() {
        let email = Personal::new("ada@example.com".to_owned());
        assert_eq!(
            serde_json::to_string(&email).unwrap(),
            "\"ada@example.com\""
        );
        assert_eq!(format!("{email:?}"), "Personal(…)");
        let back: Personal<String> = serde_json::from_str("\"ada@example.com\"").unwrap();
        assert_eq!(back, email);
        assert_eq!(back.len(), 15, "reads as the value");
    }
}
