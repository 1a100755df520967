//! A company's website, normalised so that spellings of one site compare equal.

use serde::{Deserialize, Serialize};
use std::fmt;
use url::Url;

/// A company website as it is fetched: lowercase host as given (`www.`
/// kept: the fetcher must ask for the host the user named), a port only if
/// it is not a web default (80, 443), and the path without a trailing
/// slash; no scheme, query, fragment or credentials. Its identity
/// (`Website::identity`) decides whether two spellings are one site:
/// `https://WWW.Acme.io/`, `http://acme.io:443` and `acme.io/` are all the
/// site `acme.io`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schema", schema(example = "acme-robotics.io"))]
#[serde(transparent)]
pub struct Website(String);

/// Why a website was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebsiteError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {max} characters")]
    TooLong { max: usize },
    #[error("must be an http or https address")]
    UnsupportedScheme,
    #[error("is not a valid web address")]
    Invalid,
    #[error("must not contain credentials")]
    HasCredentials,
}

impl Website {
    pub const MAX_CHARS: usize = 2048;

    /// Checks the raw length (the schema's `maxLength`) and the shape the
    /// schema states ([`website_pattern`]), then normalises through a real
    /// URL parser.
    pub fn parse(input: &str) -> Result<Self, WebsiteError> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(WebsiteError::Empty);
        }
        if input.chars().count() > Self::MAX_CHARS {
            return Err(WebsiteError::TooLong {
                max: Self::MAX_CHARS,
            });
        }
        if has_other_scheme(trimmed) || (!trimmed.contains("://") && has_non_http_scheme(trimmed)) {
            return Err(WebsiteError::UnsupportedScheme);
        }
        if credentials_before_path(trimmed) {
            return Err(WebsiteError::HasCredentials);
        }
        if !WEBSITE.is_match(input) {
            return Err(WebsiteError::Invalid);
        }
        // A bare host ("acme.io/about") has no scheme; anything else with "://"
        // or a scheme-like prefix must be http(s).
        let with_scheme = if trimmed.contains("://") {
            trimmed.to_owned()
        } else if has_non_http_scheme(trimmed) {
            return Err(WebsiteError::UnsupportedScheme);
        } else {
            format!("https://{trimmed}")
        };
        let url = Url::parse(&with_scheme).map_err(|_| WebsiteError::Invalid)?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(WebsiteError::UnsupportedScheme);
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(WebsiteError::HasCredentials);
        }
        let host = match url.host_str() {
            Some(h) if !h.is_empty() => h.trim_end_matches('.').to_ascii_lowercase(),
            _ => return Err(WebsiteError::Invalid),
        };
        if host.is_empty() || (!host.contains('.') && !host.starts_with('[')) {
            return Err(WebsiteError::Invalid);
        }
        let mut canonical = host;
        // The fetch is https; 80 and 443 name the default site either way.
        if let Some(port) = url.port().filter(|p| !matches!(p, 80 | 443)) {
            canonical.push_str(&format!(":{port}"));
        }
        let path = url.path().trim_end_matches('/');
        canonical.push_str(path);
        Ok(Website(canonical))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The site this website names, for "one company per site": without
    /// `www.` and case-insensitive (paths included: `acme.io/About` and
    /// `acme.io/about` are one site).
    pub fn identity(&self) -> String {
        let lower = self.0.to_lowercase();
        match lower.strip_prefix("www.") {
            Some(rest) => rest.to_owned(),
            None => lower,
        }
    }
}

/// Letters a host label may hold besides ASCII ones: Latin, Cyrillic
/// and CJK letters, each of which IDNA accepts (a test checks
/// every one), so international names (`bücher.de`) work.
const HOST_LETTERS: &str =
    "\\u00C0-\\u00D6\\u00D8-\\u00F6\\u00F8-\\u024F\\u0400-\\u0481\\u048A-\\u04FF\\u4E00-\\u9FFF";

/// The shape of a website the API accepts, as the schema states it: an
/// optional `http://` or `https://`, a host name with at least one dot
/// whose last label starts with a letter (no `localhost`) or an IPv4
/// address in dotted decimal (other spellings of numbers and IPv6
/// literals are refused; the fetcher refuses private addresses however
/// they are reached), an optional port, then an optional path, query or
/// fragment without white space or deceptive characters; white space
/// around it ignored. Compiled here and served in the OpenAPI document,
/// so clients and server apply one rule.
pub fn website_pattern() -> String {
    let space = crate::validation::white_space_class();
    let label = format!(
        "[A-Za-z0-9{HOST_LETTERS}](?:[A-Za-z0-9{HOST_LETTERS}-]{{0,61}}[A-Za-z0-9{HOST_LETTERS}])?"
    );
    let top = format!(
        "[A-Za-z{HOST_LETTERS}](?:[A-Za-z0-9{HOST_LETTERS}-]{{0,61}}[A-Za-z0-9{HOST_LETTERS}])?"
    );
    let octet = "(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])";
    let ipv4 = format!("{octet}(?:\\.{octet}){{3}}");
    let port =
        "(?:[0-9]{1,4}|[0-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])";
    let rest = format!("[^{space}{}]", crate::validation::deceptive_class());
    format!(
        "^[{space}]*(?:[Hh][Tt][Tt][Pp][Ss]?://)?(?:(?:{label}\\.)+{top}\\.?|{ipv4})(?::{port}?)?(?:[/?#]{rest}*)?[{space}]*$"
    )
}

static WEBSITE: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
    regex::Regex::new(&website_pattern()).expect("the website pattern compiles")
});

/// `scheme://` with a scheme other than http(s).
fn has_other_scheme(input: &str) -> bool {
    input.split_once("://").is_some_and(|(scheme, _)| {
        !scheme.eq_ignore_ascii_case("http")
            && !scheme.eq_ignore_ascii_case("https")
            && !scheme.contains(['/', '.'])
    })
}

/// `user:password@host`: an `@` before the path, query or fragment.
fn credentials_before_path(input: &str) -> bool {
    let after_scheme = input.split_once("://").map_or(input, |(_, rest)| rest);
    let authority = after_scheme.split(['/', '?', '#']).next().unwrap_or("");
    authority.contains('@')
}

fn has_non_http_scheme(input: &str) -> bool {
    // "mailto:x@y", "javascript:..", "ftp:host": a colon before any '/' or '.'
    // that is not a port (digits after it).
    match input.find(':') {
        Some(i) => {
            let before = &input[..i];
            let after = &input[i + 1..];
            let port_like = after
                .split('/')
                .next()
                .is_some_and(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
            !before.contains('/') && !before.contains('.') && !port_like
        }
        None => false,
    }
}

impl fmt::Display for Website {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_of_one_site_normalise_to_the_same_value() {
        let spellings = [
            "acme.io",
            "https://acme.io",
            "http://acme.io/",
            "HTTPS://WWW.ACME.IO/",
            "  www.Acme.io  ",
            "https://acme.io/?utm_source=x#top",
            "https://acme.io.",
        ];
        for s in spellings {
            assert_eq!(Website::parse(s).unwrap().identity(), "acme.io", "{s}");
        }
    }

    #[test]
    fn default_ports_and_path_case_are_one_site_and_www_is_kept_for_fetching() {
        for s in [
            "http://acme.io:443",
            "https://acme.io:443/",
            "http://acme.io:80",
        ] {
            assert_eq!(Website::parse(s).unwrap().as_str(), "acme.io", "{s}");
        }
        assert_eq!(
            Website::parse("acme.io/About").unwrap().identity(),
            Website::parse("ACME.io/about/").unwrap().identity()
        );
        let www = Website::parse("https://www.Acme.io/").unwrap();
        assert_eq!(www.as_str(), "www.acme.io");
        assert_eq!(www.identity(), "acme.io");
    }

    #[test]
    fn paths_and_ports_are_kept_because_they_can_name_different_sites() {
        assert_eq!(
            Website::parse("https://github.com/Acme/").unwrap().as_str(),
            "github.com/Acme"
        );
        assert_eq!(
            Website::parse("http://acme.io:8080").unwrap().as_str(),
            "acme.io:8080"
        );
    }

    #[test]
    fn non_web_schemes_are_refused() {
        for s in [
            "ftp://acme.io",
            "javascript:alert(1)",
            "mailto:a@acme.io",
            "file:///etc/passwd",
        ] {
            assert_eq!(
                Website::parse(s),
                Err(WebsiteError::UnsupportedScheme),
                "{s}"
            );
        }
    }

    #[test]
    fn garbage_and_credentials_are_refused() {
        assert_eq!(Website::parse(""), Err(WebsiteError::Empty));
        assert_eq!(Website::parse("not a site"), Err(WebsiteError::Invalid));
        assert_eq!(Website::parse("localhost"), Err(WebsiteError::Invalid));
        assert_eq!(
            Website::parse("https://user:pw@acme.io"),
            Err(WebsiteError::HasCredentials)
        );
    }

    #[test]
    fn international_hosts_are_stored_in_punycode() {
        assert_eq!(
            Website::parse("bücher.de").unwrap().as_str(),
            "xn--bcher-kva.de"
        );
    }

    /// Every letter the pattern lets into a host is one IDNA (and so the
    /// URL parser) accepts: what the schema allows, the server takes.
    #[test]
    fn every_host_letter_the_pattern_allows_parses() {
        let class = regex::Regex::new(&format!("^[{HOST_LETTERS}]$")).unwrap();
        for c in (0x80..=0xFFFF).filter_map(char::from_u32) {
            if class.is_match(&c.to_string()) {
                let site = format!("a{c}b.d{c}e");
                assert!(Website::parse(&site).is_ok(), "U+{:04X} {site}", c as u32);
            }
        }
    }

    #[test]
    fn the_pattern_and_the_parser_agree() {
        let pattern = regex::Regex::new(&website_pattern()).unwrap();
        let samples = [
            "acme.io",
            " https://acme.io/ ",
            "HTTP://Acme.io:8080/x?y#z",
            "acme.io:",
            "acme.io:65535",
            "acme.io:65536",
            "1.2.3.4",
            "[::1]",
            "localhost",
            "acme",
            "acme.io/a b",
            "acme.io/\u{202E}",
            "a-.io",
            "-a.io",
            "a.io.",
            "user@acme.io",
            "ftp://acme.io",
            "acme.io/@x",
            "bücher.de",
            "acme.io\n",
            "acme..io",
            "a_b.io",
            "acme.i0",
        ];
        for sample in samples {
            let parsed = Website::parse(sample);
            assert_eq!(
                pattern.is_match(sample),
                parsed.is_ok(),
                "{sample:?}: {parsed:?}"
            );
        }
    }
}
