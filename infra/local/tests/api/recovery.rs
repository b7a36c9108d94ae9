//! The local host as a real process, killed with `kill -9` in the middle of a payment's
//! confirmation and started again on the same data: the in-process queue is gone, yet the
//! order reaches COMPLETED: the upkeep re-queues every in-flight order at start.

use crate::support::*;
use alloy::primitives::U256;
use payorders::testing::anvil;
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};

/// `payorders serve` on a free port over `dir`, reading chain 31337 at `rpc`.
struct HostProcess {
    child: std::process::Child,
    base: String,
    key: String,
    /// The demo key's secret, for signed requests.
    secret: String,
    client: reqwest::Client,
}

impl HostProcess {
    async fn start(dir: &Path, rpc: &str) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_payorders"))
            .current_dir(repo_root())
            .args(["serve", "--port", &port.to_string()])
            .env("PAYORDERS_LOCAL_DIR", dir)
            .env("PAYORDERS_RPC_31337", rpc)
            .env("PAYORDERS_STORE", "embedded")
            .env_remove("PAYORDERS_DEMO_API_KEY")
            .env_remove("PAYORDERS_DEMO_API_SECRET")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("the payorders binary starts");
        let base = format!("http://127.0.0.1:{port}");
        let client = payorders::net::http_client().build().unwrap();
        let started = Instant::now();
        let key = loop {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the local host did not answer on {base}"
            );
            let env = std::fs::read_to_string(dir.join("demo.env")).unwrap_or_default();
            let key = env
                .lines()
                .find_map(|l| l.strip_prefix("export PAYORDERS_API_KEY="))
                .map(str::to_owned);
            if let Some(key) = key {
                let up = client
                    .get(format!("{base}/pay-orders?limit=1"))
                    .header("X-API-KEY", &key)
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == 200);
                if up {
                    break key;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let secret = std::fs::read_to_string(dir.join("demo.env"))
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("export PAYORDERS_API_SECRET="))
            .expect("demo.env has the key's secret")
            .to_owned();
        Self {
            child,
            base,
            key,
            secret,
            client,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .header("X-API-KEY", &self.key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let body: Value = resp.json().await.unwrap();
        assert!(status.is_success(), "{path}: {status} {body}");
        body
    }

    async fn order(&self, id: &str) -> Value {
        self.call(reqwest::Method::GET, &format!("/pay-orders/{id}"), None)
            .await
    }

    /// `kill -9`: no shutdown, no flush, whatever was in memory is lost.
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn a_host_killed_mid_confirmation_resumes_its_orders_after_a_restart() {
    // Its own chain: blocks are mined only when this test says so.
    let chain = PrivateAnvil::start().await;
    anvil::ensure_token(&chain.url).await;
    let dir = tempfile_dir();
    let host = HostProcess::start(&dir, &chain.url).await;

    // An order needing 3 confirmations, paid by a real transfer: AWAITING_CONFIRMATION.
    let recipient = anvil::fresh_address();
    let currency = json!({"chain_id": 31337, "address": anvil::TOKEN});
    let created = host
        .call(
            reqwest::Method::POST,
            "/pay-orders",
            Some(
                json!({"mode": "DEPOSIT", "amount": "10", "currency": currency,
                "recipient": recipient.to_string(), "confirmations": 3}),
            ),
        )
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    host.call(
        reqwest::Method::POST,
        &format!("/pay-orders/{id}/payment-details"),
        Some(json!({"source_currency": currency})),
    )
    .await;
    let hash = anvil::send_token(&chain.url, recipient, U256::from(10_000_000u64), None).await;
    let paid = host
        .call(
            reqwest::Method::POST,
            &format!("/pay-orders/{id}/payments"),
            Some(json!({"tx_hash": format!("{hash:#x}")})),
        )
        .await;
    assert_eq!(paid["status"], "AWAITING_CONFIRMATION", "{paid}");
    // Its checks run (and find 1 of 3) until the host is killed.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(host.order(&id).await["status"], "AWAITING_CONFIRMATION");
    host.kill();

    // While it is down the chain moves on: the payment is now final.
    anvil::mine(&chain.url, 3).await;

    let host = HostProcess::start(&dir, &chain.url).await;
    let started = Instant::now();
    let done = loop {
        let o = host.order(&id).await;
        if o["status"] == "COMPLETED" {
            break o;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the restarted host did not resume the order within a minute: {o}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(done["transfers"][0]["status"], "confirmed", "{done}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `kill -9` once `enough` requests were sent (while the senders are still sending), or
/// after 20 s.
async fn kill_after(host: HostProcess, enough: &dyn Fn() -> bool) {
    let started = Instant::now();
    while !enough() && started.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    host.kill();
}

/// A fresh directory for one host's data.
fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "payorders-recovery-{}",
        payorders::OrderId::generate().as_str()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `kill -9` while many creates are in flight, each under its own `Idempotency-Key`: every
/// create the host answered is on disk, and each key was kept together with its order or
/// not at all. A key still in flight (or free) with an order behind it is the crash falling
/// between the two writes: once its lock ran out, a retry would create a second order.
#[tokio::test]
async fn a_host_killed_amid_concurrent_creates_keeps_each_key_with_its_order() {
    use payorders::store::{
        Cursor, IdempotencyBegin, IdempotencyScope, IdempotencyStore, ListWindow, OrderFilter,
        OrderStore,
    };
    use payorders::{KeyMode, Timestamp};
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    let chain = PrivateAnvil::start().await;
    let dir = tempfile_dir();
    let host = HostProcess::start(&dir, &chain.url).await;
    let recipient = anvil::fresh_address().to_string();

    // (key, body, the order id it answered); a key is recorded before it is sent.
    type Sent = Arc<Mutex<Vec<(String, Vec<u8>, Option<String>)>>>;
    let sent: Sent = Arc::default();
    let mut senders = Vec::new();
    for worker in 0..16 {
        let (sent, client) = (sent.clone(), host.client.clone());
        let (url, key, recipient) = (
            format!("{}/pay-orders", host.base),
            host.key.clone(),
            recipient.clone(),
        );
        senders.push(tokio::spawn(async move {
            // At most 800 creates in all, within the key's hourly create limit (1,000).
            for n in 0..50 {
                let body = serde_json::to_vec(&json!({
                    "mode": "DEPOSIT", "amount": format!("{}.{n:06}", worker + 1),
                    "currency": {"chain_id": 31337, "address": anvil::TOKEN},
                    "recipient": recipient,
                }))
                .unwrap();
                let idem = format!("crash-{worker}-{n}");
                let slot = {
                    let mut s = sent.lock().unwrap();
                    s.push((idem.clone(), body.clone(), None));
                    s.len() - 1
                };
                let Ok(resp) = client
                    .post(&url)
                    .header("X-API-KEY", &key)
                    .header("Idempotency-Key", &idem)
                    .header("Content-Type", "application/json")
                    .body(body)
                    .send()
                    .await
                else {
                    return;
                };
                let status = resp.status();
                let Ok(answer) = resp.json::<Value>().await else {
                    return;
                };
                assert_eq!(status, 201, "{answer}");
                sent.lock().unwrap()[slot].2 = answer["id"].as_str().map(str::to_owned);
            }
        }));
    }
    // Let the creates run into one another, then pull the plug mid-flight.
    kill_after(host, &|| sent.lock().unwrap().len() >= 200).await;
    for s in senders {
        s.await.unwrap();
    }
    let sent = std::mem::take(&mut *sent.lock().unwrap());
    let answered: Vec<&String> = sent.iter().filter_map(|s| s.2.as_ref()).collect();
    assert!(
        answered.len() >= 20,
        "only {} creates answered before the kill",
        answered.len()
    );

    // The store as the next start finds it.
    let store = payorders::store::embedded::EmbeddedStore::open(&dir.join("payorders.db")).unwrap();
    let first = store
        .get_order(&answered[0].parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    let org = first.organization_id.clone();
    let mut by_key: HashMap<String, Vec<String>> = HashMap::new();
    let mut window = ListWindow {
        limit: 100,
        ..ListWindow::new(org.clone(), KeyMode::Test)
    };
    loop {
        let page = store
            .list_orders(&window, &OrderFilter::default())
            .await
            .unwrap();
        for o in &page.data {
            let key = o
                .idempotency_key
                .clone()
                .expect("every order here has a key");
            by_key.entry(key).or_default().push(o.id.to_string());
        }
        match page.next_cursor {
            Some(c) => window.cursor = Some(Cursor::decode(&c).unwrap()),
            None => break,
        }
    }

    let (mut replayed, mut unkept) = (0, 0);
    for (key, body, answer) in &sent {
        let orders = by_key.remove(key).unwrap_or_default();
        assert!(orders.len() <= 1, "{key} made {orders:?}");
        if let Some(id) = answer {
            assert_eq!(
                orders,
                std::slice::from_ref(id),
                "{key} was answered {id}, and is not on disk"
            );
        }
        let scope = IdempotencyScope {
            organization_id: org.clone(),
            mode: KeyMode::Test,
            key: key.clone(),
        };
        let fingerprint = payorders::http::request_fingerprint("POST", "/pay-orders", body);
        match store
            .idempotency_begin(&scope, &fingerprint, Timestamp::now())
            .await
            .unwrap()
        {
            IdempotencyBegin::Replay(kept) => {
                let kept: Value = serde_json::from_str(&kept.body).unwrap();
                assert_eq!(
                    orders,
                    [kept["id"].as_str().unwrap().to_owned()],
                    "{key} replays an order that is not the one it made"
                );
                replayed += 1;
            }
            other => {
                assert!(
                    orders.is_empty(),
                    "{key} made {orders:?} but its key is {other:?}: a retry would make another"
                );
                unkept += 1;
            }
        }
    }
    assert!(
        by_key.is_empty(),
        "orders under keys never sent: {by_key:?}"
    );
    eprintln!(
        "{} creates sent, {} answered, {replayed} kept, {unkept} not made",
        sent.len(),
        answered.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `kill -9` while refunds are being created, each signed and under its own
/// `Idempotency-Key`: every refund on disk is kept by exactly one key, and every key kept
/// answers a refund that is on disk. A refund whose key is not kept is a second refund
/// waiting to happen: once the key's lock ran out, the merchant's retry would record it again.
#[tokio::test]
async fn a_host_killed_amid_refunds_keeps_each_refund_with_its_key() {
    use payorders::auth::sign;
    use payorders::store::{IdempotencyBegin, IdempotencyScope, IdempotencyStore, OrderStore};
    use payorders::{KeyMode, OrderId, Timestamp};
    use std::collections::BTreeSet;
    use std::sync::{Arc, Mutex};

    let chain = PrivateAnvil::start().await;
    anvil::ensure_token(&chain.url).await;
    let dir = tempfile_dir();
    let host = HostProcess::start(&dir, &chain.url).await;

    // Orders paid on the sandbox (test mode), one per sender so that refunds do not queue
    // behind one another's version.
    let currency = json!({"chain_id": 31337, "address": anvil::TOKEN});
    let mut orders = Vec::new();
    for _ in 0..6 {
        let o = host
            .call(
                reqwest::Method::POST,
                "/pay-orders",
                Some(
                    json!({"mode": "DEPOSIT", "amount": "10", "currency": currency,
                    "recipient": anvil::fresh_address().to_string()}),
                ),
            )
            .await;
        let id = o["id"].as_str().unwrap().to_owned();
        host.call(
            reqwest::Method::POST,
            &format!("/pay-orders/{id}/payment-details"),
            Some(json!({"source_currency": currency})),
        )
        .await;
        host.call(
            reqwest::Method::POST,
            &format!("/pay-orders/{id}/simulate-payment"),
            None,
        )
        .await;
        orders.push(id);
    }
    for id in &orders {
        let started = Instant::now();
        while host.order(id).await["status"] != "COMPLETED" {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{id} was not paid"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    // (order, key, body, the refund id it answered); recorded before it is sent.
    type Sent = Arc<Mutex<Vec<(String, String, Vec<u8>, Option<String>)>>>;
    let sent: Sent = Arc::default();
    let mut senders = Vec::new();
    for (worker, id) in orders.iter().enumerate() {
        let (sent, client) = (sent.clone(), host.client.clone());
        let (base, key, secret, id) = (
            host.base.clone(),
            host.key.clone(),
            host.secret.clone(),
            id.clone(),
        );
        senders.push(tokio::spawn(async move {
            let path = format!("/pay-orders/{id}/refunds");
            for n in 0..40 {
                let body = serde_json::to_vec(&json!({
                    "amount": "0.000001",
                    "address": anvil::fresh_address().to_string(),
                    "reason": format!("crash test {n}"),
                }))
                .unwrap();
                let idem = format!("refund-{worker}-{n}");
                let nonce = format!("n{worker}x{n}");
                let ts = Timestamp::now().unix();
                let sig = sign::v2_header(&key, &secret, "POST", &path, ts, &nonce, &body);
                let slot = {
                    let mut s = sent.lock().unwrap();
                    s.push((id.clone(), idem.clone(), body.clone(), None));
                    s.len() - 1
                };
                let Ok(resp) = client
                    .post(format!("{base}{path}"))
                    .header("X-API-KEY", &key)
                    .header("Authorization-Signature", sig)
                    .header("Idempotency-Key", &idem)
                    .header("Content-Type", "application/json")
                    .body(body)
                    .send()
                    .await
                else {
                    return;
                };
                let status = resp.status();
                let Ok(answer) = resp.json::<Value>().await else {
                    return;
                };
                assert_eq!(status, 201, "{answer}");
                sent.lock().unwrap()[slot].3 = answer["id"].as_str().map(str::to_owned);
            }
        }));
    }
    kill_after(host, &|| sent.lock().unwrap().len() >= 60).await;
    for s in senders {
        s.await.unwrap();
    }
    let sent = std::mem::take(&mut *sent.lock().unwrap());
    let answered = sent.iter().filter(|s| s.3.is_some()).count();
    assert!(
        answered >= 12,
        "only {answered} refunds answered before the kill"
    );

    let store = payorders::store::embedded::EmbeddedStore::open(&dir.join("payorders.db")).unwrap();
    let (mut kept_total, mut refunds_total) = (0, 0);
    for id in &orders {
        let order = store
            .get_order(&id.parse::<OrderId>().unwrap())
            .await
            .unwrap()
            .unwrap();
        let on_disk: BTreeSet<String> = order.refunds.iter().map(|r| r.id.to_string()).collect();
        let mut kept = BTreeSet::new();
        for (_, key, body, answer) in sent.iter().filter(|s| &s.0 == id) {
            let scope = IdempotencyScope {
                organization_id: order.organization_id.clone(),
                mode: KeyMode::Test,
                key: key.clone(),
            };
            let path = format!("/pay-orders/{id}/refunds");
            let fingerprint = payorders::http::request_fingerprint("POST", &path, body);
            let begin = store
                .idempotency_begin(&scope, &fingerprint, Timestamp::now())
                .await;
            if let IdempotencyBegin::Replay(k) = begin.unwrap() {
                let k: Value = serde_json::from_str(&k.body).unwrap();
                let refund = k["id"].as_str().unwrap().to_owned();
                assert!(
                    on_disk.contains(&refund),
                    "{key} replays {refund}, not on disk"
                );
                assert!(kept.insert(refund.clone()), "two keys replay {refund}");
            }
            if let Some(refund) = answer {
                assert!(
                    on_disk.contains(refund),
                    "{key} was answered {refund}, not on disk"
                );
            }
        }
        assert_eq!(
            on_disk, kept,
            "{id}: refunds on disk that no key keeps would be recorded again by a retry"
        );
        kept_total += kept.len();
        refunds_total += on_disk.len();
    }
    eprintln!(
        "{} refunds sent, {answered} answered, {refunds_total} on disk, {kept_total} kept",
        sent.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
