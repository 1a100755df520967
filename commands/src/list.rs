//! List use cases: create, rename, delete, and put companies in and out.

use crate::aggregate::{CompanyAggregate, ListAggregate};
use crate::execute::{execute, owned_at_version, rerun_on_conflict, Load, LoadedAggregate};
use crate::{CommandError, CommandMetadata, Committed};
use cqrs_es::EventStore;
use uuid::Uuid;
use vcintel_domain::company::{CompanyError, CompanyId};
use vcintel_domain::list::{ListCommand, ListError, ListId};
use vcintel_domain::Actor;

pub struct ListCommands<L, C> {
    lists: L,
    companies: C,
}

impl<L, C> std::fmt::Debug for ListCommands<L, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ListCommands")
    }
}

impl<L, C> ListCommands<L, C>
where
    L: EventStore<ListAggregate>,
    L::AC: LoadedAggregate<ListAggregate> + Send,
    C: EventStore<CompanyAggregate>,
    C::AC: LoadedAggregate<CompanyAggregate> + Send,
{
    pub fn new(lists: L, companies: C) -> Self {
        Self { lists, companies }
    }

    #[tracing::instrument(skip(self, name, metadata), fields(workspace_id = %actor.workspace_id, user_id = %actor.user_id))]
    pub async fn create(
        &self,
        actor: Actor,
        name: String,
        metadata: &CommandMetadata,
    ) -> Result<Committed, CommandError> {
        let list_id = ListId(Uuid::now_v7());
        let command = ListCommand::Create {
            actor,
            list_id,
            name,
        };
        execute(
            &self.lists,
            list_id.to_string(),
            Load::Fresh,
            command,
            |_, _| Ok(()),
            metadata.for_actor(&actor),
        )
        .await
    }

    #[tracing::instrument(skip(self, name, metadata), fields(workspace_id = %actor.workspace_id, user_id = %actor.user_id))]
    pub async fn rename(
        &self,
        actor: Actor,
        list_id: ListId,
        name: String,
        expected_version: Option<u64>,
        metadata: &CommandMetadata,
    ) -> Result<Committed, CommandError> {
        let command = ListCommand::Rename { actor, name };
        self.change(actor, list_id, command, expected_version, metadata)
            .await
    }

    #[tracing::instrument(skip(self, metadata), fields(workspace_id = %actor.workspace_id, user_id = %actor.user_id))]
    pub async fn delete(
        &self,
        actor: Actor,
        list_id: ListId,
        expected_version: Option<u64>,
        metadata: &CommandMetadata,
    ) -> Result<Committed, CommandError> {
        let command = ListCommand::Delete { actor };
        self.change(actor, list_id, command, expected_version, metadata)
            .await
    }

    /// Puts a live company of the workspace in the list; already there is a no-op.
    #[tracing::instrument(skip(self, metadata), fields(workspace_id = %actor.workspace_id, user_id = %actor.user_id))]
    pub async fn add_company(
        &self,
        actor: Actor,
        list_id: ListId,
        company_id: CompanyId,
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
        self.membership(
            actor,
            list_id,
            ListCommand::AddCompany { actor, company_id },
            metadata,
        )
        .await
    }

    /// Takes a company out of the list; not there is a no-op.
    #[tracing::instrument(skip(self, metadata), fields(workspace_id = %actor.workspace_id, user_id = %actor.user_id))]
    pub async fn remove_company(
        &self,
        actor: Actor,
        list_id: ListId,
        company_id: CompanyId,
        metadata: &CommandMetadata,
    ) -> Result<Committed, CommandError> {
        self.membership(
            actor,
            list_id,
            ListCommand::RemoveCompany { actor, company_id },
            metadata,
        )
        .await
    }

    async fn membership(
        &self,
        actor: Actor,
        list_id: ListId,
        command: ListCommand,
        metadata: &CommandMetadata,
    ) -> Result<Committed, CommandError> {
        // Adding and removing commute: a lost race is re-decided, not
        // reported.
        rerun_on_conflict(|| {
            execute(
                &self.lists,
                list_id.to_string(),
                Load::Stored,
                command.clone(),
                |_, _| Ok(()),
                metadata.for_actor(&actor),
            )
        })
        .await
    }

    async fn change(
        &self,
        actor: Actor,
        list_id: ListId,
        command: ListCommand,
        expected_version: Option<u64>,
        metadata: &CommandMetadata,
    ) -> Result<Committed, CommandError> {
        let workspace = actor.workspace_id;
        let precondition = owned_at_version(
            expected_version,
            |list: &ListAggregate| list.0.is_visible_in(workspace),
            || ListError::NotFound.into(),
        );
        execute(
            &self.lists,
            list_id.to_string(),
            Load::Stored,
            command,
            precondition,
            metadata.for_actor(&actor),
        )
        .await
    }
}
