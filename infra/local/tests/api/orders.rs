//! Create, get, list and cancel pay orders; validation; idempotency; nonces; isolation.

use crate::support::*;
use payorders::store::IdempotencyScope;
use payorders::*;
use serde_json::{Value, json};

async fn full_flow(app: TestApp) {
    let a = &app.a;
    // Create (signed SALE priced in USD, unsigned DEPOSIT in a token).
    let sale = app.signed_post(a, "/pay-orders", &sale_body(), &[]).await;
    assert_eq!(sale.status, 201, "{}", sale.text);
    assert_eq!(sale.body["object"], "pay_order");
    assert_eq!(sale.body["status"], "PENDING");
    assert_eq!(sale.body["fulfillment"]["fiat_amount"], "49.99");
    assert_eq!(sale.body["fulfillment"]["fiat_unit"], "USD");
    assert_eq!(sale.body["livemode"], false);
    assert_eq!(sale.body["organization_id"], a.org_id.as_str());
    let dep = app
        .create_deposit(a, &json!({"metadata": {"order_ref": "A-1"}}))
        .await;
    assert_eq!(dep.status, 201, "{}", dep.text);
    assert_eq!(
        dep.body["fulfillment"]["amount"],
        json!({"raw": "25500000", "ui": "25.5"})
    );
    assert_eq!(dep.body["fulfillment"]["asset"]["symbol"], "USDC");
    assert_eq!(dep.body["fulfillment"]["recipient"], RECIPIENT);
    let dep_id = dep.body["id"].as_str().unwrap().to_owned();

    // Get.
    let got = app
        .call(a, "GET", &format!("/pay-orders/{dep_id}"), None, &[])
        .await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body, dep.body);

    // List with a filter.
    let list = app
        .call(a, "GET", "/pay-orders?mode=DEPOSIT", None, &[])
        .await;
    assert_eq!(list.status, 200, "{}", list.text);
    assert_eq!(list.body["object"], "list");
    assert_eq!(list.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(list.body["data"][0]["id"], dep_id.as_str());
    assert_eq!(list.body["has_more"], false);

    // Cancel, with the event written beside it.
    let c = app
        .post(
            a,
            &format!("/pay-orders/{dep_id}/cancel"),
            Some(&json!({"reason": "customer left"})),
        )
        .await;
    assert_eq!(c.status, 200, "{}", c.text);
    assert_eq!(c.body["status"], "CANCELLED");
    assert_eq!(c.body["cancellation_reason"], "customer left");
    app.post(a, &format!("/pay-orders/{dep_id}/cancel"), None)
        .await
        .assert_error(409, "ORDER_NOT_CANCELLABLE");
    let events = app
        .store
        .list_events(
            &payorders::store::ListWindow::new(a.org_id.clone(), KeyMode::Test),
            &payorders::store::EventFilter::default(),
        )
        .await
        .unwrap();
    let types: Vec<_> = events.data.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(types, ["order.cancelled", "order.created", "order.created"]);
    assert_eq!(events.data[0].data.object["status"], "CANCELLED");
    assert_eq!(events.data[0].data.object["object"], "pay_order");
}

#[tokio::test]
async fn create_get_list_cancel_on_embedded_store() {
    full_flow(spawn_app().await).await;
}

#[tokio::test]
async fn create_get_list_cancel_on_dynamodb() {
    full_flow(spawn_app_on(Backend::Dynamo).await).await;
}

#[tokio::test]
async fn cancel_only_from_pending_or_awaiting_payment() {
    let app = spawn_app().await;
    for (status, ok) in [
        (OrderStatus::AwaitingPayment, true),
        (OrderStatus::Expired, false),
        (OrderStatus::AwaitingConfirmation, false),
    ] {
        let r = app.create_deposit(&app.a, &json!({})).await;
        let id = OrderId::parse(r.body["id"].as_str().unwrap()).unwrap();
        let o = app.store.get_order(&id).await.unwrap().unwrap();
        // Walk the order to `status` through the table.
        let path: &[OrderStatus] = match status {
            OrderStatus::AwaitingPayment => &[OrderStatus::AwaitingPayment],
            OrderStatus::Expired => &[OrderStatus::Expired],
            _ => &[
                OrderStatus::AwaitingPayment,
                OrderStatus::AwaitingConfirmation,
            ],
        };
        let mut cur = o;
        for s in path {
            let u = cur.transition(Timestamp::now(), *s, |_| {}).unwrap();
            app.store.update_order(&u).await.unwrap();
            cur = u.order().clone();
        }
        let c = app
            .post(&app.a, &format!("/pay-orders/{id}/cancel"), None)
            .await;
        if ok {
            assert_eq!(c.status, 200, "{}", c.text);
        } else {
            c.assert_error(409, "ORDER_NOT_CANCELLABLE");
            assert!(
                c.body["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains(status.as_str())
            );
        }
    }
}

#[tokio::test]
async fn another_organization_or_mode_sees_404() {
    let app = spawn_app().await;
    let r = app.create_deposit(&app.a, &json!({})).await;
    let id = r.body["id"].as_str().unwrap();
    for who in [&app.b, &app.a_live] {
        app.call(who, "GET", &format!("/pay-orders/{id}"), None, &[])
            .await
            .assert_error(404, "RESOURCE_NOT_FOUND");
        app.call(who, "POST", &format!("/pay-orders/{id}/cancel"), None, &[])
            .await
            .assert_error(404, "RESOURCE_NOT_FOUND");
        let list = app.call(who, "GET", "/pay-orders", None, &[]).await;
        assert_eq!(list.body["data"], json!([]));
    }
    // Nothing changed for the owner.
    let mine = app.get(&app.a, &format!("/pay-orders/{id}")).await;
    assert_eq!(mine.body["status"], "PENDING");
    // Live keys create live orders, seen only by live keys.
    let live = app.create_deposit(&app.a_live, &json!({})).await;
    assert_eq!(live.body["livemode"], true);
    let live_id = live.body["id"].as_str().unwrap();
    app.get(&app.a, &format!("/pay-orders/{live_id}"))
        .await
        .assert_error(404, "RESOURCE_NOT_FOUND");
}

#[tokio::test]
async fn idempotent_replay_mismatch_and_in_flight() {
    let app = spawn_app().await;
    let key = [("idempotency-key", "order-789-attempt-1")];
    let first = app
        .call(&app.a, "POST", "/pay-orders", Some(&deposit_body()), &key)
        .await;
    assert_eq!(first.status, 201);
    assert!(!first.headers.contains_key("idempotent-replayed"));
    let again = app
        .call(&app.a, "POST", "/pay-orders", Some(&deposit_body()), &key)
        .await;
    assert_eq!(again.status, 201);
    assert_eq!(
        again.body, first.body,
        "the stored response, not a new order"
    );
    assert_eq!(again.headers["idempotent-replayed"], "true");
    let list = app.get(&app.a, "/pay-orders").await;
    assert_eq!(list.body["data"].as_array().unwrap().len(), 1);

    let mut other = deposit_body();
    other["amount"] = json!("99.00");
    app.call(&app.a, "POST", "/pay-orders", Some(&other), &key)
        .await
        .assert_error(422, "IDEMPOTENCY_MISMATCH");

    // The same key in another organization is independent.
    assert_eq!(
        app.call(&app.b, "POST", "/pay-orders", Some(&other), &key)
            .await
            .status,
        201
    );

    // A validation failure is not kept: the key is free for the corrected request.
    let mut bad = deposit_body();
    bad["amount"] = json!("-1");
    let k2 = [("idempotency-key", "bad-1")];
    let e1 = app
        .call(&app.a, "POST", "/pay-orders", Some(&bad), &k2)
        .await;
    e1.assert_error(400, "INVALID_AMOUNT");
    let e2 = app
        .call(&app.a, "POST", "/pay-orders", Some(&bad), &k2)
        .await;
    e2.assert_error(400, "INVALID_AMOUNT");
    assert!(!e2.headers.contains_key("idempotent-replayed"));
    assert_ne!(e2.body["request_id"], e1.body["request_id"], "run again");
    let fixed = app
        .call(&app.a, "POST", "/pay-orders", Some(&deposit_body()), &k2)
        .await;
    assert_eq!(fixed.status, 201, "{}", fixed.text);
    // A final refusal (404) is kept, like a success.
    let k3 = [("idempotency-key", "cancel-missing-1")];
    let missing = "/pay-orders/po_P7YcaQR7QGGrVRY31EyJkN/cancel";
    let m1 = app.call(&app.a, "POST", missing, None, &k3).await;
    m1.assert_error(404, "RESOURCE_NOT_FOUND");
    let m2 = app.call(&app.a, "POST", missing, None, &k3).await;
    assert_eq!(m2.body, m1.body);
    assert_eq!(m2.headers["idempotent-replayed"], "true");

    // In flight: the same request, sent a moment earlier, holds the key right now.
    let scope = IdempotencyScope {
        organization_id: app.a.org_id.clone(),
        mode: KeyMode::Test,
        key: "busy-1".into(),
    };
    let body = serde_json::to_vec(&deposit_body()).unwrap();
    let fingerprint =
        payorders::http::request_fingerprint(&app.a.key_id, "POST", "/pay-orders", &body);
    app.store
        .idempotency_begin(&scope, &fingerprint, Timestamp::now())
        .await
        .unwrap();
    app.call(
        &app.a,
        "POST",
        "/pay-orders",
        Some(&deposit_body()),
        &[("idempotency-key", "busy-1")],
    )
    .await
    .assert_error(409, "IDEMPOTENCY_IN_FLIGHT");

    // Cancel honours it as well.
    let id = first.body["id"].as_str().unwrap();
    let ck = [("idempotency-key", "cancel-1")];
    let c1 = app
        .call(
            &app.a,
            "POST",
            &format!("/pay-orders/{id}/cancel"),
            None,
            &ck,
        )
        .await;
    let c2 = app
        .call(
            &app.a,
            "POST",
            &format!("/pay-orders/{id}/cancel"),
            None,
            &ck,
        )
        .await;
    assert_eq!((c1.status, c2.status), (200, 200));
    assert_eq!(c2.headers["idempotent-replayed"], "true");

    for bad_key in ["", "has space", &"k".repeat(256)] {
        let r = app
            .send(
                "POST",
                "/pay-orders",
                headers(&[
                    ("x-api-key", &app.a.key),
                    ("content-type", "application/json"),
                    ("idempotency-key", bad_key),
                ]),
                Some(serde_json::to_vec(&deposit_body()).unwrap()),
            )
            .await;
        r.assert_error(400, "INVALID_IDEMPOTENCY_KEY");
    }
}

/// A refusal that may change, such as a transaction the chain has not seen yet, is not
/// kept: the same key runs the request again, and the outcome once the transaction is out
/// is the one kept.
#[tokio::test]
async fn idempotency_does_not_keep_a_transaction_not_seen_yet() {
    use alloy::eips::eip2718::Encodable2718;
    use alloy::network::{EthereumWallet, NetworkTransactionBuilder, TransactionBuilder};
    use alloy::primitives::U256;
    use alloy::rpc::types::TransactionRequest;
    use alloy::signers::local::PrivateKeySigner;
    use payorders::testing::anvil;

    let app = spawn_app().await;
    let url = anvil_url();
    let recipient = anvil::fresh_address();
    let currency = json!({"chain_id": 31337, "address": null});
    let order = json!({"amount": "0.5", "currency": currency, "recipient": recipient.to_string()});
    let (id, _) = app.awaiting_deposit(&app.a, &order, &currency).await;

    // A transfer signed now and sent later: its hash is known before the chain sees it.
    let payer = PrivateKeySigner::random();
    let half = U256::from(500_000_000_000_000_000u64);
    anvil::fund(&url, payer.address(), half * U256::from(2), U256::ZERO).await;
    let signed = TransactionRequest::default()
        .with_from(payer.address())
        .with_to(recipient)
        .with_value(half)
        .with_nonce(0)
        .with_chain_id(31337)
        .with_gas_limit(21_000)
        .with_max_fee_per_gas(200_000_000_000)
        .with_max_priority_fee_per_gas(1_000_000_000)
        .build(&EthereumWallet::from(payer))
        .await
        .unwrap();
    let path = format!("/pay-orders/{id}/payments");
    let body = json!({"tx_hash": signed.tx_hash().to_string()});
    let key = [("idempotency-key", "pay-1")];
    let mut request_ids = Vec::new();
    for _ in 0..2 {
        let r = app.call(&app.a, "POST", &path, Some(&body), &key).await;
        r.assert_error(422, "TX_NOT_FOUND");
        assert!(!r.headers.contains_key("idempotent-replayed"));
        request_ids.push(r.body["request_id"].clone());
    }
    assert_ne!(request_ids[0], request_ids[1], "run again, not replayed");

    let raw = alloy::hex::encode_prefixed(signed.encoded_2718());
    anvil::rpc(&url, "eth_sendRawTransaction", json!([raw])).await;
    // Mined at once by anvil, but under load its answer can precede the block: wait for
    // the receipt, as this test is about idempotency, not a pending transaction.
    let hash = signed.tx_hash().to_string();
    for _ in 0..100 {
        if !anvil::rpc(&url, "eth_getTransactionReceipt", json!([hash]))
            .await
            .is_null()
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let paid = app.call(&app.a, "POST", &path, Some(&body), &key).await;
    assert_eq!(paid.status, 200, "{}", paid.text);
    assert!(!paid.headers.contains_key("idempotent-replayed"));
    let again = app.call(&app.a, "POST", &path, Some(&body), &key).await;
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(again.body, paid.body);
}

/// A refusal the merchant can fix (no wallet takes the payer's currency, and no exchange
/// route reaches one) is not kept: once the wallet is added, the same key runs the request
/// again and keeps its success. A refusal that cannot change (the order is past PENDING
/// for good) is kept.
#[tokio::test]
async fn idempotency_does_not_keep_a_refusal_the_merchant_can_fix() {
    let app = spawn_app().await;
    let sale = app
        .signed_post(&app.a, "/pay-orders", &sale_body(), &[])
        .await;
    assert_eq!(sale.status, 201, "{}", sale.text);
    let id = sale.body["id"].as_str().unwrap();
    let path = format!("/pay-orders/{id}/payment-details");
    let body = json!({"source_currency": {"chain_id": 11155111, "address": SEPOLIA_USDC}});
    let key = [("idempotency-key", "details-1")];
    app.call(&app.a, "POST", &path, Some(&body), &key)
        .await
        .assert_error(422, "ROUTE_UNAVAILABLE");

    let wallet = json!({"chain_id": 11155111, "address": RECIPIENT, "currencies": [SEPOLIA_USDC]});
    let w = app
        .signed_call(&app.a, "POST", "/merchant-wallets", Some(&wallet))
        .await;
    assert_eq!(w.status, 201, "{}", w.text);
    let chosen = app.call(&app.a, "POST", &path, Some(&body), &key).await;
    assert_eq!(chosen.status, 200, "{}", chosen.text);
    assert!(!chosen.headers.contains_key("idempotent-replayed"));
    assert_eq!(chosen.body["status"], "AWAITING_PAYMENT");
    let again = app.call(&app.a, "POST", &path, Some(&body), &key).await;
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(again.body, chosen.body);

    let final_key = [("idempotency-key", "details-2")];
    let first = app
        .call(&app.a, "POST", &path, Some(&body), &final_key)
        .await;
    first.assert_error(422, "ORDER_NOT_PENDING");
    let replay = app
        .call(&app.a, "POST", &path, Some(&body), &final_key)
        .await;
    assert_eq!(replay.headers["idempotent-replayed"], "true");
    assert_eq!(replay.body, first.body);
}

#[tokio::test]
async fn duplicate_nonce_is_409() {
    let app = spawn_app().await;
    assert_eq!(
        app.create_deposit(&app.a, &json!({"nonce": 1640995200123456u64}))
            .await
            .status,
        201
    );
    let dup = app
        .create_deposit(&app.a, &json!({"nonce": "1640995200123456"}))
        .await;
    dup.assert_error(409, "DUPLICATE_NONCE");
    assert_eq!(dup.body["error"]["param"], "nonce");
    // Free in another organization and in live mode.
    assert_eq!(
        app.create_deposit(&app.b, &json!({"nonce": 1640995200123456u64}))
            .await
            .status,
        201
    );
    assert_eq!(
        app.create_deposit(&app.a_live, &json!({"nonce": 1640995200123456u64}))
            .await
            .status,
        201
    );
    let list = app.get(&app.a, "/pay-orders").await;
    assert_eq!(list.body["data"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn every_validation_code() {
    let app = spawn_app().await;
    let big = "x".repeat(17 * 1024);
    let far = Timestamp::now().plus_seconds(8 * 24 * 3600).to_key();
    let soon = Timestamp::now().plus_seconds(30).to_key();
    let solana = json!({"chain_id": SOLANA_DEVNET, "address": SOLANA_DEVNET_USDC});
    // (changes to a valid DEPOSIT body, status, code, param)
    let cases: Vec<(Value, u16, &str, Option<&str>)> = vec![
        (json!({"mode": null}), 400, "INVALID_MODE", Some("mode")),
        (json!({"mode": "RENT"}), 400, "INVALID_MODE", Some("mode")),
        (
            json!({"mode": "deposit"}),
            400,
            "INVALID_MODE",
            Some("mode"),
        ),
        (
            json!({"mode": "SWAP"}),
            422,
            "MODE_NOT_SUPPORTED",
            Some("mode"),
        ),
        (
            json!({"amount": null}),
            400,
            "INVALID_AMOUNT",
            Some("amount"),
        ),
        (
            json!({"amount": 25.5}),
            400,
            "INVALID_AMOUNT",
            Some("amount"),
        ),
        (
            json!({"amount": "-5"}),
            400,
            "INVALID_AMOUNT",
            Some("amount"),
        ),
        (
            json!({"amount": "0"}),
            400,
            "INVALID_AMOUNT",
            Some("amount"),
        ),
        (
            json!({"amount": "0.0000001"}),
            400,
            "INVALID_AMOUNT",
            Some("amount"),
        ),
        (
            json!({"amount": "abc"}),
            400,
            "INVALID_AMOUNT",
            Some("amount"),
        ),
        (
            json!({"amount": "1e5"}),
            400,
            "INVALID_AMOUNT",
            Some("amount"),
        ),
        (
            json!({"amount": "9".repeat(80)}),
            400,
            "INVALID_AMOUNT",
            Some("amount"),
        ),
        // Above the largest order amount (10^15 units), though the currency could hold it.
        (
            json!({"amount": "1000000000000000.000001"}),
            400,
            "INVALID_AMOUNT",
            Some("amount"),
        ),
        (
            json!({"amount": "50000000000000000000000"}),
            400,
            "INVALID_AMOUNT",
            Some("amount"),
        ),
        // A test key on a mainnet.
        (
            json!({"currency": {"chain_id": 8453, "address": BASE_USDC}}),
            422,
            "NETWORK_MODE_MISMATCH",
            Some("currency"),
        ),
        (
            json!({"currency": "USDC", "blockchain": "solana"}),
            422,
            "NETWORK_MODE_MISMATCH",
            Some("currency"),
        ),
        (
            json!({"currency": null}),
            400,
            "MISSING_CURRENCY",
            Some("currency"),
        ),
        (
            json!({"currency": {"chain_id": 999999}}),
            422,
            "INVALID_BLOCKCHAIN",
            Some("currency.chain_id"),
        ),
        (
            json!({"currency": {"chain_id": 84532, "address": "0x0000000000000000000000000000000000000001"}}),
            422,
            "UNSUPPORTED_CURRENCY",
            Some("currency"),
        ),
        (
            json!({"currency": {"chain_id": 84532, "address": 5}}),
            400,
            "INVALID_CURRENCY",
            Some("currency"),
        ),
        (
            json!({"currency": {"chain_id": 84532, "token": "x"}}),
            400,
            "INVALID_CURRENCY",
            Some("currency"),
        ),
        (
            json!({"currency": {"chain_id": 0}}),
            400,
            "INVALID_CURRENCY",
            Some("currency"),
        ),
        (
            json!({"currency": 7}),
            400,
            "INVALID_CURRENCY",
            Some("currency"),
        ),
        (
            json!({"currency": "USDC", "blockchain": "dogechain"}),
            422,
            "INVALID_BLOCKCHAIN",
            Some("blockchain"),
        ),
        (
            json!({"currency": "DOGE", "blockchain": "base-sepolia"}),
            422,
            "UNSUPPORTED_CURRENCY",
            Some("currency"),
        ),
        (
            json!({"currency": "USDC"}),
            400,
            "INVALID_BLOCKCHAIN",
            Some("blockchain"),
        ),
        (
            json!({"recipient": null}),
            400,
            "MISSING_RECIPIENT",
            Some("recipient"),
        ),
        (
            json!({"recipient": "0x1234"}),
            400,
            "INVALID_ADDRESS",
            Some("recipient"),
        ),
        (
            json!({"recipient": "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD"}),
            400,
            "INVALID_ADDRESS",
            Some("recipient"),
        ),
        (
            json!({"currency": solana, "recipient": RECIPIENT}),
            400,
            "INVALID_ADDRESS",
            Some("recipient"),
        ),
        (
            json!({"fiat_unit": "USD"}),
            400,
            "INVALID_REQUEST",
            Some("fiat_unit"),
        ),
        (
            json!({"metadata": "not an object"}),
            400,
            "INVALID_ORDER_INFO",
            Some("metadata"),
        ),
        (
            json!({"metadata": {"blob": big}}),
            400,
            "INVALID_ORDER_INFO",
            Some("metadata"),
        ),
        (
            json!({"order_info": "{not json"}),
            400,
            "INVALID_ORDER_INFO",
            Some("order_info"),
        ),
        (
            json!({"order_info": "[1,2]"}),
            400,
            "INVALID_ORDER_INFO",
            Some("order_info"),
        ),
        (
            json!({"order_info": "{}", "metadata": {}}),
            400,
            "INVALID_ORDER_INFO",
            Some("order_info"),
        ),
        (
            json!({"expires_in": 59}),
            400,
            "INVALID_EXPIRY",
            Some("expires_in"),
        ),
        (
            json!({"expires_in": 604801}),
            400,
            "INVALID_EXPIRY",
            Some("expires_in"),
        ),
        (
            json!({"expires_in": "600"}),
            400,
            "INVALID_EXPIRY",
            Some("expires_in"),
        ),
        (
            json!({"expires_at": far}),
            400,
            "INVALID_EXPIRY",
            Some("expires_at"),
        ),
        (
            json!({"expires_at": soon}),
            400,
            "INVALID_EXPIRY",
            Some("expires_at"),
        ),
        (
            json!({"expires_at": "tomorrow"}),
            400,
            "INVALID_EXPIRY",
            Some("expires_at"),
        ),
        (
            json!({"expires_at": Timestamp::now().plus_seconds(600).to_key(), "expires_in": 600}),
            400,
            "INVALID_EXPIRY",
            Some("expires_at"),
        ),
        (
            json!({"webhook_url": "ftp://example.com/x"}),
            400,
            "INVALID_URL",
            Some("webhook_url"),
        ),
        (
            json!({"redirect_url": "not a url"}),
            400,
            "INVALID_URL",
            Some("redirect_url"),
        ),
        (
            json!({"cancel_url": "https://user:pw@example.com/"}),
            400,
            "INVALID_URL",
            Some("cancel_url"),
        ),
        (
            json!({"webhook_url": format!("https://example.com/{}", "a".repeat(2050))}),
            400,
            "INVALID_URL",
            Some("webhook_url"),
        ),
        (
            json!({"webhook_url": 5}),
            400,
            "INVALID_URL",
            Some("webhook_url"),
        ),
        (json!({"nonce": -1}), 400, "INVALID_NONCE", Some("nonce")),
        (json!({"nonce": ""}), 400, "INVALID_NONCE", Some("nonce")),
        (
            json!({"nonce": "has space"}),
            400,
            "INVALID_NONCE",
            Some("nonce"),
        ),
        (json!({"nonce": 1.5}), 400, "INVALID_NONCE", Some("nonce")),
        (
            json!({"payment_tolerance": {"underpayment_bps": 5001}}),
            400,
            "INVALID_PAYMENT_TOLERANCE",
            Some("payment_tolerance"),
        ),
        (
            json!({"payment_tolerance": {"overpayment_bps": 1}}),
            400,
            "INVALID_PAYMENT_TOLERANCE",
            Some("payment_tolerance"),
        ),
        (
            json!({"confirmations": 0}),
            400,
            "INVALID_CONFIRMATIONS",
            Some("confirmations"),
        ),
        (
            json!({"confirmations": 1001}),
            400,
            "INVALID_CONFIRMATIONS",
            Some("confirmations"),
        ),
        (
            json!({"surprise": true}),
            400,
            "UNKNOWN_PARAMETER",
            Some("surprise"),
        ),
    ];
    for (change, status, code, param) in cases {
        let r = app.create_deposit(&app.a, &change).await;
        let label = format!("{change} -> {}", r.text);
        assert_eq!(r.status, status, "{label}");
        assert_eq!(r.body["error"]["code"], code, "{label}");
        assert_eq!(r.body["error"]["param"].as_str(), param, "{label}");
    }

    // SALE rules (signed).
    let sale_cases: Vec<(Value, u16, &str)> = vec![
        (
            json!({"mode": "SALE", "amount": "10"}),
            400,
            "MISSING_CURRENCY",
        ),
        (
            json!({"mode": "SALE", "amount": "10", "fiat_unit": "EUR"}),
            422,
            "UNSUPPORTED_FIAT_UNIT",
        ),
        (
            json!({"mode": "SALE", "amount": "10.001", "fiat_unit": "USD"}),
            400,
            "INVALID_AMOUNT",
        ),
        (
            json!({"mode": "SALE", "amount": "10", "fiat_unit": "USD", "recipient": RECIPIENT}),
            400,
            "INVALID_ADDRESS",
        ),
    ];
    for (body, status, code) in sale_cases {
        let r = app.signed_post(&app.a, "/pay-orders", &body, &[]).await;
        assert_eq!(
            (r.status, r.body["error"]["code"].as_str()),
            (status, Some(code)),
            "{body} -> {}",
            r.text
        );
    }
    // An organization with no settlement currency in this mode cannot take a fiat SALE.
    let r = app
        .signed_post(&app.a_live, "/pay-orders", &sale_body(), &[])
        .await;
    r.assert_error(422, "WALLET_NOT_CONFIGURED");

    // Nothing was written by any refused request.
    let list = app.get(&app.a, "/pay-orders").await;
    assert_eq!(list.body["data"], json!([]));
}

#[tokio::test]
async fn accepted_shapes() {
    let app = spawn_app().await;
    // Seed 001's form: symbol + blockchain slug, order_info string, integer nonce.
    let r = app
        .create_deposit(
            &app.a,
            &json!({
                "currency": "USDC",
                "blockchain": "base-sepolia",
                "amount": "100.00",
                "order_info": "{\"product\": \"Premium Plan\", \"quantity\": 1}",
                "nonce": 1640995200123456u64,
                "webhook_url": "https://merchant.example/webhooks",
                "redirect_url": "https://merchant.example/ok",
                "cancel_url": "http://localhost:8080/cancel",
                "expires_in": 900,
                "payment_tolerance": {"underpayment_bps": 50},
                "confirmations": 3,
            }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(
        r.body["fulfillment"]["asset"]["id"],
        "84532:0x036cbd53842c5426634e7929541ec2318f3dcf7e"
    );
    assert_eq!(r.body["metadata"]["product"], "Premium Plan");
    assert_eq!(r.body["nonce"], "1640995200123456");
    assert_eq!(r.body["payment_tolerance"]["underpayment_bps"], 50);
    assert_eq!(r.body["confirmations"], 3);
    let created = Timestamp::parse(r.body["created_at"].as_str().unwrap()).unwrap();
    let expires = Timestamp::parse(r.body["expires_at"].as_str().unwrap()).unwrap();
    assert_eq!(created.seconds_until(expires), 900);
    // Lowercase recipient is accepted and shown checksummed; native currency; 18 decimals.
    let r = app
        .create_deposit(
            &app.a,
            &json!({
                "currency": {"chain_id": 11155111, "address": null},
                "amount": "0.000000000000000001",
                "recipient": RECIPIENT.to_lowercase(),
                "expires_at": Timestamp::now().plus_seconds(3600).to_key(),
            }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["fulfillment"]["amount"]["raw"], "1");
    assert_eq!(r.body["fulfillment"]["recipient"], RECIPIENT);
    // Solana (Devnet for a test key) deposit with a base58 recipient.
    let r = app
        .create_deposit(
            &app.a,
            &json!({
                "currency": {"chain_id": SOLANA_DEVNET, "address": SOLANA_DEVNET_USDC},
                "recipient": SOLANA_ADDRESS,
            }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    // The largest amount an order may state.
    let r = app
        .create_deposit(&app.a, &json!({"amount": "1000000000000000"}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["fulfillment"]["amount"]["ui"], "1000000000000000.0");
    // A signed SALE in a named currency.
    let r = app
        .signed_post(&app.a, "/pay-orders", &json!({"mode": "SALE", "amount": "12.5", "currency": {"chain_id": 84532, "address": null}}), &[])
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(
        r.body["fulfillment"]["amount"]["raw"],
        "12500000000000000000"
    );
}

#[tokio::test]
async fn pagination_through_pages_with_filters() {
    let app = &spawn_app().await;
    let mut deposit_ids = Vec::new();
    for i in 0..14 {
        if i % 3 == 0 {
            // Distinct bodies: the same signed request twice in one second is a replay.
            let mut sale = sale_body();
            sale["nonce"] = json!(i);
            let r = app.signed_post(&app.a, "/pay-orders", &sale, &[]).await;
            assert_eq!(r.status, 201, "{}", r.text);
        } else {
            let extra = if i % 2 == 0 {
                json!({"currency": "USDC", "blockchain": "sepolia"})
            } else {
                json!({})
            };
            let r = app.create_deposit(&app.a, &extra).await;
            assert_eq!(r.status, 201, "{}", r.text);
            deposit_ids.push(r.body["id"].as_str().unwrap().to_owned());
        }
    }
    deposit_ids.reverse();
    // Cancel one deposit, to filter on status too.
    let cancelled = deposit_ids[4].clone();
    app.post(&app.a, &format!("/pay-orders/{cancelled}/cancel"), None)
        .await;

    let walk = move |q: String| async move {
        let mut seen = Vec::new();
        let mut pages = 0;
        let mut url = format!("/pay-orders?{q}");
        loop {
            let r = app.get(&app.a, &url).await;
            assert_eq!(r.status, 200, "{}", r.text);
            pages += 1;
            for o in r.body["data"].as_array().unwrap() {
                seen.push(o["id"].as_str().unwrap().to_owned());
            }
            if r.body["has_more"] == false {
                assert!(r.body["next_cursor"].is_null());
                return (seen, pages);
            }
            url = format!(
                "/pay-orders?{q}&cursor={}",
                r.body["next_cursor"].as_str().unwrap()
            );
        }
    };
    let (ids, pages) = walk("mode=DEPOSIT&limit=3".into()).await;
    assert_eq!(ids, deposit_ids, "newest first, none skipped or repeated");
    assert_eq!(deposit_ids.len(), 9);
    assert_eq!(
        pages, 3,
        "9 at 3 a page: the third page knows it is the last"
    );

    let (pending, pages) = walk("mode=DEPOSIT&status=PENDING&limit=2".into()).await;
    let want: Vec<_> = deposit_ids
        .iter()
        .filter(|i| **i != cancelled)
        .cloned()
        .collect();
    assert_eq!(pending, want);
    assert_eq!(pages, 4);

    let (sepolia, _) = walk("chain_id=11155111&limit=2".into()).await;
    let (sepolia_usdc, _) = walk(format!("currency=11155111:{SEPOLIA_USDC}&limit=2")).await;
    assert_eq!(sepolia, sepolia_usdc);
    assert_eq!(sepolia.len(), 4);

    let (cancelled_only, _) = walk("status=CANCELLED".into()).await;
    assert_eq!(cancelled_only, vec![cancelled]);

    // A creation window.
    let all = app.get(&app.a, "/pay-orders?limit=100").await;
    let data = all.body["data"].as_array().unwrap();
    assert_eq!(data.len(), 14);
    let lo = data[9]["created_at"].as_str().unwrap().to_owned();
    let hi = data[3]["created_at"].as_str().unwrap().to_owned();
    let (window, _) = walk(format!("created_gte={lo}&created_lte={hi}&limit=4")).await;
    let want: Vec<_> = data[3..=9]
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(window, want);
}

#[tokio::test]
async fn bad_list_parameters_are_400() {
    let app = spawn_app().await;
    for (q, code, param) in [
        ("limit=0", "INVALID_LIMIT", "limit"),
        ("limit=101", "INVALID_LIMIT", "limit"),
        ("limit=ten", "INVALID_LIMIT", "limit"),
        ("status=pending", "INVALID_STATUS", "status"),
        ("status=PAID", "INVALID_STATUS", "status"),
        ("mode=RENT", "INVALID_MODE", "mode"),
        ("chain_id=base", "INVALID_BLOCKCHAIN", "chain_id"),
        ("currency=USDC", "UNSUPPORTED_CURRENCY", "currency"),
        ("created_gte=yesterday", "INVALID_TIMESTAMP", "created_gte"),
        (
            "created_gte=2026-02-01T00:00:00Z&created_lte=2026-01-01T00:00:00Z",
            "INVALID_TIMESTAMP",
            "created_gte",
        ),
        ("cursor=nope", "INVALID_CURSOR", "cursor"),
        ("page=2", "UNKNOWN_PARAMETER", "page"),
        ("limit=1&limit=2", "INVALID_PARAMETER", "limit"),
    ] {
        let r = app.get(&app.a, &format!("/pay-orders?{q}")).await;
        assert_eq!(r.status, 400, "{q}: {}", r.text);
        assert_eq!(
            (
                r.body["error"]["code"].as_str(),
                r.body["error"]["param"].as_str()
            ),
            (Some(code), Some(param)),
            "{q}"
        );
    }
}

#[tokio::test]
async fn test_keys_use_test_networks_and_live_keys_mainnets() {
    let app = spawn_app().await;
    let mismatch = |r: &Resp, param: &str, message: &str| {
        r.assert_error(422, "NETWORK_MODE_MISMATCH");
        assert_eq!(r.body["error"]["type"], "invalid_request");
        assert_eq!(r.body["error"]["param"], param, "{}", r.text);
        assert_eq!(r.body["error"]["message"], message, "{}", r.text);
    };
    let test_on_base = "test-mode keys use test networks; chain 8453 (Base) is a mainnet";
    // Orders: a test key on a mainnet, a live key on a test network (the local chain too).
    let base_usdc = json!({"currency": {"chain_id": 8453, "address": BASE_USDC}});
    let r = app.create_deposit(&app.a, &base_usdc).await;
    mismatch(&r, "currency", test_on_base);
    let r = app
        .signed_post(&app.a, "/pay-orders", &json!({"mode": "SALE", "amount": "10", "fiat_unit": "USD", "currency": {"chain_id": 8453, "address": null}}), &[])
        .await;
    mismatch(&r, "currency", test_on_base);
    let r = app
        .create_deposit(
            &app.a_live,
            &json!({"currency": {"chain_id": 84532, "address": BASE_SEPOLIA_USDC}}),
        )
        .await;
    mismatch(
        &r,
        "currency",
        "live-mode keys use mainnets; chain 84532 (Base Sepolia) is a test network",
    );
    let r = app
        .create_deposit(
            &app.a_live,
            &json!({"currency": {"chain_id": 31337, "address": null}}),
        )
        .await;
    r.assert_error(422, "NETWORK_MODE_MISMATCH");
    let r = app
        .create_deposit(&app.a_live, &json!({"currency": {"chain_id": SOLANA_DEVNET, "address": SOLANA_DEVNET_USDC}, "recipient": SOLANA_ADDRESS}))
        .await;
    r.assert_error(422, "NETWORK_MODE_MISMATCH");
    // Each on its own kind of network is fine, Solana included.
    let live = app.create_deposit(&app.a_live, &base_usdc).await;
    assert_eq!(live.status, 201, "{}", live.text);
    assert_eq!(live.body["livemode"], true);
    let devnet = app
        .create_deposit(&app.a, &json!({"currency": {"chain_id": SOLANA_DEVNET, "address": SOLANA_DEVNET_USDC}, "recipient": SOLANA_ADDRESS}))
        .await;
    assert_eq!(devnet.status, 201, "{}", devnet.text);

    // Payment details: the payer's currency is on the key's kind of network too.
    let sale = app
        .signed_post(&app.a, "/pay-orders", &sale_body(), &[])
        .await;
    assert_eq!(sale.status, 201, "{}", sale.text);
    let sale_id = sale.body["id"].as_str().unwrap();
    let r = app
        .post(
            &app.a,
            &format!("/pay-orders/{sale_id}/payment-details"),
            Some(&json!({"source_currency": {"chain_id": 8453, "address": null}})),
        )
        .await;
    mismatch(&r, "source_currency", test_on_base);
    let live_id = live.body["id"].as_str().unwrap();
    let r = app
        .post(
            &app.a_live,
            &format!("/pay-orders/{live_id}/payment-details"),
            Some(&json!({"source_currency": {"chain_id": 84532, "address": BASE_SEPOLIA_USDC}})),
        )
        .await;
    r.assert_error(422, "NETWORK_MODE_MISMATCH");
    // Nothing changed.
    for (who, id) in [(&app.a, sale_id), (&app.a_live, live_id)] {
        let o = app.get(who, &format!("/pay-orders/{id}")).await;
        assert_eq!(o.body["status"], "PENDING");
    }

    // Quotes read only the key's kind of network.
    let r = app
        .post(
            &app.a,
            &format!("/pay-orders/{sale_id}/quote"),
            Some(&json!({"wallet_address": RECIPIENT, "chain_type": "EVM", "chain_ids": [8453]})),
        )
        .await;
    mismatch(&r, "chain_ids", test_on_base);
    let r = app
        .post(
            &app.a_live,
            &format!("/pay-orders/{live_id}/quote"),
            Some(&json!({"wallet_address": RECIPIENT, "chain_type": "EVM", "chain_ids": [31337]})),
        )
        .await;
    mismatch(
        &r,
        "chain_ids",
        "live-mode keys use mainnets; chain 31337 (Local chain (anvil)) is a test network",
    );
    // Without chain_ids, a live quote skips the configured test chain (31337 here).
    let r = app
        .post(
            &app.a_live,
            &format!("/pay-orders/{live_id}/quote"),
            Some(&json!({"wallet_address": "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266", "chain_type": "EVM"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["options"], json!([]), "{}", r.text);

    // Merchant wallets.
    let r = app
        .signed_call(
            &app.a,
            "POST",
            "/merchant-wallets",
            Some(&json!({"chain_id": 8453, "address": RECIPIENT, "currencies": ["native"]})),
        )
        .await;
    mismatch(&r, "chain_id", test_on_base);
}

/// The checkout page sends the payer to the order's `redirect_url` or `cancel_url`: in live
/// mode they must be https (`400 INVALID_URL` naming the field, and nothing is created), since
/// a page reached over plain http can be rewritten on the way. Test mode keeps http.
#[tokio::test]
async fn a_live_order_sends_its_payer_back_over_https_only() {
    let app = spawn_app().await;
    let live_sale = |extra: &serde_json::Value| {
        let mut body = json!({
            "mode": "SALE",
            "amount": "10",
            "currency": {"chain_id": 8453, "address": BASE_USDC},
        });
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    for field in ["redirect_url", "cancel_url"] {
        for url in ["http://shop.example/back", "HTTP://shop.example/back"] {
            let extra = json!({ field: url });
            let deposit = app.create_deposit(&app.a_live, &extra).await;
            let sale = app
                .signed_post(&app.a_live, "/pay-orders", &live_sale(&extra), &[])
                .await;
            for r in [deposit, sale] {
                r.assert_error(400, "INVALID_URL");
                assert_eq!(r.body["error"]["param"], field, "{}", r.text);
                let message = r.body["error"]["message"].as_str().unwrap();
                assert!(message.contains("https"), "{message}");
            }
        }
    }
    let list = app.get(&app.a_live, "/pay-orders").await;
    assert_eq!(list.body["data"], json!([]), "{}", list.text);
    let pages = json!({
        "redirect_url": "https://shop.example/thanks",
        "cancel_url": "https://shop.example/cart",
    });
    let live = app.create_deposit(&app.a_live, &pages).await;
    assert_eq!(live.status, 201, "{}", live.text);
    let sale = app
        .signed_post(&app.a_live, "/pay-orders", &live_sale(&pages), &[])
        .await;
    assert_eq!(sale.status, 201, "{}", sale.text);
    let local = json!({
        "redirect_url": "http://localhost:3000/thanks",
        "cancel_url": "http://localhost:3000/cart",
    });
    let test = app.create_deposit(&app.a, &local).await;
    assert_eq!(test.status, 201, "{}", test.text);
    for (r, want) in [(&live, &pages), (&sale, &pages), (&test, &local)] {
        assert_eq!(r.body["redirect_url"], want["redirect_url"], "{}", r.text);
        assert_eq!(r.body["cancel_url"], want["cancel_url"], "{}", r.text);
    }
}

/// A live order's own `webhook_url` must be one its deliveries will send to: https, or
/// `400 INVALID_URL` as for a live endpoint (before, an `http://` URL was accepted and every
/// delivery to it then failed as `destination refused`), and not a private, loopback or
/// metadata address written as an IP (`422 WEBHOOK_URL_FORBIDDEN`). A refused order is not
/// created. Test mode keeps http and such addresses, for a receiver on the developer's machine.
#[tokio::test]
async fn a_live_order_webhook_url_is_checked_as_its_deliveries_check_it() {
    let app = spawn_app().await;
    let live_sale = |webhook_url: &str| {
        json!({
            "mode": "SALE",
            "amount": "10",
            "currency": {"chain_id": 8453, "address": BASE_USDC},
            "webhook_url": webhook_url,
        })
    };
    let refused = [
        ("http://example.com/x", 400, "INVALID_URL"),
        ("https://10.0.0.5/x", 422, "WEBHOOK_URL_FORBIDDEN"),
        ("https://127.0.0.1:8080/x", 422, "WEBHOOK_URL_FORBIDDEN"),
        (
            "https://169.254.169.254/latest/meta-data/",
            422,
            "WEBHOOK_URL_FORBIDDEN",
        ),
        ("https://[::1]/x", 422, "WEBHOOK_URL_FORBIDDEN"),
    ];
    for (url, status, code) in refused {
        let deposit = app
            .create_deposit(&app.a_live, &json!({"webhook_url": url}))
            .await;
        let sale = app
            .signed_post(&app.a_live, "/pay-orders", &live_sale(url), &[])
            .await;
        for r in [deposit, sale] {
            r.assert_error(status, code);
            assert_eq!(r.body["error"]["param"], "webhook_url", "{url}: {}", r.text);
        }
    }
    // The https refusal names the rule.
    let r = app
        .create_deposit(&app.a_live, &json!({"webhook_url": "http://example.com/x"}))
        .await;
    let message = r.body["error"]["message"].as_str().unwrap();
    assert!(message.contains("https"), "{message}");
    // Nothing was created.
    let list = app.get(&app.a_live, "/pay-orders").await;
    assert_eq!(list.body["data"], json!([]), "{}", list.text);

    // https to a public host is accepted (the host name is resolved when delivered to).
    let deposit = app
        .create_deposit(
            &app.a_live,
            &json!({"webhook_url": "https://example.com/x"}),
        )
        .await;
    assert_eq!(deposit.status, 201, "{}", deposit.text);
    let sale = app
        .signed_post(
            &app.a_live,
            "/pay-orders",
            &live_sale("https://example.com/x"),
            &[],
        )
        .await;
    assert_eq!(sale.status, 201, "{}", sale.text);
    for r in [&deposit, &sale] {
        assert_eq!(r.body["livemode"], true);
        assert_eq!(r.body["webhook_url"], "https://example.com/x", "{}", r.text);
    }

    // Test mode is as it was: http, loopback and private addresses are accepted.
    for url in [
        "http://example.com/x",
        "http://localhost:8080/x",
        "http://127.0.0.1:8080/x",
        "http://10.0.0.5/x",
    ] {
        let r = app
            .create_deposit(&app.a, &json!({"webhook_url": url}))
            .await;
        assert_eq!(r.status, 201, "{url}: {}", r.text);
        assert_eq!(r.body["webhook_url"], url);
    }
}
