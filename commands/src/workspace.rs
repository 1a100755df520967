//! Workspace use cases: membership, roles and API keys. The rules are the
//! domain's; this runs them against the event store.

use crate::aggregate::WorkspaceAggregate;
use crate::execute::{execute, Load, LoadedAggregate};
use crate::{CommandError, CommandMetadata, Committed};
use cqrs_es::EventStore;
use vcintel_domain::workspace::WorkspaceCommand;
use vcintel_domain::Actor;

pub struct WorkspaceCommands<S> {
    store: S,
}

impl<S> std::fmt::Debug for WorkspaceCommands<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WorkspaceCommands")
    }
}

impl<S> WorkspaceCommands<S>
where
    S: EventStore<WorkspaceAggregate>,
    S::AC: LoadedAggregate<WorkspaceAggregate> + Send,
{
    pub fn new(store: S) -> Self {
        Self { store }
    }

    /// Runs a membership or API-key command in the actor's workspace.
    #[tracing::instrument(skip_all, fields(workspace_id = %actor.workspace_id, user_id = %actor.user_id))]
    pub async fn run(
        &self,
        actor: &Actor,
        command: WorkspaceCommand,
        metadata: &CommandMetadata,
    ) -> Result<Committed, CommandError> {
        execute(
            &self.store,
            actor.workspace_id.to_string(),
            Load::Stored,
            command,
            |_, _| Ok(()),
            metadata.for_actor(actor),
        )
        .await
    }
}
