//! Progress of the components running in this process, for readiness.
//!
//! Lag alone does not tell a stall: a projector can sit 10 events behind
//! for a minute because it is stuck, or be 5,000 behind and catching up
//! fast. So each component is watched over time: a component with work
//! waiting whose position has not moved for `stall_after` is stalled, and
//! the process that runs it reports not ready. The watch is of the shared
//! truth (a durable consumer's acknowledgement floor, the relay's
//! checkpoint), so every process running a copy of the component agrees.

use crate::wire::Topology;
use async_nats::jetstream;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// What one component last reported.
#[derive(Debug, Clone)]
pub struct ComponentProgress {
    /// Work waiting: events not yet published, messages not yet applied.
    pub lag: u64,
    /// How long the oldest waiting item has waited.
    pub oldest_waiting: Option<Duration>,
    /// Where the component is (a stream sequence, a store position).
    pub position: u64,
    /// When the position last moved, or the component last had nothing to do.
    pub moved_at: Instant,
    /// Set when the component cannot be observed (its consumer is gone).
    pub problem: Option<String>,
}

impl ComponentProgress {
    /// Work is waiting and nothing moved for `stall_after`.
    pub fn stalled(&self, stall_after: Duration) -> bool {
        self.lag > 0 && self.moved_at.elapsed() > stall_after
    }
}

/// The progress of this process's components, by name.
#[derive(Debug, Clone, Default)]
pub struct Progress(Arc<Mutex<BTreeMap<String, ComponentProgress>>>);

impl Progress {
    /// Records a sample: `lag` waiting at `position`. The position counts
    /// as moved if it changed since the last sample or nothing waits.
    pub fn observe(
        &self,
        name: &str,
        lag: u64,
        position: u64,
        oldest_waiting: Option<Duration>,
        problem: Option<String>,
    ) {
        let mut components = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let entry = components
            .entry(name.to_owned())
            .or_insert_with(|| ComponentProgress {
                lag,
                oldest_waiting,
                position,
                moved_at: now,
                problem: None,
            });
        if entry.position != position || lag == 0 {
            entry.moved_at = now;
        }
        entry.lag = lag;
        entry.position = position;
        entry.oldest_waiting = oldest_waiting;
        entry.problem = problem;
    }

    /// The component cannot be observed: it counts as having work waiting
    /// and not moving, so it reads as stalled once that lasts.
    pub fn unobservable(&self, name: &str, problem: String) {
        let previous = self.get(name);
        self.observe(
            name,
            previous.as_ref().map_or(1, |p| p.lag.max(1)),
            previous.map_or(0, |p| p.position),
            None,
            Some(problem),
        );
    }

    /// Every component's last report, by name.
    pub fn all(&self) -> Vec<(String, ComponentProgress)> {
        let components = self.0.lock().unwrap_or_else(|p| p.into_inner());
        components
            .iter()
            .map(|(name, progress)| (name.clone(), progress.clone()))
            .collect()
    }

    pub fn get(&self, name: &str) -> Option<ComponentProgress> {
        let components = self.0.lock().unwrap_or_else(|p| p.into_inner());
        components.get(name).cloned()
    }
}

/// Samples durable consumers (`(component name, durable)`) every `every`
/// until shutdown: their pending and unacknowledged messages, their
/// acknowledgement floor, and how long the oldest waiting message has
/// waited.
pub async fn watch_consumers(
    js: jetstream::Context,
    topology: Topology,
    consumers: Vec<(String, String)>,
    progress: Progress,
    every: Duration,
    shutdown: CancellationToken,
) {
    loop {
        match js.get_stream(topology.stream_name()).await {
            Ok(stream) => {
                for (name, durable) in &consumers {
                    match stream.consumer_info(durable).await {
                        Ok(info) => {
                            let lag = info.num_pending + info.num_ack_pending as u64;
                            let floor = info.ack_floor.stream_sequence;
                            let oldest_waiting = if lag > 0 {
                                oldest_after(&stream, floor).await
                            } else {
                                None
                            };
                            progress.observe(name, lag, floor, oldest_waiting, None);
                        }
                        Err(error) => progress
                            .unobservable(name, format!("its consumer cannot be read: {error}")),
                    }
                }
            }
            Err(error) => {
                for (name, _) in &consumers {
                    progress
                        .unobservable(name, format!("the events stream cannot be read: {error}"));
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

/// How long ago the first message after `floor` was stored.
async fn oldest_after(stream: &jetstream::stream::Stream, floor: u64) -> Option<Duration> {
    let message = stream.get_raw_message(floor + 1).await.ok()?;
    let stored_ms = message.time.unix_timestamp_nanos() / 1_000_000;
    let now_ms = i128::from(chrono::Utc::now().timestamp_millis());
    Some(Duration::from_millis((now_ms - stored_ms).max(0) as u64))
}
