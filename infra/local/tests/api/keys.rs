//! API keys managed by merchants (`/api-keys`) and access tokens (`POST /auth/token`):
//! what a key shows and never shows, revocation, rolling, who may grant what, modes, and
//! every way a token is refused.

use crate::support::*;
use payorders::auth::token;
use payorders::*;
use serde_json::{Value, json};

/// Creates a key through the API (signed by `by`) and returns it as a caller.
async fn create_key(app: &TestApp, by: &Caller, name: &str, scopes: &[&str]) -> (Caller, Value) {
    let r = app
        .signed_post(
            by,
            "/api-keys",
            &json!({"name": name, "scopes": scopes}),
            &[],
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    (from_answer(by, &r.body), r.body)
}

fn from_answer(by: &Caller, body: &Value) -> Caller {
    Caller {
        org_id: by.org_id.clone(),
        key_id: KeyId::parse(body["id"].as_str().unwrap()).unwrap(),
        key: body["key"].as_str().unwrap().to_owned(),
        secret: body["secret"].as_str().unwrap().to_owned(),
    }
}

async fn bearer(
    app: &TestApp,
    token: &str,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Resp {
    let mut pairs = vec![("authorization", format!("Bearer {token}"))];
    if body.is_some() {
        pairs.push(("content-type", "application/json".to_owned()));
    }
    let h: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    app.send(
        method,
        path,
        headers(&h),
        body.map(|b| serde_json::to_vec(b).unwrap()),
    )
    .await
}

async fn token_for(app: &TestApp, body: Value) -> Resp {
    app.send(
        "POST",
        "/auth/token",
        headers(&[("content-type", "application/json")]),
        Some(serde_json::to_vec(&body).unwrap()),
    )
    .await
}

#[tokio::test]
async fn a_created_key_works_and_is_listed_without_its_secret() {
    let app = spawn_app().await;
    let (reader, created) = create_key(&app, &app.a, "reporting", &["orders:read"]).await;
    assert_eq!(created["object"], "api_key");
    assert_eq!(created["name"], "reporting");
    assert_eq!(created["mode"], "test");
    assert_eq!(created["scopes"], json!(["orders:read"]));
    assert_eq!(created["status"], "active");
    assert!(reader.key.starts_with("sk_test_") && reader.secret.starts_with("ss_"));
    assert_eq!(
        created["masked_key"],
        format!(
            "{}…{}",
            &reader.key[..12],
            &reader.key[reader.key.len() - 4..]
        )
    );

    // The new key works, within its scopes.
    assert_eq!(app.get(&reader, "/pay-orders").await.status, 200);
    app.post(&reader, "/pay-orders", Some(&deposit_body()))
        .await
        .assert_error(403, "INSUFFICIENT_SCOPE");
    // Its secret signs; it still may not manage keys.
    app.signed_post(
        &reader,
        "/api-keys",
        &json!({"name": "x", "scopes": ["orders:read"]}),
        &[],
    )
    .await
    .assert_error(403, "INSUFFICIENT_SCOPE");

    // Listed and readable, never with the key text or the secret.
    let list = app.get(&app.a, "/api-keys").await;
    assert_eq!(list.status, 200, "{}", list.text);
    assert_eq!(list.body["object"], "list");
    let ids: Vec<&str> = list.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids[0], reader.key_id.as_str(), "newest first");
    assert!(ids.contains(&app.a.key_id.as_str()));
    for text in [
        &list.text,
        &app.get(&app.a, &format!("/api-keys/{}", reader.key_id))
            .await
            .text,
    ] {
        assert!(
            !text.contains(&reader.key) && !text.contains(&reader.secret),
            "{text}"
        );
        assert!(
            !text.contains("\"key\"") && !text.contains("\"secret\""),
            "{text}"
        );
    }
    let one = app
        .get(&app.a, &format!("/api-keys/{}", reader.key_id))
        .await;
    assert_eq!(one.status, 200, "{}", one.text);
    assert_eq!(one.body["name"], "reporting");

    // Creating needs the secret, and a body that reads.
    app.post(
        &app.a,
        "/api-keys",
        Some(&json!({"name": "x", "scopes": ["orders:read"]})),
    )
    .await
    .assert_error(401, "SIGNATURE_REQUIRED");
    for (body, code) in [
        (
            json!({"name": "x", "scopes": ["orders:everything"]}),
            "INVALID_SCOPE",
        ),
        (json!({"name": "x", "scopes": []}), "INVALID_SCOPE"),
        (
            json!({"name": " ", "scopes": ["orders:read"]}),
            "INVALID_NAME",
        ),
        (
            json!({"name": "x".repeat(101), "scopes": ["orders:read"]}),
            "INVALID_NAME",
        ),
        (json!({"scopes": ["orders:read"]}), "INVALID_NAME"),
        (
            json!({"name": "x", "scopes": ["orders:read"], "live": true}),
            "UNKNOWN_PARAMETER",
        ),
    ] {
        app.signed_post(&app.a, "/api-keys", &body, &[])
            .await
            .assert_error(400, code);
    }
    app.get(&app.a, "/api-keys/key_doesnotexist")
        .await
        .assert_error(404, "RESOURCE_NOT_FOUND");
}

#[tokio::test]
async fn a_revoked_key_answers_401() {
    let app = spawn_app().await;
    let (k, _) = create_key(&app, &app.a, "to revoke", &["orders:read"]).await;
    assert_eq!(app.get(&k, "/pay-orders").await.status, 200);
    let path = format!("/api-keys/{}/revoke", k.key_id);
    // Another organization cannot see it, let alone revoke it.
    app.signed_post(&app.b, &path, &json!({}), &[])
        .await
        .assert_error(404, "RESOURCE_NOT_FOUND");
    app.post(&app.a, &path, None)
        .await
        .assert_error(401, "SIGNATURE_REQUIRED");
    let r = app.signed_post(&app.a, &path, &json!({}), &[]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["status"], "revoked");
    assert!(r.body["revoked_at"].is_string());
    app.get(&k, "/pay-orders")
        .await
        .assert_error(401, "API_KEY_REVOKED");
    let listed = app.get(&app.a, &format!("/api-keys/{}", k.key_id)).await;
    assert_eq!(listed.body["status"], "revoked");
    // The revoked key cannot manage itself back, nor roll.
    key_action(&app, &app.a, &k.key_id, "roll", &json!({}))
        .await
        .assert_error(409, "API_KEY_INACTIVE");
}

#[tokio::test]
async fn a_rolled_key_works_until_its_grace_period_ends() {
    let app = spawn_app().await;
    let (old, _) = create_key(&app, &app.a, "checkout", &["orders:read", "orders:create"]).await;
    let roll = |id: &KeyId, body: Value| {
        let path = format!("/api-keys/{id}/roll");
        let app = &app;
        async move { app.signed_post(&app.a, &path, &body, &[]).await }
    };
    roll(&old.key_id, json!({"expires_in": 604_801}))
        .await
        .assert_error(400, "INVALID_EXPIRES_IN");
    roll(&old.key_id, json!({"expires_in": -1}))
        .await
        .assert_error(400, "INVALID_EXPIRES_IN");

    let r = roll(&old.key_id, json!({"expires_in": 2})).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let new = from_answer(&app.a, &r.body);
    assert_ne!(new.key_id, old.key_id);
    assert_eq!(r.body["name"], "checkout");
    assert_eq!(r.body["scopes"], json!(["orders:read", "orders:create"]));
    assert_eq!(r.body["rolled_from"]["id"], old.key_id.as_str());
    assert!(r.body["rolled_from"]["expires_at"].is_string());

    // Both work during the grace period; the new key's secret signs.
    assert_eq!(app.get(&old, "/pay-orders").await.status, 200);
    assert_eq!(app.get(&new, "/pay-orders").await.status, 200);
    let signed = app
        .signed_post(&new, "/pay-orders", &sale_body(), &[])
        .await;
    assert_ne!(signed.status, 401, "{}", signed.text);

    tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;
    app.get(&old, "/pay-orders")
        .await
        .assert_error(401, "API_KEY_EXPIRED");
    assert_eq!(app.get(&new, "/pay-orders").await.status, 200);
    let shown = app.get(&app.a, &format!("/api-keys/{}", old.key_id)).await;
    assert_eq!(shown.body["status"], "expired");

    // `expires_in: 0` stops the old key at once.
    let r = roll(&new.key_id, json!({"expires_in": 0})).await;
    assert_eq!(r.status, 201, "{}", r.text);
    app.get(&new, "/pay-orders")
        .await
        .assert_error(401, "API_KEY_EXPIRED");
    let newest = from_answer(&app.a, &r.body);
    assert_eq!(app.get(&newest, "/pay-orders").await.status, 200);
}

/// `by`'s signed `POST /api-keys/{target}/{action}` (`roll` or `revoke`) with `body`.
async fn key_action(
    app: &TestApp,
    by: &Caller,
    target: &KeyId,
    action: &str,
    body: &Value,
) -> Resp {
    let path = format!("/api-keys/{target}/{action}");
    app.signed_post(by, &path, body, &[]).await
}

/// A test key of A's that reads orders and manages keys, and holds nothing else.
async fn keys_manager(app: &TestApp) -> Caller {
    app.key_of_a(vec![Scope::OrdersRead, Scope::KeysManage])
        .await
}

#[tokio::test]
async fn a_key_grants_only_what_it_holds() {
    let app = spawn_app().await;
    let manager = keys_manager(&app).await;
    for wanted in [
        json!(["*"]),
        json!(["webhooks:manage"]),
        json!(["orders:read", "orders:create"]),
    ] {
        app.signed_post(
            &manager,
            "/api-keys",
            &json!({"name": "escalate", "scopes": wanted}),
            &[],
        )
        .await
        .assert_error(403, "INSUFFICIENT_SCOPE");
    }
    let (ok, body) = create_key(&app, &manager, "reader", &["orders:read"]).await;
    assert_eq!(body["scopes"], json!(["orders:read"]));
    assert_eq!(app.get(&ok, "/pay-orders").await.status, 200);
    // A `*` key may hand out `*`.
    let (all, _) = create_key(&app, &app.a, "full", &["*"]).await;
    assert_eq!(app.get(&all, "/webhook-endpoints").await.status, 200);
    // A key without keys:manage cannot even list.
    app.get(&ok, "/api-keys")
        .await
        .assert_error(403, "INSUFFICIENT_SCOPE");
}

/// Rolling hands out a new key with the old key's scopes (and its secret), and revoking
/// stops a key: a key does either only to keys whose scopes it could grant itself.
#[tokio::test]
async fn a_key_rolls_and_revokes_only_keys_whose_scopes_it_holds() {
    let app = spawn_app().await;
    let manager = keys_manager(&app).await;
    // `app.a` is the organization's `*` key; `writer` holds a scope the manager lacks.
    let (writer, _) = create_key(&app, &app.a, "writer", &["orders:read", "orders:create"]).await;
    let before = app.get(&app.a, "/api-keys").await.body["data"].clone();
    for target in [&app.a.key_id, &writer.key_id] {
        for action in ["roll", "revoke"] {
            let r = key_action(&app, &manager, target, action, &json!({})).await;
            r.assert_error(403, "INSUFFICIENT_SCOPE");
            assert_eq!(r.body["error"]["param"], "id", "{}", r.text);
            assert!(
                !r.text.contains("sk_test_"),
                "no key handed out: {}",
                r.text
            );
        }
    }
    // Nothing changed: no new key, none revoked or expiring, and both keys still work (the
    // `*` key with its secret too).
    let after = app.get(&app.a, "/api-keys").await;
    assert_eq!(after.body["data"], before, "{}", after.text);
    for id in [&app.a.key_id, &writer.key_id] {
        let shown = app.get(&app.a, &format!("/api-keys/{id}")).await;
        assert_eq!(shown.body["status"], "active", "{}", shown.text);
        assert!(shown.body["expires_at"].is_null(), "{}", shown.text);
    }
    assert_eq!(app.get(&app.a, "/webhook-endpoints").await.status, 200);
    assert_eq!(app.get(&writer, "/pay-orders").await.status, 200);
    create_key(&app, &app.a, "still signs", &["*"]).await;

    // A key whose scopes the manager holds, it rolls and revokes.
    let (reader, _) = create_key(&app, &manager, "reader", &["orders:read"]).await;
    let r = key_action(
        &app,
        &manager,
        &reader.key_id,
        "roll",
        &json!({"expires_in": 0}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["scopes"], json!(["orders:read"]));
    let rolled = from_answer(&manager, &r.body);
    assert_eq!(app.get(&rolled, "/pay-orders").await.status, 200);
    let r = key_action(&app, &manager, &rolled.key_id, "revoke", &json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["status"], "revoked");
    app.get(&rolled, "/pay-orders")
        .await
        .assert_error(401, "API_KEY_REVOKED");
    // And itself (it holds its own scopes).
    let r = key_action(&app, &manager, &manager.key_id, "roll", &json!({})).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["scopes"], json!(["orders:read", "keys:manage"]));
}

#[tokio::test]
async fn keys_of_the_other_mode_and_organization_are_invisible() {
    let app = spawn_app().await;
    let (live, _) = create_key(&app, &app.a_live, "live server", &["orders:read"]).await;
    assert!(live.key.starts_with("sk_live_"));
    let (test, _) = create_key(&app, &app.a, "test server", &["orders:read"]).await;

    let ids = |r: &Resp| -> Vec<String> {
        r.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let test_list = app.get(&app.a, "/api-keys").await;
    assert!(!ids(&test_list).contains(&live.key_id.to_string()));
    assert!(ids(&test_list).contains(&test.key_id.to_string()));
    assert!(
        test_list.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["mode"] == "test")
    );
    let live_list = app.get(&app.a_live, "/api-keys").await;
    assert!(ids(&live_list).contains(&live.key_id.to_string()));
    assert!(!ids(&live_list).contains(&test.key_id.to_string()));
    assert!(!ids(&app.get(&app.b, "/api-keys").await).contains(&test.key_id.to_string()));

    for path in [
        format!("/api-keys/{}", live.key_id),
        format!("/api-keys/{}", test.key_id),
    ] {
        let who = if path.contains(live.key_id.as_str()) {
            &app.a
        } else {
            &app.b
        };
        app.get(who, &path)
            .await
            .assert_error(404, "RESOURCE_NOT_FOUND");
    }
    key_action(&app, &app.a, &live.key_id, "revoke", &json!({}))
        .await
        .assert_error(404, "RESOURCE_NOT_FOUND");
    assert_eq!(app.get(&live, "/pay-orders").await.status, 200);
}

#[tokio::test]
async fn access_tokens_act_for_their_key_within_their_scopes() {
    let app = spawn_app().await;
    let (k, _) = create_key(
        &app,
        &app.a,
        "dashboard",
        &[
            "orders:read",
            "orders:create",
            "orders:cancel",
            "keys:manage",
        ],
    )
    .await;
    let order = app.create_deposit(&k, &json!({})).await;
    assert_eq!(order.status, 201, "{}", order.text);
    let cancel = format!("/pay-orders/{}/cancel", order.body["id"].as_str().unwrap());

    let t = token_for(
        &app,
        json!({"grant_type": "api_key", "api_key": k.key, "scope": ["orders:read"], "expires_in": 60}),
    )
    .await;
    assert_eq!(t.status, 200, "{}", t.text);
    assert_eq!(t.body["token_type"], "Bearer");
    assert_eq!(t.body["expires_in"], 60);
    assert_eq!(t.body["scope"], json!(["orders:read"]));
    assert_eq!(t.headers["cache-control"], "no-store");
    let reader = t.body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(reader.matches('.').count(), 2, "a JWT");

    let r = bearer(&app, &reader, "GET", "/pay-orders", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(!r.body["data"].as_array().unwrap().is_empty());
    bearer(&app, &reader, "POST", &cancel, Some(&json!({})))
        .await
        .assert_error(403, "INSUFFICIENT_SCOPE");

    // Without `scope`, the token has every scope of the key.
    let full = token_for(&app, json!({"grant_type": "api_key", "api_key": k.key})).await;
    assert_eq!(full.status, 200, "{}", full.text);
    assert_eq!(full.body["expires_in"], 900);
    assert_eq!(
        full.body["scope"],
        json!([
            "orders:create",
            "orders:read",
            "orders:cancel",
            "keys:manage"
        ])
    );
    let full = full.body["access_token"].as_str().unwrap().to_owned();
    let r = bearer(&app, &full, "POST", &cancel, Some(&json!({}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    // A token cannot sign: the key-management writes that need a signature refuse it.
    bearer(
        &app,
        &full,
        "POST",
        "/api-keys",
        Some(&json!({"name": "x", "scopes": ["orders:read"]})),
    )
    .await
    .assert_error(401, "SIGNATURE_REQUIRED");
    // A token beside a key is two credentials.
    app.send(
        "GET",
        "/pay-orders",
        headers(&[
            ("authorization", &format!("Bearer {full}")),
            ("x-api-key", &k.key),
        ]),
        None,
    )
    .await
    .assert_error(401, "CONFLICTING_CREDENTIALS");

    // Tampered: a signature character changed, or the payload swapped for another token's.
    let sig_at = reader.rfind('.').unwrap() + 1;
    let mut tampered = reader.clone();
    let first = &reader[sig_at..=sig_at];
    tampered.replace_range(sig_at..=sig_at, if first == "A" { "B" } else { "A" });
    bearer(&app, &tampered, "GET", "/pay-orders", None)
        .await
        .assert_error(401, "INVALID_TOKEN");
    let (r_parts, f_parts): (Vec<&str>, Vec<&str>) =
        (reader.split('.').collect(), full.split('.').collect());
    let spliced = format!("{}.{}.{}", r_parts[0], f_parts[1], r_parts[2]);
    bearer(&app, &spliced, "GET", "/pay-orders", None)
        .await
        .assert_error(401, "INVALID_TOKEN");

    // Expired: minted (by this deployment's key) 20 minutes ago for 60 s.
    let key = app.store.get_api_key(&k.key_id).await.unwrap().unwrap();
    let old = token::mint(
        &app.master,
        &key,
        &[Scope::OrdersRead],
        60,
        Timestamp::now().plus_seconds(-1200),
    );
    bearer(&app, &old.token, "GET", "/pay-orders", None)
        .await
        .assert_error(401, "TOKEN_EXPIRED");

    // Revoking the key takes its tokens with it.
    let r = key_action(&app, &app.a, &k.key_id, "revoke", &json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    bearer(&app, &reader, "GET", "/pay-orders", None)
        .await
        .assert_error(401, "API_KEY_REVOKED");
    token_for(&app, json!({"grant_type": "api_key", "api_key": k.key}))
        .await
        .assert_error(401, "API_KEY_REVOKED");
}

#[tokio::test]
async fn token_requests_that_are_refused() {
    let app = spawn_app().await;
    let reader = app.key_of_a(vec![Scope::OrdersRead]).await;
    let ask = |body: Value| token_for(&app, body);
    ask(json!({"grant_type": "password", "api_key": reader.key}))
        .await
        .assert_error(400, "UNSUPPORTED_GRANT_TYPE");
    ask(json!({"api_key": reader.key}))
        .await
        .assert_error(400, "UNSUPPORTED_GRANT_TYPE");
    ask(json!({"grant_type": "api_key", "api_key": reader.key, "scope": ["orders:create"]}))
        .await
        .assert_error(403, "INSUFFICIENT_SCOPE");
    ask(json!({"grant_type": "api_key", "api_key": app.a.key, "scope": ["*"]}))
        .await
        .assert_error(400, "INVALID_SCOPE");
    ask(json!({"grant_type": "api_key", "api_key": reader.key, "scope": ["orders:nope"]}))
        .await
        .assert_error(400, "INVALID_SCOPE");
    for ttl in [59, 3601] {
        ask(json!({"grant_type": "api_key", "api_key": reader.key, "expires_in": ttl}))
            .await
            .assert_error(400, "INVALID_EXPIRES_IN");
    }
    ask(json!({"grant_type": "api_key", "api_key": "sk_test_doesnotexist000000000"}))
        .await
        .assert_error(401, "INVALID_API_KEY");
    ask(json!({"grant_type": "api_key", "api_key": "eyJhbGciOiJIUzI1NiJ9.e30.x"}))
        .await
        .assert_error(401, "INVALID_API_KEY");
    ask(json!({"grant_type": "api_key", "api_key": reader.key, "extra": 1}))
        .await
        .assert_error(400, "UNKNOWN_PARAMETER");
    app.send(
        "POST",
        "/auth/token",
        headers(&[]),
        Some(b"grant_type=api_key".to_vec()),
    )
    .await
    .assert_error(415, "UNSUPPORTED_MEDIA_TYPE");
    // A token is not an API key: it cannot mint another token.
    let t = ask(json!({"grant_type": "api_key", "api_key": reader.key})).await;
    let jwt = t.body["access_token"].as_str().unwrap();
    ask(json!({"grant_type": "api_key", "api_key": jwt}))
        .await
        .assert_error(401, "INVALID_API_KEY");
}

#[tokio::test]
async fn keys_on_dynamodb() {
    let app = spawn_app_on(Backend::Dynamo).await;
    let (k, _) = create_key(&app, &app.a, "on dynamodb", &["orders:read"]).await;
    let list = app.get(&app.a, "/api-keys").await;
    assert_eq!(
        list.body["data"][0]["id"],
        k.key_id.as_str(),
        "{}",
        list.text
    );
    let r = key_action(&app, &app.a, &k.key_id, "roll", &json!({"expires_in": 0})).await;
    assert_eq!(r.status, 201, "{}", r.text);
    app.get(&k, "/pay-orders")
        .await
        .assert_error(401, "API_KEY_EXPIRED");
    let new = from_answer(&app.a, &r.body);
    let t = token_for(&app, json!({"grant_type": "api_key", "api_key": new.key})).await;
    let jwt = t.body["access_token"].as_str().unwrap();
    assert_eq!(
        bearer(&app, jwt, "GET", "/pay-orders", None).await.status,
        200
    );
    let r = key_action(&app, &app.a, &new.key_id, "revoke", &json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    bearer(&app, jwt, "GET", "/pay-orders", None)
        .await
        .assert_error(401, "API_KEY_REVOKED");
}

#[tokio::test]
async fn an_idempotent_creation_replays_the_key_but_keeps_it_sealed() {
    let app = spawn_app().await;
    let body = json!({"name": "idempotent", "scopes": ["orders:read"]});
    let idem = [("idempotency-key", "create-key-1")];
    let first = app.signed_post(&app.a, "/api-keys", &body, &idem).await;
    assert_eq!(first.status, 201, "{}", first.text);
    let again = app.signed_post(&app.a, "/api-keys", &body, &idem).await;
    assert_eq!(again.status, 201, "{}", again.text);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(again.body, first.body, "the same key, not a second one");
    assert_eq!(keys_named(&app, "idempotent").await, 1);
    kept_sealed(&app, "create-key-1", "/api-keys", &body, &first.body).await;
}

/// An Idempotency-Key's kept answer is replayed only to the key that made the request:
/// another key of the organization and mode sending the same signed request under the
/// same Idempotency-Key gets `422 IDEMPOTENCY_MISMATCH`, never the `*` key's answer (a key
/// with its secret that it could not have created itself).
#[tokio::test]
async fn an_idempotent_answer_is_replayed_only_to_the_key_that_asked() {
    let app = spawn_app().await;
    let manager = app.key_of_a(vec![Scope::KeysManage]).await;
    let body = json!({"name": "replayed to whom", "scopes": ["*"]});
    let idem = [("idempotency-key", "create-key-by-star")];
    let first = app.signed_post(&app.a, "/api-keys", &body, &idem).await;
    assert_eq!(first.status, 201, "{}", first.text);
    let secret = first.body["secret"].as_str().unwrap();
    let key = first.body["key"].as_str().unwrap();

    // The same signed body and Idempotency-Key from the manager: refused, and nothing of
    // the kept answer in the refusal.
    let other = app.signed_post(&manager, "/api-keys", &body, &idem).await;
    other.assert_error(422, "IDEMPOTENCY_MISMATCH");
    assert!(!other.headers.contains_key("idempotent-replayed"));
    assert!(
        !other.text.contains(secret) && !other.text.contains(key),
        "{}",
        other.text
    );
    // Without the Idempotency-Key it is the grant rule that refuses it.
    app.signed_post(&manager, "/api-keys", &body, &[])
        .await
        .assert_error(403, "INSUFFICIENT_SCOPE");

    // The `*` key's own retry still replays its answer, and one key was made.
    let again = app.signed_post(&app.a, "/api-keys", &body, &idem).await;
    assert_eq!(again.status, 201, "{}", again.text);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(again.body, first.body);
    assert_eq!(keys_named(&app, "replayed to whom").await, 1);
    kept_sealed(&app, "create-key-by-star", "/api-keys", &body, &first.body).await;
}

/// How many of the first caller's keys bear `name`.
async fn keys_named(app: &TestApp, name: &str) -> usize {
    let listed = app.get(&app.a, "/api-keys").await;
    listed.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["name"] == name)
        .count()
}

/// What the store keeps under the Idempotency-Key `key` holds neither the answered key's
/// text nor its secret: it is sealed.
async fn kept_sealed(app: &TestApp, key: &str, path: &str, body: &Value, answer: &Value) {
    let kept = kept_idempotent_body(app, &app.a, key, path, body).await;
    let text = answer["key"].as_str().unwrap();
    let secret = answer["secret"].as_str().unwrap();
    assert!(!kept.contains(text) && !kept.contains(secret));
    assert!(kept.starts_with("v1."), "sealed: {kept}");
}

#[tokio::test]
async fn an_idempotent_roll_makes_one_new_key_and_keeps_it_sealed() {
    let app = spawn_app().await;
    let (old, _) = create_key(&app, &app.a, "rolled once", &["orders:read"]).await;
    let path = format!("/api-keys/{}/roll", old.key_id);
    let body = json!({"expires_in": 60});
    let idem = [("idempotency-key", "roll-key-1")];
    let first = app.signed_post(&app.a, &path, &body, &idem).await;
    assert_eq!(first.status, 201, "{}", first.text);
    let again = app.signed_post(&app.a, &path, &body, &idem).await;
    assert_eq!(again.status, 201, "{}", again.text);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(again.body, first.body, "the same new key, not a second one");
    assert_eq!(
        keys_named(&app, "rolled once").await,
        2,
        "the old key and one new key"
    );
    let new = from_answer(&app.a, &first.body);
    assert_eq!(app.get(&new, "/pay-orders").await.status, 200);
    kept_sealed(&app, "roll-key-1", &path, &body, &first.body).await;
}

/// In front of moto: answers the next `conflicts` TransactWriteItems calls as DynamoDB does
/// when another transaction is writing the same item (`TransactionConflict`), and forwards
/// every other call.
struct ConflictingProxy {
    moto: String,
    http: reqwest::Client,
    conflicts: std::sync::atomic::AtomicUsize,
    refused: std::sync::atomic::AtomicUsize,
}

async fn conflicting_proxy(moto: String) -> (std::sync::Arc<ConflictingProxy>, String) {
    use std::sync::atomic::Ordering::SeqCst;
    let p = std::sync::Arc::new(ConflictingProxy {
        moto,
        http: payorders::net::http_client().build().unwrap(),
        conflicts: 0.into(),
        refused: 0.into(),
    });
    let forward = async |axum::extract::State(p): axum::extract::State<
        std::sync::Arc<ConflictingProxy>,
    >,
                         req: axum::extract::Request| {
        let (parts, body) = req.into_parts();
        let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        let transaction = parts
            .headers
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            == Some("DynamoDB_20120810.TransactWriteItems");
        if transaction
            && p.conflicts
                .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1))
                .is_ok()
        {
            p.refused.fetch_add(1, SeqCst);
            let items = serde_json::from_slice::<Value>(&body).unwrap()["TransactItems"]
                .as_array()
                .unwrap()
                .len();
            let mut reasons = vec![json!({"Code": "None"}); items];
            reasons[0] = json!({"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"});
            let answer = json!({
                "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
                "Message": "Transaction cancelled, please refer cancellation reasons for specific reasons [TransactionConflict]",
                "CancellationReasons": reasons,
            });
            return axum::response::Response::builder()
                .status(400)
                .header("content-type", "application/x-amz-json-1.0")
                .body(axum::body::Body::from(answer.to_string()))
                .unwrap();
        }
        pass_on(&p.http, &p.moto, &parts, body).await.answer()
    };
    let url = serve_router(axum::Router::new().fallback(forward).with_state(p.clone())).await;
    (p, url)
}

/// A revocation on DynamoDB that meets another transaction on the key's items (a roll, a
/// second revocation) reads the key again and revokes it, instead of failing the operator's
/// request; one that keeps meeting them gives up after a few tries with an error.
#[tokio::test]
async fn a_revocation_that_meets_another_transaction_on_dynamodb_is_tried_again() {
    use payorders::store::dynamo::{DynamoStore, create_table};
    use payorders::store::{KeyStore, StoreError};
    use std::sync::atomic::Ordering::SeqCst;
    let moto = moto();
    let table = format!(
        "keys-conflict-{}",
        KeyId::generate().as_str().to_lowercase()
    );
    let direct_client = aws_sdk_dynamodb::Client::new(&sdk_at(&moto).await);
    create_table(&direct_client, &table).await.unwrap();
    let direct = DynamoStore::new(direct_client, table.clone());
    let (proxy, url) = conflicting_proxy(moto).await;
    let through = DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk_at(&url).await), table);

    let t0 = Timestamp::parse("2026-06-01T12:00:00Z").unwrap();
    let new_key = || {
        let material = payorders::auth::generate_api_key(KeyMode::Test);
        ApiKey {
            id: KeyId::generate(),
            organization_id: OrgId::generate(),
            mode: KeyMode::Test,
            name: "checkout server".into(),
            key_hash: material.hash,
            prefix: material.prefix,
            last4: material.last4,
            secret_sealed: "v1.sealed-secret".into(),
            scopes: vec![Scope::OrdersRead],
            created_at: t0,
            revoked_at: None,
            expires_at: None,
        }
    };

    let key = new_key();
    direct.create_api_key(&key, None).await.unwrap();
    proxy.conflicts.store(1, SeqCst);
    let revoked = through
        .revoke_api_key(&key.id, t0.plus_seconds(60))
        .await
        .expect("a conflict is tried again");
    assert_eq!(
        proxy.refused.load(SeqCst),
        1,
        "the first try met the conflict"
    );
    assert_eq!(revoked.revoked_at, Some(t0.plus_seconds(60)));
    let stored = direct.get_api_key(&key.id).await.unwrap().unwrap();
    assert_eq!(stored.revoked_at, Some(t0.plus_seconds(60)));
    let by_hash = direct
        .get_api_key_by_hash(&key.key_hash)
        .await
        .unwrap()
        .unwrap();
    assert!(!by_hash.is_active(t0.plus_seconds(61)));

    // Conflicts that do not end: an error after a bounded number of tries, nothing written.
    let other = new_key();
    direct.create_api_key(&other, None).await.unwrap();
    proxy.refused.store(0, SeqCst);
    proxy.conflicts.store(usize::MAX, SeqCst);
    let r = through.revoke_api_key(&other.id, t0.plus_seconds(60)).await;
    assert!(
        matches!(r, Err(StoreError::VersionConflict { .. })),
        "{r:?}"
    );
    assert_eq!(proxy.refused.load(SeqCst), 5);
    proxy.conflicts.store(0, SeqCst);
    assert_eq!(
        direct
            .get_api_key(&other.id)
            .await
            .unwrap()
            .unwrap()
            .revoked_at,
        None
    );
}

/// An organization has at most 50 active API keys per mode (revoked ones do not count; a
/// rolled key counts until its grace period ends): the 51st is refused with
/// `422 TOO_MANY_KEYS` and nothing written, and so is a roll that keeps its old key working;
/// a roll whose old key stops at once is not. Revoking a key makes room.
#[tokio::test]
async fn an_organization_has_at_most_50_active_keys_per_mode() {
    let app = spawn_app().await;
    let mut nonce = 0;
    let mut post = async |path: &str, body: Value| {
        nonce += 1;
        let bytes = serde_json::to_vec(&body).unwrap();
        v2_post(&app, &app.a, path, &format!("cap-{nonce}"), &bytes, &bytes).await
    };
    // A's own key, 47 more, and a revoked one (which does not count).
    let mut keys = Vec::new();
    for _ in 0..47 {
        keys.push(app.key_of_a(vec![Scope::OrdersRead]).await);
    }
    let gone = app.key_of_a(vec![Scope::OrdersRead]).await;
    let r = post(&format!("/api-keys/{}/revoke", gone.key_id), json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    // The 49th and the 50th.
    for name in ["49th", "50th"] {
        let r = post(
            "/api-keys",
            json!({"name": name, "scopes": ["orders:read"]}),
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    let body = json!({"name": "51st", "scopes": ["orders:read"]});
    let r = post("/api-keys", body.clone()).await;
    r.assert_error(422, "TOO_MANY_KEYS");
    assert_eq!(r.body["error"]["type"], "invalid_request");
    let message = r.body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("50") && message.contains("revoke"),
        "{message}"
    );
    let listed = app.get(&app.a, "/api-keys").await;
    let data = listed.body["data"].as_array().unwrap();
    assert_eq!(
        data.len(),
        51,
        "50 active and the revoked one: {}",
        listed.text
    );
    assert!(data.iter().all(|k| k["name"] != "51st"), "nothing written");

    // A roll that keeps the old key working adds one: refused, the old key as it was.
    let rolled = &keys[0];
    let roll = format!("/api-keys/{}/roll", rolled.key_id);
    post(&roll, json!({}))
        .await
        .assert_error(422, "TOO_MANY_KEYS");
    assert_eq!(app.get(rolled, "/pay-orders").await.status, 200);
    let shown = app
        .get(&app.a, &format!("/api-keys/{}", rolled.key_id))
        .await;
    assert_eq!(shown.body["status"], "active", "{}", shown.text);
    assert!(shown.body["expires_at"].is_null(), "{}", shown.text);
    // One that stops the old key at once replaces it.
    let r = post(&roll, json!({"expires_in": 0})).await;
    assert_eq!(r.status, 201, "{}", r.text);
    post("/api-keys", body.clone())
        .await
        .assert_error(422, "TOO_MANY_KEYS");

    // The live mode has its own; a revoked key makes room.
    let r = app
        .signed_post(
            &app.a_live,
            "/api-keys",
            &json!({"name": "live", "scopes": ["orders:read"]}),
            &[],
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = post(&format!("/api-keys/{}/revoke", keys[1].key_id), json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = post("/api-keys", body).await;
    assert_eq!(r.status, 201, "{}", r.text);
}
