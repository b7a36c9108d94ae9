//! `spawn_app`: the whole local host on a free port over a fresh store, with two
//! organizations and keys to call it with.

use payorders::auth::{self, MasterKey, sign};
use payorders::runtime::Services;
use payorders::store::Store;
use payorders::store::dynamo::{DynamoStore, create_table};
use payorders::store::embedded::EmbeddedStore;
use payorders::*;
use payorders_local::host::Host;
use payorders_local::template::Template;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;
use std::sync::Arc;

/// The anvil `make test` started, serving chain 31337. Missing is a failure, not a skip.
pub fn anvil_url() -> String {
    std::env::var("PAYORDERS_TEST_ANVIL_URL").unwrap_or_else(|_| {
        panic!(
            "PAYORDERS_TEST_ANVIL_URL is not set: the chain tests use the anvil `make test` starts"
        )
    })
}

/// Chain 31337 on the test anvil.
pub fn test_chains() -> payorders::chains::Chains {
    let url = anvil_url();
    payorders::chains::Chains::from_rpc_urls([(
        payorders::ChainId::new(31337).unwrap(),
        url.as_str(),
    )])
    .unwrap()
}

/// Webhook retry delays in tests: 5 s -> 1 s (the minimum), 5 min -> 2 s, 30 min -> 9 s.
pub const RETRY_SCALE: f64 = 0.005;

/// The domain crate's features a function's Lambda binary turns on, from its manifest: its
/// `aws` feature's `payorders/…` and the `payorders` dependency's own `features` (they decide
/// what `Services` builds: queues, price clients, chain readers), without the prefix.
pub fn domain_features(manifest: &str) -> std::collections::BTreeSet<String> {
    let list = |l: &str| -> Vec<String> {
        l.split(['[', ']', ','])
            .map(|f| f.trim().trim_matches('"').to_owned())
            .filter(|f| !f.is_empty())
            .collect()
    };
    let mut out = std::collections::BTreeSet::new();
    for line in manifest.lines() {
        if let Some(rest) = line.strip_prefix("aws = ") {
            out.extend(
                list(rest)
                    .into_iter()
                    .filter_map(|f| f.strip_prefix("payorders/").map(str::to_owned)),
            );
        } else if line.starts_with("payorders = ")
            && let Some((_, features)) = line.split_once("features = ")
        {
            out.extend(list(features));
        }
    }
    out
}

pub fn template_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml")
}

/// `template.yaml`, read once for every host the tests start.
pub fn template() -> &'static Template {
    static TEMPLATE: std::sync::OnceLock<Template> = std::sync::OnceLock::new();
    TEMPLATE.get_or_init(|| Template::load(&template_path()).unwrap())
}

pub fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[derive(Clone)]
pub struct Caller {
    pub org_id: OrgId,
    pub key_id: KeyId,
    pub key: String,
    pub secret: String,
}

pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub store: Arc<dyn Store>,
    pub master: MasterKey,
    /// Organization A, test mode, every scope.
    pub a: Caller,
    /// Organization A, live mode, every scope.
    pub a_live: Caller,
    /// Organization B, test mode, every scope.
    pub b: Caller,
    /// While set, the webhooks queue refuses every message (SQS down, or a process killed
    /// before it sends): what a route wrote before its send is all that is left of it.
    pub webhooks_down: Arc<std::sync::atomic::AtomicBool>,
}

/// A queue that refuses to send while `down` is set, and otherwise hands on to `inner`.
struct Switched<Q> {
    inner: Q,
    down: Arc<std::sync::atomic::AtomicBool>,
}

#[async_trait::async_trait]
impl<Q: payorders::queue::Queue> payorders::queue::Queue for Switched<Q> {
    async fn send(&self, body: &str, delay_secs: u32) -> Result<(), payorders::queue::QueueError> {
        if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(payorders::queue::QueueError(
                "switched off by the test".into(),
            ));
        }
        self.inner.send(body, delay_secs).await
    }
}

pub enum Backend {
    Embedded,
    Dynamo,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_on(Backend::Embedded).await
}

pub async fn spawn_app_on(backend: Backend) -> TestApp {
    spawn_app_with(
        backend,
        payorders::pricing::fixed::FixedPrices::dev_default(),
    )
    .await
}

/// The app with a given price table.
pub async fn spawn_app_with(
    backend: Backend,
    prices: payorders::pricing::fixed::FixedPrices,
) -> TestApp {
    spawn_app_full(backend, prices, None).await
}

/// The app with a given price table and exchange router.
pub async fn spawn_app_full(
    backend: Backend,
    prices: payorders::pricing::fixed::FixedPrices,
    router: Option<Arc<dyn payorders::routing::Router>>,
) -> TestApp {
    spawn_app_on_chains(backend, prices, router, test_chains()).await
}

/// A chain of its own (a test that rewinds it or moves its clock) with the test token, and the
/// app (embedded store, default prices) reading it.
pub async fn spawn_app_on_private_chain() -> (PrivateAnvil, TestApp) {
    let chain = PrivateAnvil::start().await;
    let app = spawn_app_on_chains(
        Backend::Embedded,
        payorders::pricing::fixed::FixedPrices::dev_default(),
        None,
        chain.chains(),
    )
    .await;
    payorders::testing::anvil::ensure_token(&chain.url).await;
    (chain, app)
}

/// The app reading the given chains.
pub async fn spawn_app_on_chains(
    backend: Backend,
    prices: payorders::pricing::fixed::FixedPrices,
    router: Option<Arc<dyn payorders::routing::Router>>,
    chains: payorders::chains::Chains,
) -> TestApp {
    spawn_app_staged(backend, prices, router, chains, None).await
}

/// The app answering under a named API Gateway stage (`/{stage}/…`, as a deployment with
/// the template's `Stage` does) when `stage` is given; its `base` then ends with the stage.
pub async fn spawn_app_staged(
    backend: Backend,
    prices: payorders::pricing::fixed::FixedPrices,
    router: Option<Arc<dyn payorders::routing::Router>>,
    chains: payorders::chains::Chains,
    stage: Option<&str>,
) -> TestApp {
    if std::env::var("TEST_LOG").is_ok() {
        let _ = tracing_subscriber::fmt().with_env_filter("info").try_init();
    }
    let mut embedded_handle = None;
    let store: Arc<dyn Store> = match backend {
        Backend::Embedded => {
            let e = EmbeddedStore::in_memory().unwrap();
            embedded_handle = Some(e.clone());
            Arc::new(e)
        }
        Backend::Dynamo => {
            let client = aws_sdk_dynamodb::Client::new(&sdk_at(&moto()).await);
            let table = format!(
                "api-{}",
                OrderId::generate().as_str().trim_start_matches("po_")
            );
            create_table(&client, &table).await.unwrap();
            Arc::new(DynamoStore::new(client, table))
        }
    };
    let master = MasterKey::from_text(&MasterKey::generate_text()).unwrap();
    let (a, a_live) = {
        let (org, k) = payorders_local::setup::create_org(&*store, &master, "A", None)
            .await
            .unwrap();
        let live = issue(&*store, &master, &org.id, KeyMode::Live, vec![Scope::All]).await;
        (caller(&org.id, k), live)
    };
    let b = {
        let (org, k) = payorders_local::setup::create_org(&*store, &master, "B", None)
            .await
            .unwrap();
        caller(&org.id, k)
    };
    let (queue, webhooks_rx) =
        payorders_local::queue::HostQueue::open("webhooks", embedded_handle.clone())
            .await
            .unwrap();
    let (confirmations, confirmations_rx) =
        payorders_local::queue::HostQueue::open("confirmations", embedded_handle.clone())
            .await
            .unwrap();
    let webhooks_down = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let services = Services {
        store: store.clone(),
        master: Some(master.clone()),
        webhooks: Some(Arc::new(Switched {
            inner: queue,
            down: webhooks_down.clone(),
        })),
        confirmations: Some(Arc::new(confirmations)),
        check_delays: payorders_local::workers::DEV_CHECK_DELAYS,
        prices: Some(Arc::new(prices)),
        router: router.clone(),
        chains: Arc::new(chains),
    };
    // The outbox poller needs the SQLite store's outbox; DynamoDB runs have no stream here.
    payorders_local::workers::start(
        &services,
        embedded_handle,
        payorders_local::workers::Receivers {
            webhooks: webhooks_rx,
            confirmations: confirmations_rx,
        },
        payorders_local::workers::Config {
            retry_scale: RETRY_SCALE,
            poll: std::time::Duration::from_millis(50),
            scan_every: std::time::Duration::from_millis(250),
            upkeep_every: std::time::Duration::from_millis(500),
        },
    )
    .unwrap();
    let mut host = Host::new(services, template()).unwrap();
    if let Some(stage) = stage {
        host = host.staged(stage);
    }
    let host = Arc::new(host);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut base = format!("http://{}", listener.local_addr().unwrap());
    if let Some(stage) = stage {
        base = format!("{base}/{stage}");
    }
    tokio::spawn(payorders_local::server::serve(host, listener));
    TestApp {
        base,
        http: payorders::net::http_client().build().unwrap(),
        store,
        master,
        a,
        a_live,
        b,
        webhooks_down,
    }
}

fn caller(org: &OrgId, k: auth::IssuedKey) -> Caller {
    Caller {
        org_id: org.clone(),
        key_id: k.record.id,
        key: k.key,
        secret: k.secret,
    }
}

/// Issues another key for an organization.
pub async fn issue(
    store: &dyn Store,
    master: &MasterKey,
    org: &OrgId,
    mode: KeyMode,
    scopes: Vec<Scope>,
) -> Caller {
    let k = auth::issue_api_key(org, mode, scopes, master, Timestamp::now(), None).unwrap();
    store.create_api_key(&k.record, None).await.unwrap();
    caller(org, k)
}

pub fn now() -> i64 {
    Timestamp::now().unix()
}

/// A response: status, headers and JSON body (or Null).
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Resp {
    /// Asserts an error in our shape with this status and code.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "{}", self.text);
        assert_eq!(self.body["error"]["code"], code, "{}", self.text);
        assert!(self.body["error"]["type"].is_string(), "{}", self.text);
        assert!(self.body["error"]["message"].is_string(), "{}", self.text);
        assert_eq!(
            self.body["error"]["documentation_url"],
            payorders::http::codes::documentation_url(code),
            "{}",
            self.text
        );
        assert_eq!(
            self.body["request_id"].as_str().unwrap(),
            self.headers["x-request-id"].to_str().unwrap()
        );
    }
}

impl TestApp {
    /// Another test-mode key of organization A, holding `scopes`.
    pub async fn key_of_a(&self, scopes: Vec<Scope>) -> Caller {
        issue(
            &*self.store,
            &self.master,
            &self.a.org_id,
            KeyMode::Test,
            scopes,
        )
        .await
    }

    pub async fn send(
        &self,
        method: &str,
        path: &str,
        headers: HeaderMap,
        body: Option<Vec<u8>>,
    ) -> Resp {
        self.send_from(&self.http, method, path, headers, body)
            .await
    }

    /// [`Self::send`] through `client` (e.g. one bound to another loopback address, whose
    /// per-address budgets are its own).
    pub async fn send_from(
        &self,
        client: &reqwest::Client,
        method: &str,
        path: &str,
        headers: HeaderMap,
        body: Option<Vec<u8>>,
    ) -> Resp {
        let mut rb = client
            .request(method.parse().unwrap(), format!("{}{}", self.base, path))
            .headers(headers);
        if let Some(b) = body {
            rb = rb.body(b);
        }
        let r = rb.send().await.unwrap();
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap();
        assert!(
            headers.contains_key("x-request-id"),
            "every response has X-Request-Id: {status} {text}"
        );
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            body,
            text,
        }
    }

    /// A request with an API key (and optional extra headers) and a JSON body.
    pub async fn call(
        &self,
        who: &Caller,
        method: &str,
        path: &str,
        body: Option<&Value>,
        extra: &[(&str, &str)],
    ) -> Resp {
        let mut h = headers(&[("x-api-key", &who.key)]);
        for (k, v) in extra {
            h.insert(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        if body.is_some() {
            h.insert("content-type", HeaderValue::from_static("application/json"));
        }
        self.send(
            method,
            path,
            h,
            body.map(|b| serde_json::to_vec(b).unwrap()),
        )
        .await
    }

    /// A GET with an API key.
    pub async fn get(&self, who: &Caller, path: &str) -> Resp {
        self.call(who, "GET", path, None, &[]).await
    }

    /// A POST with an API key and an optional JSON body.
    pub async fn post(&self, who: &Caller, path: &str, body: Option<&Value>) -> Resp {
        self.call(who, "POST", path, body, &[]).await
    }

    /// A v1-signed POST.
    pub async fn signed_post(
        &self,
        who: &Caller,
        path: &str,
        body: &Value,
        extra: &[(&str, &str)],
    ) -> Resp {
        let sig = sign::v1_header(
            &who.key,
            &who.secret,
            "POST",
            path.split('?').next().unwrap(),
            now(),
        );
        let mut all = vec![("authorization-signature", sig.as_str())];
        all.extend_from_slice(extra);
        self.call(who, "POST", path, Some(body), &all).await
    }

    /// A v1-signed request of any method (`DELETE /merchant-wallets/…`, a signed POST).
    pub async fn signed_call(
        &self,
        who: &Caller,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Resp {
        let sig = sign::v1_header(
            &who.key,
            &who.secret,
            method,
            path.split('?').next().unwrap(),
            now(),
        );
        self.call(
            who,
            method,
            path,
            body,
            &[("authorization-signature", sig.as_str())],
        )
        .await
    }

    /// A DEPOSIT on a network of the caller's mode: USDC on Base Sepolia for a test key,
    /// on Base for a live key; `extra` overrides fields.
    pub async fn create_deposit(&self, who: &Caller, extra: &Value) -> Resp {
        let mut body = if who.key.starts_with("sk_live_") {
            live_deposit_body()
        } else {
            deposit_body()
        };
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        self.call(who, "POST", "/pay-orders", Some(&body), &[])
            .await
    }

    /// [`Self::create_deposit`] with its payment details chosen in `source_currency`: the
    /// order's id and the payment details' answer.
    pub async fn awaiting_deposit(
        &self,
        who: &Caller,
        extra: &Value,
        source_currency: &Value,
    ) -> (String, Value) {
        let o = self.create_deposit(who, extra).await;
        assert_eq!(o.status, 201, "{}", o.text);
        let id = o.body["id"].as_str().unwrap().to_owned();
        let d = self
            .post(
                who,
                &format!("/pay-orders/{id}/payment-details"),
                Some(&serde_json::json!({"source_currency": source_currency})),
            )
            .await;
        assert_eq!(d.status, 200, "{}", d.text);
        (id, d.body)
    }
}

pub fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

pub const BASE_SEPOLIA_USDC: &str = "0x036CbD53842c5426634e7929541eC2318f3dCF7e";
pub const BASE_USDC: &str = "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913";
pub const SEPOLIA_USDC: &str = "0x1c7D4B196Cb0C7B01d743Fbc6116a902379C7238";
pub const SOLANA_DEVNET: u64 = 30000000000101;
pub const SOLANA_DEVNET_USDC: &str = "4zMMC9srt5Ri5X14GAgXhaHii3GnPAEERYPJgZJDncDU";
pub const SOLANA_ADDRESS: &str = "9WzDXwBbmkg8ZTbNMqUxvQRAyrZzDsGYdLVL9zYtAWWM";
pub const RECIPIENT: &str = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";

pub fn deposit_body() -> Value {
    serde_json::json!({
        "mode": "DEPOSIT",
        "amount": "25.50",
        "currency": {"chain_id": 84532, "address": BASE_SEPOLIA_USDC},
        "recipient": RECIPIENT,
    })
}

/// The live-mode counterpart of [`deposit_body`]: USDC on Base (a mainnet).
pub fn live_deposit_body() -> Value {
    serde_json::json!({
        "mode": "DEPOSIT",
        "amount": "25.50",
        "currency": {"chain_id": 8453, "address": BASE_USDC},
        "recipient": RECIPIENT,
    })
}

pub fn sale_body() -> Value {
    serde_json::json!({
        "mode": "SALE",
        "amount": "49.99",
        "fiat_unit": "USD",
        "metadata": {"items": [{"name": "Premium Widget", "quantity": 1, "unit_price": 49.99}]},
    })
}

/// Polls `probe` every 50 ms until it yields something (at most 10 s).
pub async fn eventually<T>(mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    for _ in 0..200 {
        if let Some(v) = probe().await {
            return v;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the awaited state did not arrive within 10 s")
}

/// The order (as `who` reads it) once every transfer it counts is confirmed: only
/// confirmed money can be refunded, a partial or late payment's included.
pub async fn wait_confirmed(app: &TestApp, who: &Caller, id: &str) -> Value {
    eventually(async || {
        let o = app.get(who, &format!("/pay-orders/{id}")).await.body;
        let transfers = o["transfers"].as_array()?;
        let done = transfers.iter().any(|t| t["status"] == "confirmed")
            && transfers
                .iter()
                .all(|t| t["status"] == "confirmed" || t["status"] == "reorged");
        done.then_some(o)
    })
    .await
}

/// The stored endpoint (secrets and version included), as only the store shows it.
pub async fn stored_endpoint(app: &TestApp, org: &OrgId, id: &str) -> WebhookEndpoint {
    app.store
        .get_endpoint(org, &WebhookEndpointId::parse(id).unwrap())
        .await
        .unwrap()
        .expect("the endpoint is stored")
}

/// An anvil of a test's own (for tests that rewind the chain or set its clock).
pub use payorders::testing::anvil::PrivateAnvil;

/// Checks that the committed file at `relative` (from the repository root) is exactly what
/// the code generates, or rewrites it when `UPDATE_DOCS` is set; `module` names the tests
/// that regenerate it. Returns the committed text.
pub fn generated_file(relative: &str, want: &str, module: &str) -> String {
    let path = repo_root().join(relative);
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(&path, want).unwrap();
        return want.to_owned();
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "{relative} differs from what the code generates: run \
         `UPDATE_DOCS=1 cargo test -p payorders-local --test api {module}::` and commit the file"
    );
    have
}

/// The answer the store keeps for `who`'s test-mode request under `Idempotency-Key: key`
/// (a POST of `body` to `path`), as stored: what a reader of the store would see.
pub async fn kept_idempotent_body(
    app: &TestApp,
    who: &Caller,
    key: &str,
    path: &str,
    body: &Value,
) -> String {
    let scope = payorders::store::IdempotencyScope {
        organization_id: who.org_id.clone(),
        mode: KeyMode::Test,
        key: key.into(),
    };
    let fingerprint = payorders::http::request_fingerprint(
        &who.key_id,
        "POST",
        path,
        &serde_json::to_vec(body).unwrap(),
    );
    let kept = app
        .store
        .idempotency_begin(&scope, &fingerprint, Timestamp::now())
        .await
        .unwrap();
    let payorders::store::IdempotencyBegin::Replay(kept) = kept else {
        panic!("expected the kept response, got {kept:?}");
    };
    kept.body
}

/// moto's address, which `make test` starts and exports.
pub fn moto() -> String {
    std::env::var("PAYORDERS_TEST_AWS_ENDPOINT").expect(
        "PAYORDERS_TEST_AWS_ENDPOINT is not set: the DynamoDB, SQS and Secrets Manager tests run against moto; use `make test`",
    )
}

/// An AWS SDK configuration for `endpoint` (moto, or a proxy in front of it), with test
/// credentials.
pub async fn sdk_at(endpoint: &str) -> aws_config::SdkConfig {
    payorders::config::aws_sdk_loader()
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "t", "t", None, None, "t",
        ))
        .load()
        .await
}

/// The HTTP status of each attempt of a delivery as the API shows it.
pub fn attempt_codes(delivery: &Value) -> Vec<u64> {
    delivery["attempts"]
        .as_array()
        .expect("a delivery's attempts")
        .iter()
        .map(|a| a["status_code"].as_u64().expect("an answered attempt"))
        .collect()
}

/// A queue of the local host's kind that keeps nothing: its messages live in memory.
pub async fn in_memory_queue() -> (
    payorders_local::queue::HostQueue,
    payorders_local::queue::Receiver,
) {
    payorders_local::queue::HostQueue::open("test", None)
        .await
        .expect("an in-memory queue opens")
}

/// Serves `app` on a free loopback port; its base URL.
pub async fn serve_router(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

/// What a test proxy got back from passing a request on.
pub struct PassedOn {
    pub status: reqwest::StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: axum::body::Bytes,
}

/// Passes a request a test proxy received (`parts`, `body`) on to `base` (moto), as it came
/// but for the host and length, which the new request sets.
pub async fn pass_on(
    http: &reqwest::Client,
    base: &str,
    parts: &axum::http::request::Parts,
    body: axum::body::Bytes,
) -> PassedOn {
    let path = parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str())
        .unwrap_or("/");
    let mut out = http.request(parts.method.clone(), format!("{base}{path}"));
    for (name, value) in &parts.headers {
        if name != "host" && name != "content-length" {
            out = out.header(name, value);
        }
    }
    let answer = out.body(body).send().await.unwrap();
    PassedOn {
        status: answer.status(),
        headers: answer.headers().clone(),
        body: answer.bytes().await.unwrap(),
    }
}

impl PassedOn {
    /// The proxy's own answer: what it got back, as it got it.
    pub fn answer(self) -> axum::response::Response {
        let mut resp = axum::response::Response::builder().status(self.status.as_u16());
        for (name, value) in &self.headers {
            if name != "content-length" && name != "transfer-encoding" {
                resp = resp.header(name.as_str(), value.as_bytes());
            }
        }
        resp.body(axum::body::Body::from(self.body)).unwrap()
    }
}

/// A POST signed with a v2 signature over `signed`, sending `sent` (they differ to test a
/// body swapped under a signature).
pub async fn v2_post(
    app: &TestApp,
    who: &Caller,
    path: &str,
    nonce: &str,
    signed: &[u8],
    sent: &[u8],
) -> Resp {
    let sig =
        payorders::auth::sign::v2_header(&who.key, &who.secret, "POST", path, now(), nonce, signed);
    app.send(
        "POST",
        path,
        headers(&[
            ("x-api-key", &who.key),
            ("authorization-signature", &sig),
            ("content-type", "application/json"),
        ]),
        Some(sent.to_vec()),
    )
    .await
}
