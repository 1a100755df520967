//! Personal data, classified where it is declared: an event field that
//! identifies a person (an e-mail address, a name, text a person wrote)
//! has the type [`Personal<T>`]. The type never prints its value
//! (`Debug` shows `Personal(…)`), and its schema must say so: a
//! `Personal` field does not derive a schema without
//! `schema(value_type = …, extensions(("x-personal" = json!(true))))`, the
//! mark the documents, the classification test and crypto-shredding
//! (docs/privacy.md) go by. Its JSON is the value's, or `"[erased]"` once
//! its subject was erased.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// What a personal value reads as once its subject was erased (its key
/// deleted): the JSON of an erased value, in events, read models and
/// documents alike.
pub const ERASED: &str = "[erased]";

/// A value that identifies a person, or the mark that it was erased.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Personal<T>(Option<T>);

impl<T> Personal<T> {
    pub fn new(value: T) -> Self {
        Self(Some(value))
    }

    /// A value whose subject was erased.
    pub fn erased() -> Self {
        Self(None)
    }

    /// The value, unless it was erased.
    pub fn known(&self) -> Option<&T> {
        self.0.as_ref()
    }

    pub fn into_known(self) -> Option<T> {
        self.0
    }

    pub fn is_erased(&self) -> bool {
        self.0.is_none()
    }
}

impl<T: AsRef<str>> Personal<T> {
    /// The value's text, or [`ERASED`].
    pub fn text(&self) -> &str {
        self.0.as_ref().map_or(ERASED, AsRef::as_ref)
    }
}

impl<T> From<T> for Personal<T> {
    fn from(value: T) -> Self {
        Self::new(value)
    }
}

impl<T: PartialEq> PartialEq<T> for Personal<T> {
    fn eq(&self, other: &T) -> bool {
        self.0.as_ref() == Some(other)
    }
}

impl<T> fmt::Debug for Personal<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(_) => f.write_str("Personal(…)"),
            None => f.write_str("Personal([erased])"),
        }
    }
}

impl<T: Serialize> Serialize for Personal<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.0 {
            Some(value) => value.serialize(serializer),
            None => serializer.serialize_str(ERASED),
        }
    }
}

/// Only the string [`ERASED`].
struct ErasedMark;

impl<'de> Deserialize<'de> for ErasedMark {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        if text == ERASED {
            Ok(ErasedMark)
        } else {
            Err(serde::de::Error::custom("not the erased mark"))
        }
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum PersonalRepr<T> {
    Erased(ErasedMark),
    Known(T),
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Personal<T> {
    /// The value, or [`ERASED`] (so a note whose whole text is `[erased]`
    /// reads as erased, which shows the same).
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match PersonalRepr::<T>::deserialize(deserializer)? {
            PersonalRepr::Erased(ErasedMark) => Ok(Self(None)),
            PersonalRepr::Known(value) => Ok(Self(Some(value))),
        }
    }
}

/// The schema extension that marks a personal value.
pub const PERSONAL_EXTENSION: &str = "x-personal";

/// Whose personal values a subject key covers: a registered person, or
/// the addressee of an invitation (who may have no account yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubjectKind {
    User,
    Invitee,
}

/// Where a personal value sits and whose it is: the event type, the
/// payload field holding it, and the payload field holding its subject's
/// id. Crypto-shredding seals the value under that subject's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PersonalField {
    pub event_type: &'static str,
    pub field: &'static str,
    pub subject: SubjectKind,
    pub subject_field: &'static str,
}

impl PersonalField {
    /// The subject's name for the id the payload holds.
    pub fn subject_named(&self, id: &str) -> String {
        match self.subject {
            SubjectKind::User => format!("user:{id}"),
            SubjectKind::Invitee => format!("invitee:{id}"),
        }
    }
}

/// Every personal field of every event type, with its subject. A test
/// checks this against the `x-personal` marks in the events' schemas, both
/// ways, and that each subject field is an id in that payload.
pub const PERSONAL_FIELDS: &[PersonalField] = &[
    personal("user.registered", "email", SubjectKind::User, "user_id"),
    personal("user.registered", "name", SubjectKind::User, "user_id"),
    personal(
        "user.verification_requested",
        "email",
        SubjectKind::User,
        "user_id",
    ),
    personal("user.email_verified", "email", SubjectKind::User, "user_id"),
    personal(
        "workspace.member_added",
        "email",
        SubjectKind::User,
        "user_id",
    ),
    personal(
        "workspace.member_invited",
        "email",
        SubjectKind::Invitee,
        "invitation_id",
    ),
    personal(
        "workspace.invitation_cancelled",
        "email",
        SubjectKind::Invitee,
        "invitation_id",
    ),
    personal(
        "workspace.invitation_declined",
        "email",
        SubjectKind::Invitee,
        "invitation_id",
    ),
    // A note's text is its writer's: an admin's edit is the admin's.
    personal("note.added", "content", SubjectKind::User, "added_by"),
    personal("note.edited", "content", SubjectKind::User, "edited_by"),
];

const fn personal(
    event_type: &'static str,
    field: &'static str,
    subject: SubjectKind,
    subject_field: &'static str,
) -> PersonalField {
    PersonalField {
        event_type,
        field,
        subject,
        subject_field,
    }
}

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
        assert_eq!(
            back.known().map(String::len),
            Some(15),
            "reads as the value"
        );
    }

    #[test]
    fn an_erased_value_round_trips_as_the_mark_and_never_as_a_value() {
        let erased: Personal<String> = serde_json::from_str("\"[erased]\"").unwrap();
        assert!(erased.is_erased());
        assert_eq!(erased.known(), None);
        assert_eq!(serde_json::to_string(&erased).unwrap(), "\"[erased]\"");
        assert_eq!(format!("{erased:?}"), "Personal([erased])");
        let number: Personal<u32> = serde_json::from_str("\"[erased]\"").unwrap();
        assert!(number.is_erased(), "whatever the value's type");
        let number: Personal<u32> = serde_json::from_str("7").unwrap();
        assert_eq!(number.known(), Some(&7));
        assert!(serde_json::from_str::<Personal<u32>>("\"seven\"").is_err());
    }
}
