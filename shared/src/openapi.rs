//! OpenAPI schemas of the wire types whose serialization is written by hand (feature
//! `openapi`, enabled by the local host only): timestamps, raw amounts, chain ids, prefixed
//! ids, wire enums, list parameters and the error shape. The derived ones sit on the types.

use crate::http::ApiError;
use crate::http::codes::ErrorCode;
use crate::http::list::{Limit, PageCursor};
use crate::model::{ChainId, RawAmount, Timestamp};
use serde_json::{Value, json};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::Schema;
use utoipa::{PartialSchema, ToSchema};

/// A schema written as JSON Schema text (what the document shows, read back as utoipa's).
pub fn schema(v: Value) -> RefOr<Schema> {
    serde_json::from_value(v).expect("a valid schema object")
}

/// A string enum of `values`.
pub fn string_enum(values: &[&str]) -> RefOr<Schema> {
    schema(json!({ "type": "string", "enum": values }))
}

/// An id: `<prefix>_` then base58.
pub fn prefixed_id(prefix: &str, kind: &str) -> RefOr<Schema> {
    schema(json!({
        "type": "string",
        "description": format!("The id of a {kind}: `{prefix}_` then base58."),
        "pattern": format!("^{prefix}_[1-9A-HJ-NP-Za-km-z]+$"),
        "examples": [format!("{prefix}_4Q9uWvT1pXr8bnK2")],
    }))
}

macro_rules! by_hand {
    ($t:ty, $json:tt) => {
        impl PartialSchema for $t {
            fn schema() -> RefOr<Schema> {
                schema(json!($json))
            }
        }
        impl ToSchema for $t {}
    };
}

by_hand!(Timestamp, {
    "type": "string",
    "format": "date-time",
    "description": "An RFC 3339 time in UTC.",
    "examples": ["2026-11-01T12:00:00Z"]
});

by_hand!(RawAmount, {
    "type": "string",
    "pattern": "^[0-9]+$",
    "description": "An amount in the currency's smallest unit, as a decimal string (up to 2^256 - 1).",
    "examples": ["100000000"]
});

by_hand!(ChainId, {
    "type": "integer",
    "format": "int64",
    "minimum": 1,
    "maximum": 9007199254740991u64,
    "description": "A chain id: EVM ids as they are (8453 is Base), Solana 30000000000001.",
    "examples": [8453]
});

by_hand!(Limit, {
    "type": "integer",
    "minimum": 1,
    "maximum": 100,
    "default": 20,
    "description": "Page size."
});

by_hand!(PageCursor, {
    "type": "string",
    "description": "The `next_cursor` of the previous page."
});

/// The error shape every failure answers with; `code` is one of the catalogue's.
pub struct ErrorBody;

impl PartialSchema for ErrorBody {
    fn schema() -> RefOr<Schema> {
        let codes: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        let mut kinds: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.kind().as_str()).collect();
        kinds.sort_unstable();
        kinds.dedup();
        let example = ApiError::invalid("INVALID_AMOUNT", "amount", "amount must be positive")
            .body("req_5f0c2a9b");
        schema(json!({
            "type": "object",
            "description": "An error. `code` is stable; `message` is for people.",
            "required": ["error", "request_id"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["type", "code", "message", "documentation_url"],
                    "properties": {
                        "type": { "type": "string", "enum": kinds },
                        "code": { "type": "string", "enum": codes },
                        "message": { "type": "string" },
                        "param": {
                            "type": "string",
                            "description": "The request field at fault, when one is."
                        },
                        "documentation_url": { "type": "string", "format": "uri" }
                    }
                },
                "request_id": { "type": "string" }
            },
            "examples": [example]
        }))
    }
}

impl ToSchema for ErrorBody {}
