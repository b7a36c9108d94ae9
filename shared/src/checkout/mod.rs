//! The customer's side of an order: what a payer may see of it ([`view`]), how the currency
//! is chosen ([`details`], one rule for the merchant's route and the customer's), the
//! standard payment URI a wallet or QR code carries ([`uri`]), live updates as Server-Sent
//! Events ([`sse`]), and the links between them ([`Links`]).
//!
//! The order id is the customer's capability: whoever holds it sees the public view, and
//! nothing merchant-only (metadata beyond the items, webhook URLs, nonce, versions, keys).

pub mod details;
pub mod sse;
pub mod uri;
pub mod view;

use crate::model::OrderId;

/// The customer-facing URLs of an order, from the deployment's public base URL (see
/// [`crate::http::links`]). An empty base gives root-relative links.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Links {
    base: String,
    events_base: String,
}

impl Links {
    pub fn new(base: &str, events_base: Option<&str>) -> Self {
        let clean = |s: &str| s.trim().trim_end_matches('/').to_owned();
        let base = clean(base);
        let events_base = events_base.map(clean).unwrap_or_else(|| base.clone());
        Self { base, events_base }
    }

    /// The hosted checkout page: where a merchant sends its customer.
    pub fn hosted(&self, id: &OrderId) -> String {
        format!("{}/pay/{id}", self.base)
    }

    /// The public view of the order (JSON).
    pub fn public(&self, id: &OrderId) -> String {
        format!("{}/public/pay-orders/{id}", self.base)
    }

    /// The payment URI as a QR code (PNG by default; `?format=svg`).
    pub fn qr(&self, id: &OrderId) -> String {
        format!("{}/public/pay-orders/{id}/qr", self.base)
    }

    /// The order's live updates (Server-Sent Events).
    pub fn events(&self, id: &OrderId) -> String {
        format!("{}/public/pay-orders/{id}/events", self.events_base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_join_the_base_without_doubled_slashes() {
        let id = OrderId::generate();
        let l = Links::new("https://pay.example.com/", None);
        assert_eq!(l.hosted(&id), format!("https://pay.example.com/pay/{id}"));
        assert_eq!(
            l.events(&id),
            format!("https://pay.example.com/public/pay-orders/{id}/events")
        );
        let l = Links::new(
            "https://api.example.com/dev",
            Some("https://x.lambda-url.example/"),
        );
        assert_eq!(
            l.qr(&id),
            format!("https://api.example.com/dev/public/pay-orders/{id}/qr")
        );
        assert_eq!(
            l.events(&id),
            format!("https://x.lambda-url.example/public/pay-orders/{id}/events")
        );
        assert_eq!(Links::new("", None).hosted(&id), format!("/pay/{id}"));
    }
}
