//! Prefixed, unguessable identifiers (`po_…`, `org_…`, `evt_…`, `key_…`).
//!
//! Each id is a prefix plus 128 random bits in base58, so ids cannot be enumerated and the
//! public order view can be addressed by id alone.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// Why a string is not a valid id of the expected kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} id: expected `{prefix}_` followed by 128 random bits in base58")]
pub struct InvalidId {
    pub kind: &'static str,
    pub prefix: &'static str,
}

const RANDOM_BYTES: usize = 16;

/// Fresh random bytes from the operating system's CSPRNG.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).expect("the OS random source is unavailable");
    buf
}

macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            /// A new random id.
            pub fn generate() -> Self {
                let body = bs58::encode(random_bytes::<RANDOM_BYTES>()).into_string();
                Self(format!("{}_{}", $prefix, body))
            }

            /// The id whose 128 bits are the first 16 bytes of `digest`: deterministic ids
            /// for records that must be created at most once (e.g. one delivery per event
            /// and endpoint).
            pub fn from_digest(digest: &[u8]) -> Self {
                let mut body = [0u8; RANDOM_BYTES];
                body.copy_from_slice(&digest[..RANDOM_BYTES]);
                Self(format!("{}_{}", $prefix, bs58::encode(body).into_string()))
            }

            /// Parses an id, checking its prefix and that its body is 16 bytes of base58.
            pub fn parse(s: &str) -> Result<Self, InvalidId> {
                let err = InvalidId { kind: $kind, prefix: $prefix };
                let body = s
                    .strip_prefix($prefix)
                    .and_then(|rest| rest.strip_prefix('_'))
                    .ok_or(err.clone())?;
                let mut out = [0u8; RANDOM_BYTES];
                match bs58::decode(body).onto(&mut out) {
                    Ok(RANDOM_BYTES) => Ok(Self(s.to_owned())),
                    _ => Err(err),
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = InvalidId;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                $crate::openapi::prefixed_id($prefix, $kind)
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::ToSchema for $name {}

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

prefixed_id!(
    /// A pay order.
    OrderId, "po", "order"
);
prefixed_id!(
    /// An organization (merchant).
    OrgId, "org", "organization"
);
prefixed_id!(
    /// An event record (the outbox row written with each transition).
    EventId, "evt", "event"
);
prefixed_id!(
    /// An API key's public id (the key itself is only ever stored hashed).
    KeyId, "key", "API key"
);
prefixed_id!(
    /// A webhook endpoint.
    WebhookEndpointId, "we", "webhook endpoint"
);
prefixed_id!(
    /// One message to one destination (the Standard Webhooks `webhook-id`), stable across
    /// retries.
    DeliveryId, "msg", "delivery"
);
prefixed_id!(
    /// A refund of a pay order.
    RefundId, "re", "refund"
);
prefixed_id!(
    /// A request, echoed in `X-Request-Id` and in error bodies.
    RequestId, "req", "request"
);
prefixed_id!(
    /// An entry of an organization's audit log.
    AuditId, "aud", "audit entry"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_parse_and_are_unique() {
        let a = OrderId::generate();
        let b = OrderId::generate();
        assert_ne!(a, b);
        assert!(a.as_str().starts_with("po_"));
        assert_eq!(OrderId::parse(a.as_str()).unwrap(), a);
    }

    #[test]
    fn wrong_prefix_or_body_is_refused() {
        let org = OrgId::generate();
        assert!(OrderId::parse(org.as_str()).is_err());
        assert!(OrderId::parse("po_").is_err());
        assert!(
            OrderId::parse("po_0OIl").is_err(),
            "0, O, I and l are not base58"
        );
        assert!(
            OrderId::parse("po_abc").is_err(),
            "too short to hold 128 bits"
        );
        let long = format!("po_{}", bs58::encode([7u8; 20]).into_string());
        assert!(OrderId::parse(&long).is_err(), "too long");
        assert!(OrderId::parse("po-3mJr7AoUXx2Wqd").is_err());
    }

    #[test]
    fn serde_round_trip_validates() {
        let id = EventId::generate();
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(serde_json::from_str::<EventId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<EventId>("\"evt_nope\"").is_err());
    }
}
