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
