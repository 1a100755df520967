//! Field-level validation errors, reported all at once so a client can fix
//! every field in one round trip.

use serde::{Deserializer, Serialize};

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

/// An optional whole number as JSON Schema's `integer` admits it: `51`
/// or `51.0` (serde's integers refuse the second). For fields a client
/// sends; out of range or fractional values are refused.
pub fn optional_integral<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<u64>,
{
    use serde::de::{Error, Visitor};
    struct Whole;
    impl Visitor<'_> for Whole {
        type Value = u64;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a whole number")
        }
        fn visit_u64<E: Error>(self, n: u64) -> Result<u64, E> {
            Ok(n)
        }
        fn visit_i64<E: Error>(self, n: i64) -> Result<u64, E> {
            u64::try_from(n).map_err(|_| E::custom(format!("must not be negative, not {n}")))
        }
        fn visit_f64<E: Error>(self, n: f64) -> Result<u64, E> {
            if n.fract() == 0.0 && (0.0..=u64::MAX as f64).contains(&n) {
                Ok(n as u64)
            } else {
                Err(E::custom(format!("must be a whole number, not {n}")))
            }
        }
    }
    struct MaybeWhole;
    impl<'de> Visitor<'de> for MaybeWhole {
        type Value = Option<u64>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a whole number or null")
        }
        fn visit_none<E: Error>(self) -> Result<Option<u64>, E> {
            Ok(None)
        }
        fn visit_unit<E: Error>(self) -> Result<Option<u64>, E> {
            Ok(None)
        }
        fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Option<u64>, D2::Error> {
            d.deserialize_any(Whole).map(Some)
        }
    }
    match deserializer.deserialize_option(MaybeWhole)? {
        None => Ok(None),
        Some(n) => T::try_from(n)
            .map(Some)
            .map_err(|_| D::Error::custom(format!("is out of range: {n}"))),
    }
}

/// Characters no text a person types needs and that make text read
/// differently than it is: control characters, bidi embeddings, overrides
/// and isolates (U+202E turns `txt.exe` around), zero-width spaces and
/// word joiners, the byte-order mark and Unicode tag characters (invisible
/// text). Zero-width (non-)joiners stay: scripts and emoji need them.
pub fn is_deceptive(c: char) -> bool {
    in_ranges(DECEPTIVE_RANGES, c)
}

/// [`is_deceptive`] as ranges, so the API's schema can state the same rule.
const DECEPTIVE_RANGES: &[(char, char)] = &[
    ('\u{0}', '\u{1F}'),
    ('\u{7F}', '\u{9F}'),
    ('\u{200B}', '\u{200B}'),
    ('\u{202A}', '\u{202E}'),
    ('\u{2060}', '\u{2064}'),
    ('\u{2066}', '\u{2069}'),
    ('\u{FEFF}', '\u{FEFF}'),
    ('\u{E0000}', '\u{E007F}'),
];

/// What `str::trim` removes around free text (Unicode `White_Space`), as
/// ranges for the schema.
const WHITE_SPACE_RANGES: &[(char, char)] = &[
    ('\t', '\r'),
    (' ', ' '),
    ('\u{85}', '\u{85}'),
    ('\u{A0}', '\u{A0}'),
    ('\u{1680}', '\u{1680}'),
    ('\u{2000}', '\u{200A}'),
    ('\u{2028}', '\u{2029}'),
    ('\u{202F}', '\u{202F}'),
    ('\u{205F}', '\u{205F}'),
    ('\u{3000}', '\u{3000}'),
];

/// [`DECEPTIVE_RANGES`] without tab, line feed and carriage return, which
/// text of several lines (a note) keeps.
const MULTILINE_DECEPTIVE_RANGES: &[(char, char)] = &[
    ('\u{0}', '\u{8}'),
    ('\u{B}', '\u{C}'),
    ('\u{E}', '\u{1F}'),
    ('\u{7F}', '\u{9F}'),
    ('\u{200B}', '\u{200B}'),
    ('\u{202A}', '\u{202E}'),
    ('\u{2060}', '\u{2064}'),
    ('\u{2066}', '\u{2069}'),
    ('\u{FEFF}', '\u{FEFF}'),
    ('\u{E0000}', '\u{E007F}'),
];

/// [`is_deceptive`] for text of several lines: tabs and line breaks are
/// allowed.
pub fn is_deceptive_in_multiline_text(c: char) -> bool {
    in_ranges(MULTILINE_DECEPTIVE_RANGES, c)
}

fn in_ranges(ranges: &[(char, char)], c: char) -> bool {
    ranges.iter().any(|&(low, high)| (low..=high).contains(&c))
}

/// The inside of a regex character class holding `ranges`, in the syntax
/// JSON Schema validators (ECMA-262 with the `u` flag) and Python's `re`
/// share: BMP characters as `\uXXXX`, others as themselves.
fn class_items(ranges: &[(char, char)]) -> String {
    let one = |c: char| {
        if (c as u32) <= 0xFFFF {
            format!("\\u{:04X}", c as u32)
        } else {
            c.to_string()
        }
    };
    ranges
        .iter()
        .map(|&(low, high)| {
            if low == high {
                one(low)
            } else {
                format!("{}-{}", one(low), one(high))
            }
        })
        .collect()
}

/// The white space [`required_text`] trims, as the inside of a regex
/// character class.
pub fn white_space_class() -> String {
    class_items(WHITE_SPACE_RANGES)
}

/// [`is_deceptive`] characters, as the inside of a regex character class.
pub fn deceptive_class() -> String {
    class_items(DECEPTIVE_RANGES)
}

/// Control characters (Unicode `Cc`), as the inside of a regex character
/// class.
pub fn control_class() -> String {
    class_items(&DECEPTIVE_RANGES[..2])
}

/// The JSON Schema `pattern` of what [`required_text`] accepts with
/// `max_chars`: after trimming, 1 to `max_chars` characters, none of them
/// deceptive. Clients see the exact rule the server applies.
pub fn required_text_pattern(max_chars: usize) -> String {
    let space = class_items(WHITE_SPACE_RANGES);
    let body = text_body(max_chars, DECEPTIVE_RANGES);
    format!("^[{space}]*{body}[{space}]*$")
}

/// The JSON Schema `pattern` of what [`optional_text`] accepts: blank
/// (which clears the value) or what [`required_text_pattern`] accepts.
pub fn optional_text_pattern(max_chars: usize) -> String {
    let space = class_items(WHITE_SPACE_RANGES);
    let body = text_body(max_chars, DECEPTIVE_RANGES);
    format!("^[{space}]*(?:{body}[{space}]*)?$")
}

/// [`optional_text_pattern`] for a query parameter: no parameter may
/// carry a control character anywhere (the API refuses them before
/// anything trims), so the white space around the text excludes them too.
pub fn optional_query_text_pattern(max_chars: usize) -> String {
    let controls = &DECEPTIVE_RANGES[..2];
    let space: Vec<(char, char)> = WHITE_SPACE_RANGES
        .iter()
        .copied()
        .filter(|&(low, high)| {
            !controls
                .iter()
                .any(|&(c_low, c_high)| low >= c_low && high <= c_high)
        })
        .collect();
    let space = class_items(&space);
    let body = text_body(max_chars, DECEPTIVE_RANGES);
    format!("^[{space}]*(?:{body}[{space}]*)?$")
}

/// [`required_text_pattern`] for text of several lines, where tabs and
/// line breaks are allowed (see [`is_deceptive_in_multiline_text`]).
pub fn multiline_text_pattern(max_chars: usize) -> String {
    let space = class_items(WHITE_SPACE_RANGES);
    let body = text_body(max_chars, MULTILINE_DECEPTIVE_RANGES);
    format!("^[{space}]*{body}[{space}]*$")
}

/// One to `max_chars` characters, none in `deceptive`, neither end white
/// space.
fn text_body(max_chars: usize, deceptive: &[(char, char)]) -> String {
    let space = class_items(WHITE_SPACE_RANGES);
    let deceptive = class_items(deceptive);
    let edge = format!("[^{space}{deceptive}]");
    match max_chars {
        0 => String::new(),
        1 => edge,
        n => format!("{edge}(?:[^{deceptive}]{{0,{}}}{edge})?", n - 2),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_white_space_table_is_what_trim_removes() {
        for c in (0..=0x10FFFF).filter_map(char::from_u32) {
            assert_eq!(
                in_ranges(WHITE_SPACE_RANGES, c),
                c.is_whitespace(),
                "{:?}",
                c
            );
        }
    }

    #[test]
    fn the_deceptive_table_holds_every_control_character() {
        for c in (0..=0x10FFFF)
            .filter_map(char::from_u32)
            .filter(|c| c.is_control())
        {
            assert!(is_deceptive(c), "{c:?}");
        }
    }

    /// The schema's pattern and the server's check agree on every sample
    /// (the contract tests fuzz the rest through the running API).
    #[test]
    fn the_text_patterns_accept_exactly_what_the_checks_accept() {
        let required = regex::Regex::new(&required_text_pattern(5)).unwrap();
        let optional = regex::Regex::new(&optional_text_pattern(5)).unwrap();
        let query = regex::Regex::new(&optional_query_text_pattern(5)).unwrap();
        let multiline =
            regex::RegexBuilder::new(&multiline_text_pattern(crate::note::MAX_NOTE_CHARS))
                .size_limit(1 << 30)
                .build()
                .unwrap();
        let samples = [
            "",
            " ",
            "a",
            " a ",
            "abcde",
            " abcde\t",
            "abcdef",
            "a b",
            "a\tb",
            "\u{202E}ab",
            "ab\u{E0041}",
            "\u{3000}abc\u{3000}",
            "a\u{85}",
            "\u{85}",
            "ab\u{200B}c",
            "héllo",
            "👍🏽x",
            "a\u{2028}b",
            "\n",
            "\u{0}",
            "a\nb",
            " a\tb\r\n",
            "a\u{7}b",
        ];
        for sample in samples {
            let mut errors = ValidationErrors::default();
            required_text(&mut errors, "f", sample, 5);
            assert_eq!(
                required.is_match(sample),
                errors.is_empty(),
                "required {sample:?}"
            );
            let mut errors = ValidationErrors::default();
            optional_text(&mut errors, "f", Some(sample), 5);
            assert_eq!(
                optional.is_match(sample),
                errors.is_empty(),
                "optional {sample:?}"
            );
            let in_query = !sample.chars().any(char::is_control) && errors.is_empty();
            assert_eq!(query.is_match(sample), in_query, "query {sample:?}");
            let note = crate::note::validate_content(sample).is_ok();
            assert_eq!(multiline.is_match(sample), note, "note {sample:?}");
        }
    }

    #[test]
    fn whole_numbers_may_be_written_as_json_schema_integers() {
        let parse = |json: &str| serde_json::from_str::<crate::saved_search::SearchFilters>(json);
        assert_eq!(parse(r#"{"min_score": 51.0}"#).unwrap().min_score, Some(51));
        assert_eq!(parse(r#"{"min_score": 51}"#).unwrap().min_score, Some(51));
        assert_eq!(parse(r#"{"min_score": null}"#).unwrap().min_score, None);
        assert_eq!(parse(r#"{}"#).unwrap().min_score, None);
        for bad in [
            r#"{"min_score": 51.5}"#,
            r#"{"min_score": 300}"#,
            r#"{"min_score": -1}"#,
            r#"{"min_score": "5"}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
