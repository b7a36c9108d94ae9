//! Non-hardened BIP32 derivation from an extended public key: order `i` of a wallet gets
//! the address of `xpub/0/i` (the external chain, as wallets number receiving addresses).

use crate::model::EvmAddress;
use bip32::{ChildNumber, Prefix, XPub};
use std::str::FromStr;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XpubError {
    #[error("not a valid extended public key (xpub…)")]
    Invalid,
    #[error("index {0} is a hardened index; an xpub derives only indexes below 2^31")]
    Hardened(u32),
    #[error("derivation failed at this index (vanishingly rare); use the next one")]
    Derivation,
}

/// Parses an `xpub…` string (checksum, version and key checked).
pub fn parse_xpub(text: &str) -> Result<XPub, XpubError> {
    XPub::from_str(text.trim()).map_err(|_| XpubError::Invalid)
}

/// The extended public key at the given non-hardened path below `xpub`.
pub fn derive_xpub(xpub: &XPub, path: &[u32]) -> Result<XPub, XpubError> {
    let mut key = xpub.clone();
    for &i in path {
        let child = ChildNumber::new(i, false).map_err(|_| XpubError::Hardened(i))?;
        key = key.derive_child(child).map_err(|_| XpubError::Derivation)?;
    }
    Ok(key)
}

/// The EVM address of order `index`: `xpub/0/index`, keccak-256 of the uncompressed key.
pub fn derive_evm_address(xpub: &XPub, index: u32) -> Result<EvmAddress, XpubError> {
    let child = derive_xpub(xpub, &[0, index])?;
    let point = child.public_key().to_sec1_point(false);
    let bytes = point.as_bytes();
    let raw = alloy_primitives::Address::from_raw_public_key(&bytes[1..]);
    Ok(EvmAddress::from_raw(raw))
}

/// The canonical `xpub…` text of a key.
pub fn xpub_text(xpub: &XPub) -> String {
    xpub.to_string(Prefix::XPUB)
}

#[cfg(test)]
mod tests {
    use super::*;

    // BIP32 test vector 2.
    const V2_M: &str = "xpub661MyMwAqRbcFW31YEwpkMuc5THy2PSt5bDMsktWQcFF8syAmRUapSCGu8ED9W6oDMSgv6Zz8idoc4a6mr8BDzTJY47LJhkJ8UB7WEGuduB";
    const V2_M_0: &str = "xpub69H7F5d8KSRgmmdJg2KhpAK8SR3DjMwAdkxj3ZuxV27CprR9LgpeyGmXUbC6wb7ERfvrnKZjXoUmmDznezpbZb7ap6r1D3tgFxHmwMkQTPH";
    const V2_M_0_H: &str = "xpub6ASAVgeehLbnwdqV6UKMHVzgqAG8Gr6riv3Fxxpj8ksbH9ebxaEyBLZ85ySDhKiLDBrQSARLq1uNRts8RuJiHjaDMBU4Zn9h8LZNnBC5y4a";
    const V2_M_0_H_1: &str = "xpub6DF8uhdarytz3FWdA8TvFSvvAh8dP3283MY7p2V4SeE2wyWmG5mg5EwVvmdMVCQcoNJxGoWaU9DCWh89LojfZ537wTfunKau47EL2dhHKon";

    #[test]
    fn bip32_test_vectors() {
        let m = parse_xpub(V2_M).unwrap();
        assert_eq!(xpub_text(&derive_xpub(&m, &[0]).unwrap()), V2_M_0);
        // The public key of m/0 as the vector lists it.
        let m0 = derive_xpub(&m, &[0]).unwrap();
        assert_eq!(
            hex::encode(m0.public_key().to_sec1_point(true).as_bytes()),
            "02fc9e5af0ac8d9b3cecfe2a888e2117ba3d089d8585886c9c826b6b22a98d12ea"
        );
        let h = parse_xpub(V2_M_0_H).unwrap();
        assert_eq!(xpub_text(&derive_xpub(&h, &[1]).unwrap()), V2_M_0_H_1);
        assert_eq!(xpub_text(&derive_xpub(&m, &[]).unwrap()), V2_M);
    }

    #[test]
    fn addresses_are_distinct_per_index_and_deterministic() {
        let m = parse_xpub(V2_M).unwrap();
        let a0 = derive_evm_address(&m, 0).unwrap();
        let a1 = derive_evm_address(&m, 1).unwrap();
        assert_ne!(a0, a1);
        assert_eq!(a0, derive_evm_address(&m, 0).unwrap());
        // The address is the last 20 bytes of keccak-256 of the uncompressed m/0/0 key.
        let k = derive_xpub(&m, &[0, 0]).unwrap();
        let point = k.public_key().to_sec1_point(false);
        let hash = alloy_primitives::keccak256(&point.as_bytes()[1..]);
        assert_eq!(a0.raw().as_slice(), &hash[12..]);
        assert_eq!(
            derive_evm_address(&m, 1 << 31),
            Err(XpubError::Hardened(1 << 31))
        );
    }

    #[test]
    fn bad_xpubs_are_refused() {
        let mut broken = V2_M.to_owned();
        broken.replace_range(20..21, "z");
        for bad in [
            "",
            "xpub",
            "tpub123",
            broken.as_str(),
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
        ] {
            assert_eq!(parse_xpub(bad).unwrap_err(), XpubError::Invalid, "{bad}");
        }
    }
}
