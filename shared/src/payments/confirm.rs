//! Confirmation checks: count each recorded transfer's confirmations, send the order back
//! on a confirmed reorg, complete it (or follow its exchange) once everything is final.

use super::refunds::refunds_update;
use super::rules::{
    Assessment, ConfirmationCheck, check_confirmations, confirmation_delay, paid_now,
    still_included, tally,
};
use super::verify::{VerifyError, reader_for, stored_hash, verify_read};
use super::{ATTEMPTS, Settler};
use crate::chains::ChainError;
use crate::model::{OrderId, OrderStatus, OrderUpdate, PayOrder, Timestamp, TransferStatus};
use crate::queue::QueueError;
use crate::routing::{ExchangeStatus, RouteError, Router};
use crate::store::StoreError;
use serde::{Deserialize, Serialize};

/// The confirmation-check message (`{"order_id": "po_…", "round": 1, "attempt": 0}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckMessage {
    pub order_id: OrderId,
    /// The order's check series this message belongs to; a message of an older series is
    /// dropped. Absent: checked whatever the series (hand-made messages).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub round: Option<u32>,
    #[serde(default)]
    pub attempt: u32,
}

/// Queues a confirmation check of `order_id` in check series `round`, the `attempt`-th
/// after the first.
pub async fn enqueue_check(
    s: &Settler,
    order_id: &OrderId,
    round: Option<u32>,
    attempt: u32,
) -> Result<(), QueueError> {
    let delay = confirmation_delay(s.check_delay_secs, attempt).min(s.max_check_delay_secs.max(1));
    let msg = CheckMessage {
        order_id: order_id.clone(),
        round,
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

/// One confirmation check of an order (idempotent: a settled order is left alone, and a
/// check of an older series than `round` does nothing).
pub async fn advance(
    s: &Settler,
    router: Option<&dyn Router>,
    order_id: &OrderId,
    round: Option<u32>,
    now: Timestamp,
) -> Result<Progress, AdvanceError> {
    // A transaction mined again in another block is followed there, unless its transfers'
    // claims turn out to be another order's (then it counts as reorged away).
    let mut follow_moves = true;
    for _ in 0..ATTEMPTS {
        let Some(order) = s.store.get_order(order_id).await? else {
            tracing::warn!(order_id = %order_id, "confirmation check of an unknown order");
            return Ok(Progress::Settled);
        };
        if round.is_some_and(|r| r != order.check_round) {
            tracing::debug!(order_id = %order_id, ?round, live = order.check_round, "check of an older series; dropped");
            return Ok(Progress::Settled);
        }
        let late_confirming = order
            .transfers
            .iter()
            .any(|t| t.status == TransferStatus::Confirming);
        let update = match order.status {
            OrderStatus::AwaitingConfirmation | OrderStatus::OptimisticConfirmed => {
                confirmations_update(s, &order, now, follow_moves).await?
            }
            OrderStatus::ExecutingOrder => exchange_update(router, &order, now).await?,
            // Partial and late payments: followed to final too (only confirmed money can be
            // refunded), the order's status left as it is.
            status if status.accepts_payment() && late_confirming => {
                confirmations_update(s, &order, now, follow_moves).await?
            }
            // Payments settled; refund transfers still confirming.
            _ if order.awaits_check() => refunds_update(s, &order, now, follow_moves)
                .await?
                .map(|u| (u, Progress::Waiting)),
            _ => return Ok(Progress::Settled),
        };
        let (update, progress) = match update {
            Some((u, p)) => (u, p),
            None => return Ok(Progress::Waiting),
        };
        match s.store.update_order(&update).await {
            Ok(()) => {
                return Ok(if update.order().awaits_check() {
                    progress
                } else {
                    Progress::Settled
                });
            }
            Err(StoreError::VersionConflict { .. }) => continue,
            Err(StoreError::TxAlreadyClaimed { .. }) if follow_moves => {
                follow_moves = false;
                continue;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(AdvanceError::Busy)
}

/// The confirmation counts of every counted transfer, and the write they call for: a
/// reorg that leaves the amount short → AWAITING_PAYMENT, all final (and the amount still
/// covered) → COMPLETED (or EXECUTING_ORDER on a routed payment), else new counts (if they
/// moved). On an order still taking payments (a partial payment; an expired or cancelled
/// order's late one) only the counts and the totals change, unless a transfer found again
/// completes the amount of an order waiting for it (→ AWAITING_CONFIRMATION).
///
/// A transfer whose block was replaced is reorged away, unless the same transaction was
/// mined again on the new branch and still pays the order the same amount (`follow_moves`):
/// then it is followed to its new block, its confirmations counted from there, and its
/// claims written again for this order (the store accepts them for the same owner).
async fn confirmations_update(
    s: &Settler,
    order: &PayOrder,
    now: Timestamp,
    follow_moves: bool,
) -> Result<Option<(OrderUpdate, Progress)>, AdvanceError> {
    let payment = order
        .payment
        .as_ref()
        .ok_or_else(|| StoreError::Corrupt(format!("order {} has no payment", order.id)))?;
    let family = payment.family();
    let mut transfers = order.transfers.clone();
    let mut reorged = false;
    let mut claims = Vec::new();
    let mut all_final = true;
    let mut heads = Heads::default();
    // Transfers reorged away are looked at again too: a transaction dropped back to the
    // mempool by a reorg is usually mined again a little later, and while the order is still
    // checked (the rest covering it), nothing else would find it again.
    for t in transfers.iter_mut().filter(|t| {
        t.status == TransferStatus::Confirming
            || (follow_moves && t.status == TransferStatus::Reorged)
    }) {
        let was_reorged = t.status == TransferStatus::Reorged;
        let hash = stored_hash(family, &t.tx_hash)?;
        let reader = reader_for(&s.chains, order, payment, &hash)?;
        // Read once: what follows is decided on this one answer (a second read might reach
        // another node of the provider's, and say otherwise).
        let read = reader.transaction(&hash).await?;
        let current = read.as_ref().and_then(|tx| tx.inclusion.clone());
        if was_reorged && current.is_none() {
            continue;
        }
        let head = heads.of(t.sandbox, &*reader).await?;
        match confirmation_check(
            &*reader,
            t.block_number,
            &t.block_hash,
            current.as_ref(),
            head,
            t.required_confirmations,
        )
        .await?
        {
            ConfirmationCheck::Reorged if current.is_some() && !claims.is_empty() => {
                // One transaction followed per write: its claims (up to 64) and the order's
                // items fit one DynamoDB transaction, two such transactions might not. This
                // one is followed by the next check; until then it stays as recorded.
                all_final = false;
            }
            ConfirmationCheck::Reorged => {
                let moved = match (&read, &current) {
                    (Some(tx), Some(_)) if follow_moves => {
                        match verify_read(order, payment, &hash, tx) {
                            Ok(v) if v.amount == t.amount.raw => Some(v),
                            // Mined again but no longer paying this order as recorded (another
                            // amount, failed, a mismatch): not moved.
                            Ok(_) | Err(VerifyError::Mismatch(_)) => None,
                            // An answer that cannot be read (a malformed transfer): no answer,
                            // never "the payment is gone". Checked again later.
                            Err(VerifyError::Chain(e)) => return Err(e.into()),
                            // (Not from a transaction read in a block; as unsure, if ever.)
                            Err(VerifyError::NotFound | VerifyError::Pending) => {
                                all_final = false;
                                continue;
                            }
                        }
                    }
                    _ => None,
                };
                match moved {
                    Some(v) => {
                        tracing::info!(order_id = %order.id, tx = %t.tx_hash, from = t.block_number, to = v.inclusion.block_number, "a reorg moved the transaction to another block; following it there");
                        t.status = TransferStatus::Confirming;
                        t.block_number = v.inclusion.block_number;
                        t.block_hash = v.inclusion.block_hash.clone();
                        t.mined_at = v.inclusion.mined_at();
                        t.confirmations = v.inclusion.confirmations_at(head);
                        claims.extend(v.claims);
                        all_final = false;
                    }
                    None if was_reorged => {}
                    None => {
                        t.status = TransferStatus::Reorged;
                        reorged = true;
                    }
                }
            }
            ConfirmationCheck::Confirmed { confirmations } => {
                t.confirmations = confirmations;
                t.status = TransferStatus::Confirmed;
                t.confirmed_at = Some(now);
            }
            ConfirmationCheck::Pending { confirmations } => {
                // (A transfer reorged away whose block is back on the chain counts again.)
                t.status = TransferStatus::Confirming;
                t.confirmations = confirmations;
                all_final = false;
            }
            ConfirmationCheck::Unsure if was_reorged => {}
            ConfirmationCheck::Unsure => {
                tracing::warn!(order_id = %order.id, tx = %t.tx_hash, block = t.block_number, "the chain's answer disagrees with the recorded block but shows no reorg; checking again later");
                all_final = false;
            }
        }
    }
    let set = |o: &mut PayOrder| {
        o.transfers = transfers.clone();
        tally(o);
    };
    // What the transfers still counted add up to: a reorg of one transfer leaves an order
    // that the others still pay waiting for their confirmations, not for a payment.
    let mut after = order.clone();
    after.transfers.clone_from(&transfers);
    let covered = !matches!(tally(&mut after), Assessment::Partial { .. });
    let write = if transfers != order.transfers && paid_now(&after) {
        // A transfer reorged away and mined again, found by this check, pays the rest of
        // an order waiting for it (or an expired one, in time): the order waits for
        // confirmations now, as it would had the transfer been submitted again.
        order.transition(now, OrderStatus::AwaitingConfirmation, set)
    } else if order.status.accepts_payment() {
        // A partial or late payment: its transfers are counted (or reorged away, and no
        // longer counted), the order keeps its status.
        if transfers == order.transfers {
            return Ok(None);
        }
        order.edit(now, set)
    } else if reorged && !covered {
        order.transition(now, OrderStatus::AwaitingPayment, set)
    } else if all_final {
        let to = if payment.exchange_id.is_some() {
            OrderStatus::ExecutingOrder
        } else {
            OrderStatus::Completed
        };
        order.transition(now, to, set)
    } else if transfers != order.transfers {
        order.edit(now, set)
    } else {
        return Ok(None);
    };
    let update = write.map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let update = update.with_tx_claims(claims);
    Ok(Some((update, Progress::Waiting)))
}

/// The head of each chain one check reads (the order's, and in test mode the sandbox's),
/// read once however many transfers are on it.
#[derive(Default)]
pub(crate) struct Heads(Vec<(bool, u64)>);

impl Heads {
    /// The head of the sandbox (`sandbox`) or of the order's chain, as `reader` reads it.
    pub(crate) async fn of(
        &mut self,
        sandbox: bool,
        reader: &dyn crate::chains::TxReader,
    ) -> Result<u64, ChainError> {
        if let Some((_, h)) = self.0.iter().find(|(s, _)| *s == sandbox) {
            return Ok(*h);
        }
        let h = reader.head().await?;
        self.0.push((sandbox, h));
        Ok(h)
    }
}

/// An EXECUTING_ORDER order's exchange, followed to its end.
async fn exchange_update(
    router: Option<&dyn Router>,
    order: &PayOrder,
    now: Timestamp,
) -> Result<Option<(OrderUpdate, Progress)>, AdvanceError> {
    let Some((payment, id)) = order
        .payment
        .as_ref()
        .and_then(|p| Some((p, p.exchange_id.as_deref()?)))
    else {
        return Err(StoreError::Corrupt(format!("order {} executes no exchange", order.id)).into());
    };
    let Some(router) = router else {
        return Err(RouteError::Unreachable("no exchange provider is configured".into()).into());
    };
    let corrupt = |what: String| StoreError::Corrupt(format!("order {}: {what}", order.id));
    let to = match router.status(id).await? {
        // Completed only once the destination got what the order promised it; an exchange
        // that reports paying less, or paying elsewhere, failed the order.
        ExchangeStatus::Finished(payout) => {
            let wanted = payment
                .output
                .amount
                .decimal()
                .ok_or_else(|| corrupt(format!("pays out {}", payment.output.amount.ui)))?;
            if payout.pays(payment.output_family(), &payment.recipient, wanted) {
                OrderStatus::Completed
            } else {
                tracing::error!(order_id = %order.id, exchange = id, paid_to = %payout.address, paid = %payout.amount, recipient = %payment.recipient, %wanted, "the exchange reports a payout that does not pay the order; the order failed");
                OrderStatus::Failed
            }
        }
        ExchangeStatus::Refunded => OrderStatus::Refunded,
        ExchangeStatus::Failed | ExchangeStatus::Expired => OrderStatus::Failed,
        ExchangeStatus::AwaitingDeposit | ExchangeStatus::InProgress => return Ok(None),
    };
    let update = order
        .transition(now, to, |_| {})
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(Some((update, Progress::Settled)))
}

/// Where a recorded inclusion (`block_number`, `block_hash`) stands given the transaction's
/// inclusion now (`current`) and the chain's head. When the node's answer disagrees with
/// the record the recorded height is read again: a reorg must show on the chain itself,
/// not as one missing answer. And before the transfer is final, the recorded height is read
/// too: a receipt from a node that missed a reorg (behind, or stuck on a minority fork,
/// while another node of a load-balanced provider answers the head) still shows the old
/// block, and must not complete an order. Payments and refunds alike.
pub(crate) async fn confirmation_check(
    reader: &dyn crate::chains::TxReader,
    block_number: u64,
    block_hash: &str,
    current: Option<&crate::chains::Inclusion>,
    head: u64,
    required: u32,
) -> Result<ConfirmationCheck, crate::chains::ChainError> {
    let canonical = if still_included(block_number, block_hash, current) {
        None
    } else {
        reader.block_hash(block_number).await?
    };
    let check = check_confirmations(
        block_number,
        block_hash,
        current,
        canonical.as_deref(),
        head,
        required,
    );
    if let ConfirmationCheck::Confirmed { .. } = check {
        let at_height = reader.block_hash(block_number).await?;
        if !at_height
            .as_deref()
            .is_some_and(|h| h.eq_ignore_ascii_case(block_hash))
        {
            tracing::warn!(block = block_number, recorded = block_hash, chain_says = ?at_height, "the receipt shows the recorded block but the chain has another (or none) at its height; not final yet");
            return Ok(ConfirmationCheck::Unsure);
        }
    }
    Ok(check)
}
