//! The Company aggregate: a company an analyst added to a workspace.
//!
//! Decisions are pure functions of the current state and a command; the
//! resulting events are the only way state changes.

use crate::identity::{Actor, UserId, WorkspaceId};
use crate::validation::{optional_text, required_text, ValidationErrors};
use crate::website::Website;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The aggregate type name in the event store. Never rename it: stored events
/// and downstream subjects are keyed by it.
pub const AGGREGATE_TYPE: &str = "company";

pub const MAX_NAME_CHARS: usize = 200;
pub const MAX_SECTOR_CHARS: usize = 100;
pub const MAX_LOCATION_CHARS: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct CompanyId(pub Uuid);

impl std::fmt::Display for CompanyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Funding stage, as analysts filter by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, strum::IntoStaticStr)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Stage {
    PreSeed,
    Seed,
    SeriesA,
    SeriesB,
    SeriesC,
    Growth,
    Public,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// The validated, normalised details of a company.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct CompanyDetails {
    #[cfg_attr(feature = "schema", schema(example = "Acme Robotics"))]
    pub name: String,
    pub website: Website,
    #[cfg_attr(feature = "schema", schema(example = "Robotics"))]
    pub sector: Option<String>,
    pub stage: Option<Stage>,
    #[cfg_attr(feature = "schema", schema(example = "Berlin"))]
    pub location: Option<String>,
}

/// Details as a client typed them, before validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompanyInput {
    pub name: String,
    pub website: String,
    pub sector: Option<String>,
    pub stage: Option<Stage>,
    pub location: Option<String>,
}

/// A partial change. For the optional fields the outer `Option` says whether
/// the field is changed and the inner one whether it is set or cleared.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CompanyChanges {
    pub name: Option<String>,
    pub website: Option<String>,
    pub sector: Option<Option<String>>,
    pub stage: Option<Option<Stage>>,
    pub location: Option<Option<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompanyCommand {
    Add {
        actor: Actor,
        company_id: CompanyId,
        input: CompanyInput,
    },
    UpdateDetails {
        actor: Actor,
        changes: CompanyChanges,
    },
    Delete {
        actor: Actor,
    },
}

/// The type of a company's deletion, which read models of other aggregates
/// react to (a deleted company leaves every note and list).
pub const DELETED_EVENT_TYPE: &str = "company.deleted";

crate::event_family::event_family! {
    /// Everything that can happen to a company. Serialized names are the stable
    /// event types; a change to a payload's shape gets a new version and an upcaster.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
    pub enum CompanyEvent of AGGREGATE_TYPE {
        Added(CompanyAdded) = "company.added" v "1",
        DetailsUpdated(CompanyDetailsUpdated) = "company.details_updated" v "1",
        Deleted(CompanyDeleted) = "company.deleted" v "1",
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct CompanyAdded {
    pub company_id: CompanyId,
    pub workspace_id: WorkspaceId,
    pub added_by: UserId,
    #[serde(flatten)]
    pub details: CompanyDetails,
}

/// Carries the full details after the change, so a consumer never needs the
/// previous state, and names the fields that changed, for audit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct CompanyDetailsUpdated {
    pub workspace_id: WorkspaceId,
    pub updated_by: UserId,
    pub changed_fields: Vec<String>,
    #[serde(flatten)]
    pub details: CompanyDetails,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct CompanyDeleted {
    pub workspace_id: WorkspaceId,
    pub deleted_by: UserId,
}

impl CompanyEvent {
    pub fn workspace_id(&self) -> WorkspaceId {
        match self {
            CompanyEvent::Added(e) => e.workspace_id,
            CompanyEvent::DetailsUpdated(e) => e.workspace_id,
            CompanyEvent::Deleted(e) => e.workspace_id,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompanyError {
    /// Never added, deleted, or in another workspace: callers cannot tell which.
    #[error("company not found")]
    NotFound,
    #[error("a company with this id already exists")]
    AlreadyExists,
    /// Another company of the workspace has this website.
    #[error("company {existing} already has this website")]
    WebsiteTaken { existing: CompanyId },
    #[error("invalid company: {0}")]
    Invalid(ValidationErrors),
}

/// The state needed to decide commands, folded from the company's events.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct Company {
    lifecycle: Lifecycle,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
enum Lifecycle {
    #[default]
    Unborn,
    Active {
        id: CompanyId,
        workspace_id: WorkspaceId,
        added_by: UserId,
        details: CompanyDetails,
    },
    Deleted {
        id: CompanyId,
        workspace_id: WorkspaceId,
    },
}

impl Company {
    /// Folds a full history, oldest first.
    pub fn from_events<'a>(events: impl IntoIterator<Item = &'a CompanyEvent>) -> Self {
        let mut company = Company::default();
        for event in events {
            company.apply(event.clone());
        }
        company
    }

    pub fn decide(&self, command: CompanyCommand) -> Result<Vec<CompanyEvent>, CompanyError> {
        match command {
            CompanyCommand::Add {
                actor,
                company_id,
                input,
            } => self.add(actor, company_id, input),
            CompanyCommand::UpdateDetails { actor, changes } => self.update(actor, changes),
            CompanyCommand::Delete { actor } => self.delete(actor),
        }
    }

    pub fn apply(&mut self, event: CompanyEvent) {
        self.lifecycle = match (std::mem::take(&mut self.lifecycle), event) {
            (_, CompanyEvent::Added(e)) => Lifecycle::Active {
                id: e.company_id,
                workspace_id: e.workspace_id,
                added_by: e.added_by,
                details: e.details,
            },
            (
                Lifecycle::Active {
                    id,
                    workspace_id,
                    added_by,
                    ..
                },
                CompanyEvent::DetailsUpdated(e),
            ) => Lifecycle::Active {
                id,
                workspace_id,
                added_by,
                details: e.details,
            },
            (
                Lifecycle::Active {
                    id, workspace_id, ..
                },
                CompanyEvent::Deleted(_),
            ) => Lifecycle::Deleted { id, workspace_id },
            // Events are only ever produced by `decide` on a matching state, so
            // other pairs cannot occur in a consistent history; keep the state.
            (unchanged, _) => unchanged,
        };
    }

    /// The live details, or `None` if never added or deleted.
    pub fn details(&self) -> Option<&CompanyDetails> {
        match &self.lifecycle {
            Lifecycle::Active { details, .. } => Some(details),
            _ => None,
        }
    }

    pub fn workspace_id(&self) -> Option<WorkspaceId> {
        match &self.lifecycle {
            Lifecycle::Active { workspace_id, .. } | Lifecycle::Deleted { workspace_id, .. } => {
                Some(*workspace_id)
            }
            Lifecycle::Unborn => None,
        }
    }

    fn add(
        &self,
        actor: Actor,
        company_id: CompanyId,
        input: CompanyInput,
    ) -> Result<Vec<CompanyEvent>, CompanyError> {
        if !matches!(self.lifecycle, Lifecycle::Unborn) {
            return Err(CompanyError::AlreadyExists);
        }
        let details = validate_input(input)?;
        Ok(vec![CompanyEvent::Added(CompanyAdded {
            company_id,
            workspace_id: actor.workspace_id,
            added_by: actor.user_id,
            details,
        })])
    }

    fn update(
        &self,
        actor: Actor,
        changes: CompanyChanges,
    ) -> Result<Vec<CompanyEvent>, CompanyError> {
        let current = self.live_in(actor.workspace_id)?;
        let (details, changed_fields) = apply_changes(current, changes)?;
        if changed_fields.is_empty() {
            return Ok(vec![]);
        }
        Ok(vec![CompanyEvent::DetailsUpdated(CompanyDetailsUpdated {
            workspace_id: actor.workspace_id,
            updated_by: actor.user_id,
            changed_fields,
            details,
        })])
    }

    fn delete(&self, actor: Actor) -> Result<Vec<CompanyEvent>, CompanyError> {
        self.live_in(actor.workspace_id)?;
        Ok(vec![CompanyEvent::Deleted(CompanyDeleted {
            workspace_id: actor.workspace_id,
            deleted_by: actor.user_id,
        })])
    }

    /// The live details if the company exists in the caller's workspace. A
    /// company of another workspace is reported exactly like a missing one.
    fn live_in(&self, workspace_id: WorkspaceId) -> Result<&CompanyDetails, CompanyError> {
        match &self.lifecycle {
            Lifecycle::Active {
                workspace_id: owner,
                details,
                ..
            } if *owner == workspace_id => Ok(details),
            _ => Err(CompanyError::NotFound),
        }
    }
}

fn validate_input(input: CompanyInput) -> Result<CompanyDetails, CompanyError> {
    let mut errors = ValidationErrors::default();
    let name = required_text(&mut errors, "name", &input.name, MAX_NAME_CHARS);
    let website = Website::parse(&input.website)
        .map_err(|e| errors.add("website", e.to_string()))
        .ok();
    let sector = optional_text(
        &mut errors,
        "sector",
        input.sector.as_deref(),
        MAX_SECTOR_CHARS,
    );
    let location = optional_text(
        &mut errors,
        "location",
        input.location.as_deref(),
        MAX_LOCATION_CHARS,
    );
    match (errors.into_result(), website) {
        (Ok(()), Some(website)) => Ok(CompanyDetails {
            name,
            website,
            sector,
            stage: input.stage,
            location,
        }),
        (Err(errors), _) => Err(CompanyError::Invalid(errors)),
        (Ok(()), None) => unreachable!("a website error is always recorded"),
    }
}

fn apply_changes(
    current: &CompanyDetails,
    changes: CompanyChanges,
) -> Result<(CompanyDetails, Vec<String>), CompanyError> {
    let mut errors = ValidationErrors::default();
    let mut next = current.clone();
    if let Some(name) = &changes.name {
        next.name = required_text(&mut errors, "name", name, MAX_NAME_CHARS);
    }
    if let Some(website) = &changes.website {
        match Website::parse(website) {
            Ok(w) => next.website = w,
            Err(e) => errors.add("website", e.to_string()),
        }
    }
    if let Some(sector) = &changes.sector {
        next.sector = optional_text(&mut errors, "sector", sector.as_deref(), MAX_SECTOR_CHARS);
    }
    if let Some(stage) = changes.stage {
        next.stage = stage;
    }
    if let Some(location) = &changes.location {
        next.location = optional_text(
            &mut errors,
            "location",
            location.as_deref(),
            MAX_LOCATION_CHARS,
        );
    }
    errors.into_result().map_err(CompanyError::Invalid)?;
    let mut changed = Vec::new();
    if next.name != current.name {
        changed.push("name".to_owned());
    }
    if next.website != current.website {
        changed.push("website".to_owned());
    }
    if next.sector != current.sector {
        changed.push("sector".to_owned());
    }
    if next.stage != current.stage {
        changed.push("stage".to_owned());
    }
    if next.location != current.location {
        changed.push("location".to_owned());
    }
    Ok((next, changed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Role;

    fn analyst() -> Actor {
        Actor {
            workspace_id: WorkspaceId(Uuid::from_u128(1)),
            user_id: UserId(Uuid::from_u128(10)),
            role: Role::Member,
            api_key: None,
        }
    }

    fn outsider() -> Actor {
        Actor {
            workspace_id: WorkspaceId(Uuid::from_u128(2)),
            user_id: UserId(Uuid::from_u128(20)),
            role: Role::Owner,
            api_key: None,
        }
    }

    fn company_id() -> CompanyId {
        CompanyId(Uuid::from_u128(100))
    }

    fn acme_input() -> CompanyInput {
        CompanyInput {
            name: "  Acme Robotics ".into(),
            website: "https://www.Acme.io/".into(),
            sector: Some("Robotics".into()),
            stage: Some(Stage::Seed),
            location: Some("Berlin".into()),
        }
    }

    fn acme_details() -> CompanyDetails {
        CompanyDetails {
            name: "Acme Robotics".into(),
            website: Website::parse("www.acme.io").unwrap(),
            sector: Some("Robotics".into()),
            stage: Some(Stage::Seed),
            location: Some("Berlin".into()),
        }
    }

    fn acme_added() -> CompanyEvent {
        CompanyEvent::Added(CompanyAdded {
            company_id: company_id(),
            workspace_id: analyst().workspace_id,
            added_by: analyst().user_id,
            details: acme_details(),
        })
    }

    fn acme_deleted() -> CompanyEvent {
        CompanyEvent::Deleted(CompanyDeleted {
            workspace_id: analyst().workspace_id,
            deleted_by: analyst().user_id,
        })
    }

    /// given `history`, when `command` is decided.
    fn given(
        history: &[CompanyEvent],
        command: CompanyCommand,
    ) -> Result<Vec<CompanyEvent>, CompanyError> {
        Company::from_events(history).decide(command)
    }

    #[test]
    fn adding_a_new_company_records_its_normalised_details() {
        let events = given(
            &[],
            CompanyCommand::Add {
                actor: analyst(),
                company_id: company_id(),
                input: acme_input(),
            },
        );
        assert_eq!(events, Ok(vec![acme_added()]));
    }

    #[test]
    fn adding_a_company_twice_is_refused() {
        let result = given(
            &[acme_added()],
            CompanyCommand::Add {
                actor: analyst(),
                company_id: company_id(),
                input: acme_input(),
            },
        );
        assert_eq!(result, Err(CompanyError::AlreadyExists));
    }

    #[test]
    fn adding_with_invalid_fields_names_every_field_at_fault() {
        let result = given(
            &[],
            CompanyCommand::Add {
                actor: analyst(),
                company_id: company_id(),
                input: CompanyInput {
                    name: " ".into(),
                    website: "ftp://acme.io".into(),
                    sector: Some("x".repeat(MAX_SECTOR_CHARS + 1)),
                    stage: None,
                    location: None,
                },
            },
        );
        let Err(CompanyError::Invalid(errors)) = result else {
            panic!("expected a validation error, got {result:?}");
        };
        let fields: Vec<&str> = errors.fields().iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, vec!["name", "website", "sector"]);
    }

    #[test]
    fn updating_details_records_the_new_details_and_what_changed() {
        let result = given(
            &[acme_added()],
            CompanyCommand::UpdateDetails {
                actor: analyst(),
                changes: CompanyChanges {
                    name: Some("Acme".into()),
                    location: Some(None),
                    ..Default::default()
                },
            },
        );
        let expected = CompanyDetails {
            name: "Acme".into(),
            location: None,
            ..acme_details()
        };
        assert_eq!(
            result,
            Ok(vec![CompanyEvent::DetailsUpdated(CompanyDetailsUpdated {
                workspace_id: analyst().workspace_id,
                updated_by: analyst().user_id,
                changed_fields: vec!["name".into(), "location".into()],
                details: expected,
            })])
        );
    }

    #[test]
    fn an_update_that_changes_nothing_records_nothing() {
        let result = given(
            &[acme_added()],
            CompanyCommand::UpdateDetails {
                actor: analyst(),
                changes: CompanyChanges {
                    website: Some("http://WWW.Acme.io/".into()),
                    ..Default::default()
                },
            },
        );
        assert_eq!(result, Ok(vec![]));
    }

    #[test]
    fn another_workspace_cannot_update_or_delete_and_learns_nothing() {
        let update = given(
            &[acme_added()],
            CompanyCommand::UpdateDetails {
                actor: outsider(),
                changes: CompanyChanges {
                    name: Some("Mine now".into()),
                    ..Default::default()
                },
            },
        );
        let delete = given(
            &[acme_added()],
            CompanyCommand::Delete { actor: outsider() },
        );
        assert_eq!(update, Err(CompanyError::NotFound));
        assert_eq!(delete, Err(CompanyError::NotFound));
    }

    #[test]
    fn deleting_a_live_company_records_who_deleted_it() {
        let result = given(&[acme_added()], CompanyCommand::Delete { actor: analyst() });
        assert_eq!(result, Ok(vec![acme_deleted()]));
    }

    #[test]
    fn a_deleted_company_cannot_be_updated_deleted_or_re_added() {
        let history = [acme_added(), acme_deleted()];
        assert_eq!(
            given(&history, CompanyCommand::Delete { actor: analyst() }),
            Err(CompanyError::NotFound)
        );
        assert_eq!(
            given(
                &history,
                CompanyCommand::UpdateDetails {
                    actor: analyst(),
                    changes: CompanyChanges::default()
                }
            ),
            Err(CompanyError::NotFound)
        );
        assert_eq!(
            given(
                &history,
                CompanyCommand::Add {
                    actor: analyst(),
                    company_id: company_id(),
                    input: acme_input()
                }
            ),
            Err(CompanyError::AlreadyExists)
        );
    }

    #[test]
    fn a_company_that_was_never_added_is_not_found() {
        assert_eq!(
            given(&[], CompanyCommand::Delete { actor: analyst() }),
            Err(CompanyError::NotFound)
        );
    }

    #[test]
    fn events_serialize_under_their_stable_type_names() {
        let json = serde_json::to_value(acme_added()).unwrap();
        assert_eq!(json["company.added"]["website"], "www.acme.io");
        assert_eq!(json["company.added"]["stage"], "seed");
        let back: CompanyEvent = serde_json::from_value(json).unwrap();
        assert_eq!(back, acme_added());
    }
}
