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
        assert_eq!(back.len(), 15, "reads as the value");
    }
}
