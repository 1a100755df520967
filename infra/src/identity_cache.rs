//! What a process remembers between requests about who is calling: live
//! login sessions, API-key secret hashes and folded workspaces, and how it
//! learns to forget them.
//!
//! Without it, every request paid two or three Postgres round trips before
//! its handler ran (session liveness, the workspace's new events, the key's
//! hash). Now a process trusts what it remembered only while it is
//! listening to `vcintel_identity_changed`, which Postgres triggers send in
//! the changing transaction itself (a session revoked, a workspace event
//! appended: whoever writes them, so no writer can forget to), for at most
//! [`ENTRY_TTL`] as a safety net against a connection that died silently:
//! - a notification drops (or marks stale) what it names on every instance
//!   as soon as Postgres delivers it, and the instance then acknowledges it
//!   in `identity_change_acks`;
//! - the instance that made the change forgets it before answering, and
//!   answers only once every live listener that was listening at the commit
//!   has acknowledged it (bounded by [`ACK_WAIT`]): a barrier, so the very
//!   next request to any instance sees the change;
//! - while the listener is down, nothing is trusted and every request reads
//!   the database, as before; when it reconnects, everything remembered is
//!   dropped, since notifications sent meanwhile are lost;
//! - a lookup that raced a notification does not store what it read (a
//!   generation counter moves on every notification), so a stale read can
//!   never outlive the notification that invalidated it.

use crate::CancellationToken;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgListener;
use sqlx::PgPool;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use uuid::Uuid;
use vcintel_domain::{UserId, WorkspaceId};

/// A workspace folded up to `version`.
#[derive(Debug, Clone)]
pub struct CurrentWorkspace {
    pub version: i64,
    pub workspace: vcintel_domain::workspace::Workspace,
}

/// The channel the identity triggers notify (see migration `flat_cost`).
pub const IDENTITY_CHANNEL: &str = "vcintel_identity_changed";

/// Longest anything is trusted without being read again, even when no
/// notification said it changed.
pub const ENTRY_TTL: Duration = Duration::from_secs(5);

/// Longest a change waits for every listener's acknowledgement (a listener
/// that is alive but stuck, e.g. a paused process, is then left to its TTL).
pub const ACK_WAIT: Duration = Duration::from_secs(1);

/// Most entries of each kind; beyond it the kind is emptied and refilled.
const CAPACITY: usize = 10_000;

/// What an instance remembers of one live session.
#[derive(Debug, Clone, Copy)]
struct Session {
    user: UserId,
    expires_at: DateTime<Utc>,
    filled_at: Instant,
}

/// A remembered value, and whether a notification has since said it changed.
#[derive(Debug, Clone)]
pub struct Remembered<T> {
    pub value: T,
    filled_at: Instant,
    fresh: bool,
}

impl<T> Remembered<T> {
    fn trusted(&self) -> bool {
        self.fresh && self.filled_at.elapsed() < ENTRY_TTL
    }
}

/// One process's identity cache, shared by its handlers (cheap to clone).
#[derive(Debug, Clone, Default)]
pub struct IdentityCache {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// True while the listener is connected and listening.
    listening: AtomicBool,
    /// Moves on every notification and every (re)connection.
    generation: AtomicU64,
    sessions: Mutex<HashMap<Uuid, Session>>,
    api_keys: Mutex<HashMap<Uuid, (WorkspaceId, Vec<u8>)>>,
    workspaces: Mutex<HashMap<WorkspaceId, Remembered<Arc<CurrentWorkspace>>>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves a valid map; keep using it.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl IdentityCache {
    /// A cache that trusts nothing until [`IdentityCache::listen`] runs
    /// (what the CLI and workers get: they read the database every time).
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether remembered values may be used now.
    pub fn is_listening(&self) -> bool {
        self.inner.listening.load(Ordering::Acquire)
    }

    /// Read before a lookup; pass to the `remember_*` call after it.
    pub fn generation(&self) -> u64 {
        self.inner.generation.load(Ordering::Acquire)
    }

    fn unchanged_since(&self, generation: u64) -> bool {
        self.is_listening() && self.generation() == generation
    }

    /// Listens for identity changes until `shutdown`, reconnecting with
    /// backoff; the cache is trusted only while this runs connected.
    pub async fn listen(self, pool: PgPool, shutdown: CancellationToken) {
        let mut backoff = Duration::from_millis(100);
        while !shutdown.is_cancelled() {
            match self.listen_once(&pool, &shutdown).await {
                Ok(()) => return,
                Err(error) => {
                    self.lost();
                    tracing::warn!(%error, "identity change listener lost; reading identity from the database until it is back");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.cancelled() => return,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    async fn listen_once(
        &self,
        pool: &PgPool,
        shutdown: &CancellationToken,
    ) -> Result<(), sqlx::Error> {
        let mut listener = PgListener::connect_with(pool).await?;
        // Reconnecting behind our back would change the session a writer
        // checks this listener by: a lost connection ends this listen.
        listener.eager_reconnect(false);
        listener.listen(IDENTITY_CHANNEL).await?;
        let me = Uuid::new_v4();
        sqlx::query!(
            "insert into identity_listeners (id, backend_pid, backend_start)
             select $1, pid, backend_start from pg_stat_activity where pid = pg_backend_pid()",
            me
        )
        .execute(&mut listener)
        .await?;
        // Whatever changed before we listened was never heard: start afresh.
        self.forget_everything();
        self.inner.listening.store(true, Ordering::Release);
        loop {
            let received = tokio::select! {
                received = listener.try_recv() => received?,
                _ = shutdown.cancelled() => {
                    self.lost();
                    return Ok(());
                }
            };
            let Some(notification) = received else {
                return Err(sqlx::Error::Protocol(
                    "the identity listener's connection was lost".to_owned(),
                ));
            };
            self.changed(notification.payload());
            // Applied; now the writer may answer.
            sqlx::query!(
                "insert into identity_change_acks (change, listener) values ($1, $2)
                 on conflict do nothing",
                notification.payload(),
                me
            )
            .execute(&mut listener)
            .await?;
        }
    }

    fn lost(&self) {
        self.inner.listening.store(false, Ordering::Release);
        self.forget_everything();
    }

    fn forget_everything(&self) {
        self.inner.generation.fetch_add(1, Ordering::AcqRel);
        lock(&self.inner.sessions).clear();
        for entry in lock(&self.inner.workspaces).values_mut() {
            entry.fresh = false;
        }
    }

    /// Applies one notification: `session:<id>`, `workspace:<id>:<version>`
    /// or `erased:<user id>`.
    fn changed(&self, payload: &str) {
        self.inner.generation.fetch_add(1, Ordering::AcqRel);
        let mut parts = payload.split(':');
        match (parts.next(), parts.next().map(Uuid::try_parse)) {
            (Some("session"), Some(Ok(id))) => {
                lock(&self.inner.sessions).remove(&id);
            }
            (Some("workspace"), Some(Ok(id))) => self.workspace_changed_here(WorkspaceId(id)),
            // A person was erased: cached workspaces hold their address
            // (members), so every one is folded again from the events.
            (Some("erased"), Some(Ok(_))) => lock(&self.inner.workspaces).clear(),
            _ => tracing::warn!(payload, "unknown identity change"),
        }
    }

    /// Waits (at most [`ACK_WAIT`]) until every listener that is alive and
    /// was listening when the changes committed (the caller calls this after
    /// its commit) has applied each of them.
    pub async fn wait_for_acks(&self, pool: &PgPool, changes: &[String]) {
        if changes.is_empty() {
            return;
        }
        let deadline = Instant::now() + ACK_WAIT;
        let mut cut: Option<DateTime<Utc>> = None;
        let mut pause = Duration::from_micros(500);
        loop {
            let polled = sqlx::query!(
                r#"select count(*) as "behind!", clock_timestamp() as "now!" from identity_listeners l
                 where l.registered_at < coalesce($2, clock_timestamp())
                   and exists (select 1 from pg_stat_activity a
                               where a.pid = l.backend_pid and a.backend_start = l.backend_start)
                   and (select count(*) from identity_change_acks k
                        where k.listener = l.id and k.change = any($1)) < cardinality($1)"#,
                changes,
                cut
            )
            .fetch_one(pool)
            .await;
            match polled {
                Ok(polled) if polled.behind == 0 => return,
                Ok(polled) => {
                    cut.get_or_insert(polled.now);
                }
                Err(error) => {
                    tracing::warn!(%error, "could not check that every instance applied an identity change");
                    return;
                }
            }
            if Instant::now() >= deadline {
                tracing::warn!(
                    changes = changes.len(),
                    "an identity change was not acknowledged by every instance in time; the others rely on the TTL"
                );
                return;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }

    /// Drops acknowledgements old enough that no writer waits for them, and
    /// listeners whose session has ended.
    pub async fn sweep(pool: &PgPool) -> Result<(), sqlx::Error> {
        sqlx::query!(
            "delete from identity_change_acks where acked_at < now() - interval '10 minutes'"
        )
        .execute(pool)
        .await?;
        sqlx::query!(
            "delete from identity_listeners l
             where not exists (select 1 from pg_stat_activity a
                               where a.pid = l.backend_pid and a.backend_start = l.backend_start)"
        )
        .execute(pool)
        .await?;
        Ok(())
    }

    // ------------------------------------------------------------ sessions

    /// The user of a remembered live session that has not expired.
    pub fn session(&self, id: Uuid) -> Option<UserId> {
        if !self.is_listening() {
            return None;
        }
        let sessions = lock(&self.inner.sessions);
        let session = sessions.get(&id)?;
        (session.filled_at.elapsed() < ENTRY_TTL && session.expires_at > Utc::now())
            .then_some(session.user)
    }

    /// Remembers a session read as live, unless something changed since
    /// `generation` was read.
    pub fn remember_session(
        &self,
        id: Uuid,
        user: UserId,
        expires_at: DateTime<Utc>,
        generation: u64,
    ) {
        let mut sessions = lock(&self.inner.sessions);
        if !self.unchanged_since(generation) {
            return;
        }
        if sessions.len() >= CAPACITY {
            sessions.clear();
        }
        sessions.insert(
            id,
            Session {
                user,
                expires_at,
                filled_at: Instant::now(),
            },
        );
    }

    /// This process ended these sessions: forgets them here at once, and
    /// waits until every instance has applied it.
    pub async fn sessions_ended(&self, pool: &PgPool, ids: &[Uuid]) {
        self.inner.generation.fetch_add(1, Ordering::AcqRel);
        {
            let mut sessions = lock(&self.inner.sessions);
            for id in ids {
                sessions.remove(id);
            }
        }
        let changes: Vec<String> = ids.iter().map(|id| format!("session:{id}")).collect();
        self.wait_for_acks(pool, &changes).await;
    }

    // ------------------------------------------------------------ API keys

    /// A key's workspace and secret hash. Neither ever changes once stored
    /// (revocation lives in the workspace's events), so they are kept
    /// without expiry; only keys whose secret was presented correctly are.
    pub fn api_key(&self, key_id: Uuid) -> Option<(WorkspaceId, Vec<u8>)> {
        lock(&self.inner.api_keys).get(&key_id).cloned()
    }

    pub fn remember_api_key(&self, key_id: Uuid, workspace: WorkspaceId, secret_hash: Vec<u8>) {
        let mut keys = lock(&self.inner.api_keys);
        if keys.len() >= CAPACITY {
            keys.clear();
        }
        keys.insert(key_id, (workspace, secret_hash));
    }

    // ------------------------------------------------------------ workspaces

    /// A remembered workspace: trusted, or stale (the caller reads the
    /// events after its version).
    pub fn workspace(&self, id: WorkspaceId) -> Option<(bool, Arc<CurrentWorkspace>)> {
        let listening = self.is_listening();
        lock(&self.inner.workspaces)
            .get(&id)
            .map(|entry| (listening && entry.trusted(), entry.value.clone()))
    }

    /// Remembers a workspace folded from its events; trusted only if
    /// nothing changed since `generation`, and never replacing a newer one.
    pub fn remember_workspace(
        &self,
        id: WorkspaceId,
        folded: Arc<CurrentWorkspace>,
        generation: u64,
    ) {
        let mut workspaces = lock(&self.inner.workspaces);
        let fresh = self.unchanged_since(generation);
        if workspaces.len() >= CAPACITY {
            workspaces.clear();
        }
        if workspaces
            .get(&id)
            .is_some_and(|c| c.value.version > folded.version)
        {
            return;
        }
        workspaces.insert(
            id,
            Remembered {
                value: folded,
                filled_at: Instant::now(),
                fresh,
            },
        );
    }

    /// Marks a workspace stale here at once (the notification does it
    /// everywhere): the next lookup reads its new events.
    pub fn workspace_changed_here(&self, id: WorkspaceId) {
        self.inner.generation.fetch_add(1, Ordering::AcqRel);
        if let Some(entry) = lock(&self.inner.workspaces).get_mut(&id) {
            entry.fresh = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listening() -> IdentityCache {
        let cache = IdentityCache::new();
        cache.inner.listening.store(true, Ordering::Release);
        cache
    }

    fn later() -> DateTime<Utc> {
        Utc::now() + chrono::Duration::hours(1)
    }

    #[test]
    fn nothing_is_trusted_while_not_listening() {
        let cache = IdentityCache::new();
        let id = Uuid::now_v7();
        cache.remember_session(id, UserId(Uuid::now_v7()), later(), cache.generation());
        assert_eq!(cache.session(id), None);
    }

    #[test]
    fn a_remembered_session_is_trusted_until_its_notification() {
        let cache = listening();
        let (id, user) = (Uuid::now_v7(), UserId(Uuid::now_v7()));
        cache.remember_session(id, user, later(), cache.generation());
        assert_eq!(cache.session(id), Some(user));
        cache.changed(&format!("session:{id}"));
        assert_eq!(cache.session(id), None);
    }

    #[test]
    fn a_read_that_raced_a_notification_is_not_remembered() {
        let cache = listening();
        let (id, user) = (Uuid::now_v7(), UserId(Uuid::now_v7()));
        let before_the_read = cache.generation();
        cache.changed(&format!("session:{id}"));
        cache.remember_session(id, user, later(), before_the_read);
        assert_eq!(cache.session(id), None);
    }

    #[test]
    fn an_expired_session_is_not_trusted() {
        let cache = listening();
        let id = Uuid::now_v7();
        let past = Utc::now() - chrono::Duration::seconds(1);
        cache.remember_session(id, UserId(Uuid::now_v7()), past, cache.generation());
        assert_eq!(cache.session(id), None);
    }

    #[test]
    fn losing_the_listener_forgets_every_session_and_stales_every_workspace() {
        let cache = listening();
        let (id, ws) = (Uuid::now_v7(), WorkspaceId(Uuid::now_v7()));
        cache.remember_session(id, UserId(Uuid::now_v7()), later(), cache.generation());
        let folded = Arc::new(CurrentWorkspace {
            version: 3,
            workspace: Default::default(),
        });
        cache.remember_workspace(ws, folded, cache.generation());
        assert!(cache.workspace(ws).is_some_and(|(trusted, _)| trusted));
        cache.lost();
        assert_eq!(cache.session(id), None);
        let (trusted, kept) = cache.workspace(ws).unwrap();
        assert!(!trusted, "stale, to be read from its version on");
        assert_eq!(kept.version, 3);
    }

    #[test]
    fn a_workspace_notification_stales_it_and_an_older_fold_never_replaces_a_newer() {
        let cache = listening();
        let ws = WorkspaceId(Uuid::now_v7());
        let at = |version| {
            Arc::new(CurrentWorkspace {
                version,
                workspace: Default::default(),
            })
        };
        cache.remember_workspace(ws, at(5), cache.generation());
        cache.changed(&format!("workspace:{}:6", ws.0));
        assert!(cache.workspace(ws).is_some_and(|(trusted, _)| !trusted));
        cache.remember_workspace(ws, at(4), cache.generation());
        assert_eq!(cache.workspace(ws).unwrap().1.version, 5);
    }
}
