//! Account use cases: sign-up creates the user (claiming the email) and then
//! the personal workspace, which a later login completes if a crash came
//! between the two.

use crate::aggregate::{UserAggregate, WorkspaceAggregate};
use crate::execute::{execute, Load, LoadedAggregate};
use crate::{CommandError, CommandMetadata, Committed};
use cqrs_es::EventStore;
use vcintel_domain::user::{Email, UserCommand};
use vcintel_domain::workspace::{WorkspaceCommand, WorkspaceError};
use vcintel_domain::{UserId, WorkspaceId};

/// Verification tokens: minted by the mailer, kept only as hashes.
#[async_trait::async_trait]
pub trait VerificationTokens: Send + Sync {
    /// Marks the token used and names the account and address it was sent
    /// to; `None` for a token unknown, used or expired.
    async fn redeem(&self, token: &str) -> Result<Option<(UserId, Email)>, CommandError>;
}

pub struct AccountCommands<U, W> {
    users: U,
    workspaces: W,
}

impl<U, W> std::fmt::Debug for AccountCommands<U, W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccountCommands")
    }
}

impl<U, W> AccountCommands<U, W>
where
    U: EventStore<UserAggregate>,
    U::AC: LoadedAggregate<UserAggregate> + Send,
    W: EventStore<WorkspaceAggregate>,
    W::AC: LoadedAggregate<WorkspaceAggregate> + Send,
{
    pub fn new(users: U, workspaces: W) -> Self {
        Self { users, workspaces }
    }

    /// Registers the user; the email is claimed in the same append, so of
    /// many concurrent sign-ups with one address exactly one succeeds.
    #[tracing::instrument(skip_all, fields(user_id = %user_id))]
    pub async fn register(
        &self,
        user_id: UserId,
        email: String,
        name: String,
        personal_workspace_id: WorkspaceId,
        metadata: &CommandMetadata,
    ) -> Result<Committed, CommandError> {
        let command = UserCommand::Register {
            user_id,
            email,
            name,
            personal_workspace_id,
        };
        execute(
            &self.users,
            user_id.to_string(),
            Load::Fresh,
            command,
            |_, _| Ok(()),
            metadata.for_user(personal_workspace_id, user_id),
        )
        .await
    }

    /// Creates a workspace owned by `owner`. Creating one that already
    /// exists with the same owner is a no-op, so completing an interrupted
    /// sign-up is safe to repeat.
    #[tracing::instrument(skip_all, fields(workspace_id = %workspace_id, user_id = %owner))]
    pub async fn create_workspace(
        &self,
        workspace_id: WorkspaceId,
        name: String,
        owner: UserId,
        owner_email: Email,
        personal: bool,
        metadata: &CommandMetadata,
    ) -> Result<Committed, CommandError> {
        let command = WorkspaceCommand::Create {
            workspace_id,
            name,
            created_by: owner,
            creator_email: owner_email,
            personal,
        };
        let result = execute(
            &self.workspaces,
            workspace_id.to_string(),
            Load::Stored,
            command,
            |_, _| Ok(()),
            metadata.for_user(workspace_id, owner),
        )
        .await;
        match result {
            Err(CommandError::Workspace(WorkspaceError::AlreadyExists)) => {
                let mut context = self
                    .workspaces
                    .load_aggregate(&workspace_id.to_string())
                    .await?;
                let version = context.version();
                if context.state().0.role_of(owner).is_some() {
                    Ok(Committed {
                        aggregate_type: vcintel_domain::workspace::AGGREGATE_TYPE,
                        aggregate_id: workspace_id.to_string(),
                        version,
                        appended: 0,
                    })
                } else {
                    Err(WorkspaceError::AlreadyExists.into())
                }
            }
            other => other,
        }
    }

    /// Whether `user` proved they own their account's e-mail address.
    pub async fn email_verified(&self, user: UserId) -> Result<bool, CommandError> {
        let mut context = self.users.load_aggregate(&user.to_string()).await?;
        Ok(context.state().0.email_verified())
    }

    /// Asks for another verification mail to the account's address (the
    /// mailer sends it from the event).
    #[tracing::instrument(skip_all, fields(user_id = %user))]
    pub async fn request_verification(
        &self,
        user: UserId,
        personal_workspace: WorkspaceId,
        metadata: &CommandMetadata,
    ) -> Result<Committed, CommandError> {
        execute(
            &self.users,
            user.to_string(),
            Load::Stored,
            UserCommand::RequestVerification,
            |_, _| Ok(()),
            metadata.for_user(personal_workspace, user),
        )
        .await
    }

    /// A change to whether the person is to be forgotten (see
    /// [`UserCommand::RequestErasure`], `CancelErasure` and `Erase`).
    #[tracing::instrument(skip_all, fields(user_id = %user))]
    pub async fn change_erasure(
        &self,
        user: UserId,
        command: UserCommand,
        metadata: &CommandMetadata,
    ) -> Result<Committed, CommandError> {
        let mut context = self.users.load_aggregate(&user.to_string()).await?;
        let personal_workspace = context
            .state()
            .0
            .registration()
            .map(|r| r.personal_workspace_id)
            .ok_or(vcintel_domain::user::UserError::NotFound)?;
        execute(
            &self.users,
            user.to_string(),
            Load::Stored,
            command,
            |_, _| Ok(()),
            metadata.for_user(personal_workspace, user),
        )
        .await
    }

    /// Where the person stands with respect to being forgotten.
    pub async fn erasure_state(
        &self,
        user: UserId,
    ) -> Result<vcintel_domain::user::ErasureState, CommandError> {
        let mut context = self.users.load_aggregate(&user.to_string()).await?;
        Ok(context.state().0.erasure())
    }

    /// Redeems a verification token: single use, unexpired, for the address
    /// the account still has.
    #[tracing::instrument(skip_all)]
    pub async fn verify_email(
        &self,
        tokens: &dyn VerificationTokens,
        token: &str,
        metadata: &CommandMetadata,
    ) -> Result<(UserId, Committed), CommandError> {
        let (user, email) = tokens
            .redeem(token)
            .await?
            .ok_or(CommandError::InvalidToken)?;
        let mut context = self.users.load_aggregate(&user.to_string()).await?;
        let personal_workspace = context
            .state()
            .0
            .registration()
            .map(|r| r.personal_workspace_id)
            .ok_or(CommandError::InvalidToken)?;
        let committed = execute(
            &self.users,
            user.to_string(),
            Load::Stored,
            UserCommand::VerifyEmail { email },
            |_, _| Ok(()),
            metadata.for_user(personal_workspace, user),
        )
        .await?;
        Ok((user, committed))
    }

    /// Runs a workspace command a user gives for themselves, outside any
    /// membership (answering an invitation).
    #[tracing::instrument(skip_all, fields(workspace_id = %workspace, user_id = %user))]
    pub(crate) async fn run_for_user(
        &self,
        workspace: WorkspaceId,
        user: UserId,
        command: WorkspaceCommand,
        metadata: &CommandMetadata,
    ) -> Result<Committed, CommandError> {
        execute(
            &self.workspaces,
            workspace.to_string(),
            Load::Stored,
            command,
            |_, _| Ok(()),
            metadata.for_user(workspace, user),
        )
        .await
    }
}
