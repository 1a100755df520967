//! Saved-search use cases: create, rename, delete.

use crate::aggregate::SavedSearchAggregate;
use crate::execute::{execute, owned_at_version, Load, LoadedAggregate};
use crate::{CommandError, CommandMetadata, Committed};
use cqrs_es::EventStore;
use uuid::Uuid;
use vcintel_domain::saved_search::{
    SavedSearchCommand, SavedSearchError, SavedSearchId, SearchFilters,
};
use vcintel_domain::Actor;

pub struct SavedSearchCommands<S> {
    store: S,
}

impl<S> std::fmt::Debug for SavedSearchCommands<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SavedSearchCommands")
    }
}

impl<S> SavedSearchCommands<S>
where
    S: EventStore<SavedSearchAggregate>,
    S::AC: LoadedAggregate<SavedSearchAggregate> + Send,
{
    pub fn new(store: S) -> Self {
        Self { store }
    }

    #[tracing::instrument(skip(self, name, filters, metadata), fields(workspace_id = %actor.workspace_id, user_id = %actor.user_id))]
    pub async fn create(
        &self,
        actor: Actor,
        name: String,
        filters: SearchFilters,
        metadata: &CommandMetadata,
    ) -> Result<Committed, CommandError> {
        let id = SavedSearchId(Uuid::now_v7());
        let command = SavedSearchCommand::Create {
            actor,
            id,
            name,
            filters,
        };
        execute(
            &self.store,
            id.to_string(),
            Load::Fresh,
            command,
            |_, _| Ok(()),
            metadata.for_actor(&actor),
        )
        .await
    }

    #[tracing::instrument(skip(self, command, metadata), fields(workspace_id = %actor.workspace_id, user_id = %actor.user_id))]
    pub async fn change(
        &self,
        actor: Actor,
        id: SavedSearchId,
        command: SavedSearchCommand,
        expected_version: Option<u64>,
        metadata: &CommandMetadata,
    ) -> Result<Committed, CommandError> {
        let workspace = actor.workspace_id;
        let precondition = owned_at_version(
            expected_version,
            |search: &SavedSearchAggregate| search.0.is_visible_in(workspace),
            || SavedSearchError::NotFound.into(),
        );
        execute(
            &self.store,
            id.to_string(),
            Load::Stored,
            command,
            precondition,
            metadata.for_actor(&actor),
        )
        .await
    }
}
