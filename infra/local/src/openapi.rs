//! The OpenAPI 3.1 document of the merchant API, generated from the code: request bodies and
//! query strings are the functions' own request types (their schemas derived under the
//! `openapi` feature), model objects derive theirs in the domain crate, and the routes, the
//! answers built as JSON by hand and the security schemes are declared here, once.
//! `docs/openapi.json` is this document; a test keeps the two equal.

use payorders::http::ErrorCode;
use payorders::model::{Event, PayOrder};
use payorders::openapi::{ErrorBody, schema};
use serde_json::json;
use utoipa::openapi::path::{Operation, Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, RefOr, Required, Schema};
use utoipa::{Modify, OpenApi, PartialSchema, ToSchema};

/// The document as JSON, as `docs/openapi.json` holds it (pretty, newline-terminated);
/// built once per process (every host the API tests start serves it).
pub fn json() -> &'static str {
    static DOCUMENT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let mut text = ApiDoc::openapi()
            .to_pretty_json()
            .expect("the document serializes");
        text.push('\n');
        text
    })
}

/// A response object written by hand (its handler builds it with `json!`).
macro_rules! by_hand {
    ($(#[$doc:meta])* $name:ident, $json:tt) => {
        $(#[$doc])*
        pub struct $name;
        impl PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                schema(json!($json))
            }
        }
        impl ToSchema for $name {}
    };
}

/// `{"object":"list","data":[…],"has_more","next_cursor"}` of one object schema.
macro_rules! list {
    ($name:ident, $item:literal) => {
        pub struct $name;
        impl PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                schema(json!({
                    "type": "object",
                    "required": ["object", "data", "has_more", "next_cursor"],
                    "properties": {
                        "object": { "type": "string", "enum": ["list"] },
                        "data": { "type": "array", "items": { "$ref": concat!("#/components/schemas/", $item) } },
                        "has_more": { "type": "boolean" },
                        "next_cursor": {
                            "type": ["string", "null"],
                            "description": "Pass as `cursor` for the next page; null on the last."
                        }
                    }
                }))
            }
        }
        impl ToSchema for $name {}
    };
}

by_hand!(
    /// A pay order as the API answers it.
    PayOrderView, {
    "allOf": [
        {
            "type": "object",
            "required": ["object"],
            "properties": {
                "object": { "type": "string", "enum": ["pay_order"] },
                "amount_refunded": {
                    "$ref": "#/components/schemas/Amount",
                    "description": "What succeeded refunds add up to, once the order has a payment currency."
                }
            }
        },
        { "$ref": "#/components/schemas/PayOrder" }
    ]
});

by_hand!(
    /// A refund as the API answers it.
    RefundView, {
    "allOf": [
        {
            "type": "object",
            "required": ["object", "order_id"],
            "properties": {
                "object": { "type": "string", "enum": ["refund"] },
                "order_id": { "$ref": "#/components/schemas/OrderId" }
            }
        },
        { "$ref": "#/components/schemas/OrderRefund" }
    ]
});

by_hand!(EventView, {
    "allOf": [
        {
            "type": "object",
            "required": ["object"],
            "properties": { "object": { "type": "string", "enum": ["event"] } }
        },
        { "$ref": "#/components/schemas/Event" }
    ]
});

by_hand!(WebhookEndpointView, {
    "type": "object",
    "required": ["id", "object", "organization_id", "livemode", "url", "description", "events",
                 "enabled", "disabled_reason", "failing_since", "timeout", "max_retries",
                 "allowed_ips", "created_at", "updated_at"],
    "properties": {
        "id": { "$ref": "#/components/schemas/WebhookEndpointId" },
        "object": { "type": "string", "enum": ["webhook_endpoint"] },
        "organization_id": { "$ref": "#/components/schemas/OrgId" },
        "livemode": { "type": "boolean" },
        "url": { "type": "string", "format": "uri" },
        "description": { "type": ["string", "null"] },
        "events": { "type": "array", "items": { "type": "string" }, "description": "Event types, or `*`." },
        "enabled": { "type": "boolean" },
        "disabled_reason": { "type": ["string", "null"] },
        "failing_since": { "oneOf": [{ "$ref": "#/components/schemas/Timestamp" }, { "type": "null" }] },
        "timeout": { "type": "integer", "minimum": 1, "maximum": 30, "description": "Seconds an attempt waits for the answer." },
        "max_retries": {
            "type": ["integer", "null"], "minimum": 0, "maximum": 20,
            "description": "Retries after a failed first attempt; null retries on the schedule for 3 days."
        },
        "allowed_ips": {
            "type": "array", "items": { "type": "string" },
            "description": "CIDR blocks; when not empty, deliveries go only to resolved addresses inside them."
        },
        "created_at": { "$ref": "#/components/schemas/Timestamp" },
        "updated_at": { "$ref": "#/components/schemas/Timestamp" },
        "secret": {
            "type": "string",
            "description": "The signing secret (`whsec_…`): only when created and when rotated."
        }
    }
});

by_hand!(WebhookDeliveryView, {
    "type": "object",
    "required": ["id", "object", "endpoint_id", "url", "event_id", "event_type", "status",
                 "attempts", "next_attempt_at", "created_at", "updated_at"],
    "properties": {
        "id": { "$ref": "#/components/schemas/DeliveryId" },
        "object": { "type": "string", "enum": ["webhook_delivery"] },
        "endpoint_id": { "oneOf": [{ "$ref": "#/components/schemas/WebhookEndpointId" }, { "type": "null" }] },
        "url": { "type": "string", "format": "uri" },
        "event_id": { "$ref": "#/components/schemas/EventId" },
        "event_type": { "$ref": "#/components/schemas/EventType" },
        "status": { "type": "string", "enum": ["pending", "delivered", "failed"] },
        "attempts": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["number", "at"],
                "properties": {
                    "number": { "type": "integer", "minimum": 1 },
                    "at": { "$ref": "#/components/schemas/Timestamp" },
                    "status_code": { "type": ["integer", "null"] }
                }
            }
        },
        "next_attempt_at": { "oneOf": [{ "$ref": "#/components/schemas/Timestamp" }, { "type": "null" }] },
        "created_at": { "$ref": "#/components/schemas/Timestamp" },
        "updated_at": { "$ref": "#/components/schemas/Timestamp" }
    }
});

by_hand!(WebhookSecretView, {
    "type": "object",
    "required": ["object", "livemode", "secret"],
    "properties": {
        "object": { "type": "string", "enum": ["webhook_secret"] },
        "livemode": { "type": "boolean" },
        "secret": { "type": "string", "description": "`whsec_` then base64." }
    }
});

by_hand!(MerchantWalletView, {
    "type": "object",
    "required": ["object", "chain_id", "livemode", "address", "xpub", "currencies",
                 "addresses_derived", "created_at", "updated_at"],
    "properties": {
        "object": { "type": "string", "enum": ["merchant_wallet"] },
        "chain_id": { "$ref": "#/components/schemas/ChainId" },
        "livemode": { "type": "boolean" },
        "address": { "type": ["string", "null"], "description": "One address receiving every order…" },
        "xpub": { "type": ["string", "null"], "description": "…or an xpub deriving one address per order (EVM)." },
        "currencies": { "type": "array", "items": { "type": "string" } },
        "addresses_derived": { "type": ["integer", "null"] },
        "created_at": { "$ref": "#/components/schemas/Timestamp" },
        "updated_at": { "$ref": "#/components/schemas/Timestamp" }
    }
});

by_hand!(Deleted, {
    "type": "object",
    "required": ["object", "deleted"],
    "properties": {
        "id": { "type": "string" },
        "chain_id": { "$ref": "#/components/schemas/ChainId" },
        "object": { "type": "string", "enum": ["webhook_endpoint", "merchant_wallet"] },
        "deleted": { "type": "boolean", "enum": [true] }
    }
});

by_hand!(QuoteView, {
    "type": "object",
    "required": ["object", "order_id", "wallet_address", "value_usd", "options"],
    "properties": {
        "object": { "type": "string", "enum": ["quote"] },
        "order_id": { "$ref": "#/components/schemas/OrderId" },
        "wallet_address": { "type": "string" },
        "value_usd": { "type": ["number", "null"] },
        "options": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["currency", "balance", "required", "network_fee", "affordable"],
                "properties": {
                    "currency": { "$ref": "#/components/schemas/Currency" },
                    "balance": { "$ref": "#/components/schemas/Amount" },
                    "required": {
                        "type": "object",
                        "required": ["amount", "breakdown"],
                        "properties": {
                            "amount": { "$ref": "#/components/schemas/Amount" },
                            "breakdown": { "$ref": "#/components/schemas/Breakdown" }
                        }
                    },
                    "network_fee": {
                        "type": "object",
                        "required": ["currency", "amount"],
                        "properties": {
                            "currency": { "$ref": "#/components/schemas/Currency" },
                            "amount": { "$ref": "#/components/schemas/Amount" }
                        }
                    },
                    "affordable": { "type": "boolean" }
                }
            }
        }
    }
});

by_hand!(Health, {
    "type": "object",
    "required": ["status"],
    "properties": {
        "status": { "type": "string", "enum": ["ok"] },
        "store": { "type": "string", "enum": ["ok"] }
    },
    "examples": [{ "status": "ok", "store": "ok" }]
});

by_hand!(
    /// What a customer may see of an order: no metadata beyond the items, no webhook URL,
    /// nonce, version or key.
    PublicPayOrder, {
    "type": "object",
    "required": ["id", "object", "status", "mode", "livemode", "created_at", "expires_at",
                 "time_remaining", "merchant", "price", "items", "asset", "amount", "currencies",
                 "payment", "payment_progress", "transfers", "paid_over", "paid_late",
                 "redirect_url", "cancel_url", "hosted_url", "qr_code_url", "events_url"],
    "properties": {
        "id": { "$ref": "#/components/schemas/OrderId" },
        "object": { "type": "string", "enum": ["public_pay_order"] },
        "status": { "$ref": "#/components/schemas/OrderStatus" },
        "mode": { "$ref": "#/components/schemas/OrderMode" },
        "livemode": { "type": "boolean" },
        "created_at": { "$ref": "#/components/schemas/Timestamp" },
        "expires_at": { "$ref": "#/components/schemas/Timestamp" },
        "time_remaining": { "type": "integer", "minimum": 0, "description": "Seconds until `expires_at`, or until `payment.expires_at` when a routed payment's rate ends first (0 once past)." },
        "merchant": {
            "type": "object",
            "required": ["name", "logo_url", "theme_color", "hide_footer"],
            "properties": {
                "name": { "type": "string" },
                "logo_url": { "type": ["string", "null"] },
                "theme_color": { "type": ["string", "null"] },
                "hide_footer": { "type": "boolean" }
            }
        },
        "price": {
            "description": "What the order costs, for display: fiat for a priced SALE, else the asset amount.",
            "oneOf": [
                { "type": "object", "required": ["amount", "currency"],
                  "properties": { "amount": { "type": "string" }, "currency": { "type": "string" } } },
                { "type": "null" }
            ]
        },
        "items": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": { "type": "string" },
                    "quantity": { "type": ["number", "string"] },
                    "unit_price": { "type": ["number", "string"] }
                }
            }
        },
        "asset": { "oneOf": [{ "$ref": "#/components/schemas/PublicCurrency" }, { "type": "null" }] },
        "amount": { "oneOf": [{ "$ref": "#/components/schemas/Amount" }, { "type": "null" }] },
        "currencies": {
            "type": "array",
            "description": "What the customer may choose to pay in, while the order is PENDING.",
            "items": { "$ref": "#/components/schemas/PublicCurrency" }
        },
        "payment": {
            "oneOf": [
                {
                    "type": "object",
                    "required": ["currency", "network", "amount", "deposit_address", "uri", "route", "expires_at"],
                    "properties": {
                        "currency": { "$ref": "#/components/schemas/PublicCurrency" },
                        "network": { "$ref": "#/components/schemas/Network" },
                        "amount": { "$ref": "#/components/schemas/Amount" },
                        "deposit_address": { "type": "string" },
                        "uri": {
                            "type": ["string", "null"],
                            "description": "EIP-681 (`ethereum:…`) or Solana Pay (`solana:…`) URI paying what is due; the QR code carries exactly it."
                        },
                        "route": { "type": "string" },
                        "expires_at": { "$ref": "#/components/schemas/Timestamp" }
                    }
                },
                { "type": "null" }
            ]
        },
        "payment_progress": {
            "oneOf": [
                {
                    "type": "object",
                    "required": ["received", "required", "remaining", "percent"],
                    "properties": {
                        "received": { "$ref": "#/components/schemas/Amount" },
                        "required": { "$ref": "#/components/schemas/Amount" },
                        "remaining": { "$ref": "#/components/schemas/Amount" },
                        "percent": { "type": "number", "minimum": 0, "maximum": 100 }
                    }
                },
                { "type": "null" }
            ]
        },
        "transfers": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["tx_hash", "amount", "status", "confirmations", "required_confirmations", "detected_at", "confirmed_at"],
                "properties": {
                    "tx_hash": { "type": "string" },
                    "amount": { "$ref": "#/components/schemas/Amount" },
                    "status": { "type": "string", "enum": ["confirming", "confirmed", "reorged"] },
                    "confirmations": { "type": "integer" },
                    "required_confirmations": { "type": "integer" },
                    "detected_at": { "$ref": "#/components/schemas/Timestamp" },
                    "confirmed_at": { "oneOf": [{ "$ref": "#/components/schemas/Timestamp" }, { "type": "null" }] }
                }
            }
        },
        "paid_over": { "type": "boolean" },
        "paid_late": { "type": "boolean" },
        "redirect_url": { "type": ["string", "null"] },
        "cancel_url": { "type": ["string", "null"] },
        "hosted_url": { "type": "string" },
        "qr_code_url": { "type": ["string", "null"] },
        "events_url": { "type": "string" }
    }
});

by_hand!(PublicCurrency, {
    "type": "object",
    "required": ["id", "chain_id", "address", "symbol", "name", "decimals", "network"],
    "properties": {
        "id": { "type": "string" },
        "chain_id": { "$ref": "#/components/schemas/ChainId" },
        "address": { "type": ["string", "null"] },
        "symbol": { "type": "string" },
        "name": { "type": "string" },
        "decimals": { "type": "integer" },
        "network": { "$ref": "#/components/schemas/Network" }
    }
});

by_hand!(Network, {
    "type": "object",
    "required": ["chain_id"],
    "properties": {
        "chain_id": { "$ref": "#/components/schemas/ChainId" },
        "name": { "type": "string" },
        "family": { "type": "string", "enum": ["evm", "solana"] },
        "testnet": { "type": "boolean" }
    }
});

by_hand!(CheckoutSettingsView, {
    "type": "object",
    "required": ["object", "display_name", "logo_url", "theme_color", "hide_footer"],
    "properties": {
        "object": { "type": "string", "enum": ["checkout_settings"] },
        "display_name": { "type": ["string", "null"] },
        "logo_url": { "type": ["string", "null"] },
        "theme_color": { "type": ["string", "null"] },
        "hide_footer": { "type": "boolean" }
    }
});

by_hand!(SettingsView, {
    "type": "object",
    "description": "The order defaults of the key's mode, each in effect (a default where none was set), and the checkout page's branding.",
    "required": ["object", "livemode", "default_expires_in", "late_payment_window", "confirmations",
                 "payment_tolerance", "custom_fee_bps", "protocol_fee_bps", "checkout"],
    "properties": {
        "object": { "type": "string", "enum": ["settings"] },
        "livemode": { "type": "boolean" },
        "default_expires_in": { "type": "integer", "minimum": 60, "maximum": 604800,
            "description": "Seconds new orders stay payable when they do not say." },
        "late_payment_window": { "type": "integer", "minimum": 0, "maximum": 604800,
            "description": "Seconds after expiry that payments are still recorded, as late payments." },
        "confirmations": { "type": "object", "additionalProperties": { "type": "integer" },
            "description": "Confirmations required per chain id of the mode." },
        "payment_tolerance": { "$ref": "#/components/schemas/PaymentTolerance" },
        "custom_fee_bps": { "type": "integer", "description": "The merchant's own fee on new orders, beside the protocol fee." },
        "protocol_fee_bps": { "type": "integer", "description": "Set by the operator; read-only." },
        "checkout": { "$ref": "#/components/schemas/CheckoutSettingsView" }
    }
});

by_hand!(ApiKeyView, {
    "type": "object",
    "required": ["id", "object", "name", "mode", "livemode", "scopes", "masked_key", "last4",
                 "status", "created_at", "expires_at", "revoked_at"],
    "properties": {
        "id": { "type": "string", "description": "`key_…`" },
        "object": { "type": "string", "enum": ["api_key"] },
        "name": { "type": "string" },
        "mode": { "type": "string", "enum": ["live", "test"] },
        "livemode": { "type": "boolean" },
        "scopes": { "type": "array", "items": { "$ref": "#/components/schemas/Scope" } },
        "masked_key": { "type": "string", "description": "The key's first 12 and last 4 characters: `sk_test_4f9a…Wx2z`." },
        "last4": { "type": "string" },
        "status": { "type": "string", "enum": ["active", "revoked", "expired"] },
        "created_at": { "$ref": "#/components/schemas/Timestamp" },
        "expires_at": { "oneOf": [{ "$ref": "#/components/schemas/Timestamp" }, { "type": "null" }],
                        "description": "When a rolled key stops working." },
        "revoked_at": { "oneOf": [{ "$ref": "#/components/schemas/Timestamp" }, { "type": "null" }] },
        "key": { "type": "string", "description": "The key itself: only in the answer that creates or rolls it." },
        "secret": { "type": "string", "description": "Its API secret (signs requests): only in the answer that creates or rolls it." },
        "rolled_from": {
            "type": "object",
            "description": "Roll answers only: the old key and when it stops working.",
            "properties": {
                "id": { "type": "string" },
                "expires_at": { "$ref": "#/components/schemas/Timestamp" }
            }
        }
    }
});

by_hand!(AccessTokenView, {
    "type": "object",
    "required": ["access_token", "token_type", "expires_in", "scope"],
    "properties": {
        "access_token": { "type": "string", "description": "A JWT (HS256): send it as `Authorization: Bearer <token>`." },
        "token_type": { "type": "string", "enum": ["Bearer"] },
        "expires_in": { "type": "integer", "minimum": 60, "maximum": 3600 },
        "scope": { "type": "array", "items": { "$ref": "#/components/schemas/Scope" } }
    }
});

list!(PayOrderList, "PayOrderView");
list!(RefundList, "RefundView");
list!(EventList, "EventView");
list!(AuditEntryList, "AuditEntryView");
list!(TransactionList, "TransactionView");

by_hand!(
    /// A verified transfer: a payment into an order's address, or a refund out of it.
    TransactionView, {
    "type": "object",
    "required": ["object", "direction", "chain_id", "tx_hash", "status", "confirmations",
                 "required_confirmations", "block_number", "amount", "order_id", "livemode",
                 "detected_at"],
    "properties": {
        "object": { "type": "string", "enum": ["transaction"] },
        "direction": { "type": "string", "enum": ["payment", "refund"] },
        "chain_id": { "$ref": "#/components/schemas/ChainId" },
        "tx_hash": { "type": "string" },
        "status": { "type": "string", "enum": ["confirming", "confirmed", "reorged"] },
        "confirmations": { "type": "integer", "minimum": 0 },
        "required_confirmations": { "type": "integer", "minimum": 0 },
        "block_number": { "type": "integer", "minimum": 0 },
        "block_hash": { "type": "string" },
        "from": { "type": ["string", "null"] },
        "to": { "type": ["string", "null"] },
        "amount": { "$ref": "#/components/schemas/Amount" },
        "currency": { "oneOf": [{ "$ref": "#/components/schemas/Currency" }, { "type": "null" }] },
        "order_id": { "$ref": "#/components/schemas/OrderId" },
        "refund_id": { "type": "string", "description": "The refund (`re_…`) a refund transfer sends" },
        "livemode": { "type": "boolean" },
        "sandbox": { "type": "boolean" },
        "detected_at": { "$ref": "#/components/schemas/Timestamp" },
        "mined_at": { "oneOf": [{ "$ref": "#/components/schemas/Timestamp" }, { "type": "null" }] },
        "confirmed_at": { "oneOf": [{ "$ref": "#/components/schemas/Timestamp" }, { "type": "null" }] }
    }
});

by_hand!(
    /// One entry of the audit log.
    AuditEntryView, {
    "type": "object",
    "required": ["id", "object", "organization_id", "livemode", "created_at", "actor", "action",
                 "object_id", "request_id", "ip", "user_agent", "outcome"],
    "properties": {
        "id": { "type": "string", "description": "`aud_…`" },
        "object": { "type": "string", "enum": ["audit_entry"] },
        "organization_id": { "$ref": "#/components/schemas/OrgId" },
        "livemode": { "type": "boolean" },
        "created_at": { "$ref": "#/components/schemas/Timestamp" },
        "actor": {
            "type": "object",
            "required": ["type"],
            "properties": {
                "type": { "type": "string", "enum": ["api_key", "operator"] },
                "key_id": { "type": "string", "description": "`key_…` (api_key)" },
                "key_masked": { "type": ["string", "null"], "description": "The key as people recognise it, `sk_test_4f9a…wxyz`, while it is still listed" }
            }
        },
        "action": { "type": "string", "description": "The route (`POST /pay-orders/{id}/cancel`) or operator command (`keys create`)" },
        "object_id": { "type": ["string", "null"], "description": "The object acted on" },
        "request_id": { "type": ["string", "null"], "description": "The `X-Request-Id` of the answer" },
        "ip": { "type": ["string", "null"] },
        "user_agent": { "type": ["string", "null"] },
        "outcome": {
            "type": "object",
            "required": ["status"],
            "properties": {
                "status": { "type": "integer", "description": "The HTTP status answered" },
                "code": { "type": "string", "description": "The error code, when it failed" }
            }
        }
    }
});
list!(WebhookEndpointList, "WebhookEndpointView");
list!(WebhookDeliveryList, "WebhookDeliveryView");
list!(MerchantWalletList, "MerchantWalletView");
list!(ApiKeyList, "ApiKeyView");

#[derive(OpenApi)]
#[openapi(
    info(
        title = "PayOrders API",
        version = "2026-11-01",
        description = "Crypto pay orders: create an order, lock its payment details, get paid \
on chain, hear about it by webhook. Reference: docs/api.md; errors: docs/errors.md.",
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    servers((url = "http://127.0.0.1:3000", description = "make dev")),
    paths(
        create_order, list_orders, get_order, cancel_order, quote_order, payment_details,
        submit_payment, process_payment, simulate_payment, create_refund, list_refunds,
        submit_refund_transaction, cancel_refund, simulate_refund, list_events, get_event, get_analytics,
        list_audit_log, list_transactions, get_transaction,
        create_webhook_endpoint, list_webhook_endpoints, get_webhook_endpoint,
        update_webhook_endpoint, delete_webhook_endpoint, rotate_webhook_secret, test_webhook_endpoint,
        list_deliveries, redeliver, webhook_secret, create_wallet, list_wallets, get_wallet,
        update_wallet, delete_wallet, health, health_ready, get_settings, update_settings,
        get_checkout_settings,
        update_checkout_settings, public_order, public_order_preflight, public_payment_details,
        public_payment_details_preflight, public_submit_payment, public_submit_payment_preflight,
        public_qr, public_events, checkout_page, list_api_keys, create_api_key, get_api_key,
        revoke_api_key, roll_api_key, auth_token,
    ),
    components(schemas(
        ErrorBody, PayOrder, Event, PayOrderView, EventView, WebhookEndpointView,
        WebhookDeliveryView, WebhookSecretView, MerchantWalletView, QuoteView, Deleted, Health,
        PayOrderList, EventList, AuditEntryList, AuditEntryView, TransactionList, TransactionView, WebhookEndpointList, WebhookDeliveryList, MerchantWalletList,
        payorders::model::Currency, payorders::model::Amount, payorders::model::Breakdown,
        payorders::model::Timestamp, payorders::model::ChainId, payorders::model::OrderId,
        payorders::model::OrgId, payorders::model::EventId, payorders::model::EventType,
        payorders::model::WebhookEndpointId, payorders::model::DeliveryId,
        payorders::registry::CurrencyRef, payorders::http::list::Limit,
        payorders::http::list::PageCursor, payorders::model::OrderStatus,
        payorders::model::OrderMode, PublicPayOrder, PublicCurrency, Network,
        CheckoutSettingsView, SettingsView, public_qr::QrFormat, ApiKeyView, ApiKeyList,
        AccessTokenView, payorders::model::Scope, payorders::model::OverpaymentAction,
        payorders::analytics::report::Report,
        payorders::analytics::report::Metrics, payorders::analytics::report::Point,
        payorders::analytics::report::CurrencyBreakdown,
        payorders::analytics::report::ChainBreakdown,
        RefundView, RefundList, payorders::model::OrderRefund, payorders::model::RefundId,
    )),
    tags(
        (name = "orders", description = "Pay orders"),
        (name = "payments", description = "Paying an order"),
        (name = "refunds", description = "Refunds the merchant sends back, verified on chain"),
        (name = "events", description = "What happened, for 30 days"),
        (name = "analytics", description = "Orders created, paid and expired, amounts and conversion over time"),
        (name = "webhooks", description = "Webhook endpoints and their deliveries"),
        (name = "wallets", description = "Where orders are paid, per chain"),
        (name = "health", description = "Liveness and readiness"),
        (name = "checkout", description = "The customer's side: the hosted page and the public order API (no key)"),
        (name = "settings", description = "Organization settings"),
        (name = "keys", description = "API keys and access tokens"),
    ),
    modifiers(&Contract),
    security(("api_key" = []), ("bearer" = []), ("signature" = []))
)]
pub struct ApiDoc;

/// What every operation shares, added by rule rather than repeated on 27 routes: the
/// security schemes, the `Idempotency-Key` header on POSTs and the error answers.
struct Contract;

impl Modify for Contract {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-API-KEY",
                "An API key: `sk_test_…` sees test objects only, `sk_live_…` live ones.",
            ))),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "`Authorization: Bearer <API key>`, or an access token from `POST /auth/token`",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "signature",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Authorization-Signature",
                "A signed request (needed to create a SALE or a refund and to write merchant wallets): \
v1 `APIKey=<key>,signature=<hex HMAC-SHA256(secret, METHOD + path + timestamp)>,timestamp=<unix>`; \
legacy `signature=<hex SHA-512(APIKey + secret + timestamp)>`; \
v2 `v=2,APIKey=<key>,timestamp=<unix>,nonce=<…>,body_sha256=<hex>,signature=<hex>` over \
`\"v2\\n\" + METHOD + \"\\n\" + path_and_query + …`. See docs/api.md.",
            ))),
        );
        for &(status, ..) in ERROR_ANSWERS {
            let (name, response) = error_component(status);
            components
                .responses
                .insert(name.to_owned(), RefOr::T(response));
        }
        for (path, item) in doc.paths.paths.iter_mut() {
            let ops = [
                ("GET", item.get.as_mut()),
                ("POST", item.post.as_mut()),
                ("DELETE", item.delete.as_mut()),
                ("OPTIONS", item.options.as_mut()),
            ];
            for (method, op) in ops {
                if let Some(op) = op {
                    contract(path, method, op);
                }
            }
        }
    }
}

/// The error answers every operation shares, in `components.responses`: status, name,
/// description, and the catalogue's code its example shows (with `param` for a 400).
const ERROR_ANSWERS: &[(&str, &str, &str, ErrorCode)] = &[
    (
        "400",
        "BadRequest",
        "The request is malformed: `code` and `param` name the field",
        ErrorCode::InvalidAmount,
    ),
    (
        "401",
        "Unauthorized",
        "No valid API key or signature",
        ErrorCode::InvalidApiKey,
    ),
    (
        "403",
        "Forbidden",
        "The key lacks the scope",
        ErrorCode::InsufficientScope,
    ),
    (
        "404",
        "NotFound",
        "No such object for this organization and mode",
        ErrorCode::ResourceNotFound,
    ),
    (
        "409",
        "Conflict",
        "Conflict: a concurrent write, a used nonce, or the same `Idempotency-Key` still running",
        ErrorCode::ConcurrentUpdate,
    ),
    (
        "429",
        "TooManyRequests",
        "Over a rate limit (per API key and route class, an hour; per IP on the customer's routes: views 60, QR codes 100 a minute); `Retry-After` says when to retry",
        ErrorCode::RateLimited,
    ),
    (
        "413",
        "PayloadTooLarge",
        "The body exceeds 256 KB",
        ErrorCode::PayloadTooLarge,
    ),
    (
        "415",
        "UnsupportedMediaType",
        "The body is not `application/json`",
        ErrorCode::UnsupportedMediaType,
    ),
    (
        "422",
        "Unprocessable",
        "Well-formed but not possible (see `code`), or an `Idempotency-Key` reused with another request",
        ErrorCode::IdempotencyMismatch,
    ),
    (
        "500",
        "InternalError",
        "A fault on our side; retrying is safe",
        ErrorCode::InternalError,
    ),
    (
        "502",
        "ProviderUnavailable",
        "A price or exchange provider is unavailable",
        ErrorCode::PriceUnavailable,
    ),
    (
        "503",
        "Unavailable",
        "The order store, a chain's node or a queue is unavailable; retry shortly",
        ErrorCode::StoreUnavailable,
    ),
];

/// The error answer of `status`, as a component, with an example built from the catalogue.
fn error_component(status: &str) -> (&'static str, utoipa::openapi::Response) {
    let &(_, name, description, code) = ERROR_ANSWERS
        .iter()
        .find(|(s, ..)| *s == status)
        .expect("every error status has a component");
    let mut error = json!({
        "type": code.kind().as_str(),
        "code": code.as_str(),
        "message": code.explanation(),
        "documentation_url": code.documentation_url(),
    });
    if status == "400" {
        error["param"] = json!("amount");
    }
    let mut content = Content::new(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
        "ErrorBody",
    ))));
    content.example = Some(json!({ "error": error, "request_id": "req_5f0c2a9b" }));
    let response = ResponseBuilder::new()
        .description(description)
        .content("application/json", content)
        .build();
    (name, response)
}

fn error(status: &str) -> RefOr<utoipa::openapi::Response> {
    let (name, _) = error_component(status);
    RefOr::Ref(utoipa::openapi::Ref::from_response_name(name))
}

/// An event stream's `schema` describes one event (OpenAPI 3.1 reads it per item, as 3.2's
/// `itemSchema`): its `event` name, `id`, and `data`, JSON text of the public order view.
fn event_stream_schema(op: &mut Operation) {
    if let Some(RefOr::T(ok)) = op.responses.responses.get_mut("200")
        && let Some(RefOr::T(content)) = ok.content.get_mut("text/event-stream")
    {
        content.schema = Some(schema(json!({
            "type": "object",
            "required": ["event", "id", "data"],
            "properties": {
                "event": { "type": "string", "const": "pay_order" },
                "id": { "type": "string", "description": "The order's state: send it back as `Last-Event-ID`" },
                "data": {
                    "type": "string",
                    "contentMediaType": "application/json",
                    "description": "The public order view (`GET /public/pay-orders/{id}`) as JSON",
                },
                "retry": { "type": "integer", "minimum": 0 },
            },
        })));
    }
}

fn contract(path: &str, method: &str, op: &mut Operation) {
    if path.ends_with("/events") && path.starts_with("/public/") {
        event_stream_schema(op);
    }
    let health = path.starts_with("/health");
    let customer = path.starts_with("/public/") || path.starts_with("/pay/");
    // Trades an API key in its body for a token: no authorizer, but the key's failures.
    let token = path == "/auth/token";
    let public = health || customer || token;
    if token {
        answers_for_token(op);
    }
    let has_body = op.request_body.is_some();
    let mut answers: Vec<&str> = Vec::new();
    if customer && method != "OPTIONS" {
        // A malformed id is a 404 too; per-IP limits answer 429 with `Retry-After`.
        answers.extend(["404", "429", "400"]);
        // The QR code needs a chosen currency (`PAYMENT_DETAILS_REQUIRED`).
        if path.ends_with("/qr") {
            answers.push("422");
        }
        if has_body {
            answers.extend(["413", "415", "409", "422", "502"]);
        }
    }
    if method == "OPTIONS" {
        // A preflight names no order: it is answered for any id.
        op.security = Some(Vec::new());
        op.responses
            .responses
            .entry("500".to_owned())
            .or_insert_with(|| error("500"));
        return;
    }
    if !public {
        if method == "POST" {
            let idempotency: Parameter = ParameterBuilder::new()
                .name("Idempotency-Key")
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some(
                    "1-255 printable ASCII: the same request from the same API key within 24 h \
answers the stored response (`Idempotent-Replayed: true`).",
                ))
                .schema(Some(schema(
                    json!({ "type": "string", "minLength": 1, "maxLength": 255 }),
                )))
                .build();
            op.parameters
                .get_or_insert_with(Vec::new)
                .push(RefOr::T(idempotency));
        }
        // GET …/process is the older clients' form of POST …/payments: a write too.
        if method == "POST" || path.ends_with("/process") {
            answers.push("409");
            answers.push("422");
        }
        answers.push("400");
        answers.push("401");
        answers.push("403");
        // Per-key hourly limits (X-RateLimit-* on every answer).
        answers.push("429");
        if path.contains('{') {
            answers.push("404");
        }
        if has_body {
            answers.push("413");
            answers.push("415");
        }
        if path.contains("/quote") || path.contains("/payment-details") || path == "/pay-orders" {
            answers.push("502");
        }
    }
    answers.push("500");
    answers.push("503");
    for status in answers {
        op.responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| error(status));
    }
    if public {
        op.security = Some(Vec::new());
    }
}

/// `POST /auth/token`'s refusals: its body (400, 413, 415), its key (401), the scopes it
/// asks for (403), and its per-address limit (429 with `Retry-After`).
fn answers_for_token(op: &mut Operation) {
    for status in ["400", "401", "403", "413", "415", "429"] {
        op.responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| error(status));
    }
}

// --- The routes of template.yaml: documentation only, the handlers live in functions/. ---

const KEY_ID: &str = "API key id (`key_…`)";

/// List the API keys of this mode (never their key text or secret)
#[utoipa::path(get, path = "/api-keys", tag = "keys",
    responses((status = 200, description = "Every key of this mode, newest first, revoked and expired ones too", body = ApiKeyList)))]
pub fn list_api_keys() {}

/// Create an API key (signed request)
///
/// The answer holds the `key` and its `secret`, shown this once. A key grants only scopes
/// it holds itself, and `*` only if it holds `*`.
#[utoipa::path(post, path = "/api-keys", tag = "keys",
    request_body(content = api_keys::CreateKey,
        example = json!({"name": "checkout server", "scopes": ["orders:create", "orders:read"]})),
    responses((status = 201, description = "The key, with `key` and `secret` (shown once)", body = ApiKeyView)),
    security(("signature" = [])))]
pub fn create_api_key() {}

/// Get an API key
#[utoipa::path(get, path = "/api-keys/{id}", tag = "keys",
    params(("id" = String, Path, description = KEY_ID)),
    responses((status = 200, description = "The key", body = ApiKeyView)))]
pub fn get_api_key() {}

/// Revoke an API key (signed request); it answers 401 from then on
#[utoipa::path(post, path = "/api-keys/{id}/revoke", tag = "keys",
    params(("id" = String, Path, description = KEY_ID)),
    responses((status = 200, description = "The revoked key", body = ApiKeyView)),
    security(("signature" = [])))]
pub fn revoke_api_key() {}

/// Roll an API key (signed request)
///
/// A new key and secret with the same name and scopes, now; the old key keeps working for
/// `expires_in` seconds (default 24 h, at most 7 days, 0 to stop it at once).
#[utoipa::path(post, path = "/api-keys/{id}/roll", tag = "keys",
    params(("id" = String, Path, description = KEY_ID)),
    request_body(content = Option<api_keys::RollKey>, example = json!({"expires_in": 3600})),
    responses((status = 201, description = "The new key, with `key`, `secret` and `rolled_from`", body = ApiKeyView)),
    security(("signature" = [])))]
pub fn roll_api_key() {}

/// Trade an API key for a short-lived access token
///
/// The token (a JWT) acts for the key with the scopes asked for (each one the key holds;
/// `*` is for API keys only) until it expires, or until the key is revoked or expires. It
/// cannot sign requests.
#[utoipa::path(post, path = "/auth/token", tag = "keys",
    request_body(content = api_keys::TokenRequest,
        example = json!({"grant_type": "api_key", "api_key": "sk_test_…", "scope": ["orders:read"], "expires_in": 900})),
    responses((status = 200, description = "The access token", body = AccessTokenView)))]
pub fn auth_token() {}

const ORDER_ID: &str = "pay order id (`po_…`)";

/// Create a pay order
///
/// A SALE (priced in fiat) needs a signed request; a DEPOSIT takes any amount.
#[utoipa::path(post, path = "/pay-orders", tag = "orders",
    request_body(content = create_order::CreateOrderRequest,
        example = json!({"mode": "SALE", "amount": "25.00", "fiat_unit": "USD",
            "currency": {"chain_id": 8453, "address": "0x833589fcd6edb6e08f4c7c32d4f71b54bda02913"},
            "expires_in": 3600, "metadata": {"cart": "c_123"}})),
    responses((status = 201, description = "The new order", body = PayOrderView)))]
pub fn create_order() {}

/// List pay orders, newest first
#[utoipa::path(get, path = "/pay-orders", tag = "orders",
    params(list_orders::ListOrdersQuery),
    responses((status = 200, description = "A page of orders", body = PayOrderList)))]
pub fn list_orders() {}

/// Get a pay order
#[utoipa::path(get, path = "/pay-orders/{id}", tag = "orders",
    params(("id" = String, Path, description = ORDER_ID), get_order::GetOrderQuery),
    responses((status = 200, description = "The order (with `audit_log`, its audit entries, when asked for)", body = PayOrderView)))]
pub fn get_order() {}

/// Cancel a pay order (from PENDING or AWAITING_PAYMENT)
#[utoipa::path(post, path = "/pay-orders/{id}/cancel", tag = "orders",
    params(("id" = String, Path, description = ORDER_ID)),
    request_body(content = Option<cancel_order::CancelRequest>, example = json!({"reason": "out of stock"})),
    responses((status = 200, description = "The cancelled order", body = PayOrderView)))]
pub fn cancel_order() {}

/// What a wallet's balances could pay
#[utoipa::path(post, path = "/pay-orders/{id}/quote", tag = "payments",
    params(("id" = String, Path, description = ORDER_ID)),
    request_body(content = quote_order::QuoteRequest,
        example = json!({"wallet_address": "0x52908400098527886e0f7030069857d2e4169ee7", "chain_type": "EVM"})),
    responses((status = 200, description = "One option per currency the wallet holds", body = QuoteView)))]
pub fn quote_order() {}

/// Lock the amount and get the deposit address
#[utoipa::path(post, path = "/pay-orders/{id}/payment-details", tag = "payments",
    params(("id" = String, Path, description = ORDER_ID)),
    request_body(content = Option<payment_details::PaymentDetailsRequest>,
        example = json!({"source_currency": {"chain_id": 8453, "address": null}})),
    responses((status = 200, description = "The order with its `payment`", body = PayOrderView)))]
pub fn payment_details() {}

/// Submit the hash of the transaction that paid
#[utoipa::path(post, path = "/pay-orders/{id}/payments", tag = "payments",
    params(("id" = String, Path, description = ORDER_ID)),
    request_body(content = submit_payment::SubmitPayment,
        example = json!({"tx_hash": "0x5c504ed432cb51138bcf09aa5e8a410dd4a1e204ef84bfed1be16dfba1b22060"})),
    responses((status = 200, description = "The order with the transfer recorded", body = PayOrderView)))]
pub fn submit_payment() {}

/// Submit a payment, the form older clients use
#[utoipa::path(get, path = "/pay-orders/{id}/process", tag = "payments",
    params(("id" = String, Path, description = ORDER_ID), submit_payment::ProcessQuery),
    responses((status = 200, description = "The order with the transfer recorded", body = PayOrderView)))]
pub fn process_payment() {}

/// Test mode: pay the order on the sandbox chain
#[utoipa::path(post, path = "/pay-orders/{id}/simulate-payment", tag = "payments",
    params(("id" = String, Path, description = ORDER_ID)),
    request_body(content = Option<simulate_payment::SimulatePayment>, example = json!({"amount": "12.5"})),
    responses((status = 200, description = "The paid order", body = PayOrderView)))]
pub fn simulate_payment() {}

/// Every verified transfer of your orders, by order newest first
#[utoipa::path(get, path = "/transactions", tag = "events",
    params(transactions::ListTransactionsQuery),
    responses((status = 200, description = "A page of transactions", body = TransactionList)))]
pub fn list_transactions() {}

/// One transaction to your orders, by chain and hash
#[utoipa::path(get, path = "/transactions/{chain_id}/{tx_hash}", tag = "events",
    params(("chain_id" = u64, Path, description = "The chain's id"),
        ("tx_hash" = String, Path, description = "The transaction's hash")),
    responses((status = 200, description = "The transaction", body = TransactionView)))]
pub fn get_transaction() {}

/// The audit log, newest first: every change made through the API or by the operator
#[utoipa::path(get, path = "/audit-log", tag = "events",
    params(audit_log::ListAuditQuery),
    responses((status = 200, description = "A page of audit entries", body = AuditEntryList)))]
pub fn list_audit_log() {}

const REFUND_ID: &str = "refund id (`re_…`)";

/// Create a refund (signed request)
///
/// Refunds what the order received (COMPLETED, EXPIRED, CANCELLED and PARTIAL_PAYMENT orders),
/// or the excess of an overpaid order still confirming. The answer says exactly what to send
/// (`instructions`); the merchant sends it from the address the order was paid to.
#[utoipa::path(post, path = "/pay-orders/{id}/refunds", tag = "refunds",
    params(("id" = String, Path, description = ORDER_ID)),
    request_body(content = refunds::CreateRefund,
        example = json!({"amount": "5.0", "address": "0x1111111111111111111111111111111111111111", "reason": "returned item"})),
    responses((status = 201, description = "The pending refund", body = RefundView)))]
pub fn create_refund() {}

/// List an order's refunds, oldest first
#[utoipa::path(get, path = "/pay-orders/{id}/refunds", tag = "refunds",
    params(("id" = String, Path, description = ORDER_ID)),
    responses((status = 200, description = "Every refund of the order", body = RefundList)))]
pub fn list_refunds() {}

/// Submit the hash of the refund transfer
#[utoipa::path(post, path = "/pay-orders/{id}/refunds/{refund_id}/transactions", tag = "refunds",
    params(("id" = String, Path, description = ORDER_ID), ("refund_id" = String, Path, description = REFUND_ID)),
    request_body(content = refunds::SubmitRefundTransaction,
        example = json!({"tx_hash": "0x5c504ed432cb51138bcf09aa5e8a410dd4a1e204ef84bfed1be16dfba1b22060"})),
    responses((status = 200, description = "The refund, `confirming`", body = RefundView)))]
pub fn submit_refund_transaction() {}

/// Cancel a pending refund (signed request)
///
/// Withdraws a refund whose transfer was never recorded (`pending` → `cancelled`, with a
/// `refund.cancelled` event): what it held may be refunded again. A refund with a transfer
/// recorded is `409 REFUND_NOT_PENDING`.
#[utoipa::path(post, path = "/pay-orders/{id}/refunds/{refund_id}/cancel", tag = "refunds",
    params(("id" = String, Path, description = ORDER_ID), ("refund_id" = String, Path, description = REFUND_ID)),
    responses((status = 200, description = "The refund, `cancelled`", body = RefundView)))]
pub fn cancel_refund() {}

/// Test mode: send the refund on the sandbox chain
#[utoipa::path(post, path = "/pay-orders/{id}/refunds/{refund_id}/simulate", tag = "refunds",
    params(("id" = String, Path, description = ORDER_ID), ("refund_id" = String, Path, description = REFUND_ID)),
    responses((status = 200, description = "The refund, `confirming`", body = RefundView)))]
pub fn simulate_refund() {}

/// List events of the last 30 days, newest first
#[utoipa::path(get, path = "/events", tag = "events",
    params(list_events::ListEventsQuery),
    responses((status = 200, description = "A page of events", body = EventList)))]
pub fn list_events() {}

/// Analytics of the caller's orders over a range of days
#[utoipa::path(get, path = "/analytics", tag = "analytics",
    params(analytics::AnalyticsQuery),
    responses((status = 200, description = "Totals, breakdowns and a series per day or week", body = payorders::analytics::report::Report)))]
pub fn get_analytics() {}

/// Get an event
#[utoipa::path(get, path = "/events/{id}", tag = "events",
    params(("id" = String, Path, description = "event id (`evt_…`)")),
    responses((status = 200, description = "The event", body = EventView)))]
pub fn get_event() {}

const ENDPOINT_ID: &str = "webhook endpoint id (`we_…`)";

/// Create a webhook endpoint
#[utoipa::path(post, path = "/webhook-endpoints", tag = "webhooks",
    request_body(content = webhook_endpoints::CreateEndpoint,
        example = json!({"url": "https://example.com/hooks/payorders", "events": ["order.completed"]})),
    responses((status = 201, description = "The endpoint, with its `secret` (shown once)", body = WebhookEndpointView)))]
pub fn create_webhook_endpoint() {}

/// List webhook endpoints
#[utoipa::path(get, path = "/webhook-endpoints", tag = "webhooks",
    responses((status = 200, description = "Every endpoint of this mode", body = WebhookEndpointList)))]
pub fn list_webhook_endpoints() {}

/// Get a webhook endpoint
#[utoipa::path(get, path = "/webhook-endpoints/{id}", tag = "webhooks",
    params(("id" = String, Path, description = ENDPOINT_ID)),
    responses((status = 200, description = "The endpoint", body = WebhookEndpointView)))]
pub fn get_webhook_endpoint() {}

/// Update a webhook endpoint
#[utoipa::path(post, path = "/webhook-endpoints/{id}", tag = "webhooks",
    params(("id" = String, Path, description = ENDPOINT_ID)),
    request_body(content = webhook_endpoints::UpdateEndpoint, example = json!({"enabled": true})),
    responses((status = 200, description = "The updated endpoint", body = WebhookEndpointView)))]
pub fn update_webhook_endpoint() {}

/// Delete a webhook endpoint
#[utoipa::path(delete, path = "/webhook-endpoints/{id}", tag = "webhooks",
    params(("id" = String, Path, description = ENDPOINT_ID)),
    responses((status = 200, description = "Deleted", body = Deleted)))]
pub fn delete_webhook_endpoint() {}

/// Rotate an endpoint's secret; the old one signs for 24 h more
#[utoipa::path(post, path = "/webhook-endpoints/{id}/rotate-secret", tag = "webhooks",
    params(("id" = String, Path, description = ENDPOINT_ID)),
    responses((status = 200, description = "The endpoint with its new `secret`", body = WebhookEndpointView)))]
pub fn rotate_webhook_secret() {}

/// Send the endpoint a signed `ping` event
#[utoipa::path(post, path = "/webhook-endpoints/{id}/test", tag = "webhooks",
    params(("id" = String, Path, description = ENDPOINT_ID)),
    responses((status = 202, description = "The ping's delivery, queued (pending); it shows in the delivery log from its first attempt on, a moment later", body = WebhookDeliveryView)))]
pub fn test_webhook_endpoint() {}

/// An endpoint's delivery log, newest first
#[utoipa::path(get, path = "/webhook-endpoints/{id}/deliveries", tag = "webhooks",
    params(("id" = String, Path, description = ENDPOINT_ID), webhook_endpoints::DeliveriesQuery),
    responses((status = 200, description = "A page of deliveries", body = WebhookDeliveryList)))]
pub fn list_deliveries() {}

/// Send one delivery again
#[utoipa::path(post, path = "/webhook-endpoints/{id}/deliveries/{delivery_id}/redeliver", tag = "webhooks",
    params(("id" = String, Path, description = ENDPOINT_ID),
        ("delivery_id" = String, Path, description = "delivery id (`msg_…`)")),
    responses((status = 202, description = "Queued again: the delivery as it will be (pending); the log shows it pending from its attempt on, a moment later", body = WebhookDeliveryView)))]
pub fn redeliver() {}

/// The secret signing deliveries to orders' own `webhook_url`
#[utoipa::path(get, path = "/webhook-secret", tag = "webhooks",
    responses((status = 200, description = "The secret of this mode", body = WebhookSecretView)))]
pub fn webhook_secret() {}

/// Create a chain's merchant wallet (signed request)
#[utoipa::path(post, path = "/merchant-wallets", tag = "wallets",
    request_body(content = merchant_wallets::CreateWallet,
        example = json!({"chain_id": 8453, "address": "0x52908400098527886e0f7030069857d2e4169ee7", "currencies": ["native"]})),
    responses((status = 201, description = "The wallet", body = MerchantWalletView)),
    security(("signature" = [])))]
pub fn create_wallet() {}

/// List merchant wallets
#[utoipa::path(get, path = "/merchant-wallets", tag = "wallets",
    responses((status = 200, description = "Every wallet of this mode", body = MerchantWalletList)))]
pub fn list_wallets() {}

/// Get a chain's merchant wallet
#[utoipa::path(get, path = "/merchant-wallets/{chain_id}", tag = "wallets",
    params(("chain_id" = u64, Path, description = "chain id")),
    responses((status = 200, description = "The wallet", body = MerchantWalletView)))]
pub fn get_wallet() {}

/// Update a chain's merchant wallet (signed request)
#[utoipa::path(post, path = "/merchant-wallets/{chain_id}", tag = "wallets",
    params(("chain_id" = u64, Path, description = "chain id")),
    request_body(content = merchant_wallets::UpdateWallet, example = json!({"currencies": ["native"]})),
    responses((status = 200, description = "The wallet", body = MerchantWalletView)),
    security(("signature" = [])))]
pub fn update_wallet() {}

/// Delete a chain's merchant wallet (signed request)
#[utoipa::path(delete, path = "/merchant-wallets/{chain_id}", tag = "wallets",
    params(("chain_id" = u64, Path, description = "chain id")),
    responses((status = 200, description = "Deleted", body = Deleted)),
    security(("signature" = [])))]
pub fn delete_wallet() {}

/// Liveness: 200 while the API runs
#[utoipa::path(get, path = "/health", tag = "health",
    responses((status = 200, description = "Alive", body = Health)))]
pub fn health() {}

/// Readiness: 200 when the order store answers
#[utoipa::path(get, path = "/health/ready", tag = "health",
    responses((status = 200, description = "Ready", body = Health)))]
pub fn health_ready() {}

const CUSTOMER_ORDER_ID: &str = "pay order id (`po_…`): the customer's capability, no key needed";

#[utoipa::path(get, path = "/settings", tag = "settings",
    responses((status = 200, description = "The order defaults of the key's mode", body = SettingsView)))]
pub fn get_settings() {}

/// Changes the order defaults of the key's mode (a signed request)
#[utoipa::path(post, path = "/settings", tag = "settings",
    request_body(content = checkout_settings::order_defaults::SettingsUpdate,
        example = json!({"default_expires_in": 3600, "confirmations": {"84532": 3},
            "payment_tolerance": {"underpayment_bps": 50}, "late_payment_window": null})),
    responses((status = 200, description = "The settings as saved", body = SettingsView)))]
pub fn update_settings() {}

#[utoipa::path(get, path = "/settings/checkout", tag = "settings",
    responses((status = 200, description = "The checkout page settings", body = CheckoutSettingsView)))]
pub fn get_checkout_settings() {}

#[utoipa::path(post, path = "/settings/checkout", tag = "settings",
    request_body(content = checkout_settings::CheckoutSettingsUpdate,
        example = json!({"display_name": "Acme Store", "logo_url": "https://acme.example/logo.png",
            "theme_color": "#0f766e", "hide_footer": false})),
    responses((status = 200, description = "The settings as saved", body = CheckoutSettingsView)))]
pub fn update_checkout_settings() {}

/// The customer's view of an order
#[utoipa::path(get, path = "/public/pay-orders/{id}", tag = "checkout",
    params(("id" = String, Path, description = CUSTOMER_ORDER_ID)),
    responses((status = 200, description = "What the customer may see", body = PublicPayOrder)))]
pub fn public_order() {}

/// CORS preflight (any origin, no credentials)
#[utoipa::path(options, path = "/public/pay-orders/{id}", tag = "checkout",
    params(("id" = String, Path, description = CUSTOMER_ORDER_ID)),
    responses((status = 204, description = "`Access-Control-Allow-*` headers")))]
pub fn public_order_preflight() {}

/// The customer chooses what to pay in (the merchant route's rule and answers)
#[utoipa::path(post, path = "/public/pay-orders/{id}/payment-details", tag = "checkout",
    params(("id" = String, Path, description = CUSTOMER_ORDER_ID)),
    request_body(content = public_payment_details::PublicPaymentDetailsRequest,
        example = json!({"source_currency": {"chain_id": 84532, "address": "0x036CbD53842c5426634e7929541eC2318f3dCF7e"}})),
    responses((status = 200, description = "The public view with its `payment`", body = PublicPayOrder)))]
pub fn public_payment_details() {}

/// CORS preflight (any origin, no credentials)
#[utoipa::path(options, path = "/public/pay-orders/{id}/payment-details", tag = "checkout",
    params(("id" = String, Path, description = CUSTOMER_ORDER_ID)),
    responses((status = 204, description = "`Access-Control-Allow-*` headers")))]
pub fn public_payment_details_preflight() {}

/// The customer's wallet names the transaction it sent (verified on chain)
#[utoipa::path(post, path = "/public/pay-orders/{id}/payments", tag = "checkout",
    params(("id" = String, Path, description = CUSTOMER_ORDER_ID)),
    request_body(content = public_submit_payment::PublicSubmitPayment,
        example = json!({"tx_hash": "0x5c504ed432cb51138bcf09aa5e8a410dd4a1e204ef84bfed1be16dfba1b22060"})),
    responses((status = 200, description = "The public view with the transfer recorded", body = PublicPayOrder)))]
pub fn public_submit_payment() {}

/// CORS preflight (any origin, no credentials)
#[utoipa::path(options, path = "/public/pay-orders/{id}/payments", tag = "checkout",
    params(("id" = String, Path, description = CUSTOMER_ORDER_ID)),
    responses((status = 204, description = "`Access-Control-Allow-*` headers")))]
pub fn public_submit_payment_preflight() {}

/// The payment URI as a QR code
#[utoipa::path(get, path = "/public/pay-orders/{id}/qr", tag = "checkout",
    params(("id" = String, Path, description = CUSTOMER_ORDER_ID), public_qr::QrQuery),
    responses(
        (status = 200, description = "The QR code of `payment.uri` (EIP-681 or Solana Pay)",
            content(("image/png"), ("image/svg+xml")))))]
pub fn public_qr() {}

/// The order's changes, live (Server-Sent Events)
///
/// Each `pay_order` event carries the whole public view; its `id` names the order's state,
/// so a reconnect with `Last-Event-ID` misses nothing. Streams end after a bounded time
/// (browsers reconnect after `retry`). In AWS it is served by a Function URL: use the
/// view's `events_url`.
#[utoipa::path(get, path = "/public/pay-orders/{id}/events", tag = "checkout",
    params(("id" = String, Path, description = CUSTOMER_ORDER_ID),
        ("Last-Event-ID" = Option<String>, Header, description = "The last event's `id`: only later states are sent")),
    responses((status = 200, description = "`text/event-stream` of `pay_order` events",
        content_type = "text/event-stream", body = String)))]
pub fn public_events() {}

/// The hosted checkout page (the order's `hosted_url`)
#[utoipa::path(get, path = "/pay/{id}", tag = "checkout",
    params(("id" = String, Path, description = CUSTOMER_ORDER_ID)),
    responses(
        (status = 200, description = "The page (self-contained HTML)", content_type = "text/html", body = String),
        (status = 404, description = "A page saying there is no such order", content_type = "text/html", body = String)))]
pub fn checkout_page() {}
