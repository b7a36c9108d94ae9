//! Solana balances through its JSON-RPC: `getBalance` for SOL, `getTokenAccountsByOwner`
//! (jsonParsed) per mint for SPL tokens, summed over the owner's accounts.

use super::{BalanceReader, ChainError, ChainTx, Inclusion, Served, Transfer, TxReader};
use crate::model::{RawAmount, SolanaAddress, TxHash};
use crate::registry::Currency;
use async_trait::async_trait;
use serde_json::{Value, json};
use std::collections::HashMap;

pub struct SolanaChain {
    http: reqwest::Client,
    url: String,
    /// The cluster the node must serve (its `getGenesisHash`): a devnet URL set for mainnet
    /// would otherwise have devnet SOL, free from a faucet, taken for mainnet SOL.
    served: Served<String>,
}

impl SolanaChain {
    pub fn new(url: &str) -> Self {
        Self {
            http: crate::net::provider_client(super::RPC_TIMEOUT),
            url: url.to_owned(),
            served: Served::unchecked("genesis"),
        }
    }

    /// A reader of the node at `url` that answers only once the node says its cluster's
    /// genesis hash is `genesis_hash` (asked once, at its first read; a failed ask is asked
    /// again).
    pub fn for_cluster(url: &str, genesis_hash: &str) -> Self {
        Self {
            served: Served::expecting("genesis", genesis_hash.to_owned()),
            ..Self::new(url)
        }
    }

    /// Fails every read while the node serves another cluster than the one expected.
    async fn ready(&self) -> Result<(), ChainError> {
        self.served
            .check(|| async {
                let served = self.post("getGenesisHash", json!([])).await?;
                served
                    .as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| malformed("getGenesisHash"))
            })
            .await
    }

    async fn call(&self, method: &str, params: Value) -> Result<Value, ChainError> {
        self.ready().await?;
        self.post(method, params).await
    }

    async fn post(&self, method: &str, params: Value) -> Result<Value, ChainError> {
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

/// A token account's owner, mint and raw balance, before or after a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Holding {
    owner: String,
    mint: String,
    amount: RawAmount,
}

/// The token accounts of a transaction's balances (`/meta/preTokenBalances` or
/// `/meta/postTokenBalances`), by address.
fn holdings(r: &Value, list: &str, keys: &[String]) -> HashMap<String, Holding> {
    let mut out = HashMap::new();
    for b in r
        .pointer(list)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let (Some(i), Some(owner), Some(mint), Some(amount)) = (
            b.get("accountIndex").and_then(Value::as_u64),
            b.get("owner").and_then(Value::as_str),
            b.get("mint").and_then(Value::as_str),
            b.pointer("/uiTokenAmount/amount")
                .and_then(Value::as_str)
                .and_then(|a| RawAmount::parse(a).ok()),
        ) else {
            continue;
        };
        if let Some(account) = keys.get(i as usize) {
            out.insert(
                account.clone(),
                Holding {
                    owner: owner.to_owned(),
                    mint: mint.to_owned(),
                    amount,
                },
            );
        }
    }
    out
}

/// The token accounts a transfer into can be credited to their owner: every account of the
/// balances, as it is after the transaction, except one whose owner or mint the
/// transaction changed. The SPL Token program lets an account's owner hand it to another
/// (`setAuthority`), and an emptied account can be closed and opened again: a transfer into
/// an account later handed to a deposit address paid the one who held it then, not the
/// deposit address.
fn creditable(
    before: &HashMap<String, Holding>,
    after: &HashMap<String, Holding>,
) -> HashMap<String, Holding> {
    after
        .iter()
        .filter(|(account, h)| {
            before
                .get(*account)
                .is_none_or(|b| (&b.owner, &b.mint) == (&h.owner, &h.mint))
        })
        .map(|(a, h)| (a.clone(), h.clone()))
        .collect()
}

/// Keeps the token transfers to each owner (in each mint) only while the owner's accounts
/// (the [`creditable`] ones, `kept`) gained at least their sum in the transaction: an
/// attacker's transfers into an account and back out of it again, however the instructions
/// read, leave its owner with nothing, and count nothing.
fn backed_by_balances(
    transfers: Vec<Transfer>,
    before: &HashMap<String, Holding>,
    kept: &HashMap<String, Holding>,
) -> Vec<Transfer> {
    // What each (owner, mint) holds after and held before, over the accounts it kept.
    let mut totals: HashMap<(&str, &str), (RawAmount, RawAmount)> = HashMap::new();
    let add = |to: &mut RawAmount, v: RawAmount| *to = to.checked_add(v).unwrap_or(*to);
    for (account, h) in kept {
        let e = totals
            .entry((h.owner.as_str(), h.mint.as_str()))
            .or_default();
        add(&mut e.1, h.amount);
        if let Some(b) = before.get(account) {
            add(&mut e.0, b.amount);
        }
    }
    let mut sent: HashMap<(String, String), Option<RawAmount>> = HashMap::new();
    for t in &transfers {
        if let Some(mint) = &t.token {
            let e = sent
                .entry((t.to.clone(), mint.clone()))
                .or_insert(Some(RawAmount::ZERO));
            *e = e.and_then(|sum| sum.checked_add(t.amount));
        }
    }
    transfers
        .into_iter()
        .filter(|t| {
            let Some(mint) = &t.token else { return true };
            let gained = totals
                .get(&(t.to.as_str(), mint.as_str()))
                .filter(|(pre, post)| post >= pre)
                .map(|(pre, post)| post.saturating_sub(*pre));
            match (gained, sent[&(t.to.clone(), mint.clone())]) {
                (Some(gained), Some(sum)) => sum <= gained,
                _ => false,
            }
        })
        .collect()
}

/// The transfers of one parsed instruction (system `transfer`, spl-token `transfer` or
/// `transferChecked`), with token accounts resolved to their owners and mints (see
/// [`creditable`]: a transfer into an account whose owner or mint changed is none).
fn instruction_transfer(
    ix: &Value,
    index: u64,
    owners: &HashMap<String, Holding>,
    before: &HashMap<String, Holding>,
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
            let Holding {
                owner: to_owner,
                mint,
                ..
            } = owners.get(&text("destination")?)?.clone();
            // The sender as it was when it sent (before a change of owner), else the
            // instruction's signer.
            let source = text("source")?;
            let from = before
                .get(&source)
                .or_else(|| owners.get(&source))
                .map(|h| h.owner.clone())
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
        // Token accounts, as they were before the transaction and after it.
        let before = holdings(&r, "/meta/preTokenBalances", &keys);
        let after = holdings(&r, "/meta/postTokenBalances", &keys);
        let owners = creditable(&before, &after);
        let mut transfers = Vec::new();
        let outer = r
            .pointer("/transaction/message/instructions")
            .and_then(Value::as_array)
            .ok_or_else(|| malformed("instructions"))?;
        for (i, ix) in outer.iter().enumerate() {
            transfers.extend(instruction_transfer(ix, i as u64, &owners, &before));
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
                    &before,
                ));
            }
        }
        let transfers = backed_by_balances(transfers, &before, &owners);
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
            sender_nonce: None,
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
