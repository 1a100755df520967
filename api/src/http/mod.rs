//! HTTP plumbing every route shares: extractors that answer problem+json,
//! the shapes of command answers and representations (ETags, `Location`),
//! preconditions, pagination, sealed values, and the headers set on every
//! response.

pub mod extract;
pub mod headers;
pub mod metadata;
pub mod pagination;
pub mod preconditions;
pub mod respond;
pub mod signed;
