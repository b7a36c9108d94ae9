//! Test fixtures shared by the crate's own tests and the workspace's integration tests
//! (feature `testing`): one valid object of each kind, for tests to adjust.

use crate::auth::MasterKey;
use crate::model::*;
use crate::registry::registry;

/// A PENDING DEPOSIT of 25 USDC on Base to a fixed recipient, with some metadata.
pub fn order(org: &OrgId, livemode: bool, created_at: Timestamp) -> PayOrder {
    let asset = registry()
        .currency_by_id("8453:0x833589fcd6edb6e08f4c7c32d4f71b54bda02913")
        .expect("Base USDC is in the registry");
    PayOrder {
        id: OrderId::generate(),
        organization_id: org.clone(),
        livemode,
        mode: OrderMode::Deposit,
        status: OrderStatus::Pending,
        created_at,
        updated_at: created_at,
        expires_at: created_at.plus_seconds(1800),
        fulfillment: Fulfillment {
            amount: Some(Amount::new(
                RawAmount::from_u128(25_000_000),
                asset.decimals,
            )),
            asset: Some(asset),
            recipient: Some("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed".into()),
            ..Default::default()
        },
        payment: None,
        metadata:
            serde_json::json!({"items": [{"name": "Widget", "quantity": 2, "unit_price": 49.99}]})
                .as_object()
                .cloned(),
        webhook_url: None,
        redirect_url: None,
        cancel_url: None,
        nonce: None,
        payment_tolerance: PaymentTolerance::default(),
        confirmations: None,
        paid_over: false,
        paid_late: false,
        underpaid_within_tolerance: false,
        cancellation_reason: None,
        idempotency_key: None,
        version: 1,
    }
}

/// An enabled endpoint subscribed to everything, with a fresh `whsec_` secret sealed with
/// `master`; returns the secret too.
pub fn endpoint(
    org: &OrgId,
    livemode: bool,
    url: &str,
    master: &MasterKey,
    at: Timestamp,
) -> (WebhookEndpoint, String) {
    endpoint_with_id(
        WebhookEndpointId::generate(),
        org,
        livemode,
        url,
        master,
        at,
    )
}

/// As [`endpoint`] with a given id (the secret is sealed for that id).
pub fn endpoint_with_id(
    id: WebhookEndpointId,
    org: &OrgId,
    livemode: bool,
    url: &str,
    master: &MasterKey,
    at: Timestamp,
) -> (WebhookEndpoint, String) {
    let secret = crate::webhooks::generate_secret();
    let endpoint = WebhookEndpoint {
        secrets: vec![SealedWebhookSecret {
            sealed: master.seal(&crate::webhooks::endpoint_secret_context(&id), &secret),
            created_at: at,
            expires_at: None,
        }],
        id,
        organization_id: org.clone(),
        livemode,
        url: url.to_owned(),
        description: None,
        events: vec!["*".into()],
        enabled: true,
        disabled_reason: None,
        failing_since: None,
        created_at: at,
        updated_at: at,
        version: 1,
    };
    (endpoint, secret)
}

/// A master key for tests.
pub fn master_key() -> MasterKey {
    MasterKey::from_text(&MasterKey::generate_text()).expect("generated keys are long enough")
}
