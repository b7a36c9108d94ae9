//! Embedded adapter: SQLite (bundled) in a file under `.local/` or in memory, with the same
//! behaviour as the DynamoDB adapter: the conformance suite runs against both.
//!
//! One connection behind a mutex; every call runs on the blocking pool in one SQLite
//! transaction, so conditional writes are atomic exactly as DynamoDB transactions are.

mod analytics;
mod api_keys;
mod audit;
mod claims;
mod events;
mod idempotency;
mod orders;
mod orgs;
mod rate_limits;
mod wallets;
mod webhooks;

use super::keys::{self, parse_doc};
use super::versioned::Guard;
use super::*;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior};
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
CREATE TABLE IF NOT EXISTS rate_limits (org_id TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS audit_log (
    id TEXT NOT NULL,
    partition_key TEXT NOT NULL,
    sort_key TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (partition_key, sort_key)
);
CREATE INDEX IF NOT EXISTS audit_log_expiry ON audit_log (expires_at);
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
CREATE TABLE IF NOT EXISTS analytics (
    org_id TEXT NOT NULL,
    mode TEXT NOT NULL,
    hour INTEGER NOT NULL,
    name TEXT NOT NULL,
    value INTEGER NOT NULL,
    PRIMARY KEY (org_id, mode, hour, name)
);
CREATE TABLE IF NOT EXISTS analytics_markers (marker TEXT PRIMARY KEY);
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

/// Checks a guarded write against the stored version (or value) `query` selects, in the
/// write's transaction: [`Guard::check`] decides.
fn check_guard(
    tx: &rusqlite::Transaction<'_>,
    guard: Guard,
    query: &str,
    args: impl rusqlite::Params,
) -> StoreResult<()> {
    let stored: Option<i64> = tx
        .query_row(query, args, |r| r.get(0))
        .optional()
        .map_err(sql)?;
    guard.check(stored.map(|v| v as u64))
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
