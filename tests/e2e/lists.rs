//! Lists of companies over HTTP: membership is a set, and a deleted
//! company leaves every list.

use crate::helpers::{eventually, TestEnv};
use futures::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::Duration;
use uuid::Uuid;
use vcintel_domain::Role;

async fn add_company(env: &TestEnv, base: &str, token: &str, site: &str) -> String {
    let reply = env
        .call(
            Method::POST,
            &format!("{base}/v1/companies"),
            Some(token),
            None,
            Some(&json!({"name": site, "website": site})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    reply.body["id"].as_str().unwrap().to_owned()
}

async fn list_companies(env: &TestEnv, base: &str, token: &str, list: &str) -> Vec<String> {
    let reply = env
        .call(
            Method::GET,
            &format!("{base}/v1/lists/{list}/companies?limit=200"),
            Some(token),
            None,
            None,
        )
        .await;
    reply.body["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|i| i["company_id"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn a_company_is_in_a_list_at_most_once_even_when_added_concurrently() {
    let mut env = TestEnv::new().await;
    let base = env.start_all().await;
    let workspace = Uuid::now_v7();
    let token = env.token(&env.actor(workspace, Role::Member));
    let acme = add_company(&env, &base, &token, "acme.io").await;
    let beta = add_company(&env, &base, &token, "beta.io").await;
    let created = env
        .call(
            Method::POST,
            &format!("{base}/v1/lists"),
            Some(&token),
            None,
            Some(&json!({"name": "Pipeline"})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let list = created.body["id"].as_str().unwrap().to_owned();

    let url = format!("{base}/v1/lists/{list}/companies/{acme}");
    let replies = join_all((0..20).map(|_| env.http.put(&url).bearer_auth(&token).send())).await;
    for reply in replies {
        assert_eq!(
            reply.unwrap().status(),
            StatusCode::OK,
            "adding twice is not an error"
        );
    }
    let added: i64 =
        sqlx::query_scalar("select count(*) from events where event_type = 'list.company_added'")
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert_eq!(added, 1, "one membership, one event");
    let put = env
        .call(
            Method::PUT,
            &format!("{base}/v1/lists/{list}/companies/{beta}"),
            Some(&token),
            None,
            None,
        )
        .await;
    let version = put.body["version"].as_u64().unwrap();
    let after = env
        .call(
            Method::GET,
            &format!("{base}/v1/lists/{list}?min_version={version}"),
            Some(&token),
            None,
            None,
        )
        .await;
    assert_eq!(after.body["company_count"], 2);
    assert_eq!(
        after.header("etag"),
        Some(format!("\"{version}\"").as_str())
    );
    // The listing joins the companies read model, which `min_version` on
    // the list does not wait for: give it its moment.
    let mut expected = vec![acme.clone(), beta.clone()];
    expected.sort();
    let members = eventually(Duration::from_secs(10), "both companies listed", || async {
        let mut members = list_companies(&env, &base, &token, &list).await;
        members.sort();
        (members == expected).then_some(members)
    })
    .await;
    assert_eq!(members, expected);

    // Out again, twice: one event; rename; a viewer cannot change it.
    for _ in 0..2 {
        let removed = env
            .call(Method::DELETE, &url, Some(&token), None, None)
            .await;
        assert_eq!(removed.status, StatusCode::OK);
    }
    let renamed = env
        .call(
            Method::PATCH,
            &format!("{base}/v1/lists/{list}"),
            Some(&token),
            None,
            Some(&json!({"name": "Shortlist"})),
        )
        .await;
    assert_eq!(renamed.status, StatusCode::OK);
    let viewer = env.token(&env.actor(workspace, Role::Viewer));
    assert_eq!(
        env.call(Method::PUT, &url, Some(&viewer), None, None)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let version = renamed.body["version"].as_u64().unwrap();
    let shown = env
        .call(
            Method::GET,
            &format!("{base}/v1/lists/{list}?min_version={version}"),
            Some(&viewer),
            None,
            None,
        )
        .await;
    assert_eq!(shown.body["name"], "Shortlist");
    assert_eq!(shown.body["company_count"], 1);
    // A company of another workspace cannot be put in.
    let stranger = env.token(&env.actor(Uuid::now_v7(), Role::Member));
    let foreign = add_company(&env, &base, &stranger, "foreign.io").await;
    let foreign_put = env
        .call(
            Method::PUT,
            &format!("{base}/v1/lists/{list}/companies/{foreign}"),
            Some(&token),
            None,
            None,
        )
        .await;
    assert_eq!(foreign_put.status, StatusCode::NOT_FOUND);

    let deleted = env
        .call(
            Method::DELETE,
            &format!("{base}/v1/lists/{list}"),
            Some(&token),
            None,
            None,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::OK);
    eventually(Duration::from_secs(10), "the list gone", || async {
        let status = env
            .call(
                Method::GET,
                &format!("{base}/v1/lists/{list}"),
                Some(&token),
                None,
                None,
            )
            .await
            .status;
        (status == StatusCode::NOT_FOUND).then_some(())
    })
    .await;
}

#[tokio::test]
async fn deleting_a_company_takes_it_out_of_every_list() {
    let mut env = TestEnv::new().await;
    let base = env.start_all().await;
    let token = env.token(&env.actor(Uuid::now_v7(), Role::Member));
    let doomed = add_company(&env, &base, &token, "doomed.io").await;
    let kept = add_company(&env, &base, &token, "kept.io").await;
    let mut lists = Vec::new();
    for name in ["A", "B"] {
        let created = env
            .call(
                Method::POST,
                &format!("{base}/v1/lists"),
                Some(&token),
                None,
                Some(&json!({"name": name})),
            )
            .await;
        let list = created.body["id"].as_str().unwrap().to_owned();
        for company in [&doomed, &kept] {
            env.call(
                Method::PUT,
                &format!("{base}/v1/lists/{list}/companies/{company}"),
                Some(&token),
                None,
                None,
            )
            .await;
        }
        lists.push(list);
    }
    for list in &lists {
        eventually(Duration::from_secs(10), "both companies listed", || async {
            (list_companies(&env, &base, &token, list).await.len() == 2).then_some(())
        })
        .await;
    }
    env.call(
        Method::DELETE,
        &format!("{base}/v1/companies/{doomed}"),
        Some(&token),
        None,
        None,
    )
    .await;
    for list in &lists {
        let members: Vec<String> = eventually(
            Duration::from_secs(10),
            "the company out of the list",
            || async {
                let members = list_companies(&env, &base, &token, list).await;
                (members.len() == 1).then_some(members)
            },
        )
        .await;
        assert_eq!(members, vec![kept.clone()]);
    }
    // The listing hides it at once (it joins the companies read model);
    // the lists projection, reacting on its own, removes the rows.
    eventually(
        Duration::from_secs(10),
        "gone from the read model, not just hidden",
        || async {
            let rows: i64 =
                sqlx::query_scalar("select count(*) from list_items where company_id = $1::uuid")
                    .bind(&doomed)
                    .fetch_one(&env.pool)
                    .await
                    .unwrap();
            (rows == 0).then_some(())
        },
    )
    .await;
    let late = env
        .call(
            Method::PUT,
            &format!("{base}/v1/lists/{}/companies/{doomed}", lists[0]),
            Some(&token),
            None,
            None,
        )
        .await;
    assert_eq!(late.status, StatusCode::NOT_FOUND);
    let _: Value = late.body;
}

#[tokio::test]
async fn a_list_shows_what_a_list_view_needs_of_each_company() {
    let mut env = TestEnv::new().await;
    let base = env.start_all().await;
    let token = env.token(&env.actor(Uuid::now_v7(), Role::Member));
    let added = env
        .call(
            Method::POST,
            &format!("{base}/v1/companies"),
            Some(&token),
            None,
            Some(
                &json!({"name": "Acme Robotics", "website": "acme-robotics.io",
                         "sector": "Robotics", "stage": "seed", "location": "Berlin"}),
            ),
        )
        .await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.body);
    let company = added.body["id"].as_str().unwrap().to_owned();
    let list = env
        .call(
            Method::POST,
            &format!("{base}/v1/lists"),
            Some(&token),
            None,
            Some(&json!({"name": "Shortlist"})),
        )
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    env.call(
        Method::PUT,
        &format!("{base}/v1/lists/{list}/companies/{company}"),
        Some(&token),
        None,
        None,
    )
    .await;
    let item = eventually(Duration::from_secs(10), "the company listed", || async {
        let reply = env
            .call(
                Method::GET,
                &format!("{base}/v1/lists/{list}/companies"),
                Some(&token),
                None,
                None,
            )
            .await;
        reply.body["items"].as_array()?.first().cloned()
    })
    .await;
    assert_eq!(item["name"], "Acme Robotics");
    assert_eq!(item["sector"], "Robotics");
    assert_eq!(item["stage"], "seed");
    assert_eq!(item["location"], "Berlin");
    assert!(item["score"].is_null(), "not enriched yet: {item}");
}
