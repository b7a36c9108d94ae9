//! The API under a named stage, as a deployment of the template serves it
//! (`https://<api>/dev/…`): API Gateway puts the stage in front of every path the functions
//! see, and routes, rate classes, idempotency and links must not take it for part of the
//! route. (`make dev` and the other tests use the `$default` stage, which has no prefix.)

use crate::support::*;
use serde_json::json;

async fn staged_app() -> TestApp {
    spawn_app_staged(
        Backend::Embedded,
        payorders::pricing::fixed::FixedPrices::dev_default(),
        None,
        test_chains(),
        Some("dev"),
    )
    .await
}

#[tokio::test]
async fn every_route_answers_under_a_named_stage() {
    let app = staged_app().await;
    assert!(app.base.ends_with("/dev"), "{}", app.base);
    let a = &app.a;

    // Orders, their links under the stage, and an event of one by id.
    let created = app.create_deposit(a, &json!({})).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.body["id"].as_str().unwrap().to_owned();
    let hosted = created.body["hosted_url"].as_str().unwrap();
    assert!(
        hosted.starts_with(&format!("{}/pay/", app.base)),
        "{hosted}"
    );
    let got = app.get(a, &format!("/pay-orders/{id}")).await;
    assert_eq!(
        (got.status, &got.body["id"]),
        (200, &json!(id)),
        "{}",
        got.text
    );
    let events = app.get(a, "/events").await;
    assert_eq!(
        (events.status, &events.body["object"]),
        (200, &json!("list")),
        "{}",
        events.text
    );
    let first = events.body["data"][0]["id"].as_str().unwrap().to_owned();
    let one = app.get(a, &format!("/events/{first}")).await;
    assert_eq!(
        (one.status, &one.body["id"]),
        (200, &json!(first)),
        "{}",
        one.text
    );

    // Routes that read their own path: keys, endpoints, wallets, refunds, tokens.
    let keys = app.get(a, "/api-keys").await;
    assert_eq!(
        (keys.status, &keys.body["object"]),
        (200, &json!("list")),
        "{}",
        keys.text
    );
    let key = app
        .signed_post(
            a,
            "/api-keys",
            &json!({"name": "staged", "scopes": ["orders:read"]}),
            &[],
        )
        .await;
    assert_eq!(key.status, 201, "{}", key.text);
    let key_id = key.body["id"].as_str().unwrap();
    let shown = app.get(a, &format!("/api-keys/{key_id}")).await;
    assert_eq!(
        (shown.status, &shown.body["id"]),
        (200, &json!(key_id)),
        "{}",
        shown.text
    );
    let token = app
        .send(
            "POST",
            "/auth/token",
            headers(&[("content-type", "application/json")]),
            Some(
                serde_json::to_vec(&json!({"grant_type": "api_key", "api_key": key.body["key"]}))
                    .unwrap(),
            ),
        )
        .await;
    assert_eq!(token.status, 200, "{}", token.text);
    let endpoint = app
        .post(
            a,
            "/webhook-endpoints",
            Some(&json!({"url": "http://127.0.0.1:9/hooks", "events": ["order.completed"]})),
        )
        .await;
    assert_eq!(endpoint.status, 201, "{}", endpoint.text);
    let listed = app.get(a, "/webhook-endpoints").await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    assert_eq!(listed.body["data"][0]["id"], endpoint.body["id"]);
    let wallet = app
        .call(a, "GET", "/merchant-wallets/84532", None, &[])
        .await;
    assert_eq!(
        (wallet.status, &wallet.body["chain_id"]),
        (200, &json!(84532)),
        "{}",
        wallet.text
    );
    let wallets = app.call(a, "GET", "/merchant-wallets", None, &[]).await;
    assert_eq!(
        (wallets.status, &wallets.body["object"]),
        (200, &json!("list")),
        "{}",
        wallets.text
    );
    let removed = app
        .signed_call(a, "DELETE", "/merchant-wallets/84532", None)
        .await;
    assert_eq!(
        (removed.status, &removed.body["deleted"]),
        (200, &json!(true)),
        "{}",
        removed.text
    );
    app.call(a, "GET", "/merchant-wallets/84532", None, &[])
        .await
        .assert_error(404, "RESOURCE_NOT_FOUND");
    let refunds = app.get(a, &format!("/pay-orders/{id}/refunds")).await;
    assert_eq!(
        (refunds.status, &refunds.body["object"]),
        (200, &json!("list")),
        "{}",
        refunds.text
    );

    // Rate classes by route, not by the stage: settings have their own (smaller) budget.
    let settings = app.get(a, "/settings").await;
    assert_eq!(settings.status, 200, "{}", settings.text);
    assert_eq!(settings.headers["x-ratelimit-limit"], "100");
    assert_eq!(events.headers["x-ratelimit-limit"], "2000");
    assert_eq!(got.headers["x-ratelimit-limit"], "5000");

    // A path outside the stage is no route, as API Gateway answers it.
    let outside = app
        .http
        .get(app.base.trim_end_matches("/dev").to_owned() + "/pay-orders")
        .header("x-api-key", &a.key)
        .send()
        .await
        .unwrap();
    assert_eq!(outside.status(), 404);
}
