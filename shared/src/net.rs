//! Outbound HTTP to the provider APIs we call (prices, exchange, Solana RPC): one client
//! setup with a timeout and our user agent. Webhook delivery builds its own client, as it
//! pins resolved addresses and never follows redirects.

use std::time::Duration;

/// A client for a provider API, giving up after `timeout`.
pub(crate) fn provider_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .user_agent("PayOrders/1")
        .build()
        .expect("a plain reqwest client builds")
}
