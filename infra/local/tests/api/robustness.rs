//! Malformed bodies, headers, paths and queries on every route, the public ones included:
//! always a 4xx in our error shape (the hosted page's 404 is a page), never a 5xx, and
//! nothing written.

use crate::support::*;
use futures::StreamExt;
use payorders::{DeliveryId, KeyId, OrderId, RefundId, WebhookEndpointId};
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::json;

fn route_paths(path: &str) -> Vec<String> {
    if !path.contains('{') {
        return vec![path.to_owned()];
    }
    [
        "nope",
        "po_",
        "po_0OIl0OIl0OIl0OIl",
        "org_ABrYB8eR5ZuAn3YWtigZ1P",
        "po_P7YcaQR7QGGrVRY31EyJkN",
        "%00%01",
        "%E2%98%83",
        "%FF%FE",
        "..%2F..%2Fetc",
    ]
    .iter()
    .map(|id| path.replace("{id}", id))
    .chain(std::iter::once(path.replace("{id}", &"x".repeat(600))))
    .collect()
}

#[tokio::test]
async fn malformed_requests_to_every_route_get_4xx() {
    let app = spawn_app().await;
    let tpl = crate::support::template();
    let key = HeaderValue::from_str(&app.a.key).unwrap();
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        ("truncated", b"{\"mode\":".to_vec()),
        ("array", b"[]".to_vec()),
        ("null", b"null".to_vec()),
        ("string", b"\"x\"".to_vec()),
        ("number", b"12".to_vec()),
        ("not utf-8", vec![0xff, 0xfe, 0x7b, 0x7d]),
        ("deep", "[".repeat(5000).into_bytes()),
        (
            "huge",
            format!("{{\"metadata\":\"{}\"}}", "a".repeat(300 * 1024)).into_bytes(),
        ),
        (
            "duplicate keys",
            br#"{"mode":"DEPOSIT","mode":"SALE"}"#.to_vec(),
        ),
        (
            "wrong types",
            br#"{"mode":1,"amount":[],"currency":"x"}"#.to_vec(),
        ),
    ];
    // Every case first, then sent 16 at a time: the answers are checked one by one after.
    struct Case {
        method: String,
        path: String,
        label: String,
        function: String,
        headers: HeaderMap,
        body: Option<Vec<u8>>,
        /// A body or header case must be a 4xx in our shape; a garbage query only not a 5xx.
        strict: bool,
    }
    let mut cases: Vec<Case> = Vec::new();
    for (f, route) in tpl.routes() {
        if route.path.starts_with("/health") || route.method == "OPTIONS" {
            // The health routes and CORS preflights read no input: they answer the same
            // whatever is sent.
            continue;
        }
        for path in route_paths(&route.path) {
            let mut case = |label: String, headers: HeaderMap, body: Option<Vec<u8>>, strict| {
                cases.push(Case {
                    method: route.method.clone(),
                    path: path.clone(),
                    label,
                    function: f.function.clone(),
                    headers,
                    body,
                    strict,
                })
            };
            for (name, body) in &bodies {
                let mut h = HeaderMap::new();
                h.insert("x-api-key", key.clone());
                h.insert("content-type", HeaderValue::from_static("application/json"));
                case(format!("body {name}"), h, Some(body.clone()), true);
            }
            let mut h = HeaderMap::new();
            h.insert("x-api-key", key.clone());
            h.insert("content-type", HeaderValue::from_static("text/plain"));
            case(
                "text/plain".into(),
                h,
                Some(br#"{"mode":"DEPOSIT"}"#.to_vec()),
                true,
            );
            let mut h = HeaderMap::new();
            h.insert("x-api-key", key.clone());
            case(
                "no content type".into(),
                h,
                Some(br#"{"mode":"DEPOSIT"}"#.to_vec()),
                true,
            );
            for (name, value) in [
                (
                    "x-api-key",
                    HeaderValue::from_bytes(b"sk_test_\xff\xfe").unwrap(),
                ),
                (
                    "x-api-key",
                    HeaderValue::from_str(&"k".repeat(4000)).unwrap(),
                ),
                ("authorization", HeaderValue::from_static("Bearer")),
                (
                    "authorization-signature",
                    HeaderValue::from_static("APIKey=,signature=,timestamp="),
                ),
                (
                    "authorization-signature",
                    HeaderValue::from_bytes(b"v=2,\xff").unwrap(),
                ),
                (
                    "idempotency-key",
                    HeaderValue::from_bytes(b"\xe2\x98\x83").unwrap(),
                ),
            ] {
                let mut h = HeaderMap::new();
                if name != "x-api-key" {
                    h.insert("x-api-key", key.clone());
                }
                h.insert(name, value);
                h.insert("content-type", HeaderValue::from_static("application/json"));
                case(format!("header {name}"), h, Some(b"{}".to_vec()), true);
            }
            // Garbage query strings.
            for q in [
                "%ZZ",
                "limit=%FF",
                "=",
                "&&&",
                "cursor=%00",
                "status=PENDING&status=",
                "x",
            ] {
                let mut h = HeaderMap::new();
                h.insert("x-api-key", key.clone());
                cases.push(Case {
                    method: route.method.clone(),
                    path: format!("{path}?{q}"),
                    label: format!("query {q}"),
                    function: f.function.clone(),
                    headers: h,
                    body: None,
                    strict: false,
                });
            }
        }
    }
    let checked = cases.len();
    // The public routes' per-address budgets (60 views a minute) would answer most of
    // their cases 429 before reading them: each 50 public cases come from a loopback
    // address of their own.
    let is_public = |c: &Case| {
        ["/public/", "/pay/", "/auth/"]
            .iter()
            .any(|p| c.path.starts_with(p))
    };
    let public_cases = cases.iter().filter(|c| is_public(c)).count();
    let clients: Vec<reqwest::Client> = (0..public_cases.div_ceil(50))
        .map(|i| {
            payorders::net::http_client()
                .local_address(std::net::IpAddr::from([127, 0, 2, 1 + i as u8]))
                .build()
                .unwrap()
        })
        .collect();
    let mut nth_public = 0;
    let cases: Vec<(Case, &reqwest::Client)> = cases
        .into_iter()
        .map(|c| {
            let client = if is_public(&c) {
                nth_public += 1;
                &clients[(nth_public - 1) / 50]
            } else {
                &app.http
            };
            (c, client)
        })
        .collect();
    let app = &app;
    let answers: Vec<(Case, Resp)> = futures::stream::iter(cases)
        .map(|(c, client)| async move {
            let r = app
                .send_from(
                    client,
                    &c.method,
                    &c.path,
                    c.headers.clone(),
                    c.body.clone(),
                )
                .await;
            (c, r)
        })
        .buffer_unordered(16)
        .collect()
        .await;
    for (c, r) in &answers {
        let (method, path, label) = (&c.method, &c.path, &c.label);
        if !c.strict {
            assert!(r.status < 500, "{method} {path} -> {} {}", r.status, r.text);
            continue;
        }
        assert!(
            (400..500).contains(&r.status),
            "{method} {path} [{label}] ({}) -> {} {}",
            c.function,
            r.status,
            r.text
        );
        // The hosted checkout page answers a browser: its 404 is a page, not JSON.
        if path.starts_with("/pay/") && r.status == 404 {
            assert!(r.text.contains("<html"), "{path} [{label}]: {}", r.text);
            continue;
        }
        assert!(
            r.body["error"]["code"].is_string(),
            "{method} {path} [{label}]: {}",
            r.text
        );
    }
    assert!(checked > 300, "checked {checked}");
    // The public routes (no key; the order id is the capability) are among them.
    assert!(public_cases > 100, "public cases {public_cases}");
    assert!(
        !answers.iter().any(|(c, r)| is_public(c) && r.status == 429),
        "a public case was refused by its address's budget before it was read"
    );
    // Unknown routes and methods are 404s in our shape.
    for (m, p) in [
        ("GET", "/"),
        ("DELETE", "/pay-orders"),
        ("PUT", "/pay-orders/x"),
        ("GET", "/pay-orders/x/y/z"),
    ] {
        app.send(m, p, HeaderMap::new(), None)
            .await
            .assert_error(404, "ROUTE_NOT_FOUND");
    }
    // None of it created anything.
    let list = app.get(&app.a, "/pay-orders").await;
    assert_eq!(list.body["data"], serde_json::json!([]));
}

#[tokio::test]
async fn body_over_256_kb_is_413() {
    let app = spawn_app().await;
    let mut body = deposit_body();
    body["metadata"] = serde_json::json!({"blob": "a".repeat(260 * 1024)});
    let r = app.post(&app.a, "/pay-orders", Some(&body)).await;
    r.assert_error(413, "PAYLOAD_TOO_LARGE");
}

/// Timestamps that are valid RFC 3339 but fall past year 9999 (or before year 0) in UTC:
/// a 400 naming the parameter, in a query, a body or a cursor. They used to panic the
/// handler and drop the connection.
#[tokio::test]
async fn out_of_range_timestamps_are_400s() {
    use base64::Engine;
    let app = spawn_app().await;
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    for value in ["9999-12-31T23:59:59-01:00", "0000-01-01T00:00:00+01:00"] {
        let query = value.replace('+', "%2B");
        for path in ["/pay-orders", "/events"] {
            for param in ["created_gte", "created_lte"] {
                let r = app.get(&app.a, &format!("{path}?{param}={query}")).await;
                r.assert_error(400, "INVALID_TIMESTAMP");
                assert_eq!(r.body["error"]["param"], param, "{path}: {}", r.text);
            }
            let cursor = b64(&format!("{value}#po_P7YcaQR7QGGrVRY31EyJkN"));
            let r = app.get(&app.a, &format!("{path}?cursor={cursor}")).await;
            r.assert_error(400, "INVALID_CURSOR");
            assert_eq!(r.body["error"]["param"], "cursor");
        }
        let r = app
            .create_deposit(&app.a, &serde_json::json!({"expires_at": value}))
            .await;
        r.assert_error(400, "INVALID_EXPIRY");
        assert_eq!(r.body["error"]["param"], "expires_at");
    }
    // The last second of 9999 in UTC is a valid bound, far beyond any order.
    let r = app
        .get(&app.a, "/pay-orders?created_lte=9999-12-31T23:59:59Z")
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

/// A cursor combined with a window it is outside of pages like any other window on
/// DynamoDB (which refuses a query starting outside its key range): an empty page, or the
/// window from its top; never a 503.
#[tokio::test]
async fn cursors_outside_the_created_window_page_on_dynamodb() {
    let app = spawn_app_on(Backend::Dynamo).await;
    for _ in 0..3 {
        assert_eq!(
            app.create_deposit(&app.a, &serde_json::json!({}))
                .await
                .status,
            201
        );
    }
    let later = payorders::Timestamp::now().plus_seconds(60).to_key();
    for path in ["/pay-orders", "/events"] {
        let first = app.get(&app.a, &format!("{path}?limit=1")).await;
        assert_eq!(first.status, 200, "{}", first.text);
        let cursor = first.body["next_cursor"].as_str().unwrap().to_owned();
        // Older than the window: nothing is left in it.
        let r = app
            .get(
                &app.a,
                &format!("{path}?cursor={cursor}&created_gte={later}"),
            )
            .await;
        assert_eq!(r.status, 200, "{path}: {}", r.text);
        assert_eq!(r.body["data"], serde_json::json!([]));
        assert_eq!(r.body["has_more"], false);
        // Newer than the window: the window from its top.
        let earlier = "2020-01-01T00:00:00Z";
        let r = app
            .get(
                &app.a,
                &format!("{path}?cursor={cursor}&created_lte={earlier}"),
            )
            .await;
        assert_eq!(r.status, 200, "{path}: {}", r.text);
        assert_eq!(r.body["data"], serde_json::json!([]));
    }
    // Before the 30 days GET /events lists: an empty page, not a reversed range.
    let r = app
        .get(&app.a, "/events?created_lte=2020-01-01T00:00:00Z")
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["data"], serde_json::json!([]));
}

/// Every route that takes a body reads it into its own type: a field it does not know is
/// `400 UNKNOWN_PARAMETER` naming that field, whatever else the body holds, and a field
/// given twice answers with that field as `param`; every list refuses an unknown query
/// parameter the same way.
#[tokio::test]
async fn every_route_names_the_field_it_refuses() {
    let app = spawn_app().await;
    let tpl = crate::support::template();
    let ids = [
        ("{delivery_id}", DeliveryId::generate().to_string()),
        ("{chain_id}", "84532".to_owned()),
        ("{refund_id}", RefundId::generate().to_string()),
    ];
    let mut posts = 0;
    for (_, route) in tpl.routes() {
        if route.method != "POST" {
            continue;
        }
        let mut path = route.path.clone();
        for (placeholder, id) in &ids {
            path = path.replace(placeholder, id);
        }
        let id = if path.starts_with("/webhook-endpoints") {
            WebhookEndpointId::generate().to_string()
        } else if path.starts_with("/api-keys") {
            KeyId::generate().to_string()
        } else {
            OrderId::generate().to_string()
        };
        let path = path.replace("{id}", &id);
        let r = app
            .signed_post(&app.a, &path, &json!({"zz_unknown": 1}), &[])
            .await;
        r.assert_error(400, "UNKNOWN_PARAMETER");
        assert_eq!(
            r.body["error"]["param"], "zz_unknown",
            "POST {path}: {}",
            r.text
        );
        posts += 1;
    }
    assert!(posts >= 10, "{posts}");

    // A duplicated field is refused, not silently the last one.
    let dup = br#"{"mode":"DEPOSIT","mode":"SALE"}"#.to_vec();
    let mut h = HeaderMap::new();
    h.insert("x-api-key", HeaderValue::from_str(&app.a.key).unwrap());
    h.insert("content-type", HeaderValue::from_static("application/json"));
    let r = app.send("POST", "/pay-orders", h, Some(dup)).await;
    r.assert_error(400, "INVALID_MODE");
    assert_eq!(r.body["error"]["param"], "mode", "{}", r.text);

    for path in [
        "/pay-orders?zz_unknown=1",
        "/events?zz_unknown=1",
        &format!("/pay-orders/{}/process?zz_unknown=1", OrderId::generate()),
    ] {
        let r = app.get(&app.a, path).await;
        r.assert_error(400, "UNKNOWN_PARAMETER");
        assert_eq!(
            r.body["error"]["param"], "zz_unknown",
            "GET {path}: {}",
            r.text
        );
    }
}
