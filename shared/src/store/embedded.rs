//! Embedded adapter: SQLite (bundled) in a file under `.local/` or in memory, with the same
//! behaviour as the DynamoDB adapter: the conformance suite runs against both.
//!
//! One connection behind a mutex; every call runs on the blocking pool in one SQLite
//! transaction, so conditional writes are atomic exactly as DynamoDB transactions are.

use super::keys::{self, expiry_key, org_partition, parse_doc, sort_key};
use super::*;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use std::path::Path;
use std::sync::{Arc, Mutex};

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS organizations (id TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    key_hash TEXT NOT NULL UNIQUE,
    doc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS orders (
    id TEXT PRIMARY KEY,
    partition_key TEXT NOT NULL,
    sort_key TEXT NOT NULL,
    expiry_key TEXT,
    status TEXT NOT NULL,
    mode TEXT NOT NULL,
    chain_id INTEGER,
    currency_id TEXT,
    version INTEGER NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS orders_by_org ON orders (partition_key, sort_key);
CREATE INDEX IF NOT EXISTS orders_by_expiry ON orders (expiry_key) WHERE expiry_key IS NOT NULL;
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    partition_key TEXT NOT NULL,
    sort_key TEXT NOT NULL,
    type TEXT NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_org ON events (partition_key, sort_key);
CREATE TABLE IF NOT EXISTS nonces (key TEXT PRIMARY KEY, order_id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tx_claims (key TEXT PRIMARY KEY, order_id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS idempotency (
    key TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    state TEXT NOT NULL,
    response TEXT,
    locked_until INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS claims (key TEXT PRIMARY KEY, expires_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS checkout_settings (org_id TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS rate_hits (key TEXT PRIMARY KEY, hits INTEGER NOT NULL, expires_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS webhook_endpoints (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL,
    mode TEXT NOT NULL,
    sort_key TEXT NOT NULL,
    version INTEGER NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS endpoints_by_org ON webhook_endpoints (org_id, mode, sort_key);
CREATE TABLE IF NOT EXISTS deliveries (
    id TEXT PRIMARY KEY,
    partition_key TEXT NOT NULL,
    sort_key TEXT NOT NULL,
    version INTEGER NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS deliveries_by_endpoint ON deliveries (partition_key, sort_key);
CREATE TABLE IF NOT EXISTS stream_cursor (name TEXT PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS scan_cursors (chain_id INTEGER PRIMARY KEY, block INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS xpub_counters (key TEXT PRIMARY KEY, next INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS wallets (
    org_id TEXT NOT NULL,
    mode TEXT NOT NULL,
    chain_id INTEGER NOT NULL,
    version INTEGER NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (org_id, mode, chain_id)
);
"#;

/// The SQLite store. Cheap to clone.
#[derive(Clone)]
pub struct EmbeddedStore {
    conn: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EmbeddedStore")
    }
}

impl EmbeddedStore {
    /// Opens (creating if needed) a database file, in WAL mode.
    pub fn open(path: &Path) -> StoreResult<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(StoreError::unavailable)?;
        }
        let conn = Connection::open(path).map_err(StoreError::unavailable)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(StoreError::unavailable)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(StoreError::unavailable)?;
        Self::init(conn)
    }

    /// A private in-memory database (tests, one-off tools).
    pub fn in_memory() -> StoreResult<Self> {
        Self::init(Connection::open_in_memory().map_err(StoreError::unavailable)?)
    }

    fn init(conn: Connection) -> StoreResult<Self> {
        conn.execute_batch(SCHEMA)
            .map_err(StoreError::unavailable)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `f` inside one immediate transaction on the blocking pool; commits on `Ok`.
    async fn tx<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Transaction<'_>) -> StoreResult<T> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().unwrap_or_else(|p| p.into_inner());
            let tx = guard
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(StoreError::unavailable)?;
            let out = f(&tx)?;
            tx.commit().map_err(StoreError::unavailable)?;
            Ok(out)
        })
        .await
        .map_err(StoreError::unavailable)?
    }
}

fn sql(e: rusqlite::Error) -> StoreError {
    StoreError::unavailable(e)
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(
        e,
        rusqlite::Error::SqliteFailure(f, _)
            if f.code == rusqlite::ErrorCode::ConstraintViolation
    )
}

fn to_doc<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("domain records always serialize")
}

fn one_doc<T: serde::de::DeserializeOwned>(
    tx: &rusqlite::Transaction<'_>,
    query: &str,
    key: &str,
) -> StoreResult<Option<T>> {
    tx.query_row(query, [key], |r| r.get::<_, String>(0))
        .optional()
        .map_err(sql)?
        .map(|d| parse_doc(&d))
        .transpose()
}

/// Inserts a row that must be new: a unique violation is `AlreadyExists`.
fn insert_new(
    tx: &rusqlite::Transaction<'_>,
    sql_text: &str,
    args: impl rusqlite::Params,
) -> StoreResult<()> {
    match tx.execute(sql_text, args) {
        Ok(_) => Ok(()),
        Err(e) if is_unique_violation(&e) => Err(StoreError::AlreadyExists),
        Err(e) => Err(sql(e)),
    }
}

/// Every `doc` a query selects, parsed.
fn docs<T: serde::de::DeserializeOwned>(
    tx: &rusqlite::Transaction<'_>,
    sql_text: &str,
    args: impl rusqlite::Params,
) -> StoreResult<Vec<T>> {
    let mut stmt = tx.prepare_cached(sql_text).map_err(sql)?;
    let texts = stmt
        .query_map(args, |r| r.get::<_, String>(0))
        .map_err(sql)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sql)?;
    texts.iter().map(|d| parse_doc(d)).collect()
}

fn insert_event(tx: &rusqlite::Transaction<'_>, e: &Event) -> StoreResult<()> {
    tx.execute(
        "INSERT INTO events (id, partition_key, sort_key, type, doc) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            e.id.as_str(),
            org_partition("EVENTS", &e.organization_id, keys::mode_of(e.livemode)),
            sort_key(e.created_at, e.id.as_str()),
            e.event_type.as_str(),
            to_doc(e)
        ],
    )
    .map_err(sql)?;
    Ok(())
}

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

/// Newest-first rows of one partition, filtered by `matches`, up to `limit + 1`.
fn newest_first<T: serde::de::DeserializeOwned>(
    tx: &rusqlite::Transaction<'_>,
    table: &str,
    partition: &str,
    w: &ListWindow,
    matches: impl Fn(&T) -> bool,
) -> StoreResult<Vec<(String, T)>> {
    let want = w.page_size() + 1;
    let Some(range) = keys::page_range(w) else {
        return Ok(Vec::new());
    };
    let mut args = vec![partition.to_owned(), range.low, range.high];
    let mut query = format!(
        "SELECT sort_key, doc FROM {table} WHERE partition_key = ?1 \
         AND sort_key >= ?2 AND sort_key <= ?3"
    );
    if let Some(after) = range.after {
        query.push_str(" AND sort_key < ?4");
        args.push(after);
    }
    query.push_str(" ORDER BY sort_key DESC");
    let mut stmt = tx.prepare_cached(&query).map_err(sql)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(args)).map_err(sql)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(sql)? {
        let key: String = row.get(0).map_err(sql)?;
        let item: T = parse_doc(&row.get::<_, String>(1).map_err(sql)?)?;
        if matches(&item) {
            out.push((key, item));
            if out.len() == want {
                break;
            }
        }
    }
    Ok(out)
}

#[async_trait]
impl OrgStore for EmbeddedStore {
    async fn create_organization(&self, org: &Organization) -> StoreResult<()> {
        let (id, doc) = (org.id.to_string(), to_doc(org));
        self.tx(move |tx| {
            insert_new(
                tx,
                "INSERT INTO organizations (id, doc) VALUES (?1, ?2)",
                params![id, doc],
            )
        })
        .await
    }

    async fn get_organization(&self, id: &OrgId) -> StoreResult<Option<Organization>> {
        let id = id.to_string();
        self.tx(move |tx| one_doc(tx, "SELECT doc FROM organizations WHERE id = ?1", &id))
            .await
    }

    async fn get_checkout_settings(&self, org: &OrgId) -> StoreResult<Option<CheckoutSettings>> {
        let id = org.to_string();
        self.tx(move |tx| {
            one_doc(
                tx,
                "SELECT doc FROM checkout_settings WHERE org_id = ?1",
                &id,
            )
        })
        .await
    }

    async fn put_checkout_settings(&self, org: &OrgId, s: &CheckoutSettings) -> StoreResult<()> {
        let (id, doc) = (org.to_string(), to_doc(s));
        self.tx(move |tx| {
            tx.execute(
                "INSERT INTO checkout_settings (org_id, doc) VALUES (?1, ?2) \
                 ON CONFLICT (org_id) DO UPDATE SET doc = excluded.doc",
                params![id, doc],
            )
            .map_err(sql)?;
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl RateLimitStore for EmbeddedStore {
    async fn count_hit(&self, key: &str, window_ends: Timestamp) -> StoreResult<u64> {
        let key = key.to_owned();
        let now = Timestamp::now().unix();
        self.tx(move |tx| {
            // Finished windows are dropped as they are met (DynamoDB's TTL does it there).
            tx.execute("DELETE FROM rate_hits WHERE expires_at < ?1", params![now])
                .map_err(sql)?;
            let hits: i64 = tx
                .query_row(
                    "INSERT INTO rate_hits (key, hits, expires_at) VALUES (?1, 1, ?2) \
                     ON CONFLICT (key) DO UPDATE SET hits = hits + 1 RETURNING hits",
                    params![key, window_ends.unix()],
                    |r| r.get(0),
                )
                .map_err(sql)?;
            Ok(hits.max(0) as u64)
        })
        .await
    }
}

#[async_trait]
impl KeyStore for EmbeddedStore {
    async fn create_api_key(&self, key: &ApiKey) -> StoreResult<()> {
        let (id, hash, doc) = (key.id.to_string(), key.key_hash.clone(), to_doc(key));
        self.tx(move |tx| {
            insert_new(
                tx,
                "INSERT INTO api_keys (id, key_hash, doc) VALUES (?1, ?2, ?3)",
                params![id, hash, doc],
            )
        })
        .await
    }

    async fn get_api_key_by_hash(&self, key_hash: &str) -> StoreResult<Option<ApiKey>> {
        let h = key_hash.to_owned();
        self.tx(move |tx| one_doc(tx, "SELECT doc FROM api_keys WHERE key_hash = ?1", &h))
            .await
    }

    async fn get_api_key(&self, id: &KeyId) -> StoreResult<Option<ApiKey>> {
        let id = id.to_string();
        self.tx(move |tx| one_doc(tx, "SELECT doc FROM api_keys WHERE id = ?1", &id))
            .await
    }

    async fn revoke_api_key(&self, id: &KeyId, at: Timestamp) -> StoreResult<ApiKey> {
        let id = id.to_string();
        self.tx(move |tx| {
            let mut key: ApiKey = one_doc(tx, "SELECT doc FROM api_keys WHERE id = ?1", &id)?
                .ok_or(StoreError::NotFound)?;
            if key.revoked_at.is_none() {
                key.revoked_at = Some(at);
                tx.execute(
                    "UPDATE api_keys SET doc = ?2 WHERE id = ?1",
                    params![id, to_doc(&key)],
                )
                .map_err(sql)?;
            }
            Ok(key)
        })
        .await
    }
}

#[async_trait]
impl OrderStore for EmbeddedStore {
    async fn create_order(&self, new: &NewOrder) -> StoreResult<()> {
        let new = new.clone();
        self.tx(move |tx| {
            let o = new.order();
            if let Some(nonce) = &o.nonce {
                let key = format!("{}#{}#{}", o.organization_id, keys::mode_of(o.livemode), nonce);
                match tx.execute(
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
            insert_event(tx, new.event())
        })
        .await
    }

    async fn get_order(&self, id: &OrderId) -> StoreResult<Option<PayOrder>> {
        let id = id.to_string();
        self.tx(move |tx| one_doc(tx, "SELECT doc FROM orders WHERE id = ?1", &id))
            .await
    }

    async fn update_order(&self, update: &OrderUpdate) -> StoreResult<()> {
        let u = update.clone();
        self.tx(move |tx| {
            let mut cols = order_columns(u.order()).to_vec();
            cols.push(rusqlite::types::Value::Integer(u.expected_version() as i64));
            let changed = tx
                .execute(
                    "UPDATE orders SET partition_key = ?2, sort_key = ?3, expiry_key = ?4, \
                     status = ?5, mode = ?6, chain_id = ?7, currency_id = ?8, version = ?9, \
                     doc = ?10 WHERE id = ?1 AND version = ?11",
                    rusqlite::params_from_iter(cols),
                )
                .map_err(sql)?;
            if changed == 0 {
                return Err(StoreError::VersionConflict {
                    expected: u.expected_version(),
                });
            }
            if let Some(e) = u.event() {
                insert_event(tx, e)?;
            }
            for c in u.tx_claims() {
                // New, or already this order's (a reorged transfer recorded again).
                let owner: String = tx
                    .query_row(
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
            Ok(())
        })
        .await
    }

    async fn list_orders(&self, w: &ListWindow, f: &OrderFilter) -> StoreResult<Page<PayOrder>> {
        let (w, f) = (w.clone(), f.clone());
        self.tx(move |tx| {
            let partition = org_partition("ORDERS", &w.organization_id, w.mode);
            let rows = newest_first(tx, "orders", &partition, &w, |o: &PayOrder| f.matches(o))?;
            Ok(keys::page(rows, w.page_size()))
        })
        .await
    }

    async fn list_expirable_orders(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<PayOrder>> {
        self.tx(move |tx| {
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
        let mut orders: Vec<PayOrder> = self.tx(move |tx| docs(tx, &sql, [])).await?;
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
        let sql = orders_in_statuses(|s| s.awaits_confirmation() || *s == OrderStatus::Expired);
        let mut orders: Vec<PayOrder> = self.tx(move |tx| docs(tx, &sql, [])).await?;
        let before = updated_before.to_key();
        orders.retain(|o| keys::check_key(o).is_some_and(|k| k < before));
        orders.sort_by_cached_key(keys::check_key);
        orders.truncate(limit as usize);
        Ok(orders)
    }

    async fn scan_cursor(&self, chain: ChainId) -> StoreResult<Option<u64>> {
        let id = chain.get() as i64;
        self.tx(move |tx| {
            tx.query_row(
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
            let changed = match expected {
                None => tx.execute(
                    "INSERT INTO scan_cursors (chain_id, block) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                    params![id, next as i64],
                ),
                Some(b) => tx.execute(
                    "UPDATE scan_cursors SET block = ?2 WHERE chain_id = ?1 AND block = ?3",
                    params![id, next as i64, b as i64],
                ),
            }
            .map_err(sql)?;
            if changed == 0 {
                return Err(StoreError::VersionConflict {
                    expected: expected.unwrap_or(0),
                });
            }
            Ok(())
        })
        .await
    }

    async fn get_tx_claim(&self, claim_key: &str) -> StoreResult<Option<OrderId>> {
        let k = claim_key.to_owned();
        self.tx(move |tx| {
            tx.query_row("SELECT order_id FROM tx_claims WHERE key = ?1", [k], |r| {
                r.get::<_, String>(0)
            })
            .optional()
            .map_err(sql)?
            .map(|id| OrderId::parse(&id).map_err(|e| StoreError::Corrupt(e.to_string())))
            .transpose()
        })
        .await
    }
}

#[async_trait]
impl EventStore for EmbeddedStore {
    async fn get_event(&self, id: &EventId) -> StoreResult<Option<Event>> {
        let id = id.to_string();
        self.tx(move |tx| one_doc(tx, "SELECT doc FROM events WHERE id = ?1", &id))
            .await
    }

    async fn list_events(&self, w: &ListWindow, f: &EventFilter) -> StoreResult<Page<Event>> {
        let (w, f) = (w.clone(), f.clone());
        self.tx(move |tx| {
            let partition = org_partition("EVENTS", &w.organization_id, w.mode);
            let rows = newest_first(tx, "events", &partition, &w, |e: &Event| {
                f.event_type.is_none_or(|t| t == e.event_type)
            })?;
            Ok(keys::page(rows, w.page_size()))
        })
        .await
    }
}

#[async_trait]
impl IdempotencyStore for EmbeddedStore {
    async fn idempotency_begin(
        &self,
        scope: &IdempotencyScope,
        fingerprint: &str,
        now: Timestamp,
    ) -> StoreResult<IdempotencyBegin> {
        let (key, fp) = (scope.storage_key(), fingerprint.to_owned());
        self.tx(move |tx| {
            let existing = tx
                .query_row(
                    "SELECT fingerprint, state, response, locked_until, expires_at \
                     FROM idempotency WHERE key = ?1",
                    [&key],
                    |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, Option<String>>(2)?,
                            r.get::<_, i64>(3)?,
                            r.get::<_, i64>(4)?,
                        ))
                    },
                )
                .optional()
                .map_err(sql)?;
            let now_s = now.unix();
            if let Some((old_fp, state, response, locked_until, expires_at)) = existing {
                let live = expires_at >= now_s;
                let abandoned = state == "in_flight" && locked_until < now_s;
                if live && !abandoned {
                    if old_fp != fp {
                        return Ok(IdempotencyBegin::Mismatch);
                    }
                    if state == "completed" {
                        let resp = parse_doc(response.as_deref().unwrap_or("null"))?;
                        return Ok(IdempotencyBegin::Replay(resp));
                    }
                    return Ok(IdempotencyBegin::InFlight);
                }
            }
            tx.execute(
                "INSERT OR REPLACE INTO idempotency \
                 (key, fingerprint, state, response, locked_until, expires_at) \
                 VALUES (?1, ?2, 'in_flight', NULL, ?3, ?4)",
                params![
                    key,
                    fp,
                    now.plus_seconds(IDEMPOTENCY_LOCK_SECS).unix(),
                    now.plus_seconds(IDEMPOTENCY_TTL_SECS).unix()
                ],
            )
            .map_err(sql)?;
            Ok(IdempotencyBegin::Started)
        })
        .await
    }

    async fn idempotency_complete(
        &self,
        scope: &IdempotencyScope,
        fingerprint: &str,
        response: &StoredResponse,
        now: Timestamp,
    ) -> StoreResult<()> {
        let (key, fp, resp) = (
            scope.storage_key(),
            fingerprint.to_owned(),
            to_doc(response),
        );
        self.tx(move |tx| {
            tx.execute(
                "INSERT OR REPLACE INTO idempotency \
                 (key, fingerprint, state, response, locked_until, expires_at) \
                 VALUES (?1, ?2, 'completed', ?3, 0, ?4)",
                params![key, fp, resp, now.plus_seconds(IDEMPOTENCY_TTL_SECS).unix()],
            )
            .map_err(sql)?;
            Ok(())
        })
        .await
    }

    async fn idempotency_release(
        &self,
        scope: &IdempotencyScope,
        fingerprint: &str,
    ) -> StoreResult<()> {
        let (key, fp) = (scope.storage_key(), fingerprint.to_owned());
        self.tx(move |tx| {
            tx.execute(
                "DELETE FROM idempotency WHERE key = ?1 AND fingerprint = ?2 AND state = 'in_flight'",
                params![key, fp],
            )
            .map_err(sql)?;
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl WebhookStore for EmbeddedStore {
    async fn create_endpoint(&self, e: &WebhookEndpoint) -> StoreResult<()> {
        let e = e.clone();
        self.tx(move |tx| {
            insert_new(tx, "INSERT INTO webhook_endpoints (id, org_id, mode, sort_key, version, doc) VALUES (?1, ?2, ?3, ?4, ?5, ?6)", params![
                    e.id.as_str(),
                    e.organization_id.as_str(),
                    keys::mode_of(e.livemode).as_str(),
                    sort_key(e.created_at, e.id.as_str()),
                    e.version as i64,
                    to_doc(&e)
                ])
        })
        .await
    }

    async fn get_endpoint(
        &self,
        org: &OrgId,
        id: &WebhookEndpointId,
    ) -> StoreResult<Option<WebhookEndpoint>> {
        let (org, id) = (org.clone(), id.to_string());
        self.tx(move |tx| {
            let e: Option<WebhookEndpoint> =
                one_doc(tx, "SELECT doc FROM webhook_endpoints WHERE id = ?1", &id)?;
            Ok(e.filter(|e| e.organization_id == org))
        })
        .await
    }

    async fn update_endpoint(
        &self,
        e: &WebhookEndpoint,
        expected_version: u64,
        event: Option<&Event>,
    ) -> StoreResult<()> {
        let (e, event) = (e.clone(), event.cloned());
        self.tx(move |tx| {
            let changed = tx
                .execute(
                    "UPDATE webhook_endpoints SET version = ?2, doc = ?3 WHERE id = ?1 AND org_id = ?4 AND version = ?5",
                    params![e.id.as_str(), e.version as i64, to_doc(&e), e.organization_id.as_str(), expected_version as i64],
                )
                .map_err(sql)?;
            if changed == 0 {
                let exists: Option<i64> = tx
                    .query_row("SELECT version FROM webhook_endpoints WHERE id = ?1", [e.id.as_str()], |r| r.get(0))
                    .optional()
                    .map_err(sql)?;
                return Err(match exists {
                    None => StoreError::NotFound,
                    Some(_) => StoreError::VersionConflict { expected: expected_version },
                });
            }
            if let Some(ev) = &event {
                insert_event(tx, ev)?;
            }
            Ok(())
        })
        .await
    }

    async fn delete_endpoint(&self, org: &OrgId, id: &WebhookEndpointId) -> StoreResult<bool> {
        let (org, id) = (org.to_string(), id.to_string());
        self.tx(move |tx| {
            let n = tx
                .execute(
                    "DELETE FROM webhook_endpoints WHERE id = ?1 AND org_id = ?2",
                    params![id, org],
                )
                .map_err(sql)?;
            Ok(n > 0)
        })
        .await
    }

    async fn list_endpoints(
        &self,
        org: &OrgId,
        mode: KeyMode,
    ) -> StoreResult<Vec<WebhookEndpoint>> {
        let org = org.to_string();
        self.tx(move |tx| {
            docs(tx, "SELECT doc FROM webhook_endpoints WHERE org_id = ?1 AND mode = ?2 ORDER BY sort_key", params![org, mode.as_str()])
        })
        .await
    }

    async fn create_delivery(&self, d: &Delivery) -> StoreResult<bool> {
        let d = d.clone();
        self.tx(move |tx| {
            let n = tx
                .execute(
                    "INSERT INTO deliveries (id, partition_key, sort_key, version, doc) VALUES (?1, ?2, ?3, ?4, ?5) \
                     ON CONFLICT (id) DO NOTHING",
                    params![
                        d.id.as_str(),
                        super::delivery_partition(&d),
                        sort_key(d.created_at, d.id.as_str()),
                        d.version as i64,
                        to_doc(&d)
                    ],
                )
                .map_err(sql)?;
            Ok(n == 1)
        })
        .await
    }

    async fn get_delivery(&self, id: &DeliveryId) -> StoreResult<Option<Delivery>> {
        let id = id.to_string();
        self.tx(move |tx| one_doc(tx, "SELECT doc FROM deliveries WHERE id = ?1", &id))
            .await
    }

    async fn update_delivery(&self, d: &Delivery, expected_version: u64) -> StoreResult<()> {
        let d = d.clone();
        self.tx(move |tx| {
            let n = tx
                .execute(
                    "UPDATE deliveries SET version = ?2, doc = ?3 WHERE id = ?1 AND version = ?4",
                    params![
                        d.id.as_str(),
                        d.version as i64,
                        to_doc(&d),
                        expected_version as i64
                    ],
                )
                .map_err(sql)?;
            if n == 0 {
                return Err(StoreError::VersionConflict {
                    expected: expected_version,
                });
            }
            Ok(())
        })
        .await
    }

    async fn list_deliveries(
        &self,
        endpoint: &WebhookEndpointId,
        w: &ListWindow,
    ) -> StoreResult<Page<Delivery>> {
        let (partition, w) = (format!("DELIVERIES#{endpoint}"), w.clone());
        self.tx(move |tx| {
            let rows = newest_first(tx, "deliveries", &partition, &w, |_: &Delivery| true)?;
            Ok(keys::page(rows, w.page_size()))
        })
        .await
    }
}

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
        self.tx(move |tx| {
            tx.query_row(
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
        self.tx(move |tx| {
            docs(
                tx,
                "SELECT doc FROM wallets WHERE org_id = ?1 AND mode = ?2 ORDER BY chain_id",
                params![org, mode.as_str()],
            )
        })
        .await
    }

    async fn update_wallet(&self, w: &MerchantWallet, expected_version: u64) -> StoreResult<()> {
        let w = w.clone();
        self.tx(move |tx| {
            let n = tx
                .execute(
                    "UPDATE wallets SET version = ?4, doc = ?5 WHERE org_id = ?1 AND mode = ?2 AND chain_id = ?3 AND version = ?6",
                    params![
                        w.organization_id.as_str(),
                        keys::mode_of(w.livemode).as_str(),
                        w.chain_id.get() as i64,
                        w.version as i64,
                        to_doc(&w),
                        expected_version as i64
                    ],
                )
                .map_err(sql)?;
            if n == 0 {
                return Err(StoreError::VersionConflict { expected: expected_version });
            }
            Ok(())
        })
        .await
    }

    async fn delete_wallet(&self, org: &OrgId, mode: KeyMode, chain: ChainId) -> StoreResult<bool> {
        let org = org.to_string();
        self.tx(move |tx| {
            let n = tx
                .execute(
                    "DELETE FROM wallets WHERE org_id = ?1 AND mode = ?2 AND chain_id = ?3",
                    params![org, mode.as_str(), chain.get() as i64],
                )
                .map_err(sql)?;
            Ok(n > 0)
        })
        .await
    }

    async fn next_xpub_index(&self, xpub: &str) -> StoreResult<u32> {
        let key = super::xpub_counter_key(xpub);
        let next: i64 = self
            .tx(move |tx| {
                tx.query_row(
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
}

impl EmbeddedStore {
    /// Events written after `after` (an outbox sequence number), oldest first, with their
    /// sequence numbers: the local host's stand-in for the DynamoDB stream.
    pub async fn events_after(&self, after: i64, limit: u32) -> StoreResult<Vec<(i64, Event)>> {
        self.tx(move |tx| {
            let mut stmt = tx
                .prepare_cached("SELECT seq, doc FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2")
                .map_err(sql)?;
            let rows = stmt
                .query_map(params![after, limit], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
                })
                .map_err(sql)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(sql)?;
            rows.into_iter()
                .map(|(seq, d)| parse_doc(&d).map(|e| (seq, e)))
                .collect()
        })
        .await
    }

    /// The stream position a consumer has processed up to (0 before any).
    pub async fn stream_cursor(&self, name: &str) -> StoreResult<i64> {
        let name = name.to_owned();
        self.tx(move |tx| {
            tx.query_row(
                "SELECT seq FROM stream_cursor WHERE name = ?1",
                [name],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql)
            .map(|v| v.unwrap_or(0))
        })
        .await
    }

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
                forgotten += tx
                    .execute("DELETE FROM tx_claims WHERE key = ?1", [key])
                    .map_err(sql)?;
            }
            tx.execute("DELETE FROM scan_cursors WHERE chain_id = ?1", [id as i64])
                .map_err(sql)?;
            Ok(forgotten)
        })
        .await
    }

    pub async fn set_stream_cursor(&self, name: &str, seq: i64) -> StoreResult<()> {
        let name = name.to_owned();
        self.tx(move |tx| {
            tx.execute(
                "INSERT INTO stream_cursor (name, seq) VALUES (?1, ?2) ON CONFLICT (name) DO UPDATE SET seq = excluded.seq",
                params![name, seq],
            )
            .map_err(sql)?;
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl ClaimStore for EmbeddedStore {
    async fn claim_once(
        &self,
        key: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> StoreResult<bool> {
        let key = key.to_owned();
        self.tx(move |tx| {
            let changed = tx
                .execute(
                    "INSERT INTO claims (key, expires_at) VALUES (?1, ?2) \
                     ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at \
                     WHERE claims.expires_at < ?3",
                    params![key, expires_at.unix(), now.unix()],
                )
                .map_err(sql)?;
            Ok(changed == 1)
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
                tx.execute(
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
