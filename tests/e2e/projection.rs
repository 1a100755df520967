//! Projections apply each aggregate's events in version order: duplicates are
//! skipped and gaps are filled from the event store, never guessed.

use crate::helpers::{eventually, TestEnv};
use std::time::Duration;
use uuid::Uuid;
use vcintel_api::Component;
use vcintel_commands::CommandMetadata;
use vcintel_domain::company::CompanyChanges;
use vcintel_domain::Role;
use vcintel_domain::WorkspaceId;
use vcintel_projections::companies;

#[tokio::test]
async fn a_message_missing_from_the_stream_is_filled_from_the_event_store() {
    let mut env = TestEnv::new().await;
    let relay = env.start(&[Component::Relay]).await;
    let workspace = Uuid::now_v7();
    let actor = env.actor(workspace, Role::Member);
    let id = env.add_companies(actor, 0..1).await[0];
    let commands = env.company_commands();
    let meta = CommandMetadata::default();
    for name in ["Gappy 2", "Gappy 3"] {
        let changes = CompanyChanges {
            name: Some(name.into()),
            ..Default::default()
        };
        commands
            .update_details(actor, id, changes, None, &meta)
            .await
            .unwrap();
    }
    eventually(Duration::from_secs(20), "three messages", || async {
        (env.stream_message_count().await == 3).then_some(())
    })
    .await;
    relay.stop().await;

    // Lose the "added" message: the projector first sees version 2.
    let stream = env.stream().await;
    let first = env
        .stream_messages()
        .await
        .into_iter()
        .position(|m| m.body["sequence"] == 1)
        .unwrap();
    assert!(stream.delete_message(first as u64 + 1).await.unwrap());
    assert_eq!(env.stream_message_count().await, 2);

    let _projector = env.start(&[Component::Projector]).await;
    let row = eventually(
        Duration::from_secs(20),
        "the company at version 3",
        || async {
            companies::get(&env.pool, WorkspaceId(workspace), id.0)
                .await
                .unwrap()
                .filter(|row| row.version == 3)
        },
    )
    .await;
    assert_eq!(row.name, "Gappy 3");
    assert_eq!(
        row.website, "company0.example",
        "the added event was read from the store"
    );
    assert_eq!(row.added_by, actor.user_id.0);
}
