//! The Note aggregate: an analyst's plain-text note on a company.
//!
//! Content is stored exactly as written (markup is text, never
//! interpreted). Members edit and delete their own notes; owners and admins
//! any note of the workspace.

use crate::company::CompanyId;
use crate::identity::{Actor, Permission, Role, UserId, WorkspaceId};
use crate::personal::Personal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The aggregate type name in the event store. Never rename it.
pub const AGGREGATE_TYPE: &str = "note";

pub const MAX_NOTE_CHARS: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct NoteId(pub Uuid);

impl std::fmt::Display for NoteId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoteCommand {
    /// The caller has checked that the company is live in the actor's workspace.
    Add {
        actor: Actor,
        note_id: NoteId,
        company_id: CompanyId,
        content: String,
    },
    Edit {
        actor: Actor,
        content: String,
    },
    Delete {
        actor: Actor,
    },
}

crate::event_family::event_family! {
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
    pub enum NoteEvent of AGGREGATE_TYPE {
        Added(NoteAdded) = "note.added" v "2",
        Edited(NoteEdited) = "note.edited" v "2",
        Deleted(NoteDeleted) = "note.deleted" v "1",
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct NoteAdded {
    pub note_id: NoteId,
    pub company_id: CompanyId,
    pub workspace_id: WorkspaceId,
    #[cfg_attr(feature = "schema", schema(value_type = String, extensions(("x-personal" = json!(true)))))]
    pub content: Personal<String>,
    pub added_by: UserId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct NoteEdited {
    pub workspace_id: WorkspaceId,
    #[cfg_attr(feature = "schema", schema(value_type = String, extensions(("x-personal" = json!(true)))))]
    pub content: Personal<String>,
    pub edited_by: UserId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct NoteDeleted {
    pub workspace_id: WorkspaceId,
    pub deleted_by: UserId,
}

impl NoteEvent {
    pub fn workspace_id(&self) -> WorkspaceId {
        match self {
            NoteEvent::Added(e) => e.workspace_id,
            NoteEvent::Edited(e) => e.workspace_id,
            NoteEvent::Deleted(e) => e.workspace_id,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    /// Never added, deleted, or in another workspace: callers cannot tell which.
    #[error("note not found")]
    NotFound,
    #[error("a note with this id already exists")]
    AlreadyExists,
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("content {0}")]
    InvalidContent(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
struct LiveNote {
    workspace_id: WorkspaceId,
    company_id: CompanyId,
    author: UserId,
    #[cfg_attr(feature = "schema", schema(value_type = String, extensions(("x-personal" = json!(true)))))]
    content: Personal<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct Note {
    live: Option<LiveNote>,
    deleted: bool,
}

/// Trims surrounding whitespace and checks the length and characters;
/// newlines and tabs are kept, other control characters and deceptive
/// ones refused (see [`crate::validation::is_deceptive`]).
pub fn validate_content(content: &str) -> Result<String, NoteError> {
    let trimmed = content.trim();
    if trimmed.is_empty() {
        return Err(NoteError::InvalidContent("must not be empty".to_owned()));
    }
    if trimmed.chars().count() > MAX_NOTE_CHARS {
        return Err(NoteError::InvalidContent(format!(
            "must be at most {MAX_NOTE_CHARS} characters"
        )));
    }
    if trimmed
        .chars()
        .any(crate::validation::is_deceptive_in_multiline_text)
    {
        return Err(NoteError::InvalidContent(
            "must not contain control, bidi-override or invisible characters".to_owned(),
        ));
    }
    Ok(trimmed.to_owned())
}

impl Note {
    pub fn company_id(&self) -> Option<CompanyId> {
        self.live.as_ref().map(|n| n.company_id)
    }

    pub fn decide(&self, command: NoteCommand) -> Result<Vec<NoteEvent>, NoteError> {
        match command {
            NoteCommand::Add {
                actor,
                note_id,
                company_id,
                content,
            } => {
                if self.live.is_some() || self.deleted {
                    return Err(NoteError::AlreadyExists);
                }
                require_write(&actor)?;
                Ok(vec![NoteEvent::Added(NoteAdded {
                    note_id,
                    company_id,
                    workspace_id: actor.workspace_id,
                    content: Personal::new(validate_content(&content)?),
                    added_by: actor.user_id,
                })])
            }
            NoteCommand::Edit { actor, content } => {
                let note = self.editable_by(&actor)?;
                let content = validate_content(&content)?;
                if note.content == content {
                    return Ok(vec![]);
                }
                Ok(vec![NoteEvent::Edited(NoteEdited {
                    workspace_id: actor.workspace_id,
                    content: Personal::new(content),
                    edited_by: actor.user_id,
                })])
            }
            NoteCommand::Delete { actor } => {
                self.editable_by(&actor)?;
                Ok(vec![NoteEvent::Deleted(NoteDeleted {
                    workspace_id: actor.workspace_id,
                    deleted_by: actor.user_id,
                })])
            }
        }
    }

    fn editable_by(&self, actor: &Actor) -> Result<&LiveNote, NoteError> {
        let note = self
            .live
            .as_ref()
            .filter(|n| n.workspace_id == actor.workspace_id)
            .ok_or(NoteError::NotFound)?;
        require_write(actor)?;
        let manager = matches!(actor.role, Role::Owner | Role::Admin);
        if note.author != actor.user_id && !manager {
            return Err(NoteError::Forbidden(
                "only the author, an owner or an admin may change a note",
            ));
        }
        Ok(note)
    }

    pub fn apply(&mut self, event: NoteEvent) {
        match event {
            NoteEvent::Added(e) => {
                self.live = Some(LiveNote {
                    workspace_id: e.workspace_id,
                    company_id: e.company_id,
                    author: e.added_by,
                    content: e.content,
                });
            }
            NoteEvent::Edited(e) => {
                if let Some(note) = self.live.as_mut() {
                    note.content = e.content;
                }
            }
            NoteEvent::Deleted(_) => {
                self.live = None;
                self.deleted = true;
            }
        }
    }
}

fn require_write(actor: &Actor) -> Result<(), NoteError> {
    if actor.may(Permission::WriteData) {
        Ok(())
    } else {
        Err(NoteError::Forbidden("viewers may not write notes"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WS: WorkspaceId = WorkspaceId(Uuid::from_u128(1));

    fn actor(n: u128, role: Role) -> Actor {
        Actor {
            workspace_id: WS,
            user_id: UserId(Uuid::from_u128(n)),
            role,
            api_key: None,
        }
    }

    fn written_by(n: u128) -> Note {
        let mut note = Note::default();
        for e in note
            .decide(NoteCommand::Add {
                actor: actor(n, Role::Member),
                note_id: NoteId(Uuid::from_u128(50)),
                company_id: CompanyId(Uuid::from_u128(60)),
                content: "  Met the founders. <b>Strong</b> team.\n".into(),
            })
            .unwrap()
        {
            note.apply(e);
        }
        note
    }

    #[test]
    fn content_is_kept_as_text_with_markup_and_newlines_but_trimmed() {
        let note = written_by(2);
        assert_eq!(
            note.live.unwrap().content.known().map(String::as_str),
            Some("Met the founders. <b>Strong</b> team.")
        );
        assert!(validate_content("line one\nline two").is_ok());
    }

    #[test]
    fn empty_oversized_or_control_character_content_is_refused() {
        assert!(validate_content("   ").is_err());
        assert!(validate_content(&"x".repeat(MAX_NOTE_CHARS + 1)).is_err());
        assert!(validate_content("bell \u{7}").is_err());
    }

    #[test]
    fn viewers_may_not_add_notes() {
        let result = Note::default().decide(NoteCommand::Add {
            actor: actor(2, Role::Viewer),
            note_id: NoteId(Uuid::from_u128(50)),
            company_id: CompanyId(Uuid::from_u128(60)),
            content: "hi".into(),
        });
        assert!(matches!(result, Err(NoteError::Forbidden(_))));
    }

    #[test]
    fn a_member_changes_only_their_own_notes_an_admin_any() {
        let note = written_by(2);
        let edit = |n, role| NoteCommand::Edit {
            actor: actor(n, role),
            content: "Updated".into(),
        };
        assert!(note.decide(edit(2, Role::Member)).is_ok());
        assert!(matches!(
            note.decide(edit(3, Role::Member)),
            Err(NoteError::Forbidden(_))
        ));
        assert!(note.decide(edit(4, Role::Admin)).is_ok());
    }

    #[test]
    fn a_deleted_note_or_another_workspace_sees_not_found() {
        let mut note = written_by(2);
        let stranger = Actor {
            workspace_id: WorkspaceId(Uuid::from_u128(9)),
            ..actor(2, Role::Owner)
        };
        assert_eq!(
            note.decide(NoteCommand::Delete { actor: stranger }),
            Err(NoteError::NotFound)
        );
        for e in note
            .decide(NoteCommand::Delete {
                actor: actor(2, Role::Member),
            })
            .unwrap()
        {
            note.apply(e);
        }
        assert_eq!(
            note.decide(NoteCommand::Edit {
                actor: actor(2, Role::Member),
                content: "again".into()
            }),
            Err(NoteError::NotFound)
        );
    }

    #[test]
    fn an_unchanged_edit_appends_nothing() {
        let note = written_by(2);
        assert_eq!(
            note.decide(NoteCommand::Edit {
                actor: actor(2, Role::Member),
                content: "Met the founders. <b>Strong</b> team.".into()
            }),
            Ok(vec![])
        );
    }
}
