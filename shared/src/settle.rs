//! The payment pipeline shared by every way a payment arrives (submitted by hash, found by
//! the deposit scan, simulated in test mode) and by the confirmation step:
//!
//! - [`record_payment`]: verify a transaction against the order's payment and write it in
//!   one conditional update together with its claims (each transfer pays one order, ever);
//!   then queue the first confirmation check.
//! - [`advance`]: one confirmation check; counts confirmations of every transfer, sends the
//!   order back to AWAITING_PAYMENT on a reorg, completes it (or starts tracking its
//!   exchange) once all are final.
//!
//! The rules themselves (matching, amounts, confirmations) are in [`crate::payments`].

use crate::chains::sandbox::{self, SandboxChain};
use crate::chains::{ChainError, Chains, Inclusion, TxReader};
use crate::model::{
    Amount, ChainFamily, ChainId, EventType, KeyMode, OrderId, OrderStatus, OrderUpdate, PayOrder,
    Payment, RawAmount, ReceivedTransfer, Timestamp, TransferStatus, TxHash,
};
use crate::payments::{self, Assessment, ConfirmationCheck, VerifyError};
use crate::queue::{Queue, QueueError};
use crate::routing::{ExchangeStatus, RouteError, Router};
use crate::store::{Store, StoreError};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// How many times a write is retried after another writer changed the order first.
const ATTEMPTS: usize = 4;

/// What the pipeline needs.
#[derive(Clone)]
pub struct Settler {
    pub store: Arc<dyn Store>,
    pub chains: Arc<Chains>,
    /// The confirmation-check queue.
    pub confirmations: Arc<dyn Queue>,
    /// First delay between confirmation checks, doubled after each (capped).
    pub check_delay_secs: u32,
    /// Longest delay between confirmation checks (SQS allows 900 s).
    pub max_check_delay_secs: u32,
}

/// The confirmation-check message (`{"order_id": "po_…", "attempt": 0}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckMessage {
    pub order_id: OrderId,
    #[serde(default)]
    pub attempt: u32,
}

/// Why a payment was not recorded. Each has a code the API shows.
#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    #[error("tx_hash is not a transaction hash of chain {0}")]
    InvalidHash(ChainId),
    #[error("the transaction is for another chain; this order is paid on chain {0}")]
    WrongChain(ChainId),
    #[error("the order has no payment details yet")]
    NoPaymentDetails,
    #[error("an order in status {0} does not take payments")]
    NotPayable(OrderStatus),
    #[error("this transaction already paid another order")]
    AlreadyUsed,
    #[error(transparent)]
    Verify(#[from] VerifyError),
    #[error("the order kept changing; retry")]
    Busy,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

impl PaymentError {
    pub fn code(&self) -> &'static str {
        match self {
            PaymentError::InvalidHash(_) => "INVALID_TX_HASH",
            PaymentError::WrongChain(_) => "WRONG_CHAIN",
            PaymentError::NoPaymentDetails => "PAYMENT_DETAILS_REQUIRED",
            PaymentError::NotPayable(_) => "ORDER_NOT_PAYABLE",
            PaymentError::AlreadyUsed => "TX_ALREADY_USED",
            PaymentError::Verify(v) => v.code(),
            PaymentError::Busy => "CONCURRENT_UPDATE",
            PaymentError::Store(_) | PaymentError::Queue(_) => "INTERNAL",
        }
    }
}

/// Parses a submitted hash for the order's chain: `WRONG_CHAIN` if it is a hash of the
/// other chain family, `INVALID_TX_HASH` if it is no hash at all.
pub fn parse_hash(payment: &Payment, text: &str) -> Result<TxHash, PaymentError> {
    let (family, chain) = (payment.family(), payment.input.currency.chain_id);
    TxHash::parse(family, text.trim()).map_err(|_| {
        let other = match family {
            ChainFamily::Evm => ChainFamily::Solana,
            ChainFamily::Solana => ChainFamily::Evm,
        };
        if TxHash::parse(other, text.trim()).is_ok() {
            PaymentError::WrongChain(chain)
        } else {
            PaymentError::InvalidHash(chain)
        }
    })
}

/// The reader that answers for `hash`: the sandbox chain for a sandbox hash on a test-mode
/// order, the order's chain otherwise. Live orders never see sandbox transactions.
pub fn reader_for(
    chains: &Chains,
    order: &PayOrder,
    payment: &Payment,
    hash: &TxHash,
) -> Result<Arc<dyn TxReader>, ChainError> {
    if !order.livemode && sandbox::is_sandbox(hash) {
        return Ok(Arc::new(SandboxChain::for_payment(payment)));
    }
    let reader: Arc<dyn TxReader> = chains.get(payment.input.currency.chain_id)?.clone();
    Ok(reader)
}

fn counted(transfers: &[ReceivedTransfer]) -> RawAmount {
    transfers
        .iter()
        .filter(|t| t.status != TransferStatus::Reorged)
        .fold(RawAmount::ZERO, |sum, t| {
            sum.checked_add(t.amount.raw).unwrap_or(sum)
        })
}

/// Sets `received`, `remaining` and the paid facts from the transfers that count.
fn tally(order: &mut PayOrder) -> Assessment {
    let received = counted(&order.transfers);
    let bps = order.payment_tolerance.underpayment_bps;
    let payment = order
        .payment
        .as_mut()
        .expect("only orders with a payment are tallied");
    let decimals = payment.input.currency.decimals;
    let required = payment.input.amount.raw;
    let verdict = payments::assess(required, received, bps);
    payment.received = Some(Amount::new(received, decimals));
    payment.remaining = match verdict {
        Assessment::Partial { remaining } => Some(Amount::new(remaining, decimals)),
        _ => None,
    };
    order.paid_over = matches!(verdict, Assessment::Paid { over: true });
    order.underpaid_within_tolerance = verdict == Assessment::PaidWithinTolerance;
    verdict
}

/// The write that records a verified transfer on `order`.
pub fn apply_transfer(
    order: &PayOrder,
    transfer: ReceivedTransfer,
    claims: Vec<crate::model::TxClaim>,
    now: Timestamp,
) -> Result<OrderUpdate, PaymentError> {
    if order.payment.is_none() {
        return Err(PaymentError::NoPaymentDetails);
    }
    let mut next = order.clone();
    next.transfers.retain(|t| t.tx_hash != transfer.tx_hash);
    next.transfers.push(transfer);
    if let Some(p) = next.payment.as_mut() {
        p.source_tx_hash = p
            .source_tx_hash
            .take()
            .or_else(|| next.transfers.first().map(|t| t.tx_hash.clone()));
    }
    let verdict = tally(&mut next);
    next.paid_late |= order.status == OrderStatus::Expired;
    let fill = |o: &mut PayOrder| *o = next.clone();
    let partial = matches!(verdict, Assessment::Partial { .. });
    let update = match order.status {
        OrderStatus::Expired => order
            .edit(now, fill)
            .map(|u| u.with_event(EventType::OrderPaymentLate)),
        OrderStatus::PartialPayment if partial => order
            .edit(now, fill)
            .map(|u| u.with_event(EventType::OrderPartialPayment)),
        OrderStatus::AwaitingPayment if partial => {
            order.transition(now, OrderStatus::PartialPayment, fill)
        }
        OrderStatus::AwaitingPayment | OrderStatus::PartialPayment => {
            order.transition(now, OrderStatus::AwaitingConfirmation, fill)
        }
        status => return Err(PaymentError::NotPayable(status)),
    }
    .map_err(|_| PaymentError::NotPayable(order.status))?;
    Ok(claims
        .into_iter()
        .fold(update, |u, claim| u.with_tx_claim(claim)))
}

/// What [`record_payment`] did.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub order: PayOrder,
    /// False when the transaction was already recorded on this order (nothing changed).
    pub new: bool,
}

/// Verifies `hash` against the order's payment and records it (see the module docs).
/// Recording the same transaction on the same order again changes nothing.
pub async fn record_payment(
    s: &Settler,
    order_id: &OrderId,
    hash: &TxHash,
    now: Timestamp,
) -> Result<Recorded, PaymentError> {
    let key = hash.to_string();
    for _ in 0..ATTEMPTS {
        let order = s
            .store
            .get_order(order_id)
            .await?
            .ok_or(StoreError::NotFound)?;
        let Some(payment) = order.payment.clone() else {
            return Err(PaymentError::NoPaymentDetails);
        };
        let chain = payment.input.currency.chain_id;
        let previous = order.transfers.iter().find(|t| t.tx_hash == key);
        if previous.is_some_and(|t| t.status != TransferStatus::Reorged) {
            // Queue a check again in case the first one was never queued (it is idempotent).
            if order.status == OrderStatus::AwaitingConfirmation {
                enqueue_check(s, &order.id, 0).await?;
            }
            return Ok(Recorded { order, new: false });
        }
        let payable = matches!(
            order.status,
            OrderStatus::AwaitingPayment | OrderStatus::PartialPayment | OrderStatus::Expired
        );
        if !payable {
            return Err(PaymentError::NotPayable(order.status));
        }
        let reader = reader_for(&s.chains, &order, &payment, hash).map_err(VerifyError::from)?;
        let verified = payments::verify_transaction(&*reader, &payment, hash).await?;
        // A claim held by another order is final; one held by this order (a transaction
        // that reorged and was mined again) is simply kept.
        for claim in &verified.claims {
            match s.store.get_tx_claim(&claim.key()).await? {
                Some(owner) if &owner != order_id => return Err(PaymentError::AlreadyUsed),
                _ => {}
            }
        }
        let claims = if previous.is_some() {
            Vec::new()
        } else {
            verified.claims.clone()
        };
        let org = s.store.get_organization(&order.organization_id).await?;
        let mode = KeyMode::of(order.livemode);
        let required = payments::required_confirmations(
            order.confirmations,
            org.and_then(|o| o.confirmations(mode, chain)),
            chain,
        );
        let head = reader.head().await.map_err(VerifyError::from)?;
        let transfer = ReceivedTransfer {
            tx_hash: key.clone(),
            amount: Amount::new(verified.amount, payment.input.currency.decimals),
            status: TransferStatus::Confirming,
            confirmations: (head + 1).saturating_sub(verified.inclusion.block_number),
            required_confirmations: required,
            block_number: verified.inclusion.block_number,
            block_hash: verified.inclusion.block_hash.clone(),
            from_address: verified.from.clone(),
            detected_at: now,
            confirmed_at: None,
            sandbox: sandbox::is_sandbox(hash) && !order.livemode,
        };
        let update = apply_transfer(&order, transfer, claims, now)?;
        match s.store.update_order(&update).await {
            Ok(()) => {
                let order = update.order().clone();
                if order.status == OrderStatus::AwaitingConfirmation {
                    enqueue_check(s, &order.id, 0).await?;
                }
                return Ok(Recorded { order, new: true });
            }
            Err(StoreError::VersionConflict { .. }) => continue,
            Err(StoreError::TxAlreadyClaimed { .. }) => {
                // Lost a race: whoever claimed it first owns it (this order, if a
                // concurrent submit of the same hash won; then the re-read says so).
                let again = s.store.get_order(order_id).await?;
                if again.is_some_and(|o| o.transfers.iter().any(|t| t.tx_hash == key)) {
                    continue;
                }
                return Err(PaymentError::AlreadyUsed);
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(PaymentError::Busy)
}

/// Queues a confirmation check of `order_id`, the `attempt`-th after the first.
pub async fn enqueue_check(
    s: &Settler,
    order_id: &OrderId,
    attempt: u32,
) -> Result<(), QueueError> {
    let delay = payments::confirmation_delay(s.check_delay_secs, attempt)
        .min(s.max_check_delay_secs.max(1));
    let msg = CheckMessage {
        order_id: order_id.clone(),
        attempt,
    };
    s.confirmations
        .send(
            &serde_json::to_string(&msg).expect("messages serialize"),
            delay,
        )
        .await
}

/// What one confirmation check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Nothing (more) to do for this order.
    Settled,
    /// Check again later.
    Waiting,
}

#[derive(Debug, thiserror::Error)]
pub enum AdvanceError {
    #[error(transparent)]
    Chain(#[from] ChainError),
    #[error(transparent)]
    Route(#[from] RouteError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the order kept changing")]
    Busy,
}

/// One confirmation check of an order (idempotent: a settled order is left alone).
pub async fn advance(
    s: &Settler,
    router: Option<&dyn Router>,
    order_id: &OrderId,
    now: Timestamp,
) -> Result<Progress, AdvanceError> {
    for _ in 0..ATTEMPTS {
        let Some(order) = s.store.get_order(order_id).await? else {
            tracing::warn!(order_id = %order_id, "confirmation check of an unknown order");
            return Ok(Progress::Settled);
        };
        let update = match order.status {
            OrderStatus::AwaitingConfirmation | OrderStatus::OptimisticConfirmed => {
                confirmations_update(s, &order, now).await?
            }
            OrderStatus::ExecutingOrder => exchange_update(router, &order, now).await?,
            _ => return Ok(Progress::Settled),
        };
        let (update, progress) = match update {
            Some((u, p)) => (u, p),
            None => return Ok(Progress::Waiting),
        };
        match s.store.update_order(&update).await {
            Ok(()) => {
                let next = update.order().status;
                return Ok(match next {
                    OrderStatus::AwaitingConfirmation
                    | OrderStatus::OptimisticConfirmed
                    | OrderStatus::ExecutingOrder => progress,
                    _ => Progress::Settled,
                });
            }
            Err(StoreError::VersionConflict { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(AdvanceError::Busy)
}

/// The confirmation counts of every counted transfer, and the write they call for:
/// reorg → AWAITING_PAYMENT, all final → COMPLETED (or EXECUTING_ORDER on a routed
/// payment), else new counts (if they moved).
async fn confirmations_update(
    s: &Settler,
    order: &PayOrder,
    now: Timestamp,
) -> Result<Option<(OrderUpdate, Progress)>, AdvanceError> {
    let payment = order
        .payment
        .as_ref()
        .ok_or_else(|| StoreError::Corrupt(format!("order {} has no payment", order.id)))?;
    let family = payment.family();
    let mut transfers = order.transfers.clone();
    let mut reorged = false;
    let mut all_final = true;
    // The head of each chain read (the order's, and in test mode the sandbox), once.
    let mut heads: Vec<(bool, u64)> = Vec::new();
    for t in transfers
        .iter_mut()
        .filter(|t| t.status == TransferStatus::Confirming)
    {
        let hash = TxHash::parse(family, &t.tx_hash)
            .map_err(|e| StoreError::Corrupt(format!("stored tx hash {}: {e}", t.tx_hash)))?;
        let reader = reader_for(&s.chains, order, payment, &hash)?;
        let current = reader.transaction(&hash).await?.and_then(|tx| tx.inclusion);
        let head = match heads.iter().find(|(sandbox, _)| *sandbox == t.sandbox) {
            Some((_, h)) => *h,
            None => {
                let h = reader.head().await?;
                heads.push((t.sandbox, h));
                h
            }
        };
        let recorded = Inclusion {
            success: true,
            block_number: t.block_number,
            block_hash: t.block_hash.clone(),
        };
        match payments::check_confirmations(
            &recorded,
            current.as_ref(),
            head,
            t.required_confirmations,
        ) {
            ConfirmationCheck::Reorged => {
                t.status = TransferStatus::Reorged;
                reorged = true;
            }
            ConfirmationCheck::Confirmed { confirmations } => {
                t.confirmations = confirmations;
                t.status = TransferStatus::Confirmed;
                t.confirmed_at = Some(now);
            }
            ConfirmationCheck::Pending { confirmations } => {
                t.confirmations = confirmations;
                all_final = false;
            }
        }
    }
    let set = |o: &mut PayOrder| {
        o.transfers = transfers.clone();
        tally(o);
    };
    let write = if reorged {
        order.transition(now, OrderStatus::AwaitingPayment, set)
    } else if all_final {
        let to = if payment.exchange_id.is_some() {
            OrderStatus::ExecutingOrder
        } else {
            OrderStatus::Completed
        };
        order.transition(now, to, set)
    } else if transfers != order.transfers {
        order.edit(now, |o| o.transfers = transfers.clone())
    } else {
        return Ok(None);
    };
    let update = write.map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(Some((update, Progress::Waiting)))
}

/// An EXECUTING_ORDER order's exchange, followed to its end.
async fn exchange_update(
    router: Option<&dyn Router>,
    order: &PayOrder,
    now: Timestamp,
) -> Result<Option<(OrderUpdate, Progress)>, AdvanceError> {
    let Some(id) = order
        .payment
        .as_ref()
        .and_then(|p| p.exchange_id.as_deref())
    else {
        return Err(StoreError::Corrupt(format!("order {} executes no exchange", order.id)).into());
    };
    let Some(router) = router else {
        return Err(RouteError::Unreachable("no exchange provider is configured".into()).into());
    };
    let to = match router.status(id).await? {
        ExchangeStatus::Finished => OrderStatus::Completed,
        ExchangeStatus::Refunded => OrderStatus::Refunded,
        ExchangeStatus::Failed | ExchangeStatus::Expired => OrderStatus::Failed,
        ExchangeStatus::AwaitingDeposit | ExchangeStatus::InProgress => return Ok(None),
    };
    let update = order
        .transition(now, to, |_| {})
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(Some((update, Progress::Settled)))
}

/// The most blocks one scan reads on one chain (the rest is left for the next run).
pub const SCAN_MAX_BLOCKS: u64 = 500;
/// How far back from the head the very first scan of a chain starts.
pub const SCAN_LOOKBACK: u64 = 100;

/// What one scan of one chain did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScanReport {
    pub chain_id: ChainId,
    /// The blocks read, inclusive; `None` when the cursor was already at the head.
    pub blocks: Option<(u64, u64)>,
    pub watched_orders: usize,
    /// Payments recorded (new transfers on orders).
    pub recorded: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error(transparent)]
    Chain(#[from] ChainError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// One deposit scan of `chain`: from the block after the cursor up to the head (at most
/// [`SCAN_MAX_BLOCKS`]), every transaction paying the deposit address of an order waiting
/// for a payment goes through [`record_payment`], as if it had been submitted. Where
/// several waiting orders share an address (a merchant wallet without an xpub), the
/// transfer goes to the oldest whose amount due it matches exactly, else to none (the payer
/// then submits the hash). The cursor moves only after the whole range is processed, so a
/// failed run is repeated; recording is idempotent, so nothing is counted twice.
pub async fn scan_chain(
    s: &Settler,
    chain: ChainId,
    now: Timestamp,
) -> Result<ScanReport, ScanError> {
    let reader = s.chains.get(chain)?.clone();
    let head = reader.head().await?;
    let cursor = s.store.scan_cursor(chain).await?;
    let from = match cursor {
        Some(c) if c <= head => c + 1,
        // A head below the cursor: the chain was reset (a local chain restarted) or the
        // RPC answers from a node behind; either way start again from recent blocks
        // (recording is idempotent, so re-reading them counts nothing twice).
        Some(c) => {
            tracing::warn!(chain = %chain, cursor = c, head, "chain head is below the scan cursor; rescanning recent blocks");
            head.saturating_sub(SCAN_LOOKBACK)
        }
        None => head.saturating_sub(SCAN_LOOKBACK),
    };
    let mut report = ScanReport {
        chain_id: chain,
        blocks: None,
        watched_orders: 0,
        recorded: 0,
    };
    if from > head {
        return Ok(report);
    }
    let to = head.min(from + SCAN_MAX_BLOCKS - 1);
    report.blocks = Some((from, to));
    let mut orders = s.store.list_watched_orders(chain).await?;
    orders.sort_by_key(|o| o.created_at);
    report.watched_orders = orders.len();
    if !orders.is_empty() {
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
        let mut seen = std::collections::HashSet::new();
        for sighting in reader.sightings(from, to, &watch).await? {
            if !seen.insert(sighting.tx_hash.to_string()) {
                continue;
            }
            let candidates: Vec<&PayOrder> = orders
                .iter()
                .filter(|o| {
                    o.payment.as_ref().is_some_and(|p| {
                        payments::same(p.family(), p.deposit_address(), &sighting.to)
                    })
                })
                .collect();
            if let Some(order) = pick(&*reader, &candidates, &sighting.tx_hash).await? {
                match record_payment(s, &order, &sighting.tx_hash, now).await {
                    Ok(r) => report.recorded += usize::from(r.new),
                    Err(PaymentError::Store(e)) => return Err(e.into()),
                    Err(PaymentError::Queue(e)) => return Err(e.into()),
                    Err(PaymentError::Verify(VerifyError::Chain(e))) => return Err(e.into()),
                    Err(e) => {
                        tracing::info!(order_id = %order, tx = %sighting.tx_hash, reason = %e, "a sighted transfer does not pay its order")
                    }
                }
            }
        }
    }
    match s.store.set_scan_cursor(chain, cursor, to).await {
        Ok(()) | Err(StoreError::VersionConflict { .. }) => Ok(report),
        Err(e) => Err(e.into()),
    }
}

/// Which of the orders sharing a deposit address a transaction pays (see [`scan_chain`]).
async fn pick(
    reader: &dyn TxReader,
    candidates: &[&PayOrder],
    hash: &TxHash,
) -> Result<Option<OrderId>, ChainError> {
    match candidates {
        [] => Ok(None),
        [only] => Ok(Some(only.id.clone())),
        many => {
            for o in many {
                let Some(p) = &o.payment else { continue };
                let due = p
                    .remaining
                    .as_ref()
                    .map(|r| r.raw)
                    .unwrap_or(p.input.amount.raw);
                match payments::verify_transaction(reader, p, hash).await {
                    Ok(v) if v.amount == due => return Ok(Some(o.id.clone())),
                    Ok(_) | Err(VerifyError::Mismatch(_)) => {}
                    Err(VerifyError::NotFound | VerifyError::Pending) => return Ok(None),
                    Err(VerifyError::Chain(e)) => return Err(e),
                }
            }
            tracing::info!(tx = %hash, orders = many.len(), "a transfer to a shared deposit address matches no order's amount; it must be submitted");
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::*;

    const DEPOSIT: &str = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";

    fn awaiting(status: OrderStatus) -> PayOrder {
        let mut o = crate::testing::order(&OrgId::generate(), false, Timestamp::now());
        o.payment = Some(crate::testing::payment(
            "8453:0x833589fcd6edb6e08f4c7c32d4f71b54bda02913",
            1_000,
            DEPOSIT,
        ));
        o.status = status;
        o
    }

    fn transfer(hash: &str, amount: u128) -> ReceivedTransfer {
        ReceivedTransfer {
            tx_hash: hash.into(),
            amount: Amount::new(RawAmount::from_u128(amount), 6),
            status: TransferStatus::Confirming,
            confirmations: 1,
            required_confirmations: 2,
            block_number: 5,
            block_hash: "0xab".into(),
            from_address: None,
            detected_at: Timestamp::now(),
            confirmed_at: None,
            sandbox: false,
        }
    }

    fn event(u: &OrderUpdate) -> Option<EventType> {
        u.event().map(|e| e.event_type)
    }

    #[test]
    fn transfers_move_the_order_by_what_they_add_up_to() {
        let now = Timestamp::now();
        let o = awaiting(OrderStatus::AwaitingPayment);
        let u = apply_transfer(&o, transfer("0x1", 400), vec![], now).unwrap();
        assert_eq!(u.order().status, OrderStatus::PartialPayment);
        assert_eq!(event(&u), Some(EventType::OrderPartialPayment));
        let p = u.order().payment.as_ref().unwrap();
        assert_eq!(p.remaining.as_ref().unwrap().raw, RawAmount::from_u128(600));
        assert_eq!(p.source_tx_hash.as_deref(), Some("0x1"));

        // A top-up that is still short stays PARTIAL_PAYMENT, with an event of its own.
        let u2 = apply_transfer(u.order(), transfer("0x2", 100), vec![], now).unwrap();
        assert_eq!(u2.order().status, OrderStatus::PartialPayment);
        assert_eq!(event(&u2), Some(EventType::OrderPartialPayment));
        let claim = TxClaim {
            chain_id: ChainId::new(8453).unwrap(),
            tx_hash: "0x3".into(),
            log_index: 0,
        };
        let u3 =
            apply_transfer(u2.order(), transfer("0x3", 600), vec![claim.clone()], now).unwrap();
        assert_eq!(u3.order().status, OrderStatus::AwaitingConfirmation);
        assert_eq!(event(&u3), Some(EventType::OrderPaymentDetected));
        assert!(u3.order().paid_over);
        assert_eq!(u3.tx_claims(), [claim]);
        let p = u3.order().payment.as_ref().unwrap();
        assert_eq!(
            p.received.as_ref().unwrap().raw,
            RawAmount::from_u128(1_100)
        );
        assert!(p.remaining.is_none());
        assert_eq!(p.source_tx_hash.as_deref(), Some("0x1"));

        // Reorged transfers no longer count.
        let mut gone = u.order().clone();
        gone.transfers[0].status = TransferStatus::Reorged;
        let u4 = apply_transfer(&gone, transfer("0x4", 999), vec![], now).unwrap();
        assert_eq!(u4.order().status, OrderStatus::PartialPayment);
    }

    #[test]
    fn tolerance_late_payments_and_unpayable_orders() {
        let now = Timestamp::now();
        let mut o = awaiting(OrderStatus::AwaitingPayment);
        o.payment_tolerance.underpayment_bps = 100;
        let u = apply_transfer(&o, transfer("0x1", 990), vec![], now).unwrap();
        assert_eq!(u.order().status, OrderStatus::AwaitingConfirmation);
        assert!(u.order().underpaid_within_tolerance);

        let expired = awaiting(OrderStatus::Expired);
        let u = apply_transfer(&expired, transfer("0x1", 1_000), vec![], now).unwrap();
        assert_eq!(u.order().status, OrderStatus::Expired);
        assert!(u.order().paid_late);
        assert_eq!(event(&u), Some(EventType::OrderPaymentLate));

        for status in [
            OrderStatus::Cancelled,
            OrderStatus::Completed,
            OrderStatus::Pending,
        ] {
            assert!(matches!(
                apply_transfer(&awaiting(status), transfer("0x1", 1_000), vec![], now),
                Err(PaymentError::NotPayable(s)) if s == status
            ));
        }
        let mut no_details = awaiting(OrderStatus::AwaitingPayment);
        no_details.payment = None;
        assert!(matches!(
            apply_transfer(&no_details, transfer("0x1", 1_000), vec![], now),
            Err(PaymentError::NoPaymentDetails)
        ));
    }

    #[tokio::test]
    async fn only_test_orders_read_sandbox_transactions() {
        let hash = crate::chains::sandbox::new_transaction(
            ChainFamily::Evm,
            RawAmount::from_u128(1_000),
            Timestamp::now(),
        )
        .unwrap();
        let chains = Chains::default();
        let test = awaiting(OrderStatus::AwaitingPayment);
        let payment = test.payment.clone().unwrap();
        let reader = reader_for(&chains, &test, &payment, &hash).unwrap();
        let tx = reader.transaction(&hash).await.unwrap().unwrap();
        assert_eq!(tx.transfers[0].to, DEPOSIT);
        let mut live = test.clone();
        live.livemode = true;
        // A live order asks the real chain (here: none configured) and never the sandbox.
        assert!(matches!(
            reader_for(&chains, &live, &payment, &hash),
            Err(ChainError::NotConfigured(_))
        ));
    }

    #[test]
    fn hashes_of_the_other_chain_family_are_the_wrong_chain() {
        let base = awaiting(OrderStatus::AwaitingPayment).payment.unwrap();
        assert!(parse_hash(&base, &format!("0x{}", "ab".repeat(32))).is_ok());
        assert!(matches!(
            parse_hash(&base, &"5".repeat(88)),
            Err(PaymentError::WrongChain(_))
        ));
        assert!(matches!(
            parse_hash(&base, "0x12"),
            Err(PaymentError::InvalidHash(_))
        ));
    }
}
