//! Prices from a fixed table keyed by price id (`ethereum=3000,usd-coin=1`): deterministic
//! quotes for `make dev` and tests.

use super::{EachPrice, PriceError, PriceSource, price_id};
use crate::registry::Currency;
use async_trait::async_trait;
use rust_decimal::Decimal;
use std::collections::HashMap;
use std::str::FromStr;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixedPrices(HashMap<String, Decimal>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("price table entry {0:?} is not `price_id=decimal`")]
pub struct BadPriceTable(pub String);

impl FixedPrices {
    /// Parses `id=price,id=price`; prices are positive decimals.
    pub fn parse(text: &str) -> Result<Self, BadPriceTable> {
        let mut map = HashMap::new();
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (id, price) = entry
                .split_once('=')
                .ok_or_else(|| BadPriceTable(entry.into()))?;
            let price = Decimal::from_str(price.trim())
                .ok()
                .filter(|p| p.is_sign_positive() && !p.is_zero())
                .ok_or_else(|| BadPriceTable(entry.into()))?;
            map.insert(id.trim().to_owned(), price);
        }
        Ok(Self(map))
    }

    /// The table `make dev` uses unless `PAYORDERS_PRICES` says otherwise.
    pub fn dev_default() -> Self {
        Self::parse(
            "ethereum=3000,usd-coin=1,tether=1,solana=150,binancecoin=600,avalanche-2=35,\
             polygon-ecosystem-token=0.5",
        )
        .expect("the default table parses")
    }
}

#[async_trait]
impl PriceSource for FixedPrices {
    async fn usd_price_each(&self, currencies: &[Currency]) -> Result<EachPrice, PriceError> {
        Ok(currencies
            .iter()
            .map(|c| {
                let price = price_id(c)
                    .and_then(|id| self.0.get(&id).copied())
                    .ok_or_else(|| PriceError::Missing(c.id.clone()));
                (c.id.clone(), price)
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::registry;

    #[tokio::test]
    async fn table_prices_by_price_id() {
        let t = FixedPrices::dev_default();
        let eth = registry().currency_by_id("8453:native").unwrap();
        let usdc = registry()
            .currency_by_id("1:0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48")
            .unwrap();
        assert_eq!(t.usd_price(&eth).await.unwrap(), Decimal::from(3000));
        assert_eq!(t.usd_price(&usdc).await.unwrap(), Decimal::ONE);
        let only_eth = FixedPrices::parse("ethereum=2500.125").unwrap();
        assert_eq!(
            only_eth.usd_price(&eth).await.unwrap(),
            Decimal::from_str("2500.125").unwrap()
        );
        assert_eq!(
            only_eth.usd_price(&usdc).await,
            Err(PriceError::Missing(usdc.id.clone()))
        );
        for bad in ["ethereum", "ethereum=abc", "ethereum=-1", "ethereum=0"] {
            assert!(FixedPrices::parse(bad).is_err(), "{bad}");
        }
    }
}
