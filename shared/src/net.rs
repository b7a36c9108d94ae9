//! Outbound HTTP to the provider APIs we call (prices, exchange, Solana RPC): one client
//! setup with a timeout and our user agent, and one way to describe a failed call without
//! the URL it went to. Webhook delivery builds its own client, as it pins resolved
//! addresses and never follows redirects.

use std::time::Duration;

/// A client for a provider API, giving up after `timeout`.
pub(crate) fn provider_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .user_agent("PayOrders/1")
        .build()
        .expect("a plain reqwest client builds")
}

/// What went wrong with a provider call, without its URL. RPC and provider URLs often
/// carry an API key (`https://…/v2/<key>`), and this text reaches logs and, in 502 and
/// 503 answers, API callers.
pub(crate) fn error_text(e: reqwest::Error) -> String {
    redact_urls(&e.without_url().to_string())
}

/// `text` with everything URL-like (`scheme://…` up to a space, quote or bracket)
/// replaced by `<redacted URL>`: for the errors of clients whose error type cannot drop
/// its URL (alloy's transports).
pub(crate) fn redact_urls(text: &str) -> String {
    const REDACTED: &str = "<redacted URL>";
    let is_scheme = |c: char| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.');
    let ends_url = |c: char| c.is_whitespace() || "\"'`<>()[]{}|\\^,;".contains(c);
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let start = rest[..at]
            .char_indices()
            .rev()
            .take_while(|&(_, c)| is_scheme(c))
            .last()
            .map_or(at, |(i, _)| i);
        let after = &rest[at + 3..];
        let end = at + 3 + after.find(ends_url).unwrap_or(after.len());
        out.push_str(&rest[..start]);
        out.push_str(REDACTED);
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted_and_the_rest_is_kept() {
        assert_eq!(
            redact_urls(
                "error sending request for url (https://base.g.alchemy.com/v2/SECRETKEY?x=1)"
            ),
            "error sending request for url (<redacted URL>)"
        );
        assert_eq!(
            redact_urls("a wss://k:SECRET@host/p, then http://1.2.3.4:8545/KEY and ://KEY"),
            "a <redacted URL>, then <redacted URL> and <redacted URL>"
        );
        assert_eq!(redact_urls("é→https://x/SECRET"), "é→<redacted URL>");
        assert_eq!(redact_urls("no url: 12:30 here"), "no url: 12:30 here");
    }

    #[tokio::test]
    async fn reqwest_errors_lose_their_url() {
        let e = provider_client(Duration::from_secs(5))
            .get("http://127.0.0.1:1/v2/SECRETKEY")
            .send()
            .await
            .unwrap_err();
        assert!(e.to_string().contains("SECRETKEY"), "the case this guards");
        let text = error_text(e);
        assert!(!text.contains("SECRETKEY"), "{text}");
        assert!(!text.is_empty());
    }
}
