//! The CoinGecko adapter against a local fake serving CoinGecko's documented response
//! shapes, failures included; the fixed table is unit-tested beside it.

use payorders::pricing::coingecko::CoinGecko;
use payorders::pricing::{PriceError, PriceSource};
use payorders::registry::{Currency, registry};
use rust_decimal::Decimal;
use std::str::FromStr;
use std::time::Duration;
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn currency(id: &str) -> Currency {
    registry().currency_by_id(id).unwrap()
}

fn client(server: &MockServer) -> CoinGecko {
    CoinGecko::new(
        &server.uri(),
        Some("cg-key".into()),
        true,
        Duration::from_millis(500),
        Duration::from_secs(60),
    )
}

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

#[tokio::test]
async fn simple_price_with_key_exact_decimals_and_cache() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/simple/price"))
        .and(query_param("ids", "ethereum,usd-coin"))
        .and(query_param("vs_currencies", "usd"))
        .and(header("x-cg-pro-api-key", "cg-key"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            r#"{"ethereum":{"usd":3012.123456789012345678},"usd-coin":{"usd":0.999876}}"#,
            "application/json",
        ))
        .expect(1) // the second call is answered from the cache
        .mount(&server)
        .await;
    let cg = client(&server);
    let eth = currency("8453:native");
    let usdc = currency("1:0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48");
    let prices = cg.usd_prices(&[eth.clone(), usdc.clone()]).await.unwrap();
    // Exactly as written: no float on the way.
    assert_eq!(prices[&eth.id], dec("3012.123456789012345678"));
    assert_eq!(prices[&usdc.id], dec("0.999876"));
    assert_eq!(
        cg.usd_price(&eth).await.unwrap(),
        dec("3012.123456789012345678")
    );
}

#[tokio::test]
async fn token_price_by_contract_for_currencies_without_a_price_id() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/simple/token_price/ethereum"))
        .and(query_param(
            "contract_addresses",
            "0x5FbDB2315678afecb367f032d93F642f64180aa3",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            r#"{"0x5fbdb2315678afecb367f032d93f642f64180aa3":{"usd":1.2e-5}}"#,
            "application/json",
        ))
        .mount(&server)
        .await;
    let cg = client(&server);
    // A token the registry has no price id for: priced by contract on its platform.
    let mut token = currency("1:0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48");
    token.id = "1:0x5fbdb2315678afecb367f032d93f642f64180aa3".into();
    token.address = Some("0x5FbDB2315678afecb367f032d93F642f64180aa3".into());
    // The registry has no entry (so no price id) for this token: priced by contract.
    assert_eq!(cg.usd_price(&token).await.unwrap(), dec("0.000012"));
}

#[tokio::test]
async fn every_failure_is_typed() {
    let eth = currency("8453:native");
    type Expect = fn(&PriceError) -> bool;
    let cases: Vec<(ResponseTemplate, Expect)> = vec![
        (ResponseTemplate::new(429).set_body_string(r#"{"status":{"error_code":429,"error_message":"You've exceeded the Rate Limit."}}"#), |e| *e == PriceError::RateLimited),
        (ResponseTemplate::new(500), |e| *e == PriceError::Upstream(500)),
        (ResponseTemplate::new(503), |e| *e == PriceError::Upstream(503)),
        (ResponseTemplate::new(401).set_body_string(r#"{"status":{"error_code":10002,"error_message":"API Key Missing"}}"#), |e| *e == PriceError::Upstream(401)),
        (ResponseTemplate::new(200).set_body_raw("{not json", "application/json"), |e| matches!(e, PriceError::Malformed(_))),
        (ResponseTemplate::new(200).set_body_raw(r#"{"ethereum":{"usd":"3000"}}"#, "application/json"), |e| matches!(e, PriceError::Malformed(_))),
        (ResponseTemplate::new(200).set_body_raw(r#"{"ethereum":{"usd":-1}}"#, "application/json"), |e| matches!(e, PriceError::Malformed(_))),
        (ResponseTemplate::new(200).set_body_raw(r#"{"ethereum":{"usd":0}}"#, "application/json"), |e| matches!(e, PriceError::Malformed(_))),
        (ResponseTemplate::new(200).set_body_raw(r#"{"ethereum":{"usd":0.0}}"#, "application/json"), |e| matches!(e, PriceError::Malformed(_))),
        (ResponseTemplate::new(200).set_body_raw(r#"{}"#, "application/json"), |e| matches!(e, PriceError::Missing(_))),
        (ResponseTemplate::new(200).set_body_raw(r#"{"ethereum":{"eur":2800}}"#, "application/json"), |e| matches!(e, PriceError::Missing(_))),
        (ResponseTemplate::new(200).set_delay(Duration::from_secs(3)).set_body_raw(r#"{"ethereum":{"usd":1}}"#, "application/json"), |e| *e == PriceError::Timeout),
    ];
    for (i, (response, expected)) in cases.into_iter().enumerate() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/simple/price"))
            .respond_with(response)
            .mount(&server)
            .await;
        let err = client(&server).usd_price(&eth).await.unwrap_err();
        assert!(expected(&err), "case {i}: {err:?}");
    }
    // Nobody listening.
    let cg = CoinGecko::new(
        "http://127.0.0.1:9",
        None,
        false,
        Duration::from_millis(500),
        Duration::from_secs(1),
    );
    assert!(matches!(
        cg.usd_price(&eth).await,
        Err(PriceError::Unreachable(_) | PriceError::Timeout)
    ));
}

/// CoinGecko is asked for each price's `last_updated_at`, its documented way to tell a stale
/// price: one its feed has not updated for more than `MAX_PRICE_AGE_SECS` is refused, by id
/// and by contract, rather than used to price an order at what the currency was worth then.
#[tokio::test]
async fn a_price_the_feed_stopped_updating_is_refused() {
    use payorders::pricing::coingecko::MAX_PRICE_AGE_SECS;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let eth = currency("8453:native");
    let mut token = currency("1:0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48");
    token.id = "1:0x5fbdb2315678afecb367f032d93f642f64180aa3".into();
    token.address = Some("0x5FbDB2315678afecb367f032d93F642f64180aa3".into());
    let answer = |at: u64| {
        format!(
            r#"{{"ethereum":{{"usd":3000.5,"last_updated_at":{at}}},"0x5fbdb2315678afecb367f032d93f642f64180aa3":{{"usd":1.01,"last_updated_at":{at}}}}}"#
        )
    };
    for (at, fresh) in [
        (now - 60, true),
        (now - MAX_PRICE_AGE_SECS + 30, true),
        (now - MAX_PRICE_AGE_SECS - 30, false),
        (now - 86_400, false),
    ] {
        let server = MockServer::start().await;
        for p in ["/simple/price", "/simple/token_price/ethereum"] {
            Mock::given(method("GET"))
                .and(path(p))
                .and(query_param("include_last_updated_at", "true"))
                .respond_with(
                    ResponseTemplate::new(200).set_body_raw(answer(at), "application/json"),
                )
                .mount(&server)
                .await;
        }
        let cg = client(&server);
        for (c, price) in [(&eth, "3000.5"), (&token, "1.01")] {
            match cg.usd_price(c).await {
                Ok(p) if fresh => assert_eq!(p, dec(price)),
                Err(PriceError::Stale { what, age_secs }) if !fresh => {
                    assert_eq!(
                        what,
                        if c.id == eth.id {
                            "ethereum"
                        } else {
                            &token.id[..]
                        }
                    );
                    assert!(age_secs >= now - at, "{age_secs}");
                }
                other => panic!("{} updated {} s ago: {other:?}", c.id, now - at),
            }
        }
    }
    // Listing options (a quote), a stale price leaves its currency out, not the others;
    // a source that fails still fails.
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/simple/price"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            format!(
                r#"{{"ethereum":{{"usd":3000.5,"last_updated_at":{}}}}}"#,
                now - 60
            ),
            "application/json",
        ))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/simple/token_price/ethereum"))
        .respond_with(
            ResponseTemplate::new(200).set_body_raw(answer(now - 86_400), "application/json"),
        )
        .mount(&server)
        .await;
    let known = client(&server)
        .usd_prices_known(&[eth.clone(), token.clone()])
        .await
        .unwrap();
    assert_eq!(known.len(), 1, "{known:?}");
    assert_eq!(known[&eth.id], dec("3000.5"));
    let down = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&down)
        .await;
    assert_eq!(
        client(&down)
            .usd_prices_known(std::slice::from_ref(&eth))
            .await,
        Err(PriceError::Upstream(503))
    );
    // No time to tell the age by (`null`, as for a field left out): the price is taken. A
    // time that is not one is a malformed answer, not a fresh price.
    let null = simple_price(r#"{"ethereum":{"usd":3000,"last_updated_at":null}}"#).await;
    assert_eq!(client(&null).usd_price(&eth).await.unwrap(), dec("3000"));
    let word = simple_price(r#"{"ethereum":{"usd":3000,"last_updated_at":"yesterday"}}"#).await;
    assert!(matches!(
        client(&word).usd_price(&eth).await,
        Err(PriceError::Malformed(_))
    ));
}

/// Listing options, a currency whose price is no price (zero, negative, null, text) is left
/// out like one with no price at all; the others are still quoted.
#[tokio::test]
async fn a_price_that_is_no_price_leaves_only_its_currency_out() {
    let eth = currency("8453:native");
    let usdt = currency("10:0x94b008aa00579c1307b0ef2c499ad98a8ce58e58");
    for bad in ["0", "-1", "null", r#""3000""#] {
        let body = format!(r#"{{"ethereum":{{"usd":3000}},"tether":{{"usd":{bad}}}}}"#);
        let server = simple_price(&body).await;
        let known = client(&server)
            .usd_prices_known(&[eth.clone(), usdt.clone()])
            .await
            .unwrap_or_else(|e| panic!("tether at {bad}: {e}"));
        assert_eq!(known.len(), 1, "tether at {bad}: {known:?}");
        assert_eq!(known[&eth.id], dec("3000"));
        // Asked for alone, it is still an error.
        assert!(matches!(
            client(&server).usd_price(&usdt).await,
            Err(PriceError::Malformed(_))
        ));
    }
}

/// A price a decimal holds only rounded (more than 28 significant digits) is refused, not
/// rounded: rounded up, it would ask the payer for less.
#[tokio::test]
async fn a_price_past_a_decimals_precision_is_refused_not_rounded() {
    let eth = currency("8453:native");
    for text in [
        "0.00000000000000000000000000005",
        "3000.00000000000000000000000001",
        "3000.000000000000000000000000001e0",
    ] {
        let server = simple_price(&format!(r#"{{"ethereum":{{"usd":{text}}}}}"#)).await;
        assert!(
            matches!(
                client(&server).usd_price(&eth).await,
                Err(PriceError::Malformed(_))
            ),
            "{text}"
        );
    }
    // Within it, exponents included, a price reads exactly.
    let server = simple_price(r#"{"ethereum":{"usd":3.00012e3}}"#).await;
    assert_eq!(
        client(&server).usd_price(&eth).await.unwrap(),
        dec("3000.12")
    );
}

/// A fake CoinGecko whose `/simple/price` answers `body`.
async fn simple_price(body: &str) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/simple/price"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(body.to_owned(), "application/json"))
        .mount(&server)
        .await;
    server
}
