//! The organization's order defaults (`GET/POST /settings`): per mode, partial signed
//! changes, and new orders taking what they leave out from them.

use crate::support::*;
use payorders::Scope;
use payorders::model::Timestamp;
use serde_json::{Value, json};

/// Seconds from an order's creation to its expiry.
fn expiry_secs(order: &Value) -> i64 {
    let created = Timestamp::parse(order["created_at"].as_str().unwrap()).unwrap();
    let expires = Timestamp::parse(order["expires_at"].as_str().unwrap()).unwrap();
    created.seconds_until(expires)
}

#[tokio::test]
async fn defaults_apply_to_new_orders_per_mode_and_organization() {
    let app = spawn_app().await;
    let r = app.get(&app.a, "/settings").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["object"], "settings");
    assert_eq!(r.body["livemode"], false);
    assert_eq!(r.body["default_expires_in"], 1800);
    assert_eq!(r.body["late_payment_window"], 86400);
    assert_eq!(
        r.body["payment_tolerance"],
        json!({"underpayment_bps": 0, "overpayment_threshold_bps": 0, "overpayment_action": "accept"})
    );
    assert_eq!(r.body["custom_fee_bps"], 0);
    assert_eq!(r.body["checkout"]["object"], "checkout_settings");
    let default_confirmations = r.body["confirmations"]["84532"].clone();
    assert!(default_confirmations.is_u64(), "{}", r.text);
    assert!(
        r.body["confirmations"].get("8453").is_none(),
        "test keys see test networks"
    );

    let r = app
        .signed_post(
            &app.a,
            "/settings",
            &json!({
                "default_expires_in": 3600,
                "late_payment_window": 7200,
                "confirmations": {"84532": 3},
                "payment_tolerance": {"underpayment_bps": 50, "overpayment_threshold_bps": 25},
                "custom_fee_bps": 40,
            }),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["object"], "settings");
    assert_eq!(r.body["livemode"], false);
    assert_eq!(r.body["default_expires_in"], 3600);
    assert_eq!(r.body["confirmations"]["84532"], 3);
    assert_eq!(r.body["payment_tolerance"]["underpayment_bps"], 50);
    assert_eq!(app.get(&app.a, "/settings").await.body, r.body);

    // An order that leaves them out takes them, and shows what applied.
    let o = app.create_deposit(&app.a, &json!({})).await;
    assert_eq!(o.status, 201, "{}", o.text);
    assert_eq!(expiry_secs(&o.body), 3600);
    assert_eq!(o.body["late_payment_window"], 7200);
    assert_eq!(o.body["confirmations"], 3);
    assert_eq!(
        o.body["payment_tolerance"],
        json!({"underpayment_bps": 50, "overpayment_threshold_bps": 25, "overpayment_action": "accept"})
    );
    assert_eq!(o.body["fulfillment"]["custom_fee_bps"], 40);
    let id = o.body["id"].as_str().unwrap();
    let got = app.get(&app.a, &format!("/pay-orders/{id}")).await;
    assert_eq!(got.body["late_payment_window"], 7200);

    // The order's own values win.
    let o = app
        .create_deposit(
            &app.a,
            &json!({"expires_in": 600, "confirmations": 7,
                    "payment_tolerance": {"underpayment_bps": 10}}),
        )
        .await;
    assert_eq!(o.status, 201, "{}", o.text);
    assert_eq!(expiry_secs(&o.body), 600);
    assert_eq!(o.body["confirmations"], 7);
    assert_eq!(o.body["payment_tolerance"]["underpayment_bps"], 10);
    assert_eq!(
        o.body["payment_tolerance"]["overpayment_threshold_bps"], 25,
        "what the order leaves out still comes from the settings"
    );

    // Live settings are their own; so are another organization's.
    let live = app.get(&app.a_live, "/settings").await;
    assert_eq!(live.body["livemode"], true);
    assert_eq!(live.body["default_expires_in"], 1800);
    assert!(live.body["confirmations"].get("84532").is_none());
    let o = app.create_deposit(&app.a_live, &json!({})).await;
    assert_eq!(o.status, 201, "{}", o.text);
    assert_eq!(expiry_secs(&o.body), 1800);
    assert_eq!(o.body["payment_tolerance"]["underpayment_bps"], 0);
    assert_eq!(o.body["late_payment_window"], 86400);
    let b = app.get(&app.b, "/settings").await;
    assert_eq!(b.body["default_expires_in"], 1800);
    assert_eq!(b.body["confirmations"]["84532"], default_confirmations);
    let o = app.create_deposit(&app.b, &json!({})).await;
    assert_eq!(expiry_secs(&o.body), 1800);
    assert_eq!(o.body["confirmations"], Value::Null);
    assert_eq!(o.body["fulfillment"]["custom_fee_bps"], Value::Null);
}

#[tokio::test]
async fn changes_are_partial_signed_checked_and_null_resets() {
    let app = spawn_app().await;
    let set = |body: Value| {
        let app = &app;
        async move { app.signed_post(&app.a, "/settings", &body, &[]).await }
    };
    let r =
        set(json!({"default_expires_in": 900, "confirmations": {"84532": 4, "11155111": 6}})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    // Only what is named changes.
    let r = set(json!({"payment_tolerance": {"underpayment_bps": 100}})).await;
    assert_eq!(r.body["default_expires_in"], 900);
    assert_eq!(r.body["confirmations"]["84532"], 4);
    assert_eq!(r.body["payment_tolerance"]["underpayment_bps"], 100);
    // null resets a field (and a chain) to its default.
    let defaults = app.get(&app.b, "/settings").await.body;
    let r = set(json!({"default_expires_in": null, "confirmations": {"84532": null}})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["default_expires_in"], 1800);
    assert_eq!(
        r.body["confirmations"]["84532"],
        defaults["confirmations"]["84532"]
    );
    assert_eq!(r.body["confirmations"]["11155111"], 6, "other chains stay");
    let r = set(json!({"payment_tolerance": null, "confirmations": null})).await;
    assert_eq!(r.body["payment_tolerance"], defaults["payment_tolerance"]);
    assert_eq!(r.body["confirmations"], defaults["confirmations"]);

    // Invalid values: 400 naming the field, and nothing changes.
    let before = app.get(&app.a, "/settings").await.body;
    for (body, code, param) in [
        (
            json!({"default_expires_in": 59}),
            "INVALID_EXPIRY",
            "default_expires_in",
        ),
        (
            json!({"default_expires_in": 604801}),
            "INVALID_EXPIRY",
            "default_expires_in",
        ),
        (
            json!({"default_expires_in": "1h"}),
            "INVALID_EXPIRY",
            "default_expires_in",
        ),
        (
            json!({"late_payment_window": 604801}),
            "INVALID_PARAMETER",
            "late_payment_window",
        ),
        (
            json!({"late_payment_window": -1}),
            "INVALID_PARAMETER",
            "late_payment_window",
        ),
        (
            json!({"confirmations": {"84532": 0}}),
            "INVALID_CONFIRMATIONS",
            "confirmations",
        ),
        (
            json!({"confirmations": {"84532": 1001}}),
            "INVALID_CONFIRMATIONS",
            "confirmations",
        ),
        (
            json!({"confirmations": {"8453": 3}}),
            "INVALID_CONFIRMATIONS",
            "confirmations",
        ),
        (
            json!({"confirmations": {"base": 3}}),
            "INVALID_CONFIRMATIONS",
            "confirmations",
        ),
        (
            json!({"payment_tolerance": {"underpayment_bps": 5001}}),
            "INVALID_PAYMENT_TOLERANCE",
            "payment_tolerance",
        ),
        (
            json!({"payment_tolerance": {"overpayment_action": "hold"}}),
            "INVALID_PAYMENT_TOLERANCE",
            "payment_tolerance",
        ),
        (
            json!({"payment_tolerance": {"overpayment_bps": 1}}),
            "INVALID_PAYMENT_TOLERANCE",
            "payment_tolerance",
        ),
        (
            json!({"custom_fee_bps": 1001, "default_expires_in": 600}),
            "INVALID_PARAMETER",
            "custom_fee_bps",
        ),
        (
            json!({"protocol_fee_bps": 0}),
            "UNKNOWN_PARAMETER",
            "protocol_fee_bps",
        ),
    ] {
        let r = set(body.clone()).await;
        r.assert_error(400, code);
        assert_eq!(r.body["error"]["param"], param, "{body}: {}", r.text);
    }
    assert_eq!(app.get(&app.a, "/settings").await.body, before);

    // A change needs a signed request and settings:manage.
    app.post(
        &app.a,
        "/settings",
        Some(&json!({"default_expires_in": 600})),
    )
    .await
    .assert_error(401, "SIGNATURE_REQUIRED");
    let orders_only = app
        .key_of_a(vec![Scope::OrdersRead, Scope::OrdersCreate])
        .await;
    app.get(&orders_only, "/settings")
        .await
        .assert_error(403, "INSUFFICIENT_SCOPE");
    app.signed_post(
        &orders_only,
        "/settings",
        &json!({"default_expires_in": 600}),
        &[],
    )
    .await
    .assert_error(403, "INSUFFICIENT_SCOPE");
    assert_eq!(app.get(&app.a, "/settings").await.body, before);
}

#[tokio::test]
async fn concurrent_changes_of_different_fields_all_stick() {
    let app = spawn_app().await;
    let bodies = [
        json!({"default_expires_in": 1200}),
        json!({"late_payment_window": 600}),
        json!({"custom_fee_bps": 15}),
        json!({"confirmations": {"84532": 2}}),
        json!({"confirmations": {"11155111": 9}}),
        json!({"payment_tolerance": {"underpayment_bps": 30}}),
        json!({"payment_tolerance": {"overpayment_threshold_bps": 70}}),
    ];
    let answers = futures::future::join_all(
        bodies
            .iter()
            .map(|b| app.signed_post(&app.a, "/settings", b, &[])),
    )
    .await;
    for r in &answers {
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let s = app.get(&app.a, "/settings").await.body;
    assert_eq!(s["default_expires_in"], 1200);
    assert_eq!(s["late_payment_window"], 600);
    assert_eq!(s["custom_fee_bps"], 15);
    assert_eq!(s["confirmations"]["84532"], 2);
    assert_eq!(s["confirmations"]["11155111"], 9);
    assert_eq!(s["payment_tolerance"]["underpayment_bps"], 30);
    assert_eq!(s["payment_tolerance"]["overpayment_threshold_bps"], 70);
}

/// A test-mode DEPOSIT of 25.50 USDC on Base Sepolia with its payment details chosen.
async fn awaiting(app: &TestApp, who: &Caller) -> String {
    let usdc = json!({"chain_id": 84532, "address": BASE_SEPOLIA_USDC});
    app.awaiting_deposit(who, &json!({}), &usdc).await.0
}

#[tokio::test]
async fn paid_orders_honour_the_organizations_tolerance() {
    let app = spawn_app().await;
    let r = app
        .signed_post(
            &app.a,
            "/settings",
            &json!({"payment_tolerance": {"underpayment_bps": 50, "overpayment_threshold_bps": 50}}),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let pay = |who: &Caller, id: String, amount: &str| {
        let body = json!({ "amount": amount });
        let who = who.clone();
        let app = &app;
        async move {
            app.post(
                &who,
                &format!("/pay-orders/{id}/simulate-payment"),
                Some(&body),
            )
            .await
        }
    };

    // 25.40 of 25.50 is short by 0.39 %: paid within A's 0.5 %.
    let short = awaiting(&app, &app.a).await;
    let r = pay(&app.a, short.clone(), "25.40").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["status"], "AWAITING_CONFIRMATION", "{}", r.text);
    assert_eq!(r.body["underpaid_within_tolerance"], true);
    // 25.60 is over by 0.39 %: within the threshold, not an overpayment.
    let over = awaiting(&app, &app.a).await;
    let r = pay(&app.a, over, "25.60").await;
    assert_eq!(r.body["status"], "AWAITING_CONFIRMATION", "{}", r.text);
    assert_eq!(r.body["paid_over"], false);
    // B keeps the defaults: the same amounts are a partial payment and an overpayment.
    let short = awaiting(&app, &app.b).await;
    let r = pay(&app.b, short, "25.40").await;
    assert_eq!(r.body["status"], "PARTIAL_PAYMENT", "{}", r.text);
    let over = awaiting(&app, &app.b).await;
    let r = pay(&app.b, over, "25.60").await;
    assert_eq!(r.body["status"], "AWAITING_CONFIRMATION", "{}", r.text);
    assert_eq!(r.body["paid_over"], true);
}

/// An order's confirmations are fixed when its chain is known: at creation when it names
/// its currency, else when its payment is chosen (a fiat SALE). A later change of the
/// settings moves neither: lowered while the order waited, it made the payment final after
/// fewer blocks than the order stated.
#[tokio::test]
async fn settings_changed_later_leave_an_open_orders_confirmations_alone() {
    let app = spawn_app().await;
    let set = |n: Value| {
        let app = &app;
        async move {
            let r = app
                .signed_post(
                    &app.a,
                    "/settings",
                    &json!({"confirmations": {"84532": n}}),
                    &[],
                )
                .await;
            assert_eq!(r.status, 200, "{}", r.text);
        }
    };
    let pay = |id: String| {
        let app = &app;
        async move {
            let r = app
                .post(&app.a, &format!("/pay-orders/{id}/simulate-payment"), None)
                .await;
            assert_eq!(r.status, 200, "{}", r.text);
            r.body["transfers"][0]["required_confirmations"].clone()
        }
    };
    let usdc = json!({"chain_id": 84532, "address": BASE_SEPOLIA_USDC});
    let default = app.get(&app.a, "/settings").await.body["confirmations"]["84532"].clone();
    assert!(default.as_u64().unwrap() > 1);

    // A DEPOSIT in a currency, no setting when created: the chain's default, kept.
    let (id, details) = app.awaiting_deposit(&app.a, &json!({}), &usdc).await;
    assert_eq!(details["confirmations"], default);
    set(json!(1)).await;
    assert_eq!(pay(id).await, default);

    // A fiat SALE: the settings for its chain as they are when its payment is chosen.
    set(json!(5)).await;
    let sale = app
        .signed_post(
            &app.a,
            "/pay-orders",
            &json!({"mode": "SALE", "amount": "5", "fiat_unit": "USD"}),
            &[],
        )
        .await;
    assert_eq!(sale.status, 201, "{}", sale.text);
    assert_eq!(sale.body["confirmations"], Value::Null);
    let id = sale.body["id"].as_str().unwrap().to_owned();
    let chosen = app
        .post(
            &app.a,
            &format!("/pay-orders/{id}/payment-details"),
            Some(&json!({"source_currency": usdc})),
        )
        .await;
    assert_eq!(chosen.status, 200, "{}", chosen.text);
    assert_eq!(chosen.body["confirmations"], 5);
    set(json!(2)).await;
    assert_eq!(pay(id).await, 5);
}
