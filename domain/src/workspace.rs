//! The Workspace aggregate: a team's tenant, its members and roles, and the
//! API keys machine clients act with.
//!
//! The rules for who may manage whom live here, next to the state they
//! depend on: only owners touch owners, admins manage everyone else, a
//! workspace always keeps an owner, and an API key never carries more
//! power than its creator.

use crate::identity::{Actor, Permission, Role, UserId, WorkspaceId};
use crate::personal::Personal;
use crate::user::Email;
use crate::validation::{required_text, ValidationErrors};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

/// The aggregate type name in the event store. Never rename it.
pub const AGGREGATE_TYPE: &str = "workspace";

/// Live API keys one member may hold in a workspace: each is a credential
/// to track and rotate, and a leaked account must not mint them unbounded.
pub const MAX_LIVE_API_KEYS_PER_MEMBER: usize = 20;

pub const MAX_WORKSPACE_NAME_CHARS: usize = 100;
pub const MAX_API_KEY_NAME_CHARS: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkspaceCommand {
    /// Creates the workspace with its creator as the only owner.
    Create {
        workspace_id: WorkspaceId,
        name: String,
        created_by: UserId,
        creator_email: Email,
        personal: bool,
    },
    /// Invites an e-mail address, whether or not it has an account (the
    /// inviter learns nothing about that); its holder joins only by
    /// accepting. Inviting again replaces the role and keeps the id.
    Invite {
        actor: Actor,
        invitation_id: Uuid,
        email: Email,
        role: Role,
    },
    CancelInvitation {
        actor: Actor,
        invitation_id: Uuid,
    },
    /// The invitation's addressee, signed in as `user_id` with `email`,
    /// joins, if they proved they own that address.
    AcceptInvitation {
        invitation_id: Uuid,
        user_id: UserId,
        email: Email,
        email_verified: bool,
    },
    /// The addressee turns the invitation down.
    DeclineInvitation {
        invitation_id: Uuid,
        user_id: UserId,
        email: Email,
    },
    ChangeRole {
        actor: Actor,
        user_id: UserId,
        role: Role,
    },
    RemoveMember {
        actor: Actor,
        user_id: UserId,
    },
    Leave {
        actor: Actor,
    },
    CreateApiKey {
        actor: Actor,
        key_id: Uuid,
        name: String,
        role: Role,
        /// The first characters of the key, shown in listings to recognise it.
        prefix: String,
    },
    RevokeApiKey {
        actor: Actor,
        key_id: Uuid,
    },
    /// What the workspace invests in, for the enrichment fit score.
    SetThesis {
        actor: Actor,
        thesis: crate::enrichment::Thesis,
    },
}

crate::event_family::event_family! {
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
    pub enum WorkspaceEvent of AGGREGATE_TYPE {
        Created(WorkspaceCreated) = "workspace.created" v "1",
        MemberAdded(MemberAdded) = "workspace.member_added" v "2",
        MemberInvited(MemberInvited) = "workspace.member_invited" v "2",
        InvitationCancelled(InvitationCancelled) = "workspace.invitation_cancelled" v "2",
        InvitationDeclined(InvitationDeclined) = "workspace.invitation_declined" v "2",
        MemberRoleChanged(MemberRoleChanged) = "workspace.member_role_changed" v "1",
        MemberRemoved(MemberRemoved) = "workspace.member_removed" v "1",
        ApiKeyCreated(ApiKeyCreated) = "workspace.api_key_created" v "1",
        ApiKeyRevoked(ApiKeyRevoked) = "workspace.api_key_revoked" v "1",
        ThesisSet(ThesisSet) = "workspace.thesis_set" v "1",
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct ThesisSet {
    pub workspace_id: WorkspaceId,
    pub thesis: crate::enrichment::Thesis,
    pub set_by: UserId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct WorkspaceCreated {
    pub workspace_id: WorkspaceId,
    pub name: String,
    pub created_by: UserId,
    /// Created at sign-up for one user.
    pub personal: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct MemberAdded {
    pub workspace_id: WorkspaceId,
    pub user_id: UserId,
    #[cfg_attr(feature = "schema", schema(value_type = String, extensions(("x-personal" = json!(true)))))]
    pub email: Personal<Email>,
    pub role: Role,
    pub added_by: UserId,
}

/// An invitation for an e-mail address. Accepting it is a `member_added`
/// with the same email, which ends the invitation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct MemberInvited {
    pub workspace_id: WorkspaceId,
    pub invitation_id: Uuid,
    #[cfg_attr(feature = "schema", schema(value_type = String, extensions(("x-personal" = json!(true)))))]
    pub email: Personal<Email>,
    pub role: Role,
    pub invited_by: UserId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct InvitationCancelled {
    pub workspace_id: WorkspaceId,
    pub invitation_id: Uuid,
    #[cfg_attr(feature = "schema", schema(value_type = String, extensions(("x-personal" = json!(true)))))]
    pub email: Personal<Email>,
    pub cancelled_by: UserId,
}

/// The addressee turned the invitation down.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct InvitationDeclined {
    pub workspace_id: WorkspaceId,
    pub invitation_id: Uuid,
    #[cfg_attr(feature = "schema", schema(value_type = String, extensions(("x-personal" = json!(true)))))]
    pub email: Personal<Email>,
    pub declined_by: UserId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct MemberRoleChanged {
    pub workspace_id: WorkspaceId,
    pub user_id: UserId,
    pub previous_role: Role,
    pub role: Role,
    pub changed_by: UserId,
}

/// A member left (`removed_by == user_id`) or was removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct MemberRemoved {
    pub workspace_id: WorkspaceId,
    pub user_id: UserId,
    pub removed_by: UserId,
}

/// The key's secret is never in an event; only its id and display prefix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct ApiKeyCreated {
    pub workspace_id: WorkspaceId,
    pub key_id: Uuid,
    pub name: String,
    pub prefix: String,
    pub role: Role,
    pub created_by: UserId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct ApiKeyRevoked {
    pub workspace_id: WorkspaceId,
    pub key_id: Uuid,
    pub revoked_by: UserId,
}

impl WorkspaceEvent {
    pub fn workspace_id(&self) -> WorkspaceId {
        match self {
            WorkspaceEvent::Created(e) => e.workspace_id,
            WorkspaceEvent::MemberAdded(e) => e.workspace_id,
            WorkspaceEvent::MemberInvited(e) => e.workspace_id,
            WorkspaceEvent::InvitationCancelled(e) => e.workspace_id,
            WorkspaceEvent::InvitationDeclined(e) => e.workspace_id,
            WorkspaceEvent::MemberRoleChanged(e) => e.workspace_id,
            WorkspaceEvent::MemberRemoved(e) => e.workspace_id,
            WorkspaceEvent::ApiKeyCreated(e) => e.workspace_id,
            WorkspaceEvent::ApiKeyRevoked(e) => e.workspace_id,
            WorkspaceEvent::ThesisSet(e) => e.workspace_id,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkspaceError {
    /// Never created, or the caller is not a member: callers cannot tell which.
    #[error("workspace not found")]
    NotFound,
    #[error("a workspace with this id already exists")]
    AlreadyExists,
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("this user is already a member")]
    AlreadyMember,
    #[error("no such member in this workspace")]
    MemberNotFound,
    #[error("a workspace must keep at least one owner; make someone else owner first")]
    LastOwner,
    #[error("no such API key in this workspace")]
    ApiKeyNotFound,
    #[error("no such invitation in this workspace")]
    InvitationNotFound,
    #[error("verify your e-mail address first: only its proven owner may join through it")]
    EmailUnverified,
    #[error("at most {MAX_LIVE_API_KEYS_PER_MEMBER} live API keys per member; revoke one first")]
    TooManyApiKeys,
    #[error("invalid input: {0}")]
    Invalid(ValidationErrors),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct Member {
    pub role: Role,
    #[cfg_attr(feature = "schema", schema(value_type = String, extensions(("x-personal" = json!(true)))))]
    pub email: Personal<Email>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct ApiKey {
    pub name: String,
    pub prefix: String,
    pub role: Role,
    pub created_by: UserId,
    pub revoked: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct WorkspaceState {
    pub id: WorkspaceId,
    pub name: String,
    pub personal: bool,
    pub members: BTreeMap<UserId, Member>,
    pub api_keys: BTreeMap<Uuid, ApiKey>,
    /// Pending invitations by email.
    #[serde(default)]
    pub invitations: BTreeMap<Email, Invitation>,
    /// What the workspace invests in (empty: no preference yet).
    #[serde(default)]
    pub thesis: crate::enrichment::Thesis,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct Invitation {
    pub id: Uuid,
    pub role: Role,
    pub invited_by: UserId,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct Workspace {
    state: Option<WorkspaceState>,
}

impl Workspace {
    pub fn from_events<'a>(events: impl IntoIterator<Item = &'a WorkspaceEvent>) -> Self {
        let mut workspace = Workspace::default();
        for event in events {
            workspace.apply(event.clone());
        }
        workspace
    }

    pub fn state(&self) -> Option<&WorkspaceState> {
        self.state.as_ref()
    }

    /// The member's role, if `user` belongs to the workspace.
    pub fn role_of(&self, user: UserId) -> Option<Role> {
        self.state.as_ref()?.members.get(&user).map(|m| m.role)
    }

    /// What a live API key may do: its own role capped by its creator's
    /// current one. A revoked key, or one whose creator has left, is dead.
    pub fn api_key_access(&self, key_id: Uuid) -> Option<(UserId, Role)> {
        let state = self.state.as_ref()?;
        let key = state.api_keys.get(&key_id).filter(|k| !k.revoked)?;
        let creator_role = state.members.get(&key.created_by)?.role;
        Some((key.created_by, key.role.min(creator_role)))
    }

    pub fn decide(&self, command: WorkspaceCommand) -> Result<Vec<WorkspaceEvent>, WorkspaceError> {
        if let WorkspaceCommand::Create {
            workspace_id,
            name,
            created_by,
            creator_email,
            personal,
        } = command
        {
            if self.state.is_some() {
                return Err(WorkspaceError::AlreadyExists);
            }
            return create(workspace_id, name, created_by, creator_email, personal);
        }
        let state = self.state.as_ref().ok_or(WorkspaceError::NotFound)?;
        match command {
            WorkspaceCommand::Create { .. } => Err(WorkspaceError::AlreadyExists),
            WorkspaceCommand::Invite {
                actor,
                invitation_id,
                email,
                role,
            } => state.invite(actor, invitation_id, email, role),
            WorkspaceCommand::CancelInvitation {
                actor,
                invitation_id,
            } => state.cancel_invitation(actor, invitation_id),
            WorkspaceCommand::AcceptInvitation {
                invitation_id,
                user_id,
                email,
                email_verified,
            } => state.accept_invitation(invitation_id, user_id, email, email_verified),
            WorkspaceCommand::DeclineInvitation {
                invitation_id,
                user_id,
                email,
            } => state.decline_invitation(invitation_id, user_id, email),
            WorkspaceCommand::ChangeRole {
                actor,
                user_id,
                role,
            } => state.change_role(actor, user_id, role),
            WorkspaceCommand::RemoveMember { actor, user_id } => {
                state.remove_member(actor, user_id)
            }
            WorkspaceCommand::Leave { actor } => state.leave(actor),
            WorkspaceCommand::CreateApiKey {
                actor,
                key_id,
                name,
                role,
                prefix,
            } => state.create_api_key(actor, key_id, name, role, prefix),
            WorkspaceCommand::SetThesis { actor, thesis } => state.set_thesis(actor, thesis),
            WorkspaceCommand::RevokeApiKey { actor, key_id } => state.revoke_api_key(actor, key_id),
        }
    }

    pub fn apply(&mut self, event: WorkspaceEvent) {
        if let WorkspaceEvent::Created(e) = &event {
            self.state = Some(WorkspaceState {
                id: e.workspace_id,
                name: e.name.clone(),
                personal: e.personal,
                members: BTreeMap::new(),
                api_keys: BTreeMap::new(),
                invitations: BTreeMap::new(),
                thesis: crate::enrichment::Thesis::default(),
            });
            return;
        }
        // Events are only produced by `decide` on a created workspace.
        let Some(state) = self.state.as_mut() else {
            return;
        };
        match event {
            WorkspaceEvent::Created(_) => {}
            WorkspaceEvent::MemberInvited(e) => {
                // An invitation to an erased address can never be taken up.
                let Some(email) = e.email.into_known() else {
                    return;
                };
                state.invitations.insert(
                    email,
                    Invitation {
                        id: e.invitation_id,
                        role: e.role,
                        invited_by: e.invited_by,
                    },
                );
            }
            WorkspaceEvent::InvitationCancelled(e) => {
                state.end_invitation(e.invitation_id);
            }
            WorkspaceEvent::InvitationDeclined(e) => {
                state.end_invitation(e.invitation_id);
            }
            WorkspaceEvent::MemberAdded(e) => {
                if let Some(email) = e.email.known() {
                    state.invitations.remove(email);
                }
                state.members.insert(
                    e.user_id,
                    Member {
                        role: e.role,
                        email: e.email,
                    },
                );
            }
            WorkspaceEvent::MemberRoleChanged(e) => {
                if let Some(member) = state.members.get_mut(&e.user_id) {
                    member.role = e.role;
                }
            }
            WorkspaceEvent::MemberRemoved(e) => {
                state.members.remove(&e.user_id);
            }
            WorkspaceEvent::ThesisSet(e) => state.thesis = e.thesis,
            WorkspaceEvent::ApiKeyCreated(e) => {
                state.api_keys.insert(
                    e.key_id,
                    ApiKey {
                        name: e.name,
                        prefix: e.prefix,
                        role: e.role,
                        created_by: e.created_by,
                        revoked: false,
                    },
                );
            }
            WorkspaceEvent::ApiKeyRevoked(e) => {
                if let Some(key) = state.api_keys.get_mut(&e.key_id) {
                    key.revoked = true;
                }
            }
        }
    }
}

fn require(role: Role, permission: Permission, why: &'static str) -> Result<(), WorkspaceError> {
    if role.allows(permission) {
        Ok(())
    } else {
        Err(WorkspaceError::Forbidden(why))
    }
}

/// A new workspace with its creator as the only owner.
fn create(
    workspace_id: WorkspaceId,
    name: String,
    created_by: UserId,
    creator_email: Email,
    personal: bool,
) -> Result<Vec<WorkspaceEvent>, WorkspaceError> {
    let mut errors = ValidationErrors::default();
    let name = required_text(&mut errors, "name", &name, MAX_WORKSPACE_NAME_CHARS);
    errors.into_result().map_err(WorkspaceError::Invalid)?;
    Ok(vec![
        WorkspaceEvent::Created(WorkspaceCreated {
            workspace_id,
            name,
            created_by,
            personal,
        }),
        WorkspaceEvent::MemberAdded(MemberAdded {
            workspace_id,
            user_id: created_by,
            email: Personal::new(creator_email),
            role: Role::Owner,
            added_by: created_by,
        }),
    ])
}

impl WorkspaceState {
    /// Ends the invitation with this id (found by id: its address may
    /// have been erased since).
    fn end_invitation(&mut self, invitation: Uuid) {
        self.invitations
            .retain(|_, pending| pending.id != invitation);
    }

    // One decision per command; `Workspace::decide` dispatches.

    /// The actor's role, if it may bring someone in with `role`: managers
    /// only, and only owners make owners.
    fn granting(
        &self,
        actor: &Actor,
        role: Role,
        why: &'static str,
    ) -> Result<Role, WorkspaceError> {
        let acting = self.acting_role(actor)?;
        require(acting, Permission::ManageMembers, why)?;
        if role == Role::Owner && acting != Role::Owner {
            return Err(WorkspaceError::Forbidden(
                "only owners may make someone an owner",
            ));
        }
        Ok(acting)
    }

    fn invite(
        &self,
        actor: Actor,
        invitation_id: Uuid,
        email: Email,
        role: Role,
    ) -> Result<Vec<WorkspaceEvent>, WorkspaceError> {
        self.granting(&actor, role, "only owners and admins invite members")?;
        if self.members.values().any(|m| m.email == email) {
            return Err(WorkspaceError::AlreadyMember);
        }
        // A re-invitation keeps the id, so links to it stay valid.
        let invitation_id = self.invitations.get(&email).map_or(invitation_id, |i| i.id);
        Ok(vec![WorkspaceEvent::MemberInvited(MemberInvited {
            workspace_id: self.id,
            invitation_id,
            email: Personal::new(email),
            role,
            invited_by: actor.user_id,
        })])
    }

    fn cancel_invitation(
        &self,
        actor: Actor,
        invitation_id: Uuid,
    ) -> Result<Vec<WorkspaceEvent>, WorkspaceError> {
        let acting = self.acting_role(&actor)?;
        require(
            acting,
            Permission::ManageMembers,
            "only owners and admins cancel invitations",
        )?;
        let email = self
            .invitations
            .iter()
            .find(|(_, i)| i.id == invitation_id)
            .map(|(email, _)| email.clone())
            .ok_or(WorkspaceError::InvitationNotFound)?;
        Ok(vec![WorkspaceEvent::InvitationCancelled(
            InvitationCancelled {
                workspace_id: self.id,
                invitation_id,
                email: Personal::new(email),
                cancelled_by: actor.user_id,
            },
        )])
    }

    /// The invitation addressed to `email` with this id: an id that is
    /// not addressed to the caller is "not found", like one that never was.
    fn invitation_for(
        &self,
        invitation_id: Uuid,
        email: &Email,
    ) -> Result<&Invitation, WorkspaceError> {
        self.invitations
            .get(email)
            .filter(|i| i.id == invitation_id)
            .ok_or(WorkspaceError::InvitationNotFound)
    }

    fn decline_invitation(
        &self,
        invitation_id: Uuid,
        user_id: UserId,
        email: Email,
    ) -> Result<Vec<WorkspaceEvent>, WorkspaceError> {
        self.invitation_for(invitation_id, &email)?;
        Ok(vec![WorkspaceEvent::InvitationDeclined(
            InvitationDeclined {
                workspace_id: self.id,
                invitation_id,
                email: Personal::new(email),
                declined_by: user_id,
            },
        )])
    }

    fn accept_invitation(
        &self,
        invitation_id: Uuid,
        user_id: UserId,
        email: Email,
        email_verified: bool,
    ) -> Result<Vec<WorkspaceEvent>, WorkspaceError> {
        let invitation = self.invitation_for(invitation_id, &email)?;
        // A squatter who registered someone else's address must not walk in
        // when that address is invited.
        if !email_verified {
            return Err(WorkspaceError::EmailUnverified);
        }
        if self.members.contains_key(&user_id) {
            return Ok(vec![]);
        }
        Ok(vec![WorkspaceEvent::MemberAdded(MemberAdded {
            workspace_id: self.id,
            user_id,
            email: Personal::new(email),
            role: invitation.role,
            added_by: invitation.invited_by,
        })])
    }

    fn change_role(
        &self,
        actor: Actor,
        user_id: UserId,
        role: Role,
    ) -> Result<Vec<WorkspaceEvent>, WorkspaceError> {
        let acting = self.acting_role(&actor)?;
        require(
            acting,
            Permission::ManageMembers,
            "only owners and admins change roles",
        )?;
        let current = self.member_role(user_id)?;
        if current == role {
            return Ok(vec![]);
        }
        if (current == Role::Owner || role == Role::Owner) && acting != Role::Owner {
            return Err(WorkspaceError::Forbidden(
                "only owners may grant or take the owner role",
            ));
        }
        if current == Role::Owner && self.owner_count() == 1 {
            return Err(WorkspaceError::LastOwner);
        }
        Ok(vec![WorkspaceEvent::MemberRoleChanged(MemberRoleChanged {
            workspace_id: self.id,
            user_id,
            previous_role: current,
            role,
            changed_by: actor.user_id,
        })])
    }

    fn remove_member(
        &self,
        actor: Actor,
        user_id: UserId,
    ) -> Result<Vec<WorkspaceEvent>, WorkspaceError> {
        let acting = self.acting_role(&actor)?;
        let current = self.member_role(user_id)?;
        if user_id != actor.user_id || actor.api_key.is_some() {
            require(
                acting,
                Permission::ManageMembers,
                "only owners and admins remove members",
            )?;
            if current == Role::Owner && acting != Role::Owner {
                return Err(WorkspaceError::Forbidden("only owners may remove an owner"));
            }
        }
        self.removal(user_id, current, actor.user_id)
    }

    fn leave(&self, actor: Actor) -> Result<Vec<WorkspaceEvent>, WorkspaceError> {
        let acting = self.acting_role(&actor)?;
        if actor.api_key.is_some() {
            // A key acts for its creator but is not them: taking them out
            // of the workspace is managing membership.
            require(
                acting,
                Permission::ManageMembers,
                "an API key may not remove its creator unless its role manages members",
            )?;
        }
        let current = self.member_role(actor.user_id)?;
        self.removal(actor.user_id, current, actor.user_id)
    }

    fn create_api_key(
        &self,
        actor: Actor,
        key_id: Uuid,
        name: String,
        role: Role,
        prefix: String,
    ) -> Result<Vec<WorkspaceEvent>, WorkspaceError> {
        let acting = self.acting_role(&actor)?;
        require(
            acting,
            Permission::CreateApiKeys,
            "viewers may not create API keys",
        )?;
        if actor.api_key.is_some() {
            require(
                acting,
                Permission::ManageApiKeys,
                "an API key may not create keys unless its role manages keys",
            )?;
        }
        if role.rank() > acting.rank() {
            let mut errors = ValidationErrors::default();
            errors.add(
                "role",
                format!("must be no higher than your own role ({})", acting.as_str()),
            );
            return Err(WorkspaceError::Invalid(errors));
        }
        let mut errors = ValidationErrors::default();
        let name = required_text(&mut errors, "name", &name, MAX_API_KEY_NAME_CHARS);
        errors.into_result().map_err(WorkspaceError::Invalid)?;
        if self.api_keys.contains_key(&key_id) {
            return Err(WorkspaceError::AlreadyExists);
        }
        let live = self
            .api_keys
            .values()
            .filter(|k| k.created_by == actor.user_id && !k.revoked)
            .count();
        if live >= MAX_LIVE_API_KEYS_PER_MEMBER {
            return Err(WorkspaceError::TooManyApiKeys);
        }
        Ok(vec![WorkspaceEvent::ApiKeyCreated(ApiKeyCreated {
            workspace_id: self.id,
            key_id,
            name,
            prefix,
            role,
            created_by: actor.user_id,
        })])
    }

    fn set_thesis(
        &self,
        actor: Actor,
        thesis: crate::enrichment::Thesis,
    ) -> Result<Vec<WorkspaceEvent>, WorkspaceError> {
        let acting = self.acting_role(&actor)?;
        require(
            acting,
            Permission::ManageMembers,
            "only owners and admins set the workspace's thesis",
        )?;
        if thesis == self.thesis {
            return Ok(vec![]);
        }
        Ok(vec![WorkspaceEvent::ThesisSet(ThesisSet {
            workspace_id: self.id,
            thesis,
            set_by: actor.user_id,
        })])
    }

    fn revoke_api_key(
        &self,
        actor: Actor,
        key_id: Uuid,
    ) -> Result<Vec<WorkspaceEvent>, WorkspaceError> {
        let acting = self.acting_role(&actor)?;
        let key = self
            .api_keys
            .get(&key_id)
            .ok_or(WorkspaceError::ApiKeyNotFound)?;
        let own = key.created_by == actor.user_id;
        // A key may revoke itself (a leaked key's holder can kill it), but
        // not its creator's other keys unless its role manages keys.
        let through_other_key = actor.api_key.is_some_and(|k| k != key_id);
        if !acting.allows(Permission::ManageApiKeys) {
            if !own {
                // Someone else's key is invisible to a plain member.
                return Err(WorkspaceError::ApiKeyNotFound);
            }
            if through_other_key {
                return Err(WorkspaceError::Forbidden(
                    "an API key may not revoke other keys unless its role manages keys",
                ));
            }
        }
        if key.revoked {
            return Ok(vec![]);
        }
        Ok(vec![WorkspaceEvent::ApiKeyRevoked(ApiKeyRevoked {
            workspace_id: self.id,
            key_id,
            revoked_by: actor.user_id,
        })])
    }

    /// The role the actor acts with: the one they were authenticated with
    /// (an API key's may be lower) but never more than their membership's.
    fn acting_role(&self, actor: &Actor) -> Result<Role, WorkspaceError> {
        if actor.workspace_id != self.id {
            return Err(WorkspaceError::NotFound);
        }
        let member = self
            .members
            .get(&actor.user_id)
            .ok_or(WorkspaceError::NotFound)?;
        Ok(actor.role.min(member.role))
    }

    fn member_role(&self, user: UserId) -> Result<Role, WorkspaceError> {
        self.members
            .get(&user)
            .map(|m| m.role)
            .ok_or(WorkspaceError::MemberNotFound)
    }

    fn owner_count(&self) -> usize {
        self.members
            .values()
            .filter(|m| m.role == Role::Owner)
            .count()
    }

    fn removal(
        &self,
        user_id: UserId,
        current: Role,
        removed_by: UserId,
    ) -> Result<Vec<WorkspaceEvent>, WorkspaceError> {
        if current == Role::Owner && self.owner_count() == 1 {
            return Err(WorkspaceError::LastOwner);
        }
        // Their keys die with the membership, for good: re-adding the
        // member later must not bring them back.
        let revoked = self
            .api_keys
            .iter()
            .filter(|(_, key)| key.created_by == user_id && !key.revoked)
            .map(|(key_id, _)| {
                WorkspaceEvent::ApiKeyRevoked(ApiKeyRevoked {
                    workspace_id: self.id,
                    key_id: *key_id,
                    revoked_by: removed_by,
                })
            });
        Ok(revoked
            .chain([WorkspaceEvent::MemberRemoved(MemberRemoved {
                workspace_id: self.id,
                user_id,
                removed_by,
            })])
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WS: WorkspaceId = WorkspaceId(Uuid::from_u128(10));

    fn user(n: u128) -> UserId {
        UserId(Uuid::from_u128(n))
    }

    fn email(n: u128) -> Email {
        Email::parse(&format!("user{n}@example.com")).unwrap()
    }

    fn actor(n: u128, role: Role) -> Actor {
        Actor {
            workspace_id: WS,
            user_id: user(n),
            role,
            api_key: None,
        }
    }

    /// Given: a workspace owned by user 1, with 2 admin, 3 member, 4 viewer.
    fn team() -> Workspace {
        let mut ws = Workspace::default();
        let run = |ws: &mut Workspace, command| {
            for event in ws.decide(command).unwrap() {
                ws.apply(event);
            }
        };
        run(
            &mut ws,
            WorkspaceCommand::Create {
                workspace_id: WS,
                name: "Fund".into(),
                created_by: user(1),
                creator_email: email(1),
                personal: false,
            },
        );
        for (n, role) in [(2, Role::Admin), (3, Role::Member), (4, Role::Viewer)] {
            join(&mut ws, n, role);
        }
        ws
    }

    /// User `n` is invited by the owner and accepts.
    fn join(ws: &mut Workspace, n: u128, role: Role) {
        let invitation_id = Uuid::from_u128(900 + n);
        for command in [
            WorkspaceCommand::Invite {
                actor: actor(1, Role::Owner),
                invitation_id,
                email: email(n),
                role,
            },
            WorkspaceCommand::AcceptInvitation {
                invitation_id,
                user_id: user(n),
                email: email(n),
                email_verified: true,
            },
        ] {
            for event in ws.decide(command).unwrap() {
                ws.apply(event);
            }
        }
    }

    fn when(
        ws: &Workspace,
        command: WorkspaceCommand,
    ) -> Result<Vec<WorkspaceEvent>, WorkspaceError> {
        ws.decide(command)
    }

    #[test]
    fn owners_and_admins_set_the_thesis_members_may_not_and_the_same_thesis_appends_nothing() {
        let thesis = crate::enrichment::Thesis {
            sectors: vec!["Climate".to_owned()],
            stages: vec![crate::company::Stage::Seed],
            locations: vec![],
        };
        let set = |n, role| WorkspaceCommand::SetThesis {
            actor: actor(n, role),
            thesis: thesis.clone(),
        };
        assert!(matches!(
            when(&team(), set(3, Role::Member)),
            Err(WorkspaceError::Forbidden(_))
        ));
        let events = when(&team(), set(2, Role::Admin)).unwrap();
        assert!(matches!(&events[..], [WorkspaceEvent::ThesisSet(e)] if e.thesis == thesis));
        let mut ws = team();
        for event in events {
            ws.apply(event);
        }
        assert_eq!(ws.state().unwrap().thesis, thesis);
        assert!(when(&ws, set(1, Role::Owner)).unwrap().is_empty());
    }

    #[test]
    fn creating_a_workspace_makes_its_creator_the_owner() {
        let ws = team();
        assert_eq!(ws.role_of(user(1)), Some(Role::Owner));
        assert_eq!(ws.role_of(user(4)), Some(Role::Viewer));
    }

    #[test]
    fn members_and_viewers_may_not_invite_members() {
        for n in [3, 4] {
            let role = team().role_of(user(n)).unwrap();
            let result = when(
                &team(),
                WorkspaceCommand::Invite {
                    actor: actor(n, role),
                    invitation_id: Uuid::from_u128(99),
                    email: email(9),
                    role: Role::Viewer,
                },
            );
            assert!(matches!(result, Err(WorkspaceError::Forbidden(_))));
        }
    }

    #[test]
    fn admins_invite_members_but_may_not_make_owners() {
        let ws = team();
        let add = |role| WorkspaceCommand::Invite {
            actor: actor(2, Role::Admin),
            invitation_id: Uuid::from_u128(99),
            email: email(9),
            role,
        };
        assert!(when(&ws, add(Role::Member)).is_ok());
        assert!(matches!(
            when(&ws, add(Role::Owner)),
            Err(WorkspaceError::Forbidden(_))
        ));
    }

    #[test]
    fn inviting_an_existing_member_is_a_conflict() {
        let result = when(
            &team(),
            WorkspaceCommand::Invite {
                actor: actor(1, Role::Owner),
                invitation_id: Uuid::from_u128(99),
                email: email(3),
                role: Role::Admin,
            },
        );
        assert_eq!(result, Err(WorkspaceError::AlreadyMember));
    }

    #[test]
    fn the_last_owner_can_neither_leave_nor_be_demoted_nor_removed() {
        let ws = team();
        assert_eq!(
            when(
                &ws,
                WorkspaceCommand::Leave {
                    actor: actor(1, Role::Owner)
                }
            ),
            Err(WorkspaceError::LastOwner)
        );
        assert_eq!(
            when(
                &ws,
                WorkspaceCommand::ChangeRole {
                    actor: actor(1, Role::Owner),
                    user_id: user(1),
                    role: Role::Admin
                }
            ),
            Err(WorkspaceError::LastOwner)
        );
        assert_eq!(
            when(
                &ws,
                WorkspaceCommand::RemoveMember {
                    actor: actor(1, Role::Owner),
                    user_id: user(1)
                }
            ),
            Err(WorkspaceError::LastOwner)
        );
    }

    #[test]
    fn with_a_second_owner_the_first_may_leave() {
        let mut ws = team();
        for e in ws
            .decide(WorkspaceCommand::ChangeRole {
                actor: actor(1, Role::Owner),
                user_id: user(2),
                role: Role::Owner,
            })
            .unwrap()
        {
            ws.apply(e);
        }
        let events = when(
            &ws,
            WorkspaceCommand::Leave {
                actor: actor(1, Role::Owner),
            },
        )
        .unwrap();
        assert!(matches!(&events[0], WorkspaceEvent::MemberRemoved(e) if e.user_id == user(1)));
    }

    #[test]
    fn admins_may_not_touch_owners() {
        let ws = team();
        assert!(matches!(
            when(
                &ws,
                WorkspaceCommand::ChangeRole {
                    actor: actor(2, Role::Admin),
                    user_id: user(1),
                    role: Role::Viewer
                }
            ),
            Err(WorkspaceError::Forbidden(_))
        ));
        assert!(matches!(
            when(
                &ws,
                WorkspaceCommand::RemoveMember {
                    actor: actor(2, Role::Admin),
                    user_id: user(1)
                }
            ),
            Err(WorkspaceError::Forbidden(_))
        ));
    }

    #[test]
    fn anyone_may_leave_and_changing_to_the_same_role_appends_nothing() {
        let ws = team();
        assert!(when(
            &ws,
            WorkspaceCommand::Leave {
                actor: actor(4, Role::Viewer)
            }
        )
        .is_ok());
        assert_eq!(
            when(
                &ws,
                WorkspaceCommand::ChangeRole {
                    actor: actor(1, Role::Owner),
                    user_id: user(3),
                    role: Role::Member
                }
            ),
            Ok(vec![])
        );
    }

    #[test]
    fn a_stranger_or_another_workspace_sees_not_found() {
        let ws = team();
        let stranger = actor(99, Role::Owner);
        assert_eq!(
            when(&ws, WorkspaceCommand::Leave { actor: stranger }),
            Err(WorkspaceError::NotFound)
        );
        let elsewhere = Actor {
            workspace_id: WorkspaceId(Uuid::from_u128(11)),
            ..actor(1, Role::Owner)
        };
        assert_eq!(
            when(&ws, WorkspaceCommand::Leave { actor: elsewhere }),
            Err(WorkspaceError::NotFound)
        );
    }

    #[test]
    fn an_invitation_becomes_a_membership_with_its_role_when_accepted() {
        let mut ws = team();
        let newcomer = Email::parse("new@example.com").unwrap();
        let invite = WorkspaceCommand::Invite {
            actor: actor(2, Role::Admin),
            invitation_id: Uuid::from_u128(700),
            email: newcomer.clone(),
            role: Role::Member,
        };
        for e in ws.decide(invite).unwrap() {
            ws.apply(e);
        }
        let events = ws
            .decide(WorkspaceCommand::AcceptInvitation {
                invitation_id: Uuid::from_u128(700),
                user_id: user(9),
                email: newcomer.clone(),
                email_verified: true,
            })
            .unwrap();
        assert!(matches!(&events[0], WorkspaceEvent::MemberAdded(e)
            if e.user_id == user(9) && e.role == Role::Member && e.added_by == user(2)));
        for e in events {
            ws.apply(e);
        }
        assert!(ws.state().unwrap().invitations.is_empty());
        assert_eq!(
            ws.decide(WorkspaceCommand::AcceptInvitation {
                invitation_id: Uuid::from_u128(700),
                user_id: user(10),
                email: newcomer,
                email_verified: true,
            }),
            Err(WorkspaceError::InvitationNotFound)
        );
    }

    #[test]
    fn only_managers_invite_members_already_in_are_refused_and_cancelled_invitations_cannot_be_accepted(
    ) {
        let mut ws = team();
        let invite = |n, role, email: &str| WorkspaceCommand::Invite {
            actor: actor(n, role),
            invitation_id: Uuid::from_u128(800),
            email: Email::parse(email).unwrap(),
            role: Role::Viewer,
        };
        assert!(matches!(
            ws.decide(invite(3, Role::Member, "x@example.com")),
            Err(WorkspaceError::Forbidden(_))
        ));
        assert_eq!(
            ws.decide(invite(1, Role::Owner, "user3@example.com")),
            Err(WorkspaceError::AlreadyMember)
        );
        for e in ws.decide(invite(1, Role::Owner, "x@example.com")).unwrap() {
            ws.apply(e);
        }
        for e in ws
            .decide(WorkspaceCommand::CancelInvitation {
                actor: actor(2, Role::Admin),
                invitation_id: Uuid::from_u128(800),
            })
            .unwrap()
        {
            ws.apply(e);
        }
        assert_eq!(
            ws.decide(WorkspaceCommand::AcceptInvitation {
                invitation_id: Uuid::from_u128(800),
                user_id: user(9),
                email: Email::parse("x@example.com").unwrap(),
                email_verified: true,
            }),
            Err(WorkspaceError::InvitationNotFound)
        );
    }

    fn create_key(n: u128, role: Role, key_role: Role) -> WorkspaceCommand {
        WorkspaceCommand::CreateApiKey {
            actor: actor(n, role),
            key_id: Uuid::from_u128(500 + n),
            name: "ci".into(),
            role: key_role,
            prefix: "vci_abc".into(),
        }
    }

    #[test]
    fn an_api_key_carries_no_more_than_its_creators_role() {
        let ws = team();
        assert!(when(&ws, create_key(3, Role::Member, Role::Member)).is_ok());
        assert!(matches!(
            when(&ws, create_key(3, Role::Member, Role::Admin)),
            Err(WorkspaceError::Invalid(_))
        ));
        assert!(matches!(
            when(&ws, create_key(4, Role::Viewer, Role::Viewer)),
            Err(WorkspaceError::Forbidden(_))
        ));
    }

    #[test]
    fn a_keys_access_shrinks_with_its_creator_and_dies_when_they_leave_or_it_is_revoked() {
        let mut ws = team();
        let run = |ws: &mut Workspace, command| {
            for event in ws.decide(command).unwrap() {
                ws.apply(event);
            }
        };
        run(&mut ws, create_key(2, Role::Admin, Role::Admin));
        let key = Uuid::from_u128(502);
        assert_eq!(ws.api_key_access(key), Some((user(2), Role::Admin)));
        run(
            &mut ws,
            WorkspaceCommand::ChangeRole {
                actor: actor(1, Role::Owner),
                user_id: user(2),
                role: Role::Viewer,
            },
        );
        assert_eq!(ws.api_key_access(key), Some((user(2), Role::Viewer)));
        run(
            &mut ws,
            WorkspaceCommand::RemoveMember {
                actor: actor(1, Role::Owner),
                user_id: user(2),
            },
        );
        assert_eq!(ws.api_key_access(key), None);

        run(&mut ws, create_key(3, Role::Member, Role::Viewer));
        let key = Uuid::from_u128(503);
        assert!(ws.api_key_access(key).is_some());
        run(
            &mut ws,
            WorkspaceCommand::RevokeApiKey {
                actor: actor(3, Role::Member),
                key_id: key,
            },
        );
        assert_eq!(ws.api_key_access(key), None);
    }

    #[test]
    fn a_member_cannot_see_or_revoke_someone_elses_key_but_an_admin_can() {
        let mut ws = team();
        for e in ws.decide(create_key(1, Role::Owner, Role::Member)).unwrap() {
            ws.apply(e);
        }
        let revoke = |n, role| WorkspaceCommand::RevokeApiKey {
            actor: actor(n, role),
            key_id: Uuid::from_u128(501),
        };
        assert_eq!(
            when(&ws, revoke(3, Role::Member)),
            Err(WorkspaceError::ApiKeyNotFound)
        );
        assert!(when(&ws, revoke(2, Role::Admin)).is_ok());
    }

    /// User 2 (an admin) holds an admin key (502) and acts through a
    /// viewer key (602) they also made.
    fn admin_with_a_viewer_key() -> (Workspace, Actor) {
        let mut ws = team();
        let viewer_key = Uuid::from_u128(602);
        for command in [
            create_key(2, Role::Admin, Role::Admin),
            WorkspaceCommand::CreateApiKey {
                actor: actor(2, Role::Admin),
                key_id: viewer_key,
                name: "read-only".into(),
                role: Role::Viewer,
                prefix: "vci_def".into(),
            },
        ] {
            for e in ws.decide(command).unwrap() {
                ws.apply(e);
            }
        }
        let (user_id, role) = ws.api_key_access(viewer_key).unwrap();
        let through_key = Actor {
            user_id,
            role,
            api_key: Some(viewer_key),
            ..actor(2, Role::Admin)
        };
        (ws, through_key)
    }

    #[test]
    fn a_key_is_capped_by_its_role_even_for_what_its_creator_may_do_alone() {
        let (ws, viewer_key) = admin_with_a_viewer_key();
        let forbidden = |result: Result<Vec<WorkspaceEvent>, WorkspaceError>| {
            assert!(
                matches!(result, Err(WorkspaceError::Forbidden(_))),
                "{result:?}"
            );
        };
        forbidden(when(
            &ws,
            WorkspaceCommand::RevokeApiKey {
                actor: viewer_key,
                key_id: Uuid::from_u128(502),
            },
        ));
        forbidden(when(&ws, WorkspaceCommand::Leave { actor: viewer_key }));
        forbidden(when(
            &ws,
            WorkspaceCommand::RemoveMember {
                actor: viewer_key,
                user_id: user(2),
            },
        ));
        // It may still revoke itself, and its creator keeps every right.
        assert!(when(
            &ws,
            WorkspaceCommand::RevokeApiKey {
                actor: viewer_key,
                key_id: Uuid::from_u128(602),
            },
        )
        .is_ok());
        assert!(when(
            &ws,
            WorkspaceCommand::Leave {
                actor: actor(2, Role::Admin)
            }
        )
        .is_ok());
    }

    #[test]
    fn a_key_makes_keys_only_when_its_role_manages_keys() {
        let (ws, viewer_key) = admin_with_a_viewer_key();
        let minting = |actor| WorkspaceCommand::CreateApiKey {
            actor,
            key_id: Uuid::from_u128(700),
            name: "minted".into(),
            role: Role::Viewer,
            prefix: "vci_ghi".into(),
        };
        assert!(matches!(
            when(&ws, minting(viewer_key)),
            Err(WorkspaceError::Forbidden(_))
        ));
        let admin_key = Actor {
            role: Role::Admin,
            api_key: Some(Uuid::from_u128(502)),
            ..viewer_key
        };
        assert!(when(&ws, minting(admin_key)).is_ok());
    }

    #[test]
    fn removing_a_member_revokes_their_keys_for_good() {
        let (mut ws, _) = admin_with_a_viewer_key();
        let removed = when(
            &ws,
            WorkspaceCommand::RemoveMember {
                actor: actor(1, Role::Owner),
                user_id: user(2),
            },
        )
        .unwrap();
        let revoked: Vec<Uuid> = removed
            .iter()
            .filter_map(|e| match e {
                WorkspaceEvent::ApiKeyRevoked(r) => Some(r.key_id),
                _ => None,
            })
            .collect();
        assert_eq!(revoked, vec![Uuid::from_u128(502), Uuid::from_u128(602)]);
        for e in removed {
            ws.apply(e);
        }
        join(&mut ws, 2, Role::Admin);
        assert_eq!(ws.api_key_access(Uuid::from_u128(502)), None);
        assert_eq!(ws.api_key_access(Uuid::from_u128(602)), None);
    }

    #[test]
    fn an_invitation_is_accepted_or_declined_only_by_its_addressee() {
        let mut ws = team();
        let invited = Email::parse("invited@example.com").unwrap();
        for e in ws
            .decide(WorkspaceCommand::Invite {
                actor: actor(1, Role::Owner),
                invitation_id: Uuid::from_u128(710),
                email: invited.clone(),
                role: Role::Member,
            })
            .unwrap()
        {
            ws.apply(e);
        }
        // Someone else, even holding the id, finds nothing.
        let squatter = Email::parse("squatter@example.com").unwrap();
        assert_eq!(
            ws.decide(WorkspaceCommand::AcceptInvitation {
                invitation_id: Uuid::from_u128(710),
                user_id: user(9),
                email: squatter.clone(),
                email_verified: true,
            }),
            Err(WorkspaceError::InvitationNotFound)
        );
        assert_eq!(
            ws.decide(WorkspaceCommand::DeclineInvitation {
                invitation_id: Uuid::from_u128(710),
                user_id: user(9),
                email: squatter,
            }),
            Err(WorkspaceError::InvitationNotFound)
        );
        // A wrong id for the right address is not found either.
        assert_eq!(
            ws.decide(WorkspaceCommand::AcceptInvitation {
                invitation_id: Uuid::from_u128(711),
                user_id: user(9),
                email: invited.clone(),
                email_verified: true,
            }),
            Err(WorkspaceError::InvitationNotFound)
        );
        let declined = ws
            .decide(WorkspaceCommand::DeclineInvitation {
                invitation_id: Uuid::from_u128(710),
                user_id: user(9),
                email: invited.clone(),
            })
            .unwrap();
        assert!(matches!(
            &declined[..],
            [WorkspaceEvent::InvitationDeclined(_)]
        ));
        for e in declined {
            ws.apply(e);
        }
        assert_eq!(ws.role_of(user(9)), None);
        assert_eq!(
            ws.decide(WorkspaceCommand::AcceptInvitation {
                invitation_id: Uuid::from_u128(710),
                user_id: user(9),
                email: invited,
                email_verified: true,
            }),
            Err(WorkspaceError::InvitationNotFound)
        );
    }

    #[test]
    fn an_unverified_address_cannot_take_up_its_invitation() {
        let mut ws = team();
        for e in ws
            .decide(WorkspaceCommand::Invite {
                actor: actor(1, Role::Owner),
                invitation_id: Uuid::from_u128(720),
                email: email(9),
                role: Role::Member,
            })
            .unwrap()
        {
            ws.apply(e);
        }
        let accept = |email_verified| WorkspaceCommand::AcceptInvitation {
            invitation_id: Uuid::from_u128(720),
            user_id: user(9),
            email: email(9),
            email_verified,
        };
        assert_eq!(
            ws.decide(accept(false)),
            Err(WorkspaceError::EmailUnverified)
        );
        assert!(ws.decide(accept(true)).is_ok());
    }

    #[test]
    fn a_member_holds_at_most_so_many_live_keys() {
        let mut ws = team();
        let mint = |n: u128| WorkspaceCommand::CreateApiKey {
            actor: actor(3, Role::Member),
            key_id: Uuid::from_u128(10_000 + n),
            name: format!("key {n}"),
            role: Role::Viewer,
            prefix: "vci_abc".into(),
        };
        for n in 0..MAX_LIVE_API_KEYS_PER_MEMBER as u128 {
            for e in ws.decide(mint(n)).unwrap() {
                ws.apply(e);
            }
        }
        assert_eq!(ws.decide(mint(99)), Err(WorkspaceError::TooManyApiKeys));
        for e in ws
            .decide(WorkspaceCommand::RevokeApiKey {
                actor: actor(3, Role::Member),
                key_id: Uuid::from_u128(10_000),
            })
            .unwrap()
        {
            ws.apply(e);
        }
        assert!(ws.decide(mint(99)).is_ok());
    }
}
