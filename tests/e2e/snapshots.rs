//! Snapshots change how an aggregate is loaded, never what it is.

use crate::helpers::TestEnv;
use cqrs_es::EventStore;
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;
use vcintel_commands::{CommandError, CommandMetadata, CompanyAggregate, ListAggregate};
use vcintel_domain::company::{CompanyChanges, CompanyError, CompanyId, CompanyInput, Stage};
use vcintel_domain::list::ListId;
use vcintel_domain::Role;
use vcintel_infra::event_store::{
    command_services, command_services_with, event_store, RelayNudge,
};

/// The aggregate as loaded by a store with snapshots every `every` events
/// (or none), serialized.
async fn loaded<A: cqrs_es::Aggregate + vcintel_commands::UniqueValues>(
    pool: &PgPool,
    id: &str,
    every: Option<usize>,
) -> (Value, usize) {
    let store = event_store::<A>(
        &crate::helpers::test_vault(pool.clone()),
        &RelayNudge::new(pool.clone()),
        every,
    );
    let context = store.load_aggregate(id).await.unwrap();
    (
        serde_json::to_value(&context.aggregate).unwrap(),
        context.current_sequence,
    )
}

fn input(name: &str, website: &str) -> CompanyInput {
    CompanyInput {
        name: name.to_owned(),
        website: website.to_owned(),
        sector: Some("Climate".into()),
        stage: None,
        location: Some("Oslo".into()),
    }
}

#[tokio::test]
async fn state_with_and_without_snapshots_is_identical() {
    let env = TestEnv::new().await;
    let pool = &env.pool;
    let actor = env.actor(Uuid::now_v7(), Role::Owner);
    let meta = CommandMetadata::default();
    let with_snapshots = command_services_with(&crate::helpers::test_vault(pool.clone()), Some(3));
    let without = command_services(&crate::helpers::test_vault(pool.clone()));

    // A long company: added, then 22 changes through the snapshotting
    // services, with a few through the plain ones in between.
    let added = with_snapshots
        .companies
        .add(actor, input("Long Co", "long.example"), &meta)
        .await
        .unwrap();
    let company = CompanyId(added.aggregate_id.parse().unwrap());
    let stages = [Stage::Seed, Stage::SeriesA, Stage::SeriesB];
    for i in 0..22 {
        let services = if i % 7 == 6 {
            &without
        } else {
            &with_snapshots
        };
        let changes = CompanyChanges {
            name: Some(format!("Long Co {i}")),
            stage: Some(Some(stages[i % 3])),
            location: (i % 2 == 0).then(|| Some(format!("City {i}"))),
            ..CompanyChanges::default()
        };
        services
            .companies
            .update_details(actor, company, changes, None, &meta)
            .await
            .unwrap();
    }
    // A list whose state is a set that grows and shrinks.
    let list = with_snapshots
        .lists
        .create(actor, "Snapshotted".into(), &meta)
        .await
        .unwrap();
    let list_id = ListId(list.aggregate_id.parse().unwrap());
    for i in 0..8 {
        let member = with_snapshots
            .companies
            .add(
                actor,
                input(&format!("Member {i}"), &format!("member{i}.example")),
                &meta,
            )
            .await
            .unwrap();
        let member = CompanyId(member.aggregate_id.parse().unwrap());
        with_snapshots
            .lists
            .add_company(actor, list_id, member, &meta)
            .await
            .unwrap();
        if i % 3 == 0 {
            with_snapshots
                .lists
                .remove_company(actor, list_id, member, &meta)
                .await
                .unwrap();
        }
    }

    // Snapshots exist, at multiples of 3, so the loads below use them.
    let snapshot: (i64, i64) = sqlx::query_as(
        "select last_sequence, current_snapshot from snapshots
         where aggregate_type = 'company' and aggregate_id = $1",
    )
    .bind(&added.aggregate_id)
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(snapshot.0, 21, "23 events: the last snapshot is at 21");
    let (list_snapshot,): (i64,) = sqlx::query_as(
        "select last_sequence from snapshots where aggregate_type = 'list' and aggregate_id = $1",
    )
    .bind(&list.aggregate_id)
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(list_snapshot % 3, 0);

    let from_events = loaded::<CompanyAggregate>(pool, &added.aggregate_id, None).await;
    let from_snapshot = loaded::<CompanyAggregate>(pool, &added.aggregate_id, Some(3)).await;
    assert_eq!(from_events.1, 23);
    assert_eq!(from_snapshot, from_events);
    assert_eq!(
        from_events.0["lifecycle"]["Active"]["details"]["name"], "Long Co 21",
        "{}",
        from_events.0
    );
    assert_eq!(
        loaded::<ListAggregate>(pool, &list.aggregate_id, Some(3)).await,
        loaded::<ListAggregate>(pool, &list.aggregate_id, None).await
    );

    // A snapshot in an older format is ignored, not trusted.
    sqlx::query(
        "update snapshots set payload = '{\"format\": 0, \"state\": {\"garbage\": true}}'
         where aggregate_type = 'company' and aggregate_id = $1",
    )
    .bind(&added.aggregate_id)
    .execute(pool)
    .await
    .unwrap();
    assert_eq!(
        loaded::<CompanyAggregate>(pool, &added.aggregate_id, Some(3)).await,
        from_events
    );

    // The snapshot is written with the events, unique values included: a
    // website claimed by a command that also snapshots is held.
    let every_event = command_services_with(&crate::helpers::test_vault(pool.clone()), Some(1));
    every_event
        .companies
        .add(actor, input("Claimed", "claimed.example"), &meta)
        .await
        .unwrap();
    let again = without
        .companies
        .add(
            actor,
            input("Claimed again", "https://claimed.example/"),
            &meta,
        )
        .await;
    assert!(
        matches!(
            again,
            Err(CommandError::Company(CompanyError::WebsiteTaken { .. }))
        ),
        "{again:?}"
    );
}
