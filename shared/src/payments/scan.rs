//! The deposit scan: transfers to waiting orders' deposit addresses, found block by block
//! and recorded as if they had been submitted.

use super::verify::{VerifyError, verify_read};
use super::{PaymentError, PaymentMismatch, Settler, record_payment};
use crate::chains::{ChainError, Sighting, TxReader};
use crate::model::{Address, ChainId, OrderId, OrgId, PayOrder, Timestamp, TxHash};
use crate::queue::QueueError;
use crate::store::StoreError;
use serde::Serialize;

/// The most blocks one scan reads on one chain (the rest is left for the next run).
pub const SCAN_MAX_BLOCKS: u64 = 500;
/// The most blocks one scan reads on one chain while a native currency is watched: each is
/// read whole, one request a block, and every chain's scan shares the function's minute.
pub const SCAN_MAX_FULL_BLOCKS: u64 = 400;
/// How far back from the head the very first scan of a chain starts.
pub const SCAN_LOOKBACK: u64 = 100;
/// How long, in seconds of a chain's blocks, token transfers stay in every run's log query
/// (see [`log_depth`]): a node of a load-balanced provider this far behind the one that
/// answered the head is covered.
pub const LOG_LAG_SECS: u64 = 120;

/// What one scan of one chain did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScanReport {
    pub chain_id: ChainId,
    /// The blocks read, inclusive; `None` when the cursor was already at the head.
    pub blocks: Option<(u64, u64)>,
    pub watched_orders: usize,
    /// Payments recorded (new transfers on orders).
    pub recorded: usize,
    /// The run stopped before the end of its new blocks, out of time: `blocks` ends at the
    /// last block it finished, where its cursor is, and the next run goes on from there.
    /// (Out of time among the blocks it reads again, it still moves on.)
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub cut_short: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error(transparent)]
    Chain(#[from] ChainError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// The order kept changing while the transfer was recorded on it (see
    /// [`PaymentError::Busy`]): not recorded this time, so the range is read again.
    #[error("order {order} kept changing while transaction {tx} was recorded on it")]
    Busy { order: OrderId, tx: TxHash },
}

/// One deposit scan of `chain`: from the block after the cursor (less the last
/// [`reorg_depth`] blocks, read again, and [`log_depth`] blocks for token transfers) up to
/// the head (at most [`SCAN_MAX_BLOCKS`] new ones), every
/// transaction paying the deposit address of an order waiting for a payment goes through
/// [`record_payment`], as if it had been submitted. Where several waiting orders of one
/// organization (and mode) share an address (a merchant wallet without an xpub), the
/// transfer goes to the oldest whose amount due it matches exactly, else to none (the payer
/// then submits the hash); each organization's orders there are matched on their own (see
/// [`offer`]). The cursor moves only after the whole range is processed: a transfer is
/// passed over only when it is refused for good (it does not pay the order, or another
/// order claimed it); any other failure (a read, a write, an order that kept changing)
/// fails the run, which is repeated. Recording is idempotent, so nothing is counted twice.
pub async fn scan_chain(
    s: &Settler,
    chain: ChainId,
    now: Timestamp,
) -> Result<ScanReport, ScanError> {
    scan_chain_until(s, chain, now, None).await
}

/// [`scan_chain`] that stops offering transfers at `deadline` (the function's own, less
/// the time to write the cursor): the blocks whose transfers were all offered count as
/// read, and the cursor moves to the last of them. A range full of transfers (a swarm of
/// one-unit payments to a watched address, cheap on an L2) otherwise took longer than the
/// function's timeout at every run, and the cursor never moved again, for every order on
/// the chain.
pub async fn scan_chain_until(
    s: &Settler,
    chain: ChainId,
    now: Timestamp,
    deadline: Option<tokio::time::Instant>,
) -> Result<ScanReport, ScanError> {
    let reader = s.chains.get(chain)?.clone();
    let head = reader.head().await?;
    let cursor = s.store.scan_cursor(chain).await?;
    // Where this run reads from, and the last block an earlier run read (the blocks up to
    // it are read again only for reorgs and lagging nodes).
    let (from, read_before) = match cursor {
        // Nothing new since the last run.
        Some(c) if c == head => return Ok(empty(chain)),
        // The blocks after the cursor, and again the last ones before it: a reorg there
        // may have brought a payment into a block already read (see [`reorg_depth`]).
        Some(c) if c < head => ((c + 1).saturating_sub(reorg_depth(chain)), Some(c)),
        // A head a little below the cursor: the node answering is behind the one that
        // answered the last run (load-balanced providers answer from several). Wait for it,
        // moving nothing: going back would read blocks again as if never read.
        Some(c) if c - head <= SCAN_LOOKBACK => {
            tracing::info!(chain = %chain, cursor = c, head, "the node's head is behind the scan cursor; waiting for it");
            return Ok(empty(chain));
        }
        // Far below: the chain was reset (a local chain restarted). Start again from recent
        // blocks (recording is idempotent, so re-reading them counts nothing twice).
        Some(c) => {
            tracing::warn!(chain = %chain, cursor = c, head, "chain head is far below the scan cursor; rescanning recent blocks");
            (head.saturating_sub(SCAN_LOOKBACK), None)
        }
        None => (head.saturating_sub(SCAN_LOOKBACK), None),
    };
    let mut report = empty(chain);
    let mut orders = s.store.list_watched_orders(chain, now).await?;
    report.watched_orders = orders.len();
    // A watched order can wait on a check too (a partial payment confirming). The index the
    // upkeep's sweep of lost checks reads on DynamoDB keeps an order under its expiry while
    // it can still expire, so such an order's lost check is queued again here.
    let stale_before = now.plus_seconds(-i64::from(s.stale_after_secs()));
    for o in orders.iter_mut() {
        if let Some(touched) =
            super::expire::requeue_if_stalled::<ScanError>(s, o, stale_before, now).await?
        {
            *o = touched;
        }
    }
    let mut watch = crate::chains::Watch::default();
    for p in orders.iter().filter_map(|o| o.payment.as_ref()) {
        let address = p.deposit_address().to_owned();
        if !watch.addresses.contains(&address) {
            watch.addresses.push(address);
        }
        match &p.input.currency.address {
            Some(token) if !watch.tokens.contains(token) => watch.tokens.push(token.clone()),
            Some(_) => {}
            None => watch.native = true,
        }
    }
    let most = if watch.native {
        SCAN_MAX_FULL_BLOCKS
    } else {
        SCAN_MAX_BLOCKS
    };
    // The cap counts new blocks only: the ones read again come on top.
    let to = head.min(read_before.map_or(from, |c| c + 1) + most - 1);
    // Token transfers are found by a log query, which a node behind the others answers for
    // blocks it does not have with nothing at all: they are read again further back (see
    // [`log_depth`]). A native transfer is found in its block, which such a node fails to
    // show, so the scan stops there instead.
    let logs_from = match read_before {
        Some(c) => from.min((c + 1).saturating_sub(log_depth(chain))),
        None => from,
    };
    let first = if watch.tokens.is_empty() {
        from
    } else {
        logs_from
    };
    // The last block whose transfers were all offered.
    let mut done = to;
    if !orders.is_empty() {
        let read = async {
            let mut sightings = Vec::new();
            if !watch.tokens.is_empty() {
                let tokens = crate::chains::Watch {
                    native: false,
                    ..watch.clone()
                };
                sightings.extend(
                    sightings_within_limits(&*reader, chain, logs_from, to, &tokens).await?,
                );
            }
            if watch.native {
                let native = crate::chains::Watch {
                    tokens: Vec::new(),
                    ..watch.clone()
                };
                sightings
                    .extend(sightings_within_limits(&*reader, chain, from, to, &native).await?);
            }
            Ok::<_, ChainError>(sightings)
        };
        let mut sightings = within(deadline, Box::pin(read)).await.map_err(|_| {
            ChainError::Rpc("the run ran out of time reading the blocks' transfers".into())
        })??;
        // New blocks first, in the chain's order (stable: a block's transfers as the node
        // listed them), then the blocks read again: the cursor follows the new ones only, so
        // a run short of time among blocks read again still moves on.
        let fresh = |s: &Sighting| read_before.is_none_or(|c| s.block_number > c);
        sightings.sort_by_key(|s| (!fresh(s), s.block_number));
        // One transaction may pay several watched addresses (a batch payout): each
        // (transaction, address) pair is looked at once, so every order it pays is credited.
        let mut seen = std::collections::HashSet::new();
        'sightings: for sighting in sightings {
            // A transfer in a block read before (see [`reorg_depth`]) was offered then (unless
            // a lagging node left it out: see [`log_depth`]): if it went to no order, it is
            // not given now, on what changed since (an order sharing its address paid), to
            // an order it may not pay.
            let again = !fresh(&sighting);
            if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                out_of_time(chain, &sighting, again, &mut done, &mut report);
                break;
            }
            let to_key = sighting.to.to_lowercase();
            if !seen.insert((sighting.tx_hash.to_string(), to_key)) {
                continue;
            }
            // Each organization's orders (in each mode) on the address are matched on
            // their own, as a submitted transfer is (its claims are per organization and
            // mode): another organization naming our address in its orders can neither
            // take our payment's detection nor keep it from us.
            let mut tenants: Vec<(OrgId, bool)> = orders
                .iter()
                .filter(|o| watches(o, &sighting))
                .map(|o| (o.organization_id.clone(), o.livemode))
                .collect();
            tenants.sort();
            tenants.dedup();
            for tenant in &tenants {
                // An offer still running at the deadline is dropped, as a killed process
                // would leave it (every step of recording is safe to stop and do again):
                // its block counts as not read.
                // (On the heap: recording's future is large, and the stack of a test's
                // thread or a runtime's worker is not.)
                let offered = Box::pin(offer(
                    s,
                    &*reader,
                    &mut orders,
                    &sighting,
                    tenant,
                    again,
                    now,
                ));
                let Ok(new) = within(deadline, offered).await else {
                    out_of_time(chain, &sighting, again, &mut done, &mut report);
                    break 'sightings;
                };
                report.recorded += usize::from(new?);
            }
        }
    }
    report.blocks = (done >= first).then_some((first, done));
    // Out of time before its first new block was done, the cursor stays where it was.
    if cursor.is_some_and(|c| done <= c) {
        return Ok(report);
    }
    match s.store.set_scan_cursor(chain, cursor, done).await {
        Ok(()) | Err(StoreError::VersionConflict { .. }) => Ok(report),
        Err(e) => Err(e.into()),
    }
}

/// `f` until `deadline`, if there is one: `Err` once it passed.
async fn within<T>(
    deadline: Option<tokio::time::Instant>,
    f: impl std::future::Future<Output = T>,
) -> Result<T, tokio::time::error::Elapsed> {
    match deadline {
        Some(d) => tokio::time::timeout_at(d, f).await,
        None => Ok(f.await),
    }
}

/// A run out of time at `sighting`: among new blocks, the cursor stops before its block;
/// among blocks read again, it follows the new blocks, all offered by then.
fn out_of_time(
    chain: ChainId,
    sighting: &Sighting,
    again: bool,
    done: &mut u64,
    report: &mut ScanReport,
) {
    if again {
        tracing::info!(chain = %chain, block = sighting.block_number, "the deposit scan ran out of time among blocks read again; its new blocks are all read");
    } else {
        *done = sighting.block_number.saturating_sub(1);
        report.cut_short = true;
        tracing::warn!(chain = %chain, block = sighting.block_number, "the deposit scan ran out of time; the next run goes on from this block");
    }
}

/// Whether `o` is an order that takes payments at the address `sighting` pays.
fn watches(o: &PayOrder, sighting: &Sighting) -> bool {
    o.status.accepts_payment()
        && o.payment
            .as_ref()
            .is_some_and(|p| Address::same(p.family(), p.deposit_address(), &sighting.to))
}

/// Offers `sighting` to the orders of one organization in one mode (`tenant`) that watch its
/// address, as [`scan_chain`] says: whether one recorded it as a new payment. `orders` is
/// kept as the writes leave them, so the next transfers are matched against the orders as
/// they are now (paid, or with less still due), not as listed.
async fn offer(
    s: &Settler,
    reader: &dyn TxReader,
    orders: &mut [PayOrder],
    sighting: &Sighting,
    tenant: &(OrgId, bool),
    again: bool,
    now: Timestamp,
) -> Result<bool, ScanError> {
    // Each candidate at most once: one whose listed copy turned out stale (another request
    // paid or cancelled it since the list was read) is read again, and the transfer offered
    // to the others.
    let mut tried: Vec<OrderId> = Vec::new();
    loop {
        let mut candidates: Vec<&PayOrder> = orders
            .iter()
            .filter(|o| {
                !tried.contains(&o.id)
                    && (&o.organization_id, o.livemode) == (&tenant.0, tenant.1)
                    && watches(o, sighting)
            })
            .collect();
        // Orders still waiting come before those watched for late payments (expired,
        // cancelled, or past their expiry but not expired yet).
        candidates.sort_by_key(|o| (is_late(o, now), o.created_at));
        let shared = candidates.len() > 1;
        let Some(order) = pick(reader, &candidates, &sighting.tx_hash, again, now).await? else {
            return Ok(false);
        };
        match record_payment(s, &order, &sighting.tx_hash, now).await {
            Ok(r) => {
                let new = r.new;
                if let Some(o) = orders.iter_mut().find(|o| o.id == r.order.id) {
                    *o = r.order;
                }
                return Ok(new);
            }
            // Every failure is sorted here, with no catch-all: one taken wrongly for a
            // refusal would let the cursor step past a payment never recorded. What is not
            // final fails the scan, and the range is read again next run.
            Err(PaymentError::Store(e)) => return Err(e.into()),
            Err(PaymentError::Queue(e)) => return Err(e.into()),
            Err(PaymentError::Verify(VerifyError::Chain(e))) => return Err(e.into()),
            // The node showed the transfer in a block but cannot show the transaction: it
            // is behind.
            Err(PaymentError::Verify(e @ (VerifyError::NotFound | VerifyError::Pending))) => {
                return Err(lagging(&sighting.tx_hash, &e).into());
            }
            // Other writers kept changing the order: it may well take the transfer next time.
            Err(PaymentError::Busy) => {
                return Err(ScanError::Busy {
                    order,
                    tx: sighting.tx_hash,
                });
            }
            // The listed copy was stale: the order no longer takes this payment. On a shared
            // address the transfer may be another order's.
            Err(
                e @ (PaymentError::NotPayable(_)
                | PaymentError::WindowClosed(_)
                | PaymentError::Verify(VerifyError::Mismatch(PaymentMismatch::TooManyPayments))),
            ) if shared => {
                tracing::info!(order_id = %order, tx = %sighting.tx_hash, reason = %e, "a sighted transfer's order no longer takes it; trying the others");
                if let Some(fresh) = s.store.get_order(&order).await?
                    && let Some(o) = orders.iter_mut().find(|o| o.id == fresh.id)
                {
                    *o = fresh;
                }
                tried.push(order);
            }
            // Refusals no retry changes: the transfer does not pay this order, or another
            // order already claimed it, or the order takes no payment.
            Err(
                e @ (PaymentError::InvalidHash(_)
                | PaymentError::WrongChain(_)
                | PaymentError::NoPaymentDetails
                | PaymentError::NotPayable(_)
                | PaymentError::WindowClosed(_)
                | PaymentError::AlreadyUsed { .. }
                | PaymentError::Verify(VerifyError::Mismatch(_))),
            ) => {
                tracing::info!(order_id = %order, tx = %sighting.tx_hash, reason = %e, "a sighted transfer does not pay its order");
                return Ok(false);
            }
        }
    }
}

/// The sightings of blocks `from..=to`, read in as large spans as the node serves: a node
/// that refuses a span as too large (providers cap `eth_getLogs` ranges, some at a few
/// blocks) is asked for half of it, then for the rest span by span. Without this a capped
/// provider refused every run's range, and the chain's scan never moved again. Any other
/// failure fails the read.
async fn sightings_within_limits(
    reader: &dyn TxReader,
    chain: ChainId,
    from: u64,
    to: u64,
    watch: &crate::chains::Watch,
) -> Result<Vec<Sighting>, ChainError> {
    let mut found = Vec::new();
    let mut span = to - from + 1;
    let mut at = from;
    // Timeouts in a row: each costs a whole RPC_TIMEOUT, so a node that still times out
    // after SLOW_SPANS smaller spans is given up on (the run fails and is repeated), well
    // within the function's own timeout (60 s).
    const SLOW_SPANS: usize = 3;
    let mut slow = 0;
    while at <= to {
        let end = to.min(at + span - 1);
        match reader.sightings(at, end, watch).await {
            Ok(more) => {
                found.extend(more);
                at = end + 1;
                slow = 0;
            }
            Err(ChainError::Rpc(m)) if m.contains("timed out") && slow >= SLOW_SPANS => {
                return Err(ChainError::Rpc(m));
            }
            Err(ChainError::Rpc(m)) if end > at && refuses_range(&m) => {
                slow += usize::from(m.contains("timed out"));
                span = (end - at).div_ceil(2);
                tracing::info!(chain = %chain, from = at, to = end, span, error = %m, "the node refuses the block range (or is too slow for it); reading smaller spans");
            }
            Err(e) => return Err(e),
        }
    }
    Ok(found)
}

/// Whether an RPC error refuses a request's block range or result size (the providers'
/// own words vary: "block range limit exceeded", "query returned more than 10000
/// results", "range too large", "response size exceeded"), or the node took longer than
/// a request may ([`crate::chains::RPC_TIMEOUT`]) over the range (the EVM reader says so
/// of a logs request); a rate limit is not that.
fn refuses_range(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    let rate_limited = [
        "rate",
        "429",
        "too many requests",
        "per second",
        "capacity",
        "quota",
        "credits",
        "compute units",
        "throughput",
    ]
    .iter()
    .any(|k| m.contains(k));
    !rate_limited
        && [
            "range",
            "limit",
            "too large",
            "too big",
            "too wide",
            "exceed",
            "more than",
            "response size",
            "maximum",
            "too many blocks",
        ]
        .iter()
        .any(|k| m.contains(k))
}

/// A report of a scan that read nothing.
fn empty(chain: ChainId) -> ScanReport {
    ScanReport {
        chain_id: chain,
        blocks: None,
        watched_orders: 0,
        recorded: 0,
        cut_short: false,
    }
}

/// How many blocks before the cursor each scan reads again: the chain's default
/// confirmations, the depth of reorg this service already takes a payment to survive. A
/// payment a reorg put into a block the scan had read is found by the next run; recording
/// is idempotent, so one found before counts nothing twice.
pub fn reorg_depth(chain: ChainId) -> u64 {
    u64::from(super::required_confirmations(None, None, chain))
}

/// How many blocks before the cursor each scan's log query (token transfers) reads again:
/// [`reorg_depth`], and at least the chain's blocks of the last [`LOG_LAG_SECS`].
///
/// Before a log query the reader checks that the node has the range's last block, but a
/// load-balanced provider may answer that check from one node and the logs from another
/// that is behind, which answers the blocks it lacks with no logs. The cursor then passes a
/// payment; the next runs, answered by nodes that have caught up, read it again. A transfer
/// read again is taken as a reorg's is (see [`pick`]): by an order whose deposit address is
/// its own, or that it pays exactly; a partial payment to a shared merchant address that
/// only a later run saw is left to the payer to submit.
pub fn log_depth(chain: ChainId) -> u64 {
    let block_ms = crate::registry::registry()
        .chain(chain)
        .map_or(1000, |c| u64::from(c.block_time_ms.max(1)));
    reorg_depth(chain).max((LOG_LAG_SECS * 1000).div_ceil(block_ms))
}

/// A sighted transaction the node cannot show: a failed read, so the cursor stays put.
fn lagging(hash: &TxHash, e: &VerifyError) -> ChainError {
    ChainError::Rpc(format!(
        "transaction {hash} was seen in a block but the node answers: {e}"
    ))
}

/// Whether `o` takes payments only as late ones, or will once the upkeep expires it.
fn is_late(o: &PayOrder, now: Timestamp) -> bool {
    o.status.takes_late_payments_only() || o.expires_at <= now
}

/// Whether the order's deposit address is its own (derived for it from an xpub, or an
/// exchange's deposit for it) rather than a merchant address other money reaches too.
fn own_address(o: &PayOrder) -> bool {
    o.payment
        .as_ref()
        .is_some_and(|p| p.derivation_index.is_some() || p.exchange_id.is_some())
}

/// Which of the orders watching a deposit address a transaction pays (see [`scan_chain`]):
/// an order alone there takes any amount (a partial payment, an overpayment) while it waits,
/// or whenever the address is its own; otherwise the transfer must bring exactly what an
/// order still has due, the first such order in `candidates`' order. So a late order
/// (expired or cancelled, watched for a day) never takes a merchant address's other
/// income, and of several orders sharing the address none takes another's payment by
/// being first in line with a different amount due. In a block `read_before` (read again
/// for reorgs), only an order's own address or an exact amount due takes a transfer.
async fn pick(
    reader: &dyn TxReader,
    candidates: &[&PayOrder],
    hash: &TxHash,
    read_before: bool,
    now: Timestamp,
) -> Result<Option<OrderId>, ChainError> {
    if let [only] = candidates
        && (own_address(only) || (!read_before && !is_late(only, now)))
    {
        return Ok(Some(only.id.clone()));
    }
    let alone = candidates.len() == 1 && !read_before;
    // Read once, and checked against each candidate: a shared address may have many.
    let mut read = None;
    for o in candidates {
        let Some(p) = &o.payment else { continue };
        // Paid in full already (a late order paid late): nothing more is due.
        let Some(due) = p.still_due() else { continue };
        let tx = match read {
            Some(ref tx) => tx,
            None => match reader.transaction(hash).await? {
                Some(tx) => read.insert(tx),
                None => return Err(lagging(hash, &VerifyError::NotFound)),
            },
        };
        match verify_read(o, p, hash, tx) {
            Ok(v) if v.amount == due => return Ok(Some(o.id.clone())),
            // Alone on the address and still waiting, though past its expiry by the clock:
            // a transfer mined by then is an on-time payment of any amount (a partial one).
            Ok(v)
                if alone
                    && !o.status.takes_late_payments_only()
                    && o.mined_in_time(v.inclusion.mined_at()) =>
            {
                return Ok(Some(o.id.clone()));
            }
            Ok(_) | Err(VerifyError::Mismatch(_)) => {}
            Err(e @ (VerifyError::NotFound | VerifyError::Pending)) => {
                return Err(lagging(hash, &e));
            }
            Err(VerifyError::Chain(e)) => return Err(e),
        }
    }
    if !candidates.is_empty() {
        tracing::info!(tx = %hash, orders = candidates.len(), "a transfer to a shared deposit address matches no order's amount due; it must be submitted");
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::refuses_range;

    #[test]
    fn range_refusals_are_told_from_other_failures() {
        for refusal in [
            "server returned an error response: error code -32602: block range limit exceeded",
            "query returned more than 10000 results. Try with this block range [0x1, 0x5]",
            "eth_getLogs is limited to a 10,000 range",
            "Log response size exceeded. You can make eth_getLogs requests with up to a 2K block range",
            "exceed maximum block range: 5000",
            "block range is too wide",
            "requested too many blocks from 1 to 600, maximum is set to 500",
            "the node took too long for the block range 10-500: error sending request for url (<redacted URL>): operation timed out",
        ] {
            assert!(refuses_range(refusal), "{refusal}");
        }
        for other in [
            "error sending request for url (https://rpc.example/): connection refused",
            "rate limit exceeded",
            "HTTP error 429 Too Many Requests",
            "15/second request limit reached - reduce calls per second or upgrade your account",
            "Your app has exceeded its compute units per second capacity",
            "daily request quota exceeded",
            "block 7 is not available",
            "header not found",
            // A timeout of a request about one block: a smaller span would not help.
            "error sending request for url (<redacted URL>): operation timed out",
        ] {
            assert!(!refuses_range(other), "{other}");
        }
    }
}
