//! Note use cases: add a note to a live company of the caller's workspace,
//! edit it, delete it.

use crate::aggregate::{CompanyAggregate, NoteAggregate};
use crate::execute::{execute, owned_at_version, Load, LoadedAggregate};
use crate::{CommandError, CommandMetadata, Committed};
use cqrs_es::EventStore;
use uuid::Uuid;
use vcintel_domain::company::{CompanyError, CompanyId};
use vcintel_domain::note::{NoteCommand, NoteError, NoteId};
use vcintel_domain::Actor;

pub struct NoteCommands<N, C> {
    notes: N,
    companies: C,
}

impl<N, C> std::fmt::Debug for NoteCommands<N, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NoteCommands")
    }
}

impl<N, C> NoteCommands<N, C>
where
    N: EventStore<NoteAggregate>,
    N::AC: LoadedAggregate<NoteAggregate> + Send,
    C: EventStore<CompanyAggregate>,
    C::AC: LoadedAggregate<CompanyAggregate> + Send,
{
    pub fn new(notes: N, companies: C) -> Self {
        Self { notes, companies }
    }

    /// Adds a note to `company_id`, which must be live in the actor's
    /// workspace (a deleted or foreign company is "not found").
    #[tracing::instrument(skip(self, content, metadata), fields(workspace_id = %actor.workspace_id, user_id = %actor.user_id))]
    pub async fn add(
        &self,
        actor: Actor,
        company_id: CompanyId,
        content: String,
        metadata: &CommandMetadata,
    ) -> Result<Committed, CommandError> {
        let mut company = self
            .companies
            .load_aggregate(&company_id.to_string())
            .await?;
        let live = company.state().0.details().is_some()
            && company.state().0.workspace_id() == Some(actor.workspace_id);
        if !live {
            return Err(CompanyError::NotFound.into());
        }
        let note_id = NoteId(Uuid::now_v7());
        let command = NoteCommand::Add {
            actor,
            note_id,
            company_id,
            content,
        };
        execute(
            &self.notes,
            note_id.to_string(),
            Load::Fresh,
            command,
            |_, _| Ok(()),
            metadata.for_actor(&actor),
        )
        .await
    }

    #[tracing::instrument(skip(self, content, metadata), fields(workspace_id = %actor.workspace_id, user_id = %actor.user_id))]
    pub async fn edit(
        &self,
        actor: Actor,
        note_id: NoteId,
        content: String,
        expected_version: Option<u64>,
        metadata: &CommandMetadata,
    ) -> Result<Committed, CommandError> {
        let command = NoteCommand::Edit { actor, content };
        self.change(actor, note_id, command, expected_version, metadata)
            .await
    }

    #[tracing::instrument(skip(self, metadata), fields(workspace_id = %actor.workspace_id, user_id = %actor.user_id))]
    pub async fn delete(
        &self,
        actor: Actor,
        note_id: NoteId,
        expected_version: Option<u64>,
        metadata: &CommandMetadata,
    ) -> Result<Committed, CommandError> {
        let command = NoteCommand::Delete { actor };
        self.change(actor, note_id, command, expected_version, metadata)
            .await
    }

    async fn change(
        &self,
        actor: Actor,
        note_id: NoteId,
        command: NoteCommand,
        expected_version: Option<u64>,
        metadata: &CommandMetadata,
    ) -> Result<Committed, CommandError> {
        let precondition = owned_at_version(
            expected_version,
            |note: &NoteAggregate| {
                !note
                    .0
                    .decide(NoteCommand::Delete { actor })
                    .is_err_and(|e| e == NoteError::NotFound)
            },
            || NoteError::NotFound.into(),
        );
        execute(
            &self.notes,
            note_id.to_string(),
            Load::Stored,
            command,
            precondition,
            metadata.for_actor(&actor),
        )
        .await
    }
}
