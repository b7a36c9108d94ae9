//! UTC timestamps with microsecond precision and one fixed-width text form.
//!
//! The text form (`2026-11-21T13:14:00.123456Z`) sorts lexicographically in time order,
//! which both store adapters rely on for their creation-time indexes.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Duration, OffsetDateTime, UtcOffset};

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(OffsetDateTime);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid timestamp: expected RFC 3339 (e.g. 2026-01-31T12:00:00Z) or unix seconds")]
pub struct InvalidTimestamp;

const FIXED: &[time::format_description::BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");

impl Timestamp {
    pub fn now() -> Self {
        Self::from_datetime(OffsetDateTime::now_utc())
    }

    fn from_datetime(dt: OffsetDateTime) -> Self {
        let dt = dt.to_offset(UtcOffset::UTC);
        let micros = dt.microsecond();
        Self(
            dt.replace_microsecond(micros)
                .expect("microsecond in range"),
        )
    }

    /// Parses RFC 3339 (any offset, normalised to UTC) or integer unix seconds.
    pub fn parse(s: &str) -> Result<Self, InvalidTimestamp> {
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            let secs: i64 = s.parse().map_err(|_| InvalidTimestamp)?;
            return Self::from_unix(secs).ok_or(InvalidTimestamp);
        }
        OffsetDateTime::parse(s, &Rfc3339)
            .map(Self::from_datetime)
            .map_err(|_| InvalidTimestamp)
    }

    pub fn from_unix(secs: i64) -> Option<Self> {
        OffsetDateTime::from_unix_timestamp(secs)
            .ok()
            .map(Self::from_datetime)
    }

    pub fn unix(&self) -> i64 {
        self.0.unix_timestamp()
    }

    /// Microseconds since the epoch; the order-preserving integer form used by SQLite.
    pub fn unix_micros(&self) -> i64 {
        (self.0.unix_timestamp_nanos() / 1_000) as i64
    }

    pub fn plus_seconds(&self, secs: i64) -> Self {
        Self(self.0 + Duration::seconds(secs))
    }

    /// Seconds from `self` until `later` (negative when `later` is earlier).
    pub fn seconds_until(&self, later: Timestamp) -> i64 {
        (later.0 - self.0).whole_seconds()
    }

    /// The fixed-width, lexicographically sortable text form.
    pub fn to_key(&self) -> String {
        self.0.format(FIXED).expect("UTC timestamps always format")
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_key())
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({})", self.to_key())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_key())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_form_round_trips_and_sorts() {
        let a = Timestamp::parse("2026-01-02T03:04:05.5+01:00").unwrap();
        assert_eq!(a.to_key(), "2026-01-02T02:04:05.500000Z");
        assert_eq!(Timestamp::parse(&a.to_key()).unwrap(), a);
        let b = a.plus_seconds(1);
        assert!(a.to_key() < b.to_key());
        assert_eq!(a.seconds_until(b), 1);
    }

    #[test]
    fn unix_seconds_are_accepted_and_garbage_is_not() {
        assert_eq!(
            Timestamp::parse("0").unwrap().to_key(),
            "1970-01-01T00:00:00.000000Z"
        );
        for bad in ["", "yesterday", "2026-13-01T00:00:00Z", "-5", "1e9"] {
            assert_eq!(Timestamp::parse(bad), Err(InvalidTimestamp), "{bad}");
        }
    }
}
