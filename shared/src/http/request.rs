//! Typed requests: a JSON body or a query string read into a route's own
//! `#[derive(Deserialize)]` type (with `#[serde(deny_unknown_fields)]`), and the one
//! mapping of serde errors to our error shape.
//!
//! A route's request type implements [`Params`] to say which code each of its fields answers
//! when it does not read; `param` is the top-level field, so a client can point at it.
//! Unknown fields are `UNKNOWN_PARAMETER`, whatever the route.

use super::{ApiError, Request, RequestExt, body_bytes};
use crate::auth::AuthContext;
use crate::model::Timestamp;
use lambda_http::http::header;
use serde::Deserialize;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde_path_to_error::{Path, Segment};

/// A request type (body or query string): what a client gets when a field does not read.
pub trait Params: DeserializeOwned {
    /// The error code for the top-level `field` when it is malformed or missing.
    fn code(field: &str) -> &'static str;
}

/// For an update's field where `null` means "clear it" and absence "leave it":
/// `#[serde(default, deserialize_with = "nullable")] field: Option<Option<T>>`.
pub fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// No body fields at all (an empty body or `{}`): for writes that take none.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoFields {}

impl Params for NoFields {
    fn code(_field: &str) -> &'static str {
        "INVALID_PARAMETER"
    }
}

/// The JSON object body read into `T`. An empty body reads as `{}` when `allow_empty`;
/// anything but `application/json` (charset allowed) is a 415; invalid JSON and
/// non-objects are `INVALID_JSON`.
pub fn json<T: Params>(req: &Request, allow_empty: bool) -> Result<T, ApiError> {
    read_json(json_bytes(req, allow_empty)?)
}

/// The body of a write that may be signed: its raw bytes must match the signature's body
/// hash (checked before the body is read into `T`, over exactly the bytes received).
pub async fn signed_json<T: Params>(
    claims: &dyn crate::store::ClaimStore,
    ctx: &AuthContext,
    req: &Request,
    allow_empty: bool,
) -> Result<T, ApiError> {
    let bytes = json_bytes(req, allow_empty)?;
    crate::auth::verify_body(claims, ctx, body_bytes(req)?, Timestamp::now()).await?;
    read_json(bytes)
}

/// A write that takes no body: none may be sent, and a signature, if sent, must be over none
/// (as every route that reads a body checks its signature against it).
pub async fn signed_no_body(
    claims: &dyn crate::store::ClaimStore,
    ctx: &AuthContext,
    req: &Request,
) -> Result<(), ApiError> {
    super::no_body(req)?;
    crate::auth::verify_body(claims, ctx, &[], Timestamp::now()).await?;
    Ok(())
}

/// The query string read into `T`; each parameter at most once.
pub fn query<T: Params>(req: &Request) -> Result<T, ApiError> {
    let q = req.query_string_parameters();
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    for (k, _) in q.iter() {
        if pairs.iter().any(|(seen, _)| *seen == k) {
            continue;
        }
        let all = q.all(k).unwrap_or_default();
        if all.len() > 1 {
            return Err(ApiError::invalid(
                "INVALID_PARAMETER",
                k,
                format!("{k} may be given once"),
            ));
        }
        pairs.push((k, all.first().copied().unwrap_or_default()));
    }
    read_query(&pairs)
}

/// `pairs` (unique keys) read into `T` as a query string.
pub fn read_query<T: Params>(pairs: &[(&str, &str)]) -> Result<T, ApiError> {
    let encoded = serde_urlencoded::to_string(pairs).map_err(|_| ApiError::internal())?;
    let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(encoded.as_bytes()));
    serde_path_to_error::deserialize(de)
        .map_err(|e| field_error::<T>(e.path(), &e.inner().to_string()))
}

/// The body bytes to read: checked for size and media type, syntactically valid JSON whose
/// top level is an object (`{}` for an allowed empty body).
fn json_bytes(req: &Request, allow_empty: bool) -> Result<&[u8], ApiError> {
    let bytes = body_bytes(req)?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        if allow_empty {
            return Ok(b"{}");
        }
        return Err(ApiError::bad_request(
            "MISSING_BODY",
            "this request needs a JSON body",
        ));
    }
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let essence = ct.split(';').next().unwrap_or_default().trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        return Err(ApiError::unsupported_media_type());
    }
    if let Err(e) = serde_json::from_slice::<IgnoredAny>(bytes) {
        return Err(ApiError::bad_request(
            "INVALID_JSON",
            format!("the body is not valid JSON: {e}"),
        ));
    }
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::bad_request(
            "INVALID_JSON",
            "the body must be a JSON object",
        ));
    }
    Ok(bytes)
}

/// Valid JSON (see [`json_bytes`]) read into `T`.
pub fn read_json<T: Params>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let message = e.inner().to_string();
        // serde_json adds where in the text the error is; the param says it better.
        let message = match message.rfind(" at line ") {
            Some(i) if e.inner().line() > 0 => &message[..i],
            _ => &message,
        };
        field_error::<T>(e.path(), message)
    })
}

/// The one mapping of a serde error (where it happened and serde's words) to our error
/// shape: an unknown top-level field is `UNKNOWN_PARAMETER`; anything else is the code
/// `T` gives its top-level field, with that field as `param`.
pub fn field_error<T: Params>(path: &Path, message: &str) -> ApiError {
    let keys: Vec<&str> = path
        .iter()
        .map(|s| match s {
            Segment::Map { key } => key.as_str(),
            Segment::Enum { variant } => variant.as_str(),
            _ => "",
        })
        .collect();
    if keys.len() <= 1
        && let Some(name) = quoted(message, "unknown field `")
    {
        return ApiError::invalid(
            "UNKNOWN_PARAMETER",
            name,
            format!("unknown parameter {name}"),
        );
    }
    let Some(&field) = keys.first() else {
        if let Some(name) = quoted(message, "missing field `") {
            return ApiError::invalid(T::code(name), name, format!("{name} is required"));
        }
        if let Some(name) = quoted(message, "duplicate field `") {
            return ApiError::invalid(T::code(name), name, format!("{name} is given twice"));
        }
        return ApiError::bad_request("INVALID_REQUEST", message.to_owned());
    };
    ApiError::invalid(T::code(field), field, format!("invalid {field}: {message}"))
}

/// The name serde quotes after `prefix` (`unknown field `x`, …` → `x`).
fn quoted<'a>(message: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = message.strip_prefix(prefix)?;
    rest.split_once('`').map(|(name, _)| name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::OrderStatus;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Example {
        amount: String,
        status: Option<OrderStatus>,
        limit: Option<u32>,
        nested: Option<Nested>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Nested {
        bps: u32,
    }

    impl Params for Example {
        fn code(field: &str) -> &'static str {
            match field {
                "amount" => "INVALID_AMOUNT",
                "status" => "INVALID_STATUS",
                "limit" => "INVALID_LIMIT",
                _ => "INVALID_NESTED",
            }
        }
    }

    fn body(text: &str) -> ApiError {
        read_json::<Example>(text.as_bytes()).unwrap_err()
    }

    fn pair(e: &ApiError) -> (&str, Option<&str>) {
        (e.code, e.param.as_deref())
    }

    #[test]
    fn serde_errors_name_the_field_with_its_code() {
        let e = body(r#"{"amount": "1", "surprise": true}"#);
        assert_eq!(pair(&e), ("UNKNOWN_PARAMETER", Some("surprise")));
        assert_eq!(e.message, "unknown parameter surprise");
        let e = body(r#"{"status": "PENDING"}"#);
        assert_eq!(pair(&e), ("INVALID_AMOUNT", Some("amount")));
        assert_eq!(e.message, "amount is required");
        let e = body(r#"{"amount": 5}"#);
        assert_eq!(pair(&e), ("INVALID_AMOUNT", Some("amount")));
        assert!(!e.message.contains("line"), "{}", e.message);
        let e = body(r#"{"amount": "1", "status": "pending"}"#);
        assert_eq!(pair(&e), ("INVALID_STATUS", Some("status")));
        // Nested: the top-level field is the param, unknown nested fields included.
        let e = body(r#"{"amount": "1", "nested": {"other": 1}}"#);
        assert_eq!(pair(&e), ("INVALID_NESTED", Some("nested")));
        let e = body(r#"{"amount": "1", "nested": {}}"#);
        assert_eq!(pair(&e), ("INVALID_NESTED", Some("nested")));
        let e = body(r#"{"amount": "1", "amount": "2"}"#);
        assert_eq!(pair(&e), ("INVALID_AMOUNT", Some("amount")));
        assert_eq!(e.message, "amount is given twice");
        assert_eq!(
            pair(&body(r#"{"amount": "1", "limit": -1}"#)),
            ("INVALID_LIMIT", Some("limit"))
        );
    }

    #[test]
    fn query_strings_read_numbers_and_enums_from_text() {
        let q: Example =
            read_query(&[("amount", "1"), ("limit", "20"), ("status", "PENDING")]).unwrap();
        assert_eq!((q.limit, q.status), (Some(20), Some(OrderStatus::Pending)));
        let e = read_query::<Example>(&[("amount", "1"), ("limit", "ten")]).unwrap_err();
        assert_eq!(pair(&e), ("INVALID_LIMIT", Some("limit")));
        let e = read_query::<Example>(&[("amount", "1"), ("page", "2")]).unwrap_err();
        assert_eq!(pair(&e), ("UNKNOWN_PARAMETER", Some("page")));
        let e = read_query::<Example>(&[("amount", "1"), ("status", "PAID")]).unwrap_err();
        assert_eq!(pair(&e), ("INVALID_STATUS", Some("status")));
    }
}
