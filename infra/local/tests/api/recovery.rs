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
        Self {
            child,
            base,
            key,
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

/// A fresh directory for one host's data.
fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "payorders-recovery-{}",
        payorders::OrderId::generate().as_str()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
