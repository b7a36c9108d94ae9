//! API key text: generation and hashing. Keys are shown once and stored only as SHA-256.

use crate::model::{KeyMode, random_bytes};
use sha2::{Digest, Sha256};

/// A freshly generated API key: the text to hand to the merchant once, and what we store.
pub struct GeneratedKey {
    /// `sk_live_…` / `sk_test_…`: shown once, never stored.
    pub key: String,
    /// Lowercase hex SHA-256 of `key`.
    pub hash: String,
    /// Enough of the key for a person to recognise it.
    pub prefix: String,
    /// Its last four characters, shown beside the prefix.
    pub last4: String,
}

/// Generates a key for `mode` with 192 random bits.
pub fn generate_api_key(mode: KeyMode) -> GeneratedKey {
    let key = format!(
        "sk_{}_{}",
        mode.as_str(),
        bs58::encode(random_bytes::<24>()).into_string()
    );
    from_key_text(key)
}

/// Builds the stored form of a key whose text is fixed (the demo key in `make dev`).
pub fn from_key_text(key: String) -> GeneratedKey {
    let hash = hash_api_key(&key);
    let prefix = key.chars().take(12).collect();
    let chars: Vec<char> = key.chars().collect();
    let last4 = chars[chars.len().saturating_sub(4)..].iter().collect();
    GeneratedKey {
        key,
        hash,
        prefix,
        last4,
    }
}

/// SHA-256 of the key text, lowercase hex: the only form a key is stored or looked up in.
pub fn hash_api_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// The mode a key's text claims (`sk_live_` / `sk_test_`), if any.
pub fn key_mode(key: &str) -> Option<KeyMode> {
    if key.starts_with("sk_live_") {
        Some(KeyMode::Live)
    } else if key.starts_with("sk_test_") {
        Some(KeyMode::Test)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_prefixed_random_and_hashed() {
        let a = generate_api_key(KeyMode::Test);
        let b = generate_api_key(KeyMode::Test);
        assert!(a.key.starts_with("sk_test_"));
        assert_ne!(a.key, b.key);
        assert_eq!(a.hash, hash_api_key(&a.key));
        assert_eq!(a.hash.len(), 64);
        assert!(a.key.ends_with(&a.last4) && a.last4.chars().count() == 4);
        assert!(!a.hash.contains(&a.key));
        assert_eq!(key_mode(&a.key), Some(KeyMode::Test));
        assert_eq!(
            key_mode(&generate_api_key(KeyMode::Live).key),
            Some(KeyMode::Live)
        );
        assert_eq!(key_mode("pk_x"), None);
        // SHA-256("abc") from FIPS 180-2.
        assert_eq!(
            hash_api_key("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
