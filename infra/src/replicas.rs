//! Postgres streaming replicas that serve queries: which of them are fit
//! to, by a watch of each one's replay against the primary's WAL, and the
//! pool a read uses.
//!
//! A replica is fit while it answers within a second, still replays the
//! primary (it was not promoted), and has replayed everything the primary
//! had written `max_staleness` ago. Reads go round-robin to the fit ones,
//! and to the primary when none is: a paused or lagging replica costs
//! freshness for at most the watch interval, never correctness.

use sqlx::postgres::PgConnectOptions;
use sqlx::PgPool;
use std::collections::VecDeque;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How often each replica is probed.
const WATCH_EVERY: Duration = Duration::from_millis(250);
/// A probe unanswered this long makes the replica unfit.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// How much of the primary's WAL history the watch remembers.
const HISTORY: usize = 240;

/// What a read runs on.
#[derive(Debug, Clone)]
pub struct ReadPool {
    pub pool: PgPool,
    /// The replica's name (`host:port`), or `None` for the primary.
    pub replica: Option<Arc<str>>,
}

/// The primary and the replicas that may serve reads.
#[derive(Debug)]
pub struct ReadPools {
    primary: PgPool,
    replicas: Vec<Replica>,
    next: AtomicUsize,
    max_staleness: Duration,
    /// The primary's WAL position over time, newest last.
    primary_wal: Mutex<VecDeque<(Instant, i64)>>,
}

#[derive(Debug)]
struct Replica {
    name: Arc<str>,
    pool: PgPool,
    state: Mutex<ReplicaState>,
}

/// A replica as the watch last saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicaState {
    pub fit: bool,
    /// How far behind the primary its replay was, when known.
    pub staleness: Option<Duration>,
    pub detail: String,
}

impl Default for ReplicaState {
    fn default() -> Self {
        Self {
            fit: false,
            staleness: None,
            detail: "not probed yet".to_owned(),
        }
    }
}

impl ReadPools {
    /// Reads on the primary only.
    pub fn primary_only(primary: PgPool) -> Self {
        Self::new(primary, Vec::new(), Duration::ZERO)
    }

    /// Replicas at `urls` (connected lazily: one that is down at start is
    /// simply unfit until it answers), each with `max_connections`.
    pub fn connect(
        primary: PgPool,
        urls: &[String],
        max_connections: u32,
        acquire_timeout: Duration,
        max_staleness: Duration,
    ) -> Result<Self, sqlx::Error> {
        let replicas = urls
            .iter()
            .map(|url| {
                let options = PgConnectOptions::from_str(url)?.application_name("vcintel-reads");
                let name = format!("{}:{}", options.get_host(), options.get_port());
                let pool = sqlx::postgres::PgPoolOptions::new()
                    .max_connections(max_connections)
                    .acquire_timeout(acquire_timeout)
                    .connect_lazy_with(options);
                Ok((name, pool))
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        Ok(Self::new(primary, replicas, max_staleness))
    }

    fn new(primary: PgPool, replicas: Vec<(String, PgPool)>, max_staleness: Duration) -> Self {
        Self {
            primary,
            replicas: replicas
                .into_iter()
                .map(|(name, pool)| Replica {
                    name: name.into(),
                    pool,
                    state: Mutex::new(ReplicaState::default()),
                })
                .collect(),
            next: AtomicUsize::new(0),
            max_staleness,
            primary_wal: Mutex::new(VecDeque::with_capacity(HISTORY)),
        }
    }

    pub fn has_replicas(&self) -> bool {
        !self.replicas.is_empty()
    }

    pub fn primary(&self) -> ReadPool {
        ReadPool {
            pool: self.primary.clone(),
            replica: None,
        }
    }

    /// The pool the next read uses: the fit replicas in turn, else the
    /// primary.
    pub fn for_read(&self) -> ReadPool {
        let count = self.replicas.len();
        if count > 0 {
            let start = self.next.fetch_add(1, Ordering::Relaxed);
            for offset in 0..count {
                let replica = &self.replicas[(start + offset) % count];
                if lock(&replica.state).fit {
                    return ReadPool {
                        pool: replica.pool.clone(),
                        replica: Some(replica.name.clone()),
                    };
                }
            }
            fell_back("no_fit_replica");
        }
        self.primary()
    }

    /// Each replica's name and state, as last seen.
    pub fn states(&self) -> Vec<(Arc<str>, ReplicaState)> {
        self.replicas
            .iter()
            .map(|r| (r.name.clone(), lock(&r.state).clone()))
            .collect()
    }

    /// Probes the primary and every replica until `shutdown`.
    pub async fn watch(self: Arc<Self>, shutdown: CancellationToken) {
        if self.replicas.is_empty() {
            // Nothing to watch, but a component that ends stops the process.
            shutdown.cancelled().await;
            return;
        }
        let mut tick = tokio::time::interval(WATCH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.cancelled() => return,
            }
            self.probe().await;
        }
    }

    /// One round: the primary's WAL position, then each replica's replay.
    pub async fn probe(&self) {
        if let Ok(Ok(Some(position))) =
            tokio::time::timeout(PROBE_TIMEOUT, wal_position(&self.primary, WalSide::Written)).await
        {
            let mut history = lock(&self.primary_wal);
            if history.len() == HISTORY {
                history.pop_front();
            }
            history.push_back((Instant::now(), position));
        }
        let probes = self.replicas.iter().map(|replica| async move {
            let probed =
                tokio::time::timeout(PROBE_TIMEOUT, wal_position(&replica.pool, WalSide::Replayed))
                    .await;
            let state = match probed {
                Err(_) => unfit(format!("no answer within {PROBE_TIMEOUT:?}")),
                Ok(Err(error)) => unfit(format!("unreachable: {error}")),
                Ok(Ok(None)) => unfit(
                    "promoted: it no longer replays the primary, so it is not read from"
                        .to_owned(),
                ),
                Ok(Ok(Some(replayed))) => self.judge(replayed),
            };
            metrics::gauge!("vcintel_read_replica_fit", "replica" => replica.name.to_string())
                .set(if state.fit { 1.0 } else { 0.0 });
            if let Some(staleness) = state.staleness {
                metrics::gauge!(
                    "vcintel_read_replica_staleness_seconds",
                    "replica" => replica.name.to_string()
                )
                .set(staleness.as_secs_f64());
            }
            let mut current = lock(&replica.state);
            if current.fit != state.fit {
                tracing::warn!(replica = %replica.name, fit = state.fit, detail = %state.detail, "read replica changed fitness");
            }
            *current = state;
        });
        futures::future::join_all(probes).await;
    }

    /// A replica that replayed up to `replayed` is as fresh as the newest
    /// moment the primary had written no further.
    fn judge(&self, replayed: i64) -> ReplicaState {
        let history = lock(&self.primary_wal);
        if history
            .back()
            .is_some_and(|(_, newest)| *newest <= replayed)
        {
            return ReplicaState {
                fit: true,
                staleness: Some(Duration::ZERO),
                detail: "caught up".to_owned(),
            };
        }
        let fresh_as_of = history
            .iter()
            .rev()
            .find(|(_, written)| *written <= replayed)
            .map(|(at, _)| *at);
        match fresh_as_of {
            Some(at) => {
                let staleness = at.elapsed();
                let fit = staleness <= self.max_staleness;
                ReplicaState {
                    fit,
                    staleness: Some(staleness),
                    detail: format!(
                        "{:.1} s behind the primary{}",
                        staleness.as_secs_f64(),
                        if fit { "" } else { ", over the limit" }
                    ),
                }
            }
            None if history.is_empty() => unfit("the primary's position is not known".to_owned()),
            None => unfit("behind everything the watch remembers of the primary".to_owned()),
        }
    }
}

fn unfit(detail: String) -> ReplicaState {
    ReplicaState {
        fit: false,
        staleness: None,
        detail,
    }
}

enum WalSide {
    Written,
    Replayed,
}

/// The WAL position written (on the primary) or replayed (on a replica,
/// `None` if it is not in recovery), in bytes.
async fn wal_position(pool: &PgPool, side: WalSide) -> Result<Option<i64>, sqlx::Error> {
    let sql = match side {
        WalSide::Written => "select (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint",
        WalSide::Replayed => {
            "select case when pg_is_in_recovery()
                    then (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::bigint end"
        }
    };
    sqlx::query_scalar(sql).fetch_one(pool).await
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Counts a read the replicas could not take, by why
/// (`vcintel_read_fallbacks_total`): the one place it is counted.
pub fn fell_back(reason: &'static str) {
    metrics::counter!("vcintel_read_fallbacks_total", "reason" => reason).increment(1);
}
