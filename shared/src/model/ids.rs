//! Prefixed, unguessable identifiers (`po_…`, `org_…`, `evt_…`, `key_…`).
//!
//! Each id is a prefix plus 16 bytes in base58: the time it was made in milliseconds (48
//! bits, as UUIDv7 and ULID begin) and 80 random bits. The random part keeps ids from being
//! enumerated or guessed, so the public order view can be addressed by id alone; the time
//! in front makes ids made later sort after earlier ones, so the local store's indexes on
//! ids grow at their end instead of rewriting a page anywhere in them for every new record.
//! Any 16 bytes parse: ids made before the time was put in front stay valid.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// Why a string is not a valid id of the expected kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} id: expected `{prefix}_` followed by 16 bytes in base58")]
pub struct InvalidId {
    pub kind: &'static str,
    pub prefix: &'static str,
}

const ID_BYTES: usize = 16;
/// The leading bytes of a generated id that hold its time (milliseconds since 1970).
const TIME_BYTES: usize = 6;

/// A generated id's 16 bytes: the current time in milliseconds (big-endian, 48 bits), then
/// 80 random bits. From 2004 to 2248 the first byte is non-zero and the base58 text always
/// 21 characters long, and the base58 alphabet is in ASCII order, so ids sort as text in
/// the order they were made (within a millisecond, at random).
fn time_ordered_body(now: std::time::SystemTime) -> [u8; ID_BYTES] {
    let ms = now
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut body = random_bytes::<ID_BYTES>();
    body[..TIME_BYTES].copy_from_slice(&ms.to_be_bytes()[8 - TIME_BYTES..]);
    body
}

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

            /// A new id: the time now and 80 random bits (see the module's docs).
            pub fn generate() -> Self {
                let body = time_ordered_body(std::time::SystemTime::now());
                Self(format!("{}_{}", $prefix, bs58::encode(body).into_string()))
            }

            /// The id whose 128 bits are the first 16 bytes of `digest`: deterministic ids
            /// for records that must be created at most once (e.g. one delivery per event
            /// and endpoint).
            pub fn from_digest(digest: &[u8]) -> Self {
                let mut body = [0u8; ID_BYTES];
                body.copy_from_slice(&digest[..ID_BYTES]);
                Self(format!("{}_{}", $prefix, bs58::encode(body).into_string()))
            }

            /// Parses an id, checking its prefix and that its body is 16 bytes of base58.
            pub fn parse(s: &str) -> Result<Self, InvalidId> {
                let err = InvalidId { kind: $kind, prefix: $prefix };
                let body = s
                    .strip_prefix($prefix)
                    .and_then(|rest| rest.strip_prefix('_'))
                    .ok_or(err.clone())?;
                let mut out = [0u8; ID_BYTES];
                match bs58::decode(body).onto(&mut out) {
                    Ok(ID_BYTES) => Ok(Self(s.to_owned())),
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
    fn generated_ids_sort_in_the_order_they_were_made() {
        use std::time::{Duration, UNIX_EPOCH};
        let mut made = Vec::new();
        for _ in 0..3 {
            made.push(OrderId::generate());
            std::thread::sleep(Duration::from_millis(2));
        }
        let mut sorted = made.clone();
        sorted.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        assert_eq!(sorted, made, "as text, later ids sort after earlier ones");
        // The same holds across the years: the text's length does not change.
        let at = |secs: u64| {
            let body = time_ordered_body(UNIX_EPOCH + Duration::from_secs(secs));
            bs58::encode(body).into_string()
        };
        let (y2004, y2026, y2200) = (at(1_100_000_000), at(1_796_000_000), at(7_258_000_000));
        assert!(y2004.len() == 21 && y2026.len() == 21 && y2200.len() == 21);
        assert!(y2004 < y2026 && y2026 < y2200);
        // The time is in front, the rest is random: two ids of one millisecond differ.
        let now = UNIX_EPOCH + Duration::from_millis(1_796_000_000_123);
        let (a, b) = (time_ordered_body(now), time_ordered_body(now));
        assert_eq!(a[..TIME_BYTES], 1_796_000_000_123u64.to_be_bytes()[2..]);
        assert_eq!(a[..TIME_BYTES], b[..TIME_BYTES]);
        assert_ne!(
            a[TIME_BYTES..],
            b[TIME_BYTES..],
            "80 random bits follow the time"
        );
    }

    #[test]
    fn ids_made_before_the_time_was_put_in_front_still_parse() {
        let old = format!("po_{}", bs58::encode([0u8; 16]).into_string());
        assert!(OrderId::parse(&old).is_ok());
        let old = format!("po_{}", bs58::encode([0xffu8; 16]).into_string());
        assert!(OrderId::parse(&old).is_ok());
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
