//! DynamoDB adapter: one table, single-table design (DESIGN §7).
//!
//! | item | pk | sk | notes |
//! |---|---|---|---|
//! | organization | `ORG#id` | `ORG` | |
//! | API key | `APIKEY#sha256` | `APIKEY` | looked up by hash on every request |
//! | key pointer | `KEY#id` | `KEY` | `key_hash`, so keys can be revoked by id |
//! | key listing | `ORG#org` | `APIKEY#mode#id` | a copy of the key record, to list an organization's keys |
//! | pay order | `ORDER#id` | `ORDER` | `version` guards every write; GSIs below |
//! | event | `EVENT#id` | `EVENT` | written in the same transaction as its transition |
//! | nonce | `NONCE#org#mode#nonce` | `NONCE` | uniqueness per organization and mode |
//! | tx claim | `TX#org#mode#chain#hash#position` | `TX` | a transfer pays at most one order of an organization and mode |
//! | xpub index | `XPUB#sha256(xpub)` | `XPUB` | the next derivation index of an xpub (atomic counter) |
//! | idempotency | `IDEMP#org#mode#key` | `IDEMP` | TTL 24 h |
//! | claim | `CLAIM#key` | `CLAIM` | replay and single-use nonce claims, TTL |
//! | webhook endpoint | `ORG#org` | `WHEP#mode#id` | listed by querying the org's partition |
//! | additions | `ORG#org` | `ADDED#WHEP#mode`, `ADDED#APIKEY#mode` | `version` moved by every addition to a capped list (`capped`) |
//! | delivery | `DELIVERY#id` | `DELIVERY` | GSI `deliveries_by_endpoint` |
//! | audit entry | `AUDIT#id` | `AUDIT` | GSIs `events_by_org` (`AUDIT#org#mode`) and, about an object, `deliveries_by_endpoint` (`AUDITOF#org#mode#object`); TTL a year |
//! | merchant wallet | `ORG#org` | `WALLET#mode#chain` | one per chain and mode |
//! | checkout settings | `ORG#org` | `CHECKOUT` | the hosted page's branding |
//! | rate counter | `RATE#bucket#caller#window` | `RATE` | atomic counter, TTL at the window's end |
//! | analytics hour | `ANALYTICS#org#mode` | `HOUR#<utc hour>` | counters `c#<name>`, grown with `ADD` |
//! | analytics marker | `AGG#<order>#<fact>` | `AGG` | a contribution applied once, TTL 400 days |
//!
//! Every record keeps its full JSON in `doc`, packed (deflated against a preset dictionary,
//! a binary attribute: `store::packed`; JSON text written before that still reads); the
//! attributes beside it exist for keys, indexes and filters. GSIs: `orders_by_org` (`gsi1pk = ORDERS#org#mode`, `gsi1sk =
//! created#id`), `orders_by_expiry` (sparse: only expirable orders carry `gsi2pk =
//! EXPIRY#shard`, `gsi2sk = expires#id`), `events_by_org` (`gsi3pk = EVENTS#org#mode`),
//! `deliveries_by_endpoint` (`gsi4pk = DELIVERIES#endpoint`, `gsi4sk = created#id`),
//! `deposits_by_chain` (sparse: only orders waiting for a payment carry `gsi5pk =
//! DEPOSITS#chain`, `gsi5sk = deposit_address#id`). The deposit scan's cursor per chain is
//! the item `SCAN#chain` / `SCAN` with its last block in `block`.
//! TTL attribute: `ttl` (epoch seconds); code checks expiry too, since TTL deletes late.

mod analytics;
mod api_keys;
mod audit;
mod capped;
mod claims;
mod events;
mod idempotency;
mod orders;
mod orgs;
mod rate_limits;
mod table;
mod wallets;
mod webhooks;

pub use table::{INDEXES, create_table};

use super::keys::{self, parse_doc};
use super::versioned::Guard;
use super::*;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::put_item::builders::PutItemFluentBuilder;
use aws_sdk_dynamodb::types::{
    AttributeValue, KeysAndAttributes, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use std::collections::HashMap;

type Item = HashMap<String, AttributeValue>;

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

    /// A conditional PutItem: `true` when written, `false` when its condition refused it.
    ///
    /// The SDK sends a request again when its answer is lost (a timeout, a dropped
    /// connection, a 500), and the write may have been made all the same: that second
    /// attempt then meets the put's own write, and its condition refuses it. So each put
    /// carries a fresh write token ([`WRITE_TOKEN`]) and asks for the stored item when
    /// refused (`ReturnValuesOnConditionCheckFailure`, which costs no read units): an item
    /// holding this put's token is its own write, and the put was written. (Transactions
    /// need none of this: the SDK gives each a `ClientRequestToken`, and DynamoDB answers
    /// its retry with the first attempt's outcome.)
    async fn put_if(
        &self,
        put: PutItemFluentBuilder,
    ) -> Result<bool, SdkError<PutItemError, HttpResponse>> {
        let token = write_token();
        let res = put
            .item(WRITE_TOKEN, token.clone())
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match res {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                let PutItemError::ConditionalCheckFailedException(refused) = e.err() else {
                    unreachable!("checked just above")
                };
                Ok(own_write(refused.item(), &token).is_some())
            }
            Err(e) => Err(e),
        }
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

    /// A strongly consistent read: what the last acknowledged write left.
    async fn get_doc(&self, pk: &str, sk: &str) -> StoreResult<Option<Item>> {
        self.read_doc(pk, sk, true).await
    }

    /// A read of an item that is never changed once written (an event): eventually
    /// consistent, at half the read units, and strongly consistent only when that finds
    /// nothing (a replica not yet holding a write just made), so a missing answer is sure.
    async fn get_immutable_doc(&self, pk: &str, sk: &str) -> StoreResult<Option<Item>> {
        match self.read_doc(pk, sk, false).await? {
            Some(item) => Ok(Some(item)),
            None => self.read_doc(pk, sk, true).await,
        }
    }

    async fn read_doc(&self, pk: &str, sk: &str, consistent: bool) -> StoreResult<Option<Item>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .consistent_read(consistent)
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

    /// Runs a transaction; on cancellation returns the index of each failed condition. One
    /// put alone is a conditional PutItem: as atomic, at half a transaction's write units.
    async fn transact(&self, mut puts: Vec<Put>) -> StoreResult<Result<(), Vec<(usize, String)>>> {
        if puts.len() == 1 {
            let p = puts.remove(0);
            let put = self
                .client
                .put_item()
                .table_name(p.table_name())
                .set_item(Some(p.item().clone()))
                .set_condition_expression(p.condition_expression().map(str::to_owned))
                .set_expression_attribute_names(p.expression_attribute_names().cloned())
                .set_expression_attribute_values(p.expression_attribute_values().cloned());
            return Ok(if self.put_if(put).await.map_err(fault)? {
                Ok(())
            } else {
                Err(vec![(0, "ConditionalCheckFailed".to_owned())])
            });
        }
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
                _ => {
                    self.fill_docs(&mut out).await?;
                    return Ok(out);
                }
            }
        }
    }

    /// Index entries carry keys and the few attributes their queries filter on, not the
    /// records (a write of a record then costs its indexes nothing unless their keys or those
    /// attributes change): each entry gets its record's `doc` from the table, with
    /// consistent reads, 100 keys per BatchGetItem. An entry whose record is gone (TTL) is
    /// dropped.
    async fn fill_docs(&self, entries: &mut Vec<Item>) -> StoreResult<()> {
        let key = |i: &Item| -> StoreResult<(String, String)> {
            Ok((string_attr(i, "pk")?, string_attr(i, "sk")?))
        };
        let mut wanted = Vec::new();
        for e in entries.iter().filter(|e| !e.contains_key("doc")) {
            wanted.push(key(e)?);
        }
        if wanted.is_empty() {
            return Ok(());
        }
        let mut docs: HashMap<(String, String), AttributeValue> = HashMap::new();
        for chunk in wanted.chunks(100) {
            let mut pending: Vec<Item> = chunk
                .iter()
                .map(|(pk, sk)| base_item(pk.clone(), sk))
                .collect();
            while !pending.is_empty() {
                let keys = KeysAndAttributes::builder()
                    .set_keys(Some(pending))
                    .consistent_read(true)
                    .build()
                    .map_err(StoreError::unavailable)?;
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, keys)
                    .send()
                    .await
                    .map_err(fault)?;
                let found = out
                    .responses
                    .and_then(|mut r| r.remove(&self.table))
                    .unwrap_or_default();
                for item in found {
                    if let Some(d) = item.get("doc") {
                        docs.insert(key(&item)?, d.clone());
                    }
                }
                // What DynamoDB left for later (throttling, the 16 MB limit): asked again.
                pending = out
                    .unprocessed_keys
                    .and_then(|mut u| u.remove(&self.table))
                    .map(|k| k.keys)
                    .unwrap_or_default();
            }
        }
        let mut kept = Vec::with_capacity(entries.len());
        for mut e in entries.drain(..) {
            if e.contains_key("doc") {
                kept.push(e);
            } else if let Some(d) = docs.remove(&key(&e)?) {
                e.insert("doc".into(), d);
                kept.push(e);
            }
        }
        *entries = kept;
        Ok(())
    }

    /// Every record of an organization's partition whose sort key starts with `prefix`
    /// (consistent reads, every page), in the order the table keeps them.
    async fn org_records<T: serde::de::DeserializeOwned>(
        &self,
        org: &OrgId,
        prefix: &str,
    ) -> StoreResult<Vec<T>> {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :p AND begins_with(sk, :prefix)")
                .expression_attribute_values(":p", s(format!("ORG#{org}")))
                .expression_attribute_values(":prefix", s(prefix))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(fault)?;
            for item in page.items() {
                out.push(doc::<T>(item)?);
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
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
        keep: impl Fn(&T) -> bool,
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
        let mut entries: Vec<Item> = Vec::new();
        // Where the reads stopped short of a page after [`keys::QUERIES_PER_PAGE`] of them.
        let mut stopped_at = None;
        for query in 1..=keys::QUERIES_PER_PAGE {
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
                .limit(keys::read_per_query(want) as i32)
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
            let take = want - entries.len();
            entries.extend(out.items().iter().take(take).cloned());
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() && entries.len() < want => {
                    if query == keys::QUERIES_PER_PAGE {
                        stopped_at = Some(string_attr(&k, sk_attr)?);
                    }
                    start = Some(k);
                }
                _ => break,
            }
        }
        self.fill_docs(&mut entries).await?;
        let mut found = Vec::with_capacity(entries.len());
        for item in &entries {
            found.push((string_attr(item, sk_attr)?, doc(item)?));
        }
        // The filter ran on the index's copy, which lags the table: see keys::page_kept.
        let full = entries.len() == want;
        Ok(keys::page_kept(
            found,
            w.page_size(),
            full,
            stopped_at,
            keep,
        ))
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

/// A conditional write's outcome: `true` when written, `false` when its condition failed
/// (the item is not as the write expected), a fault otherwise.
fn written<T, E, R>(res: Result<T, SdkError<E, R>>) -> StoreResult<bool>
where
    E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match res {
        Ok(_) => Ok(true),
        Err(SdkError::ServiceError(e))
            if e.err().code() == Some("ConditionalCheckFailedException") =>
        {
            Ok(false)
        }
        Err(e) => Err(fault(e)),
    }
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

/// A record from its `doc`: packed (binary, `store::packed`), or JSON text as records were
/// stored before.
fn doc<T: serde::de::DeserializeOwned>(item: &Item) -> StoreResult<T> {
    parse_doc(&doc_text(item)?)
}

/// The JSON of an item's `doc`. Not generic, and both kinds end in the one `parse_doc` (from
/// text), so each record type's deserializer is compiled once: a second kind of input would
/// add about 120 KB to every function.
fn doc_text(item: &Item) -> StoreResult<std::borrow::Cow<'_, str>> {
    match item.get("doc") {
        Some(AttributeValue::B(packed)) => super::packed::unpack_text(packed.as_ref())
            .map(std::borrow::Cow::Owned)
            .map_err(StoreError::Corrupt),
        Some(AttributeValue::S(text)) => Ok(std::borrow::Cow::Borrowed(text)),
        _ => Err(StoreError::Corrupt("missing attribute doc".into())),
    }
}

/// A record's `doc`, packed (most items then fit in one write unit), or as JSON text when
/// `PAYORDERS_RECORD_FORMAT=json` (see `store::packed::FORMAT_VAR`).
fn to_doc<T: serde::Serialize>(v: &T) -> AttributeValue {
    let json = serde_json::to_vec(v).expect("domain records always serialize");
    if writes_packed() {
        AttributeValue::B(super::packed::pack(&json).into())
    } else {
        AttributeValue::S(String::from_utf8(json).expect("serde_json writes UTF-8"))
    }
}

/// The process's record format, read once. A value other than the two was refused when the
/// function loaded its configuration; here it falls back to the default.
fn writes_packed() -> bool {
    static PACKED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *PACKED.get_or_init(|| {
        let setting = std::env::var(super::packed::FORMAT_VAR).ok();
        super::packed::writes_packed(setting.as_deref()).unwrap_or(true)
    })
}

fn base_item(pk: String, sk: &str) -> Item {
    Item::from([("pk".into(), s(pk)), ("sk".into(), s(sk))])
}

const NEW: &str = "attribute_not_exists(pk)";

/// The attribute in which a conditional put leaves its write token (see
/// [`DynamoStore::put_if`]); written over by the record's next put.
const WRITE_TOKEN: &str = "wt";

/// The stored item a refused write was answered with, if it holds that write's `token`:
/// then it is the write's own (its first attempt, whose answer was lost).
fn own_write<'a>(stored: Option<&'a Item>, token: &AttributeValue) -> Option<&'a Item> {
    stored.filter(|item| item.get(WRITE_TOKEN) == Some(token))
}

/// A token no other write shares: 8 random bytes.
fn write_token() -> AttributeValue {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("the OS random source is unavailable");
    AttributeValue::B(bytes.to_vec().into())
}

/// A cancelled transaction that no condition of ours explains: the store is unavailable.
fn cancelled(failed: &[(usize, String)]) -> StoreError {
    StoreError::Unavailable(format!("transaction cancelled: {failed:?}").into())
}

fn failed_code_is_condition(code: &str) -> bool {
    code == "ConditionalCheckFailed"
}

/// A transaction's item refused by its condition, or by another transaction writing the
/// same item at the same time (`TransactionConflict`): either way, worth reading again and
/// retrying.
fn condition_or_conflict(code: &str) -> bool {
    failed_code_is_condition(code) || code == "TransactionConflict"
}

/// Whether the write at index `at` of a cancelled transaction was refused by its condition.
fn refused_at(failed: &[(usize, String)], at: usize) -> bool {
    failed
        .iter()
        .any(|(i, c)| *i == at && failed_code_is_condition(c))
}

/// What [`Guard::check`] requires, as the condition of a DynamoDB write: the record's
/// `attr` still holds the expected value, or (nothing expected) there is no record.
struct GuardCondition {
    expression: &'static str,
    names: Option<HashMap<String, String>>,
    values: Option<HashMap<String, AttributeValue>>,
}

fn guard_condition(attr: &str, guard: Guard) -> GuardCondition {
    match guard.expected() {
        None => GuardCondition {
            expression: NEW,
            names: None,
            values: None,
        },
        Some(v) => GuardCondition {
            expression: "#v = :v",
            names: Some(HashMap::from([("#v".to_owned(), attr.to_owned())])),
            values: Some(HashMap::from([(":v".to_owned(), n(v))])),
        },
    }
}

/// A transaction's put of a record under `guard` (its version in `version`).
fn guarded_put(table: &str, item: Item, guard: Guard) -> Result<Put, StoreError> {
    let c = guard_condition("version", guard);
    Put::builder()
        .table_name(table)
        .set_item(Some(item))
        .condition_expression(c.expression)
        .set_expression_attribute_names(c.names)
        .set_expression_attribute_values(c.values)
        .build()
        .map_err(StoreError::unavailable)
}

impl DynamoStore {
    /// Writes one record under `guard` on its attribute `attr`; a refused condition is the
    /// guard's conflict.
    async fn put_guarded(&self, item: Item, attr: &str, guard: Guard) -> StoreResult<()> {
        self.put_guarded_same(item, attr, guard, None).await
    }

    /// [`Self::put_guarded`], and only over the same record: where the stored one has the
    /// attribute `same.0`, it must hold `same.1` (records written before that attribute
    /// existed pass on the guard alone).
    async fn put_guarded_same(
        &self,
        item: Item,
        attr: &str,
        guard: Guard,
        same: Option<(&str, AttributeValue)>,
    ) -> StoreResult<()> {
        let c = guard_condition(attr, guard);
        let (mut expression, mut names, mut values) = (
            c.expression.to_owned(),
            c.names.unwrap_or_default(),
            c.values.unwrap_or_default(),
        );
        if let Some((name, value)) = same {
            expression =
                format!("({expression}) AND (attribute_not_exists(#same) OR #same = :same)");
            names.insert("#same".to_owned(), name.to_owned());
            values.insert(":same".to_owned(), value);
        }
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(expression)
            .set_expression_attribute_names((!names.is_empty()).then_some(names))
            .set_expression_attribute_values((!values.is_empty()).then_some(values));
        if self.put_if(put).await.map_err(fault)? {
            Ok(())
        } else {
            Err(guard.conflict())
        }
    }
}

/// A number attribute.
fn number_attr(item: &Item, name: &str) -> StoreResult<i64> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("number attribute {name} is {v}"))),
        _ => Err(StoreError::Corrupt(format!(
            "missing number attribute {name}"
        ))),
    }
}
