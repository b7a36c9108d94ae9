//! Chain ids, addresses and transaction hashes, each validated for its chain family.

use alloy_primitives::{Address as EvmRaw, B256};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// The kind of chain an id belongs to; decides address and hash formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChainFamily {
    Evm,
    Solana,
}

/// Why an address, chain id or hash was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("chain id must be a positive integer no larger than 2^53 - 1")]
    InvalidChainId,
    #[error("EVM address must be 0x followed by 40 hex digits")]
    EvmFormat,
    #[error("EVM address has mixed case but its EIP-55 checksum does not match")]
    EvmChecksum,
    #[error("Solana address must be base58 encoding exactly 32 bytes")]
    SolanaFormat,
    #[error("EVM transaction hash must be 0x followed by 64 hex digits")]
    EvmTxHash,
    #[error("Solana transaction signature must be base58 encoding exactly 64 bytes")]
    SolanaTxHash,
}

/// A chain id as seed 000 numbers them: EVM ids as they are, Solana 30000000000001, etc.
/// Bounded by 2^53 - 1 so JavaScript clients read it exactly.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct ChainId(u64);

impl ChainId {
    pub const MAX: u64 = (1 << 53) - 1;

    pub fn new(id: u64) -> Result<Self, AddressError> {
        if id == 0 || id > Self::MAX {
            return Err(AddressError::InvalidChainId);
        }
        Ok(Self(id))
    }

    /// Parses a chain id written as decimal digits.
    pub fn parse(s: &str) -> Result<Self, AddressError> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(AddressError::InvalidChainId);
        }
        s.parse::<u64>()
            .map_err(|_| AddressError::InvalidChainId)
            .and_then(Self::new)
    }

    pub fn get(&self) -> u64 {
        self.0
    }
}

impl fmt::Display for ChainId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Debug for ChainId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChainId({})", self.0)
    }
}

impl<'de> Deserialize<'de> for ChainId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Accept a JSON number or a decimal string: clients in JS often quote big ids.
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => ChainId::new(n),
            Raw::S(s) => ChainId::parse(&s),
        }
        .map_err(serde::de::Error::custom)
    }
}

/// An EVM address. Accepts all-lowercase, all-uppercase or correctly EIP-55-checksummed
/// input; always displays the checksummed form.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct EvmAddress(EvmRaw);

impl EvmAddress {
    pub fn parse(s: &str) -> Result<Self, AddressError> {
        let hex_part = s.strip_prefix("0x").ok_or(AddressError::EvmFormat)?;
        if hex_part.len() != 40 || !hex_part.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(AddressError::EvmFormat);
        }
        let has_lower = hex_part.bytes().any(|b| b.is_ascii_lowercase());
        let has_upper = hex_part.bytes().any(|b| b.is_ascii_uppercase());
        if has_lower && has_upper {
            EvmRaw::parse_checksummed(s, None)
                .map(Self)
                .map_err(|_| AddressError::EvmChecksum)
        } else {
            s.parse::<EvmRaw>()
                .map(Self)
                .map_err(|_| AddressError::EvmFormat)
        }
    }

    pub fn from_raw(a: EvmRaw) -> Self {
        Self(a)
    }

    pub fn raw(&self) -> EvmRaw {
        self.0
    }

    /// The EIP-55 checksummed form.
    pub fn checksummed(&self) -> String {
        self.0.to_checksum(None)
    }

    /// The lowercase form used in ids and keys.
    pub fn lowercase(&self) -> String {
        format!("{:#x}", self.0)
    }
}

impl fmt::Display for EvmAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.checksummed())
    }
}

impl fmt::Debug for EvmAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EvmAddress({})", self.checksummed())
    }
}

/// A Solana public key: base58 text of exactly 32 bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SolanaAddress([u8; 32]);

impl SolanaAddress {
    pub fn parse(s: &str) -> Result<Self, AddressError> {
        let mut out = [0u8; 32];
        match bs58::decode(s).onto(&mut out) {
            Ok(32) => Ok(Self(out)),
            _ => Err(AddressError::SolanaFormat),
        }
    }

    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for SolanaAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&bs58::encode(self.0).into_string())
    }
}

impl fmt::Debug for SolanaAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SolanaAddress({self})")
    }
}

/// An address on some chain family.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Address {
    Evm(EvmAddress),
    Solana(SolanaAddress),
}

impl Address {
    pub fn parse(family: ChainFamily, s: &str) -> Result<Self, AddressError> {
        match family {
            ChainFamily::Evm => EvmAddress::parse(s).map(Address::Evm),
            ChainFamily::Solana => SolanaAddress::parse(s).map(Address::Solana),
        }
    }

    /// Whether two texts name the same address on a chain of `family` (EVM: in any case);
    /// text that is no address of the family is the same as nothing.
    pub fn same(family: ChainFamily, a: &str, b: &str) -> bool {
        match (Address::parse(family, a), Address::parse(family, b)) {
            (Ok(x), Ok(y)) => x == y,
            _ => false,
        }
    }

    /// The canonical key form: lowercase hex for EVM (case carries no meaning there),
    /// base58 as is for Solana (where case does).
    pub fn key(&self) -> String {
        match self {
            Address::Evm(a) => a.lowercase(),
            Address::Solana(a) => a.to_string(),
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Evm(a) => a.fmt(f),
            Address::Solana(a) => a.fmt(f),
        }
    }
}

/// A transaction hash (EVM) or signature (Solana).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum TxHash {
    Evm(B256),
    Solana([u8; 64]),
}

impl TxHash {
    pub fn parse(family: ChainFamily, s: &str) -> Result<Self, AddressError> {
        match family {
            ChainFamily::Evm => {
                let h = s.strip_prefix("0x").ok_or(AddressError::EvmTxHash)?;
                if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(AddressError::EvmTxHash);
                }
                s.parse::<B256>()
                    .map(TxHash::Evm)
                    .map_err(|_| AddressError::EvmTxHash)
            }
            ChainFamily::Solana => {
                let mut out = [0u8; 64];
                match bs58::decode(s).onto(&mut out) {
                    Ok(64) => Ok(TxHash::Solana(out)),
                    _ => Err(AddressError::SolanaTxHash),
                }
            }
        }
    }
}

impl fmt::Display for TxHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TxHash::Evm(h) => write!(f, "{h:#x}"),
            TxHash::Solana(s) => f.write_str(&bs58::encode(s).into_string()),
        }
    }
}

macro_rules! string_serde {
    ($t:ty, $parse:expr) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                $parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}
string_serde!(EvmAddress, EvmAddress::parse);
string_serde!(SolanaAddress, SolanaAddress::parse);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids() {
        assert_eq!(ChainId::new(8453).unwrap().get(), 8453);
        assert_eq!(
            ChainId::parse("30000000000001").unwrap().get(),
            30000000000001
        );
        for bad in ["0", "", "-1", "1.5", "0x1", "9007199254740992"] {
            assert!(ChainId::parse(bad).is_err(), "{bad}");
        }
        let c: ChainId = serde_json::from_str("\"1\"").unwrap();
        assert_eq!(c, serde_json::from_str::<ChainId>("1").unwrap());
        assert!(serde_json::from_str::<ChainId>("0").is_err());
    }

    #[test]
    fn eip55_vectors() {
        // The test vectors published with EIP-55.
        for good in [
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
            "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
            "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
        ] {
            let a = EvmAddress::parse(good).unwrap();
            assert_eq!(a.checksummed(), good);
            assert_eq!(EvmAddress::parse(&good.to_lowercase()).unwrap(), a);
            assert_eq!(
                EvmAddress::parse(&format!("0x{}", good[2..].to_uppercase())).unwrap(),
                a
            );
        }
        assert_eq!(
            EvmAddress::parse("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD"),
            Err(AddressError::EvmChecksum)
        );
        for bad in [
            "5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            "0x1234",
            "0xzz",
            "",
        ] {
            assert_eq!(
                EvmAddress::parse(bad),
                Err(AddressError::EvmFormat),
                "{bad}"
            );
        }
    }

    #[test]
    fn solana_addresses() {
        let usdc = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v";
        let a = SolanaAddress::parse(usdc).unwrap();
        assert_eq!(a.to_string(), usdc);
        assert_eq!(
            SolanaAddress::parse("11111111111111111111111111111111")
                .unwrap()
                .bytes(),
            &[0u8; 32]
        );
        let short = bs58::encode([7u8; 31]).into_string();
        let long = bs58::encode([7u8; 33]).into_string();
        for bad in ["", "0OIl", "abc", short.as_str(), long.as_str()] {
            assert_eq!(
                SolanaAddress::parse(bad),
                Err(AddressError::SolanaFormat),
                "{bad}"
            );
        }
        assert!(Address::parse(ChainFamily::Evm, usdc).is_err());
    }

    #[test]
    fn tx_hashes() {
        let h = "0x88df016429689c079f3b2f6ad39fa052532c56795b733da78a91ebe6a713944b";
        let t = TxHash::parse(ChainFamily::Evm, &h.to_uppercase().replace("0X", "0x")).unwrap();
        assert_eq!(t.to_string(), h);
        assert!(TxHash::parse(ChainFamily::Evm, &h[..65]).is_err());
        assert!(TxHash::parse(ChainFamily::Evm, &h[2..]).is_err());
        let sig = bs58::encode([9u8; 64]).into_string();
        let s = TxHash::parse(ChainFamily::Solana, &sig).unwrap();
        assert_eq!(s.to_string(), sig);
        assert!(TxHash::parse(ChainFamily::Solana, h).is_err());
        assert!(
            TxHash::parse(ChainFamily::Solana, &bs58::encode([9u8; 32]).into_string()).is_err()
        );
    }
}
