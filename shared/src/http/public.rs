//! What the public routes (no API key; the order id is the capability) share: CORS for any
//! origin without credentials, preflights answered, and per-address limits (an IPv4 address, an IPv6 /64) in fixed one-minute
//! windows (order views and event streams 60, QR codes 100) answered with `429`, our error
//! shape and `Retry-After`.

use super::{ApiError, Body, Request, RequestExt, Response};
use crate::model::Timestamp;
use crate::store::RateLimitStore;
use lambda_http::http::{HeaderValue, StatusCode, header};
use lambda_http::request::RequestContext;
use std::future::Future;

/// The per-IP budgets of the public routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Order views, currency choices and event streams: 60 a minute.
    Views,
    /// QR codes: 100 a minute.
    QrCodes,
    /// Access tokens (`POST /auth/token`, before any key is known): 60 a minute.
    Tokens,
}

impl Limit {
    pub const WINDOW_SECS: i64 = 60;

    pub fn per_minute(self) -> u64 {
        match self {
            Limit::Views => 60,
            Limit::QrCodes => 100,
            Limit::Tokens => 60,
        }
    }

    fn bucket(self) -> &'static str {
        match self {
            Limit::Views => "views",
            Limit::QrCodes => "qr",
            Limit::Tokens => "token",
        }
    }
}

/// The caller's address as API Gateway (or the Function URL) saw it.
pub fn source_ip(req: &Request) -> String {
    match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(c)) => c.http.source_ip.clone(),
        _ => None,
    }
    .unwrap_or_else(|| "unknown".into())
}

/// Whose budget a request from `ip` counts against: an IPv4 address, or the /64 network of
/// an IPv6 one. One IPv6 host usually holds a whole /64 (SLAAC, privacy addresses), so
/// budgets per full address would give a single caller 2^64 of them.
fn budget_holder(ip: &str) -> std::borrow::Cow<'_, str> {
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string().into(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3]).into()
            }
        },
        // An IPv4 address (or text that is no address) is its own budget, as written.
        _ => ip.into(),
    }
}

/// Seconds until the current window ends (at least 1).
fn seconds_left_in_window(now: Timestamp) -> i64 {
    (Limit::WINDOW_SECS - now.unix().rem_euclid(Limit::WINDOW_SECS)).max(1)
}

/// Counts this request against the caller's budget; over it is a 429.
pub async fn check_limit(
    store: &dyn RateLimitStore,
    limit: Limit,
    req: &Request,
) -> Result<(), ApiError> {
    let now = Timestamp::now();
    let window = now.unix().div_euclid(Limit::WINDOW_SECS) * Limit::WINDOW_SECS;
    let key = format!(
        "{}#{}#{window}",
        limit.bucket(),
        budget_holder(&source_ip(req))
    );
    let ends = Timestamp::from_unix(window + Limit::WINDOW_SECS).unwrap_or(now);
    let hits = store.count_hit(&key, ends).await?;
    if hits > limit.per_minute() {
        return Err(ApiError::rate_limited(
            "RATE_LIMITED",
            format!(
                "more than {} requests a minute from your address; retry in {} s",
                limit.per_minute(),
                seconds_left_in_window(now)
            ),
        ));
    }
    Ok(())
}

/// CORS for a public answer: any origin, no credentials; our headers readable.
pub fn cors<B>(resp: &mut Response<B>) {
    let h = resp.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("Retry-After, X-Request-Id"),
    );
}

/// The answer to a CORS preflight of a public route.
pub fn preflight(req: &Request) -> Response<Body> {
    let mut resp = Response::new(Body::Empty);
    *resp.status_mut() = StatusCode::NO_CONTENT;
    cors(&mut resp);
    let h = resp.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, OPTIONS"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Content-Type, Last-Event-ID"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    if let Ok(v) = HeaderValue::from_str(&super::request_id(req)) {
        h.insert("x-request-id", v);
    }
    resp
}

/// Runs a public handler: the caller's budget first, then `f`; CORS on every answer and
/// `Retry-After` on a 429.
pub async fn guarded<F, Fut>(
    store: &dyn RateLimitStore,
    limit: Limit,
    req: &Request,
    f: F,
) -> Response<Body>
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = Result<Response<Body>, ApiError>>,
{
    let mut resp = super::serve(req, |rid| async move {
        check_limit(store, limit, req).await?;
        f(rid).await
    })
    .await;
    retry_after_on_429(&mut resp);
    cors(&mut resp);
    resp
}

/// `Retry-After` on a `429` of a per-address limit: the seconds left in its window.
pub fn retry_after_on_429<B>(resp: &mut Response<B>) {
    if resp.status() == StatusCode::TOO_MANY_REQUESTS {
        let after = seconds_left_in_window(Timestamp::now()).to_string();
        if let Ok(v) = HeaderValue::from_str(&after) {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::budget_holder;

    #[test]
    fn an_ipv6_network_of_64_bits_shares_one_budget() {
        assert_eq!(
            budget_holder("2001:db8:1:2::1"),
            budget_holder("2001:db8:1:2:ffff::9")
        );
        assert_eq!(budget_holder("2001:db8:1:2::1"), "2001:db8:1:2::/64");
        assert_ne!(
            budget_holder("2001:db8:1:2::1"),
            budget_holder("2001:db8:1:3::1")
        );
        // An IPv4 address, also when written IPv4-mapped, is its own budget.
        assert_eq!(budget_holder("203.0.113.7"), "203.0.113.7");
        assert_eq!(budget_holder("::ffff:203.0.113.7"), "203.0.113.7");
        assert_ne!(budget_holder("203.0.113.7"), budget_holder("203.0.113.8"));
        assert_eq!(budget_holder("unknown"), "unknown");
    }
}
