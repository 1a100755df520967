//! The VC Intel domain: aggregates, their commands and events, value objects
//! and typed errors.
//!
//! Pure and synchronous. It may depend on data-only crates (serde, uuid, url,
//! thiserror; utoipa's schema derive behind the `schema` feature, for the
//! API's OpenAPI and AsyncAPI documents) and nothing that does IO or needs an
//! async runtime; the event
//! store, the message bus and HTTP live in the outer crates, which adapt these
//! types to cqrs-es.

pub mod event_family;
pub mod events;

pub mod budget;
pub mod company;
pub mod enrichment;
pub mod identity;
pub mod list;
pub mod note;
pub mod personal;
pub mod saved_search;
pub mod untrusted;
pub mod user;
pub mod validation;
pub mod website;
pub mod workspace;

pub use identity::{Actor, Permission, Role, UserId, WorkspaceId};
pub use validation::{FieldError, ValidationErrors};
