//! Webhooks end to end through the local host: every delivery is verified by a receiver
//! written with the official `standardwebhooks` package; retries, rotation, disabling,
//! SSRF refusals, and dispatch that survives each step failing once.

use crate::support::*;
use payorders::queue::{Outcome, Queue, QueueError};
use payorders::store::{ListWindow, Page, StoreError, StoreResult, Versioned, WebhookStore};
use payorders::webhooks::{DeliveryMessage, FirstAttempt};
use payorders::*;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// The Python receiver, killed when dropped.
pub struct Receiver {
    child: std::process::Child,
    /// Its configuration and log, removed with it.
    dir: tempfile::TempDir,
    pub url: String,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Receiver {
    pub fn start(config: &Value) -> Receiver {
        let python = repo_root().join(".venv/bin/python");
        assert!(
            python.exists(),
            "{} is missing: the webhook tests verify deliveries with the standardwebhooks package \
             that `make test` installs into .venv",
            python.display()
        );
        let dir = tempfile::Builder::new()
            .prefix("payorders-receiver-")
            .tempdir()
            .unwrap();
        std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
        let child = std::process::Command::new(python)
            .arg(repo_root().join("infra/scripts/webhook_receiver.py"))
            .arg(dir.path().join("config.json"))
            .arg(dir.path().join("log.jsonl"))
            .arg(dir.path().join("port"))
            .spawn()
            .expect("start the webhook receiver");
        let mut port = None;
        for _ in 0..200 {
            if let Ok(p) = std::fs::read_to_string(dir.path().join("port")) {
                port = Some(p.trim().to_owned());
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let port = port.expect("the webhook receiver did not start within 10 s");
        Receiver {
            child,
            dir,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    pub fn configure(&self, config: &Value) {
        std::fs::write(self.dir.path().join("config.json"), config.to_string()).unwrap();
    }

    pub fn log(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.path().join("log.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Waits until the log has a request matching `pred`.
    pub async fn wait_for(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        for _ in 0..200 {
            if let Some(v) = self.log().into_iter().find(|v| pred(v)) {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no delivery for {what} within 10 s; log: {:?}", self.log());
    }
}

fn is_type(t: &'static str) -> impl Fn(&Value) -> bool {
    move |v| v["body"]["type"] == t
}

async fn create_endpoint(app: &TestApp, who: &Caller, url: &str, events: Value) -> Value {
    let r = app
        .post(
            who,
            "/webhook-endpoints",
            Some(&json!({"url": url, "events": events, "description": "test"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.body
}

#[tokio::test]
async fn deliveries_verify_with_the_standardwebhooks_library() {
    let app = spawn_app().await;
    let rx = Receiver::start(&json!({}));
    let ep = create_endpoint(&app, &app.a, &format!("{}/hooks", rx.url), json!(["*"])).await;
    let secret = ep["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    let order_secret = app.get(&app.a, "/webhook-secret").await.body["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    rx.configure(&json!({"secrets": {"endpoint": secret, "order": order_secret}}));

    // An order with its own webhook_url too: two destinations.
    let order = app
        .create_deposit(
            &app.a,
            &json!({"webhook_url": format!("{}/order-url", rx.url)}),
        )
        .await;
    let order_id = order.body["id"].as_str().unwrap().to_owned();
    let created = rx
        .wait_for("order.created", |v| {
            v["body"]["type"] == "order.created" && v["path"] == "/hooks"
        })
        .await;
    assert_eq!(
        created["verified"]["endpoint"],
        true,
        "standardwebhooks rejected our signature: {:?}",
        rx.log()
    );
    assert_ne!(
        created["verified"]["order"], true,
        "the endpoint's delivery is not signed with the order secret"
    );
    assert!(created["webhook_id"].as_str().unwrap().starts_with("msg_"));
    assert!(
        created["webhook_signature"]
            .as_str()
            .unwrap()
            .starts_with("v1,")
    );
    let body = &created["body"];
    assert_eq!(body["object"], "event");
    assert!(body["id"].as_str().unwrap().starts_with("evt_"));
    assert_eq!(body["data"]["object"]["id"], order_id.as_str());
    assert_eq!(body["data"]["object"]["object"], "pay_order");
    let to_url = rx
        .wait_for("order.created to the order's URL", |v| {
            v["path"] == "/order-url"
        })
        .await;
    assert_eq!(to_url["verified"]["order"], true, "{to_url}");

    // A transition is delivered too, as its own message.
    app.post(&app.a, &format!("/pay-orders/{order_id}/cancel"), None)
        .await;
    let cancelled = rx
        .wait_for("order.cancelled", |v| {
            v["body"]["type"] == "order.cancelled" && v["path"] == "/hooks"
        })
        .await;
    assert_eq!(cancelled["verified"]["endpoint"], true);
    let cancelled_to_url = rx
        .wait_for("order.cancelled to the order's URL", |v| {
            v["body"]["type"] == "order.cancelled" && v["path"] == "/order-url"
        })
        .await;
    assert_eq!(cancelled_to_url["verified"]["order"], true);
    assert_ne!(cancelled["webhook_id"], created["webhook_id"]);

    // The delivery log shows the attempts.
    let eid = ep["id"].as_str().unwrap();
    let log = eventually(async || {
        let log = app
            .get(&app.a, &format!("/webhook-endpoints/{eid}/deliveries"))
            .await
            .body;
        (log["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["status"] == "delivered")
            .count()
            == 2)
            .then_some(log)
    })
    .await;
    let data = log["data"].as_array().unwrap();
    assert_eq!(data.len(), 2, "{log}");
    assert_eq!(data[0]["event_type"], "order.cancelled");
    assert_eq!(data[1]["attempts"][0]["status_code"], 200);
    assert_eq!(data[1]["attempts"][0]["response_body"], "ok");
    assert!(data[1]["attempts"][0]["latency_ms"].is_u64());

    // Another organization's events never reach this endpoint.
    app.create_deposit(&app.b, &json!({})).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        rx.log()
            .iter()
            .all(|v| v["body"]["data"]["object"]["organization_id"] == app.a.org_id.as_str())
    );
}

#[tokio::test]
async fn failure_then_retry_with_the_same_webhook_id() {
    let app = spawn_app().await;
    let rx = Receiver::start(&json!({}));
    let ep = create_endpoint(
        &app,
        &app.a,
        &format!("{}/hooks", rx.url),
        json!(["order.created"]),
    )
    .await;
    rx.configure(&json!({"secrets": {"endpoint": ep["secret"]}, "fail_first": 2, "status": 503}));
    app.create_deposit(&app.a, &json!({})).await;
    let ok = rx
        .wait_for("the third attempt", |v| v["answered"] == 200)
        .await;
    let log = rx.log();
    assert_eq!(log.len(), 3, "{log:?}");
    assert!(
        log.iter().all(|v| v["webhook_id"] == ok["webhook_id"]),
        "webhook-id is stable across retries"
    );
    assert!(log.iter().all(|v| v["verified"]["endpoint"] == true));
    assert_eq!(
        log.iter()
            .map(|v| v["answered"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [503, 503, 200]
    );

    let eid = ep["id"].as_str().unwrap();
    let d = eventually(async || {
        let d = app
            .get(&app.a, &format!("/webhook-endpoints/{eid}/deliveries"))
            .await
            .body["data"][0]
            .clone();
        (d["status"] == "delivered").then_some(d)
    })
    .await;
    assert_eq!(d["status"], "delivered");
    assert_eq!(attempt_codes(&d), [503, 503, 200]);
    assert_eq!(d["attempts"][0]["response_body"], "not now");
    // A success clears the endpoint's failing streak.
    let e = app
        .get(&app.a, &format!("/webhook-endpoints/{eid}"))
        .await
        .body;
    assert!(e["failing_since"].is_null());

    // Manual redelivery sends the same message again.
    let did = d["id"].as_str().unwrap();
    let r = app
        .post(
            &app.a,
            &format!("/webhook-endpoints/{eid}/deliveries/{did}/redeliver"),
            None,
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    rx.wait_for("the redelivery", |v| v["n"] == 4).await;
    assert_eq!(rx.log()[3]["webhook_id"], ok["webhook_id"]);
    app.post(
        &app.a,
        &format!("/webhook-endpoints/{eid}/deliveries/msg_nope/redeliver"),
        None,
    )
    .await
    .assert_error(404, "RESOURCE_NOT_FOUND");
}

/// The endpoint's only delivery as the API lists it, once `done` holds for it.
async fn only_delivery(app: &TestApp, eid: &str, done: impl Fn(&Value) -> bool) -> Value {
    eventually(async || {
        let log = app
            .get(&app.a, &format!("/webhook-endpoints/{eid}/deliveries"))
            .await
            .body;
        let data = log["data"].as_array().unwrap();
        (data.len() == 1 && done(&data[0])).then(|| data[0].clone())
    })
    .await
}

/// A merchant who moves an endpoint (`POST /webhook-endpoints/{id} {"url"}`), say off a
/// retired or compromised host, moves its deliveries with it: the next scheduled retry and
/// a redelivery go to the URL the endpoint has then, signed with its secret, never to the
/// old host, and the delivery shows the URL its latest attempt went to. The URL used is the
/// one the SSRF rules check. Before, every attempt after the first went to the first's URL.
/// The merchant moves A's endpoint `eid` to `url`.
async fn move_endpoint(app: &TestApp, eid: &str, url: &str) {
    let path = format!("/webhook-endpoints/{eid}");
    let r = app.post(&app.a, &path, Some(&json!({"url": url}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

/// `first` (an order.created message) arrives again at `rx`'s `path`, the same webhook-id,
/// its signature verified there.
async fn sent_again(rx: &Receiver, what: &str, path: &str, first: &Value) {
    let v = rx.wait_for(what, is_type("order.created")).await;
    assert_eq!(v["path"], path);
    assert_eq!(v["webhook_id"], first["webhook_id"]);
    assert_eq!(v["verified"]["endpoint"], true, "{v}");
}

#[tokio::test]
async fn retries_and_redeliveries_follow_the_endpoint_to_its_new_url() {
    let app = spawn_app().await;
    let old = Receiver::start(&json!({}));
    let moved = Receiver::start(&json!({}));
    let again = Receiver::start(&json!({}));
    let old_url = format!("{}/hooks", old.url);
    let ep = create_endpoint(&app, &app.a, &old_url, json!(["order.created"])).await;
    let eid = ep["id"].as_str().unwrap().to_owned();
    let secrets = json!({"endpoint": ep["secret"]});
    // The old host fails, asking for a wait (Retry-After 1000 s: 5 s at the tests' retry
    // scale) that leaves the merchant time to move the endpoint before the retry.
    old.configure(
        &json!({"secrets": secrets, "fail_first": 100, "status": 500, "retry_after": 1000}),
    );
    moved.configure(&json!({"secrets": secrets}));
    again.configure(&json!({"secrets": secrets}));

    app.create_deposit(&app.a, &json!({})).await;
    let first = old
        .wait_for("the first attempt", is_type("order.created"))
        .await;
    assert_eq!(first["verified"]["endpoint"], true, "{first}");
    let d = only_delivery(&app, &eid, |d| d["attempts"].as_array().unwrap().len() == 1).await;
    assert_eq!(
        (&d["status"], &d["url"]),
        (&json!("pending"), &json!(old_url))
    );

    // Moved: the scheduled retry goes to the new URL, the same message, verified there.
    let moved_url = format!("{}/moved", moved.url);
    move_endpoint(&app, &eid, &moved_url).await;
    sent_again(&moved, "the retry at the new URL", "/moved", &first).await;
    let d = only_delivery(&app, &eid, |d| d["status"] == "delivered").await;
    assert_eq!(attempt_codes(&d), [500, 200]);
    assert_eq!(
        d["url"],
        moved_url.as_str(),
        "the URL of the latest attempt"
    );
    assert_eq!(old.log().len(), 1, "nothing more went to the old URL");

    // Moved again: a redelivery goes to the endpoint's URL as it stands, and says so.
    let again_url = format!("{}/again", again.url);
    move_endpoint(&app, &eid, &again_url).await;
    let did = d["id"].as_str().unwrap();
    let redeliver = format!("/webhook-endpoints/{eid}/deliveries/{did}/redeliver");
    let r = app.post(&app.a, &redeliver, None).await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(
        (&r.body["status"], &r.body["url"]),
        (&json!("pending"), &json!(again_url))
    );
    sent_again(&again, "the redelivery at the new URL", "/again", &first).await;
    let d = only_delivery(&app, &eid, |d| {
        d["status"] == "delivered" && d["attempts"].as_array().unwrap().len() == 3
    })
    .await;
    assert_eq!(attempt_codes(&d), [500, 200, 200]);
    assert_eq!(d["url"], again_url.as_str());
    assert_eq!(old.log().len(), 1);
    assert_eq!(moved.log().len(), 1);

    // The SSRF rules check the URL the attempt uses: an endpoint that now points at a
    // private address (written straight to the store, as a host whose DNS changed would
    // resolve) is not sent to, and no earlier URL is tried instead.
    rewrite_endpoint(&app, &eid, |e| e.url = "http://10.0.0.5/hooks".into()).await;
    let r = app.post(&app.a, &redeliver, None).await;
    assert_eq!(r.status, 202, "{}", r.text);
    let d = only_delivery(&app, &eid, |d| d["status"] == "failed").await;
    assert_eq!(d["url"], "http://10.0.0.5/hooks");
    let error = d["attempts"][3]["error"].as_str().unwrap();
    assert!(error.contains("destination refused"), "{d}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        (old.log().len(), moved.log().len(), again.log().len()),
        (1, 1, 1)
    );
}

/// Writes A's endpoint `eid` straight to the store (as the API would not), as `change`
/// leaves it: its next version.
async fn rewrite_endpoint(app: &TestApp, eid: &str, change: impl FnOnce(&mut WebhookEndpoint)) {
    let stored = stored_endpoint(app, &app.a.org_id, eid).await;
    let mut next = stored.next_version();
    change(&mut next);
    app.store
        .update_endpoint(&next, stored.version, None, None)
        .await
        .unwrap();
}

/// The endpoint as the API shows it once it has been disabled.
async fn disabled_endpoint(app: &TestApp, id: &str) -> Value {
    eventually(async || {
        let e = app
            .get(&app.a, &format!("/webhook-endpoints/{id}"))
            .await
            .body;
        (e["enabled"] == false).then_some(e)
    })
    .await
}

#[tokio::test]
async fn gone_disables_the_endpoint_with_an_event() {
    let app = spawn_app().await;
    let rx = Receiver::start(&json!({"fail_first": 100, "status": 410}));
    let ep = create_endpoint(&app, &app.a, &format!("{}/hooks", rx.url), json!(["*"])).await;
    app.create_deposit(&app.a, &json!({})).await;
    rx.wait_for("the first attempt", |_| true).await;
    let eid = ep["id"].as_str().unwrap();
    let e = disabled_endpoint(&app, eid).await;
    assert_eq!(e["enabled"], false, "{e}");
    assert!(e["disabled_reason"].as_str().unwrap().contains("410"));
    let events = app
        .get(&app.a, "/events?type=webhook_endpoint.disabled")
        .await;
    assert_eq!(
        events.body["data"].as_array().unwrap().len(),
        1,
        "{}",
        events.text
    );
    assert_eq!(events.body["data"][0]["data"]["object"]["id"], eid);
    // No retry after a 410, and nothing more is sent to a disabled endpoint.
    app.create_deposit(&app.a, &json!({})).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(rx.log().len(), 1);
    // Re-enabling clears the reason.
    let r = app
        .post(
            &app.a,
            &format!("/webhook-endpoints/{eid}"),
            Some(&json!({"enabled": true})),
        )
        .await;
    assert_eq!(r.body["enabled"], true);
    assert!(r.body["disabled_reason"].is_null());
}

#[tokio::test]
async fn three_days_of_failures_disable_the_endpoint() {
    let app = spawn_app().await;
    let rx = Receiver::start(&json!({"fail_first": 100, "status": 500}));
    let ep = create_endpoint(&app, &app.a, &format!("{}/hooks", rx.url), json!(["*"])).await;
    let eid = WebhookEndpointId::parse(ep["id"].as_str().unwrap()).unwrap();
    // The endpoint has been failing since just over 3 days ago, last 10 hours ago.
    rewrite_endpoint(&app, eid.as_str(), |e| {
        e.failing_since = Some(
            Timestamp::now().plus_seconds(-payorders::webhooks::DISABLE_AFTER_FAILING_SECS - 60),
        );
        e.last_failed_at = Some(Timestamp::now().plus_seconds(-36_000));
    })
    .await;
    app.create_deposit(&app.a, &json!({})).await;
    rx.wait_for("the failing attempt", |_| true).await;
    let e = disabled_endpoint(&app, &eid.to_string()).await;
    assert_eq!(e["enabled"], false, "{e}");
    assert_eq!(e["disabled_reason"], "every delivery failed for 3 days");
    let events = app
        .get(&app.a, "/events?type=webhook_endpoint.disabled")
        .await;
    assert_eq!(events.body["data"][0]["data"]["object"]["id"], eid.as_str());
    // A fresh failure alone does not disable: the streak starts now.
    let rx2 = Receiver::start(&json!({"fail_first": 100, "status": 500}));
    let ep2 = create_endpoint(&app, &app.a, &format!("{}/hooks", rx2.url), json!(["*"])).await;
    app.create_deposit(&app.a, &json!({})).await;
    rx2.wait_for("a failing attempt", |_| true).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let e2 = app
        .get(
            &app.a,
            &format!("/webhook-endpoints/{}", ep2["id"].as_str().unwrap()),
        )
        .await
        .body;
    assert_eq!(e2["enabled"], true);
    assert!(e2["failing_since"].is_string(), "{e2}");
}

#[tokio::test]
async fn rotation_signs_with_old_and_new_secret_for_a_day() {
    let app = spawn_app().await;
    let rx = Receiver::start(&json!({}));
    let ep = create_endpoint(
        &app,
        &app.a,
        &format!("{}/hooks", rx.url),
        json!(["order.created"]),
    )
    .await;
    let old = ep["secret"].as_str().unwrap().to_owned();
    let eid = ep["id"].as_str().unwrap();
    let r = app
        .post(
            &app.a,
            &format!("/webhook-endpoints/{eid}/rotate-secret"),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let new = r.body["secret"].as_str().unwrap().to_owned();
    assert_ne!(old, new);
    rx.configure(&json!({"secrets": {"old": old, "new": new, "stranger": payorders::webhooks::generate_secret()}}));
    app.create_deposit(&app.a, &json!({})).await;
    let got = rx.wait_for("order.created", is_type("order.created")).await;
    assert_eq!(got["verified"]["old"], true, "{got}");
    assert_eq!(got["verified"]["new"], true, "{got}");
    assert_ne!(got["verified"]["stranger"], true);
    assert_eq!(
        got["webhook_signature"]
            .as_str()
            .unwrap()
            .split(' ')
            .count(),
        2
    );

    // A second rotation drops the first secret at once; only the two newest sign.
    let r = app
        .post(
            &app.a,
            &format!("/webhook-endpoints/{eid}/rotate-secret"),
            None,
        )
        .await;
    let newest = r.body["secret"].as_str().unwrap().to_owned();
    rx.configure(&json!({"secrets": {"old": old, "new": new, "newest": newest}}));
    app.create_deposit(&app.a, &json!({})).await;
    rx.wait_for("the second order", |v| v["n"] == 2).await;
    let second = &rx.log()[1];
    assert_ne!(second["verified"]["old"], true);
    assert_eq!(second["verified"]["new"], true);
    assert_eq!(second["verified"]["newest"], true);
}

#[tokio::test]
async fn ssrf_refusals_at_create_and_at_delivery() {
    let app = spawn_app().await;
    for url in [
        "https://10.0.0.5/hook",
        "https://172.16.3.4/hook",
        "https://192.168.1.20/hook",
        "https://127.0.0.1/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://[::1]/hook",
        "https://localhost/hook",
        "https://[::ffff:10.0.0.1]/hook",
    ] {
        let r = app
            .post(
                &app.a_live,
                "/webhook-endpoints",
                Some(&json!({"url": url})),
            )
            .await;
        r.assert_error(422, "WEBHOOK_URL_FORBIDDEN");
    }
    app.post(
        &app.a_live,
        "/webhook-endpoints",
        Some(&json!({"url": "http://example.com/hook"})),
    )
    .await
    .assert_error(400, "INVALID_URL");
    // Test mode may use http://localhost, and only loopback among private addresses.
    let rx = Receiver::start(&json!({}));
    let local = format!(
        "http://localhost:{}/hooks",
        rx.url.rsplit(':').next().unwrap()
    );
    assert_eq!(
        app.call(
            &app.a,
            "POST",
            "/webhook-endpoints",
            Some(&json!({"url": local})),
            &[]
        )
        .await
        .status,
        201
    );
    app.post(
        &app.a,
        "/webhook-endpoints",
        Some(&json!({"url": "http://10.0.0.5/hook"})),
    )
    .await
    .assert_error(422, "WEBHOOK_URL_FORBIDDEN");
    // Updating to a forbidden URL is refused the same way.
    let eid = app.get(&app.a, "/webhook-endpoints").await.body["data"][0]["id"].clone();
    app.post(
        &app.a,
        &format!("/webhook-endpoints/{}", eid.as_str().unwrap()),
        Some(&json!({"url": "https://169.254.169.254/"})),
    )
    .await
    .assert_error(422, "WEBHOOK_URL_FORBIDDEN");

    // At delivery: a live endpoint whose URL resolves to loopback (written straight to the
    // store, as if its DNS changed after it was saved) gets nothing sent.
    let url = format!(
        "https://localhost:{}/hooks",
        rx.url.rsplit(':').next().unwrap()
    );
    let (sneaky, _) =
        payorders::testing::endpoint(&app.a.org_id, true, &url, &app.master, Timestamp::now());
    app.store.create_endpoint(&sneaky, None).await.unwrap();
    app.create_deposit(&app.a_live, &json!({})).await;
    let d = eventually(async || {
        let list = app
            .get(
                &app.a_live,
                &format!("/webhook-endpoints/{}/deliveries", sneaky.id),
            )
            .await;
        let d = list.body["data"][0].clone();
        (d["status"] == "failed").then_some(d)
    })
    .await;
    assert_eq!(d["status"], "failed", "{d}");
    assert!(
        d["attempts"][0]["error"]
            .as_str()
            .unwrap()
            .contains("refused"),
        "{d}"
    );
    assert!(rx.log().is_empty(), "nothing reached the receiver");
}

#[tokio::test]
async fn endpoint_crud_and_validation() {
    let app = spawn_app().await;
    let rx = Receiver::start(&json!({}));
    let url = format!("{}/hooks", rx.url);
    let ep = create_endpoint(
        &app,
        &app.a,
        &url,
        json!(["order.created", "order.completed"]),
    )
    .await;
    let eid = ep["id"].as_str().unwrap();
    assert_eq!(ep["object"], "webhook_endpoint");
    // The secret is shown once.
    let got = app.get(&app.a, &format!("/webhook-endpoints/{eid}")).await;
    assert_eq!(got.status, 200);
    assert!(got.body.get("secret").is_none());
    assert!(!got.text.contains("whsec_"));
    let list = app.get(&app.a, "/webhook-endpoints").await;
    assert_eq!(list.body["data"].as_array().unwrap().len(), 1);
    let upd = app
        .post(
            &app.a,
            &format!("/webhook-endpoints/{eid}"),
            Some(&json!({"events": ["*"], "description": "all", "enabled": false})),
        )
        .await;
    assert_eq!(upd.status, 200, "{}", upd.text);
    assert_eq!(upd.body["events"], json!(["*"]));
    assert_eq!(upd.body["enabled"], false);
    for (body, code, param) in [
        (json!({}), "INVALID_URL", "url"),
        (json!({"url": "not a url"}), "INVALID_URL", "url"),
        (
            json!({"url": url, "events": []}),
            "INVALID_EVENT_TYPE",
            "events",
        ),
        (
            json!({"url": url, "events": ["order.teleported"]}),
            "INVALID_EVENT_TYPE",
            "events",
        ),
        (
            json!({"url": url, "events": "*"}),
            "INVALID_EVENT_TYPE",
            "events",
        ),
        (
            json!({"url": url, "secret": "whsec_mine"}),
            "UNKNOWN_PARAMETER",
            "secret",
        ),
        (
            json!({"url": url, "enabled": "yes"}),
            "INVALID_PARAMETER",
            "enabled",
        ),
        (
            json!({"url": url, "description": 5}),
            "INVALID_DESCRIPTION",
            "description",
        ),
    ] {
        let r = app.post(&app.a, "/webhook-endpoints", Some(&body)).await;
        assert_eq!(
            (
                r.status,
                r.body["error"]["code"].as_str(),
                r.body["error"]["param"].as_str()
            ),
            (400, Some(code), Some(param)),
            "{body}: {}",
            r.text
        );
    }
    // Other organizations and the other mode see 404s.
    for who in [&app.b, &app.a_live] {
        for (m, p) in [
            ("GET", format!("/webhook-endpoints/{eid}")),
            ("DELETE", format!("/webhook-endpoints/{eid}")),
            ("GET", format!("/webhook-endpoints/{eid}/deliveries")),
        ] {
            app.call(who, m, &p, None, &[])
                .await
                .assert_error(404, "RESOURCE_NOT_FOUND");
        }
    }
    // Scope: orders-only keys cannot manage webhooks.
    let orders_only = app
        .key_of_a(vec![Scope::OrdersRead, Scope::OrdersCreate])
        .await;
    app.get(&orders_only, "/webhook-endpoints")
        .await
        .assert_error(403, "INSUFFICIENT_SCOPE");
    // Delete.
    let del = app
        .call(
            &app.a,
            "DELETE",
            &format!("/webhook-endpoints/{eid}"),
            None,
            &[],
        )
        .await;
    assert_eq!(
        del.body,
        json!({"id": eid, "object": "webhook_endpoint", "deleted": true})
    );
    app.get(&app.a, &format!("/webhook-endpoints/{eid}"))
        .await
        .assert_error(404, "RESOURCE_NOT_FOUND");
}

#[tokio::test]
async fn events_api_lists_and_gets() {
    let app = spawn_app().await;
    let o = app.create_deposit(&app.a, &json!({})).await;
    let id = o.body["id"].as_str().unwrap();
    app.post(&app.a, &format!("/pay-orders/{id}/cancel"), None)
        .await;
    app.create_deposit(&app.b, &json!({})).await;
    let all = app.get(&app.a, "/events").await;
    assert_eq!(all.status, 200, "{}", all.text);
    let types: Vec<_> = all.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(types, ["order.cancelled", "order.created"]);
    assert_eq!(all.body["data"][0]["object"], "event");
    let only = app.get(&app.a, "/events?type=order.created&limit=1").await;
    assert_eq!(only.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(only.body["has_more"], false);
    let eid = all.body["data"][0]["id"].as_str().unwrap();
    let one = app.get(&app.a, &format!("/events/{eid}")).await;
    assert_eq!(one.body, all.body["data"][0]);
    app.get(&app.b, &format!("/events/{eid}"))
        .await
        .assert_error(404, "RESOURCE_NOT_FOUND");
    app.get(&app.a, "/events/evt_nope")
        .await
        .assert_error(404, "RESOURCE_NOT_FOUND");
    app.get(&app.a, "/events?type=order.teleported")
        .await
        .assert_error(400, "INVALID_EVENT_TYPE");
    // Older than 30 days is out of reach, whatever created_gte says.
    let old = app
        .get(&app.a, "/events?created_lte=2020-01-01T00:00:00Z")
        .await;
    assert_eq!(old.body["data"], json!([]));
}

/// A queue that records messages and fails its first `fail` sends.
struct FlakyQueue {
    fail: AtomicU32,
    sent: std::sync::Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl Queue for FlakyQueue {
    async fn send(&self, body: &str, _delay: u32) -> Result<(), QueueError> {
        if self.fail.load(Ordering::SeqCst) > 0 {
            self.fail.fetch_sub(1, Ordering::SeqCst);
            return Err(QueueError("injected".into()));
        }
        self.sent.lock().unwrap().push(body.to_owned());
        Ok(())
    }
}

/// A webhook store that fails chosen calls once, then behaves, and refuses to write a
/// delivery (dispatch writes none).
struct FlakyStore {
    inner: Arc<dyn payorders::store::Store>,
    fail_list: AtomicU32,
    /// How many times the endpoints were listed.
    listed: AtomicU32,
}

fn injected() -> StoreError {
    StoreError::Unavailable("injected".into())
}

fn take(flag: &AtomicU32) -> bool {
    flag.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| v.checked_sub(1))
        .is_ok()
}

#[async_trait::async_trait]
impl WebhookStore for FlakyStore {
    async fn create_endpoint(
        &self,
        e: &WebhookEndpoint,
        c: Option<&payorders::store::IdempotencyCompletion>,
    ) -> StoreResult<()> {
        self.inner.create_endpoint(e, c).await
    }
    async fn get_endpoint(
        &self,
        o: &OrgId,
        id: &WebhookEndpointId,
    ) -> StoreResult<Option<WebhookEndpoint>> {
        self.inner.get_endpoint(o, id).await
    }
    async fn update_endpoint(
        &self,
        e: &WebhookEndpoint,
        v: u64,
        ev: Option<&Event>,
        c: Option<&payorders::store::IdempotencyCompletion>,
    ) -> StoreResult<()> {
        self.inner.update_endpoint(e, v, ev, c).await
    }
    async fn delete_endpoint(&self, o: &OrgId, id: &WebhookEndpointId) -> StoreResult<bool> {
        self.inner.delete_endpoint(o, id).await
    }
    async fn list_endpoints(&self, o: &OrgId, m: KeyMode) -> StoreResult<Vec<WebhookEndpoint>> {
        self.listed.fetch_add(1, Ordering::SeqCst);
        if take(&self.fail_list) {
            return Err(injected());
        }
        self.inner.list_endpoints(o, m).await
    }
    async fn create_delivery(&self, d: &Delivery) -> StoreResult<bool> {
        panic!("dispatch writes no delivery: {d:?}")
    }
    async fn get_delivery(&self, id: &DeliveryId) -> StoreResult<Option<Delivery>> {
        self.inner.get_delivery(id).await
    }
    async fn update_delivery(&self, d: &Delivery, _: u64) -> StoreResult<()> {
        panic!("dispatch writes no delivery: {d:?}")
    }
    async fn list_deliveries(
        &self,
        e: &WebhookEndpointId,
        w: &ListWindow,
    ) -> StoreResult<Page<Delivery>> {
        self.inner.list_deliveries(e, w).await
    }
}

/// An in-memory store with no outbox poller running (a test's dispatcher is the only one),
/// and a master key.
fn quiet_store() -> (Arc<dyn payorders::store::Store>, payorders::auth::MasterKey) {
    let store = Arc::new(payorders::store::embedded::EmbeddedStore::in_memory().unwrap());
    (store, payorders::testing::master_key())
}

/// Dispatch's dependencies over `store`, each step (listing the endpoints, queueing a
/// delivery) failing `failures` times before it works; writing a delivery panics.
fn flaky_dispatch(
    store: &Arc<dyn payorders::store::Store>,
    failures: u32,
) -> (Arc<FlakyStore>, Arc<FlakyQueue>, dispatch_events::Deps) {
    let flaky = Arc::new(FlakyStore {
        inner: store.clone(),
        fail_list: AtomicU32::new(failures),
        listed: AtomicU32::new(0),
    });
    let queue = Arc::new(FlakyQueue {
        fail: AtomicU32::new(failures),
        sent: Default::default(),
    });
    let deps = dispatch_events::Deps {
        store: flaky.clone(),
        queue: queue.clone(),
    };
    (flaky, queue, deps)
}

/// A batch of events (a stream batch, an outbox pass) reads each organization's endpoints
/// once per mode, and every event still gets its deliveries.
#[tokio::test]
async fn a_batch_lists_each_organizations_endpoints_once() {
    let (store, master) = quiet_store();
    let now = Timestamp::now();
    let mut events = Vec::new();
    for name in ["First", "Second"] {
        let (org, _) = payorders_local::setup::create_org(&*store, &master, name, None)
            .await
            .unwrap();
        let url = format!("https://{}.example/hooks", name.to_lowercase());
        let (e, _) = payorders::testing::endpoint(&org.id, false, &url, &master, now);
        store.create_endpoint(&e, None).await.unwrap();
        for livemode in [false, false, true] {
            let new = NewOrder::new(payorders::testing::order(&org.id, livemode, now)).unwrap();
            store.create_order(&new).await.unwrap();
            events.push(new.event().clone());
        }
    }
    let (counting, queue, deps) = flaky_dispatch(&store, 0);
    let mut batch = dispatch_events::BatchEndpoints::default();
    let mut destinations = Vec::new();
    for event in &events {
        destinations.push(
            dispatch_events::dispatch_in(&deps, event, &mut batch)
                .await
                .unwrap(),
        );
    }
    // Two organizations, two modes each; the test-mode endpoints get the test events only.
    assert_eq!(counting.listed.load(Ordering::SeqCst), 4);
    assert_eq!(destinations, [1, 1, 0, 1, 1, 0]);
    assert_eq!(queue.sent.lock().unwrap().len(), 4);
    // Alone, each event reads them again.
    dispatch_events::dispatch(&deps, &events[0]).await.unwrap();
    assert_eq!(counting.listed.load(Ordering::SeqCst), 5);
}

#[tokio::test]
async fn dispatch_survives_each_step_failing_once() {
    let (store, master) = quiet_store();
    let (org, _) = payorders_local::setup::create_org(&*store, &master, "Flaky", None)
        .await
        .unwrap();
    let rx = Receiver::start(&json!({}));
    let now = Timestamp::now();
    let mut endpoint_ids = Vec::new();
    for path in ["/hooks", "/hooks2"] {
        let (e, _) = payorders::testing::endpoint(
            &org.id,
            false,
            &format!("{}{path}", rx.url),
            &master,
            now,
        );
        store.create_endpoint(&e, None).await.unwrap();
        endpoint_ids.push(e.id);
    }
    let new = NewOrder::new(payorders::testing::order(&org.id, false, now)).unwrap();
    store.create_order(&new).await.unwrap();
    let event = new.event().clone();

    // (1) reading the endpoints fails, (2) queueing fails: each once, each retried as the
    // stream retries a failed record.
    let (_, queue, deps) = flaky_dispatch(&store, 1);
    let mut failures = 0;
    loop {
        match dispatch_events::dispatch(&deps, &event).await {
            Ok(n) => {
                assert_eq!(n, 2);
                break;
            }
            Err(_) => failures += 1,
        }
        assert!(failures <= 2, "dispatch keeps failing");
    }
    assert_eq!(failures, 2, "each step failed once");
    // The stream delivers at least once: dispatching the same record again is harmless.
    dispatch_events::dispatch(&deps, &event).await.unwrap();

    let ids: std::collections::BTreeSet<_> = endpoint_ids
        .iter()
        .map(|e| Delivery::id_for(&event.id, Some(e)))
        .collect();
    // Every message is a first attempt of one of the two deliveries, and each is queued:
    // duplicates are allowed, new ones are not. Dispatch wrote none of them.
    let sent = queue.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 4, "{sent:?}");
    let mut queued = std::collections::BTreeSet::new();
    for m in &sent {
        let DeliveryMessage::First(first) = DeliveryMessage::parse(m).unwrap() else {
            panic!("not a first attempt: {m}");
        };
        assert_eq!(first.event_id, event.id);
        assert!(ids.contains(&first.delivery_id()));
        queued.insert(first.delivery_id());
    }
    assert_eq!(queued, ids, "no delivery lost");
    for id in &ids {
        assert!(store.get_delivery(id).await.unwrap().is_none());
    }

    // Processing every message at once, duplicates included, sends each delivery once.
    let deliver = deliver_webhook::Deps {
        retry_scale: RETRY_SCALE,
        allow_loopback: true,
        ..deliver_webhook::Deps::new(store.clone(), master)
    };
    let outcomes =
        futures::future::join_all(sent.iter().map(|m| deliver_webhook::process(&deliver, m))).await;
    // A duplicate that arrives while another worker holds the attempt's lease is told to
    // come back when the lease ends; by then the delivery is done.
    for (m, o) in sent.iter().zip(&outcomes) {
        match o {
            Ok(Outcome::Done) => {}
            Ok(Outcome::RetryAfter(secs)) => {
                assert!(*secs <= 60, "{secs}");
                assert_eq!(
                    deliver_webhook::process(&deliver, m).await.unwrap(),
                    Outcome::Done
                );
            }
            Err(e) => panic!("{e}"),
        }
    }
    let log = rx.log();
    assert_eq!(log.len(), 2, "one request per endpoint: {log:?}");
    let paths: std::collections::BTreeSet<_> = log
        .iter()
        .map(|v| v["path"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(paths.len(), 2);
    for id in &ids {
        assert_eq!(
            store.get_delivery(id).await.unwrap().unwrap().status,
            DeliveryStatus::Delivered
        );
    }
}

/// What a receiver saw: the `webhook-id` of each request; it answers `status`.
struct Seen {
    status: std::sync::atomic::AtomicU16,
    ids: std::sync::Mutex<Vec<String>>,
}

async fn seen(
    axum::extract::State(s): axum::extract::State<Arc<Seen>>,
    headers: axum::http::HeaderMap,
) -> axum::http::StatusCode {
    let id = headers["webhook-id"].to_str().unwrap().to_owned();
    s.ids.lock().unwrap().push(id);
    axum::http::StatusCode::from_u16(s.status.load(Ordering::SeqCst)).unwrap()
}

/// A first-attempt message (what dispatch queues; dispatch writes no delivery) through
/// what SQS and crashes do to it: copies at once create one record and send once; the
/// message again before its retry is due writes and sends nothing; the retry goes on in the
/// same record; a worker killed between the lease and the outcome leaves a lease that runs
/// out, then the delivery is attempted; and a message pairing one organization's event
/// with another's endpoint sends nothing.
#[tokio::test]
async fn a_first_attempt_is_made_once_through_copies_retries_and_crashes() {
    let rx = Arc::new(Seen {
        status: std::sync::atomic::AtomicU16::new(500),
        ids: Default::default(),
    });
    let base = serve_router(axum::Router::new().fallback(seen).with_state(rx.clone())).await;
    let sent = || rx.ids.lock().unwrap().clone();
    let (store, master) = quiet_store();
    let (org, _) = payorders_local::setup::create_org(&*store, &master, "First", None)
        .await
        .unwrap();
    let now = Timestamp::now();
    let (ep, _) =
        payorders::testing::endpoint(&org.id, false, &format!("{base}/hooks"), &master, now);
    store.create_endpoint(&ep, None).await.unwrap();
    let event = async || {
        let new = NewOrder::new(payorders::testing::order(&org.id, false, now)).unwrap();
        store.create_order(&new).await.unwrap();
        new.event().clone()
    };
    let first_of = |event: &Event, ep: &WebhookEndpoint| FirstAttempt {
        event_id: event.id.clone(),
        endpoint_id: Some(ep.id.clone()),
        dispatched_at: now,
    };
    // Retries on the real schedule (seconds apart at the least); time passing is written
    // into the record instead of waited for.
    let deps = deliver_webhook::Deps {
        retry_scale: 1.0,
        allow_loopback: true,
        ..deliver_webhook::Deps::new(store.clone(), master.clone())
    };
    // A first attempt that is done at once, with no delivery written.
    let nothing_for = async |first: FirstAttempt| {
        let body = DeliveryMessage::First(first.clone()).body();
        let o = deliver_webhook::process(&deps, &body).await.unwrap();
        assert_eq!(o, Outcome::Done);
        let stored = store.get_delivery(&first.delivery_id()).await.unwrap();
        assert!(stored.is_none(), "{stored:?}");
    };
    let run_out = async |d: &Delivery| {
        let mut due = d.next_version();
        due.next_attempt_at = Some(Timestamp::now().plus_seconds(-1));
        store.update_delivery(&due, d.version).await.unwrap();
    };

    // (1) Four copies at once, the receiver failing: one request, one record, one attempt.
    let first = first_of(&event().await, &ep);
    let id = first.delivery_id();
    let body = DeliveryMessage::First(first).body();
    let outcomes =
        futures::future::join_all((0..4).map(|_| deliver_webhook::process(&deps, &body))).await;
    let retries: Vec<u64> = outcomes
        .into_iter()
        .filter_map(|o| match o.unwrap() {
            Outcome::RetryAfter(secs) => Some(secs),
            Outcome::Done => None,
        })
        .collect();
    assert_eq!(sent(), [id.to_string()]);
    let d = store.get_delivery(&id).await.unwrap().unwrap();
    assert_eq!(
        (d.status, d.attempts.len(), d.version),
        (DeliveryStatus::Pending, 1, 2)
    );
    assert_eq!(d.attempts[0].status_code, Some(500));
    assert_eq!(d.created_at, now, "created when dispatched");
    assert!(
        !retries.is_empty(),
        "the attempt's message is kept for its retry"
    );

    // (2) The message again before the retry is due: nothing sent, nothing written.
    let Outcome::RetryAfter(_) = deliver_webhook::process(&deps, &body).await.unwrap() else {
        panic!("a pending delivery's message is kept");
    };
    assert_eq!(sent().len(), 1);
    assert_eq!(store.get_delivery(&id).await.unwrap().unwrap(), d);

    // (3) Once due, the same message makes the second attempt in the same record.
    rx.status.store(200, Ordering::SeqCst);
    run_out(&d).await;
    let o = deliver_webhook::process(&deps, &body).await.unwrap();
    assert_eq!(o, Outcome::Done);
    let d = store.get_delivery(&id).await.unwrap().unwrap();
    assert_eq!((d.status, d.attempts.len()), (DeliveryStatus::Delivered, 2));
    assert_eq!(d.created_at, now);
    // (4) And after that, never again.
    let o = deliver_webhook::process(&deps, &body).await.unwrap();
    assert_eq!(o, Outcome::Done);
    assert_eq!(sent(), [id.to_string(), id.to_string()]);

    // (5) A worker killed after its lease created the record, before it sent: the message
    // comes back and waits for the lease; once the lease has run out it is attempted.
    let event2 = event().await;
    let first = first_of(&event2, &ep);
    let id2 = first.delivery_id();
    let leased = payorders::webhooks::delivery::first_lease(
        &event2,
        &first,
        ep.url.clone(),
        Timestamp::now(),
    );
    assert!(store.create_delivery(&leased).await.unwrap());
    let body2 = DeliveryMessage::First(first).body();
    match deliver_webhook::process(&deps, &body2).await.unwrap() {
        Outcome::RetryAfter(secs) => {
            assert!((1..=payorders::webhooks::delivery::LEASE_SECS as u64).contains(&secs))
        }
        other => panic!("the lease holds: {other:?}"),
    }
    assert_eq!(sent().len(), 2);
    run_out(&leased).await;
    let o = deliver_webhook::process(&deps, &body2).await.unwrap();
    assert_eq!(o, Outcome::Done);
    let d = store.get_delivery(&id2).await.unwrap().unwrap();
    assert_eq!((d.status, d.attempts.len()), (DeliveryStatus::Delivered, 1));
    assert_eq!(sent().last(), Some(&id2.to_string()));

    // (6) Another organization's endpoint named beside this organization's event: the
    // endpoint is looked up in the event's organization, so nothing is written or sent.
    let (other, _) = payorders_local::setup::create_org(&*store, &master, "Other", None)
        .await
        .unwrap();
    let (theirs, _) =
        payorders::testing::endpoint(&other.id, false, &format!("{base}/theirs"), &master, now);
    store.create_endpoint(&theirs, None).await.unwrap();
    nothing_for(first_of(&event().await, &theirs)).await;
    assert_eq!(sent().len(), 3, "nothing more sent");

    // (7) A first attempt of an event that does not exist writes and sends nothing.
    nothing_for(FirstAttempt {
        event_id: EventId::generate(),
        ..first_of(&event2, &ep)
    })
    .await;
    assert_eq!(sent().len(), 3);
}

/// A store with one test-mode organization, an order event, and one pending delivery of it
/// per URL (each to its own endpoint).
async fn pending_deliveries(
    urls: &[String],
) -> (
    Arc<dyn payorders::store::Store>,
    payorders::auth::MasterKey,
    Vec<Delivery>,
) {
    let store: Arc<dyn payorders::store::Store> =
        Arc::new(payorders::store::embedded::EmbeddedStore::in_memory().unwrap());
    let master = payorders::testing::master_key();
    let (org, _) = payorders_local::setup::create_org(&*store, &master, "Batch", None)
        .await
        .unwrap();
    let now = Timestamp::now();
    let new = NewOrder::new(payorders::testing::order(&org.id, false, now)).unwrap();
    store.create_order(&new).await.unwrap();
    let event = new.event();
    let mut deliveries = Vec::new();
    for url in urls {
        let (ep, _) = payorders::testing::endpoint(&org.id, false, url, &master, now);
        store.create_endpoint(&ep, None).await.unwrap();
        let d = Delivery {
            id: Delivery::id_for(&event.id, Some(&ep.id)),
            organization_id: org.id.clone(),
            livemode: false,
            endpoint_id: Some(ep.id.clone()),
            url: ep.url.clone(),
            event_id: event.id.clone(),
            event_type: event.event_type,
            status: DeliveryStatus::Pending,
            attempts: vec![],
            next_attempt_at: None,
            created_at: now,
            updated_at: now,
            version: 1,
        };
        assert!(store.create_delivery(&d).await.unwrap());
        deliveries.push(d);
    }
    (store, master, deliveries)
}

#[tokio::test]
async fn an_endless_response_is_read_no_further_than_the_logged_kilobyte() {
    // 200, then a body that never ends.
    let app = axum::Router::new().fallback(|| async {
        let chunk = axum::body::Bytes::from(vec![b'x'; 4096]);
        let endless = futures::stream::repeat_with(move || Ok::<_, std::io::Error>(chunk.clone()));
        axum::body::Body::from_stream(endless)
    });
    let base = serve_router(app).await;
    let (store, master, ds) = pending_deliveries(&[format!("{base}/hooks")]).await;
    let deps = deliver_webhook::Deps {
        allow_loopback: true,
        ..deliver_webhook::Deps::new(store.clone(), master)
    };
    // Well under the 10 s request timeout: the attempt stops reading, it does not time out.
    let outcome = tokio::time::timeout(
        Duration::from_secs(5),
        deliver_webhook::process(&deps, &DeliveryMessage::new(&ds[0].id).body()),
    )
    .await
    .expect("the delivery finishes without reading the whole body")
    .unwrap();
    assert_eq!(outcome, Outcome::Done);
    let d = store.get_delivery(&ds[0].id).await.unwrap().unwrap();
    assert_eq!(d.status, DeliveryStatus::Delivered, "{d:?}");
    let excerpt = d.attempts[0].response_body.as_deref().unwrap();
    assert_eq!(excerpt.len(), deliver_webhook::RESPONSE_LOG_BYTES);
    assert!(excerpt.bytes().all(|b| b == b'x'));
}

/// A receiver that holds each request until `release_at` requests are in flight together
/// (or 2 s have passed), and records the most it ever saw at once. Paths ending in `/fail`
/// answer 500.
#[derive(Default)]
struct Gate {
    in_flight: std::sync::atomic::AtomicUsize,
    max: std::sync::atomic::AtomicUsize,
    open: std::sync::atomic::AtomicBool,
    release_at: usize,
}

async fn gated(
    axum::extract::State(g): axum::extract::State<Arc<Gate>>,
    uri: axum::http::Uri,
) -> axum::http::StatusCode {
    let now = g.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    g.max.fetch_max(now, Ordering::SeqCst);
    if now >= g.release_at {
        g.open.store(true, Ordering::SeqCst);
    }
    for _ in 0..200 {
        if g.open.load(Ordering::SeqCst) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    g.in_flight.fetch_sub(1, Ordering::SeqCst);
    if uri.path().ends_with("/fail") {
        axum::http::StatusCode::INTERNAL_SERVER_ERROR
    } else {
        axum::http::StatusCode::OK
    }
}

#[tokio::test]
async fn a_batch_is_sent_concurrently_within_the_bound_and_reports_its_failures() {
    let gate = Arc::new(Gate {
        release_at: deliver_webhook::CONCURRENCY,
        ..Default::default()
    });
    let base = serve_router(axum::Router::new().fallback(gated).with_state(gate.clone())).await;
    // A full SQS batch (10): eight deliveries that succeed, one the receiver refuses (kept
    // for a retry), and one unreadable message (kept for the DLQ).
    let mut urls: Vec<String> = (0..9).map(|i| format!("{base}/hooks/{i}")).collect();
    urls[3] = format!("{base}/hooks/fail");
    let (store, master, ds) = pending_deliveries(&urls).await;
    let mut bodies: Vec<String> = ds
        .iter()
        .map(|d| DeliveryMessage::new(&d.id).body())
        .collect();
    bodies.insert(6, "{\"delivery_id\": 42}".into());
    let records: Vec<Value> = bodies
        .iter()
        .enumerate()
        .map(|(i, b)| json!({"messageId": format!("m{i}"), "body": b, "eventSource": "aws:sqs"}))
        .collect();
    let payload = serde_json::from_value(json!({ "Records": records })).unwrap();
    let deps = deliver_webhook::Deps {
        allow_loopback: true,
        ..deliver_webhook::Deps::new(store.clone(), master)
    };
    // Records carry no receipt handle, so the queue is never called.
    let sdk = payorders::config::aws_sdk_loader()
        .region(aws_config::Region::new("us-east-1"))
        .load()
        .await;
    let queue =
        payorders::queue::SqsQueue::new(aws_sdk_sqs::Client::new(&sdk), "http://127.0.0.1:9/q");
    let out = deliver_webhook::handler(
        &deps,
        &queue,
        lambda_http::LambdaEvent::new(payload, lambda_http::Context::default()),
    )
    .await
    .unwrap();
    assert_eq!(
        gate.max.load(Ordering::SeqCst),
        deliver_webhook::CONCURRENCY,
        "deliveries are in flight together, never more than the bound"
    );
    let kept: Vec<&str> = out
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(kept, ["m3", "m6"], "the retried and the unreadable message");
    for (i, d) in ds.iter().enumerate() {
        let stored = store.get_delivery(&d.id).await.unwrap().unwrap();
        let want = if i == 3 {
            DeliveryStatus::Pending
        } else {
            DeliveryStatus::Delivered
        };
        assert_eq!(stored.status, want, "{stored:?}");
        assert_eq!(stored.attempts.len(), 1);
    }
}

#[tokio::test]
async fn the_lambda_configuration_refuses_test_mode_loopback_urls() {
    let rx = Receiver::start(&json!({}));
    let urls = [
        format!("{}/hooks", rx.url),
        format!(
            "http://localhost:{}/hooks",
            rx.url.rsplit(':').next().unwrap()
        ),
    ];
    let (store, master, ds) = pending_deliveries(&urls).await;
    // What the Lambda main builds.
    let deps = deliver_webhook::Deps::new(store.clone(), master);
    for d in &ds {
        let outcome = deliver_webhook::process(&deps, &DeliveryMessage::new(&d.id).body())
            .await
            .unwrap();
        assert_eq!(outcome, Outcome::Done);
        let stored = store.get_delivery(&d.id).await.unwrap().unwrap();
        assert_eq!(stored.status, DeliveryStatus::Failed, "{stored:?}");
        let error = stored.attempts[0].error.as_deref().unwrap();
        assert!(error.contains("destination refused"), "{error}");
    }
    assert!(rx.log().is_empty(), "nothing reached the receiver");
}

/// A host that does not resolve (the merchant's DNS down for a while) is an attempt that
/// got no answer: recorded, and retried on the schedule. It once failed the delivery for
/// good as a refused destination, so an `order.completed` sent during a DNS outage never
/// arrived. An address the rules refuse still fails it at once.
#[tokio::test]
async fn a_host_that_does_not_resolve_is_retried_not_failed() {
    let urls = [
        // (`.invalid` never resolves: RFC 6761.)
        "http://hooks.payorders.invalid/hooks".to_owned(),
        "http://10.0.0.5/hooks".to_owned(),
    ];
    let (store, master, ds) = pending_deliveries(&urls).await;
    let deps = deliver_webhook::Deps::new(store.clone(), master);
    let message = |d: &Delivery| DeliveryMessage::new(&d.id).body();
    let outcome = deliver_webhook::process(&deps, &message(&ds[0]))
        .await
        .unwrap();
    assert!(matches!(outcome, Outcome::RetryAfter(_)), "{outcome:?}");
    let stored = store.get_delivery(&ds[0].id).await.unwrap().unwrap();
    assert_eq!(stored.status, DeliveryStatus::Pending, "{stored:?}");
    assert!(stored.next_attempt_at.is_some(), "{stored:?}");
    let error = stored.attempts[0].error.as_deref().unwrap();
    // (Where no resolver answers at all, the lookup times out instead: retried the same.)
    assert!(
        error.contains("hooks.payorders.invalid did not resolve")
            || error.contains("resolving the host timed out"),
        "{error}"
    );
    let outcome = deliver_webhook::process(&deps, &message(&ds[1]))
        .await
        .unwrap();
    assert_eq!(outcome, Outcome::Done);
    let stored = store.get_delivery(&ds[1].id).await.unwrap().unwrap();
    assert_eq!(stored.status, DeliveryStatus::Failed, "{stored:?}");
    let error = stored.attempts[0].error.as_deref().unwrap();
    assert!(error.contains("destination refused"), "{error}");
}

/// The endpoint's delivery of `delivery_id` once it is no longer pending.
async fn finished_delivery(app: &TestApp, eid: &str, delivery_id: &str) -> Value {
    eventually(async || {
        let log = app
            .get(&app.a, &format!("/webhook-endpoints/{eid}/deliveries"))
            .await
            .body;
        log["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["id"] == delivery_id && d["status"] != "pending")
            .cloned()
    })
    .await
}

#[tokio::test]
async fn test_ping_reaches_only_its_endpoint_signed() {
    let app = spawn_app().await;
    let rx = Receiver::start(&json!({}));
    let ep = create_endpoint(&app, &app.a, &format!("{}/hooks", rx.url), json!(["*"])).await;
    let other = create_endpoint(&app, &app.a, &format!("{}/other", rx.url), json!(["*"])).await;
    rx.configure(&json!({"secrets": {"endpoint": ep["secret"], "other": other["secret"]}}));
    let eid = ep["id"].as_str().unwrap();

    let r = app
        .post(&app.a, &format!("/webhook-endpoints/{eid}/test"), None)
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(r.body["object"], "webhook_delivery");
    assert_eq!(r.body["event_type"], "ping");
    assert_eq!(r.body["endpoint_id"], eid);
    let ping = rx.wait_for("the ping", is_type("ping")).await;
    assert_eq!(ping["path"], "/hooks");
    assert_eq!(ping["verified"]["endpoint"], true, "{ping}");
    assert_eq!(ping["webhook_id"], r.body["id"]);
    assert_eq!(ping["body"]["data"]["object"]["id"], eid);
    assert_eq!(ping["body"]["id"], r.body["event_id"]);
    let d = finished_delivery(&app, eid, r.body["id"].as_str().unwrap()).await;
    assert_eq!(d["status"], "delivered");
    // No other endpoint gets it, although it subscribes to everything.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pings: Vec<_> = rx.log().into_iter().filter(is_type("ping")).collect();
    assert_eq!(pings.len(), 1, "{pings:?}");
    // `ping` cannot be subscribed to.
    app.post(
        &app.a,
        "/webhook-endpoints",
        Some(&json!({"url": format!("{}/x", rx.url), "events": ["ping"]})),
    )
    .await
    .assert_error(400, "INVALID_EVENT_TYPE");

    // Another organization, or the other mode, cannot test it; a disabled endpoint is not sent to.
    for who in [&app.b, &app.a_live] {
        app.post(who, &format!("/webhook-endpoints/{eid}/test"), None)
            .await
            .assert_error(404, "RESOURCE_NOT_FOUND");
    }
    let off = app
        .post(
            &app.a,
            &format!("/webhook-endpoints/{eid}"),
            Some(&json!({"enabled": false})),
        )
        .await;
    assert_eq!(off.status, 200, "{}", off.text);
    app.post(&app.a, &format!("/webhook-endpoints/{eid}/test"), None)
        .await
        .assert_error(409, "ENDPOINT_DISABLED");
    app.post(
        &app.a,
        &format!("/webhook-endpoints/{eid}/test"),
        Some(&json!({"extra": 1})),
    )
    .await
    .assert_error(400, "UNKNOWN_PARAMETER");
}

/// The endpoint's delivery log as the API lists it: (id, status, number of attempts).
async fn delivery_log(app: &TestApp, eid: &str) -> Vec<(String, String, usize)> {
    let log = app
        .get(&app.a, &format!("/webhook-endpoints/{eid}/deliveries"))
        .await;
    assert_eq!(log.status, 200, "{}", log.text);
    log.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["id"].as_str().unwrap().to_owned(),
                d["status"].as_str().unwrap().to_owned(),
                d["attempts"].as_array().unwrap().len(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_ping_or_redelivery_not_queued_leaves_nothing_pending_and_copies_send_once() {
    let app = spawn_app().await;
    let rx = Receiver::start(&json!({}));
    let ep = create_endpoint(&app, &app.a, &format!("{}/hooks", rx.url), json!(["*"])).await;
    rx.configure(&json!({"secrets": {"endpoint": ep["secret"]}}));
    let eid = ep["id"].as_str().unwrap();
    let pings = || rx.log().into_iter().filter(is_type("ping")).count();

    let r = app
        .post(&app.a, &format!("/webhook-endpoints/{eid}/test"), None)
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let did = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(r.body["status"], "pending");
    finished_delivery(&app, eid, &did).await;
    let delivered = vec![(did.clone(), "delivered".to_owned(), 1)];
    assert_eq!(delivery_log(&app, eid).await, delivered);

    // The queue refuses (or the process dies before it sends): both requests fail in our
    // error shape, and neither leaves a delivery pending with no message to attempt it.
    // Before, the ping's delivery was written first and stayed pending for good, and the
    // redelivery made this one pending for good.
    app.webhooks_down.store(true, Ordering::SeqCst);
    app.post(&app.a, &format!("/webhook-endpoints/{eid}/test"), None)
        .await
        .assert_error(503, "QUEUE_UNAVAILABLE");
    let redeliver = format!("/webhook-endpoints/{eid}/deliveries/{did}/redeliver");
    app.post(&app.a, &redeliver, None)
        .await
        .assert_error(503, "QUEUE_UNAVAILABLE");
    app.webhooks_down.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(delivery_log(&app, eid).await, delivered);
    assert_eq!(pings(), 1, "nothing more was sent");

    // Queued, the redelivery sends the same webhook-id again and keeps the first attempt.
    let r = app.post(&app.a, &redeliver, None).await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(
        (&r.body["id"], &r.body["status"]),
        (&json!(did), &json!("pending"))
    );
    assert_eq!(r.body["attempts"].as_array().unwrap().len(), 1);
    let twice = eventually(async || {
        let log = delivery_log(&app, eid).await;
        (log[0].2 == 2 && log[0].1 == "delivered").then_some(log)
    })
    .await;
    assert_eq!(twice, [(did.clone(), "delivered".to_owned(), 2)]);
    let sent: Vec<Value> = rx.log().into_iter().filter(is_type("ping")).collect();
    assert_eq!(sent.len(), 2);
    assert!(sent.iter().all(|v| v["webhook_id"] == did.as_str()));
    assert!(sent.iter().all(|v| v["verified"]["endpoint"] == true));

    // Copies of one redelivery message (SQS delivers at least once), at once: one more
    // attempt. A copy that comes once it is done, or a message for a version the delivery
    // has moved past, sends nothing.
    let id = payorders::model::DeliveryId::parse(&did).unwrap();
    let stored = app.store.get_delivery(&id).await.unwrap().unwrap();
    let deps = deliver_webhook::Deps {
        allow_loopback: true,
        ..deliver_webhook::Deps::new(app.store.clone(), app.master.clone())
    };
    let body = DeliveryMessage::again(&stored).body();
    let outcomes =
        futures::future::join_all((0..3).map(|_| deliver_webhook::process(&deps, &body))).await;
    for o in outcomes {
        o.unwrap();
    }
    assert_eq!(pings(), 3, "one more attempt for three copies");
    let after = app.store.get_delivery(&id).await.unwrap().unwrap();
    assert_eq!(
        (after.status, after.attempts.len()),
        (DeliveryStatus::Delivered, 3)
    );
    let older = DeliveryMessage::Again {
        delivery_id: id.clone(),
        version: 1,
    };
    for late in [body, older.body()] {
        let o = deliver_webhook::process(&deps, &late).await.unwrap();
        assert_eq!(o, Outcome::Done);
    }
    assert_eq!(pings(), 3);
    assert_eq!(app.store.get_delivery(&id).await.unwrap().unwrap(), after);

    // While an attempt is under way (a slow endpoint), a redelivery is refused: it would
    // send the same webhook-id twice at once and lose the running attempt's record. A
    // message asked of that version waits for the attempt, as a copy does.
    rx.configure(&json!({"secrets": {"endpoint": ep["secret"]}, "delay": 2}));
    let r = app.post(&app.a, &redeliver, None).await;
    assert_eq!(r.status, 202, "{}", r.text);
    rx.wait_for("the slow attempt", |v| v["n"] == 4).await;
    let under_way = app.store.get_delivery(&id).await.unwrap().unwrap();
    assert_eq!(under_way.status, DeliveryStatus::Pending);
    let busy = app.post(&app.a, &redeliver, None).await;
    busy.assert_error(409, "CONCURRENT_UPDATE");
    let o = deliver_webhook::process(&deps, &DeliveryMessage::again(&under_way).body())
        .await
        .unwrap();
    assert!(matches!(o, Outcome::RetryAfter(_)), "{o:?}");
    let four = eventually(async || {
        let log = delivery_log(&app, eid).await;
        (log[0].2 == 4 && log[0].1 == "delivered").then_some(log)
    })
    .await;
    assert_eq!(four, [(did.clone(), "delivered".to_owned(), 4)]);
    assert_eq!(pings(), 4, "the attempt under way was the only one");

    // Another organization cannot redeliver it.
    app.post(&app.b, &redeliver, None)
        .await
        .assert_error(404, "RESOURCE_NOT_FOUND");
    assert_eq!(pings(), 4);
}

#[tokio::test]
async fn endpoint_timeout_max_retries_and_allowed_ips() {
    let app = spawn_app().await;
    let rx = Receiver::start(&json!({}));
    let url = format!("{}/hooks", rx.url);
    let r = app
        .post(
            &app.a,
            "/webhook-endpoints",
            Some(
                &json!({"url": url, "events": ["order.completed"], "timeout": 1,
                "max_retries": 1, "allowed_ips": ["127.0.0.1", "10.1.2.3/8", "127.0.0.1/32"]}),
            ),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["timeout"], 1);
    assert_eq!(r.body["max_retries"], 1);
    // Addresses become blocks, blocks their network, duplicates go.
    assert_eq!(r.body["allowed_ips"], json!(["127.0.0.1/32", "10.0.0.0/8"]));
    let eid = r.body["id"].as_str().unwrap().to_owned();
    rx.configure(&json!({"secrets": {"endpoint": r.body["secret"]}, "delay": 3}));

    // An endpoint slower than its timeout: the attempt gives up after 1 s, is retried once
    // (max_retries 1), then the delivery fails.
    let ping = app
        .post(&app.a, &format!("/webhook-endpoints/{eid}/test"), None)
        .await;
    assert_eq!(ping.status, 202, "{}", ping.text);
    let d = finished_delivery(&app, &eid, ping.body["id"].as_str().unwrap()).await;
    assert_eq!(d["status"], "failed", "{d}");
    let attempts = d["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{d}");
    for a in attempts {
        assert_eq!(a["error"], "timed out after 1 s", "{d}");
        assert!(a["latency_ms"].as_u64().unwrap() < 2_500, "{d}");
    }

    // Defaults: 10 s, retries on the schedule (null), any public address.
    let plain = create_endpoint(&app, &app.a, &url, json!(["*"])).await;
    assert_eq!(
        (
            &plain["timeout"],
            &plain["max_retries"],
            &plain["allowed_ips"]
        ),
        (&json!(10), &json!(null), &json!([]))
    );
    // Updating: null clears max_retries, [] clears allowed_ips; the others stay.
    let upd = app
        .post(
            &app.a,
            &format!("/webhook-endpoints/{eid}"),
            Some(&json!({"max_retries": null, "timeout": 30})),
        )
        .await;
    assert_eq!(upd.status, 200, "{}", upd.text);
    assert_eq!(
        (
            &upd.body["timeout"],
            &upd.body["max_retries"],
            &upd.body["allowed_ips"]
        ),
        (
            &json!(30),
            &json!(null),
            &json!(["127.0.0.1/32", "10.0.0.0/8"])
        )
    );

    // The URL must resolve inside allowed_ips, whichever of the two changes.
    app.post(
        &app.a,
        &format!("/webhook-endpoints/{eid}"),
        Some(&json!({"allowed_ips": ["203.0.113.0/24"]})),
    )
    .await
    .assert_error(422, "WEBHOOK_URL_NOT_ALLOWED");
    app.post(
        &app.a,
        "/webhook-endpoints",
        Some(&json!({"url": url, "allowed_ips": ["::1/128"]})),
    )
    .await
    .assert_error(422, "WEBHOOK_URL_NOT_ALLOWED");
    let kept = app.get(&app.a, &format!("/webhook-endpoints/{eid}")).await;
    assert_eq!(
        kept.body["allowed_ips"],
        json!(["127.0.0.1/32", "10.0.0.0/8"])
    );

    // If the host comes to resolve outside allowed_ips after it was saved (here: the stored
    // list changed underneath), the delivery is refused and not retried.
    rewrite_endpoint(&app, &eid, |e| {
        e.options.allowed_ips = vec!["203.0.113.0/24".parse().unwrap()]
    })
    .await;
    rx.configure(&json!({}));
    let before = rx.log().len();
    let ping = app
        .post(&app.a, &format!("/webhook-endpoints/{eid}/test"), None)
        .await;
    assert_eq!(ping.status, 202, "{}", ping.text);
    let d = finished_delivery(&app, &eid, ping.body["id"].as_str().unwrap()).await;
    assert_eq!(d["status"], "failed", "{d}");
    assert_eq!(d["attempts"].as_array().unwrap().len(), 1, "{d}");
    assert_eq!(
        d["attempts"][0]["error"],
        "destination refused: the host resolves to 127.0.0.1, outside the endpoint's allowed_ips"
    );
    assert_eq!(rx.log().len(), before, "nothing was sent");

    // Bad options are refused in the error shape, naming the field.
    for (body, param) in [
        (json!({"url": url, "timeout": 0}), "timeout"),
        (json!({"url": url, "timeout": 31}), "timeout"),
        (json!({"url": url, "timeout": "10"}), "timeout"),
        (json!({"url": url, "timeout": 1.5}), "timeout"),
        (json!({"url": url, "max_retries": 21}), "max_retries"),
        (json!({"url": url, "max_retries": -1}), "max_retries"),
        (json!({"url": url, "allowed_ips": ["nope"]}), "allowed_ips"),
        (
            json!({"url": url, "allowed_ips": ["10.0.0.0/33"]}),
            "allowed_ips",
        ),
        (
            json!({"url": url, "allowed_ips": "127.0.0.1"}),
            "allowed_ips",
        ),
        (
            json!({"url": url, "allowed_ips": vec!["127.0.0.1"; 51]}),
            "allowed_ips",
        ),
    ] {
        let r = app.post(&app.a, "/webhook-endpoints", Some(&body)).await;
        assert_eq!(
            (
                r.status,
                r.body["error"]["code"].as_str(),
                r.body["error"]["param"].as_str()
            ),
            (400, Some("INVALID_WEBHOOK_OPTIONS"), Some(param)),
            "{body}: {}",
            r.text
        );
    }
}

#[tokio::test]
async fn an_idempotent_creation_replays_the_secret_but_keeps_it_sealed() {
    let app = spawn_app().await;
    let rx = Receiver::start(&json!({}));
    let body = json!({"url": format!("{}/hooks", rx.url), "events": ["*"]});
    let idem = [("idempotency-key", "create-endpoint-1")];
    let first = app
        .call(&app.a, "POST", "/webhook-endpoints", Some(&body), &idem)
        .await;
    assert_eq!(first.status, 201, "{}", first.text);
    let again = app
        .call(&app.a, "POST", "/webhook-endpoints", Some(&body), &idem)
        .await;
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(again.body, first.body, "the same endpoint and secret");
    let secret = first.body["secret"].as_str().unwrap();

    let kept = kept_idempotent_body(
        &app,
        &app.a,
        "create-endpoint-1",
        "/webhook-endpoints",
        &body,
    )
    .await;
    assert!(!kept.contains(secret), "the secret is kept in plaintext");
    assert!(!kept.contains("whsec_"));
}

/// An organization has at most 16 webhook endpoints per mode (every order event fans out
/// to each): the 17th is refused with `422 TOO_MANY_ENDPOINTS` in our error shape, with
/// nothing written and its `Idempotency-Key` given back; once one is deleted, the same
/// request makes it. Other organizations (and the other mode) have their own.
#[tokio::test]
async fn an_organization_has_at_most_16_endpoints_per_mode() {
    let app = spawn_app().await;
    let url = "http://127.0.0.1:9/hooks";
    let mut ids = Vec::new();
    for _ in 0..16 {
        let ep = create_endpoint(&app, &app.a, url, json!(["order.created"])).await;
        ids.push(ep["id"].as_str().unwrap().to_owned());
    }
    let body = json!({"url": url, "description": "the 17th"});
    let idem = [("idempotency-key", "the-17th")];
    let r = app
        .call(&app.a, "POST", "/webhook-endpoints", Some(&body), &idem)
        .await;
    r.assert_error(422, "TOO_MANY_ENDPOINTS");
    assert_eq!(r.body["error"]["type"], "invalid_request");
    let message = r.body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("16") && message.contains("delete"),
        "{message}"
    );
    let listed = app.get(&app.a, "/webhook-endpoints").await;
    let data = listed.body["data"].as_array().unwrap();
    assert_eq!(data.len(), 16, "nothing written");
    assert!(data.iter().all(|e| e["description"] != "the 17th"));
    // Another organization is not full.
    create_endpoint(&app, &app.b, url, json!(["*"])).await;

    // A deleted endpoint makes room: the refused request, under the same key, now runs.
    let del = app
        .call(
            &app.a,
            "DELETE",
            &format!("/webhook-endpoints/{}", ids[3]),
            None,
            &[],
        )
        .await;
    assert_eq!(del.status, 200, "{}", del.text);
    let r = app
        .call(&app.a, "POST", "/webhook-endpoints", Some(&body), &idem)
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["description"], "the 17th");
    assert!(r.headers.get("idempotent-replayed").is_none());
    app.post(&app.a, "/webhook-endpoints", Some(&json!({"url": url})))
        .await
        .assert_error(422, "TOO_MANY_ENDPOINTS");
}

/// A rotation's answer (its new secret) is kept with the rotation itself, and an update's
/// with the update: the same request under the same `Idempotency-Key` replays it, even
/// once the key's lock would have run out, and never changes the endpoint again. The
/// secret held before the rotation keeps signing beside the new one.
#[tokio::test]
async fn a_keyed_rotation_or_update_is_kept_with_its_change() {
    let app = spawn_app().await;
    let ep = create_endpoint(&app, &app.a, "http://127.0.0.1:9/hooks", json!(["*"])).await;
    let (eid, original) = (
        ep["id"].as_str().unwrap().to_owned(),
        ep["secret"].as_str().unwrap().to_owned(),
    );
    let rotate = format!("/webhook-endpoints/{eid}/rotate-secret");
    let idem = [("idempotency-key", "rotate-once")];
    let first = app.call(&app.a, "POST", &rotate, None, &idem).await;
    assert_eq!(first.status, 200, "{}", first.text);
    let stored = stored_endpoint(&app, &app.a.org_id, &eid).await;
    assert_eq!(stored.version, 2);

    // What a retry finds once the first request's lock has run out (had it died before
    // answering): the kept answer, not the key free to rotate again.
    let scope = payorders::store::IdempotencyScope {
        organization_id: app.a.org_id.clone(),
        mode: KeyMode::Test,
        key: "rotate-once".into(),
    };
    let fingerprint = payorders::http::request_fingerprint(&app.a.key_id, "POST", &rotate, b"");
    let lapsed = Timestamp::now().plus_seconds(payorders::store::IDEMPOTENCY_LOCK_SECS + 1);
    let found = app
        .store
        .idempotency_begin(&scope, &fingerprint, lapsed)
        .await
        .unwrap();
    assert!(
        matches!(found, payorders::store::IdempotencyBegin::Replay(_)),
        "{found:?}"
    );
    let again = app.call(&app.a, "POST", &rotate, None, &idem).await;
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(again.body, first.body, "the same secret");
    assert_eq!(stored_endpoint(&app, &app.a.org_id, &eid).await.version, 2);
    // The original secret signs beside the new one.
    let context = payorders::webhooks::endpoint_secret_context(&stored.id);
    let signing: Vec<String> = stored
        .signing_secrets(Timestamp::now().plus_seconds(23 * 3600))
        .map(|s| app.master.open(&context, &s.sealed).unwrap())
        .collect();
    assert_eq!(
        signing,
        [first.body["secret"].as_str().unwrap().to_owned(), original]
    );

    let update = format!("/webhook-endpoints/{eid}");
    let body = json!({"description": "kept"});
    let idem = [("idempotency-key", "update-once")];
    let first = app.call(&app.a, "POST", &update, Some(&body), &idem).await;
    assert_eq!(first.status, 200, "{}", first.text);
    let again = app.call(&app.a, "POST", &update, Some(&body), &idem).await;
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(again.body, first.body);
    assert_eq!(stored_endpoint(&app, &app.a.org_id, &eid).await.version, 3);
}
