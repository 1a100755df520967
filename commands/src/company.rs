//! Company use cases: add, update details, delete.

use crate::aggregate::CompanyAggregate;
use crate::execute::{execute, owned_at_version, Load, LoadedAggregate};
use crate::{CommandError, CommandMetadata, Committed};
use cqrs_es::EventStore;
use uuid::Uuid;
use vcintel_domain::company::{
    CompanyChanges, CompanyCommand, CompanyError, CompanyId, CompanyInput,
};
use vcintel_domain::Actor;

/// Runs company commands against an event store.
pub struct CompanyCommands<S> {
    store: S,
}

impl<S> std::fmt::Debug for CompanyCommands<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CompanyCommands")
    }
}

impl<S> CompanyCommands<S>
where
    S: EventStore<CompanyAggregate>,
    S::AC: LoadedAggregate<CompanyAggregate> + Send,
{
    pub fn new(store: S) -> Self {
        Self { store }
    }

    #[tracing::instrument(skip(self, input, metadata), fields(workspace_id = %actor.workspace_id, user_id = %actor.user_id))]
    pub async fn add(
        &self,
        actor: Actor,
        input: CompanyInput,
        metadata: &CommandMetadata,
    ) -> Result<Committed, CommandError> {
        authorise_write(&actor, "add companies")?;
        // Time-ordered ids keep index inserts local and give a natural order.
        let company_id = CompanyId(Uuid::now_v7());
        let command = CompanyCommand::Add {
            actor,
            company_id,
            input,
        };
        self.execute(company_id, Load::Fresh, &actor, command, None, metadata)
            .await
    }

    #[tracing::instrument(skip(self, changes, metadata), fields(workspace_id = %actor.workspace_id, user_id = %actor.user_id))]
    pub async fn update_details(
        &self,
        actor: Actor,
        company_id: CompanyId,
        changes: CompanyChanges,
        expected_version: Option<u64>,
        metadata: &CommandMetadata,
    ) -> Result<Committed, CommandError> {
        authorise_write(&actor, "update companies")?;
        let command = CompanyCommand::UpdateDetails { actor, changes };
        self.execute(
            company_id,
            Load::Stored,
            &actor,
            command,
            expected_version,
            metadata,
        )
        .await
    }

    #[tracing::instrument(skip(self, metadata), fields(workspace_id = %actor.workspace_id, user_id = %actor.user_id))]
    pub async fn delete(
        &self,
        actor: Actor,
        company_id: CompanyId,
        expected_version: Option<u64>,
        metadata: &CommandMetadata,
    ) -> Result<Committed, CommandError> {
        authorise_write(&actor, "delete companies")?;
        let command = CompanyCommand::Delete { actor };
        self.execute(
            company_id,
            Load::Stored,
            &actor,
            command,
            expected_version,
            metadata,
        )
        .await
    }

    async fn execute(
        &self,
        company_id: CompanyId,
        load: Load,
        actor: &Actor,
        command: CompanyCommand,
        expected_version: Option<u64>,
        metadata: &CommandMetadata,
    ) -> Result<Committed, CommandError> {
        let workspace = actor.workspace_id;
        let precondition = owned_at_version(
            expected_version,
            |aggregate: &CompanyAggregate| {
                aggregate.0.details().is_some() && aggregate.0.workspace_id() == Some(workspace)
            },
            || CompanyError::NotFound.into(),
        );
        execute(
            &self.store,
            company_id.to_string(),
            load,
            command,
            precondition,
            metadata.for_actor(actor),
        )
        .await
    }
}

fn authorise_write(actor: &Actor, action: &'static str) -> Result<(), CommandError> {
    if actor.role.may_write() {
        Ok(())
    } else {
        Err(CommandError::Forbidden {
            role: actor.role.as_str(),
            action,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cqrs_es::mem_store::MemStore;
    use vcintel_domain::company::Stage;
    use vcintel_domain::{Role, UserId, WorkspaceId};

    type Store = MemStore<CompanyAggregate>;

    fn actor(role: Role) -> Actor {
        Actor {
            workspace_id: WorkspaceId(Uuid::from_u128(1)),
            user_id: UserId(Uuid::from_u128(2)),
            role,
            api_key: None,
        }
    }

    fn input() -> CompanyInput {
        CompanyInput {
            name: "Acme".into(),
            website: "acme.io".into(),
            sector: None,
            stage: Some(Stage::SeriesA),
            location: None,
        }
    }

    fn service() -> CompanyCommands<Store> {
        CompanyCommands::new(MemStore::default())
    }

    #[tokio::test]
    async fn a_stale_if_match_version_is_refused_with_the_current_one() {
        let commands = service();
        let meta = CommandMetadata::default();
        let added = commands
            .add(actor(Role::Member), input(), &meta)
            .await
            .unwrap();
        let id = CompanyId(added.aggregate_id.parse().unwrap());
        let changes = CompanyChanges {
            name: Some("Acme 2".into()),
            ..Default::default()
        };
        let result = commands
            .update_details(actor(Role::Member), id, changes, Some(7), &meta)
            .await;
        assert!(matches!(
            result,
            Err(CommandError::VersionMismatch {
                expected: 7,
                actual: 1
            })
        ));
    }

    #[tokio::test]
    async fn viewers_may_not_write() {
        let result = service()
            .add(actor(Role::Viewer), input(), &CommandMetadata::default())
            .await;
        assert!(matches!(
            result,
            Err(CommandError::Forbidden { role: "viewer", .. })
        ));
    }

    #[tokio::test]
    async fn a_foreign_workspace_gets_not_found_even_with_a_right_version() {
        let commands = service();
        let meta = CommandMetadata::default();
        let added = commands
            .add(actor(Role::Member), input(), &meta)
            .await
            .unwrap();
        let id = CompanyId(added.aggregate_id.parse().unwrap());
        let stranger = Actor {
            workspace_id: WorkspaceId(Uuid::from_u128(99)),
            ..actor(Role::Owner)
        };
        let result = commands.delete(stranger, id, Some(1), &meta).await;
        assert!(matches!(
            result,
            Err(CommandError::Company(CompanyError::NotFound))
        ));
    }
}
