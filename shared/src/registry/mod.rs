//! The chain and token registry, compiled into the crate from `chains.json`.
//!
//! Lists every supported chain with its family, default confirmations and currencies
//! (native coin plus well-known tokens) with decimals, price ids and exchange tickers,
//! and which chains are test networks: the one rule that keeps test and live apart
//! ([`ChainInfo::check_mode`]).

use crate::model::{Address, ChainFamily, ChainId, KeyMode};
use serde::{Deserialize, Serialize};
use std::sync::LazyLock;

/// How a currency is named at the exchange provider (ChangeNow: ticker + network).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExchangeTicker {
    pub ticker: String,
    pub network: String,
}

/// One currency on one chain, as listed in the registry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TokenInfo {
    pub symbol: String,
    pub name: String,
    /// Contract or mint address; `None` for the chain's native coin.
    #[serde(default)]
    pub address: Option<String>,
    pub decimals: u8,
    #[serde(default)]
    pub price_id: Option<String>,
    #[serde(default)]
    pub exchange: Option<ExchangeTicker>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ChainInfo {
    pub id: ChainId,
    pub slug: String,
    pub name: String,
    pub family: ChainFamily,
    /// A test network (Sepolia, Base Sepolia, Solana Devnet, the local chain 31337): test
    /// keys use these only, live keys never.
    pub testnet: bool,
    /// Default confirmations required when neither the order nor the organization sets one.
    pub confirmations: u32,
    /// The shortest usual time between its blocks, in milliseconds (a lower bound: what
    /// it sizes in blocks, the deposit scan's window for lagging nodes, errs on more).
    pub block_time_ms: u32,
    /// Solana only: the cluster's genesis hash, which its RPC node must answer to
    /// `getGenesisHash` before it is read (a devnet URL set for mainnet would otherwise have
    /// devnet SOL taken for real). EVM nodes are checked by `eth_chainId` against `id`.
    #[serde(default)]
    pub genesis_hash: Option<String>,
    pub native: TokenInfo,
    #[serde(default)]
    pub tokens: Vec<TokenInfo>,
}

#[derive(Debug, Deserialize)]
pub struct Registry {
    chains: Vec<ChainInfo>,
}

pub use crate::model::Currency;

/// A currency as a client names it: `{"chain_id": 8453, "address": "0x…" | null}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CurrencyRef {
    pub chain_id: ChainId,
    #[serde(default)]
    pub address: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error("chain {0} is not supported")]
    UnsupportedChain(String),
    #[error("currency {currency} is not supported on chain {chain_id}")]
    UnsupportedCurrency { chain_id: ChainId, currency: String },
}

/// A chain of the other kind than the caller's key: test keys use test networks, live keys
/// mainnets. The API answers it as `422 NETWORK_MODE_MISMATCH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkModeMismatch {
    pub mode: KeyMode,
    pub chain_id: ChainId,
    pub chain_name: String,
}

impl std::fmt::Display for NetworkModeMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (chain, name) = (self.chain_id, &self.chain_name);
        match self.mode {
            KeyMode::Test => write!(
                f,
                "test-mode keys use test networks; chain {chain} ({name}) is a mainnet"
            ),
            KeyMode::Live => write!(
                f,
                "live-mode keys use mainnets; chain {chain} ({name}) is a test network"
            ),
        }
    }
}

impl std::error::Error for NetworkModeMismatch {}

static REGISTRY: LazyLock<Registry> = LazyLock::new(|| {
    serde_json::from_str(include_str!("chains.json")).expect("chains.json is valid (tested)")
});

/// The registry compiled into this binary.
pub fn registry() -> &'static Registry {
    &REGISTRY
}

impl Registry {
    pub fn chains(&self) -> &[ChainInfo] {
        &self.chains
    }

    pub fn chain(&self, id: ChainId) -> Result<&ChainInfo, RegistryError> {
        self.chains
            .iter()
            .find(|c| c.id == id)
            .ok_or_else(|| RegistryError::UnsupportedChain(id.to_string()))
    }

    /// Looks a chain up by slug (`base`) or by decimal id (`8453`).
    pub fn chain_by_name(&self, name: &str) -> Result<&ChainInfo, RegistryError> {
        if let Ok(id) = ChainId::parse(name) {
            return self.chain(id);
        }
        self.chains
            .iter()
            .find(|c| c.slug.eq_ignore_ascii_case(name))
            .ok_or_else(|| RegistryError::UnsupportedChain(name.to_owned()))
    }

    /// Resolves a client's currency reference to a registry currency.
    pub fn currency(&self, r: &CurrencyRef) -> Result<Currency, RegistryError> {
        let chain = self.chain(r.chain_id)?;
        chain.currency(r.address.as_deref())
    }

    /// Resolves a currency id (`8453:0x…` or `8453:native`).
    pub fn currency_by_id(&self, id: &str) -> Result<Currency, RegistryError> {
        let (chain, addr) = id
            .split_once(':')
            .ok_or_else(|| RegistryError::UnsupportedChain(id.to_owned()))?;
        let chain = self.chain_by_name(chain)?;
        chain.currency(if addr == "native" { None } else { Some(addr) })
    }
}

impl ChainInfo {
    /// Whether keys of `mode` may use this chain: test keys pay on test networks (the
    /// sandbox simulates transfers on those), live keys on mainnets. Orders, merchant
    /// wallets, payment details and quotes all ask this, and only this.
    pub fn check_mode(&self, mode: KeyMode) -> Result<(), NetworkModeMismatch> {
        if self.testnet != mode.is_live() {
            return Ok(());
        }
        Err(NetworkModeMismatch {
            mode,
            chain_id: self.id,
            chain_name: self.name.clone(),
        })
    }

    /// All currencies on this chain, native first.
    pub fn currencies(&self) -> impl Iterator<Item = &TokenInfo> {
        std::iter::once(&self.native).chain(self.tokens.iter())
    }

    /// Finds a currency by contract/mint address (`None` or `"native"` for the native coin).
    pub fn currency(&self, address: Option<&str>) -> Result<Currency, RegistryError> {
        let unsupported = || RegistryError::UnsupportedCurrency {
            chain_id: self.id,
            currency: address.unwrap_or("native").to_owned(),
        };
        let token = match address {
            None | Some("native") => &self.native,
            Some(a) => {
                let wanted = Address::parse(self.family, a).map_err(|_| unsupported())?;
                self.tokens
                    .iter()
                    .find(|t| {
                        t.address
                            .as_deref()
                            .and_then(|ta| Address::parse(self.family, ta).ok())
                            == Some(wanted)
                    })
                    .ok_or_else(unsupported)?
            }
        };
        Ok(self.resolve(token))
    }

    /// Finds a currency by its symbol (`USDC`, `ETH`), case-insensitively.
    pub fn currency_by_symbol(&self, symbol: &str) -> Result<Currency, RegistryError> {
        self.currencies()
            .find(|t| t.symbol.eq_ignore_ascii_case(symbol))
            .map(|t| self.resolve(t))
            .ok_or_else(|| RegistryError::UnsupportedCurrency {
                chain_id: self.id,
                currency: symbol.to_owned(),
            })
    }

    /// The registry entry behind a resolved currency.
    pub fn token(&self, currency: &Currency) -> Option<&TokenInfo> {
        self.currencies()
            .find(|t| self.resolve(t).id == currency.id)
    }

    fn resolve(&self, t: &TokenInfo) -> Currency {
        let key = match &t.address {
            None => "native".to_owned(),
            Some(a) => Address::parse(self.family, a)
                .map(|a| a.key())
                .unwrap_or_else(|_| a.clone()),
        };
        Currency {
            id: format!("{}:{}", self.id, key),
            chain_id: self.id,
            address: t.address.clone(),
            decimals: t.decimals,
            symbol: t.symbol.clone(),
            name: t.name.clone(),
        }
    }
}

// Inherent methods that need the registry live here, so the model never reads it.
impl crate::model::Currency {
    /// The family of the currency's chain (EVM for a chain the registry no longer lists,
    /// which no reader serves anyway).
    pub fn family(&self) -> crate::model::ChainFamily {
        registry()
            .chain(self.chain_id)
            .map(|c| c.family)
            .unwrap_or(crate::model::ChainFamily::Evm)
    }
}

impl crate::model::Payment {
    /// The family of the chain the payer pays on.
    pub fn family(&self) -> crate::model::ChainFamily {
        self.input.currency.family()
    }

    /// The family of the chain the destination is paid on.
    pub fn output_family(&self) -> crate::model::ChainFamily {
        self.output.currency.family()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SolanaAddress;
    use std::collections::HashSet;

    #[test]
    fn registry_is_well_formed() {
        let r = registry();
        let mut ids = HashSet::new();
        let mut slugs = HashSet::new();
        for c in r.chains() {
            assert!(ids.insert(c.id), "duplicate chain {}", c.id);
            assert!(slugs.insert(c.slug.clone()), "duplicate slug {}", c.slug);
            assert!(
                c.native.address.is_none(),
                "{}: native has no address",
                c.slug
            );
            assert!(c.confirmations >= 1);
            assert!((100..=60_000).contains(&c.block_time_ms), "{}", c.slug);
            // Every Solana cluster names its genesis block (a 32-byte base58 hash), and
            // only Solana clusters do.
            match (c.family, &c.genesis_hash) {
                (ChainFamily::Solana, Some(h)) => assert!(
                    SolanaAddress::parse(h).is_ok(),
                    "{}: genesis hash {h}",
                    c.slug
                ),
                (ChainFamily::Evm, None) => {}
                (family, hash) => panic!("{}: {family:?} with genesis hash {hash:?}", c.slug),
            }
            let mut currency_ids = HashSet::new();
            for t in c.currencies() {
                assert!(t.decimals <= 36, "{} {}", c.slug, t.symbol);
                if let Some(a) = &t.address {
                    // Mixed-case EVM addresses must pass their EIP-55 checksum.
                    Address::parse(c.family, a)
                        .unwrap_or_else(|e| panic!("{} {}: {a}: {e}", c.slug, t.symbol));
                }
                assert!(currency_ids.insert(c.resolve(t).id));
            }
        }
    }

    #[test]
    fn required_chains_and_tokens_are_present() {
        let r = registry();
        for (slug, id) in [
            ("ethereum", 1u64),
            ("base", 8453),
            ("optimism", 10),
            ("arbitrum", 42161),
            ("polygon", 137),
            ("bsc", 56),
            ("avalanche", 43114),
            ("sepolia", 11155111),
            ("base-sepolia", 84532),
            ("local", 31337),
            ("solana", 30000000000001),
            ("solana-devnet", 30000000000101),
        ] {
            let c = r.chain_by_name(slug).unwrap();
            assert_eq!(c.id.get(), id);
            assert!(
                c.currency_by_symbol("USDC").is_ok() || slug == "local",
                "{slug}"
            );
        }
        assert_eq!(r.chain_by_name("8453").unwrap().slug, "base");
        assert!(matches!(
            r.chain_by_name("dogechain"),
            Err(RegistryError::UnsupportedChain(_))
        ));
    }

    #[test]
    fn currency_resolution() {
        let r = registry();
        let base = ChainId::new(8453).unwrap();
        let usdc = r
            .currency(&CurrencyRef {
                chain_id: base,
                address: Some("0x833589fcd6edb6e08f4c7c32d4f71b54bda02913".into()),
            })
            .unwrap();
        assert_eq!(usdc.id, "8453:0x833589fcd6edb6e08f4c7c32d4f71b54bda02913");
        assert_eq!(usdc.decimals, 6);
        assert_eq!(r.currency_by_id(&usdc.id).unwrap(), usdc);
        let eth = r
            .currency(&CurrencyRef {
                chain_id: base,
                address: None,
            })
            .unwrap();
        assert_eq!(eth.id, "8453:native");
        assert_eq!(eth.decimals, 18);
        let sol_usdc = r
            .currency_by_id("30000000000001:EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v")
            .unwrap();
        assert_eq!(sol_usdc.symbol, "USDC");
        // Unknown token on a known chain, and a malformed address.
        for a in [
            "0x0000000000000000000000000000000000000001",
            "not-an-address",
        ] {
            assert!(matches!(
                r.currency(&CurrencyRef {
                    chain_id: base,
                    address: Some(a.into())
                }),
                Err(RegistryError::UnsupportedCurrency { .. })
            ));
        }
        let unknown_chain = ChainId::new(999_999).unwrap();
        assert!(matches!(
            r.currency(&CurrencyRef {
                chain_id: unknown_chain,
                address: None
            }),
            Err(RegistryError::UnsupportedChain(_))
        ));
    }

    #[test]
    fn test_keys_use_test_networks_and_live_keys_mainnets() {
        let r = registry();
        for (id, test) in [
            (31337u64, true),
            (84532, true),
            (11155111, true),
            (30000000000101, true),
            (8453, false),
            (1, false),
            (30000000000001, false),
        ] {
            let chain = r.chain(ChainId::new(id).unwrap()).unwrap();
            assert_eq!(chain.testnet, test, "{id}");
            assert_eq!(chain.check_mode(KeyMode::Test).is_ok(), test, "{id}");
            assert_eq!(chain.check_mode(KeyMode::Live).is_ok(), !test, "{id}");
        }
        let base = r.chain_by_name("base").unwrap();
        assert_eq!(
            base.check_mode(KeyMode::Test).unwrap_err().to_string(),
            "test-mode keys use test networks; chain 8453 (Base) is a mainnet"
        );
        let devnet = r.chain_by_name("solana-devnet").unwrap();
        assert_eq!(devnet.family, ChainFamily::Solana);
        assert_eq!(
            devnet.check_mode(KeyMode::Live).unwrap_err().to_string(),
            "live-mode keys use mainnets; chain 30000000000101 (Solana Devnet) is a test network"
        );
        // Both modes have chains of both families.
        for mode in [KeyMode::Test, KeyMode::Live] {
            for family in [ChainFamily::Evm, ChainFamily::Solana] {
                assert!(
                    r.chains()
                        .iter()
                        .any(|c| c.family == family && c.check_mode(mode).is_ok()),
                    "{mode:?} {family:?}"
                );
            }
        }
    }
}
