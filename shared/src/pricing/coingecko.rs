//! CoinGecko adapter: `/simple/price` for currencies with a price id, `/simple/token_price/
//! {platform}` by contract for the others. The API key (from Secrets Manager) goes in
//! `x-cg-pro-api-key` (pro) or `x-cg-demo-api-key` (demo). Prices are read from the JSON
//! number text exactly, never through a float; answers are cached briefly.

use super::{EachPrice, PriceError, PriceSource, price_id};
use crate::model::Timestamp;
use crate::registry::{Currency, registry};
use async_trait::async_trait;
use rust_decimal::Decimal;
use serde_json::value::RawValue;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const PRO_BASE_URL: &str = "https://pro-api.coingecko.com/api/v3";
/// The oldest price taken, by the `last_updated_at` CoinGecko gives with it when asked
/// (`include_last_updated_at`; it updates a listed price every 30–60 s). A price it has not
/// updated for longer is a feed that stopped, not a market: an order priced from it would ask
/// the payer for what the currency was worth then.
pub const MAX_PRICE_AGE_SECS: u64 = 15 * 60;
pub const DEMO_BASE_URL: &str = "https://api.coingecko.com/api/v3";

/// CoinGecko's asset platform ids for our chain slugs.
fn platform(slug: &str) -> Option<&'static str> {
    Some(match slug {
        "ethereum" => "ethereum",
        "base" => "base",
        "optimism" => "optimistic-ethereum",
        "arbitrum" => "arbitrum-one",
        "polygon" => "polygon-pos",
        "bsc" => "binance-smart-chain",
        "avalanche" => "avalanche",
        "solana" => "solana",
        _ => return None,
    })
}

pub struct CoinGecko {
    http: reqwest::Client,
    base_url: String,
    key: Option<(&'static str, String)>,
    ttl: Duration,
    cache: Mutex<HashMap<String, (Decimal, Instant)>>,
}

impl CoinGecko {
    /// `pro` picks the header the key goes in; `timeout` bounds every request.
    pub fn new(
        base_url: &str,
        api_key: Option<String>,
        pro: bool,
        timeout: Duration,
        ttl: Duration,
    ) -> Self {
        let header = if pro {
            "x-cg-pro-api-key"
        } else {
            "x-cg-demo-api-key"
        };
        Self {
            http: crate::net::provider_client(timeout),
            base_url: base_url.trim_end_matches('/').to_owned(),
            key: api_key.map(|k| (header, k)),
            ttl,
            cache: Mutex::new(HashMap::new()),
        }
    }

    async fn get(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<HashMap<String, HashMap<String, Box<RawValue>>>, PriceError> {
        let mut req = self
            .http
            .get(format!("{}{path}", self.base_url))
            .query(query);
        if let Some((header, key)) = &self.key {
            req = req.header(*header, key);
        }
        let resp = req.send().await.map_err(|e| {
            if e.is_timeout() {
                PriceError::Timeout
            } else {
                PriceError::Unreachable(crate::net::error_text(e))
            }
        })?;
        match resp.status().as_u16() {
            200 => {}
            429 => return Err(PriceError::RateLimited),
            s => return Err(PriceError::Upstream(s)),
        }
        let body = resp.bytes().await.map_err(|e| {
            if e.is_timeout() {
                PriceError::Timeout
            } else {
                PriceError::Unreachable(crate::net::error_text(e))
            }
        })?;
        serde_json::from_slice(&body).map_err(|e| PriceError::Malformed(e.to_string()))
    }

    fn cached(&self, key: &str) -> Option<Decimal> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .get(key)
            .filter(|(_, at)| at.elapsed() < self.ttl)
            .map(|(p, _)| *p)
    }

    /// `c`'s price (or why it has none) in `out`, and in the cache when there is one.
    fn keep(&self, c: &Currency, price: &Result<Decimal, PriceError>, out: &mut EachPrice) {
        if let Ok(p) = price {
            let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            cache.insert(c.id.clone(), (*p, Instant::now()));
        }
        out.insert(c.id.clone(), price.clone());
    }
}

/// A price from the raw JSON number text (`3000.12`, `1.2e-5`), exactly (a price a decimal
/// holds only rounded is refused). Zero is no price: nothing can be priced from it (a fiat
/// order would ask for no payment, or fail its conversion).
fn decimal(raw: &RawValue) -> Result<Decimal, PriceError> {
    let text = raw.get();
    crate::model::exact_decimal(text)
        .filter(|p| p.is_sign_positive() && !p.is_zero())
        .ok_or_else(|| PriceError::Malformed(format!("price {text} is not a positive number")))
}

/// The USD price in one entry of an answer, if CoinGecko updated it within
/// [`MAX_PRICE_AGE_SECS`] of `now` (unix seconds). An entry without `last_updated_at` (or
/// with `null`) is taken as it is: there is nothing to tell its age by.
fn usd(
    entry: Option<&HashMap<String, Box<RawValue>>>,
    what: &str,
    now: i64,
) -> Result<Decimal, PriceError> {
    let entry = entry.ok_or_else(|| PriceError::Missing(what.to_owned()))?;
    let raw = entry
        .get("usd")
        .ok_or_else(|| PriceError::Missing(what.to_owned()))?;
    if let Some(at) = entry.get("last_updated_at").filter(|at| at.get() != "null") {
        let at: i64 = serde_json::from_str(at.get()).map_err(|_| {
            PriceError::Malformed(format!("last_updated_at {} is not a time", at.get()))
        })?;
        // A time ahead of ours (clocks differ) is no age at all.
        let age_secs = u64::try_from(now.saturating_sub(at)).unwrap_or(0);
        if age_secs > MAX_PRICE_AGE_SECS {
            return Err(PriceError::Stale {
                what: what.to_owned(),
                age_secs,
            });
        }
    }
    decimal(raw)
}

#[async_trait]
impl PriceSource for CoinGecko {
    async fn usd_price_each(&self, currencies: &[Currency]) -> Result<EachPrice, PriceError> {
        let now = Timestamp::now().unix();
        let mut out = EachPrice::new();
        let mut by_id: HashMap<String, Vec<&Currency>> = HashMap::new();
        let mut by_contract: HashMap<&'static str, Vec<&Currency>> = HashMap::new();
        for c in currencies {
            if let Some(p) = self.cached(&c.id) {
                out.insert(c.id.clone(), Ok(p));
            } else if let Some(id) = price_id(c) {
                by_id.entry(id).or_default().push(c);
            } else {
                let platform = registry()
                    .chain(c.chain_id)
                    .ok()
                    .and_then(|chain| platform(&chain.slug))
                    .filter(|_| c.address.is_some());
                match platform {
                    Some(p) => by_contract.entry(p).or_default().push(c),
                    None => {
                        out.insert(c.id.clone(), Err(PriceError::Missing(c.id.clone())));
                    }
                }
            }
        }
        if !by_id.is_empty() {
            let mut ids: Vec<&str> = by_id.keys().map(String::as_str).collect();
            ids.sort_unstable();
            let answer = self
                .get(
                    "/simple/price",
                    &[
                        ("ids", &ids.join(",")),
                        ("vs_currencies", "usd"),
                        ("include_last_updated_at", "true"),
                    ],
                )
                .await?;
            for (id, cs) in &by_id {
                let price = usd(answer.get(id), id, now);
                for c in cs {
                    self.keep(c, &price, &mut out);
                }
            }
        }
        for (platform, cs) in by_contract {
            let addrs: Vec<String> = cs.iter().filter_map(|c| c.address.clone()).collect();
            let answer = self
                .get(
                    &format!("/simple/token_price/{platform}"),
                    &[
                        ("contract_addresses", &addrs.join(",")),
                        ("vs_currencies", "usd"),
                        ("include_last_updated_at", "true"),
                    ],
                )
                .await?;
            // Keys come back lowercased for EVM contracts.
            let answer: HashMap<String, _> = answer
                .into_iter()
                .map(|(k, v)| (k.to_lowercase(), v))
                .collect();
            for c in cs {
                let addr = c.address.clone().unwrap_or_default();
                let price = usd(answer.get(&addr.to_lowercase()), &c.id, now);
                self.keep(c, &price, &mut out);
            }
        }
        Ok(out)
    }
}
