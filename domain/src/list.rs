//! The List aggregate: a named set of companies an analyst curates (a
//! pipeline stage, a thesis, a portfolio). A company is in a list at most
//! once: adding it again changes nothing.

use crate::company::CompanyId;
use crate::identity::{Actor, Permission, UserId, WorkspaceId};
use crate::validation::{required_text, ValidationErrors};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use uuid::Uuid;

/// The aggregate type name in the event store. Never rename it.
pub const AGGREGATE_TYPE: &str = "list";

pub const MAX_LIST_NAME_CHARS: usize = 100;
/// Bounds the aggregate's size (and so its load time).
pub const MAX_LIST_COMPANIES: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct ListId(pub Uuid);

impl std::fmt::Display for ListId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListCommand {
    Create {
        actor: Actor,
        list_id: ListId,
        name: String,
    },
    Rename {
        actor: Actor,
        name: String,
    },
    Delete {
        actor: Actor,
    },
    /// The caller has checked that the company is live in the actor's workspace.
    AddCompany {
        actor: Actor,
        company_id: CompanyId,
    },
    RemoveCompany {
        actor: Actor,
        company_id: CompanyId,
    },
}

crate::event_family::event_family! {
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
    pub enum ListEvent of AGGREGATE_TYPE {
        Created(ListCreated) = "list.created" v "1",
        Renamed(ListRenamed) = "list.renamed" v "1",
        Deleted(ListDeleted) = "list.deleted" v "1",
        CompanyAdded(ListCompanyAdded) = "list.company_added" v "1",
        CompanyRemoved(ListCompanyRemoved) = "list.company_removed" v "1",
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct ListCreated {
    pub list_id: ListId,
    pub workspace_id: WorkspaceId,
    pub name: String,
    pub created_by: UserId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct ListRenamed {
    pub workspace_id: WorkspaceId,
    pub name: String,
    pub renamed_by: UserId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct ListDeleted {
    pub workspace_id: WorkspaceId,
    pub deleted_by: UserId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct ListCompanyAdded {
    pub workspace_id: WorkspaceId,
    pub company_id: CompanyId,
    pub added_by: UserId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct ListCompanyRemoved {
    pub workspace_id: WorkspaceId,
    pub company_id: CompanyId,
    pub removed_by: UserId,
}

impl ListEvent {
    pub fn workspace_id(&self) -> WorkspaceId {
        match self {
            ListEvent::Created(e) => e.workspace_id,
            ListEvent::Renamed(e) => e.workspace_id,
            ListEvent::Deleted(e) => e.workspace_id,
            ListEvent::CompanyAdded(e) => e.workspace_id,
            ListEvent::CompanyRemoved(e) => e.workspace_id,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListError {
    /// Never created, deleted, or in another workspace: callers cannot tell which.
    #[error("list not found")]
    NotFound,
    #[error("a list with this id already exists")]
    AlreadyExists,
    #[error("viewers may not change lists")]
    Forbidden,
    #[error("a list holds at most {MAX_LIST_COMPANIES} companies")]
    Full,
    #[error("invalid list: {0}")]
    Invalid(ValidationErrors),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
struct LiveList {
    workspace_id: WorkspaceId,
    name: String,
    companies: BTreeSet<CompanyId>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct List {
    live: Option<LiveList>,
    deleted: bool,
}

fn valid_name(name: &str) -> Result<String, ListError> {
    let mut errors = ValidationErrors::default();
    let name = required_text(&mut errors, "name", name, MAX_LIST_NAME_CHARS);
    errors.into_result().map_err(ListError::Invalid)?;
    Ok(name)
}

impl List {
    pub fn contains(&self, company: CompanyId) -> bool {
        self.live
            .as_ref()
            .is_some_and(|l| l.companies.contains(&company))
    }

    /// Whether the list is live in `workspace`.
    pub fn is_visible_in(&self, workspace: WorkspaceId) -> bool {
        self.live
            .as_ref()
            .is_some_and(|l| l.workspace_id == workspace)
    }

    pub fn decide(&self, command: ListCommand) -> Result<Vec<ListEvent>, ListError> {
        if let ListCommand::Create {
            actor,
            list_id,
            name,
        } = command
        {
            if self.live.is_some() || self.deleted {
                return Err(ListError::AlreadyExists);
            }
            require_write(&actor)?;
            return Ok(vec![ListEvent::Created(ListCreated {
                list_id,
                workspace_id: actor.workspace_id,
                name: valid_name(&name)?,
                created_by: actor.user_id,
            })]);
        }
        let (actor, list) = match &command {
            ListCommand::Create { .. } => return Err(ListError::AlreadyExists),
            ListCommand::Rename { actor, .. }
            | ListCommand::Delete { actor }
            | ListCommand::AddCompany { actor, .. }
            | ListCommand::RemoveCompany { actor, .. } => {
                let list = self
                    .live
                    .as_ref()
                    .filter(|l| l.workspace_id == actor.workspace_id)
                    .ok_or(ListError::NotFound)?;
                require_write(actor)?;
                (*actor, list)
            }
        };
        let workspace_id = actor.workspace_id;
        Ok(match command {
            ListCommand::Create { .. } => vec![],
            ListCommand::Rename { name, .. } => {
                let name = valid_name(&name)?;
                if name == list.name {
                    vec![]
                } else {
                    vec![ListEvent::Renamed(ListRenamed {
                        workspace_id,
                        name,
                        renamed_by: actor.user_id,
                    })]
                }
            }
            ListCommand::Delete { .. } => vec![ListEvent::Deleted(ListDeleted {
                workspace_id,
                deleted_by: actor.user_id,
            })],
            ListCommand::AddCompany { company_id, .. } => {
                if list.companies.contains(&company_id) {
                    vec![]
                } else if list.companies.len() >= MAX_LIST_COMPANIES {
                    return Err(ListError::Full);
                } else {
                    vec![ListEvent::CompanyAdded(ListCompanyAdded {
                        workspace_id,
                        company_id,
                        added_by: actor.user_id,
                    })]
                }
            }
            ListCommand::RemoveCompany { company_id, .. } => {
                if list.companies.contains(&company_id) {
                    vec![ListEvent::CompanyRemoved(ListCompanyRemoved {
                        workspace_id,
                        company_id,
                        removed_by: actor.user_id,
                    })]
                } else {
                    vec![]
                }
            }
        })
    }

    pub fn apply(&mut self, event: ListEvent) {
        match event {
            ListEvent::Created(e) => {
                self.live = Some(LiveList {
                    workspace_id: e.workspace_id,
                    name: e.name,
                    companies: BTreeSet::new(),
                });
            }
            ListEvent::Deleted(_) => {
                self.live = None;
                self.deleted = true;
            }
            other => {
                let Some(list) = self.live.as_mut() else {
                    return;
                };
                match other {
                    ListEvent::Renamed(e) => list.name = e.name,
                    ListEvent::CompanyAdded(e) => {
                        list.companies.insert(e.company_id);
                    }
                    ListEvent::CompanyRemoved(e) => {
                        list.companies.remove(&e.company_id);
                    }
                    ListEvent::Created(_) | ListEvent::Deleted(_) => {}
                }
            }
        }
    }
}

fn require_write(actor: &Actor) -> Result<(), ListError> {
    if actor.may(Permission::WriteData) {
        Ok(())
    } else {
        Err(ListError::Forbidden)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Role;

    const WS: WorkspaceId = WorkspaceId(Uuid::from_u128(1));

    fn actor(role: Role) -> Actor {
        Actor {
            workspace_id: WS,
            user_id: UserId(Uuid::from_u128(2)),
            role,
            api_key: None,
        }
    }

    fn company(n: u128) -> CompanyId {
        CompanyId(Uuid::from_u128(n))
    }

    fn pipeline() -> List {
        let mut list = List::default();
        for e in list
            .decide(ListCommand::Create {
                actor: actor(Role::Member),
                list_id: ListId(Uuid::from_u128(9)),
                name: " Pipeline ".into(),
            })
            .unwrap()
        {
            list.apply(e);
        }
        list
    }

    fn run(list: &mut List, command: ListCommand) -> usize {
        let events = list.decide(command).unwrap();
        let n = events.len();
        for e in events {
            list.apply(e);
        }
        n
    }

    #[test]
    fn adding_a_company_twice_is_one_membership_and_no_error() {
        let mut list = pipeline();
        let add = ListCommand::AddCompany {
            actor: actor(Role::Member),
            company_id: company(5),
        };
        assert_eq!(run(&mut list, add.clone()), 1);
        assert_eq!(run(&mut list, add), 0);
        assert!(list.contains(company(5)));
    }

    #[test]
    fn removing_a_company_not_in_the_list_changes_nothing() {
        let mut list = pipeline();
        let remove = ListCommand::RemoveCompany {
            actor: actor(Role::Member),
            company_id: company(5),
        };
        assert_eq!(run(&mut list, remove), 0);
    }

    #[test]
    fn viewers_may_not_change_lists_and_other_workspaces_see_not_found() {
        let list = pipeline();
        assert_eq!(
            list.decide(ListCommand::Delete {
                actor: actor(Role::Viewer)
            }),
            Err(ListError::Forbidden)
        );
        let stranger = Actor {
            workspace_id: WorkspaceId(Uuid::from_u128(3)),
            ..actor(Role::Owner)
        };
        assert_eq!(
            list.decide(ListCommand::Delete { actor: stranger }),
            Err(ListError::NotFound)
        );
    }

    #[test]
    fn a_deleted_list_is_gone_and_an_empty_name_is_refused() {
        let mut list = pipeline();
        assert!(matches!(
            list.decide(ListCommand::Rename {
                actor: actor(Role::Member),
                name: " ".into()
            }),
            Err(ListError::Invalid(_))
        ));
        run(
            &mut list,
            ListCommand::Delete {
                actor: actor(Role::Member),
            },
        );
        assert_eq!(
            list.decide(ListCommand::AddCompany {
                actor: actor(Role::Member),
                company_id: company(5)
            }),
            Err(ListError::NotFound)
        );
    }
}
