//! Fetching a company's website without becoming a proxy into our network.
//!
//! Only http and https. Every host is resolved here and every address it
//! resolves to is checked (loopback, private, link-local and cloud
//! metadata, CGNAT, multicast, unspecified, reserved and documentation
//! ranges, and IPv6 forms that embed IPv4: mapped, NAT64, 6to4); if any
//! is forbidden the host is refused, and the connection goes to the address
//! that was checked, never to a second lookup. Redirects are followed by
//! hand (at most five), each one checked the same way. Size, connect time
//! and total time are capped, and only HTML-like text is accepted. Numeric
//! host spellings (`2130706433`, `0x7f.1`, `[::ffff:127.0.0.1]`) are
//! normalised by the URL parser before the check, so they are checked as
//! the addresses they are.

use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use reqwest::{StatusCode, Url};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct FetchPolicy {
    pub max_bytes: usize,
    pub connect_timeout: Duration,
    pub total_timeout: Duration,
    pub max_redirects: usize,
    /// Exact addresses allowed despite the rules (test fixtures on
    /// loopback). Empty unless configured explicitly.
    pub allowed_addresses: Vec<SocketAddr>,
}

impl Default for FetchPolicy {
    fn default() -> Self {
        Self {
            max_bytes: 2 * 1024 * 1024,
            connect_timeout: Duration::from_secs(5),
            total_timeout: Duration::from_secs(15),
            max_redirects: 5,
            allowed_addresses: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    #[error("the website address is not a valid http(s) URL")]
    InvalidUrl,
    #[error("only http and https websites can be fetched")]
    Scheme,
    #[error("the website resolves to an address that may not be fetched ({0})")]
    Forbidden(IpAddr),
    #[error("the website's host could not be resolved")]
    Unresolvable,
    #[error("more than {0} redirects")]
    TooManyRedirects(usize),
    #[error("a redirect without a valid Location")]
    BadRedirect,
    #[error("the page is larger than {0} bytes")]
    TooLarge(usize),
    #[error("the page is not HTML (content type `{0}`)")]
    NotHtml(String),
    #[error("the website answered HTTP {0}")]
    Status(u16),
    #[error("the website did not answer in time")]
    Timeout,
    #[error("the website could not be reached")]
    Unreachable,
}

/// A fetched page.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub final_url: Url,
    pub html: String,
}

#[derive(Debug, Clone)]
pub struct Fetcher {
    policy: FetchPolicy,
}

impl Fetcher {
    pub fn new(policy: FetchPolicy) -> Self {
        crate::install_crypto_provider();
        Self { policy }
    }

    /// Fetches `website`: a URL, or a normalised website like `acme.io`,
    /// which is tried over https first and over http if https cannot
    /// connect (the check applies to both).
    pub async fn fetch(&self, website: &str) -> Result<Fetched, FetchError> {
        if website.contains("://") {
            return self.fetch_url(website).await;
        }
        match self.fetch_url(&format!("https://{website}")).await {
            Err(FetchError::Unreachable) => self.fetch_url(&format!("http://{website}")).await,
            other => other,
        }
    }

    async fn fetch_url(&self, first: &str) -> Result<Fetched, FetchError> {
        let started = Instant::now();
        let mut url = Url::parse(first).map_err(|_| FetchError::InvalidUrl)?;
        for _ in 0..=self.policy.max_redirects {
            let remaining = self
                .policy
                .total_timeout
                .checked_sub(started.elapsed())
                .ok_or(FetchError::Timeout)?;
            let response = tokio::time::timeout(remaining, self.request(&url))
                .await
                .map_err(|_| FetchError::Timeout)??;
            let status = response.status();
            if status.is_redirection() && status != StatusCode::NOT_MODIFIED {
                let location = response
                    .headers()
                    .get(LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .ok_or(FetchError::BadRedirect)?;
                url = url.join(location).map_err(|_| FetchError::BadRedirect)?;
                continue;
            }
            if !status.is_success() {
                return Err(FetchError::Status(status.as_u16()));
            }
            let content_type = response
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_ascii_lowercase();
            let html_like = ["text/html", "application/xhtml+xml", "text/plain"]
                .iter()
                .any(|t| content_type.starts_with(t));
            if !html_like {
                return Err(FetchError::NotHtml(content_type));
            }
            let declared = response
                .headers()
                .get(CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<usize>().ok());
            if declared.is_some_and(|n| n > self.policy.max_bytes) {
                return Err(FetchError::TooLarge(self.policy.max_bytes));
            }
            let remaining = self
                .policy
                .total_timeout
                .checked_sub(started.elapsed())
                .ok_or(FetchError::Timeout)?;
            let body = tokio::time::timeout(remaining, self.read_capped(response))
                .await
                .map_err(|_| FetchError::Timeout)??;
            return Ok(Fetched {
                final_url: url,
                html: String::from_utf8_lossy(&body).into_owned(),
            });
        }
        Err(FetchError::TooManyRedirects(self.policy.max_redirects))
    }

    async fn request(&self, url: &Url) -> Result<reqwest::Response, FetchError> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(FetchError::Scheme);
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(FetchError::InvalidUrl);
        }
        let port = url.port_or_known_default().ok_or(FetchError::InvalidUrl)?;
        let host = url.host().ok_or(FetchError::InvalidUrl)?;
        let mut client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(self.policy.connect_timeout)
            .user_agent("VCIntelBot/1.0 (+company enrichment)");
        match host {
            url::Host::Ipv4(ip) => self.check(SocketAddr::new(IpAddr::V4(ip), port))?,
            url::Host::Ipv6(ip) => self.check(SocketAddr::new(IpAddr::V6(ip), port))?,
            url::Host::Domain(domain) => {
                let addresses: Vec<SocketAddr> = tokio::net::lookup_host((domain, port))
                    .await
                    .map_err(|_| FetchError::Unresolvable)?
                    .collect();
                let first = *addresses.first().ok_or(FetchError::Unresolvable)?;
                for address in &addresses {
                    self.check(*address)?;
                }
                // Connect to the address just checked, not to a new lookup
                // that a rebinding DNS server could answer differently.
                client = client.resolve(domain, first);
            }
        }
        let client = client.build().map_err(|_| FetchError::Unreachable)?;
        client.get(url.clone()).send().await.map_err(|error| {
            if error.is_timeout() {
                FetchError::Timeout
            } else {
                FetchError::Unreachable
            }
        })
    }

    fn check(&self, address: SocketAddr) -> Result<(), FetchError> {
        if self.policy.allowed_addresses.contains(&address) || is_public(address.ip()) {
            Ok(())
        } else {
            Err(FetchError::Forbidden(address.ip()))
        }
    }

    async fn read_capped(&self, mut response: reqwest::Response) -> Result<Vec<u8>, FetchError> {
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|_| FetchError::Unreachable)?
        {
            if body.len() + chunk.len() > self.policy.max_bytes {
                return Err(FetchError::TooLarge(self.policy.max_bytes));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

/// Whether `ip` is an ordinary public unicast address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let forbidden = ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local() // includes 169.254.169.254, the cloud metadata address
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || a == 0 // "this network"
        || (a == 100 && (64..128).contains(&b)) // CGNAT, also Alibaba's metadata address
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast
        || (a == 198 && (18..20).contains(&b)) // benchmarking
        || a >= 240; // reserved
    !forbidden
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let segments = ip.segments();
    // NAT64 (64:ff9b::/96) and IPv4-compatible (::/96) embed IPv4 at the end.
    if (segments[0] == 0x64 && segments[1] == 0xff9b && segments[2..6] == [0, 0, 0, 0])
        || segments[..6] == [0, 0, 0, 0, 0, 0]
    {
        let v4 = Ipv4Addr::new(
            (segments[6] >> 8) as u8,
            segments[6] as u8,
            (segments[7] >> 8) as u8,
            segments[7] as u8,
        );
        return !ip.is_unspecified() && !ip.is_loopback() && is_public_v4(v4);
    }
    // 6to4 (2002::/16) embeds IPv4 in the next 32 bits.
    if segments[0] == 0x2002 {
        let v4 = Ipv4Addr::new(
            (segments[1] >> 8) as u8,
            segments[1] as u8,
            (segments[2] >> 8) as u8,
            segments[2] as u8,
        );
        return is_public_v4(v4);
    }
    let forbidden = ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (segments[0] & 0xfe00) == 0xfc00 // unique local, incl. fd00:ec2::254 (AWS metadata)
        || (segments[0] & 0xffc0) == 0xfe80 // link-local
        || (segments[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
        || (segments[0] == 0x2001 && segments[1] == 0x0db8) // documentation
        || (segments[0] == 0x2001 && segments[1] == 0) // Teredo
        || (segments[0] == 0x0100 && segments[1..4] == [0, 0, 0]); // discard
    !forbidden
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_in_every_spelling_are_refused() {
        let refused = [
            "http://127.0.0.1/",
            "http://localhost.localdomain.invalid/",
            "http://2130706433/",
            "http://0x7f.1/",
            "http://0177.0.0.1/",
            "http://127.1/",
            "http://0.0.0.0/",
            "http://10.1.2.3/",
            "http://172.16.0.1/",
            "http://192.168.1.1/",
            "http://169.254.169.254/latest/meta-data/",
            "http://100.100.100.200/",
            "http://224.0.0.1/",
            "http://[::1]/",
            "http://[::]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:7f00:1]/",
            "http://[64:ff9b::7f00:1]/",
            "http://[2002:7f00:1::]/",
            "http://[fd00:ec2::254]/",
            "http://[fe80::1]/",
        ];
        for url in refused {
            let parsed = Url::parse(url).unwrap();
            let ip = match parsed.host() {
                Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip),
                Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip),
                // Names are checked after resolution (e2e tests).
                _ => continue,
            };
            assert!(!is_public(ip), "{url} → {ip} must be refused");
        }
        for ok in [
            "93.184.215.14",
            "2606:2800:21f:cb07:6820:80da:af6b:8b2c",
            "1.1.1.1",
        ] {
            assert!(is_public(ok.parse().unwrap()), "{ok}");
        }
    }
}
