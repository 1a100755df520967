//! Erasing a person (docs/privacy.md): the read models' footprint of them
//! (`vcintel_projections`) handed to the erasure itself
//! (`vcintel_infra::erasure`), which reads no read model. The scheduler,
//! `vcintel privacy erase` and a restore's re-applied erasures all come
//! here.

use vcintel_commands::CommandMetadata;
use vcintel_domain::UserId;
use vcintel_infra::erasure::{self, Erased, ErasureError};
use vcintel_infra::event_store::{PgAccountCommands, PgWorkspaceCommands};
use vcintel_infra::vault::Vault;

/// Erases `user` now. Safe to repeat.
pub async fn erase_person(
    vault: &Vault,
    accounts: &PgAccountCommands,
    workspaces: &PgWorkspaceCommands,
    user: UserId,
    metadata: &CommandMetadata,
) -> Result<Erased, ErasureError> {
    let footprint = vcintel_projections::identity::erasure_footprint(vault.pool(), user).await?;
    erasure::erase(vault, accounts, workspaces, user, &footprint, metadata).await
}

/// Carries out up to `limit` erasures whose grace period is over; returns
/// how many it did. One that fails is logged and tried on the next sweep.
pub async fn erase_due(
    vault: &Vault,
    accounts: &PgAccountCommands,
    workspaces: &PgWorkspaceCommands,
    limit: i64,
) -> Result<usize, ErasureError> {
    let due = vcintel_projections::identity::erasures_due(vault.pool(), limit).await?;
    let metadata = CommandMetadata {
        request_id: Some("erasure-scheduler".to_owned()),
        ..CommandMetadata::default()
    };
    let mut done = 0;
    for user in due {
        match erase_person(vault, accounts, workspaces, user, &metadata).await {
            Ok(_) => done += 1,
            Err(error) => {
                tracing::error!(%error, user_id = %user.0, "an erasure failed; tried again on the next sweep")
            }
        }
    }
    Ok(done)
}
