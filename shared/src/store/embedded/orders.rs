//! Pay orders with their nonces, transfer claims and the deposit scan's cursors.

use super::events::insert_event;
use super::keys::{expiry_key, org_partition, sort_key};
use super::*;
use rusqlite::params;

/// `SELECT doc` of the orders whose status passes `rule` (the status rules live in the
/// model; this only turns one into SQL).
fn orders_in_statuses(rule: fn(&OrderStatus) -> bool) -> String {
    let statuses: Vec<String> = OrderStatus::ALL
        .iter()
        .filter(|s| rule(s))
        .map(|s| format!("'{}'", s.as_str()))
        .collect();
    format!(
        "SELECT doc FROM orders WHERE status IN ({})",
        statuses.join(", ")
    )
}

/// Binds the order's projected columns in the fixed order used by the write statements.
fn order_columns(o: &PayOrder) -> [rusqlite::types::Value; 10] {
    use rusqlite::types::Value as V;
    [
        V::Text(o.id.to_string()),
        V::Text(org_partition(
            "ORDERS",
            &o.organization_id,
            keys::mode_of(o.livemode),
        )),
        V::Text(sort_key(o.created_at, o.id.as_str())),
        expiry_key(o).map(V::Text).unwrap_or(V::Null),
        V::Text(o.status.as_str().into()),
        V::Text(o.mode.as_str().into()),
        o.chain_id()
            .map(|c| V::Integer(c.get() as i64))
            .unwrap_or(V::Null),
        o.currency_id()
            .map(|c| V::Text(c.into()))
            .unwrap_or(V::Null),
        V::Integer(o.version as i64),
        V::Text(to_doc(o)),
    ]
}

#[async_trait]
impl OrderStore for EmbeddedStore {
    async fn create_order(&self, new: &NewOrder) -> StoreResult<()> {
        let new = new.clone();
        self.tx(move |tx| {
            let o = new.order();
            if let Some(nonce) = &o.nonce {
                let key = format!("{}#{}#{}", o.organization_id, keys::mode_of(o.livemode), nonce);
                match exec(
                tx,
                    "INSERT INTO nonces (key, order_id) VALUES (?1, ?2)",
                    params![key, o.id.as_str()],
                ) {
                    Ok(_) => {}
                    Err(e) if is_unique_violation(&e) => return Err(StoreError::DuplicateNonce),
                    Err(e) => return Err(sql(e)),
                }
            }
            insert_new(
                tx,
                "INSERT INTO orders (id, partition_key, sort_key, expiry_key, status, mode, \
                 chain_id, currency_id, version, doc) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                rusqlite::params_from_iter(order_columns(o)),
            )?;
            insert_event(tx, new.event())?;
            super::idempotency::write_completion(tx, new.idempotency())
        })
        .await
    }

    async fn get_order(&self, id: &OrderId) -> StoreResult<Option<PayOrder>> {
        let id = id.to_string();
        self.point(move |tx| one_doc(tx, "SELECT doc FROM orders WHERE id = ?1", &id))
            .await
    }

    async fn update_order(&self, update: &OrderUpdate) -> StoreResult<()> {
        let u = update.clone();
        self.tx(move |tx| {
            check_guard(
                tx,
                Guard::version(u.expected_version()),
                "SELECT version FROM orders WHERE id = ?1",
                [u.order().id.as_str()],
            )?;
            exec(
                tx,
                "UPDATE orders SET partition_key = ?2, sort_key = ?3, expiry_key = ?4, \
                 status = ?5, mode = ?6, chain_id = ?7, currency_id = ?8, version = ?9, \
                 doc = ?10 WHERE id = ?1",
                rusqlite::params_from_iter(order_columns(u.order())),
            )
            .map_err(sql)?;
            for e in u.events() {
                insert_event(tx, e)?;
            }
            for c in u.tx_claims() {
                // New, or already this order's (a reorged transfer recorded again).
                let owner: String = row(
                    tx,
                    "INSERT INTO tx_claims (key, order_id) VALUES (?1, ?2) \
                         ON CONFLICT (key) DO UPDATE SET order_id = order_id \
                         RETURNING order_id",
                    params![c.key(), u.order().id.as_str()],
                    |r| r.get(0),
                )
                .map_err(sql)?;
                if owner != u.order().id.as_str() {
                    // Returning an error drops the transaction: nothing above is kept.
                    return Err(StoreError::TxAlreadyClaimed { claim: c.key() });
                }
            }
            super::idempotency::write_completion(tx, u.idempotency())
        })
        .await
    }

    async fn list_orders(&self, w: &ListWindow, f: &OrderFilter) -> StoreResult<Page<PayOrder>> {
        let (w, f) = (w.clone(), f.clone());
        self.read(move |tx| {
            let partition = org_partition("ORDERS", &w.organization_id, w.mode);
            let (rows, stopped_at) =
                newest_first(tx, "orders", &partition, &w, |o: &PayOrder| f.matches(o))?;
            Ok(keys::page_read(rows, w.page_size(), stopped_at))
        })
        .await
    }

    async fn list_expirable_orders(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<PayOrder>> {
        self.read(move |tx| {
            docs(
                tx,
                "SELECT doc FROM orders WHERE expiry_key IS NOT NULL AND expiry_key < ?1 \
                     ORDER BY expiry_key LIMIT ?2",
                params![now.to_key(), limit],
            )
        })
        .await
    }

    async fn list_watched_orders(
        &self,
        chain: ChainId,
        now: Timestamp,
    ) -> StoreResult<Vec<PayOrder>> {
        // Dev-sized: the payment's chain is inside the document, so filter here.
        let sql = orders_in_statuses(OrderStatus::accepts_payment);
        let mut orders: Vec<PayOrder> = self.read(move |tx| docs(tx, &sql, [])).await?;
        let after = now.to_key();
        orders.retain(|o| keys::watch_key(o).is_some_and(|(c, k)| c == chain && k > after));
        orders.sort_by_cached_key(|o| keys::watch_key(o).map(|(_, k)| k));
        Ok(orders)
    }

    async fn list_stalled_orders(
        &self,
        updated_before: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<PayOrder>> {
        // Partial and late payments (on an order still taking payments: one back in
        // AWAITING_PAYMENT after a reorg too) and refund transfers (on any status an order
        // with received money can be in) wait on checks too; `check_key` decides.
        let sql = orders_in_statuses(|s| {
            s.awaits_confirmation() || s.accepts_payment() || *s == OrderStatus::Completed
        });
        let mut orders: Vec<PayOrder> = self.read(move |tx| docs(tx, &sql, [])).await?;
        let before = updated_before.to_key();
        orders.retain(|o| keys::check_key(o).is_some_and(|k| k < before));
        orders.sort_by_cached_key(keys::check_key);
        orders.truncate(limit as usize);
        Ok(orders)
    }

    async fn scan_cursor(&self, chain: ChainId) -> StoreResult<Option<u64>> {
        let id = chain.get() as i64;
        self.point(move |tx| {
            row(
                tx,
                "SELECT block FROM scan_cursors WHERE chain_id = ?1",
                [id],
                |r| r.get::<_, i64>(0),
            )
            .optional()
            .map_err(sql)
            .map(|b| b.map(|b| b as u64))
        })
        .await
    }

    async fn set_scan_cursor(
        &self,
        chain: ChainId,
        expected: Option<u64>,
        next: u64,
    ) -> StoreResult<()> {
        let id = chain.get() as i64;
        self.tx(move |tx| {
            check_guard(
                tx,
                Guard::value(expected),
                "SELECT block FROM scan_cursors WHERE chain_id = ?1",
                [id],
            )?;
            exec(
                tx,
                "INSERT INTO scan_cursors (chain_id, block) VALUES (?1, ?2) \
                 ON CONFLICT (chain_id) DO UPDATE SET block = excluded.block",
                params![id, next as i64],
            )
            .map_err(sql)?;
            Ok(())
        })
        .await
    }

    async fn get_tx_claim(&self, claim_key: &str) -> StoreResult<Option<OrderId>> {
        let k = claim_key.to_owned();
        self.point(move |tx| {
            row(
                tx,
                "SELECT order_id FROM tx_claims WHERE key = ?1",
                [k],
                |r| r.get::<_, String>(0),
            )
            .optional()
            .map_err(sql)?
            .map(|id| OrderId::parse(&id).map_err(|e| StoreError::Corrupt(e.to_string())))
            .transpose()
        })
        .await
    }
}

impl EmbeddedStore {
    /// Forgets what this store knows of one chain's history: the claims of its transfers
    /// and its deposit-scan cursor. Only for a chain that was replaced by another with the
    /// same id (a restarted local dev chain, which mines the same transaction hashes
    /// again): its old claims would refuse the new chain's transfers as already used.
    /// Returns how many claims were forgotten.
    pub async fn forget_chain(&self, chain: ChainId) -> StoreResult<usize> {
        let id = chain.get();
        self.tx(move |tx| {
            // Claim keys are `org#mode#chain#hash#position` (TxClaim::key).
            let keys: Vec<String> = {
                let mut stmt = tx.prepare("SELECT key FROM tx_claims").map_err(sql)?;
                stmt.query_map([], |r| r.get::<_, String>(0))
                    .map_err(sql)?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(sql)?
            };
            let mut forgotten = 0;
            for key in keys
                .iter()
                .filter(|k| k.split('#').nth(2) == Some(id.to_string().as_str()))
            {
                forgotten +=
                    exec(tx, "DELETE FROM tx_claims WHERE key = ?1", [key]).map_err(sql)?;
            }
            exec(
                tx,
                "DELETE FROM scan_cursors WHERE chain_id = ?1",
                [id as i64],
            )
            .map_err(sql)?;
            Ok(forgotten)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn forget_chain_drops_only_that_chains_claims_and_cursor() {
        let s = EmbeddedStore::in_memory().unwrap();
        let order = OrderId::generate().to_string();
        let keys = [
            "org_a#test#31337#0xaa#0",
            "org_a#test#31337#0xaa#18446744073709551615",
            "org_a#test#84532#0xaa#0",
            // A hash that looks like the chain id must not confuse the match.
            "org_a#test#1#31337#0",
        ];
        for k in keys {
            let (k, o) = (k.to_owned(), order.clone());
            s.tx(move |tx| {
                exec(
                    tx,
                    "INSERT INTO tx_claims (key, order_id) VALUES (?1, ?2)",
                    params![k, o],
                )
                .map_err(sql)?;
                Ok(())
            })
            .await
            .unwrap();
        }
        let (local, base) = (ChainId::new(31337).unwrap(), ChainId::new(84532).unwrap());
        s.set_scan_cursor(local, None, 7).await.unwrap();
        s.set_scan_cursor(base, None, 9).await.unwrap();

        assert_eq!(s.forget_chain(local).await.unwrap(), 2);
        assert_eq!(s.get_tx_claim(keys[0]).await.unwrap(), None);
        assert_eq!(s.get_tx_claim(keys[1]).await.unwrap(), None);
        assert!(s.get_tx_claim(keys[2]).await.unwrap().is_some());
        assert!(s.get_tx_claim(keys[3]).await.unwrap().is_some());
        assert_eq!(s.scan_cursor(local).await.unwrap(), None);
        assert_eq!(s.scan_cursor(base).await.unwrap(), Some(9));
        // Forgetting again finds nothing and is harmless.
        assert_eq!(s.forget_chain(local).await.unwrap(), 0);
    }
}
