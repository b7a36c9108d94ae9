//! Tenant and mode isolation on the routes that take an id, and the scope of an
//! `Idempotency-Key`: another organization (or the other mode) naming an object is a 404
//! that changes nothing, read back by its owner; a key is per organization, mode and
//! request, so reused on another route it is a mismatch that makes nothing, and reused by
//! another organization or the other mode it is independent.

use crate::support::*;
use payorders::chains::sandbox;
use payorders::*;
use serde_json::{Value, json};

/// A hash of the right shape that no chain knows.
const SOME_HASH: &str = "0xabababababababababababababababababababababababababababababababab";

/// A test endpoint of `who`, subscribed to an event none of these tests writes, so no
/// delivery ever touches it (a failing delivery would set its `failing_since`).
async fn quiet_endpoint(app: &TestApp, who: &Caller, url: &str) -> Value {
    let r = app
        .post(
            who,
            "/webhook-endpoints",
            Some(&json!({"url": url, "events": ["refund.succeeded"], "description": "mine"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.body
}

/// `again` is `first` replayed: the same 201 and body, marked so.
#[track_caller]
fn assert_replayed(again: &Resp, first: &Resp) {
    assert_eq!((again.status, &again.body), (201, &first.body));
    assert_eq!(again.headers["idempotent-replayed"], "true");
}

/// The ids of a list's `data`, in order.
fn ids_of(list: &Value) -> Vec<&Value> {
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| &o["id"])
        .collect()
}

/// A's quiet endpoint at `http://127.0.0.1:9/a-hook`: its id, its path, and how its owner
/// reads it and the store holds it before anyone else tries anything.
async fn endpoint_of_a(app: &TestApp) -> (String, String, Value, WebhookEndpoint) {
    let ep = quiet_endpoint(app, &app.a, "http://127.0.0.1:9/a-hook").await;
    let eid = ep["id"].as_str().unwrap().to_owned();
    let path = format!("/webhook-endpoints/{eid}");
    let before = read(app, &app.a, &path).await;
    let stored = stored_endpoint(app, &app.a.org_id, &eid).await;
    (eid, path, before, stored)
}

/// `who`'s request, answered as if there were nothing there: `404 RESOURCE_NOT_FOUND`.
async fn not_found(
    app: &TestApp,
    who: &Caller,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Resp {
    let r = app.call(who, method, path, body, &[]).await;
    assert_eq!(r.status, 404, "{method} {path}: {}", r.text);
    r.assert_error(404, "RESOURCE_NOT_FOUND");
    r
}

/// The body of a GET that must succeed.
async fn read(app: &TestApp, who: &Caller, path: &str) -> Value {
    let r = app.get(who, path).await;
    assert_eq!(r.status, 200, "{path}: {}", r.text);
    r.body
}

/// A's test DEPOSIT of 25.50 USDC on Base Sepolia, with its payment details chosen: AWAITING_PAYMENT.
async fn awaiting_test_order(app: &TestApp) -> String {
    let usdc = json!({"chain_id": 84532, "address": BASE_SEPOLIA_USDC});
    let (id, d) = app.awaiting_deposit(&app.a, &json!({}), &usdc).await;
    assert_eq!(d["status"], "AWAITING_PAYMENT");
    id
}

/// A sandbox transaction paying `ui` USDC (6 decimals), mined now: what a simulated payment
/// or refund would submit.
fn sandbox_usdc_hash(ui: &str) -> String {
    sandbox::new_transaction(
        ChainFamily::Evm,
        RawAmount::from_ui(ui, 6).unwrap(),
        Timestamp::now(),
    )
    .unwrap()
    .to_string()
}

#[tokio::test]
async fn another_org_or_mode_cannot_update_an_endpoint_and_its_url_stays() {
    let app = spawn_app().await;
    let (eid, path, before, stored) = endpoint_of_a(&app).await;
    let eid = eid.as_str();
    for who in [&app.b, &app.a_live] {
        for body in [
            json!({"url": "http://127.0.0.1:9/b-hook"}),
            json!({"enabled": false}),
            json!({"events": ["*"], "description": "taken"}),
        ] {
            not_found(&app, who, "POST", &path, Some(&body)).await;
        }
    }
    let after = read(&app, &app.a, &path).await;
    assert_eq!(after, before, "the owner reads its endpoint unchanged");
    assert_eq!(after["url"], "http://127.0.0.1:9/a-hook");
    assert_eq!(after["enabled"], true);
    assert_eq!(stored_endpoint(&app, &app.a.org_id, eid).await, stored);
    // Not moved either: B has no endpoint.
    let b_list = read(&app, &app.b, "/webhook-endpoints").await;
    assert_eq!(b_list["data"], json!([]));
}

#[tokio::test]
async fn another_org_or_mode_cannot_rotate_an_endpoints_secret() {
    let app = spawn_app().await;
    let (eid, path, before, stored) = endpoint_of_a(&app).await;
    let eid = eid.as_str();
    assert_eq!(stored.secrets.len(), 1);
    for who in [&app.b, &app.a_live] {
        let r = not_found(&app, who, "POST", &format!("{path}/rotate-secret"), None).await;
        assert!(r.body.get("secret").is_none(), "{}", r.text);
    }
    assert_eq!(read(&app, &app.a, &path).await, before);
    let now = stored_endpoint(&app, &app.a.org_id, eid).await;
    assert_eq!(
        now.secrets, stored.secrets,
        "the same one secret, with no expiry"
    );
    assert_eq!(now.version, stored.version);
}

#[tokio::test]
async fn another_org_or_mode_cannot_ping_an_endpoint() {
    let app = spawn_app().await;
    let (eid, path, before, stored) = endpoint_of_a(&app).await;
    let eid = eid.as_str();
    for who in [&app.b, &app.a_live] {
        not_found(&app, who, "POST", &format!("{path}/test"), None).await;
    }
    // A ping is written with the endpoint: no event, no new version, nothing to deliver.
    assert_eq!(read(&app, &app.a, &path).await, before);
    assert_eq!(stored_endpoint(&app, &app.a.org_id, eid).await, stored);
    for who in [&app.a, &app.b, &app.a_live] {
        let pings = read(&app, who, "/events?type=ping").await;
        assert_eq!(pings["data"], json!([]), "{}", pings);
    }
    let log = read(&app, &app.a, &format!("{path}/deliveries")).await;
    assert_eq!(log["data"], json!([]));
}

#[tokio::test]
async fn another_org_cannot_process_or_simulate_a_payment_of_a_test_order() {
    let app = spawn_app().await;
    let id = awaiting_test_order(&app).await;
    let path = format!("/pay-orders/{id}");
    let before = read(&app, &app.a, &path).await;
    // A transaction that pays the order in full, as the control below shows.
    let hash = sandbox_usdc_hash("25.50");
    let process = format!("{path}/process?tx_hash={hash}");
    not_found(&app, &app.b, "GET", &process, None).await;
    let payment = json!({"tx_hash": hash});
    not_found(
        &app,
        &app.b,
        "POST",
        &format!("{path}/payments"),
        Some(&payment),
    )
    .await;
    let simulate = format!("{path}/simulate-payment");
    for body in [None, Some(json!({"amount": "1"}))] {
        not_found(&app, &app.b, "POST", &simulate, body.as_ref()).await;
    }
    let after = read(&app, &app.a, &path).await;
    assert_eq!(after, before, "the owner reads its order unchanged");
    assert_eq!(after["status"], "AWAITING_PAYMENT");
    assert_eq!(after["transfers"], json!([]));
    let b_txs = read(&app, &app.b, "/transactions").await;
    assert_eq!(b_txs["data"], json!([]));

    // Control: the same hash, submitted by the owner, pays it.
    let paid = app.get(&app.a, &process).await;
    assert_eq!(paid.status, 200, "{}", paid.text);
    assert_eq!(paid.body["status"], "AWAITING_CONFIRMATION");
    assert_eq!(paid.body["transfers"][0]["tx_hash"], hash);
}

#[tokio::test]
async fn another_org_or_mode_cannot_submit_or_simulate_a_refund_transfer() {
    let app = spawn_app().await;
    let id = awaiting_test_order(&app).await;
    let path = format!("/pay-orders/{id}");
    // 10 of 25.50 received: PARTIAL_PAYMENT, all 10 refundable once confirmed.
    let p = app
        .post(
            &app.a,
            &format!("{path}/simulate-payment"),
            Some(&json!({"amount": "10"})),
        )
        .await;
    assert_eq!(p.status, 200, "{}", p.text);
    assert_eq!(p.body["status"], "PARTIAL_PAYMENT");
    // Refundable once the payment is confirmed (sandbox blocks are a second long).
    wait_confirmed(&app, &app.a, &id.to_string()).await;
    let customer = "0x1111111111111111111111111111111111111111";
    let r = app
        .signed_post(
            &app.a,
            &format!("{path}/refunds"),
            &json!({"amount": "4", "address": customer, "reason": "returned"}),
            &[],
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["status"], "pending");
    let rid = r.body["id"].as_str().unwrap().to_owned();
    let refunds = format!("{path}/refunds");
    let before = read(&app, &app.a, &refunds).await;
    // The refund's own transfer, as a simulation would send it.
    let hash = sandbox_usdc_hash("4");
    let transactions = format!("{refunds}/{rid}/transactions");
    let transfer = json!({"tx_hash": hash});
    not_found(&app, &app.b, "POST", &transactions, Some(&transfer)).await;
    not_found(
        &app,
        &app.b,
        "POST",
        &format!("{refunds}/{rid}/simulate"),
        None,
    )
    .await;
    // A's live key: the order is of the other mode (simulating is test-only anyway).
    not_found(&app, &app.a_live, "POST", &transactions, Some(&transfer)).await;
    let after = read(&app, &app.a, &refunds).await;
    assert_eq!(after, before, "the owner reads its refund unchanged");
    assert_eq!(after["data"][0]["status"], "pending");
    assert!(after["data"][0].get("transfer").is_none_or(Value::is_null));
    let order = read(&app, &app.a, &path).await;
    assert_eq!(order["status"], "PARTIAL_PAYMENT");
    assert_eq!(order["amount_refunded"]["ui"], "0.0");
    let b_txs = read(&app, &app.b, "/transactions?direction=refund").await;
    assert_eq!(b_txs["data"], json!([]));

    // Control: the owner's submission of that very transfer is taken.
    let s = app.post(&app.a, &transactions, Some(&transfer)).await;
    assert_eq!(s.status, 200, "{}", s.text);
    assert_eq!(s.body["status"], "confirming");
    assert_eq!(s.body["transfer"]["tx_hash"], hash);
}

#[tokio::test]
async fn a_test_key_cannot_read_pay_quote_simulate_or_cancel_a_live_order() {
    let app = spawn_app().await;
    let live = app.create_deposit(&app.a_live, &json!({})).await;
    assert_eq!(live.status, 201, "{}", live.text);
    assert_eq!(live.body["livemode"], true);
    let id = live.body["id"].as_str().unwrap();
    let path = format!("/pay-orders/{id}");
    let before = read(&app, &app.a_live, &path).await;
    let test = &app.a;
    not_found(&app, test, "GET", &path, None).await;
    let payment = json!({"tx_hash": SOME_HASH});
    not_found(
        &app,
        test,
        "POST",
        &format!("{path}/payments"),
        Some(&payment),
    )
    .await;
    let process = format!("{path}/process?tx_hash={SOME_HASH}");
    not_found(&app, test, "GET", &process, None).await;
    let quote = json!({"wallet_address": RECIPIENT, "chain_type": "EVM"});
    not_found(&app, test, "POST", &format!("{path}/quote"), Some(&quote)).await;
    // A test key may simulate, but only its own mode's orders.
    not_found(
        &app,
        test,
        "POST",
        &format!("{path}/simulate-payment"),
        None,
    )
    .await;
    let cancel = json!({"reason": "not mine"});
    not_found(&app, test, "POST", &format!("{path}/cancel"), Some(&cancel)).await;
    let after = read(&app, &app.a_live, &path).await;
    assert_eq!(after, before, "the live key reads its order unchanged");
    assert_eq!(after["status"], "PENDING");
    assert!(after["cancellation_reason"].is_null(), "{after}");
    // Control: the live key cancels it.
    let c = app.post(&app.a_live, &format!("{path}/cancel"), None).await;
    assert_eq!(c.status, 200, "{}", c.text);
    assert_eq!(c.body["status"], "CANCELLED");
}

#[tokio::test]
async fn an_idempotency_key_reused_on_another_route_is_a_mismatch_and_makes_nothing() {
    let app = spawn_app().await;
    let key = [("Idempotency-Key", "reused-across-routes")];
    let first = app
        .call(&app.a, "POST", "/pay-orders", Some(&deposit_body()), &key)
        .await;
    assert_eq!(first.status, 201, "{}", first.text);
    let id = first.body["id"].as_str().unwrap();

    let hook = json!({"url": "http://127.0.0.1:9/hook", "events": ["refund.succeeded"]});
    app.call(&app.a, "POST", "/webhook-endpoints", Some(&hook), &key)
        .await
        .assert_error(422, "IDEMPOTENCY_MISMATCH");
    let hooks = read(&app, &app.a, "/webhook-endpoints").await;
    assert_eq!(hooks["data"], json!([]), "no endpoint was made");
    // Nor on the order's own routes: it is not cancelled.
    app.call(
        &app.a,
        "POST",
        &format!("/pay-orders/{id}/cancel"),
        None,
        &key,
    )
    .await
    .assert_error(422, "IDEMPOTENCY_MISMATCH");
    let order = read(&app, &app.a, &format!("/pay-orders/{id}")).await;
    assert_eq!(order["status"], "PENDING");

    // The key still answers its own request, and only that.
    let again = app
        .call(&app.a, "POST", "/pay-orders", Some(&deposit_body()), &key)
        .await;
    assert_replayed(&again, &first);
    let orders = read(&app, &app.a, "/pay-orders").await;
    assert_eq!(orders["data"].as_array().unwrap().len(), 1);
    // The mismatched route, asked again, is still refused: nothing was kept for it.
    app.call(&app.a, "POST", "/webhook-endpoints", Some(&hook), &key)
        .await
        .assert_error(422, "IDEMPOTENCY_MISMATCH");
    let hooks = read(&app, &app.a, "/webhook-endpoints").await;
    assert_eq!(hooks["data"], json!([]));
}

#[tokio::test]
async fn the_same_idempotency_key_in_test_and_live_mode_makes_two_orders() {
    let app = spawn_app().await;
    let key = [("Idempotency-Key", "same-in-both-modes")];
    let test = app
        .call(&app.a, "POST", "/pay-orders", Some(&deposit_body()), &key)
        .await;
    assert_eq!(test.status, 201, "{}", test.text);
    let live = app
        .call(
            &app.a_live,
            "POST",
            "/pay-orders",
            Some(&live_deposit_body()),
            &key,
        )
        .await;
    assert_eq!(live.status, 201, "{}", live.text);
    assert!(!live.headers.contains_key("idempotent-replayed"));
    assert_ne!(test.body["id"], live.body["id"]);
    assert_eq!(test.body["livemode"], false);
    assert_eq!(live.body["livemode"], true);
    // Each mode replays its own order.
    for (who, body, first) in [
        (&app.a, deposit_body(), &test),
        (&app.a_live, live_deposit_body(), &live),
    ] {
        let again = app
            .call(who, "POST", "/pay-orders", Some(&body), &key)
            .await;
        assert_replayed(&again, first);
        let list = read(&app, who, "/pay-orders").await;
        let ids = ids_of(&list);
        assert_eq!(ids, [&first.body["id"]]);
    }
}

#[tokio::test]
async fn the_same_idempotency_key_in_two_organizations_makes_two_objects() {
    let app = spawn_app().await;
    let key = [("Idempotency-Key", "same-in-both-orgs")];
    // The very same request, body and all, from each organization.
    let a = app
        .call(&app.a, "POST", "/pay-orders", Some(&deposit_body()), &key)
        .await;
    let b = app
        .call(&app.b, "POST", "/pay-orders", Some(&deposit_body()), &key)
        .await;
    assert_eq!((a.status, b.status), (201, 201), "{} / {}", a.text, b.text);
    assert!(!b.headers.contains_key("idempotent-replayed"));
    assert_ne!(a.body["id"], b.body["id"]);
    // An endpoint too (its answer, holding the secret, is kept sealed per organization).
    let hook = json!({"url": "http://127.0.0.1:9/hook", "events": ["refund.succeeded"]});
    let hook_key = [("Idempotency-Key", "same-endpoint-in-both-orgs")];
    let ea = app
        .call(&app.a, "POST", "/webhook-endpoints", Some(&hook), &hook_key)
        .await;
    let eb = app
        .call(&app.b, "POST", "/webhook-endpoints", Some(&hook), &hook_key)
        .await;
    assert_eq!(
        (ea.status, eb.status),
        (201, 201),
        "{} / {}",
        ea.text,
        eb.text
    );
    assert!(!eb.headers.contains_key("idempotent-replayed"));
    assert_ne!(ea.body["id"], eb.body["id"]);
    assert_ne!(ea.body["secret"], eb.body["secret"]);
    // Each organization replays its own, and holds only its own.
    for (who, order, endpoint) in [(&app.a, &a, &ea), (&app.b, &b, &eb)] {
        let again = app
            .call(who, "POST", "/pay-orders", Some(&deposit_body()), &key)
            .await;
        assert_replayed(&again, order);
        let again = app
            .call(who, "POST", "/webhook-endpoints", Some(&hook), &hook_key)
            .await;
        assert_replayed(&again, endpoint);
        let orders = read(&app, who, "/pay-orders").await;
        let ids = ids_of(&orders);
        assert_eq!(ids, [&order.body["id"]]);
        let hooks = read(&app, who, "/webhook-endpoints").await;
        let ids = ids_of(&hooks);
        assert_eq!(ids, [&endpoint.body["id"]]);
    }
}
