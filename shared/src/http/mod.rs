//! HTTP helpers over `lambda_http` (API Gateway HTTP API, payload 2.0): request ids, the
//! authorizer context, typed JSON bodies and query strings ([`request`]), list windows
//! ([`list`]), idempotency, and responses in our shape.
//! The only module of the domain crate that knows Lambda types.

pub mod audit;
pub mod codes;
mod error;
pub mod limits;
pub mod list;
#[cfg(feature = "chains")]
mod payment;
pub mod public;
pub mod render;
pub mod request;

pub use codes::ErrorCode;
pub use error::{ApiError, ErrorType};
pub use lambda_http::{Body, Request, RequestExt, Response};
#[cfg(feature = "chains")]
pub use payment::{Submitter, pay, pay_answering, payment_error};
pub use request::Params;

use crate::auth::AuthContext;
use crate::model::{KeyId, OrderId, PayOrder, RequestId, Timestamp};
use crate::store::{
    IdempotencyBegin, IdempotencyCompletion, IdempotencyHold, IdempotencyScope, IdempotencyStore,
    OrderStore, StoredResponse,
};
use lambda_http::http::{HeaderValue, StatusCode, header};
use lambda_http::request::RequestContext;
use sha2::{Digest, Sha256};
use std::future::Future;

/// Largest body accepted (API Gateway allows more; we do not need it).
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// The request id: API Gateway's, or a fresh one when there is none.
pub fn request_id(req: &Request) -> String {
    match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(c)) => c.request_id.clone(),
        _ => None,
    }
    .filter(|id| !id.is_empty())
    .unwrap_or_else(|| RequestId::generate().to_string())
}

/// Runs a handler body and turns its outcome into a response with `X-Request-Id`. Errors
/// become our error shape; the Lambda invocation itself always succeeds, so API Gateway
/// never substitutes its own error body.
pub async fn serve<F, Fut>(req: &Request, f: F) -> Response<Body>
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = Result<Response<Body>, ApiError>>,
{
    let rid = request_id(req);
    let mut resp = match f(rid.clone()).await {
        Ok(r) => r,
        Err(e) => error_response(&e, &rid),
    };
    if let Ok(v) = HeaderValue::from_str(&rid) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

pub fn error_response(e: &ApiError, request_id: &str) -> Response<Body> {
    if e.status >= 500 {
        tracing::error!(
            code = e.code,
            status = e.status,
            request_id,
            "request failed"
        );
    }
    json(e.status, &e.body(request_id))
}

/// A JSON response.
pub fn json<T: serde::Serialize + ?Sized>(status: u16, value: &T) -> Response<Body> {
    let text = serde_json::to_string(value).expect("a response serializes");
    let mut resp = Response::new(Body::Text(text));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// Where this deployment's customer-facing URLs live, for links in answers: the
/// `PAYORDERS_PUBLIC_BASE_URL` environment variable when set (a custom domain), else the
/// stage variable `public_base_url` (the local host sets it to its own address), else the
/// API's own address as API Gateway saw the request (`https://<domain>/<stage>`). Server-Sent
/// Events may be served elsewhere (a Lambda Function URL streams, API Gateway does not):
/// `PAYORDERS_EVENTS_BASE_URL`, else the stage variable `events_base_url`, else the same base.
pub fn links(req: &Request) -> crate::checkout::Links {
    let env = |name: &str| {
        std::env::var(name)
            .ok()
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let stage_vars = req.stage_variables();
    let stage_var = |name: &str| {
        stage_vars
            .first(name)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let (domain, stage) = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(c)) => (c.domain_name.as_deref(), c.stage.as_deref()),
        _ => (None, None),
    };
    links_from(
        env("PAYORDERS_PUBLIC_BASE_URL").or_else(|| stage_var("public_base_url")),
        env("PAYORDERS_EVENTS_BASE_URL").or_else(|| stage_var("events_base_url")),
        domain,
        stage,
    )
}

/// The links given the configured public base, the configured events base, and the domain
/// and stage the request came to (API Gateway's address: `https://<domain>/<stage>`). A
/// request to a Lambda Function URL (the event stream, whose own URL its configuration
/// cannot name) streams from that address. Only what is needed is formatted: this runs
/// for every answer that carries links.
fn links_from(
    public: Option<String>,
    events: Option<String>,
    domain: Option<&str>,
    stage: Option<&str>,
) -> crate::checkout::Links {
    let came_to = |d: &str| match stage {
        Some(stage) if !stage.is_empty() && stage != "$default" => format!("https://{d}/{stage}"),
        _ => format!("https://{d}"),
    };
    let events = events.or_else(|| {
        domain
            .filter(|d| d.contains(".lambda-url."))
            .map(|d| format!("https://{d}"))
    });
    let base = public.or_else(|| domain.map(came_to)).unwrap_or_default();
    crate::checkout::Links::new(&base, events.as_deref())
}

#[cfg(test)]
mod links_tests {
    use super::links_from;
    use crate::model::OrderId;

    #[test]
    fn the_stream_links_to_the_api_and_streams_from_its_own_url() {
        let id = OrderId::generate();
        let api = "https://abc.execute-api.us-east-1.amazonaws.com/dev";
        let url = "https://k7x2.lambda-url.us-east-1.on.aws";
        let some = |s: &str| Some(s.to_owned());
        // The stream: its configuration names the API; it streams from where it was asked.
        let l = links_from(
            some(api),
            None,
            Some("k7x2.lambda-url.us-east-1.on.aws"),
            Some("$default"),
        );
        assert_eq!(l.qr(&id), format!("{api}/public/pay-orders/{id}/qr"));
        assert_eq!(l.hosted(&id), format!("{api}/pay/{id}"));
        assert_eq!(
            l.events(&id),
            format!("{url}/public/pay-orders/{id}/events")
        );
        // An API route: the stage variable names the stream's URL; the base is the API's
        // own address, with its stage.
        let l = links_from(
            None,
            some(url),
            Some("abc.execute-api.us-east-1.amazonaws.com"),
            Some("dev"),
        );
        assert_eq!(l.qr(&id), format!("{api}/public/pay-orders/{id}/qr"));
        assert_eq!(
            l.events(&id),
            format!("{url}/public/pay-orders/{id}/events")
        );
        // One host for everything (the local host; a custom domain).
        let local = "http://127.0.0.1:3000";
        let l = links_from(some(local), None, Some("127.0.0.1"), None);
        assert_eq!(
            l.events(&id),
            format!("{local}/public/pay-orders/{id}/events")
        );
    }
}

/// The caller, as the authorizer established it (or the failure it recorded).
pub fn auth(req: &Request) -> Result<AuthContext, ApiError> {
    let fields = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(c)) => c.authorizer.as_ref().map(|a| &a.fields),
        _ => None,
    };
    let empty = Default::default();
    AuthContext::from_authorizer(fields.unwrap_or(&empty)).map_err(ApiError::from)
}

/// The request path's non-empty segments: `/webhook-endpoints/we_1/` → `["webhook-endpoints", "we_1"]`.
pub fn path_segments(req: &Request) -> Vec<&str> {
    route_path(req)
        .split('/')
        .filter(|s| !s.is_empty())
        .collect()
}

/// The request's path as the API's routes name it. API Gateway puts a named stage in front
/// of the path (`/dev/events`: in an HTTP API's `rawPath`, and lambda_http adds it when it
/// is not there); routes, rate classes and signatures have no stage (`/events`).
pub fn route_path(req: &Request) -> &str {
    let stage = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(c)) => c.stage.as_deref(),
        _ => None,
    };
    without_stage(req.uri().path(), stage)
}

/// `path` without its leading `/{stage}` (none with the `$default` stage, or no stage).
pub fn without_stage<'a>(path: &'a str, stage: Option<&str>) -> &'a str {
    match stage {
        Some(stage) if !stage.is_empty() && stage != "$default" => {
            under_stage(path, stage).unwrap_or(path)
        }
        _ => path,
    }
}

/// `path` under the named stage `stage` (`/dev/events` → `/events`, `/dev` → `/`), or
/// `None` when it is not under it (`/devices`, `/events`).
pub fn under_stage<'a>(path: &'a str, stage: &str) -> Option<&'a str> {
    path.strip_prefix('/')?
        .strip_prefix(stage)
        .filter(|p| p.is_empty() || p.starts_with('/'))
        .map(|p| if p.is_empty() { "/" } else { p })
}

/// A path parameter parsed into a typed id; a malformed one is a 404 (it cannot exist).
pub fn path_id<T, E>(
    req: &Request,
    name: &str,
    what: &str,
    parse: impl Fn(&str) -> Result<T, E>,
) -> Result<T, ApiError> {
    let params = req.path_parameters();
    let raw = params.first(name).unwrap_or_default();
    parse(raw).map_err(|_| ApiError::not_found(what).with_param(name))
}

/// The raw body bytes, refusing bodies over [`MAX_BODY_BYTES`].
pub fn body_bytes(req: &Request) -> Result<&[u8], ApiError> {
    let bytes: &[u8] = req.body().as_ref();
    if bytes.len() > MAX_BODY_BYTES {
        return Err(ApiError::payload_too_large(MAX_BODY_BYTES));
    }
    Ok(bytes)
}

/// Refuses a body where the route takes none (a GET): it is a client mistake, and
/// ignoring it would hide one.
pub fn no_body(req: &Request) -> Result<(), ApiError> {
    if body_bytes(req)?.is_empty() {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "UNEXPECTED_BODY",
            format!("{} requests take no body", req.method()),
        ))
    }
}

/// The caller's own order, or a 404 that does not reveal whether the id exists elsewhere
/// (another organization's, the other mode's).
pub async fn load_own_order(
    store: &dyn OrderStore,
    ctx: &AuthContext,
    id: &OrderId,
) -> Result<PayOrder, ApiError> {
    store
        .get_order(id)
        .await?
        .filter(|o| o.organization_id == ctx.org_id && o.livemode == ctx.livemode())
        .ok_or_else(|| ApiError::not_found("pay order").with_param("id"))
}

const IDEMPOTENCY_HEADER: &str = "idempotency-key";

/// What makes two requests "the same request" under one idempotency key: the API key that
/// sends it (for an access token, the key it was issued from), the method, the path and the
/// body. The key is part of it so that a kept answer (a created key and its secret, say) is
/// replayed only to the key that made the request: another key of the organization and mode
/// sending the same request under the same idempotency key meets `422
/// IDEMPOTENCY_MISMATCH`, not the answer, which that key might not have been allowed to get.
pub fn request_fingerprint(key_id: &KeyId, method: &str, path: &str, body: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(key_id.as_str().as_bytes());
    h.update(b"\n");
    h.update(method.as_bytes());
    h.update(b" ");
    h.update(path.as_bytes());
    h.update(b"\n");
    h.update(body);
    hex::encode(h.finalize())
}

/// The `422` refusals that are final: facts a retry of the same request would meet again,
/// whatever the merchant does meanwhile. The order is past its expiry, or past PENDING
/// (orders never go back); the transaction is mined and failed, older than the payment
/// details, pays elsewhere or in another currency, is of another chain than the order's,
/// or already paid another order (a claim is forever); a refund transfer is mined before
/// its refund, sent from another address than the deposit address, or too small.
///
/// Every other `422` is given back. Validation failures (`AMOUNT_OUT_OF_RANGE`,
/// `UNSUPPORTED_CURRENCY`, `NETWORK_MODE_MISMATCH`, …): the request did not get to run,
/// and the corrected one may use the same key, as Stripe does. Refusals that depend on
/// state which can change: `WALLET_NOT_CONFIGURED` and `PAYMENT_DETAILS_REQUIRED` (until
/// the merchant adds the wallet or the payment details), `ROUTE_UNAVAILABLE` and
/// `EXCHANGE_OUT_OF_RANGE` (the exchange's pairs and limits move), `WEBHOOK_URL_UNRESOLVABLE`
/// (DNS), `TX_PENDING` and `TX_NOT_FOUND` (not mined, or not seen yet),
/// `ORDER_NOT_REFUNDABLE` and `REFUND_EXCEEDS_RECEIVED` (a payment may arrive or confirm,
/// a refund transfer may be reorged away). A code missing from
/// this list is given back: replaying a refusal that could have succeeded is the harm,
/// running a final one again costs a request.
const FINAL_REFUSALS: &[ErrorCode] = &[
    ErrorCode::OrderExpired,
    ErrorCode::OrderNotPending,
    ErrorCode::TxFailed,
    ErrorCode::TxBeforeOrder,
    ErrorCode::WrongRecipient,
    ErrorCode::WrongToken,
    ErrorCode::TooManyTransfers,
    ErrorCode::TooManyPayments,
    ErrorCode::WrongChain,
    ErrorCode::TxAlreadyUsed,
    ErrorCode::TxBeforeRefund,
    ErrorCode::WrongSender,
    ErrorCode::RefundTxTooSmall,
    // Refunds stay on the order, cancelled ones too: the count never goes down.
    ErrorCode::TooManyRefunds,
];

/// Whether an outcome is final, so its `Idempotency-Key` answers it again for 24 h (as
/// Stripe does): what the request did (2xx), and refusals a retry would meet again (404,
/// and the [`FINAL_REFUSALS`]). Given back, so the same key can run the request again:
/// requests that did not get to run (400, 413, 415 and 422 validation failures; 401, 403
/// not allowed; 429 limited), that conflicted with another write or the object's state
/// (409), that may succeed once something changes (the other 422s), and our failures (5xx).
pub fn is_final_outcome(status: u16, code: Option<&str>) -> bool {
    match status {
        200..=299 | 404 => true,
        422 => code.is_some_and(|c| FINAL_REFUSALS.iter().any(|f| f.as_str() == c)),
        _ => false,
    }
}

/// Runs a POST under its `Idempotency-Key`, if it has one (Stripe semantics): the same key
/// and request answer the stored response; the same key with another request, or the same
/// request from another API key ([`request_fingerprint`]), is a 422; a request still
/// running is a 409. Final outcomes ([`is_final_outcome`]) are kept for 24 h; any other
/// gives the key back so a retry runs.
///
/// A handler whose change is one store write keeps its answer in that same write:
/// [`completion`] gives what to add to the write, and [`kept`] marks the answer, so that no
/// crash can fall between the change and its kept answer (after which the key, its lock run
/// out, would run the request a second time).
pub async fn idempotent<F, Fut>(
    store: &dyn IdempotencyStore,
    ctx: &AuthContext,
    req: &Request,
    request_id: &str,
    f: F,
) -> Result<Response<Body>, ApiError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<Response<Body>, ApiError>>,
{
    idempotent_with(store, ctx, req, request_id, f, None, |_, b| Ok(b)).await
}

/// How an answer holding a secret is kept for replays ([`idempotent_sealed`]).
type Seal = std::sync::Arc<dyn Fn(&IdempotencyScope, String) -> String + Send + Sync>;

tokio::task_local! {
    /// The idempotency key the running request holds ([`idempotent`]), and how its answer
    /// is kept when it holds a secret.
    static HELD: (IdempotencyHold, Option<Seal>);
}

/// An answer's body as kept for replays: as it is, or sealed.
fn kept_body(resp: &Response<Body>, scope: &IdempotencyScope, seal: Option<&Seal>) -> String {
    let body = body_text(resp);
    match seal {
        Some(seal) => seal(scope, body),
        None => body,
    }
}

/// Marks an answer whose idempotency key was completed with its change ([`completion`]).
#[derive(Debug, Clone, Copy)]
struct KeptWithChange;

/// Inside [`idempotent`], for a request holding an `Idempotency-Key`: the key completed
/// with `resp`, for the handler's one write of its change to carry
/// ([`crate::model::NewOrder::completing`], [`crate::model::OrderUpdate::completing`]).
/// `None` without a key. Once that write succeeds, answer [`kept`]`(resp)`.
pub fn completion(resp: &Response<Body>) -> Option<IdempotencyCompletion> {
    HELD.try_with(|(hold, seal)| IdempotencyCompletion {
        hold: hold.clone(),
        response: StoredResponse {
            status: resp.status().as_u16(),
            body: kept_body(resp, &hold.scope, seal.as_ref()),
        },
        at: Timestamp::now(),
    })
    .ok()
}

/// The [`completion`] of the answer `respond` gives an order, for the write of that order's
/// change to carry ([`crate::store::KeepAnswer`]).
pub fn keeping<'a>(
    respond: &'a (impl Fn(&PayOrder) -> Response<Body> + Sync),
) -> impl Fn(&PayOrder) -> Option<IdempotencyCompletion> + Sync + 'a {
    move |o| completion(&respond(o))
}

/// `resp`, whose [`completion`] was written with the change: [`idempotent`] does not write
/// the key again.
pub fn kept(mut resp: Response<Body>) -> Response<Body> {
    resp.extensions_mut().insert(KeptWithChange);
    resp
}

/// An answer's body as kept for replays.
fn body_text(resp: &Response<Body>) -> String {
    match resp.body() {
        Body::Text(t) => t.clone(),
        Body::Binary(b) => String::from_utf8_lossy(b).into_owned(),
        _ => String::new(),
    }
}

/// [`idempotent`] for answers that hold a secret shown once (a new API key and its
/// secret): the kept response is sealed with the master key, bound to its idempotency
/// key, so no secret sits in the store in plaintext while it is kept.
pub async fn idempotent_sealed<F, Fut>(
    store: &dyn IdempotencyStore,
    master: &crate::auth::MasterKey,
    ctx: &AuthContext,
    req: &Request,
    request_id: &str,
    f: F,
) -> Result<Response<Body>, ApiError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<Response<Body>, ApiError>>,
{
    let master_key = master.clone();
    let seal: Seal = std::sync::Arc::new(move |scope: &IdempotencyScope, body: String| {
        master_key.seal(&kept_response_context(scope), &body)
    });
    let reveal = |scope: &IdempotencyScope, kept: String| {
        master
            .open(&kept_response_context(scope), &kept)
            .map_err(|e| {
                tracing::error!(error = %e, "a sealed idempotent response does not open");
                ApiError::internal()
            })
    };
    idempotent_with(store, ctx, req, request_id, f, Some(seal), reveal).await
}

/// What a sealed kept response is bound to.
fn kept_response_context(scope: &IdempotencyScope) -> String {
    format!("idempotent-response:{}", scope.storage_key())
}

/// The idempotency flow; `seal` turns a final answer's body into what is stored (`None`: as
/// it is), and `reveal` a stored body back into the answer. The handler may keep its answer
/// with its change ([`completion`], [`kept`]).
async fn idempotent_with<F, Fut>(
    store: &dyn IdempotencyStore,
    ctx: &AuthContext,
    req: &Request,
    request_id: &str,
    f: F,
    seal: Option<Seal>,
    reveal: impl FnOnce(&IdempotencyScope, String) -> Result<String, ApiError>,
) -> Result<Response<Body>, ApiError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<Response<Body>, ApiError>>,
{
    let Some(raw) = req.headers().get(IDEMPOTENCY_HEADER) else {
        return f().await;
    };
    let key = raw
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= 255 && k.bytes().all(|b| (0x21..0x7f).contains(&b)))
        .ok_or_else(|| {
            ApiError::bad_request(
                "INVALID_IDEMPOTENCY_KEY",
                "Idempotency-Key must be 1-255 printable ASCII characters without spaces",
            )
        })?;
    let scope = IdempotencyScope {
        organization_id: ctx.org_id.clone(),
        mode: ctx.mode,
        key: key.to_owned(),
    };
    let fingerprint = request_fingerprint(
        &ctx.key_id,
        req.method().as_str(),
        route_path(req),
        body_bytes(req)?,
    );
    let now = Timestamp::now();
    match store.idempotency_begin(&scope, &fingerprint, now).await? {
        IdempotencyBegin::Replay(stored) => {
            let body = reveal(&scope, stored.body)?;
            let mut resp = Response::new(Body::Text(body));
            *resp.status_mut() = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            resp.headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
            Ok(resp)
        }
        IdempotencyBegin::InFlight => Err(ApiError::conflict(
            "IDEMPOTENCY_IN_FLIGHT",
            "a request with this Idempotency-Key is still being processed",
        )),
        IdempotencyBegin::Mismatch => Err(ApiError::unprocessable(
            "IDEMPOTENCY_MISMATCH",
            "this Idempotency-Key was used with a different request, or by another API key",
        )),
        IdempotencyBegin::Started(hold) => {
            let outcome = HELD.scope((hold.clone(), seal.clone()), f()).await;
            let (resp, code) = match outcome {
                Ok(r) => (r, None),
                Err(e) => (error_response(&e, request_id), Some(e.code)),
            };
            let status = resp.status().as_u16();
            if resp.extensions().get::<KeptWithChange>().is_some() {
                // Completed by the change's own write.
            } else if is_final_outcome(status, code) {
                let body = kept_body(&resp, &scope, seal.as_ref());
                match store
                    .idempotency_complete(&hold, &StoredResponse { status, body }, Timestamp::now())
                    .await
                {
                    Ok(true) => {}
                    // This request outlived its lock and a retry took the key over: the
                    // retry's answer is the one kept.
                    Ok(false) => tracing::warn!(
                        "an idempotency key was taken over before its request completed"
                    ),
                    // What was done stands, and so does its answer: a 5xx now would have
                    // the client retry a request that already ran. (The key stays held
                    // until its lock runs out.)
                    Err(e) => {
                        tracing::error!(error = %e, "could not keep the answer of an idempotency key")
                    }
                }
            } else if let Err(e) = store.idempotency_release(&hold).await {
                tracing::warn!(error = %e, "could not release an idempotency key");
            }
            Ok(resp)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{ErrorCode, FINAL_REFUSALS, is_final_outcome, without_stage};

    /// A named stage leads the path API Gateway hands a function; routes do not have it.
    #[test]
    fn a_path_loses_only_its_own_stage() {
        assert_eq!(without_stage("/dev/events", Some("dev")), "/events");
        assert_eq!(without_stage("/dev", Some("dev")), "/");
        // Not a stage prefix: a route that merely starts with the same letters.
        assert_eq!(without_stage("/devices/1", Some("dev")), "/devices/1");
        assert_eq!(without_stage("/events", Some("dev")), "/events");
        assert_eq!(without_stage("/prod/events", Some("dev")), "/prod/events");
        // The `$default` stage (and none) has no prefix.
        assert_eq!(
            without_stage("/dev/events", Some("$default")),
            "/dev/events"
        );
        assert_eq!(without_stage("/dev/events", None), "/dev/events");
    }

    #[test]
    fn only_final_outcomes_are_kept_for_replay() {
        let kept = [
            (200, None),
            (201, None),
            (404, Some("RESOURCE_NOT_FOUND")),
            (422, Some("ORDER_EXPIRED")),
            (422, Some("ORDER_NOT_PENDING")),
            (422, Some("TX_ALREADY_USED")),
            (422, Some("TX_FAILED")),
            (422, Some("TX_BEFORE_ORDER")),
            (422, Some("WRONG_RECIPIENT")),
            (422, Some("WRONG_TOKEN")),
            (422, Some("TOO_MANY_TRANSFERS")),
            (422, Some("WRONG_CHAIN")),
        ];
        let released = [
            (400, Some("INVALID_AMOUNT")),
            (401, Some("INVALID_SIGNATURE")),
            (403, Some("INSUFFICIENT_SCOPE")),
            (409, Some("CONCURRENT_UPDATE")),
            (409, Some("ORDER_NOT_PAYABLE")),
            (413, Some("PAYLOAD_TOO_LARGE")),
            (415, Some("UNSUPPORTED_MEDIA_TYPE")),
            // Validation failures: the corrected request may use the same key.
            (422, Some("AMOUNT_OUT_OF_RANGE")),
            (422, Some("UNSUPPORTED_CURRENCY")),
            (422, Some("NETWORK_MODE_MISMATCH")),
            (422, Some("MODE_NOT_SUPPORTED")),
            // Refusals that change once the merchant acts, or the world moves.
            (422, Some("WALLET_NOT_CONFIGURED")),
            (422, Some("PAYMENT_DETAILS_REQUIRED")),
            (422, Some("ROUTE_UNAVAILABLE")),
            (422, Some("EXCHANGE_OUT_OF_RANGE")),
            (422, Some("WEBHOOK_URL_UNRESOLVABLE")),
            (422, Some("TX_PENDING")),
            (422, Some("TX_NOT_FOUND")),
            // A code nobody classed is not kept.
            (422, Some("SOMETHING_NEW")),
            (422, None),
            (429, Some("RATE_LIMITED")),
            (500, Some("INTERNAL_ERROR")),
            (502, Some("PRICE_UNAVAILABLE")),
            (503, Some("CHAIN_UNAVAILABLE")),
        ];
        for (status, code) in kept {
            assert!(is_final_outcome(status, code), "{status} {code:?}");
        }
        for (status, code) in released {
            assert!(!is_final_outcome(status, code), "{status} {code:?}");
        }
    }

    /// Every `422` of the catalogue is classed knowingly: a new one fails here until it is
    /// added to [`FINAL_REFUSALS`] or to the refusals given back below.
    #[test]
    fn every_422_code_is_classed_final_or_not() {
        use ErrorCode::*;
        let given_back = [
            // Validation failures.
            IdempotencyMismatch,
            AmountOutOfRange,
            UnsupportedCurrency,
            UnsupportedFiatUnit,
            InvalidBlockchain,
            NetworkModeMismatch,
            XpubNotSupported,
            WebhookUrlForbidden,
            WebhookUrlNotAllowed,
            ModeNotSupported,
            RefundAddressRequired,
            // State that can change.
            TooManyEndpoints,
            TooManyKeys,
            OrderNotRefundable,
            RefundExceedsReceived,
            WebhookUrlUnresolvable,
            TxNotFound,
            TxPending,
            PaymentDetailsRequired,
            WalletNotConfigured,
            RouteUnavailable,
            ExchangeOutOfRange,
            // Taken once the transaction it would replace is given up.
            RefundTxNotAReplacement,
        ];
        for code in ErrorCode::ALL
            .iter()
            .filter(|c| c.statuses().contains(&422))
        {
            let is_final = FINAL_REFUSALS.contains(code);
            assert_ne!(
                is_final,
                given_back.contains(code),
                "{} must be classed once: final (kept for replay) or given back",
                code.as_str()
            );
            assert_eq!(is_final_outcome(422, Some(code.as_str())), is_final);
        }
    }
}
