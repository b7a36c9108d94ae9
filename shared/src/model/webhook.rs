//! Webhook endpoints and deliveries.

use super::{DeliveryId, EventId, EventType, OrgId, Timestamp, WebhookEndpointId};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// An IP address block (`203.0.113.0/24`), as `allowed_ips` holds them.
pub use ipnet::IpNet;

/// A signing secret of an endpoint, sealed with the master key. After a rotation the old
/// secret keeps signing beside the new one until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedWebhookSecret {
    pub sealed: String,
    pub created_at: Timestamp,
    #[serde(default)]
    pub expires_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookEndpoint {
    pub id: WebhookEndpointId,
    pub organization_id: OrgId,
    pub livemode: bool,
    pub url: String,
    #[serde(default)]
    pub description: Option<String>,
    /// Event types, or `*` for all.
    pub events: Vec<String>,
    pub enabled: bool,
    #[serde(default)]
    pub disabled_reason: Option<String>,
    /// Newest first.
    pub secrets: Vec<SealedWebhookSecret>,
    /// When the current run of failed attempts began; cleared by a success.
    #[serde(default)]
    pub failing_since: Option<Timestamp>,
    /// About when an attempt last failed (written at most once an hour): a run with no
    /// failure for a day is over, whatever came between ([`crate::webhooks::FAILING_RUN_GAP_SECS`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failed_at: Option<Timestamp>,
    /// How deliveries to it are made: timeout, retries, allowed addresses.
    #[serde(default)]
    pub options: DeliveryOptions,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub version: u64,
}

/// How long an attempt waits for the endpoint's answer unless the endpoint says otherwise.
pub const DEFAULT_TIMEOUT_SECS: u32 = 10;
/// The longest `timeout` an endpoint may choose.
pub const MAX_TIMEOUT_SECS: u32 = 30;
/// The most retries an endpoint may ask for (the schedule stops after 3 days anyway).
pub const MAX_RETRIES: u32 = 20;
/// The most entries of `allowed_ips`.
pub const MAX_ALLOWED_IPS: usize = 50;

/// An endpoint's delivery options. They only ever narrow what the SSRF rules allow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryOptions {
    /// Seconds an attempt waits for the answer, 1 to [`MAX_TIMEOUT_SECS`].
    #[serde(default = "default_timeout")]
    pub timeout_secs: u32,
    /// Retries after the first attempt; `None` retries on the schedule for 3 days.
    #[serde(default)]
    pub max_retries: Option<u32>,
    /// When not empty, deliveries go only to the resolved addresses inside these.
    #[serde(default)]
    pub allowed_ips: Vec<IpNet>,
}

fn default_timeout() -> u32 {
    DEFAULT_TIMEOUT_SECS
}

impl Default for DeliveryOptions {
    fn default() -> Self {
        Self {
            timeout_secs: DEFAULT_TIMEOUT_SECS,
            max_retries: None,
            allowed_ips: Vec::new(),
        }
    }
}

impl WebhookEndpoint {
    /// Whether an event of type `t` goes to this endpoint. `ping` never does by
    /// subscription: it is sent to one endpoint on request.
    pub fn subscribes(&self, t: EventType) -> bool {
        t != EventType::Ping && self.events.iter().any(|e| e == "*" || e == t.as_str())
    }

    /// Secrets that sign now: the current one and any rotated-out one still in its grace.
    pub fn signing_secrets(&self, now: Timestamp) -> impl Iterator<Item = &SealedWebhookSecret> {
        self.secrets
            .iter()
            .filter(move |s| s.expires_at.is_none_or(|e| e > now))
    }

    /// The endpoint as the API shows it: never any secret.
    pub fn api_view(&self) -> Value {
        json!({
            "id": self.id,
            "object": "webhook_endpoint",
            "organization_id": self.organization_id,
            "livemode": self.livemode,
            "url": self.url,
            "description": self.description,
            "events": self.events,
            "enabled": self.enabled,
            "disabled_reason": self.disabled_reason,
            "failing_since": self.failing_since,
            "timeout": self.options.timeout_secs,
            "max_retries": self.options.max_retries,
            "allowed_ips": self.options.allowed_ips,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    Failed,
}

/// One try at sending a delivery, as the delivery log shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryAttempt {
    pub number: u32,
    pub at: Timestamp,
    #[serde(default)]
    pub status_code: Option<u16>,
    #[serde(default)]
    pub error: Option<String>,
    pub latency_ms: u64,
    /// The first 1 KB of the response body.
    #[serde(default)]
    pub response_body: Option<String>,
}

/// One event to one destination: an endpoint, or an order's own `webhook_url`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub id: DeliveryId,
    pub organization_id: OrgId,
    pub livemode: bool,
    #[serde(default)]
    pub endpoint_id: Option<WebhookEndpointId>,
    pub url: String,
    pub event_id: EventId,
    pub event_type: EventType,
    pub status: DeliveryStatus,
    pub attempts: Vec<DeliveryAttempt>,
    /// Not before this time is the next attempt due.
    #[serde(default)]
    pub next_attempt_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub version: u64,
}

impl Delivery {
    /// The delivery id for an event and a destination: the same inputs always give the same
    /// id, so a retried dispatch can never create a second delivery.
    pub fn id_for(event: &EventId, endpoint: Option<&WebhookEndpointId>) -> DeliveryId {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(event.as_str().as_bytes());
        h.update(b"|");
        h.update(
            endpoint
                .map(|e| e.as_str())
                .unwrap_or("order_url")
                .as_bytes(),
        );
        DeliveryId::from_digest(&h.finalize())
    }

    pub fn api_view(&self) -> Value {
        json!({
            "id": self.id,
            "object": "webhook_delivery",
            "endpoint_id": self.endpoint_id,
            "url": self.url,
            "event_id": self.event_id,
            "event_type": self.event_type,
            "status": self.status,
            "attempts": self.attempts,
            "next_attempt_at": self.next_attempt_at,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_ids_are_deterministic_per_event_and_destination() {
        let ev = EventId::generate();
        let we = WebhookEndpointId::generate();
        let a = Delivery::id_for(&ev, Some(&we));
        assert_eq!(a, Delivery::id_for(&ev, Some(&we)));
        assert_ne!(a, Delivery::id_for(&ev, None));
        assert_ne!(a, Delivery::id_for(&EventId::generate(), Some(&we)));
        assert_eq!(DeliveryId::parse(a.as_str()).unwrap(), a);
    }
}
