//! Workspace use cases: membership, roles and API keys. The rules are the
//! domain's; this runs them against the event store.

use crate::aggregate::WorkspaceAggregate;
use crate::execute::{execute, Load, LoadedAggregate};
use crate::{CommandError, CommandMetadata, Committed};
use cqrs_es::EventStore;
use vcintel_domain::company::Stage;
use vcintel_domain::enrichment::Thesis;
use vcintel_domain::user::Email;
use vcintel_domain::workspace::{WorkspaceCommand, WorkspaceError};
use vcintel_domain::{Actor, UserId, WorkspaceId};

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

    /// Sets the workspace's investment thesis from what a client wrote
    /// (validated and normalised by the domain).
    #[tracing::instrument(skip_all, fields(workspace_id = %actor.workspace_id, user_id = %actor.user_id))]
    pub async fn set_thesis(
        &self,
        actor: &Actor,
        sectors: Vec<String>,
        stages: Vec<Stage>,
        locations: Vec<String>,
        metadata: &CommandMetadata,
    ) -> Result<Committed, CommandError> {
        let thesis = Thesis::parse(sectors, stages, locations).map_err(WorkspaceError::Invalid)?;
        let command = WorkspaceCommand::SetThesis {
            actor: *actor,
            thesis,
        };
        self.run(actor, command, metadata).await
    }

    /// Lets a newly signed-up (or signed-in) user join a workspace that
    /// invited their email.
    #[tracing::instrument(skip_all, fields(workspace_id = %workspace, user_id = %user))]
    pub async fn accept_invitation(
        &self,
        workspace: WorkspaceId,
        user: UserId,
        email: Email,
        metadata: &CommandMetadata,
    ) -> Result<Committed, CommandError> {
        execute(
            &self.store,
            workspace.to_string(),
            Load::Stored,
            WorkspaceCommand::AcceptInvitation {
                user_id: user,
                email,
            },
            |_, _| Ok(()),
            metadata.for_user(workspace, user),
        )
        .await
    }
}
