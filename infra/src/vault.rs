//! The vault: the one place personal values are sealed on their way into
//! the store and opened on their way out (docs/privacy.md).
//!
//! Which fields are personal, and whose, is declared once, in
//! [`vcintel_domain::personal::PERSONAL_FIELDS`]. Appending seals each of
//! them under its subject's data key, so events, the stream, dead letters
//! and backups only ever hold `{"sealed", "subject", "kid"}`. Every reader
//! that decodes events (aggregates, projections, the audit feed, rebuilds,
//! the mailer, exports) opens them here first: a value reads as itself
//! while its subject's key exists, and as `"[erased]"` once it is gone.
//!
//! Keys are cached per process. An erased subject stays erased (its key
//! never comes back), so that answer is kept for good; a key is kept for
//! [`KEY_CACHE_TTL`], so another process goes on opening an erased
//! subject's values for at most that long after the erasure commits (the
//! process that erases forgets the key at once).

use crate::privacy::{self, DataKey, KeyError, KeyRing, Sealed};
use serde_json::Value;
use sqlx::PgPool;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use vcintel_domain::personal::{PersonalField, SubjectKind, ERASED, PERSONAL_FIELDS};

/// How long a process trusts a data key it read without reading it again.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(10);

/// Beyond this many subjects the cache starts afresh (a bound on memory,
/// not an eviction policy: the keys are one query away).
const KEY_CACHE_CAPACITY: usize = 20_000;

/// The subject of the key that digests e-mail addresses for lookups; it is
/// never erased.
const LOOKUP_SUBJECT: &str = "system:lookup";

#[derive(Clone)]
enum Cached {
    Key(Arc<DataKey>, Instant),
    Erased,
}

/// Seals and opens personal values; cheap to clone.
#[derive(Clone)]
pub struct Vault {
    inner: Arc<Inner>,
}

struct Inner {
    pool: PgPool,
    ring: KeyRing,
    sealing: bool,
    keys: Mutex<HashMap<String, Cached>>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("sealing", &self.inner.sealing)
            .finish_non_exhaustive()
    }
}

impl Vault {
    pub fn new(pool: PgPool, ring: KeyRing) -> Self {
        Self::with_sealing(pool, ring, true)
    }

    /// `sealing: false` writes personal values in the clear: only for the
    /// benchmark that measures what sealing costs (an erasure cannot reach
    /// values written so). Reading opens sealed values either way.
    pub fn with_sealing(pool: PgPool, ring: KeyRing, sealing: bool) -> Self {
        Self {
            inner: Arc::new(Inner {
                pool,
                ring,
                sealing,
                keys: Mutex::new(HashMap::new()),
            }),
        }
    }

    pub fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    pub fn ring(&self) -> &KeyRing {
        &self.inner.ring
    }

    /// Seals the personal fields of a stored payload (`{"<event type>":
    /// data}`) that are still in the clear.
    pub async fn seal(&self, event_type: &str, payload: &mut Value) -> Result<(), KeyError> {
        if !self.inner.sealing {
            return Ok(());
        }
        let Some(data) = payload.get_mut(event_type) else {
            return Ok(());
        };
        for field in PERSONAL_FIELDS
            .iter()
            .filter(|f| f.event_type == event_type)
        {
            let Some(subject) = subject_of(field, data) else {
                continue;
            };
            let Some(value) = data.get(field.field) else {
                continue;
            };
            if is_sealed(value) || value.as_str() == Some(ERASED) {
                continue;
            }
            let lookup = match field.subject {
                SubjectKind::Invitee => Some(self.lookup_digest(value).await?),
                SubjectKind::User => None,
            };
            let key = match self.sealing_key(&subject, lookup.as_deref()).await {
                Ok(key) => key,
                // Nothing personal of an erased subject is written again.
                Err(KeyError::Erased(_)) => {
                    data[field.field] = Value::String(ERASED.to_owned());
                    continue;
                }
                Err(other) => return Err(other),
            };
            let plain = serde_json::to_vec(value).expect("a JSON value serializes");
            let sealed = key.seal(&subject, &plain);
            data[field.field] = serde_json::to_value(sealed).expect("a sealed value serializes");
        }
        Ok(())
    }

    /// The digest that finds the invitee subjects of an e-mail address.
    pub async fn lookup_digest(&self, email: &Value) -> Result<Vec<u8>, KeyError> {
        let key = self.sealing_key(LOOKUP_SUBJECT, None).await?;
        let text = email.as_str().unwrap_or_default().trim().to_lowercase();
        Ok(key.digest(text.as_bytes()))
    }

    /// Opens every sealed personal value among `payloads` (each the data
    /// object of an event of the given type), loading the keys they need
    /// in one query.
    pub async fn open<'a>(
        &self,
        payloads: impl IntoIterator<Item = (&'a str, &'a mut Value)>,
    ) -> Result<(), KeyError> {
        // Each data object with the sealed values it holds, parsed once.
        let mut sites = Vec::new();
        let mut wanted = HashSet::new();
        for (event_type, data) in payloads {
            let sealed: Vec<(&'static PersonalField, Sealed)> = PERSONAL_FIELDS
                .iter()
                .filter(|f| f.event_type == event_type)
                .filter_map(|field| Some((field, sealed_at(data, field)?)))
                .collect();
            if !sealed.is_empty() {
                wanted.extend(sealed.iter().map(|(_, s)| s.subject.clone()));
                sites.push((sealed, data));
            }
        }
        if sites.is_empty() {
            return Ok(());
        }
        let keys = self.reading_keys(wanted).await?;
        for (sealed_fields, data) in sites {
            for (field, sealed) in sealed_fields {
                let opened = match keys.get(&sealed.subject) {
                    Some(key) => {
                        let plain = key
                            .open(&sealed)
                            .map_err(|_| KeyError::Unopenable(sealed.subject.clone()))?;
                        serde_json::from_slice(&plain)
                            .map_err(|_| KeyError::Unopenable(sealed.subject.clone()))?
                    }
                    None => Value::String(ERASED.to_owned()),
                };
                data[field.field] = opened;
            }
        }
        Ok(())
    }

    /// Forgets what this process cached of `subjects` (they were just
    /// erased here).
    pub fn forget(&self, subjects: &[String]) {
        let mut keys = self.inner.keys.lock().expect("key cache lock");
        for subject in subjects {
            keys.insert(subject.clone(), Cached::Erased);
        }
    }

    async fn sealing_key(
        &self,
        subject: &str,
        lookup: Option<&[u8]>,
    ) -> Result<Arc<DataKey>, KeyError> {
        match self.cached(subject) {
            Some(Cached::Key(key, _)) => return Ok(key),
            Some(Cached::Erased) => return Err(KeyError::Erased(subject.to_owned())),
            None => {}
        }
        let key = Arc::new(
            privacy::sealing_key(&self.inner.pool, &self.inner.ring, subject, lookup).await?,
        );
        self.remember(subject, Cached::Key(key.clone(), Instant::now()));
        Ok(key)
    }

    /// The keys of `subjects` that still exist (absent: erased).
    async fn reading_keys(
        &self,
        subjects: HashSet<String>,
    ) -> Result<HashMap<String, Arc<DataKey>>, KeyError> {
        let mut found = HashMap::new();
        let mut missing = Vec::new();
        for subject in subjects {
            match self.cached(&subject) {
                Some(Cached::Key(key, _)) => {
                    found.insert(subject, key);
                }
                Some(Cached::Erased) => {}
                None => missing.push(subject),
            }
        }
        if missing.is_empty() {
            return Ok(found);
        }
        let rows = sqlx::query!(
            "select subject, key_id, wrapped, master_version from privacy_keys
             where subject = any($1)",
            &missing
        )
        .fetch_all(&self.inner.pool)
        .await?;
        let now = Instant::now();
        for row in rows {
            let key = Arc::new(self.inner.ring.unwrap_key(
                &row.subject,
                row.key_id,
                &row.wrapped,
                row.master_version,
            )?);
            self.remember(&row.subject, Cached::Key(key.clone(), now));
            found.insert(row.subject, key);
        }
        for subject in missing {
            if !found.contains_key(&subject) {
                self.remember(&subject, Cached::Erased);
            }
        }
        Ok(found)
    }

    fn cached(&self, subject: &str) -> Option<Cached> {
        let keys = self.inner.keys.lock().expect("key cache lock");
        match keys.get(subject)? {
            Cached::Key(_, at) if at.elapsed() > KEY_CACHE_TTL => None,
            cached => Some(cached.clone()),
        }
    }

    fn remember(&self, subject: &str, entry: Cached) {
        let mut keys = self.inner.keys.lock().expect("key cache lock");
        if keys.len() >= KEY_CACHE_CAPACITY {
            keys.clear();
        }
        keys.insert(subject.to_owned(), entry);
    }
}

/// Whether events of this type carry personal values.
pub fn has_personal_fields(event_type: &str) -> bool {
    PERSONAL_FIELDS.iter().any(|f| f.event_type == event_type)
}

/// The subject a personal field's value belongs to, named by the id in
/// the same payload.
fn subject_of(field: &PersonalField, data: &Value) -> Option<String> {
    let id = data.get(field.subject_field)?.as_str()?;
    Some(field.subject_named(id))
}

fn is_sealed(value: &Value) -> bool {
    value.get("sealed").is_some_and(Value::is_string)
}

fn sealed_at(data: &Value, field: &PersonalField) -> Option<Sealed> {
    let value = data.get(field.field)?;
    if !is_sealed(value) {
        return None;
    }
    serde_json::from_value(value.clone()).ok()
}

impl Vault {
    /// Opens the personal values of events read from the store.
    pub async fn open_stored(
        &self,
        events: &mut [crate::stored_event::StoredEvent],
    ) -> Result<(), KeyError> {
        self.open(events.iter_mut().filter_map(|event| {
            let data = event.payload.get_mut(&event.event_type)?;
            Some((event.event_type.as_str(), data))
        }))
        .await
    }

    /// Opens the personal values of events as cqrs-es serialized them.
    pub async fn open_serialized(
        &self,
        events: &mut [cqrs_es::persist::SerializedEvent],
    ) -> Result<(), KeyError> {
        self.open(events.iter_mut().filter_map(|event| {
            let data = event.payload.get_mut(&event.event_type)?;
            Some((event.event_type.as_str(), data))
        }))
        .await
    }

    /// Opens the personal values of events received from the stream.
    pub async fn open_messages(
        &self,
        messages: &mut [crate::wire::EventMessage],
    ) -> Result<(), KeyError> {
        self.open(
            messages
                .iter_mut()
                .map(|message| (message.eventtype.as_str(), &mut message.data)),
        )
        .await
    }
}

impl Vault {
    /// Seals, in place, the personal values of events stored in the clear
    /// by earlier releases, `batch` events per transaction, oldest first:
    /// each keeps its id, position and sequence and becomes v2. Resumable
    /// (what is done stays done) and idle once nothing is left. Returns how
    /// many events it sealed; `progress` gets the count so far.
    pub async fn seal_old_events(
        &self,
        batch: i64,
        progress: &dyn Fn(u64),
    ) -> Result<u64, KeyError> {
        let mut sealed = 0u64;
        loop {
            let mut tx = self.inner.pool.begin().await?;
            // The predicate of `events_unsealed_idx`, word for word, so
            // every plan (a cached generic one too) reads that index only.
            let rows = sqlx::query!(
                r#"select position, event_type, payload as "payload: sqlx::types::Json<Value>"
                 from events
                 where event_version = '1'
                   and event_type in ('user.registered', 'user.verification_requested',
                                      'user.email_verified', 'workspace.member_added',
                                      'workspace.member_invited', 'workspace.invitation_cancelled',
                                      'workspace.invitation_declined', 'note.added', 'note.edited')
                 order by position limit $1
                 for update"#,
                batch
            )
            .fetch_all(&mut *tx)
            .await?;
            if rows.is_empty() {
                return Ok(sealed);
            }
            for row in rows {
                let mut payload = row.payload.0;
                self.seal(&row.event_type, &mut payload).await?;
                sqlx::query!(
                    "update events set payload = $2, event_version = $3 where position = $1",
                    row.position,
                    sqlx::types::Json(&payload) as _,
                    crate::upcast::current_version(&row.event_type)
                        .unwrap_or(2)
                        .to_string()
                )
                .execute(&mut *tx)
                .await?;
                sealed += 1;
            }
            tx.commit().await?;
            progress(sealed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// The event types a text's `event_type in (...)` clause names.
    fn listed_in(text: &str) -> BTreeSet<String> {
        let start = text.find("event_type in (").expect("an in-list") + "event_type in (".len();
        let end = start + text[start..].find(')').expect("its end");
        text[start..end]
            .split(',')
            .map(|t| t.trim().trim_matches('\'').to_owned())
            .collect()
    }

    /// A partial index needs its predicate's constants, so the index and
    /// the query that reads along it name the personal event types
    /// literally: both must name exactly those of `PERSONAL_FIELDS`.
    #[test]
    fn the_unsealed_events_index_and_its_query_name_every_personal_event_type() {
        let personal: BTreeSet<String> = PERSONAL_FIELDS
            .iter()
            .map(|f| f.event_type.to_owned())
            .collect();
        let migration = include_str!("../../migrations/20261207000009_unsealed_events.up.sql");
        assert_eq!(listed_in(migration), personal, "events_unsealed_idx");
        let source = include_str!("vault.rs");
        let query = &source[source
            .find("r#\"select position, event_type")
            .expect("the query")..];
        assert_eq!(listed_in(query), personal, "seal_old_events");
        assert!(has_personal_fields("note.added") && !has_personal_fields("company.added"));
    }
}
