//! The versioned-write rule, once for both adapters: a record is replaced only while the
//! stored version is still the one its writer read, and the writer hands over the record at
//! the next version ([`Versioned::next_version`]). Anything else is refused with the typed
//! error ([`StoreError::VersionConflict`], or [`StoreError::NotFound`] where a record that
//! is gone must say so). The adapters only read the stored version and write, or (DynamoDB)
//! express [`Guard::check`] as their write's condition and explain a refusal with it.

use super::{StoreError, StoreResult};
use crate::model::{Delivery, MerchantWallet, Organization, WebhookEndpoint};

/// A record written under optimistic concurrency: it carries the version it was written at.
pub trait Versioned: Clone {
    fn version(&self) -> u64;
    fn version_mut(&mut self) -> &mut u64;

    /// The record to write in place of this one: a copy at the next version. Write it with
    /// this one's version as the expected one.
    fn next_version(&self) -> Self {
        let mut next = self.clone();
        *next.version_mut() += 1;
        next
    }
}

macro_rules! versioned {
    ($($t:ty),*) => {$(
        impl Versioned for $t {
            fn version(&self) -> u64 {
                self.version
            }
            fn version_mut(&mut self) -> &mut u64 {
                &mut self.version
            }
        }
    )*};
}
versioned!(WebhookEndpoint, Delivery, MerchantWallet, Organization);

/// What a guarded write expects to find stored, and what it answers when it does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Guard {
    /// The stored version (or value) the write replaces; `None`: nothing may be stored yet.
    expected: Option<u64>,
    /// A record that is gone is `NotFound` (deleted, not changed); otherwise a conflict.
    gone_is_not_found: bool,
}

impl Guard {
    /// Replaces the record stored at version `expected`; a missing record is a conflict.
    pub fn version(expected: u64) -> Self {
        Self {
            expected: Some(expected),
            gone_is_not_found: false,
        }
    }

    /// As [`Guard::version`], but a missing record is `NotFound`.
    pub fn existing(expected: u64) -> Self {
        Self {
            gone_is_not_found: true,
            ..Self::version(expected)
        }
    }

    /// Moves a value that only grows (a scan cursor) from `expected`, `None` meaning it
    /// must not be set yet.
    pub fn value(expected: Option<u64>) -> Self {
        Self {
            expected,
            gone_is_not_found: false,
        }
    }

    /// The stored version (or value) the write requires; `None`: nothing stored.
    pub fn expected(&self) -> Option<u64> {
        self.expected
    }

    /// The rule: may the write replace what is stored (`None`: nothing is)?
    pub fn check(&self, stored: Option<u64>) -> StoreResult<()> {
        match (stored, self.expected) {
            (stored, expected) if stored == expected => Ok(()),
            (None, Some(_)) if self.gone_is_not_found => Err(StoreError::NotFound),
            _ => Err(self.conflict()),
        }
    }

    /// The typed error of a write refused because the record changed.
    pub fn conflict(&self) -> StoreError {
        StoreError::VersionConflict {
            expected: self.expected.unwrap_or(0),
        }
    }

    /// Why a store refused the write's condition, from what is stored now (read after the
    /// refusal): always an error, a conflict if it looks as expected again.
    pub fn refused(&self, stored_now: Option<u64>) -> StoreError {
        self.check(stored_now)
            .err()
            .unwrap_or_else(|| self.conflict())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_conflict(r: StoreResult<()>, expected: u64) -> bool {
        matches!(r, Err(StoreError::VersionConflict { expected: e }) if e == expected)
    }

    #[test]
    fn writes_only_over_the_version_read() {
        let g = Guard::version(3);
        assert!(g.check(Some(3)).is_ok());
        assert!(is_conflict(g.check(Some(4)), 3));
        assert!(is_conflict(g.check(Some(2)), 3));
        assert!(
            is_conflict(g.check(None), 3),
            "a missing record is a conflict"
        );
        assert_eq!(g.expected(), Some(3));
    }

    #[test]
    fn existing_records_that_are_gone_are_not_found() {
        let g = Guard::existing(3);
        assert!(g.check(Some(3)).is_ok());
        assert!(is_conflict(g.check(Some(4)), 3));
        assert!(matches!(g.check(None), Err(StoreError::NotFound)));
        assert!(matches!(g.refused(None), StoreError::NotFound));
        assert!(matches!(
            g.refused(Some(4)),
            StoreError::VersionConflict { expected: 3 }
        ));
        // Refused, then found as expected (it changed back): still a conflict.
        assert!(matches!(
            g.refused(Some(3)),
            StoreError::VersionConflict { expected: 3 }
        ));
    }

    #[test]
    fn values_start_unset_and_move_from_what_was_read() {
        let first = Guard::value(None);
        assert!(first.check(None).is_ok());
        assert!(is_conflict(first.check(Some(100)), 0));
        let next = Guard::value(Some(100));
        assert!(next.check(Some(100)).is_ok());
        assert!(is_conflict(next.check(Some(99)), 100));
        assert!(is_conflict(next.check(None), 100));
    }

    #[test]
    fn the_next_version_is_one_more() {
        let (e, _) = crate::testing::endpoint(
            &crate::model::OrgId::generate(),
            false,
            "https://example.com/hooks",
            &crate::testing::master_key(),
            crate::model::Timestamp::now(),
        );
        let next = e.next_version();
        assert_eq!(next.version(), e.version() + 1);
        assert_eq!(WebhookEndpoint { version: 1, ..next }, e);
        assert_eq!(e.next_version().next_version().version(), e.version + 2);
    }
}
