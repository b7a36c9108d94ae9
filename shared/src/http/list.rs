//! The list parameters every list route shares (`limit`, `cursor`, `created_gte`,
//! `created_lte`), as typed values, and the window they make for the caller.

use super::ApiError;
use crate::auth::AuthContext;
use crate::model::Timestamp;
use crate::store::{Cursor, ListWindow};
use serde::Deserialize;

/// Page size: 1-100 (20 when absent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "u32")]
pub struct Limit(u32);

impl TryFrom<u32> for Limit {
    type Error = &'static str;

    fn try_from(n: u32) -> Result<Self, Self::Error> {
        if (1..=100).contains(&n) {
            Ok(Self(n))
        } else {
            Err("limit must be an integer from 1 to 100")
        }
    }
}

impl Limit {
    pub fn get(self) -> u32 {
        self.0
    }
}

/// A `cursor` this API returned (`next_cursor`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct PageCursor(Cursor);

impl TryFrom<String> for PageCursor {
    type Error = crate::store::InvalidCursor;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        Cursor::decode(&s).map(Self)
    }
}

impl PageCursor {
    pub fn into_cursor(self) -> Cursor {
        self.0
    }
}

/// The shared list parameters of one request.
#[derive(Debug, Clone, Default)]
pub struct Window {
    pub limit: Option<Limit>,
    pub cursor: Option<PageCursor>,
    pub created_gte: Option<Timestamp>,
    pub created_lte: Option<Timestamp>,
}

impl Window {
    /// The caller's window (their organization and mode); `created_gte` after
    /// `created_lte` is a 400.
    pub fn for_caller(self, ctx: &AuthContext) -> Result<ListWindow, ApiError> {
        if let (Some(a), Some(b)) = (self.created_gte, self.created_lte)
            && a > b
        {
            return Err(ApiError::invalid(
                "INVALID_TIMESTAMP",
                "created_gte",
                "created_gte is after created_lte",
            ));
        }
        let mut w = ListWindow::new(ctx.org_id.clone(), ctx.mode);
        if let Some(l) = self.limit {
            w.limit = l.get();
        }
        w.cursor = self.cursor.map(|c| c.0);
        w.created_gte = self.created_gte;
        w.created_lte = self.created_lte;
        Ok(w)
    }
}

/// The codes of the shared list parameters, for a route's [`super::Params`] impl.
pub fn code(field: &str) -> Option<&'static str> {
    match field {
        "limit" => Some("INVALID_LIMIT"),
        "cursor" => Some("INVALID_CURSOR"),
        "created_gte" | "created_lte" => Some("INVALID_TIMESTAMP"),
        _ => None,
    }
}

/// A `currency` filter as a registry currency id (`8453:native`, `8453:0x…` in the
/// registry's spelling, whatever the caller's case), or `400 UNSUPPORTED_CURRENCY`: a
/// filter naming no currency we support would match nothing and look like an empty list.
pub fn currency_filter(currency: Option<String>) -> Result<Option<String>, ApiError> {
    currency
        .map(|c| {
            crate::registry::registry()
                .currency_by_id(&c)
                .map(|c| c.id)
                .map_err(|e| {
                    ApiError::invalid(
                        "UNSUPPORTED_CURRENCY",
                        "currency",
                        format!("{e}; use a currency id such as 8453:native or 8453:0x…"),
                    )
                })
        })
        .transpose()
}
