//! The error catalogue: every `code` the API answers, with its HTTP status, its `type` and
//! what it means. `docs/errors.md` is generated from it ([`markdown`]), and every error
//! answer links its entry ([`ErrorCode::documentation_url`]).
//!
//! A test (infra/local/tests/api/errors.rs) reads the sources and fails when a code passed
//! to an [`super::ApiError`] constructor is missing here, or answers another status.

use super::ErrorType;
use std::sync::OnceLock;

/// Where the error reference lives when `PAYORDERS_DOCS_URL` does not say otherwise.
pub const DEFAULT_DOCS_URL: &str = "https://docs.payorders.dev";

/// The docs base URL of this deployment: `PAYORDERS_DOCS_URL` (read once), else
/// [`DEFAULT_DOCS_URL`]. A code's entry is `<base>/errors#<CODE>`.
pub fn docs_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        std::env::var("PAYORDERS_DOCS_URL")
            .ok()
            .map(|u| u.trim().trim_end_matches('/').to_owned())
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| DEFAULT_DOCS_URL.to_owned())
    })
}

/// `<docs base>/errors#<code>`: the entry of `code` in the error reference.
pub fn documentation_url(code: &str) -> String {
    format!("{}/errors#{code}", docs_url())
}

macro_rules! catalogue {
    ($(
        $variant:ident = $code:literal, [$($status:literal),+], $kind:ident, $text:literal;
    )+) => {
        /// Every error code the API answers.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum ErrorCode {
            $($variant),+
        }

        impl ErrorCode {
            /// The whole catalogue, in the order `docs/errors.md` lists it.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant),+];

            /// The code as the API sends it (`INVALID_AMOUNT`).
            pub const fn as_str(self) -> &'static str {
                match self { $(ErrorCode::$variant => $code),+ }
            }

            /// Every HTTP status this code is answered with, the usual one first.
            pub const fn statuses(self) -> &'static [u16] {
                match self { $(ErrorCode::$variant => &[$($status),+]),+ }
            }

            /// The error's `type`.
            pub const fn kind(self) -> ErrorType {
                match self { $(ErrorCode::$variant => ErrorType::$kind),+ }
            }

            /// What it means for the caller, in one line.
            pub const fn explanation(self) -> &'static str {
                match self { $(ErrorCode::$variant => $text),+ }
            }
        }
    };
}

catalogue! {
    // ------------------------------------------------------------ the request itself
    InvalidJson = "INVALID_JSON", [400], InvalidRequest,
        "The body is not valid JSON, or not a JSON object.";
    MissingBody = "MISSING_BODY", [400], InvalidRequest,
        "This request needs a JSON body and none was sent.";
    UnexpectedBody = "UNEXPECTED_BODY", [400], InvalidRequest,
        "A request that takes no body (a GET) carried one; send none.";
    PayloadTooLarge = "PAYLOAD_TOO_LARGE", [413], InvalidRequest,
        "The body is larger than 256 KB.";
    UnsupportedMediaType = "UNSUPPORTED_MEDIA_TYPE", [415], InvalidRequest,
        "The body was not sent as `Content-Type: application/json`.";
    UnknownParameter = "UNKNOWN_PARAMETER", [400], InvalidRequest,
        "The body or query string has a parameter this route does not take; `param` names it.";
    InvalidParameter = "INVALID_PARAMETER", [400], InvalidRequest,
        "A parameter has the wrong type, or a query parameter was given twice; `param` names it.";
    InvalidRequest = "INVALID_REQUEST", [400], InvalidRequest,
        "Parameters that do not go together, such as `fiat_unit` on a DEPOSIT or both `address` and `xpub`.";
    InvalidIdempotencyKey = "INVALID_IDEMPOTENCY_KEY", [400], InvalidRequest,
        "`Idempotency-Key` must be 1-255 printable ASCII characters without spaces.";
    IdempotencyMismatch = "IDEMPOTENCY_MISMATCH", [422], InvalidRequest,
        "This `Idempotency-Key` was used in the last 24 h with a different request, or by another API key; use a new key.";

    // ------------------------------------------------------------ order fields
    InvalidAmount = "INVALID_AMOUNT", [400], InvalidRequest,
        "`amount` is not a positive decimal string with at most the currency's decimals.";
    AmountOutOfRange = "AMOUNT_OUT_OF_RANGE", [422], InvalidRequest,
        "The amount is above the order limit, or cannot be expressed in the chosen currency.";
    InvalidCurrency = "INVALID_CURRENCY", [400], InvalidRequest,
        "A currency is not `{\"chain_id\", \"address\"}` (or a known symbol with `blockchain`).";
    MissingCurrency = "MISSING_CURRENCY", [400], InvalidRequest,
        "A currency is required here: a DEPOSIT's `currency`, a SALE's `currency` or `fiat_unit`, `source_currency`.";
    UnsupportedCurrency = "UNSUPPORTED_CURRENCY", [422, 400], InvalidRequest,
        "The chain does not have this token in the registry (400 when a list filter's currency id is malformed).";
    UnsupportedFiatUnit = "UNSUPPORTED_FIAT_UNIT", [422, 400], InvalidRequest,
        "`fiat_unit` must be `USD` (400 when it is not a string).";
    InvalidBlockchain = "INVALID_BLOCKCHAIN", [400, 422], InvalidRequest,
        "The chain is malformed (400) or not one the API supports (422).";
    NetworkModeMismatch = "NETWORK_MODE_MISMATCH", [422], InvalidRequest,
        "Test keys use test networks and live keys mainnets; `param` names the field that chose the chain.";
    InvalidAddress = "INVALID_ADDRESS", [400], InvalidRequest,
        "An address is not valid on its chain; `param` names it.";
    MissingRecipient = "MISSING_RECIPIENT", [400], InvalidRequest,
        "A DEPOSIT needs a `recipient` address.";
    InvalidXpub = "INVALID_XPUB", [400], InvalidRequest,
        "`xpub` is not an extended public key.";
    XpubNotSupported = "XPUB_NOT_SUPPORTED", [422], InvalidRequest,
        "xpub wallets are supported on EVM chains only; give an `address`.";
    InvalidName = "INVALID_NAME", [400], InvalidRequest,
        "An API key's `name` must be 1 to 100 characters.";
    InvalidScope = "INVALID_SCOPE", [400], InvalidRequest,
        "`scopes` (or a token's `scope`) must be a non-empty list of known scopes; `*` is for API keys only.";
    TooManyKeys = "TOO_MANY_KEYS", [422], InvalidRequest,
        "The organization has 50 active API keys in this mode, the most it may have (a rolled key counts until its grace period ends, a revoked one not at all); revoke one it no longer uses before creating another, or roll with `expires_in: 0`.";
    UnsupportedGrantType = "UNSUPPORTED_GRANT_TYPE", [400], InvalidRequest,
        "`POST /auth/token` takes `grant_type: \"api_key\"`.";
    InvalidExpiresIn = "INVALID_EXPIRES_IN", [400], InvalidRequest,
        "`expires_in` is out of range: 60 to 3600 s for an access token, 0 to 604800 s (7 days) for a rolled key's grace period.";
    InvalidExpiry = "INVALID_EXPIRY", [400], InvalidRequest,
        "`expires_in` / `expires_at` (or the settings' `default_expires_in`) is malformed, both are given, or the expiry is outside the allowed window (60 s to 7 days).";
    InvalidUrl = "INVALID_URL", [400], InvalidRequest,
        "A URL is missing, longer than 2048 characters, or not an absolute http(s) URL (https in live mode).";
    WebhookUrlForbidden = "WEBHOOK_URL_FORBIDDEN", [422], InvalidRequest,
        "A webhook URL resolves to a private or reserved address (in test mode, loopback is allowed).";
    WebhookUrlUnresolvable = "WEBHOOK_URL_UNRESOLVABLE", [422], InvalidRequest,
        "A webhook URL's host name does not resolve (in test mode, a loopback URL is not resolved).";
    InvalidEventType = "INVALID_EVENT_TYPE", [400], InvalidRequest,
        "An event type is unknown, or `events` is not a non-empty list of event types or `[\"*\"]`.";
    InvalidDescription = "INVALID_DESCRIPTION", [400], InvalidRequest,
        "`description` must be a string of at most 500 characters.";
    InvalidWebhookOptions = "INVALID_WEBHOOK_OPTIONS", [400], InvalidRequest,
        "`timeout` must be 1-30 seconds, `max_retries` 0-20 or null, `allowed_ips` at most 50 IP addresses or CIDR blocks.";
    WebhookUrlNotAllowed = "WEBHOOK_URL_NOT_ALLOWED", [422], InvalidRequest,
        "The webhook URL's host resolves to no address inside the endpoint's `allowed_ips`.";
    TooManyEndpoints = "TOO_MANY_ENDPOINTS", [422], InvalidRequest,
        "The organization has 16 webhook endpoints in this mode, the most it may have (disabled ones count); delete one it no longer uses before creating another.";
    InvalidOrderInfo = "INVALID_ORDER_INFO", [400], InvalidRequest,
        "`metadata` / `order_info` is malformed, too large, or both are given.";
    InvalidNonce = "INVALID_NONCE", [400], InvalidRequest,
        "`nonce` must be a non-negative integer or 1-128 printable characters without spaces.";
    InvalidPaymentTolerance = "INVALID_PAYMENT_TOLERANCE", [400], InvalidRequest,
        "`payment_tolerance` must be `{\"underpayment_bps\": 0-5000, \"overpayment_threshold_bps\": 0-10000}` (settings also take `\"overpayment_action\": \"accept\"`).";
    InvalidConfirmations = "INVALID_CONFIRMATIONS", [400], InvalidRequest,
        "`confirmations` must be an integer from 1 to 1000 (in settings, per chain id of the key's mode).";
    InvalidReason = "INVALID_REASON", [400], InvalidRequest,
        "`reason` must be a string of at most 500 characters.";
    InvalidMode = "INVALID_MODE", [400], InvalidRequest,
        "`mode` is not an order mode (`SALE`, `DEPOSIT`, ...).";
    ModeNotSupported = "MODE_NOT_SUPPORTED", [422], InvalidRequest,
        "The order mode is a known name but not supported yet; use `SALE` or `DEPOSIT`.";

    // ------------------------------------------------------------ lists
    InvalidStatus = "INVALID_STATUS", [400], InvalidRequest,
        "The `status` filter is not an order status.";
    InvalidLimit = "INVALID_LIMIT", [400], InvalidRequest,
        "`limit` must be an integer from 1 to 100.";
    InvalidCursor = "INVALID_CURSOR", [400], InvalidRequest,
        "`cursor` is not a cursor this list returned.";
    InvalidTimestamp = "INVALID_TIMESTAMP", [400], InvalidRequest,
        "A time filter is not an RFC 3339 timestamp, or `created_gte` is after `created_lte`.";

    // ------------------------------------------------------------ payments and quotes
    MissingTxHash = "MISSING_TX_HASH", [400], InvalidRequest,
        "`tx_hash` is required.";
    InvalidTxHash = "INVALID_TX_HASH", [400], InvalidRequest,
        "`tx_hash` is not a transaction hash of the order's chain.";
    InvalidChainId = "INVALID_CHAIN_ID", [400], InvalidRequest,
        "`chain_id` must be a positive integer chain id.";
    InvalidChainType = "INVALID_CHAIN_TYPE", [400], InvalidRequest,
        "`chain_type` must be `EVM` or `SOLANA`.";
    WrongChain = "WRONG_CHAIN", [422], InvalidRequest,
        "The transaction is on another chain than the order's payment.";
    TxNotFound = "TX_NOT_FOUND", [422], InvalidRequest,
        "The chain does not know this transaction (yet); retry once your node has seen it.";
    TxPending = "TX_PENDING", [422], InvalidRequest,
        "The transaction is not mined yet; submit it again once it is.";
    TxFailed = "TX_FAILED", [422], InvalidRequest,
        "The transaction failed (reverted) on chain.";
    TxBeforeOrder = "TX_BEFORE_ORDER", [422], InvalidRequest,
        "The transaction was mined before the order's payment details were chosen, so it cannot pay it.";
    WrongRecipient = "WRONG_RECIPIENT", [422], InvalidRequest,
        "The transaction sends nothing to the order's deposit address (for a refund: to the refund address).";
    WrongToken = "WRONG_TOKEN", [422], InvalidRequest,
        "The transaction pays the deposit address (for a refund: the refund address) in another currency than the order's.";
    TooManyTransfers = "TOO_MANY_TRANSFERS", [422], InvalidRequest,
        "The transaction makes more than 32 transfers to the deposit address; one payment is made in fewer.";
    TooManyPayments = "TOO_MANY_PAYMENTS", [422], InvalidRequest,
        "The order has recorded 100 transactions, the most one order takes; past that only a transaction paying all that is still due is recorded.";
    TxAlreadyUsed = "TX_ALREADY_USED", [422], InvalidRequest,
        "This transfer already paid an order of your organization, or is already recorded as a refund: a transfer counts once.";
    TooManyRefunds = "TOO_MANY_REFUNDS", [422], InvalidRequest,
        "The order has 50 refunds, cancelled ones included, the most one order keeps; no more can be created for it, so send what is left to refund outside the API.";
    TxBeforeRefund = "TX_BEFORE_REFUND", [422], InvalidRequest,
        "The transaction was mined before the refund was created, so it cannot be that refund.";
    RefundTxNotAReplacement = "REFUND_TX_NOT_A_REPLACEMENT", [422], InvalidRequest,
        "The refund waits for a transaction a reorg took out of its block, which can still be mined: only a transaction spending the same nonce (a wallet's speed-up) takes its place, or any once a final block has spent that nonce (a wallet's cancel), so that the refund cannot be sent twice.";
    WrongSender = "WRONG_SENDER", [422], InvalidRequest,
        "The refund transfer is not sent from the address the order was paid to; refunds are sent from there.";
    RefundTxTooSmall = "REFUND_TX_TOO_SMALL", [422], InvalidRequest,
        "The transaction sends less than the refund's amount to the refund address.";
    OrderNotRefundable = "ORDER_NOT_REFUNDABLE", [422], InvalidRequest,
        "The order has received nothing that can be refunded (yet): only confirmed money received on COMPLETED, EXPIRED, CANCELLED or PARTIAL_PAYMENT orders, and an overpayment's confirmed excess, is refundable; an order paid through an exchange is refunded by the provider, not here.";
    RefundExceedsReceived = "REFUND_EXCEEDS_RECEIVED", [422], InvalidRequest,
        "The refund is more than what was received minus refunds succeeded or pending.";
    RefundAddressRequired = "REFUND_ADDRESS_REQUIRED", [422], InvalidRequest,
        "The payment has no refund address; give `address`.";
    PaymentDetailsRequired = "PAYMENT_DETAILS_REQUIRED", [422], InvalidRequest,
        "The order has no payment details yet; call `POST /pay-orders/{id}/payment-details` first.";
    OrderNotPending = "ORDER_NOT_PENDING", [422], InvalidRequest,
        "Quotes and payment details are for PENDING orders only.";
    OrderExpired = "ORDER_EXPIRED", [422], InvalidRequest,
        "The order has expired.";
    WalletNotConfigured = "WALLET_NOT_CONFIGURED", [422], InvalidRequest,
        "No merchant wallet of this mode accepts the currency; add one with `POST /merchant-wallets`.";
    RouteUnavailable = "ROUTE_UNAVAILABLE", [422], InvalidRequest,
        "No exchange route pays the order from this source currency.";
    ExchangeOutOfRange = "EXCHANGE_OUT_OF_RANGE", [422], InvalidRequest,
        "The amount is outside what the exchange provider takes for this pair.";

    // ------------------------------------------------------------ authentication (401)
    MissingApiKey = "MISSING_API_KEY", [401], Authentication,
        "No API key: send it in `X-API-KEY` or `Authorization: Bearer`.";
    InvalidApiKey = "INVALID_API_KEY", [401], Authentication,
        "The key is unknown or malformed, or the `Authorization` header is not `Bearer <key or access token>`.";
    ApiKeyRevoked = "API_KEY_REVOKED", [401], Authentication,
        "The API key was revoked.";
    ApiKeyExpired = "API_KEY_EXPIRED", [401], Authentication,
        "The API key was rolled and its grace period is over; use the new key.";
    InvalidToken = "INVALID_TOKEN", [401], Authentication,
        "The access token is malformed, its signature does not match, or its API key is gone.";
    TokenExpired = "TOKEN_EXPIRED", [401], Authentication,
        "The access token has expired; get a new one from `POST /auth/token`.";
    ConflictingCredentials = "CONFLICTING_CREDENTIALS", [401], Authentication,
        "The request names two different API keys.";
    InvalidSignature = "INVALID_SIGNATURE", [401], Authentication,
        "`Authorization-Signature` is malformed or does not match.";
    SignatureExpired = "SIGNATURE_EXPIRED", [401], Authentication,
        "The signature's timestamp is more than 300 s from now.";
    ReplayedRequest = "REPLAYED_REQUEST", [401], Authentication,
        "The exact same v1/legacy signed request was already received.";
    NonceReused = "NONCE_REUSED", [401], Authentication,
        "The v2 signature nonce was used before.";
    BodyHashMismatch = "BODY_HASH_MISMATCH", [401], Authentication,
        "The body does not hash to the v2 signature's `body_sha256`.";
    SignatureRequired = "SIGNATURE_REQUIRED", [401], Authentication,
        "Creating a SALE, changing a merchant wallet, creating or cancelling a refund, changing the order defaults, or creating, revoking or rolling an API key needs a signed request.";
    Unauthenticated = "UNAUTHENTICATED", [401], Authentication,
        "The request could not be authenticated (for instance while authentication is briefly unavailable); retry.";

    // ------------------------------------------------------------ permission (403)
    InsufficientScope = "INSUFFICIENT_SCOPE", [403], Permission,
        "The API key (or access token) lacks the scope this route needs, or a key asked to grant a scope it does not hold (or to roll or revoke a key with one).";
    TestModeOnly = "TEST_MODE_ONLY", [403], Permission,
        "Simulated payments are for test-mode keys only.";
    UnknownRoute = "UNKNOWN_ROUTE", [403], Permission,
        "No API key grants this route.";
    UnknownOrganization = "UNKNOWN_ORGANIZATION", [403], Permission,
        "The key's organization no longer exists.";

    // ------------------------------------------------------------ not found (404)
    ResourceNotFound = "RESOURCE_NOT_FOUND", [404], NotFound,
        "No such object for your organization and mode (a malformed id too); `param` names the id.";
    RouteNotFound = "ROUTE_NOT_FOUND", [404], NotFound,
        "No route has this method and path.";

    // ------------------------------------------------------------ conflict (409)
    ConcurrentUpdate = "CONCURRENT_UPDATE", [409], Conflict,
        "The object changed while the request ran; read it again and retry.";
    AlreadyExists = "ALREADY_EXISTS", [409], Conflict,
        "The object already exists.";
    DuplicateNonce = "DUPLICATE_NONCE", [409], Conflict,
        "Another order of your organization has this `nonce`.";
    IdempotencyInFlight = "IDEMPOTENCY_IN_FLIGHT", [409], Conflict,
        "A request with this `Idempotency-Key` is still running; retry after it ends.";
    OrderNotCancellable = "ORDER_NOT_CANCELLABLE", [409], Conflict,
        "Only PENDING and AWAITING_PAYMENT orders can be cancelled.";
    RefundNotPending = "REFUND_NOT_PENDING", [409], Conflict,
        "A transfer is recorded for, and a cancel withdraws, `pending` refunds only; this refund is confirming, succeeded or cancelled (a cancelled one is taken up again by a transfer only while what it held is still free, and one waiting for a transaction a reorg took out of its block takes a replacement).";
    OrderNotPayable = "ORDER_NOT_PAYABLE", [409], Conflict,
        "The order's status takes no payments, or its late-payment window has closed.";
    WalletExists = "WALLET_EXISTS", [409], Conflict,
        "There is a wallet on this chain already; update it instead.";
    EndpointDisabled = "ENDPOINT_DISABLED", [409], Conflict,
        "The webhook endpoint is disabled; enable it before redelivering.";
    ApiKeyInactive = "API_KEY_INACTIVE", [409], Conflict,
        "The API key is revoked or expired, so it cannot be rolled; create a new key instead.";

    // ------------------------------------------------------------ rate limits (429)
    RateLimited = "RATE_LIMITED", [429], RateLimit,
        "Too many requests: your key's hourly budget for the route's class, or your address's budget on the public routes (views 60 a minute, QR codes 100 a minute) or for access tokens (60 a minute); retry after `Retry-After` seconds.";

    // ------------------------------------------------------------ our side (5xx)
    InternalError = "INTERNAL_ERROR", [500], ApiError,
        "Something went wrong on our side; retrying is safe.";
    PriceUnavailable = "PRICE_UNAVAILABLE", [502], ProviderError,
        "The price provider did not answer, or its price is stale (not updated for 15 minutes); retry shortly.";
    ExchangeUnavailable = "EXCHANGE_UNAVAILABLE", [502], ProviderError,
        "The exchange provider refused or did not answer; retry shortly.";
    StoreUnavailable = "STORE_UNAVAILABLE", [503], Unavailable,
        "The order store is unavailable; retry shortly.";
    ChainUnavailable = "CHAIN_UNAVAILABLE", [503], Unavailable,
        "The chain's node cannot be read right now; retry shortly.";
    QueueUnavailable = "QUEUE_UNAVAILABLE", [503], Unavailable,
        "The work was recorded but could not be queued now; it is queued again automatically.";
}

impl ErrorCode {
    /// The code with this wire name.
    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|c| c.as_str() == code)
    }

    /// The usual HTTP status.
    pub const fn status(self) -> u16 {
        self.statuses()[0]
    }

    /// This code's entry in the error reference.
    pub fn documentation_url(self) -> String {
        documentation_url(self.as_str())
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl ErrorType {
    /// The name the API sends (`invalid_request`).
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorType::InvalidRequest => "invalid_request",
            ErrorType::Authentication => "authentication",
            ErrorType::Permission => "permission",
            ErrorType::NotFound => "not_found",
            ErrorType::Conflict => "conflict",
            ErrorType::RateLimit => "rate_limit",
            ErrorType::ApiError => "api_error",
            ErrorType::ProviderError => "provider_error",
            ErrorType::Unavailable => "unavailable",
        }
    }
}

/// `docs/errors.md`: the catalogue for API users, one table per error type.
pub fn markdown() -> String {
    let mut out = String::from(
        "# Error codes\n\n\
         <!-- Generated from shared/src/http/codes.rs; edit the catalogue there and run\n\
         `UPDATE_DOCS=1 cargo test -p payorders-local --test api errors::` to rewrite this file. -->\n\n\
         Every failure answers this shape, with a stable `code`, the `param` it is about when\n\
         there is one, and a `documentation_url` pointing at the code's entry below:\n\n\
         ```json\n\
         {\"error\":{\"type\":\"invalid_request\",\"code\":\"INVALID_AMOUNT\",\"message\":\"amount has more than 6 decimal places\",\"param\":\"amount\",\"documentation_url\":\"https://docs.payorders.dev/errors#INVALID_AMOUNT\"},\"request_id\":\"req_…\"}\n\
         ```\n\n\
         Branch on `code` (and `type`), never on `message`: messages explain, and may change.\n\
         `documentation_url` is `<docs>/errors#<CODE>`, where `<docs>` is\n\
         `https://docs.payorders.dev` unless the deployment sets `PAYORDERS_DOCS_URL`.\n\
         Every response, failures included, carries `X-Request-Id`; quote it when you ask for help.\n\n\
         A `4xx` is about the request: retrying it unchanged meets the same answer, except where\n\
         the entry says to retry. A `5xx` is ours: retrying is safe (send an `Idempotency-Key` on\n\
         POSTs).\n",
    );
    let mut kinds: Vec<ErrorType> = Vec::new();
    for c in ErrorCode::ALL {
        if !kinds.contains(&c.kind()) {
            kinds.push(c.kind());
        }
    }
    for kind in kinds {
        let codes: Vec<ErrorCode> = ErrorCode::ALL
            .iter()
            .copied()
            .filter(|c| c.kind() == kind)
            .collect();
        let mut statuses: Vec<u16> = codes.iter().flat_map(|c| c.statuses()).copied().collect();
        statuses.sort_unstable();
        statuses.dedup();
        let statuses: Vec<String> = statuses.iter().map(u16::to_string).collect();
        out.push_str(&format!(
            "\n## `{}` ({})\n\n| code | status | meaning |\n|---|---|---|\n",
            kind.as_str(),
            statuses.join(", ")
        ));
        for c in codes {
            let statuses: Vec<String> = c.statuses().iter().map(u16::to_string).collect();
            out.push_str(&format!(
                "| <a id=\"{code}\"></a>`{code}` | {} | {} |\n",
                statuses.join(", "),
                c.explanation(),
                code = c.as_str(),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn codes_are_unique_screaming_snake_case_and_parse_back() {
        let mut seen = BTreeSet::new();
        for c in ErrorCode::ALL {
            let s = c.as_str();
            assert!(seen.insert(s), "{s} twice");
            assert!(
                s.bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'),
                "{s}"
            );
            assert_eq!(ErrorCode::parse(s), Some(*c));
            assert!(!c.explanation().is_empty() && !c.explanation().contains('\n'));
            assert!(!c.explanation().contains('|'), "{s}: a | breaks the table");
        }
        assert_eq!(ErrorCode::parse("NOT_A_CODE"), None);
    }

    #[test]
    fn statuses_fit_their_type() {
        for c in ErrorCode::ALL {
            for s in c.statuses() {
                let ok = match c.kind() {
                    ErrorType::InvalidRequest => matches!(s, 400 | 413 | 415 | 422),
                    ErrorType::Authentication => *s == 401,
                    ErrorType::Permission => *s == 403,
                    ErrorType::NotFound => *s == 404,
                    ErrorType::Conflict => *s == 409,
                    ErrorType::RateLimit => *s == 429,
                    ErrorType::ApiError => *s == 500,
                    ErrorType::ProviderError => *s == 502,
                    ErrorType::Unavailable => *s == 503,
                };
                assert!(ok, "{c}: {s} is not a {:?} status", c.kind());
            }
        }
    }

    #[test]
    fn every_code_has_an_anchor_in_the_reference() {
        let md = markdown();
        for c in ErrorCode::ALL {
            assert!(md.contains(&format!("<a id=\"{c}\"></a>")), "{c}");
        }
        assert!(
            ErrorCode::InvalidAmount
                .documentation_url()
                .ends_with("/errors#INVALID_AMOUNT")
        );
    }
}
