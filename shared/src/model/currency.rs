//! A resolved currency, as orders and payments carry it; the registry resolves them.

use super::ChainId;
use serde::{Deserialize, Serialize};

/// A resolved currency: what the API shows (seed 002's `asset` / `currency` object).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Currency {
    /// `<chain_id>:<address lowercased for EVM | mint as is for Solana | native>`.
    pub id: String,
    pub chain_id: ChainId,
    pub address: Option<String>,
    pub decimals: u8,
    pub symbol: String,
    pub name: String,
}
