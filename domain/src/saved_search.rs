//! The SavedSearch aggregate: a named set of company filters an analyst
//! runs again and again.

use crate::company::Stage;
use crate::identity::{Actor, Permission, UserId, WorkspaceId};
use crate::validation::{optional_text, required_text, ValidationErrors};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The aggregate type name in the event store. Never rename it.
pub const AGGREGATE_TYPE: &str = "saved_search";

pub const MAX_SEARCH_NAME_CHARS: usize = 100;
pub const MAX_FILTER_TEXT_CHARS: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct SavedSearchId(pub Uuid);

impl std::fmt::Display for SavedSearchId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// What a saved search narrows companies to; every part is optional.
/// Clients send it as it is stored: unknown fields are refused rather than
/// silently dropped, so a misspelt filter cannot widen a search.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SearchFilters {
    /// Sector (case-insensitive).
    #[cfg_attr(feature = "schema", schema(example = "Robotics"))]
    pub sector: Option<String>,
    pub stage: Option<Stage>,
    /// Location (case-insensitive).
    #[cfg_attr(feature = "schema", schema(example = "Berlin"))]
    pub location: Option<String>,
    /// Minimum fit score, 0–100.
    #[cfg_attr(feature = "schema", schema(maximum = 100))]
    #[serde(default, deserialize_with = "crate::validation::optional_integral")]
    #[cfg_attr(feature = "schema", schema(example = 60))]
    pub min_score: Option<u8>,
    /// Full-text query (words, `"phrases"`, `-exclusions`).
    #[cfg_attr(
        feature = "schema",
        schema(example = "\"warehouse automation\" -drones")
    )]
    pub text: Option<String>,
}

impl SearchFilters {
    /// Trims the texts (blank means unset) and checks lengths and the score range.
    pub fn validated(self, errors: &mut ValidationErrors) -> SearchFilters {
        if self.min_score.is_some_and(|s| s > 100) {
            errors.add("filters.min_score", "must be between 0 and 100");
        }
        SearchFilters {
            sector: optional_text(
                errors,
                "filters.sector",
                self.sector.as_deref(),
                MAX_FILTER_TEXT_CHARS,
            ),
            stage: self.stage,
            location: optional_text(
                errors,
                "filters.location",
                self.location.as_deref(),
                MAX_FILTER_TEXT_CHARS,
            ),
            min_score: self.min_score,
            text: optional_text(
                errors,
                "filters.text",
                self.text.as_deref(),
                MAX_FILTER_TEXT_CHARS,
            ),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SavedSearchCommand {
    Create {
        actor: Actor,
        id: SavedSearchId,
        name: String,
        filters: SearchFilters,
    },
    Rename {
        actor: Actor,
        name: String,
    },
    Delete {
        actor: Actor,
    },
}

crate::event_family::event_family! {
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
    pub enum SavedSearchEvent of AGGREGATE_TYPE {
        Created(SavedSearchCreated) = "saved_search.created" v "1",
        Renamed(SavedSearchRenamed) = "saved_search.renamed" v "1",
        Deleted(SavedSearchDeleted) = "saved_search.deleted" v "1",
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct SavedSearchCreated {
    pub id: SavedSearchId,
    pub workspace_id: WorkspaceId,
    pub name: String,
    pub filters: SearchFilters,
    pub created_by: UserId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct SavedSearchRenamed {
    pub workspace_id: WorkspaceId,
    pub name: String,
    pub renamed_by: UserId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct SavedSearchDeleted {
    pub workspace_id: WorkspaceId,
    pub deleted_by: UserId,
}

impl SavedSearchEvent {
    pub fn workspace_id(&self) -> WorkspaceId {
        match self {
            SavedSearchEvent::Created(e) => e.workspace_id,
            SavedSearchEvent::Renamed(e) => e.workspace_id,
            SavedSearchEvent::Deleted(e) => e.workspace_id,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SavedSearchError {
    /// Never created, deleted, or in another workspace: callers cannot tell which.
    #[error("saved search not found")]
    NotFound,
    #[error("a saved search with this id already exists")]
    AlreadyExists,
    #[error("viewers may not change saved searches")]
    Forbidden,
    #[error("invalid saved search: {0}")]
    Invalid(ValidationErrors),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
struct LiveSearch {
    workspace_id: WorkspaceId,
    name: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct SavedSearch {
    live: Option<LiveSearch>,
    deleted: bool,
}

impl SavedSearch {
    pub fn is_visible_in(&self, workspace: WorkspaceId) -> bool {
        self.live
            .as_ref()
            .is_some_and(|s| s.workspace_id == workspace)
    }

    pub fn decide(
        &self,
        command: SavedSearchCommand,
    ) -> Result<Vec<SavedSearchEvent>, SavedSearchError> {
        match command {
            SavedSearchCommand::Create {
                actor,
                id,
                name,
                filters,
            } => {
                if self.live.is_some() || self.deleted {
                    return Err(SavedSearchError::AlreadyExists);
                }
                require_write(&actor)?;
                let mut errors = ValidationErrors::default();
                let name = required_text(&mut errors, "name", &name, MAX_SEARCH_NAME_CHARS);
                let filters = filters.validated(&mut errors);
                errors.into_result().map_err(SavedSearchError::Invalid)?;
                Ok(vec![SavedSearchEvent::Created(SavedSearchCreated {
                    id,
                    workspace_id: actor.workspace_id,
                    name,
                    filters,
                    created_by: actor.user_id,
                })])
            }
            SavedSearchCommand::Rename { actor, name } => {
                let live = self.live_in(&actor)?;
                let mut errors = ValidationErrors::default();
                let name = required_text(&mut errors, "name", &name, MAX_SEARCH_NAME_CHARS);
                errors.into_result().map_err(SavedSearchError::Invalid)?;
                if name == live.name {
                    return Ok(vec![]);
                }
                Ok(vec![SavedSearchEvent::Renamed(SavedSearchRenamed {
                    workspace_id: actor.workspace_id,
                    name,
                    renamed_by: actor.user_id,
                })])
            }
            SavedSearchCommand::Delete { actor } => {
                self.live_in(&actor)?;
                Ok(vec![SavedSearchEvent::Deleted(SavedSearchDeleted {
                    workspace_id: actor.workspace_id,
                    deleted_by: actor.user_id,
                })])
            }
        }
    }

    fn live_in(&self, actor: &Actor) -> Result<&LiveSearch, SavedSearchError> {
        let live = self
            .live
            .as_ref()
            .filter(|s| s.workspace_id == actor.workspace_id)
            .ok_or(SavedSearchError::NotFound)?;
        require_write(actor)?;
        Ok(live)
    }

    pub fn apply(&mut self, event: SavedSearchEvent) {
        match event {
            SavedSearchEvent::Created(e) => {
                self.live = Some(LiveSearch {
                    workspace_id: e.workspace_id,
                    name: e.name,
                });
            }
            SavedSearchEvent::Renamed(e) => {
                if let Some(live) = self.live.as_mut() {
                    live.name = e.name;
                }
            }
            SavedSearchEvent::Deleted(_) => {
                self.live = None;
                self.deleted = true;
            }
        }
    }
}

fn require_write(actor: &Actor) -> Result<(), SavedSearchError> {
    if actor.may(Permission::WriteData) {
        Ok(())
    } else {
        Err(SavedSearchError::Forbidden)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Role;

    fn actor(role: Role) -> Actor {
        Actor {
            workspace_id: WorkspaceId(Uuid::from_u128(1)),
            user_id: UserId(Uuid::from_u128(2)),
            role,
            api_key: None,
        }
    }

    fn create(
        role: Role,
        filters: SearchFilters,
    ) -> Result<Vec<SavedSearchEvent>, SavedSearchError> {
        SavedSearch::default().decide(SavedSearchCommand::Create {
            actor: actor(role),
            id: SavedSearchId(Uuid::from_u128(3)),
            name: "Seed robotics".into(),
            filters,
        })
    }

    #[test]
    fn filters_are_trimmed_and_blank_ones_dropped() {
        let events = create(
            Role::Member,
            SearchFilters {
                sector: Some("  Robotics ".into()),
                location: Some("   ".into()),
                min_score: Some(60),
                ..Default::default()
            },
        )
        .unwrap();
        let SavedSearchEvent::Created(e) = &events[0] else {
            panic!("expected created");
        };
        assert_eq!(e.filters.sector.as_deref(), Some("Robotics"));
        assert_eq!(e.filters.location, None);
    }

    #[test]
    fn a_score_above_100_is_named_in_the_errors() {
        let Err(SavedSearchError::Invalid(errors)) = create(
            Role::Member,
            SearchFilters {
                min_score: Some(101),
                ..Default::default()
            },
        ) else {
            panic!("expected invalid");
        };
        assert_eq!(errors.fields()[0].field, "filters.min_score");
    }

    #[test]
    fn viewers_may_not_save_searches() {
        assert_eq!(
            create(Role::Viewer, SearchFilters::default()),
            Err(SavedSearchError::Forbidden)
        );
    }
}
