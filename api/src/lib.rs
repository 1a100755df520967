//! The HTTP API and the `vcintel` binary's bootstrap: axum routers,
//! extractors, bearer-token auth, RFC 9457 errors, the OpenAPI document, and
//! the [`Application`] that runs the API, relay and projection workers under
//! one shutdown signal.
//!
//! May depend on every other crate of the workspace. `router(state)` is kept
//! apart from serving so tests can drive it.

pub mod app;
pub mod asyncapi;
pub mod auth;
pub mod cli;
pub mod component;
pub mod consistency;
pub mod demo;
pub mod erasure;
pub mod error;
pub mod http;
pub mod idempotency;
pub mod limits;
pub mod metrics;
pub mod openapi;
pub mod router;
pub mod routes;
pub mod settings;
pub mod state;
pub mod string_rules;
pub mod telemetry;
pub mod terminal;

pub use app::Application;
pub use component::Component;
pub use openapi::openapi;
pub use router::router;
pub use settings::Settings;
pub use state::AppState;
