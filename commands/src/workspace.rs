//! Workspace use cases: membership, roles, API keys and the thesis. The
//! rules are the domain's; this runs them against the event store, with
//! the accounts and key secrets behind small ports (Postgres, in infra).

use crate::aggregate::WorkspaceAggregate;
use crate::execute::{execute, rerun_on_conflict, Load, LoadedAggregate};
use crate::{CommandError, CommandMetadata, Committed};
use cqrs_es::EventStore;
use uuid::Uuid;
use vcintel_domain::company::Stage;
use vcintel_domain::enrichment::Thesis;
use vcintel_domain::user::Email;
use vcintel_domain::workspace::{WorkspaceCommand, WorkspaceError};
use vcintel_domain::{Actor, Permission, Role, ValidationErrors, WorkspaceId};

/// A new API key: shown to its creator once, kept only as a hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedApiKey {
    pub key_id: Uuid,
    /// The secret the client sends.
    pub secret: String,
    /// Shown in listings to recognise the key; reveals nothing of the secret.
    pub display_prefix: String,
}

/// Where API key secrets are minted and kept (as hashes).
#[async_trait::async_trait]
pub trait ApiKeySecrets: Send + Sync {
    fn issue(&self) -> IssuedApiKey;
    async fn store(&self, key: &IssuedApiKey, workspace: WorkspaceId) -> Result<(), CommandError>;
}

/// An invitation just recorded (a repeated one keeps its first id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberInvitation {
    pub invitation_id: Uuid,
    pub committed: Committed,
}

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
        // Workspace commands name no version: each is decided again on the
        // state that won the race (ten parallel key creations all succeed).
        rerun_on_conflict(|| {
            execute(
                &self.store,
                actor.workspace_id.to_string(),
                Load::Stored,
                command.clone(),
                |_, _| Ok(()),
                metadata.for_actor(actor),
            )
        })
        .await
    }

    /// Invites `email` to the actor's workspace with `role`. The answer is
    /// the same whether or not the address has an account (no oracle), and
    /// nobody joins without accepting.
    #[tracing::instrument(skip_all, fields(workspace_id = %actor.workspace_id, user_id = %actor.user_id))]
    pub async fn invite(
        &self,
        actor: &Actor,
        email: &str,
        role: Role,
        metadata: &CommandMetadata,
    ) -> Result<MemberInvitation, CommandError> {
        // Checked before the address is even parsed, so non-managers learn
        // nothing from the answer.
        if !actor.may(Permission::ManageMembers) {
            return Err(CommandError::Forbidden {
                role: actor.role.as_str(),
                action: "invite members",
            });
        }
        let email = Email::parse(email).map_err(|message| {
            let mut errors = ValidationErrors::default();
            errors.add("email", message);
            WorkspaceError::Invalid(errors)
        })?;
        let invitation_id = Uuid::now_v7();
        let command = WorkspaceCommand::Invite {
            actor: *actor,
            invitation_id,
            email: email.clone(),
            role,
        };
        let committed = self.run(actor, command, metadata).await?;
        let mut workspace = self
            .store
            .load_aggregate(&actor.workspace_id.to_string())
            .await?;
        // A repeated invitation keeps its first id; one taken up or
        // cancelled meanwhile is answered with the id just minted.
        let invitation_id = workspace
            .state()
            .0
            .state()
            .and_then(|ws| ws.invitations.get(&email))
            .map_or(invitation_id, |invitation| invitation.id);
        Ok(MemberInvitation {
            invitation_id,
            committed,
        })
    }

    /// Creates an API key acting in the actor's workspace with `role`
    /// (default: the actor's own); the domain caps it at the actor's role.
    #[tracing::instrument(skip_all, fields(workspace_id = %actor.workspace_id, user_id = %actor.user_id))]
    pub async fn create_api_key(
        &self,
        secrets: &dyn ApiKeySecrets,
        actor: &Actor,
        name: &str,
        role: Option<Role>,
        metadata: &CommandMetadata,
    ) -> Result<(IssuedApiKey, Committed), CommandError> {
        if !actor.may(Permission::CreateApiKeys) {
            return Err(CommandError::Forbidden {
                role: actor.role.as_str(),
                action: "create API keys",
            });
        }
        let key = secrets.issue();
        // The secret first: should the command fail, a hash no workspace
        // knows authenticates nothing.
        secrets.store(&key, actor.workspace_id).await?;
        let command = WorkspaceCommand::CreateApiKey {
            actor: *actor,
            key_id: key.key_id,
            name: name.trim().to_owned(),
            role: role.unwrap_or(actor.role),
            prefix: key.display_prefix.clone(),
        };
        let committed = self.run(actor, command, metadata).await?;
        Ok((key, committed))
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
}
