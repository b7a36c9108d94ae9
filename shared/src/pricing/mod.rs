//! The price port: USD per unit of a currency, as an exact decimal (no floating point).
//! Adapters: [`coingecko`] (live prices, cached briefly) and [`fixed`] (a table from config,
//! for `make dev` and tests).

pub mod coingecko;
pub mod fixed;

use crate::registry::Currency;
use async_trait::async_trait;
use rust_decimal::Decimal;
use std::collections::HashMap;

/// Why a price could not be had. Every kind is a 502 `PRICE_UNAVAILABLE` to the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PriceError {
    #[error("the price provider is rate limiting us")]
    RateLimited,
    #[error("the price provider answered {0}")]
    Upstream(u16),
    #[error("the price provider did not answer in time")]
    Timeout,
    #[error("the price provider is unreachable: {0}")]
    Unreachable(String),
    #[error("the price provider's answer is malformed: {0}")]
    Malformed(String),
    #[error("no price for {0}")]
    Missing(String),
    #[error("the price provider's price of {what} is {age_secs} s old (at most {max} s is taken)", max = coingecko::MAX_PRICE_AGE_SECS)]
    Stale { what: String, age_secs: u64 },
}

/// Each currency's USD price, or why it has none ([`PriceError::Missing`], `Stale`, a
/// malformed entry), keyed by currency id.
pub type EachPrice = HashMap<String, Result<Decimal, PriceError>>;

#[async_trait]
pub trait PriceSource: Send + Sync {
    /// The USD price of each of the given currencies, or why it has none, from one ask of
    /// the source: fails as a whole only when the source does (unreachable, rate limited, an
    /// answer that is not one).
    async fn usd_price_each(&self, currencies: &[Currency]) -> Result<EachPrice, PriceError>;

    /// USD prices of the given currencies, keyed by currency id. Fails if any has none (the
    /// first in `currencies`' order).
    async fn usd_prices(
        &self,
        currencies: &[Currency],
    ) -> Result<HashMap<String, Decimal>, PriceError> {
        let each = self.usd_price_each(currencies).await?;
        currencies
            .iter()
            .map(|c| match each.get(&c.id) {
                Some(price) => price.clone().map(|p| (c.id.clone(), p)),
                None => Err(PriceError::Missing(c.id.clone())),
            })
            .collect()
    }

    /// The USD prices the source has of the given currencies: one it has no price for, only
    /// a stale one, or one that is no price (zero, negative, not a number), is left out.
    /// Fails only when the source itself does (unreachable, rate limited, an answer that is
    /// not a price list). For answers that list options, where one currency without a price
    /// must not take the others with it.
    async fn usd_prices_known(
        &self,
        currencies: &[Currency],
    ) -> Result<HashMap<String, Decimal>, PriceError> {
        let mut known = HashMap::new();
        for (id, price) in self.usd_price_each(currencies).await? {
            match price {
                Ok(p) => {
                    known.insert(id, p);
                }
                Err(PriceError::Missing(_) | PriceError::Stale { .. }) => {}
                Err(e @ PriceError::Malformed(_)) => {
                    tracing::warn!(currency = %id, error = %e, "a price left out of the quote");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(known)
    }

    async fn usd_price(&self, currency: &Currency) -> Result<Decimal, PriceError> {
        let mut all = self.usd_prices(std::slice::from_ref(currency)).await?;
        all.remove(&currency.id)
            .ok_or_else(|| PriceError::Missing(currency.id.clone()))
    }
}

/// The registry's price id of a currency (`usd-coin`), if it has one.
pub(crate) fn price_id(currency: &Currency) -> Option<String> {
    let chain = crate::registry::registry().chain(currency.chain_id).ok()?;
    chain.token(currency)?.price_id.clone()
}
