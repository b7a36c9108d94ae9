//! Merchant wallets: one per organization, mode and chain. Their currencies are the
//! organization's settlement currencies (seed 000).

use super::{ChainId, OrgId, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MerchantWallet {
    pub organization_id: OrgId,
    pub livemode: bool,
    pub chain_id: ChainId,
    /// One receiving address for every order, or…
    #[serde(default)]
    pub address: Option<String>,
    /// …an xpub from which order `i` gets `xpub/0/i` (EVM chains).
    #[serde(default)]
    pub xpub: Option<String>,
    /// Currency ids accepted here (`8453:native`, `8453:0x…`).
    pub currencies: Vec<String>,
    /// How many addresses were derived through this wallet record (display only: indexes
    /// come from a counter per xpub, see `WalletStore::next_xpub_index`).
    #[serde(default)]
    pub next_index: u32,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub version: u64,
}

impl MerchantWallet {
    pub fn api_view(&self) -> Value {
        json!({
            "object": "merchant_wallet",
            "chain_id": self.chain_id,
            "livemode": self.livemode,
            "address": self.address,
            "xpub": self.xpub,
            "currencies": self.currencies,
            "addresses_derived": self.xpub.as_ref().map(|_| self.next_index),
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        })
    }
}
