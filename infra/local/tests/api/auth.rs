//! Every way authentication and authorization can fail, and the schemes that pass.

use crate::support::*;
use payorders::auth::sign;
use payorders::*;
use serde_json::json;

#[tokio::test]
async fn missing_unknown_malformed_and_revoked_keys_are_401() {
    let app = spawn_app().await;
    let list = |h: &[(&str, &str)]| app.send("GET", "/pay-orders", headers(h), None);

    list(&[]).await.assert_error(401, "MISSING_API_KEY");
    list(&[("x-api-key", "sk_test_doesnotexist000000000")])
        .await
        .assert_error(401, "INVALID_API_KEY");
    list(&[("x-api-key", "pk_whatever")])
        .await
        .assert_error(401, "INVALID_API_KEY");
    list(&[("authorization", "Basic Zm9vOmJhcg==")])
        .await
        .assert_error(401, "INVALID_API_KEY");
    list(&[("authorization", "Bearer ")])
        .await
        .assert_error(401, "INVALID_API_KEY");
    // A test key presented as live does not exist.
    let as_live = app.a.key.replacen("sk_test_", "sk_live_", 1);
    list(&[("x-api-key", &as_live)])
        .await
        .assert_error(401, "INVALID_API_KEY");
    // Two different keys in one request.
    list(&[
        ("x-api-key", &app.a.key),
        ("authorization", &format!("Bearer {}", app.b.key)),
    ])
    .await
    .assert_error(401, "CONFLICTING_CREDENTIALS");

    // Bearer works as well as X-API-KEY, and both naming the same key is fine.
    assert_eq!(
        list(&[("authorization", &format!("Bearer {}", app.a.key))])
            .await
            .status,
        200
    );
    assert_eq!(
        list(&[
            ("x-api-key", &app.a.key),
            ("authorization", &format!("bearer {}", app.a.key))
        ])
        .await
        .status,
        200
    );

    // Revoked: refused at once.
    let extra = app.key_of_a(vec![Scope::All]).await;
    assert_eq!(list(&[("x-api-key", &extra.key)]).await.status, 200);
    app.store
        .revoke_api_key(&extra.key_id, Timestamp::now())
        .await
        .unwrap();
    list(&[("x-api-key", &extra.key)])
        .await
        .assert_error(401, "API_KEY_REVOKED");
}

#[tokio::test]
async fn missing_scope_is_403() {
    let app = spawn_app().await;
    let reader = app.key_of_a(vec![Scope::OrdersRead]).await;
    assert_eq!(app.get(&reader, "/pay-orders").await.status, 200);
    app.post(&reader, "/pay-orders", Some(&deposit_body()))
        .await
        .assert_error(403, "INSUFFICIENT_SCOPE");
    let writer = app.key_of_a(vec![Scope::OrdersCreate]).await;
    assert_eq!(
        app.post(&writer, "/pay-orders", Some(&deposit_body()))
            .await
            .status,
        201
    );
    app.get(&writer, "/pay-orders")
        .await
        .assert_error(403, "INSUFFICIENT_SCOPE");
    let webhooks_only = app.key_of_a(vec![Scope::WebhooksManage]).await;
    app.get(&webhooks_only, "/pay-orders")
        .await
        .assert_error(403, "INSUFFICIENT_SCOPE");
}

#[tokio::test]
async fn v1_signatures_bad_stale_and_replayed() {
    let app = &spawn_app().await;
    let a = &app.a;
    let body = sale_body();
    let post = move |sig: String, body: serde_json::Value| async move {
        app.call(
            a,
            "POST",
            "/pay-orders",
            Some(&body),
            &[("authorization-signature", &sig)],
        )
        .await
    };

    // Good.
    let ts = now();
    let good = sign::v1_header(&a.key, &a.secret, "POST", "/pay-orders", ts);
    let r = post(good.clone(), body.clone()).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["mode"], "SALE");

    // The exact same request again (same header, same body): refused.
    post(good.clone(), body.clone())
        .await
        .assert_error(401, "REPLAYED_REQUEST");
    // The same header with a different body (same second) passes: the v1 scheme does not
    // bind the body, so only exact replays are refused.
    let mut other = body.clone();
    other["amount"] = json!("50.00");
    assert_eq!(post(good.clone(), other).await.status, 201);

    // Wrong secret, wrong method/path, stale, future, malformed.
    post(
        sign::v1_header(&a.key, "not-the-secret", "POST", "/pay-orders", ts),
        body.clone(),
    )
    .await
    .assert_error(401, "INVALID_SIGNATURE");
    post(
        sign::v1_header(&a.key, &a.secret, "POST", "/pay-orders/x", ts),
        body.clone(),
    )
    .await
    .assert_error(401, "INVALID_SIGNATURE");
    post(
        sign::v1_header(&a.key, &a.secret, "POST", "/pay-orders", now() - 301),
        body.clone(),
    )
    .await
    .assert_error(401, "SIGNATURE_EXPIRED");
    post(
        // Read the clock again: a slow machine may be seconds past `ts` by now. The margin
        // keeps "future" future however long the request takes to arrive.
        sign::v1_header(&a.key, &a.secret, "POST", "/pay-orders", now() + 330),
        body.clone(),
    )
    .await
    .assert_error(401, "SIGNATURE_EXPIRED");
    post(
        format!("APIKey={},signature=zz,timestamp={ts}", a.key),
        body.clone(),
    )
    .await
    .assert_error(401, "INVALID_SIGNATURE");
    // Another organization's secret cannot sign for this key.
    post(
        sign::v1_header(&a.key, &app.b.secret, "POST", "/pay-orders", ts),
        body.clone(),
    )
    .await
    .assert_error(401, "INVALID_SIGNATURE");
    // The signature's APIKey must be the key presented.
    post(
        sign::v1_header(&app.b.key, &app.b.secret, "POST", "/pay-orders", ts),
        body.clone(),
    )
    .await
    .assert_error(401, "CONFLICTING_CREDENTIALS");

    // A signature header alone (no X-API-KEY) authenticates too.
    let sig = sign::v1_header(&a.key, &a.secret, "POST", "/pay-orders", now());
    let r = app
        .send(
            "POST",
            "/pay-orders",
            headers(&[
                ("authorization-signature", &sig),
                ("content-type", "application/json"),
            ]),
            Some(
                serde_json::to_vec(&json!({"mode": "SALE", "amount": "1.00", "fiat_unit": "USD"}))
                    .unwrap(),
            ),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
}

#[tokio::test]
async fn legacy_sha512_and_v2_signatures() {
    let app = &spawn_app().await;
    let a = &app.a;
    let body = sale_body();
    let bytes = serde_json::to_vec(&body).unwrap();
    let post = move |sig: String, bytes: Vec<u8>| async move {
        app.send(
            "POST",
            "/pay-orders",
            headers(&[
                ("x-api-key", &a.key),
                ("authorization-signature", &sig),
                ("content-type", "application/json"),
            ]),
            Some(bytes),
        )
        .await
    };

    // Seed 000's legacy form.
    let ts = now();
    let legacy = format!(
        "APIKey={},signature={},timestamp={ts}",
        a.key,
        sign::legacy(&a.key, &a.secret, ts)
    );
    let r = post(legacy.clone(), bytes.clone()).await;
    assert_eq!(r.status, 201, "{}", r.text);
    post(legacy, bytes.clone())
        .await
        .assert_error(401, "REPLAYED_REQUEST");
    let bad_legacy = format!(
        "APIKey={},signature={},timestamp={ts}",
        a.key,
        sign::legacy(&a.key, "nope", ts)
    );
    post(bad_legacy, bytes.clone())
        .await
        .assert_error(401, "INVALID_SIGNATURE");

    // v2: binds the body and a single-use nonce.
    let v2 = sign::v2_header(
        &a.key,
        &a.secret,
        "POST",
        "/pay-orders",
        now(),
        "nonce-1",
        &bytes,
    );
    let r = post(v2.clone(), bytes.clone()).await;
    assert_eq!(r.status, 201, "{}", r.text);
    post(v2, bytes.clone())
        .await
        .assert_error(401, "NONCE_REUSED");
    // A valid v2 signature over another body.
    let v2 = sign::v2_header(
        &a.key,
        &a.secret,
        "POST",
        "/pay-orders",
        now(),
        "nonce-2",
        b"{}",
    );
    post(v2, bytes.clone())
        .await
        .assert_error(401, "BODY_HASH_MISMATCH");
    // v2 signs the query string too.
    let v2 = sign::v2_header(
        &a.key,
        &a.secret,
        "GET",
        "/pay-orders?limit=1",
        now(),
        "nonce-3",
        b"",
    );
    let ok = app
        .send(
            "GET",
            "/pay-orders?limit=1",
            headers(&[("x-api-key", &a.key), ("authorization-signature", &v2)]),
            None,
        )
        .await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    let v2 = sign::v2_header(
        &a.key,
        &a.secret,
        "GET",
        "/pay-orders?limit=1",
        now(),
        "nonce-4",
        b"",
    );
    app.send(
        "GET",
        "/pay-orders?limit=2",
        headers(&[("x-api-key", &a.key), ("authorization-signature", &v2)]),
        None,
    )
    .await
    .assert_error(401, "INVALID_SIGNATURE");
}

#[tokio::test]
async fn sale_needs_a_signed_request_deposit_does_not() {
    let app = spawn_app().await;
    app.post(&app.a, "/pay-orders", Some(&sale_body()))
        .await
        .assert_error(401, "SIGNATURE_REQUIRED");
    assert_eq!(
        app.post(&app.a, "/pay-orders", Some(&deposit_body()))
            .await
            .status,
        201
    );
    assert_eq!(
        app.signed_post(&app.a, "/pay-orders", &sale_body(), &[])
            .await
            .status,
        201
    );
}

#[tokio::test]
async fn one_legacy_signature_serves_different_requests_in_its_second() {
    let app = &spawn_app().await;
    let a = &app.a;
    let mut ids = Vec::new();
    for _ in 0..2 {
        let r = app.create_deposit(a, &json!({})).await;
        assert_eq!(r.status, 201, "{}", r.text);
        ids.push(r.body["id"].as_str().unwrap().to_owned());
    }
    // A legacy signature covers neither method nor path: one timestamp, one signature.
    let ts = now();
    let legacy = format!(
        "APIKey={},signature={},timestamp={ts}",
        a.key,
        sign::legacy(&a.key, &a.secret, ts)
    );
    let body = json!({"reason": "duplicate"});
    let cancel = |path: String| {
        let (legacy, body) = (legacy.clone(), body.clone());
        async move {
            app.call(
                a,
                "POST",
                &path,
                Some(&body),
                &[("authorization-signature", &legacy)],
            )
            .await
        }
    };

    // Two orders cancelled with the same header and the same body: two requests.
    for id in &ids {
        let r = cancel(format!("/pay-orders/{id}/cancel")).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.body["status"], "CANCELLED");
    }
    // Sending the first again is a replay, and so is the same path escaped otherwise or
    // with a query string added (no route that reads a body reads its query).
    let first = &ids[0];
    for path in [
        format!("/pay-orders/{first}/cancel"),
        format!("/pay-orders/{}/cancel", first.replacen('_', "%5F", 1)),
        format!("/pay-orders/{first}/cancel?again=1"),
    ] {
        cancel(path).await.assert_error(401, "REPLAYED_REQUEST");
    }
}

#[tokio::test]
async fn checkout_settings_check_a_signature_against_the_body() {
    let app = &spawn_app().await;
    let a = &app.a;
    let path = "/settings/checkout";
    let unchanged = app.get(a, path).await.body;
    assert_eq!(unchanged["display_name"], json!(null), "{unchanged}");

    // A v2 signature over `{}` with another body: refused, nothing written.
    let other = br#"{"display_name": "Mallory"}"#;
    v2_post(app, a, path, "checkout-1", b"{}", other)
        .await
        .assert_error(401, "BODY_HASH_MISMATCH");
    assert_eq!(app.get(a, path).await.body, unchanged);
    // Signed over the body it sends: changed.
    let r = v2_post(app, a, path, "checkout-2", other, other).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["display_name"], "Mallory");
    // A v1 signed request is accepted once; unsigned still works.
    let body = json!({"hide_footer": true});
    let sig = sign::v1_header(&a.key, &a.secret, "POST", path, now());
    let v1 = async || {
        app.call(
            a,
            "POST",
            path,
            Some(&body),
            &[("authorization-signature", &sig)],
        )
        .await
    };
    assert_eq!(v1().await.status, 200);
    v1().await.assert_error(401, "REPLAYED_REQUEST");
    let r = app
        .post(a, path, Some(&json!({"hide_footer": false})))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test]
async fn webhook_endpoint_actions_check_a_signature_against_the_body() {
    let app = &spawn_app().await;
    let a = &app.a;
    let r = app
        .post(
            a,
            "/webhook-endpoints",
            Some(&json!({"url": "http://127.0.0.1:9/hooks", "events": ["order.created"]})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let eid = r.body["id"].as_str().unwrap().to_owned();
    let secrets = async || stored_endpoint(app, &a.org_id, &eid).await.secrets.len();
    assert_eq!(secrets().await, 1);
    let rotate = format!("/webhook-endpoints/{eid}/rotate-secret");

    // Signed over `{}`, sent with another (equally empty) body: refused, not rotated.
    v2_post(app, a, &rotate, "rotate-1", b"{}", b"{ }")
        .await
        .assert_error(401, "BODY_HASH_MISMATCH");
    assert_eq!(secrets().await, 1);
    let r = v2_post(app, a, &rotate, "rotate-2", b"{}", b"{}").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.body["secret"].is_string(), "{}", r.text);
    assert_eq!(secrets().await, 2);
    // The other actions without fields: the same check.
    let test = format!("/webhook-endpoints/{eid}/test");
    v2_post(app, a, &test, "test-1", b"{}", b"{ }")
        .await
        .assert_error(401, "BODY_HASH_MISMATCH");
    let redeliver =
        format!("/webhook-endpoints/{eid}/deliveries/msg_P7YcaQR7QGGrVRY31EyJkN/redeliver");
    v2_post(app, a, &redeliver, "redeliver-1", b"{}", b"{ }")
        .await
        .assert_error(401, "BODY_HASH_MISMATCH");
    // Deleting takes no body: a signature over one is refused, and the endpoint stays.
    let path = format!("/webhook-endpoints/{eid}");
    let sig = sign::v2_header(&a.key, &a.secret, "DELETE", &path, now(), "delete-1", b"{}");
    let auth = [
        ("x-api-key", a.key.as_str()),
        ("authorization-signature", &sig),
    ];
    app.send("DELETE", &path, headers(&auth), None)
        .await
        .assert_error(401, "BODY_HASH_MISMATCH");
    assert_eq!(secrets().await, 2);
    // Signed over the empty body it sends: deleted.
    let sig = sign::v2_header(&a.key, &a.secret, "DELETE", &path, now(), "delete-2", b"");
    let auth = [
        ("x-api-key", a.key.as_str()),
        ("authorization-signature", &sig),
    ];
    let r = app.send("DELETE", &path, headers(&auth), None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["deleted"], true);
}
