//! The enrichment pipeline's adapters: fetching a website safely, reading
//! its visible text, the built-in deterministic enricher, and the worker
//! that runs jobs.

pub mod admission;
pub mod breaker;
pub mod fetch;
pub mod heuristic;
pub mod model;
pub mod page;
pub mod worker;
