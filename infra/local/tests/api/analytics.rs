//! `GET /analytics` through the local host: orders made and paid through the API, counted
//! by the aggregator from the outbox, answer with exactly their numbers; weeks; a time
//! zone moving a late-UTC order to the next day; another organization and the other mode
//! see none of it; bad parameters are named.

use crate::support::*;
use payorders::testing::anvil;
use payorders::*;
use serde_json::{Value, json};

const TUSD: &str = "31337:0x5fbdb2315678afecb367f032d93f642f64180aa3";

/// A DEPOSIT of `amount` TUSD on chain 31337, with payment details (its USD rate, 1, is
/// locked then) unless `lock` is false.
async fn deposit(app: &TestApp, amount: &str, lock: bool) -> String {
    let currency = json!({"chain_id": 31337, "address": anvil::TOKEN});
    let o = app
        .create_deposit(
            &app.a,
            &json!({"amount": amount, "currency": currency, "recipient": anvil::fresh_address().to_string()}),
        )
        .await;
    assert_eq!(o.status, 201, "{}", o.text);
    let id = o.body["id"].as_str().unwrap().to_owned();
    if lock {
        let d = app
            .post(
                &app.a,
                &format!("/pay-orders/{id}/payment-details"),
                Some(&json!({"source_currency": currency})),
            )
            .await;
        assert_eq!(d.status, 200, "{}", d.text);
        assert_eq!(d.body["fulfillment"]["rate_usd"], "1");
    }
    id
}

async fn analytics(app: &TestApp, who: &Caller, query: &str) -> Value {
    let r = app.get(who, &format!("/analytics?{query}")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body
}

#[tokio::test]
async fn counts_match_the_orders_made() {
    let app = spawn_app().await;
    let paid = [
        deposit(&app, "10", true).await,
        deposit(&app, "5.25", true).await,
    ];
    deposit(&app, "7", true).await;
    // No payment details: no USD value, counted as created only.
    deposit(&app, "3", false).await;
    for id in &paid {
        let r = app
            .post(&app.a, &format!("/pay-orders/{id}/simulate-payment"), None)
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let report = eventually(async || {
        let r = analytics(&app, &app.a, "period=7d").await;
        (r["metrics"]["orders_paid"] == 2 && r["metrics"]["orders_created"] == 4).then_some(r)
    })
    .await;
    let m = &report["metrics"];
    assert_eq!(report["object"], "analytics");
    assert_eq!(report["livemode"], false);
    assert_eq!(report["period"], "7d");
    assert_eq!(report["timezone"], "UTC");
    assert_eq!(m["orders_expired"], 0);
    assert_eq!(m["orders_cancelled"], 0);
    assert_eq!(m["amount_created_usd"], "22.25");
    assert_eq!(m["amount_paid_usd"], "15.25");
    assert_eq!(m["conversion_rate"], 50.0);
    // 22.25 over the three orders with a value.
    assert_eq!(m["average_amount_usd"], "7.42");
    assert!(m["average_time_to_pay_seconds"].as_i64().unwrap() >= 0);
    assert_eq!(
        report["currencies"],
        json!([{"currency": TUSD, "chain_id": 31337, "symbol": "TUSD", "orders_paid": 2, "amount_paid_usd": "15.25"}])
    );
    assert_eq!(
        report["chains"],
        json!([{"chain_id": 31337, "orders_paid": 2, "amount_paid_usd": "15.25"}])
    );
    let series = report["time_series"].as_array().unwrap();
    assert_eq!(series.len(), 7);
    let today = series.last().unwrap();
    assert_eq!(today["date"], report["to"]);
    assert_eq!(today["orders_created"], 4);
    assert_eq!(today["orders_paid"], 2);
    assert_eq!(today["amount_paid_usd"], "15.25");
    assert_eq!(today["conversion_rate"], 50.0);
    assert!(series[..6].iter().all(|p| p["orders_created"] == 0));

    // By week: the points add up to the same totals, each dated by its Monday.
    let weekly = analytics(&app, &app.a, "period=30d&group_by=week").await;
    assert_eq!(weekly["group_by"], "week");
    assert_eq!(weekly["metrics"], report["metrics"]);
    let points = weekly["time_series"].as_array().unwrap();
    let created: i64 = points
        .iter()
        .map(|p| p["orders_created"].as_i64().unwrap())
        .sum();
    assert_eq!(created, 4);
    for p in points {
        let d = time::Date::parse(
            p["date"].as_str().unwrap(),
            &time::format_description::well_known::Iso8601::DATE,
        )
        .unwrap();
        assert_eq!(d.weekday(), time::Weekday::Monday, "{p}");
    }

    // Another organization, and the live mode of this one, see none of it.
    for who in [&app.b, &app.a_live] {
        let r = analytics(&app, who, "period=7d").await;
        assert_eq!(r["metrics"]["orders_created"], 0);
        assert_eq!(r["metrics"]["amount_created_usd"], "0.00");
        assert_eq!(r["metrics"]["conversion_rate"], Value::Null);
        assert_eq!(r["currencies"], json!([]));
    }
}

#[tokio::test]
async fn a_time_zone_moves_a_late_utc_order_to_the_next_day() {
    let app = spawn_app().await;
    // Created 23:30 UTC on November 10th (00:30 on the 11th in Berlin); long expired, so
    // the upkeep expires it and the aggregator counts that too.
    let at = Timestamp::parse("2026-11-10T23:30:00Z").unwrap();
    let order = payorders::testing::order(&app.a.org_id, false, at);
    app.store
        .create_order(&NewOrder::new(order).unwrap())
        .await
        .unwrap();
    let range = "period=custom&from=2026-11-10&to=2026-11-11";
    let utc = eventually(async || {
        let r = analytics(&app, &app.a, range).await;
        (r["metrics"]["orders_expired"] == 1).then_some(r)
    })
    .await;
    let counts = |r: &Value| -> Vec<(String, i64, i64)> {
        r["time_series"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["date"].as_str().unwrap().to_owned(),
                    p["orders_created"].as_i64().unwrap(),
                    p["orders_expired"].as_i64().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(
        counts(&utc),
        [
            ("2026-11-10".to_owned(), 1, 1),
            ("2026-11-11".to_owned(), 0, 0)
        ]
    );
    let berlin = analytics(&app, &app.a, &format!("{range}&timezone=Europe/Berlin")).await;
    assert_eq!(berlin["timezone"], "Europe/Berlin");
    assert_eq!(
        counts(&berlin),
        [
            ("2026-11-10".to_owned(), 0, 0),
            ("2026-11-11".to_owned(), 1, 1)
        ]
    );
    // Without a value, the order adds no amount.
    assert_eq!(berlin["metrics"]["amount_created_usd"], "0.00");
    assert_eq!(berlin["metrics"]["average_amount_usd"], Value::Null);
}

#[tokio::test]
async fn bad_parameters_are_named() {
    let app = spawn_app().await;
    for (query, param) in [
        ("period=14d", "period"),
        ("period=custom&from=2026-02-01&to=2026-01-01", "from"),
        ("period=custom&from=2026-01-01", "to"),
        ("period=custom&from=2025-01-01&to=2026-01-02", "to"),
        ("period=custom&from=01/02/2026&to=2026-01-02", "from"),
        ("group_by=month", "group_by"),
        ("timezone=Mars/Olympus_Mons", "timezone"),
        ("period=7d&to=2026-01-01", "to"),
    ] {
        let r = app.get(&app.a, &format!("/analytics?{query}")).await;
        r.assert_error(400, "INVALID_PARAMETER");
        assert_eq!(r.body["error"]["param"], param, "{query}: {}", r.text);
    }
    app.get(&app.a, "/analytics?colour=blue")
        .await
        .assert_error(400, "UNKNOWN_PARAMETER");
    // Without analytics:read, 403.
    let reader = app.key_of_a(vec![Scope::OrdersRead]).await;
    let r = app.get(&reader, "/analytics").await;
    assert_eq!(r.status, 403, "{}", r.text);
}
