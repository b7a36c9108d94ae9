//! Quotes from real balances on the anvil `make test` starts (chain 31337, the test token
//! deployed from its committed artifact), through the local host.

use crate::support::*;
use alloy::primitives::{Address, U256};
use payorders::testing::anvil;
use serde_json::{Value, json};

const TUSD: &str = "31337:0x5fbdb2315678afecb367f032d93f642f64180aa3";

async fn quote(app: &TestApp, id: &str, body: &Value) -> Resp {
    app.post(&app.a, &format!("/pay-orders/{id}/quote"), Some(body))
        .await
}

/// A fresh address on the shared anvil holding `wei` of ETH and `tusd` base units of TUSD.
async fn holder(wei: u128, tusd: u64) -> Address {
    let a = anvil::fresh_address();
    anvil::fund(&anvil_url(), a, U256::from(wei), U256::from(tusd)).await;
    a
}

/// A signed SALE of 49.99 USD (`sale_body`): its id.
async fn sale(app: &TestApp) -> String {
    let sale = app
        .signed_post(&app.a, "/pay-orders", &sale_body(), &[])
        .await;
    sale.body["id"].as_str().unwrap().to_owned()
}

fn option<'a>(q: &'a Value, currency: &str) -> &'a Value {
    q["options"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["currency"]["id"] == currency)
        .unwrap_or(&Value::Null)
}

#[tokio::test]
async fn quote_from_real_balances() {
    let app = spawn_app().await;
    let rich = holder(1_500_000_000_000_000_000u128, 100_000_000).await;
    let poor = holder(10_000_000_000_000_000u128, 0).await;

    // A SALE of 49.99 USD, priced at the fixed table (ETH 3000, TUSD as USDC 1).
    let id = sale(&app).await;
    let q = quote(
        &app,
        &id,
        &json!({"wallet_address": rich.to_string(), "chain_type": "EVM"}),
    )
    .await;
    assert_eq!(q.status, 200, "{}", q.text);
    assert_eq!(q.body["object"], "quote");
    assert_eq!(q.body["options"].as_array().unwrap().len(), 2, "{}", q.text);
    let raw = |v: &Value| v.as_str().unwrap().parse::<u128>().unwrap();
    let eth = option(&q.body, "31337:native");
    assert_eq!(eth["balance"]["raw"], "1500000000000000000");
    assert_eq!(eth["balance"]["value_usd"], json!(4500));
    let b = &eth["required"]["breakdown"];
    assert_eq!(b["base"]["raw"], "16663333333333334");
    assert_eq!(b["fees"]["protocol_fee"]["raw"], "0");
    // Paying in ETH, the network fee (gas price x 21000) is part of the total.
    let gas = raw(&b["gas"]["raw"]);
    assert!(gas > 0 && gas % 21_000 == 0, "{gas}");
    assert_eq!(raw(&b["total"]["raw"]), 16663333333333334 + gas);
    assert_eq!(eth["required"]["amount"], b["total"]);
    assert_eq!(eth["network_fee"]["amount"]["raw"], b["gas"]["raw"]);
    assert_eq!(eth["affordable"], true);
    let tusd = option(&q.body, TUSD);
    assert_eq!(tusd["balance"]["ui"], "100.0");
    assert_eq!(tusd["required"]["amount"]["raw"], "49990000");
    // Paying in the token, gas is paid in ETH beside it (a token transfer costs more gas).
    assert_eq!(tusd["required"]["breakdown"]["gas"]["raw"], "0");
    assert_eq!(tusd["network_fee"]["currency"]["id"], "31337:native");
    assert!(raw(&tusd["network_fee"]["amount"]["raw"]) > gas);
    assert_eq!(tusd["affordable"], true);

    // Tokens but no ETH: the token cannot be sent, so it is not affordable.
    let no_gas = holder(0, 100_000_000).await;
    let q = quote(
        &app,
        &id,
        &json!({"wallet_address": no_gas.to_string(), "chain_type": "EVM"}),
    )
    .await;
    assert_eq!(q.body["options"].as_array().unwrap().len(), 1, "{}", q.text);
    assert_eq!(option(&q.body, TUSD)["affordable"], false);

    // A wallet holding a little ETH and no token: one option, not affordable.
    let q = quote(
        &app,
        &id,
        &json!({"wallet_address": poor.to_string(), "chain_type": "evm", "chain_ids": [31337]}),
    )
    .await;
    assert_eq!(q.status, 200, "{}", q.text);
    assert_eq!(q.body["options"].as_array().unwrap().len(), 1);
    assert_eq!(option(&q.body, "31337:native")["affordable"], false);

    // A DEPOSIT in the token: the token's requirement is the exact amount.
    let dep = app
        .create_deposit(&app.a, &json!({"currency": {"chain_id": 31337, "address": "0x5FbDB2315678afecb367f032d93F642f64180aa3"}}))
        .await;
    let did = dep.body["id"].as_str().unwrap().to_owned();
    let q = quote(
        &app,
        &did,
        &json!({"wallet_address": rich.to_string(), "chain_type": "EVM"}),
    )
    .await;
    assert_eq!(
        option(&q.body, TUSD)["required"]["amount"]["raw"],
        "25500000"
    );
    assert_eq!(
        option(&q.body, "31337:native")["required"]["breakdown"]["base"]["raw"],
        "8500000000000000"
    );

    // The merchant's own fee (custom_fee_bps, taken by orders created after it was set) adds
    // to the protocol fee: 1 % of 25.5 TUSD.
    let r = app
        .signed_post(&app.a, "/settings", &json!({"custom_fee_bps": 100}), &[])
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let fee = app
        .create_deposit(&app.a, &json!({"currency": {"chain_id": 31337, "address": "0x5FbDB2315678afecb367f032d93F642f64180aa3"}}))
        .await;
    assert_eq!(fee.body["fulfillment"]["custom_fee_bps"], 100);
    let q = quote(
        &app,
        fee.body["id"].as_str().unwrap(),
        &json!({"wallet_address": rich.to_string(), "chain_type": "EVM"}),
    )
    .await;
    let b = &option(&q.body, TUSD)["required"]["breakdown"];
    assert_eq!(b["fees"]["custom_fee"]["raw"], "255000", "{}", q.text);
    assert_eq!(b["fees"]["total_fee"]["raw"], "255000");
    assert_eq!(b["total"]["raw"], "25755000");

    // Once payment details are chosen, quotes are over.
    let r = app
        .post(&app.a, &format!("/pay-orders/{did}/payment-details"), Some(&json!({"source_currency": {"chain_id": 31337, "address": "0x5FbDB2315678afecb367f032d93F642f64180aa3"}})))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    quote(
        &app,
        &did,
        &json!({"wallet_address": rich.to_string(), "chain_type": "EVM"}),
    )
    .await
    .assert_error(422, "ORDER_NOT_PENDING");
}

#[tokio::test]
async fn quote_refusals() {
    let app = spawn_app().await;
    let id = sale(&app).await;
    let addr = anvil::fresh_address().to_string();
    // A chain without an RPC endpoint here: a 503 for that chain, not a 500.
    let r = quote(
        &app,
        &id,
        &json!({"wallet_address": addr, "chain_type": "EVM", "chain_ids": [84532]}),
    )
    .await;
    r.assert_error(503, "CHAIN_UNAVAILABLE");
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("84532")
    );
    for (body, status, code) in [
        (
            json!({"wallet_address": addr, "chain_type": "BTC"}),
            400,
            "INVALID_CHAIN_TYPE",
        ),
        (
            json!({"wallet_address": "0x1234", "chain_type": "EVM"}),
            400,
            "INVALID_ADDRESS",
        ),
        (json!({"chain_type": "EVM"}), 400, "INVALID_ADDRESS"),
        (
            json!({"wallet_address": addr, "chain_type": "EVM", "chain_ids": [SOLANA_DEVNET]}),
            400,
            "INVALID_BLOCKCHAIN",
        ),
        (
            json!({"wallet_address": addr, "chain_type": "EVM", "chain_ids": [31337, 8453]}),
            422,
            "NETWORK_MODE_MISMATCH",
        ),
        (
            json!({"wallet_address": addr, "chain_type": "EVM", "chain_ids": [999999]}),
            422,
            "INVALID_BLOCKCHAIN",
        ),
        (
            json!({"wallet_address": addr, "chain_type": "EVM", "chain_ids": []}),
            400,
            "INVALID_BLOCKCHAIN",
        ),
        (
            json!({"wallet_address": addr, "chain_type": "EVM", "extra": 1}),
            400,
            "UNKNOWN_PARAMETER",
        ),
    ] {
        let r = quote(&app, &id, &body).await;
        assert_eq!(
            (r.status, r.body["error"]["code"].as_str()),
            (status, Some(code)),
            "{body}: {}",
            r.text
        );
    }
    app.post(
        &app.b,
        &format!("/pay-orders/{id}/quote"),
        Some(&json!({"wallet_address": addr, "chain_type": "EVM"})),
    )
    .await
    .assert_error(404, "RESOURCE_NOT_FOUND");
}

#[tokio::test]
async fn huge_amounts_are_refused_and_the_largest_is_quoted() {
    let app = spawn_app().await;
    let rich = holder(1_500_000_000_000_000_000u128, 100_000_000).await;
    let eth = json!({"chain_id": 31337, "address": null});
    // Amounts a currency can hold but no order needs, whose price once overflowed the
    // quote's decimal arithmetic (the connection dropped): refused when the order is made.
    for amount in [
        "50000000000000000000000000",
        "1000000000000000.000000000000000001",
    ] {
        app.create_deposit(&app.a, &json!({"currency": eth, "amount": amount}))
            .await
            .assert_error(400, "INVALID_AMOUNT");
    }
    let mut sale = sale_body();
    sale["amount"] = json!("79228162514264337593543950335");
    app.signed_post(&app.a, "/pay-orders", &sale, &[])
        .await
        .assert_error(400, "INVALID_AMOUNT");
    // The largest order amount (10^15 ETH, 3 * 10^18 USD) quotes in every currency held.
    let dep = app
        .create_deposit(
            &app.a,
            &json!({"currency": eth, "amount": "1000000000000000"}),
        )
        .await;
    assert_eq!(dep.status, 201, "{}", dep.text);
    let id = dep.body["id"].as_str().unwrap().to_owned();
    let q = quote(
        &app,
        &id,
        &json!({"wallet_address": rich.to_string(), "chain_type": "EVM"}),
    )
    .await;
    assert_eq!(q.status, 200, "{}", q.text);
    assert_eq!(q.body["value_usd"], json!(3_000_000_000_000_000_000u64));
    let native = option(&q.body, "31337:native");
    assert_eq!(
        native["required"]["breakdown"]["base"]["raw"],
        "1000000000000000000000000000000000"
    );
    assert_eq!(native["affordable"], false);
    assert_eq!(
        option(&q.body, TUSD)["required"]["breakdown"]["base"]["ui"],
        "3000000000000000000.0"
    );
}

/// An RPC URL often carries the provider's key: a chain that cannot be read is a 503 that
/// does not repeat it.
#[tokio::test]
async fn an_unreachable_rpc_is_a_503_without_its_url() {
    let url = "http://127.0.0.1:1/v2/SECRETKEY";
    let chains =
        payorders::chains::Chains::from_rpc_urls([(payorders::ChainId::new(31337).unwrap(), url)])
            .unwrap();
    let app = spawn_app_on_chains(
        Backend::Embedded,
        payorders::pricing::fixed::FixedPrices::dev_default(),
        None,
        chains,
    )
    .await;
    let id = sale(&app).await;
    let addr = anvil::fresh_address().to_string();
    let r = quote(
        &app,
        &id,
        &json!({"wallet_address": addr, "chain_type": "EVM", "chain_ids": [31337]}),
    )
    .await;
    r.assert_error(503, "CHAIN_UNAVAILABLE");
    assert!(!r.text.contains("SECRETKEY"), "{}", r.text);
}

/// A held currency the price source has no price for (or only a stale one) is left out of
/// the quote; the others are quoted as ever. Here the table prices TUSD but not ETH.
#[tokio::test]
async fn a_currency_without_a_price_is_left_out_of_the_quote() {
    let prices = payorders::pricing::fixed::FixedPrices::parse("usd-coin=1").unwrap();
    let app = spawn_app_with(Backend::Embedded, prices).await;
    let holder = holder(1_500_000_000_000_000_000u128, 100_000_000).await;
    let id = sale(&app).await;
    let q = quote(
        &app,
        &id,
        &json!({"wallet_address": holder.to_string(), "chain_type": "EVM", "chain_ids": [31337]}),
    )
    .await;
    assert_eq!(q.status, 200, "{}", q.text);
    let ids: Vec<&str> = q.body["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["currency"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [TUSD], "{}", q.text);
    let tusd = option(&q.body, TUSD);
    assert_eq!(tusd["required"]["amount"]["raw"], "49990000");
    // The network fee is still in ETH, known without its price.
    assert_eq!(tusd["network_fee"]["currency"]["id"], "31337:native");
    assert_eq!(tusd["affordable"], true);
}
