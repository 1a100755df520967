//! Event schema evolution: stored events are turned into today's version of
//! their type when they are read, one version step at a time.
//!
//! An event's shape never changes in place. A change makes a new version
//! (the domain's `event_version`), adds a step here that turns the previous
//! version's data into the new one, raises the version in
//! the event catalogue (`vcintel_domain::events`), and adds a fixture for the new version
//! next to the old ones in `tests/fixtures/events` (which are never edited).
//! Every reader goes through [`upcast`]: the aggregates that command
//! services load (through cqrs-es' upcaster hook), the relay, projections,
//! rebuilds, the audit feed and `vcintel events`, because they all read
//! [`crate::event_log::StoredEvent`] or the cqrs-es repository.
//!
//! The chain itself is tested below with steps of its own.

use serde_json::Value;

/// Turns the data of `event_type` at version `from` into version `from + 1`.
#[derive(Debug, Clone, Copy)]
pub struct Upcaster {
    pub event_type: &'static str,
    pub from: u32,
    pub step: fn(Value) -> Value,
}

/// Every step ever needed, in any order.
pub const UPCASTERS: &[Upcaster] = &[
    sealed_from_v1("user.registered"),
    sealed_from_v1("user.verification_requested"),
    sealed_from_v1("user.email_verified"),
    sealed_from_v1("workspace.member_added"),
    sealed_from_v1("workspace.member_invited"),
    sealed_from_v1("workspace.invitation_cancelled"),
    sealed_from_v1("workspace.invitation_declined"),
    sealed_from_v1("note.added"),
    sealed_from_v1("note.edited"),
];

/// v2 of an event with personal fields stores them sealed (see
/// `crate::personal_data`); v1 stored them in the clear. Reading opens
/// sealed values before anything else, so opened, v1 and v2 are the same
/// shape: the step changes nothing but the version. The version still
/// changed, because what is stored and published did (a subscriber reads
/// a sealed object where v1 had a string), and `vcintel privacy migrate`
/// finds the v1 events it must seal by it.
const fn sealed_from_v1(event_type: &'static str) -> Upcaster {
    Upcaster {
        event_type,
        from: 1,
        step: |data| data,
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpcastError {
    #[error("{event_type} v{version} was written by newer code (this code knows v{current})")]
    NewerThanCode {
        event_type: String,
        version: u32,
        current: u32,
    },
    #[error("no upcaster turns {event_type} v{from} into v{}", .from + 1)]
    MissingStep { event_type: String, from: u32 },
    #[error("{event_type} has an unreadable version `{version}`")]
    BadVersion { event_type: String, version: String },
    #[error("`{0}` is not an event type this code knows")]
    UnknownType(String),
}

/// Today's version of `event_type`.
pub fn current_version(event_type: &str) -> Option<u32> {
    static CURRENT: std::sync::OnceLock<std::collections::HashMap<&'static str, u32>> =
        std::sync::OnceLock::new();
    CURRENT
        .get_or_init(|| {
            vcintel_domain::events::event_types()
                .into_iter()
                .filter_map(|(_, t)| Some((t.name, t.version.parse().ok()?)))
                .collect()
        })
        .get(event_type)
        .copied()
}

/// Whether `version` of `event_type` is older than today's.
pub fn is_outdated(event_type: &str, version: &str) -> bool {
    current_version(event_type)
        .is_some_and(|current| version.parse::<u32>().is_ok_and(|v| v < current))
}

/// The stored payload (`{"<event type>": data}`) of `event_type` at
/// `version`, as today's version; returns that version too.
pub fn upcast(
    event_type: &str,
    version: &str,
    payload: Value,
) -> Result<(u32, Value), UpcastError> {
    let current = current_version(event_type)
        .ok_or_else(|| UpcastError::UnknownType(event_type.to_owned()))?;
    upcast_with(UPCASTERS, current, event_type, version, payload)
}

/// [`upcast`] over a given set of steps and current version.
pub fn upcast_with(
    steps: &[Upcaster],
    current: u32,
    event_type: &str,
    version: &str,
    mut payload: Value,
) -> Result<(u32, Value), UpcastError> {
    let mut at: u32 = version.parse().map_err(|_| UpcastError::BadVersion {
        event_type: event_type.to_owned(),
        version: version.to_owned(),
    })?;
    if at > current {
        return Err(UpcastError::NewerThanCode {
            event_type: event_type.to_owned(),
            version: at,
            current,
        });
    }
    while at < current {
        let step = steps
            .iter()
            .find(|s| s.event_type == event_type && s.from == at)
            .ok_or_else(|| UpcastError::MissingStep {
                event_type: event_type.to_owned(),
                from: at,
            })?;
        if let Some(data) = payload.get_mut(event_type) {
            *data = (step.step)(data.take());
        }
        at += 1;
    }
    Ok((at, payload))
}

/// The same chain as cqrs-es' upcaster hook, for the aggregates the command
/// services load.
#[derive(Debug, Clone, Copy, Default)]
pub struct UpcastToCurrent;

impl cqrs_es::persist::EventUpcaster for UpcastToCurrent {
    fn can_upcast(&self, event_type: &str, event_version: &str) -> bool {
        is_outdated(event_type, event_version)
    }

    fn upcast(
        &self,
        mut event: cqrs_es::persist::SerializedEvent,
    ) -> cqrs_es::persist::SerializedEvent {
        // `can_upcast` said a chain may exist; if a step is missing the
        // event stays as stored and fails to deserialize, naming itself.
        if let Ok((version, payload)) = upcast(
            &event.event_type,
            &event.event_version,
            std::mem::take(&mut event.payload),
        ) {
            event.event_version = version.to_string();
            event.payload = payload;
        }
        event
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A made-up history of `thing.happened`: v1 had `title`; v2 renamed it
    /// `name`; v3 added `tags`.
    const STEPS: &[Upcaster] = &[
        Upcaster {
            event_type: "thing.happened",
            from: 2,
            step: |mut data| {
                data["tags"] = json!([]);
                data
            },
        },
        Upcaster {
            event_type: "thing.happened",
            from: 1,
            step: |mut data| {
                let title = data
                    .as_object_mut()
                    .and_then(|d| d.remove("title"))
                    .unwrap_or_default();
                data["name"] = title;
                data
            },
        },
    ];

    #[test]
    fn an_old_version_goes_through_every_step_in_order() {
        let v1 = json!({"thing.happened": {"title": "Launch"}});
        assert_eq!(
            upcast_with(STEPS, 3, "thing.happened", "1", v1),
            Ok((3, json!({"thing.happened": {"name": "Launch", "tags": []}})))
        );
        let v2 = json!({"thing.happened": {"name": "Launch"}});
        assert_eq!(
            upcast_with(STEPS, 3, "thing.happened", "2", v2),
            Ok((3, json!({"thing.happened": {"name": "Launch", "tags": []}})))
        );
    }

    #[test]
    fn the_current_version_is_left_alone() {
        let v3 = json!({"thing.happened": {"name": "x", "tags": ["a"]}});
        assert_eq!(
            upcast_with(STEPS, 3, "thing.happened", "3", v3.clone()),
            Ok((3, v3))
        );
    }

    #[test]
    fn a_newer_version_a_missing_step_or_a_garbled_version_is_named() {
        let any = json!({"thing.happened": {}});
        assert!(matches!(
            upcast_with(STEPS, 3, "thing.happened", "4", any.clone()),
            Err(UpcastError::NewerThanCode { version: 4, .. })
        ));
        assert!(matches!(
            upcast_with(&STEPS[..1], 3, "thing.happened", "1", any.clone()),
            Err(UpcastError::MissingStep { from: 1, .. })
        ));
        assert!(matches!(
            upcast_with(STEPS, 3, "thing.happened", "v1", any),
            Err(UpcastError::BadVersion { .. })
        ));
    }

    #[test]
    fn every_registered_step_leads_to_a_known_current_version() {
        for step in UPCASTERS {
            let current = current_version(step.event_type)
                .unwrap_or_else(|| panic!("{} is not in the catalogue", step.event_type));
            assert!(step.from < current, "{} v{}", step.event_type, step.from);
        }
    }
}
