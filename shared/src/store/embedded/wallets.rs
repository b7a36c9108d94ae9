//! Merchant wallets and xpub derivation counters.

use super::*;
use rusqlite::params;

/// An organization's wallets in one mode (on every create: see `tune`).
pub(super) const LIST_WALLETS: &str =
    "SELECT doc FROM wallets WHERE org_id = ?1 AND mode = ?2 ORDER BY chain_id";

#[async_trait]
impl WalletStore for EmbeddedStore {
    async fn create_wallet(&self, w: &MerchantWallet) -> StoreResult<()> {
        let w = w.clone();
        self.tx(move |tx| {
            insert_new(tx, "INSERT INTO wallets (org_id, mode, chain_id, version, doc) VALUES (?1, ?2, ?3, ?4, ?5)", params![
                    w.organization_id.as_str(),
                    keys::mode_of(w.livemode).as_str(),
                    w.chain_id.get() as i64,
                    w.version as i64,
                    to_doc(&w)
                ])
        })
        .await
    }

    async fn get_wallet(
        &self,
        org: &OrgId,
        mode: KeyMode,
        chain: ChainId,
    ) -> StoreResult<Option<MerchantWallet>> {
        let org = org.to_string();
        self.point(move |tx| {
            row(
                tx,
                "SELECT doc FROM wallets WHERE org_id = ?1 AND mode = ?2 AND chain_id = ?3",
                params![org, mode.as_str(), chain.get() as i64],
                |r| r.get::<_, String>(0),
            )
            .optional()
            .map_err(sql)?
            .map(|d| parse_doc(&d))
            .transpose()
        })
        .await
    }

    async fn list_wallets(&self, org: &OrgId, mode: KeyMode) -> StoreResult<Vec<MerchantWallet>> {
        let org = org.to_string();
        self.point(move |tx| docs(tx, LIST_WALLETS, params![org, mode.as_str()]))
            .await
    }

    async fn update_wallet(&self, w: &MerchantWallet, expected_version: u64) -> StoreResult<()> {
        let w = w.clone();
        self.tx(move |tx| {
            let (org, mode, chain) = (
                w.organization_id.as_str(),
                keys::mode_of(w.livemode).as_str(),
                w.chain_id.get() as i64,
            );
            let guard = Guard::version(expected_version);
            let stored = row(
                tx,
                "SELECT version, doc FROM wallets WHERE org_id = ?1 AND mode = ?2 AND chain_id = ?3",
                params![org, mode, chain],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)),
            )
            .optional()
            .map_err(sql)?;
            guard.check(stored.as_ref().map(|(v, _)| *v as u64))?;
            // Of the same wallet: one deleted and created again starts at version 1 again,
            // so its creation time tells it from the one the copy was read from.
            if let Some((_, doc)) = stored {
                let stored: MerchantWallet = parse_doc(&doc)?;
                if stored.created_at != w.created_at {
                    return Err(guard.conflict());
                }
            }
            exec(
                tx,
                "UPDATE wallets SET version = ?4, doc = ?5 \
                 WHERE org_id = ?1 AND mode = ?2 AND chain_id = ?3",
                params![org, mode, chain, w.version as i64, to_doc(&w)],
            )
            .map_err(sql)?;
            Ok(())
        })
        .await
    }

    async fn delete_wallet(&self, org: &OrgId, mode: KeyMode, chain: ChainId) -> StoreResult<bool> {
        let org = org.to_string();
        self.tx(move |tx| {
            let n = exec(
                tx,
                "DELETE FROM wallets WHERE org_id = ?1 AND mode = ?2 AND chain_id = ?3",
                params![org, mode.as_str(), chain.get() as i64],
            )
            .map_err(sql)?;
            Ok(n > 0)
        })
        .await
    }

    async fn next_xpub_index(&self, xpub: &str) -> StoreResult<u32> {
        let key = crate::store::xpub_counter_key(xpub);
        let next: i64 = self
            .tx(move |tx| {
                row(
                    tx,
                    "INSERT INTO xpub_counters (key, next) VALUES (?1, 1) \
                     ON CONFLICT (key) DO UPDATE SET next = next + 1 RETURNING next",
                    [key],
                    |r| r.get(0),
                )
                .map_err(sql)
            })
            .await?;
        u32::try_from(next - 1)
            .ok()
            .filter(|i| *i < 1 << 31)
            .ok_or_else(|| StoreError::Corrupt("derivation indexes exhausted".into()))
    }

    async fn return_xpub_index(&self, xpub: &str, index: u32) -> StoreResult<bool> {
        let key = crate::store::xpub_counter_key(xpub);
        let index = i64::from(index);
        let changed = self
            .tx(move |tx| {
                tx.execute(
                    "UPDATE xpub_counters SET next = ?2 WHERE key = ?1 AND next = ?2 + 1",
                    rusqlite::params![key, index],
                )
                .map_err(sql)
            })
            .await?;
        Ok(changed == 1)
    }
}
