//! What an event family is: an aggregate's event enum, declared once with
//! [`event_family!`] (each variant, the stable type name it is stored and
//! published under, and its payload version).

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

        impl $crate::event_family::EventFamily for $family {
            const AGGREGATE_TYPE: &'static str = $aggregate;
            const EVENT_TYPES: &'static [$crate::event_family::EventType] = &[
                $( $crate::event_family::EventType { name: $name, version: $version }, )+
            ];
        }
    };
}
pub(crate) use event_family;
