//! Events: the outbox record written in the same transaction as each transition, later
//! dispatched as webhooks and listed by `GET /events`.

use super::{EventId, EventType, OrgId, PayOrder, Timestamp};
use serde::{Deserialize, Serialize};

/// The version of the event payload shape.
pub const API_VERSION: &str = "2026-11-01";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventData {
    /// A snapshot of the object as it was right after the change.
    #[cfg_attr(feature = "openapi", schema(value_type = std::collections::HashMap<String, serde_json::Value>))]
    pub object: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Event {
    pub id: EventId,
    #[serde(rename = "type")]
    pub event_type: EventType,
    pub api_version: String,
    pub created_at: Timestamp,
    pub organization_id: OrgId,
    pub livemode: bool,
    /// The order the event is about, when it is about one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<super::OrderId>,
    /// The refund the event is about (`refund.created`, `refund.succeeded`,
    /// `refund.cancelled`): the order in `data` has all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund_id: Option<super::RefundId>,
    pub data: EventData,
}

impl Event {
    /// An event about a webhook endpoint.
    pub fn for_endpoint(
        endpoint: &super::WebhookEndpoint,
        event_type: EventType,
        at: Timestamp,
    ) -> Self {
        Self {
            id: EventId::generate(),
            event_type,
            api_version: API_VERSION.to_owned(),
            created_at: at,
            organization_id: endpoint.organization_id.clone(),
            livemode: endpoint.livemode,
            order_id: None,
            refund_id: None,
            data: EventData {
                object: endpoint.api_view(),
            },
        }
    }

    /// An event about an order, carrying the order as it is after the change.
    pub fn for_order(order: &PayOrder, event_type: EventType, at: Timestamp) -> Self {
        Self {
            id: EventId::generate(),
            event_type,
            api_version: API_VERSION.to_owned(),
            created_at: at,
            organization_id: order.organization_id.clone(),
            livemode: order.livemode,
            order_id: Some(order.id.clone()),
            refund_id: None,
            data: EventData {
                object: order.api_view(),
            },
        }
    }
}
