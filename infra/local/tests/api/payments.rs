//! Payment details through the local host (direct route): the order moves to
//! AWAITING_PAYMENT with its locked amounts and deposit address; failures change nothing.

use crate::support::*;
use serde_json::{Value, json};

const XPUB: &str = "xpub661MyMwAqRbcFW31YEwpkMuc5THy2PSt5bDMsktWQcFF8syAmRUapSCGu8ED9W6oDMSgv6Zz8idoc4a6mr8BDzTJY47LJhkJ8UB7WEGuduB";

fn source(chain: u64, address: Option<&str>) -> Value {
    json!({"source_currency": {"chain_id": chain, "address": address}})
}

async fn details(app: &TestApp, id: &str, body: &Value) -> Resp {
    app.post(
        &app.a,
        &format!("/pay-orders/{id}/payment-details"),
        Some(body),
    )
    .await
}

async fn status(app: &TestApp, id: &str) -> Value {
    app.get(&app.a, &format!("/pay-orders/{id}")).await.body["status"].clone()
}

#[tokio::test]
async fn deposit_pays_its_recipient_directly() {
    let app = spawn_app().await;
    let o = app.create_deposit(&app.a, &json!({})).await;
    let id = o.body["id"].as_str().unwrap();
    // Another currency needs an exchange route: refused, order unchanged.
    let wrong = details(&app, id, &source(84532, None)).await;
    wrong.assert_error(422, "ROUTE_UNAVAILABLE");
    assert_eq!(status(&app, id).await, "PENDING");

    let mut body = source(84532, Some(BASE_SEPOLIA_USDC));
    body["refund_address"] = json!(RECIPIENT.to_lowercase());
    let before = payorders::Timestamp::now();
    let r = details(&app, id, &body).await;
    let after = payorders::Timestamp::now();
    assert_eq!(r.status, 200, "{}", r.text);
    // When the details were chosen is recorded: transfers mined before then pay nothing,
    // and without it that line would fall back to the order's creation.
    let chosen = r.body["payment"]["created_at"].as_str().unwrap_or_default();
    let chosen = payorders::Timestamp::parse(chosen)
        .unwrap_or_else(|_| panic!("payment.created_at: {}", r.text));
    assert!(
        before <= chosen && chosen <= after,
        "{chosen} {before} {after}"
    );
    let created = payorders::Timestamp::parse(o.body["created_at"].as_str().unwrap()).unwrap();
    assert!(chosen > created, "{chosen} {created}");
    let stored = app
        .store
        .get_order(&id.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.payable_since(), chosen);
    assert_eq!(r.body["status"], "AWAITING_PAYMENT");
    let p = &r.body["payment"];
    assert_eq!(p["route"], "direct");
    assert_eq!(
        p["input"]["amount"],
        json!({"raw": "25500000", "ui": "25.5"})
    );
    assert_eq!(p["input"]["breakdown"]["total"]["raw"], "25500000");
    assert_eq!(p["input"]["breakdown"]["fees"]["total_fee"]["raw"], "0");
    assert_eq!(p["output"]["currency"]["symbol"], "USDC");
    assert_eq!(
        p["steps"],
        json!([{"kind": "deposit", "rail": "CRYPTO", "deposit_address": RECIPIENT}])
    );
    assert_eq!(p["refund"]["address"], RECIPIENT);
    assert_eq!(p["expires_at"], o.body["expires_at"]);
    // Once only.
    details(&app, id, &body)
        .await
        .assert_error(422, "ORDER_NOT_PENDING");
    let events = app.get(&app.a, "/events?type=order.awaiting_payment").await;
    assert_eq!(
        events.body["data"][0]["data"]["object"]["payment"]["route"],
        "direct"
    );
}

#[tokio::test]
async fn fiat_sale_converts_at_the_locked_price() {
    let app = spawn_app().await;
    let sale = app
        .signed_post(&app.a, "/pay-orders", &sale_body(), &[])
        .await;
    let id = sale.body["id"].as_str().unwrap().to_owned();
    // ETH on Base Sepolia (a test wallet currency) at the fixed 3000 USD: 49.99 / 3000, rounded up.
    let r = details(&app, &id, &source(84532, None)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["fulfillment"]["amount"]["raw"], "16663333333333334");
    assert_eq!(r.body["fulfillment"]["rate_usd"], "3000");
    assert_eq!(r.body["fulfillment"]["fiat_amount"], "49.99");
    assert_eq!(
        r.body["payment"]["input"]["amount"]["value_usd"],
        json!(49.99)
    );
    assert_eq!(
        r.body["payment"]["steps"][0]["deposit_address"],
        payorders_local::setup::DEMO_RECEIVING_ADDRESS
    );
    // A currency no wallet accepts would need a route.
    let other = app
        .signed_post(
            &app.a,
            "/pay-orders",
            &json!({"mode": "SALE", "amount": "5", "fiat_unit": "USD", "nonce": "n2"}),
            &[],
        )
        .await;
    let oid = other.body["id"].as_str().unwrap();
    details(&app, oid, &source(11155111, None))
        .await
        .assert_error(422, "ROUTE_UNAVAILABLE");
    assert_eq!(status(&app, oid).await, "PENDING");
}

#[tokio::test]
async fn a_fiat_sale_in_a_named_currency_receives_that_currency() {
    let app = spawn_app().await;
    // Seed 002's example: priced in USD, received in a named currency (here ETH on Base
    // Sepolia, which a demo wallet takes).
    let sale = app
        .signed_post(
            &app.a,
            "/pay-orders",
            &json!({"mode": "SALE", "amount": "49.99", "fiat_unit": "USD", "currency": {"chain_id": 84532, "address": null}}),
            &[],
        )
        .await;
    assert_eq!(sale.status, 201, "{}", sale.text);
    assert_eq!(sale.body["fulfillment"]["asset"]["id"], "84532:native");
    assert_eq!(sale.body["fulfillment"]["fiat_amount"], "49.99");
    assert!(sale.body["fulfillment"]["amount"].is_null());
    let id = sale.body["id"].as_str().unwrap().to_owned();
    // Paying in another currency would need an exchange into ETH: refused, nothing changes.
    details(&app, &id, &source(84532, Some(BASE_SEPOLIA_USDC)))
        .await
        .assert_error(422, "ROUTE_UNAVAILABLE");
    assert_eq!(status(&app, &id).await, "PENDING");
    // Paying in ETH: 49.99 USD at the fixed 3000 USD/ETH, rounded up, to the wallet.
    let r = details(&app, &id, &source(84532, None)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["status"], "AWAITING_PAYMENT");
    assert_eq!(r.body["fulfillment"]["amount"]["raw"], "16663333333333334");
    assert_eq!(r.body["fulfillment"]["rate_usd"], "3000");
    assert_eq!(
        r.body["payment"]["output"]["currency"]["id"],
        "84532:native"
    );
    assert_eq!(
        r.body["payment"]["input"]["amount"]["value_usd"],
        json!(49.99)
    );
    assert_eq!(
        r.body["payment"]["steps"][0]["deposit_address"],
        payorders_local::setup::DEMO_RECEIVING_ADDRESS
    );
    // With an explicit recipient it pays the recipient, wallet or not (Sepolia has none).
    let sale = app
        .signed_post(
            &app.a,
            "/pay-orders",
            &json!({"mode": "SALE", "amount": "10", "fiat_unit": "USD", "currency": {"chain_id": 11155111, "address": SEPOLIA_USDC}, "recipient": RECIPIENT}),
            &[],
        )
        .await;
    assert_eq!(sale.status, 201, "{}", sale.text);
    let id = sale.body["id"].as_str().unwrap().to_owned();
    let r = details(&app, &id, &source(11155111, Some(SEPOLIA_USDC))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["fulfillment"]["amount"]["raw"], "10000000");
    assert_eq!(r.body["payment"]["recipient"], RECIPIENT);
}

/// The test organization's Sepolia wallet, an xpub taking USDC.
async fn sepolia_xpub_wallet(app: &TestApp) {
    let w = app
        .signed_call(
            &app.a,
            "POST",
            "/merchant-wallets",
            Some(&json!({"chain_id": 11155111, "xpub": XPUB, "currencies": [SEPOLIA_USDC]})),
        )
        .await;
    assert_eq!(w.status, 201, "{}", w.text);
}

/// The id of a new test SALE made with `nonce`.
async fn sale_id(app: &TestApp, nonce: &str) -> String {
    let mut body = sale_body();
    body["nonce"] = json!(nonce);
    let sale = app.signed_post(&app.a, "/pay-orders", &body, &[]).await;
    assert_eq!(sale.status, 201, "{}", sale.text);
    sale.body["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn xpub_wallets_give_each_order_its_own_address() {
    let app = spawn_app().await;
    sepolia_xpub_wallet(&app).await;
    let key = payorders::wallets::parse_xpub(XPUB).unwrap();
    let mut seen = Vec::new();
    for i in 0..3u32 {
        let id = sale_id(&app, &format!("x{i}")).await;
        let r = details(&app, &id, &source(11155111, Some(SEPOLIA_USDC))).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let addr = r.body["payment"]["steps"][0]["deposit_address"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(
            addr,
            payorders::wallets::derive_evm_address(&key, i)
                .unwrap()
                .to_string()
        );
        assert_eq!(r.body["payment"]["derivation_index"], i);
        assert_eq!(r.body["fulfillment"]["amount"]["raw"], "49990000");
        seen.push(addr);
    }
    seen.dedup();
    assert_eq!(seen.len(), 3);
    let wallet = app.get(&app.a, "/merchant-wallets/11155111").await;
    assert_eq!(wallet.body["addresses_derived"], 3);
}

/// Choices of a currency made at once for one order (a double click, or anyone holding the
/// link sending a burst) hand out one xpub address: the others are refused before taking
/// one, so the xpub's addresses keep no gaps that wallet software stops scanning at.
#[tokio::test]
async fn a_burst_of_choices_for_one_order_takes_one_address() {
    let app = spawn_app().await;
    sepolia_xpub_wallet(&app).await;
    let ids = [sale_id(&app, "burst0").await, sale_id(&app, "burst1").await];
    let choice = source(11155111, Some(SEPOLIA_USDC));
    let answers = futures::future::join_all((0..12).map(|_| details(&app, &ids[0], &choice))).await;
    let mut chosen = 0;
    for r in &answers {
        match r.status {
            200 => chosen += 1,
            409 => r.assert_error(409, "CONCURRENT_UPDATE"),
            // Asked after the winner wrote the order.
            _ => r.assert_error(422, "ORDER_NOT_PENDING"),
        }
    }
    assert_eq!(chosen, 1);
    let wallet = app.get(&app.a, "/merchant-wallets/11155111").await;
    assert_eq!(wallet.body["addresses_derived"], 1);
    // The next order gets the next index: none was used up by the burst.
    let r = details(&app, &ids[1], &choice).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["payment"]["derivation_index"], 1);
}

#[tokio::test]
async fn failures_change_nothing() {
    let app = spawn_app().await;
    let o = app.create_deposit(&app.a, &json!({})).await;
    let id = o.body["id"].as_str().unwrap();
    for (body, status, code) in [
        (json!({}), 400, "MISSING_CURRENCY"),
        (json!({"source_currency": "USDC"}), 400, "INVALID_CURRENCY"),
        (
            json!({"source_currency": {"chain_id": 999999}}),
            422,
            "INVALID_BLOCKCHAIN",
        ),
        (
            json!({"source_currency": {"chain_id": 84532, "address": "0x0000000000000000000000000000000000000001"}}),
            422,
            "UNSUPPORTED_CURRENCY",
        ),
        (
            json!({"source_currency": {"chain_id": 84532, "address": BASE_SEPOLIA_USDC}, "refund_address": "nope"}),
            400,
            "INVALID_ADDRESS",
        ),
        (
            json!({"source_currency": {"chain_id": 84532, "address": BASE_SEPOLIA_USDC}, "tip": 1}),
            400,
            "UNKNOWN_PARAMETER",
        ),
    ] {
        let r = details(&app, id, &body).await;
        assert_eq!(
            (r.status, r.body["error"]["code"].as_str()),
            (status, Some(code)),
            "{body}: {}",
            r.text
        );
    }
    // Another organization's order is a 404; a cancelled one is not PENDING.
    app.post(
        &app.b,
        &format!("/pay-orders/{id}/payment-details"),
        Some(&source(84532, Some(BASE_SEPOLIA_USDC))),
    )
    .await
    .assert_error(404, "RESOURCE_NOT_FOUND");
    app.post(&app.a, &format!("/pay-orders/{id}/cancel"), None)
        .await;
    details(&app, id, &source(84532, Some(BASE_SEPOLIA_USDC)))
        .await
        .assert_error(422, "ORDER_NOT_PENDING");
}

#[tokio::test]
async fn a_missing_price_is_a_502_and_changes_nothing() {
    // Prices for USDC only: ETH has none.
    let prices = payorders::pricing::fixed::FixedPrices::parse("usd-coin=1").unwrap();
    let app = spawn_app_with(Backend::Embedded, prices).await;
    let sale = app
        .signed_post(&app.a, "/pay-orders", &sale_body(), &[])
        .await;
    let id = sale.body["id"].as_str().unwrap().to_owned();
    let r = details(&app, &id, &source(84532, None)).await;
    r.assert_error(502, "PRICE_UNAVAILABLE");
    assert_eq!(r.body["error"]["type"], "provider_error");
    assert_eq!(status(&app, &id).await, "PENDING");
    // The priced currency works on the same order afterwards.
    let ok = details(&app, &id, &source(84532, Some(BASE_SEPOLIA_USDC))).await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert_eq!(ok.body["fulfillment"]["amount"]["raw"], "49990000");
}

mod routed {
    use super::*;
    use payorders::pricing::fixed::FixedPrices;
    use payorders::routing::changenow::ChangeNow;
    use std::sync::Arc;
    use wiremock::matchers::{body_partial_json, method, path, query_param};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    const PAYIN: &str = "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB";

    async fn app_with_changenow(server: &MockServer) -> TestApp {
        let router = Arc::new(ChangeNow::new(
            &server.uri(),
            "cn-key",
            std::time::Duration::from_secs(2),
        ));
        spawn_app_full(Backend::Embedded, FixedPrices::dev_default(), Some(router)).await
    }

    async fn mock_estimate(server: &MockServer, to_amount: &str, response: ResponseTemplate) {
        Mock::given(method("GET"))
            .and(path("/exchange/estimated-amount"))
            .and(query_param("toAmount", to_amount))
            .and(query_param("type", "reverse"))
            .respond_with(response)
            .mount(server)
            .await;
    }

    /// A live DEPOSIT of USDC on Base (an exchange routes to it from Ethereum's ETH).
    async fn live_deposit(app: &TestApp) -> String {
        let o = app
            .create_deposit(
                &app.a_live,
                &json!({"currency": "USDC", "blockchain": "base"}),
            )
            .await;
        o.body["id"].as_str().unwrap().to_owned()
    }

    /// The order is as created: PENDING, no payment, nothing written.
    async fn assert_untouched(app: &TestApp, id: &str, case: &str) {
        let now = app
            .get(&app.a_live, &format!("/pay-orders/{id}"))
            .await
            .body;
        assert_eq!(now["status"], "PENDING", "{case}");
        assert!(now["payment"].is_null(), "{case}");
        assert_eq!(now["version"], 1, "{case}: nothing was written");
    }

    /// Payment details asked with the live key: exchanges route between mainnets.
    async fn live_details(app: &TestApp, id: &str, body: &Value) -> Resp {
        app.post(
            &app.a_live,
            &format!("/pay-orders/{id}/payment-details"),
            Some(body),
        )
        .await
    }

    /// ChangeNOW's answer to opening exchange `id`.
    fn exchange(id: &str, payin: &str, from: &str, to: &str) -> String {
        format!(r#"{{"id":"{id}","payinAddress":"{payin}","fromAmount":{from},"toAmount":{to}}}"#)
    }

    /// The provider opens one exchange, answering `answer`.
    async fn mock_exchange(server: &MockServer, answer: &str) {
        Mock::given(method("POST"))
            .and(path("/exchange"))
            .respond_with(ok_json(answer))
            .expect(1)
            .mount(server)
            .await;
    }

    /// The provider estimates `from` for `to` under rate `rate_id` and opens exchange `id`
    /// at that, paid in at [`PAYIN`].
    async fn mock_route(server: &MockServer, rate_id: &str, id: &str, from: &str, to: &str) {
        let estimate = format!(r#"{{"fromAmount":{from},"toAmount":{to},"rateId":"{rate_id}"}}"#);
        mock_estimate(server, to, ok_json(&estimate)).await;
        mock_exchange(server, &exchange(id, PAYIN, from, to)).await;
    }

    /// A live wallet on Base taking USDC (`to`: its `address` or `xpub`), and a live fiat
    /// SALE it settles: the SALE's id.
    async fn live_sale_into(app: &TestApp, to: Value) -> String {
        let mut wallet = json!({"chain_id": 8453, "currencies": [BASE_USDC]});
        for (k, v) in to.as_object().unwrap() {
            wallet[k] = v.clone();
        }
        let w = app
            .signed_call(&app.a_live, "POST", "/merchant-wallets", Some(&wallet))
            .await;
        assert_eq!(w.status, 201, "{}", w.text);
        let sale = app
            .signed_post(&app.a_live, "/pay-orders", &sale_body(), &[])
            .await;
        assert_eq!(sale.status, 201, "{}", sale.text);
        sale.body["id"].as_str().unwrap().to_owned()
    }

    fn ok_json(body: &str) -> ResponseTemplate {
        ResponseTemplate::new(200).set_body_raw(body.to_owned(), "application/json")
    }

    #[tokio::test]
    async fn deposit_routed_through_changenow() {
        let server = MockServer::start().await;
        mock_estimate(&server, "25.5", ok_json(r#"{"fromAmount":0.0087654321,"toAmount":25.5,"rateId":"r1","validUntil":"2099-11-21T16:00:00Z"}"#)).await;
        Mock::given(method("POST"))
            .and(path("/exchange"))
            .and(body_partial_json(json!({"address": RECIPIENT, "rateId": "r1", "toAmount": "25.5", "refundAddress": RECIPIENT})))
            .respond_with(ok_json(&format!(r#"{{"id":"cn-1","payinAddress":"{PAYIN}","fromAmount":0.0087654321,"toAmount":25.5}}"#)))
            .expect(1)
            .mount(&server)
            .await;
        let app = app_with_changenow(&server).await;
        let id = &live_deposit(&app).await;
        let mut body = source(1, None);
        body["refund_address"] = json!(RECIPIENT);
        let r = live_details(&app, id, &body).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let p = &r.body["payment"];
        assert_eq!(p["route"], "changenow");
        assert_eq!(p["exchange_id"], "cn-1");
        assert_eq!(p["input"]["currency"]["id"], "1:native");
        assert_eq!(p["input"]["amount"]["raw"], "8765432100000000");
        assert_eq!(
            p["output"]["amount"],
            json!({"raw": "25500000", "ui": "25.5"})
        );
        assert_eq!(p["steps"][0]["deposit_address"], PAYIN);
        assert_eq!(p["recipient"], RECIPIENT);
        assert_eq!(
            r.body["fulfillment"]["asset"]["id"],
            "8453:0x833589fcd6edb6e08f4c7c32d4f71b54bda02913"
        );
    }

    /// What the provider answers is checked against the order before a payer is shown
    /// anything: an estimate or an exchange paying out less than the order's amount, or a
    /// pay-in address that is no address of the payer's chain, is refused (502) and the
    /// order stays PENDING. The amount to send and its deadline are the exchange's own.
    #[tokio::test]
    async fn provider_answers_are_checked_before_the_payer_sees_them() {
        let estimate_ok = r#"{"fromAmount":0.0087654321,"toAmount":25.5,"rateId":"r1"}"#;
        let opened = |to: &str, payin: &str| exchange("cn-1", payin, "0.0087654321", to);
        for (case, estimate, created) in [
            (
                "estimate short",
                r#"{"fromAmount":0.007,"toAmount":20,"rateId":"r1"}"#,
                None,
            ),
            (
                "no rate id",
                r#"{"fromAmount":0.0087654321,"toAmount":25.5}"#,
                None,
            ),
            (
                "rate already lapsed",
                r#"{"fromAmount":0.0087654321,"toAmount":25.5,"rateId":"r1","validUntil":"2026-01-01T00:00:00Z"}"#,
                None,
            ),
            ("exchange short", estimate_ok, Some(opened("25.4", PAYIN))),
            (
                "payin of another chain",
                estimate_ok,
                Some(opened("25.5", "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq")),
            ),
            (
                "payin empty of meaning",
                estimate_ok,
                Some(opened("25.5", "0x1234")),
            ),
        ] {
            let server = MockServer::start().await;
            mock_estimate(&server, "25.5", ok_json(estimate)).await;
            Mock::given(method("POST"))
                .and(path("/exchange"))
                .respond_with(ok_json(created.as_deref().unwrap_or("{}")))
                .expect(u64::from(created.is_some()))
                .mount(&server)
                .await;
            let app = app_with_changenow(&server).await;
            let id = &live_deposit(&app).await;
            live_details(&app, id, &source(1, None))
                .await
                .assert_error(502, "EXCHANGE_UNAVAILABLE");
            assert_untouched(&app, id, case).await;
        }

        // The exchange asks for more than the estimate did, with its pay-in address in
        // lower case and a rate held for 10 minutes: the payer is shown the exchange's
        // amount, the address checksummed, and the rate's deadline.
        let server = MockServer::start().await;
        let until = payorders::model::Timestamp::now()
            .plus_seconds(600)
            .to_string();
        mock_estimate(
            &server,
            "25.5",
            ok_json(&format!(
                r#"{{"fromAmount":0.0087654321,"toAmount":25.5,"rateId":"r1","validUntil":"{until}"}}"#
            )),
        )
        .await;
        mock_exchange(
            &server,
            &exchange("cn-9", &PAYIN.to_lowercase(), "0.0095", "25.5"),
        )
        .await;
        let app = app_with_changenow(&server).await;
        let id = &live_deposit(&app).await;
        let r = live_details(&app, id, &source(1, None)).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let p = &r.body["payment"];
        assert_eq!(p["input"]["amount"]["raw"], "9500000000000000");
        assert_eq!(p["steps"][0]["deposit_address"], PAYIN);
        assert_eq!(p["expires_at"], until.as_str());
        assert!(
            r.body["expires_at"].as_str().unwrap() > until.as_str(),
            "the order's own expiry is left as it was"
        );
        // The checkout page counts down to the rate's deadline.
        let page = app
            .get(&app.a_live, &format!("/public/pay-orders/{id}"))
            .await;
        let left = page.body["time_remaining"].as_i64().unwrap();
        assert!((590..=600).contains(&left), "{left}");
    }

    /// A choice the provider failed gives the order back at once: the payer's retry is
    /// not told another request holds it.
    #[tokio::test]
    async fn a_failed_choice_can_be_tried_again_at_once() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/exchange/estimated-amount"))
            .respond_with(ResponseTemplate::new(503))
            .up_to_n_times(1)
            .mount(&server)
            .await;
        mock_route(&server, "r1", "cn-1", "0.0087654321", "25.5").await;
        let app = app_with_changenow(&server).await;
        let id = &live_deposit(&app).await;
        live_details(&app, id, &source(1, None))
            .await
            .assert_error(502, "EXCHANGE_UNAVAILABLE");
        let r = live_details(&app, id, &source(1, None)).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.body["payment"]["exchange_id"], "cn-1");
    }

    /// An exchange that could not be opened gives back the xpub address taken for it (shown
    /// to no one): a payer retrying, or anyone with the link, used one up per failed try,
    /// and wallet software stops scanning after a run of unused addresses.
    #[tokio::test]
    async fn a_failed_exchange_does_not_use_up_an_xpub_address() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/exchange"))
            .respond_with(ResponseTemplate::new(500))
            .up_to_n_times(1)
            .mount(&server)
            .await;
        mock_route(&server, "r2", "cn-2", "0.0171", "49.99").await;
        let app = app_with_changenow(&server).await;
        let id = live_sale_into(&app, json!({"xpub": XPUB})).await;
        live_details(&app, &id, &source(1, None))
            .await
            .assert_error(502, "EXCHANGE_UNAVAILABLE");
        let wallet = app.get(&app.a_live, "/merchant-wallets/8453").await;
        assert_eq!(wallet.body["addresses_derived"], 0, "{}", wallet.text);
        let r = live_details(&app, &id, &source(1, None)).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.body["payment"]["derivation_index"], 0);
        let key = payorders::wallets::parse_xpub(XPUB).unwrap();
        assert_eq!(
            r.body["payment"]["recipient"],
            payorders::wallets::derive_evm_address(&key, 0)
                .unwrap()
                .to_string()
        );
        let wallet = app.get(&app.a_live, "/merchant-wallets/8453").await;
        assert_eq!(wallet.body["addresses_derived"], 1);
    }

    #[tokio::test]
    async fn fiat_sale_routes_into_a_reachable_settlement_currency() {
        let server = MockServer::start().await;
        mock_route(&server, "r2", "cn-2", "0.0171", "49.99").await;
        let app = app_with_changenow(&server).await;
        // Test networks have no exchange: the demo test wallets are not reachable.
        let sale = app
            .signed_post(&app.a, "/pay-orders", &sale_body(), &[])
            .await;
        let id = sale.body["id"].as_str().unwrap().to_owned();
        details(&app, &id, &source(11155111, None))
            .await
            .assert_error(422, "ROUTE_UNAVAILABLE");
        // Live mode: a wallet on Base taking USDC is reachable from Ethereum's ETH.
        let id = live_sale_into(&app, json!({"address": RECIPIENT})).await;
        let r = live_details(&app, &id, &source(1, None)).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(
            r.body["fulfillment"]["amount"]["raw"], "49990000",
            "49.99 USD at 1 USD/USDC"
        );
        assert_eq!(r.body["fulfillment"]["rate_usd"], "1");
        assert_eq!(
            r.body["payment"]["input"]["amount"]["raw"],
            "17100000000000000"
        );
        assert_eq!(r.body["payment"]["steps"][0]["deposit_address"], PAYIN);
    }

    #[tokio::test]
    async fn provider_failures_change_nothing() {
        for (estimate, create, status, code) in [
            (
                ResponseTemplate::new(500),
                None,
                502,
                "EXCHANGE_UNAVAILABLE",
            ),
            (
                ResponseTemplate::new(429),
                None,
                502,
                "EXCHANGE_UNAVAILABLE",
            ),
            (
                ResponseTemplate::new(400).set_body_raw(
                    r#"{"error":"out_of_range","message":"Amount is less than minimal"}"#,
                    "application/json",
                ),
                None,
                422,
                "EXCHANGE_OUT_OF_RANGE",
            ),
            (
                ResponseTemplate::new(400).set_body_raw(
                    r#"{"error":"pair_is_inactive","message":"Pair is inactive"}"#,
                    "application/json",
                ),
                None,
                422,
                "ROUTE_UNAVAILABLE",
            ),
            (
                ResponseTemplate::new(200).set_body_raw(
                    r#"{"fromAmount":0.01,"toAmount":25.5,"rateId":"r"}"#,
                    "application/json",
                ),
                Some(ResponseTemplate::new(400).set_body_raw(
                    r#"{"error":"not_valid_params","message":"address is invalid"}"#,
                    "application/json",
                )),
                502,
                "EXCHANGE_UNAVAILABLE",
            ),
            (
                ResponseTemplate::new(200).set_body_raw("{broken", "application/json"),
                None,
                502,
                "EXCHANGE_UNAVAILABLE",
            ),
        ] {
            let server = MockServer::start().await;
            Mock::given(method("GET"))
                .and(path("/exchange/estimated-amount"))
                .respond_with(estimate)
                .mount(&server)
                .await;
            if let Some(c) = create {
                Mock::given(method("POST"))
                    .and(path("/exchange"))
                    .respond_with(c)
                    .mount(&server)
                    .await;
            }
            let app = app_with_changenow(&server).await;
            let id = &live_deposit(&app).await;
            let r = live_details(&app, id, &source(1, None)).await;
            r.assert_error(status, code);
            assert_untouched(&app, id, code).await;
        }
    }
}
