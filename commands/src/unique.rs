//! Set rules ("one account per email") as values an aggregate's events claim
//! and release. The event store keeps an index of claimed values and writes
//! it in the same statement as the events, so two concurrent commands can
//! never both take one value, and a failed append takes nothing.

use cqrs_es::Aggregate;

/// A value that at most one aggregate may hold within its scope.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UniqueValue {
    pub scope: String,
    pub value: String,
}

impl UniqueValue {
    pub fn new(scope: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            scope: scope.into(),
            value: value.into(),
        }
    }
}

/// Which unique values an aggregate's events take and give back.
pub trait UniqueValues: Aggregate {
    fn claimed(_event: &Self::Event) -> Vec<UniqueValue> {
        Vec::new()
    }

    fn released(_event: &Self::Event) -> Vec<UniqueValue> {
        Vec::new()
    }

    /// Scopes in which the event gives back every value the aggregate holds
    /// (a renamed website, a deleted company), so the event need not carry
    /// the old value.
    fn released_scopes(_event: &Self::Event) -> Vec<String> {
        Vec::new()
    }

    /// The error a command gets when `value` is already held by `holder`
    /// (an aggregate id of the same type).
    fn taken(value: &UniqueValue, holder: &str) -> Self::Error;
}
