//! The webhook delivery state machine: a delivery is made pending for one event and one
//! destination, each attempt is leased with a versioned write (so a redelivered message
//! cannot send it twice), an attempt's outcome makes it delivered, retried on the schedule
//! or failed, and the outcome moves the endpoint's health (a failing streak; disabled after
//! a 410 or 3 days of failures, with `webhook_endpoint.disabled`).
//!
//! Dispatch does not write deliveries: its message ([`DeliveryMessage::First`]) says what
//! to deliver, and the first attempt's lease creates the record, conditional on there being
//! none. So one delivery that succeeds at once is written twice (the lease, the outcome).
//! A test ping goes the same way, and a redelivery on request ([`DeliveryMessage::Again`])
//! is made pending by the lease of its attempt: no producer writes a delivery before it
//! sends its message, so none can be left pending with no message to attempt it.
//!
//! The transitions are pure functions; [`attempt_delivery`] runs one queue message through
//! them against the store. Sending the request is the caller's ([`WebhookSender`]):
//! `deliver-webhook` posts it over HTTP.

use super::{DeliveryMessage, FirstAttempt, UrlRefusal};
use crate::auth::MasterKey;
use crate::model::{
    Delivery, DeliveryAttempt, DeliveryStatus, Event, EventType, KeyMode, Timestamp,
    WebhookEndpoint, WebhookEndpointId,
};
use crate::queue::Outcome;
use crate::store::{Store, StoreError, StoreResult, Versioned};
use async_trait::async_trait;

/// How long a lease on an attempt lasts: longer than the longest timeout an endpoint may
/// choose ([`crate::model::MAX_TIMEOUT_SECS`]).
pub const LEASE_SECS: i64 = 60;
/// How much of a response is read and kept in the delivery log.
pub const RESPONSE_LOG_BYTES: usize = 1024;

// ------------------------------------------------------------------ dispatch

/// A new delivery of `event` to one destination (an endpoint, or the order's own
/// `webhook_url` when `endpoint_id` is `None`), pending its first attempt. Its id is derived
/// from the two, so a retried dispatch finds it instead of making another.
pub fn pending_delivery(
    event: &Event,
    endpoint_id: Option<WebhookEndpointId>,
    url: String,
    now: Timestamp,
) -> Delivery {
    Delivery {
        id: Delivery::id_for(&event.id, endpoint_id.as_ref()),
        organization_id: event.organization_id.clone(),
        livemode: event.livemode,
        endpoint_id,
        url,
        event_id: event.id.clone(),
        event_type: event.event_type,
        status: DeliveryStatus::Pending,
        attempts: Vec::new(),
        next_attempt_at: None,
        created_at: now,
        updated_at: now,
        version: 1,
    }
}

/// The first attempt of a delivery dispatch decided on ([`FirstAttempt`]), to `url` (its
/// destination's, as the store has it), leased as it is created: pending, version 1,
/// created when dispatched, not due again before the lease ends. Written only where no
/// record of it exists.
pub fn first_lease(event: &Event, first: &FirstAttempt, url: String, now: Timestamp) -> Delivery {
    let d = pending_delivery(event, first.endpoint_id.clone(), url, first.dispatched_at);
    under_lease(d, now)
}

/// `d` leased for an attempt starting `now`: written `now`, not due again before the lease
/// ends. The one shape of a lease ([`first_lease`], [`lease_attempt`],
/// [`redelivery_lease`]), which [`attempt_under_way`] recognises.
fn under_lease(mut d: Delivery, now: Timestamp) -> Delivery {
    d.next_attempt_at = Some(now.plus_seconds(LEASE_SECS));
    d.updated_at = now;
    d
}

/// `d` addressed to where its next attempt goes. A delivery to an endpoint goes to the
/// endpoint's URL as it stands at that attempt (`endpoint`, read for it): a merchant who
/// moves an endpoint off a host moves its retries and redeliveries with it, and the record's
/// `url` shows where the latest attempt went. A delivery to an order's own `webhook_url`
/// (no endpoint) keeps the URL it was made with; so does one whose endpoint is gone, or is
/// not `endpoint`.
pub fn addressed(mut d: Delivery, endpoint: Option<&WebhookEndpoint>) -> Delivery {
    if let Some(ep) = endpoint
        && d.endpoint_id.as_ref() == Some(&ep.id)
    {
        d.url.clone_from(&ep.url);
    }
    d
}

/// A delivery sent again on request: pending, due at once, its attempts kept (what the
/// request answers; its message's lease writes [`redelivery_lease`]).
pub fn redelivery(d: &Delivery, now: Timestamp) -> Delivery {
    let mut next = d.next_version();
    next.status = DeliveryStatus::Pending;
    next.next_attempt_at = None;
    next.updated_at = now;
    next
}

/// A delivery sent again on request, leased for that attempt in the same write: pending,
/// its attempts kept, the next version, not due again before the lease ends.
pub fn redelivery_lease(d: &Delivery, now: Timestamp) -> Delivery {
    under_lease(redelivery(d, now), now)
}

/// Seconds until the lease of an attempt under way ends, if `d` is leased at `now`: pending,
/// due again exactly [`LEASE_SECS`] after it was last written ([`under_lease`]). Only a
/// lease writes that (an attempt's outcome counts its retry from the attempt's start and is
/// written at its end), so a delivery waiting for a scheduled retry is not taken for one
/// being attempted.
pub fn attempt_under_way(d: &Delivery, now: Timestamp) -> Option<u64> {
    let ends = d.next_attempt_at?;
    let leased =
        d.status == DeliveryStatus::Pending && ends == d.updated_at.plus_seconds(LEASE_SECS);
    let left = now.seconds_until_ceil(ends);
    (leased && left > 0).then_some(left as u64)
}

// ------------------------------------------------------------------ one attempt

/// After a lease's conditional write was refused (another worker's record stands), with
/// the delivery as now stored, what the message does: done when the delivery is finished,
/// back when the other worker's lease ends (or at once, in a second, when it has ended or
/// the record is gone).
pub fn after_lost_lease(stored: Option<&Delivery>, now: Timestamp) -> Outcome {
    match stored.map(|d| lease_attempt(d, now)) {
        Some(Lease::Finished) => Outcome::Done,
        Some(Lease::NotDue(secs)) => Outcome::RetryAfter(secs),
        Some(Lease::Take(_)) | None => Outcome::RetryAfter(1),
    }
}

/// What a queue message finds its delivery ready for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lease {
    /// Delivered or failed already: nothing to do.
    Finished,
    /// The next attempt is due in this many seconds.
    NotDue(u64),
    /// Due: write this lease (over the version read); whoever writes it first attempts.
    Take(Delivery),
}

/// Leases the next attempt of `d` at `now`, if it is due.
pub fn lease_attempt(d: &Delivery, now: Timestamp) -> Lease {
    if d.status != DeliveryStatus::Pending {
        return Lease::Finished;
    }
    if let Some(at) = d.next_attempt_at {
        // Rounded up: a message back a moment early is told to wait, never let through a
        // fraction of a second before another worker's lease or a `Retry-After` ends.
        let wait = now.seconds_until_ceil(at);
        if wait > 0 {
            return Lease::NotDue(wait as u64);
        }
    }
    Lease::Take(under_lease(d.next_version(), now))
}

/// What the endpoint answered, as the sender saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// An HTTP answer; `body` is at most the first [`RESPONSE_LOG_BYTES`], `retry_after` its
    /// `Retry-After` in seconds.
    Answered {
        status: u16,
        body: String,
        retry_after: Option<u64>,
    },
    /// No answer: the connection failed or timed out.
    NoAnswer(String),
}

/// One attempt, as it went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempted {
    pub response: Response,
    /// When the attempt started (its time in the log).
    pub at: Timestamp,
    /// When it ended (the delivery's `updated_at`).
    pub ended: Timestamp,
    pub latency_ms: u64,
}

/// How an attempt counts for its endpoint's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// A 2xx: the failing streak ends.
    Succeeded,
    /// A 410: the endpoint asked to be disabled.
    Gone,
    /// Anything else: the streak goes on.
    Failed,
}

/// How retries are timed: the schedule scaled (1 in AWS; the local host shortens it) and
/// spread by `jitter` in `[0, 1)`, and how many there may be (the endpoint's
/// `max_retries`; `None`: as many as fit in 3 days).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryTiming {
    pub scale: f64,
    pub jitter: f64,
    pub max_retries: Option<u32>,
}

/// What an attempt made of the delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct AfterAttempt {
    /// Write it over the leased version.
    pub delivery: Delivery,
    /// What the queue does with the message.
    pub outcome: Outcome,
    pub health: Health,
}

/// The leased delivery after an attempt: a 2xx delivers it, a 410 fails it, anything else
/// is retried on the schedule (`Retry-After` honoured) until 3 days have passed or the
/// endpoint's `max_retries` are spent, then fails.
pub fn after_attempt(leased: &Delivery, attempted: Attempted, retry: RetryTiming) -> AfterAttempt {
    let number = next_attempt_number(leased);
    let (status_code, error, response_body, retry_after) = match attempted.response {
        Response::Answered {
            status,
            body,
            retry_after,
        } => (Some(status), None, Some(body), retry_after),
        Response::NoAnswer(e) => (None, Some(e), None, None),
    };
    let mut d = leased.next_version();
    d.attempts.push(DeliveryAttempt {
        number,
        at: attempted.at,
        status_code,
        error,
        latency_ms: attempted.latency_ms,
        response_body,
    });
    d.updated_at = attempted.ended;
    let health = match status_code {
        Some(s) if (200..300).contains(&s) => Health::Succeeded,
        Some(410) => Health::Gone,
        _ => Health::Failed,
    };
    let retry_in = match health {
        Health::Succeeded | Health::Gone => None,
        Health::Failed if retry.max_retries.is_some_and(|max| number > max) => None,
        Health::Failed => super::next_retry_delay(
            number,
            d.created_at.seconds_until(attempted.at),
            retry_after,
            retry.jitter,
        )
        .map(|delay| scaled(delay, retry.scale)),
    };
    let outcome = match (health, retry_in) {
        (Health::Failed, Some(delay)) => {
            d.next_attempt_at = Some(attempted.at.plus_seconds(delay as i64));
            Outcome::RetryAfter(delay)
        }
        (health, _) => {
            d.status = if health == Health::Succeeded {
                DeliveryStatus::Delivered
            } else {
                DeliveryStatus::Failed
            };
            d.next_attempt_at = None;
            Outcome::Done
        }
    };
    AfterAttempt {
        delivery: d,
        outcome,
        health,
    }
}

/// The leased delivery failed for good without a send (`why`: its destination was deleted
/// or refused, no secret opens, the event is gone): the attempt is logged with the reason.
pub fn fail_delivery(leased: &Delivery, at: Timestamp, ended: Timestamp, why: String) -> Delivery {
    let mut d = leased.next_version();
    d.attempts.push(DeliveryAttempt {
        number: next_attempt_number(leased),
        at,
        status_code: None,
        error: Some(why),
        latency_ms: 0,
        response_body: None,
    });
    d.status = DeliveryStatus::Failed;
    d.next_attempt_at = None;
    d.updated_at = ended;
    d
}

fn next_attempt_number(d: &Delivery) -> u32 {
    d.attempts.len() as u32 + 1
}

fn scaled(secs: u64, scale: f64) -> u64 {
    ((secs as f64 * scale).ceil() as u64).max(1)
}

/// The endpoint after an attempt, if that changes it (with `webhook_endpoint.disabled`
/// when it disables it): a success ends a failing run, and so does a day with no failure
/// ([`super::FAILING_RUN_GAP_SECS`]); a 410, or failing for
/// [`super::DISABLE_AFTER_FAILING_SECS`], disables it.
pub fn endpoint_after_attempt(
    ep: &WebhookEndpoint,
    health: Health,
    now: Timestamp,
) -> Option<(WebhookEndpoint, Option<Event>)> {
    let mut next = ep.next_version();
    if health == Health::Succeeded {
        ep.failing_since?;
        next.failing_since = None;
        next.last_failed_at = None;
    } else {
        // (A run recorded before `last_failed_at` was kept counts as unbroken.)
        let quiet_since = |t: Timestamp| t.seconds_until(now) >= super::FAILING_RUN_GAP_SECS;
        let since = match ep.failing_since {
            Some(since) if !ep.last_failed_at.is_some_and(quiet_since) => since,
            _ => now,
        };
        next.failing_since = Some(since);
        next.last_failed_at = Some(if ep.failing_since == Some(since) {
            Timestamp::noted(ep.last_failed_at, now, super::LAST_FAILED_GRAIN_SECS)
        } else {
            now
        });
        if health == Health::Gone {
            next.enabled = false;
            next.disabled_reason = Some("the endpoint answered 410 Gone".into());
        } else if since.seconds_until(now) >= super::DISABLE_AFTER_FAILING_SECS {
            next.enabled = false;
            next.disabled_reason = Some("every delivery failed for 3 days".into());
        } else if (next.failing_since, next.last_failed_at) == (ep.failing_since, ep.last_failed_at)
        {
            return None;
        }
    }
    next.updated_at = now;
    let event = (!next.enabled && ep.enabled)
        .then(|| Event::for_endpoint(&next, EventType::WebhookEndpointDisabled, now));
    Some((next, event))
}

// ------------------------------------------------------------------ running it

/// A signed webhook request (Standard Webhooks headers), ready to post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookRequest {
    pub url: String,
    /// Live-mode URLs must use https; test mode may use http.
    pub livemode: bool,
    /// `webhook-id`: the delivery's id, stable across retries.
    pub webhook_id: String,
    /// `webhook-timestamp`, epoch seconds.
    pub timestamp: i64,
    /// `webhook-signature`: `v1,<base64>` for every secret in use.
    pub signature: String,
    /// The event as JSON.
    pub body: String,
    /// How long to wait for the answer.
    pub timeout_secs: u32,
    /// When not empty, connect only to resolved addresses inside these.
    pub allowed_ips: Vec<ipnet::IpNet>,
}

/// The HTTP side of a delivery: posts a request to its URL, connecting only to addresses
/// the SSRF rules and the request's `allowed_ips` allow (a refusal is never retried),
/// within its `timeout_secs`, reading at most [`RESPONSE_LOG_BYTES`] of the answer.
#[async_trait]
pub trait WebhookSender: Send + Sync {
    async fn post(&self, request: &WebhookRequest) -> Result<Response, UrlRefusal>;
}

/// Who a delivery goes to with which secrets, or why it cannot go at all.
enum Destination {
    Send {
        endpoint: Option<Box<WebhookEndpoint>>,
        secrets: Vec<String>,
    },
    Drop(String),
}

/// Runs one attempt of the delivery a queue message is for, if one is due: lease, send,
/// record the attempt and the endpoint's health. Returns what the queue does with the
/// message.
#[tracing::instrument(skip_all, fields(delivery_id = %message.delivery_id()))]
pub async fn attempt_delivery(
    store: &dyn Store,
    master: &MasterKey,
    retry_scale: f64,
    sender: &dyn WebhookSender,
    message: &DeliveryMessage,
) -> StoreResult<Outcome> {
    let now = Timestamp::now();
    let Leased {
        delivery: leased,
        event,
        endpoint,
    } = match take_lease(store, message, now).await? {
        Ok(taken) => taken,
        Err(outcome) => return Ok(outcome),
    };

    let destination = delivery_destination(store, master, &leased, endpoint, now).await?;
    let (endpoint, secrets) = match destination {
        Destination::Send { endpoint, secrets } if !secrets.is_empty() => (endpoint, secrets),
        Destination::Send { .. } => {
            return finish_failed(store, &leased, now, "no signing secret opens".into()).await;
        }
        Destination::Drop(why) => return finish_failed(store, &leased, now, why).await,
    };
    let event = match event {
        Some(event) => Some(event),
        None => store.get_event(&leased.event_id).await?,
    };
    let Some(event) = event else {
        let why = "the event no longer exists".to_owned();
        return finish_failed(store, &leased, now, why).await;
    };
    let body = crate::http::render::event(&event).to_string();
    let options = endpoint
        .as_ref()
        .map(|ep| ep.options.clone())
        .unwrap_or_default();
    // The lease is addressed to the endpoint's URL as read for this attempt ([`addressed`]),
    // the one whose secrets sign it and whose `allowed_ips` apply; the sender checks that
    // URL against the SSRF rules before it connects.
    let request = WebhookRequest {
        url: leased.url.clone(),
        livemode: leased.livemode,
        webhook_id: leased.id.to_string(),
        timestamp: now.unix(),
        signature: super::signature_header(
            secrets.iter().map(String::as_str),
            leased.id.as_str(),
            now.unix(),
            &body,
        ),
        body,
        timeout_secs: options.timeout_secs,
        allowed_ips: options.allowed_ips,
    };

    let started = std::time::Instant::now();
    let response = match sender.post(&request).await {
        Ok(response) => response,
        Err(why) => {
            // The destination is not allowed (it may have started resolving to a private
            // address): never retried.
            tracing::warn!(delivery_id = %leased.id, reason = %why, "destination refused");
            let why = format!("destination refused: {why}");
            return finish_failed(store, &leased, now, why).await;
        }
    };
    let latency_ms = started.elapsed().as_millis() as u64;
    let attempted = Attempted {
        response,
        at: now,
        ended: Timestamp::now(),
        latency_ms,
    };
    let retry = RetryTiming {
        scale: retry_scale,
        jitter: super::jitter(),
        max_retries: options.max_retries,
    };
    let after = after_attempt(&leased, attempted, retry);
    if let Some(a) = after.delivery.attempts.last() {
        tracing::info!(
            delivery_id = %leased.id, attempt = a.number, status = ?a.status_code, latency_ms,
            error = ?a.error, "webhook attempt"
        );
    }
    match store.update_delivery(&after.delivery, leased.version).await {
        Ok(()) => {}
        // The lease ran out and another worker took over: its record wins.
        Err(StoreError::VersionConflict { .. }) => return Ok(Outcome::Done),
        Err(e) => return Err(e),
    }
    if let Some(ep) = endpoint {
        record_endpoint_health(store, &ep, after.health, now).await?;
    }
    Ok(after.outcome)
}

/// A delivery leased for this attempt, with what was read to create it: its event when
/// the lease created the record, and its endpoint (read for every attempt of a delivery to
/// one; `None` when it is gone, or the delivery goes to an order's own `webhook_url`).
struct Leased {
    delivery: Delivery,
    event: Option<Event>,
    endpoint: Option<WebhookEndpoint>,
}

/// The delivery `message` is for, leased for this attempt, or what the queue does with the
/// message instead. A stored delivery is leased over the version read: made pending again
/// for a redelivery asked of that very version ([`redelivery_lease`]), else as it stands
/// (so a copy of a redelivery, or one overtaken by another attempt, sends nothing more than
/// the delivery's own state calls for), addressed to its endpoint's URL as it stands now
/// ([`addressed`]; the endpoint is read for that, and signs the attempt); a first attempt
/// with no record yet creates it leased ([`first_lease`]), to its destination as the store
/// has it: the message's endpoint looked up in its event's organization (so no message can
/// send one organization's event to another's endpoint), or the order's own `webhook_url`
/// in the event. Either write is conditional, so of two copies of a message (SQS delivers
/// at least once; a retried dispatch sends again) only one attempts.
async fn take_lease(
    store: &dyn Store,
    message: &DeliveryMessage,
    now: Timestamp,
) -> StoreResult<Result<Leased, Outcome>> {
    let id = message.delivery_id();
    let (leased, won, event, endpoint) = match (store.get_delivery(&id).await?, message) {
        (Some(delivery), message) => {
            // Never over an attempt under way (its sender would not know, and two requests
            // with one webhook-id would go at once): the message waits for it like any copy.
            let asked_again = matches!(
                message,
                DeliveryMessage::Again { version, .. } if *version == delivery.version
            ) && attempt_under_way(&delivery, now).is_none();
            let leased = if asked_again {
                redelivery_lease(&delivery, now)
            } else {
                match lease_attempt(&delivery, now) {
                    Lease::Finished => return Ok(Err(Outcome::Done)),
                    Lease::NotDue(secs) => return Ok(Err(Outcome::RetryAfter(secs))),
                    Lease::Take(leased) => leased,
                }
            };
            // Its endpoint as it stands: the URL this attempt goes to (the merchant may have
            // moved it since the last attempt), its secrets and options.
            let endpoint = match &delivery.endpoint_id {
                Some(eid) => store.get_endpoint(&delivery.organization_id, eid).await?,
                None => None,
            };
            let leased = addressed(leased, endpoint.as_ref());
            let won = match store.update_delivery(&leased, delivery.version).await {
                Ok(()) => true,
                Err(StoreError::VersionConflict { .. }) => false,
                Err(e) => return Err(e),
            };
            (leased, won, None, endpoint)
        }
        (None, DeliveryMessage::Attempt(_) | DeliveryMessage::Again { .. }) => {
            tracing::warn!(delivery_id = %id, "no such delivery");
            return Ok(Err(Outcome::Done));
        }
        (None, DeliveryMessage::First(first)) => {
            let Some(event) = store.get_event(&first.event_id).await? else {
                // Dispatch reads events from the store's own stream, so only an event
                // removed since leaves nothing to deliver (and no organization to record a
                // failure under).
                tracing::warn!(delivery_id = %id, event_id = %first.event_id, "the event to deliver no longer exists");
                return Ok(Err(Outcome::Done));
            };
            let (url, endpoint) = match &first.endpoint_id {
                Some(eid) => match store.get_endpoint(&event.organization_id, eid).await? {
                    Some(ep) => (ep.url.clone(), Some(ep)),
                    None => {
                        // Deleted since dispatch (its delivery log went with it), or not
                        // this organization's.
                        tracing::warn!(delivery_id = %id, endpoint_id = %eid, "no such endpoint in the event's organization");
                        return Ok(Err(Outcome::Done));
                    }
                },
                None => match super::order_webhook_url(&event) {
                    Some(url) => (url.to_owned(), None),
                    None => {
                        tracing::warn!(delivery_id = %id, event_id = %event.id, "the event has no order webhook_url");
                        return Ok(Err(Outcome::Done));
                    }
                },
            };
            let leased = first_lease(&event, first, url, now);
            let won = store.create_delivery(&leased).await?;
            (leased, won, Some(event), endpoint)
        }
    };
    // Refused, another worker holds the delivery (a write of ours whose answer was lost
    // the store answers as written): this message comes back when that lease ends, to find
    // the delivery finished or take over from a worker that died (a copy of an SQS message
    // is the same message: deleting it here would end it for the worker that holds the
    // lease too).
    if !won {
        let stored = store.get_delivery(&id).await?;
        return Ok(Err(after_lost_lease(stored.as_ref(), now)));
    }
    Ok(Ok(Leased {
        delivery: leased,
        event,
        endpoint,
    }))
}

/// Who `d` goes to, with the secrets that sign it; `endpoint` is its endpoint as read for
/// this attempt ([`take_lease`]), `None` when it is gone.
async fn delivery_destination(
    store: &dyn Store,
    master: &MasterKey,
    d: &Delivery,
    endpoint: Option<WebhookEndpoint>,
    now: Timestamp,
) -> StoreResult<Destination> {
    let open = |context: &str, sealed: &str| master.open(context, sealed).ok();
    match &d.endpoint_id {
        // (The lease read the endpoint by the delivery's own endpoint id.)
        Some(_) => {
            let Some(ep) = endpoint else {
                return Ok(Destination::Drop("the endpoint was deleted".into()));
            };
            if !ep.enabled {
                return Ok(Destination::Drop("the endpoint is disabled".into()));
            }
            let context = super::endpoint_secret_context(&ep.id);
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
            let sealed = store
                .get_organization(&d.organization_id)
                .await?
                .and_then(|o| o.settings(mode).order_webhook_secret_sealed.clone());
            let context = super::order_secret_context(&d.organization_id, mode);
            match sealed.and_then(|s| open(&context, &s)) {
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

async fn finish_failed(
    store: &dyn Store,
    leased: &Delivery,
    now: Timestamp,
    why: String,
) -> StoreResult<Outcome> {
    let failed = fail_delivery(leased, now, Timestamp::now(), why);
    match store.update_delivery(&failed, leased.version).await {
        Ok(()) | Err(StoreError::VersionConflict { .. }) => Ok(Outcome::Done),
        Err(e) => Err(e),
    }
}

async fn record_endpoint_health(
    store: &dyn Store,
    ep: &WebhookEndpoint,
    health: Health,
    now: Timestamp,
) -> StoreResult<()> {
    let Some((next, event)) = endpoint_after_attempt(ep, health, now) else {
        return Ok(());
    };
    match store
        .update_endpoint(&next, ep.version, event.as_ref(), None)
        .await
    {
        // Someone else changed it meanwhile (an update, another delivery): theirs stands.
        Ok(()) | Err(StoreError::VersionConflict { .. }) | Err(StoreError::NotFound) => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::OrgId;
    use crate::webhooks::{
        DISABLE_AFTER_FAILING_SECS, FAILING_RUN_GAP_SECS, LAST_FAILED_GRAIN_SECS, RETRY_FOR_SECS,
    };

    fn t0() -> Timestamp {
        Timestamp::parse("2026-06-01T12:00:00Z").unwrap()
    }

    fn endpoint() -> WebhookEndpoint {
        let master = crate::testing::master_key();
        let org = OrgId::generate();
        crate::testing::endpoint(&org, false, "https://example.com/hooks", &master, t0()).0
    }

    /// A fresh delivery of an endpoint event to `ep`, and the event.
    fn delivery(ep: &WebhookEndpoint) -> (Delivery, Event) {
        let event = Event::for_endpoint(ep, EventType::WebhookEndpointDisabled, t0());
        let d = pending_delivery(&event, Some(ep.id.clone()), ep.url.clone(), t0());
        (d, event)
    }

    fn leased(d: &Delivery, now: Timestamp) -> Delivery {
        match lease_attempt(d, now) {
            Lease::Take(l) => l,
            other => panic!("not leased: {other:?}"),
        }
    }

    fn answered(status: u16, retry_after: Option<u64>) -> Response {
        Response::Answered {
            status,
            body: "ok".into(),
            retry_after,
        }
    }

    fn attempted(response: Response, at: Timestamp) -> Attempted {
        Attempted {
            response,
            at,
            ended: at.plus_seconds(1),
            latency_ms: 42,
        }
    }

    const AS_SCHEDULED: RetryTiming = RetryTiming {
        scale: 1.0,
        jitter: 0.5,
        max_retries: None,
    };

    #[test]
    fn a_new_delivery_is_pending_with_an_id_of_its_event_and_destination() {
        let ep = endpoint();
        let (d, event) = delivery(&ep);
        assert_eq!(d.id, Delivery::id_for(&event.id, Some(&ep.id)));
        assert_eq!(
            (d.status, d.version, d.attempts.len()),
            (DeliveryStatus::Pending, 1, 0)
        );
        assert_eq!(d.next_attempt_at, None);
        let order_url = pending_delivery(&event, None, "https://shop.example/h".into(), t0());
        assert_ne!(order_url.id, d.id);
    }

    #[test]
    fn a_first_lease_is_the_dispatched_delivery_leased_at_version_one() {
        let ep = endpoint();
        let (d, event) = delivery(&ep);
        let first = FirstAttempt {
            event_id: event.id.clone(),
            endpoint_id: Some(ep.id.clone()),
            dispatched_at: t0(),
        };
        let now = t0().plus_seconds(2);
        let l = first_lease(&event, &first, ep.url.clone(), now);
        assert_eq!(l.id, first.delivery_id());
        assert_eq!(l.id, d.id);
        assert_eq!(
            (l.status, l.version, l.attempts.len()),
            (DeliveryStatus::Pending, 1, 0)
        );
        assert_eq!((l.created_at, l.updated_at), (t0(), now));
        assert_eq!(l.next_attempt_at, Some(now.plus_seconds(LEASE_SECS)));
        assert_eq!(
            (&l.organization_id, l.livemode, l.event_type),
            (&event.organization_id, event.livemode, event.event_type)
        );
        // Another copy of the message, while the lease holds, is told to come back.
        assert_eq!(lease_attempt(&l, now), Lease::NotDue(LEASE_SECS as u64));
        // The attempt's outcome is written over version 1.
        let a = after_attempt(&l, attempted(answered(204, None), now), AS_SCHEDULED);
        assert_eq!(a.delivery.version, 2);
        assert_eq!(a.delivery.attempts.len(), 1);
        // The order's own URL is another delivery of the same event.
        let order_url = FirstAttempt {
            endpoint_id: None,
            ..first
        };
        assert_ne!(first_lease(&event, &order_url, ep.url, now).id, l.id);
    }

    #[test]
    fn a_refused_lease_comes_back_when_the_other_workers_lease_ends() {
        let (d, _) = delivery(&endpoint());
        let now = t0().plus_seconds(3);
        // Another worker's lease, taken a moment later: back when it ends.
        let theirs = leased(&d, now.plus_seconds(1));
        assert_eq!(
            after_lost_lease(Some(&theirs), now),
            Outcome::RetryAfter(LEASE_SECS as u64 + 1)
        );
        // Finished by the other worker: nothing left to do.
        let done = after_attempt(&theirs, attempted(answered(200, None), now), AS_SCHEDULED);
        assert_eq!(after_lost_lease(Some(&done.delivery), now), Outcome::Done);
        // Its lease ran out, or the record is gone: come back at once.
        let later = now.plus_seconds(LEASE_SECS + 5);
        assert_eq!(
            after_lost_lease(Some(&theirs), later),
            Outcome::RetryAfter(1)
        );
        assert_eq!(after_lost_lease(None, now), Outcome::RetryAfter(1));
    }

    #[test]
    fn only_a_due_pending_delivery_is_leased_and_the_lease_is_the_next_version() {
        let (d, _) = delivery(&endpoint());
        let now = t0().plus_seconds(3);
        let l = leased(&d, now);
        assert_eq!(l.version, d.version + 1);
        assert_eq!(l.next_attempt_at, Some(now.plus_seconds(LEASE_SECS)));
        assert_eq!(l.updated_at, now);
        assert_eq!((l.status, l.attempts.len()), (DeliveryStatus::Pending, 0));

        // Leased (or scheduled) for later: not due until then.
        assert_eq!(lease_attempt(&l, now), Lease::NotDue(LEASE_SECS as u64));
        let due = now.plus_seconds(LEASE_SECS);
        assert!(matches!(lease_attempt(&l, due), Lease::Take(_)));
        // A moment before it ends, the lease still holds: the wait rounds up, not down.
        let early = Timestamp::from_unix_micros(due.unix_micros() - 300_000).unwrap();
        assert_eq!(lease_attempt(&l, early), Lease::NotDue(1));

        for status in [DeliveryStatus::Delivered, DeliveryStatus::Failed] {
            let done = Delivery {
                status,
                ..d.clone()
            };
            assert_eq!(lease_attempt(&done, now), Lease::Finished);
        }
    }

    #[test]
    fn a_2xx_delivers_and_logs_the_attempt() {
        let (d, _) = delivery(&endpoint());
        let l = leased(&d, t0());
        let a = after_attempt(&l, attempted(answered(204, None), t0()), AS_SCHEDULED);
        assert_eq!(a.outcome, Outcome::Done);
        assert_eq!(a.health, Health::Succeeded);
        let d2 = &a.delivery;
        assert_eq!(d2.status, DeliveryStatus::Delivered);
        assert_eq!(d2.version, l.version + 1);
        assert_eq!(d2.next_attempt_at, None);
        assert_eq!(d2.updated_at, t0().plus_seconds(1));
        assert_eq!(
            d2.attempts,
            vec![DeliveryAttempt {
                number: 1,
                at: t0(),
                status_code: Some(204),
                error: None,
                latency_ms: 42,
                response_body: Some("ok".into()),
            }]
        );
    }

    #[test]
    fn max_retries_fails_the_delivery_once_its_retries_are_spent() {
        let (d, _) = delivery(&endpoint());
        let none = RetryTiming {
            max_retries: Some(0),
            ..AS_SCHEDULED
        };
        let l = leased(&d, t0());
        let a = after_attempt(&l, attempted(answered(500, None), t0()), none);
        assert_eq!((a.outcome, a.health), (Outcome::Done, Health::Failed));
        assert_eq!(a.delivery.status, DeliveryStatus::Failed);
        assert_eq!(a.delivery.next_attempt_at, None);

        // Two retries: the first and second failures are retried, the third is final.
        let two = RetryTiming {
            max_retries: Some(2),
            ..AS_SCHEDULED
        };
        let (mut current, mut at) = (d, t0());
        for expected in [
            Outcome::RetryAfter(5),
            Outcome::RetryAfter(300),
            Outcome::Done,
        ] {
            let l = leased(&current, at);
            let a = after_attempt(&l, attempted(answered(503, None), at), two);
            assert_eq!(a.outcome, expected);
            current = a.delivery;
            at = at.plus_seconds(400);
        }
        assert_eq!(current.status, DeliveryStatus::Failed);
        assert_eq!(current.attempts.len(), 3);
        // A success is never held back by the limit.
        let l = leased(&delivery(&endpoint()).0, t0());
        let ok = after_attempt(&l, attempted(answered(200, None), t0()), none);
        assert_eq!(ok.delivery.status, DeliveryStatus::Delivered);
    }

    #[test]
    fn a_410_fails_the_delivery_at_once() {
        let (d, _) = delivery(&endpoint());
        let l = leased(&d, t0());
        let a = after_attempt(&l, attempted(answered(410, None), t0()), AS_SCHEDULED);
        assert_eq!((a.outcome, a.health), (Outcome::Done, Health::Gone));
        assert_eq!(a.delivery.status, DeliveryStatus::Failed);
        assert_eq!(a.delivery.next_attempt_at, None);
    }

    #[test]
    fn failures_are_retried_on_the_schedule_until_three_days_have_passed() {
        let (d, _) = delivery(&endpoint());
        let l = leased(&d, t0());
        let a = after_attempt(&l, attempted(answered(500, None), t0()), AS_SCHEDULED);
        assert_eq!(
            (a.outcome, a.health),
            (Outcome::RetryAfter(5), Health::Failed)
        );
        assert_eq!(a.delivery.status, DeliveryStatus::Pending);
        assert_eq!(a.delivery.next_attempt_at, Some(t0().plus_seconds(5)));

        // The second failure (no answer this time) waits the schedule's second step.
        let at = t0().plus_seconds(5);
        let l2 = leased(&a.delivery, at);
        let timed_out = Response::NoAnswer("timed out after 10 s".into());
        let b = after_attempt(&l2, attempted(timed_out, at), AS_SCHEDULED);
        assert_eq!(b.outcome, Outcome::RetryAfter(300));
        let last = b.delivery.attempts.last().unwrap();
        assert_eq!(last.number, 2);
        assert_eq!(
            (
                last.status_code,
                last.error.as_deref(),
                last.response_body.as_deref()
            ),
            (None, Some("timed out after 10 s"), None)
        );

        // Retry-After is honoured; the local host's scale shortens waits, to at least 1 s.
        let c = after_attempt(&l, attempted(answered(429, Some(120)), t0()), AS_SCHEDULED);
        assert_eq!(c.outcome, Outcome::RetryAfter(120));
        let fast = RetryTiming {
            scale: 0.01,
            ..AS_SCHEDULED
        };
        let e = after_attempt(&l, attempted(answered(500, None), t0()), fast);
        assert_eq!(e.outcome, Outcome::RetryAfter(1));

        // Three days after the delivery was made, a failure is final.
        let late = t0().plus_seconds(RETRY_FOR_SECS);
        let f = after_attempt(&l, attempted(answered(500, None), late), AS_SCHEDULED);
        assert_eq!((f.outcome, f.health), (Outcome::Done, Health::Failed));
        assert_eq!(f.delivery.status, DeliveryStatus::Failed);
        assert_eq!(f.delivery.next_attempt_at, None);
    }

    #[test]
    fn a_delivery_that_cannot_go_fails_with_its_reason() {
        let (d, _) = delivery(&endpoint());
        let l = leased(&d, t0());
        let f = fail_delivery(
            &l,
            t0(),
            t0().plus_seconds(1),
            "the endpoint was deleted".into(),
        );
        assert_eq!(f.status, DeliveryStatus::Failed);
        assert_eq!(f.version, l.version + 1);
        assert_eq!(f.next_attempt_at, None);
        let a = &f.attempts[0];
        assert_eq!((a.number, a.latency_ms), (1, 0));
        assert_eq!(a.error.as_deref(), Some("the endpoint was deleted"));
    }

    #[test]
    fn redelivery_makes_a_delivery_pending_and_due_again() {
        let (d, _) = delivery(&endpoint());
        let l = leased(&d, t0());
        let failed = fail_delivery(&l, t0(), t0(), "gone".into());
        let again = redelivery(&failed, t0().plus_seconds(60));
        assert_eq!(again.status, DeliveryStatus::Pending);
        assert_eq!(again.next_attempt_at, None);
        assert_eq!(again.version, failed.version + 1);
        assert_eq!(again.attempts, failed.attempts);
        // Its message's lease is the same change, leased: one write, one version further.
        let now = t0().plus_seconds(61);
        let lease = redelivery_lease(&failed, now);
        assert_eq!(
            (lease.status, lease.version, &lease.attempts),
            (
                DeliveryStatus::Pending,
                failed.version + 1,
                &failed.attempts
            )
        );
        assert_eq!(lease.next_attempt_at, Some(now.plus_seconds(LEASE_SECS)));
        assert_eq!(lease.updated_at, now);
        // A copy of the message meets the lease and waits for it; after the attempt,
        // the delivery is finished again and the copy has nothing to do.
        assert_eq!(lease_attempt(&lease, now), Lease::NotDue(LEASE_SECS as u64));
        let done = after_attempt(&lease, attempted(answered(200, None), now), AS_SCHEDULED);
        assert_eq!(lease_attempt(&done.delivery, now), Lease::Finished);
        // Only a lease in force is an attempt under way: not a delivery finished, nor one
        // waiting for a scheduled retry, nor a lease that ran out (its worker died).
        assert_eq!(attempt_under_way(&lease, now), Some(LEASE_SECS as u64));
        assert_eq!(
            attempt_under_way(&lease, now.plus_seconds(LEASE_SECS)),
            None
        );
        assert_eq!(attempt_under_way(&done.delivery, now), None);
        assert_eq!(attempt_under_way(&failed, now), None);
        let ended = now.plus_seconds(2);
        let refused = Attempted {
            ended,
            ..attempted(answered(503, Some(LEASE_SECS as u64)), now)
        };
        let retrying = after_attempt(&lease, refused, AS_SCHEDULED).delivery;
        assert_eq!(retrying.status, DeliveryStatus::Pending);
        assert!(retrying.next_attempt_at.unwrap() > ended);
        assert_eq!(attempt_under_way(&retrying, ended), None);
    }

    #[test]
    fn an_endpoint_delivery_goes_to_the_endpoint_url_as_it_stands() {
        let ep = endpoint();
        let (d, event) = delivery(&ep);
        let failed = fail_delivery(&leased(&d, t0()), t0(), t0(), "500".into());
        // The merchant moved the endpoint: the next attempt, scheduled or asked for, goes
        // to the new URL, and the record says so; nothing else about it changes.
        let moved = WebhookEndpoint {
            url: "https://new.example/hooks".into(),
            ..ep.clone()
        };
        for next in [
            redelivery_lease(&failed, t0().plus_seconds(60)),
            leased(&d, t0().plus_seconds(60)),
        ] {
            let to = addressed(next.clone(), Some(&moved));
            assert_eq!(to.url, "https://new.example/hooks");
            assert_eq!(
                Delivery {
                    url: next.url.clone(),
                    ..to
                },
                next
            );
        }
        // Still where it was: unchanged.
        assert_eq!(addressed(d.clone(), Some(&ep)), d);
        // Gone, or another endpoint: the stored URL stays.
        assert_eq!(addressed(d.clone(), None), d);
        let other = WebhookEndpoint {
            id: WebhookEndpointId::generate(),
            ..moved.clone()
        };
        assert_eq!(addressed(d.clone(), Some(&other)), d);
        // A delivery to an order's own webhook_url keeps its URL.
        let own = pending_delivery(&event, None, "https://shop.example/h".into(), t0());
        assert_eq!(addressed(own.clone(), Some(&moved)), own);
    }

    #[test]
    fn endpoint_health_follows_the_failing_streak() {
        let ep = endpoint();
        // Healthy and succeeding: nothing to write.
        assert_eq!(endpoint_after_attempt(&ep, Health::Succeeded, t0()), None);

        // A first failure starts the run.
        let (failing, event) = endpoint_after_attempt(&ep, Health::Failed, t0()).unwrap();
        assert_eq!(failing.failing_since, Some(t0()));
        assert_eq!(failing.last_failed_at, Some(t0()));
        assert_eq!(failing.version, ep.version + 1);
        assert!(failing.enabled && event.is_none());
        // Further failures within the hour change nothing; later ones note the time.
        let soon = t0().plus_seconds(LAST_FAILED_GRAIN_SECS - 1);
        assert_eq!(endpoint_after_attempt(&failing, Health::Failed, soon), None);
        // Failing on the retry schedule (every 10 h at most, jitter added), the run goes on.
        let mut run = failing.clone();
        let mut at = t0();
        while t0().seconds_until(at) + 43_200 < DISABLE_AFTER_FAILING_SECS {
            at = at.plus_seconds(43_200);
            if let Some((next, event)) = endpoint_after_attempt(&run, Health::Failed, at) {
                assert!(next.enabled && event.is_none());
                run = next;
            }
            assert_eq!(run.failing_since, Some(t0()));
        }
        // A success ends it.
        let (healed, event) = endpoint_after_attempt(&run, Health::Succeeded, at).unwrap();
        assert_eq!((healed.failing_since, healed.last_failed_at), (None, None));
        assert!(healed.enabled && event.is_none());

        // Failing for 3 days disables it, with webhook_endpoint.disabled.
        let after = t0().plus_seconds(DISABLE_AFTER_FAILING_SECS);
        let (off, event) = endpoint_after_attempt(&run, Health::Failed, after).unwrap();
        assert!(!off.enabled);
        assert_eq!(
            off.disabled_reason.as_deref(),
            Some("every delivery failed for 3 days")
        );
        let event = event.unwrap();
        assert_eq!(event.event_type, EventType::WebhookEndpointDisabled);
        assert_eq!(event.data.object["enabled"], false);

        // A 410 disables it at once.
        let (gone, event) = endpoint_after_attempt(&ep, Health::Gone, t0()).unwrap();
        assert!(!gone.enabled && event.is_some());
        assert_eq!(gone.failing_since, Some(t0()));
        assert_eq!(
            gone.disabled_reason.as_deref(),
            Some("the endpoint answered 410 Gone")
        );
        // An endpoint already disabled gets no second event.
        let (_, event) = endpoint_after_attempt(&gone, Health::Gone, t0()).unwrap();
        assert!(event.is_none());
    }

    /// An endpoint that failed once (no retries: `max_retries` 0) and then heard nothing
    /// for days is not disabled by its next failure: nothing says it failed in between.
    /// It used to be, at once, by a single failure after a quiet weekend.
    #[test]
    fn a_failure_after_a_quiet_day_starts_a_new_run() {
        let (failing, _) = endpoint_after_attempt(&endpoint(), Health::Failed, t0()).unwrap();
        let monday = t0().plus_seconds(DISABLE_AFTER_FAILING_SECS + 60);
        let (next, event) = endpoint_after_attempt(&failing, Health::Failed, monday).unwrap();
        assert!(next.enabled && event.is_none());
        assert_eq!(next.failing_since, Some(monday));
        // Just inside a day, the run goes on.
        let near = t0().plus_seconds(FAILING_RUN_GAP_SECS - 1);
        let (next, _) = endpoint_after_attempt(&failing, Health::Failed, near).unwrap();
        assert_eq!(next.failing_since, Some(t0()));
        // A run recorded before the time of the last failure was kept counts as unbroken.
        let old = WebhookEndpoint {
            last_failed_at: None,
            ..failing
        };
        let (off, event) = endpoint_after_attempt(&old, Health::Failed, monday).unwrap();
        assert!(!off.enabled && event.is_some());
    }
}
