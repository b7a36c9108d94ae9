//! The delivery queue's message, one type for its producers (`dispatch-events`, a
//! redelivery by `webhook-endpoints`) and its consumer (`deliver-webhook`).

use crate::model::DeliveryId;
use serde::{Deserialize, Serialize};

/// "Attempt this delivery": `{"v": 1, "delivery_id": "msg_…"}`. Versioned, so a consumer
/// refuses a shape it does not know instead of misreading it; a message without `v` was
/// queued before the field existed and is version 1 (retries stay queued for days).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryMessage {
    pub delivery_id: DeliveryId,
}

/// Why a body is not a delivery message this code reads (a poison message).
#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    #[error("not a delivery message: {0}")]
    Malformed(#[from] serde_json::Error),
    #[error("delivery message version {0} is not one this code reads")]
    UnknownVersion(u32),
}

/// The wire form: unknown fields are refused.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    #[serde(default = "first_version")]
    v: u32,
    delivery_id: DeliveryId,
}

fn first_version() -> u32 {
    1
}

impl DeliveryMessage {
    /// The version this code writes and reads.
    pub const VERSION: u32 = 1;

    pub fn new(delivery_id: &DeliveryId) -> Self {
        Self {
            delivery_id: delivery_id.clone(),
        }
    }

    /// The message body to send.
    pub fn body(&self) -> String {
        let wire = Wire {
            v: Self::VERSION,
            delivery_id: self.delivery_id.clone(),
        };
        serde_json::to_string(&wire).expect("a delivery message always serializes")
    }

    /// Reads a received body; anything but a delivery message of a known version is an
    /// error (poison).
    pub fn parse(body: &str) -> Result<Self, MessageError> {
        let wire: Wire = serde_json::from_str(body)?;
        if wire.v != Self::VERSION {
            return Err(MessageError::UnknownVersion(wire.v));
        }
        Ok(Self {
            delivery_id: wire.delivery_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_messages_round_trip_and_refuse_anything_else() {
        let id = DeliveryId::generate();
        let m = DeliveryMessage::new(&id);
        assert_eq!(DeliveryMessage::parse(&m.body()).unwrap(), m);
        assert_eq!(m.body(), format!("{{\"v\":1,\"delivery_id\":\"{id}\"}}"));
        for poison in [
            "",
            "{}",
            "[]",
            r#"{"delivery_id": 5}"#,
            r#"{"delivery_id": "x"}"#,
            r#"{"v": "1", "delivery_id": "msg_x"}"#,
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
    fn messages_queued_before_versions_are_read_and_unknown_versions_refused() {
        let id = DeliveryId::generate();
        let legacy = format!(r#"{{"delivery_id":"{id}"}}"#);
        assert_eq!(
            DeliveryMessage::parse(&legacy).unwrap(),
            DeliveryMessage::new(&id)
        );
        let next = format!(r#"{{"v":2,"delivery_id":"{id}"}}"#);
        assert!(matches!(
            DeliveryMessage::parse(&next),
            Err(MessageError::UnknownVersion(2))
        ));
    }
}
