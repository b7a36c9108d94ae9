//! What one paid order costs in AWS (issue 14, part 3): one signed SALE from creation to
//! COMPLETED and its webhooks delivered to one endpoint, replayed against moto through the
//! real DynamoDB and SQS adapters, the local host's routes (authorizer included), and the
//! real dispatch-events, aggregate-analytics, confirm-payment and deliver-webhook handlers.
//!
//! Every AWS call goes through a counting proxy in front of moto, which sees each request
//! with its answer. moto's `ConsumedCapacity` is a constant (0.5 or 1 per call, whatever
//! the size), so the proxy computes capacity units by DynamoDB's documented rules from the
//! items themselves (it reads each written item's old and new image beside the call):
//! - write: 1 WRU per started KB of the larger of the old and new item, ×2 in a
//!   transaction (a condition check too); a condition that fails still costs the table's
//!   units; each index the old or new item is in: 1 per started KB of its entry (the
//!   projected attributes, keys included), nothing when neither the entry nor its key
//!   changed, 2 entries when the index key moved;
//! - read: 1 RRU per started 4 KB strongly consistent, half eventually consistent (every
//!   index query); a Query sums the sizes of the items it returns (and reports the items a
//!   filter dropped, which DynamoDB charges too).
//!
//! `PAYORDERS_COST_REPORT=<file>` writes the markdown report there (infra/scripts/bench_cost.sh
//! prints it); the test asserts upper bounds so a change that costs more fails it.

use crate::support::*;
use lambda_http::LambdaEvent;
use lambda_http::aws_lambda_events::event::dynamodb::Event as StreamEvent;
use lambda_http::aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use payorders::queue::SqsQueue;
use payorders::runtime::Services;
use payorders::store::Store;
use payorders::store::dynamo::{DynamoStore, create_table};
use payorders::testing::anvil;
use payorders::*;
use payorders_local::host::Host;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

// ------------------------------------------------------------------ list prices
// us-east-1, on demand, as listed by AWS (DynamoDB's since its November 2024 price cut).
const USD_PER_WRU: f64 = 0.625e-6;
const USD_PER_RRU: f64 = 0.125e-6;
const USD_PER_SQS_REQUEST: f64 = 0.40e-6;
const USD_PER_LAMBDA_REQUEST: f64 = 0.20e-6;
/// arm64 (the template's default architecture), per GB-second.
const USD_PER_LAMBDA_GB_SECOND: f64 = 0.000_013_333_4;
const USD_PER_HTTP_API_REQUEST: f64 = 1.00e-6;
/// `MemorySize` in template.yaml's Globals.
const LAMBDA_MEMORY_GB: f64 = 0.25;
/// The duration model (an assumption, not a measurement: a debug build against moto says
/// nothing about Lambda): a base per invocation and a typical in-region round trip per
/// DynamoDB or SQS call made by the function.
const BASE_MS_PER_INVOCATION: f64 = 5.0;
const MS_PER_AWS_CALL: f64 = 6.0;

// ------------------------------------------------------------------ the counting proxy

#[derive(Clone, Debug)]
enum Projection {
    All,
    KeysOnly,
    Include(Vec<String>),
}

#[derive(Clone, Debug)]
struct Index {
    name: String,
    pk: String,
    sk: String,
    projection: Projection,
}

#[derive(Default, Clone, Debug)]
struct OpTally {
    calls: u64,
    /// Items written (each item of a transaction) or returned.
    items: u64,
    rru: f64,
    wru_table: f64,
    wru_index: BTreeMap<String, f64>,
    /// Query items read but dropped by a filter (DynamoDB charges them; not in `rru`).
    filtered: u64,
}

#[derive(Default, Clone, Debug)]
struct Tally {
    dynamo: BTreeMap<String, OpTally>,
    sqs: BTreeMap<String, u64>,
    /// Write units (table and indexes) by the kind of item written (its `pk` prefix).
    wru_by_kind: BTreeMap<String, f64>,
    /// Read units of single-item reads by the kind of item read.
    rru_by_kind: BTreeMap<String, f64>,
    /// The key of each single-item read (GetItem), in order.
    item_reads: Vec<String>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        for (op, o) in other.dynamo {
            let t = self.dynamo.entry(op).or_default();
            t.calls += o.calls;
            t.items += o.items;
            t.rru += o.rru;
            t.wru_table += o.wru_table;
            t.filtered += o.filtered;
            for (i, u) in o.wru_index {
                *t.wru_index.entry(i).or_default() += u;
            }
        }
        for (op, n) in other.sqs {
            *self.sqs.entry(op).or_default() += n;
        }
        for (k, u) in other.wru_by_kind {
            *self.wru_by_kind.entry(k).or_default() += u;
        }
        for (k, u) in other.rru_by_kind {
            *self.rru_by_kind.entry(k).or_default() += u;
        }
        self.item_reads.extend(other.item_reads);
    }

    /// The items read more than once (by GetItem), as `pk sk ×n`.
    fn repeated_reads(&self) -> Vec<String> {
        let mut seen = BTreeMap::<&str, usize>::new();
        for k in &self.item_reads {
            *seen.entry(k).or_default() += 1;
        }
        seen.into_iter()
            .filter(|(_, n)| *n > 1)
            .map(|(k, n)| format!("{k} ×{n}"))
            .collect()
    }
    fn aws_calls(&self) -> u64 {
        self.dynamo.values().map(|t| t.calls).sum::<u64>() + self.sqs.values().sum::<u64>()
    }
    fn wru(&self) -> f64 {
        self.dynamo
            .values()
            .map(|t| t.wru_table + t.wru_index.values().sum::<f64>())
            .sum()
    }
    fn wru_on_indexes(&self) -> f64 {
        self.dynamo
            .values()
            .map(|t| t.wru_index.values().sum::<f64>())
            .sum()
    }
    fn rru(&self) -> f64 {
        self.dynamo.values().map(|t| t.rru).sum()
    }
}

struct Proxy {
    moto: String,
    http: reqwest::Client,
    counting: AtomicBool,
    tally: Mutex<Tally>,
    indexes: Mutex<Vec<Index>>,
    /// Writes one at a time, so each one's old and new images are its own.
    writes: tokio::sync::Mutex<()>,
}

const AUTH: &str = "AWS4-HMAC-SHA256 Credential=t/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0";

impl Proxy {
    async fn start(moto: String) -> (Arc<Self>, String) {
        let p = Arc::new(Self {
            moto,
            http: payorders::net::http_client().build().unwrap(),
            counting: AtomicBool::new(false),
            tally: Mutex::new(Tally::default()),
            indexes: Mutex::new(Vec::new()),
            writes: tokio::sync::Mutex::new(()),
        });
        let url = serve_router(axum::Router::new().fallback(forward).with_state(p.clone())).await;
        (p, url)
    }

    /// A DynamoDB call straight to moto (not counted).
    async fn dynamo(&self, op: &str, body: &Value) -> Value {
        let r = self
            .http
            .post(&self.moto)
            .header("x-amz-target", format!("DynamoDB_20120810.{op}"))
            .header("content-type", "application/x-amz-json-1.0")
            .header("authorization", AUTH)
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let text = r.text().await.unwrap();
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    async fn load_indexes(&self, table: &str) {
        let d = self
            .dynamo("DescribeTable", &json!({"TableName": table}))
            .await;
        let mut out = Vec::new();
        for g in d["Table"]["GlobalSecondaryIndexes"]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            let key = |kind: &str| {
                g["KeySchema"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|k| k["KeyType"] == kind)
                    .map(|k| k["AttributeName"].as_str().unwrap().to_owned())
                    .unwrap()
            };
            let projection = match g["Projection"]["ProjectionType"].as_str() {
                Some("KEYS_ONLY") => Projection::KeysOnly,
                Some("INCLUDE") => Projection::Include(
                    g["Projection"]["NonKeyAttributes"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(|v| v.as_str().map(str::to_owned))
                                .collect()
                        })
                        .unwrap_or_default(),
                ),
                _ => Projection::All,
            };
            out.push(Index {
                name: g["IndexName"].as_str().unwrap().to_owned(),
                pk: key("HASH"),
                sk: key("RANGE"),
                projection,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        *self.indexes.lock().unwrap() = out;
    }

    async fn image(&self, table: &str, key: &Value) -> Option<Map<String, Value>> {
        let r = self
            .dynamo(
                "GetItem",
                &json!({"TableName": table, "Key": key, "ConsistentRead": true}),
            )
            .await;
        r.get("Item").and_then(|i| i.as_object()).cloned()
    }

    fn take(&self) -> Tally {
        std::mem::take(&mut *self.tally.lock().unwrap())
    }
}

/// The table key of an item.
fn key_of(item: &Value) -> Value {
    json!({"pk": item["pk"], "sk": item["sk"]})
}

async fn forward(
    axum::extract::State(p): axum::extract::State<Arc<Proxy>>,
    req: axum::extract::Request,
) -> axum::response::Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let counting = p.counting.load(Ordering::SeqCst);
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let dynamo_op = target.strip_prefix("DynamoDB_20120810.").map(str::to_owned);
    let is_write = matches!(
        dynamo_op.as_deref(),
        Some("PutItem" | "UpdateItem" | "DeleteItem" | "TransactWriteItems")
    );
    let _serial = if is_write && counting {
        Some(p.writes.lock().await)
    } else {
        None
    };
    // The old images of what a write touches: (table, key, transactional, new item if a put).
    let mut touched: Vec<(String, Value, &'static str, Option<Value>)> = Vec::new();
    if counting && let Some(op) = dynamo_op.as_deref() {
        let table = request["TableName"].as_str().unwrap_or_default().to_owned();
        match op {
            "PutItem" => touched.push((
                table,
                key_of(&request["Item"]),
                "put",
                Some(request["Item"].clone()),
            )),
            "UpdateItem" => touched.push((table, request["Key"].clone(), "update", None)),
            "DeleteItem" => touched.push((table, request["Key"].clone(), "delete", None)),
            "TransactWriteItems" => {
                for t in request["TransactItems"].as_array().unwrap() {
                    let (kind, v) = t.as_object().unwrap().iter().next().unwrap();
                    let table = v["TableName"].as_str().unwrap_or_default().to_owned();
                    match kind.as_str() {
                        "Put" => touched.push((
                            table,
                            key_of(&v["Item"]),
                            "put",
                            Some(v["Item"].clone()),
                        )),
                        "Update" => touched.push((table, v["Key"].clone(), "update", None)),
                        "Delete" => touched.push((table, v["Key"].clone(), "delete", None)),
                        _ => touched.push((table, v["Key"].clone(), "check", None)),
                    }
                }
            }
            _ => {}
        }
    }
    let mut old = Vec::new();
    for (table, key, _, _) in &touched {
        old.push(p.image(table, key).await);
    }
    let passed = pass_on(&p.http, &p.moto, &parts, body.clone()).await;
    if counting {
        let response: Value = serde_json::from_slice(&passed.body).unwrap_or(Value::Null);
        let ok = passed.status.is_success();
        if let Some(op) = dynamo_op {
            let mut new = Vec::new();
            for (table, key, kind, item) in &touched {
                new.push(match (*kind, ok) {
                    (_, false) | ("check", _) => None,
                    ("put", true) => item.as_ref().and_then(|i| i.as_object()).cloned(),
                    ("delete", true) => None,
                    _ => p.image(table, key).await,
                });
            }
            let indexes = p.indexes.lock().unwrap().clone();
            let mut t = p.tally.lock().unwrap();
            let t = &mut *t;
            let mut kinds = Vec::new();
            let op_t = t.dynamo.entry(op.clone()).or_default();
            op_t.calls += 1;
            if is_write {
                let transactional = op == "TransactWriteItems";
                for (i, (_, _, kind, _)) in touched.iter().enumerate() {
                    op_t.items += 1;
                    let write = if *kind == "check" || !ok {
                        // The table's units only: nothing is written.
                        let size = old[i]
                            .as_ref()
                            .map(item_size)
                            .into_iter()
                            .chain(
                                touched[i]
                                    .3
                                    .as_ref()
                                    .and_then(|v| v.as_object())
                                    .map(item_size),
                            )
                            .max()
                            .unwrap_or(0);
                        (kb_units(size, 1024), BTreeMap::new())
                    } else {
                        write_units(old[i].as_ref(), new[i].as_ref(), &indexes)
                    };
                    let factor = if transactional { 2.0 } else { 1.0 };
                    op_t.wru_table += write.0 * factor;
                    let mut units = write.0 * factor;
                    for (name, u) in write.1 {
                        units += u;
                        *op_t.wru_index.entry(name).or_default() += u;
                    }
                    if std::env::var_os("PAYORDERS_COST_TRACE").is_some() {
                        let size = |m: &Option<Map<String, Value>>| m.as_ref().map_or(0, item_size);
                        eprintln!(
                            "cost: {op} {} {} bytes -> {} bytes: {units} WRU",
                            touched[i].1["pk"]["S"].as_str().unwrap_or_default(),
                            size(&old[i]),
                            size(&new[i])
                        );
                    }
                    kinds.push((kind_of(&touched[i].1), units));
                }
            } else {
                let before = op_t.rru;
                read_units(&op, &request, &response, &indexes, op_t);
                let kind = match op.as_str() {
                    "GetItem" => kind_of(&request["Key"]),
                    _ => format!(
                        "{} {}",
                        op,
                        request["IndexName"].as_str().unwrap_or("table")
                    ),
                };
                let units = op_t.rru - before;
                if op == "GetItem" {
                    t.item_reads.push(format!(
                        "{} {}",
                        request["Key"]["pk"]["S"].as_str().unwrap_or_default(),
                        request["Key"]["sk"]["S"].as_str().unwrap_or_default()
                    ));
                }
                if std::env::var_os("PAYORDERS_COST_TRACE").is_some() {
                    let what = match op.as_str() {
                        "GetItem" => format!(
                            "{} {}",
                            request["Key"]["pk"]["S"].as_str().unwrap_or_default(),
                            request["Key"]["sk"]["S"].as_str().unwrap_or_default()
                        ),
                        _ => kind.clone(),
                    };
                    eprintln!("cost: {op} {what}: {units} RRU");
                }
                *t.rru_by_kind.entry(kind).or_default() += units;
            }
            for (kind, units) in kinds {
                *t.wru_by_kind.entry(kind).or_default() += units;
            }
        } else if let Some(op) = target.strip_prefix("AmazonSQS.") {
            *p.tally
                .lock()
                .unwrap()
                .sqs
                .entry(op.to_owned())
                .or_default() += 1;
        } else if let Some(action) = form_action(&body) {
            *p.tally.lock().unwrap().sqs.entry(action).or_default() += 1;
        }
    }
    passed.answer()
}

/// What kind of item a key is: its `pk` up to the first `#`.
fn kind_of(key: &Value) -> String {
    let pk = key["pk"]["S"].as_str().unwrap_or_default();
    pk.split('#').next().unwrap_or_default().to_owned()
}

/// `Action=` of an SQS query-protocol request.
fn form_action(body: &[u8]) -> Option<String> {
    form_urlencoded::parse(body)
        .find(|(k, _)| k == "Action")
        .map(|(_, v)| v.into_owned())
}

/// Units of `size` bytes in blocks of `block` (at least one).
fn kb_units(size: usize, block: usize) -> f64 {
    size.div_ceil(block).max(1) as f64
}

/// An attribute value's size by DynamoDB's rules.
fn value_size(v: &Value) -> usize {
    let Some((kind, inner)) = v.as_object().and_then(|o| o.iter().next()) else {
        return 0;
    };
    match kind.as_str() {
        "S" => inner.as_str().map_or(0, str::len),
        "N" => {
            let digits = inner
                .as_str()
                .unwrap_or_default()
                .trim_start_matches('-')
                .replace('.', "")
                .trim_start_matches('0')
                .len();
            digits.div_ceil(2) + 1
        }
        "B" => inner.as_str().map_or(0, |b| b.len() * 3 / 4),
        "BOOL" | "NULL" => 1,
        "SS" | "NS" | "BS" => inner.as_array().map_or(0, |a| {
            a.iter().map(|x| x.as_str().map_or(0, str::len)).sum()
        }),
        "M" => {
            3 + inner.as_object().map_or(0, |m| {
                m.iter().map(|(k, v)| 1 + k.len() + value_size(v)).sum()
            })
        }
        "L" => {
            3 + inner
                .as_array()
                .map_or(0, |a| a.iter().map(|v| 1 + value_size(v)).sum())
        }
        _ => 0,
    }
}

fn item_size(item: &Map<String, Value>) -> usize {
    item.iter().map(|(k, v)| k.len() + value_size(v)).sum()
}

/// The item's entry in `index` (its projected attributes), if the item is in it.
fn index_entry(item: &Map<String, Value>, index: &Index) -> Option<Map<String, Value>> {
    if !item.contains_key(&index.pk) || !item.contains_key(&index.sk) {
        return None;
    }
    let keys = ["pk", "sk", index.pk.as_str(), index.sk.as_str()];
    Some(
        item.iter()
            .filter(|(k, _)| match &index.projection {
                Projection::All => true,
                Projection::KeysOnly => keys.contains(&k.as_str()),
                Projection::Include(attrs) => {
                    keys.contains(&k.as_str()) || attrs.iter().any(|a| a == *k)
                }
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    )
}

/// A successful write of one item: the table's units and each index's.
fn write_units(
    old: Option<&Map<String, Value>>,
    new: Option<&Map<String, Value>>,
    indexes: &[Index],
) -> (f64, BTreeMap<String, f64>) {
    let size = old
        .map(item_size)
        .unwrap_or(0)
        .max(new.map(item_size).unwrap_or(0));
    let mut per_index = BTreeMap::new();
    for index in indexes {
        let before = old.and_then(|o| index_entry(o, index));
        let after = new.and_then(|n| index_entry(n, index));
        let units = match (&before, &after) {
            (None, None) => 0.0,
            (Some(b), None) => kb_units(item_size(b), 1024),
            (None, Some(a)) => kb_units(item_size(a), 1024),
            (Some(b), Some(a)) if b == a => 0.0,
            (Some(b), Some(a))
                if b.get(&index.pk) == a.get(&index.pk) && b.get(&index.sk) == a.get(&index.sk) =>
            {
                kb_units(item_size(b).max(item_size(a)), 1024)
            }
            (Some(b), Some(a)) => kb_units(item_size(b), 1024) + kb_units(item_size(a), 1024),
        };
        if units > 0.0 {
            per_index.insert(index.name.clone(), units);
        }
    }
    (kb_units(size, 1024), per_index)
}

fn read_units(op: &str, request: &Value, response: &Value, indexes: &[Index], t: &mut OpTally) {
    let consistent = request["ConsistentRead"].as_bool().unwrap_or(false);
    let factor = if consistent { 1.0 } else { 0.5 };
    match op {
        "GetItem" => {
            let size = response["Item"].as_object().map_or(0, item_size);
            t.items += u64::from(size > 0);
            t.rru += kb_units(size, 4096) * factor;
        }
        "Query" | "Scan" => {
            let items = response["Items"].as_array().cloned().unwrap_or_default();
            let index = request["IndexName"]
                .as_str()
                .and_then(|n| indexes.iter().find(|i| i.name == n));
            let size: usize = items
                .iter()
                .filter_map(|i| i.as_object())
                .map(|i| match index {
                    Some(ix) => index_entry(i, ix).map_or_else(|| item_size(i), |e| item_size(&e)),
                    None => item_size(i),
                })
                .sum();
            t.items += items.len() as u64;
            t.rru += kb_units(size, 4096) * factor;
            let scanned = response["ScannedCount"].as_u64().unwrap_or(0);
            t.filtered += scanned.saturating_sub(items.len() as u64);
        }
        "TransactGetItems" => {
            for r in response["Responses"]
                .as_array()
                .cloned()
                .unwrap_or_default()
            {
                let size = r["Item"].as_object().map_or(0, item_size);
                t.items += 1;
                t.rru += 2.0 * kb_units(size, 4096);
            }
        }
        "BatchGetItem" => {
            for items in response["Responses"]
                .as_object()
                .cloned()
                .unwrap_or_default()
                .values()
            {
                for i in items.as_array().cloned().unwrap_or_default() {
                    t.items += 1;
                    t.rru += kb_units(i.as_object().map_or(0, item_size), 4096) * factor;
                }
            }
        }
        _ => {}
    }
}

// ------------------------------------------------------------------ the flow

/// What ran besides the AWS calls the proxy saw.
#[derive(Default, Debug)]
struct Runs {
    /// API Gateway requests (each one also an authorizer invocation: no caching).
    api: BTreeMap<&'static str, u64>,
    /// Invocations of the queue and stream consumers.
    consumers: BTreeMap<&'static str, u64>,
    /// Requests the Lambda pollers make to SQS for the consumers (at least a receive and a
    /// delete per message when messages come one at a time).
    poller_sqs: u64,
}

struct Flow {
    proxy: Arc<Proxy>,
    app_base: String,
    http: reqwest::Client,
    table: String,
    store: Arc<dyn Store>,
    /// The same table, not counted (the test's own reads).
    direct_store: Arc<dyn Store>,
    sqs: aws_sdk_sqs::Client,
    webhooks_url: String,
    confirmations_url: String,
    webhooks: SqsQueue,
    services: Services,
    master: payorders::auth::MasterKey,
    runs: Runs,
    seen_events: HashSet<String>,
    /// Items one invocation read more than once (see [`Flow::settle`]).
    repeated_reads: Vec<String>,
    /// The AWS calls of each function, in the order they first ran.
    steps: Vec<(&'static str, Tally)>,
}

impl Flow {
    /// The calls since the last step are `function`'s.
    fn settle(&mut self, function: &'static str) {
        let t = self.proxy.take();
        // One invocation (an API route with its authorizer) reads each item once: what it
        // read it still holds.
        for r in t.repeated_reads() {
            self.repeated_reads.push(format!("{function}: {r}"));
        }
        match self.steps.iter_mut().find(|(f, _)| *f == function) {
            Some((_, acc)) => acc.merge(t),
            None => self.steps.push((function, t)),
        }
    }

    async fn start() -> (Self, Caller) {
        let moto = moto();
        let (proxy, proxy_url) = Proxy::start(moto.clone()).await;
        let direct = sdk_at(&moto).await;
        let counted = sdk_at(&proxy_url).await;
        let suffix = OrderId::generate()
            .as_str()
            .trim_start_matches("po_")
            .to_owned();
        let table = format!("cost-{suffix}");
        create_table(&aws_sdk_dynamodb::Client::new(&direct), &table)
            .await
            .unwrap();
        proxy.load_indexes(&table).await;
        let sqs = aws_sdk_sqs::Client::new(&direct);
        let queue = |name: String| {
            let sqs = sqs.clone();
            async move {
                sqs.create_queue()
                    .queue_name(name)
                    .send()
                    .await
                    .unwrap()
                    .queue_url
                    .unwrap()
            }
        };
        let webhooks_url = queue(format!("cost-webhooks-{suffix}")).await;
        let confirmations_url = queue(format!("cost-confirmations-{suffix}")).await;
        let counted_sqs = aws_sdk_sqs::Client::new(&counted);
        let store: Arc<dyn Store> = Arc::new(DynamoStore::new(
            aws_sdk_dynamodb::Client::new(&counted),
            table.clone(),
        ));
        let master =
            payorders::auth::MasterKey::from_text(&payorders::auth::MasterKey::generate_text())
                .unwrap();
        let (org, k) = payorders_local::setup::create_org(&*store, &master, "Cost", None)
            .await
            .unwrap();
        let caller = Caller {
            org_id: org.id.clone(),
            key_id: k.record.id,
            key: k.key,
            secret: k.secret,
        };
        let webhooks = SqsQueue::new(counted_sqs.clone(), webhooks_url.clone());
        let services = Services {
            store: store.clone(),
            master: Some(master.clone()),
            webhooks: Some(Arc::new(webhooks.clone())),
            confirmations: Some(Arc::new(SqsQueue::new(
                counted_sqs,
                confirmations_url.clone(),
            ))),
            check_delays: payorders_local::workers::DEV_CHECK_DELAYS,
            prices: Some(Arc::new(
                payorders::pricing::fixed::FixedPrices::dev_default(),
            )),
            router: None,
            chains: Arc::new(test_chains()),
        };
        let host = Arc::new(Host::new(services.clone(), crate::support::template()).unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let app_base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(payorders_local::server::serve(host, listener));
        let flow = Self {
            proxy,
            app_base,
            http: payorders::net::http_client().build().unwrap(),
            direct_store: Arc::new(DynamoStore::new(
                aws_sdk_dynamodb::Client::new(&direct),
                table.clone(),
            )),
            table,
            store,
            sqs,
            webhooks_url,
            confirmations_url,
            webhooks,
            services,
            master,
            runs: Runs::default(),
            seen_events: HashSet::new(),
            steps: Vec::new(),
            repeated_reads: Vec::new(),
        };
        (flow, caller)
    }

    /// One API request (signed when `signed`): counted as an API Gateway request, an
    /// authorizer invocation and an invocation of the route's function.
    async fn call(
        &mut self,
        who: &Caller,
        route: &'static str,
        path: &str,
        body: &Value,
        signed: bool,
    ) -> Value {
        let mut rb = self
            .http
            .post(format!("{}{path}", self.app_base))
            .header("x-api-key", &who.key)
            .header("content-type", "application/json")
            .body(body.to_string());
        if signed {
            rb = rb.header(
                "authorization-signature",
                payorders::auth::sign::v1_header(&who.key, &who.secret, "POST", path, now()),
            );
        }
        let r = rb.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        assert!((200..300).contains(&status), "{route}: {status} {text}");
        *self.runs.api.entry(route).or_default() += 1;
        self.settle(route);
        serde_json::from_str(&text).unwrap()
    }

    /// The stream: each new event record, in order, through both consumers' handlers (one
    /// invocation each per record: with a batching window of 0, records of one order a few
    /// seconds apart arrive one at a time).
    async fn drain_stream(&mut self) -> usize {
        let scan = self
            .proxy
            .dynamo(
                "Scan",
                &json!({
                    "TableName": self.table,
                    "FilterExpression": "begins_with(pk, :e)",
                    "ExpressionAttributeValues": {":e": {"S": "EVENT#"}},
                    "ConsistentRead": true,
                }),
            )
            .await;
        let mut fresh: Vec<(String, Value)> = scan["Items"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|i| !self.seen_events.contains(i["pk"]["S"].as_str().unwrap()))
            .map(|i| (i["gsi3sk"]["S"].as_str().unwrap_or_default().to_owned(), i))
            .collect();
        fresh.sort_by(|a, b| a.0.cmp(&b.0));
        for (n, (_, image)) in fresh.iter().enumerate() {
            self.seen_events
                .insert(image["pk"]["S"].as_str().unwrap().to_owned());
            let record = json!({"Records": [{
                "eventID": format!("{n}"),
                "eventName": "INSERT",
                "eventVersion": "1.1",
                "eventSource": "aws:dynamodb",
                "awsRegion": "us-east-1",
                "dynamodb": {
                    "ApproximateCreationDateTime": now(),
                    "Keys": key_of(image),
                    "NewImage": image,
                    "SequenceNumber": format!("{}", self.seen_events.len()),
                    "SizeBytes": 1,
                    "StreamViewType": "NEW_IMAGE",
                },
                "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/s",
            }]});
            let event: StreamEvent = serde_json::from_value(record).unwrap();
            let dispatch = dispatch_events::Deps {
                store: self.store.clone(),
                queue: Arc::new(self.webhooks.clone()),
            };
            let r = dispatch_events::handler(
                &dispatch,
                LambdaEvent::new(event.clone(), Default::default()),
            )
            .await
            .unwrap();
            assert!(r.batch_item_failures.is_empty());
            *self.runs.consumers.entry("dispatch-events").or_default() += 1;
            self.settle("dispatch-events");
            let aggregate = aggregate_analytics::Deps {
                store: self.store.clone(),
            };
            let r = aggregate_analytics::handler(
                &aggregate,
                LambdaEvent::new(event, Default::default()),
            )
            .await
            .unwrap();
            assert!(r.batch_item_failures.is_empty());
            *self
                .runs
                .consumers
                .entry("aggregate-analytics")
                .or_default() += 1;
            self.settle("aggregate-analytics");
        }
        fresh.len()
    }

    /// What the Lambda poller of a queue receives now (not counted as ours: see `poller_sqs`).
    async fn receive(&mut self, url: &str) -> Vec<SqsMessage> {
        let out = self
            .sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        out.messages
            .unwrap_or_default()
            .into_iter()
            .map(|m| {
                let mut s = SqsMessage::default();
                s.message_id = m.message_id;
                s.receipt_handle = m.receipt_handle;
                s.body = m.body;
                s
            })
            .collect()
    }

    async fn delete(&self, url: &str, receipt: Option<&String>) {
        if let Some(r) = receipt {
            self.sqs
                .delete_message()
                .queue_url(url)
                .receipt_handle(r)
                .send()
                .await
                .unwrap();
        }
    }

    /// One message at a time through the confirm-payment handler.
    async fn drain_confirmations(&mut self) -> usize {
        let url = self.confirmations_url.clone();
        let messages = self.receive(&url).await;
        let deps = confirm_payment::Deps {
            settler: self.services.settler().unwrap(),
            router: None,
        };
        for m in &messages {
            let mut event = SqsEvent::default();
            event.records = vec![m.clone()];
            let r = confirm_payment::handler(&deps, LambdaEvent::new(event, Default::default()))
                .await
                .unwrap();
            assert!(r.batch_item_failures.is_empty());
            *self.runs.consumers.entry("confirm-payment").or_default() += 1;
            self.settle("confirm-payment");
            self.runs.poller_sqs += 2;
            self.delete(&url, m.receipt_handle.as_ref()).await;
        }
        messages.len()
    }

    /// One message at a time through the deliver-webhook handler.
    async fn drain_webhooks(&mut self) -> usize {
        let url = self.webhooks_url.clone();
        let messages = self.receive(&url).await;
        let deps = deliver_webhook::Deps {
            retry_scale: RETRY_SCALE,
            allow_loopback: true,
            ..deliver_webhook::Deps::new(self.store.clone(), self.master.clone())
        };
        for m in &messages {
            let mut event = SqsEvent::default();
            event.records = vec![m.clone()];
            let r = deliver_webhook::handler(
                &deps,
                &self.webhooks,
                LambdaEvent::new(event, Default::default()),
            )
            .await
            .unwrap();
            assert!(r.batch_item_failures.is_empty(), "a delivery failed");
            *self.runs.consumers.entry("deliver-webhook").or_default() += 1;
            self.settle("deliver-webhook");
            self.runs.poller_sqs += 2;
            self.delete(&url, m.receipt_handle.as_ref()).await;
        }
        messages.len()
    }
}

/// The measured flow: its AWS calls and everything else that ran.
struct Measured {
    tally: Tally,
    steps: Vec<(&'static str, Tally)>,
    runs: Runs,
    events: usize,
    repeated_reads: Vec<String>,
}

async fn measure_one_paid_sale() -> Measured {
    let (mut flow, who) = Flow::start().await;
    let url = anvil_url();
    anvil::ensure_token(&url).await;
    // The merchant's endpoint, set up once (not part of the order's cost).
    let receiver = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(wiremock::ResponseTemplate::new(200))
        .mount(&receiver)
        .await;
    flow.call(
        &who,
        "webhook-endpoints",
        "/webhook-endpoints",
        &json!({"url": format!("{}/hooks", receiver.uri()), "events": ["*"]}),
        false,
    )
    .await;
    flow.runs = Runs::default();
    flow.steps.clear();
    flow.proxy.take();
    flow.proxy.counting.store(true, Ordering::SeqCst);

    let token = json!({"chain_id": 31337, "address": anvil::TOKEN});
    let order = flow
        .call(
            &who,
            "create-order",
            "/pay-orders",
            &json!({"mode": "SALE", "amount": "10", "currency": token,
                "metadata": {"items": [{"name": "Premium Widget", "quantity": 1, "unit_price": 10}]}}),
            true,
        )
        .await;
    let id = order["id"].as_str().unwrap().to_owned();
    let details = flow
        .call(
            &who,
            "payment-details",
            &format!("/pay-orders/{id}/payment-details"),
            &json!({"source_currency": token}),
            false,
        )
        .await;
    assert_eq!(details["status"], "AWAITING_PAYMENT", "{details}");
    let to: alloy::primitives::Address = details["payment"]["steps"][0]["deposit_address"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let hash =
        anvil::send_token(&url, to, alloy::primitives::U256::from(10_000_000u64), None).await;
    // One block on top: the transfer has its 2 confirmations by the first check.
    anvil::mine(&url, 1).await;
    let paid = flow
        .call(
            &who,
            "submit-payment",
            &format!("/pay-orders/{id}/payments"),
            &json!({"tx_hash": hash.to_string()}),
            false,
        )
        .await;
    assert_eq!(paid["status"], "AWAITING_CONFIRMATION", "{paid}");

    let oid = OrderId::parse(&id).unwrap();
    let mut events = 0;
    let mut idle = 0;
    for _ in 0..60 {
        let dispatched = flow.drain_stream().await;
        events += dispatched;
        let progress = dispatched + flow.drain_confirmations().await + flow.drain_webhooks().await;
        let completed = flow
            .direct_store
            .get_order(&oid)
            .await
            .unwrap()
            .is_some_and(|o| o.status == OrderStatus::Completed);
        idle = if progress == 0 { idle + 1 } else { 0 };
        if completed && idle >= 2 {
            break;
        }
    }
    flow.proxy.counting.store(false, Ordering::SeqCst);
    let received = receiver.received_requests().await.unwrap_or_default();
    let types: Vec<String> = received
        .iter()
        .filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok())
        .map(|b| b["type"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(
        types.contains(&"order.completed".to_owned()),
        "the endpoint got {types:?}"
    );
    assert_eq!(
        flow.proxy.take().aws_calls(),
        0,
        "every call is some function's"
    );
    let mut tally = Tally::default();
    for (_, t) in &flow.steps {
        tally.merge(t.clone());
    }
    Measured {
        tally,
        runs: std::mem::take(&mut flow.runs),
        steps: std::mem::take(&mut flow.steps),
        events,
        repeated_reads: std::mem::take(&mut flow.repeated_reads),
    }
}

fn fmt_units(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// The markdown report and the cost in dollars per million paid orders.
fn report(m: &Measured, indexes: &[String]) -> (String, f64) {
    let t = &m.tally;
    let mut out = String::new();
    writeln!(
        out,
        "One SALE, created signed, paid on the local anvil chain, confirmed to COMPLETED, with \
         its {} events dispatched to one endpoint subscribed to `*` and delivered (moto; units \
         computed from item sizes by DynamoDB's rules, see infra/local/tests/api/cost.rs).\n",
        m.events
    )
    .unwrap();
    let mut head = "| DynamoDB | calls | items | RRU | WRU table |".to_owned();
    let mut rule = "|---|---:|---:|---:|---:|".to_owned();
    for i in indexes {
        head.push_str(&format!(" WRU {i} |"));
        rule.push_str("---:|");
    }
    writeln!(out, "{head}\n{rule}").unwrap();
    let mut total = OpTally::default();
    for (op, o) in &t.dynamo {
        let mut row = format!(
            "| {op} | {} | {} | {} | {} |",
            o.calls,
            o.items,
            fmt_units(o.rru),
            fmt_units(o.wru_table)
        );
        for i in indexes {
            row.push_str(&format!(
                " {} |",
                fmt_units(o.wru_index.get(i).copied().unwrap_or(0.0))
            ));
            *total.wru_index.entry(i.clone()).or_default() +=
                o.wru_index.get(i).copied().unwrap_or(0.0);
        }
        writeln!(out, "{row}").unwrap();
        total.calls += o.calls;
        total.items += o.items;
        total.rru += o.rru;
        total.wru_table += o.wru_table;
        total.filtered += o.filtered;
    }
    let mut row = format!(
        "| **total** | **{}** | **{}** | **{}** | **{}** |",
        total.calls,
        total.items,
        fmt_units(total.rru),
        fmt_units(total.wru_table)
    );
    for i in indexes {
        row.push_str(&format!(" **{}** |", fmt_units(total.wru_index[i])));
    }
    writeln!(out, "{row}\n").unwrap();
    writeln!(
        out,
        "{} write units ({} of them on indexes), {} read units{}.\n",
        fmt_units(t.wru()),
        fmt_units(t.wru_on_indexes()),
        fmt_units(t.rru()),
        if total.filtered > 0 {
            format!(
                "; queries also read {} items their filters dropped (charged by DynamoDB, not counted here)",
                total.filtered
            )
        } else {
            String::new()
        }
    )
    .unwrap();

    writeln!(
        out,
        "| function | invocations | DynamoDB calls | RRU | WRU | SQS requests |\n|---|---:|---:|---:|---:|---:|"
    )
    .unwrap();
    for (f, st) in &m.steps {
        let n = m
            .runs
            .api
            .get(f)
            .or_else(|| m.runs.consumers.get(f))
            .copied()
            .unwrap_or(0);
        writeln!(
            out,
            "| {f} | {n} | {} | {} | {} | {} |",
            st.dynamo.values().map(|o| o.calls).sum::<u64>(),
            fmt_units(st.rru()),
            fmt_units(st.wru()),
            st.sqs.values().sum::<u64>()
        )
        .unwrap();
    }
    writeln!(
        out,
        "\n(An API route's row includes its authorizer and rate-limit calls.)\n\n| item (pk prefix) | WRU | RRU (GetItem) | $ per 1,000,000 orders |\n|---|---:|---:|---:|"
    )
    .unwrap();
    let kinds: std::collections::BTreeSet<&String> =
        t.wru_by_kind.keys().chain(t.rru_by_kind.keys()).collect();
    for k in kinds {
        let wru = t.wru_by_kind.get(k).copied().unwrap_or(0.0);
        let rru = t.rru_by_kind.get(k).copied().unwrap_or(0.0);
        writeln!(
            out,
            "| {k} | {} | {} | {:.2} |",
            fmt_units(wru),
            fmt_units(rru),
            (wru * USD_PER_WRU + rru * USD_PER_RRU) * 1e6
        )
        .unwrap();
    }
    writeln!(out).unwrap();
    let sends: u64 = t.sqs.values().sum();
    let api: u64 = m.runs.api.values().sum();
    let consumers: u64 = m.runs.consumers.values().sum();
    let invocations = 2 * api + consumers;
    writeln!(out, "| SQS | requests |\n|---|---:|").unwrap();
    for (op, n) in &t.sqs {
        writeln!(out, "| {op} (by the functions) | {n} |").unwrap();
    }
    writeln!(
        out,
        "| ReceiveMessage + DeleteMessage (by the Lambda pollers, one message each) | {} |\n",
        m.runs.poller_sqs
    )
    .unwrap();
    writeln!(out, "| Lambda | invocations |\n|---|---:|").unwrap();
    for (f, n) in &m.runs.api {
        writeln!(out, "| {f} | {n} |").unwrap();
    }
    writeln!(
        out,
        "| authorizer (no caching: one per API request) | {api} |"
    )
    .unwrap();
    for (f, n) in &m.runs.consumers {
        writeln!(out, "| {f} | {n} |").unwrap();
    }
    writeln!(out, "| **total** | **{invocations}** |\n").unwrap();

    let sqs_requests = sends + m.runs.poller_sqs;
    let ms = invocations as f64 * BASE_MS_PER_INVOCATION + t.aws_calls() as f64 * MS_PER_AWS_CALL;
    let gb_s = ms / 1000.0 * LAMBDA_MEMORY_GB;
    let lines = [
        (
            "DynamoDB writes",
            format!("{} WRU", fmt_units(t.wru())),
            "$0.625 / M WRU",
            t.wru() * USD_PER_WRU,
        ),
        (
            "DynamoDB reads",
            format!("{} RRU", fmt_units(t.rru())),
            "$0.125 / M RRU",
            t.rru() * USD_PER_RRU,
        ),
        (
            "SQS",
            format!("{sqs_requests} requests"),
            "$0.40 / M requests",
            sqs_requests as f64 * USD_PER_SQS_REQUEST,
        ),
        (
            "Lambda requests",
            format!("{invocations} invocations"),
            "$0.20 / M requests",
            invocations as f64 * USD_PER_LAMBDA_REQUEST,
        ),
        (
            "Lambda duration",
            format!("{gb_s:.4} GB-s ({ms:.0} ms at 256 MB)"),
            "$0.0000133334 / GB-s (arm64)",
            gb_s * USD_PER_LAMBDA_GB_SECOND,
        ),
        (
            "API Gateway (HTTP API)",
            format!("{api} requests"),
            "$1.00 / M requests",
            api as f64 * USD_PER_HTTP_API_REQUEST,
        ),
        ("DynamoDB Streams", "read by Lambda".to_owned(), "free", 0.0),
    ];
    let per_million: f64 = lines.iter().map(|l| l.3).sum::<f64>() * 1e6;
    writeln!(
        out,
        "| cost per 1,000,000 paid orders (us-east-1 list prices) | per order | price | $ |\n|---|---:|---|---:|"
    )
    .unwrap();
    for (what, qty, price, usd) in &lines {
        writeln!(out, "| {what} | {qty} | {price} | {:.2} |", usd * 1e6).unwrap();
    }
    writeln!(
        out,
        "| **total** | | | **{per_million:.2}** |\n\nLambda duration is modelled, not measured: \
         {BASE_MS_PER_INVOCATION} ms per invocation plus {MS_PER_AWS_CALL} ms per DynamoDB or SQS \
         call the functions make. Writes are {:.0} % of the total. Not included: the schedules \
         (scan-deposits and expire-orders every minute, whatever the traffic), the pollers' idle \
         long polls, storage, logs and X-Ray traces.",
        100.0 * t.wru() * USD_PER_WRU * 1e6 / per_million
    )
    .unwrap();
    (out, per_million)
}

#[tokio::test]
async fn one_paid_sale_costs_what_the_budget_allows() {
    let m = measure_one_paid_sale().await;
    let indexes = [
        "orders_by_org",
        "orders_by_expiry",
        "events_by_org",
        "deliveries_by_endpoint",
        "deposits_by_chain",
    ]
    .map(str::to_owned);
    let (text, per_million) = report(&m, &indexes);
    println!("{text}");
    if let Ok(path) = std::env::var("PAYORDERS_COST_REPORT") {
        std::fs::write(path, &text).unwrap();
    }
    // The flow as it stands: four events, each dispatched and delivered once.
    assert_eq!(m.events, 4, "{text}");
    assert_eq!(m.runs.consumers.get("deliver-webhook"), Some(&4), "{text}");
    // Budgets: a change that costs more per paid order fails here (raise them knowingly).
    let t = &m.tally;
    assert!(t.wru() <= 73.0, "write units over budget\n{text}");
    assert!(t.rru() <= 34.0, "read units over budget\n{text}");
    assert!(per_million <= 64.0, "cost over budget\n{text}");
    // No invocation reads an item twice: payment details read the merchant wallet (a fixed
    // address here) once, a submitted payment reads the order once.
    assert!(
        m.repeated_reads.is_empty(),
        "items read twice in one invocation: {:?}",
        m.repeated_reads
    );
}
