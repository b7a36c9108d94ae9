//! Solana balances through its JSON-RPC: `getBalance` for SOL, `getTokenAccountsByOwner`
//! (jsonParsed) per mint for SPL tokens, summed over the owner's accounts.

use super::{BalanceReader, ChainError, ChainTx, Inclusion, Transfer, TxReader};
use crate::model::{RawAmount, SolanaAddress, TxHash};
use crate::registry::Currency;
use async_trait::async_trait;
use serde_json::{Value, json};

pub struct SolanaChain {
    http: reqwest::Client,
    url: String,
}

impl SolanaChain {
    pub fn new(url: &str) -> Self {
        Self {
            http: crate::net::provider_client(super::RPC_TIMEOUT),
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
            .map_err(|e| ChainError::Rpc(crate::net::error_text(e)))?;
        if !resp.status().is_success() {
            return Err(ChainError::Rpc(format!(
                "{method} answered {}",
                resp.status()
            )));
        }
        let body: Value = resp
            .json()
            .await
            .map_err(|e| ChainError::Malformed(crate::net::error_text(e)))?;
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

const COMMITMENT: &str = "confirmed";

fn malformed(what: &str) -> ChainError {
    ChainError::Malformed(what.to_owned())
}

/// The transfers of one parsed instruction (system `transfer`, spl-token `transfer` or
/// `transferChecked`), with token accounts resolved to their owners and mints.
fn instruction_transfer(
    ix: &Value,
    index: u64,
    owners: &std::collections::HashMap<String, (String, String)>,
) -> Option<Transfer> {
    let kind = ix.pointer("/parsed/type")?.as_str()?;
    let info = ix.pointer("/parsed/info")?;
    let text = |k: &str| info.get(k).and_then(Value::as_str).map(str::to_owned);
    match (ix.get("program")?.as_str()?, kind) {
        ("system", "transfer") => Some(Transfer {
            token: None,
            from: text("source")?,
            to: text("destination")?,
            amount: RawAmount::from_u128(info.get("lamports")?.as_u64()? as u128),
            position: Some(index),
        }),
        ("spl-token", "transfer" | "transferChecked") => {
            let amount = info
                .get("amount")
                .and_then(Value::as_str)
                .or_else(|| info.pointer("/tokenAmount/amount").and_then(Value::as_str))?;
            let (to_owner, mint) = owners.get(&text("destination")?)?.clone();
            let from = owners
                .get(&text("source")?)
                .map(|(o, _)| o.clone())
                .or_else(|| text("authority"))?;
            Some(Transfer {
                token: Some(text("mint").unwrap_or(mint)),
                from,
                to: to_owner,
                amount: RawAmount::parse(amount).ok()?,
                position: Some(index),
            })
        }
        _ => None,
    }
}

#[async_trait]
impl TxReader for SolanaChain {
    async fn transaction(&self, hash: &TxHash) -> Result<Option<ChainTx>, ChainError> {
        if !matches!(hash, TxHash::Solana(_)) {
            return Err(malformed("not a Solana transaction signature"));
        }
        let r = self
            .call(
                "getTransaction",
                json!([hash.to_string(), {"encoding": "jsonParsed", "maxSupportedTransactionVersion": 0, "commitment": COMMITMENT}]),
            )
            .await?;
        if r.is_null() {
            return Ok(None);
        }
        let keys: Vec<String> = r
            .pointer("/transaction/message/accountKeys")
            .and_then(Value::as_array)
            .ok_or_else(|| malformed("accountKeys"))?
            .iter()
            .filter_map(|k| k.get("pubkey").and_then(Value::as_str).map(str::to_owned))
            .collect();
        // Token account -> (owner, mint), from the balances before and after.
        let mut owners = std::collections::HashMap::new();
        for list in ["/meta/preTokenBalances", "/meta/postTokenBalances"] {
            for b in r
                .pointer(list)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let (Some(i), Some(owner), Some(mint)) = (
                    b.get("accountIndex").and_then(Value::as_u64),
                    b.get("owner").and_then(Value::as_str),
                    b.get("mint").and_then(Value::as_str),
                ) else {
                    continue;
                };
                if let Some(account) = keys.get(i as usize) {
                    owners.insert(account.clone(), (owner.to_owned(), mint.to_owned()));
                }
            }
        }
        let mut transfers = Vec::new();
        let outer = r
            .pointer("/transaction/message/instructions")
            .and_then(Value::as_array)
            .ok_or_else(|| malformed("instructions"))?;
        for (i, ix) in outer.iter().enumerate() {
            transfers.extend(instruction_transfer(ix, i as u64, &owners));
        }
        // Inner instructions (transfers made by programs) get indexes after the outer ones.
        for group in r
            .pointer("/meta/innerInstructions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let parent = group.get("index").and_then(Value::as_u64).unwrap_or(0);
            for (j, ix) in group
                .get("instructions")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                transfers.extend(instruction_transfer(
                    ix,
                    1_000 * (parent + 1) + j as u64,
                    &owners,
                ));
            }
        }
        let slot = r
            .get("slot")
            .and_then(Value::as_u64)
            .ok_or_else(|| malformed("slot"))?;
        let success = r.pointer("/meta/err").is_some_and(Value::is_null);
        // Without its time a transfer cannot be told apart from one older than the order.
        let timestamp = r
            .get("blockTime")
            .and_then(Value::as_u64)
            .ok_or_else(|| malformed("blockTime"))?;
        // A node that cannot show the block yet (behind, or another node behind a load
        // balancer) fails the read, to be retried: an inclusion recorded without its block's
        // hash would be taken for a reorg by the first confirmation check.
        let Some(block_hash) = self.block_hash(slot).await? else {
            return Err(ChainError::Rpc(format!(
                "the node cannot show block {slot} of the transaction yet"
            )));
        };
        Ok(Some(ChainTx {
            inclusion: Some(Inclusion {
                success,
                block_number: slot,
                block_hash,
                timestamp,
            }),
            transfers,
        }))
    }

    async fn head(&self) -> Result<u64, ChainError> {
        self.call("getSlot", json!([{"commitment": COMMITMENT}]))
            .await?
            .as_u64()
            .ok_or_else(|| malformed("getSlot"))
    }

    async fn block_hash(&self, slot: u64) -> Result<Option<String>, ChainError> {
        let r = self
            .call(
                "getBlock",
                json!([slot, {"transactionDetails": "none", "rewards": false, "commitment": COMMITMENT, "maxSupportedTransactionVersion": 0}]),
            )
            .await?;
        Ok(r.get("blockhash")
            .and_then(Value::as_str)
            .map(str::to_owned))
    }
}
