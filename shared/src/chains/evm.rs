//! EVM balances through alloy.

use super::{
    BalanceReader, ChainError, ChainTx, Inclusion, Served, Sighting, Transfer, TxReader, Watch,
};
use crate::model::TxHash;
use crate::model::{EvmAddress, RawAmount, SenderNonce};
use crate::registry::Currency;
use alloy::primitives::{Address, B256, Bytes, U64, U256, b256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::sol;
use async_trait::async_trait;
use serde::Deserialize;

sol! {
    #[sol(rpc)]
    interface IERC20 {
        function balanceOf(address owner) external view returns (uint256);
    }
}

pub struct EvmChain {
    provider: DynProvider,
    /// The chain the node must serve (`eth_chainId`).
    served: Served<u64>,
}

impl EvmChain {
    /// A reader of the node at `url`, each request given up after [`super::RPC_TIMEOUT`].
    pub fn new(url: &str) -> Result<Self, ChainError> {
        Self::with_timeout(url, super::RPC_TIMEOUT)
    }

    /// A reader of the node at `url`, each request given up after `timeout`.
    pub fn with_timeout(url: &str, timeout: std::time::Duration) -> Result<Self, ChainError> {
        let url = url
            .parse()
            .map_err(|_| ChainError::Rpc("the RPC URL is not a valid URL".into()))?;
        Ok(Self {
            // A reader only: none of the fillers that prepare transactions to send (gas,
            // nonce, chain id), which would be linked into every function that reads chains.
            provider: ProviderBuilder::new()
                .disable_recommended_fillers()
                .connect_reqwest(crate::net::provider_client(timeout), url)
                .erased(),
            served: Served::unchecked("chain"),
        })
    }

    /// A reader of the node at `url` that answers only once the node says it serves
    /// `chain_id` (asked once, at its first read; a failed ask is asked again).
    pub fn for_chain(url: &str, chain_id: u64) -> Result<Self, ChainError> {
        Ok(Self {
            served: Served::expecting("chain", chain_id),
            ..Self::new(url)?
        })
    }

    /// Fails every read while the node serves another chain than the one expected.
    async fn ready(&self) -> Result<(), ChainError> {
        self.served
            .check(|| async { self.provider.get_chain_id().await.map_err(rpc) })
            .await
    }
}

/// An RPC failure with its causes (a request that timed out says so), without the
/// endpoint's URL (it often holds the provider's API key).
fn rpc(e: impl std::error::Error) -> ChainError {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    ChainError::Rpc(crate::net::redact_urls(&text))
}

/// A node's answer that lacks what was asked (a block it does not have yet).
fn missing(what: String) -> ChainError {
    ChainError::Rpc(what)
}

/// Gas of a plain transfer, and a generous figure for an ERC-20 `transfer`.
const NATIVE_TRANSFER_GAS: u64 = 21_000;
const TOKEN_TRANSFER_GAS: u64 = 65_000;

#[async_trait]
impl BalanceReader for EvmChain {
    async fn transfer_fee(&self, currency: &Currency) -> Result<RawAmount, ChainError> {
        self.ready().await?;
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
        self.ready().await?;
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

/// `keccak256("Transfer(address,address,uint256)")`, the ERC-20 event topic.
const TRANSFER_TOPIC: B256 =
    b256!("ddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef");

fn address_topic(topic: &B256) -> String {
    EvmAddress::from_raw(alloy::primitives::Address::from_word(*topic)).to_string()
}

// Transactions, receipts and full blocks are read as raw JSON-RPC answers into these
// structs of only the fields we use, not through alloy's Ethereum network types: those know
// transaction types 0x0-0x4 and nothing else, and fail to read a whole block (or a
// transaction, or its receipt) that holds any other. Every OP-stack block (Base, OP Mainnet,
// Base Sepolia) starts with a deposit transaction of type 0x7e, and Arbitrum's hold its own
// (0x64-0x6a, 0x78). Read this way, a transaction of any type gives its sender, recipient and
// value; types 0-4 read as they did. (alloy's `AnyNetwork` would read them too, at the cost
// of its catch-all field maps in every Lambda that reads chains.)

/// A transaction, by hash or inside a full block: its top-level value transfer.
#[derive(Debug, Deserialize)]
struct RpcTransaction {
    hash: B256,
    from: Address,
    /// `None` (`null` or absent) for a contract creation.
    #[serde(default)]
    to: Option<Address>,
    /// Absent from no type we know of; read as zero if it were.
    #[serde(default)]
    value: U256,
    /// Absent from some system transactions (an OP-stack deposit's is absent or zero).
    /// Read leniently: this type also reads whole blocks for the deposit scan, which a
    /// nonce in an odd form must not fail.
    #[serde(default, deserialize_with = "lenient_nonce")]
    nonce: Option<u64>,
}

/// A transaction's `nonce` as a hex quantity, or `None` for anything else.
fn lenient_nonce<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let value = Option::<serde_json::Value>::deserialize(d)?;
    Ok(value
        .and_then(|v| serde_json::from_value::<alloy::primitives::U64>(v).ok())
        .map(|n| n.to()))
}

impl RpcTransaction {
    /// The value this transaction sends to `to`, if any.
    ///
    /// Whatever its type, a transaction's `value` is what it moves from `from` to `to` when
    /// it succeeds (a payment check then reads its receipt's status), and so it pays `to`:
    /// types 0-4; an OP-stack deposit (0x7e), ETH bridged from L1 that OptimismPortal's
    /// `depositTransaction(to, value, ..)` sends on to `to` after minting `mint` to `from`;
    /// Arbitrum's L1 deposit (0x64), unsigned and contract transactions (0x65, 0x66),
    /// retryable redeems (0x68) and legacy ones (0x78). We count bridged ETH sent straight to
    /// a deposit address as the payment it is, rather than leave it unseen. `mint` is never
    /// counted: it is credited to the sender, not to `to`. A transaction that cannot be a
    /// plain transfer to a deposit address moves no value to it and is passed over: OP's L1
    /// attributes deposit (to the L1Block predeploy, value 0), Arbitrum's internal (0x6a,
    /// ArbOS to itself, value 0) and retryable submissions (0x69, to the ArbRetryableTx
    /// precompile, value 0; the redeem that follows is a 0x68).
    fn value_to(&self) -> Option<(Address, U256)> {
        match self.to {
            Some(to) if !self.value.is_zero() => Some((to, self.value)),
            _ => None,
        }
    }
}

/// A receipt: whether the transaction succeeded, where it was mined, and its logs.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RpcReceipt {
    /// EIP-658's `0x1` (success) or `0x0`; absent from pre-Byzantium receipts, which carry a
    /// state `root` instead (counted as success, as alloy does).
    #[serde(default)]
    status: Option<U64>,
    #[serde(default)]
    root: Option<B256>,
    #[serde(default)]
    block_number: Option<U64>,
    #[serde(default)]
    block_hash: Option<B256>,
    logs: Vec<RpcLog>,
}

impl RpcReceipt {
    fn success(&self) -> Result<bool, ChainError> {
        match (self.status, self.root) {
            (Some(status), _) => Ok(status == U64::from(1)),
            (None, Some(_)) => Ok(true),
            (None, None) => Err(ChainError::Malformed(
                "a receipt with neither status nor root".into(),
            )),
        }
    }
}

#[derive(Debug, Deserialize)]
struct RpcLog {
    address: Address,
    topics: Vec<B256>,
    data: Bytes,
}

/// How many full blocks the native-value scan has requested at once.
const FULL_BLOCKS_IN_FLIGHT: usize = 8;

/// A block read in full (`eth_getBlockByNumber` with `true`): its transactions only.
#[derive(Debug, Deserialize)]
struct RpcFullBlock {
    transactions: Vec<RpcTransaction>,
}

#[async_trait]
impl TxReader for EvmChain {
    async fn transaction(&self, hash: &TxHash) -> Result<Option<ChainTx>, ChainError> {
        let TxHash::Evm(h) = hash else {
            return Err(ChainError::Malformed("not an EVM transaction hash".into()));
        };
        self.ready().await?;
        let Some(tx) = self
            .provider
            .raw_request::<_, Option<RpcTransaction>>("eth_getTransactionByHash".into(), (*h,))
            .await
            .map_err(rpc)?
        else {
            return Ok(None);
        };
        let sender_nonce = tx.nonce.map(|nonce| SenderNonce {
            sender: EvmAddress::from_raw(tx.from).to_string(),
            nonce,
        });
        let mut transfers = Vec::new();
        if let Some((to, value)) = tx.value_to() {
            transfers.push(Transfer {
                token: None,
                from: EvmAddress::from_raw(tx.from).to_string(),
                to: EvmAddress::from_raw(to).to_string(),
                amount: RawAmount::new(value),
                position: None,
            });
        }
        let receipt = self
            .provider
            .raw_request::<_, Option<RpcReceipt>>("eth_getTransactionReceipt".into(), (*h,))
            .await
            .map_err(rpc)?;
        let inclusion = match &receipt {
            None => None,
            Some(r) => {
                for (position, log) in r.logs.iter().enumerate() {
                    let topics = &log.topics;
                    // ERC-20 Transfer: three topics (sig, from, to) and a 32-byte amount.
                    if topics.len() == 3 && topics[0] == TRANSFER_TOPIC && log.data.len() == 32 {
                        transfers.push(Transfer {
                            token: Some(EvmAddress::from_raw(log.address).to_string()),
                            from: address_topic(&topics[1]),
                            to: address_topic(&topics[2]),
                            amount: RawAmount::new(U256::from_be_slice(&log.data)),
                            position: Some(position as u64),
                        });
                    }
                }
                match (r.block_number, r.block_hash) {
                    (Some(n), Some(bh)) => {
                        // The block's time decides whether the transfer is older than the
                        // order; a node that cannot show the block it just named is lagging.
                        let block = self
                            .provider
                            .get_block_by_hash(bh)
                            .await
                            .map_err(rpc)?
                            .ok_or_else(|| {
                                missing(format!("block {bh:#x} is not available yet"))
                            })?;
                        Some(Inclusion {
                            success: r.success()?,
                            block_number: n.to(),
                            block_hash: format!("{bh:#x}"),
                            timestamp: block.header.timestamp,
                        })
                    }
                    _ => None,
                }
            }
        };
        Ok(Some(ChainTx {
            inclusion,
            transfers,
            sender_nonce,
        }))
    }

    async fn head(&self) -> Result<u64, ChainError> {
        self.ready().await?;
        self.provider.get_block_number().await.map_err(rpc)
    }

    async fn nonce_at(&self, account: &str, number: u64) -> Result<Option<u64>, ChainError> {
        let account = EvmAddress::parse(account)
            .map_err(|_| ChainError::BadAddress(account.to_owned()))?
            .raw();
        self.ready().await?;
        self.provider
            .get_transaction_count(account)
            .block_id(number.into())
            .await
            .map(Some)
            .map_err(rpc)
    }

    async fn block_hash(&self, number: u64) -> Result<Option<String>, ChainError> {
        self.ready().await?;
        let block = self
            .provider
            .get_block_by_number(number.into())
            .await
            .map_err(rpc)?;
        Ok(block.map(|b| format!("{:#x}", b.header.hash)))
    }

    /// Token transfers from `eth_getLogs` (Transfer events of the watched contracts whose
    /// `to` topic is a watched address); native transfers by reading each block in full.
    async fn sightings(
        &self,
        from: u64,
        to: u64,
        watch: &Watch,
    ) -> Result<Vec<Sighting>, ChainError> {
        let parse = |a: &String| {
            a.parse::<alloy::primitives::Address>()
                .map_err(|_| ChainError::BadAddress(a.clone()))
        };
        let addresses = watch
            .addresses
            .iter()
            .map(parse)
            .collect::<Result<Vec<_>, _>>()?;
        let mut found = Vec::new();
        if addresses.is_empty() || from > to {
            return Ok(found);
        }
        self.ready().await?;
        // A node behind `to` (one of a load-balanced pool) answers `eth_getLogs` over blocks
        // it does not have with nothing at all: make sure it has the range's last block, or
        // fail the read so the scan does not move past it. (A pool may still answer the logs
        // from another node: the scan reads token transfers again for a while, see
        // `payments::scan::log_depth`.)
        if self
            .provider
            .get_block_by_number(to.into())
            .await
            .map_err(rpc)?
            .is_none()
        {
            return Err(missing(format!("block {to} is not available yet")));
        }
        if !watch.tokens.is_empty() {
            let tokens = watch
                .tokens
                .iter()
                .map(parse)
                .collect::<Result<Vec<_>, _>>()?;
            let filter = alloy::rpc::types::Filter::new()
                .from_block(from)
                .to_block(to)
                .address(tokens)
                .event_signature(TRANSFER_TOPIC)
                .topic2(
                    addresses
                        .iter()
                        .map(|a| a.into_word())
                        .collect::<Vec<B256>>(),
                );
            let logs = self.provider.get_logs(&filter).await.map_err(|e| {
                // Said of the range, for the scan to read a slow node's ranges in smaller
                // spans (a timeout of any other request is no reason to).
                match rpc(e) {
                    ChainError::Rpc(m) if m.contains("timed out") => ChainError::Rpc(format!(
                        "the node took too long for the block range {from}-{to}: {m}"
                    )),
                    other => other,
                }
            })?;
            for log in logs {
                let topics = log.topics();
                // A transfer of nothing pays nothing (and anyone can emit one to any
                // address, free of tokens, with `transferFrom(x, to, 0)`): left out here,
                // before its transaction is read, so a swarm of them costs the scan nothing.
                let data = &log.data().data;
                if data.len() != 32 || data.iter().all(|b| *b == 0) {
                    continue;
                }
                if let (Some(h), Some(n), 3) =
                    (log.transaction_hash, log.block_number, topics.len())
                {
                    found.push(Sighting {
                        tx_hash: TxHash::Evm(h),
                        block_number: n,
                        to: address_topic(&topics[2]),
                    });
                }
            }
        }
        if watch.native {
            use futures::stream::{StreamExt, TryStreamExt};
            // Several blocks in flight at once (in order): a fast chain makes hundreds a
            // minute, and one request at a time would not keep up.
            let blocks = futures::stream::iter(from..=to)
                .map(|n| async move {
                    // A block the node cannot show (yet) is a failed read, never an empty
                    // block: the scan must not move past it.
                    self.provider
                        .raw_request::<_, Option<RpcFullBlock>>(
                            "eth_getBlockByNumber".into(),
                            (U64::from(n), true),
                        )
                        .await
                        .map_err(rpc)?
                        .map(|b| (n, b))
                        .ok_or_else(|| missing(format!("block {n} is not available")))
                })
                .buffered(FULL_BLOCKS_IN_FLIGHT)
                .try_collect::<Vec<_>>()
                .await?;
            for (n, block) in blocks {
                // Any type of transaction that sends value to a watched address (see
                // `RpcTransaction::value_to`), OP-stack deposits of bridged ETH included.
                for tx in &block.transactions {
                    match tx.value_to() {
                        Some((dest, _)) if addresses.contains(&dest) => found.push(Sighting {
                            tx_hash: TxHash::Evm(tx.hash),
                            block_number: n,
                            to: EvmAddress::from_raw(dest).to_string(),
                        }),
                        _ => {}
                    }
                }
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::RpcTransaction;

    /// A transaction's nonce is read when it is a hex quantity, and an odd or absent one
    /// reads as none rather than failing the transaction (or a whole block of the scan).
    #[test]
    fn a_nonce_in_an_odd_form_does_not_fail_the_transaction() {
        let read = |nonce: serde_json::Value| {
            let mut tx = serde_json::json!({
                "hash": format!("0x{}", "ab".repeat(32)),
                "from": "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed",
                "to": null,
                "value": "0x0",
            });
            if !nonce.is_null() {
                tx["nonce"] = nonce;
            }
            serde_json::from_value::<RpcTransaction>(tx).unwrap().nonce
        };
        assert_eq!(read(serde_json::json!("0x2a")), Some(42));
        assert_eq!(read(serde_json::json!("0x0")), Some(0));
        assert_eq!(read(serde_json::json!(-1)), None);
        assert_eq!(read(serde_json::json!("forty-two")), None);
        assert_eq!(read(serde_json::Value::Null), None);
    }
}
