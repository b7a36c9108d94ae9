//! Merchant wallets through the local host: create, list, get, update, delete; validation;
//! isolation; signed writes; networks of the key's mode; and settlement (a fiat SALE needs
//! a wallet).

use crate::support::*;
use serde_json::{Value, json};

const XPUB: &str = "xpub661MyMwAqRbcFW31YEwpkMuc5THy2PSt5bDMsktWQcFF8syAmRUapSCGu8ED9W6oDMSgv6Zz8idoc4a6mr8BDzTJY47LJhkJ8UB7WEGuduB";

#[tokio::test]
async fn wallet_crud() {
    let app = spawn_app().await;
    let a = &app.a;
    // create_org gave the test mode three wallets, all on test networks (the local chain,
    // Base Sepolia, Solana Devnet); add one on Sepolia with an xpub.
    let r = app
        .signed_call(a, "POST", "/merchant-wallets", Some(&json!({"chain_id": 11155111, "xpub": XPUB, "currencies": ["native", SEPOLIA_USDC, "native"]})))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["xpub"], XPUB);
    assert_eq!(
        r.body["currencies"],
        json!([
            "11155111:native",
            "11155111:0x1c7d4b196cb0c7b01d743fbc6116a902379c7238"
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
    assert_eq!(
        chains,
        [
            json!(31337),
            json!(84532),
            json!(11155111),
            json!(SOLANA_DEVNET)
        ]
    );
    app.signed_call(
        a,
        "POST",
        "/merchant-wallets",
        Some(&json!({"chain_id": 11155111, "address": RECIPIENT, "currencies": ["native"]})),
    )
    .await
    .assert_error(409, "WALLET_EXISTS");
    // Switch Sepolia to one address, USDC only.
    let u = app
        .signed_call(a, "POST", "/merchant-wallets/11155111", Some(&json!({"address": RECIPIENT.to_lowercase(), "currencies": [SEPOLIA_USDC.to_lowercase()]})))
        .await;
    assert_eq!(u.status, 200, "{}", u.text);
    assert_eq!(u.body["address"], RECIPIENT);
    assert!(u.body["xpub"].is_null());
    assert!(u.body["addresses_derived"].is_null());
    assert_eq!(
        app.call(a, "GET", "/merchant-wallets/11155111", None, &[])
            .await
            .body,
        u.body
    );
    // Other organizations and the other mode do not see it.
    for who in [&app.b, &app.a_live] {
        app.call(who, "GET", "/merchant-wallets/11155111", None, &[])
            .await
            .assert_error(404, "RESOURCE_NOT_FOUND");
        app.signed_call(who, "DELETE", "/merchant-wallets/11155111", None)
            .await
            .assert_error(404, "RESOURCE_NOT_FOUND");
    }
    let d = app
        .signed_call(a, "DELETE", "/merchant-wallets/11155111", None)
        .await;
    assert_eq!(
        d.body,
        json!({"object": "merchant_wallet", "chain_id": 11155111, "deleted": true})
    );
    app.call(a, "GET", "/merchant-wallets/11155111", None, &[])
        .await
        .assert_error(404, "RESOURCE_NOT_FOUND");
    app.call(a, "GET", "/merchant-wallets/sepolia", None, &[])
        .await
        .assert_error(404, "RESOURCE_NOT_FOUND");
}

#[tokio::test]
async fn wallet_changes_need_the_api_secret() {
    let app = spawn_app().await;
    let a = &app.a;
    // The refusal an unsigned SALE gets.
    let sale = app.post(a, "/pay-orders", Some(&sale_body())).await;
    sale.assert_error(401, "SIGNATURE_REQUIRED");
    let before = app.get(a, "/merchant-wallets").await.body;
    let create = json!({"chain_id": 11155111, "address": RECIPIENT, "currencies": ["native"]});
    let update = json!({"address": RECIPIENT, "currencies": ["native"]});
    for (method, path, body) in [
        ("POST", "/merchant-wallets", Some(&create)),
        ("POST", "/merchant-wallets/84532", Some(&update)),
        ("DELETE", "/merchant-wallets/84532", None),
    ] {
        // The key alone, as X-API-KEY or as a bearer token, cannot move money elsewhere.
        for r in [
            app.call(a, method, path, body, &[]).await,
            app.send(
                method,
                path,
                headers(&[
                    ("authorization", &format!("Bearer {}", a.key)),
                    ("content-type", "application/json"),
                ]),
                body.map(|b| serde_json::to_vec(b).unwrap()),
            )
            .await,
        ] {
            r.assert_error(401, "SIGNATURE_REQUIRED");
            assert_eq!(r.body["error"]["type"], sale.body["error"]["type"]);
            assert!(
                r.body["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("Authorization-Signature"),
                "{}",
                r.text
            );
        }
    }
    assert_eq!(app.get(a, "/merchant-wallets").await.body, before);
    // Signed, each works; an exact replay of the signed delete does not run twice.
    let r = app
        .signed_call(a, "POST", "/merchant-wallets", Some(&create))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = app
        .signed_call(a, "POST", "/merchant-wallets/84532", Some(&update))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["currencies"], json!(["84532:native"]));
    let sig = payorders::auth::sign::v1_header(
        &a.key,
        &a.secret,
        "DELETE",
        "/merchant-wallets/84532",
        now(),
    );
    let signed = [("authorization-signature", sig.as_str())];
    let r = app
        .call(a, "DELETE", "/merchant-wallets/84532", None, &signed)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    app.call(a, "DELETE", "/merchant-wallets/84532", None, &signed)
        .await
        .assert_error(401, "REPLAYED_REQUEST");
}

#[tokio::test]
async fn wallet_validation() {
    let app = spawn_app().await;
    let sol_usdc = SOLANA_DEVNET_USDC;
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
            json!({"chain_id": 11155111, "currencies": ["native"]}),
            400,
            "INVALID_REQUEST",
            "address",
        ),
        (
            json!({"chain_id": 11155111, "address": RECIPIENT, "xpub": XPUB, "currencies": ["native"]}),
            400,
            "INVALID_REQUEST",
            "address",
        ),
        (
            json!({"chain_id": 11155111, "address": "0x1234", "currencies": ["native"]}),
            400,
            "INVALID_ADDRESS",
            "address",
        ),
        (
            json!({"chain_id": 11155111, "address": sol_usdc, "currencies": ["native"]}),
            400,
            "INVALID_ADDRESS",
            "address",
        ),
        (
            json!({"chain_id": SOLANA_DEVNET, "address": RECIPIENT, "currencies": ["native"]}),
            400,
            "INVALID_ADDRESS",
            "address",
        ),
        (
            json!({"chain_id": 11155111, "xpub": "xpub-nope", "currencies": ["native"]}),
            400,
            "INVALID_XPUB",
            "xpub",
        ),
        (
            json!({"chain_id": SOLANA_DEVNET, "xpub": XPUB, "currencies": ["native"]}),
            422,
            "XPUB_NOT_SUPPORTED",
            "xpub",
        ),
        (
            json!({"chain_id": 11155111, "address": RECIPIENT}),
            400,
            "INVALID_CURRENCY",
            "currencies",
        ),
        (
            json!({"chain_id": 11155111, "address": RECIPIENT, "currencies": []}),
            400,
            "INVALID_CURRENCY",
            "currencies",
        ),
        (
            json!({"chain_id": 11155111, "address": RECIPIENT, "currencies": [5]}),
            400,
            "INVALID_CURRENCY",
            "currencies",
        ),
        (
            json!({"chain_id": 11155111, "address": RECIPIENT, "currencies": ["0x0000000000000000000000000000000000000001"]}),
            422,
            "UNSUPPORTED_CURRENCY",
            "currencies",
        ),
        (
            json!({"chain_id": 11155111, "address": RECIPIENT, "currencies": ["native"], "label": "x"}),
            400,
            "UNKNOWN_PARAMETER",
            "label",
        ),
        (
            json!({"chain_id": 8453, "address": RECIPIENT, "currencies": ["native"]}),
            422,
            "NETWORK_MODE_MISMATCH",
            "chain_id",
        ),
        (
            json!({"chain_id": 30000000000001u64, "address": SOLANA_ADDRESS, "currencies": ["native"]}),
            422,
            "NETWORK_MODE_MISMATCH",
            "chain_id",
        ),
    ] {
        let r = app
            .signed_call(&app.a, "POST", "/merchant-wallets", Some(&body))
            .await;
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
    // Live keys use mainnets: a Solana wallet with a base58 address is fine, one on a test
    // network is not; updating a wallet checks its chain too.
    let r = app
        .signed_call(&app.a_live, "POST", "/merchant-wallets", Some(&json!({"chain_id": 30000000000001u64, "address": SOLANA_ADDRESS, "currencies": ["EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"]})))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = app
        .signed_call(
            &app.a_live,
            "POST",
            "/merchant-wallets",
            Some(&json!({"chain_id": 84532, "address": RECIPIENT, "currencies": ["native"]})),
        )
        .await;
    r.assert_error(422, "NETWORK_MODE_MISMATCH");
    assert_eq!(
        r.body["error"]["message"],
        "live-mode keys use mainnets; chain 84532 (Base Sepolia) is a test network"
    );
    assert_eq!(r.body["error"]["param"], "chain_id");
    app.signed_call(
        &app.a_live,
        "POST",
        "/merchant-wallets/84532",
        Some(&json!({"currencies": ["native"]})),
    )
    .await
    .assert_error(422, "NETWORK_MODE_MISMATCH");
    // Scope: settings:manage.
    let orders_only = app.key_of_a(vec![payorders::Scope::OrdersCreate]).await;
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
        .signed_call(
            &app.a_live,
            "POST",
            "/merchant-wallets",
            Some(&json!({"chain_id": 8453, "address": RECIPIENT, "currencies": [BASE_USDC]})),
        )
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
