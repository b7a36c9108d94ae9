//! The delivery queue's message, one type for its producers (`dispatch-events`, a ping or a
//! redelivery by `webhook-endpoints`) and its consumer (`deliver-webhook`).
//!
//! No producer writes a delivery record: the consumer makes each change the message asks
//! for, in the same conditional write that leases the attempt. So a producer killed (or a
//! queue refusing) before its send leaves no delivery pending with no message to attempt
//! it.

use crate::model::{Delivery, DeliveryId, Event, EventId, Timestamp, WebhookEndpointId};
use serde::{Deserialize, Serialize};

/// What a message asks of `deliver-webhook`. Versioned, so a consumer refuses a shape it
/// does not know instead of misreading it; a message without `v` was queued before the
/// field existed and is version 1 (retries stay queued for days).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryMessage {
    /// `{"v": 1, "delivery_id": "msg_…"}`: attempt this delivery, which is stored. Only
    /// messages queued before version 2 (a ping or a redelivery then wrote its delivery
    /// first); nothing sends it any more, and the consumer still reads it.
    Attempt(DeliveryId),
    /// `{"v": 2, "event_id": "evt_…", "endpoint_id": "we_…", "dispatched_at": "…"}`
    /// (`endpoint_id` left out for the order's own `webhook_url`): the first attempt of a
    /// delivery dispatch decided on without writing it. The attempt's lease creates the
    /// record, so a delivery is written twice (lease, outcome) instead of three times. The
    /// message names the destination; where it is (the endpoint's URL in the event's
    /// organization, the order's `webhook_url` in the event) is read from the store.
    First(FirstAttempt),
    /// `{"v": 3, "delivery_id": "msg_…", "version": 4}`: send this stored delivery again
    /// (`POST …/deliveries/{id}/redeliver`), as the request saw it at `version`. The
    /// attempt's lease makes it pending again where it is still at that version; a delivery
    /// changed since (another copy of the message already sent it again, or a scheduled
    /// attempt ran in between) is attempted only as it now stands, so one request sends at
    /// most once more.
    Again {
        delivery_id: DeliveryId,
        version: u64,
    },
}

/// A delivery as dispatch decided on it: one event to one destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirstAttempt {
    pub event_id: EventId,
    /// `None`: the order's own `webhook_url`.
    pub endpoint_id: Option<WebhookEndpointId>,
    /// When dispatch decided on it: the delivery's `created_at`, from which its 3 days of
    /// retries count.
    pub dispatched_at: Timestamp,
}

impl FirstAttempt {
    /// The first attempt of `event` to one destination (`None`: the order's own
    /// `webhook_url`), decided on at `dispatched_at`.
    pub fn new(
        event: &Event,
        endpoint_id: Option<WebhookEndpointId>,
        dispatched_at: Timestamp,
    ) -> Self {
        Self {
            event_id: event.id.clone(),
            endpoint_id,
            dispatched_at,
        }
    }

    /// The id of the delivery it makes ([`Delivery::id_for`]): the same for every copy of
    /// the message and every retried dispatch.
    pub fn delivery_id(&self) -> DeliveryId {
        Delivery::id_for(&self.event_id, self.endpoint_id.as_ref())
    }
}

/// Why a body is not a delivery message this code reads (a poison message).
#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    #[error("not a delivery message: {0}")]
    Malformed(#[from] serde_json::Error),
    #[error("delivery message version {0} is not one this code reads")]
    UnknownVersion(u32),
}

/// The version alone, read first: each version's shape then refuses unknown fields.
#[derive(Deserialize)]
struct Version {
    #[serde(default = "first_version")]
    v: u32,
}

fn first_version() -> u32 {
    1
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireAttempt {
    #[serde(default = "first_version")]
    v: u32,
    delivery_id: DeliveryId,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireAgain {
    v: u32,
    delivery_id: DeliveryId,
    version: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireFirst {
    v: u32,
    event_id: EventId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    endpoint_id: Option<WebhookEndpointId>,
    dispatched_at: Timestamp,
}

impl DeliveryMessage {
    /// Attempt the stored delivery `delivery_id` (version 1: what producers sent before
    /// version 2; kept for the consumer's tests).
    pub fn new(delivery_id: &DeliveryId) -> Self {
        Self::Attempt(delivery_id.clone())
    }

    /// Send `d` again, as it stands now.
    pub fn again(d: &Delivery) -> Self {
        Self::Again {
            delivery_id: d.id.clone(),
            version: d.version,
        }
    }

    /// The delivery the message is about.
    pub fn delivery_id(&self) -> DeliveryId {
        match self {
            Self::Attempt(id)
            | Self::Again {
                delivery_id: id, ..
            } => id.clone(),
            Self::First(first) => first.delivery_id(),
        }
    }

    /// The message body to send.
    pub fn body(&self) -> String {
        let written = match self {
            Self::Attempt(id) => serde_json::to_string(&WireAttempt {
                v: 1,
                delivery_id: id.clone(),
            }),
            Self::First(f) => serde_json::to_string(&WireFirst {
                v: 2,
                event_id: f.event_id.clone(),
                endpoint_id: f.endpoint_id.clone(),
                dispatched_at: f.dispatched_at,
            }),
            Self::Again {
                delivery_id,
                version,
            } => serde_json::to_string(&WireAgain {
                v: 3,
                delivery_id: delivery_id.clone(),
                version: *version,
            }),
        };
        written.expect("a delivery message always serializes")
    }

    /// Reads a received body; anything but a delivery message of a known version is an
    /// error (poison).
    pub fn parse(body: &str) -> Result<Self, MessageError> {
        match serde_json::from_str::<Version>(body)?.v {
            1 => {
                let wire: WireAttempt = serde_json::from_str(body)?;
                Ok(Self::Attempt(wire.delivery_id))
            }
            2 => {
                let wire: WireFirst = serde_json::from_str(body)?;
                Ok(Self::First(FirstAttempt {
                    event_id: wire.event_id,
                    endpoint_id: wire.endpoint_id,
                    dispatched_at: wire.dispatched_at,
                }))
            }
            3 => {
                let wire: WireAgain = serde_json::from_str(body)?;
                Ok(Self::Again {
                    delivery_id: wire.delivery_id,
                    version: wire.version,
                })
            }
            other => Err(MessageError::UnknownVersion(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first(endpoint: bool) -> FirstAttempt {
        FirstAttempt {
            event_id: EventId::generate(),
            endpoint_id: endpoint.then(WebhookEndpointId::generate),
            dispatched_at: Timestamp::parse("2026-06-01T12:00:00.123456Z").unwrap(),
        }
    }

    #[test]
    fn delivery_messages_round_trip_and_refuse_anything_else() {
        let id = DeliveryId::generate();
        let m = DeliveryMessage::new(&id);
        assert_eq!(DeliveryMessage::parse(&m.body()).unwrap(), m);
        assert_eq!(m.body(), format!("{{\"v\":1,\"delivery_id\":\"{id}\"}}"));
        assert_eq!(m.delivery_id(), id);
        for poison in [
            "",
            "{}",
            "[]",
            "5",
            r#"{"delivery_id": 5}"#,
            r#"{"delivery_id": "x"}"#,
            r#"{"v": "1", "delivery_id": "msg_x"}"#,
            r#"{"v": -1, "delivery_id": "msg_x"}"#,
        ] {
            assert!(
                matches!(
                    DeliveryMessage::parse(poison),
                    Err(MessageError::Malformed(_))
                ),
                "{poison}"
            );
        }
        let extra = format!(r#"{{"v": 1, "delivery_id": "{id}", "url": "https://x"}}"#);
        assert!(matches!(
            DeliveryMessage::parse(&extra),
            Err(MessageError::Malformed(_))
        ));
    }

    #[test]
    fn a_first_attempt_round_trips_and_names_the_delivery_dispatch_would_have_made() {
        for endpoint in [true, false] {
            let f = first(endpoint);
            let m = DeliveryMessage::First(f.clone());
            let body = m.body();
            assert_eq!(DeliveryMessage::parse(&body).unwrap(), m, "{body}");
            assert_eq!(body.contains("endpoint_id"), endpoint, "{body}");
            assert!(body.starts_with(r#"{"v":2,"event_id":"evt_"#), "{body}");
            assert_eq!(
                m.delivery_id(),
                Delivery::id_for(&f.event_id, f.endpoint_id.as_ref())
            );
        }
        // Two destinations of one event are two deliveries.
        let mut other = first(true);
        let f = FirstAttempt {
            event_id: other.event_id.clone(),
            ..first(false)
        };
        assert_ne!(f.delivery_id(), other.delivery_id());
        other.endpoint_id = None;
        assert_eq!(f.delivery_id(), other.delivery_id());
    }

    #[test]
    fn a_redelivery_names_the_delivery_and_the_version_it_was_asked_of() {
        let id = DeliveryId::generate();
        let m = DeliveryMessage::Again {
            delivery_id: id.clone(),
            version: 7,
        };
        let body = m.body();
        assert_eq!(
            body,
            format!(r#"{{"v":3,"delivery_id":"{id}","version":7}}"#)
        );
        assert_eq!(DeliveryMessage::parse(&body).unwrap(), m);
        assert_eq!(m.delivery_id(), id);
        for poison in [
            format!(r#"{{"v":3,"delivery_id":"{id}"}}"#),
            r#"{"v":3,"version":7}"#.to_owned(),
            format!(r#"{{"v":3,"delivery_id":"{id}","version":-1}}"#),
            format!(r#"{{"v":3,"delivery_id":"{id}","version":7,"url":"https://x"}}"#),
        ] {
            assert!(
                matches!(
                    DeliveryMessage::parse(&poison),
                    Err(MessageError::Malformed(_))
                ),
                "{poison}"
            );
        }
    }

    #[test]
    fn a_first_attempt_missing_a_field_or_carrying_another_is_refused() {
        let body = DeliveryMessage::First(first(true)).body();
        let whole: serde_json::Value = serde_json::from_str(&body).unwrap();
        for field in ["event_id", "dispatched_at"] {
            let mut v = whole.clone();
            v.as_object_mut().unwrap().remove(field);
            assert!(
                matches!(
                    DeliveryMessage::parse(&v.to_string()),
                    Err(MessageError::Malformed(_))
                ),
                "without {field}"
            );
        }
        for (field, value) in [
            ("delivery_id", DeliveryId::generate().to_string()),
            ("url", "https://attacker.example/".to_owned()),
        ] {
            let mut v = whole.clone();
            v[field] = value.into();
            assert!(
                matches!(
                    DeliveryMessage::parse(&v.to_string()),
                    Err(MessageError::Malformed(_))
                ),
                "with {field}"
            );
        }
        let mut v = whole;
        v["dispatched_at"] = "yesterday".into();
        assert!(matches!(
            DeliveryMessage::parse(&v.to_string()),
            Err(MessageError::Malformed(_))
        ));
    }

    #[test]
    fn messages_queued_before_versions_are_read_and_unknown_versions_refused() {
        let id = DeliveryId::generate();
        let legacy = format!(r#"{{"delivery_id":"{id}"}}"#);
        assert_eq!(
            DeliveryMessage::parse(&legacy).unwrap(),
            DeliveryMessage::new(&id)
        );
        let next = format!(r#"{{"v":4,"delivery_id":"{id}"}}"#);
        assert!(matches!(
            DeliveryMessage::parse(&next),
            Err(MessageError::UnknownVersion(4))
        ));
    }
}
