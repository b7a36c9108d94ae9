//! Developer commands, as the Stripe CLI has them: `api` sends one request (signed when it
//! writes), `listen` shows this organization's webhook deliveries live (verified, optionally
//! forwarded), `trigger` creates a test order and pays it through the sandbox.
//!
//! Credentials: flags, else `API`, `PAYORDERS_API_KEY`, `PAYORDERS_API_SECRET` from the
//! environment, else `<dir>/demo.env` as `make dev` writes it.

use crate::setup::demo_env_value;
use anyhow::{Context, bail};
use payorders::auth::sign;
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};

/// Where the API is and who calls it.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Credentials {
    /// The API's base URL (default: API, else demo.env, else http://127.0.0.1:3000).
    #[arg(long = "api", global = true)]
    pub api: Option<String>,
    /// API key (default: PAYORDERS_API_KEY, else demo.env).
    #[arg(long, global = true)]
    pub api_key: Option<String>,
    /// API secret, for signed requests (default: PAYORDERS_API_SECRET, else demo.env).
    #[arg(long, global = true)]
    pub api_secret: Option<String>,
}

/// An API client with resolved credentials.
#[derive(Clone)]
pub struct Client {
    pub api: String,
    pub key: String,
    pub secret: Option<String>,
    http: reqwest::Client,
}

/// An answer: status and body (JSON when it parses, else the text as a JSON string).
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Answer {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// `422 TX_ALREADY_USED: …` for an error answer.
    pub fn error_line(&self) -> String {
        let e = &self.body["error"];
        match (e["code"].as_str(), e["message"].as_str()) {
            (Some(code), Some(msg)) => format!("{} {code}: {msg}", self.status),
            _ => format!("{} {}", self.status, self.body),
        }
    }

    /// The body of a success, or the error as an `Err`.
    pub fn into_ok(self) -> anyhow::Result<Value> {
        if self.ok() {
            Ok(self.body)
        } else {
            bail!("{}", self.error_line())
        }
    }
}

/// How a request is signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signing {
    /// Writes (anything but GET) with the v2 scheme when the secret is known: the routes that
    /// move money require a signature, the others accept one.
    Auto,
    Never,
}

impl Client {
    pub fn resolve(c: &Credentials, dir: &Path) -> anyhow::Result<Self> {
        Self::resolve_with(c, dir, |var| std::env::var(var).ok())
    }

    /// [`Client::resolve`] with `env` in place of the process environment.
    pub fn resolve_with(
        c: &Credentials,
        dir: &Path,
        env: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Self> {
        let pick = |flag: &Option<String>, var: &str| {
            flag.clone()
                .or_else(|| env(var).filter(|v| !v.is_empty()))
                .or_else(|| demo_env_value(dir, var))
        };
        let api = pick(&c.api, "API").unwrap_or_else(|| "http://127.0.0.1:3000".into());
        let key = pick(&c.api_key, "PAYORDERS_API_KEY").with_context(|| {
            format!(
                "no API key: pass --api-key, set PAYORDERS_API_KEY, or run `make dev` (it writes {})",
                dir.join("demo.env").display()
            )
        })?;
        Ok(Self {
            api: api.trim_end_matches('/').to_owned(),
            key,
            secret: pick(&c.api_secret, "PAYORDERS_API_SECRET"),
            http: payorders::net::http_client()
                .timeout(Duration::from_secs(30))
                .build()?,
        })
    }

    /// Sends `method path` (path may carry `?query`) with an optional JSON body.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        idempotency_key: Option<&str>,
        signing: Signing,
    ) -> anyhow::Result<Answer> {
        let method = method.to_ascii_uppercase();
        if !path.starts_with('/') {
            bail!("the path starts with / (e.g. /pay-orders)");
        }
        let m = reqwest::Method::from_bytes(method.as_bytes()).context("HTTP method")?;
        let mut req = self
            .http
            .request(m, format!("{}{path}", self.api))
            .header("X-API-KEY", &self.key);
        let bytes = body.unwrap_or_default().as_bytes().to_vec();
        if body.is_some() {
            req = req.header("Content-Type", "application/json");
        }
        if let Some(k) = idempotency_key {
            req = req.header("Idempotency-Key", k);
        }
        if let (Signing::Auto, Some(secret), false) = (signing, &self.secret, method == "GET") {
            let ts = payorders::Timestamp::now().unix();
            let nonce = payorders::RequestId::generate().to_string();
            req = req.header(
                "Authorization-Signature",
                sign::v2_header(&self.key, secret, &method, path, ts, &nonce, &bytes),
            );
        }
        let resp = req
            .body(bytes)
            .send()
            .await
            .with_context(|| format!("{method} {}{path} (is `make dev` running?)", self.api))?;
        let status = resp.status().as_u16();
        let text = resp.text().await?;
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok(Answer { status, body })
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.send("GET", path, None, None, Signing::Auto)
            .await?
            .into_ok()
    }

    pub async fn post(&self, path: &str, body: &Value, key: Option<&str>) -> anyhow::Result<Value> {
        self.send("POST", path, Some(&body.to_string()), key, Signing::Auto)
            .await?
            .into_ok()
    }
}

/// A fresh idempotency key, so a command can be re-run.
pub fn unique_key(prefix: &str) -> String {
    format!("{prefix}-{}", payorders::RequestId::generate())
}

/// `payorders api`: prints the JSON answer; an error status is an error (non-zero exit).
pub async fn api(
    client: &Client,
    method: &str,
    path: &str,
    body: Option<&str>,
    idempotency_key: Option<&str>,
    signing: Signing,
) -> anyhow::Result<()> {
    let body = match body {
        Some("-") => Some(std::io::read_to_string(std::io::stdin())?),
        Some(b) => Some(b.to_owned()),
        None => None,
    };
    if let Some(b) = &body {
        serde_json::from_str::<Value>(b).context("the body is not JSON")?;
    }
    let answer = client
        .send(method, path, body.as_deref(), idempotency_key, signing)
        .await?;
    println!("{}", serde_json::to_string_pretty(&answer.body)?);
    if !answer.ok() {
        bail!("{}", answer.error_line());
    }
    Ok(())
}

/// Prints each step with the time since the start.
pub struct Steps(Instant);

impl Default for Steps {
    fn default() -> Self {
        Self(Instant::now())
    }
}

impl Steps {
    pub fn say(&self, text: impl std::fmt::Display) {
        println!("[{:6.2}s] {text}", self.0.elapsed().as_secs_f64());
    }
}

/// Base Sepolia USDC: a currency of the demo organization's test wallets, paid on the
/// sandbox by `simulate-payment`.
pub const TRIGGER_CURRENCY: (u64, &str) = (84532, "0x036CbD53842c5426634e7929541eC2318f3dCF7e");

/// `payorders trigger`: a signed SALE, its payment details, a sandbox payment, and (unless
/// `wait` is zero) the wait for COMPLETED. Returns the order id.
pub async fn trigger(client: &Client, amount: &str, wait: Duration) -> anyhow::Result<String> {
    let steps = Steps::default();
    let order = client
        .post(
            "/pay-orders",
            &json!({"mode": "SALE", "amount": amount, "fiat_unit": "USD",
                    "metadata": {"source": "payorders trigger"}}),
            Some(&unique_key("trigger")),
        )
        .await
        .context("creating the order")?;
    let id = order["id"].as_str().context("no order id")?.to_owned();
    steps.say(format_args!("created {id}: SALE {amount} USD (signed)"));
    let (chain, token) = TRIGGER_CURRENCY;
    let o = client
        .post(
            &format!("/pay-orders/{id}/payment-details"),
            &json!({"source_currency": {"chain_id": chain, "address": token}}),
            None,
        )
        .await
        .context("choosing the payment currency")?;
    steps.say(format_args!(
        "{}: pay {} {} on chain {chain} to {}",
        o["status"].as_str().unwrap_or("?"),
        o["payment"]["input"]["amount"]["ui"]
            .as_str()
            .unwrap_or("?"),
        o["payment"]["input"]["currency"]["symbol"]
            .as_str()
            .unwrap_or("?"),
        o["payment"]["steps"][0]["deposit_address"]
            .as_str()
            .unwrap_or("?"),
    ));
    let o = client
        .post(
            &format!("/pay-orders/{id}/simulate-payment"),
            &json!({}),
            None,
        )
        .await
        .context("paying through the sandbox")?;
    steps.say(format_args!(
        "{}: sandbox transfer {}",
        o["status"].as_str().unwrap_or("?"),
        o["transfers"][0]["tx_hash"].as_str().unwrap_or("?")
    ));
    if !wait.is_zero() {
        let o = wait_for_status(client, &id, "COMPLETED", wait).await?;
        let t = &o["transfers"][0];
        steps.say(format_args!(
            "COMPLETED: confirmed ({} confirmations, {} required)",
            t["confirmations"], t["required_confirmations"]
        ));
    }
    Ok(id)
}

/// Polls an order until it reaches `status`; an error if it ends elsewhere or time runs out.
pub async fn wait_for_status(
    client: &Client,
    id: &str,
    status: &str,
    within: Duration,
) -> anyhow::Result<Value> {
    let deadline = Instant::now() + within;
    loop {
        let o = client.get(&format!("/pay-orders/{id}")).await?;
        let now = o["status"].as_str().unwrap_or_default();
        if now == status {
            return Ok(o);
        }
        if matches!(now, "CANCELLED" | "EXPIRED" | "COMPLETED") {
            bail!("order {id} is {now}, not {status}");
        }
        if Instant::now() > deadline {
            bail!("order {id} is still {now} after {} s", within.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
