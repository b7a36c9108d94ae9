//! The ChangeNOW adapter against a local fake serving ChangeNOW's v2 response shapes,
//! error bodies included.

use payorders::model::Timestamp;
use payorders::registry::{Currency, registry};
use payorders::routing::changenow::ChangeNow;
use payorders::routing::{ExchangeStatus, Payout, RouteError, Router};
use rust_decimal::Decimal;
use std::str::FromStr;
use std::time::Duration;
use wiremock::matchers::{body_partial_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn currency(id: &str) -> Currency {
    registry().currency_by_id(id).unwrap()
}

fn eth() -> Currency {
    currency("1:native")
}

fn base_usdc() -> Currency {
    currency("8453:0x833589fcd6edb6e08f4c7c32d4f71b54bda02913")
}

fn cn(server: &MockServer) -> ChangeNow {
    ChangeNow::new(&server.uri(), "cn-key", Duration::from_millis(500))
}

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

#[tokio::test]
async fn estimate_and_create_a_reverse_exchange() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/exchange/estimated-amount"))
        .and(header("x-changenow-api-key", "cn-key"))
        .and(query_param("fromCurrency", "eth"))
        .and(query_param("fromNetwork", "eth"))
        .and(query_param("toCurrency", "usdc"))
        .and(query_param("toNetwork", "base"))
        .and(query_param("toAmount", "49.99"))
        .and(query_param("flow", "fixed-rate"))
        .and(query_param("type", "reverse"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            r#"{"fromCurrency":"eth","fromNetwork":"eth","toCurrency":"usdc","toNetwork":"base","flow":"fixed-rate","type":"reverse","rateId":"rate-123","validUntil":"2026-11-21T15:00:00.000Z","transactionSpeedForecast":"10-60","warningMessage":null,"fromAmount":0.016901234567891234,"toAmount":49.99}"#,
            "application/json",
        ))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/exchange"))
        .and(header("x-changenow-api-key", "cn-key"))
        .and(body_partial_json(serde_json::json!({
            "fromCurrency": "eth", "toCurrency": "usdc", "fromNetwork": "eth", "toNetwork": "base",
            "toAmount": "49.99", "address": "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            "refundAddress": "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
            "flow": "fixed-rate", "type": "reverse", "rateId": "rate-123"
        })))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            r#"{"id":"a1b2c3d4e5f6a7","fromAmount":0.016901234567891234,"toAmount":49.99,"flow":"fixed-rate","type":"reverse","payinAddress":"0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB","payoutAddress":"0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed","payinExtraId":null,"fromCurrency":"eth","fromNetwork":"eth","toCurrency":"usdc","toNetwork":"base","refundAddress":"0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359"}"#,
            "application/json",
        ))
        .expect(1)
        .mount(&server)
        .await;
    let c = cn(&server);
    let quote = c
        .estimate_reverse(&eth(), &base_usdc(), dec("49.99"))
        .await
        .unwrap();
    assert_eq!(
        quote.from_amount,
        dec("0.016901234567891234"),
        "read exactly, not through a float"
    );
    assert_eq!(quote.to_amount, dec("49.99"));
    assert_eq!(quote.rate_id, "rate-123");
    assert_eq!(
        quote.valid_until,
        Some(Timestamp::parse("2026-11-21T15:00:00Z").unwrap())
    );
    let x = c
        .create_reverse(
            &eth(),
            &base_usdc(),
            &quote,
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            Some("0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359"),
        )
        .await
        .unwrap();
    assert_eq!(x.id, "a1b2c3d4e5f6a7");
    assert_eq!(
        x.payin_address,
        "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB"
    );
}

#[tokio::test]
async fn exchange_status_maps_every_provider_status() {
    let server = MockServer::start().await;
    for (status, want) in [
        ("new", ExchangeStatus::AwaitingDeposit),
        ("waiting", ExchangeStatus::AwaitingDeposit),
        ("confirming", ExchangeStatus::AwaitingDeposit),
        ("verifying", ExchangeStatus::AwaitingDeposit),
        ("exchanging", ExchangeStatus::InProgress),
        ("sending", ExchangeStatus::InProgress),
        (
            "finished",
            ExchangeStatus::Finished(Payout {
                address: "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed".into(),
                amount: dec("49.99"),
            }),
        ),
        ("failed", ExchangeStatus::Failed),
        ("refunded", ExchangeStatus::Refunded),
        ("expired", ExchangeStatus::Expired),
    ] {
        let id = format!("x-{status}");
        Mock::given(method("GET"))
            .and(path("/exchange/by-id"))
            .and(query_param("id", id.as_str()))
            .respond_with(ResponseTemplate::new(200).set_body_raw(
                format!(r#"{{"id":"{id}","status":"{status}","payinHash":null,"payoutHash":null,"payoutAddress":"0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed","amountFrom":0.0169,"amountTo":49.99}}"#),
                "application/json",
            ))
            .mount(&server)
            .await;
        assert_eq!(cn(&server).status(&id).await.unwrap(), want, "{status}");
    }
    Mock::given(method("GET"))
        .and(path("/exchange/by-id"))
        .and(query_param("id", "weird"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            r#"{"id":"weird","status":"teleporting"}"#,
            "application/json",
        ))
        .mount(&server)
        .await;
    assert!(matches!(
        cn(&server).status("weird").await,
        Err(RouteError::Malformed(_))
    ));
    // Finished without saying what was paid out, or where, cannot complete an order.
    for (id, body) in [
        ("no-payout", r#"{"status":"finished","amountTo":49.99}"#),
        (
            "no-amount",
            r#"{"status":"finished","payoutAddress":"0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed","amountTo":null}"#,
        ),
        (
            "zero",
            r#"{"status":"finished","payoutAddress":"0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed","amountTo":0}"#,
        ),
    ] {
        Mock::given(method("GET"))
            .and(path("/exchange/by-id"))
            .and(query_param("id", id))
            .respond_with(ResponseTemplate::new(200).set_body_raw(body, "application/json"))
            .mount(&server)
            .await;
        assert!(
            matches!(cn(&server).status(id).await, Err(RouteError::Malformed(_))),
            "{id}"
        );
    }
}

#[test]
fn a_quote_is_usable_only_for_the_amount_asked_and_while_its_rate_holds() {
    let now = Timestamp::parse("2026-11-21T15:00:00Z").unwrap();
    let quote = |to: &str, until: Option<i64>| payorders::routing::RouteQuote {
        from_amount: dec("0.01"),
        to_amount: dec(to),
        rate_id: "r".into(),
        valid_until: until.map(|s| now.plus_seconds(s)),
    };
    assert!(quote("49.99", None).usable(dec("49.99"), now).is_ok());
    assert!(quote("50", Some(600)).usable(dec("49.99"), now).is_ok());
    assert!(
        quote("49.990", Some(61)).usable(dec("49.99"), now).is_ok(),
        "the same amount at another scale"
    );
    let refused = |q: payorders::routing::RouteQuote| {
        matches!(q.usable(dec("49.99"), now), Err(RouteError::Malformed(_)))
    };
    assert!(refused(quote("40", None)), "pays out less than asked");
    assert!(
        refused(quote("49.98", Some(600))),
        "pays out less than asked"
    );
    assert!(refused(quote("49.99", Some(-5))), "the rate has lapsed");
    assert!(refused(quote("49.99", Some(60))), "no time left to pay");
}

#[test]
fn a_payout_pays_only_the_recipient_at_least_the_amount() {
    use payorders::model::ChainFamily;
    let to = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";
    let payout = |address: &str, amount: &str| Payout {
        address: address.into(),
        amount: dec(amount),
    };
    let evm = ChainFamily::Evm;
    assert!(payout(to, "49.99").pays(evm, to, dec("49.99")));
    assert!(payout(to, "50").pays(evm, to, dec("49.99")), "more is paid");
    assert!(
        payout(&to.to_lowercase(), "49.99").pays(evm, to, dec("49.99")),
        "an EVM address's case carries no meaning"
    );
    assert!(!payout(to, "49.98").pays(evm, to, dec("49.99")), "short");
    assert!(
        !payout("0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359", "49.99").pays(evm, to, dec("49.99")),
        "paid elsewhere"
    );
    assert!(
        !payout("", "49.99").pays(evm, "", dec("49.99")),
        "no address"
    );
    assert!(
        !payout("not-an-address", "49.99").pays(evm, "not-an-address", dec("49.99")),
        "two unreadable addresses are not the same"
    );
}

#[tokio::test]
async fn every_failure_is_typed() {
    type Expect = fn(&RouteError) -> bool;
    let cases: Vec<(ResponseTemplate, Expect)> =
        vec![
        (
            ResponseTemplate::new(400).set_body_raw(
                r#"{"error":"out_of_range","message":"Amount is less than minimal: 0.005 ETH"}"#,
                "application/json",
            ),
            |e| matches!(e, RouteError::OutOfRange(m) if m.contains("minimal")),
        ),
        (
            ResponseTemplate::new(400).set_body_raw(
                r#"{"error":"pair_is_inactive","message":"Pair is inactive"}"#,
                "application/json",
            ),
            |e| matches!(e, RouteError::PairInactive(_)),
        ),
        (
            ResponseTemplate::new(400).set_body_raw(
                r#"{"error":"not_valid_params","message":"toAmount must be a number"}"#,
                "application/json",
            ),
            |e| matches!(e, RouteError::Rejected { code, .. } if code == "not_valid_params"),
        ),
        (
            ResponseTemplate::new(401).set_body_raw(
                r#"{"error":"unauthorized","message":"Invalid api key"}"#,
                "application/json",
            ),
            |e| matches!(e, RouteError::Rejected { code, .. } if code == "unauthorized"),
        ),
        (ResponseTemplate::new(429), |e| {
            *e == RouteError::RateLimited
        }),
        (ResponseTemplate::new(500), |e| {
            *e == RouteError::Upstream(500)
        }),
        (
            ResponseTemplate::new(502).set_body_string("<html>bad gateway</html>"),
            |e| *e == RouteError::Upstream(502),
        ),
        (
            ResponseTemplate::new(200).set_body_raw("{not json", "application/json"),
            |e| matches!(e, RouteError::Malformed(_)),
        ),
        (
            ResponseTemplate::new(200).set_body_raw(r#"{"toAmount":49.99}"#, "application/json"),
            |e| matches!(e, RouteError::Malformed(_)),
        ),
        (
            ResponseTemplate::new(200)
                .set_body_raw(r#"{"fromAmount":0,"toAmount":49.99}"#, "application/json"),
            |e| matches!(e, RouteError::Malformed(_)),
        ),
        // A fixed rate without its id cannot be held.
        (
            ResponseTemplate::new(200)
                .set_body_raw(r#"{"fromAmount":0.01,"toAmount":49.99}"#, "application/json"),
            |e| matches!(e, RouteError::Malformed(m) if m.contains("rateId")),
        ),
        (
            ResponseTemplate::new(200).set_body_raw(
                r#"{"fromAmount":0.01,"toAmount":49.99,"rateId":"r","validUntil":"soon"}"#,
                "application/json",
            ),
            |e| matches!(e, RouteError::Malformed(m) if m.contains("validUntil")),
        ),
        (
            ResponseTemplate::new(200)
                .set_delay(Duration::from_secs(3))
                .set_body_raw(r#"{"fromAmount":1,"toAmount":2}"#, "application/json"),
            |e| *e == RouteError::Timeout,
        ),
    ];
    for (i, (response, expected)) in cases.into_iter().enumerate() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/exchange/estimated-amount"))
            .respond_with(response)
            .mount(&server)
            .await;
        let err = cn(&server)
            .estimate_reverse(&eth(), &base_usdc(), dec("49.99"))
            .await
            .unwrap_err();
        assert!(expected(&err), "case {i}: {err:?}");
        assert_eq!(
            err.is_refusal(),
            matches!(
                err,
                RouteError::OutOfRange(_)
                    | RouteError::PairInactive(_)
                    | RouteError::Rejected { .. }
            )
        );
    }
    // A currency the provider does not list (a testnet) fails before any request.
    let server = MockServer::start().await;
    let sepolia_usdc = currency("11155111:0x1c7d4b196cb0c7b01d743fbc6116a902379c7238");
    assert!(matches!(
        cn(&server)
            .estimate_reverse(&sepolia_usdc, &base_usdc(), dec("1"))
            .await,
        Err(RouteError::Unsupported(_))
    ));
    assert!(server.received_requests().await.unwrap().is_empty());
    // A create answered without a payin address is malformed, not a silent success.
    Mock::given(method("POST"))
        .and(path("/exchange"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            r#"{"id":"x","fromAmount":1,"toAmount":2,"payinAddress":""}"#,
            "application/json",
        ))
        .mount(&server)
        .await;
    let quote = payorders::routing::RouteQuote {
        from_amount: dec("1"),
        to_amount: dec("2"),
        rate_id: "r".into(),
        valid_until: None,
    };
    assert!(matches!(
        cn(&server)
            .create_reverse(
                &eth(),
                &base_usdc(),
                &quote,
                "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
                None
            )
            .await,
        Err(RouteError::Malformed(_))
    ));
}
