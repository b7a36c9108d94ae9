//! `GET /health` and `GET /health/ready`: public (no key, no authorizer); readiness is a
//! 503 in our error shape when the store does not answer.

use crate::support::{headers, repo_root, spawn_app};
use lambda_http::Body;
use payorders::runtime::Services;
use payorders::store::dynamo::DynamoStore;
use serde_json::{Value, json};
use std::sync::Arc;

#[tokio::test]
async fn health_routes_answer_without_a_key() {
    let app = spawn_app().await;
    let r = app.send("GET", "/health", Default::default(), None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body, json!({ "status": "ok" }));
    let r = app
        .send("GET", "/health/ready", Default::default(), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["status"], "ok");
    // No authorizer runs: a wrong key is not even looked at.
    let r = app
        .send(
            "GET",
            "/health",
            headers(&[("x-api-key", "sk_test_not_a_key")]),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // Only GET is routed.
    app.send("POST", "/health", Default::default(), None)
        .await
        .assert_error(404, "ROUTE_NOT_FOUND");
}

/// Services over a DynamoDB endpoint nobody listens on, without retries.
async fn unreachable_store() -> Services {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let sdk = payorders::config::aws_sdk_loader()
        .endpoint_url(format!("http://127.0.0.1:{port}"))
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "t", "t", None, None, "t",
        ))
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .load()
        .await;
    Services {
        store: Arc::new(DynamoStore::new(
            aws_sdk_dynamodb::Client::new(&sdk),
            "payorders",
        )),
        master: None,
        webhooks: None,
        confirmations: None,
        check_delays: Default::default(),
        prices: None,
        router: None,
        chains: Default::default(),
    }
}

fn event(path: &str) -> lambda_http::Request {
    let text = std::fs::read_to_string(repo_root().join("events/health.json")).unwrap();
    lambda_http::request::from_str(&text.replace("/health/ready", path)).unwrap()
}

fn body(resp: &lambda_http::Response<Body>) -> Value {
    match resp.body() {
        Body::Text(t) => serde_json::from_str(t).unwrap(),
        other => panic!("expected a text body, got {other:?}"),
    }
}

#[tokio::test]
async fn ready_is_503_when_the_store_does_not_answer() {
    let svc = unreachable_store().await;
    let started = std::time::Instant::now();
    let resp = health::handler(&svc, event("/health/ready")).await.unwrap();
    let b = body(&resp);
    assert_eq!(resp.status(), 503, "{b}");
    assert_eq!(b["error"]["type"], "unavailable");
    assert_eq!(b["error"]["code"], "STORE_UNAVAILABLE");
    assert_eq!(
        b["error"]["documentation_url"],
        payorders::http::codes::documentation_url("STORE_UNAVAILABLE")
    );
    assert_eq!(
        b["request_id"],
        resp.headers()["x-request-id"].to_str().unwrap()
    );
    assert!(started.elapsed() <= health::READY_TIMEOUT + std::time::Duration::from_secs(1));
    // Liveness does not depend on the store.
    let resp = health::handler(&svc, event("/health")).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(body(&resp), json!({ "status": "ok" }));
}
