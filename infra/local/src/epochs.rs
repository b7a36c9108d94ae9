//! Which run of each chain the local host's state belongs to. A local dev chain (anvil) is
//! deterministic: restarted, it mines the very same transaction hashes again, while the
//! claims of the previous run's transfers are still in `.local/`, so a fresh transfer would
//! be refused as already used. Each run of a chain is told apart by its genesis block hash
//! (anvil stamps its genesis with the start time), recorded in `<dir>/chain-epochs.json`;
//! when it changes, the store forgets that chain's claims and scan cursor.

use anyhow::Context;
use payorders::model::ChainId;
use payorders::store::embedded::EmbeddedStore;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The local dev chain. Its state may predate the epoch record (a `.local/` from before it
/// existed), so on first sight its claims are forgotten too; other chains' are kept.
pub const LOCAL_CHAIN: u64 = 31337;

/// What a check found for one chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Epoch {
    /// The same run as last time.
    Same,
    /// A chain seen for the first time; `forgotten` claims of unknown origin were dropped.
    First { forgotten: usize },
    /// Another run than the recorded one: its predecessor's claims were dropped.
    New { forgotten: usize },
}

pub struct ChainEpochs {
    file: PathBuf,
    store: EmbeddedStore,
    chains: Vec<(ChainId, String)>,
    http: reqwest::Client,
}

impl ChainEpochs {
    /// Watches `chains` (id, RPC URL) for `store`, recording in `<dir>/chain-epochs.json`.
    pub fn new(dir: &Path, store: EmbeddedStore, chains: Vec<(ChainId, String)>) -> Self {
        Self {
            file: dir.join("chain-epochs.json"),
            store,
            chains,
            http: payorders::net::http_client()
                .timeout(Duration::from_secs(5))
                .build()
                .expect("a plain HTTP client builds"),
        }
    }

    /// Checks every chain once. A chain that does not answer is skipped (its state is kept
    /// until it answers with a genesis).
    pub async fn check(&self) -> Vec<(ChainId, anyhow::Result<Epoch>)> {
        let mut out = Vec::new();
        for (chain, url) in &self.chains {
            let r = match genesis_hash(&self.http, url).await {
                Ok(genesis) => self.observe(*chain, &genesis).await,
                Err(e) => Err(e),
            };
            out.push((*chain, r));
        }
        out
    }

    /// Records that `chain` now has `genesis`, forgetting its state if that is another run.
    pub async fn observe(&self, chain: ChainId, genesis: &str) -> anyhow::Result<Epoch> {
        let mut known = self.read();
        let key = chain.to_string();
        let epoch = match known.get(&key) {
            Some(g) if g == genesis => return Ok(Epoch::Same),
            Some(_) => Epoch::New {
                forgotten: self.store.forget_chain(chain).await?,
            },
            None if chain.get() == LOCAL_CHAIN => Epoch::First {
                forgotten: self.store.forget_chain(chain).await?,
            },
            None => Epoch::First { forgotten: 0 },
        };
        known.insert(key, genesis.to_owned());
        let tmp = self.file.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_string_pretty(&known)?)
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &self.file)?;
        Ok(epoch)
    }

    fn read(&self) -> BTreeMap<String, String> {
        std::fs::read_to_string(&self.file)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default()
    }

    /// Checks once now, logging what changed, then every `every` until the process ends:
    /// a chain restarted under a running host is noticed within that time.
    pub async fn watch(self, every: Duration) {
        loop {
            for (chain, r) in self.check().await {
                match r {
                    Ok(Epoch::Same) | Ok(Epoch::First { forgotten: 0 }) => {}
                    Ok(Epoch::First { forgotten }) | Ok(Epoch::New { forgotten }) => {
                        tracing::info!(
                            chain = %chain,
                            forgotten_claims = forgotten,
                            "a new run of the chain (its genesis block changed): the previous run's transfer claims and scan cursor are forgotten"
                        )
                    }
                    Err(e) => tracing::debug!(chain = %chain, error = %e, "chain epoch unknown"),
                }
            }
            tokio::time::sleep(every).await;
        }
    }
}

/// The hash of block 0, through `eth_getBlockByNumber`.
pub async fn genesis_hash(http: &reqwest::Client, url: &str) -> anyhow::Result<String> {
    let resp: serde_json::Value = http
        .post(url)
        .json(&serde_json::json!({
            "jsonrpc": "2.0", "id": 1, "method": "eth_getBlockByNumber", "params": ["0x0", false]
        }))
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.without_url()))?
        .json()
        .await?;
    resp["result"]["hash"]
        .as_str()
        .map(str::to_owned)
        .context("the chain has no block 0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_new_genesis_forgets_the_previous_runs_claims() {
        let dir = std::env::temp_dir().join(format!("epochs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = EmbeddedStore::in_memory().unwrap();
        let local = ChainId::new(LOCAL_CHAIN).unwrap();
        let other = ChainId::new(84532).unwrap();
        let e = ChainEpochs::new(&dir, store, vec![]);
        assert_eq!(
            e.observe(local, "0x01").await.unwrap(),
            Epoch::First { forgotten: 0 }
        );
        assert_eq!(e.observe(local, "0x01").await.unwrap(), Epoch::Same);
        assert_eq!(
            e.observe(local, "0x02").await.unwrap(),
            Epoch::New { forgotten: 0 }
        );
        assert_eq!(
            e.observe(other, "0xaa").await.unwrap(),
            Epoch::First { forgotten: 0 }
        );
        // Recorded on disk: a new host process sees the same runs.
        let again = ChainEpochs::new(&dir, EmbeddedStore::in_memory().unwrap(), vec![]);
        assert_eq!(again.observe(local, "0x02").await.unwrap(), Epoch::Same);
        assert_eq!(again.observe(other, "0xaa").await.unwrap(), Epoch::Same);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
