//! The enrichment pipeline's adapters: fetching a website safely, reading
//! its visible text, and the built-in deterministic enricher.

pub mod fetch;
pub mod heuristic;
pub mod page;
