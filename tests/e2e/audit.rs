//! Audit over HTTP: the feed in commit order, histories, and correlation
//! and causation carried from a request through the enrichment worker.

use crate::fixtures::{fixture_site, target_listener};
use crate::helpers::{eventually, TestEnv};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::Duration;
use uuid::Uuid;
use vcintel_domain::Role;

/// Every page of the feed, following `next_cursor`.
async fn whole_feed(env: &TestEnv, base: &str, token: &str, query: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{base}/v1/events?limit=7{query}");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let page = env.call(Method::GET, &url, Some(token), None, None).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        items.extend(page.body["items"].as_array().unwrap().iter().cloned());
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return items,
        }
    }
}

#[tokio::test]
async fn the_feed_is_in_commit_order_under_concurrent_writers_and_filters() {
    let mut env = TestEnv::new().await;
    let base = env.start_all().await;
    let workspace = Uuid::now_v7();
    let owner = env.token(&env.actor(workspace, Role::Owner));
    let writes = (0..30).map(|i| {
        let (env, base, owner) = (&env, base.clone(), owner.clone());
        async move {
            let added = env
                .call(
                    Method::POST,
                    &format!("{base}/v1/companies"),
                    Some(&owner),
                    None,
                    Some(&json!({"name": format!("Audited {i}"), "website": format!("audited{i}.example")})),
                )
                .await;
            let id = added.body["id"].as_str().unwrap().to_owned();
            if i % 3 == 0 {
                env.call(
                    Method::PATCH,
                    &format!("{base}/v1/companies/{id}"),
                    Some(&owner),
                    None,
                    Some(&json!({"sector": "Fintech"})),
                )
                .await;
            }
        }
    });
    futures::future::join_all(writes).await;
    // Another workspace's events never show.
    let other = env.token(&env.actor(Uuid::now_v7(), Role::Owner));
    env.post_json(
        &format!("{base}/v1/companies"),
        &other,
        &json!({"name": "Elsewhere", "website": "elsewhere.example"}),
    )
    .await;

    // The relay publishes in commit order: the stream is the reference.
    let stream = eventually(
        Duration::from_secs(20),
        "all events on the stream",
        || async {
            let messages = env.stream_messages().await;
            (messages.len() >= 41).then_some(messages)
        },
    )
    .await;
    let expected: Vec<String> = stream
        .iter()
        .filter(|m| m.body["workspaceid"] == workspace.to_string())
        .map(|m| m.msg_id.clone())
        .collect();
    assert_eq!(expected.len(), 40);
    let feed = whole_feed(&env, &base, &owner, "").await;
    let ids: Vec<String> = feed
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, expected, "feed order is commit order");
    let first = &feed[0];
    assert_eq!(first["type"], "company.added");
    assert_eq!(first["version"], "1");
    assert_eq!(first["aggregate_type"], "company");
    assert!(first["actor_id"].is_string() && first["position"].is_i64());
    assert!(first["data"]["name"]
        .as_str()
        .unwrap()
        .starts_with("Audited"));

    let updates = whole_feed(&env, &base, &owner, "&event_type=company.details_updated").await;
    assert_eq!(updates.len(), 10);
    let company = feed[0]["aggregate_id"].as_str().unwrap();
    let one = whole_feed(&env, &base, &owner, &format!("&aggregate_id={company}")).await;
    assert!(one.iter().all(|e| e["aggregate_id"] == company));
    let future = whole_feed(&env, &base, &owner, "&since=2999-01-01T00:00:00Z").await;
    assert!(future.is_empty());

    let member = env.token(&env.actor(workspace, Role::Member));
    let refused = env
        .call(
            Method::GET,
            &format!("{base}/v1/events"),
            Some(&member),
            None,
            None,
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let garbled = env
        .call(
            Method::GET,
            &format!("{base}/v1/events?cursor=nope"),
            Some(&owner),
            None,
            None,
        )
        .await;
    assert_eq!(garbled.status, StatusCode::BAD_REQUEST);
    assert_eq!(garbled.body["errors"][0]["field"], "cursor");
}

#[tokio::test]
async fn a_company_history_shows_who_changed_what_and_reactors_carry_the_correlation() {
    let (target, _) = target_listener().await;
    let fixture = fixture_site(target).await;
    let mut env = TestEnv::new().await;
    let mut settings = env.settings();
    settings.enrich_allow_addresses = vec![fixture];
    let base = env.start_all_with(settings).await;
    let workspace = Uuid::now_v7();
    let owner = env.token(&env.actor(workspace, Role::Owner));
    let added = env
        .http
        .post(format!("{base}/v1/companies"))
        .bearer_auth(&owner)
        .header("x-request-id", "req-add-1")
        .json(&json!({"name": "Historic", "website": fixture.to_string()}))
        .send()
        .await
        .unwrap();
    let id = added.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    env.http
        .patch(format!("{base}/v1/companies/{id}"))
        .bearer_auth(&owner)
        .json(&json!({"stage": "seed"}))
        .send()
        .await
        .unwrap();
    let requested = env
        .http
        .post(format!("{base}/v1/companies/{id}/enrichments"))
        .bearer_auth(&owner)
        .header("x-request-id", "req-enrich-7")
        .send()
        .await
        .unwrap();
    let job = requested.json::<Value>().await.unwrap()["job_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let job_events = eventually(Duration::from_secs(20), "the job to succeed", || async {
        let events = env
            .call(
                Method::GET,
                &format!("{base}/v1/events?aggregate_id={job}"),
                Some(&owner),
                None,
                None,
            )
            .await;
        let items = events.body["items"].as_array().cloned().unwrap_or_default();
        items
            .iter()
            .any(|e| e["type"] == "enrichment.succeeded")
            .then_some(items)
    })
    .await;
    let requested_event = &job_events[0];
    assert_eq!(requested_event["type"], "enrichment.requested");
    assert_eq!(requested_event["correlation_id"], "req-enrich-7");
    for event in &job_events[1..] {
        assert_eq!(event["correlation_id"], "req-enrich-7", "{event}");
        assert_eq!(event["causation_id"], requested_event["id"], "{event}");
    }

    let history = env
        .call(
            Method::GET,
            &format!("{base}/v1/companies/{id}/history"),
            Some(&owner),
            None,
            None,
        )
        .await;
    assert_eq!(history.status, StatusCode::OK, "{}", history.body);
    let items = history.body["items"].as_array().unwrap();
    let types: Vec<&str> = items.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["company.added", "company.details_updated"]);
    assert_eq!(items[0]["request_id"], "req-add-1");
    assert_eq!(items[0]["correlation_id"], "req-add-1");
    assert_eq!(items[1]["sequence"], 2);
    assert_eq!(items[1]["data"]["stage"], "seed");

    let stranger = env.token(&env.actor(Uuid::now_v7(), Role::Owner));
    let hidden = env
        .call(
            Method::GET,
            &format!("{base}/v1/companies/{id}/history"),
            Some(&stranger),
            None,
            None,
        )
        .await;
    assert_eq!(hidden.status, StatusCode::NOT_FOUND);
    let viewer = env.token(&env.actor(workspace, Role::Viewer));
    let refused = env
        .call(
            Method::GET,
            &format!("{base}/v1/companies/{id}/history"),
            Some(&viewer),
            None,
            None,
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn past_states_are_folded_from_the_events_by_version_or_time() {
    let mut env = TestEnv::new().await;
    let base = env.start_all().await;
    let workspace = Uuid::now_v7();
    let owner = env.token(&env.actor(workspace, Role::Owner));
    let call = |method: Method, path: String, body: Option<Value>| {
        let (env, url, owner) = (&env, format!("{base}{path}"), owner.clone());
        async move {
            env.call(method, &url, Some(&owner), None, body.as_ref())
                .await
        }
    };
    let added = call(
        Method::POST,
        "/v1/companies".into(),
        Some(json!({"name": "Chrysalis", "website": "chrysalis.example", "stage": "pre_seed"})),
    )
    .await;
    let id = added.body["id"].as_str().unwrap().to_owned();
    for (name, stage) in [("Chrysalis Labs", "seed"), ("Butterfly", "series_a")] {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let changed = call(
            Method::PATCH,
            format!("/v1/companies/{id}"),
            Some(json!({"name": name, "stage": stage})),
        )
        .await;
        assert_eq!(changed.status, StatusCode::OK);
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    call(Method::DELETE, format!("/v1/companies/{id}"), None).await;

    let history = call(Method::GET, format!("/v1/companies/{id}/history"), None).await;
    let times: Vec<String> = history.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["recorded_at"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(times.len(), 4);

    for (version, name, stage) in [
        (1, "Chrysalis", "pre_seed"),
        (2, "Chrysalis Labs", "seed"),
        (3, "Butterfly", "series_a"),
    ] {
        let past = call(
            Method::GET,
            format!("/v1/companies/{id}?as_of={version}"),
            None,
        )
        .await;
        assert_eq!(past.status, StatusCode::OK, "{}", past.body);
        assert_eq!(past.body["name"], name);
        assert_eq!(past.body["stage"], stage);
        assert_eq!(past.body["version"], version);
        assert_eq!(past.body["as_of"]["version"], version);
        assert_eq!(
            past.body["as_of"]["recorded_at"].as_str().unwrap(),
            times[version - 1]
        );
    }
    // By time: exactly at the second event's time is version 2.
    let at = times[1].replace('+', "%2B");
    let by_time = call(Method::GET, format!("/v1/companies/{id}?as_of={at}"), None).await;
    assert_eq!(by_time.status, StatusCode::OK, "{}", by_time.body);
    assert_eq!(by_time.body["name"], "Chrysalis Labs");
    // Deleted at version 4; and nothing existed before it was added.
    let gone = call(Method::GET, format!("/v1/companies/{id}?as_of=4"), None).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    let before = call(
        Method::GET,
        format!("/v1/companies/{id}?as_of=2000-01-01T00:00:00Z"),
        None,
    )
    .await;
    assert_eq!(before.status, StatusCode::NOT_FOUND);
    for neither in ["yesterday", "-1", "1.5", "2000-01-01"] {
        let reply = call(
            Method::GET,
            format!("/v1/companies/{id}?as_of={neither}"),
            None,
        )
        .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{neither}");
        assert_eq!(reply.body["errors"][0]["field"], "as_of", "{neither}");
    }
    let viewer = env.token(&env.actor(workspace, Role::Viewer));
    let refused = env
        .call(
            Method::GET,
            &format!("{base}/v1/companies/{id}?as_of=1"),
            Some(&viewer),
            None,
            None,
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn every_message_on_the_stream_is_a_valid_cloudevent() {
    use cloudevents::{AttributesReader, Data};
    let mut env = TestEnv::new().await;
    let base = env.start_all().await;
    let token = env.token(&env.actor(Uuid::now_v7(), Role::Member));
    let (_, company) = env
        .post_json(
            &format!("{base}/v1/companies"),
            &token,
            &json!({"name": "Evented", "website": "evented.example"}),
        )
        .await;
    let id = company["id"].as_str().unwrap();
    env.post_json(
        &format!("{base}/v1/companies/{id}/notes"),
        &token,
        &json!({"content": "n"}),
    )
    .await;
    let (_, list) = env
        .post_json(&format!("{base}/v1/lists"), &token, &json!({"name": "L"}))
        .await;
    let list = list["id"].as_str().unwrap();
    env.call(
        Method::PUT,
        &format!("{base}/v1/lists/{list}/companies/{id}"),
        Some(&token),
        None,
        None,
    )
    .await;
    env.call(
        Method::DELETE,
        &format!("{base}/v1/companies/{id}"),
        Some(&token),
        None,
        None,
    )
    .await;
    let messages = eventually(Duration::from_secs(20), "five events published", || async {
        let messages = env.stream_messages().await;
        (messages.len() >= 5).then_some(messages)
    })
    .await;
    for message in messages {
        let event: cloudevents::Event = serde_json::from_value(message.body.clone())
            .unwrap_or_else(|e| panic!("not a CloudEvent ({e}): {}", message.body));
        assert_eq!(event.specversion(), cloudevents::event::SpecVersion::V10);
        assert_eq!(event.id(), message.msg_id, "id = Nats-Msg-Id");
        let event_type = message.body["eventtype"].as_str().unwrap();
        let version = message.body["eventversion"].as_str().unwrap();
        assert_eq!(
            Some(version),
            vcintel_domain::events::event_type_named(event_type).map(|(_, t)| t.version)
        );
        assert_eq!(event.ty(), format!("vcintel.{event_type}.v{version}"));
        assert!(
            event.source().starts_with("/workspaces/"),
            "{}",
            event.source()
        );
        assert_eq!(event.datacontenttype(), Some("application/json"));
        assert!(event.time().is_some());
        assert!(matches!(event.data(), Some(Data::Json(_))), "data is JSON");
        for extension in [
            "workspaceid",
            "aggregatetype",
            "aggregateid",
            "sequence",
            "position",
        ] {
            assert!(
                event.extension(extension).is_some(),
                "{extension} in {}",
                message.body
            );
        }
        assert!(message
            .subject
            .ends_with(&event_type.split_once('.').unwrap().1.replace('.', "_")));
    }
}
