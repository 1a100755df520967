//! Crash injection for fault tests.
//!
//! `VCINTEL_FAILPOINTS="relay.after_publish=2,projector.after_commit=1"` makes
//! the process abort the 2nd time the relay has published a batch and not yet
//! checkpointed it, or the 1st time the projector has committed a batch and
//! not yet acknowledged it. Unset (the default), every point is a no-op. An
//! abort, unlike a panic, runs no destructors and flushes nothing: it is as
//! close to `kill -9` at that exact line as a test can get.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

pub const ENV: &str = "VCINTEL_FAILPOINTS";

struct Point {
    abort_on_hit: u64,
    hits: AtomicU64,
}

fn points() -> &'static HashMap<String, Point> {
    static POINTS: OnceLock<HashMap<String, Point>> = OnceLock::new();
    POINTS.get_or_init(|| {
        let spec = std::env::var(ENV).unwrap_or_default();
        spec.split(',')
            .filter_map(|item| {
                let (name, n) = item.trim().split_once('=')?;
                let abort_on_hit = n.trim().parse().ok()?;
                Some((
                    name.trim().to_owned(),
                    Point {
                        abort_on_hit,
                        hits: AtomicU64::new(0),
                    },
                ))
            })
            .collect()
    })
}

/// Marks a crash point; aborts the process when its configured hit comes.
pub fn hit(name: &str) {
    if let Some(point) = points().get(name) {
        let hits = point.hits.fetch_add(1, Ordering::SeqCst) + 1;
        if hits == point.abort_on_hit {
            eprintln!("failpoint {name} hit {hits} time(s): aborting");
            std::process::abort();
        }
    }
}
