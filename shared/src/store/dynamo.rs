//! DynamoDB adapter: one table, single-table design (DESIGN §7).
//!
//! | item | pk | sk | notes |
//! |---|---|---|---|
//! | organization | `ORG#id` | `ORG` | |
//! | API key | `APIKEY#sha256` | `APIKEY` | looked up by hash on every request |
//! | key pointer | `KEY#id` | `KEY` | `key_hash`, so keys can be revoked by id |
//! | pay order | `ORDER#id` | `ORDER` | `version` guards every write; GSIs below |
//! | event | `EVENT#id` | `EVENT` | written in the same transaction as its transition |
//! | nonce | `NONCE#org#mode#nonce` | `NONCE` | uniqueness per organization and mode |
//! | tx claim | `TX#org#mode#chain#hash#position` | `TX` | a transfer pays at most one order of an organization and mode |
//! | xpub index | `XPUB#sha256(xpub)` | `XPUB` | the next derivation index of an xpub (atomic counter) |
//! | idempotency | `IDEMP#org#mode#key` | `IDEMP` | TTL 24 h |
//! | claim | `CLAIM#key` | `CLAIM` | replay and single-use nonce claims, TTL |
//! | webhook endpoint | `ORG#org` | `WHEP#mode#id` | listed by querying the org's partition |
//! | delivery | `DELIVERY#id` | `DELIVERY` | GSI `deliveries_by_endpoint` |
//! | merchant wallet | `ORG#org` | `WALLET#mode#chain` | one per chain and mode |
//! | checkout settings | `ORG#org` | `CHECKOUT` | the hosted page's branding |
//! | rate counter | `RATE#bucket#caller#window` | `RATE` | atomic counter, TTL at the window's end |
//!
//! Every record keeps its full JSON in `doc`; the attributes beside it exist for keys,
//! indexes and filters. GSIs: `orders_by_org` (`gsi1pk = ORDERS#org#mode`, `gsi1sk =
//! created#id`), `orders_by_expiry` (sparse: only expirable orders carry `gsi2pk =
//! EXPIRY#shard`, `gsi2sk = expires#id`), `events_by_org` (`gsi3pk = EVENTS#org#mode`),
//! `deliveries_by_endpoint` (`gsi4pk = DELIVERIES#endpoint`, `gsi4sk = created#id`),
//! `deposits_by_chain` (sparse: only orders waiting for a payment carry `gsi5pk =
//! DEPOSITS#chain`, `gsi5sk = deposit_address#id`). The deposit scan's cursor per chain is
//! the item `SCAN#chain` / `SCAN` with its last block in `block`.
//! TTL attribute: `ttl` (epoch seconds); code checks expiry too, since TTL deletes late.

use super::keys::{self, expiry_key, mode_of, org_partition, parse_doc, sort_key};
use super::*;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, Projection, ProjectionType, Put, ScalarAttributeType, StreamSpecification,
    StreamViewType, TimeToLiveSpecification, TransactWriteItem,
};
use std::collections::HashMap;

type Item = HashMap<String, AttributeValue>;

const EXPIRY_SHARDS: u32 = 4;

/// The DynamoDB store. Cheap to clone; share one per process, built at init.
#[derive(Clone, Debug)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

impl DynamoStore {
    /// Writes `item` whatever is there (settings, a finished idempotency record).
    async fn put_item(&self, item: Item) -> StoreResult<()> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(fault)?;
        Ok(())
    }

    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

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

    async fn get_doc(&self, pk: &str, sk: &str) -> StoreResult<Option<Item>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(fault)?;
        Ok(out.item)
    }

    fn put(&self, item: Item, condition: &str) -> Result<Put, StoreError> {
        Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition)
            .build()
            .map_err(StoreError::unavailable)
    }

    /// Runs a transaction; on cancellation returns the index of each failed condition.
    async fn transact(&self, puts: Vec<Put>) -> StoreResult<Result<(), Vec<(usize, String)>>> {
        let items = puts
            .into_iter()
            .map(|p| TransactWriteItem::builder().put(p).build())
            .collect();
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(Ok(())),
            Err(SdkError::ServiceError(e)) if e.err().is_transaction_canceled_exception() => {
                let aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(tc) = e.err() else {
                    unreachable!("checked just above")
                };
                let failed = tc
                    .cancellation_reasons()
                    .iter()
                    .enumerate()
                    .filter_map(|(i, r)| match r.code() {
                        Some("None") | None => None,
                        Some(code) => Some((i, code.to_owned())),
                    })
                    .collect();
                Ok(Err(failed))
            }
            Err(e) => Err(fault(e)),
        }
    }

    /// The items of a GSI query in index order, page after page: all of them, or at least
    /// `at_least` when there are that many (the last page read is kept whole).
    async fn query_index(
        &self,
        index: &str,
        key_condition: &str,
        values: Vec<(&str, AttributeValue)>,
        at_least: Option<usize>,
    ) -> StoreResult<Vec<Item>> {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let mut q = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(index)
                .key_condition_expression(key_condition)
                .set_exclusive_start_key(start.take());
            for (name, value) in &values {
                q = q.expression_attribute_values(*name, value.clone());
            }
            if let Some(n) = at_least {
                q = q.limit(n as i32);
            }
            let page = q.send().await.map_err(fault)?;
            out.extend(page.items().iter().cloned());
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() && at_least.is_none_or(|n| out.len() < n) => {
                    start = Some(k)
                }
                _ => return Ok(out),
            }
        }
    }

    /// A newest-first page of the records in one partition of a GSI, with an optional filter.
    #[allow(clippy::too_many_arguments)]
    async fn page_newest_first<T: serde::de::DeserializeOwned>(
        &self,
        index: &str,
        pk_attr: &str,
        sk_attr: &str,
        partition: String,
        w: &ListWindow,
        table_key: impl Fn(&str) -> (String, String),
        filter: Filter,
    ) -> StoreResult<Page<T>> {
        let want = w.page_size() + 1;
        let Some(range) = keys::page_range(w) else {
            return Ok(keys::page(Vec::new(), w.page_size()));
        };
        let mut start: Option<Item> = range.after.as_ref().map(|after| {
            let id = after.rsplit('#').next().unwrap_or_default();
            let (pk, sk) = table_key(id);
            Item::from([
                ("pk".into(), s(pk)),
                ("sk".into(), s(sk)),
                (pk_attr.into(), s(&partition)),
                (sk_attr.into(), s(after)),
            ])
        });
        let mut found = Vec::new();
        loop {
            let mut q = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(index)
                .key_condition_expression("#p = :p AND #s BETWEEN :lo AND :hi")
                .expression_attribute_names("#p", pk_attr)
                .expression_attribute_names("#s", sk_attr)
                .expression_attribute_values(":p", s(&partition))
                .expression_attribute_values(":lo", s(&range.low))
                .expression_attribute_values(":hi", s(&range.high))
                .scan_index_forward(false)
                .limit(want.max(25) as i32)
                .set_exclusive_start_key(start.take());
            if !filter.clauses.is_empty() {
                q = q.filter_expression(filter.clauses.join(" AND "));
                for (k, v) in &filter.names {
                    q = q.expression_attribute_names(k, v);
                }
                for (k, v) in &filter.values {
                    q = q.expression_attribute_values(k, v.clone());
                }
            }
            let out = q.send().await.map_err(fault)?;
            for item in out.items() {
                let doc = string_attr(item, "doc")?;
                found.push((string_attr(item, sk_attr)?, parse_doc(&doc)?));
                if found.len() == want {
                    return Ok(keys::page(found, w.page_size()));
                }
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(keys::page(found, w.page_size())),
            }
        }
    }
}

/// A filter expression under construction.
#[derive(Default)]
struct Filter {
    clauses: Vec<String>,
    names: Vec<(String, String)>,
    values: Vec<(String, AttributeValue)>,
}

impl Filter {
    fn eq(&mut self, attr: &str, v: AttributeValue) {
        let n = self.clauses.len();
        self.clauses.push(format!("#f{n} = :f{n}"));
        self.names.push((format!("#f{n}"), attr.to_owned()));
        self.values.push((format!(":f{n}"), v));
    }
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// A fault of the service or the network, described briefly (`Code: message`), without
/// the raw response.
fn fault<E, R>(e: SdkError<E, R>) -> StoreError
where
    E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let text = match &e {
        SdkError::ServiceError(se) => format!(
            "DynamoDB {}: {}",
            se.err().code().unwrap_or("error"),
            se.err().message().unwrap_or("no message")
        ),
        other => {
            let mut text = format!("DynamoDB unreachable: {other}");
            let mut source = std::error::Error::source(other);
            while let Some(cause) = source {
                text.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            text
        }
    };
    StoreError::Unavailable(text.into())
}

fn string_attr(item: &Item, name: &str) -> StoreResult<String> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Ok(v.clone()),
        _ => Err(StoreError::Corrupt(format!(
            "missing string attribute {name}"
        ))),
    }
}

fn doc<T: serde::de::DeserializeOwned>(item: &Item) -> StoreResult<T> {
    let text = string_attr(item, "doc")?;
    parse_doc(&text)
}

fn to_doc<T: serde::Serialize>(v: &T) -> AttributeValue {
    s(serde_json::to_string(v).expect("domain records always serialize"))
}

fn base_item(pk: String, sk: &str) -> Item {
    Item::from([("pk".into(), s(pk)), ("sk".into(), s(sk))])
}

const NEW: &str = "attribute_not_exists(pk)";

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

fn event_item(e: &Event) -> Item {
    let mut item = base_item(format!("EVENT#{}", e.id), "EVENT");
    item.insert("doc".into(), to_doc(e));
    item.insert("type".into(), s(e.event_type.as_str()));
    item.insert(
        "gsi3pk".into(),
        s(org_partition(
            "EVENTS",
            &e.organization_id,
            mode_of(e.livemode),
        )),
    );
    item.insert("gsi3sk".into(), s(sort_key(e.created_at, e.id.as_str())));
    if let Some(o) = &e.order_id {
        item.insert("order_id".into(), s(o.as_str()));
    }
    item
}

/// A cancelled transaction that no condition of ours explains: the store is unavailable.
fn cancelled(failed: &[(usize, String)]) -> StoreError {
    StoreError::Unavailable(format!("transaction cancelled: {failed:?}").into())
}

fn failed_code_is_condition(code: &str) -> bool {
    code == "ConditionalCheckFailed"
}

#[async_trait]
impl OrgStore for DynamoStore {
    async fn create_organization(&self, org: &Organization) -> StoreResult<()> {
        let mut item = base_item(format!("ORG#{}", org.id), "ORG");
        item.insert("doc".into(), to_doc(org));
        match self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(NEW)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                Err(StoreError::AlreadyExists)
            }
            Err(e) => Err(fault(e)),
        }
    }

    async fn get_organization(&self, id: &OrgId) -> StoreResult<Option<Organization>> {
        self.get_doc(&format!("ORG#{id}"), "ORG")
            .await?
            .map(|i| doc(&i))
            .transpose()
    }

    async fn get_checkout_settings(&self, org: &OrgId) -> StoreResult<Option<CheckoutSettings>> {
        self.get_doc(&format!("ORG#{org}"), "CHECKOUT")
            .await?
            .map(|i| doc(&i))
            .transpose()
    }

    async fn put_checkout_settings(&self, org: &OrgId, st: &CheckoutSettings) -> StoreResult<()> {
        let mut item = base_item(format!("ORG#{org}"), "CHECKOUT");
        item.insert("doc".into(), to_doc(st));
        self.put_item(item).await
    }
}

#[async_trait]
impl RateLimitStore for DynamoStore {
    async fn count_hit(&self, key: &str, window_ends: Timestamp) -> StoreResult<u64> {
        // One atomic counter per window; TTL removes it (a little) after the window.
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(format!("RATE#{key}")))
            .key("sk", s("RATE"))
            .update_expression("ADD hits :one SET #ttl = :ttl")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":ttl", n(window_ends.unix()))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(fault)?;
        match out.attributes.as_ref().and_then(|a| a.get("hits")) {
            Some(AttributeValue::N(v)) => v
                .parse()
                .map_err(|_| StoreError::Corrupt("rate counter is not a number".into())),
            _ => Err(StoreError::Corrupt("rate counter missing".into())),
        }
    }
}

#[async_trait]
impl KeyStore for DynamoStore {
    async fn create_api_key(&self, key: &ApiKey) -> StoreResult<()> {
        let mut record = base_item(format!("APIKEY#{}", key.key_hash), "APIKEY");
        record.insert("doc".into(), to_doc(key));
        let mut pointer = base_item(format!("KEY#{}", key.id), "KEY");
        pointer.insert("key_hash".into(), s(&key.key_hash));
        match self
            .transact(vec![self.put(record, NEW)?, self.put(pointer, NEW)?])
            .await?
        {
            Ok(()) => Ok(()),
            Err(_) => Err(StoreError::AlreadyExists),
        }
    }

    async fn get_api_key_by_hash(&self, key_hash: &str) -> StoreResult<Option<ApiKey>> {
        self.get_doc(&format!("APIKEY#{key_hash}"), "APIKEY")
            .await?
            .map(|i| doc(&i))
            .transpose()
    }

    async fn get_api_key(&self, id: &KeyId) -> StoreResult<Option<ApiKey>> {
        let Some(pointer) = self.get_doc(&format!("KEY#{id}"), "KEY").await? else {
            return Ok(None);
        };
        self.get_api_key_by_hash(&string_attr(&pointer, "key_hash")?)
            .await
    }

    async fn revoke_api_key(&self, id: &KeyId, at: Timestamp) -> StoreResult<ApiKey> {
        let mut key = self.get_api_key(id).await?.ok_or(StoreError::NotFound)?;
        if key.revoked_at.is_some() {
            return Ok(key);
        }
        key.revoked_at = Some(at);
        let mut record = base_item(format!("APIKEY#{}", key.key_hash), "APIKEY");
        record.insert("doc".into(), to_doc(&key));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(record))
            .condition_expression("attribute_exists(pk)")
            .send()
            .await
            .map_err(fault)?;
        Ok(key)
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
        match self.transact(puts).await? {
            Ok(()) => Ok(()),
            Err(failed) => {
                if failed
                    .iter()
                    .any(|(i, c)| *i == 2 && failed_code_is_condition(c))
                {
                    Err(StoreError::DuplicateNonce)
                } else if failed.iter().any(|(_, c)| failed_code_is_condition(c)) {
                    Err(StoreError::AlreadyExists)
                } else {
                    Err(cancelled(&failed))
                }
            }
        }
    }

    async fn get_order(&self, id: &OrderId) -> StoreResult<Option<PayOrder>> {
        self.get_doc(&format!("ORDER#{id}"), "ORDER")
            .await?
            .map(|i| doc(&i))
            .transpose()
    }

    async fn update_order(&self, u: &OrderUpdate) -> StoreResult<()> {
        let order = Put::builder()
            .table_name(&self.table)
            .set_item(Some(order_item(u.order())))
            .condition_expression("#v = :v")
            .expression_attribute_names("#v", "version")
            .expression_attribute_values(":v", n(u.expected_version()))
            .build()
            .map_err(StoreError::unavailable)?;
        let mut puts = vec![order];
        if let Some(e) = u.event() {
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
        match self.transact(puts).await? {
            Ok(()) => Ok(()),
            Err(failed) => {
                let conflict = StoreError::VersionConflict {
                    expected: u.expected_version(),
                };
                for (i, code) in &failed {
                    if *i == 0 || code == "TransactionConflict" {
                        return Err(conflict);
                    }
                }
                match failed.iter().find(|(i, _)| *i >= first_claim) {
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
        let mut req = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item));
        req = match expected {
            None => req.condition_expression("attribute_not_exists(pk)"),
            Some(b) => req
                .condition_expression("#b = :b")
                .expression_attribute_names("#b", "block")
                .expression_attribute_values(":b", n(b)),
        };
        conditional_put(req, expected.unwrap_or(0)).await
    }
}

#[async_trait]
impl EventStore for DynamoStore {
    async fn get_event(&self, id: &EventId) -> StoreResult<Option<Event>> {
        self.get_doc(&format!("EVENT#{id}"), "EVENT")
            .await?
            .map(|i| doc(&i))
            .transpose()
    }

    async fn list_events(&self, w: &ListWindow, f: &EventFilter) -> StoreResult<Page<Event>> {
        let mut filter = Filter::default();
        if let Some(t) = f.event_type {
            filter.eq("type", s(t.as_str()));
        }
        self.page_newest_first(
            "events_by_org",
            "gsi3pk",
            "gsi3sk",
            org_partition("EVENTS", &w.organization_id, w.mode),
            w,
            |id| (format!("EVENT#{id}"), "EVENT".into()),
            filter,
        )
        .await
    }
}

const IN_FLIGHT: &str = "in_flight";
const COMPLETED: &str = "completed";

#[async_trait]
impl IdempotencyStore for DynamoStore {
    async fn idempotency_begin(
        &self,
        scope: &IdempotencyScope,
        fingerprint: &str,
        now: Timestamp,
    ) -> StoreResult<IdempotencyBegin> {
        let pk = format!("IDEMP#{}", scope.storage_key());
        let expires = now.plus_seconds(IDEMPOTENCY_TTL_SECS).unix();
        let mut item = base_item(pk.clone(), "IDEMP");
        item.insert("fingerprint".into(), s(fingerprint));
        item.insert("state".into(), s(IN_FLIGHT));
        item.insert(
            "locked_until".into(),
            n(now.plus_seconds(IDEMPOTENCY_LOCK_SECS).unix()),
        );
        item.insert("expires_at".into(), n(expires));
        item.insert("ttl".into(), n(expires));
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            // Free, expired, or an in-flight lock left behind by a crashed request.
            .condition_expression(
                "attribute_not_exists(pk) OR expires_at < :now OR (#st = :inflight AND locked_until < :now)",
            )
            .expression_attribute_names("#st", "state")
            .expression_attribute_values(":now", n(now.unix()))
            .expression_attribute_values(":inflight", s(IN_FLIGHT))
            .send()
            .await;
        match put {
            Ok(_) => return Ok(IdempotencyBegin::Started),
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {}
            Err(e) => return Err(fault(e)),
        }
        let Some(existing) = self.get_doc(&pk, "IDEMP").await? else {
            // Deleted between our write and read (released): let the caller retry.
            return Ok(IdempotencyBegin::InFlight);
        };
        if string_attr(&existing, "fingerprint")? != fingerprint {
            return Ok(IdempotencyBegin::Mismatch);
        }
        if string_attr(&existing, "state")? == COMPLETED {
            let resp = parse_doc(&string_attr(&existing, "response")?)?;
            return Ok(IdempotencyBegin::Replay(resp));
        }
        Ok(IdempotencyBegin::InFlight)
    }

    async fn idempotency_complete(
        &self,
        scope: &IdempotencyScope,
        fingerprint: &str,
        response: &StoredResponse,
        now: Timestamp,
    ) -> StoreResult<()> {
        let expires = now.plus_seconds(IDEMPOTENCY_TTL_SECS).unix();
        let mut item = base_item(format!("IDEMP#{}", scope.storage_key()), "IDEMP");
        item.insert("fingerprint".into(), s(fingerprint));
        item.insert("state".into(), s(COMPLETED));
        item.insert("response".into(), to_doc(response));
        item.insert("locked_until".into(), n(0));
        item.insert("expires_at".into(), n(expires));
        item.insert("ttl".into(), n(expires));
        self.put_item(item).await
    }

    async fn idempotency_release(
        &self,
        scope: &IdempotencyScope,
        fingerprint: &str,
    ) -> StoreResult<()> {
        let res = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(format!("IDEMP#{}", scope.storage_key())))
            .key("sk", s("IDEMP"))
            .condition_expression("fingerprint = :f AND #st = :inflight")
            .expression_attribute_names("#st", "state")
            .expression_attribute_values(":f", s(fingerprint))
            .expression_attribute_values(":inflight", s(IN_FLIGHT))
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                Ok(())
            }
            Err(e) => Err(fault(e)),
        }
    }
}

#[async_trait]
impl ClaimStore for DynamoStore {
    async fn claim_once(
        &self,
        key: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> StoreResult<bool> {
        let mut item = base_item(format!("CLAIM#{key}"), "CLAIM");
        item.insert("expires_at".into(), n(expires_at.unix()));
        item.insert("ttl".into(), n(expires_at.unix()));
        let res = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk) OR expires_at < :now")
            .expression_attribute_values(":now", n(now.unix()))
            .send()
            .await;
        match res {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                Ok(false)
            }
            Err(e) => Err(fault(e)),
        }
    }
}

fn endpoint_key(org: &OrgId, mode: KeyMode, id: &WebhookEndpointId) -> (String, String) {
    (format!("ORG#{org}"), format!("WHEP#{mode}#{id}"))
}

fn endpoint_item(e: &WebhookEndpoint) -> Item {
    let (pk, sk) = endpoint_key(&e.organization_id, mode_of(e.livemode), &e.id);
    let mut item = base_item(pk, &sk);
    item.insert("doc".into(), to_doc(e));
    item.insert("version".into(), n(e.version));
    item
}

fn delivery_item(d: &Delivery) -> Item {
    let mut item = base_item(format!("DELIVERY#{}", d.id), "DELIVERY");
    item.insert("doc".into(), to_doc(d));
    item.insert("version".into(), n(d.version));
    item.insert("gsi4pk".into(), s(delivery_partition(d)));
    item.insert("gsi4sk".into(), s(sort_key(d.created_at, d.id.as_str())));
    item
}

/// Sends a conditional PutItem: a failed condition is a `VersionConflict` (with `expected`).
async fn conditional_put(
    req: aws_sdk_dynamodb::operation::put_item::builders::PutItemFluentBuilder,
    expected: u64,
) -> StoreResult<()> {
    match req.send().await {
        Ok(_) => Ok(()),
        Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
            Err(StoreError::VersionConflict { expected })
        }
        Err(e) => Err(fault(e)),
    }
}

impl DynamoStore {
    /// Writes a versioned record only if the stored `version` is still `expected`.
    async fn put_if_version(&self, item: Item, expected: u64) -> StoreResult<()> {
        let req = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("#v = :v")
            .expression_attribute_names("#v", "version")
            .expression_attribute_values(":v", n(expected));
        conditional_put(req, expected).await
    }
}

fn versioned_put(table: &str, item: Item, expected: u64) -> Result<Put, StoreError> {
    Put::builder()
        .table_name(table)
        .set_item(Some(item))
        .condition_expression("#v = :v")
        .expression_attribute_names("#v", "version")
        .expression_attribute_values(":v", n(expected))
        .build()
        .map_err(StoreError::unavailable)
}

#[async_trait]
impl WebhookStore for DynamoStore {
    async fn create_endpoint(&self, e: &WebhookEndpoint) -> StoreResult<()> {
        match self
            .transact(vec![self.put(endpoint_item(e), NEW)?])
            .await?
        {
            Ok(()) => Ok(()),
            Err(_) => Err(StoreError::AlreadyExists),
        }
    }

    async fn get_endpoint(
        &self,
        org: &OrgId,
        id: &WebhookEndpointId,
    ) -> StoreResult<Option<WebhookEndpoint>> {
        for mode in [KeyMode::Test, KeyMode::Live] {
            let (pk, sk) = endpoint_key(org, mode, id);
            if let Some(item) = self.get_doc(&pk, &sk).await? {
                return doc(&item).map(Some);
            }
        }
        Ok(None)
    }

    async fn update_endpoint(
        &self,
        e: &WebhookEndpoint,
        expected_version: u64,
        event: Option<&Event>,
    ) -> StoreResult<()> {
        let mut puts = vec![versioned_put(
            &self.table,
            endpoint_item(e),
            expected_version,
        )?];
        if let Some(ev) = event {
            puts.push(self.put(event_item(ev), NEW)?);
        }
        match self.transact(puts).await? {
            Ok(()) => Ok(()),
            Err(failed) if failed.iter().any(|(i, _)| *i == 0) => {
                match self.get_endpoint(&e.organization_id, &e.id).await? {
                    None => Err(StoreError::NotFound),
                    Some(_) => Err(StoreError::VersionConflict {
                        expected: expected_version,
                    }),
                }
            }
            Err(failed) => Err(cancelled(&failed)),
        }
    }

    async fn delete_endpoint(&self, org: &OrgId, id: &WebhookEndpointId) -> StoreResult<bool> {
        let Some(e) = self.get_endpoint(org, id).await? else {
            return Ok(false);
        };
        let (pk, sk) = endpoint_key(org, mode_of(e.livemode), id);
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .send()
            .await
            .map_err(fault)?;
        Ok(true)
    }

    async fn list_endpoints(
        &self,
        org: &OrgId,
        mode: KeyMode,
    ) -> StoreResult<Vec<WebhookEndpoint>> {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :p AND begins_with(sk, :prefix)")
                .expression_attribute_values(":p", s(format!("ORG#{org}")))
                .expression_attribute_values(":prefix", s(format!("WHEP#{mode}#")))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(fault)?;
            for item in page.items() {
                out.push(doc::<WebhookEndpoint>(item)?);
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        out.sort_by(|a, b| (a.created_at, a.id.as_str()).cmp(&(b.created_at, b.id.as_str())));
        Ok(out)
    }

    async fn create_delivery(&self, d: &Delivery) -> StoreResult<bool> {
        match self
            .transact(vec![self.put(delivery_item(d), NEW)?])
            .await?
        {
            Ok(()) => Ok(true),
            Err(failed) if failed.iter().all(|(_, c)| failed_code_is_condition(c)) => Ok(false),
            Err(failed) => Err(cancelled(&failed)),
        }
    }

    async fn get_delivery(&self, id: &DeliveryId) -> StoreResult<Option<Delivery>> {
        self.get_doc(&format!("DELIVERY#{id}"), "DELIVERY")
            .await?
            .map(|i| doc(&i))
            .transpose()
    }

    async fn update_delivery(&self, d: &Delivery, expected_version: u64) -> StoreResult<()> {
        self.put_if_version(delivery_item(d), expected_version)
            .await
    }

    async fn list_deliveries(
        &self,
        endpoint: &WebhookEndpointId,
        w: &ListWindow,
    ) -> StoreResult<Page<Delivery>> {
        self.page_newest_first(
            "deliveries_by_endpoint",
            "gsi4pk",
            "gsi4sk",
            format!("DELIVERIES#{endpoint}"),
            w,
            |id| (format!("DELIVERY#{id}"), "DELIVERY".into()),
            Filter::default(),
        )
        .await
    }
}

fn wallet_key(org: &OrgId, mode: KeyMode, chain: ChainId) -> (String, String) {
    (format!("ORG#{org}"), format!("WALLET#{mode}#{chain}"))
}

fn wallet_item(w: &MerchantWallet) -> Item {
    let (pk, sk) = wallet_key(&w.organization_id, mode_of(w.livemode), w.chain_id);
    let mut item = base_item(pk, &sk);
    item.insert("doc".into(), to_doc(w));
    item.insert("version".into(), n(w.version));
    item
}

#[async_trait]
impl WalletStore for DynamoStore {
    async fn create_wallet(&self, w: &MerchantWallet) -> StoreResult<()> {
        match self.transact(vec![self.put(wallet_item(w), NEW)?]).await? {
            Ok(()) => Ok(()),
            Err(_) => Err(StoreError::AlreadyExists),
        }
    }

    async fn get_wallet(
        &self,
        org: &OrgId,
        mode: KeyMode,
        chain: ChainId,
    ) -> StoreResult<Option<MerchantWallet>> {
        let (pk, sk) = wallet_key(org, mode, chain);
        self.get_doc(&pk, &sk).await?.map(|i| doc(&i)).transpose()
    }

    async fn list_wallets(&self, org: &OrgId, mode: KeyMode) -> StoreResult<Vec<MerchantWallet>> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :p AND begins_with(sk, :prefix)")
            .expression_attribute_values(":p", s(format!("ORG#{org}")))
            .expression_attribute_values(":prefix", s(format!("WALLET#{mode}#")))
            .consistent_read(true)
            .send()
            .await
            .map_err(fault)?;
        let mut wallets = out
            .items()
            .iter()
            .map(doc::<MerchantWallet>)
            .collect::<StoreResult<Vec<_>>>()?;
        wallets.sort_by_key(|w| w.chain_id);
        Ok(wallets)
    }

    async fn update_wallet(&self, w: &MerchantWallet, expected_version: u64) -> StoreResult<()> {
        self.put_if_version(wallet_item(w), expected_version).await
    }

    async fn delete_wallet(&self, org: &OrgId, mode: KeyMode, chain: ChainId) -> StoreResult<bool> {
        let (pk, sk) = wallet_key(org, mode, chain);
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .map_err(fault)?;
        Ok(out.attributes.is_some_and(|a| !a.is_empty()))
    }

    async fn next_xpub_index(&self, xpub: &str) -> StoreResult<u32> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(format!("XPUB#{}", super::xpub_counter_key(xpub))))
            .key("sk", s("XPUB"))
            .update_expression("ADD #n :one")
            .expression_attribute_names("#n", "next")
            .expression_attribute_values(":one", n(1))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(fault)?;
        let next: u64 = match out.attributes().and_then(|a| a.get("next")) {
            Some(AttributeValue::N(v)) => v
                .parse()
                .map_err(|_| StoreError::Corrupt(format!("xpub counter {v}")))?,
            _ => return Err(StoreError::Corrupt("xpub counter without a value".into())),
        };
        next.checked_sub(1)
            .and_then(|i| u32::try_from(i).ok())
            .filter(|i| *i < 1 << 31)
            .ok_or_else(|| StoreError::Corrupt("derivation indexes exhausted".into()))
    }
}

/// Creates the table with its GSIs, stream and TTL, as `template.yaml` declares it.
/// Used by the tests and by `payorders tables create`. `AlreadyExists` if it exists.
pub async fn create_table(client: &Client, table: &str) -> Result<(), StoreError> {
    let attr = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(StoreError::unavailable)
    };
    let key = |name: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .map_err(StoreError::unavailable)
    };
    let gsi = |name: &str, pk: &str, sk: &str| -> Result<GlobalSecondaryIndex, StoreError> {
        GlobalSecondaryIndex::builder()
            .index_name(name)
            .key_schema(key(pk, KeyType::Hash)?)
            .key_schema(key(sk, KeyType::Range)?)
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::All)
                    .build(),
            )
            .build()
            .map_err(StoreError::unavailable)
    };
    let mut req = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key("pk", KeyType::Hash)?)
        .key_schema(key("sk", KeyType::Range)?)
        .global_secondary_indexes(gsi("orders_by_org", "gsi1pk", "gsi1sk")?)
        .global_secondary_indexes(gsi("orders_by_expiry", "gsi2pk", "gsi2sk")?)
        .global_secondary_indexes(gsi("events_by_org", "gsi3pk", "gsi3sk")?)
        .global_secondary_indexes(gsi("deliveries_by_endpoint", "gsi4pk", "gsi4sk")?)
        .global_secondary_indexes(gsi("deposits_by_chain", "gsi5pk", "gsi5sk")?)
        .stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::NewImage)
                .build()
                .map_err(StoreError::unavailable)?,
        );
    for a in [
        "pk", "sk", "gsi1pk", "gsi1sk", "gsi2pk", "gsi2sk", "gsi3pk", "gsi3sk", "gsi4pk", "gsi4sk",
        "gsi5pk", "gsi5sk",
    ] {
        req = req.attribute_definitions(attr(a)?);
    }
    match req.send().await {
        Ok(_) => {}
        Err(SdkError::ServiceError(e)) if e.err().is_resource_in_use_exception() => {
            return Err(StoreError::AlreadyExists);
        }
        Err(e) => return Err(fault(e)),
    }
    client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name("ttl")
                .build()
                .map_err(StoreError::unavailable)?,
        )
        .send()
        .await
        .map_err(fault)?;
    Ok(())
}
