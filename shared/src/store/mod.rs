//! The order store port and its two adapters: [`dynamo`] (DynamoDB, single table) and
//! [`embedded`] (SQLite). Both pass the same conformance suite.
//!
//! The port is split by capability so a handler asks only for what it uses (and its IAM
//! policy can be as narrow). [`Store`] is all of them together. Each adapter keeps one file
//! per capability; the rules both follow are written once beside them, so the adapters only
//! read and write: [`idempotency`] (what starting, completing and releasing a key does) and
//! [`versioned`] (when a versioned write may replace a record).
//!
//! A conditional write whose answer was lost (a timeout, a dropped connection) and which
//! the adapter's client sent again is answered as written when its first try was: a
//! refusal always means another writer's record stands (see `DynamoStore::put_if`). So
//! callers never compare a refused write's record with their own.

#[cfg(feature = "aws")]
pub mod dynamo;
#[cfg(feature = "embedded")]
pub mod embedded;
pub mod idempotency;
pub(crate) mod keys;
pub mod packed;
mod stream;
pub mod versioned;

pub use keys::{Cursor, InvalidCursor};
pub use stream::stream_event;
pub use versioned::Versioned;

use crate::analytics::{Bucket, Contribution};
use crate::model::{
    ApiKey, AuditEntry, ChainId, CheckoutSettings, Delivery, DeliveryId, Event, EventId, EventType,
    KeyId, KeyMode, MerchantWallet, NewOrder, OrderId, OrderMode, OrderStatus, OrderUpdate, OrgId,
    Organization, PayOrder, RateLimits, Timestamp, WebhookEndpoint, WebhookEndpointId,
};
use async_trait::async_trait;

/// How long idempotency records are kept (Stripe: 24 h).
pub const IDEMPOTENCY_TTL_SECS: i64 = 24 * 3600;
/// How long an in-flight idempotency record blocks retries before a crashed request's
/// lock may be taken over.
pub const IDEMPOTENCY_LOCK_SECS: i64 = 60;
/// Most webhook endpoints an organization may have in one mode (Stripe's limit): every
/// order event is sent to each of them, and `GET /webhook-endpoints` lists them all.
pub const MAX_WEBHOOK_ENDPOINTS: usize = 16;
/// Most active API keys (neither revoked nor past their expiry, a rolled key in its grace
/// period included) an organization may have in one mode.
pub const MAX_ACTIVE_API_KEYS: usize = 50;

/// What can go wrong in a store call. Expected outcomes are their own variants; faults of
/// the backing service are `Unavailable`.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("already exists")]
    AlreadyExists,
    #[error("the order changed since it was read (expected version {expected})")]
    VersionConflict { expected: u64 },
    #[error("nonce already used")]
    DuplicateNonce,
    #[error("transaction {claim} already paid an order")]
    TxAlreadyClaimed { claim: String },
    /// The idempotency key a change was to complete is no longer held by its request: the
    /// request outlived its lock and a retry took the key over. Nothing was written.
    #[error("the idempotency key was taken over by a later request")]
    IdempotencyKeyTakenOver,
    /// The organization already has, in this mode, as many records of the kind as it may
    /// ([`MAX_WEBHOOK_ENDPOINTS`], [`MAX_ACTIVE_API_KEYS`]). Nothing was written.
    #[error("the organization already has {limit} of these in this mode")]
    LimitReached { limit: usize },
    #[error("stored record is unreadable: {0}")]
    Corrupt(String),
    #[error("store unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    pub(crate) fn unavailable(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        StoreError::Unavailable(Box::new(e))
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// One page of a newest-first list.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub data: Vec<T>,
    pub has_more: bool,
    /// Pass back as `cursor` to get the next page; set only when `has_more`.
    pub next_cursor: Option<String>,
}

/// The part of a list query every list shares: whose data, which creation window, which page.
#[derive(Debug, Clone)]
pub struct ListWindow {
    pub organization_id: OrgId,
    pub mode: KeyMode,
    pub created_gte: Option<Timestamp>,
    pub created_lte: Option<Timestamp>,
    /// 1–100; callers validate, adapters clamp.
    pub limit: u32,
    pub cursor: Option<Cursor>,
}

impl ListWindow {
    pub fn new(organization_id: OrgId, mode: KeyMode) -> Self {
        Self {
            organization_id,
            mode,
            created_gte: None,
            created_lte: None,
            limit: 20,
            cursor: None,
        }
    }

    pub(crate) fn page_size(&self) -> usize {
        self.limit.clamp(1, 100) as usize
    }
}

/// Filters for listing orders.
#[derive(Debug, Clone, Default)]
pub struct OrderFilter {
    pub status: Option<OrderStatus>,
    pub mode: Option<OrderMode>,
    pub chain_id: Option<ChainId>,
    /// Currency id (`8453:0x…`).
    pub currency: Option<String>,
}

impl OrderFilter {
    #[cfg(any(feature = "embedded", feature = "aws"))]
    pub(crate) fn matches(&self, o: &PayOrder) -> bool {
        self.status.is_none_or(|s| s == o.status)
            && self.mode.is_none_or(|m| m == o.mode)
            && self.chain_id.is_none_or(|c| Some(c) == o.chain_id())
            && self
                .currency
                .as_deref()
                .is_none_or(|c| Some(c) == o.currency_id())
    }
}

/// Filters for listing the audit log.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only the entries about this object (`po_…`, `we_…`, `key_…`).
    pub object_id: Option<String>,
    /// Only the entries of requests made with this key.
    pub key_id: Option<KeyId>,
}

/// The audit log: entries are written once and never changed, and dropped after a year.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Stores a new entry; `AlreadyExists` if its id is taken (entries are never replaced).
    async fn put_audit_entry(&self, entry: &AuditEntry) -> StoreResult<()>;
    /// Newest first, one organization and mode.
    async fn list_audit_entries(
        &self,
        w: &ListWindow,
        f: &AuditFilter,
    ) -> StoreResult<Page<AuditEntry>>;
}

/// Filters for listing events.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub event_type: Option<EventType>,
}

/// Who an idempotency key belongs to: keys are per organization and mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyScope {
    pub organization_id: OrgId,
    pub mode: KeyMode,
    pub key: String,
}

impl IdempotencyScope {
    pub(crate) fn storage_key(&self) -> String {
        format!("{}#{}#{}", self.organization_id, self.mode, self.key)
    }
}

/// A response kept for replay under an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoredResponse {
    pub status: u16,
    pub body: String,
}

/// An idempotency key held by the running request ([`IdempotencyBegin::Started`]): whose
/// key, for which request, and until when its lock runs. The lock tells this request from
/// a later one with the same fingerprint (the client's retry) that took the key over once
/// this lock ran out: completing or releasing the key takes effect only while this hold is
/// the record's, so a request that outlived its lock never overwrites or frees its
/// successor's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyHold {
    pub scope: IdempotencyScope,
    pub fingerprint: String,
    /// The taken record's `locked_until` (epoch seconds).
    pub locked_until: i64,
}

/// An idempotency key completed by the same transaction as the change it answers
/// ([`NewOrder::completing`](crate::model::NewOrder::completing),
/// [`OrderUpdate::completing`](crate::model::OrderUpdate::completing)): a crash leaves the
/// change and the kept answer both or neither, never a change whose key a retry would take
/// again once its lock has run out (a second order, a second refund). If the key is no
/// longer this hold's, the whole change is refused ([`StoreError::IdempotencyKeyTakenOver`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyCompletion {
    pub hold: IdempotencyHold,
    pub response: StoredResponse,
    pub at: crate::model::Timestamp,
}

/// The idempotency completion a change's write carries, for the order as it is about to be
/// written: a request under an `Idempotency-Key` keeps its answer in its one write
/// (recording a payment, choosing payment details).
pub type KeepAnswer<'a> =
    &'a (dyn Fn(&crate::model::PayOrder) -> Option<IdempotencyCompletion> + Sync);

/// What starting a request under an idempotency key found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyBegin {
    /// No live record: this request now holds the key and must complete or release it.
    Started(IdempotencyHold),
    /// The same request finished before: answer with its response.
    Replay(StoredResponse),
    /// The same request is still running elsewhere.
    InFlight,
    /// The key was used with a different request.
    Mismatch,
}

#[async_trait]
pub trait OrgStore: Send + Sync {
    /// Creates an organization; `AlreadyExists` if its id is taken.
    async fn create_organization(&self, org: &Organization) -> StoreResult<()>;
    async fn get_organization(&self, id: &OrgId) -> StoreResult<Option<Organization>>;
    /// Replaces the organization (its settings) with `org`, at the next version of the one
    /// read: only while the stored version is still `expected_version`, else
    /// `VersionConflict` (`NotFound` if it is gone). Read, change and write again on a
    /// conflict, so concurrent changes of different settings all stick.
    async fn update_organization(
        &self,
        org: &Organization,
        expected_version: u64,
    ) -> StoreResult<()>;
    /// The organization's checkout page settings, if it ever saved any.
    async fn get_checkout_settings(&self, org: &OrgId) -> StoreResult<Option<CheckoutSettings>>;
    /// Replaces the organization's checkout page settings (the last write wins).
    async fn put_checkout_settings(&self, org: &OrgId, s: &CheckoutSettings) -> StoreResult<()>;
}

/// Per-caller request counters in fixed windows (the public routes' per-IP limits, the API
/// keys' hourly limits) and the organizations' own limits.
#[async_trait]
pub trait RateLimitStore: Send + Sync {
    /// Counts one request under `key` (which names the window) and returns the count so
    /// far, this one included. The record is dropped after `window_ends`.
    async fn count_hit(&self, key: &str, window_ends: Timestamp) -> StoreResult<u64>;
    /// The count under `key` without counting (0 when there is none, or it was dropped).
    async fn hits(&self, key: &str) -> StoreResult<u64>;
    /// The organization's rate limits (the defaults when it has none of its own).
    async fn get_rate_limits(&self, org: &OrgId) -> StoreResult<RateLimits>;
    /// Replaces the organization's own limits (the last write wins).
    async fn put_rate_limits(&self, org: &OrgId, limits: &RateLimits) -> StoreResult<()>;
}

/// An addition to one of an organization's capped lists (its webhook endpoints, its API
/// keys) is refused once the list is full, in both adapters, counted and written as one:
/// two additions at once never pass the limit together (SQLite counts inside the write's
/// transaction; DynamoDB guards the write on an item every addition moves, read before the
/// count, and counts again when another addition moved it first).
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// Stores a new key record; `AlreadyExists` if the id or hash is taken, `LimitReached`
    /// if its organization already has [`MAX_ACTIVE_API_KEYS`] active keys in its mode (at
    /// the key's `created_at`). With `completing`, the request's idempotency key is completed
    /// in the same write (see [`IdempotencyCompletion`]).
    async fn create_api_key(
        &self,
        key: &ApiKey,
        completing: Option<&IdempotencyCompletion>,
    ) -> StoreResult<()>;
    async fn get_api_key_by_hash(&self, key_hash: &str) -> StoreResult<Option<ApiKey>>;
    async fn get_api_key(&self, id: &KeyId) -> StoreResult<Option<ApiKey>>;
    /// A key of `org` in `mode` by id, in one read where the adapter can (what every
    /// request with an access token pays); `None` if it is another's or of the other mode.
    async fn get_org_api_key(
        &self,
        org: &OrgId,
        mode: KeyMode,
        id: &KeyId,
    ) -> StoreResult<Option<ApiKey>>;
    /// Marks a key revoked (keeping the first revocation time); `NotFound` if unknown.
    async fn revoke_api_key(&self, id: &KeyId, at: Timestamp) -> StoreResult<ApiKey>;
    /// Rolls `old` (the key as the caller read it) to `new`, in one write: `new` stored,
    /// `old` set to stop working at `until` (keeping an earlier expiry), and with
    /// `completing` the request's idempotency key completed. Answers `old` as left.
    /// Nothing is written when the stored key is no longer `old` (revoked or rolled
    /// meanwhile: `VersionConflict`), is unknown (`NotFound`), when `new`'s id or hash is
    /// taken (`AlreadyExists`), when the idempotency key was taken over, or when `old` keeps
    /// working after `new`'s `created_at` and the organization already has
    /// [`MAX_ACTIVE_API_KEYS`] active keys in the mode (`LimitReached`; a roll whose old key
    /// stops at once replaces it, and is never refused for the limit).
    async fn roll_api_key(
        &self,
        old: &ApiKey,
        new: &ApiKey,
        until: Timestamp,
        completing: Option<&IdempotencyCompletion>,
    ) -> StoreResult<ApiKey>;
    /// An organization's keys in one mode, revoked and expired ones too, newest first.
    async fn list_api_keys(&self, org: &OrgId, mode: KeyMode) -> StoreResult<Vec<ApiKey>>;
}

/// Newest first, by creation time then id, as both adapters list keys.
pub(crate) fn sort_keys_newest_first(keys: &mut [ApiKey]) {
    keys.sort_by(|a, b| (b.created_at, b.id.as_str()).cmp(&(a.created_at, a.id.as_str())));
}

/// Whether one more beside `count` would pass `limit`: `LimitReached` if so.
fn within_limit(count: usize, limit: usize) -> StoreResult<()> {
    if count >= limit {
        return Err(StoreError::LimitReached { limit });
    }
    Ok(())
}

/// Whether adding one more active key to `keys` (an organization's, in one mode) at `now`
/// would pass [`MAX_ACTIVE_API_KEYS`]: `LimitReached` if so.
pub(crate) fn check_key_limit(keys: &[ApiKey], now: Timestamp) -> StoreResult<()> {
    let active = keys.iter().filter(|k| k.is_active(now)).count();
    within_limit(active, MAX_ACTIVE_API_KEYS)
}

/// Whether a roll of `old` to `new`, `old` set to stop at `until`, adds an active key (the
/// old one keeps working beside the new one): then it counts against [`MAX_ACTIVE_API_KEYS`].
pub(crate) fn roll_adds_a_key(old: &ApiKey, new: &ApiKey, until: Timestamp) -> bool {
    old.expiry_when_rolled(until) > new.created_at
}

/// Whether one more webhook endpoint beside `count` would pass [`MAX_WEBHOOK_ENDPOINTS`].
pub(crate) fn check_endpoint_limit(count: usize) -> StoreResult<()> {
    within_limit(count, MAX_WEBHOOK_ENDPOINTS)
}

#[async_trait]
pub trait OrderStore: Send + Sync {
    /// Writes a new order, its `order.created` event and its nonce claim atomically;
    /// `DuplicateNonce` (and nothing written) if the nonce is taken.
    async fn create_order(&self, new: &NewOrder) -> StoreResult<()>;
    async fn get_order(&self, id: &OrderId) -> StoreResult<Option<PayOrder>>;
    /// Writes a checked update, its event and its tx claims atomically, only if the stored
    /// version is still the one read: `VersionConflict` or `TxAlreadyClaimed` otherwise.
    async fn update_order(&self, update: &OrderUpdate) -> StoreResult<()>;
    /// Newest first.
    async fn list_orders(&self, w: &ListWindow, f: &OrderFilter) -> StoreResult<Page<PayOrder>>;
    /// Orders in an expirable status whose `expires_at` is before `now`, soonest first.
    async fn list_expirable_orders(&self, now: Timestamp, limit: u32)
    -> StoreResult<Vec<PayOrder>>;
    /// The order a claimed transfer paid, if it was claimed.
    async fn get_tx_claim(&self, claim_key: &str) -> StoreResult<Option<OrderId>>;
    /// Orders on `chain` that take payments and are still watched at `now`: waiting for a
    /// payment, or expired but inside the late-payment window. What the deposit scan watches.
    async fn list_watched_orders(
        &self,
        chain: ChainId,
        now: Timestamp,
    ) -> StoreResult<Vec<PayOrder>>;
    /// Orders waiting on a confirmation check ([`PayOrder::awaits_check`]) last written
    /// before `updated_before`, oldest first, at most `limit`.
    async fn list_stalled_orders(
        &self,
        updated_before: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<PayOrder>>;
    /// The last block the deposit scan finished on `chain`, if it ever ran.
    async fn scan_cursor(&self, chain: ChainId) -> StoreResult<Option<u64>>;
    /// Moves the scan cursor from `expected` (what [`OrderStore::scan_cursor`] said) to
    /// `next`; `VersionConflict` if another scan moved it first.
    async fn set_scan_cursor(
        &self,
        chain: ChainId,
        expected: Option<u64>,
        next: u64,
    ) -> StoreResult<()>;
}

#[async_trait]
pub trait EventStore: Send + Sync {
    async fn get_event(&self, id: &EventId) -> StoreResult<Option<Event>>;
    /// Newest first.
    async fn list_events(&self, w: &ListWindow, f: &EventFilter) -> StoreResult<Page<Event>>;
}

#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Takes the key for a request with this fingerprint, or reports why not.
    async fn idempotency_begin(
        &self,
        scope: &IdempotencyScope,
        fingerprint: &str,
        now: Timestamp,
    ) -> StoreResult<IdempotencyBegin>;
    /// Records the response of the request holding the key; kept for 24 h from `now`.
    /// `false` (nothing written) if the key is no longer `hold`'s.
    async fn idempotency_complete(
        &self,
        hold: &IdempotencyHold,
        response: &StoredResponse,
        now: Timestamp,
    ) -> StoreResult<bool>;
    /// Gives the key up (the request failed in a way a retry may fix); only while it is
    /// still `hold`'s.
    async fn idempotency_release(&self, hold: &IdempotencyHold) -> StoreResult<()>;
}

#[async_trait]
pub trait ClaimStore: Send + Sync {
    /// Claims `key` until `expires_at`: true the first time, false while a claim is live.
    /// Used for signature replay protection and single-use nonces.
    async fn claim_once(
        &self,
        key: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> StoreResult<bool>;
    /// Ends the claim of `key` made until `expires_at` before it expires (the work it held
    /// failed and may be tried again). Only that claim: one made since, after it expired,
    /// is left alone. Releasing a claim that is gone is no error.
    async fn release_claim(&self, key: &str, expires_at: Timestamp) -> StoreResult<()>;
}

/// Analytics counters per organization, mode and UTC hour (see [`crate::analytics`]).
#[async_trait]
pub trait AnalyticsStore: Send + Sync {
    /// Adds the contribution's counters to its hour, unless its marker was applied before:
    /// marker and addition are one atomic write, so a contribution counts exactly once
    /// however often it is offered. True if this call applied it.
    async fn add_analytics(&self, c: &Contribution) -> StoreResult<bool>;
    /// Adds each contribution as [`Self::add_analytics`] does, in order (one offered twice
    /// counts once); how many this call applied. The embedded store writes them in one
    /// transaction (a stream consumer's batch is one commit), DynamoDB one by one. After
    /// an error some may have been applied: offering them all again counts each once.
    async fn add_analytics_all(&self, cs: &[Contribution]) -> StoreResult<usize>;
    /// The hours from `first_hour` to `last_hour` (inclusive) that have counters, oldest
    /// first.
    async fn read_analytics(
        &self,
        org: &OrgId,
        mode: KeyMode,
        first_hour: i64,
        last_hour: i64,
    ) -> StoreResult<Vec<Bucket>>;
}

#[async_trait]
pub trait WebhookStore: Send + Sync {
    /// `AlreadyExists` if the id is taken, `LimitReached` if the organization already has
    /// [`MAX_WEBHOOK_ENDPOINTS`] endpoints in the endpoint's mode (disabled ones too; see
    /// [`KeyStore`] on capped lists). With `completing`, the request's idempotency key is
    /// completed in the same write (see [`IdempotencyCompletion`]).
    async fn create_endpoint(
        &self,
        e: &WebhookEndpoint,
        completing: Option<&IdempotencyCompletion>,
    ) -> StoreResult<()>;
    async fn get_endpoint(
        &self,
        org: &OrgId,
        id: &WebhookEndpointId,
    ) -> StoreResult<Option<WebhookEndpoint>>;
    /// Replaces the endpoint if the stored version is `expected_version` (`VersionConflict`
    /// otherwise, `NotFound` if it is gone), writing `event` and, with `completing`, the
    /// request's idempotency key (see [`IdempotencyCompletion`]) in the same transaction: a
    /// rotated secret is never left behind a key a retry would take again.
    async fn update_endpoint(
        &self,
        e: &WebhookEndpoint,
        expected_version: u64,
        event: Option<&Event>,
        completing: Option<&IdempotencyCompletion>,
    ) -> StoreResult<()>;
    /// True if it existed.
    async fn delete_endpoint(&self, org: &OrgId, id: &WebhookEndpointId) -> StoreResult<bool>;
    /// An organization's endpoints in one mode, oldest first.
    async fn list_endpoints(&self, org: &OrgId, mode: KeyMode)
    -> StoreResult<Vec<WebhookEndpoint>>;
    /// Creates a delivery unless one with its id exists; true if this call created it.
    async fn create_delivery(&self, d: &Delivery) -> StoreResult<bool>;
    async fn get_delivery(&self, id: &DeliveryId) -> StoreResult<Option<Delivery>>;
    /// Replaces the delivery if the stored version is `expected_version`.
    async fn update_delivery(&self, d: &Delivery, expected_version: u64) -> StoreResult<()>;
    /// An endpoint's deliveries, newest first.
    async fn list_deliveries(
        &self,
        endpoint: &WebhookEndpointId,
        w: &ListWindow,
    ) -> StoreResult<Page<Delivery>>;
}

/// Where deliveries of a destination are listed: an endpoint's id, or an organization's
/// order-URL deliveries.
pub(crate) fn delivery_partition(d: &Delivery) -> String {
    match &d.endpoint_id {
        Some(e) => format!("DELIVERIES#{e}"),
        None => format!(
            "DELIVERIES#order_url#{}#{}",
            d.organization_id,
            keys::mode_of(d.livemode)
        ),
    }
}

#[async_trait]
pub trait WalletStore: Send + Sync {
    /// `AlreadyExists` if the organization has a wallet on that chain in that mode.
    async fn create_wallet(&self, w: &MerchantWallet) -> StoreResult<()>;
    async fn get_wallet(
        &self,
        org: &OrgId,
        mode: KeyMode,
        chain: ChainId,
    ) -> StoreResult<Option<MerchantWallet>>;
    /// An organization's wallets in one mode, by chain id.
    async fn list_wallets(&self, org: &OrgId, mode: KeyMode) -> StoreResult<Vec<MerchantWallet>>;
    /// Replaces the wallet if the stored version is `expected_version`.
    async fn update_wallet(&self, w: &MerchantWallet, expected_version: u64) -> StoreResult<()>;
    /// True if it existed.
    async fn delete_wallet(&self, org: &OrgId, mode: KeyMode, chain: ChainId) -> StoreResult<bool>;
    /// Hands out the next derivation index of `xpub` (0 first), atomically: the counter
    /// belongs to the xpub, not to a wallet record, so deleting and re-creating a wallet or
    /// switching xpubs back and forth never hands out an address twice.
    async fn next_xpub_index(&self, xpub: &str) -> StoreResult<u32>;
    /// Gives back `index`, handed out by [`Self::next_xpub_index`] and shown to no one, if
    /// it is still the last one handed out: the counter then hands it out next. `false`
    /// when another has been handed out since (the index stays unused).
    async fn return_xpub_index(&self, xpub: &str, index: u32) -> StoreResult<bool>;
}

/// The key of an xpub's derivation counter (the xpub itself is long and public-ish; its
/// hash is enough to tell them apart).
pub(crate) fn xpub_counter_key(xpub: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(xpub.trim().as_bytes()))
}

/// The organization's xpub wallet on `chain` and the next derivation index of its xpub,
/// handed out once ever (see [`WalletStore::next_xpub_index`]). The wallet's
/// `next_index` counts the addresses derived through this wallet record, for display.
pub async fn allocate_wallet_index(
    store: &dyn WalletStore,
    org: &OrgId,
    mode: KeyMode,
    chain: ChainId,
) -> StoreResult<(MerchantWallet, u32)> {
    let w = store
        .get_wallet(org, mode, chain)
        .await?
        .ok_or(StoreError::NotFound)?;
    let xpub = w
        .xpub
        .as_deref()
        .ok_or_else(|| StoreError::Corrupt("the wallet has no xpub".into()))?;
    let index = store.next_xpub_index(xpub).await?;
    // Count it on the wallet for display (`addresses_derived`); the counter above is what
    // keeps addresses unique, this count only reports them.
    Ok((count_derivations(store, w, 1).await?, index))
}

/// Moves `w`'s count of its derivations (`next_index`, for display) by `delta`, over the
/// wallet as stored: the wallet as written, or as found when it was deleted or replaced
/// meanwhile (nothing left to count it on). Only a wallet of the same xpub counts it: the
/// index came from that xpub's counter, and a caller derives the address from the xpub of
/// the wallet returned.
async fn count_derivations(
    store: &dyn WalletStore,
    mut w: MerchantWallet,
    delta: i32,
) -> StoreResult<MerchantWallet> {
    let mode = KeyMode::of(w.livemode);
    loop {
        let mut next = w.next_version();
        next.next_index = next.next_index.saturating_add_signed(delta);
        next.updated_at = Timestamp::now();
        match store.update_wallet(&next, w.version).await {
            Ok(()) => return Ok(next),
            Err(StoreError::VersionConflict { .. }) => {
                match store
                    .get_wallet(&w.organization_id, mode, w.chain_id)
                    .await?
                {
                    Some(again) if again.xpub == w.xpub => w = again,
                    _ => return Ok(w),
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// Gives back the derivation index [`allocate_wallet_index`] handed out when what it was
/// for failed before the address was shown to anyone (an exchange that could not be
/// opened): were it kept, every failed try would leave a gap in the xpub's addresses, and
/// wallet software stops scanning after a run of unused ones. Given back only while it is
/// the xpub's last index; the wallet's count of its derivations goes back with it.
pub async fn give_back_wallet_index(
    store: &dyn WalletStore,
    wallet: &MerchantWallet,
    index: u32,
) -> StoreResult<bool> {
    let Some(xpub) = wallet.xpub.as_deref() else {
        return Ok(false);
    };
    if !store.return_xpub_index(xpub, index).await? {
        return Ok(false);
    }
    count_derivations(store, wallet.clone(), -1).await?;
    Ok(true)
}

/// Every capability together: what the local host and the tests hold.
pub trait Store:
    OrgStore
    + KeyStore
    + OrderStore
    + EventStore
    + IdempotencyStore
    + ClaimStore
    + WebhookStore
    + WalletStore
    + RateLimitStore
    + AuditStore
    + AnalyticsStore
{
}

impl<T> Store for T where
    T: OrgStore
        + KeyStore
        + OrderStore
        + EventStore
        + IdempotencyStore
        + ClaimStore
        + WebhookStore
        + WalletStore
        + RateLimitStore
        + AuditStore
        + AnalyticsStore
{
}

#[cfg(test)]
mod allocation_tests {
    use super::*;
    use crate::store::embedded::EmbeddedStore;

    use crate::testing::{XPUBS, xpub_wallet};

    const BASE: u64 = 8453;

    /// A store whose merchant replaces the wallet (deletes it and creates another with a
    /// new xpub) while an index is being allocated: between the allocation's read of the
    /// wallet and its count write.
    struct Replacing {
        inner: EmbeddedStore,
        replacement: std::sync::Mutex<Option<MerchantWallet>>,
    }

    #[async_trait]
    impl WalletStore for Replacing {
        async fn create_wallet(&self, w: &MerchantWallet) -> StoreResult<()> {
            self.inner.create_wallet(w).await
        }
        async fn get_wallet(
            &self,
            org: &OrgId,
            mode: KeyMode,
            chain: ChainId,
        ) -> StoreResult<Option<MerchantWallet>> {
            self.inner.get_wallet(org, mode, chain).await
        }
        async fn list_wallets(
            &self,
            org: &OrgId,
            mode: KeyMode,
        ) -> StoreResult<Vec<MerchantWallet>> {
            self.inner.list_wallets(org, mode).await
        }
        async fn update_wallet(&self, w: &MerchantWallet, v: u64) -> StoreResult<()> {
            self.inner.update_wallet(w, v).await
        }
        async fn delete_wallet(&self, o: &OrgId, m: KeyMode, c: ChainId) -> StoreResult<bool> {
            self.inner.delete_wallet(o, m, c).await
        }
        async fn return_xpub_index(&self, xpub: &str, index: u32) -> StoreResult<bool> {
            self.inner.return_xpub_index(xpub, index).await
        }
        async fn next_xpub_index(&self, xpub: &str) -> StoreResult<u32> {
            let index = self.inner.next_xpub_index(xpub).await?;
            let replacement = self.replacement.lock().unwrap().take();
            if let Some(w) = replacement {
                let mode = KeyMode::of(w.livemode);
                self.inner
                    .delete_wallet(&w.organization_id, mode, w.chain_id)
                    .await?;
                self.inner.create_wallet(&w).await?;
            }
            Ok(index)
        }
    }

    #[tokio::test]
    async fn an_index_is_counted_only_on_a_wallet_of_the_xpub_that_gave_it() {
        let org = OrgId::generate();
        let chain = ChainId::new(BASE).unwrap();
        let [old_xpub, new_xpub] = XPUBS;
        let store = Replacing {
            inner: EmbeddedStore::in_memory().unwrap(),
            replacement: Default::default(),
        };
        let old = xpub_wallet(&org, chain, old_xpub, Timestamp::now().plus_seconds(-120));
        store.create_wallet(&old).await.unwrap();
        // Two indexes of the old xpub are handed out before the replacement.
        for expected in 0..2 {
            let (w, i) = allocate_wallet_index(&store, &org, KeyMode::Test, chain)
                .await
                .unwrap();
            assert_eq!((w.xpub.as_deref(), i), (Some(old_xpub), expected));
        }
        let new = xpub_wallet(&org, chain, new_xpub, Timestamp::now());
        *store.replacement.lock().unwrap() = Some(new.clone());

        let (w, index) = allocate_wallet_index(&store, &org, KeyMode::Test, chain)
            .await
            .unwrap();
        // The index is the old xpub's third, and the wallet returned (whose xpub the
        // address is derived from) is the old one it belongs to.
        assert_eq!((w.xpub.as_deref(), index), (Some(old_xpub), 2));
        // The new wallet is as its merchant made it: not written over, nothing counted.
        let stored = store.get_wallet(&org, KeyMode::Test, chain).await.unwrap();
        assert_eq!(stored, Some(new));
        // Its own xpub starts at index 0.
        let (w, index) = allocate_wallet_index(&store, &org, KeyMode::Test, chain)
            .await
            .unwrap();
        assert_eq!(
            (w.xpub.as_deref(), index, w.next_index),
            (Some(new_xpub), 0, 1)
        );
    }
}
