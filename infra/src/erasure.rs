//! Forgetting a person (docs/privacy.md): the person asks
//! (`user.erasure_requested`), may cancel during the grace period, and is
//! then erased: their data keys and those of the invitations sent to their
//! address are shredded, what the mutable tables hold about them is
//! removed, and `user.erased` is recorded, which releases their e-mail
//! address and makes every read model mask or drop their values.
//!
//! The order makes an erasure cut short finish on the next try: the keys
//! and the tables go first, in one transaction that also records which
//! invitations went with the person; the event last, naming them. An
//! erasure is carried out again until the event is in, so a crash between
//! the two loses nothing.

use crate::event_store::{PgAccountCommands, PgWorkspaceCommands};
use crate::privacy::{self, KeyError};
use crate::vault::Vault;
use uuid::Uuid;
use vcintel_commands::{CommandError, CommandMetadata};
use vcintel_domain::user::{ErasureState, UserCommand};
use vcintel_domain::workspace::WorkspaceCommand;
use vcintel_domain::{Actor, Role, UserId, WorkspaceId};

#[derive(Debug, thiserror::Error)]
pub enum ErasureError {
    #[error("no such account")]
    NotFound,
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("keys: {0}")]
    Key(#[from] KeyError),
    #[error("{0}")]
    Command(#[from] CommandError),
}

/// What an erasure did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Erased {
    /// Subjects whose keys were shredded (the person and each invitation
    /// to their address).
    pub subjects: Vec<String>,
    pub invitations: Vec<Uuid>,
    pub api_keys_revoked: usize,
    /// Whether `user.erased` was recorded now (false: it already was).
    pub recorded: bool,
}

/// What the read models say a person has that an erasure must reach; the
/// caller gathers it (infra reads no read model:
/// `vcintel_projections::identity::erasure_footprint`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Footprint {
    /// The live API keys they created, with the role they hold where.
    pub api_keys: Vec<OwnApiKey>,
    /// The workspaces they are a member of (their snapshots name them).
    pub workspaces: Vec<Uuid>,
    /// The notes whose current text is theirs.
    pub notes: Vec<Uuid>,
}

/// A live API key the person created, in a workspace where they hold `role`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnApiKey {
    pub key_id: Uuid,
    pub workspace_id: Uuid,
    pub role: Role,
}

/// The subject name of a person.
pub fn user_subject(user: UserId) -> String {
    format!("user:{}", user.0)
}

const INVITEE_PREFIX: &str = "invitee:";

/// Erases `user` now, whatever their request's grace period (an operator's
/// erasure, or the scheduler once the period is over). Safe to repeat.
pub async fn erase(
    vault: &Vault,
    accounts: &PgAccountCommands,
    workspaces: &PgWorkspaceCommands,
    user: UserId,
    footprint: &Footprint,
    metadata: &CommandMetadata,
) -> Result<Erased, ErasureError> {
    let account = crate::accounts::account(vault, user)
        .await?
        .ok_or(ErasureError::NotFound)?;
    let registration = account.registration().ok_or(ErasureError::NotFound)?;
    let person = user_subject(user);
    // API keys are revoked through their workspaces' events (so every
    // instance's cache drops them) while the person is still a member.
    let api_keys_revoked = if account.erasure() == ErasureState::Erased {
        0
    } else {
        revoke_api_keys(workspaces, user, &footprint.api_keys, metadata).await?
    };
    let invitee_subjects = match registration.email.known() {
        Some(email) => {
            let digest = vault
                .lookup_digest(&serde_json::Value::String(email.as_str().to_owned()))
                .await?;
            let mut connection = vault.pool().acquire().await?;
            privacy::subjects_with_lookup(&mut connection, &digest).await?
        }
        // Erased before: its invitations were recorded with it.
        None => vec![],
    };
    let mut tx = vault.pool().begin().await?;
    let mut subjects = vec![person.clone()];
    subjects.extend(invitee_subjects);
    for subject in &subjects {
        let on_behalf_of = (subject != &person).then_some(person.as_str());
        privacy::shred_on_behalf_of(&mut tx, subject, on_behalf_of).await?;
    }
    forget_in_tables(&mut tx, user, footprint).await?;
    tx.commit().await?;
    vault.forget(&subjects);
    let invitations: Vec<Uuid> = sqlx::query_scalar!(
        "select subject from privacy_erasures where on_behalf_of = $1",
        person
    )
    .fetch_all(vault.pool())
    .await?
    .iter()
    .filter_map(|subject| subject.strip_prefix(INVITEE_PREFIX)?.parse().ok())
    .collect();
    let committed = accounts
        .change_erasure(
            user,
            UserCommand::Erase {
                invitations: invitations.clone(),
            },
            metadata,
        )
        .await?;
    metrics::counter!("vcintel_erasures_total").increment(u64::from(committed.appended > 0));
    Ok(Erased {
        subjects,
        invitations,
        api_keys_revoked,
        recorded: committed.appended > 0,
    })
}

/// Removes what the tables the events do not rebuild hold about `user`:
/// their sessions end (the revocation reaches every instance's cache) and
/// lose their addresses and browsers, refresh tokens, password,
/// verification tokens and idempotency records go, the security log keeps
/// its entries about them without addresses, and snapshots that folded
/// their values are dropped (the aggregates fold again from the events,
/// which now open to `[erased]`). The read models mask them when
/// `user.erased` is projected.
async fn forget_in_tables(
    tx: &mut sqlx::PgConnection,
    user: UserId,
    footprint: &Footprint,
) -> Result<(), sqlx::Error> {
    crate::accounts::revoke_all_sessions(&mut *tx, user, "erased").await?;
    // Every instance drops the workspaces it caches (they name members by
    // address) when this commits.
    sqlx::query("select pg_notify('vcintel_identity_changed', $1)")
        .bind(format!("erased:{}", user.0))
        .execute(&mut *tx)
        .await?;
    sqlx::query!(
        "update auth_sessions set ip = null, user_agent = null where user_id = $1",
        user.0
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "delete from refresh_tokens where session_id in
             (select id from auth_sessions where user_id = $1)",
        user.0
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!("delete from user_credentials where user_id = $1", user.0)
        .execute(&mut *tx)
        .await?;
    sqlx::query!(
        "delete from email_verification_tokens where user_id = $1",
        user.0
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "update security_events set ip = null where user_id = $1 and ip is not null",
        user.0
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "delete from idempotency_keys where principal = $1",
        format!("user:{}", user.0)
    )
    .execute(&mut *tx)
    .await?;
    let text = |ids: &[Uuid]| ids.iter().map(Uuid::to_string).collect::<Vec<_>>();
    sqlx::query!(
        "delete from snapshots
         where (aggregate_type = 'user' and aggregate_id = $1)
            or (aggregate_type = 'workspace' and aggregate_id = any($2))
            or (aggregate_type = 'note' and aggregate_id = any($3))",
        user.0.to_string(),
        &text(&footprint.workspaces),
        &text(&footprint.notes)
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Revokes the live API keys `user` created, acting as themselves.
async fn revoke_api_keys(
    workspaces: &PgWorkspaceCommands,
    user: UserId,
    keys: &[OwnApiKey],
    metadata: &CommandMetadata,
) -> Result<usize, ErasureError> {
    let mut revoked = 0;
    for key in keys {
        let actor = Actor {
            workspace_id: WorkspaceId(key.workspace_id),
            user_id: user,
            role: key.role,
            api_key: None,
        };
        let command = WorkspaceCommand::RevokeApiKey {
            actor,
            key_id: key.key_id,
        };
        match workspaces.run(&actor, command, metadata).await {
            Ok(_) => revoked += 1,
            // Revoked meanwhile, or no longer the member that made it.
            Err(CommandError::Workspace(_)) => {}
            Err(other) => return Err(other.into()),
        }
    }
    Ok(revoked)
}
