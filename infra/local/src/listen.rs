//! `payorders listen`, in one of two ways:
//! - **deliveries** (an API on this machine, e.g. `make dev`): registers a temporary
//!   webhook endpoint pointing at a local port, shows each delivery as it arrives (event,
//!   order, status), verifies its Standard Webhooks signature with the endpoint's secret,
//!   forwards it unchanged when asked, and removes the endpoint on exit;
//! - **polling** (a deployed API, which cannot reach this machine, or `--poll`): reads the
//!   organization's new events from `GET /events` every two seconds, shows them, and when
//!   asked forwards each one signed with a secret of this session (as the Stripe CLI does),
//!   so a receiver verifies it exactly as it verifies a real delivery.

use crate::devcli::{Client, Steps};
use anyhow::Context;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use subtle::ConstantTimeEq;

/// How far a delivery's timestamp may be from now (as the Standard Webhooks libraries allow).
const TOLERANCE_SECS: i64 = 300;

pub struct Options {
    pub port: u16,
    pub events: Vec<String>,
    pub forward_to: Option<String>,
    /// Print each delivery's whole body too.
    pub print_json: bool,
    /// Poll `GET /events` instead of registering an endpoint (the default when the API is
    /// not on this machine).
    pub poll: bool,
}

/// How often polling mode asks for new events.
const POLL_EVERY: Duration = Duration::from_secs(2);

/// Why a delivery does not verify, or `Ok` when one of its signatures is the secret's.
pub fn verify(secret: &str, headers: &HeaderMap, body: &str) -> Result<(), String> {
    let h = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .ok_or(format!("no {name} header"))
    };
    let (id, ts, sigs) = (
        h("webhook-id")?,
        h("webhook-timestamp")?,
        h("webhook-signature")?,
    );
    let ts: i64 = ts
        .parse()
        .map_err(|_| "webhook-timestamp is not a number")?;
    if (payorders::Timestamp::now().unix() - ts).abs() > TOLERANCE_SECS {
        return Err(format!(
            "timestamp {ts} is more than {TOLERANCE_SECS} s from now"
        ));
    }
    let expected = payorders::webhooks::sign(secret, id, ts, body)
        .ok_or("the secret is not a whsec_ secret")?;
    let matches = sigs
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .any(|s| bool::from(s.as_bytes().ct_eq(expected.as_bytes())));
    if matches {
        Ok(())
    } else {
        Err("no signature matches the endpoint's secret".into())
    }
}

struct State {
    secret: String,
    forward_to: Option<String>,
    print_json: bool,
    http: reqwest::Client,
    steps: Steps,
}

pub async fn listen(client: &Client, opts: Options) -> anyhow::Result<()> {
    if opts.poll || !api_is_local(&client.api) {
        return poll(client, opts).await;
    }
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", opts.port))
        .await
        .with_context(|| format!("binding 127.0.0.1:{}", opts.port))?;
    let port = listener.local_addr()?.port();
    let endpoint = client
        .post(
            "/webhook-endpoints",
            &json!({"url": format!("http://localhost:{port}/webhooks"), "events": opts.events,
                    "description": "payorders listen (temporary)"}),
            None,
        )
        .await
        .context("registering a temporary webhook endpoint (the deployed API cannot reach this machine; use `make dev`)")?;
    let id = endpoint["id"]
        .as_str()
        .context("no endpoint id")?
        .to_owned();
    let secret = endpoint["secret"]
        .as_str()
        .context("no endpoint secret")?
        .to_owned();
    println!(
        "Ready: deliveries of {} to http://localhost:{port}/webhooks (endpoint {id}, removed on exit)",
        opts.events.join(", ")
    );
    println!("Signing secret of this session: {secret}");
    if let Some(url) = &opts.forward_to {
        println!("Forwarding each delivery, unchanged, to {url}");
    }
    let state = Arc::new(State {
        secret,
        forward_to: opts.forward_to,
        print_json: opts.print_json,
        http: payorders::net::http_client()
            .timeout(Duration::from_secs(10))
            .build()?,
        steps: Steps::default(),
    });
    let app = axum::Router::new().fallback(move |headers: HeaderMap, body: String| {
        let state = state.clone();
        async move { receive(&state, headers, body).await }
    });
    let served = tokio::select! {
        r = axum::serve(listener, app) => r.map_err(anyhow::Error::from),
        _ = shutdown() => Ok(()),
    };
    let removed = client
        .send(
            "DELETE",
            &format!("/webhook-endpoints/{id}"),
            None,
            None,
            crate::devcli::Signing::Auto,
        )
        .await;
    match removed {
        Ok(a) if a.ok() => println!("removed endpoint {id}"),
        Ok(a) => eprintln!("could not remove endpoint {id}: {}", a.error_line()),
        Err(e) => eprintln!("could not remove endpoint {id}: {e:#}"),
    }
    served
}

/// Whether the API runs on this machine, so a webhook to localhost reaches us.
pub fn api_is_local(api: &str) -> bool {
    url::Url::parse(api).is_ok_and(|u| match u.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    })
}

/// Polling mode: new events from `GET /events`, oldest first, each shown (and forwarded,
/// signed with this session's secret) once.
async fn poll(client: &Client, opts: Options) -> anyhow::Result<()> {
    let mut events = Poller::new(opts.events.clone());
    let secret = payorders::webhooks::generate_secret();
    let http = payorders::net::http_client()
        .timeout(Duration::from_secs(10))
        .build()?;
    let steps = Steps::default();
    println!(
        "Ready: polling {}/events every {} s for {}",
        client.api,
        POLL_EVERY.as_secs(),
        opts.events.join(", ")
    );
    if let Some(url) = &opts.forward_to {
        println!("Forwarding each event to {url}, signed with this session's secret: {secret}");
    }
    let run = async {
        loop {
            match events.next_batch(client).await {
                Ok(batch) => {
                    for event in batch {
                        steps.say(format_args!("{}  polled", describe(&event)));
                        if opts.print_json {
                            println!("{}", serde_json::to_string_pretty(&event)?);
                        }
                        if let Some(url) = &opts.forward_to {
                            let outcome = match forward_signed(&http, url, &secret, &event).await {
                                Ok(status) => status.to_string(),
                                Err(e) => format!("failed ({})", e.without_url()),
                            };
                            steps.say(format_args!("  -> {url}: {outcome}"));
                        }
                    }
                }
                // A failed poll is shown and retried; the events stay listed for 30 days.
                Err(e) => eprintln!("polling {}/events: {e:#}", client.api),
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
        #[allow(unreachable_code)]
        anyhow::Ok(())
    };
    tokio::select! {
        r = run => r,
        _ = shutdown() => Ok(()),
    }
}

/// The events `GET /events` lists after a point in time, each returned once.
pub struct Poller {
    types: Vec<String>,
    since: payorders::Timestamp,
    seen: std::collections::HashSet<String>,
}

impl Poller {
    /// Events from now on of the given types (`*`: all).
    pub fn new(types: Vec<String>) -> Self {
        Self::since(types, payorders::Timestamp::now())
    }

    pub fn since(types: Vec<String>, since: payorders::Timestamp) -> Self {
        Self {
            types,
            since,
            seen: Default::default(),
        }
    }

    fn wanted(&self, event: &Value) -> bool {
        let kind = event["type"].as_str().unwrap_or_default();
        self.types.iter().any(|t| t == "*" || t == kind)
    }

    /// The events not returned before, oldest first. Asks for those created since a
    /// little before the newest one seen (clocks and list order at one instant are not
    /// exact), every page of them, and drops the ones already returned.
    pub async fn next_batch(&mut self, client: &Client) -> anyhow::Result<Vec<Value>> {
        let mut fresh = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut query = form_urlencoded::Serializer::new(String::new());
            query.append_pair("limit", "100");
            query.append_pair("created_gte", &self.since.to_string());
            if let Some(c) = &cursor {
                query.append_pair("cursor", c);
            }
            let page = client.get(&format!("/events?{}", query.finish())).await?;
            let data = page["data"].as_array().context("an event list")?;
            for event in data {
                let id = event["id"].as_str().unwrap_or_default().to_owned();
                if !id.is_empty() && !self.seen.contains(&id) {
                    fresh.push(event.clone());
                }
            }
            match page["next_cursor"].as_str() {
                Some(next) if page["has_more"] == true => cursor = Some(next.to_owned()),
                _ => break,
            }
        }
        // The list is newest first.
        fresh.reverse();
        for event in &fresh {
            self.seen
                .insert(event["id"].as_str().unwrap_or_default().to_owned());
            if let Some(at) = event["created_at"]
                .as_str()
                .and_then(|t| payorders::Timestamp::parse(t).ok())
            {
                let lookback = at.plus_seconds(-5);
                if lookback > self.since {
                    self.since = lookback;
                }
            }
        }
        Ok(fresh.into_iter().filter(|e| self.wanted(e)).collect())
    }
}

/// One line for an event or delivery: type, event id, order id and status.
fn describe(event: &Value) -> String {
    let object = &event["data"]["object"];
    format!(
        "{}  {}  {} {}",
        event["type"].as_str().unwrap_or("?"),
        event["id"].as_str().unwrap_or("?"),
        object["id"].as_str().unwrap_or("?"),
        object["status"].as_str().unwrap_or(""),
    )
}

/// POSTs `event` to `url` as a Standard Webhooks delivery signed with `secret`; the
/// answer's status.
pub async fn forward_signed(
    http: &reqwest::Client,
    url: &str,
    secret: &str,
    event: &Value,
) -> Result<u16, reqwest::Error> {
    let body = event.to_string();
    let id = event["id"].as_str().unwrap_or("evt_unknown");
    let ts = payorders::Timestamp::now().unix();
    let signature = payorders::webhooks::signature_header([secret], id, ts, &body);
    let answer = http
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", signature)
        .body(body)
        .send()
        .await?;
    Ok(answer.status().as_u16())
}

async fn shutdown() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("a TERM handler installs");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

async fn receive(state: &State, headers: HeaderMap, body: String) -> StatusCode {
    let event: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let verdict = match verify(&state.secret, &headers, &body) {
        Ok(()) => "verified".to_owned(),
        Err(why) => format!("NOT VERIFIED ({why})"),
    };
    state
        .steps
        .say(format_args!("{}  {verdict}", describe(&event)));
    if state.print_json {
        println!(
            "{}",
            serde_json::to_string_pretty(&event).unwrap_or_default()
        );
    }
    if let Some(url) = &state.forward_to {
        let mut req = state.http.post(url).body(body.clone());
        for (name, value) in &headers {
            if name.as_str().starts_with("webhook-") || name == "content-type" {
                req = req.header(name, value);
            }
        }
        match req.send().await {
            Ok(r) => state
                .steps
                .say(format_args!("  -> {url}: {}", r.status().as_u16())),
            Err(e) => state
                .steps
                .say(format_args!("  -> {url}: failed ({})", e.without_url())),
        }
    }
    if verdict == "verified" {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    }
}
