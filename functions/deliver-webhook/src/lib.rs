//! SQS → one webhook attempt per message. Signs per Standard Webhooks (`webhook-id` stable
//! across retries, `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256>` for
//! every secret in use), posts with a 10 s timeout, and records the attempt (status,
//! latency, first 1 KB of the response, of which no more is read) in the delivery log. The
//! messages of a batch are sent concurrently, at most [`CONCURRENCY`] at a time.
//!
//! 2xx: delivered. 410: the endpoint is disabled. Anything else: retried on the schedule in
//! `payorders::webhooks` (`Retry-After` honoured) until 3 days have passed, then failed. An
//! endpoint failing for 3 days in a row is disabled with `webhook_endpoint.disabled`.
//! Each attempt is leased with a versioned write first, so a redelivered message cannot
//! send it twice.

#[cfg(feature = "aws")]
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
#[cfg(feature = "aws")]
use futures::StreamExt;
#[cfg(feature = "aws")]
use lambda_http::LambdaEvent;
use payorders::auth::MasterKey;
use payorders::queue::Outcome;
#[cfg(feature = "aws")]
use payorders::queue::SqsQueue;
use payorders::store::{Store, StoreError};
use payorders::webhooks::{self, DeliveryMessage, UrlRefusal};
use payorders::*;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a lease on an attempt lasts: longer than the 10 s request timeout.
const LEASE_SECS: i64 = 60;
const TIMEOUT: Duration = Duration::from_secs(10);
/// How much of a response is read and kept in the delivery log.
pub const RESPONSE_LOG_BYTES: usize = 1024;
/// How many deliveries of one SQS batch are in flight at once.
pub const CONCURRENCY: usize = 8;

pub struct Deps {
    pub store: Arc<dyn Store>,
    pub master: MasterKey,
    /// Multiplies retry delays: 1 in AWS; the local host shortens them.
    pub retry_scale: f64,
    /// Lets test-mode deliveries reach loopback addresses (a receiver on the developer's
    /// machine). Only the local host sets it: in AWS a test-mode URL that resolves to
    /// loopback is refused like any private address.
    pub allow_loopback: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    #[error("malformed message: {0}")]
    Poison(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn scaled(secs: u64, scale: f64) -> u64 {
    ((secs as f64 * scale).ceil() as u64).max(1)
}

/// Processes one queue message ([`DeliveryMessage`]).
#[tracing::instrument(skip_all)]
pub async fn process(deps: &Deps, body: &str) -> Result<Outcome, DeliverError> {
    let id = DeliveryMessage::parse(body)
        .map_err(|_| DeliverError::Poison(body.chars().take(200).collect()))?
        .delivery_id;
    let Some(delivery) = deps.store.get_delivery(&id).await? else {
        tracing::warn!(delivery_id = %id, "no such delivery");
        return Ok(Outcome::Done);
    };
    if delivery.status != DeliveryStatus::Pending {
        return Ok(Outcome::Done);
    }
    let now = Timestamp::now();
    if let Some(at) = delivery.next_attempt_at {
        let wait = now.seconds_until(at);
        if wait > 0 {
            return Ok(Outcome::RetryAfter(wait as u64));
        }
    }

    // Lease the attempt: whoever writes this version first sends it.
    let mut lease = delivery.clone();
    lease.next_attempt_at = Some(now.plus_seconds(LEASE_SECS));
    lease.version += 1;
    lease.updated_at = now;
    match deps.store.update_delivery(&lease, delivery.version).await {
        Ok(()) => {}
        Err(StoreError::VersionConflict { .. }) => return Ok(Outcome::Done),
        Err(e) => return Err(e.into()),
    }
    attempt(deps, lease, now).await
}

/// Who the delivery goes to and with which secrets, or why it cannot go at all.
enum Destination {
    Send {
        endpoint: Option<Box<WebhookEndpoint>>,
        secrets: Vec<String>,
    },
    Drop(String),
}

async fn destination(
    deps: &Deps,
    d: &Delivery,
    now: Timestamp,
) -> Result<Destination, DeliverError> {
    let open = |context: &str, sealed: &str| deps.master.open(context, sealed).ok();
    match &d.endpoint_id {
        Some(eid) => {
            let Some(ep) = deps.store.get_endpoint(&d.organization_id, eid).await? else {
                return Ok(Destination::Drop("the endpoint was deleted".into()));
            };
            if !ep.enabled {
                return Ok(Destination::Drop("the endpoint is disabled".into()));
            }
            let context = webhooks::endpoint_secret_context(&ep.id);
            let secrets = ep
                .signing_secrets(now)
                .filter_map(|s| open(&context, &s.sealed))
                .collect();
            Ok(Destination::Send {
                endpoint: Some(Box::new(ep)),
                secrets,
            })
        }
        None => {
            let mode = KeyMode::of(d.livemode);
            let sealed = deps
                .store
                .get_organization(&d.organization_id)
                .await?
                .and_then(|o| o.settings(mode).order_webhook_secret_sealed.clone());
            match sealed.and_then(|s| {
                open(
                    &webhooks::order_secret_context(&d.organization_id, mode),
                    &s,
                )
            }) {
                Some(secret) => Ok(Destination::Send {
                    endpoint: None,
                    secrets: vec![secret],
                }),
                None => Ok(Destination::Drop(
                    "the organization has no order webhook secret".into(),
                )),
            }
        }
    }
}

async fn attempt(deps: &Deps, mut d: Delivery, now: Timestamp) -> Result<Outcome, DeliverError> {
    let number = d.attempts.len() as u32 + 1;
    let (endpoint, secrets) = match destination(deps, &d, now).await? {
        Destination::Send { endpoint, secrets } if !secrets.is_empty() => (endpoint, secrets),
        Destination::Send { .. } => {
            return finish_failed(deps, d, number, now, "no signing secret opens".into()).await;
        }
        Destination::Drop(why) => return finish_failed(deps, d, number, now, why).await,
    };
    let Some(event) = deps.store.get_event(&d.event_id).await? else {
        return finish_failed(deps, d, number, now, "the event no longer exists".into()).await;
    };
    let body = payorders::http::render::event(&event).to_string();

    let started = Instant::now();
    let result = send(&d, &secrets, &body, now, deps.allow_loopback).await;
    let latency_ms = started.elapsed().as_millis() as u64;
    let (status_code, error, response_body, retry_after) = match result {
        Ok(r) => (Some(r.status), None, Some(r.body), r.retry_after),
        Err(SendError::Refused(why)) => {
            // The destination is not allowed (it may have started resolving to a private
            // address): never retried.
            tracing::warn!(delivery_id = %d.id, reason = %why, "destination refused");
            return finish_failed(deps, d, number, now, format!("destination refused: {why}"))
                .await;
        }
        Err(SendError::Transport(e)) => (None, Some(e), None, None),
    };
    tracing::info!(
        delivery_id = %d.id, attempt = number, status = ?status_code, latency_ms, error = ?error,
        "webhook attempt"
    );
    d.attempts.push(DeliveryAttempt {
        number,
        at: now,
        status_code,
        error,
        latency_ms,
        response_body,
    });
    d.updated_at = Timestamp::now();
    let expected = d.version;
    d.version += 1;

    let ok = status_code.is_some_and(|s| (200..300).contains(&s));
    let gone = status_code == Some(410);
    let outcome = if ok {
        d.status = DeliveryStatus::Delivered;
        d.next_attempt_at = None;
        Outcome::Done
    } else if gone {
        d.status = DeliveryStatus::Failed;
        d.next_attempt_at = None;
        Outcome::Done
    } else {
        match webhooks::next_retry_delay(
            number,
            d.created_at.seconds_until(now),
            retry_after,
            webhooks::jitter(),
        ) {
            Some(delay) => {
                let delay = scaled(delay, deps.retry_scale);
                d.next_attempt_at = Some(now.plus_seconds(delay as i64));
                Outcome::RetryAfter(delay)
            }
            None => {
                d.status = DeliveryStatus::Failed;
                d.next_attempt_at = None;
                Outcome::Done
            }
        }
    };
    match deps.store.update_delivery(&d, expected).await {
        Ok(()) => {}
        // The lease ran out and another worker took over: its record wins.
        Err(StoreError::VersionConflict { .. }) => return Ok(Outcome::Done),
        Err(e) => return Err(e.into()),
    }
    if let Some(ep) = endpoint {
        record_endpoint_health(deps, *ep, ok, gone, now).await?;
    }
    Ok(outcome)
}

async fn finish_failed(
    deps: &Deps,
    mut d: Delivery,
    number: u32,
    now: Timestamp,
    why: String,
) -> Result<Outcome, DeliverError> {
    d.attempts.push(DeliveryAttempt {
        number,
        at: now,
        status_code: None,
        error: Some(why),
        latency_ms: 0,
        response_body: None,
    });
    d.status = DeliveryStatus::Failed;
    d.next_attempt_at = None;
    let expected = d.version;
    d.version += 1;
    d.updated_at = Timestamp::now();
    match deps.store.update_delivery(&d, expected).await {
        Ok(()) | Err(StoreError::VersionConflict { .. }) => Ok(Outcome::Done),
        Err(e) => Err(e.into()),
    }
}

/// Success clears an endpoint's failing streak; a 410, or failing for 3 days in a row,
/// disables it (with `webhook_endpoint.disabled`).
async fn record_endpoint_health(
    deps: &Deps,
    ep: WebhookEndpoint,
    ok: bool,
    gone: bool,
    now: Timestamp,
) -> Result<(), DeliverError> {
    let mut next = ep.clone();
    if ok {
        if ep.failing_since.is_none() {
            return Ok(());
        }
        next.failing_since = None;
    } else {
        let since = ep.failing_since.unwrap_or(now);
        next.failing_since = Some(since);
        if gone {
            next.enabled = false;
            next.disabled_reason = Some("the endpoint answered 410 Gone".into());
        } else if since.seconds_until(now) >= webhooks::DISABLE_AFTER_FAILING_SECS {
            next.enabled = false;
            next.disabled_reason = Some("every delivery failed for 3 days".into());
        } else if ep.failing_since.is_some() {
            return Ok(());
        }
    }
    next.version += 1;
    next.updated_at = now;
    let event = (!next.enabled && ep.enabled)
        .then(|| Event::for_endpoint(&next, EventType::WebhookEndpointDisabled, now));
    match deps
        .store
        .update_endpoint(&next, ep.version, event.as_ref())
        .await
    {
        // Someone else changed it meanwhile (an update, another delivery): theirs stands.
        Ok(()) | Err(StoreError::VersionConflict { .. }) | Err(StoreError::NotFound) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

struct Sent {
    status: u16,
    body: String,
    retry_after: Option<u64>,
}

enum SendError {
    Refused(UrlRefusal),
    Transport(String),
}

async fn send(
    d: &Delivery,
    secrets: &[String],
    body: &str,
    now: Timestamp,
    allow_loopback: bool,
) -> Result<Sent, SendError> {
    let url = webhooks::check_url(&d.url, d.livemode).map_err(SendError::Refused)?;
    let addrs = webhooks::resolve_destination(&url, !d.livemode && allow_loopback)
        .await
        .map_err(SendError::Refused)?;
    let host = url.host_str().unwrap_or_default().to_owned();
    // Connect only to the addresses just checked, and never follow redirects: either could
    // otherwise lead the request to a private address.
    let client = payorders::net::http_client()
        .timeout(TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .resolve_to_addrs(&host, &addrs)
        .user_agent("PayOrders-Webhooks/1")
        .build()
        .map_err(|e| SendError::Transport(e.to_string()))?;
    let ts = now.unix();
    let signature =
        webhooks::signature_header(secrets.iter().map(String::as_str), d.id.as_str(), ts, body);
    let resp = client
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", d.id.as_str())
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", signature)
        .body(body.to_owned())
        .send()
        .await
        .map_err(|e| {
            SendError::Transport(if e.is_timeout() {
                "timed out after 10 s".into()
            } else {
                e.to_string()
            })
        })?;
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let excerpt = read_capped(resp, RESPONSE_LOG_BYTES).await;
    Ok(Sent {
        status,
        body: String::from_utf8_lossy(&excerpt).into_owned(),
        retry_after,
    })
}

/// The first `limit` bytes of a response body, reading no further: a huge or endless body
/// costs neither memory nor time (the rest is left unread and the connection dropped). A
/// body that fails midway keeps what arrived.
async fn read_capped(mut resp: reqwest::Response, limit: usize) -> Vec<u8> {
    let mut out = Vec::new();
    while out.len() < limit {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                let take = chunk.len().min(limit - out.len());
                out.extend_from_slice(&chunk[..take]);
            }
            Ok(None) | Err(_) => break,
        }
    }
    out
}

#[cfg(feature = "aws")]
/// The SQS handler: an outcome per message, up to [`CONCURRENCY`] messages at a time (one
/// slow endpoint does not hold up the rest of the batch). `RetryAfter` keeps the message,
/// invisible until the next attempt is due; a failure leaves it to SQS's redrive (and the
/// DLQ). Each kept message is reported as a batch item failure, in batch order.
pub async fn handler(
    deps: &Deps,
    queue: &SqsQueue,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, lambda_http::Error> {
    // Unordered, so a finished message frees its slot at once; reported in batch order.
    let mut kept: Vec<(usize, Option<String>)> =
        futures::stream::iter(event.payload.records.into_iter().enumerate())
            .map(|(i, record)| async move { (i, handle_record(deps, queue, record).await) })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
    kept.sort_by_key(|(i, _)| *i);
    let mut response = SqsBatchResponse::default();
    for id in kept.into_iter().filter_map(|(_, id)| id) {
        let mut f = BatchItemFailure::default();
        f.item_identifier = id;
        response.batch_item_failures.push(f);
    }
    Ok(response)
}

#[cfg(feature = "aws")]
/// One message of a batch: its id if SQS should keep it.
async fn handle_record(
    deps: &Deps,
    queue: &SqsQueue,
    record: aws_lambda_events::event::sqs::SqsMessage,
) -> Option<String> {
    let id = record.message_id.clone().unwrap_or_default();
    let keep = match process(deps, record.body.as_deref().unwrap_or_default()).await {
        Ok(Outcome::Done) => false,
        Ok(Outcome::RetryAfter(secs)) => {
            if let Some(receipt) = &record.receipt_handle
                && let Err(e) = queue.retry_after(receipt, secs).await
            {
                tracing::warn!(error = %e, "could not delay the message; SQS's default visibility applies");
            }
            true
        }
        Err(e) => {
            tracing::error!(error = %e, message_id = %id, "delivery failed to process");
            true
        }
    };
    keep.then_some(id)
}

impl Deps {
    /// As in AWS: the real retry schedule, and public destinations only, whatever the mode.
    pub fn new(store: Arc<dyn Store>, master: MasterKey) -> Self {
        Self {
            store,
            master,
            retry_scale: 1.0,
            allow_loopback: false,
        }
    }

    /// For the Lambda function: the store, the master key and the webhooks queue (whose
    /// messages this function delays for retries).
    #[cfg(feature = "aws")]
    pub async fn from_env() -> Result<(Self, SqsQueue), lambda_http::Error> {
        let sdk = payorders::config::aws_sdk_config().await;
        let s = payorders::runtime::Services::from_sdk(&sdk).await?;
        let url = std::env::var("PAYORDERS_WEBHOOKS_QUEUE_URL")
            .map_err(|_| "PAYORDERS_WEBHOOKS_QUEUE_URL is not set")?;
        let queue = SqsQueue::new(aws_sdk_sqs::Client::new(&sdk), url);
        Ok((Self::new(s.store.clone(), s.master()?.clone()), queue))
    }
}
