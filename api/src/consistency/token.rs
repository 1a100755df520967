//! The consistency token: an opaque, signed note of a write (aggregate
//! type, id and the version it reached) that a later read can wait for.

use axum::http::HeaderName;
use axum::response::Response;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use vcintel_commands::Committed;

pub const CONSISTENCY_TOKEN: HeaderName = HeaderName::from_static("x-consistency-token");
/// Bytes of the MAC kept: forging 2^-128 is enough, and tokens stay short.
const MAC_BYTES: usize = 16;

/// A write a client wants its reads to reflect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub version: u64,
}

impl Written {
    pub fn at(aggregate_type: &str, aggregate_id: impl ToString, version: u64) -> Self {
        Written {
            aggregate_type: aggregate_type.to_owned(),
            aggregate_id: aggregate_id.to_string(),
            version,
        }
    }
}

impl From<&Committed> for Written {
    fn from(committed: &Committed) -> Self {
        Written {
            aggregate_type: committed.aggregate_type.to_owned(),
            aggregate_id: committed.aggregate_id.clone(),
            version: committed.version,
        }
    }
}

/// Marks `response` as the answer to `committed`; the middleware turns the
/// mark into the response's token.
pub fn answering(mut response: Response, committed: &Committed) -> Response {
    response.extensions_mut().insert(Written::from(committed));
    response
}

/// Issues and checks tokens with a key only this service holds.
#[derive(Clone)]
pub struct ConsistencyTokens {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for ConsistencyTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConsistencyTokens(..)")
    }
}

impl ConsistencyTokens {
    pub fn new(secret: &[u8]) -> Self {
        // A key of its own, so a token's MAC can never double as anything
        // else signed with the same secret.
        let mut derive =
            Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts keys of any length");
        derive.update(b"vcintel consistency token v1");
        let key = derive.finalize().into_bytes();
        Self {
            mac: Hmac::<Sha256>::new_from_slice(&key).expect("HMAC accepts keys of any length"),
        }
    }

    pub fn issue(&self, written: &Written) -> String {
        let payload = format!(
            "{}:{}:{}",
            written.aggregate_type, written.aggregate_id, written.version
        );
        let tag = self.tag(payload.as_bytes());
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode(tag)
        )
    }

    /// `None` for anything this service did not issue.
    pub fn verify(&self, token: &str) -> Option<Written> {
        let (payload, tag) = token.trim().split_once('.')?;
        let payload = URL_SAFE_NO_PAD.decode(payload).ok()?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        if tag.len() != MAC_BYTES {
            return None;
        }
        let mut mac = self.mac.clone();
        mac.update(&payload);
        mac.verify_truncated_left(&tag).ok()?;
        let payload = String::from_utf8(payload).ok()?;
        let mut parts = payload.splitn(3, ':');
        let (aggregate_type, aggregate_id, version) = (parts.next()?, parts.next()?, parts.next()?);
        Some(Written {
            aggregate_type: aggregate_type.to_owned(),
            aggregate_id: aggregate_id.to_owned(),
            version: version.parse().ok()?,
        })
    }

    fn tag(&self, payload: &[u8]) -> Vec<u8> {
        let mut mac = self.mac.clone();
        mac.update(payload);
        mac.finalize().into_bytes()[..MAC_BYTES].to_vec()
    }
}
