//! Per-key rate limits of the authenticated API: every answer carries the X-RateLimit-*
//! headers of its route class, over the limit is `429 RATE_LIMITED` with `Retry-After`,
//! each key and class has its own budget, the organization's own limits apply, and
//! concurrent requests are each counted once.

use crate::support::*;
use payorders::*;
use serde_json::json;

fn header<'a>(r: &'a Resp, name: &str) -> &'a str {
    r.headers
        .get(name)
        .unwrap_or_else(|| panic!("no {name} on {} {}", r.status, r.text))
        .to_str()
        .unwrap()
}

fn limit_headers(r: &Resp) -> (u64, u64) {
    (
        header(r, "x-ratelimit-limit").parse().unwrap(),
        header(r, "x-ratelimit-remaining").parse().unwrap(),
    )
}

fn hour() -> i64 {
    now().div_euclid(3600)
}

#[tokio::test]
async fn limits_per_key_and_class_reach_429_with_headers() {
    let app = spawn_app().await;
    let mut own = RateLimits::default();
    own.set(RateClass::List, Some(3));
    own.set(RateClass::Create, Some(5));
    app.store
        .put_rate_limits(&app.a.org_id, &own)
        .await
        .unwrap();
    let all = vec![Scope::All];
    let k1 = app.key_of_a(all.clone()).await;
    let k2 = app.key_of_a(all).await;
    let started = hour();

    // The headers of the list class, counting down.
    let first = app.get(&k1, "/pay-orders").await;
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(limit_headers(&first), (3, 2));
    let reset: i64 = header(&first, "x-ratelimit-reset").parse().unwrap();
    assert!(
        reset > now() && reset <= now() + 3600 && reset % 3600 == 0,
        "{reset}"
    );
    assert_eq!(header(&first, "x-ratelimit-window"), "3600");
    assert_eq!(header(&first, "x-ratelimit-policy"), "sliding-window");
    assert!(first.headers.get("retry-after").is_none());
    for remaining in [1, 0] {
        let r = app.get(&k1, "/pay-orders").await;
        assert_eq!(
            (r.status, limit_headers(&r)),
            (200, (3, remaining)),
            "{}",
            r.text
        );
    }
    let over = app.get(&k1, "/pay-orders").await;
    over.assert_error(429, "RATE_LIMITED");
    assert_eq!(over.body["error"]["type"], "rate_limit");
    assert_eq!(limit_headers(&over), (3, 0));
    let after: u64 = header(&over, "retry-after").parse().unwrap();
    assert!((1..=7200).contains(&after), "{after}");
    assert!(over.headers.get("x-request-id").is_some());

    // Another class of the same key, and the same class of another key, are not affected.
    let order = app.create_deposit(&k2, &json!({})).await;
    assert_eq!(order.status, 201, "{}", order.text);
    assert_eq!(limit_headers(&order), (5, 4));
    let id = order.body["id"].as_str().unwrap();
    let read = app.get(&k1, &format!("/pay-orders/{id}")).await;
    assert_eq!((read.status, limit_headers(&read)), (200, (5000, 4999)));
    let other_key = app.get(&k2, "/pay-orders").await;
    assert_eq!((other_key.status, limit_headers(&other_key)), (200, (3, 2)));
    // Errors carry the headers too.
    let missing = app.get(&k2, "/pay-orders/po_2Yipn2YAp5gWKZ5Zztt2Pv").await;
    missing.assert_error(404, "RESOURCE_NOT_FOUND");
    assert_eq!(limit_headers(&missing).0, 5000);
    // Another organization has the defaults.
    let b = app.get(&app.b, "/pay-orders").await;
    assert_eq!(limit_headers(&b), (2000, 1999));
    let b_hooks = app.get(&app.b, "/webhook-endpoints").await;
    assert_eq!(limit_headers(&b_hooks), (100, 99));

    // Concurrent creations are each counted once: 4 more fit under 5, the rest are refused.
    let tries = {
        let extra = json!({});
        futures::future::join_all((0..12).map(|_| app.create_deposit(&k2, &extra))).await
    };
    let created = tries.iter().filter(|r| r.status == 201).count();
    let limited = tries.iter().filter(|r| r.status == 429).count();
    assert_eq!(
        created + limited,
        12,
        "{:?}",
        tries.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    if hour() == started {
        // (Across an hour boundary the previous hour's count carries over and fewer fit.)
        assert_eq!(created, 4);
    }
    let count = app.get(&k1, "/pay-orders?limit=100").await;
    // k1's list budget is spent: the orders are counted through the store instead.
    count.assert_error(429, "RATE_LIMITED");
    let page = app
        .store
        .list_orders(
            &payorders::store::ListWindow {
                limit: 100,
                ..payorders::store::ListWindow::new(app.a.org_id.clone(), KeyMode::Test)
            },
            &Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(
        page.data.len(),
        1 + created,
        "no refused request created an order"
    );
}
