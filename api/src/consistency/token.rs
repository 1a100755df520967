//! The consistency token: an opaque, signed note of a write (aggregate
//! type, id and the version it reached) that a later read can wait for.

use crate::http::signed::Sealer;
use axum::http::HeaderName;
use axum::response::Response;
use vcintel_commands::Committed;

pub const CONSISTENCY_TOKEN: HeaderName = HeaderName::from_static("x-consistency-token");

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
#[derive(Clone, Debug)]
pub struct ConsistencyTokens {
    sealer: Sealer,
}

impl ConsistencyTokens {
    pub fn new(secret: &[u8]) -> Self {
        Self {
            sealer: Sealer::new(secret, b"vcintel consistency token v1"),
        }
    }

    pub fn issue(&self, written: &Written) -> String {
        let payload = format!(
            "{}:{}:{}",
            written.aggregate_type, written.aggregate_id, written.version
        );
        self.sealer.seal(payload.as_bytes())
    }

    /// `None` for anything this service did not issue.
    pub fn verify(&self, token: &str) -> Option<Written> {
        let payload = String::from_utf8(self.sealer.open(token)?).ok()?;
        let mut parts = payload.splitn(3, ':');
        let (aggregate_type, aggregate_id, version) = (parts.next()?, parts.next()?, parts.next()?);
        Some(Written {
            aggregate_type: aggregate_type.to_owned(),
            aggregate_id: aggregate_id.to_owned(),
            version: version.parse().ok()?,
        })
    }
}
