//! The event catalogue. Each aggregate's events are declared once, with
//! [`event_family!`]: the enum, the stable type name every variant is
//! stored and published under, and its payload version. The families are
//! listed once, in [`for_each_family`]; the store's checker, the upcasters,
//! the AsyncAPI document and the fixtures test read them from here.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// One event type: its stable name and its payload's current version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventType {
    pub name: &'static str,
    pub version: &'static str,
}

/// The events' JSON schema, for the API's documents, when the `schema`
/// feature is on; nothing otherwise.
#[cfg(feature = "schema")]
pub trait Schema: utoipa::ToSchema {}
#[cfg(feature = "schema")]
impl<T: utoipa::ToSchema> Schema for T {}
/// The events' JSON schema, for the API's documents, when the `schema`
/// feature is on; nothing otherwise.
#[cfg(not(feature = "schema"))]
pub trait Schema {}
#[cfg(not(feature = "schema"))]
impl<T> Schema for T {}

/// An aggregate's events.
pub trait EventFamily: Serialize + DeserializeOwned + Schema + Send + Sync + 'static {
    /// The aggregate type the events belong to.
    const AGGREGATE_TYPE: &'static str;
    /// Every event type of the family.
    const EVENT_TYPES: &'static [EventType];
}

/// Something done with one event family; the families are types, so they
/// are visited rather than iterated.
pub trait FamilyVisitor {
    type Output;
    fn visit<F: EventFamily>(&mut self) -> Self::Output;
}

/// Declares an aggregate's event enum: each variant with the type name it
/// is serialized and stored under, and its payload version. The names are
/// taken as token trees, not literals, so derives that read the serde
/// attribute (utoipa's schema) see a plain string literal.
macro_rules! event_family {
    (
        $(#[$meta:meta])*
        pub enum $family:ident of $aggregate:path {
            $( $(#[$variant_meta:meta])* $variant:ident($data:ty) = $name:tt v $version:tt, )+
        }
    ) => {
        $(#[$meta])*
        pub enum $family {
            $( $(#[$variant_meta])* #[serde(rename = $name)] $variant($data), )+
        }

        impl $family {
            /// The stable type name stored with the event and used in subjects.
            pub fn event_type(&self) -> &'static str {
                match self {
                    $( $family::$variant(_) => $name, )+
                }
            }

            /// The payload schema version of this event type.
            pub fn event_version(&self) -> &'static str {
                match self {
                    $( $family::$variant(_) => $version, )+
                }
            }
        }

        impl $crate::events::EventFamily for $family {
            const AGGREGATE_TYPE: &'static str = $aggregate;
            const EVENT_TYPES: &'static [$crate::events::EventType] = &[
                $( $crate::events::EventType { name: $name, version: $version }, )+
            ];
        }
    };
}
pub(crate) use event_family;

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
        assert!(event_type_named(crate::enrichment::SUCCEEDED_EVENT_TYPE).is_some());
    }
}
