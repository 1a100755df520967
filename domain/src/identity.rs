//! Who acts, in which workspace, with which role.

use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

/// The tenant: every aggregate, event and read-model row belongs to exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct WorkspaceId(pub Uuid);

/// A person or machine client acting on the system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct UserId(pub Uuid);

impl fmt::Display for WorkspaceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A member's role in a workspace, from most to least powerful.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::VariantNames,
)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Role {
    Owner,
    Admin,
    Member,
    Viewer,
}

/// Something a member may do in a workspace. [`Role::allows`] is the one
/// permission table; docs/identity-and-abuse.md reproduces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, strum::VariantArray)]
pub enum Permission {
    /// Read companies, notes, lists, searches, members and the workspace.
    ReadData,
    /// Add, change and delete companies, notes, lists and searches.
    WriteData,
    /// Create API keys (with a role no higher than one's own) and revoke one's own.
    CreateApiKeys,
    /// Revoke anyone's API keys and list every key of the workspace.
    ManageApiKeys,
    /// Add and remove members and change roles (owners only touch owners).
    ManageMembers,
    /// Read the workspace's security log.
    ReadSecurityEvents,
    /// Read the workspace's event feed and aggregates' histories, and read
    /// past states (time travel).
    ReadAudit,
    /// See every member's enrichment usage and cost, not only one's own.
    ReadWorkspaceUsage,
}

impl Permission {
    /// What the permission lets a member do, for "the role `x` may not …".
    pub fn describe(self) -> &'static str {
        match self {
            Permission::ReadData => "read the workspace's data",
            Permission::WriteData => "change the workspace's data",
            Permission::CreateApiKeys => "create API keys",
            Permission::ManageApiKeys => "manage other members' API keys",
            Permission::ManageMembers => "manage members",
            Permission::ReadSecurityEvents => "read the security log",
            Permission::ReadAudit => "read the workspace's events and past states",
            Permission::ReadWorkspaceUsage => "see every member's usage",
        }
    }
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Owner, Role::Admin, Role::Member, Role::Viewer];

    /// The permission table.
    pub fn allows(self, permission: Permission) -> bool {
        use Permission::*;
        match self {
            Role::Owner | Role::Admin => true,
            Role::Member => matches!(permission, ReadData | WriteData | CreateApiKeys),
            Role::Viewer => matches!(permission, ReadData),
        }
    }

    /// Viewers only read; every other role may change the workspace's data.
    pub fn may_write(self) -> bool {
        self.allows(Permission::WriteData)
    }

    /// Higher is more powerful; roles compare by it.
    pub fn rank(self) -> u8 {
        match self {
            Role::Owner => 3,
            Role::Admin => 2,
            Role::Member => 1,
            Role::Viewer => 0,
        }
    }

    /// The weaker of two roles (an API key acts with at most its creator's role).
    pub fn min(self, other: Role) -> Role {
        if self.rank() <= other.rank() {
            self
        } else {
            other
        }
    }

    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// The authenticated caller of a command: carried into every event it causes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Actor {
    pub workspace_id: WorkspaceId,
    pub user_id: UserId,
    /// For an API key, its own role capped by its creator's.
    pub role: Role,
    /// The API key acting for `user_id`, if one is: a key is capped by its
    /// role everywhere, including what a member may do for themselves
    /// (revoking their keys, leaving).
    pub api_key: Option<uuid::Uuid>,
}

impl Actor {
    pub fn may(&self, permission: Permission) -> bool {
        self.role.allows(permission)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strum::VariantArray;

    #[test]
    fn viewers_only_read() {
        for &permission in Permission::VARIANTS {
            assert_eq!(
                Role::Viewer.allows(permission),
                permission == Permission::ReadData
            );
        }
    }

    #[test]
    fn members_write_data_and_create_keys_but_manage_nothing() {
        assert!(Role::Member.allows(Permission::WriteData));
        assert!(Role::Member.allows(Permission::CreateApiKeys));
        assert!(!Role::Member.allows(Permission::ManageMembers));
        assert!(!Role::Member.allows(Permission::ManageApiKeys));
        assert!(!Role::Member.allows(Permission::ReadSecurityEvents));
        assert!(!Role::Member.allows(Permission::ReadAudit));
        assert!(!Role::Member.allows(Permission::ReadWorkspaceUsage));
    }

    #[test]
    fn owners_and_admins_may_do_everything_the_table_names() {
        for &permission in Permission::VARIANTS {
            assert!(Role::Owner.allows(permission));
            assert!(Role::Admin.allows(permission));
        }
    }

    #[test]
    fn the_weaker_role_wins() {
        assert_eq!(Role::Owner.min(Role::Viewer), Role::Viewer);
        assert_eq!(Role::Member.min(Role::Admin), Role::Member);
    }
}
