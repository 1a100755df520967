//! Crypto-shredding's primitives: a master key from the environment wraps
//! one data key per subject (a person); personal values are sealed under
//! their subject's data key with XChaCha20-Poly1305 (random 192-bit
//! nonces, the subject as associated data, so a sealed value cannot be
//! passed off as another subject's). Deleting a subject's wrapped key makes
//! every value sealed under it unreadable everywhere it was copied: the
//! events, snapshots, the stream, backups. See docs/privacy.md.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use secrecy::{ExposeSecret, SecretBox};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

/// `N` bytes from the operating system's generator: keys, nonces, tokens.
pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // The OS generator failing is not something to recover from.
    #[allow(clippy::expect_used)]
    getrandom::getrandom(&mut bytes).expect("the OS random generator failed");
    bytes
}

const NONCE_BYTES: usize = 24;
const KEY_BYTES: usize = 32;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PrivacyError {
    #[error("the master key must be 32 bytes, base64-encoded ({0})")]
    MasterKey(&'static str),
    #[error("a sealed value is malformed")]
    Malformed,
    #[error("a sealed value does not open under its subject's key (wrong key, or tampered)")]
    Unopenable,
}

/// A 256-bit key that never prints.
pub struct SecretKey(SecretBox<[u8; KEY_BYTES]>);

impl SecretKey {
    fn random() -> Self {
        Self(SecretBox::new(Box::new(random_bytes())))
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(self.0.expose_secret().into())
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

/// The key that wraps every data key, from `VCINTEL_PRIVACY_MASTER_KEY`
/// (32 random bytes, base64). Its version is stored beside each wrapped
/// key, so a rotation re-wraps key by key.
#[derive(Debug)]
pub struct MasterKey {
    pub version: i32,
    key: SecretKey,
}

impl MasterKey {
    pub fn from_base64(version: i32, text: &str) -> Result<Self, PrivacyError> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|_| PrivacyError::MasterKey("not base64"))?;
        let bytes: [u8; KEY_BYTES] = bytes
            .try_into()
            .map_err(|_| PrivacyError::MasterKey("wrong length"))?;
        Ok(Self {
            version,
            key: SecretKey(SecretBox::new(Box::new(bytes))),
        })
    }

    /// Wraps a new data key for `subject`: (its id, the wrapped bytes).
    pub fn new_data_key(&self, subject: &str) -> (DataKey, Vec<u8>) {
        let key = DataKey {
            id: Uuid::now_v7(),
            key: SecretKey::random(),
        };
        let wrapped = self.wrap(subject, &key);
        (key, wrapped)
    }

    /// `key` sealed under this master key, bound to `subject` and its id.
    pub fn wrap(&self, subject: &str, key: &DataKey) -> Vec<u8> {
        seal_bytes(
            &self.key,
            &wrapping_context(subject, key.id),
            key.key.0.expose_secret(),
        )
    }

    /// The data key `wrapped` holds, if this master key wrapped it for
    /// `subject` under `id`.
    pub fn unwrap(&self, subject: &str, id: Uuid, wrapped: &[u8]) -> Result<DataKey, PrivacyError> {
        let bytes = open_bytes(&self.key, &wrapping_context(subject, id), wrapped)?;
        let bytes: [u8; KEY_BYTES] = bytes.try_into().map_err(|_| PrivacyError::Malformed)?;
        Ok(DataKey {
            id,
            key: SecretKey(SecretBox::new(Box::new(bytes))),
        })
    }
}

fn wrapping_context(subject: &str, id: Uuid) -> Vec<u8> {
    format!("vcintel data key v1|{subject}|{id}").into_bytes()
}

/// One subject's data key, unwrapped.
#[derive(Debug)]
pub struct DataKey {
    pub id: Uuid,
    key: SecretKey,
}

/// A personal value as it is stored and sent: only its subject and key id
/// in the clear.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    /// base64(nonce ‖ ciphertext ‖ tag).
    pub sealed: String,
    pub subject: String,
    pub kid: Uuid,
}

impl DataKey {
    /// `value` sealed for `subject`.
    pub fn seal(&self, subject: &str, value: &[u8]) -> Sealed {
        Sealed {
            sealed: STANDARD.encode(seal_bytes(&self.key, subject.as_bytes(), value)),
            subject: subject.to_owned(),
            kid: self.id,
        }
    }

    /// A keyed digest of `value` (HMAC-SHA-256 under this key): finds the
    /// subjects an e-mail address was sealed for without storing it.
    pub fn digest(&self, value: &[u8]) -> Vec<u8> {
        use hmac::Mac as _;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(self.key.0.expose_secret())
            .expect("HMAC takes a key of any length");
        mac.update(value);
        mac.finalize().into_bytes().to_vec()
    }

    /// What `sealed` holds, if it was sealed under this key for its subject.
    pub fn open(&self, sealed: &Sealed) -> Result<Vec<u8>, PrivacyError> {
        if sealed.kid != self.id {
            return Err(PrivacyError::Unopenable);
        }
        let bytes = STANDARD
            .decode(&sealed.sealed)
            .map_err(|_| PrivacyError::Malformed)?;
        open_bytes(&self.key, sealed.subject.as_bytes(), &bytes)
    }
}

fn seal_bytes(key: &SecretKey, context: &[u8], value: &[u8]) -> Vec<u8> {
    let nonce: [u8; NONCE_BYTES] = random_bytes();
    let sealed = key
        .cipher()
        .encrypt(
            &XNonce::from(nonce),
            Payload {
                msg: value,
                aad: context,
            },
        )
        .expect("XChaCha20-Poly1305 seals any length this service writes");
    let mut out = Vec::with_capacity(NONCE_BYTES + sealed.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    out
}

fn open_bytes(key: &SecretKey, context: &[u8], bytes: &[u8]) -> Result<Vec<u8>, PrivacyError> {
    if bytes.len() < NONCE_BYTES + 16 {
        return Err(PrivacyError::Malformed);
    }
    let (nonce, sealed) = bytes.split_at(NONCE_BYTES);
    let nonce = XNonce::try_from(nonce).map_err(|_| PrivacyError::Malformed)?;
    key.cipher()
        .decrypt(
            &nonce,
            Payload {
                msg: sealed,
                aad: context,
            },
        )
        .map_err(|_| PrivacyError::Unopenable)
}

/// The master keys this process knows: the current one wraps new data
/// keys; earlier versions (kept during a rotation) only unwrap.
#[derive(Debug)]
pub struct KeyRing {
    current: MasterKey,
    previous: Vec<MasterKey>,
}

impl KeyRing {
    pub fn new(current: MasterKey, previous: Vec<MasterKey>) -> Self {
        Self { current, previous }
    }

    /// From the settings' text: the current key and its version, and the
    /// previous ones as `version:base64` separated by commas.
    pub fn from_settings(
        current: &str,
        version: i32,
        previous: &str,
    ) -> Result<Self, PrivacyError> {
        let previous = previous
            .split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                let (version, key) = entry
                    .split_once(':')
                    .ok_or(PrivacyError::MasterKey("previous keys are version:base64"))?;
                let version = version.parse().map_err(|_| {
                    PrivacyError::MasterKey("a previous key's version is not a number")
                })?;
                MasterKey::from_base64(version, key)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::new(
            MasterKey::from_base64(version, current)?,
            previous,
        ))
    }

    pub fn current_version(&self) -> i32 {
        self.current.version
    }

    /// A stored data key of `subject`, unwrapped under the master key of
    /// its `version`.
    pub fn unwrap_key(
        &self,
        subject: &str,
        id: Uuid,
        wrapped: &[u8],
        version: i32,
    ) -> Result<DataKey, KeyError> {
        unwrap_row(self, subject, id, wrapped, version)
    }

    fn of_version(&self, version: i32) -> Option<&MasterKey> {
        std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|key| key.version == version)
    }
}

/// Why a subject's key could not be had.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("the data key of {subject} is wrapped under master key version {version}, which this process does not have (set VCINTEL_PRIVACY_PREVIOUS_MASTER_KEYS)")]
    UnknownMasterVersion { subject: String, version: i32 },
    #[error("the data key of {0} does not unwrap: wrong master key?")]
    Unwrap(String),
    #[error("{0} was erased")]
    Erased(String),
    #[error("a value of {0} does not open under its key: altered in storage?")]
    Unopenable(String),
    #[error("{0} data key(s) are still wrapped under another master key version (re-wrapped meanwhile by another process, or written by one without the new key): run the rotation again once every process has the new key, and keep the old key until it reports none left")]
    RotationIncomplete(i64),
}

fn unwrap_row(
    ring: &KeyRing,
    subject: &str,
    id: Uuid,
    wrapped: &[u8],
    version: i32,
) -> Result<DataKey, KeyError> {
    let master = ring
        .of_version(version)
        .ok_or_else(|| KeyError::UnknownMasterVersion {
            subject: subject.to_owned(),
            version,
        })?;
    master
        .unwrap(subject, id, wrapped)
        .map_err(|_| KeyError::Unwrap(subject.to_owned()))
}

/// The data key to seal `subject`'s values with: its key, made on first
/// use (with `lookup`, the digest that finds it by the e-mail address it
/// was made for). An erased subject gets none: nothing personal of theirs
/// may be written again.
pub async fn sealing_key(
    pool: &PgPool,
    ring: &KeyRing,
    subject: &str,
    lookup: Option<&[u8]>,
) -> Result<DataKey, KeyError> {
    loop {
        if let Some(key) = reading_key(pool, ring, subject).await? {
            return Ok(key);
        }
        // Under the subject's lock, which an erasure takes too: a key is
        // never made for a subject erased meanwhile.
        let mut tx = pool.begin().await?;
        lock_subject(&mut tx, subject).await?;
        let erased: bool = sqlx::query_scalar!(
            r#"select exists(select 1 from privacy_erasures where subject = $1) as "erased!""#,
            subject
        )
        .fetch_one(&mut *tx)
        .await?;
        if erased {
            return Err(KeyError::Erased(subject.to_owned()));
        }
        let (key, wrapped) = ring.current.new_data_key(subject);
        let made = sqlx::query!(
            "insert into privacy_keys (subject, key_id, wrapped, master_version, lookup)
             values ($1, $2, $3, $4, $5) on conflict (subject) do nothing",
            subject,
            key.id,
            wrapped,
            ring.current.version,
            lookup
        )
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        if made == 1 {
            return Ok(key);
        }
        // Another writer made it first: use theirs.
    }
}

/// `subject`'s data key, or `None` once it is erased (or never had one).
pub async fn reading_key(
    pool: &PgPool,
    ring: &KeyRing,
    subject: &str,
) -> Result<Option<DataKey>, KeyError> {
    let row = sqlx::query!(
        "select key_id, wrapped, master_version from privacy_keys where subject = $1",
        subject
    )
    .fetch_optional(pool)
    .await?;
    row.map(|row| unwrap_row(ring, subject, row.key_id, &row.wrapped, row.master_version))
        .transpose()
}

/// The advisory-lock class of "a subject's key is being made or erased".
const SUBJECT_LOCK_CLASS: i32 = 0x5643_5053; // "VCPS"

async fn lock_subject(tx: &mut sqlx::PgConnection, subject: &str) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "select pg_advisory_xact_lock($1, hashtext($2))",
        SUBJECT_LOCK_CLASS,
        subject
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Takes `subject`'s lock for the rest of `tx` and says whether it was
/// erased: a writer of personal data beside the events (a verification
/// token) and the erasure that deletes it then never interleave.
pub async fn lock_and_check_erased(
    tx: &mut sqlx::PgConnection,
    subject: &str,
) -> Result<bool, sqlx::Error> {
    lock_subject(tx, subject).await?;
    sqlx::query_scalar!(
        r#"select exists(select 1 from privacy_erasures where subject = $1) as "erased!""#,
        subject
    )
    .fetch_one(&mut *tx)
    .await
}

/// The subjects whose keys were made for the address `lookup` digests.
pub async fn subjects_with_lookup(
    db: &mut sqlx::PgConnection,
    lookup: &[u8],
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar!("select subject from privacy_keys where lookup = $1", lookup)
        .fetch_all(db)
        .await
}

/// Erases `subject`: deletes its data key and records the erasure, in
/// `tx` (with the event that says so). Returns whether it had a key.
pub async fn shred(tx: &mut sqlx::PgConnection, subject: &str) -> Result<bool, sqlx::Error> {
    shred_on_behalf_of(tx, subject, None).await
}

/// [`shred`], recording the person whose erasure took `subject` with it.
pub async fn shred_on_behalf_of(
    tx: &mut sqlx::PgConnection,
    subject: &str,
    person: Option<&str>,
) -> Result<bool, sqlx::Error> {
    lock_subject(tx, subject).await?;
    let deleted = sqlx::query!("delete from privacy_keys where subject = $1", subject)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    sqlx::query!(
        "insert into privacy_erasures (subject, on_behalf_of) values ($1, $2)
         on conflict (subject) do nothing",
        subject,
        person
    )
    .execute(&mut *tx)
    .await?;
    Ok(deleted > 0)
}

/// Re-wraps every data key not under the current master key, a batch at a
/// time; `progress` gets the count so far. Returns how many were re-wrapped.
pub async fn rotate(
    pool: &PgPool,
    ring: &KeyRing,
    progress: &dyn Fn(u64),
) -> Result<u64, KeyError> {
    let mut rewrapped = 0;
    loop {
        let mut tx = pool.begin().await?;
        let rows = sqlx::query!(
            "select subject, key_id, wrapped, master_version from privacy_keys
             where master_version <> $1 limit 500 for update skip locked",
            ring.current.version
        )
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            tx.commit().await?;
            // Keys locked by a concurrent rotation were skipped: done only
            // when none is left under another version (dropping the old
            // master key before would shred their subjects).
            let left: i64 = sqlx::query_scalar!(
                r#"select count(*) as "left!" from privacy_keys where master_version <> $1"#,
                ring.current.version
            )
            .fetch_one(pool)
            .await?;
            if left > 0 {
                return Err(KeyError::RotationIncomplete(left));
            }
            return Ok(rewrapped);
        }
        for row in rows {
            let key = unwrap_row(
                ring,
                &row.subject,
                row.key_id,
                &row.wrapped,
                row.master_version,
            )?;
            sqlx::query!(
                "update privacy_keys set wrapped = $2, master_version = $3 where subject = $1",
                row.subject,
                ring.current.wrap(&row.subject, &key),
                ring.current.version
            )
            .execute(&mut *tx)
            .await?;
            rewrapped += 1;
        }
        tx.commit().await?;
        progress(rewrapped);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn master(version: i32, byte: u8) -> MasterKey {
        MasterKey::from_base64(version, &STANDARD.encode([byte; 32])).unwrap()
    }

    #[test]
    fn a_value_opens_only_under_its_subjects_key() {
        let master = master(1, 7);
        let (ada, _) = master.new_data_key("user:ada");
        let (bob, _) = master.new_data_key("user:bob");
        let sealed = ada.seal("user:ada", b"ada@example.com");
        assert_eq!(ada.open(&sealed).unwrap(), b"ada@example.com");
        assert!(
            !sealed.sealed.contains("ada@"),
            "no plaintext in the envelope"
        );
        assert_eq!(bob.open(&sealed), Err(PrivacyError::Unopenable));
        // Passed off as another subject's value: refused.
        let moved = Sealed {
            subject: "user:bob".to_owned(),
            ..sealed.clone()
        };
        assert_eq!(ada.open(&moved), Err(PrivacyError::Unopenable));
        // Two seals of one value differ (random nonces).
        assert_ne!(
            ada.seal("user:ada", b"x").sealed,
            ada.seal("user:ada", b"x").sealed
        );
    }

    #[test]
    fn data_keys_unwrap_only_under_their_master_key_subject_and_id() {
        let first = master(1, 1);
        let (key, wrapped) = first.new_data_key("user:ada");
        let sealed = key.seal("user:ada", b"Ada Lovelace");
        let unwrapped = first.unwrap("user:ada", key.id, &wrapped).unwrap();
        assert_eq!(unwrapped.open(&sealed).unwrap(), b"Ada Lovelace");
        assert!(first.unwrap("user:bob", key.id, &wrapped).is_err());
        assert!(first.unwrap("user:ada", Uuid::now_v7(), &wrapped).is_err());
        // A rotation re-wraps under the new master key; the old one no
        // longer opens the new wrapping.
        let second = master(2, 2);
        let rewrapped = second.wrap("user:ada", &unwrapped);
        assert!(first.unwrap("user:ada", key.id, &rewrapped).is_err());
        let again = second.unwrap("user:ada", key.id, &rewrapped).unwrap();
        assert_eq!(again.open(&sealed).unwrap(), b"Ada Lovelace");
    }

    #[test]
    fn a_bad_master_key_is_refused_without_echoing_it() {
        let error = MasterKey::from_base64(1, "c2hvcnQ=").unwrap_err();
        assert!(!error.to_string().contains("c2hvcnQ"));
        assert!(MasterKey::from_base64(1, "not base64!").is_err());
    }
}
