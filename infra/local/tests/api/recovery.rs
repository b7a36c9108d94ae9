//! The local host as a real process, killed with `kill -9` in the middle of a payment's
//! confirmation and started again on the same data: the order reaches COMPLETED (the upkeep
//! re-queues every in-flight order at start). Killed while a webhook waits for its retry:
//! the retry is sent after the restart (the queue keeps its messages in the store). And
//! killed amid concurrent creates, refunds and payments (simulated and submitted): each
//! idempotency key is kept with its change.

use crate::support::*;
use alloy::primitives::U256;
use payorders::auth::sign;
use payorders::store::embedded::EmbeddedStore;
use payorders::store::{
    Cursor, IDEMPOTENCY_LOCK_SECS, IdempotencyBegin, IdempotencyScope, IdempotencyStore, KeyStore,
    ListWindow, OrderFilter, OrderStore, RateLimitStore, WebhookStore,
};
use payorders::testing::anvil;
use payorders::{
    KeyMode, OrderId, OrderStatus, OrgId, PayOrder, RateClass, RateLimits, Timestamp,
    WebhookEndpointId,
};
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// An order waiting for its payment: 10 test tokens to `recipient`.
struct ToPay {
    id: String,
    recipient: alloy::primitives::Address,
}

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
    /// A host over a fresh directory, reading a chain of its own with the test token on it.
    async fn on_own_chain() -> (PrivateAnvil, std::path::PathBuf, Self) {
        let chain = PrivateAnvil::start().await;
        anvil::ensure_token(&chain.url).await;
        let dir = tempfile_dir();
        let host = Self::start(&dir, &chain.url).await;
        (chain, dir, host)
    }

    async fn start(dir: &Path, rpc: &str) -> Self {
        Self::start_with(dir, rpc, &[]).await
    }

    /// As [`Self::start`], with `env` set for the host too.
    async fn start_with(dir: &Path, rpc: &str, env: &[(&str, &str)]) -> Self {
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
            .envs(env.iter().copied())
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

    /// A DEPOSIT order of 10 test tokens created from `order` (its fields), with its
    /// payment details asked for in that token: its id.
    async fn deposit_to_pay(&self, order: Value) -> String {
        let mut body = json!({"mode": "DEPOSIT", "amount": "10", "currency": token()});
        body.as_object_mut()
            .unwrap()
            .extend(order.as_object().unwrap().clone());
        let created = self
            .call(reqwest::Method::POST, "/pay-orders", Some(body))
            .await;
        let id = created["id"].as_str().unwrap().to_owned();
        self.call(
            reqwest::Method::POST,
            &format!("/pay-orders/{id}/payment-details"),
            Some(json!({"source_currency": token()})),
        )
        .await;
        id
    }

    /// `n` DEPOSIT orders of 10 test tokens, each to a fresh recipient, waiting for their
    /// payment ([`Self::deposit_to_pay`]).
    async fn orders_to_pay(&self, n: usize) -> Vec<ToPay> {
        let mut orders = Vec::with_capacity(n);
        for _ in 0..n {
            let recipient = anvil::fresh_address();
            let id = self
                .deposit_to_pay(json!({"recipient": recipient.to_string()}))
                .await;
            orders.push(ToPay { id, recipient });
        }
        orders
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
    let (chain, dir, host) = HostProcess::on_own_chain().await;

    // An order needing 3 confirmations, paid by a real transfer: AWAITING_CONFIRMATION.
    let recipient = anvil::fresh_address();
    let id = host
        .deposit_to_pay(json!({"recipient": recipient.to_string(), "confirmations": 3}))
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

/// `kill -9` while a webhook waits for its retry: the restarted host sends the retry when it
/// is due, as the same delivery (the same `webhook-id`), because the host's queue is kept in
/// its store as SQS keeps its messages. (An in-memory queue lost it: the delivery stayed
/// pending with nothing left to attempt it.)
#[tokio::test]
async fn a_host_killed_while_a_webhook_waits_for_its_retry_sends_it_after_a_restart() {
    let dir = tempfile_dir();
    // The first retry in 5 s x 0.4 (±20 %): time enough to kill the host before it.
    let env = [("PAYORDERS_DEV_RETRY_SCALE", "0.4")];
    let host = HostProcess::start_with(&dir, &anvil_url(), &env).await;
    let rx = crate::webhooks::Receiver::start(&json!({"fail_first": 1, "status": 500}));
    let ep = host
        .call(
            reqwest::Method::POST,
            "/webhook-endpoints",
            Some(json!({"url": format!("{}/hooks", rx.url), "events": ["order.created"]})),
        )
        .await;
    rx.configure(&json!({
        "secrets": {"endpoint": ep["secret"]},
        "fail_first": 1,
        "status": 500,
    }));
    let eid = ep["id"].as_str().unwrap().to_owned();
    let order = host
        .call(
            reqwest::Method::POST,
            "/pay-orders",
            Some(json!({
                "mode": "DEPOSIT",
                "amount": "10",
                "currency": token(),
                "recipient": anvil::fresh_address().to_string(),
            })),
        )
        .await;
    let first = rx
        .wait_for("the first attempt", |v| v["answered"] == 500)
        .await;
    assert_eq!(
        first["body"]["data"]["object"]["id"], order["id"],
        "{first}"
    );
    // The endpoint's one delivery, once `pred` holds of it.
    let delivery = async |host: &HostProcess, pred: fn(&Value) -> bool| {
        let path = format!("/webhook-endpoints/{eid}/deliveries");
        eventually(async || {
            let log = host.call(reqwest::Method::GET, &path, None).await;
            let [d] = log["data"].as_array().unwrap().as_slice() else {
                panic!("one delivery: {log}");
            };
            pred(d).then(|| d.clone())
        })
        .await
    };
    // Killed once the failed attempt and its retry time are stored.
    let d = delivery(&host, |d| d["attempts"].as_array().unwrap().len() == 1).await;
    assert_eq!(d["status"], "pending", "{d}");
    host.kill();
    assert_eq!(
        rx.log().len(),
        1,
        "the retry came before the kill: {:?}",
        rx.log()
    );

    let host = HostProcess::start_with(&dir, &anvil_url(), &env).await;
    let retry = rx.wait_for("the retry", |v| v["answered"] == 200).await;
    assert_eq!(
        retry["webhook_id"], first["webhook_id"],
        "the same delivery"
    );
    assert_eq!(retry["verified"]["endpoint"], true, "{retry}");
    let d = delivery(&host, |d| d["status"] == "delivered").await;
    assert_eq!(attempt_codes(&d), [500, 200], "{d}");
    assert_eq!(
        rx.log().len(),
        2,
        "sent once more, not twice: {:?}",
        rx.log()
    );
    drop(host);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A fresh directory for one host's data.
/// The test token on the local chain, as an order's `currency`.
fn token() -> Value {
    json!({"chain_id": 31337, "address": anvil::TOKEN})
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "payorders-recovery-{}",
        payorders::OrderId::generate().as_str()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// One POST of a kill test, recorded before it is sent, with the id it was answered.
struct Attempt {
    path: String,
    key: String,
    body: Vec<u8>,
    answer: Option<String>,
    /// The `secret` of the answer, when it had one (a webhook endpoint's new secret).
    secret: Option<String>,
}

/// Every attempt of a kill test's senders, in the order they were sent.
type Journal = Arc<Mutex<Vec<Attempt>>>;

/// What a sender needs of the host: it keeps sending after the host is gone.
#[derive(Clone)]
struct Caller {
    client: reqwest::Client,
    base: String,
    key: String,
    secret: String,
}

impl HostProcess {
    fn caller(&self) -> Caller {
        Caller {
            client: self.client.clone(),
            base: self.base.clone(),
            key: self.key.clone(),
            secret: self.secret.clone(),
        }
    }
}

impl Caller {
    /// POSTs `body` to `path` under `Idempotency-Key: key` (with `signature`, if any),
    /// journaled first; the answer must be `want`. `false` once the host is gone.
    async fn post_keyed(
        &self,
        journal: &Journal,
        path: &str,
        key: String,
        body: Vec<u8>,
        signature: Option<String>,
        want: u16,
    ) -> bool {
        let slot = {
            let mut j = journal.lock().unwrap();
            j.push(Attempt {
                path: path.to_owned(),
                key: key.clone(),
                body: body.clone(),
                answer: None,
                secret: None,
            });
            j.len() - 1
        };
        let mut req = self
            .client
            .post(format!("{}{path}", self.base))
            .header("X-API-KEY", &self.key)
            .header("Idempotency-Key", key)
            .header("Content-Type", "application/json")
            .body(body);
        if let Some(sig) = signature {
            req = req.header("Authorization-Signature", sig);
        }
        let Ok(resp) = req.send().await else {
            return false;
        };
        let status = resp.status();
        let Ok(answer) = resp.json::<Value>().await else {
            return false;
        };
        assert_eq!(status, want, "{answer}");
        let mut j = journal.lock().unwrap();
        j[slot].answer = answer["id"].as_str().map(str::to_owned);
        j[slot].secret = answer["secret"].as_str().map(str::to_owned);
        true
    }
}

/// `kill -9` once `enough` requests were journaled (while the senders are still sending),
/// or after 20 s; then waits for the senders and gives back the journal, with at least
/// `min_answered` attempts answered before the kill.
async fn kill_amid(
    host: HostProcess,
    senders: Vec<tokio::task::JoinHandle<()>>,
    journal: &Journal,
    enough: usize,
    min_answered: usize,
) -> Vec<Attempt> {
    let started = Instant::now();
    while journal.lock().unwrap().len() < enough && started.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    host.kill();
    for s in senders {
        s.await.unwrap();
    }
    let sent = std::mem::take(&mut *journal.lock().unwrap());
    let answered = sent.iter().filter(|a| a.answer.is_some()).count();
    assert!(
        answered >= min_answered,
        "only {answered} requests answered before the kill"
    );
    sent
}

/// What `a`'s key answers in `store` now: `Ok(id)`, the id its kept answer names, or what
/// it found instead (in flight, or free).
async fn kept_id(
    store: &EmbeddedStore,
    org: &OrgId,
    a: &Attempt,
) -> Result<String, IdempotencyBegin> {
    match retried_at(store, org, a, Timestamp::now()).await {
        IdempotencyBegin::Replay(kept) => {
            let kept: Value = serde_json::from_str(&kept.body).unwrap();
            Ok(kept["id"].as_str().unwrap().to_owned())
        }
        other => Err(other),
    }
}

/// What a retry of `a` (the demo key's) finds in `store` at `at`: its kept answer
/// (`Replay`), or the key taken afresh (it runs the request again). Past the lock of a
/// request that died, `at` is when the client's retry gets to run it again.
async fn retried_at(
    store: &EmbeddedStore,
    org: &OrgId,
    a: &Attempt,
    at: Timestamp,
) -> IdempotencyBegin {
    let scope = IdempotencyScope {
        organization_id: org.clone(),
        mode: KeyMode::Test,
        key: a.key.clone(),
    };
    // Every attempt is the demo key's, the organization's only test key.
    let keys = store.list_api_keys(org, KeyMode::Test).await.unwrap();
    let [demo] = keys.as_slice() else {
        panic!("expected the demo key alone, found {} keys", keys.len());
    };
    let fingerprint = payorders::http::request_fingerprint(&demo.id, "POST", &a.path, &a.body);
    store
        .idempotency_begin(&scope, &fingerprint, at)
        .await
        .unwrap()
}

/// The store as the next start finds it.
fn store_after_kill(dir: &Path) -> EmbeddedStore {
    EmbeddedStore::open(&dir.join("payorders.db")).unwrap()
}

/// `kill -9` while many creates are in flight, each under its own `Idempotency-Key`: every
/// create the host answered is on disk, and each key was kept together with its order or
/// not at all. A key still in flight (or free) with an order behind it is the crash falling
/// between the two writes: once its lock ran out, a retry would create a second order.
#[tokio::test]
async fn a_host_killed_amid_concurrent_creates_keeps_each_key_with_its_order() {
    let chain = PrivateAnvil::start().await;
    let dir = tempfile_dir();
    let host = HostProcess::start(&dir, &chain.url).await;
    let recipient = anvil::fresh_address().to_string();

    let journal = Journal::default();
    let mut senders = Vec::new();
    for worker in 0..16 {
        let (journal, caller, recipient) = (journal.clone(), host.caller(), recipient.clone());
        senders.push(tokio::spawn(async move {
            // At most 800 creates in all, within the key's hourly create limit (1,000).
            for n in 0..50 {
                let body = serde_json::to_vec(&json!({
                    "mode": "DEPOSIT", "amount": format!("{}.{n:06}", worker + 1),
                    "currency": token(),
                    "recipient": recipient,
                }))
                .unwrap();
                let key = format!("crash-{worker}-{n}");
                if !caller
                    .post_keyed(&journal, "/pay-orders", key, body, None, 201)
                    .await
                {
                    return;
                }
            }
        }));
    }
    // Let the creates run into one another, then pull the plug mid-flight.
    let sent = kill_amid(host, senders, &journal, 200, 20).await;

    let store = store_after_kill(&dir);
    let first = sent.iter().find_map(|a| a.answer.as_ref()).unwrap();
    let org = store
        .get_order(&first.parse().unwrap())
        .await
        .unwrap()
        .unwrap()
        .organization_id;
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
    for a in &sent {
        let key = &a.key;
        let orders = by_key.remove(key).unwrap_or_default();
        assert!(orders.len() <= 1, "{key} made {orders:?}");
        if let Some(id) = &a.answer {
            assert_eq!(
                orders,
                std::slice::from_ref(id),
                "{key} was answered {id}, and is not on disk"
            );
        }
        match kept_id(&store, &org, a).await {
            Ok(kept) => {
                assert_eq!(
                    orders,
                    [kept],
                    "{key} replays an order that is not the one it made"
                );
                replayed += 1;
            }
            Err(other) => {
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
    let answered = sent.iter().filter(|a| a.answer.is_some()).count();
    eprintln!(
        "{} creates sent, {answered} answered, {replayed} kept, {unkept} not made",
        sent.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `kill -9` while refunds are being created, each signed and under its own
/// `Idempotency-Key`: every refund on disk is kept by exactly one key, and every key kept
/// answers a refund that is on disk. A refund whose key is not kept is a second refund
/// waiting to happen: once the key's lock ran out, the merchant's retry would record it again.
#[tokio::test]
async fn a_host_killed_amid_refunds_keeps_each_refund_with_its_key() {
    let (_chain, dir, host) = HostProcess::on_own_chain().await;

    // Orders paid on the sandbox (test mode), one per sender so that refunds do not queue
    // behind one another's version.
    let orders: Vec<String> = host
        .orders_to_pay(6)
        .await
        .into_iter()
        .map(|o| o.id)
        .collect();
    for id in &orders {
        host.call(
            reqwest::Method::POST,
            &format!("/pay-orders/{id}/simulate-payment"),
            None,
        )
        .await;
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

    let journal = Journal::default();
    let mut senders = Vec::new();
    for (worker, id) in orders.iter().enumerate() {
        let (journal, caller) = (journal.clone(), host.caller());
        let path = format!("/pay-orders/{id}/refunds");
        senders.push(tokio::spawn(async move {
            for n in 0..40 {
                let body = serde_json::to_vec(&json!({
                    "amount": "0.000001",
                    "address": anvil::fresh_address().to_string(),
                    "reason": format!("crash test {n}"),
                }))
                .unwrap();
                let nonce = format!("n{worker}x{n}");
                let ts = Timestamp::now().unix();
                let sig = sign::v2_header(
                    &caller.key,
                    &caller.secret,
                    "POST",
                    &path,
                    ts,
                    &nonce,
                    &body,
                );
                let key = format!("refund-{worker}-{n}");
                if !caller
                    .post_keyed(&journal, &path, key, body, Some(sig), 201)
                    .await
                {
                    return;
                }
            }
        }));
    }
    let sent = kill_amid(host, senders, &journal, 60, 12).await;

    let store = store_after_kill(&dir);
    let (mut kept_total, mut refunds_total) = (0, 0);
    for id in &orders {
        let order = store
            .get_order(&id.parse::<OrderId>().unwrap())
            .await
            .unwrap()
            .unwrap();
        let on_disk: BTreeSet<String> = order.refunds.iter().map(|r| r.id.to_string()).collect();
        let path = format!("/pay-orders/{id}/refunds");
        let mut kept = BTreeSet::new();
        for a in sent.iter().filter(|a| a.path == path) {
            let key = &a.key;
            if let Ok(refund) = kept_id(&store, &order.organization_id, a).await {
                assert!(
                    on_disk.contains(&refund),
                    "{key} replays {refund}, not on disk"
                );
                assert!(kept.insert(refund.clone()), "two keys replay {refund}");
            }
            if let Some(refund) = &a.answer {
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
    let answered = sent.iter().filter(|a| a.answer.is_some()).count();
    eprintln!(
        "{} refunds sent, {answered} answered, {refunds_total} on disk, {kept_total} kept",
        sent.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `kill -9` while webhook endpoints' secrets are rotated, each rotation under its own
/// `Idempotency-Key`. A rotation keeps the secret the merchant holds signing for 24 h beside
/// the new one and drops any older one at once, so a rotation the host committed but whose
/// key it did not keep is fatal: once the key's lock runs out the merchant's retry rotates
/// again, and the endpoint signs with a secret never shown and one shown to no one, the
/// merchant's own dropped (every webhook fails verification). Every rotation on disk must
/// be kept by its key: a retry after the lock lapses replays it (the same secret, through
/// the restarted host as well), and the secret held before it still verifies for the
/// grace period.
#[tokio::test]
async fn a_host_killed_amid_secret_rotations_keeps_each_rotation_with_its_key() {
    let dir = tempfile_dir();
    let host = HostProcess::start(&dir, &anvil_url()).await;
    // One endpoint per sender, so that rotations do not queue behind one another's version.
    let mut endpoints: Vec<(String, String)> = Vec::new();
    let mut org = None;
    for n in 0..8 {
        let ep = host
            .call(
                reqwest::Method::POST,
                "/webhook-endpoints",
                Some(json!({"url": format!("http://127.0.0.1:9/hooks/{n}"), "events": ["order.created"]})),
            )
            .await;
        org = Some(OrgId::parse(ep["organization_id"].as_str().unwrap()).unwrap());
        endpoints.push((
            ep["id"].as_str().unwrap().to_owned(),
            ep["secret"].as_str().unwrap().to_owned(),
        ));
    }
    let org = org.unwrap();
    let path_of = |id: &str| format!("/webhook-endpoints/{id}/rotate-secret");

    let journal = Journal::default();
    let mut senders = Vec::new();
    for (worker, (id, _)) in endpoints.iter().enumerate() {
        let (journal, caller, path) = (journal.clone(), host.caller(), path_of(id));
        senders.push(tokio::spawn(async move {
            // At most 80 rotations: with the 8 creates, within the key's hourly webhooks
            // limit (100).
            for n in 0..10 {
                let key = format!("rotate-{worker}-{n}");
                if !caller
                    .post_keyed(&journal, &path, key, b"{}".to_vec(), None, 200)
                    .await
                {
                    return;
                }
            }
        }));
    }
    let sent = kill_amid(host, senders, &journal, 40, 8).await;

    let store = store_after_kill(&dir);
    let master = payorders_local::setup::dev_master_key(&dir).unwrap();
    // Once every lock has run out: what the merchant's retries find.
    let lapsed = Timestamp::now().plus_seconds(IDEMPOTENCY_LOCK_SECS + 1);
    let mut stored = HashMap::new();
    let mut to_replay = Vec::new();
    for (id, _) in &endpoints {
        let eid = WebhookEndpointId::parse(id).unwrap();
        let ep = store.get_endpoint(&org, &eid).await.unwrap().unwrap();
        let mut kept = 0;
        for a in sent.iter().filter(|a| a.path == path_of(id)) {
            match retried_at(&store, &org, a, lapsed).await {
                IdempotencyBegin::Replay(_) => {
                    kept += 1;
                    if a.answer.is_none() {
                        to_replay.push(a);
                    }
                }
                other => assert!(
                    a.answer.is_none(),
                    "{} was answered, and its key is {other:?}",
                    a.key
                ),
            }
        }
        assert_eq!(
            ep.version - 1,
            kept,
            "{id} was rotated {} times and {kept} of its keys keep their rotation: a retry of \
             another, once its lock has run out, rotates again and drops the merchant's secret",
            ep.version - 1
        );
        stored.insert(id.clone(), ep);
    }
    drop(store);
    // The limit is per hour; the retries below are not what this test counts.
    let mut limits = RateLimits::default();
    limits.set(RateClass::Webhooks, Some(10_000));
    store_after_kill(&dir)
        .put_rate_limits(&org, &limits)
        .await
        .unwrap();

    // The merchant retries the rotations it got no answer to: each replays its secret.
    let host = HostProcess::start(&dir, &anvil_url()).await;
    let mut replayed = Vec::new();
    for a in &to_replay {
        let resp = host
            .client
            .post(format!("{}{}", host.base, a.path))
            .header("X-API-KEY", &host.key)
            .header("Idempotency-Key", &a.key)
            .header("Content-Type", "application/json")
            .body(a.body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{}", a.key);
        assert_eq!(resp.headers()["idempotent-replayed"], "true", "{}", a.key);
        let body: Value = resp.json().await.unwrap();
        replayed.push((a.path.clone(), body["secret"].as_str().unwrap().to_owned()));
    }
    drop(host);

    // Every secret an endpoint signs with is one the merchant was shown (in an answer, or
    // its replay), and the one it held before the last rotation (the original one, after a
    // single rotation) still verifies for the grace period, and no longer after it.
    let now = Timestamp::now();
    for (id, original) in &endpoints {
        let ep = &stored[id];
        let path = path_of(id);
        let shown: BTreeSet<&str> = std::iter::once(original.as_str())
            .chain(
                sent.iter()
                    .filter(|a| a.path == path)
                    .filter_map(|a| a.secret.as_deref()),
            )
            .chain(
                replayed
                    .iter()
                    .filter(|(p, _)| *p == path)
                    .map(|(_, s)| s.as_str()),
            )
            .collect();
        let context = payorders::webhooks::endpoint_secret_context(&ep.id);
        let signing_at = |at: Timestamp| -> Vec<String> {
            ep.signing_secrets(at)
                .map(|s| master.open(&context, &s.sealed).unwrap())
                .collect()
        };
        for secret in signing_at(now) {
            assert!(
                shown.contains(secret.as_str()),
                "{id} signs with a secret the merchant was never shown"
            );
        }
        if ep.version == 1 {
            assert_eq!(signing_at(now), std::slice::from_ref(original));
            continue;
        }
        let [held] = ep
            .secrets
            .iter()
            .filter(|s| s.expires_at.is_some())
            .map(|s| master.open(&context, &s.sealed).unwrap())
            .collect::<Vec<_>>()
            .try_into()
            .unwrap();
        if ep.version == 2 {
            assert_eq!(&held, original, "{id}: the original secret is the one held");
        }
        let rotated = ep.updated_at;
        let verifies = |at: Timestamp| {
            let header = payorders::webhooks::signature_header(
                signing_at(at).iter().map(String::as_str),
                "msg_1",
                1,
                "{}",
            );
            let mine = payorders::webhooks::sign(&held, "msg_1", 1, "{}").unwrap();
            header.split(' ').any(|s| s == format!("v1,{mine}"))
        };
        assert!(
            verifies(rotated.plus_seconds(23 * 3600)),
            "{id}: the merchant's secret stopped verifying within the grace period"
        );
        assert!(
            !verifies(rotated.plus_seconds(24 * 3600 + 60)),
            "{id}: the held secret outlived its grace period"
        );
    }
    let answered = sent.iter().filter(|a| a.answer.is_some()).count();
    let rotations: u64 = stored.values().map(|e| e.version - 1).sum();
    eprintln!(
        "{} rotations sent, {answered} answered, {rotations} on disk, {} replayed after the restart",
        sent.len(),
        replayed.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `kill -9` while sandbox payments are simulated, each under its own `Idempotency-Key`:
/// see [`payments_killed_amid`]. A simulation makes a new sandbox transfer each time, so a
/// payment whose key is not kept would be paid again by a retry.
#[tokio::test]
async fn a_host_killed_amid_simulated_payments_keeps_each_payment_with_its_key() {
    let (_chain, dir, host) = HostProcess::on_own_chain().await;
    let orders = host.orders_to_pay(160).await;
    let asks = orders
        .iter()
        .map(|o| (format!("/pay-orders/{}/simulate-payment", o.id), json!({})))
        .collect();
    changes_killed_amid(host, &dir, asks, "simulate", paid_once).await;
}

/// `kill -9` while payments are submitted, each a real transfer on the local chain under
/// its own `Idempotency-Key`: see [`payments_killed_amid`]. The transfer is recorded once
/// whatever happens (its hash is claimed), but a payment whose key is not kept leaves the
/// key in flight: the merchant's retry is refused until the lock runs out, and then runs
/// again instead of replaying the answer it was owed. The host's deposit scan, which would
/// record the same transfers on its own (and so pay orders no request paid), runs only at
/// its start, before there are any.
#[tokio::test]
async fn a_host_killed_amid_submitted_payments_keeps_each_payment_with_its_key() {
    let chain = PrivateAnvil::start().await;
    anvil::ensure_token(&chain.url).await;
    let dir = tempfile_dir();
    let host =
        HostProcess::start_with(&dir, &chain.url, &[("PAYORDERS_DEV_SCAN_SECS", "3600")]).await;
    let orders = host.orders_to_pay(120).await;
    let mut asks = Vec::new();
    for o in &orders {
        let hash =
            anvil::send_token(&chain.url, o.recipient, U256::from(10_000_000u64), None).await;
        asks.push((
            format!("/pay-orders/{}/payments", o.id),
            json!({"tx_hash": format!("{hash:#x}")}),
        ));
    }
    changes_killed_amid(host, &dir, asks, "submit", paid_once).await;
}

/// Whether `order` is paid, and never twice.
fn paid_once(order: &PayOrder) -> bool {
    let transfers = order.transfers.len();
    assert!(transfers <= 1, "{} paid {transfers} times", order.id);
    transfers == 1
}

/// `kill -9` while orders get their payment details or are cancelled, each under its own
/// `Idempotency-Key`: see [`changes_killed_amid`]. A change whose key was not kept with it
/// is answered wrongly by the merchant's retry once the key's lock runs out: the order is
/// no longer PENDING, so a choice retried is `422 ORDER_NOT_PENDING` (a final refusal, kept
/// a day, and the deposit address never shown), and a cancel retried `409`.
#[tokio::test]
async fn a_host_killed_amid_cancels_and_payment_choices_keeps_each_with_its_key() {
    let (_chain, dir, host) = HostProcess::on_own_chain().await;
    let mut asks = Vec::new();
    for n in 0..160 {
        let recipient = anvil::fresh_address().to_string();
        let order =
            json!({"mode": "DEPOSIT", "amount": "10", "currency": token(), "recipient": recipient});
        let created = host
            .call(reqwest::Method::POST, "/pay-orders", Some(order))
            .await;
        let id = created["id"].as_str().unwrap();
        asks.push(if n % 2 == 0 {
            (
                format!("/pay-orders/{id}/payment-details"),
                json!({"source_currency": token()}),
            )
        } else {
            (
                format!("/pay-orders/{id}/cancel"),
                json!({"reason": "test"}),
            )
        });
    }
    changes_killed_amid(host, &dir, asks, "change", |o| {
        o.status != OrderStatus::Pending
    })
    .await;
}

/// Sends each `(path, body)` (one change of one order, `/pay-orders/{id}/…`) once, under
/// its own `Idempotency-Key`, from eight senders at once; `kill -9` once 40 were sent; then,
/// on the store as the next start finds it: every order `changed` on disk is kept by its
/// key and every kept key answers an order changed on disk (the change and its key's
/// answer are one write), every answered request is on disk, and no order is changed
/// unasked.
async fn changes_killed_amid(
    host: HostProcess,
    dir: &Path,
    asks: Vec<(String, Value)>,
    what: &'static str,
    changed: impl Fn(&PayOrder) -> bool,
) {
    let journal = Journal::default();
    let mut senders = Vec::new();
    for (worker, mine) in asks.chunks(asks.len().div_ceil(8)).enumerate() {
        let (journal, caller, mine) = (journal.clone(), host.caller(), mine.to_vec());
        senders.push(tokio::spawn(async move {
            for (n, (path, body)) in mine.iter().enumerate() {
                let key = format!("{what}-{worker}-{n}");
                let body = serde_json::to_vec(body).unwrap();
                if !caller
                    .post_keyed(&journal, path, key, body, None, 200)
                    .await
                {
                    return;
                }
            }
        }));
    }
    let sent = kill_amid(host, senders, &journal, 40, 8).await;

    let store = store_after_kill(dir);
    let order_of = |path: &str| {
        let id = path.trim_start_matches("/pay-orders/");
        id[..id.find('/').unwrap()].to_owned()
    };
    let (mut paid, mut kept) = (0, 0);
    let mut asked = BTreeSet::new();
    for a in &sent {
        let id = order_of(&a.path);
        asked.insert(id.clone());
        let key = &a.key;
        let order = store
            .get_order(&id.parse::<OrderId>().unwrap())
            .await
            .unwrap()
            .unwrap();
        let on_disk = changed(&order);
        if a.answer.is_some() {
            assert!(
                on_disk,
                "{key} was answered, and {id}'s change is not on disk"
            );
            assert_eq!(a.answer.as_deref(), Some(id.as_str()));
        }
        match kept_id(&store, &order.organization_id, a).await {
            Ok(replays) => {
                assert!(
                    on_disk,
                    "{key} replays {replays}, whose change is not on disk"
                );
                assert_eq!(replays, id, "{key} replays another order");
                kept += 1;
            }
            Err(other) => assert!(
                !on_disk,
                "{id} is changed but its key {key} is {other:?}: a retry would not answer its change"
            ),
        }
        paid += usize::from(on_disk);
    }
    // An order no sender reached was not paid.
    for (path, _) in &asks {
        let id = order_of(path);
        if asked.contains(&id) {
            continue;
        }
        let order = store
            .get_order(&id.parse::<OrderId>().unwrap())
            .await
            .unwrap()
            .unwrap();
        assert!(!changed(&order), "{id} was changed unasked");
    }
    let answered = sent.iter().filter(|a| a.answer.is_some()).count();
    eprintln!(
        "{what}: {} sent, {answered} answered, {paid} changed on disk, {kept} kept",
        sent.len()
    );
    let _ = std::fs::remove_dir_all(dir);
}
