//! Webhooks: Standard Webhooks signing, the SSRF guard for destination URLs, the retry
//! schedule, the delivery state machine ([`delivery`]) and the delivery queue message. One
//! place for each rule; the functions only call these.

pub mod delivery;
mod message;
mod ssrf;

pub use message::{DeliveryMessage, FirstAttempt, MessageError};
pub use ssrf::{UrlRefusal, check_literal_address, check_url, keep_allowed, resolve_destination};

use crate::model::random_bytes;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

const SECRET_PREFIX: &str = "whsec_";

/// Where an order event also goes: the order's own `webhook_url`, when it has one.
pub fn order_webhook_url(event: &crate::model::Event) -> Option<&str> {
    event.order_id.as_ref()?;
    event.data.object.get("webhook_url")?.as_str()
}

/// The sealing context of an endpoint's signing secret.
pub fn endpoint_secret_context(id: &crate::model::WebhookEndpointId) -> String {
    format!("webhook-secret:{id}")
}

/// The sealing context of an organization's signing secret for orders' own `webhook_url`.
pub fn order_secret_context(org: &crate::model::OrgId, mode: crate::model::KeyMode) -> String {
    format!("order-webhook-secret:{org}:{mode}")
}

/// A new signing secret: `whsec_` + base64 of 24 random bytes (what Standard Webhooks
/// libraries expect).
pub fn generate_secret() -> String {
    format!("{SECRET_PREFIX}{}", STANDARD.encode(random_bytes::<24>()))
}

/// The key bytes of a `whsec_…` secret.
pub fn secret_key(secret: &str) -> Option<Vec<u8>> {
    STANDARD.decode(secret.strip_prefix(SECRET_PREFIX)?).ok()
}

/// `base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}"))`.
pub fn sign(secret: &str, msg_id: &str, timestamp: i64, body: &str) -> Option<String> {
    let key = secret_key(secret)?;
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key).ok()?;
    mac.update(format!("{msg_id}.{timestamp}.{body}").as_bytes());
    Some(STANDARD.encode(mac.finalize().into_bytes()))
}

/// The `webhook-signature` header: one `v1,<sig>` per secret, space-separated.
pub fn signature_header<'a>(
    secrets: impl IntoIterator<Item = &'a str>,
    msg_id: &str,
    timestamp: i64,
    body: &str,
) -> String {
    secrets
        .into_iter()
        .filter_map(|s| sign(s, msg_id, timestamp, body))
        .map(|sig| format!("v1,{sig}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Seconds to wait after each failed attempt (the first retry about 5 s after the first
/// failure, then 5 min, 30 min, 2 h, 5 h, 10 h, and every 10 h after that).
pub const RETRY_SCHEDULE_SECS: [u64; 7] = [5, 300, 1800, 7200, 18_000, 36_000, 36_000];
/// Retries continue until this long after the delivery was created: at least 3 days.
pub const RETRY_FOR_SECS: i64 = 3 * 24 * 3600;
/// An endpoint failing without a success for this long is disabled.
pub const DISABLE_AFTER_FAILING_SECS: i64 = 3 * 24 * 3600;
/// A run of failures with no failure for this long is over: nothing was attempted in
/// between (a delivery being retried fails at most 12 h apart: 10 h and its jitter, or the
/// longest `Retry-After`), so it says nothing of those hours. A quiet endpoint that failed
/// once, on its own (with `max_retries` 0), then fails again days later, starts a new run
/// instead of being disabled at once.
pub const FAILING_RUN_GAP_SECS: i64 = 24 * 3600;
/// How stale an endpoint's `last_failed_at` may get before a failure writes it again.
pub(crate) const LAST_FAILED_GRAIN_SECS: i64 = 3600;
/// Longest `Retry-After` we honour.
const MAX_RETRY_AFTER_SECS: u64 = 12 * 3600;

/// The wait before the next attempt after `attempts` failed ones, or `None` when the
/// delivery has been retried for [`RETRY_FOR_SECS`] and is failed. `retry_after` (seconds,
/// from the response) is honoured as a minimum; `jitter` in `[0, 1)` spreads retries by
/// ±20 % so a recovering endpoint is not hit by every delivery at once.
pub fn next_retry_delay(
    attempts: u32,
    age_secs: i64,
    retry_after: Option<u64>,
    jitter: f64,
) -> Option<u64> {
    if age_secs >= RETRY_FOR_SECS {
        return None;
    }
    let idx = (attempts.max(1) as usize - 1).min(RETRY_SCHEDULE_SECS.len() - 1);
    let base = RETRY_SCHEDULE_SECS[idx] as f64;
    let jittered = (base * (0.8 + 0.4 * jitter.clamp(0.0, 1.0))).round() as u64;
    Some(
        jittered
            .max(retry_after.unwrap_or(0).min(MAX_RETRY_AFTER_SECS))
            .max(1),
    )
}

/// A random number in `[0, 1)` for jitter (not for anything secret).
pub fn jitter() -> f64 {
    let b = random_bytes::<8>();
    (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_webhooks_known_answer() {
        // The example from the Standard Webhooks specification.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        let body = r#"{"test": 2432232314}"#;
        assert_eq!(
            sign(secret, id, 1614265330, body).unwrap(),
            "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        let h = signature_header([secret, secret], id, 1614265330, body);
        assert_eq!(h.split(' ').count(), 2);
        assert!(h.starts_with("v1,"));
        assert!(sign("not-a-secret", id, 1, body).is_none());
    }

    #[test]
    fn generated_secrets_decode_to_24_bytes() {
        let s = generate_secret();
        assert!(s.starts_with("whsec_"));
        assert_eq!(secret_key(&s).unwrap().len(), 24);
        assert_ne!(s, generate_secret());
    }

    #[test]
    fn schedule_covers_three_days_and_honours_retry_after() {
        assert_eq!(next_retry_delay(1, 0, None, 0.5), Some(5));
        assert_eq!(next_retry_delay(2, 5, None, 0.5), Some(300));
        assert_eq!(next_retry_delay(7, 0, None, 0.5), Some(36_000));
        assert_eq!(next_retry_delay(30, 0, None, 0.5), Some(36_000));
        // Jitter stays within ±20 %.
        assert_eq!(next_retry_delay(3, 0, None, 0.0), Some(1440));
        assert_eq!(next_retry_delay(3, 0, None, 0.999_999), Some(2160));
        assert_eq!(next_retry_delay(1, 0, Some(120), 0.5), Some(120));
        assert_eq!(
            next_retry_delay(1, 0, Some(10 * 86_400), 0.5),
            Some(12 * 3600)
        );
        assert_eq!(next_retry_delay(3, RETRY_FOR_SECS, None, 0.5), None);
        // Walking the schedule without jitter: retries last at least 3 days.
        let (mut age, mut attempts) = (0i64, 1u32);
        while let Some(d) = next_retry_delay(attempts, age, None, 0.5) {
            age += d as i64;
            attempts += 1;
        }
        assert!(age >= RETRY_FOR_SECS, "{age}");
        assert!((12..=16).contains(&attempts), "{attempts} attempts");
        let j = jitter();
        assert!((0.0..1.0).contains(&j));
    }
}
