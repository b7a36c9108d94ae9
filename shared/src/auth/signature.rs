//! The `Authorization-Signature` header: three schemes, verified in constant time.
//!
//! - **v1** (seed 002): `APIKey=<key>,signature=<hex HMAC-SHA256(api_secret, METHOD + path +
//!   timestamp)>,timestamp=<unix>`. Does not cover the body, so handlers refuse an exact
//!   replay (same header, same body) inside the window.
//! - **legacy** (seed 000): the same header with `signature = hex SHA-512(APIKey + api_secret
//!   + timestamp)`; told apart by its 128 hex digits.
//! - **v2**: `v=2,APIKey=<key>,timestamp=<unix>,nonce=<nonce>,body_sha256=<hex>,signature=<hex
//!   HMAC-SHA256(api_secret, "v2\n" METHOD "\n" path_and_query "\n" timestamp "\n" nonce "\n"
//!   body_sha256)>`. Each nonce is accepted once; handlers check `body_sha256` against the body.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

/// How far a signature's timestamp may be from now, either way.
pub const SIGNATURE_WINDOW_SECS: i64 = 300;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    V1,
    Legacy,
    V2,
}

/// A parsed, not yet verified, signature header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureHeader {
    pub scheme: Scheme,
    pub api_key: String,
    pub signature: Vec<u8>,
    pub timestamp: i64,
    pub nonce: Option<String>,
    pub body_sha256: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed Authorization-Signature header: {0}")]
pub struct MalformedSignature(pub &'static str);

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

impl SignatureHeader {
    pub fn parse(header: &str) -> Result<Self, MalformedSignature> {
        let mut fields: Vec<(String, &str)> = Vec::new();
        for part in header.split(',') {
            let (k, v) = part.trim().split_once('=').ok_or(MalformedSignature(
                "expected key=value pairs separated by commas",
            ))?;
            let k = k.trim().to_ascii_lowercase();
            if fields.iter().any(|(seen, _)| *seen == k) {
                return Err(MalformedSignature("a field appears twice"));
            }
            fields.push((k, v.trim()));
        }
        let get = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| *v);
        let api_key = get("apikey").ok_or(MalformedSignature("APIKey is missing"))?;
        let sig = get("signature").ok_or(MalformedSignature("signature is missing"))?;
        let ts = get("timestamp").ok_or(MalformedSignature("timestamp is missing"))?;
        if ts.is_empty() || ts.len() > 12 || !ts.bytes().all(|b| b.is_ascii_digit()) {
            return Err(MalformedSignature("timestamp must be unix seconds"));
        }
        let timestamp: i64 = ts
            .parse()
            .map_err(|_| MalformedSignature("timestamp must be unix seconds"))?;
        let version = get("v");
        let known: &[&str] = match version {
            Some("2") => &[
                "v",
                "apikey",
                "signature",
                "timestamp",
                "nonce",
                "body_sha256",
            ],
            Some(_) => return Err(MalformedSignature("unknown signature version")),
            None => &["apikey", "signature", "timestamp"],
        };
        if fields.iter().any(|(k, _)| !known.contains(&k.as_str())) {
            return Err(MalformedSignature("unknown field"));
        }
        let (scheme, nonce, body_sha256) = if version.is_some() {
            let nonce = get("nonce").ok_or(MalformedSignature("v2 needs a nonce"))?;
            if nonce.is_empty()
                || nonce.len() > 64
                || !nonce
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(MalformedSignature(
                    "nonce must be 1-64 characters of [A-Za-z0-9_-]",
                ));
            }
            let body = get("body_sha256").ok_or(MalformedSignature("v2 needs body_sha256"))?;
            if !is_hex(body, 64) {
                return Err(MalformedSignature("body_sha256 must be 64 hex digits"));
            }
            if !is_hex(sig, 64) {
                return Err(MalformedSignature("signature must be 64 hex digits"));
            }
            (
                Scheme::V2,
                Some(nonce.to_owned()),
                Some(body.to_ascii_lowercase()),
            )
        } else if is_hex(sig, 64) {
            (Scheme::V1, None, None)
        } else if is_hex(sig, 128) {
            (Scheme::Legacy, None, None)
        } else {
            return Err(MalformedSignature(
                "signature must be 64 (HMAC-SHA256) or 128 (SHA-512) hex digits",
            ));
        };
        Ok(Self {
            scheme,
            api_key: api_key.to_owned(),
            signature: hex::decode(sig).map_err(|_| MalformedSignature("signature is not hex"))?,
            timestamp,
            nonce,
            body_sha256,
        })
    }

    /// Whether the signature matches, given the key's secret and the request line.
    /// `path_and_query` is the path without the stage, plus `?query` when there is one;
    /// v1 and legacy sign the path alone.
    pub fn verify(&self, secret: &str, method: &str, path: &str, path_and_query: &str) -> bool {
        match self.scheme {
            Scheme::V1 => {
                let mut mac = hmac_sha256(secret);
                mac.update(method.as_bytes());
                mac.update(path.as_bytes());
                mac.update(self.timestamp.to_string().as_bytes());
                mac.verify_slice(&self.signature).is_ok()
            }
            Scheme::Legacy => {
                let mut h = Sha512::new();
                h.update(self.api_key.as_bytes());
                h.update(secret.as_bytes());
                h.update(self.timestamp.to_string().as_bytes());
                h.finalize().as_slice().ct_eq(&self.signature).into()
            }
            Scheme::V2 => {
                let mut mac = hmac_sha256(secret);
                mac.update(
                    v2_string_to_sign(
                        method,
                        path_and_query,
                        self.timestamp,
                        self.nonce.as_deref().unwrap_or_default(),
                        self.body_sha256.as_deref().unwrap_or_default(),
                    )
                    .as_bytes(),
                );
                mac.verify_slice(&self.signature).is_ok()
            }
        }
    }
}

fn hmac_sha256(secret: &str) -> Hmac<Sha256> {
    <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes keys of any length")
}

/// The v2 string to sign.
pub fn v2_string_to_sign(
    method: &str,
    path_and_query: &str,
    ts: i64,
    nonce: &str,
    body_sha256: &str,
) -> String {
    format!("v2\n{method}\n{path_and_query}\n{ts}\n{nonce}\n{body_sha256}")
}

/// Client-side helpers: what a merchant computes. Used by tests, docs and the CLI.
pub mod sign {
    use super::*;

    pub fn v1(secret: &str, method: &str, path: &str, ts: i64) -> String {
        let mut mac = hmac_sha256(secret);
        mac.update(format!("{method}{path}{ts}").as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    pub fn legacy(api_key: &str, secret: &str, ts: i64) -> String {
        hex::encode(Sha512::digest(format!("{api_key}{secret}{ts}").as_bytes()))
    }

    pub fn v2(
        secret: &str,
        method: &str,
        path_and_query: &str,
        ts: i64,
        nonce: &str,
        body: &[u8],
    ) -> (String, String) {
        let body_sha256 = hex::encode(Sha256::digest(body));
        let mut mac = hmac_sha256(secret);
        mac.update(v2_string_to_sign(method, path_and_query, ts, nonce, &body_sha256).as_bytes());
        (hex::encode(mac.finalize().into_bytes()), body_sha256)
    }

    /// A complete v1 header value.
    pub fn v1_header(api_key: &str, secret: &str, method: &str, path: &str, ts: i64) -> String {
        format!(
            "APIKey={api_key},signature={},timestamp={ts}",
            v1(secret, method, path, ts)
        )
    }

    /// A complete v2 header value.
    pub fn v2_header(
        api_key: &str,
        secret: &str,
        method: &str,
        path_and_query: &str,
        ts: i64,
        nonce: &str,
        body: &[u8],
    ) -> String {
        let (sig, body_sha256) = v2(secret, method, path_and_query, ts, nonce, body);
        format!(
            "v=2,APIKey={api_key},timestamp={ts},nonce={nonce},body_sha256={body_sha256},signature={sig}"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "sk_test_abc";
    const SECRET: &str = "ss_secret";

    #[test]
    fn v1_verifies_and_binds_method_path_and_time() {
        let h = SignatureHeader::parse(&sign::v1_header(
            KEY,
            SECRET,
            "POST",
            "/pay-orders",
            1_700_000_000,
        ))
        .unwrap();
        assert_eq!(h.scheme, Scheme::V1);
        assert!(h.verify(SECRET, "POST", "/pay-orders", "/pay-orders"));
        assert!(!h.verify("other", "POST", "/pay-orders", "/pay-orders"));
        assert!(!h.verify(SECRET, "GET", "/pay-orders", "/pay-orders"));
        assert!(!h.verify(SECRET, "POST", "/pay-orders/x", "/pay-orders/x"));
        // The known-answer value, computed with openssl as the README shows:
        // printf '%s' 'POST/pay-orders1700000000' | openssl dgst -sha256 -hmac ss_secret
        assert_eq!(
            sign::v1(SECRET, "POST", "/pay-orders", 1_700_000_000),
            hex::encode(h.signature)
        );
    }

    #[test]
    fn legacy_and_v2() {
        let legacy = format!(
            "APIKey={KEY},signature={},timestamp=1700000000",
            sign::legacy(KEY, SECRET, 1_700_000_000)
        );
        let h = SignatureHeader::parse(&legacy).unwrap();
        assert_eq!(h.scheme, Scheme::Legacy);
        assert!(h.verify(SECRET, "POST", "/anything", "/anything"));
        assert!(!h.verify("nope", "POST", "/anything", "/anything"));

        let body = br#"{"mode":"SALE"}"#;
        let v2 = sign::v2_header(
            KEY,
            SECRET,
            "POST",
            "/pay-orders?x=1",
            1_700_000_000,
            "n-1",
            body,
        );
        let h = SignatureHeader::parse(&v2).unwrap();
        assert_eq!(h.scheme, Scheme::V2);
        assert_eq!(h.nonce.as_deref(), Some("n-1"));
        assert!(h.verify(SECRET, "POST", "/pay-orders", "/pay-orders?x=1"));
        assert!(!h.verify(SECRET, "POST", "/pay-orders", "/pay-orders?x=2"));
    }

    #[test]
    fn malformed_headers_are_refused() {
        let good_sig = "a".repeat(64);
        for bad in [
            String::new(),
            "garbage".into(),
            format!("APIKey={KEY},signature={good_sig}"),
            format!("APIKey={KEY},timestamp=1"),
            format!("signature={good_sig},timestamp=1"),
            format!("APIKey={KEY},signature=zz,timestamp=1"),
            format!("APIKey={KEY},signature={},timestamp=1", "a".repeat(10)),
            format!("APIKey={KEY},signature={good_sig},timestamp=-1"),
            format!("APIKey={KEY},signature={good_sig},timestamp=1.5"),
            format!("APIKey={KEY},APIKey=x,signature={good_sig},timestamp=1"),
            format!("APIKey={KEY},signature={good_sig},timestamp=1,extra=1"),
            format!("v=3,APIKey={KEY},signature={good_sig},timestamp=1"),
            format!("v=2,APIKey={KEY},signature={good_sig},timestamp=1,body_sha256={good_sig}"),
            format!(
                "v=2,APIKey={KEY},signature={good_sig},timestamp=1,nonce=a b,body_sha256={good_sig}"
            ),
            format!("v=2,APIKey={KEY},signature={good_sig},timestamp=1,nonce=n"),
        ] {
            assert!(SignatureHeader::parse(&bad).is_err(), "{bad}");
        }
    }
}
