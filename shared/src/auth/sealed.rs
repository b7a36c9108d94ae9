//! Secrets at rest: sealed with the master key (XChaCha20-Poly1305), bound to what they
//! belong to (the associated data), so a sealed value copied onto another record fails to
//! open. The master key lives in Secrets Manager (or `.local/` in development).

use super::super::model::random_bytes;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::XChaCha20Poly1305;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use sha2::{Digest, Sha256};

const VERSION: &str = "v1.";

/// The key that seals API secrets and webhook signing secrets.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(***)")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("the master key must be at least 32 characters")]
    WeakMasterKey,
    #[error("sealed value is malformed")]
    Malformed,
    #[error("sealed value does not open with this master key and context")]
    WrongKeyOrContext,
}

impl MasterKey {
    /// Derives the 256-bit sealing key from the configured master key text.
    pub fn from_text(text: &str) -> Result<Self, SealError> {
        if text.len() < 32 {
            return Err(SealError::WeakMasterKey);
        }
        let mut h = Sha256::new();
        h.update(b"payorders/master-key/v1\0");
        h.update(text.as_bytes());
        Ok(Self(h.finalize().into()))
    }

    /// A random master key text, for development hosts that have none yet.
    pub fn generate_text() -> String {
        bs58::encode(random_bytes::<32>()).into_string()
    }

    /// A 256-bit key for one purpose (`context`), derived from the master key with
    /// HMAC-SHA256, so no purpose uses the sealing key itself.
    pub fn derive(&self, context: &str) -> [u8; 32] {
        use hmac::{Hmac, KeyInit, Mac};
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0).expect("any key length");
        mac.update(context.as_bytes());
        mac.finalize().into_bytes().into()
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new_from_slice(&self.0).expect("32-byte key")
    }

    /// Seals `plaintext` for `context` (e.g. `api-secret:key_…`).
    pub fn seal(&self, context: &str, plaintext: &str) -> String {
        let nonce = random_bytes::<24>();
        let ct = self
            .cipher()
            .encrypt(
                (&nonce).into(),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: context.as_bytes(),
                },
            )
            .expect("encryption cannot fail for in-memory data");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        format!("{VERSION}{}", URL_SAFE_NO_PAD.encode(out))
    }

    /// Opens a value sealed for `context`.
    pub fn open(&self, context: &str, sealed: &str) -> Result<String, SealError> {
        let body = sealed.strip_prefix(VERSION).ok_or(SealError::Malformed)?;
        let raw = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| SealError::Malformed)?;
        if raw.len() < 24 + 16 {
            return Err(SealError::Malformed);
        }
        let (nonce, ct) = raw.split_at(24);
        let nonce: [u8; 24] = nonce.try_into().map_err(|_| SealError::Malformed)?;
        let pt = self
            .cipher()
            .decrypt(
                (&nonce).into(),
                Payload {
                    msg: ct,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| SealError::WrongKeyOrContext)?;
        String::from_utf8(pt).map_err(|_| SealError::Malformed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_round_trip_is_bound_to_key_and_context() {
        let mk = MasterKey::from_text(&"k".repeat(32)).unwrap();
        let sealed = mk.seal("api-secret:key_1", "ss_secret");
        assert!(sealed.starts_with("v1."));
        assert!(!sealed.contains("ss_secret"));
        assert_eq!(mk.open("api-secret:key_1", &sealed).unwrap(), "ss_secret");
        assert_ne!(
            sealed,
            mk.seal("api-secret:key_1", "ss_secret"),
            "random nonce"
        );
        assert_eq!(
            mk.open("api-secret:key_2", &sealed),
            Err(SealError::WrongKeyOrContext)
        );
        let other = MasterKey::from_text(&"j".repeat(32)).unwrap();
        assert_eq!(
            other.open("api-secret:key_1", &sealed),
            Err(SealError::WrongKeyOrContext)
        );
        assert_eq!(mk.open("x", "v2.abc"), Err(SealError::Malformed));
        assert_eq!(mk.derive("a"), mk.derive("a"));
        assert_ne!(mk.derive("a"), mk.derive("b"));
        assert_ne!(mk.derive("a"), other.derive("a"));
        assert_eq!(mk.open("x", "v1.abc"), Err(SealError::Malformed));
        assert_eq!(
            MasterKey::from_text("short").unwrap_err(),
            SealError::WeakMasterKey
        );
    }
}
