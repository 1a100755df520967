use cqrs_es::AggregateError;
use vcintel_domain::company::CompanyError;

/// Why a command was not carried out.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Company(#[from] CompanyError),
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
    #[error("event store failure: {0}")]
    Store(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl From<AggregateError<CompanyError>> for CommandError {
    fn from(error: AggregateError<CompanyError>) -> Self {
        match error {
            AggregateError::UserError(e) => CommandError::Company(e),
            AggregateError::AggregateConflict => CommandError::Conflict,
            AggregateError::DatabaseConnectionError(e)
            | AggregateError::DeserializationError(e)
            | AggregateError::UnexpectedError(e) => CommandError::Store(e),
        }
    }
}
