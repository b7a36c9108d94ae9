//! Solana balances through its JSON-RPC: `getBalance` for SOL, `getTokenAccountsByOwner`
//! (jsonParsed) per mint for SPL tokens, summed over the owner's accounts.

use super::{BalanceReader, ChainError};
use crate::model::{RawAmount, SolanaAddress};
use crate::registry::Currency;
use async_trait::async_trait;
use serde_json::{Value, json};
use std::time::Duration;

pub struct SolanaChain {
    http: reqwest::Client,
    url: String,
}

impl SolanaChain {
    pub fn new(url: &str) -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("a plain reqwest client builds"),
            url: url.to_owned(),
        }
    }

    async fn call(&self, method: &str, params: Value) -> Result<Value, ChainError> {
        let resp = self
            .http
            .post(&self.url)
            .json(&json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))
            .send()
            .await
            .map_err(|e| ChainError::Rpc(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(ChainError::Rpc(format!(
                "{method} answered {}",
                resp.status()
            )));
        }
        let body: Value = resp
            .json()
            .await
            .map_err(|e| ChainError::Malformed(e.to_string()))?;
        if let Some(err) = body.get("error") {
            return Err(ChainError::Rpc(format!("{method}: {err}")));
        }
        body.get("result")
            .cloned()
            .ok_or_else(|| ChainError::Malformed(format!("{method} has no result")))
    }
}

/// Solana's base fee: 5000 lamports per signature; a transfer has one.
const SIGNATURE_FEE_LAMPORTS: u128 = 5_000;

#[async_trait]
impl BalanceReader for SolanaChain {
    async fn transfer_fee(&self, _currency: &Currency) -> Result<RawAmount, ChainError> {
        Ok(RawAmount::from_u128(SIGNATURE_FEE_LAMPORTS))
    }

    async fn balances(
        &self,
        owner: &str,
        currencies: &[Currency],
    ) -> Result<Vec<RawAmount>, ChainError> {
        SolanaAddress::parse(owner).map_err(|_| ChainError::BadAddress(owner.to_owned()))?;
        let mut out = Vec::with_capacity(currencies.len());
        for c in currencies {
            let raw = match &c.address {
                None => {
                    let r = self
                        .call("getBalance", json!([owner, {"commitment": "confirmed"}]))
                        .await?;
                    let lamports = r
                        .get("value")
                        .and_then(Value::as_u64)
                        .ok_or_else(|| ChainError::Malformed("getBalance value".into()))?;
                    RawAmount::from_u128(lamports as u128)
                }
                Some(mint) => {
                    let r = self
                        .call(
                            "getTokenAccountsByOwner",
                            json!([owner, {"mint": mint}, {"encoding": "jsonParsed", "commitment": "confirmed"}]),
                        )
                        .await?;
                    let accounts = r
                        .get("value")
                        .and_then(Value::as_array)
                        .ok_or_else(|| ChainError::Malformed("token accounts".into()))?;
                    let mut total = RawAmount::ZERO;
                    for a in accounts {
                        let amount = a
                            .pointer("/account/data/parsed/info/tokenAmount/amount")
                            .and_then(Value::as_str)
                            .ok_or_else(|| ChainError::Malformed("tokenAmount.amount".into()))?;
                        let amount = RawAmount::parse(amount)
                            .map_err(|e| ChainError::Malformed(e.to_string()))?;
                        total = total
                            .checked_add(amount)
                            .ok_or_else(|| ChainError::Malformed("balance overflow".into()))?;
                    }
                    total
                }
            };
            out.push(raw);
        }
        Ok(out)
    }
}
