//! Short-lived access tokens (`POST /auth/token`): JWTs signed HS256 with a key derived
//! from the master key, carrying the organization, the API key they were minted from, its
//! mode and a subset of its scopes. They stand in for the API key as
//! `Authorization: Bearer <token>`, never for its secret: a signed request still needs the
//! API secret.

use super::MasterKey;
use crate::model::{ApiKey, KeyId, KeyMode, OrgId, Scope, Timestamp, random_bytes};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// Who issues (and alone accepts) our tokens.
pub const ISSUER: &str = "payorders";
/// Token lifetimes a caller may ask for, in seconds.
pub const TOKEN_TTL_MIN: i64 = 60;
pub const TOKEN_TTL_MAX: i64 = 3600;
pub const TOKEN_TTL_DEFAULT: i64 = 900;
/// What the signing key is derived from the master key for; change it to invalidate
/// every token at once.
const SIGNING_CONTEXT: &str = "payorders/access-token/hs256/v1";

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenClaims {
    pub iss: String,
    /// The API key the token was minted from.
    pub sub: KeyId,
    pub org: OrgId,
    pub mode: KeyMode,
    /// Space-separated, as OAuth writes it.
    pub scope: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
}

impl TokenClaims {
    /// The scopes the token grants (names it does not know are dropped).
    pub fn scopes(&self) -> Vec<Scope> {
        self.scope
            .split_whitespace()
            .filter_map(Scope::parse)
            .collect()
    }
}

/// A minted token and what it says, for the answer of `POST /auth/token`.
#[derive(Debug, Clone)]
pub struct AccessToken {
    pub token: String,
    pub claims: TokenClaims,
}

/// Why a token is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the access token is malformed or its signature does not match")]
    Invalid,
    #[error("the access token has expired")]
    Expired,
}

fn signing_key(master: &MasterKey) -> [u8; 32] {
    master.derive(SIGNING_CONTEXT)
}

/// Whether a bearer credential has a JWT's shape (three base64url parts); API keys
/// (`sk_…`) never contain a dot.
pub fn looks_like_jwt(text: &str) -> bool {
    let parts: Vec<&str> = text.split('.').collect();
    parts.len() == 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// Mints a token for `key` granting `scopes` (already checked to be a subset of the
/// key's, without `*`) for `ttl_secs` from `now`.
pub fn mint(
    master: &MasterKey,
    key: &ApiKey,
    scopes: &[Scope],
    ttl_secs: i64,
    now: Timestamp,
) -> AccessToken {
    let claims = TokenClaims {
        iss: ISSUER.to_owned(),
        sub: key.id.clone(),
        org: key.organization_id.clone(),
        mode: key.mode,
        scope: scopes
            .iter()
            .map(Scope::as_str)
            .collect::<Vec<_>>()
            .join(" "),
        iat: now.unix(),
        exp: now.unix() + ttl_secs,
        jti: format!("jti_{}", bs58::encode(random_bytes::<16>()).into_string()),
    };
    let key = EncodingKey::from_secret(&signing_key(master)).expect("an HMAC key of 32 bytes");
    let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key)
        .expect("HS256 signing of serializable claims cannot fail");
    AccessToken { token, claims }
}

/// Verifies a token's signature, issuer and expiry at `now` (no leeway: tokens are short,
/// and the clock that minted them is ours). Whether its API key still works is the
/// caller's check.
pub fn verify(master: &MasterKey, token: &str, now: Timestamp) -> Result<TokenClaims, TokenError> {
    let key = DecodingKey::from_secret(&signing_key(master)).map_err(|_| TokenError::Invalid)?;
    let mut v = Validation::new(Algorithm::HS256);
    // Expiry is checked below against `now`, so tests (and the authorizer) decide the time.
    v.validate_exp = false;
    v.validate_aud = false;
    v.leeway = 0;
    v.set_issuer(&[ISSUER]);
    v.set_required_spec_claims(&["exp", "iss", "sub"]);
    let claims = jsonwebtoken::decode::<TokenClaims>(token, &key, &v)
        .map_err(|_| TokenError::Invalid)?
        .claims;
    if claims.exp <= now.unix() {
        return Err(TokenError::Expired);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    fn key() -> ApiKey {
        ApiKey {
            id: KeyId::generate(),
            organization_id: OrgId::generate(),
            mode: KeyMode::Test,
            name: "server".into(),
            key_hash: "00".repeat(32),
            prefix: "sk_test_abcd".into(),
            last4: "wxyz".into(),
            secret_sealed: "v1.x".into(),
            scopes: vec![Scope::All],
            created_at: Timestamp::now(),
            revoked_at: None,
            expires_at: None,
        }
    }

    #[test]
    fn tokens_carry_their_claims_and_expire() {
        let master = MasterKey::from_text(&"m".repeat(32)).unwrap();
        let k = key();
        let now = Timestamp::now();
        let t = mint(
            &master,
            &k,
            &[Scope::OrdersRead, Scope::OrdersCreate],
            900,
            now,
        );
        assert!(looks_like_jwt(&t.token));
        assert!(!looks_like_jwt("sk_test_abc"));
        let c = verify(&master, &t.token, now).unwrap();
        assert_eq!(c, t.claims);
        assert_eq!(
            (&c.sub, &c.org, c.mode),
            (&k.id, &k.organization_id, KeyMode::Test)
        );
        assert_eq!(c.scopes(), vec![Scope::OrdersRead, Scope::OrdersCreate]);
        assert_eq!((c.iss.as_str(), c.exp - c.iat), (ISSUER, 900));
        assert!(c.jti.starts_with("jti_"));
        assert_ne!(t.claims.jti, mint(&master, &k, &[], 900, now).claims.jti);
        assert_eq!(
            verify(&master, &t.token, now.plus_seconds(899)).map(|_| ()),
            Ok(())
        );
        assert_eq!(
            verify(&master, &t.token, now.plus_seconds(900)),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn tampered_foreign_and_unsigned_tokens_are_refused() {
        let master = MasterKey::from_text(&"m".repeat(32)).unwrap();
        let now = Timestamp::now();
        let t = mint(&master, &key(), &[Scope::OrdersRead], 900, now).token;
        let parts: Vec<&str> = t.split('.').collect();

        // Widen the scope in the payload, keep the signature.
        let mut claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        claims["scope"] = "*".into();
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(claims.to_string()),
            parts[2]
        );
        assert_eq!(verify(&master, &forged, now), Err(TokenError::Invalid));

        // Another deployment's master key.
        let other = MasterKey::from_text(&"o".repeat(32)).unwrap();
        assert_eq!(verify(&other, &t, now), Err(TokenError::Invalid));

        // `alg: none`, no signature.
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
            parts[1]
        );
        assert_eq!(verify(&master, &none, now), Err(TokenError::Invalid));
        assert_eq!(verify(&master, "a.b.c", now), Err(TokenError::Invalid));
    }
}
