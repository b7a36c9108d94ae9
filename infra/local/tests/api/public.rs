//! The public order API (no key; the order id is the capability): the customer's view and
//! what it never shows, choosing the currency under the merchant route's rule, the QR code
//! of the payment URI, Server-Sent Events, CORS and the per-IP limits.

use crate::support::*;
use payorders::checkout::sse;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const BASE_SEPOLIA: u64 = 84532;

/// A signed SALE with items, other metadata, a webhook URL and a nonce (what the customer
/// must never see), redirect and cancel URLs.
async fn sale(app: &TestApp) -> Value {
    sale_with_nonce(app, "nonce-must-stay-private-42").await
}

/// As [`sale`], with its own nonce (a nonce is single use per organization).
async fn sale_with_nonce(app: &TestApp, nonce: &str) -> Value {
    let body = json!({
        "mode": "SALE",
        "amount": "49.99",
        "fiat_unit": "USD",
        "metadata": {
            "items": [{"name": "Premium Widget", "quantity": 1, "unit_price": 49.99, "sku": "internal-sku-7"}],
            "customer_email": "buyer@example.com",
            "internal_note": "vip-discount-code-XYZ"
        },
        "webhook_url": "https://merchant.example/hooks/secret-path-123",
        "redirect_url": "https://merchant.example/thanks",
        "cancel_url": "https://merchant.example/cart",
        "nonce": nonce,
    });
    let r = app.signed_post(&app.a, "/pay-orders", &body, &[]).await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.body
}

/// A request without any key.
async fn anonymous(app: &TestApp, method: &str, path: &str, body: Option<&Value>) -> Resp {
    let mut h = headers(&[]);
    if body.is_some() {
        h.insert("content-type", "application/json".parse().unwrap());
    }
    app.send(
        method,
        path,
        h,
        body.map(|b| serde_json::to_vec(b).unwrap()),
    )
    .await
}

/// Some EVM address (a refund address a third party would name).
fn some_address() -> String {
    "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed".to_owned()
}

fn usdc() -> Value {
    json!({"chain_id": BASE_SEPOLIA, "address": BASE_SEPOLIA_USDC})
}

#[tokio::test]
async fn the_customer_view_shows_what_a_payer_needs_and_nothing_merchant_only() {
    let app = spawn_app().await;
    let order = sale(&app).await;
    let id = order["id"].as_str().unwrap();
    // The merchant's answers link the customer's page.
    assert_eq!(order["hosted_url"], format!("{}/pay/{id}", app.base));
    assert_eq!(order["payment_url"], order["hosted_url"]);

    let r = anonymous(&app, "GET", &format!("/public/pay-orders/{id}"), None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = &r.body;
    assert_eq!(v["object"], "public_pay_order");
    assert_eq!(v["status"], "PENDING");
    assert_eq!(v["merchant"]["name"], "A");
    assert_eq!(v["price"], json!({"amount": "49.99", "currency": "USD"}));
    assert_eq!(
        v["items"],
        json!([{"name": "Premium Widget", "quantity": 1, "unit_price": 49.99}])
    );
    // The success page is told only once the order is paid (the browser test follows it).
    assert!(v["redirect_url"].is_null(), "{v}");
    assert_eq!(v["cancel_url"], "https://merchant.example/cart");
    assert_eq!(v["hosted_url"], format!("{}/pay/{id}", app.base));
    assert_eq!(
        v["events_url"],
        format!("{}/public/pay-orders/{id}/events", app.base)
    );
    assert!(v["time_remaining"].as_i64().unwrap() > 0);
    assert!(v["payment"].is_null());
    // The test organization's test-network wallets, each currency a choice.
    let choices: Vec<&str> = v["currencies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert!(
        choices.contains(&"84532:0x036cbd53842c5426634e7929541ec2318f3dcf7e"),
        "{choices:?}"
    );
    assert!(v["currencies"][0]["network"]["name"].is_string());

    // Never: metadata beyond the items, webhook URLs, nonce, versions, ids of the
    // organization or keys, the merchant's key material.
    for hidden in [
        "internal-sku-7",
        "buyer@example.com",
        "vip-discount-code-XYZ",
        "secret-path-123",
        "nonce-must-stay-private-42",
        "\"metadata\"",
        "\"webhook_url\"",
        "\"nonce\"",
        "\"version\"",
        "\"organization_id\"",
        "\"idempotency_key\"",
        "\"derivation_index\"",
        app.a.org_id.as_str(),
        app.a.key.as_str(),
        app.a.secret.as_str(),
    ] {
        assert!(!r.text.contains(hidden), "{hidden} leaked: {}", r.text);
    }
    // No key is needed, and a key changes nothing.
    let with_key = app.get(&app.b, &format!("/public/pay-orders/{id}")).await;
    assert_eq!(with_key.status, 200);

    // Unknown and malformed ids are a 404 in our shape.
    anonymous(
        &app,
        "GET",
        "/public/pay-orders/po_1111111111111111111111",
        None,
    )
    .await
    .assert_error(404, "RESOURCE_NOT_FOUND");
    anonymous(&app, "GET", "/public/pay-orders/nope", None)
        .await
        .assert_error(404, "RESOURCE_NOT_FOUND");
}

#[tokio::test]
async fn the_customer_chooses_the_currency_under_the_merchant_rule_and_gets_a_qr_code() {
    let app = spawn_app().await;
    let order = sale(&app).await;
    let id = order["id"].as_str().unwrap();
    let details = format!("/public/pay-orders/{id}/payment-details");

    // No QR code before a currency is chosen.
    anonymous(&app, "GET", &format!("/public/pay-orders/{id}/qr"), None)
        .await
        .assert_error(422, "PAYMENT_DETAILS_REQUIRED");

    // The merchant route's refusals, word for word.
    for (body, status, code) in [
        (json!({}), 400, "MISSING_CURRENCY"),
        (
            json!({"source_currency": {"chain_id": 84532, "address": "0x0000000000000000000000000000000000000001"}}),
            422,
            "UNSUPPORTED_CURRENCY",
        ),
        (
            json!({"source_currency": usdc(), "other": 1}),
            400,
            "UNKNOWN_PARAMETER",
        ),
        (
            json!({"source_currency": {"chain_id": 8453, "address": null}}),
            422,
            "NETWORK_MODE_MISMATCH",
        ),
    ] {
        let public = anonymous(&app, "POST", &details, Some(&body)).await;
        let merchant = app
            .post(
                &app.a,
                &format!("/pay-orders/{id}/payment-details"),
                Some(&body),
            )
            .await;
        assert_eq!(public.status, status, "{}", public.text);
        assert_eq!(public.body["error"]["code"], code, "{}", public.text);
        assert_eq!(
            merchant.body["error"], public.body["error"],
            "{}",
            merchant.text
        );
    }

    let r = anonymous(
        &app,
        "POST",
        &details,
        Some(&json!({"source_currency": usdc()})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["object"], "public_pay_order");
    assert_eq!(r.body["status"], "AWAITING_PAYMENT");
    let p = &r.body["payment"];
    assert_eq!(p["amount"]["ui"], "49.99");
    assert_eq!(p["network"]["name"], "Base Sepolia");
    let address = p["deposit_address"].as_str().unwrap();
    // EIP-681: the token's transfer call on chain 84532, amount in base units.
    assert_eq!(
        p["uri"],
        format!(
            "ethereum:0x036CbD53842c5426634e7929541eC2318f3dCF7e@84532/transfer?address={address}&uint256=49990000"
        )
    );
    assert!(!r.text.contains("\"version\""), "{}", r.text);
    // Chosen once: the merchant sees the same payment, and a second choice is refused.
    let m = app.get(&app.a, &format!("/pay-orders/{id}")).await;
    assert_eq!(m.body["payment"]["input"]["amount"]["raw"], "49990000");
    anonymous(
        &app,
        "POST",
        &details,
        Some(&json!({"source_currency": usdc()})),
    )
    .await
    .assert_error(422, "ORDER_NOT_PENDING");

    // The QR code: PNG by default, SVG on request, sizes 128 to 1024.
    let qr = format!("{}/public/pay-orders/{id}/qr", app.base);
    let png = app.http.get(&qr).send().await.unwrap();
    assert_eq!(png.status(), 200);
    assert_eq!(png.headers()["content-type"], "image/png");
    assert_eq!(png.headers()["access-control-allow-origin"], "*");
    let bytes = png.bytes().await.unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    assert!((200..=256).contains(&width), "{width}");
    let big = app
        .http
        .get(format!("{qr}?size=1024"))
        .send()
        .await
        .unwrap();
    let big = big.bytes().await.unwrap();
    let width = u32::from_be_bytes(big[16..20].try_into().unwrap());
    assert!((900..=1024).contains(&width), "{width}");
    let svg = app
        .http
        .get(format!("{qr}?format=svg&size=128"))
        .send()
        .await
        .unwrap();
    assert_eq!(svg.headers()["content-type"], "image/svg+xml");
    assert!(svg.text().await.unwrap().starts_with("<?xml"));
    for bad in [
        "size=127",
        "size=1025",
        "size=big",
        "format=gif",
        "colour=red",
    ] {
        let r = anonymous(
            &app,
            "GET",
            &format!("/public/pay-orders/{id}/qr?{bad}"),
            None,
        )
        .await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text);
    }
}

#[tokio::test]
async fn preflights_are_answered_for_any_origin_without_credentials() {
    let app = spawn_app().await;
    let order = sale(&app).await;
    let id = order["id"].as_str().unwrap();
    for path in [
        format!("/public/pay-orders/{id}"),
        format!("/public/pay-orders/{id}/payment-details"),
    ] {
        let r = app
            .send(
                "OPTIONS",
                &path,
                headers(&[
                    ("origin", "https://shop.example"),
                    ("access-control-request-method", "POST"),
                    ("access-control-request-headers", "content-type"),
                ]),
                None,
            )
            .await;
        assert_eq!(r.status, 204, "{path}");
        assert_eq!(r.headers["access-control-allow-origin"], "*");
        assert!(
            r.headers["access-control-allow-methods"]
                .to_str()
                .unwrap()
                .contains("POST")
        );
        assert!(
            r.headers["access-control-allow-headers"]
                .to_str()
                .unwrap()
                .to_ascii_lowercase()
                .contains("content-type")
        );
        assert!(!r.headers.contains_key("access-control-allow-credentials"));
    }
    let r = anonymous(&app, "GET", &format!("/public/pay-orders/{id}"), None).await;
    assert_eq!(r.headers["access-control-allow-origin"], "*");
    // Errors carry CORS too, so a page can read them.
    let r = anonymous(
        &app,
        "GET",
        "/public/pay-orders/po_1111111111111111111111",
        None,
    )
    .await;
    assert_eq!(r.headers["access-control-allow-origin"], "*");
    // The merchant API is not opened to browsers.
    let r = app.get(&app.a, &format!("/pay-orders/{id}")).await;
    assert!(!r.headers.contains_key("access-control-allow-origin"));
}

#[tokio::test]
async fn each_address_gets_60_views_and_100_qr_codes_a_minute() {
    let mut app = spawn_app().await;
    let minute = || payorders::Timestamp::now().unix().div_euclid(60);
    // The budgets are per address and clock minute: a minute boundary crossed between the
    // requests (a loaded machine) resets them. The attempt then runs again at once from
    // another loopback address, whose budgets are untouched, in the minute just begun.
    let mut attempt = 0;
    let id = loop {
        app.http = payorders::net::http_client()
            .local_address(std::net::IpAddr::from([127, 0, 0, 10 + attempt]))
            .build()
            .unwrap();
        // A new order each attempt: the currency is chosen once per order.
        let order = sale_with_nonce(&app, &format!("rate-attempt-{attempt}")).await;
        let id = order["id"].as_str().unwrap().to_owned();
        let started = minute();
        match views_and_qr_codes_within_a_minute(&app, &id).await {
            Ok(()) => break id,
            Err(e) if minute() != started && attempt < 2 => {
                attempt += 1;
                eprintln!("a minute boundary fell inside the attempt ({e}); again");
            }
            Err(e) => panic!("{e}"),
        }
    };
    // The budgets are the address's own: from 127.0.0.1 the order still shows.
    app.http = payorders::net::http_client().build().unwrap();
    assert_eq!(
        anonymous(&app, "GET", &format!("/public/pay-orders/{id}"), None)
            .await
            .status,
        200
    );
    // The merchant API has no such limit.
    assert_eq!(
        app.get(&app.a, &format!("/pay-orders/{id}")).await.status,
        200
    );
}

/// The views budget (choosing the currency, the order, the page) and the QR budget run out
/// where they should; Err says where they did not.
async fn views_and_qr_codes_within_a_minute(app: &TestApp, id: &str) -> Result<(), String> {
    let check = |ok: bool, what: String| if ok { Ok(()) } else { Err(what) };
    // Choosing the currency counts as a view.
    let r = anonymous(
        app,
        "POST",
        &format!("/public/pay-orders/{id}/payment-details"),
        Some(&json!({"source_currency": usdc()})),
    )
    .await;
    check(
        r.status == 200,
        format!("currency choice: {} {}", r.status, r.text),
    )?;
    let view = format!("/public/pay-orders/{id}");
    for n in 1..60 {
        let r = anonymous(app, "GET", &view, None).await;
        check(
            r.status == 200,
            format!("view {n}: {} {}", r.status, r.text),
        )?;
    }
    let limited = anonymous(app, "GET", &view, None).await;
    check(
        limited.status == 429,
        format!("view 61: {}", limited.status),
    )?;
    limited.assert_error(429, "RATE_LIMITED");
    assert_eq!(limited.body["error"]["type"], "rate_limit");
    let after: i64 = limited.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&after), "{after}");
    assert_eq!(limited.headers["access-control-allow-origin"], "*");
    // The page and the event stream share the views budget; QR codes have their own.
    let page = anonymous(app, "GET", &format!("/pay/{id}"), None).await;
    check(
        page.status == 429,
        format!("page after 61 views: {}", page.status),
    )?;
    page.assert_error(429, "RATE_LIMITED");
    let qr = format!("/public/pay-orders/{id}/qr?format=svg&size=128");
    for n in 0..100 {
        let r = app
            .http
            .get(format!("{}{qr}", app.base))
            .send()
            .await
            .unwrap();
        check(r.status() == 200, format!("qr {n}: {}", r.status()))?;
    }
    let r = anonymous(app, "GET", &qr, None).await;
    check(r.status == 429, format!("qr 101: {}", r.status))?;
    r.assert_error(429, "RATE_LIMITED");
    Ok(())
}

/// Reads Server-Sent Events from `resp` until `done` says so (at most `within`).
async fn read_events(
    resp: &mut reqwest::Response,
    within: Duration,
    mut done: impl FnMut(&[(String, Value)]) -> bool,
) -> (String, Vec<(String, Value)>) {
    let started = Instant::now();
    let (mut text, mut events) = (String::new(), Vec::new());
    while started.elapsed() < within {
        let chunk = match tokio::time::timeout(within - started.elapsed(), resp.chunk()).await {
            Ok(Ok(Some(c))) => c,
            _ => break,
        };
        text.push_str(std::str::from_utf8(&chunk).unwrap());
        while let Some(end) = text.find("\n\n") {
            let block: String = text.drain(..end + 2).collect();
            let id = block.lines().find_map(|l| l.strip_prefix("id: "));
            let data = block.lines().find_map(|l| l.strip_prefix("data: "));
            if let (Some(id), Some(data)) = (id, data) {
                events.push((id.to_owned(), serde_json::from_str(data).unwrap()));
            }
        }
        if done(&events) {
            break;
        }
    }
    (text, events)
}

#[tokio::test]
async fn events_follow_the_order_to_paid_and_resume_after_the_last_event_id() {
    let app = spawn_app().await;
    let order = sale(&app).await;
    let id = order["id"].as_str().unwrap().to_owned();
    let events_url = format!("{}/public/pay-orders/{id}/events", app.base);

    let mut stream = app.http.get(&events_url).send().await.unwrap();
    assert_eq!(stream.status(), 200);
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    assert_eq!(stream.headers()["access-control-allow-origin"], "*");
    let first = stream.chunk().await.unwrap().unwrap();
    assert!(std::str::from_utf8(&first).unwrap().starts_with("retry: "));
    let (_, seen) = read_events(&mut stream, Duration::from_secs(5), |e| !e.is_empty()).await;
    assert_eq!(seen[0].1["status"], "PENDING");
    assert_eq!(seen[0].1["object"], "public_pay_order");

    // The customer chooses, the merchant's test key pays half, then the rest.
    let r = anonymous(
        &app,
        "POST",
        &format!("/public/pay-orders/{id}/payment-details"),
        Some(&json!({"source_currency": usdc()})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let simulate = format!("/pay-orders/{id}/simulate-payment");
    let half = app
        .post(&app.a, &simulate, Some(&json!({"amount": "20"})))
        .await;
    assert_eq!(half.body["status"], "PARTIAL_PAYMENT", "{}", half.text);
    let (_, seen) = read_events(&mut stream, Duration::from_secs(5), |e| {
        e.iter().any(|(_, v)| v["status"] == "PARTIAL_PAYMENT")
    })
    .await;
    let partial = &seen.last().unwrap().1;
    assert_eq!(partial["status"], "PARTIAL_PAYMENT");
    assert_eq!(partial["payment_progress"]["received"]["ui"], "20.0");
    assert_eq!(partial["payment_progress"]["remaining"]["ui"], "29.99");
    assert_eq!(partial["payment_progress"]["percent"], 40.0);
    // The URI asks for what is left.
    assert!(
        partial["payment"]["uri"]
            .as_str()
            .unwrap()
            .ends_with("uint256=29990000"),
        "{partial}"
    );
    let last_id = seen.last().unwrap().0.clone();

    let paid_at = Instant::now();
    let rest = app.post(&app.a, &simulate, None).await;
    assert_eq!(
        rest.body["status"], "AWAITING_CONFIRMATION",
        "{}",
        rest.text
    );
    let (_, seen) = read_events(&mut stream, Duration::from_secs(10), |e| {
        e.iter()
            .any(|(_, v)| v["status"] == "AWAITING_CONFIRMATION")
    })
    .await;
    let detected = paid_at.elapsed();
    let confirming = seen
        .iter()
        .find(|(_, v)| v["status"] == "AWAITING_CONFIRMATION")
        .expect("the payment is seen");
    assert!(
        confirming.1["transfers"][1]["required_confirmations"]
            .as_u64()
            .unwrap()
            >= 1
    );
    assert!(detected < Duration::from_secs(2), "{detected:?}");

    // A reconnect with the last id resumes after it: the states since, never that one again.
    let mut again = app
        .http
        .get(&events_url)
        .header("last-event-id", &last_id)
        .send()
        .await
        .unwrap();
    let (_, resumed) = read_events(&mut again, Duration::from_secs(10), |e| {
        e.iter().any(|(_, v)| v["status"] == "COMPLETED")
    })
    .await;
    assert!(resumed.iter().all(|(i, _)| *i != last_id));
    assert_eq!(resumed[0].1["status"], "AWAITING_CONFIRMATION");
    let done = &resumed.last().unwrap().1;
    assert_eq!(done["status"], "COMPLETED");
    assert_eq!(done["payment_progress"]["percent"], 100.0);
    // A settled order's stream ends by itself.
    let end = tokio::time::timeout(Duration::from_secs(2), again.chunk()).await;
    assert!(matches!(end, Ok(Ok(None))), "{end:?}");
    // And a reconnect naming the settled state gets nothing new.
    let done_id = resumed.last().unwrap().0.clone();
    let mut last = app
        .http
        .get(&events_url)
        .header("last-event-id", &done_id)
        .send()
        .await
        .unwrap();
    let (text, none) = read_events(&mut last, Duration::from_secs(2), |_| false).await;
    assert!(none.is_empty(), "{text}");

    // Unknown orders: a 404 in our shape, not a stream.
    anonymous(
        &app,
        "GET",
        "/public/pay-orders/po_1111111111111111111111/events",
        None,
    )
    .await
    .assert_error(404, "RESOURCE_NOT_FOUND");
}

#[test]
fn event_ids_name_states_opaquely() {
    let now = payorders::Timestamp::now();
    let o = payorders::testing::order(&payorders::OrgId::generate(), false, now);
    let mut next = o.clone();
    next.version += 1;
    let (a, b) = (sse::event_id(&o), sse::event_id(&next));
    assert_ne!(a, b);
    assert_eq!(a.len(), 16);
    assert_eq!(a, sse::event_id(&o.clone()), "the same state, the same id");
}

#[tokio::test]
async fn the_customers_wallet_submits_its_transaction_under_the_merchant_rule() {
    let app = spawn_app().await;
    let order = sale(&app).await;
    let id = order["id"].as_str().unwrap();
    let public_path = format!("/public/pay-orders/{id}/payments");
    let merchant_path = format!("/pay-orders/{id}/payments");
    let unknown = json!({"tx_hash": format!("0x{}", "ab".repeat(32))});
    anonymous(&app, "POST", &public_path, Some(&unknown))
        .await
        .assert_error(422, "PAYMENT_DETAILS_REQUIRED");
    // Whoever holds the link cannot name where a failed exchange refunds the payer.
    let details_path = format!("/public/pay-orders/{id}/payment-details");
    let with_refund = json!({"source_currency": usdc(), "refund_address": some_address()});
    anonymous(&app, "POST", &details_path, Some(&with_refund))
        .await
        .assert_error(400, "UNKNOWN_PARAMETER");
    let r = anonymous(
        &app,
        "POST",
        &format!("/public/pay-orders/{id}/payment-details"),
        Some(&json!({"source_currency": usdc()})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // A malformed hash; a hash on a chain this host cannot read (Base Sepolia has no RPC
    // endpoint in tests; only sandbox hashes are read without one).
    for (body, status) in [(json!({"tx_hash": "nope"}), 400), (unknown.clone(), 503)] {
        let public = anonymous(&app, "POST", &public_path, Some(&body)).await;
        let merchant = app.post(&app.a, &merchant_path, Some(&body)).await;
        assert_eq!(public.status, status, "{}", public.text);
        assert_eq!(
            public.body["error"]["code"], merchant.body["error"]["code"],
            "{}",
            merchant.text
        );
    }
    anonymous(
        &app,
        "POST",
        &public_path,
        Some(&json!({"tx_hash": "0x00", "chain_id": 1})),
    )
    .await
    .assert_error(400, "UNKNOWN_PARAMETER");
    // Nothing was recorded.
    let o = app.get(&app.a, &format!("/pay-orders/{id}")).await;
    assert_eq!(o.body["status"], "AWAITING_PAYMENT");
    assert_eq!(o.body["transfers"], json!([]));
}
