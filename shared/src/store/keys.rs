//! Key and cursor formats shared by both adapters, so pagination and ordering behave the
//! same everywhere.

use crate::model::{KeyMode, OrgId, PayOrder, Timestamp};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// An opaque position in a newest-first list: the sort key of the last item returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cursor is not one this API returned")]
pub struct InvalidCursor;

impl Cursor {
    pub(crate) fn after(sort_key: &str) -> Self {
        Self(sort_key.to_owned())
    }

    pub(crate) fn sort_key(&self) -> &str {
        &self.0
    }

    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0.as_bytes())
    }

    /// Decodes a cursor, checking it has the `<timestamp>#<id>` shape of a sort key.
    pub fn decode(s: &str) -> Result<Self, InvalidCursor> {
        let bytes = URL_SAFE_NO_PAD.decode(s).map_err(|_| InvalidCursor)?;
        let text = String::from_utf8(bytes).map_err(|_| InvalidCursor)?;
        let (ts, id) = text.split_once('#').ok_or(InvalidCursor)?;
        let parsed = Timestamp::parse(ts).map_err(|_| InvalidCursor)?;
        if parsed.to_key() != ts
            || id.is_empty()
            || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(InvalidCursor);
        }
        Ok(Self(text))
    }
}

/// `<created_at>#<id>`: unique and sorted by creation time.
pub(crate) fn sort_key(created_at: Timestamp, id: &str) -> String {
    format!("{}#{}", created_at.to_key(), id)
}

/// Lowest sort key at or after `t`. Open ranges use `"0"`, below every timestamp:
/// DynamoDB refuses an empty string in a key condition.
pub(crate) fn range_low(t: Option<Timestamp>) -> String {
    t.map(|t| t.to_key()).unwrap_or_else(|| "0".to_owned())
}

/// Highest sort key at or before `t` (`~` sorts after every id character).
pub(crate) fn range_high(t: Option<Timestamp>) -> String {
    match t {
        Some(t) => format!("{}#~", t.to_key()),
        None => "~".to_owned(),
    }
}

/// The sort keys a newest-first page reads: from `high` down to `low`, both included,
/// resuming strictly below `after` when a cursor is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PageRange {
    pub low: String,
    pub high: String,
    pub after: Option<String>,
}

/// Where a list window's page starts and stops, or `None` when nothing can be in it (a
/// cursor at or below `created_gte`, or `created_gte` after `created_lte`): that is an
/// empty page, not an error. A cursor above `created_lte` leaves the whole range to read.
/// Both adapters read this, so a cursor combined with a window pages the same everywhere
/// (DynamoDB refuses a start key outside the key condition's range).
pub(crate) fn page_range(w: &crate::store::ListWindow) -> Option<PageRange> {
    let low = range_low(w.created_gte);
    let high = range_high(w.created_lte);
    let after = w.cursor.as_ref().map(|c| c.sort_key().to_owned());
    if low > high || after.as_ref().is_some_and(|a| *a <= low) {
        return None;
    }
    Some(PageRange {
        after: after.filter(|a| *a <= high),
        low,
        high,
    })
}

/// The partition of one organization's data in one mode.
pub(crate) fn org_partition(kind: &str, org: &OrgId, mode: KeyMode) -> String {
    format!("{kind}#{org}#{mode}")
}

pub(crate) fn mode_of(livemode: bool) -> KeyMode {
    KeyMode::of(livemode)
}

/// The expiry sort key while an order can still expire, `None` once it cannot.
pub(crate) fn expiry_key(o: &PayOrder) -> Option<String> {
    o.status
        .is_expirable()
        .then(|| sort_key(o.expires_at, o.id.as_str()))
}

/// Where an order that takes payments is found by the deposit scan: its payment's chain
/// and `watch_until#order_id` (its expiry plus the late-payment window), so the scan reads
/// only orders still watched. `None` while it has no payment or takes none.
pub(crate) fn watch_key(o: &PayOrder) -> Option<(crate::model::ChainId, String)> {
    if !o.status.accepts_payment() {
        return None;
    }
    let p = o.payment.as_ref()?;
    Some((
        p.input.currency.chain_id,
        sort_key(o.watch_until(), o.id.as_str()),
    ))
}

/// Where an order waiting on a confirmation check is found by the upkeep: `updated_at#id`
/// (its last write), so stalled orders are the oldest. `None` when no check is due.
pub(crate) fn check_key(o: &PayOrder) -> Option<String> {
    o.awaits_check()
        .then(|| sort_key(o.updated_at, o.id.as_str()))
}

/// A record from its stored JSON document; a document that does not parse is corrupt.
pub(crate) fn parse_doc<T: serde::de::DeserializeOwned>(
    text: &str,
) -> crate::store::StoreResult<T> {
    serde_json::from_str(text).map_err(|e| crate::store::StoreError::Corrupt(e.to_string()))
}

/// How many reads (of [`read_per_query`] items each) one list request makes at most before
/// it answers what it found with a cursor after the last item read: a filter that matches
/// little (a status no recent order has) would otherwise read the whole partition in one
/// request, and time out. Both adapters stop at the same item, so they page alike.
pub(crate) const QUERIES_PER_PAGE: usize = 10;

/// How many items one read of a list request looks at, to fill `want` (a page and one).
pub(crate) fn read_per_query(want: usize) -> usize {
    want.max(25)
}

/// [`page`], for a read that may have stopped early at `stopped_at` (the last item it
/// looked at) with fewer than `limit + 1` items: then there may be more, after that item.
pub(crate) fn page_read<T>(
    items: Vec<(String, T)>,
    limit: usize,
    stopped_at: Option<String>,
) -> crate::store::Page<T> {
    match stopped_at {
        Some(last) if items.len() <= limit => crate::store::Page {
            data: items.into_iter().map(|(_, v)| v).collect(),
            has_more: true,
            next_cursor: Some(Cursor::after(&last).encode()),
        },
        _ => page(items, limit),
    }
}

/// [`page_read`] of records an index chose and the table then gave: the index's copy, which
/// a filter ran on, lags the table (DynamoDB's indexes are eventually consistent), so a
/// record that no longer matches (an order paid since) is left out by `keep`. A read that
/// stopped `full` (a page and one) and lost some that way may have more after its last.
#[cfg_attr(not(feature = "aws"), allow(dead_code))]
pub(crate) fn page_kept<T>(
    mut found: Vec<(String, T)>,
    limit: usize,
    full: bool,
    stopped_at: Option<String>,
    keep: impl Fn(&T) -> bool,
) -> crate::store::Page<T> {
    let last = found.last().map(|(k, _)| k.clone());
    let read = found.len();
    found.retain(|(_, v)| keep(v));
    let stopped_at = if found.len() < read && full {
        stopped_at.or(last)
    } else {
        stopped_at
    };
    page_read(found, limit, stopped_at)
}

/// Builds a page from up to `limit + 1` items fetched newest first.
pub(crate) fn page<T>(mut items: Vec<(String, T)>, limit: usize) -> crate::store::Page<T> {
    let has_more = items.len() > limit;
    items.truncate(limit);
    let next_cursor = if has_more {
        items.last().map(|(k, _)| Cursor::after(k).encode())
    } else {
        None
    };
    crate::store::Page {
        data: items.into_iter().map(|(_, v)| v).collect(),
        has_more,
        next_cursor,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trip_and_refusals() {
        let k = sort_key(Timestamp::now(), "po_abc");
        let c = Cursor::after(&k);
        assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
        for bad in [
            "",
            "!!!",
            "bm9wZQ",
            &URL_SAFE_NO_PAD.encode("2026-01-01T00:00:00Z#po_x"),
            // A timestamp that is past year 9999 once in UTC.
            &URL_SAFE_NO_PAD.encode("9999-12-31T23:59:59-01:00#po_x"),
            &URL_SAFE_NO_PAD.encode("10000-01-01T00:00:00.000000Z#po_x"),
        ] {
            assert_eq!(Cursor::decode(bad), Err(InvalidCursor), "{bad}");
        }
    }

    #[test]
    fn ranges_bracket_sort_keys() {
        let t = Timestamp::now();
        let k = sort_key(t, "po_zzzz");
        assert!(range_low(Some(t)) <= k);
        assert!(k <= range_high(Some(t)));
        assert!(k < range_high(None));
        assert!(range_high(Some(t.plus_seconds(-1))) < k);
    }

    #[test]
    fn page_ranges_with_cursors_inside_and_outside_the_window() {
        use crate::store::ListWindow;
        let t = Timestamp::parse("2026-06-01T12:00:00Z").unwrap();
        let at = |secs: i64| Cursor::after(&sort_key(t.plus_seconds(secs), "po_x"));
        let w = |gte: Option<i64>, lte: Option<i64>, cursor: Option<i64>| ListWindow {
            created_gte: gte.map(|s| t.plus_seconds(s)),
            created_lte: lte.map(|s| t.plus_seconds(s)),
            cursor: cursor.map(at),
            ..ListWindow::new(crate::model::OrgId::generate(), KeyMode::Test)
        };
        let inside = page_range(&w(Some(0), Some(100), Some(50))).unwrap();
        assert_eq!(inside.after.as_deref(), Some(at(50).sort_key()));
        assert_eq!(
            (inside.low, inside.high),
            (range_low(Some(t)), range_high(Some(t.plus_seconds(100))))
        );
        // Newer than the window: the window is read from its top.
        assert_eq!(
            page_range(&w(Some(0), Some(100), Some(500))).unwrap().after,
            None
        );
        // Older than the window, or an empty window: nothing to read.
        assert_eq!(page_range(&w(Some(0), Some(100), Some(-5))), None);
        assert_eq!(page_range(&w(Some(1), None, Some(0))), None);
        assert_eq!(page_range(&w(Some(10), Some(5), None)), None);
        assert!(page_range(&w(None, None, Some(0))).unwrap().after.is_some());
    }
}

#[cfg(test)]
mod page_tests {
    use super::*;

    fn key(i: u32) -> String {
        sort_key(
            Timestamp::from_unix(1_700_000_000 + i64::from(i)).unwrap(),
            &format!("ord_{i}"),
        )
    }

    fn rows(n: u32) -> Vec<(String, u32)> {
        (0..n).rev().map(|i| (key(i), i)).collect()
    }

    #[test]
    fn records_that_no_longer_match_are_left_out_and_a_full_read_says_there_is_more() {
        // A page of 3: a full read of 4, one of which no longer matches.
        let page = page_kept(rows(4), 3, true, None, |v| *v != 2);
        assert_eq!(page.data, vec![3, 1, 0]);
        assert!(page.has_more);
        let cursor = Cursor::decode(page.next_cursor.as_deref().unwrap()).unwrap();
        assert_eq!(cursor.sort_key(), key(0));
        // The partition's end: nothing more, whatever was left out.
        let end = page_kept(rows(3), 3, false, None, |v| *v != 2);
        assert_eq!(end.data, vec![1, 0]);
        assert!(!end.has_more);
        // Nothing left out: as a plain page.
        let plain = page_kept(rows(4), 3, true, None, |_| true);
        assert_eq!(plain.data, vec![3, 2, 1]);
        assert!(plain.has_more);
    }
}
