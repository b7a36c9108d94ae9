//! The developer commands (`payorders api`, `trigger`, `listen`) against the local host.

use crate::support::*;
use payorders_local::devcli::{self, Client, Credentials, Signing};
use serde_json::json;
use std::time::Duration;

fn client(app: &TestApp, who: &Caller) -> Client {
    let flags = Credentials {
        api: Some(app.base.clone()),
        api_key: Some(who.key.clone()),
        api_secret: Some(who.secret.clone()),
    };
    Client::resolve_with(&flags, std::path::Path::new("/nonexistent"), |_| None).unwrap()
}

#[tokio::test]
async fn api_signs_writes_so_a_sale_needs_no_hand_made_hmac() {
    let app = spawn_app().await;
    let c = client(&app, &app.a);
    let sale = json!({"mode": "SALE", "amount": "49.99", "fiat_unit": "USD"}).to_string();

    let key = devcli::unique_key("test");
    let first = c
        .send(
            "POST",
            "/pay-orders",
            Some(&sale),
            Some(&key),
            Signing::Auto,
        )
        .await
        .unwrap();
    assert!(first.ok(), "{}", first.error_line());
    assert_eq!(first.body["mode"], "SALE");
    // The same idempotency key returns the same order, although the signature (nonce) differs.
    let again = c
        .send(
            "POST",
            "/pay-orders",
            Some(&sale),
            Some(&key),
            Signing::Auto,
        )
        .await
        .unwrap();
    assert_eq!(again.body["id"], first.body["id"]);

    let unsigned = c
        .send("POST", "/pay-orders", Some(&sale), None, Signing::Never)
        .await
        .unwrap();
    assert_eq!(unsigned.status, 401);
    assert!(
        unsigned
            .error_line()
            .starts_with("401 SIGNATURE_REQUIRED: "),
        "{}",
        unsigned.error_line()
    );
    // A write that needs no signature accepts one; reads are never signed.
    let id = first.body["id"].as_str().unwrap();
    let cancelled = c
        .post(&format!("/pay-orders/{id}/cancel"), &json!({}), None)
        .await
        .unwrap();
    assert_eq!(cancelled["status"], "CANCELLED");
    let listed = c.get("/pay-orders?mode=SALE&limit=1").await.unwrap();
    assert_eq!(listed["data"][0]["id"], id);
    assert!(c.get("/pay-orders/po_missing").await.is_err());
}

#[tokio::test]
async fn credentials_come_from_flags_then_the_environment_then_demo_env() {
    let dir = std::env::temp_dir().join(format!("devcli-{}", std::process::id()));
    let demo = payorders_local::setup::Demo {
        org_id: payorders::OrgId::generate(),
        key: "sk_test_fromfile".into(),
        secret: "ss_fromfile".into(),
    };
    payorders_local::setup::write_demo_env(&dir, &demo, Some("http://127.0.0.1:3999"), None, None)
        .unwrap();
    let none = Credentials::default();
    let c = Client::resolve_with(&none, &dir, |_| None).unwrap();
    assert_eq!(
        (c.api.as_str(), c.key.as_str(), c.secret.as_deref()),
        (
            "http://127.0.0.1:3999",
            "sk_test_fromfile",
            Some("ss_fromfile")
        )
    );
    let env = |v: &str| (v == "PAYORDERS_API_KEY").then(|| "sk_test_fromenv".to_owned());
    assert_eq!(
        Client::resolve_with(&none, &dir, env).unwrap().key,
        "sk_test_fromenv"
    );
    let flags = Credentials {
        api_key: Some("sk_test_fromflag".into()),
        ..Default::default()
    };
    assert_eq!(
        Client::resolve_with(&flags, &dir, env).unwrap().key,
        "sk_test_fromflag"
    );
    std::fs::remove_dir_all(&dir).unwrap();
    let missing = Client::resolve_with(&none, &dir, |_| None).err().unwrap();
    assert!(missing.to_string().contains("make dev"), "{missing}");
}

#[tokio::test]
async fn trigger_pays_a_test_order_through_the_sandbox_until_completed() {
    let app = spawn_app().await;
    let id = devcli::trigger(&client(&app, &app.a), "12.50", Duration::from_secs(30))
        .await
        .unwrap();
    let o = app.get(&app.a, &format!("/pay-orders/{id}")).await;
    assert_eq!(o.body["status"], "COMPLETED");
    assert_eq!(o.body["transfers"][0]["sandbox"], true);
}

#[test]
fn listen_verifies_standard_webhooks_signatures() {
    use axum::http::HeaderMap;
    use payorders_local::listen::verify;
    let secret = payorders::webhooks::generate_secret();
    let body = r#"{"type":"order.completed"}"#;
    let ts = payorders::Timestamp::now().unix();
    let headers = |secret: &str, ts: i64| {
        let mut h = HeaderMap::new();
        h.insert("webhook-id", "msg_1".parse().unwrap());
        h.insert("webhook-timestamp", ts.to_string().parse().unwrap());
        let sig = payorders::webhooks::signature_header([secret], "msg_1", ts, body);
        h.insert("webhook-signature", sig.parse().unwrap());
        h
    };
    assert_eq!(verify(&secret, &headers(&secret, ts), body), Ok(()));
    let other = payorders::webhooks::generate_secret();
    assert!(verify(&secret, &headers(&other, ts), body).is_err());
    assert!(verify(&secret, &headers(&secret, ts), r#"{"type":"x"}"#).is_err());
    assert!(verify(&secret, &headers(&secret, ts - 3600), body).is_err());
    assert!(verify(&secret, &HeaderMap::new(), body).is_err());
}

#[test]
fn listen_polls_unless_the_api_is_on_this_machine() {
    use payorders_local::listen::api_is_local;
    for local in [
        "http://127.0.0.1:3000",
        "http://localhost:3000/",
        "http://[::1]:3000",
    ] {
        assert!(api_is_local(local), "{local}");
    }
    for remote in [
        "https://abc.execute-api.eu-west-1.amazonaws.com/prod",
        "http://10.0.0.5:3000",
        "http://localhost.example.com",
        "not a url",
    ] {
        assert!(!api_is_local(remote), "{remote}");
    }
}

/// Polling mode (a deployed API cannot deliver to this machine): every new event once,
/// oldest first, only this organization's, only the asked types; forwarded deliveries
/// verify with the session's secret as real ones do with an endpoint's.
#[tokio::test]
async fn listen_polling_shows_each_new_event_once_and_forwards_it_signed() {
    use payorders_local::listen::{Poller, forward_signed, verify};
    let app = spawn_app().await;
    let (a, b) = (client(&app, &app.a), client(&app, &app.b));
    let since = payorders::Timestamp::now().plus_seconds(-1);
    let mut all = Poller::since(vec!["*".into()], since);
    let mut completed_only = Poller::since(vec!["order.completed".into()], since);
    let mut other_org = Poller::since(vec!["*".into()], since);

    let sale = json!({"mode": "SALE", "amount": "5.00", "fiat_unit": "USD"});
    let mut ids = Vec::new();
    for _ in 0..2 {
        let o = a.post("/pay-orders", &sale, None).await.unwrap();
        ids.push(o["id"].as_str().unwrap().to_owned());
    }
    let batch = all.next_batch(&a).await.unwrap();
    let seen: Vec<(&str, &str)> = batch
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap(),
                e["data"]["object"]["id"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            ("order.created", ids[0].as_str()),
            ("order.created", ids[1].as_str())
        ],
        "oldest first"
    );
    assert!(all.next_batch(&a).await.unwrap().is_empty(), "each once");
    assert!(completed_only.next_batch(&a).await.unwrap().is_empty());
    assert!(other_org.next_batch(&b).await.unwrap().is_empty());

    // A third order later: only it.
    let o = a.post("/pay-orders", &sale, None).await.unwrap();
    let next = all.next_batch(&a).await.unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0]["data"]["object"]["id"], o["id"]);

    // Forwarded with the session's secret: the receiver's check passes, and fails for
    // any other secret.
    let secret = payorders::webhooks::generate_secret();
    let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = received.clone();
    let receiver =
        axum::Router::new().fallback(move |headers: axum::http::HeaderMap, body: String| {
            let sink = sink.clone();
            async move {
                sink.lock().unwrap().push((headers, body));
                axum::http::StatusCode::NO_CONTENT
            }
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, receiver).await });
    let http = payorders::net::http_client().build().unwrap();
    assert_eq!(
        forward_signed(&http, &url, &secret, &next[0])
            .await
            .unwrap(),
        204
    );
    let (headers, body) = received.lock().unwrap().pop().unwrap();
    assert_eq!(
        headers["webhook-id"].to_str().unwrap(),
        next[0]["id"].as_str().unwrap()
    );
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap(),
        next[0]
    );
    assert_eq!(verify(&secret, &headers, &body), Ok(()));
    let other = payorders::webhooks::generate_secret();
    assert!(verify(&other, &headers, &body).is_err());
}
