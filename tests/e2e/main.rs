//! End-to-end tests on a real Postgres and a real nats-server.
//!
//! `scripts/test.sh` starts both and sets `TEST_DATABASE_URL` (an admin URL)
//! and `TEST_NATS_URL`. Every test gets its own database, cloned from a
//! migrated template, and its own stream/subject prefix, so tests run in
//! parallel without seeing each other. Set `TEST_LOG=1` to see the service's logs.

// Helpers panic on failure by design: a failed set-up is a failed test.
#![allow(clippy::unwrap_used)]

mod fixtures;
mod helpers;
mod mail_sink;

mod admin;
mod api;
mod asyncapi;
mod audit;
mod backup;
mod cli;
mod concurrency;
mod consistency;
mod console;
mod contract;
mod crash;
mod enrichment;
mod erasure;
mod export;
mod first_hour;
mod healing;
mod health;
mod idempotency;
mod identity;
mod limits;
mod lists;
mod metrics;
mod notes;
mod outage;
mod pitr;
mod plans;
mod privacy;
mod projection;
mod rebuild;
mod relay;
mod replicas;
mod retention;
mod saved_searches;
mod scale;
mod search;
mod snapshots;
mod telemetry;
mod tenancy;
mod trust;
