//! Refunds end to end on anvil (chain 31337, 2 confirmations) through the local host: an
//! order paid in TUSD, refunds created (signed), the merchant's refund transfer sent from
//! the deposit address and submitted by hash, confirmed to `succeeded` and the order to
//! REFUNDED; and every way a refund is abused: too much, two at once, the payment's own
//! hash, the wrong recipient, token, sender or size, a transfer older than the refund, one
//! transfer for two refunds, another organization's order, an order with nothing received.
//! The sandbox path in test mode too.

use crate::support::*;
use alloy::primitives::{Address, U256};
use payorders::testing::anvil;
use serde_json::{Value, json};

fn tusd(units: u64) -> U256 {
    U256::from(units) * U256::from(1_000_000u64)
}

/// A DEPOSIT order of `amount` TUSD on chain 31337 to a fresh deposit address, paid in
/// full (or with `paid` TUSD) and confirmed when that covers it: the app, the anvil URL, the
/// deposit address, the order id and the payment's hash.
async fn paid_order(amount: &str, paid: u64) -> (TestApp, String, Address, String, String) {
    let app = spawn_app().await;
    let (url, deposit, id, hash) = pay_order(&app, amount, paid).await;
    (app, url, deposit, id, hash)
}

/// [`paid_order`] in an app already running.
async fn pay_order(app: &TestApp, amount: &str, paid: u64) -> (String, Address, String, String) {
    let url = anvil_url();
    let deposit = anvil::fresh_address();
    let currency = json!({"chain_id": 31337, "address": anvil::TOKEN});
    let order = json!({"amount": amount, "currency": currency, "recipient": deposit.to_string()});
    let (id, _) = app.awaiting_deposit(&app.a, &order, &currency).await;
    let hash = anvil::send_token(&url, deposit, tusd(paid), None).await;
    let r = app
        .post(
            &app.a,
            &format!("/pay-orders/{id}/payments"),
            Some(&json!({"tx_hash": hash.to_string()})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    anvil::mine(&url, 1).await;
    if r.body["status"] == "AWAITING_CONFIRMATION" {
        wait_status(app, &id, "COMPLETED").await;
    } else {
        // A partial payment is followed to final too: refundable once confirmed.
        wait_confirmed(app, &app.a, &id).await;
    }
    (url, deposit, id, hash.to_string())
}

async fn order(app: &TestApp, id: &str) -> Value {
    app.get(&app.a, &format!("/pay-orders/{id}")).await.body
}

async fn wait_status(app: &TestApp, id: &str, want: &str) -> Value {
    eventually(async || {
        let o = order(app, id).await;
        (o["status"] == want).then_some(o)
    })
    .await
}

async fn create(app: &TestApp, id: &str, body: Value) -> Resp {
    app.signed_post(&app.a, &format!("/pay-orders/{id}/refunds"), &body, &[])
        .await
}

async fn submit(app: &TestApp, id: &str, refund: &str, hash: impl ToString) -> Resp {
    app.post(
        &app.a,
        &format!("/pay-orders/{id}/refunds/{refund}/transactions"),
        Some(&json!({"tx_hash": hash.to_string()})),
    )
    .await
}

async fn wait_refund(app: &TestApp, id: &str, refund: &str, want: &str) -> Value {
    eventually(async || {
        let list = app.get(&app.a, &format!("/pay-orders/{id}/refunds")).await;
        list.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == refund && r["status"] == want)
            .cloned()
    })
    .await
}

/// Event types of the order, oldest first.
async fn event_types(app: &TestApp, id: &str) -> Vec<String> {
    let events = app.get(&app.a, "/events?limit=100").await;
    let mut types: Vec<String> = events.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["data"]["object"]["id"] == id)
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect();
    types.reverse();
    types
}

#[tokio::test]
async fn partial_then_full_refund_of_a_token_order_to_refunded() {
    let (app, url, deposit, id, payment_tx) = paid_order("10", 10).await;
    let customer = anvil::fresh_address();
    let path = format!("/pay-orders/{id}/refunds");

    // Creating a refund moves money: a signed request only.
    app.post(
        &app.a,
        &path,
        Some(&json!({"amount": "4", "address": customer.to_string(), "reason": "x"})),
    )
    .await
    .assert_error(401, "SIGNATURE_REQUIRED");
    for (body, status, code) in [
        (
            json!({"amount": "10.000001", "address": customer.to_string(), "reason": "x"}),
            422,
            "REFUND_EXCEEDS_RECEIVED",
        ),
        // The order's payment has no refund address of its own.
        (json!({"reason": "x"}), 422, "REFUND_ADDRESS_REQUIRED"),
        (
            json!({"address": "0x12", "reason": "x"}),
            400,
            "INVALID_ADDRESS",
        ),
        (
            json!({"address": deposit.to_string(), "reason": "x"}),
            400,
            "INVALID_ADDRESS",
        ),
        (
            json!({"address": customer.to_string(), "reason": ""}),
            400,
            "INVALID_REASON",
        ),
        (
            json!({"amount": "0", "address": customer.to_string(), "reason": "x"}),
            400,
            "INVALID_AMOUNT",
        ),
    ] {
        create(&app, &id, body).await.assert_error(status, code);
    }

    let r = create(
        &app,
        &id,
        json!({"amount": "4", "address": customer.to_string(), "reason": "returned one"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let first = r.body["id"].as_str().unwrap().to_owned();
    assert!(first.starts_with("re_"), "{first}");
    assert_eq!(r.body["object"], "refund");
    assert_eq!(r.body["order_id"], id);
    assert_eq!(r.body["status"], "pending");
    assert_eq!(r.body["amount"]["raw"], "4000000");
    assert_eq!(r.body["amount"]["ui"], "4.0");
    assert_eq!(r.body["chain_id"], 31337);
    assert_eq!(r.body["address"], customer.to_string());
    assert_eq!(r.body["reason"], "returned one");
    assert_eq!(
        r.body["currency"]["id"],
        format!("31337:{}", anvil::TOKEN.to_lowercase())
    );
    let send = &r.body["instructions"];
    assert_eq!(send["from"], deposit.to_string());
    assert_eq!(send["to"], customer.to_string());
    assert_eq!(send["token"], anvil::TOKEN);
    assert_eq!(send["amount"]["raw"], "4000000");

    // Transfers that are not this refund (the deposit address gets tokens enough for
    // them all first; the order is COMPLETED, so the scan takes none of it as a payment).
    anvil::fund(&url, deposit, tusd(0), tusd(20)).await;
    let wrong_to = anvil::send_token_from(&url, deposit, anvil::fresh_address(), tusd(4)).await;
    let too_small = anvil::send_token_from(&url, deposit, customer, tusd(3)).await;
    let not_ours = anvil::send_token(&url, customer, tusd(4), None).await;
    let native = anvil::send_native_from(&url, deposit, customer, U256::from(4u64)).await;
    for (hash, code) in [
        (payment_tx.clone(), "TX_ALREADY_USED"),
        (wrong_to.to_string(), "WRONG_RECIPIENT"),
        (too_small.to_string(), "REFUND_TX_TOO_SMALL"),
        (not_ours.to_string(), "WRONG_SENDER"),
        (native.to_string(), "WRONG_TOKEN"),
    ] {
        submit(&app, &id, &first, hash)
            .await
            .assert_error(422, code);
    }
    submit(&app, &id, "re_11111111111111111111111", &payment_tx)
        .await
        .assert_error(404, "RESOURCE_NOT_FOUND");

    let good = anvil::send_token_from(&url, deposit, customer, tusd(4)).await;
    let s = submit(&app, &id, &first, good).await;
    assert_eq!(s.status, 200, "{}", s.text);
    assert_eq!(s.body["status"], "confirming");
    assert_eq!(s.body["transfer"]["tx_hash"], good.to_string());
    anvil::mine(&url, 1).await;
    wait_refund(&app, &id, &first, "succeeded").await;
    let o = order(&app, &id).await;
    assert_eq!(o["status"], "COMPLETED");
    assert_eq!(o["amount_refunded"]["ui"], "4.0");
    assert_eq!(o["refunds"][0]["status"], "succeeded");

    // The rest, by default: 6 TUSD. The first refund's transfer cannot count for it.
    let r = create(
        &app,
        &id,
        json!({"address": customer.to_string(), "reason": "the rest"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["amount"]["ui"], "6.0");
    let rest = r.body["id"].as_str().unwrap().to_owned();
    submit(&app, &id, &rest, good)
        .await
        .assert_error(422, "TX_ALREADY_USED");
    // Nothing is left to promise.
    create(
        &app,
        &id,
        json!({"amount": "0.000001", "address": customer.to_string(), "reason": "x"}),
    )
    .await
    .assert_error(422, "REFUND_EXCEEDS_RECEIVED");
    let last = anvil::send_token_from(&url, deposit, customer, tusd(6)).await;
    let s = submit(&app, &id, &rest, last).await;
    assert_eq!(s.status, 200, "{}", s.text);
    anvil::mine(&url, 1).await;
    let done = wait_status(&app, &id, "REFUNDED").await;
    assert_eq!(done["amount_refunded"]["raw"], "10000000");
    let list = app.get(&app.a, &path).await;
    assert_eq!(list.body["object"], "list");
    assert_eq!(list.body["data"].as_array().unwrap().len(), 2);
    let types = eventually(async || {
        let t = event_types(&app, &id).await;
        t.contains(&"order.refunded".to_owned()).then_some(t)
    })
    .await;
    for t in ["refund.created", "refund.succeeded", "order.refunded"] {
        assert!(types.contains(&t.to_owned()), "{t}: {types:?}");
    }
    // The transactions API lists both refund transfers beside the payment, out of the
    // deposit address to the customer, and finds one by its hash.
    let outs = app
        .get(
            &app.a,
            &format!("/transactions?order_id={id}&direction=refund"),
        )
        .await;
    assert_eq!(outs.status, 200, "{}", outs.text);
    let outs = outs.body["data"].as_array().unwrap().clone();
    assert_eq!(outs.len(), 2, "{outs:?}");
    assert_eq!(outs[0]["tx_hash"], last.to_string());
    assert_eq!(outs[1]["tx_hash"], good.to_string());
    for t in &outs {
        assert_eq!(t["direction"], "refund");
        assert_eq!(t["status"], "confirmed");
        assert_eq!(
            t["to"].as_str().unwrap().to_lowercase(),
            customer.to_string().to_lowercase()
        );
        assert_eq!(
            t["from"].as_str().unwrap().to_lowercase(),
            deposit.to_string().to_lowercase()
        );
        assert!(t["refund_id"].as_str().unwrap().starts_with("re_"));
    }
    let all = app
        .get(&app.a, &format!("/transactions?order_id={id}"))
        .await;
    assert_eq!(
        all.body["data"].as_array().unwrap().len(),
        3,
        "{}",
        all.text
    );
    let chain = outs[0]["chain_id"].as_u64().unwrap();
    let one = app
        .get(&app.a, &format!("/transactions/{chain}/{good}"))
        .await;
    assert_eq!(one.status, 200, "{}", one.text);
    assert_eq!(one.body, outs[1]);

    // A refunded order refunds nothing more.
    create(
        &app,
        &id,
        json!({"address": customer.to_string(), "reason": "x"}),
    )
    .await
    .assert_error(422, "ORDER_NOT_REFUNDABLE");
}

#[tokio::test]
async fn two_refunds_created_at_once_never_exceed_what_was_received() {
    let (app, _url, _deposit, id, _) = paid_order("10", 10).await;
    let customer = anvil::fresh_address().to_string();
    // Two requests (not one replayed): 6 and 6.0 TUSD.
    let one = json!({"amount": "6", "address": customer, "reason": "twice"});
    let two = json!({"amount": "6.0", "address": customer, "reason": "twice"});
    let (a, b) = tokio::join!(create(&app, &id, one), create(&app, &id, two));
    let mut statuses = [a.status, b.status];
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 422], "{} / {}", a.text, b.text);
    let refused = if a.status == 422 { &a } else { &b };
    refused.assert_error(422, "REFUND_EXCEEDS_RECEIVED");
    let list = app.get(&app.a, &format!("/pay-orders/{id}/refunds")).await;
    assert_eq!(list.body["data"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_transfer_sent_before_the_refund_is_not_the_refund() {
    let (app, url, deposit, id, _) = paid_order("10", 10).await;
    let customer = anvil::fresh_address();
    let early = anvil::send_token_from(&url, deposit, customer, tusd(10)).await;
    // Beyond the few seconds of clock skew a refund allows.
    tokio::time::sleep(std::time::Duration::from_secs(12)).await;
    let r = create(
        &app,
        &id,
        json!({"address": customer.to_string(), "reason": "late"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let rid = r.body["id"].as_str().unwrap();
    submit(&app, &id, rid, early)
        .await
        .assert_error(422, "TX_BEFORE_REFUND");
}

#[tokio::test]
async fn orders_with_nothing_received_or_of_others_refund_nothing() {
    let app = spawn_app().await;
    let customer = anvil::fresh_address().to_string();
    let body = json!({"address": customer, "reason": "x"});
    // PENDING, then AWAITING_PAYMENT: nothing received.
    let o = app.create_deposit(&app.a, &json!({})).await;
    let id = o.body["id"].as_str().unwrap().to_owned();
    create(&app, &id, body.clone())
        .await
        .assert_error(422, "ORDER_NOT_REFUNDABLE");
    let (paid_app, _url, _deposit, paid_id, _) = paid_order("10", 10).await;
    // Another organization's order is not found, whatever its state.
    paid_app
        .signed_post(
            &paid_app.b,
            &format!("/pay-orders/{paid_id}/refunds"),
            &body,
            &[],
        )
        .await
        .assert_error(404, "RESOURCE_NOT_FOUND");
    let list = paid_app
        .get(&paid_app.b, &format!("/pay-orders/{paid_id}/refunds"))
        .await;
    list.assert_error(404, "RESOURCE_NOT_FOUND");
}

#[tokio::test]
async fn a_partial_payment_is_refunded_on_the_sandbox_in_test_mode() {
    let (app, _url, _deposit, id, _) = paid_order("10", 4).await;
    let o = order(&app, &id).await;
    assert_eq!(o["status"], "PARTIAL_PAYMENT");
    let customer = anvil::fresh_address().to_string();
    let r = create(
        &app,
        &id,
        json!({"address": customer, "reason": "cancelled"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["amount"]["ui"], "4.0");
    let rid = r.body["id"].as_str().unwrap().to_owned();
    let sim = format!("/pay-orders/{id}/refunds/{rid}/simulate");
    app.post(&app.a_live, &sim, None)
        .await
        .assert_error(403, "TEST_MODE_ONLY");
    let s = app.post(&app.a, &sim, None).await;
    assert_eq!(s.status, 200, "{}", s.text);
    assert_eq!(s.body["status"], "confirming");
    assert_eq!(s.body["transfer"]["sandbox"], true);
    // Sandbox blocks are a second long: 2 confirmations follow.
    let done = wait_refund(&app, &id, &rid, "succeeded").await;
    assert_eq!(done["amount"]["ui"], "4.0");
    let o = order(&app, &id).await;
    // A partly paid order keeps its status; the refund shows what went back.
    assert_eq!(o["status"], "PARTIAL_PAYMENT");
    assert_eq!(o["amount_refunded"]["ui"], "4.0");
}

/// A pending refund can be cancelled (signed), which frees what it held: a refund created
/// by mistake (to a wrong address) no longer holds the order's money for good. A refund
/// with its transfer recorded cannot be, nor can another organization's.
#[tokio::test]
async fn a_pending_refund_can_be_cancelled_and_frees_what_it_held() {
    let (app, _url, _deposit, id, _) = paid_order("10", 10).await;
    let wrong = anvil::fresh_address().to_string();
    let r = create(&app, &id, json!({"address": wrong, "reason": "typo"})).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let mistaken = r.body["id"].as_str().unwrap().to_owned();
    let customer = anvil::fresh_address().to_string();
    let again = json!({"address": customer, "reason": "the right address"});
    create(&app, &id, again.clone())
        .await
        .assert_error(422, "REFUND_EXCEEDS_RECEIVED");
    let cancel = |refund: &str| format!("/pay-orders/{id}/refunds/{refund}/cancel");
    app.post(&app.a, &cancel(&mistaken), None)
        .await
        .assert_error(401, "SIGNATURE_REQUIRED");
    signed_once(&app, &app.b, &cancel(&mistaken), None)
        .await
        .assert_error(404, "RESOURCE_NOT_FOUND");
    let c = signed_once(&app, &app.a, &cancel(&mistaken), None).await;
    assert_eq!(c.status, 200, "{}", c.text);
    assert_eq!(c.body["status"], "cancelled");
    assert!(c.body["cancelled_at"].is_string());
    signed_once(&app, &app.a, &cancel(&mistaken), None)
        .await
        .assert_error(409, "REFUND_NOT_PENDING");
    // The whole amount may be refunded again.
    let r = signed_once(
        &app,
        &app.a,
        &format!("/pay-orders/{id}/refunds"),
        Some(&again),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["amount"]["ui"], "10.0");
    let right = r.body["id"].as_str().unwrap().to_owned();
    // Its transfer recorded (on the sandbox, in test mode), it is no longer cancellable.
    let s = app
        .post(
            &app.a,
            &format!("/pay-orders/{id}/refunds/{right}/simulate"),
            None,
        )
        .await;
    assert_eq!(s.status, 200, "{}", s.text);
    signed_once(&app, &app.a, &cancel(&right), None)
        .await
        .assert_error(409, "REFUND_NOT_PENDING");
    wait_refund(&app, &id, &right, "succeeded").await;
    let o = wait_status(&app, &id, "REFUNDED").await;
    assert_eq!(o["amount_refunded"]["ui"], "10.0");
    assert!(
        event_types(&app, &id)
            .await
            .contains(&"refund.cancelled".to_owned())
    );
}

/// A refund withdrawn while its transfer is submitted and another refund asks for what the
/// withdrawal frees, all three at once, three times: however the writes fall, the order
/// never promises the same money twice, the transfer counts for the refund it paid or for
/// nothing, and a transfer left over is recorded once the merchant withdraws the refund that
/// took its place.
#[tokio::test]
async fn a_cancel_racing_its_transfer_and_another_refund_never_promises_money_twice() {
    let app = spawn_app().await;
    let customer = anvil::fresh_address();
    let body = json!({"address": customer.to_string(), "reason": "all of it"});
    for _ in 0..3 {
        let (url, deposit, id, _) = pay_order(&app, "10", 10).await;
        let r = create(&app, &id, body.clone()).await;
        assert_eq!(r.status, 201, "{}", r.text);
        let first = r.body["id"].as_str().unwrap().to_owned();
        let sent = anvil::send_token_from(&url, deposit, customer, tusd(10)).await;
        let cancel = |refund: &str| format!("/pay-orders/{id}/refunds/{refund}/cancel");
        let refunds = format!("/pay-orders/{id}/refunds");
        let withdraw = cancel(&first);
        let (cancelled, submitted, other) = tokio::join!(
            signed_once(&app, &app.a, &withdraw, None),
            submit(&app, &id, &first, sent),
            signed_once(&app, &app.a, &refunds, Some(&body)),
        );
        let seen = format!(
            "cancel {}, submit {}, other {}",
            cancelled.text, submitted.text, other.text
        );
        if cancelled.status != 200 {
            cancelled.assert_error(409, "REFUND_NOT_PENDING");
        }
        if other.status != 201 {
            other.assert_error(422, "REFUND_EXCEEDS_RECEIVED");
        }
        let o = order(&app, &id).await;
        let held: u128 = o["refunds"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["status"] != "cancelled")
            .map(|r| {
                r["amount"]["raw"]
                    .as_str()
                    .unwrap()
                    .parse::<u128>()
                    .unwrap()
            })
            .sum();
        assert_eq!(
            held, 10_000_000,
            "exactly what was received is promised: {seen}"
        );
        if submitted.status == 200 {
            // The transfer took its refund up (again, if the cancel came first): the
            // other refund found nothing left.
            assert_eq!(submitted.body["status"], "confirming", "{seen}");
            assert_eq!(other.status, 422, "{seen}");
        } else {
            // Only a refund created in between can have taken what the transfer paid.
            submitted.assert_error(409, "REFUND_NOT_PENDING");
            assert_eq!((cancelled.status, other.status), (200, 201), "{seen}");
            let second = other.body["id"].as_str().unwrap();
            let c = signed_once(&app, &app.a, &cancel(second), None).await;
            assert_eq!(c.status, 200, "{}", c.text);
            let s = submit(&app, &id, &first, sent).await;
            assert_eq!(s.status, 200, "{}", s.text);
        }
        anvil::mine(&url, 1).await;
        wait_refund(&app, &id, &first, "succeeded").await;
        let done = wait_status(&app, &id, "REFUNDED").await;
        assert_eq!(done["amount_refunded"]["raw"], "10000000", "{seen}");
    }
}

/// A POST, v2-signed under a nonce of its own (so the same request may be sent again
/// within a second, which a v1 signature of the same path would not let through).
async fn signed_once(app: &TestApp, who: &Caller, path: &str, body: Option<&Value>) -> Resp {
    let nonce = payorders::RefundId::generate().to_string();
    let bytes = body
        .map(|b| serde_json::to_vec(b).unwrap())
        .unwrap_or_default();
    v2_post(app, who, path, &nonce, &bytes, &bytes).await
}
