//! Authentication and authorization, in one place for the authorizer and the handlers.
//!
//! The authorizer calls [`authenticate`] (key lookup, signature check, single-use v2
//! nonces, scope for the route) and returns an [`AuthContext`] as its context. An
//! authorizer never sees the body, so the body-bound checks ([`verify_body`]: refusing an
//! exact replay of a v1/legacy signed request, matching a v2 signature's body hash) run in
//! the handlers that take a body. Functions read the context through
//! [`AuthContext::from_authorizer`] and never re-parse keys.

mod keys;
mod sealed;
mod signature;
pub mod token;

pub use keys::*;
pub use sealed::{MasterKey, SealError};
pub use signature::{SIGNATURE_WINDOW_SECS, Scheme, SignatureHeader, sign, v2_string_to_sign};

use crate::model::{ApiKey, KeyId, KeyMode, KeyState, OrgId, Scope, Timestamp};
use crate::store::{ClaimStore, KeyStore, StoreError};
use http::HeaderMap;
use lambda_http::http;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// Why a request is refused: 401 (who are you?) or 403 (you may not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthFailure {
    pub forbidden: bool,
    pub code: &'static str,
    pub message: String,
}

impl AuthFailure {
    fn unauthenticated(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            forbidden: false,
            code,
            message: message.into(),
        }
    }

    fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            forbidden: true,
            code,
            message: message.into(),
        }
    }
}

/// A verified signature, as the handlers need it for the body-bound checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRequest {
    pub scheme: Scheme,
    /// Hex signature (v1/legacy replay claims are keyed on it, the request and the body).
    pub signature: String,
    pub timestamp: i64,
    /// v2 only: the body hash the signature covers.
    pub body_sha256: Option<String>,
    /// The request the signature came with, `METHOD /path` (path percent-decoded, no
    /// query string): a legacy signature covers neither, so its replay claim names them.
    pub request: String,
}

/// Who is calling, as established by the authorizer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthContext {
    pub org_id: OrgId,
    pub key_id: KeyId,
    pub mode: KeyMode,
    pub scopes: Vec<Scope>,
    pub signed: Option<SignedRequest>,
}

impl AuthContext {
    pub fn is_signed(&self) -> bool {
        self.signed.is_some()
    }

    pub fn livemode(&self) -> bool {
        self.mode.is_live()
    }

    /// Writes that need the API secret, not just the key (creating a SALE, changing where
    /// money goes): `401 SIGNATURE_REQUIRED` unless the authorizer verified a signature.
    /// `what` completes "… needs a signed request".
    pub fn require_signed(&self, what: &str) -> Result<(), AuthFailure> {
        if self.is_signed() {
            return Ok(());
        }
        Err(AuthFailure::unauthenticated(
            "SIGNATURE_REQUIRED",
            format!("{what} needs a signed request (Authorization-Signature header)"),
        ))
    }

    pub fn allows(&self, scope: Scope) -> bool {
        self.scopes.iter().any(|s| *s == scope || *s == Scope::All)
    }

    /// The authorizer's context (simple response, payload 2.0): flat string values.
    pub fn to_authorizer(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("org_id".into(), json!(self.org_id.as_str()));
        m.insert("key_id".into(), json!(self.key_id.as_str()));
        m.insert("mode".into(), json!(self.mode.as_str()));
        let scopes: Vec<_> = self.scopes.iter().map(|s| s.as_str()).collect();
        m.insert("scopes".into(), json!(scopes.join(" ")));
        m.insert(
            "signed".into(),
            json!(if self.is_signed() { "true" } else { "false" }),
        );
        if let Some(s) = &self.signed {
            m.insert(
                "sig_scheme".into(),
                json!(format!("{:?}", s.scheme).to_lowercase()),
            );
            m.insert("signature".into(), json!(s.signature));
            m.insert("sig_timestamp".into(), json!(s.timestamp.to_string()));
            m.insert("sig_request".into(), json!(s.request));
            if let Some(b) = &s.body_sha256 {
                m.insert("body_sha256".into(), json!(b));
            }
        }
        m
    }

    /// Reads what the authorizer put in the request context. A context carrying an
    /// `auth_error` becomes that failure; a missing or damaged context is a 401.
    pub fn from_authorizer(
        fields: &std::collections::HashMap<String, Value>,
    ) -> Result<Self, AuthFailure> {
        let text = |k: &str| fields.get(k).and_then(Value::as_str);
        if let Some(code) = text("auth_error") {
            let failure = known_code(code);
            let message = text("auth_message").unwrap_or("not authorized").to_owned();
            return Err(AuthFailure {
                forbidden: text("auth_status") == Some("403"),
                code: failure,
                message,
            });
        }
        let missing = || {
            AuthFailure::unauthenticated(
                "UNAUTHENTICATED",
                "the request carries no authorization context",
            )
        };
        let org_id = text("org_id")
            .and_then(|v| OrgId::parse(v).ok())
            .ok_or_else(missing)?;
        let key_id = text("key_id")
            .and_then(|v| KeyId::parse(v).ok())
            .ok_or_else(missing)?;
        let mode = text("mode").and_then(KeyMode::parse).ok_or_else(missing)?;
        let scopes = text("scopes")
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(Scope::parse)
            .collect();
        let signed = if text("signed") == Some("true") {
            let scheme = match text("sig_scheme") {
                Some("v1") => Scheme::V1,
                Some("legacy") => Scheme::Legacy,
                Some("v2") => Scheme::V2,
                _ => return Err(missing()),
            };
            Some(SignedRequest {
                scheme,
                signature: text("signature").ok_or_else(missing)?.to_owned(),
                timestamp: text("sig_timestamp")
                    .and_then(|t| t.parse().ok())
                    .ok_or_else(missing)?,
                body_sha256: text("body_sha256").map(str::to_owned),
                // Absent only from an authorizer older than this field (mid-deploy): its
                // replay claims then name no request, refusing more, never less.
                request: text("sig_request").unwrap_or_default().to_owned(),
            })
        } else {
            None
        };
        Ok(Self {
            org_id,
            key_id,
            mode,
            scopes,
            signed,
        })
    }
}

impl AuthFailure {
    /// The authorizer context that carries this failure to the function (see
    /// `functions/authorizer` for why failures are carried rather than denied).
    pub fn to_authorizer(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("auth_error".into(), json!(self.code));
        m.insert("auth_message".into(), json!(self.message));
        m.insert(
            "auth_status".into(),
            json!(if self.forbidden { "403" } else { "401" }),
        );
        m
    }
}

/// Every code an auth failure can carry (the context is data from outside the function:
/// map it back onto our own constants).
const CODES: &[&str] = &[
    "MISSING_API_KEY",
    "INVALID_API_KEY",
    "API_KEY_REVOKED",
    "API_KEY_EXPIRED",
    "INVALID_TOKEN",
    "TOKEN_EXPIRED",
    "CONFLICTING_CREDENTIALS",
    "INVALID_SIGNATURE",
    "SIGNATURE_EXPIRED",
    "REPLAYED_REQUEST",
    "NONCE_REUSED",
    "BODY_HASH_MISMATCH",
    "INSUFFICIENT_SCOPE",
    "UNKNOWN_ROUTE",
    "UNAUTHENTICATED",
];

fn known_code(code: &str) -> &'static str {
    CODES
        .iter()
        .find(|c| **c == code)
        .copied()
        .unwrap_or("UNAUTHENTICATED")
}

/// The scope a route needs; `None` for routes this API does not have (refused).
pub fn required_scope(method: &str, route_path: &str) -> Option<Scope> {
    let first = route_path
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or_default();
    match (first, method) {
        // The process route records a payment although it is a GET.
        ("pay-orders", "GET") if route_path.ends_with("/process") => Some(Scope::OrdersCreate),
        ("pay-orders", "GET") => Some(Scope::OrdersRead),
        // Refunds first: cancelling a refund is a refund's business, not an order's cancel.
        ("pay-orders", "POST") if route_path.contains("/refunds") => Some(Scope::OrdersRefund),
        ("pay-orders", "POST") if route_path.ends_with("/cancel") => Some(Scope::OrdersCancel),
        // Creating an order, and everything that prepares or records its payment (quote,
        // payment details, payments, simulated payments).
        ("pay-orders", "POST") => Some(Scope::OrdersCreate),
        ("events" | "transactions", "GET") => Some(Scope::OrdersRead),
        ("analytics", "GET") => Some(Scope::AnalyticsRead),
        ("webhook-endpoints" | "webhook-secret", _) => Some(Scope::WebhooksManage),
        ("merchant-wallets" | "settings", _) => Some(Scope::SettingsManage),
        ("api-keys", _) => Some(Scope::KeysManage),
        // Who did what: for those who manage the organization's settings.
        ("audit-log", "GET") => Some(Scope::SettingsManage),
        _ => None,
    }
}

/// What the authorizer knows of a request.
pub struct AuthRequest<'a> {
    pub method: &'a str,
    /// The path without the stage prefix, e.g. `/pay-orders/po_…`.
    pub path: &'a str,
    pub raw_query: &'a str,
    /// The route template, e.g. `/pay-orders/{id}`.
    pub route_path: &'a str,
    pub headers: &'a HeaderMap,
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, AuthFailure> {
    match h.get(name) {
        None => Ok(None),
        Some(v) => v.to_str().map(|s| Some(s.trim())).map_err(|_| {
            AuthFailure::unauthenticated("INVALID_API_KEY", format!("{name} is not valid text"))
        }),
    }
}

fn store_fault(e: StoreError) -> AuthFailure {
    tracing::error!(error = %e, "auth store call failed");
    // Not the caller's fault, but the authorizer must not let the request through.
    AuthFailure::unauthenticated(
        "UNAUTHENTICATED",
        "authentication is temporarily unavailable",
    )
}

/// A key that no longer works: `401 API_KEY_REVOKED` or `401 API_KEY_EXPIRED`.
pub fn refuse_inactive(key: &ApiKey, now: Timestamp) -> Result<(), AuthFailure> {
    match key.state(now) {
        KeyState::Active => Ok(()),
        KeyState::Revoked => Err(AuthFailure::unauthenticated(
            "API_KEY_REVOKED",
            "this API key has been revoked",
        )),
        KeyState::Expired => Err(AuthFailure::unauthenticated(
            "API_KEY_EXPIRED",
            "this API key has expired (it was rolled)",
        )),
    }
}

/// Looks an API key up by its text, as every way in does: its `sk_live_`/`sk_test_` prefix
/// must match the stored mode, and the key must still work at `now`.
pub async fn find_active_key(
    keys: &dyn KeyStore,
    key_text: &str,
    now: Timestamp,
) -> Result<ApiKey, AuthFailure> {
    let claimed_mode = key_mode(key_text).ok_or_else(|| {
        AuthFailure::unauthenticated(
            "INVALID_API_KEY",
            "API keys start with sk_live_ or sk_test_",
        )
    })?;
    let key: ApiKey = keys
        .get_api_key_by_hash(&hash_api_key(key_text))
        .await
        .map_err(store_fault)?
        .filter(|k| k.mode == claimed_mode)
        .ok_or_else(|| AuthFailure::unauthenticated("INVALID_API_KEY", "no such API key"))?;
    refuse_inactive(&key, now)?;
    Ok(key)
}

/// Authenticates an access token (`Authorization: Bearer <jwt>`): its signature and expiry,
/// then its API key, which must still exist and work (a revoked or expired key takes its
/// tokens with it). The scopes are the token's, within what the key still grants.
async fn authenticate_token(
    keys: &dyn KeyStore,
    master: &MasterKey,
    token_text: &str,
    now: Timestamp,
) -> Result<(ApiKey, Vec<Scope>), AuthFailure> {
    let claims = token::verify(master, token_text, now).map_err(|e| match e {
        token::TokenError::Expired => AuthFailure::unauthenticated("TOKEN_EXPIRED", e.to_string()),
        token::TokenError::Invalid => AuthFailure::unauthenticated("INVALID_TOKEN", e.to_string()),
    })?;
    let key = keys
        .get_org_api_key(&claims.org, claims.mode, &claims.sub)
        .await
        .map_err(store_fault)?
        .ok_or_else(|| {
            AuthFailure::unauthenticated("INVALID_TOKEN", "the token's API key no longer exists")
        })?;
    refuse_inactive(&key, now)?;
    let scopes = claims
        .scopes()
        .into_iter()
        .filter(|s| *s != Scope::All && key.allows(*s))
        .collect();
    Ok((key, scopes))
}

/// Authenticates a request as the authorizer does: the key (or an access token minted
/// from one), the signature if any, v2 nonce single use, and the route's scope.
pub async fn authenticate(
    keys: &dyn KeyStore,
    claims: &dyn ClaimStore,
    master: &MasterKey,
    req: &AuthRequest<'_>,
    now: Timestamp,
) -> Result<AuthContext, AuthFailure> {
    let x_api_key = header(req.headers, "x-api-key")?;
    let bearer = match header(req.headers, "authorization")? {
        None => None,
        Some(v) => {
            let (kind, token) = v.split_once(' ').unwrap_or((v, ""));
            if !kind.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
                return Err(AuthFailure::unauthenticated(
                    "INVALID_API_KEY",
                    "Authorization must be `Bearer <api key>`",
                ));
            }
            Some(token.trim())
        }
    };
    let sig_header = header(req.headers, "authorization-signature")?
        .map(|v| {
            SignatureHeader::parse(v)
                .map_err(|e| AuthFailure::unauthenticated("INVALID_SIGNATURE", e.to_string()))
        })
        .transpose()?;

    if let Some(jwt) = bearer.filter(|b| token::looks_like_jwt(b)) {
        // A token stands in for the key alone: a signature needs the key's secret, and a
        // second credential beside the token names a key of its own.
        if x_api_key.is_some() || sig_header.is_some() {
            return Err(AuthFailure::unauthenticated(
                "CONFLICTING_CREDENTIALS",
                "send an access token alone, without X-API-KEY or Authorization-Signature",
            ));
        }
        let (key, scopes) = authenticate_token(keys, master, jwt, now).await?;
        let scope = required_scope(req.method, req.route_path)
            .ok_or_else(|| AuthFailure::forbidden("UNKNOWN_ROUTE", "this route does not exist"))?;
        if !crate::model::scopes_allow(&scopes, scope) {
            return Err(AuthFailure::forbidden(
                "INSUFFICIENT_SCOPE",
                format!("this access token lacks the {scope} scope"),
            ));
        }
        return Ok(AuthContext {
            org_id: key.organization_id,
            key_id: key.id,
            mode: key.mode,
            scopes,
            signed: None,
        });
    }

    let key_text: String = {
        let mut offered = [
            x_api_key,
            bearer,
            sig_header.as_ref().map(|s| s.api_key.as_str()),
        ]
        .into_iter()
        .flatten();
        let first = offered.next().ok_or_else(|| {
            AuthFailure::unauthenticated(
                "MISSING_API_KEY",
                "send your API key in X-API-KEY or Authorization: Bearer",
            )
        })?;
        if offered.any(|k| k != first) {
            return Err(AuthFailure::unauthenticated(
                "CONFLICTING_CREDENTIALS",
                "the request names more than one API key",
            ));
        }
        first.to_owned()
    };
    let key = find_active_key(keys, &key_text, now).await?;

    let signed = match sig_header {
        None => None,
        Some(sig) => Some(verify_signature(claims, master, &key, &sig, req, now).await?),
    };

    let scope = required_scope(req.method, req.route_path)
        .ok_or_else(|| AuthFailure::forbidden("UNKNOWN_ROUTE", "this route does not exist"))?;
    if !key.allows(scope) {
        return Err(AuthFailure::forbidden(
            "INSUFFICIENT_SCOPE",
            format!("this API key lacks the {scope} scope"),
        ));
    }
    Ok(AuthContext {
        org_id: key.organization_id,
        key_id: key.id,
        mode: key.mode,
        scopes: key.scopes,
        signed,
    })
}

async fn verify_signature(
    claims: &dyn ClaimStore,
    master: &MasterKey,
    key: &ApiKey,
    sig: &SignatureHeader,
    req: &AuthRequest<'_>,
    now: Timestamp,
) -> Result<SignedRequest, AuthFailure> {
    if (now.unix() - sig.timestamp).abs() > SIGNATURE_WINDOW_SECS {
        return Err(AuthFailure::unauthenticated(
            "SIGNATURE_EXPIRED",
            format!("the signature timestamp must be within {SIGNATURE_WINDOW_SECS} s of now"),
        ));
    }
    let secret = master
        .open(&api_secret_context(&key.id), &key.secret_sealed)
        .map_err(|e| {
            tracing::error!(key_id = %key.id, error = %e, "API secret does not open");
            AuthFailure::unauthenticated("INVALID_SIGNATURE", "signature does not match")
        })?;
    let path_and_query = if req.raw_query.is_empty() {
        req.path.to_owned()
    } else {
        format!("{}?{}", req.path, req.raw_query)
    };
    if !sig.verify(&secret, req.method, req.path, &path_and_query) {
        return Err(AuthFailure::unauthenticated(
            "INVALID_SIGNATURE",
            "signature does not match",
        ));
    }
    if let (Scheme::V2, Some(nonce)) = (sig.scheme, &sig.nonce) {
        let claim = Claim::Nonce { nonce };
        if !claim_once(claims, &key.id, &claim, sig.timestamp, now).await? {
            return Err(AuthFailure::unauthenticated(
                "NONCE_REUSED",
                "this signature nonce was already used",
            ));
        }
    }
    Ok(SignedRequest {
        scheme: sig.scheme,
        signature: hex::encode(&sig.signature),
        timestamp: sig.timestamp,
        body_sha256: sig.body_sha256.clone(),
        // Only a v1 or legacy replay claim names the request; a v2 nonce stands alone.
        request: if matches!(sig.scheme, Scheme::V2) {
            String::new()
        } else {
            request_line(req.method, req.path)
        },
    })
}

/// `METHOD /path` as a replay claim names it: the path without stage or query string (no
/// route that checks a body reads its query, so a query added to a replay must not make it
/// new), percent-decoded (`po%5F…` reaches the same order as `po_…`).
fn request_line(method: &str, path: &str) -> String {
    let decoded = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
    format!("{method} {decoded}")
}

/// What a signature may use once, inside its window.
enum Claim<'a> {
    /// A v2 nonce, whatever the request.
    Nonce { nonce: &'a str },
    /// A v1 or legacy signed request: this signature on this request with this body.
    Request {
        signed: &'a SignedRequest,
        body_sha256: &'a str,
    },
}

impl Claim<'_> {
    /// The one place claim keys are spelled. A v1 signature binds the method and path
    /// itself; a legacy one binds neither, so the key names them (hashed: a path has no
    /// length limit, a store key has one).
    fn key(&self, key_id: &KeyId) -> String {
        match self {
            Claim::Nonce { nonce } => format!("v2nonce#{key_id}#{nonce}"),
            Claim::Request {
                signed,
                body_sha256,
            } => format!(
                "replay#{key_id}#{}#{}#{body_sha256}",
                signed.signature,
                hex::encode(Sha256::digest(signed.request.as_bytes()))
            ),
        }
    }
}

/// Claims `claim` for the signature's window (twice the allowed skew past its timestamp):
/// true the first time.
async fn claim_once(
    claims: &dyn ClaimStore,
    key_id: &KeyId,
    claim: &Claim<'_>,
    timestamp: i64,
    now: Timestamp,
) -> Result<bool, AuthFailure> {
    let until = Timestamp::from_unix(timestamp + 2 * SIGNATURE_WINDOW_SECS).unwrap_or(now);
    claims
        .claim_once(&claim.key(key_id), now, until)
        .await
        .map_err(store_fault)
}

/// The body-bound checks of a signed request, run by handlers that take a body: a v2
/// signature's body hash must match; a v1/legacy signed request may not be replayed
/// exactly (same signature, method, path and body) inside the window.
pub async fn verify_body(
    claims: &dyn ClaimStore,
    ctx: &AuthContext,
    body: &[u8],
    now: Timestamp,
) -> Result<(), AuthFailure> {
    let Some(signed) = &ctx.signed else {
        return Ok(());
    };
    let body_hash = hex::encode(Sha256::digest(body));
    match signed.scheme {
        Scheme::V2 => {
            let expected = signed.body_sha256.as_deref().unwrap_or_default();
            if !bool::from(subtle::ConstantTimeEq::ct_eq(
                expected.as_bytes(),
                body_hash.as_bytes(),
            )) {
                return Err(AuthFailure::unauthenticated(
                    "BODY_HASH_MISMATCH",
                    "body_sha256 in the signature does not match the body",
                ));
            }
            Ok(())
        }
        Scheme::V1 | Scheme::Legacy => {
            let claim = Claim::Request {
                signed,
                body_sha256: &body_hash,
            };
            if claim_once(claims, &ctx.key_id, &claim, signed.timestamp, now).await? {
                Ok(())
            } else {
                Err(AuthFailure::unauthenticated(
                    "REPLAYED_REQUEST",
                    "this exact signed request was already received",
                ))
            }
        }
    }
}

/// The associated data an API secret is sealed under.
pub fn api_secret_context(key_id: &KeyId) -> String {
    format!("api-secret:{key_id}")
}

/// A key as handed to its owner once: the key text and its secret.
pub struct IssuedKey {
    pub record: ApiKey,
    pub key: String,
    pub secret: String,
}

/// The longest grace period of a rolled key (Stripe's: 7 days).
pub const ROLL_GRACE_MAX_SECS: i64 = 7 * 24 * 3600;
/// The grace period of a rolled key when the caller names none.
pub const ROLL_GRACE_DEFAULT_SECS: i64 = 24 * 3600;

/// Rolls `old`: a new key and secret with the same organization, mode, name and scopes,
/// and the moment the old key stops working (`now + grace_secs`, or its own earlier
/// expiry). The caller stores both in one write (`KeyStore::roll_api_key`).
pub fn roll_api_key(
    old: &ApiKey,
    grace_secs: i64,
    master: &MasterKey,
    now: Timestamp,
) -> (IssuedKey, Timestamp) {
    let mut issued = issue_api_key(
        &old.organization_id,
        old.mode,
        old.scopes.clone(),
        master,
        now,
        None,
    )
    .expect("random keys are always valid");
    issued.record.name = old.name.clone();
    let until = old.expiry_when_rolled(now.plus_seconds(grace_secs.clamp(0, ROLL_GRACE_MAX_SECS)));
    (issued, until)
}

/// Issues a key for an organization. `fixed` gives the key text and secret instead of
/// random ones (the demo key of `make dev`).
pub fn issue_api_key(
    org_id: &OrgId,
    mode: KeyMode,
    scopes: Vec<Scope>,
    master: &MasterKey,
    now: Timestamp,
    fixed: Option<(String, String)>,
) -> Result<IssuedKey, String> {
    let (material, secret) = match fixed {
        Some((key, secret)) => {
            if key_mode(&key) != Some(mode) {
                return Err(format!("the key must start with sk_{mode}_"));
            }
            if key.len() < 24 || secret.len() < 24 {
                return Err("the key and the secret must each be at least 24 characters".into());
            }
            (from_key_text(key), secret)
        }
        None => (
            generate_api_key(mode),
            format!(
                "ss_{}",
                bs58::encode(crate::model::random_bytes::<32>()).into_string()
            ),
        ),
    };
    let id = KeyId::generate();
    let record = ApiKey {
        secret_sealed: master.seal(&api_secret_context(&id), &secret),
        id,
        organization_id: org_id.clone(),
        mode,
        name: String::new(),
        key_hash: material.hash,
        prefix: material.prefix,
        last4: material.last4,
        scopes,
        created_at: now,
        revoked_at: None,
        expires_at: None,
    };
    Ok(IssuedKey {
        record,
        key: material.key,
        secret,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_by_route() {
        assert_eq!(
            required_scope("POST", "/pay-orders"),
            Some(Scope::OrdersCreate)
        );
        for prepares in ["quote", "payment-details", "payments", "simulate-payment"] {
            assert_eq!(
                required_scope("POST", &format!("/pay-orders/{{id}}/{prepares}")),
                Some(Scope::OrdersCreate),
                "{prepares}"
            );
        }
        assert_eq!(
            required_scope("GET", "/pay-orders"),
            Some(Scope::OrdersRead)
        );
        assert_eq!(
            required_scope("GET", "/pay-orders/{id}"),
            Some(Scope::OrdersRead)
        );
        assert_eq!(
            required_scope("POST", "/pay-orders/{id}/cancel"),
            Some(Scope::OrdersCancel)
        );
        assert_eq!(
            required_scope("POST", "/pay-orders/{id}/refunds"),
            Some(Scope::OrdersRefund)
        );
        // Withdrawing a refund is a refund's business, though its path ends in /cancel.
        assert_eq!(
            required_scope("POST", "/pay-orders/{id}/refunds/{refund_id}/cancel"),
            Some(Scope::OrdersRefund)
        );
        assert_eq!(
            required_scope("GET", "/pay-orders/{id}/process"),
            Some(Scope::OrdersCreate)
        );
        assert_eq!(
            required_scope("GET", "/analytics"),
            Some(Scope::AnalyticsRead)
        );
        for (method, path) in [
            ("GET", "/api-keys"),
            ("POST", "/api-keys"),
            ("GET", "/api-keys/{id}"),
            ("POST", "/api-keys/{id}/revoke"),
            ("POST", "/api-keys/{id}/roll"),
        ] {
            assert_eq!(
                required_scope(method, path),
                Some(Scope::KeysManage),
                "{method} {path}"
            );
        }
        assert_eq!(
            required_scope("GET", "/events/{id}"),
            Some(Scope::OrdersRead)
        );
        assert_eq!(
            required_scope("DELETE", "/webhook-endpoints/{id}"),
            Some(Scope::WebhooksManage)
        );
        assert_eq!(
            required_scope("PUT", "/merchant-wallets/{id}"),
            Some(Scope::SettingsManage)
        );
        assert_eq!(required_scope("DELETE", "/pay-orders/{id}"), None);
        assert_eq!(required_scope("GET", "/admin"), None);
    }

    #[test]
    fn a_roll_keeps_name_and_scopes_and_bounds_the_grace_period() {
        let master = MasterKey::from_text(&"m".repeat(32)).unwrap();
        let now = Timestamp::now();
        let org = OrgId::generate();
        let mut old = issue_api_key(
            &org,
            KeyMode::Live,
            vec![Scope::OrdersRead, Scope::KeysManage],
            &master,
            now,
            None,
        )
        .unwrap()
        .record;
        old.name = "checkout".into();
        let (new, until) = roll_api_key(&old, 3600, &master, now);
        assert_ne!(new.record.id, old.id);
        assert_ne!(new.record.key_hash, old.key_hash);
        assert_eq!(
            (&new.record.name, &new.record.scopes, new.record.mode),
            (&old.name, &old.scopes, KeyMode::Live)
        );
        assert!(new.key.starts_with("sk_live_") && new.key.ends_with(&new.record.last4));
        assert_eq!(
            master
                .open(
                    &api_secret_context(&new.record.id),
                    &new.record.secret_sealed
                )
                .unwrap(),
            new.secret
        );
        assert_eq!(until, now.plus_seconds(3600));
        // Never past 7 days, never before now, never later than an expiry already set.
        assert_eq!(
            roll_api_key(&old, i64::MAX, &master, now).1,
            now.plus_seconds(ROLL_GRACE_MAX_SECS)
        );
        assert_eq!(roll_api_key(&old, -5, &master, now).1, now);
        old.expires_at = Some(now.plus_seconds(60));
        assert_eq!(
            roll_api_key(&old, 3600, &master, now).1,
            now.plus_seconds(60)
        );
    }

    #[cfg(feature = "embedded")]
    #[tokio::test]
    async fn a_legacy_replay_claim_names_the_method_and_path() {
        let claims = crate::store::embedded::EmbeddedStore::in_memory().unwrap();
        let now = Timestamp::now();
        let key_id = KeyId::generate();
        let verify = async |method: &str, path: &str| {
            let ctx = AuthContext {
                org_id: OrgId::generate(),
                key_id: key_id.clone(),
                mode: KeyMode::Test,
                scopes: vec![Scope::All],
                signed: Some(SignedRequest {
                    scheme: Scheme::Legacy,
                    signature: "ab".repeat(64),
                    timestamp: now.unix(),
                    body_sha256: None,
                    request: request_line(method, path),
                }),
            };
            verify_body(&claims, &ctx, b"{}", now).await
        };
        // One legacy signature, the same body, three requests: each passes.
        verify("POST", "/pay-orders/po_a/cancel").await.unwrap();
        verify("POST", "/pay-orders/po_b/cancel").await.unwrap();
        verify("POST", "/api-keys/key_a/revoke").await.unwrap();
        // The same method and path again is a replay, however the path is escaped.
        for (method, path) in [
            ("POST", "/pay-orders/po_a/cancel"),
            ("POST", "/pay-orders/po%5Fa/cancel"),
            ("POST", "/pay-orders/po%5fb/cancel"),
        ] {
            assert_eq!(
                verify(method, path).await.unwrap_err().code,
                "REPLAYED_REQUEST",
                "{method} {path}"
            );
        }
        assert_eq!(request_line("GET", "/a%2"), "GET /a%2");
        assert_eq!(request_line("GET", "/a%zz%+1%41"), "GET /a%zz%+1A");
    }

    #[test]
    fn context_round_trips_through_the_authorizer_map() {
        let ctx = AuthContext {
            org_id: OrgId::generate(),
            key_id: KeyId::generate(),
            mode: KeyMode::Test,
            scopes: vec![Scope::OrdersRead, Scope::OrdersCreate],
            signed: Some(SignedRequest {
                scheme: Scheme::V2,
                signature: "ab".repeat(32),
                timestamp: 1_700_000_000,
                body_sha256: Some("cd".repeat(32)),
                request: "POST /pay-orders/po_1/cancel".into(),
            }),
        };
        let map: std::collections::HashMap<_, _> = ctx.to_authorizer().into_iter().collect();
        assert!(
            map.values().all(Value::is_string),
            "simple responses carry flat values"
        );
        assert_eq!(AuthContext::from_authorizer(&map).unwrap(), ctx);

        let fail = AuthFailure::forbidden("INSUFFICIENT_SCOPE", "nope");
        let map: std::collections::HashMap<_, _> = fail.to_authorizer().into_iter().collect();
        assert_eq!(AuthContext::from_authorizer(&map).unwrap_err(), fail);
        let empty = std::collections::HashMap::new();
        assert_eq!(
            AuthContext::from_authorizer(&empty).unwrap_err().code,
            "UNAUTHENTICATED"
        );
        let mut forged = empty.clone();
        forged.insert("auth_error".into(), json!("SOMETHING_ELSE"));
        assert_eq!(
            AuthContext::from_authorizer(&forged).unwrap_err().code,
            "UNAUTHENTICATED"
        );
    }
}
