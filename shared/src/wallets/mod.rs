//! Merchant wallets: where payments settle. A wallet is one receiving address, or an xpub
//! from which each order gets its own address (non-custodial: we never hold a private key).

mod derive;

pub use derive::{XpubError, derive_evm_address, derive_xpub, parse_xpub, xpub_text};
