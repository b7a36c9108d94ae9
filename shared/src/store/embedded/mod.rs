//! Embedded adapter: SQLite (bundled) in a file under `.local/` or in memory, with the same
//! behaviour as the DynamoDB adapter: the conformance suite runs against both.
//!
//! Every write runs in one SQLite transaction with the guard it needs (a read-then-write
//! inside one call), so conditional writes are atomic exactly as DynamoDB transactions
//! are. Concurrent writes share one transaction and one sync to disk (group commit, see
//! [`writer`]), each in a savepoint of its own; reads use read-only connections.

mod analytics;
mod api_keys;
mod audit;
mod claims;
mod events;
mod idempotency;
mod orders;
mod orgs;
mod queue;
mod rate_limits;
mod readers;
mod wallets;
mod webhooks;
mod writer;

use super::keys::{self, parse_doc};
use super::versioned::Guard;
use super::*;
use rusqlite::{Connection, OptionalExtension};
use std::path::Path;
use std::sync::{Arc, Mutex};

pub use queue::QueuedMessage;

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
CREATE INDEX IF NOT EXISTS rate_hits_expiry ON rate_hits (expires_at);
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
CREATE TABLE IF NOT EXISTS queue_messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    body TEXT NOT NULL,
    visible_at INTEGER NOT NULL
);
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
///
/// Writes go to one writer thread that owns the write connection and commits them in
/// groups (see [`writer`]); reads of a file store go to a few read-only connections beside
/// it (WAL lets them read while the writer writes; see [`readers`]), and in memory to the
/// writer as well.
#[derive(Clone)]
pub struct EmbeddedStore {
    writer: writer::Writer,
    readers: Option<Arc<readers::Readers>>,
    /// Rate counters, counted in memory (see [`rate_limits`]).
    hits: Arc<rate_limits::Hits>,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EmbeddedStore")
    }
}

/// Prepared statements kept per connection: every statement of the hot paths.
const STATEMENT_CACHE: usize = 64;

/// Sets up a connection to run its statements from its cache of prepared statements.
///
/// SQLite (as bundled, with `SQLITE_ENABLE_STAT4`) marks some statements to be prepared
/// again whenever a new value is bound, in case the value suggests a better plan: the
/// wallet list, for one, was parsed and planned afresh on every create. The query planner
/// stability guarantee keeps each statement's first plan; the store's queries are written
/// for their indexes and the store never runs `ANALYZE`, so no plan depends on the values.
fn tune(conn: &Connection) -> StoreResult<()> {
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )
    .map_err(StoreError::unavailable)?;
    Ok(())
}

impl EmbeddedStore {
    /// Opens (creating if needed) a database file, in WAL mode, every commit synced to
    /// disk before it is answered (`synchronous = FULL`).
    pub fn open(path: &Path) -> StoreResult<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(StoreError::unavailable)?;
        }
        let conn = Connection::open(path).map_err(StoreError::unavailable)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(StoreError::unavailable)?;
        // In WAL mode, FULL syncs the log at every commit: a commit is on disk before
        // the writer answers any call of its group.
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(StoreError::unavailable)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(StoreError::unavailable)?;
        conn.execute_batch(SCHEMA)
            .map_err(StoreError::unavailable)?;
        Ok(Self {
            writer: writer::Writer::start(conn)?,
            readers: Some(readers::Readers::open(path)?),
            hits: Default::default(),
        })
    }

    /// The read-only connections of a file store (tests).
    #[cfg(test)]
    fn readers(&self) -> &readers::Readers {
        self.readers.as_deref().expect("a file store")
    }

    /// A private in-memory database (tests, one-off tools): reads go to the writer too.
    pub fn in_memory() -> StoreResult<Self> {
        let conn = Connection::open_in_memory().map_err(StoreError::unavailable)?;
        conn.execute_batch(SCHEMA)
            .map_err(StoreError::unavailable)?;
        Ok(Self {
            writer: writer::Writer::start(conn)?,
            readers: None,
            hits: Default::default(),
        })
    }

    /// Runs `f` on the writer, inside the writer's current immediate transaction and a
    /// savepoint of its own: `Err` undoes `f`'s writes alone. Answered once the group's
    /// commit is on disk; a failed commit fails every call of the group.
    async fn tx<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        self.writer.run(true, f).await
    }

    /// As [`Self::tx`] for a lazy write (a rate counter, a single-use claim, an audit
    /// entry, a queue message): answered at its commit, before the sync to disk that the
    /// next durable commit brings (see [`writer`] for why these may).
    async fn tx_lazy<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        self.writer.run(false, f).await
    }

    /// As [`Self::read`] for a read of a few rows by key: run at once on the calling
    /// thread when a read-only connection is free (a read of pages SQLite has in memory
    /// takes microseconds, less than handing it to another thread), else as `read`.
    async fn point<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        if let Some(readers) = &self.readers
            && let Some(mut reader) = readers.free()
        {
            return reader.run(f);
        }
        self.read(f).await
    }

    /// Runs a read-only `f` in one transaction on a read-only connection: a snapshot with
    /// everything committed before the call (one an earlier read kept, when nothing has been
    /// committed since: see [`readers`]), so only for reads that are not followed by a write
    /// they guard (those belong inside the write's [`Self::tx`]). An in-memory store reads
    /// on the writer.
    async fn read<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let Some(readers) = self.readers.clone() else {
            return self.tx(f).await;
        };
        tokio::task::spawn_blocking(move || readers.any().run(f))
            .await
            .map_err(StoreError::unavailable)?
    }
}

/// Runs `body` between `begin` and `COMMIT` on `conn`, both from the statement cache
/// (rusqlite's `Transaction` parses them anew each time). When the begin, the body or the
/// commit fails, nothing of it is kept and the connection is left outside any transaction
/// for its next user. `fail` turns a failed `BEGIN` or `COMMIT` into the caller's error.
fn in_transaction<T, E>(
    conn: &Connection,
    begin: &str,
    body: impl FnOnce() -> Result<T, E>,
    fail: impl Fn(&'static str, rusqlite::Error) -> E,
) -> Result<T, E> {
    exec(conn, begin, []).map_err(|e| fail("cannot begin a transaction", e))?;
    let out = body().and_then(|v| {
        exec(conn, "COMMIT", []).map_err(|e| fail("commit failed", e))?;
        Ok(v)
    });
    if out.is_err() && !conn.is_autocommit() {
        let _ = exec(conn, "ROLLBACK", []);
    }
    out
}

/// Runs one statement through the connection's cache of prepared statements.
fn exec(tx: &Connection, sql_text: &str, args: impl rusqlite::Params) -> rusqlite::Result<usize> {
    tx.prepare_cached(sql_text)?.execute(args)
}

/// The one row a statement selects (or returns), through the cache of prepared statements.
fn row<T>(
    tx: &Connection,
    sql_text: &str,
    args: impl rusqlite::Params,
    f: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    tx.prepare_cached(sql_text)?.query_row(args, f)
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
    tx: &Connection,
    query: &str,
    key: &str,
) -> StoreResult<Option<T>> {
    tx.prepare_cached(query)
        .and_then(|mut s| s.query_row([key], |r| r.get::<_, String>(0)))
        .optional()
        .map_err(sql)?
        .map(|d| parse_doc(&d))
        .transpose()
}

/// The first column of the rows `sql_text` selects, as text (tests look into tables).
#[cfg(test)]
fn texts(tx: &Connection, sql_text: &str) -> StoreResult<Vec<String>> {
    let mut stmt = tx.prepare(sql_text).map_err(sql)?;
    stmt.query_map([], |r| r.get::<_, String>(0))
        .map_err(sql)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sql)
}

/// Inserts a row that must be new: a unique violation is `AlreadyExists`.
fn insert_new(tx: &Connection, sql_text: &str, args: impl rusqlite::Params) -> StoreResult<()> {
    match tx
        .prepare_cached(sql_text)
        .and_then(|mut s| s.execute(args))
    {
        Ok(_) => Ok(()),
        Err(e) if is_unique_violation(&e) => Err(StoreError::AlreadyExists),
        Err(e) => Err(sql(e)),
    }
}

/// Checks a guarded write against the stored version (or value) `query` selects, in the
/// write's transaction: [`Guard::check`] decides.
fn check_guard(
    tx: &Connection,
    guard: Guard,
    query: &str,
    args: impl rusqlite::Params,
) -> StoreResult<()> {
    let stored: Option<i64> = tx
        .prepare_cached(query)
        .and_then(|mut s| s.query_row(args, |r| r.get(0)))
        .optional()
        .map_err(sql)?;
    guard.check(stored.map(|v| v as u64))
}

/// Every `doc` a query selects, parsed.
fn docs<T: serde::de::DeserializeOwned>(
    tx: &Connection,
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

/// Newest-first rows of one partition, filtered by `matches`, up to `limit + 1`, looking at
/// no more rows than the DynamoDB adapter's reads would ([`keys::QUERIES_PER_PAGE`]): as
/// [`keys::page_read`] takes them, with the sort key of the last row looked at when it
/// stopped there short of a page.
#[allow(clippy::type_complexity)]
fn newest_first<T: serde::de::DeserializeOwned>(
    tx: &Connection,
    table: &str,
    partition: &str,
    w: &ListWindow,
    matches: impl Fn(&T) -> bool,
) -> StoreResult<(Vec<(String, T)>, Option<String>)> {
    let want = w.page_size() + 1;
    let Some(range) = keys::page_range(w) else {
        return Ok((Vec::new(), None));
    };
    let budget = keys::QUERIES_PER_PAGE * keys::read_per_query(want);
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
    let (mut out, mut looked) = (Vec::new(), 0);
    while let Some(row) = rows.next().map_err(sql)? {
        let key: String = row.get(0).map_err(sql)?;
        let item: T = parse_doc(&row.get::<_, String>(1).map_err(sql)?)?;
        looked += 1;
        let last = looked == budget;
        if matches(&item) {
            out.push((key.clone(), item));
            if out.len() == want {
                break;
            }
        }
        if last {
            return Ok((out, Some(key)));
        }
    }
    Ok((out, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A read run again with other values is not parsed and planned again (see [`tune`]):
    /// the wallet list of two organizations in turn, as creates read it.
    #[tokio::test]
    async fn hot_reads_are_prepared_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(&dir.path().join("store.db")).unwrap();
        let orgs = [OrgId::generate(), OrgId::generate()];
        for i in 0..8 {
            store
                .list_wallets(&orgs[i % 2], KeyMode::Test)
                .await
                .unwrap();
        }
        let (mut runs, mut reprepared) = (0, 0);
        for reader in store.readers.as_ref().unwrap().each() {
            let stmt = reader.conn.prepare_cached(wallets::LIST_WALLETS).unwrap();
            runs += stmt.get_status(rusqlite::StatementStatus::Run);
            reprepared += stmt.get_status(rusqlite::StatementStatus::RePrepare);
        }
        drop(store);
        assert_eq!(runs, 8, "every list ran on a reader's cached statement");
        assert_eq!(
            reprepared, 0,
            "a new binding made SQLite prepare the list again"
        );
    }

    /// Expired single-use claims are dropped as new ones are made (every signed request
    /// makes one), and an expired claim can be made again.
    #[tokio::test]
    async fn expired_claims_are_dropped() {
        let store = EmbeddedStore::in_memory().unwrap();
        let t0 = Timestamp::parse("2026-06-01T12:00:00Z").unwrap();
        let claim = async |k: &str, at: Timestamp| {
            store.claim_once(k, at, at.plus_seconds(10)).await.unwrap()
        };
        let live = async || -> Vec<String> {
            store
                .tx(|tx| texts(tx, "SELECT key FROM claims ORDER BY key"))
                .await
                .unwrap()
        };
        let old: Vec<String> = (0..10).map(|i| format!("old-{i:02}")).collect();
        for k in &old {
            assert!(claim(k, t0).await);
        }
        assert!(!claim("old-00", t0).await, "a live claim is not made twice");
        // A claim made before they expire drops none of them.
        assert!(claim("mid", t0.plus_seconds(5)).await);
        assert_eq!(live().await.len(), 11);
        // Once they have expired, the next claims drop them, a few at a time.
        let later = t0.plus_seconds(11);
        for k in ["new-1", "new-2", "new-3"] {
            assert!(claim(k, later).await);
        }
        assert_eq!(live().await, ["mid", "new-1", "new-2", "new-3"]);
        // An expired claim can be made again.
        assert!(claim("old-00", later).await);
    }
}
