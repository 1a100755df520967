//! Read models of accounts and workspaces: `users`, `workspaces`,
//! `workspace_members`, `api_keys`, and the membership and key entries of
//! the security log (written with the event's id, so a replay adds nothing).
//!
//! These serve listings; authorisation reads the workspace's events
//! directly (see `vcintel_infra::accounts::WorkspaceDirectory`).

use crate::{decode_event, AggregateChanges, Projection, ProjectionError};
use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::{FromRow, PgConnection, PgExecutor};
use uuid::Uuid;
use vcintel_domain::personal::ERASED;
use vcintel_domain::user::UserEvent;
use vcintel_domain::workspace::WorkspaceEvent;
use vcintel_domain::{UserId, WorkspaceId};
use vcintel_infra::accounts::{record_security_event, security_kind, SecurityEvent};
use vcintel_infra::wire::EventMessage;

#[derive(Debug)]
pub struct UsersProjection;

impl Projection for UsersProjection {
    const NAME: &'static str = "users";
    const AGGREGATE_TYPES: &'static [&'static str] = &[vcintel_domain::user::AGGREGATE_TYPE];
    const TABLES: &'static [&'static str] = &["users"];

    async fn apply_batch(
        tx: &mut PgConnection,
        changes: &[AggregateChanges],
    ) -> Result<(), ProjectionError> {
        for change in changes {
            for event in &change.events {
                match decode_event::<UserEvent>(event)? {
                    UserEvent::Registered(e) => {
                        let tier = serde_json::to_value(e.tier)?;
                        sqlx::query!(
                            "insert into users (id, email, name, tier, registered_at, version)
                             values ($1, $2, $3, $4, $5, $6)
                             on conflict (id) do update set email = excluded.email,
                                 name = excluded.name, tier = excluded.tier,
                                 version = excluded.version",
                            e.user_id.0,
                            e.email.text(),
                            e.name.text(),
                            tier.as_str().unwrap_or("free"),
                            event.time,
                            event.sequence
                        )
                        .execute(&mut *tx)
                        .await?;
                    }
                    // Verification is read from the user's events.
                    UserEvent::VerificationRequested(_) | UserEvent::EmailVerified(_) => {}
                    UserEvent::ErasureRequested(e) => {
                        let due = event.time + chrono::Duration::hours(i64::from(e.grace_hours));
                        sqlx::query!(
                            "update users set erase_after = $2, version = $3 where id = $1",
                            e.user_id.0,
                            due,
                            event.sequence
                        )
                        .execute(&mut *tx)
                        .await?;
                    }
                    UserEvent::ErasureCancelled(e) => {
                        sqlx::query!(
                            "update users set erase_after = null, version = $2 where id = $1",
                            e.user_id.0,
                            event.sequence
                        )
                        .execute(&mut *tx)
                        .await?;
                    }
                    UserEvent::Erased(e) => {
                        sqlx::query!(
                            "update users set email = $2, name = $2, erase_after = null,
                                 version = $3
                             where id = $1",
                            e.user_id.0,
                            ERASED,
                            event.sequence
                        )
                        .execute(&mut *tx)
                        .await?;
                    }
                }
            }
        }
        Ok(())
    }
}

#[derive(Debug)]
pub struct WorkspacesProjection;

impl Projection for WorkspacesProjection {
    const NAME: &'static str = "workspaces";
    const AGGREGATE_TYPES: &'static [&'static str] = &[vcintel_domain::workspace::AGGREGATE_TYPE];
    const REACTS_TO: &'static [(&'static str, &'static str)] = &[crate::USER_ERASED];
    // The security log stays: its rows carry the event id, so a replay
    // adds nothing to it.
    const TABLES: &'static [&'static str] = &[
        "workspaces",
        "workspace_members",
        "workspace_invitations",
        "api_keys",
    ];

    async fn apply_batch(
        tx: &mut PgConnection,
        changes: &[AggregateChanges],
    ) -> Result<(), ProjectionError> {
        for change in changes {
            for event in &change.events {
                if change.aggregate_type == vcintel_domain::user::AGGREGATE_TYPE {
                    forget_member(tx, event).await?;
                } else {
                    apply_workspace_event(tx, event, decode_event(event)?).await?;
                }
            }
        }
        Ok(())
    }
}

/// An erased person's address leaves every membership (masked, as their
/// `member_added` events now read) and every invitation to it (gone, as an
/// invitation to an erased address is never projected).
async fn forget_member(tx: &mut PgConnection, event: &EventMessage) -> Result<(), ProjectionError> {
    if let UserEvent::Erased(e) = decode_event::<UserEvent>(event)? {
        sqlx::query!(
            "update workspace_members set email = $2 where user_id = $1",
            e.user_id.0,
            ERASED
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query!(
            "delete from workspace_invitations where id = any($1)",
            &e.invitations
        )
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

async fn apply_workspace_event(
    tx: &mut PgConnection,
    message: &EventMessage,
    event: WorkspaceEvent,
) -> Result<(), ProjectionError> {
    let ws = event.workspace_id();
    let log = |kind, user: UserId, detail| SecurityEvent {
        id: Some(message.id),
        kind,
        workspace_id: Some(ws),
        user_id: Some(user),
        ip: None,
        detail,
    };
    match event {
        WorkspaceEvent::Created(e) => {
            sqlx::query!(
                "insert into workspaces (id, name, personal, created_by, created_at, version)
                 values ($1, $2, $3, $4, $5, $6) on conflict (id) do nothing",
                ws.0,
                &e.name,
                e.personal,
                e.created_by.0,
                message.time,
                message.sequence
            )
            .execute(&mut *tx)
            .await?;
        }
        // An invitation to an address erased since can never be taken up.
        WorkspaceEvent::MemberInvited(e) => {
            if !e.email.is_erased() {
                sqlx::query!(
                    "insert into workspace_invitations
                     (id, workspace_id, email, role, invited_by, invited_at)
                 values ($1, $2, $3, $4, $5, $6)
                 on conflict (workspace_id, email) do update set role = excluded.role,
                     invited_by = excluded.invited_by, invited_at = excluded.invited_at",
                    e.invitation_id,
                    ws.0,
                    e.email.text(),
                    e.role.as_str(),
                    e.invited_by.0,
                    message.time
                )
                .execute(&mut *tx)
                .await?;
            }
            let detail = json!({"invitation_id": e.invitation_id, "role": e.role});
            record_security_event(
                &mut *tx,
                &log(security_kind::MEMBER_INVITED, e.invited_by, detail),
            )
            .await?;
        }
        WorkspaceEvent::InvitationCancelled(e) => {
            sqlx::query!(
                "delete from workspace_invitations where id = $1",
                e.invitation_id
            )
            .execute(&mut *tx)
            .await?;
        }
        WorkspaceEvent::InvitationDeclined(e) => {
            sqlx::query!(
                "delete from workspace_invitations where id = $1",
                e.invitation_id
            )
            .execute(&mut *tx)
            .await?;
            let detail = json!({"invitation_id": e.invitation_id});
            record_security_event(
                &mut *tx,
                &log(security_kind::INVITATION_DECLINED, e.declined_by, detail),
            )
            .await?;
        }
        WorkspaceEvent::MemberAdded(e) => {
            sqlx::query!(
                "delete from workspace_invitations where workspace_id = $1 and email = $2",
                ws.0,
                e.email.text()
            )
            .execute(&mut *tx)
            .await?;
            sqlx::query!(
                "insert into workspace_members (workspace_id, user_id, email, role, joined_at)
                 values ($1, $2, $3, $4, $5)
                 on conflict (workspace_id, user_id) do update set role = excluded.role",
                ws.0,
                e.user_id.0,
                e.email.text(),
                e.role.as_str(),
                message.time
            )
            .execute(&mut *tx)
            .await?;
            let detail = json!({"member": e.user_id, "role": e.role});
            record_security_event(
                &mut *tx,
                &log(security_kind::MEMBER_ADDED, e.added_by, detail),
            )
            .await?;
        }
        WorkspaceEvent::MemberRoleChanged(e) => {
            sqlx::query!(
                "update workspace_members set role = $3 where workspace_id = $1 and user_id = $2",
                ws.0,
                e.user_id.0,
                e.role.as_str()
            )
            .execute(&mut *tx)
            .await?;
            let detail =
                json!({"member": e.user_id, "previous_role": e.previous_role, "role": e.role});
            record_security_event(
                &mut *tx,
                &log(security_kind::MEMBER_ROLE_CHANGED, e.changed_by, detail),
            )
            .await?;
        }
        WorkspaceEvent::MemberRemoved(e) => {
            sqlx::query!(
                "delete from workspace_members where workspace_id = $1 and user_id = $2",
                ws.0,
                e.user_id.0
            )
            .execute(&mut *tx)
            .await?;
            let detail = json!({"member": e.user_id, "left": e.user_id == e.removed_by});
            record_security_event(
                &mut *tx,
                &log(security_kind::MEMBER_REMOVED, e.removed_by, detail),
            )
            .await?;
        }
        WorkspaceEvent::ApiKeyCreated(e) => {
            sqlx::query!("insert into api_keys (id, workspace_id, name, prefix, role, created_by, created_at)
                 values ($1, $2, $3, $4, $5, $6, $7) on conflict (id) do nothing", e.key_id, ws.0, &e.name, &e.prefix, e.role.as_str(), e.created_by.0, message.time)
            .execute(&mut *tx)
            .await?;
            let detail = json!({"key_id": e.key_id, "name": e.name, "role": e.role});
            record_security_event(
                &mut *tx,
                &log(security_kind::API_KEY_CREATED, e.created_by, detail),
            )
            .await?;
        }
        WorkspaceEvent::ApiKeyRevoked(e) => {
            sqlx::query!(
                "update api_keys set revoked_at = $2 where id = $1",
                e.key_id,
                message.time
            )
            .execute(&mut *tx)
            .await?;
            let detail = json!({"key_id": e.key_id});
            record_security_event(
                &mut *tx,
                &log(security_kind::API_KEY_REVOKED, e.revoked_by, detail),
            )
            .await?;
        }
        // Read from the workspace's events (the directory), like roles.
        WorkspaceEvent::ThesisSet(_) => {}
    }
    Ok(())
}

/// A workspace the user belongs to, with their role.
#[derive(Debug, Clone, FromRow)]
pub struct MembershipRow {
    pub workspace_id: Uuid,
    pub name: String,
    pub personal: bool,
    pub role: String,
    pub joined_at: DateTime<Utc>,
}

pub async fn workspaces_of(
    db: impl PgExecutor<'_>,
    user: UserId,
) -> Result<Vec<MembershipRow>, sqlx::Error> {
    sqlx::query_as!(
        MembershipRow,
        "select w.id as workspace_id, w.name, w.personal, m.role, m.joined_at
         from workspace_members m join workspaces w on w.id = m.workspace_id
         where m.user_id = $1 order by m.joined_at, w.id",
        user.0
    )
    .fetch_all(db)
    .await
}

#[derive(Debug, Clone, FromRow)]
pub struct MemberRow {
    pub user_id: Uuid,
    pub email: String,
    pub name: Option<String>,
    pub role: String,
    pub joined_at: DateTime<Utc>,
}

pub async fn members(
    db: impl PgExecutor<'_>,
    workspace: WorkspaceId,
) -> Result<Vec<MemberRow>, sqlx::Error> {
    sqlx::query_as!(
        MemberRow,
        "select m.user_id, m.email, u.name, m.role, m.joined_at
         from workspace_members m left join users u on u.id = m.user_id
         where m.workspace_id = $1 order by m.joined_at, m.user_id",
        workspace.0
    )
    .fetch_all(db)
    .await
}

#[derive(Debug, Clone, FromRow)]
pub struct ApiKeyRow {
    pub id: Uuid,
    pub name: String,
    pub prefix: String,
    pub role: String,
    pub created_by: Uuid,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// The workspace's API keys, or only those `created_by` made.
pub async fn api_keys(
    db: impl PgExecutor<'_>,
    workspace: WorkspaceId,
    created_by: Option<UserId>,
) -> Result<Vec<ApiKeyRow>, sqlx::Error> {
    sqlx::query_as!(
        ApiKeyRow,
        "select id, name, prefix, role, created_by, created_at, revoked_at
         from api_keys
         where workspace_id = $1 and ($2::uuid is null or created_by = $2)
         order by created_at, id",
        workspace.0,
        created_by.map(|u| u.0)
    )
    .fetch_all(db)
    .await
}

/// The workspace holding this invitation, if it is addressed to `email`.
pub async fn invitation_workspace(
    db: impl PgExecutor<'_>,
    invitation_id: Uuid,
    email: &vcintel_domain::user::Email,
) -> Result<Option<WorkspaceId>, sqlx::Error> {
    let workspace = sqlx::query_scalar!(
        "select workspace_id from workspace_invitations where id = $1 and email = $2",
        invitation_id,
        email.as_str()
    )
    .fetch_optional(db)
    .await?;
    Ok(workspace.map(WorkspaceId))
}

/// An invitation as its addressee sees it.
#[derive(Debug, Clone)]
pub struct ReceivedInvitation {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub workspace_name: String,
    pub role: String,
    pub invited_at: DateTime<Utc>,
}

/// The invitations waiting for `email`, oldest first (at most 100).
pub async fn invitations_addressed_to(
    db: impl PgExecutor<'_>,
    email: &vcintel_domain::user::Email,
) -> Result<Vec<ReceivedInvitation>, sqlx::Error> {
    sqlx::query_as!(
        ReceivedInvitation,
        "select i.id, i.workspace_id, w.name as workspace_name, i.role, i.invited_at
         from workspace_invitations i join workspaces w on w.id = i.workspace_id
         where i.email = $1
         order by i.invited_at, i.id
         limit 100",
        email.as_str()
    )
    .fetch_all(db)
    .await
}

/// Workspaces as the session use cases see them: the invitations waiting
/// for an address (this read model) and the authorisation directory.
#[derive(Debug, Clone)]
pub struct IdentityWorkspaces {
    pool: sqlx::PgPool,
    directory: vcintel_infra::accounts::WorkspaceDirectory,
}

impl IdentityWorkspaces {
    pub fn new(pool: sqlx::PgPool, directory: vcintel_infra::accounts::WorkspaceDirectory) -> Self {
        Self { pool, directory }
    }
}

#[async_trait::async_trait]
impl vcintel_commands::sessions::Workspaces for IdentityWorkspaces {
    async fn invitation_workspace(
        &self,
        invitation_id: Uuid,
        email: &vcintel_domain::user::Email,
    ) -> Result<Option<WorkspaceId>, vcintel_commands::CommandError> {
        invitation_workspace(&self.pool, invitation_id, email)
            .await
            .map_err(vcintel_commands::CommandError::store)
    }

    async fn exists(&self, workspace: WorkspaceId) -> Result<bool, vcintel_commands::CommandError> {
        Ok(self
            .directory
            .current(workspace)
            .await
            .map_err(vcintel_commands::CommandError::store)?
            .is_some())
    }

    async fn changed(&self, workspace: WorkspaceId, version: u64) {
        self.directory.changed(workspace, version).await;
    }
}

/// The account holder's own entries of the security log, newest first:
/// sign-ins and their failures, lockouts, sessions revoked (entries filed
/// under no workspace).
pub async fn account_security_log(
    db: impl PgExecutor<'_>,
    user: UserId,
    before: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<SecurityLogEntry>, sqlx::Error> {
    sqlx::query_as!(
        SecurityLogEntry,
        "select id, occurred_at, kind, workspace_id, user_id, ip, detail
         from security_events
         where user_id = $1 and workspace_id is null
           and (occurred_at, id) < (coalesce($2, 'infinity'::timestamptz),
                                    coalesce($3, 'ffffffff-ffff-ffff-ffff-ffffffffffff'::uuid))
         order by occurred_at desc, id desc
         limit $4",
        user.0,
        before.map(|b| b.0),
        before.map(|b| b.1),
        limit
    )
    .fetch_all(db)
    .await
}

/// Every entry of the security log about `user` (their account's and
/// their doings in workspaces), oldest first: for their data export.
pub async fn security_log_of(
    db: impl PgExecutor<'_>,
    user: UserId,
) -> Result<Vec<SecurityLogEntry>, sqlx::Error> {
    sqlx::query_as!(
        SecurityLogEntry,
        "select id, occurred_at, kind, workspace_id, user_id, ip, detail
         from security_events where user_id = $1 order by occurred_at, id",
        user.0
    )
    .fetch_all(db)
    .await
}

/// One entry of the security log.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schema", schema(as = SecurityEventEntry))]
// A whole example, because utoipa drops a free-form field's own
// (juhaku/utoipa#1599), and `detail` is one.
#[cfg_attr(feature = "schema", schema(example = json!({
    "id": "0193a5a4-2b6d-7000-8000-0000000000e1",
    "occurred_at": "2026-12-07T08:12:44Z",
    "kind": "login.failed",
    "workspace_id": null,
    "user_id": "0193a59f-0d2c-7000-8000-000000000011",
    "ip": "203.0.113.24",
    "detail": {"reason": "invalid email or password"}
})))]
pub struct SecurityLogEntry {
    pub id: Uuid,
    pub occurred_at: DateTime<Utc>,
    /// e.g. `login.failed`, `login.locked_out`, `session.revoked_all`,
    /// `api_key.created`, `api_key.revoked`, `member.role_changed`,
    /// `rate_limit.exceeded`.
    #[cfg_attr(feature = "schema", schema(example = "login.failed"))]
    pub kind: String,
    pub workspace_id: Option<Uuid>,
    /// The user it concerns or who acted.
    pub user_id: Option<Uuid>,
    #[cfg_attr(feature = "schema", schema(example = "203.0.113.24"))]
    pub ip: Option<String>,
    pub detail: serde_json::Value,
}

/// The workspace's security log, newest first: the entries filed under it
/// (membership, roles, keys, its rate-limit refusals). Account-level
/// entries (sign-ins, lockouts, sessions) are the account holder's alone:
/// a workspace that adds someone must not read their sign-in history.
/// The security log itself is written by infra
/// (`accounts::record_security_event`). The cursor is one row comparison
/// (no cursor: from +infinity) so even a generic plan seeks to it instead
/// of filtering every newer entry.
pub async fn security_log(
    db: impl PgExecutor<'_>,
    workspace: WorkspaceId,
    before: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<SecurityLogEntry>, sqlx::Error> {
    sqlx::query_as!(
        SecurityLogEntry,
        "select id, occurred_at, kind, workspace_id, user_id, ip, detail
         from security_events
         where workspace_id = $1
           and (occurred_at, id) < (coalesce($2, 'infinity'::timestamptz),
                                    coalesce($3, 'ffffffff-ffff-ffff-ffff-ffffffffffff'::uuid))
         order by occurred_at desc, id desc
         limit $4",
        workspace.0,
        before.map(|b| b.0),
        before.map(|b| b.1),
        limit
    )
    .fetch_all(db)
    .await
}

/// What the read models say `user` has that their erasure must reach: the
/// live API keys they created (where they are still a member, with their
/// role there), their workspaces, and the notes whose text is theirs.
pub async fn erasure_footprint(
    db: &sqlx::PgPool,
    user: UserId,
) -> Result<vcintel_infra::erasure::Footprint, sqlx::Error> {
    let keys = sqlx::query!(
        r#"select k.id, k.workspace_id, m.role
         from api_keys k
         join workspace_members m on m.workspace_id = k.workspace_id and m.user_id = k.created_by
         where k.created_by = $1 and k.revoked_at is null"#,
        user.0
    )
    .fetch_all(db)
    .await?;
    let workspaces = sqlx::query_scalar!(
        "select workspace_id from workspace_members where user_id = $1",
        user.0
    )
    .fetch_all(db)
    .await?;
    let notes = sqlx::query_scalar!("select id from notes where content_by = $1", user.0)
        .fetch_all(db)
        .await?;
    Ok(vcintel_infra::erasure::Footprint {
        api_keys: keys
            .into_iter()
            .filter_map(|key| {
                Some(vcintel_infra::erasure::OwnApiKey {
                    key_id: key.id,
                    workspace_id: key.workspace_id,
                    role: key.role.parse().ok()?,
                })
            })
            .collect(),
        workspaces,
        notes,
    })
}

/// Up to `limit` people whose erasure's grace period is over, the longest
/// due first (along `users_erase_after_idx`).
pub async fn erasures_due(db: &sqlx::PgPool, limit: i64) -> Result<Vec<UserId>, sqlx::Error> {
    Ok(sqlx::query_scalar!(
        "select id from users where erase_after <= now() order by erase_after limit $1",
        limit
    )
    .fetch_all(db)
    .await?
    .into_iter()
    .map(UserId)
    .collect())
}
