//! The one error type of the HTTP layer and its one mapping to a response.

use super::codes::{self, ErrorCode};
use crate::auth::AuthFailure;
use crate::store::StoreError;
use serde::Serialize;

/// The `type` of an error body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorType {
    InvalidRequest,
    Authentication,
    Permission,
    NotFound,
    Conflict,
    RateLimit,
    ApiError,
    ProviderError,
    Unavailable,
}

/// An error as the API answers it:
/// `{"error":{"type","code","message","param","documentation_url"},"request_id"}`.
///
/// `code` is one of the catalogue's ([`ErrorCode`]); the constructors keep taking it as text
/// so call sites read as the wire does, and a test checks every code in the sources is
/// catalogued with the status its constructor gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub kind: ErrorType,
    pub code: &'static str,
    pub message: String,
    pub param: Option<String>,
}

impl ApiError {
    fn new(status: u16, kind: ErrorType, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            code,
            message: message.into(),
            param: None,
        }
    }

    /// An error with its catalogue status and type.
    pub fn coded(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::new(code.status(), code.kind(), code.as_str(), message)
    }

    /// The catalogue entry of this error's code (`None` only for a code the catalogue
    /// lacks, which the source test refuses).
    pub fn catalogued(&self) -> Option<ErrorCode> {
        ErrorCode::parse(self.code)
    }

    /// Where the error reference explains this code.
    pub fn documentation_url(&self) -> String {
        codes::documentation_url(self.code)
    }

    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    /// 400: the request itself is malformed.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(400, ErrorType::InvalidRequest, code, message)
    }

    /// 400 about one parameter.
    pub fn invalid(code: &'static str, param: &str, message: impl Into<String>) -> Self {
        Self::bad_request(code, message).with_param(param)
    }

    /// 422: well-formed, but not something we can do.
    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(422, ErrorType::InvalidRequest, code, message)
    }

    /// `422 code`: a capped list of the organization's (`StoreError::LimitReached`) holds
    /// `limit` of its `things` already; `make_room` says how to make room.
    pub fn limit_reached(code: &'static str, things: &str, limit: usize, make_room: &str) -> Self {
        Self::unprocessable(
            code,
            format!(
                "an organization has at most {limit} {things}, and this one has {limit}: {make_room}"
            ),
        )
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            404,
            ErrorType::NotFound,
            "RESOURCE_NOT_FOUND",
            format!("no such {what}"),
        )
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(409, ErrorType::Conflict, code, message)
    }

    pub fn unauthenticated(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(401, ErrorType::Authentication, code, message)
    }

    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(403, ErrorType::Permission, code, message)
    }

    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            413,
            ErrorType::InvalidRequest,
            "PAYLOAD_TOO_LARGE",
            format!("the body exceeds {} KB", limit / 1024),
        )
    }

    pub fn unsupported_media_type() -> Self {
        Self::new(
            415,
            ErrorType::InvalidRequest,
            "UNSUPPORTED_MEDIA_TYPE",
            "send the body as application/json",
        )
    }

    /// 429: the caller is over a rate limit (the answer carries `Retry-After`).
    pub fn rate_limited(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(429, ErrorType::RateLimit, code, message)
    }

    pub fn unavailable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(503, ErrorType::Unavailable, code, message)
    }

    /// 500 that says nothing of its cause; log the cause where it happened.
    pub fn internal() -> Self {
        Self::new(
            500,
            ErrorType::ApiError,
            "INTERNAL_ERROR",
            "something went wrong on our side; retrying is safe",
        )
    }

    pub fn body(&self, request_id: &str) -> serde_json::Value {
        let mut error = serde_json::json!({
            "type": self.kind,
            "code": self.code,
            "message": self.message,
        });
        if let Some(p) = &self.param {
            error["param"] = serde_json::json!(p);
        }
        error["documentation_url"] = serde_json::json!(self.documentation_url());
        serde_json::json!({ "error": error, "request_id": request_id })
    }
}

impl From<AuthFailure> for ApiError {
    fn from(f: AuthFailure) -> Self {
        if f.forbidden {
            Self::forbidden(f.code, f.message)
        } else {
            Self::unauthenticated(f.code, f.message)
        }
    }
}

/// `422 NETWORK_MODE_MISMATCH`: a test key on a mainnet or a live key on a test network.
/// Callers add the `param` that named the chain.
impl From<crate::registry::NetworkModeMismatch> for ApiError {
    fn from(e: crate::registry::NetworkModeMismatch) -> Self {
        Self::unprocessable("NETWORK_MODE_MISMATCH", e.to_string())
    }
}

impl From<crate::pricing::PriceError> for ApiError {
    fn from(e: crate::pricing::PriceError) -> Self {
        tracing::warn!(error = %e, "price unavailable");
        Self::new(
            502,
            ErrorType::ProviderError,
            "PRICE_UNAVAILABLE",
            format!("prices are unavailable right now: {e}"),
        )
    }
}

impl From<crate::routing::RouteError> for ApiError {
    fn from(e: crate::routing::RouteError) -> Self {
        use crate::routing::RouteError::*;
        match &e {
            Unsupported(_) => Self::unprocessable("ROUTE_UNAVAILABLE", e.to_string())
                .with_param("source_currency"),
            OutOfRange(_) => Self::unprocessable("EXCHANGE_OUT_OF_RANGE", e.to_string()),
            PairInactive(_) => Self::unprocessable("ROUTE_UNAVAILABLE", e.to_string())
                .with_param("source_currency"),
            Rejected { .. } => {
                tracing::warn!(error = %e, "exchange provider refused");
                Self::new(
                    502,
                    ErrorType::ProviderError,
                    "EXCHANGE_UNAVAILABLE",
                    "the exchange provider refused the request",
                )
            }
            _ => {
                tracing::warn!(error = %e, "exchange provider unavailable");
                Self::new(
                    502,
                    ErrorType::ProviderError,
                    "EXCHANGE_UNAVAILABLE",
                    format!("the exchange provider is unavailable: {e}"),
                )
            }
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::not_found("object"),
            StoreError::AlreadyExists => {
                Self::conflict("ALREADY_EXISTS", "the object already exists")
            }
            StoreError::VersionConflict { .. } => Self::conflict(
                "CONCURRENT_UPDATE",
                "the object changed while this request ran; retry it",
            ),
            StoreError::DuplicateNonce => {
                Self::conflict("DUPLICATE_NONCE", "this nonce was already used").with_param("nonce")
            }
            StoreError::IdempotencyKeyTakenOver => Self::conflict(
                "IDEMPOTENCY_IN_FLIGHT",
                "a later request with this Idempotency-Key took it over; its answer stands",
            ),
            // Refused by a handler in its own words (TOO_MANY_ENDPOINTS, TOO_MANY_KEYS); one
            // that lets it through has a write it did not expect to meet a limit.
            StoreError::LimitReached { limit } => {
                tracing::error!(limit, "a store limit reached where no handler expected one");
                Self::internal()
            }
            StoreError::TxAlreadyClaimed { .. } => {
                Self::unprocessable("TX_ALREADY_USED", "this transaction already paid an order")
                    .with_param("tx_hash")
            }
            StoreError::Unavailable(cause) => {
                tracing::error!(error = %cause, "store unavailable");
                Self::unavailable(
                    "STORE_UNAVAILABLE",
                    "the order store is unavailable; retry shortly",
                )
            }
            StoreError::Corrupt(cause) => {
                tracing::error!(error = %cause, "corrupt record");
                Self::internal()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_body_links_its_code_in_the_reference() {
        let e = ApiError::invalid("INVALID_AMOUNT", "amount", "amount must be positive");
        let body = e.body("req_1");
        assert_eq!(body["error"]["code"], "INVALID_AMOUNT");
        assert_eq!(body["error"]["param"], "amount");
        let url = body["error"]["documentation_url"].as_str().unwrap();
        assert_eq!(url, format!("{}/errors#INVALID_AMOUNT", codes::docs_url()));
        assert_eq!(body["request_id"], "req_1");
        assert_eq!(e.catalogued(), Some(ErrorCode::InvalidAmount));
    }

    #[test]
    fn the_fixed_constructors_use_catalogued_codes_with_their_status() {
        for e in [
            ApiError::not_found("order"),
            ApiError::payload_too_large(1024),
            ApiError::unsupported_media_type(),
            ApiError::internal(),
            ApiError::coded(ErrorCode::StoreUnavailable, "down"),
        ] {
            let c = e
                .catalogued()
                .unwrap_or_else(|| panic!("{} is not catalogued", e.code));
            assert!(c.statuses().contains(&e.status), "{}", e.code);
            assert_eq!(c.kind(), e.kind, "{}", e.code);
        }
    }

    #[test]
    fn error_type_names_match_their_serialization() {
        for c in ErrorCode::ALL {
            assert_eq!(serde_json::json!(c.kind()), c.kind().as_str());
        }
    }
}
