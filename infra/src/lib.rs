//! Adapters to the outside world: the Postgres event store and pool,
//! migrations, the gap-safe relay from Postgres to NATS JetStream, the wire
//! format of published events, the enrichment worker (safe fetching, the
//! built-in enricher, the model client), and test fault injection.
//!
//! May depend on `domain` and `commands` (whose traits it implements), sqlx,
//! postgres-es, async-nats, reqwest and tokio. Never on axum or the API.

pub mod accounts;
pub mod backup;
pub mod db;
pub mod enrichment;
pub mod erasure;
pub mod event_log;
pub mod event_store;
pub mod failpoint;
pub mod health;
pub mod idempotency;
pub mod identity_cache;
pub mod lease;
pub mod mail;
pub mod privacy;
pub mod rate_limit;
pub mod relay;
pub mod replicas;
pub mod retention;
pub mod stored_event;
pub mod stream;
pub mod supervise;
pub mod trace_context;
pub mod upcast;
pub mod vault;
pub mod verify;
pub mod wire;

pub use tokio_util::sync::CancellationToken;

/// Makes ring rustls' process-wide crypto provider (no aws-lc); reqwest
/// needs one before it builds a client. Safe to call more than once.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
