//! Pay orders with their nonces, transfer claims and the deposit scan's cursors.

use super::events::event_item;
use super::keys::{expiry_key, mode_of, org_partition, sort_key};
use super::*;

const EXPIRY_SHARDS: u32 = 4;

fn order_item(o: &PayOrder) -> Item {
    let mode = mode_of(o.livemode);
    let mut item = base_item(format!("ORDER#{}", o.id), "ORDER");
    item.insert("doc".into(), to_doc(o));
    item.insert("version".into(), n(o.version));
    item.insert("status".into(), s(o.status.as_str()));
    item.insert("mode".into(), s(o.mode.as_str()));
    item.insert("livemode".into(), AttributeValue::Bool(o.livemode));
    if let Some(c) = o.chain_id() {
        item.insert("chain_id".into(), n(c.get()));
    }
    if let Some(c) = o.currency_id() {
        item.insert("currency_id".into(), s(c));
    }
    item.insert(
        "gsi1pk".into(),
        s(org_partition("ORDERS", &o.organization_id, mode)),
    );
    item.insert("gsi1sk".into(), s(sort_key(o.created_at, o.id.as_str())));
    // The expiry index holds two disjoint sets: orders that can still expire (by expiry)
    // and orders waiting on a confirmation check (by last write, for the upkeep).
    let shard = o.id.as_str().bytes().map(u32::from).sum::<u32>() % EXPIRY_SHARDS;
    if let Some(k) = expiry_key(o) {
        item.insert("gsi2pk".into(), s(format!("EXPIRY#{shard}")));
        item.insert("gsi2sk".into(), s(k));
    } else if let Some(k) = keys::check_key(o) {
        item.insert("gsi2pk".into(), s(format!("CHECKS#{shard}")));
        item.insert("gsi2sk".into(), s(k));
    }
    if let Some((chain, k)) = keys::watch_key(o) {
        item.insert("gsi5pk".into(), s(format!("DEPOSITS#{chain}")));
        item.insert("gsi5sk".into(), s(k));
    }
    item
}

impl DynamoStore {
    /// The `limit` orders with the lowest sort keys below `before` in the sharded
    /// `orders_by_expiry` partitions `<kind>#0..` (expiry, or last write): the lowest
    /// `limit` of all shards are among the lowest `limit` of each.
    async fn oldest_in_shards(
        &self,
        kind: &str,
        before: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<PayOrder>> {
        let mut all: Vec<(String, PayOrder)> = Vec::new();
        for shard in 0..EXPIRY_SHARDS {
            let items = self
                .query_index(
                    "orders_by_expiry",
                    "gsi2pk = :p AND gsi2sk < :before",
                    vec![
                        (":p", s(format!("{kind}#{shard}"))),
                        (":before", s(before.to_key())),
                    ],
                    Some(limit.max(1) as usize),
                )
                .await?;
            for item in &items {
                all.push((string_attr(item, "gsi2sk")?, doc(item)?));
            }
        }
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all.truncate(limit as usize);
        Ok(all.into_iter().map(|(_, o)| o).collect())
    }
}

#[async_trait]
impl OrderStore for DynamoStore {
    async fn create_order(&self, new: &NewOrder) -> StoreResult<()> {
        let o = new.order();
        let mut puts = vec![
            self.put(order_item(o), NEW)?,
            self.put(event_item(new.event()), NEW)?,
        ];
        // The nonce's claim, when there is one, is the third put.
        if let Some(nonce) = &o.nonce {
            let pk = format!(
                "NONCE#{}#{}#{}",
                o.organization_id,
                mode_of(o.livemode),
                nonce
            );
            let mut item = base_item(pk, "NONCE");
            item.insert("order_id".into(), s(o.id.as_str()));
            puts.push(self.put(item, NEW)?);
        }
        let completion = puts.len();
        puts.extend(super::idempotency::completion_put(
            &self.table,
            new.idempotency(),
        )?);
        // Two creates of one nonce at once (a client sending twice): DynamoDB may cancel one
        // for the other's transaction (`TransactionConflict`) rather than for the nonce's
        // condition. It tries again a moment later (a cancelled transaction wrote nothing),
        // and then meets the nonce taken, as SQLite's serialised writes answer at once.
        let mut tries = 0;
        loop {
            tries += 1;
            let failed = match self.transact(puts.clone()).await? {
                Ok(()) => return Ok(()),
                Err(failed) => failed,
            };
            if tries < 3 && failed.iter().any(|(_, c)| c == "TransactionConflict") {
                tokio::time::sleep(std::time::Duration::from_millis(25 * tries)).await;
                continue;
            }
            return Err(
                if super::idempotency::taken_over(&failed, completion, new.idempotency()) {
                    StoreError::IdempotencyKeyTakenOver
                } else if o.nonce.is_some() && refused_at(&failed, 2) {
                    StoreError::DuplicateNonce
                } else if failed.iter().any(|(_, c)| failed_code_is_condition(c)) {
                    StoreError::AlreadyExists
                } else {
                    cancelled(&failed)
                },
            );
        }
    }

    async fn get_order(&self, id: &OrderId) -> StoreResult<Option<PayOrder>> {
        self.get_doc(&format!("ORDER#{id}"), "ORDER")
            .await?
            .map(|i| doc(&i))
            .transpose()
    }

    async fn update_order(&self, u: &OrderUpdate) -> StoreResult<()> {
        let guard = Guard::version(u.expected_version());
        let mut puts = vec![guarded_put(&self.table, order_item(u.order()), guard)?];
        for e in u.events() {
            puts.push(self.put(event_item(e), NEW)?);
        }
        let first_claim = puts.len();
        for c in u.tx_claims() {
            let mut item = base_item(format!("TX#{}", c.key()), "TX");
            item.insert("order_id".into(), s(u.order().id.as_str()));
            // New, or already this order's (a reorged transfer recorded again).
            let claim = Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(pk) OR order_id = :o")
                .expression_attribute_values(":o", s(u.order().id.as_str()))
                .build()
                .map_err(StoreError::unavailable)?;
            puts.push(claim);
        }
        // Last, so that a refused claim's index still names its claim.
        let completion = puts.len();
        puts.extend(super::idempotency::completion_put(
            &self.table,
            u.idempotency(),
        )?);
        match self.transact(puts).await? {
            Ok(()) => Ok(()),
            Err(failed) => {
                // The order's own write refused by its version (or raced): someone else
                // wrote it. Any other failure of it (an item too large, throttling) is not
                // a conflict, and a retry from a fresh read would meet it again.
                for (i, code) in &failed {
                    if (*i == 0 && condition_or_conflict(code)) || code == "TransactionConflict" {
                        return Err(guard.conflict());
                    }
                }
                if super::idempotency::taken_over(&failed, completion, u.idempotency()) {
                    return Err(StoreError::IdempotencyKeyTakenOver);
                }
                let claims = first_claim..first_claim + u.tx_claims().len();
                match failed.iter().find(|(i, _)| claims.contains(i)) {
                    Some((i, _)) => Err(StoreError::TxAlreadyClaimed {
                        claim: u.tx_claims()[i - first_claim].key(),
                    }),
                    None => Err(cancelled(&failed)),
                }
            }
        }
    }

    async fn list_orders(&self, w: &ListWindow, f: &OrderFilter) -> StoreResult<Page<PayOrder>> {
        let mut filter = Filter::default();
        if let Some(st) = f.status {
            filter.eq("status", s(st.as_str()));
        }
        if let Some(m) = f.mode {
            filter.eq("mode", s(m.as_str()));
        }
        if let Some(c) = f.chain_id {
            filter.eq("chain_id", n(c.get()));
        }
        if let Some(c) = &f.currency {
            filter.eq("currency_id", s(c));
        }
        self.page_newest_first(
            "orders_by_org",
            "gsi1pk",
            "gsi1sk",
            org_partition("ORDERS", &w.organization_id, w.mode),
            w,
            |id| (format!("ORDER#{id}"), "ORDER".into()),
            filter,
            |o: &PayOrder| f.matches(o),
        )
        .await
    }

    async fn list_expirable_orders(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<PayOrder>> {
        self.oldest_in_shards("EXPIRY", now, limit).await
    }

    async fn get_tx_claim(&self, claim_key: &str) -> StoreResult<Option<OrderId>> {
        let Some(item) = self.get_doc(&format!("TX#{claim_key}"), "TX").await? else {
            return Ok(None);
        };
        OrderId::parse(&string_attr(&item, "order_id")?)
            .map(Some)
            .map_err(|e| StoreError::Corrupt(e.to_string()))
    }

    async fn list_watched_orders(
        &self,
        chain: ChainId,
        now: Timestamp,
    ) -> StoreResult<Vec<PayOrder>> {
        self.query_index(
            "deposits_by_chain",
            "gsi5pk = :p AND gsi5sk > :now",
            vec![
                (":p", s(format!("DEPOSITS#{chain}"))),
                (":now", s(now.to_key())),
            ],
            None,
        )
        .await?
        .iter()
        .map(doc)
        .collect()
    }

    async fn list_stalled_orders(
        &self,
        updated_before: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<PayOrder>> {
        self.oldest_in_shards("CHECKS", updated_before, limit).await
    }

    async fn scan_cursor(&self, chain: ChainId) -> StoreResult<Option<u64>> {
        let Some(item) = self.get_doc(&format!("SCAN#{chain}"), "SCAN").await? else {
            return Ok(None);
        };
        match item.get("block") {
            Some(AttributeValue::N(b)) => b
                .parse()
                .map(Some)
                .map_err(|_| StoreError::Corrupt(format!("scan cursor {b}"))),
            _ => Err(StoreError::Corrupt("scan cursor without a block".into())),
        }
    }

    async fn set_scan_cursor(
        &self,
        chain: ChainId,
        expected: Option<u64>,
        next: u64,
    ) -> StoreResult<()> {
        let mut item = base_item(format!("SCAN#{chain}"), "SCAN");
        item.insert("block".into(), n(next));
        self.put_guarded(item, "block", Guard::value(expected))
            .await
    }
}
