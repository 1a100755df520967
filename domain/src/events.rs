//! The event catalogue: every event family, listed once in
//! [`for_each_family`]. The store's checker, the upcasters, the AsyncAPI
//! document and the fixtures test read the families from here; each family
//! is declared where its aggregate lives, with
//! [`event_family!`](crate::event_family::event_family).

pub use crate::event_family::{EventFamily, EventType, FamilyVisitor, Schema};

/// Every event family, in the order their aggregates were introduced.
macro_rules! families {
    ($($family:ty),+ $(,)?) => {
        /// Visits every event family.
        pub fn for_each_family<V: FamilyVisitor>(visitor: &mut V) -> Vec<V::Output> {
            vec![$(visitor.visit::<$family>()),+]
        }

        /// Visits the family of `aggregate_type`, if there is one.
        pub fn visit_family<V: FamilyVisitor>(
            aggregate_type: &str,
            visitor: &mut V,
        ) -> Option<V::Output> {
            $(
                if aggregate_type == <$family as EventFamily>::AGGREGATE_TYPE {
                    return Some(visitor.visit::<$family>());
                }
            )+
            None
        }
    };
}

families!(
    crate::company::CompanyEvent,
    crate::user::UserEvent,
    crate::workspace::WorkspaceEvent,
    crate::note::NoteEvent,
    crate::list::ListEvent,
    crate::saved_search::SavedSearchEvent,
    crate::enrichment::EnrichmentEvent,
    crate::budget::BudgetEvent,
);

/// Every event type the product writes, with its aggregate type.
pub fn event_types() -> Vec<(&'static str, EventType)> {
    struct Types;
    impl FamilyVisitor for Types {
        type Output = Vec<(&'static str, EventType)>;
        fn visit<F: EventFamily>(&mut self) -> Self::Output {
            F::EVENT_TYPES
                .iter()
                .map(|t| (F::AGGREGATE_TYPE, *t))
                .collect()
        }
    }
    for_each_family(&mut Types).into_iter().flatten().collect()
}

/// The aggregate type and current version of an event type.
pub fn event_type_named(name: &str) -> Option<(&'static str, EventType)> {
    event_types().into_iter().find(|(_, t)| t.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn event_type_names_are_unique_and_prefixed_by_their_aggregate() {
        let all = event_types();
        let names: HashSet<_> = all.iter().map(|(_, t)| t.name).collect();
        assert_eq!(names.len(), all.len());
        let aggregates: HashSet<_> = all.iter().map(|(a, _)| *a).collect();
        assert_eq!(aggregates.len(), 8);
        for (aggregate, event_type) in &all {
            let prefix = if *aggregate == "enrichment_job" {
                "enrichment"
            } else {
                aggregate
            };
            assert!(
                event_type.name.starts_with(&format!("{prefix}.")),
                "{} of {aggregate}",
                event_type.name
            );
        }
    }

    #[test]
    fn the_named_constants_are_catalogue_entries() {
        assert!(event_type_named(crate::company::DELETED_EVENT_TYPE).is_some());
        assert!(event_type_named(crate::user::ERASED_EVENT_TYPE).is_some());
        assert!(event_type_named(crate::enrichment::SUCCEEDED_EVENT_TYPE).is_some());
    }
}
