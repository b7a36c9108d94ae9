//! Following an order live as Server-Sent Events (`GET /public/pay-orders/{id}/events`).
//!
//! Each event is the whole public view (`event: pay_order`), sent when the order changed.
//! Its `id:` names the order's state, opaquely; a browser that reconnects sends it back as
//! `Last-Event-ID` and gets the current view only if the order changed meanwhile, so no
//! change is missed and none is sent twice. The stream starts with `retry:` (how soon to
//! reconnect), sends a comment now and then so proxies keep it open, and ends after a
//! bounded lifetime (a Lambda invocation is bounded) or once the order can no longer
//! change for the customer; the browser then reconnects by itself.

use super::Links;
use super::view::{Merchant, currency_choices, public_view};
use crate::model::{OrderStatus, PayOrder, Timestamp};
use crate::runtime::Services;
use sha2::{Digest, Sha256};
use std::time::{Duration, Instant};

/// Where a stream's text goes: the Lambda response stream, the local host's body.
#[async_trait::async_trait]
pub trait Sink: Send {
    /// Writes one chunk; false once the client is gone.
    async fn push_chunk(&mut self, chunk: String) -> bool;
}

/// How a stream runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Follow {
    /// How often the store is read for a change.
    pub poll: Duration,
    /// How long one stream lasts before the client is asked to reconnect.
    pub lifetime: Duration,
    /// The `retry:` the client waits before reconnecting, in milliseconds.
    pub retry_ms: u32,
    /// A comment is sent after this long without an event.
    pub keep_alive: Duration,
}

impl Default for Follow {
    fn default() -> Self {
        Self {
            poll: Duration::from_secs(1),
            lifetime: Duration::from_secs(30),
            retry_ms: 1500,
            keep_alive: Duration::from_secs(15),
        }
    }
}

impl Follow {
    /// Defaults, with `PAYORDERS_SSE_POLL_MS` and `PAYORDERS_SSE_LIFETIME_SECS` when set.
    pub fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
        let d = Self::default();
        Self {
            poll: var("PAYORDERS_SSE_POLL_MS")
                .map(Duration::from_millis)
                .unwrap_or(d.poll),
            lifetime: var("PAYORDERS_SSE_LIFETIME_SECS")
                .map(Duration::from_secs)
                .unwrap_or(d.lifetime),
            ..d
        }
    }
}

/// The opaque id of an order's state: changes with every write, reveals nothing.
pub fn event_id(order: &PayOrder) -> String {
    let digest = Sha256::digest(format!("{}:{}", order.id, order.version));
    hex::encode(&digest[..8])
}

/// One event frame.
pub fn frame(id: &str, event: &str, data: &serde_json::Value) -> String {
    format!("id: {id}\nevent: {event}\ndata: {data}\n\n")
}

/// Whether the customer's page has nothing more to wait for.
fn settled(order: &PayOrder) -> bool {
    matches!(
        order.status,
        OrderStatus::Completed | OrderStatus::Failed | OrderStatus::Refunded
    ) || (order.status.takes_late_payments_only() && !order.awaits_check())
}

/// Streams `order`'s changes into `out`, starting after the state `last_event_id` names.
/// Returns when the lifetime is over, the order is settled, it disappears, or the client
/// left.
pub async fn follow(
    svc: &Services,
    order: PayOrder,
    last_event_id: Option<String>,
    links: &Links,
    cfg: Follow,
    out: &mut dyn Sink,
) {
    let started = Instant::now();
    if !out.push_chunk(format!("retry: {}\n\n", cfg.retry_ms)).await {
        return;
    }
    let merchant = match Merchant::for_org(svc, &order.organization_id).await {
        Ok(m) => m,
        Err(_) => return,
    };
    let mut last = last_event_id;
    let mut last_sent = Instant::now();
    let mut current = order;
    loop {
        let id = event_id(&current);
        if last.as_deref() != Some(id.as_str()) {
            let choices = currency_choices(svc, &current).await.unwrap_or_default();
            let view = public_view(&current, &merchant, &choices, links, Timestamp::now());
            if !out.push_chunk(frame(&id, "pay_order", &view)).await {
                return;
            }
            last = Some(id);
            last_sent = Instant::now();
        } else if last_sent.elapsed() >= cfg.keep_alive {
            if !out.push_chunk(": keep-alive\n\n".into()).await {
                return;
            }
            last_sent = Instant::now();
        }
        if settled(&current) || started.elapsed() + cfg.poll >= cfg.lifetime {
            return;
        }
        tokio::time::sleep(cfg.poll).await;
        match svc.store.get_order(&current.id).await {
            Ok(Some(o)) => current = o,
            Ok(None) => return,
            // A store hiccup: try again at the next poll; the lifetime still bounds it.
            Err(e) => tracing::warn!(error = %e, "reading an order for its event stream"),
        }
    }
}
