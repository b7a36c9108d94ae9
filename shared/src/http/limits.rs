//! Per-key rate limits of the authenticated API. Each route belongs to a [`RateClass`] with
//! an hourly budget per API key (the organization may have its own). Counting is a sliding
//! window made of two fixed hourly windows: the requests of the current hour plus the
//! previous hour's, weighted by how much of it the sliding hour still covers. Every answer
//! carries `X-RateLimit-Limit`, `-Remaining`, `-Reset` (epoch seconds when the current hour
//! ends), `-Window` (3600) and `-Policy` (`sliding-window`); over the limit is
//! `429 RATE_LIMITED` with `Retry-After`. The previous hour's count is final once that hour
//! has ended, so each process reads it once per key ([`EndedWindows`]).
//!
//! [`serve_limited`] (and [`serve_read`] for functions that only read) runs an authenticated
//! handler inside all of this.

use super::{ApiError, Body, Request, Response};
use crate::auth::AuthContext;
use crate::model::{RateClass, Timestamp};
use crate::store::{RateLimitStore, Store};
use lambda_http::http::{HeaderValue, header};
use std::future::Future;

/// The length of a window, in seconds.
pub const WINDOW_SECS: i64 = 3600;

/// The class of an authenticated route, by method and path.
pub fn route_class(method: &str, path: &str) -> RateClass {
    let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let first = parts.first().copied().unwrap_or_default();
    let collection = parts.len() == 1;
    match (first, method) {
        ("analytics", _) => RateClass::Analytics,
        ("webhook-endpoints" | "webhook-secret", _) => RateClass::Webhooks,
        ("merchant-wallets" | "settings" | "api-keys", _) => RateClass::Settings,
        // The process route records a payment although it is a GET.
        ("pay-orders", "GET") if parts.last() == Some(&"process") => RateClass::Create,
        (_, "GET" | "HEAD") if collection => RateClass::List,
        (_, "GET" | "HEAD") => RateClass::Read,
        _ => RateClass::Create,
    }
}

/// Where a key stands against one class's limit, after counting this request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub class: RateClass,
    pub limit: u64,
    /// The requests of the sliding hour, this one included.
    pub used: u64,
    /// When the current fixed window ends (epoch seconds).
    pub reset: i64,
    /// Seconds until a request would be allowed again, when this one is over the limit.
    pub retry_after: Option<u64>,
}

impl Quota {
    /// The quota from the previous and current windows' counts, `elapsed` seconds into
    /// the current window.
    pub fn from_counts(
        class: RateClass,
        limit: u64,
        previous: u64,
        current: u64,
        window_start: i64,
        elapsed: i64,
    ) -> Self {
        let w = WINDOW_SECS as u128;
        let elapsed = elapsed.clamp(0, WINDOW_SECS - 1) as u128;
        let carried = (previous as u128 * (w - elapsed) / w) as u64;
        let used = carried.saturating_add(current);
        let retry_after =
            (used > limit).then(|| seconds_until_allowed(limit, previous, current, elapsed));
        Self {
            class,
            limit,
            used,
            reset: window_start + WINDOW_SECS,
            retry_after,
        }
    }

    pub fn remaining(&self) -> u64 {
        self.limit.saturating_sub(self.used)
    }

    /// The rate-limit headers (and `Retry-After` when over the limit) on an answer.
    pub fn write_headers<B>(&self, resp: &mut Response<B>) {
        let h = resp.headers_mut();
        let mut put = |name: &'static str, value: String| {
            if let Ok(v) = HeaderValue::from_str(&value) {
                h.insert(name, v);
            }
        };
        put("x-ratelimit-limit", self.limit.to_string());
        put("x-ratelimit-remaining", self.remaining().to_string());
        put("x-ratelimit-reset", self.reset.to_string());
        put("x-ratelimit-window", WINDOW_SECS.to_string());
        put("x-ratelimit-policy", "sliding-window".to_owned());
        if let Some(after) = self.retry_after {
            put(header::RETRY_AFTER.as_str(), after.to_string());
        }
    }
}

/// Seconds until one more request fits under `limit`, if none comes meanwhile.
fn seconds_until_allowed(limit: u64, previous: u64, current: u64, elapsed: u128) -> u64 {
    let w = WINDOW_SECS as u128;
    let (limit, previous, current) = (limit as u128, previous as u128, current as u128);
    let left = w - elapsed;
    let wait = if current < limit {
        // Within this window, as the previous one's share falls:
        // previous * (left - t) < (limit - current) * w.
        let excess = (previous * left + 1).saturating_sub((limit - current) * w);
        excess.div_ceil(previous.max(1))
    } else {
        // Not before this window ends; then its count fades the same way:
        // current * (w - s) < limit * w.
        left + ((current - limit) * w / current.max(1) + 1).min(w)
    };
    wait.clamp(1, 2 * w) as u64
}

/// How long after a window ends its count may still grow: a request counted in the window's
/// last moments may reach the store a little after it ended.
const SETTLE_SECS: i64 = 10;

/// The ended windows' counts this process has read, kept while they are the previous window.
static ENDED: std::sync::LazyLock<EndedWindows> = std::sync::LazyLock::new(EndedWindows::new);

/// The counts of the previous window, read once per key by each process. A window's count no
/// longer changes once it has ended (and settled), and every request of the next hour needs
/// it: an API request reads it from the store only the first time its key is seen in the
/// window (a warm Lambda sandbox or the local host serves many).
struct EndedWindows(std::sync::Mutex<EndedCounts>);

struct EndedCounts {
    /// The current window's start: the counts below are of the window before it.
    window: i64,
    counts: std::collections::HashMap<String, u64>,
}

impl EndedWindows {
    /// At most this many keys are kept; past it the map starts again (each key is then read
    /// from the store once more).
    const MAX_KEYS: usize = 10_000;

    fn new() -> Self {
        Self(std::sync::Mutex::new(EndedCounts {
            window: i64::MIN,
            counts: std::collections::HashMap::new(),
        }))
    }

    /// The count of `key`, the window before the one that started at `start`, `now` being
    /// the time in epoch seconds: from this process's memory when it has it, else from the
    /// store (remembered once the window has settled).
    async fn hits(
        &self,
        store: &dyn RateLimitStore,
        key: &str,
        start: i64,
        now: i64,
    ) -> crate::store::StoreResult<u64> {
        if let Some(hits) = self.known(key, start) {
            return Ok(hits);
        }
        let hits = store.hits(key).await?;
        if now >= start + SETTLE_SECS {
            let mut ended = self.0.lock().unwrap_or_else(|e| e.into_inner());
            // A request of an earlier hour that finishes late leaves the newer counts alone.
            if start > ended.window || ended.counts.len() >= Self::MAX_KEYS {
                ended.window = start;
                ended.counts.clear();
            }
            if start == ended.window {
                ended.counts.insert(key.to_owned(), hits);
            }
        }
        Ok(hits)
    }

    fn known(&self, key: &str, start: i64) -> Option<u64> {
        let ended = self.0.lock().unwrap_or_else(|e| e.into_inner());
        (ended.window == start).then(|| ended.counts.get(key).copied())?
    }
}

/// Counts the request against its key's limit for the route's class.
pub async fn count_request(
    store: &dyn RateLimitStore,
    ctx: &AuthContext,
    req: &Request,
) -> Option<Quota> {
    let class = route_class(req.method().as_str(), super::route_path(req));
    let now = Timestamp::now().unix();
    let start = now.div_euclid(WINDOW_SECS) * WINDOW_SECS;
    let key = |start: i64| format!("key#{}#{}#{start}", ctx.key_id, class.as_str());
    // A counter lives through the next window too, where it is the previous one.
    let keep_until = Timestamp::from_unix(start + 2 * WINDOW_SECS).unwrap_or_else(Timestamp::now);
    let (previous_key, current_key) = (key(start - WINDOW_SECS), key(start));
    let (limits, previous, current) = tokio::join!(
        store.get_rate_limits(&ctx.org_id),
        ENDED.hits(store, &previous_key, start, now),
        store.count_hit(&current_key, keep_until),
    );
    match (limits, previous, current) {
        (Ok(limits), Ok(previous), Ok(current)) => Some(Quota::from_counts(
            class,
            limits.per_hour(class),
            previous,
            current,
            start,
            now - start,
        )),
        (l, p, c) => {
            // Counting is a safeguard: when the store cannot count, the request goes on.
            let error = [l.err(), p.err(), c.err()].into_iter().flatten().next();
            tracing::warn!(error = ?error, "rate limit not counted");
            None
        }
    }
}

/// Runs an authenticated handler that may change things: as [`serve_read`], and a mutating
/// request that was not refused for its rate gets its audit entry.
pub async fn serve_limited<F, Fut>(store: &dyn Store, req: &Request, f: F) -> Response<Body>
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = Result<Response<Body>, ApiError>>,
{
    let (resp, caller) = limited(store, req, f).await;
    if let Some(ctx) = caller.filter(|_| super::audit::is_mutating(req)) {
        // The request id the answer carries.
        let rid = resp
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        super::audit::record(store, &ctx, req, &rid, &resp).await;
    }
    resp
}

/// Runs an authenticated handler that only reads (its routes are all `GET`): the caller's
/// context, its rate limit (a `429` when over it), then `f`; the rate-limit headers go on
/// every answer, errors included.
pub async fn serve_read<F, Fut>(store: &dyn RateLimitStore, req: &Request, f: F) -> Response<Body>
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = Result<Response<Body>, ApiError>>,
{
    limited(store, req, f).await.0
}

/// The answer, and the caller when the request got past its rate limit.
async fn limited<F, Fut>(
    store: &dyn RateLimitStore,
    req: &Request,
    f: F,
) -> (Response<Body>, Option<AuthContext>)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = Result<Response<Body>, ApiError>>,
{
    let mut quota = None;
    let mut caller = None;
    let mut resp = super::serve(req, |rid| {
        let (quota, caller) = (&mut quota, &mut caller);
        async move {
            let ctx = super::auth(req)?;
            let q = count_request(store, &ctx, req).await;
            *quota = q;
            if let Some(q) = q.filter(|q| q.retry_after.is_some()) {
                return Err(ApiError::rate_limited(
                    "RATE_LIMITED",
                    format!(
                        "this API key made more than {} {} requests in the last hour; retry in {} s",
                        q.limit,
                        q.class.as_str(),
                        q.retry_after.unwrap_or(1)
                    ),
                ));
            }
            *caller = Some(ctx);
            f(rid).await
        }
    })
    .await;
    if let Some(q) = quota {
        q.write_headers(&mut resp);
    }
    (resp, caller)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{OrgId, RateLimits};
    use crate::store::StoreResult;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// A store whose previous-window counter is whatever the test sets, counting its reads.
    #[derive(Default)]
    struct Counter {
        hits: AtomicU64,
        reads: AtomicU64,
    }

    #[async_trait::async_trait]
    impl RateLimitStore for Counter {
        async fn count_hit(&self, _: &str, _: Timestamp) -> StoreResult<u64> {
            unreachable!("not used here")
        }
        async fn hits(&self, _: &str) -> StoreResult<u64> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            Ok(self.hits.load(Ordering::SeqCst))
        }
        async fn get_rate_limits(&self, _: &OrgId) -> StoreResult<RateLimits> {
            unreachable!("not used here")
        }
        async fn put_rate_limits(&self, _: &OrgId, _: &RateLimits) -> StoreResult<()> {
            unreachable!("not used here")
        }
    }

    #[tokio::test]
    async fn an_ended_window_is_read_once_it_has_settled_and_not_after() {
        let (store, ended) = (Counter::default(), EndedWindows::new());
        let start = 7200;
        store.hits.store(5, Ordering::SeqCst);
        // Within the first seconds of the window, late requests may still count in the
        // previous one: read every time, and the late one is seen.
        assert_eq!(ended.hits(&store, "k", start, start + 1).await.unwrap(), 5);
        store.hits.store(6, Ordering::SeqCst);
        assert_eq!(ended.hits(&store, "k", start, start + 2).await.unwrap(), 6);
        assert_eq!(store.reads.load(Ordering::SeqCst), 2);
        // Settled: read once more, then from memory for the rest of the window.
        assert_eq!(ended.hits(&store, "k", start, start + 60).await.unwrap(), 6);
        store.hits.store(99, Ordering::SeqCst);
        assert_eq!(
            ended.hits(&store, "k", start, start + 3599).await.unwrap(),
            6
        );
        assert_eq!(store.reads.load(Ordering::SeqCst), 3);
        // Another key is its own count.
        assert_eq!(
            ended.hits(&store, "k2", start, start + 61).await.unwrap(),
            99
        );
        assert_eq!(store.reads.load(Ordering::SeqCst), 4);
        // The next window's previous one is another: read again.
        store.hits.store(7, Ordering::SeqCst);
        let next = start + WINDOW_SECS;
        assert_eq!(ended.hits(&store, "k", next, next + 60).await.unwrap(), 7);
        assert_eq!(store.reads.load(Ordering::SeqCst), 5);
        // And from memory for the rest of that one.
        assert_eq!(ended.hits(&store, "k", next, next + 61).await.unwrap(), 7);
        assert_eq!(store.reads.load(Ordering::SeqCst), 5);
        // A slow request of the hour before reads its own count, and neither takes the
        // newer hour's place nor is remembered.
        store.hits.store(5, Ordering::SeqCst);
        assert_eq!(ended.hits(&store, "k", start, next + 62).await.unwrap(), 5);
        assert_eq!(ended.hits(&store, "k", start, next + 63).await.unwrap(), 5);
        assert_eq!(store.reads.load(Ordering::SeqCst), 7);
        assert_eq!(ended.hits(&store, "k", next, next + 64).await.unwrap(), 7);
        assert_eq!(store.reads.load(Ordering::SeqCst), 7);
    }

    #[tokio::test]
    async fn a_full_memory_starts_again() {
        let (store, ended) = (Counter::default(), EndedWindows::new());
        for i in 0..EndedWindows::MAX_KEYS {
            ended.hits(&store, &format!("k{i}"), 0, 60).await.unwrap();
        }
        ended.hits(&store, "one more", 0, 60).await.unwrap();
        let reads = store.reads.load(Ordering::SeqCst);
        ended.hits(&store, "k0", 0, 60).await.unwrap();
        assert_eq!(
            store.reads.load(Ordering::SeqCst),
            reads + 1,
            "k0 was forgotten"
        );
        ended.hits(&store, "one more", 0, 60).await.unwrap();
        assert_eq!(
            store.reads.load(Ordering::SeqCst),
            reads + 1,
            "the newest is kept"
        );
    }

    #[test]
    fn routes_fall_into_their_classes() {
        for (method, path, class) in [
            ("POST", "/pay-orders", RateClass::Create),
            ("POST", "/pay-orders/po_1/cancel", RateClass::Create),
            ("GET", "/pay-orders/po_1/process", RateClass::Create),
            ("GET", "/pay-orders/po_1", RateClass::Read),
            ("GET", "/pay-orders/po_1/quote", RateClass::Read),
            ("GET", "/events/evt_1", RateClass::Read),
            ("GET", "/pay-orders", RateClass::List),
            ("GET", "/events", RateClass::List),
            ("GET", "/analytics", RateClass::Analytics),
            ("GET", "/webhook-endpoints", RateClass::Webhooks),
            ("POST", "/webhook-endpoints/we_1/test", RateClass::Webhooks),
            ("GET", "/webhook-secret", RateClass::Webhooks),
            ("PUT", "/merchant-wallets/8453", RateClass::Settings),
            ("POST", "/settings/checkout", RateClass::Settings),
            ("POST", "/api-keys", RateClass::Settings),
        ] {
            assert_eq!(route_class(method, path), class, "{method} {path}");
        }
    }

    fn quota(limit: u64, previous: u64, current: u64, elapsed: i64) -> Quota {
        Quota::from_counts(RateClass::Create, limit, previous, current, 7200, elapsed)
    }

    #[test]
    fn the_sliding_hour_weighs_the_previous_window_by_what_it_still_covers() {
        let q = quota(1000, 0, 1, 0);
        assert_eq!(
            (q.used, q.remaining(), q.reset, q.retry_after),
            (1, 999, 10_800, None)
        );
        // A quarter into this hour, three quarters of the last one still count.
        assert_eq!(quota(1000, 400, 100, 900).used, 400);
        assert_eq!(quota(1000, 400, 100, 900).remaining(), 600);
        // Exactly at the limit is allowed; one more is not.
        assert_eq!(quota(10, 0, 10, 100).retry_after, None);
        assert!(quota(10, 0, 11, 100).retry_after.is_some());
        assert_eq!(quota(10, 8, 5, 1800).used, 9); // half of 8, and 5
        assert!(quota(10, 8, 7, 1800).retry_after.is_some());
    }

    #[test]
    fn retry_after_is_when_one_more_request_would_fit() {
        // Simulate: after waiting the advised time, with no requests meanwhile, the next
        // request (counted) fits; one second earlier it would not have.
        for (limit, previous, current, elapsed) in [
            (10u64, 20u64, 2u64, 600i64),
            (10, 0, 11, 100),
            (10, 0, 40, 3599),
            (100, 150, 60, 1200),
            (1, 1, 2, 0),
            (1000, 5000, 1, 10),
        ] {
            let q = quota(limit, previous, current, elapsed);
            let wait = q.retry_after.expect("over the limit") as i64;
            let fits = |t: i64| {
                let at = elapsed + t;
                let (p, c, e) = if at < WINDOW_SECS {
                    (previous, current, at)
                } else if at < 2 * WINDOW_SECS {
                    (current, 0, at - WINDOW_SECS)
                } else {
                    (0, 0, 0)
                };
                quota(limit, p, c + 1, e).retry_after.is_none()
            };
            assert!(
                fits(wait),
                "{limit} {previous} {current} {elapsed}: {wait} s is not enough"
            );
            assert!(
                !fits(wait - 1) || wait == 1,
                "{limit} {previous} {current} {elapsed}: {wait} s is more than needed"
            );
        }
    }
}
