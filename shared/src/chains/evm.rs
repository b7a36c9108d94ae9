//! EVM balances through alloy.

use super::{BalanceReader, ChainError};
use crate::model::{EvmAddress, RawAmount};
use crate::registry::Currency;
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::sol;
use async_trait::async_trait;

sol! {
    #[sol(rpc)]
    interface IERC20 {
        function balanceOf(address owner) external view returns (uint256);
    }
}

pub struct EvmChain {
    provider: DynProvider,
}

impl EvmChain {
    pub fn new(url: &str) -> Result<Self, ChainError> {
        let url = url
            .parse()
            .map_err(|_| ChainError::Rpc(format!("invalid RPC URL {url}")))?;
        Ok(Self {
            provider: ProviderBuilder::new().connect_http(url).erased(),
        })
    }
}

fn rpc(e: impl std::fmt::Display) -> ChainError {
    ChainError::Rpc(e.to_string())
}

/// Gas of a plain transfer, and a generous figure for an ERC-20 `transfer`.
const NATIVE_TRANSFER_GAS: u64 = 21_000;
const TOKEN_TRANSFER_GAS: u64 = 65_000;

#[async_trait]
impl BalanceReader for EvmChain {
    async fn transfer_fee(&self, currency: &Currency) -> Result<RawAmount, ChainError> {
        let gas_price = self.provider.get_gas_price().await.map_err(rpc)?;
        let gas = if currency.address.is_none() {
            NATIVE_TRANSFER_GAS
        } else {
            TOKEN_TRANSFER_GAS
        };
        RawAmount::from_u128(gas_price)
            .checked_mul_u64(gas)
            .ok_or_else(|| ChainError::Malformed("gas price overflow".into()))
    }

    async fn balances(
        &self,
        owner: &str,
        currencies: &[Currency],
    ) -> Result<Vec<RawAmount>, ChainError> {
        let owner = EvmAddress::parse(owner)
            .map_err(|_| ChainError::BadAddress(owner.to_owned()))?
            .raw();
        let mut out = Vec::with_capacity(currencies.len());
        for c in currencies {
            let value = match &c.address {
                None => self.provider.get_balance(owner).await.map_err(rpc)?,
                Some(token) => {
                    let token = EvmAddress::parse(token)
                        .map_err(|_| ChainError::Malformed(format!("token {token}")))?
                        .raw();
                    match IERC20::new(token, &self.provider)
                        .balanceOf(owner)
                        .call()
                        .await
                    {
                        Ok(v) => v,
                        // No contract at that address on this chain (a fresh local chain):
                        // nobody holds any of it.
                        Err(e)
                            if self
                                .provider
                                .get_code_at(token)
                                .await
                                .map_err(rpc)?
                                .is_empty() =>
                        {
                            tracing::debug!(token = %token, error = %e, "no token contract; balance 0");
                            alloy::primitives::U256::ZERO
                        }
                        Err(e) => return Err(rpc(e)),
                    }
                }
            };
            out.push(RawAmount::new(value));
        }
        Ok(out)
    }
}
