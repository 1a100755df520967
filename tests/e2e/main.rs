//! End-to-end tests (placeholder replaced below).
