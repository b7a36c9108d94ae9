//! Merchant wallets through the local host: create, list, get, update, delete; validation;
//! isolation; and settlement (a fiat SALE needs a wallet).

use crate::support::*;
use serde_json::{Value, json};

const XPUB: &str = "xpub661MyMwAqRbcFW31YEwpkMuc5THy2PSt5bDMsktWQcFF8syAmRUapSCGu8ED9W6oDMSgv6Zz8idoc4a6mr8BDzTJY47LJhkJ8UB7WEGuduB";

#[tokio::test]
async fn wallet_crud() {
    let app = spawn_app().await;
    let a = &app.a;
    // create_org gave the test mode two wallets (31337, 84532); add one on Base with an xpub.
    let r = app
        .call(a, "POST", "/merchant-wallets", Some(&json!({"chain_id": 8453, "xpub": XPUB, "currencies": ["native", "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913", "native"]})), &[])
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["xpub"], XPUB);
    assert_eq!(
        r.body["currencies"],
        json!([
            "8453:native",
            "8453:0x833589fcd6edb6e08f4c7c32d4f71b54bda02913"
        ])
    );
    assert_eq!(r.body["addresses_derived"], 0);
    let chains: Vec<Value> = app
        .call(a, "GET", "/merchant-wallets", None, &[])
        .await
        .body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["chain_id"].clone())
        .collect();
    assert_eq!(chains, [json!(8453), json!(31337), json!(84532)]);
    app.post(
        a,
        "/merchant-wallets",
        Some(&json!({"chain_id": 8453, "address": RECIPIENT, "currencies": ["native"]})),
    )
    .await
    .assert_error(409, "WALLET_EXISTS");
    // Switch Base to one address, USDC only.
    let u = app
        .call(a, "POST", "/merchant-wallets/8453", Some(&json!({"address": RECIPIENT.to_lowercase(), "currencies": ["0x833589fcd6edb6e08f4c7c32d4f71b54bda02913"]})), &[])
        .await;
    assert_eq!(u.status, 200, "{}", u.text);
    assert_eq!(u.body["address"], RECIPIENT);
    assert!(u.body["xpub"].is_null());
    assert!(u.body["addresses_derived"].is_null());
    assert_eq!(
        app.call(a, "GET", "/merchant-wallets/8453", None, &[])
            .await
            .body,
        u.body
    );
    // Other organizations and the other mode do not see it.
    for who in [&app.b, &app.a_live] {
        app.call(who, "GET", "/merchant-wallets/8453", None, &[])
            .await
            .assert_error(404, "RESOURCE_NOT_FOUND");
        app.call(who, "DELETE", "/merchant-wallets/8453", None, &[])
            .await
            .assert_error(404, "RESOURCE_NOT_FOUND");
    }
    let d = app
        .call(a, "DELETE", "/merchant-wallets/8453", None, &[])
        .await;
    assert_eq!(
        d.body,
        json!({"object": "merchant_wallet", "chain_id": 8453, "deleted": true})
    );
    app.call(a, "GET", "/merchant-wallets/8453", None, &[])
        .await
        .assert_error(404, "RESOURCE_NOT_FOUND");
    app.call(a, "GET", "/merchant-wallets/base", None, &[])
        .await
        .assert_error(404, "RESOURCE_NOT_FOUND");
}

#[tokio::test]
async fn wallet_validation() {
    let app = spawn_app().await;
    let sol_usdc = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v";
    for (body, status, code, param) in [
        (
            json!({"address": RECIPIENT, "currencies": ["native"]}),
            400,
            "INVALID_BLOCKCHAIN",
            "chain_id",
        ),
        (
            json!({"chain_id": "base", "address": RECIPIENT, "currencies": ["native"]}),
            400,
            "INVALID_BLOCKCHAIN",
            "chain_id",
        ),
        (
            json!({"chain_id": 999999, "address": RECIPIENT, "currencies": ["native"]}),
            422,
            "INVALID_BLOCKCHAIN",
            "chain_id",
        ),
        (
            json!({"chain_id": 1, "currencies": ["native"]}),
            400,
            "INVALID_REQUEST",
            "address",
        ),
        (
            json!({"chain_id": 1, "address": RECIPIENT, "xpub": XPUB, "currencies": ["native"]}),
            400,
            "INVALID_REQUEST",
            "address",
        ),
        (
            json!({"chain_id": 1, "address": "0x1234", "currencies": ["native"]}),
            400,
            "INVALID_ADDRESS",
            "address",
        ),
        (
            json!({"chain_id": 1, "address": sol_usdc, "currencies": ["native"]}),
            400,
            "INVALID_ADDRESS",
            "address",
        ),
        (
            json!({"chain_id": 30000000000001u64, "address": RECIPIENT, "currencies": ["native"]}),
            400,
            "INVALID_ADDRESS",
            "address",
        ),
        (
            json!({"chain_id": 1, "xpub": "xpub-nope", "currencies": ["native"]}),
            400,
            "INVALID_XPUB",
            "xpub",
        ),
        (
            json!({"chain_id": 30000000000001u64, "xpub": XPUB, "currencies": ["native"]}),
            422,
            "XPUB_NOT_SUPPORTED",
            "xpub",
        ),
        (
            json!({"chain_id": 1, "address": RECIPIENT}),
            400,
            "INVALID_CURRENCY",
            "currencies",
        ),
        (
            json!({"chain_id": 1, "address": RECIPIENT, "currencies": []}),
            400,
            "INVALID_CURRENCY",
            "currencies",
        ),
        (
            json!({"chain_id": 1, "address": RECIPIENT, "currencies": [5]}),
            400,
            "INVALID_CURRENCY",
            "currencies",
        ),
        (
            json!({"chain_id": 1, "address": RECIPIENT, "currencies": ["0x0000000000000000000000000000000000000001"]}),
            422,
            "UNSUPPORTED_CURRENCY",
            "currencies",
        ),
        (
            json!({"chain_id": 1, "address": RECIPIENT, "currencies": ["native"], "label": "x"}),
            400,
            "UNKNOWN_PARAMETER",
            "label",
        ),
    ] {
        let r = app.post(&app.a, "/merchant-wallets", Some(&body)).await;
        assert_eq!(
            (
                r.status,
                r.body["error"]["code"].as_str(),
                r.body["error"]["param"].as_str()
            ),
            (status, Some(code), Some(param)),
            "{body}: {}",
            r.text
        );
    }
    // A Solana wallet with a base58 address is fine.
    let r = app
        .post(&app.a, "/merchant-wallets", Some(&json!({"chain_id": 30000000000001u64, "address": "9WzDXwBbmkg8ZTbNMqUxvQRAyrZzDsGYdLVL9zYtAWWM", "currencies": [sol_usdc]})))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    // Scope: settings:manage.
    let orders_only = issue(
        &*app.store,
        &app.master,
        &app.a.org_id,
        payorders::KeyMode::Test,
        vec![payorders::Scope::OrdersWrite],
    )
    .await;
    app.get(&orders_only, "/merchant-wallets")
        .await
        .assert_error(403, "INSUFFICIENT_SCOPE");
}

#[tokio::test]
async fn a_fiat_sale_settles_in_the_wallets() {
    let app = spawn_app().await;
    // Live mode has no wallet yet: a USD-priced SALE cannot settle.
    app.signed_post(&app.a_live, "/pay-orders", &sale_body(), &[])
        .await
        .assert_error(422, "WALLET_NOT_CONFIGURED");
    let r = app
        .post(&app.a_live, "/merchant-wallets", Some(&json!({"chain_id": 8453, "address": RECIPIENT, "currencies": ["0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913"]})))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    // A different body: the refused request above still used up its exact replay.
    let mut body = sale_body();
    body["nonce"] = json!("retry-1");
    let sale = app
        .signed_post(&app.a_live, "/pay-orders", &body, &[])
        .await;
    assert_eq!(sale.status, 201, "{}", sale.text);
}
