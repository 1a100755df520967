//! Field-level validation errors, reported all at once so a client can fix
//! every field in one round trip.

use serde::Serialize;

/// One invalid input field, named as the client sent it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// A non-empty set of field errors.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ValidationErrors(Vec<FieldError>);

impl ValidationErrors {
    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn fields(&self) -> &[FieldError] {
        &self.0
    }

    /// `Ok(())` when nothing was added, so checks can end with `errors.into_result()?`.
    pub fn into_result(self) -> Result<(), ValidationErrors> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(self)
        }
    }
}

impl std::fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect();
        write!(f, "{}", parts.join("; "))
    }
}

impl std::error::Error for ValidationErrors {}

/// Characters no text a person types needs and that make text read
/// differently than it is: control characters, bidi embeddings, overrides
/// and isolates (U+202E turns `txt.exe` around), zero-width spaces and
/// word joiners, the byte-order mark and Unicode tag characters (invisible
/// text). Zero-width (non-)joiners stay: scripts and emoji need them.
pub fn is_deceptive(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{200B}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{2069}'
                | '\u{FEFF}'
                | '\u{E0000}'..='\u{E007F}'
        )
}

const DECEPTIVE: &str = "must not contain control, bidi-override or invisible characters";

/// Trims a required free-text field and checks its length in characters.
pub fn required_text(
    errors: &mut ValidationErrors,
    field: &str,
    value: &str,
    max_chars: usize,
) -> String {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        errors.add(field, "must not be empty");
    } else if trimmed.chars().count() > max_chars {
        errors.add(field, format!("must be at most {max_chars} characters"));
    } else if trimmed.chars().any(is_deceptive) {
        errors.add(field, DECEPTIVE);
    }
    trimmed.to_owned()
}

/// Like [`required_text`] for optional fields; an empty string clears the value.
pub fn optional_text(
    errors: &mut ValidationErrors,
    field: &str,
    value: Option<&str>,
    max_chars: usize,
) -> Option<String> {
    let trimmed = value?.trim();
    if trimmed.is_empty() {
        return None;
    }
    if trimmed.chars().count() > max_chars {
        errors.add(field, format!("must be at most {max_chars} characters"));
    } else if trimmed.chars().any(is_deceptive) {
        errors.add(field, DECEPTIVE);
    }
    Some(trimmed.to_owned())
}
