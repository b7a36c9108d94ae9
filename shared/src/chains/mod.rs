//! Reading chains: balances of an address in a chain's currencies, and transactions and
//! blocks for payment checks. EVM chains through alloy (`eth_getBalance`, ERC-20
//! `balanceOf`, receipts and their `Transfer` logs, blocks), Solana through its JSON-RPC
//! (`getBalance`, `getTokenAccountsByOwner`, `getTransaction` jsonParsed, `getSlot`,
//! `getBlock`). RPC endpoints come from config (`PAYORDERS_RPC_<chain_id>`, or `rpc_urls`
//! in the app secret).

mod evm;
pub mod sandbox;
mod solana;

pub use evm::EvmChain;
pub use solana::SolanaChain;

/// How long one RPC request to a node is waited for. A node that accepts a connection and
/// never answers would otherwise hold a check (and every check after it in its SQS batch)
/// until the function's own timeout.
pub const RPC_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

use crate::model::{ChainFamily, ChainId, RawAmount};
use crate::registry::{Currency, registry};
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    #[error("no RPC endpoint is configured for chain {0}")]
    NotConfigured(ChainId),
    #[error("the chain's RPC endpoint failed: {0}")]
    Rpc(String),
    #[error("the chain's RPC answer is malformed: {0}")]
    Malformed(String),
    #[error("{0} is not an address on this chain")]
    BadAddress(String),
    #[error("this chain cannot {0}")]
    Unsupported(&'static str),
}

/// What a deposit scan looks for: transfers to `addresses`, of the token contracts in
/// `tokens` and, if `native`, of the chain's coin.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Watch {
    pub addresses: Vec<String>,
    pub tokens: Vec<String>,
    pub native: bool,
}

/// A transaction that sends something to a watched address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sighting {
    pub tx_hash: crate::model::TxHash,
    pub block_number: u64,
    /// The watched address it pays, as the chain wrote it.
    pub to: String,
}

#[async_trait]
pub trait BalanceReader: Send + Sync {
    /// The balance of `owner` in each of `currencies` (all on this chain), in order.
    async fn balances(
        &self,
        owner: &str,
        currencies: &[Currency],
    ) -> Result<Vec<RawAmount>, ChainError>;

    /// An estimate of the network fee, in the chain's native coin, for one transfer of
    /// `currency` (paid by the sender on top of the amount).
    async fn transfer_fee(&self, currency: &Currency) -> Result<RawAmount, ChainError>;
}

/// One transfer inside a transaction: the native value, or an ERC-20 `Transfer` log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    /// The token contract; `None` for the native coin.
    pub token: Option<String>,
    pub from: String,
    pub to: String,
    pub amount: RawAmount,
    /// The transfer's position inside its transaction (EVM: the log's index among the
    /// receipt's logs; Solana: the instruction's index), which stays the same when a reorg
    /// mines the transaction again; `None` for an EVM transaction's native value.
    pub position: Option<u64>,
}

/// Where a mined transaction is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inclusion {
    pub success: bool,
    pub block_number: u64,
    pub block_hash: String,
    /// The block's timestamp, unix seconds.
    pub timestamp: u64,
}

impl Inclusion {
    /// When its block was mined (its timestamp), if that is a time we can hold.
    pub fn mined_at(&self) -> Option<crate::model::Timestamp> {
        i64::try_from(self.timestamp)
            .ok()
            .and_then(crate::model::Timestamp::from_unix)
    }

    /// Its confirmations with the chain's head at `head`.
    pub fn confirmations_at(&self, head: u64) -> u64 {
        confirmations(self.block_number, head)
    }
}

/// Confirmations of a block at `block_number` with the head at `head`: the block itself is
/// the first; none while the node's head is below it.
pub fn confirmations(block_number: u64, head: u64) -> u64 {
    (head + 1).saturating_sub(block_number)
}

/// A transaction as a payment check needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainTx {
    /// `None` while the transaction is pending.
    pub inclusion: Option<Inclusion>,
    pub transfers: Vec<Transfer>,
    /// Who sent it and the nonce it spent, where the chain has nonces (EVM).
    pub sender_nonce: Option<crate::model::SenderNonce>,
}

/// Reading transactions and blocks (payment verification and confirmations).
#[async_trait]
pub trait TxReader: Send + Sync {
    /// The transaction and its transfers; `None` if the chain does not know it.
    async fn transaction(&self, hash: &crate::model::TxHash)
    -> Result<Option<ChainTx>, ChainError>;
    /// The latest block number.
    async fn head(&self) -> Result<u64, ChainError>;
    /// The hash of block `number` on the current chain, if it exists (reorg checks).
    async fn block_hash(&self, number: u64) -> Result<Option<String>, ChainError>;
    /// How many nonces `account` had spent as of block `number` (its next nonce then), on a
    /// chain with nonces; `None` on one without.
    async fn nonce_at(&self, _account: &str, _number: u64) -> Result<Option<u64>, ChainError> {
        Ok(None)
    }
    /// Transactions in blocks `from..=to` that pay a watched address (deposit scans).
    async fn sightings(
        &self,
        _from: u64,
        _to: u64,
        _watch: &Watch,
    ) -> Result<Vec<Sighting>, ChainError> {
        Err(ChainError::Unsupported("scan blocks for deposits"))
    }
}

/// What the node behind a configured RPC URL must say it serves (an EVM chain id, a Solana
/// cluster's genesis hash) before any of its answers is used: asked once, at the reader's
/// first read (a failed ask is asked again). An RPC URL of another network (a testnet's,
/// set for a mainnet) would otherwise have its coin's transfers taken for the mainnet's.
struct Served<T> {
    /// What is compared, as messages name it ("chain", "genesis").
    what: &'static str,
    expected: Option<T>,
    checked: tokio::sync::OnceCell<()>,
}

impl<T: PartialEq + std::fmt::Display> Served<T> {
    /// Nothing checked (a reader built for a node, not for a configured chain).
    fn unchecked(what: &'static str) -> Self {
        Self {
            what,
            expected: None,
            checked: tokio::sync::OnceCell::new(),
        }
    }

    fn expecting(what: &'static str, expected: T) -> Self {
        Self {
            expected: Some(expected),
            ..Self::unchecked(what)
        }
    }

    /// Fails while the node, asked by `ask`, serves another network than the one expected.
    async fn check<F>(&self, ask: impl FnOnce() -> F) -> Result<(), ChainError>
    where
        F: std::future::Future<Output = Result<T, ChainError>>,
    {
        let Some(expected) = &self.expected else {
            return Ok(());
        };
        let what = self.what;
        self.checked
            .get_or_try_init(|| async {
                let served = ask().await?;
                if &served == expected {
                    return Ok(());
                }
                tracing::error!(%expected, %served, "the RPC endpoint serves another {what}; check its URL");
                Err(ChainError::Rpc(format!(
                    "the RPC endpoint of {what} {expected} serves {what} {served}; check its URL"
                )))
            })
            .await
            .map(drop)
    }
}

/// Everything the functions read from one chain: balances, transactions and blocks.
pub trait ChainReader: BalanceReader + TxReader {}

impl<T: BalanceReader + TxReader> ChainReader for T {}

/// The chains this deployment can read, by id.
#[derive(Clone, Default)]
pub struct Chains {
    readers: BTreeMap<ChainId, Arc<dyn ChainReader>>,
}

impl Chains {
    /// A reader per configured RPC URL of a supported chain.
    pub fn from_rpc_urls<'a>(
        urls: impl IntoIterator<Item = (ChainId, &'a str)>,
    ) -> Result<Self, ChainError> {
        let mut readers: BTreeMap<ChainId, Arc<dyn ChainReader>> = BTreeMap::new();
        for (id, url) in urls {
            let Ok(chain) = registry().chain(id) else {
                continue;
            };
            let reader: Arc<dyn ChainReader> = match chain.family {
                ChainFamily::Evm => Arc::new(EvmChain::for_chain(url, id.get())?),
                ChainFamily::Solana => {
                    // Never a reader that cannot tell which cluster it reads (the registry's
                    // test checks every Solana chain names its genesis).
                    let Some(genesis) = &chain.genesis_hash else {
                        return Err(ChainError::Rpc(format!(
                            "chain {id} has no genesis hash in the registry"
                        )));
                    };
                    Arc::new(SolanaChain::for_cluster(url, genesis))
                }
            };
            readers.insert(id, reader);
        }
        Ok(Self { readers })
    }

    pub fn insert(&mut self, id: ChainId, reader: Arc<dyn ChainReader>) {
        self.readers.insert(id, reader);
    }

    pub fn get(&self, id: ChainId) -> Result<&Arc<dyn ChainReader>, ChainError> {
        self.readers.get(&id).ok_or(ChainError::NotConfigured(id))
    }

    pub fn ids(&self) -> impl Iterator<Item = ChainId> + '_ {
        self.readers.keys().copied()
    }
}
