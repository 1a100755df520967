use cqrs_es::AggregateError;
use vcintel_domain::company::CompanyError;
use vcintel_domain::enrichment::EnrichmentError;
use vcintel_domain::list::ListError;
use vcintel_domain::note::NoteError;
use vcintel_domain::saved_search::SavedSearchError;
use vcintel_domain::user::UserError;
use vcintel_domain::workspace::WorkspaceError;

/// Why a command was not carried out.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Company(#[from] CompanyError),
    #[error(transparent)]
    User(#[from] UserError),
    #[error(transparent)]
    Note(#[from] NoteError),
    #[error(transparent)]
    List(#[from] ListError),
    #[error(transparent)]
    SavedSearch(#[from] SavedSearchError),
    #[error(transparent)]
    Workspace(#[from] WorkspaceError),
    #[error(transparent)]
    Enrichment(#[from] EnrichmentError),
    #[error(transparent)]
    Budget(#[from] vcintel_domain::budget::BudgetError),
    #[error("the role `{role}` may not {action}")]
    Forbidden {
        role: &'static str,
        action: &'static str,
    },
    /// The caller's `If-Match` named a version that is no longer current.
    #[error("expected version {expected}, but the current version is {actual}")]
    VersionMismatch { expected: u64, actual: u64 },
    /// Another writer appended to the same aggregate between load and commit.
    #[error("a concurrent change to the same aggregate won; retry with the new version")]
    Conflict,
    /// The credentials or the refresh token were not accepted.
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// A verification token unknown, already used or expired.
    #[error("this verification token is unknown, used or expired; ask for a new mail")]
    InvalidToken,
    /// An admission quota refused the request.
    #[error(transparent)]
    Refused(#[from] crate::admission::Refusal),
    #[error("event store failure: {0}")]
    Store(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl CommandError {
    /// A failure of the store a port reads or writes.
    pub fn store(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        CommandError::Store(Box::new(error))
    }
}

impl<E> From<AggregateError<E>> for CommandError
where
    E: std::error::Error + Into<CommandError>,
{
    fn from(error: AggregateError<E>) -> Self {
        match error {
            AggregateError::UserError(e) => e.into(),
            AggregateError::AggregateConflict => CommandError::Conflict,
            AggregateError::DatabaseConnectionError(e)
            | AggregateError::DeserializationError(e)
            | AggregateError::UnexpectedError(e) => CommandError::Store(e),
        }
    }
}
