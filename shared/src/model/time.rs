//! UTC timestamps with microsecond precision and one fixed-width text form.
//!
//! The text form (`2026-11-21T13:14:00.123456Z`) sorts lexicographically in time order,
//! which both store adapters rely on for their creation-time indexes. Every value is
//! between years 0000 and 9999 in UTC, so that form always exists; anything outside (say
//! `9999-12-31T23:59:59-01:00`, which is year 10000 in UTC) is refused when parsed, and
//! arithmetic stops at the bounds instead of overflowing.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime, UtcOffset};

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(OffsetDateTime);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid timestamp: expected RFC 3339 (e.g. 2026-01-31T12:00:00Z) or unix seconds")]
pub struct InvalidTimestamp;

/// The years a timestamp may fall in: those with a four-digit text form.
const YEARS: std::ops::RangeInclusive<i32> = 0..=9999;

impl Timestamp {
    pub fn now() -> Self {
        // The clock is well inside the range; the bound is only for a broken one.
        Self::from_datetime(OffsetDateTime::now_utc()).unwrap_or(Self::MAX)
    }

    /// The latest timestamp there is: the last microsecond of 9999 in UTC.
    pub const MAX: Self = Self(time::macros::datetime!(9999-12-31 23:59:59.999_999 UTC));

    /// The earliest timestamp there is: the start of year 0000 in UTC.
    pub const MIN: Self = Self(time::macros::datetime!(0000-01-01 00:00:00 UTC));

    /// `dt` in UTC, cut to microseconds; `None` when UTC puts it outside [`YEARS`].
    fn from_datetime(dt: OffsetDateTime) -> Option<Self> {
        let dt = dt.checked_to_offset(UtcOffset::UTC)?;
        if !YEARS.contains(&dt.year()) {
            return None;
        }
        dt.replace_microsecond(dt.microsecond()).ok().map(Self)
    }

    /// Parses RFC 3339 (any offset, normalised to UTC) or integer unix seconds.
    pub fn parse(s: &str) -> Result<Self, InvalidTimestamp> {
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            let secs: i64 = s.parse().map_err(|_| InvalidTimestamp)?;
            return Self::from_unix(secs).ok_or(InvalidTimestamp);
        }
        OffsetDateTime::parse(s, &Rfc3339)
            .ok()
            .and_then(Self::from_datetime)
            .ok_or(InvalidTimestamp)
    }

    pub fn from_unix(secs: i64) -> Option<Self> {
        OffsetDateTime::from_unix_timestamp(secs)
            .ok()
            .and_then(Self::from_datetime)
    }

    /// The inverse of [`Self::unix_micros`].
    pub fn from_unix_micros(micros: i64) -> Option<Self> {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000)
            .ok()
            .and_then(Self::from_datetime)
    }

    pub fn unix(&self) -> i64 {
        self.0.unix_timestamp()
    }

    /// Microseconds since the epoch; the order-preserving integer form used by SQLite.
    pub fn unix_micros(&self) -> i64 {
        (self.0.unix_timestamp_nanos() / 1_000) as i64
    }

    /// `self` moved by `secs` (back when negative), stopping at [`Self::MIN`] and
    /// [`Self::MAX`].
    pub fn plus_seconds(&self, secs: i64) -> Self {
        let bound = if secs < 0 { Self::MIN } else { Self::MAX };
        self.0
            .checked_add(Duration::seconds(secs))
            .and_then(Self::from_datetime)
            .unwrap_or(bound)
    }

    /// `last` while it is less than `grain_secs` before `now`, else `now`: a time noted at
    /// most once per `grain_secs`, so a record that keeps it is not written again for every
    /// event it notes (when a node last showed a transaction, when an attempt last failed).
    pub fn noted(last: Option<Timestamp>, now: Timestamp, grain_secs: i64) -> Timestamp {
        match last {
            Some(t) if t.seconds_until(now) < grain_secs => t,
            _ => now,
        }
    }

    /// Seconds from `self` until `later` (negative when `later` is earlier).
    pub fn seconds_until(&self, later: Timestamp) -> i64 {
        (later.0 - self.0).whole_seconds()
    }

    /// Whole seconds from `self` until `later`, rounded up: at most 0 only once `later` has
    /// come. For waits, which must not end early (a lease, a `Retry-After`).
    pub fn seconds_until_ceil(&self, later: Timestamp) -> i64 {
        let d = later.0 - self.0;
        d.whole_seconds() + i64::from(d.subsec_nanoseconds() > 0)
    }

    /// The fixed-width, lexicographically sortable text form.
    pub fn to_key(&self) -> String {
        let t = self.0;
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.microsecond()
        )
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
    fn a_wait_rounds_up_and_ends_only_when_its_time_has_come() {
        let due = Timestamp::parse("2026-01-02T03:04:05Z").unwrap();
        let at = |s: &str| Timestamp::parse(s).unwrap();
        assert_eq!(at("2026-01-02T03:04:04.5Z").seconds_until(due), 0);
        assert_eq!(at("2026-01-02T03:04:04.5Z").seconds_until_ceil(due), 1);
        assert_eq!(at("2026-01-02T03:04:03.999999Z").seconds_until_ceil(due), 2);
        assert_eq!(at("2026-01-02T03:04:04Z").seconds_until_ceil(due), 1);
        assert_eq!(due.seconds_until_ceil(due), 0);
        assert!(at("2026-01-02T03:04:05.5Z").seconds_until_ceil(due) <= 0);
        assert!(Timestamp::MIN.seconds_until_ceil(Timestamp::MAX) > 0);
        let t = at("2026-01-02T03:04:04.123456Z");
        assert_eq!(Timestamp::from_unix_micros(t.unix_micros()), Some(t));
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

    #[test]
    fn values_outside_years_0000_to_9999_in_utc_are_refused_not_panics() {
        for bad in [
            "9999-12-31T23:59:59-01:00",
            "9999-12-31T23:00:00-23:59",
            "0000-01-01T00:00:00+01:00",
            "0000-01-01T00:59:59.999999+01:00",
            "253402300800",
            "99999999999999999999",
        ] {
            assert_eq!(Timestamp::parse(bad), Err(InvalidTimestamp), "{bad}");
        }
        let last = Timestamp::parse("9999-12-31T23:59:59.9999999Z").unwrap();
        assert_eq!(last, Timestamp::MAX);
        assert_eq!(last.to_key(), "9999-12-31T23:59:59.999999Z");
        assert_eq!(
            Timestamp::parse("9999-12-31T23:59:59+01:00")
                .unwrap()
                .to_key(),
            "9999-12-31T22:59:59.000000Z"
        );
        assert_eq!(
            Timestamp::parse("0000-01-01T00:00:00Z").unwrap().to_key(),
            "0000-01-01T00:00:00.000000Z"
        );
        assert_eq!(
            Timestamp::parse("253402300799").unwrap().to_key(),
            "9999-12-31T23:59:59.000000Z"
        );
    }

    #[test]
    fn arithmetic_stops_at_the_bounds() {
        assert_eq!(Timestamp::MAX.plus_seconds(1), Timestamp::MAX);
        assert_eq!(Timestamp::MAX.plus_seconds(i64::MAX), Timestamp::MAX);
        assert_eq!(Timestamp::MIN.plus_seconds(-1), Timestamp::MIN);
        assert_eq!(Timestamp::now().plus_seconds(i64::MIN), Timestamp::MIN);
        assert!(Timestamp::MIN.seconds_until(Timestamp::MAX) > 0);
        assert!(Timestamp::MIN.to_key() < Timestamp::MAX.to_key());
        assert_eq!(Timestamp::MIN.to_key(), "0000-01-01T00:00:00.000000Z");
    }
}
