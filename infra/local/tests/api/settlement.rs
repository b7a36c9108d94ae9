//! Paying orders end to end on anvil (chain 31337, 2 confirmations) through the local host:
//! payment details, a real transfer, submitted by hash, confirmations as blocks are mined,
//! COMPLETED; partial payments and top-ups; wrong transactions; a transaction that two
//! orders race for; a reorg; and the sandbox chain in test mode.

use crate::support::*;
use alloy::primitives::{Address, U256};
use payorders::testing::anvil;
use serde_json::{Value, json};

/// A DEPOSIT order of `amount` of `currency` (TUSD or, with `None`, native ETH) on chain
/// 31337 to `recipient`, with its payment details: AWAITING_PAYMENT.
async fn awaiting_payment(
    app: &TestApp,
    currency: Option<&str>,
    amount: &str,
    recipient: Address,
) -> String {
    let currency = json!({"chain_id": 31337, "address": currency});
    let order = json!({"amount": amount, "currency": currency, "recipient": recipient.to_string()});
    let (id, d) = app.awaiting_deposit(&app.a, &order, &currency).await;
    assert_eq!(d["status"], "AWAITING_PAYMENT");
    assert_eq!(
        d["payment"]["steps"][0]["deposit_address"],
        recipient.to_string()
    );
    id
}

/// An app over the shared anvil and an order of its own awaiting payment to a fresh address:
/// the app, the anvil URL, the deposit address and the order id.
async fn order_on_anvil(
    currency: Option<&str>,
    amount: &str,
) -> (TestApp, String, Address, String) {
    let app = spawn_app().await;
    let recipient = anvil::fresh_address();
    let id = awaiting_payment(&app, currency, amount, recipient).await;
    (app, anvil_url(), recipient, id)
}

async fn submit(app: &TestApp, id: &str, hash: impl ToString) -> Resp {
    app.post(
        &app.a,
        &format!("/pay-orders/{id}/payments"),
        Some(&json!({"tx_hash": hash.to_string()})),
    )
    .await
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

fn tusd(units: u64) -> U256 {
    U256::from(units) * U256::from(1_000_000u64)
}

#[tokio::test]
async fn erc20_payment_submitted_then_confirmed_to_completed() {
    let (app, url, recipient, id) = order_on_anvil(Some(anvil::TOKEN), "10").await;
    let hash = anvil::send_token(&url, recipient, tusd(10), None).await;

    let r = submit(&app, &id, hash).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["status"], "AWAITING_CONFIRMATION");
    let t = &r.body["transfers"][0];
    assert_eq!(t["tx_hash"], hash.to_string());
    assert_eq!(t["amount"]["raw"], "10000000");
    assert_eq!(t["status"], "confirming");
    assert_eq!(t["required_confirmations"], 2);
    assert_eq!(t["from_address"], anvil::dev_address().to_string());
    assert_eq!(r.body["payment"]["source_tx_hash"], hash.to_string());
    assert_eq!(r.body["payment"]["received"]["ui"], "10.0");
    assert_eq!(r.body["paid_over"], false);

    // Submitting it again changes nothing.
    let again = submit(&app, &id, hash).await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.body["version"], r.body["version"]);

    // One block on top of the transfer's makes 2 confirmations.
    anvil::mine(&url, 1).await;
    let done = wait_status(&app, &id, "COMPLETED").await;
    assert_eq!(done["transfers"][0]["status"], "confirmed");
    assert!(done["transfers"][0]["confirmations"].as_u64().unwrap() >= 2);
    assert!(done["transfers"][0]["confirmed_at"].is_string());
    let types = eventually(async || {
        let t = event_types(&app, &id).await;
        t.contains(&"order.completed".to_owned()).then_some(t)
    })
    .await;
    assert_eq!(
        types,
        [
            "order.created",
            "order.awaiting_payment",
            "order.payment_detected",
            "order.completed"
        ]
    );
    // The same transaction again answers the order as it is; another one is refused.
    let same = submit(&app, &id, hash).await;
    assert_eq!(same.status, 200, "{}", same.text);
    assert_eq!(same.body["version"], done["version"]);
    let more = anvil::send_token(&url, recipient, tusd(1), None).await;
    submit(&app, &id, more)
        .await
        .assert_error(409, "ORDER_NOT_PAYABLE");
}

#[tokio::test]
async fn native_payment_through_the_process_route_with_overpayment() {
    let (app, url, recipient, id) = order_on_anvil(None, "0.5").await;
    let wei = U256::from(600_000_000_000_000_000u64); // 0.6 ETH
    let hash = anvil::send_native(&url, recipient, wei).await;
    // Seed 000's GET route.
    let r = app
        .get(&app.a, &format!("/pay-orders/{id}/process?tx_hash={hash}"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["status"], "AWAITING_CONFIRMATION");
    assert_eq!(r.body["paid_over"], true);
    assert_eq!(r.body["transfers"][0]["amount"]["ui"], "0.6");
    anvil::mine(&url, 2).await;
    let done = wait_status(&app, &id, "COMPLETED").await;
    assert_eq!(done["payment"]["received"]["raw"], wei.to_string());
    // The excess is announced once, with the detection, so the merchant can refund it.
    let types = eventually(async || {
        let t = event_types(&app, &id).await;
        t.contains(&"order.completed".to_owned()).then_some(t)
    })
    .await;
    let detected = types.iter().position(|t| t == "order.payment_detected");
    let overpaid = types.iter().position(|t| t == "order.overpaid");
    assert!(detected.is_some() && overpaid.is_some(), "{types:?}");
    assert_eq!(
        types.iter().filter(|t| *t == "order.overpaid").count(),
        1,
        "{types:?}"
    );
}

#[tokio::test]
async fn partial_payment_then_top_up() {
    let (app, url, recipient, id) = order_on_anvil(Some(anvil::TOKEN), "10").await;

    let first = anvil::send_token(&url, recipient, tusd(4), None).await;
    let r = submit(&app, &id, first).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["status"], "PARTIAL_PAYMENT");
    assert_eq!(r.body["payment"]["received"]["ui"], "4.0");
    assert_eq!(r.body["payment"]["remaining"]["ui"], "6.0");

    let second = anvil::send_token(&url, recipient, tusd(3), None).await;
    let r = submit(&app, &id, second).await;
    assert_eq!(r.body["status"], "PARTIAL_PAYMENT", "{}", r.text);
    assert_eq!(r.body["payment"]["remaining"]["ui"], "3.0");

    let last = anvil::send_token(&url, recipient, tusd(3), None).await;
    let r = submit(&app, &id, last).await;
    assert_eq!(r.body["status"], "AWAITING_CONFIRMATION", "{}", r.text);
    assert_eq!(r.body["payment"]["received"]["ui"], "10.0");
    assert!(r.body["payment"].get("remaining").is_none());
    assert_eq!(r.body["transfers"].as_array().unwrap().len(), 3);
    assert_eq!(r.body["payment"]["source_tx_hash"], first.to_string());

    anvil::mine(&url, 1).await;
    let done = wait_status(&app, &id, "COMPLETED").await;
    assert!(
        done["transfers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["status"] == "confirmed")
    );
    let types = eventually(async || {
        let t = event_types(&app, &id).await;
        t.contains(&"order.completed".to_owned()).then_some(t)
    })
    .await;
    assert_eq!(
        types
            .iter()
            .filter(|t| *t == "order.partial_payment")
            .count(),
        2
    );
}

#[tokio::test]
async fn wrong_transactions_are_refused_and_change_nothing() {
    let (app, url, recipient, id) = order_on_anvil(Some(anvil::TOKEN), "10").await;
    let before = order(&app, &id).await;

    let elsewhere = anvil::send_token(&url, anvil::fresh_address(), tusd(10), None).await;
    submit(&app, &id, elsewhere)
        .await
        .assert_error(422, "WRONG_RECIPIENT");
    let eth = anvil::send_native(&url, recipient, U256::from(10u64)).await;
    submit(&app, &id, eth)
        .await
        .assert_error(422, "WRONG_TOKEN");
    // A transfer of more than the sender has reverts (mined with a failed status).
    let failed = anvil::send_token(&url, recipient, tusd(1) << 100, Some(100_000)).await;
    submit(&app, &id, failed)
        .await
        .assert_error(422, "TX_FAILED");
    submit(&app, &id, format!("0x{}", "ab".repeat(32)))
        .await
        .assert_error(422, "TX_NOT_FOUND");
    // A Solana signature for an EVM order.
    submit(&app, &id, "5".repeat(88))
        .await
        .assert_error(422, "WRONG_CHAIN");
    submit(&app, &id, "0x1234")
        .await
        .assert_error(400, "INVALID_TX_HASH");
    app.post(
        &app.a,
        &format!("/pay-orders/{id}/payments"),
        Some(&json!({"tx_hash": elsewhere.to_string(), "chain_id": 8453})),
    )
    .await
    .assert_error(422, "WRONG_CHAIN");
    app.post(
        &app.a,
        &format!("/pay-orders/{id}/payments"),
        Some(&json!({})),
    )
    .await
    .assert_error(400, "MISSING_TX_HASH");
    // Organization B cannot pay A's order; a PENDING order has nothing to pay yet.
    app.post(
        &app.b,
        &format!("/pay-orders/{id}/payments"),
        Some(&json!({"tx_hash": elsewhere.to_string()})),
    )
    .await
    .assert_error(404, "RESOURCE_NOT_FOUND");
    let pending = app.create_deposit(&app.a, &json!({})).await;
    let pid = pending.body["id"].as_str().unwrap();
    submit(&app, pid, elsewhere)
        .await
        .assert_error(422, "PAYMENT_DETAILS_REQUIRED");

    let after = order(&app, &id).await;
    assert_eq!(after, before, "refused transactions change nothing");
}

#[tokio::test]
async fn one_transaction_pays_one_order_even_when_raced() {
    let app = spawn_app().await;
    let url = anvil_url();
    let recipient = anvil::fresh_address();
    // Two orders paying the same recipient the same amount: one transfer fits both.
    let a = awaiting_payment(&app, Some(anvil::TOKEN), "5", recipient).await;
    let b = awaiting_payment(&app, Some(anvil::TOKEN), "5", recipient).await;
    let hash = anvil::send_token(&url, recipient, tusd(5), None).await;
    let (ra, rb) = tokio::join!(submit(&app, &a, hash), submit(&app, &b, hash));
    let mut statuses = [ra.status, rb.status];
    statuses.sort();
    assert_eq!(statuses, [200, 422], "{} / {}", ra.text, rb.text);
    let (won, lost, lost_id) = if ra.status == 200 {
        (ra, rb, &b)
    } else {
        (rb, ra, &a)
    };
    lost.assert_error(422, "TX_ALREADY_USED");
    assert_eq!(won.body["status"], "AWAITING_CONFIRMATION");
    assert_eq!(order(&app, lost_id).await["status"], "AWAITING_PAYMENT");
    // Later attempts are refused too. The merchant is told which of its orders the
    // transfer paid; the public route, which anyone holding an order id may call, is not:
    // an order id is all its payer holds to see their order.
    let won_id = if lost_id == &a { &b } else { &a };
    let merchant = submit(&app, lost_id, hash).await;
    merchant.assert_error(422, "TX_ALREADY_USED");
    assert!(merchant.text.contains(won_id.as_str()), "{}", merchant.text);
    let mut h = headers(&[]);
    h.insert("content-type", "application/json".parse().unwrap());
    let body = json!({"tx_hash": hash.to_string()});
    let public = app
        .send(
            "POST",
            &format!("/public/pay-orders/{lost_id}/payments"),
            h,
            Some(serde_json::to_vec(&body).unwrap()),
        )
        .await;
    public.assert_error(422, "TX_ALREADY_USED");
    assert!(!public.text.contains(won_id.as_str()), "{}", public.text);
    assert!(!public.text.contains("po_"), "{}", public.text);
}

#[tokio::test]
async fn a_reorg_sends_the_order_back_to_awaiting_payment() {
    // Its own anvil: rewinding the shared one would undo other tests' transactions.
    let (chain, app) = spawn_app_on_private_chain().await;
    let recipient = anvil::fresh_address();
    let id = awaiting_payment(&app, Some(anvil::TOKEN), "10", recipient).await;

    let snapshot = anvil::rpc(&chain.url, "evm_snapshot", json!([])).await;
    let hash = anvil::send_token(&chain.url, recipient, tusd(10), None).await;
    let r = submit(&app, &id, hash).await;
    assert_eq!(r.body["status"], "AWAITING_CONFIRMATION", "{}", r.text);

    // The block with the transfer is dropped; the chain grows past it without it.
    assert_eq!(
        anvil::rpc(&chain.url, "evm_revert", json!([snapshot])).await,
        json!(true)
    );
    anvil::mine(&chain.url, 3).await;
    let back = wait_status(&app, &id, "AWAITING_PAYMENT").await;
    assert_eq!(back["transfers"][0]["status"], "reorged");
    assert_eq!(back["payment"]["received"]["raw"], "0");
    assert_eq!(back["payment"]["remaining"]["ui"], "10.0");
    let types = eventually(async || {
        let t = event_types(&app, &id).await;
        (t.len() >= 4).then_some(t)
    })
    .await;
    assert_eq!(
        types,
        [
            "order.created",
            "order.awaiting_payment",
            "order.payment_detected",
            "order.awaiting_payment"
        ]
    );

    // Paid again after the reorg: the order completes.
    let again = anvil::send_token(&chain.url, recipient, tusd(10), None).await;
    let r = submit(&app, &id, again).await;
    assert_eq!(r.body["status"], "AWAITING_CONFIRMATION", "{}", r.text);
    anvil::mine(&chain.url, 1).await;
    wait_status(&app, &id, "COMPLETED").await;
}

#[tokio::test]
async fn a_transfer_mined_before_the_payment_details_pays_nothing() {
    // Its own anvil: its clock is set back, which would date other tests' transfers.
    let (chain, app) = spawn_app_on_private_chain().await;
    // The merchant's address received 10 TUSD ten minutes ago (by the chain's clock, well
    // past the 120 s allowed between the chain's clock and ours).
    let recipient = anvil::fresh_address();
    let past = now() - 600;
    anvil::rpc(&chain.url, "evm_setTime", json!([past])).await;
    let old = anvil::send_token(&chain.url, recipient, tusd(10), None).await;
    let mined = anvil::rpc(&chain.url, "eth_getTransactionReceipt", json!([old])).await;
    let block = anvil::rpc(
        &chain.url,
        "eth_getBlockByHash",
        json!([mined["blockHash"], false]),
    )
    .await;
    let mined_at = i64::from_str_radix(
        block["timestamp"]
            .as_str()
            .unwrap()
            .trim_start_matches("0x"),
        16,
    )
    .unwrap();
    assert!(mined_at <= past + 5, "{block}");
    anvil::rpc(&chain.url, "evm_setTime", json!([now()])).await;

    // Then an order for exactly that amount to that address gets its payment details.
    let id = awaiting_payment(&app, Some(anvil::TOKEN), "10", recipient).await;
    let before = order(&app, &id).await;
    let r = submit(&app, &id, old).await;
    r.assert_error(422, "TX_BEFORE_ORDER");
    assert_eq!(r.body["error"]["param"], "tx_hash");
    assert_eq!(
        order(&app, &id).await,
        before,
        "a refused transfer changes nothing"
    );

    // The deposit scan (every 250 ms here) ignores it too: its cursor is set back before
    // that block, so a run reads it with the order waiting (a run that read the cursor
    // before cannot move it: each move is conditional on the cursor it read).
    let chain_id = payorders::ChainId::new(31337).unwrap();
    let old_block = mined["blockNumber"].as_str().unwrap();
    let old_block = u64::from_str_radix(old_block.trim_start_matches("0x"), 16).unwrap();
    eventually(async || {
        let cursor = app.store.scan_cursor(chain_id).await.unwrap();
        app.store
            .set_scan_cursor(chain_id, cursor, old_block - 1)
            .await
            .ok()
    })
    .await;
    eventually(async || {
        let cursor = app.store.scan_cursor(chain_id).await.unwrap();
        cursor.filter(|c| *c >= old_block)
    })
    .await;
    assert_eq!(order(&app, &id).await, before);

    // A transfer sent now pays it.
    let fresh = anvil::send_token(&chain.url, recipient, tusd(10), None).await;
    let r = submit(&app, &id, fresh).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["status"], "AWAITING_CONFIRMATION");
    assert_eq!(r.body["transfers"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn simulated_payments_in_test_mode_only() {
    let app = spawn_app().await;
    let recipient = anvil::fresh_address();
    let id = awaiting_payment(&app, Some(anvil::TOKEN), "10", recipient).await;
    let path = format!("/pay-orders/{id}/simulate-payment");

    let r = app
        .post(&app.a, &path, Some(&json!({"amount": "2.5"})))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["status"], "PARTIAL_PAYMENT");
    assert_eq!(r.body["payment"]["remaining"]["ui"], "7.5");
    assert_eq!(r.body["transfers"][0]["sandbox"], true);

    // Under an Idempotency-Key the answer is kept by the payment's own write: the same
    // request again replays it and pays nothing more.
    let keyed = [("Idempotency-Key", "simulate-1")];
    let one = Some(json!({"amount": "1"}));
    let first = app.call(&app.a, "POST", &path, one.as_ref(), &keyed).await;
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(first.body["payment"]["remaining"]["ui"], "6.5");
    let again = app.call(&app.a, "POST", &path, one.as_ref(), &keyed).await;
    assert_eq!((again.status, &again.text), (200, &first.text));
    let order = app.get(&app.a, &format!("/pay-orders/{id}")).await;
    assert_eq!(order.body["transfers"].as_array().unwrap().len(), 2);

    for (body, code) in [
        (json!({"amount": "abc"}), "INVALID_AMOUNT"),
        (json!({"amount": "0"}), "INVALID_AMOUNT"),
        (json!({"amount": 5}), "INVALID_AMOUNT"),
        (json!({"amount": "1.0000001"}), "INVALID_AMOUNT"),
        (json!({"other": 1}), "UNKNOWN_PARAMETER"),
    ] {
        app.post(&app.a, &path, Some(&body))
            .await
            .assert_error(400, code);
    }

    // No amount: what is still due. Sandbox blocks are 1 s, so 2 confirmations follow.
    let r = app.post(&app.a, &path, None).await;
    assert_eq!(r.body["status"], "AWAITING_CONFIRMATION", "{}", r.text);
    assert_eq!(r.body["payment"]["received"]["ui"], "10.0");
    let done = wait_status(&app, &id, "COMPLETED").await;
    assert_eq!(done["transfers"].as_array().unwrap().len(), 3);

    // Live keys cannot simulate; a sandbox hash never pays a live order either.
    let live = app
        .post(
            &app.a_live,
            &format!("/pay-orders/{id}/simulate-payment"),
            None,
        )
        .await;
    live.assert_error(403, "TEST_MODE_ONLY");
}

#[tokio::test]
async fn erc20_and_native_payments_are_detected_without_a_submitted_hash() {
    let app = spawn_app().await;
    let url = anvil_url();
    let (to_token, to_native) = (anvil::fresh_address(), anvil::fresh_address());
    let token_order = awaiting_payment(&app, Some(anvil::TOKEN), "3", to_token).await;
    let native_order = awaiting_payment(&app, None, "0.01", to_native).await;
    let token_tx = anvil::send_token(&url, to_token, tusd(3), None).await;
    let native_tx =
        anvil::send_native(&url, to_native, U256::from(10_000_000_000_000_000u64)).await;

    // The local host scans every 250 ms, as the EventBridge schedule does every minute.
    for (id, tx) in [(&token_order, token_tx), (&native_order, native_tx)] {
        let o = wait_status(&app, id, "AWAITING_CONFIRMATION").await;
        assert_eq!(o["transfers"][0]["tx_hash"], tx.to_string());
        assert_eq!(o["payment"]["source_tx_hash"], tx.to_string());
    }
    anvil::mine(&url, 1).await;
    wait_status(&app, &token_order, "COMPLETED").await;
    wait_status(&app, &native_order, "COMPLETED").await;
}

#[tokio::test]
async fn a_shared_deposit_address_is_matched_by_amount() {
    let app = spawn_app().await;
    let url = anvil_url();
    let shared = anvil::fresh_address();
    let five = awaiting_payment(&app, Some(anvil::TOKEN), "5", shared).await;
    let seven = awaiting_payment(&app, Some(anvil::TOKEN), "7", shared).await;
    // A transfer matching no amount due is left for the payer to submit; one that matches
    // exactly goes to its order.
    let odd = anvil::send_token(&url, shared, tusd(2), None).await;
    let tx = anvil::send_token(&url, shared, tusd(7), None).await;
    let o = wait_status(&app, &seven, "AWAITING_CONFIRMATION").await;
    assert_eq!(o["transfers"][0]["tx_hash"], tx.to_string());
    anvil::mine(&url, 1).await;
    wait_status(&app, &seven, "COMPLETED").await;
    let still = order(&app, &five).await;
    assert_eq!(still["status"], "AWAITING_PAYMENT");
    assert!(still["transfers"].as_array().unwrap().is_empty());
    let r = submit(&app, &five, odd).await;
    assert_eq!(r.body["status"], "PARTIAL_PAYMENT", "{}", r.text);
}

#[tokio::test]
async fn the_scan_starts_again_when_the_chain_is_behind_its_cursor() {
    // As after `make dev-chain` is restarted: the stored cursor is far past the new head.
    let app = spawn_app().await;
    let url = anvil_url();
    let chain = payorders::ChainId::new(31337).unwrap();
    eventually(async || {
        let c = app.store.scan_cursor(chain).await.unwrap()?;
        app.store
            .set_scan_cursor(chain, Some(c), c + 1_000_000)
            .await
            .ok()
    })
    .await;
    let recipient = anvil::fresh_address();
    let id = awaiting_payment(&app, Some(anvil::TOKEN), "1", recipient).await;
    let tx = anvil::send_token(&url, recipient, tusd(1), None).await;
    let o = wait_status(&app, &id, "AWAITING_CONFIRMATION").await;
    assert_eq!(o["transfers"][0]["tx_hash"], tx.to_string());
}

/// Exchange tracking after confirmation, against a router that answers a scripted list of
/// statuses (the ChangeNOW adapter itself is tested against its documented responses).
mod exchange {
    use crate::support::in_memory_queue;
    use payorders::chains::sandbox;
    use payorders::payments::{self, Progress, Settler};
    use payorders::routing::{Exchange, ExchangeStatus, Payout, RouteError, RouteQuote, Router};
    use payorders::store::Store;
    use payorders::*;
    use std::sync::{Arc, Mutex};

    struct Scripted(Mutex<Vec<ExchangeStatus>>);

    #[async_trait::async_trait]
    impl Router for Scripted {
        async fn estimate_reverse(
            &self,
            _: &registry::Currency,
            _: &registry::Currency,
            _: rust_decimal::Decimal,
        ) -> Result<RouteQuote, RouteError> {
            unreachable!("not used here")
        }
        async fn create_reverse(
            &self,
            _: &registry::Currency,
            _: &registry::Currency,
            _: &RouteQuote,
            _: &str,
            _: Option<&str>,
        ) -> Result<Exchange, RouteError> {
            unreachable!("not used here")
        }
        async fn status(&self, id: &str) -> Result<ExchangeStatus, RouteError> {
            assert_eq!(id, "ex_123");
            Ok(self.0.lock().unwrap().remove(0))
        }
    }

    /// A test-mode order routed through exchange `ex_123`, paid by a sandbox transfer mined
    /// an hour ago (long confirmed), waiting for its confirmation check.
    async fn paid_routed_order() -> (Settler, OrderId) {
        let store: Arc<dyn Store> =
            Arc::new(payorders::store::embedded::EmbeddedStore::in_memory().unwrap());
        let now = Timestamp::now();
        let o = payorders::testing::order(&OrgId::generate(), false, now);
        store
            .create_order(&NewOrder::new(o.clone()).unwrap())
            .await
            .unwrap();
        let u = o
            .transition(now, OrderStatus::AwaitingPayment, |o| {
                let mut p = payorders::testing::payment(
                    "8453:native",
                    1_000,
                    "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
                );
                p.exchange_id = Some("ex_123".into());
                p.created_at = Some(now.plus_seconds(-7200));
                o.payment = Some(p);
            })
            .unwrap();
        store.update_order(&u).await.unwrap();
        let (queue, _rx) = in_memory_queue().await;
        let settler = Settler {
            store,
            chains: Default::default(),
            confirmations: Arc::new(queue),
            check_delay_secs: 1,
            max_check_delay_secs: 1,
        };
        let hash = sandbox::new_transaction(
            ChainFamily::Evm,
            RawAmount::from_u128(1_000),
            now.plus_seconds(-3600),
        )
        .unwrap();
        let r = payments::record_payment(&settler, &o.id, &hash, now)
            .await
            .unwrap();
        assert_eq!(r.order.status, OrderStatus::AwaitingConfirmation);
        (settler, o.id)
    }

    async fn status(s: &Settler, id: &OrderId) -> OrderStatus {
        s.store.get_order(id).await.unwrap().unwrap().status
    }

    #[tokio::test]
    async fn a_confirmed_routed_payment_follows_its_exchange_to_the_end() {
        // The order's destination and what it is owed (1,000 wei on Base).
        let payout = |address: &str, wei: &str| {
            ExchangeStatus::Finished(Payout {
                address: address.into(),
                amount: format!("0.000000000000{wei}").parse().unwrap(),
            })
        };
        let to = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";
        for (end, want) in [
            (payout(to, "001"), OrderStatus::Completed),
            (payout(&to.to_lowercase(), "002"), OrderStatus::Completed),
            // Finished, says the exchange, but not with what the order was owed: a payout
            // short of it, or sent elsewhere, fails the order instead of completing it.
            (payout(to, "000999"), OrderStatus::Failed),
            (
                payout("0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359", "001"),
                OrderStatus::Failed,
            ),
            (ExchangeStatus::Refunded, OrderStatus::Refunded),
            (ExchangeStatus::Failed, OrderStatus::Failed),
        ] {
            let (s, id) = paid_routed_order().await;
            let router = Scripted(Mutex::new(vec![
                ExchangeStatus::AwaitingDeposit,
                ExchangeStatus::InProgress,
                end,
            ]));
            let now = Timestamp::now();
            // Confirmed: the exchange now carries the payment on.
            assert_eq!(
                payments::advance(&s, Some(&router), &id, None, now)
                    .await
                    .unwrap(),
                Progress::Waiting
            );
            assert_eq!(status(&s, &id).await, OrderStatus::ExecutingOrder);
            for _ in 0..2 {
                assert_eq!(
                    payments::advance(&s, Some(&router), &id, None, now)
                        .await
                        .unwrap(),
                    Progress::Waiting
                );
                assert_eq!(status(&s, &id).await, OrderStatus::ExecutingOrder);
            }
            assert_eq!(
                payments::advance(&s, Some(&router), &id, None, now)
                    .await
                    .unwrap(),
                Progress::Settled
            );
            assert_eq!(status(&s, &id).await, want);
            // A redelivered check leaves the settled order alone (the router is not asked).
            assert_eq!(
                payments::advance(&s, Some(&router), &id, None, now)
                    .await
                    .unwrap(),
                Progress::Settled
            );
        }
    }
}

#[tokio::test]
async fn the_pipeline_on_dynamodb() {
    // The same steps against moto's DynamoDB: the claim, the deposits index and the cursor.
    let app = spawn_app_on(Backend::Dynamo).await;
    let url = anvil_url();
    let recipient = anvil::fresh_address();
    let scanned = awaiting_payment(&app, Some(anvil::TOKEN), "2", recipient).await;
    let tx = anvil::send_token(&url, recipient, tusd(2), None).await;
    let o = wait_status(&app, &scanned, "AWAITING_CONFIRMATION").await;
    assert_eq!(o["transfers"][0]["tx_hash"], tx.to_string());
    let other = awaiting_payment(&app, Some(anvil::TOKEN), "2", recipient).await;
    submit(&app, &other, tx)
        .await
        .assert_error(422, "TX_ALREADY_USED");
    anvil::mine(&url, 1).await;
    wait_status(&app, &scanned, "COMPLETED").await;

    let simulated = awaiting_payment(&app, Some(anvil::TOKEN), "1", anvil::fresh_address()).await;
    let r = app
        .post(
            &app.a,
            &format!("/pay-orders/{simulated}/simulate-payment"),
            None,
        )
        .await;
    assert_eq!(r.body["status"], "AWAITING_CONFIRMATION", "{}", r.text);
    wait_status(&app, &simulated, "COMPLETED").await;
}

#[tokio::test]
async fn expired_orders_take_late_payments_visibly_and_never_complete() {
    let app = spawn_app().await;
    let id = awaiting_payment(&app, Some(anvil::TOKEN), "10", anvil::fresh_address()).await;
    let path = format!("/pay-orders/{id}/simulate-payment");
    let r = app.post(&app.a, &path, Some(&json!({"amount": "4"}))).await;
    assert_eq!(r.body["status"], "PARTIAL_PAYMENT", "{}", r.text);

    // Its time runs out (moved into the past here, as waiting would take minutes): the
    // upkeep expires it, and what it received stays on it.
    let oid = payorders::OrderId::parse(&id).unwrap();
    let o = app.store.get_order(&oid).await.unwrap().unwrap();
    let past = payorders::Timestamp::now().plus_seconds(-1);
    let u = o.edit(past, |o| o.expires_at = past).unwrap();
    app.store.update_order(&u).await.unwrap();
    let expired = wait_status(&app, &id, "EXPIRED").await;
    assert_eq!(expired["payment"]["received"]["ui"], "4.0", "{expired}");
    assert_eq!(expired["payment"]["remaining"]["ui"], "6.0", "{expired}");
    assert_eq!(
        event_types(&app, &id).await.last().map(String::as_str),
        Some("order.expired")
    );

    // A payment arriving inside the monitoring window is verified and recorded as late;
    // the order stays EXPIRED (its price lock is over) and never completes.
    let late = app.post(&app.a, &path, None).await;
    assert_eq!(late.status, 200, "{}", late.text);
    assert_eq!(late.body["status"], "EXPIRED");
    assert_eq!(late.body["paid_late"], true);
    assert_eq!(late.body["payment"]["received"]["ui"], "10.0");
    assert_eq!(
        event_types(&app, &id).await.last().map(String::as_str),
        Some("order.payment_late")
    );
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(order(&app, &id).await["status"], "EXPIRED");
}

#[tokio::test]
async fn transactions_list_and_find_verified_transfers() {
    let (app, url, recipient, id) = order_on_anvil(Some(anvil::TOKEN), "10").await;
    let first = anvil::send_token(&url, recipient, tusd(4), None).await;
    assert_eq!(submit(&app, &id, first).await.status, 200);
    let second = anvil::send_token(&url, recipient, tusd(6), None).await;
    assert_eq!(submit(&app, &id, second).await.status, 200);
    anvil::mine(&url, 2).await;
    wait_status(&app, &id, "COMPLETED").await;
    // Another order of the same organization, with nothing paid: no transactions.
    app.create_deposit(&app.a, &json!({})).await;

    let list = app.get(&app.a, "/transactions").await;
    assert_eq!(list.status, 200, "{}", list.text);
    let data = list.body["data"].as_array().unwrap();
    assert_eq!(data.len(), 2, "{}", list.text);
    // Newest first, with what the chain said.
    assert_eq!(data[0]["tx_hash"], second.to_string());
    assert_eq!(data[1]["tx_hash"], first.to_string());
    let t = &data[1];
    assert_eq!(t["object"], "transaction");
    assert_eq!(t["direction"], "payment");
    assert_eq!(t["order_id"], id.as_str());
    assert_eq!(t["status"], "confirmed");
    assert_eq!(t["amount"]["ui"], "4.0");
    assert_eq!(
        t["to"].as_str().unwrap().to_lowercase(),
        recipient.to_string().to_lowercase()
    );
    assert!(t["from"].as_str().is_some_and(|f| f.starts_with("0x")));
    assert!(t["block_number"].as_u64().unwrap() > 0);
    assert!(t["confirmations"].as_u64().unwrap() >= 1);

    // One transaction by chain and hash; the same hash is unknown to another organization.
    let chain = t["chain_id"].as_u64().unwrap();
    let one = app
        .get(&app.a, &format!("/transactions/{chain}/{first}"))
        .await;
    assert_eq!(one.status, 200, "{}", one.text);
    assert_eq!(&one.body, t);
    app.get(&app.b, &format!("/transactions/{chain}/{first}"))
        .await
        .assert_error(404, "RESOURCE_NOT_FOUND");
    app.get(&app.a_live, &format!("/transactions/{chain}/{first}"))
        .await
        .assert_error(404, "RESOURCE_NOT_FOUND");
    app.get(&app.a, &format!("/transactions/{chain}/0xnothex"))
        .await
        .assert_error(404, "RESOURCE_NOT_FOUND");
    assert!(
        app.get(&app.b, "/transactions").await.body["data"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // Filters and pages.
    let of = |q: &str| {
        let app = &app;
        let q = q.to_owned();
        async move {
            let r = app.get(&app.a, &format!("/transactions?{q}")).await;
            assert_eq!(r.status, 200, "{q}: {}", r.text);
            r.body
        }
    };
    assert_eq!(of("direction=refund").await["data"], json!([]));
    assert_eq!(of("status=reorged").await["data"], json!([]));
    assert_eq!(
        of(&format!("chain_id={chain}")).await["data"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(of("chain_id=8453").await["data"], json!([]));
    // A currency in any case of its token address (as the registry spells it or not).
    for token in [anvil::TOKEN.to_owned(), anvil::TOKEN.to_lowercase()] {
        let q = format!("currency={chain}:{token}");
        assert_eq!(of(&q).await["data"].as_array().unwrap().len(), 2, "{q}");
    }
    assert_eq!(
        of(&format!("order_id={id}")).await["data"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let page = of("limit=1").await;
    assert_eq!(
        page["data"].as_array().unwrap().len(),
        2,
        "a page ends at an order's edge"
    );
    assert_eq!(page["has_more"], false);
    for (q, param) in [
        ("direction=sideways", "direction"),
        ("status=lost", "status"),
        ("limit=0", "limit"),
        ("order_id=nope", "order_id"),
        ("cursor=%%%", "cursor"),
        ("currency=foo", "currency"),
        (
            "currency=8453:0x0000000000000000000000000000000000000001",
            "currency",
        ),
        ("chain_id=abc", "chain_id"),
    ] {
        let r = app.get(&app.a, &format!("/transactions?{q}")).await;
        assert_eq!(
            (r.status, r.body["error"]["param"].as_str()),
            (400, Some(param)),
            "{q}: {}",
            r.text
        );
    }
}
