//! `payorders listen`: registers a temporary webhook endpoint pointing at a local port,
//! shows each delivery as it arrives (event, order, status), verifies its Standard Webhooks
//! signature with the endpoint's secret, forwards it unchanged when asked, and removes the
//! endpoint on exit. Test mode only reaches loopback through the local host (`make dev`).

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
}

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
    let object = &event["data"]["object"];
    let verdict = match verify(&state.secret, &headers, &body) {
        Ok(()) => "verified".to_owned(),
        Err(why) => format!("NOT VERIFIED ({why})"),
    };
    state.steps.say(format_args!(
        "{}  {}  {} {}  {verdict}",
        event["type"].as_str().unwrap_or("?"),
        event["id"].as_str().unwrap_or("?"),
        object["id"].as_str().unwrap_or("?"),
        object["status"].as_str().unwrap_or(""),
    ));
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
