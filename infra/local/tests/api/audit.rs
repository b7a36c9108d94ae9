//! The audit log: every mutating request is recorded with its key, route, object, the
//! request id of its answer, address, user agent and outcome; reads are not; entries are
//! per organization and mode, filtered by object and key, and readable only with
//! settings:manage.

use crate::support::*;
use payorders::*;
use serde_json::{Value, json};

async fn audit(app: &TestApp, who: &Caller, query: &str) -> Vec<Value> {
    let r = app.get(who, &format!("/audit-log{query}")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["data"].as_array().unwrap().clone()
}

#[tokio::test]
async fn mutating_requests_are_recorded_with_who_what_and_how() {
    let app = spawn_app().await;
    let created = app
        .call(
            &app.a,
            "POST",
            "/pay-orders",
            Some(&deposit_body()),
            &[("user-agent", "shop-backend/2.1")],
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.body["id"].as_str().unwrap().to_owned();
    // Reads are not recorded.
    app.get(&app.a, &format!("/pay-orders/{id}")).await;
    app.get(&app.a, "/pay-orders").await;
    let cancelled = app
        .post(&app.a, &format!("/pay-orders/{id}/cancel"), None)
        .await;
    assert_eq!(cancelled.status, 200, "{}", cancelled.text);
    // A refused change is recorded with its error code.
    let again = app
        .post(&app.a, &format!("/pay-orders/{id}/cancel"), None)
        .await;
    assert!(again.status >= 400, "{}", again.text);

    let entries = audit(&app, &app.a, "").await;
    assert_eq!(entries.len(), 3, "{entries:#?}");
    let (refused, cancel, create) = (&entries[0], &entries[1], &entries[2]);
    assert_eq!(create["object"], "audit_entry");
    assert_eq!(create["action"], "POST /pay-orders");
    assert_eq!(create["object_id"], id.as_str());
    assert_eq!(create["actor"]["type"], "api_key");
    assert_eq!(create["actor"]["key_id"], app.a.key_id.as_str());
    let masked = create["actor"]["key_masked"].as_str().unwrap();
    assert!(
        masked.starts_with("sk_test_") && masked.contains('…'),
        "{masked}"
    );
    assert!(
        !masked.contains(&app.a.key[12..]),
        "the key is masked: {masked}"
    );
    assert_eq!(create["user_agent"], "shop-backend/2.1");
    assert!(create["ip"].as_str().is_some_and(|ip| !ip.is_empty()));
    assert_eq!(create["outcome"], json!({"status": 201}));
    assert_eq!(create["livemode"], false);
    assert_eq!(
        create["request_id"],
        created.headers["x-request-id"].to_str().unwrap(),
        "the X-Request-Id of the answer"
    );
    assert_eq!(cancel["action"], "POST /pay-orders/{id}/cancel");
    assert_eq!(cancel["object_id"], id.as_str());
    assert_eq!(cancel["outcome"]["status"], 200);
    assert_eq!(refused["outcome"]["status"], again.status);
    assert_eq!(refused["outcome"]["code"], again.body["error"]["code"]);

    // One object's entries (its own trail on the merchant side), one key's.
    let other = app.create_deposit(&app.a, &json!({})).await;
    let of_order = audit(&app, &app.a, &format!("?object_id={id}")).await;
    assert_eq!(of_order.len(), 3);
    assert!(of_order.iter().all(|e| e["object_id"] == id.as_str()));
    // The order's merchant view carries the same trail when asked for it, and only then.
    let with_log = app
        .get(&app.a, &format!("/pay-orders/{id}?include=audit_log"))
        .await;
    assert_eq!(with_log.status, 200, "{}", with_log.text);
    let trail = with_log.body["audit_log"].as_array().unwrap();
    let ids = |v: &[Value]| v.iter().map(|e| e["id"].clone()).collect::<Vec<_>>();
    assert_eq!(ids(trail), ids(&of_order));
    let plain = app.get(&app.a, &format!("/pay-orders/{id}")).await;
    assert!(plain.body.get("audit_log").is_none());
    // The trail (key ids, addresses, clients) needs what GET /audit-log needs: a reader of
    // orders alone, such as a browser's token, sees the order without it.
    let reader = app.key_of_a(vec![Scope::OrdersRead]).await;
    app.get(&reader, &format!("/pay-orders/{id}?include=audit_log"))
        .await
        .assert_error(403, "INSUFFICIENT_SCOPE");
    let manager = app
        .key_of_a(vec![Scope::OrdersRead, Scope::SettingsManage])
        .await;
    let managed = app
        .get(&manager, &format!("/pay-orders/{id}?include=audit_log"))
        .await;
    assert_eq!(managed.status, 200, "{}", managed.text);
    assert_eq!(
        ids(managed.body["audit_log"].as_array().unwrap()),
        ids(&of_order)
    );
    let r = app
        .get(&app.a, &format!("/pay-orders/{id}?include=secrets"))
        .await;
    assert_eq!(
        (r.status, r.body["error"]["param"].as_str()),
        (400, Some("include")),
        "{}",
        r.text
    );
    let k2 = app.key_of_a(vec![Scope::All]).await;
    app.post(
        &k2,
        &format!("/pay-orders/{}/cancel", other.body["id"].as_str().unwrap()),
        None,
    )
    .await;
    let of_k2 = audit(&app, &app.a, &format!("?key_id={}", k2.key_id)).await;
    assert_eq!(of_k2.len(), 1);
    assert_eq!(of_k2[0]["actor"]["key_id"], k2.key_id.as_str());
    // Pages.
    let page = app.get(&app.a, "/audit-log?limit=2").await;
    assert_eq!(page.body["has_more"], true);
    let next = page.body["next_cursor"].as_str().unwrap();
    let rest = audit(&app, &app.a, &format!("?limit=100&cursor={next}")).await;
    assert_eq!(rest.len(), 3, "5 entries in all");

    // Another organization and the other mode see none of it.
    assert!(audit(&app, &app.b, "").await.is_empty());
    assert!(audit(&app, &app.a_live, "").await.is_empty());
    // Bad filters are refused in the error shape; reading needs settings:manage.
    for (q, param) in [
        ("?object_id=../x", "object_id"),
        ("?key_id=po_1", "key_id"),
        ("?limit=0", "limit"),
    ] {
        let r = app.get(&app.a, &format!("/audit-log{q}")).await;
        assert_eq!(
            (r.status, r.body["error"]["param"].as_str()),
            (400, Some(param)),
            "{q}: {}",
            r.text
        );
    }
    let reader = app
        .key_of_a(vec![Scope::OrdersRead, Scope::OrdersCreate])
        .await;
    app.get(&reader, "/audit-log")
        .await
        .assert_error(403, "INSUFFICIENT_SCOPE");
}

#[tokio::test]
async fn key_management_is_recorded_and_entries_cannot_be_changed() {
    let app = spawn_app().await;
    let made = app
        .signed_post(
            &app.a,
            "/api-keys",
            &json!({"name": "ci", "scopes": ["orders:read"]}),
            &[],
        )
        .await;
    assert_eq!(made.status, 201, "{}", made.text);
    let key_id = made.body["id"].as_str().unwrap().to_owned();
    let revoked = app
        .signed_post(
            &app.a,
            &format!("/api-keys/{key_id}/revoke"),
            &json!({}),
            &[],
        )
        .await;
    assert_eq!(revoked.status, 200, "{}", revoked.text);
    let entries = audit(&app, &app.a, &format!("?object_id={key_id}")).await;
    let actions: Vec<&str> = entries
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["POST /api-keys/{id}/revoke", "POST /api-keys"]);
    // The log has no route that changes or deletes it.
    for method in ["POST", "PUT", "DELETE", "PATCH"] {
        let r = app.call(&app.a, method, "/audit-log", None, &[]).await;
        assert!(
            r.status == 403 || r.status == 404 || r.status == 405,
            "{method} /audit-log answered {}: {}",
            r.status,
            r.text
        );
    }
    assert_eq!(
        audit(&app, &app.a, &format!("?object_id={key_id}")).await,
        entries
    );
}
