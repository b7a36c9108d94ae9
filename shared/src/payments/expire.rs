//! The scheduled upkeep of the order lifecycle (`expire-orders`, every minute):
//!
//! - unpaid orders (PENDING, AWAITING_PAYMENT, PARTIAL_PAYMENT) past `expires_at` become
//!   EXPIRED with an `order.expired` event. A partly paid order keeps what it received.
//!   Transfers arriving afterwards, inside the monitoring window, are recorded as late
//!   payments (see [`crate::model::LATE_PAYMENT_WINDOW_SECS`]).
//! - orders whose confirmation check is overdue (a lost queue message, one that went to the
//!   dead-letter queue during an RPC outage, a local host killed mid-check) get a check
//!   queued again, so nothing stays in AWAITING_CONFIRMATION, OPTIMISTIC_CONFIRMED or
//!   EXECUTING_ORDER forever. Checks are idempotent, so a spare one costs one read.

use super::{ATTEMPTS, Settler, enqueue_check};
use crate::model::{OrderId, OrderStatus, PayOrder, Timestamp};
use crate::queue::QueueError;
use crate::store::{OrderStore, StoreError};
use serde::Serialize;

/// How many orders one batch of a run expires, and the most a run re-queues.
pub const UPKEEP_BATCH: u32 = 200;

/// The most expiry batches one run makes while each comes back full: up to 1,000 orders a
/// minute, a few seconds of the function's minute (the rest waits for the next run).
pub const UPKEEP_BATCHES: u32 = 5;

/// What one upkeep run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UpkeepReport {
    /// Orders moved to EXPIRED.
    pub expired: usize,
    /// Orders whose confirmation check was queued again.
    pub requeued: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum UpkeepError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// Expires every unpaid order past its `expires_at` (at most `limit`); returns how many.
/// An order that changed meanwhile (a payment arrived) is read again and expired only if
/// it still may be.
pub async fn expire_orders(
    store: &dyn OrderStore,
    now: Timestamp,
    limit: u32,
) -> Result<usize, StoreError> {
    let mut expired = 0;
    for order in store.list_expirable_orders(now, limit).await? {
        if expire_one(store, &order.id, now).await? {
            expired += 1;
        }
    }
    Ok(expired)
}

/// Expires the order if it still may be (unpaid, past `expires_at`); whether it did.
pub(crate) async fn expire_one(
    store: &dyn OrderStore,
    id: &OrderId,
    now: Timestamp,
) -> Result<bool, StoreError> {
    for _ in 0..ATTEMPTS {
        let Some(order) = store.get_order(id).await? else {
            return Ok(false);
        };
        if !order.status.is_expirable() || order.expires_at > now {
            return Ok(false);
        }
        let update = order
            .transition(now, OrderStatus::Expired, |_| {})
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        match store.update_order(&update).await {
            Ok(()) => return Ok(true),
            Err(StoreError::VersionConflict { .. }) => continue,
            Err(e) => return Err(e),
        }
    }
    tracing::warn!(order_id = %id, "order kept changing while it was expired; the next run retries");
    Ok(false)
}

/// Queues a confirmation check for every order waiting on one whose last write is older
/// than `stale_before` (at most `limit`), in a new check series written on the order first
/// (which also makes it fresh again for the next run). Returns how many were queued.
pub async fn requeue_stalled(
    s: &Settler,
    stale_before: Timestamp,
    now: Timestamp,
    limit: u32,
) -> Result<usize, UpkeepError> {
    let mut requeued = 0;
    for order in s.store.list_stalled_orders(stale_before, limit).await? {
        requeued += usize::from(
            requeue_if_stalled::<UpkeepError>(s, &order, stale_before, now)
                .await?
                .is_some(),
        );
    }
    Ok(requeued)
}

/// Queues a confirmation check for `order` if it waits on one and its last write is older
/// than `stale_before`, in a new check series written on the order first: the order as
/// written, or `None` when it was not stalled (or someone else wrote it meanwhile). The
/// upkeep's sweep and the deposit scan (for the orders it watches) both use it.
pub(crate) async fn requeue_if_stalled<E: From<StoreError> + From<QueueError>>(
    s: &Settler,
    order: &PayOrder,
    stale_before: Timestamp,
    now: Timestamp,
) -> Result<Option<PayOrder>, E> {
    if !order.awaits_check() || order.updated_at >= stale_before {
        return Ok(None);
    }
    // A new check series: any message of the old one still around is dropped, so
    // re-queuing never doubles the checks of an order.
    let touch = order
        .edit(now, |o| o.check_round = o.check_round.wrapping_add(1))
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    match s.store.update_order(&touch).await {
        Ok(()) => {}
        // Someone else wrote it meanwhile: it is not stalled after all.
        Err(StoreError::VersionConflict { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    // If this send fails the order is stale again in a while and the next run retries.
    enqueue_check(s, &order.id, Some(touch.order().check_round), 0).await?;
    tracing::info!(order_id = %order.id, status = %order.status, last_write = %order.updated_at, "confirmation check overdue; queued again");
    Ok(Some(touch.order().clone()))
}

/// One upkeep run: expiry, then overdue confirmation checks (see the module docs).
pub async fn upkeep(s: &Settler, now: Timestamp) -> Result<UpkeepReport, UpkeepError> {
    // More unpaid orders ending in a minute than one batch holds are expired in further
    // batches: one batch a minute would fall further behind as long as that lasts.
    let mut expired = 0;
    for _ in 0..UPKEEP_BATCHES {
        let batch = expire_orders(&*s.store, now, UPKEEP_BATCH).await?;
        expired += batch;
        if batch < UPKEEP_BATCH as usize {
            break;
        }
    }
    let stale_before = now.plus_seconds(-i64::from(s.stale_after_secs()));
    let requeued = requeue_stalled(s, stale_before, now, UPKEEP_BATCH).await?;
    Ok(UpkeepReport { expired, requeued })
}
