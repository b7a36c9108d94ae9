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

/// Where an order waiting for a payment is found by the deposit scan: its payment's chain
/// and `deposit_address#order_id`. `None` once it no longer waits (or has no payment yet).
pub(crate) fn watch_key(o: &PayOrder) -> Option<(crate::model::ChainId, String)> {
    use crate::model::OrderStatus;
    if !matches!(
        o.status,
        OrderStatus::AwaitingPayment | OrderStatus::PartialPayment
    ) {
        return None;
    }
    let p = o.payment.as_ref()?;
    Some((
        p.input.currency.chain_id,
        format!("{}#{}", p.deposit_address(), o.id),
    ))
}

/// A record from its stored JSON document; a document that does not parse is corrupt.
pub(crate) fn parse_doc<T: serde::de::DeserializeOwned>(
    text: &str,
) -> crate::store::StoreResult<T> {
    serde_json::from_str(text).map_err(|e| crate::store::StoreError::Corrupt(e.to_string()))
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
}
