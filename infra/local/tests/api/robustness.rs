//! Malformed bodies, headers, paths and queries on every route: always a 4xx in our error
//! shape, never a 5xx, and nothing written.

use crate::support::*;
use payorders_local::template::Template;
use reqwest::header::{HeaderMap, HeaderValue};

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
    let tpl = Template::load(&template_path()).unwrap();
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
    let mut checked = 0;
    for (f, route) in tpl.routes() {
        for path in route_paths(&route.path) {
            let mut cases: Vec<(String, HeaderMap, Option<Vec<u8>>)> = Vec::new();
            for (name, body) in &bodies {
                let mut h = HeaderMap::new();
                h.insert("x-api-key", key.clone());
                h.insert("content-type", HeaderValue::from_static("application/json"));
                cases.push((format!("body {name}"), h, Some(body.clone())));
            }
            let mut h = HeaderMap::new();
            h.insert("x-api-key", key.clone());
            h.insert("content-type", HeaderValue::from_static("text/plain"));
            cases.push((
                "text/plain".into(),
                h,
                Some(br#"{"mode":"DEPOSIT"}"#.to_vec()),
            ));
            let mut h = HeaderMap::new();
            h.insert("x-api-key", key.clone());
            cases.push((
                "no content type".into(),
                h,
                Some(br#"{"mode":"DEPOSIT"}"#.to_vec()),
            ));
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
                cases.push((format!("header {name}"), h, Some(b"{}".to_vec())));
            }
            for (label, headers, body) in cases {
                let r = app.send(&route.method, &path, headers, body).await;
                assert!(
                    (400..500).contains(&r.status),
                    "{} {path} [{label}] ({}) -> {} {}",
                    route.method,
                    f.binary,
                    r.status,
                    r.text
                );
                assert!(
                    r.body["error"]["code"].is_string(),
                    "{} {path} [{label}]: {}",
                    route.method,
                    r.text
                );
                checked += 1;
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
                let r = app
                    .send(&route.method, &format!("{path}?{q}"), h, None)
                    .await;
                assert!(
                    r.status < 500,
                    "{} {path}?{q} -> {} {}",
                    route.method,
                    r.status,
                    r.text
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 300, "checked {checked}");
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
