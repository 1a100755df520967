//! cqrs-es adapters for the domain aggregates. The domain stays free of the
//! framework (which needs tokio); these newtypes are the only glue.

use crate::unique::{UniqueValue, UniqueValues};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use vcintel_domain::budget::{Budget, BudgetCommand, BudgetError, BudgetEvent};
use vcintel_domain::company::{Company, CompanyCommand, CompanyError, CompanyEvent};
use vcintel_domain::enrichment::{
    EnrichmentCommand, EnrichmentError, EnrichmentEvent, EnrichmentJob,
};
use vcintel_domain::list::{List, ListCommand, ListError, ListEvent};
use vcintel_domain::note::{Note, NoteCommand, NoteError, NoteEvent};
use vcintel_domain::saved_search::{
    SavedSearch, SavedSearchCommand, SavedSearchError, SavedSearchEvent,
};
use vcintel_domain::user::{User, UserCommand, UserError, UserEvent};
use vcintel_domain::workspace::{Workspace, WorkspaceCommand, WorkspaceError, WorkspaceEvent};

/// Wraps a domain aggregate (`decide`/`apply`) and its event enum for cqrs-es.
macro_rules! cqrs_adapter {
    ($aggregate:ident, $record:ident, $domain:ty, $command:ty, $event:ty, $error:ty) => {
        #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $aggregate(pub $domain);

        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $record(pub $event);

        impl DomainEvent for $record {
            fn event_type(&self) -> String {
                self.0.event_type().to_owned()
            }

            fn event_version(&self) -> String {
                self.0.event_version().to_owned()
            }
        }

        impl Aggregate for $aggregate {
            const TYPE: &'static str =
                <$event as vcintel_domain::events::EventFamily>::AGGREGATE_TYPE;
            type Command = $command;
            type Event = $record;
            type Error = $error;
            type Services = ();

            async fn handle(
                &mut self,
                command: Self::Command,
                _services: &Self::Services,
                sink: &EventSink<Self>,
            ) -> Result<(), Self::Error> {
                for event in self.0.decide(command)? {
                    sink.write($record(event), self).await;
                }
                Ok(())
            }

            fn apply(&mut self, event: Self::Event) {
                self.0.apply(event.0);
            }
        }
    };
}

/// Every aggregate's adapter, declared once; its aggregate type is its
/// event family's.
macro_rules! cqrs_adapters {
    ($(($aggregate:ident, $record:ident, $domain:ty, $command:ty, $event:ty, $error:ty)),+ $(,)?) => {
        $(cqrs_adapter!($aggregate, $record, $domain, $command, $event, $error);)+

        /// The aggregate types with an adapter (a test checks every event
        /// family has one).
        pub const ADAPTED_AGGREGATE_TYPES: &[&str] = &[
            $(<$event as vcintel_domain::events::EventFamily>::AGGREGATE_TYPE),+
        ];
    };
}

cqrs_adapters!(
    (
        CompanyAggregate,
        CompanyEventRecord,
        Company,
        CompanyCommand,
        CompanyEvent,
        CompanyError
    ),
    (
        UserAggregate,
        UserEventRecord,
        User,
        UserCommand,
        UserEvent,
        UserError
    ),
    (
        WorkspaceAggregate,
        WorkspaceEventRecord,
        Workspace,
        WorkspaceCommand,
        WorkspaceEvent,
        WorkspaceError
    ),
    (
        NoteAggregate,
        NoteEventRecord,
        Note,
        NoteCommand,
        NoteEvent,
        NoteError
    ),
    (
        ListAggregate,
        ListEventRecord,
        List,
        ListCommand,
        ListEvent,
        ListError
    ),
    (
        SavedSearchAggregate,
        SavedSearchEventRecord,
        SavedSearch,
        SavedSearchCommand,
        SavedSearchEvent,
        SavedSearchError
    ),
    (
        EnrichmentJobAggregate,
        EnrichmentEventRecord,
        EnrichmentJob,
        EnrichmentCommand,
        EnrichmentEvent,
        EnrichmentError
    ),
    (
        BudgetAggregate,
        BudgetEventRecord,
        Budget,
        BudgetCommand,
        BudgetEvent,
        BudgetError
    ),
);

impl UniqueValues for NoteAggregate {
    fn taken(_value: &UniqueValue, _holder: &str) -> NoteError {
        NoteError::AlreadyExists
    }
}

impl UniqueValues for ListAggregate {
    fn taken(_value: &UniqueValue, _holder: &str) -> ListError {
        ListError::AlreadyExists
    }
}

impl UniqueValues for SavedSearchAggregate {
    fn taken(_value: &UniqueValue, _holder: &str) -> SavedSearchError {
        SavedSearchError::AlreadyExists
    }
}

/// The scope of account emails in the unique-value index.
pub const EMAIL_SCOPE: &str = "email";

impl UniqueValues for UserAggregate {
    fn claimed(event: &UserEventRecord) -> Vec<UniqueValue> {
        match &event.0 {
            UserEvent::Registered(e) => e
                .email
                .known()
                .map(|email| UniqueValue::new(EMAIL_SCOPE, email.as_str()))
                .into_iter()
                .collect(),
            _ => vec![],
        }
    }

    /// An erased person's address is free for anyone to register again.
    fn released_scopes(event: &UserEventRecord) -> Vec<String> {
        match &event.0 {
            UserEvent::Erased(_) => vec![EMAIL_SCOPE.to_owned()],
            _ => vec![],
        }
    }

    fn taken(_value: &UniqueValue, _holder: &str) -> UserError {
        UserError::EmailTaken
    }
}

/// The scope of a workspace's company websites in the unique-value index.
pub fn website_scope(workspace: vcintel_domain::WorkspaceId) -> String {
    format!("website:{workspace}")
}

impl UniqueValues for CompanyAggregate {
    fn claimed(event: &CompanyEventRecord) -> Vec<UniqueValue> {
        match &event.0 {
            CompanyEvent::Added(e) => vec![UniqueValue::new(
                website_scope(e.workspace_id),
                e.details.website.identity(),
            )],
            CompanyEvent::DetailsUpdated(e) if e.changed_fields.iter().any(|f| f == "website") => {
                vec![UniqueValue::new(
                    website_scope(e.workspace_id),
                    e.details.website.identity(),
                )]
            }
            _ => vec![],
        }
    }

    fn released_scopes(event: &CompanyEventRecord) -> Vec<String> {
        match &event.0 {
            CompanyEvent::DetailsUpdated(e) if e.changed_fields.iter().any(|f| f == "website") => {
                vec![website_scope(e.workspace_id)]
            }
            CompanyEvent::Deleted(e) => vec![website_scope(e.workspace_id)],
            _ => vec![],
        }
    }

    fn taken(_value: &UniqueValue, holder: &str) -> CompanyError {
        match holder.parse() {
            Ok(id) => CompanyError::WebsiteTaken {
                existing: vcintel_domain::company::CompanyId(id),
            },
            Err(_) => CompanyError::AlreadyExists,
        }
    }
}

impl UniqueValues for WorkspaceAggregate {
    fn taken(_value: &UniqueValue, _holder: &str) -> WorkspaceError {
        WorkspaceError::AlreadyExists
    }
}

/// The scope holding a company's one active enrichment job.
pub fn active_enrichment_scope(company: vcintel_domain::company::CompanyId) -> String {
    format!("enrichment-active:{company}")
}

/// The scope holding a user's active enrichment jobs (one value per job),
/// counted for the per-user cap without waiting for any projection.
pub fn user_enrichments_scope(user: vcintel_domain::UserId) -> String {
    format!("enrichment-user:{user}")
}

impl UniqueValues for EnrichmentJobAggregate {
    fn claimed(event: &EnrichmentEventRecord) -> Vec<UniqueValue> {
        match &event.0 {
            EnrichmentEvent::Requested(e) => vec![
                UniqueValue::new(active_enrichment_scope(e.company_id), "active"),
                UniqueValue::new(user_enrichments_scope(e.requested_by), e.job_id.to_string()),
            ],
            _ => vec![],
        }
    }

    fn released_scopes(event: &EnrichmentEventRecord) -> Vec<String> {
        match &event.0 {
            EnrichmentEvent::Succeeded(e) => vec![
                active_enrichment_scope(e.company_id),
                user_enrichments_scope(e.requested_by),
            ],
            EnrichmentEvent::GivenUp(e) => vec![
                active_enrichment_scope(e.company_id),
                user_enrichments_scope(e.requested_by),
            ],
            _ => vec![],
        }
    }

    fn taken(_value: &UniqueValue, holder: &str) -> EnrichmentError {
        match holder.parse() {
            Ok(id) => EnrichmentError::AlreadyActive {
                existing: vcintel_domain::enrichment::EnrichmentJobId(id),
            },
            Err(_) => EnrichmentError::AlreadyExists,
        }
    }
}

impl UniqueValues for BudgetAggregate {
    fn taken(_value: &UniqueValue, _holder: &str) -> BudgetError {
        BudgetError::NoBudget
    }
}

#[cfg(test)]
mod tests {
    use super::ADAPTED_AGGREGATE_TYPES;
    use std::collections::BTreeSet;

    #[test]
    fn every_event_family_has_a_cqrs_adapter() {
        let families: BTreeSet<&str> = vcintel_domain::events::event_types()
            .into_iter()
            .map(|(aggregate, _)| aggregate)
            .collect();
        let adapted: BTreeSet<&str> = ADAPTED_AGGREGATE_TYPES.iter().copied().collect();
        assert_eq!(adapted, families);
    }
}
