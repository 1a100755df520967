//! A company's website, normalised so that spellings of one site compare equal.

use serde::{Deserialize, Serialize};
use std::fmt;
use url::Url;

/// A company website as it is fetched: lowercase host as given (`www.`
/// kept: the fetcher must ask for the host the user named), a port only if
/// it is not a web default (80, 443), and the path without a trailing
/// slash; no scheme, query, fragment or credentials. Its [`identity`]
/// decides whether two spellings are one site: `https://WWW.Acme.io/`,
/// `http://acme.io:443` and `acme.io/` are all the site `acme.io`.
///
/// [`identity`]: Website::identity
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
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

    pub fn parse(input: &str) -> Result<Self, WebsiteError> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(WebsiteError::Empty);
        }
        if trimmed.chars().count() > Self::MAX_CHARS {
            return Err(WebsiteError::TooLong {
                max: Self::MAX_CHARS,
            });
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
}
