//! Recording a verified payment: the order update, its event and the claims of its
//! transfers in one conditional write; then the first confirmation check is queued.

use super::expire::expire_one;
use super::rules::{
    Assessment, MAX_ORDER_TRANSACTIONS, PaymentMismatch, flag_late_of_old, paid_now, recorded_late,
    required_confirmations, tally,
};
use super::verify::{VerifyError, reader_for, verify_transaction};
use super::{ATTEMPTS, Settler, enqueue_check};
use crate::chains::sandbox;
use crate::model::{
    Amount, ChainId, EventType, KeyMode, OrderId, OrderStatus, OrderUpdate, PayOrder,
    ReceivedTransfer, Timestamp, TransferStatus, TxClaim, TxHash,
};
use crate::queue::QueueError;
use crate::store::StoreError;

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
    #[error("the order's late-payment monitoring window ended at {0}; it takes no more payments")]
    WindowClosed(Timestamp),
    /// The transfer paid `order` (when known), another order of this organization and mode,
    /// on this chain: a transfer pays one order, ever.
    #[error("{}", already_used_text(.order.as_ref()))]
    AlreadyUsed { order: Option<OrderId> },
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
            PaymentError::NotPayable(_) | PaymentError::WindowClosed(_) => "ORDER_NOT_PAYABLE",
            PaymentError::AlreadyUsed { .. } => "TX_ALREADY_USED",
            PaymentError::Verify(v) => v.code(),
            PaymentError::Busy => "CONCURRENT_UPDATE",
            PaymentError::Store(_) | PaymentError::Queue(_) => "INTERNAL",
        }
    }
}

fn already_used_text(order: Option<&OrderId>) -> String {
    match order {
        Some(o) => format!(
            "this transfer already paid order {o} of this organization; a transfer pays one order, ever"
        ),
        None => "this transfer already paid another order of this organization".to_owned(),
    }
}

/// The write that records a verified transfer on `order`.
pub fn apply_transfer(
    order: &PayOrder,
    mut transfer: ReceivedTransfer,
    claims: Vec<TxClaim>,
    now: Timestamp,
) -> Result<OrderUpdate, PaymentError> {
    if order.payment.is_none() {
        return Err(PaymentError::NoPaymentDetails);
    }
    let late = recorded_late(order, transfer.mined_at);
    transfer.late = late;
    let mut next = order.clone();
    // (An older order's own late transfers are flagged before this one joins them.)
    flag_late_of_old(&mut next);
    next.transfers.retain(|t| t.tx_hash != transfer.tx_hash);
    next.transfers.push(transfer);
    if let Some(p) = next.payment.as_mut() {
        p.source_tx_hash = p
            .source_tx_hash
            .take()
            .or_else(|| next.transfers.first().map(|t| t.tx_hash.clone()));
    }
    let verdict = tally(&mut next);
    let partial = matches!(verdict, Assessment::Partial { .. });
    // Paid in full; on an expired order, by transfers all mined by `expires_at` but seen
    // after it expired (the scan or the submission came late): the customer kept the
    // price lock.
    let paid = paid_now(&next);
    // Every recorded transfer is followed to final (or reorged away): a payment in full,
    // and partial and late ones too, since only confirmed money can be refunded. Its
    // checks start a new series, so any older one left over is dropped.
    next.check_round = next.check_round.wrapping_add(1);
    let fill = |o: &mut PayOrder| *o = next.clone();
    let update = match order.status {
        _ if paid => order.transition(now, OrderStatus::AwaitingConfirmation, fill),
        // Part of the amount, mined in time: recorded on the EXPIRED order as the partial
        // payment it was, not as a late one.
        OrderStatus::Expired if partial && !late => order
            .edit(now, fill)
            .map(|u| u.with_event(EventType::OrderPartialPayment)),
        // Mined late, or completing the amount only with transfers mined late; or to a
        // cancelled order, which stays cancelled.
        OrderStatus::Expired | OrderStatus::Cancelled => order
            .edit(now, fill)
            .map(|u| u.with_event(EventType::OrderPaymentLate)),
        OrderStatus::PartialPayment => order
            .edit(now, fill)
            .map(|u| u.with_event(EventType::OrderPartialPayment)),
        OrderStatus::AwaitingPayment => order.transition(now, OrderStatus::PartialPayment, fill),
        status => return Err(PaymentError::NotPayable(status)),
    }
    .map_err(|_| PaymentError::NotPayable(order.status))?;
    let update = update.announcing_overpayment(order);
    Ok(update.with_tx_claims(claims))
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
    record_from(s, None, order_id, hash, now, None).await
}

/// [`record_payment`] on an order the caller has just read (a route that loaded it to check
/// its owner): the first attempt starts from that copy instead of reading it again. The
/// write is conditional on the version read, so a copy that went stale meanwhile only costs
/// a retry from a fresh read, as a concurrent change does.
pub async fn record_payment_on(
    s: &Settler,
    order: PayOrder,
    hash: &TxHash,
    now: Timestamp,
) -> Result<Recorded, PaymentError> {
    let id = order.id.clone();
    record_from(s, Some(order), &id, hash, now, None).await
}

pub use crate::store::KeepAnswer;

/// [`record_payment_on`] for a request under an `Idempotency-Key`: `keep` gives the answer
/// to keep for the key, and the payment's own write keeps it, so no crash falls between the
/// payment and its kept answer (after which the key, its lock run out, would run the
/// request again: harmless for a submitted hash, which is recorded once, but a second
/// payment for a simulated one, whose hash is new each time).
pub async fn record_payment_keeping(
    s: &Settler,
    order: PayOrder,
    hash: &TxHash,
    now: Timestamp,
    keep: KeepAnswer<'_>,
) -> Result<Recorded, PaymentError> {
    let id = order.id.clone();
    record_from(s, Some(order), &id, hash, now, Some(keep)).await
}

async fn record_from(
    s: &Settler,
    mut known: Option<PayOrder>,
    order_id: &OrderId,
    hash: &TxHash,
    now: Timestamp,
    keep: Option<KeepAnswer<'_>>,
) -> Result<Recorded, PaymentError> {
    let key = hash.to_string();
    for _ in 0..ATTEMPTS {
        let order = match known.take() {
            Some(order) => order,
            None => s
                .store
                .get_order(order_id)
                .await?
                .ok_or(StoreError::NotFound)?,
        };
        let Some(payment) = order.payment.clone() else {
            return Err(PaymentError::NoPaymentDetails);
        };
        let chain = payment.input.currency.chain_id;
        let previous = order.transfers.iter().find(|t| t.tx_hash == key);
        if previous.is_some_and(|t| t.status != TransferStatus::Reorged) {
            // Already recorded. Its checks are queued; if they were lost, the upkeep queues
            // them again (see `expire::requeue_stalled`).
            return Ok(Recorded { order, new: false });
        }
        if !order.status.accepts_payment() {
            return Err(PaymentError::NotPayable(order.status));
        }
        if !order.accepts_payment(now) {
            return Err(PaymentError::WindowClosed(order.watch_until()));
        }
        let reader = reader_for(&s.chains, &order, &payment, hash).map_err(VerifyError::from)?;
        let verified = verify_transaction(&*reader, &order, &payment, hash).await?;
        // Past the limit only a transaction that pays all that is still due is recorded
        // (after it nothing is due, so the order records no more): dust sent to the deposit
        // address cannot keep the real payment out.
        let pays_the_rest = payment
            .still_due()
            .is_some_and(|due| !due.is_zero() && verified.amount >= due);
        if previous.is_none() && order.transfers.len() >= MAX_ORDER_TRANSACTIONS && !pays_the_rest {
            return Err(VerifyError::Mismatch(PaymentMismatch::TooManyPayments).into());
        }
        let mined_at = verified.inclusion.mined_at();
        // A transfer mined after the order's expiry is late whether or not the upkeep
        // (once a minute, a batch at a time) has expired the order yet: the order is
        // expired first, as the upkeep would have, and the transfer recorded on it as a
        // late payment. Otherwise when the upkeep last ran would decide whether a payer
        // who waited past the price lock still gets it.
        if order.status.is_expirable() && order.expires_at <= now && !order.mined_in_time(mined_at)
        {
            expire_one(&*s.store, order_id, now).await?;
            continue;
        }
        // A claim held by another order of this organization and mode is final; one held
        // by this order (a transaction that reorged and was mined again) is claimed again,
        // which the store accepts for the same owner.
        for claim in verified.claims.iter().filter(|c| !c.refund) {
            match s.store.get_tx_claim(&claim.key()).await? {
                Some(owner) if &owner != order_id => {
                    return Err(PaymentError::AlreadyUsed { order: Some(owner) });
                }
                _ => {}
            }
            // A transfer recorded as another order's refund never also pays an order (this
            // order's own twin of its payment claim may be there). The twin names its order
            // too: a racing payment may have taken both since the read above.
            match s.store.get_tx_claim(&claim.other_purpose().key()).await? {
                Some(owner) if &owner != order_id => {
                    return Err(PaymentError::AlreadyUsed { order: Some(owner) });
                }
                _ => {}
            }
        }
        let claims = verified.claims.clone();
        // Fixed with the payment (see `checkout::details`); an order whose payment was
        // chosen before that takes its organization's setting as it is now.
        let setting = match order.confirmations {
            Some(_) => None,
            None => s
                .store
                .get_organization(&order.organization_id)
                .await?
                .and_then(|o| o.confirmations(KeyMode::of(order.livemode), chain)),
        };
        let required = required_confirmations(order.confirmations, setting, chain);
        let head = reader.head().await.map_err(VerifyError::from)?;
        let transfer = ReceivedTransfer {
            tx_hash: key.clone(),
            amount: Amount::new(verified.amount, payment.input.currency.decimals),
            status: TransferStatus::Confirming,
            confirmations: verified.inclusion.confirmations_at(head),
            required_confirmations: required,
            block_number: verified.inclusion.block_number,
            block_hash: verified.inclusion.block_hash.clone(),
            from_address: verified.from.clone(),
            detected_at: now,
            confirmed_at: None,
            sandbox: sandbox::is_sandbox(hash) && !order.livemode,
            mined_at,
            late: false,
        };
        let update = apply_transfer(&order, transfer, claims, now)?;
        let completion = keep.and_then(|keep| keep(update.order()));
        let update = update.completing(completion);
        match s.store.update_order(&update).await {
            Ok(()) => {
                let order = update.order().clone();
                if order.awaits_check() {
                    enqueue_check(s, &order.id, Some(order.check_round), 0).await?;
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
                let mut owner = None;
                for claim in update.tx_claims() {
                    owner = owner.or(s.store.get_tx_claim(&claim.key()).await?);
                }
                return Err(PaymentError::AlreadyUsed { order: owner });
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(PaymentError::Busy)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::*;

    const DEPOSIT: &str = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";

    pub(crate) fn awaiting(status: OrderStatus) -> PayOrder {
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
            required_confirmations: 2,
            block_number: 5,
            block_hash: "0xab".into(),
            mined_at: Some(Timestamp::now()),
            ..crate::testing::transfer(hash, amount, 6, TransferStatus::Confirming)
        }
    }

    fn event(u: &OrderUpdate) -> Option<EventType> {
        u.event().map(|e| e.event_type)
    }

    fn events(u: &OrderUpdate) -> Vec<EventType> {
        u.events().iter().map(|e| e.event_type).collect()
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
        let claim = TxClaim::for_order(u2.order(), ChainId::new(8453).unwrap(), "0x3", 0);
        let u3 =
            apply_transfer(u2.order(), transfer("0x3", 600), vec![claim.clone()], now).unwrap();
        assert_eq!(u3.order().status, OrderStatus::AwaitingConfirmation);
        assert_eq!(event(&u3), Some(EventType::OrderPaymentDetected));
        assert!(u3.order().paid_over);
        // Paying more than the amount is announced once, beside the transition.
        assert_eq!(
            events(&u3),
            [EventType::OrderPaymentDetected, EventType::OrderOverpaid]
        );
        assert_eq!(events(&u2), [EventType::OrderPartialPayment]);
        let exact = apply_transfer(u2.order(), transfer("0x5", 500), vec![], now).unwrap();
        assert!(!exact.order().paid_over);
        assert_eq!(events(&exact), [EventType::OrderPaymentDetected]);
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

        // Mined after the order expired: late.
        let mut expired = awaiting(OrderStatus::Expired);
        expired.expires_at = now.plus_seconds(-60);
        let u = apply_transfer(&expired, transfer("0x1", 1_000), vec![], now).unwrap();
        assert_eq!(u.order().status, OrderStatus::Expired);
        assert!(u.order().paid_late);
        assert_eq!(event(&u), Some(EventType::OrderPaymentLate));

        // To a cancelled order, whenever mined: late, and the order stays cancelled.
        let u = apply_transfer(
            &awaiting(OrderStatus::Cancelled),
            transfer("0x1", 1_000),
            vec![],
            now,
        )
        .unwrap();
        assert_eq!(u.order().status, OrderStatus::Cancelled);
        assert!(u.order().paid_late);
        assert_eq!(event(&u), Some(EventType::OrderPaymentLate));

        for status in [OrderStatus::Completed, OrderStatus::Pending] {
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
}
