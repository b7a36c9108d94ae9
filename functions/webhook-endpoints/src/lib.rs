//! `/webhook-endpoints`: create (the `whsec_` secret is shown once), list, get, update,
//! delete, rotate the secret (the old one keeps signing for 24 h), list an endpoint's
//! deliveries and redeliver one, send it a signed `ping`. `GET /webhook-secret` reveals the secret that signs
//! deliveries to orders' own `webhook_url`.
//!
//! Live-mode URLs must be https and resolve only to public addresses; test mode may use
//! `http://localhost`. Checked here and again before every delivery.

use payorders::auth;
use payorders::http::list::{Limit, PageCursor, Window};
use payorders::http::request::NoFields;
use payorders::http::{self, ApiError, Body, Params, Request, Response};
use payorders::runtime::Services;
use payorders::store::{StoreError, Versioned};
use payorders::webhooks::{self, DeliveryMessage, FirstAttempt, UrlRefusal};
use payorders::*;
use serde::Deserialize;
use serde_json::{Value, json};

/// How long a rotated-out secret keeps signing.
pub const ROTATION_GRACE_SECS: i64 = 24 * 3600;
const MAX_DESCRIPTION: usize = 500;
const MAX_URL: usize = 2048;

pub async fn handler(svc: &Services, req: Request) -> Result<Response<Body>, lambda_http::Error> {
    Ok(http::limits::serve_limited(&*svc.store, &req, |rid| route(svc, &req, rid)).await)
}

async fn route(svc: &Services, req: &Request, rid: String) -> Result<Response<Body>, ApiError> {
    let ctx = http::auth(req)?;
    let parts = http::path_segments(req);
    let method = req.method().as_str();
    match (method, parts.as_slice()) {
        ("GET", ["webhook-secret"]) => {
            http::no_body(req)?;
            order_webhook_secret(svc, &ctx).await
        }
        ("POST", ["webhook-endpoints"]) => {
            // The answer holds the new signing secret: kept sealed.
            http::idempotent_sealed(&*svc.store, master(svc)?, &ctx, req, &rid, || {
                create(svc, &ctx, req)
            })
            .await
        }
        ("GET", ["webhook-endpoints"]) => {
            http::no_body(req)?;
            let all = svc.store.list_endpoints(&ctx.org_id, ctx.mode).await?;
            let data: Vec<Value> = all.iter().map(WebhookEndpoint::api_view).collect();
            Ok(http::json(
                200,
                &json!({"object": "list", "data": data, "has_more": false, "next_cursor": null}),
            ))
        }
        (_, ["webhook-endpoints", _, rest @ ..]) => {
            let id = http::path_id(req, "id", "webhook endpoint", WebhookEndpointId::parse)?;
            match (method, rest) {
                ("GET", []) => {
                    http::no_body(req)?;
                    Ok(http::json(200, &load(svc, &ctx, &id).await?.api_view()))
                }
                ("POST", []) => {
                    http::idempotent(&*svc.store, &ctx, req, &rid, || update(svc, &ctx, req, &id))
                        .await
                }
                ("DELETE", []) => {
                    http::request::signed_no_body(&*svc.store, &ctx, req).await?;
                    // Load first: it checks the mode as well as the organization.
                    load(svc, &ctx, &id).await?;
                    if !svc.store.delete_endpoint(&ctx.org_id, &id).await? {
                        return Err(ApiError::not_found("webhook endpoint").with_param("id"));
                    }
                    Ok(http::json(
                        200,
                        &json!({"id": id, "object": "webhook_endpoint", "deleted": true}),
                    ))
                }
                ("POST", ["test"]) => {
                    http::idempotent(&*svc.store, &ctx, req, &rid, || ping(svc, &ctx, req, &id))
                        .await
                }
                ("POST", ["rotate-secret"]) => {
                    http::idempotent_sealed(&*svc.store, master(svc)?, &ctx, req, &rid, || {
                        rotate(svc, &ctx, req, &id)
                    })
                    .await
                }
                ("GET", ["deliveries"]) => {
                    http::no_body(req)?;
                    load(svc, &ctx, &id).await?;
                    let q: DeliveriesQuery = http::request::query(req)?;
                    let w = Window {
                        limit: q.limit,
                        cursor: q.cursor,
                        ..Window::default()
                    }
                    .for_caller(&ctx)?;
                    let page = svc.store.list_deliveries(&id, &w).await?;
                    Ok(http::json(
                        200,
                        &http::render::list(&page, Delivery::api_view),
                    ))
                }
                ("POST", ["deliveries", _, "redeliver"]) => {
                    let did = http::path_id(req, "delivery_id", "delivery", DeliveryId::parse)?;
                    http::idempotent(&*svc.store, &ctx, req, &rid, || {
                        redeliver(svc, &ctx, req, &id, &did)
                    })
                    .await
                }
                _ => Err(ApiError::not_found("route")),
            }
        }
        _ => Err(ApiError::not_found("route")),
    }
}

async fn load(
    svc: &Services,
    ctx: &auth::AuthContext,
    id: &WebhookEndpointId,
) -> Result<WebhookEndpoint, ApiError> {
    svc.store
        .get_endpoint(&ctx.org_id, id)
        .await?
        .filter(|e| e.livemode == ctx.livemode())
        .ok_or_else(|| ApiError::not_found("webhook endpoint").with_param("id"))
}

fn master(svc: &Services) -> Result<&auth::MasterKey, ApiError> {
    svc.master.as_ref().ok_or_else(|| {
        tracing::error!("webhook-endpoints runs without a master key");
        ApiError::internal()
    })
}

/// Validates a destination URL for the caller's mode, resolving it; with `allowed_ips`,
/// the host must resolve to an address inside them.
async fn check_url(text: &str, livemode: bool, allowed: &[IpNet]) -> Result<String, ApiError> {
    if text.len() > MAX_URL {
        return Err(ApiError::invalid(
            "INVALID_URL",
            "url",
            "url is longer than 2048 characters",
        ));
    }
    let url = webhooks::check_url(text, livemode)
        .map_err(|e| ApiError::invalid("INVALID_URL", "url", e.to_string()))?;
    // Test mode may save a loopback URL; where it is delivered is the delivering host's call.
    let resolved = webhooks::resolve_destination(&url, !livemode)
        .await
        .and_then(|addrs| webhooks::keep_allowed(addrs, allowed));
    match resolved {
        Ok(_) => Ok(url.to_string()),
        Err(e @ UrlRefusal::NotAllowed(_)) => {
            Err(ApiError::unprocessable("WEBHOOK_URL_NOT_ALLOWED", e.to_string()).with_param("url"))
        }
        Err(e @ UrlRefusal::Forbidden(_)) => {
            Err(ApiError::unprocessable("WEBHOOK_URL_FORBIDDEN", e.to_string()).with_param("url"))
        }
        Err(e) => Err(
            ApiError::unprocessable("WEBHOOK_URL_UNRESOLVABLE", e.to_string()).with_param("url"),
        ),
    }
}

/// The body of `POST /webhook-endpoints`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateEndpoint {
    url: String,
    /// Event types, or `["*"]` for all (1 to 50).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<String>>))]
    events: Option<Events>,
    /// At most 500 characters.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    description: Option<Description>,
    enabled: Option<bool>,
    /// Seconds an attempt waits for the answer: 1 to 30 (default 10).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u32>, minimum = 1, maximum = 30))]
    timeout: Option<Timeout>,
    /// Retries after a failed first attempt, 0 to 20; absent or `null` retries on the
    /// schedule for 3 days.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u32>, minimum = 0, maximum = 20))]
    max_retries: Option<MaxRetries>,
    /// IP addresses or CIDR blocks (at most 50): deliveries go only to the addresses the
    /// URL resolves to inside them. They narrow the public-address rule, never widen it.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<String>>))]
    allowed_ips: Option<AllowedIps>,
}

/// The body of `POST /webhook-endpoints/{id}`: what changes (`description: null` clears it).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UpdateEndpoint {
    url: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<String>>))]
    events: Option<Events>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "http::request::nullable")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    description: Option<Option<Description>>,
    enabled: Option<bool>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u32>, minimum = 1, maximum = 30))]
    timeout: Option<Timeout>,
    /// `null` goes back to retrying on the schedule for 3 days.
    #[serde(default, deserialize_with = "http::request::nullable")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u32>, minimum = 0, maximum = 20))]
    max_retries: Option<Option<MaxRetries>>,
    /// `[]` removes the restriction.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<String>>))]
    allowed_ips: Option<AllowedIps>,
}

/// The query string of `GET /webhook-endpoints/{id}/deliveries`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
pub struct DeliveriesQuery {
    limit: Option<Limit>,
    cursor: Option<PageCursor>,
}

fn endpoint_code(field: &str) -> &'static str {
    match field {
        "url" => "INVALID_URL",
        "events" => "INVALID_EVENT_TYPE",
        "description" => "INVALID_DESCRIPTION",
        "timeout" | "max_retries" | "allowed_ips" => "INVALID_WEBHOOK_OPTIONS",
        _ => "INVALID_PARAMETER",
    }
}

impl Params for CreateEndpoint {
    fn code(field: &str) -> &'static str {
        endpoint_code(field)
    }
}

impl Params for UpdateEndpoint {
    fn code(field: &str) -> &'static str {
        endpoint_code(field)
    }
}

impl Params for DeliveriesQuery {
    fn code(field: &str) -> &'static str {
        http::list::code(field).unwrap_or("INVALID_PARAMETER")
    }
}

/// 1-50 event types, or `["*"]`; duplicates dropped.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "Vec<String>")]
struct Events(Vec<String>);

impl TryFrom<Vec<String>> for Events {
    type Error = String;

    fn try_from(list: Vec<String>) -> Result<Self, Self::Error> {
        if list.is_empty() || list.len() > 50 {
            return Err("events must be a non-empty list of event types or [\"*\"]".into());
        }
        let mut out: Vec<String> = Vec::new();
        for t in list {
            if t == EventType::Ping.as_str() {
                return Err(
                    "ping is not subscribed to: POST /webhook-endpoints/{id}/test sends one".into(),
                );
            }
            if t != "*" && EventType::parse(&t).is_none() {
                return Err(format!("unknown event type {t}"));
            }
            if !out.contains(&t) {
                out.push(t);
            }
        }
        Ok(Self(out))
    }
}

/// At most 500 characters.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "String")]
struct Description(String);

impl TryFrom<String> for Description {
    type Error = &'static str;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        if s.chars().count() <= MAX_DESCRIPTION {
            Ok(Self(s))
        } else {
            Err("description must be a string of at most 500 characters")
        }
    }
}

/// 1 to 30 seconds.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(try_from = "u32")]
struct Timeout(u32);

impl TryFrom<u32> for Timeout {
    type Error = String;

    fn try_from(secs: u32) -> Result<Self, Self::Error> {
        if (1..=MAX_TIMEOUT_SECS).contains(&secs) {
            Ok(Self(secs))
        } else {
            Err(format!("timeout must be 1 to {MAX_TIMEOUT_SECS} seconds"))
        }
    }
}

/// 0 to 20 retries.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(try_from = "u32")]
struct MaxRetries(u32);

impl TryFrom<u32> for MaxRetries {
    type Error = String;

    fn try_from(n: u32) -> Result<Self, Self::Error> {
        if n <= MAX_RETRIES {
            Ok(Self(n))
        } else {
            Err(format!("max_retries must be 0 to {MAX_RETRIES}, or null"))
        }
    }
}

/// At most 50 IP addresses (`203.0.113.7`) or CIDR blocks (`203.0.113.0/24`), kept as
/// blocks (an address is its own /32 or /128), duplicates dropped.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "Vec<String>")]
struct AllowedIps(Vec<IpNet>);

impl TryFrom<Vec<String>> for AllowedIps {
    type Error = String;

    fn try_from(list: Vec<String>) -> Result<Self, Self::Error> {
        if list.len() > MAX_ALLOWED_IPS {
            return Err(format!(
                "allowed_ips takes at most {MAX_ALLOWED_IPS} entries"
            ));
        }
        let mut out: Vec<IpNet> = Vec::new();
        for text in list {
            let t = text.trim();
            let net = t
                .parse::<IpNet>()
                .map(|n| n.trunc())
                .or_else(|_| t.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| format!("{text:?} is not an IP address or CIDR block"))?;
            if !out.contains(&net) {
                out.push(net);
            }
        }
        Ok(Self(out))
    }
}

fn with_secret(e: &WebhookEndpoint, secret: &str) -> Value {
    let mut v = e.api_view();
    v["secret"] = json!(secret);
    v
}

async fn create(
    svc: &Services,
    ctx: &auth::AuthContext,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    let body: CreateEndpoint = http::request::signed_json(&*svc.store, ctx, req, false).await?;
    let options = DeliveryOptions {
        timeout_secs: body.timeout.map_or(DEFAULT_TIMEOUT_SECS, |t| t.0),
        max_retries: body.max_retries.map(|m| m.0),
        allowed_ips: body.allowed_ips.map(|a| a.0).unwrap_or_default(),
    };
    let url = check_url(&body.url, ctx.livemode(), &options.allowed_ips).await?;
    let events = body.events.map_or_else(|| vec!["*".to_owned()], |e| e.0);
    let description = body.description.map(|d| d.0);
    let enabled = body.enabled.unwrap_or(true);
    let now = Timestamp::now();
    let id = WebhookEndpointId::generate();
    let secret = webhooks::generate_secret();
    let endpoint = WebhookEndpoint {
        secrets: vec![SealedWebhookSecret {
            sealed: master(svc)?.seal(&webhooks::endpoint_secret_context(&id), &secret),
            created_at: now,
            expires_at: None,
        }],
        id,
        organization_id: ctx.org_id.clone(),
        livemode: ctx.livemode(),
        url,
        description,
        events,
        enabled,
        disabled_reason: None,
        failing_since: None,
        last_failed_at: None,
        options,
        created_at: now,
        updated_at: now,
        version: 1,
    };
    // The answer (sealed) is kept for the Idempotency-Key by the endpoint's own write: a
    // retry after a crash replays this endpoint, never creates a second one.
    let resp = http::json(201, &with_secret(&endpoint, &secret));
    let completion = http::completion(&resp);
    match svc
        .store
        .create_endpoint(&endpoint, completion.as_ref())
        .await
    {
        Ok(()) => Ok(http::kept(resp)),
        Err(StoreError::LimitReached { limit }) => Err(ApiError::limit_reached(
            "TOO_MANY_ENDPOINTS",
            "webhook endpoints in each mode",
            limit,
            "delete one it no longer uses (DELETE /webhook-endpoints/{id}) before creating another",
        )),
        Err(e) => Err(e.into()),
    }
}

/// Applies `change` to the stored endpoint, re-reading on a concurrent write, and answers
/// `answer` of the endpoint as changed. The answer is kept for the request's
/// `Idempotency-Key` by the endpoint's own write: a crash after it leaves the key answering
/// this change, so a retry replays it rather than changing the endpoint again (for a
/// rotation, a second secret no one is shown, and the merchant's own dropped).
async fn modify<F, A>(
    svc: &Services,
    ctx: &auth::AuthContext,
    id: &WebhookEndpointId,
    mut change: F,
    answer: A,
) -> Result<Response<Body>, ApiError>
where
    F: FnMut(&mut WebhookEndpoint, Timestamp),
    A: Fn(&WebhookEndpoint) -> Value,
{
    for _ in 0..3 {
        let current = load(svc, ctx, id).await?;
        let now = Timestamp::now();
        let mut next = current.next_version();
        change(&mut next, now);
        next.updated_at = now;
        let resp = http::json(200, &answer(&next));
        let completion = http::completion(&resp);
        match svc
            .store
            .update_endpoint(&next, current.version, None, completion.as_ref())
            .await
        {
            Ok(()) => return Ok(http::kept(resp)),
            Err(StoreError::VersionConflict { .. }) => continue,
            Err(StoreError::NotFound) => {
                return Err(ApiError::not_found("webhook endpoint").with_param("id"));
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::conflict(
        "CONCURRENT_UPDATE",
        "the endpoint kept changing; retry",
    ))
}

async fn update(
    svc: &Services,
    ctx: &auth::AuthContext,
    req: &Request,
    id: &WebhookEndpointId,
) -> Result<Response<Body>, ApiError> {
    let body: UpdateEndpoint = http::request::signed_json(&*svc.store, ctx, req, false).await?;
    let allowed_ips = body.allowed_ips.map(|a| a.0);
    // A new URL, or new allowed_ips, are checked together: the URL must resolve inside them.
    let url = if body.url.is_some() || allowed_ips.is_some() {
        let current = load(svc, ctx, id).await?;
        let url = body.url.as_deref().unwrap_or(&current.url);
        let allowed = allowed_ips.as_ref().unwrap_or(&current.options.allowed_ips);
        Some(check_url(url, ctx.livemode(), allowed).await?)
    } else {
        None
    };
    let events = body.events.map(|e| e.0);
    let description = body.description.map(|d| d.map(|d| d.0));
    let enabled = body.enabled;
    let timeout = body.timeout.map(|t| t.0);
    let max_retries = body.max_retries.map(|m| m.map(|m| m.0));
    let change = |e: &mut WebhookEndpoint, _| {
        if let Some(u) = &url {
            e.url = u.clone();
        }
        if let Some(t) = timeout {
            e.options.timeout_secs = t;
        }
        if let Some(m) = max_retries {
            e.options.max_retries = m;
        }
        if let Some(a) = &allowed_ips {
            e.options.allowed_ips = a.clone();
        }
        if let Some(ev) = &events {
            e.events = ev.clone();
        }
        if let Some(d) = &description {
            e.description = d.clone();
        }
        if let Some(on) = enabled {
            e.enabled = on;
            if on {
                // Re-enabling starts afresh.
                e.disabled_reason = None;
                e.failing_since = None;
            } else if e.disabled_reason.is_none() {
                e.disabled_reason = Some("disabled by the merchant".into());
            }
        }
    };
    modify(svc, ctx, id, change, WebhookEndpoint::api_view).await
}

async fn rotate(
    svc: &Services,
    ctx: &auth::AuthContext,
    req: &Request,
    id: &WebhookEndpointId,
) -> Result<Response<Body>, ApiError> {
    let _: NoFields = http::request::signed_json(&*svc.store, ctx, req, true).await?;
    let master = master(svc)?;
    let secret = webhooks::generate_secret();
    let sealed = master.seal(&webhooks::endpoint_secret_context(id), &secret);
    let change = |e: &mut WebhookEndpoint, now: Timestamp| {
        // The current secret signs beside the new one for 24 h; older ones stop now.
        let mut secrets = vec![SealedWebhookSecret {
            sealed: sealed.clone(),
            created_at: now,
            expires_at: None,
        }];
        if let Some(current) = e.signing_secrets(now).find(|s| s.expires_at.is_none()) {
            secrets.push(SealedWebhookSecret {
                expires_at: Some(now.plus_seconds(ROTATION_GRACE_SECS)),
                ..current.clone()
            });
        }
        e.secrets = secrets;
    };
    // The answer holds the new secret: kept (sealed) with the rotation itself.
    modify(svc, ctx, id, change, |e| with_secret(e, &secret)).await
}

/// `POST /webhook-endpoints/{id}/test`: a signed `ping` event to this endpoint alone,
/// through the same queue, signing and retries as any delivery. Answers the delivery
/// (pending); it shows in the endpoint's delivery log from its first attempt on, which
/// creates it as it does a dispatched delivery's. The route writes the event and no
/// delivery, so a crash or a queue failure before the send leaves the event alone, not a
/// delivery pending with no message to attempt it.
async fn ping(
    svc: &Services,
    ctx: &auth::AuthContext,
    req: &Request,
    id: &WebhookEndpointId,
) -> Result<Response<Body>, ApiError> {
    let _: NoFields = http::request::signed_json(&*svc.store, ctx, req, true).await?;
    let queue = webhooks_queue(svc)?;
    for _ in 0..3 {
        let ep = load(svc, ctx, id).await?;
        if !ep.enabled {
            return Err(ApiError::conflict(
                "ENDPOINT_DISABLED",
                "enable the endpoint before testing it",
            ));
        }
        let now = Timestamp::now();
        let event = Event::for_endpoint(&ep, EventType::Ping, now);
        // The event is written with the endpoint (so `GET /events` lists it and the
        // delivery can read it); no endpoint subscribes to `ping`, so only the delivery
        // made here sends it. The Idempotency-Key is not completed by this write: the answer
        // is final only once the ping is queued, and a retry after a crash sends a new one
        // (a second ping is harmless; a replayed one never queued would not be).
        let mut next = ep.next_version();
        next.updated_at = ep.updated_at;
        match svc
            .store
            .update_endpoint(&next, ep.version, Some(&event), None)
            .await
        {
            Ok(()) => {}
            Err(StoreError::VersionConflict { .. }) => continue,
            Err(StoreError::NotFound) => {
                return Err(ApiError::not_found("webhook endpoint").with_param("id"));
            }
            Err(e) => return Err(e.into()),
        }
        let first = FirstAttempt::new(&event, Some(ep.id.clone()), now);
        queue_delivery(queue, &DeliveryMessage::First(first)).await?;
        let delivery =
            webhooks::delivery::pending_delivery(&event, Some(ep.id.clone()), ep.url, now);
        return Ok(http::json(202, &delivery.api_view()));
    }
    Err(ApiError::conflict(
        "CONCURRENT_UPDATE",
        "the endpoint kept changing; retry",
    ))
}

fn webhooks_queue(
    svc: &Services,
) -> Result<&std::sync::Arc<dyn payorders::queue::Queue>, ApiError> {
    svc.webhooks.as_ref().ok_or_else(|| {
        tracing::error!("webhook-endpoints runs without a webhooks queue");
        ApiError::internal()
    })
}

/// Sends `message` to the webhooks queue; a queue that refuses it is `503 QUEUE_UNAVAILABLE`.
async fn queue_delivery(
    queue: &std::sync::Arc<dyn payorders::queue::Queue>,
    message: &DeliveryMessage,
) -> Result<(), ApiError> {
    queue
        .send(&message.body(), 0)
        .await
        .map_err(|e| ApiError::unavailable("QUEUE_UNAVAILABLE", e.to_string()))
}

/// `POST /webhook-endpoints/{id}/deliveries/{msg_id}/redeliver`: queues the delivery to be
/// sent again and answers it as it will be (pending, to the endpoint's current URL). The
/// attempt's lease makes it pending ([`DeliveryMessage::Again`]): the route writes nothing,
/// so a crash or a queue failure leaves the delivery as it was, never pending with no
/// message to attempt it. A delivery whose attempt is under way is refused
/// (`409 CONCURRENT_UPDATE`): sending it again then would send the same `webhook-id` twice
/// at once and lose the running attempt's record.
async fn redeliver(
    svc: &Services,
    ctx: &auth::AuthContext,
    req: &Request,
    endpoint: &WebhookEndpointId,
    id: &DeliveryId,
) -> Result<Response<Body>, ApiError> {
    let _: NoFields = http::request::signed_json(&*svc.store, ctx, req, true).await?;
    let ep = load(svc, ctx, endpoint).await?;
    if !ep.enabled {
        return Err(ApiError::conflict(
            "ENDPOINT_DISABLED",
            "enable the endpoint before redelivering",
        ));
    }
    let queue = webhooks_queue(svc)?;
    let d = svc
        .store
        .get_delivery(id)
        .await?
        .filter(|d| d.endpoint_id.as_ref() == Some(endpoint) && d.organization_id == ctx.org_id)
        .ok_or_else(|| ApiError::not_found("delivery").with_param("delivery_id"))?;
    let now = Timestamp::now();
    if let Some(secs) = webhooks::delivery::attempt_under_way(&d, now) {
        return Err(ApiError::conflict(
            "CONCURRENT_UPDATE",
            format!("an attempt of this delivery is under way; retry in {secs} s"),
        ));
    }
    queue_delivery(queue, &DeliveryMessage::again(&d)).await?;
    // As it will be: pending, and to the endpoint's URL as it stands (its attempt goes there).
    let again = webhooks::delivery::addressed(webhooks::delivery::redelivery(&d, now), Some(&ep));
    Ok(http::json(202, &again.api_view()))
}

async fn order_webhook_secret(
    svc: &Services,
    ctx: &auth::AuthContext,
) -> Result<Response<Body>, ApiError> {
    let org = svc
        .store
        .get_organization(&ctx.org_id)
        .await?
        .ok_or_else(|| ApiError::not_found("organization"))?;
    let sealed = org
        .settings(ctx.mode)
        .order_webhook_secret_sealed
        .clone()
        .ok_or_else(|| ApiError::not_found("order webhook secret"))?;
    let secret = master(svc)?
        .open(
            &webhooks::order_secret_context(&ctx.org_id, ctx.mode),
            &sealed,
        )
        .map_err(|e| {
            tracing::error!(error = %e, "order webhook secret does not open");
            ApiError::internal()
        })?;
    Ok(http::json(
        200,
        &json!({"object": "webhook_secret", "livemode": ctx.livemode(), "secret": secret}),
    ))
}

/// The Lambda function: takes events from the Runtime API until the sandbox ends. Its own
/// binary runs it, and so does the bundle that packages it (`bundles/`), when the function's
/// `Handler` names it.
#[cfg(feature = "aws")]
pub async fn serve_lambda() -> Result<(), lambda_http::Error> {
    payorders::runtime::serve_http_with_services(handler).await
}
