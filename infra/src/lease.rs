//! Leadership by lease, for workers that must run once per deployment (the
//! relay).
//!
//! A session advisory lock proves leadership only while its connection
//! lives: a leader that stalls without dying (SIGSTOP, a hung host, a
//! stuck await) keeps it, and the standby waits forever. A lease instead
//! expires unless its holder renews it, and the holder renews it from the
//! same loop that does the work, so a leader that stops making progress
//! stops renewing. Each acquisition raises the lease's fencing token; every
//! write a leader makes names its token and is refused once another holder
//! has taken the lease (`where lease_held(name, holder, token)`, one SQL
//! function for every fenced statement), so a stale leader that wakes up
//! cannot move anything. Expiry is judged by Postgres' clock alone.

use sqlx::PgPool;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error(
        "lease `{name}` was lost: another holder took it (this holder stalled past its expiry)"
    )]
    Lost { name: String },
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// One holder's claim on a named lease.
#[derive(Debug)]
pub struct Lease {
    pool: PgPool,
    name: String,
    holder: String,
    ttl: Duration,
    token: Option<i64>,
    renewed: Instant,
}

impl Lease {
    /// `holder` names this process in `leases` (host, pid and a random
    /// suffix, so two processes never share it).
    pub fn new(pool: PgPool, name: impl Into<String>, ttl: Duration) -> Self {
        let host = std::env::var("HOSTNAME")
            .ok()
            .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
            .map(|h| h.trim().replace(':', "-"))
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "host".to_owned());
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        Self {
            pool,
            name: name.into(),
            holder: format!("{host}:{}:{}", std::process::id(), &suffix[..8]),
            ttl,
            token: None,
            renewed: Instant::now(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// The fencing token while this holder leads.
    pub fn token(&self) -> Option<i64> {
        self.token
    }

    /// Takes the lease if it is free or expired; whether this holder leads.
    pub async fn try_acquire(&mut self) -> Result<bool, LeaseError> {
        let token = sqlx::query_scalar!(
            "insert into leases (name, holder, token, expires_at)
             values ($1, $2, 1, now() + make_interval(secs => $3))
             on conflict (name) do update
               set holder = excluded.holder, token = leases.token + 1,
                   expires_at = excluded.expires_at, renewed_at = now()
               where leases.expires_at < now()
             returning token",
            self.name,
            self.holder,
            self.ttl.as_secs_f64(),
        )
        .fetch_optional(&self.pool)
        .await?;
        self.token = token;
        self.renewed = Instant::now();
        Ok(token.is_some())
    }

    /// Whether a third of the lease's life has passed since it was renewed.
    pub fn renewal_due(&self) -> bool {
        self.renewed.elapsed() >= self.ttl / 3
    }

    /// Extends the lease; `Lost` if another holder has taken it meanwhile.
    pub async fn renew(&mut self) -> Result<(), LeaseError> {
        let Some(token) = self.token else {
            return Err(self.lost());
        };
        let renewed = sqlx::query!(
            "update leases set expires_at = now() + make_interval(secs => $4), renewed_at = now()
             where name = $1 and holder = $2 and token = $3",
            self.name,
            self.holder,
            token,
            self.ttl.as_secs_f64(),
        )
        .execute(&self.pool)
        .await?;
        if renewed.rows_affected() == 0 {
            self.token = None;
            return Err(self.lost());
        }
        self.renewed = Instant::now();
        Ok(())
    }

    /// Hands the lease back at once (on shutdown), so a standby need not
    /// wait for it to expire.
    pub async fn release(&mut self) {
        if let Some(token) = self.token.take() {
            let released = sqlx::query!(
                "update leases set expires_at = now() where name = $1 and holder = $2 and token = $3",
                self.name,
                self.holder,
                token,
            )
            .execute(&self.pool)
            .await;
            if let Err(error) = released {
                tracing::warn!(lease = %self.name, %error, "could not release the lease; it expires by itself");
            }
        }
    }

    pub fn lost(&self) -> LeaseError {
        LeaseError::Lost {
            name: self.name.clone(),
        }
    }
}

/// Who holds `name` now, with its token, if anyone's lease is unexpired.
pub async fn current_holder(
    pool: &PgPool,
    name: &str,
) -> Result<Option<(String, i64)>, sqlx::Error> {
    let row = sqlx::query!(
        "select holder, token from leases where name = $1 and expires_at > now()",
        name
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|row| (row.holder, row.token)))
}
