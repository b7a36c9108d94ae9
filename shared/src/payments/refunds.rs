//! Refunds (non-custodial: the merchant sends them): what an order may refund, creating a
//! refund inside the order's versioned write, verifying the merchant's refund transfer on
//! chain and recording it with its claims, and following it to final in the confirmation
//! checks, up to REFUNDED once everything received is refunded.

use super::rules::{ConfirmationCheck, confirmed, paid_now, tally};
use super::verify::{NATIVE_VALUE_POSITION, reader_for, stored_hash};
use super::{ATTEMPTS, PaymentError, Settler, VerifyError, enqueue_check, required_confirmations};
use crate::chains::sandbox::{self, SandboxChain};
use crate::chains::{ChainError, ChainTx, Inclusion, TxReader};
use crate::model::{
    Address, Amount, EventType, KeyMode, OrderId, OrderRefund, OrderStatus, OrderUpdate, PayOrder,
    Payment, RawAmount, RefundId, RefundInstructions, RefundStatus, RefundTransfer, SenderNonce,
    Timestamp, TxClaim, TxHash, counted,
};
use crate::store::StoreError;
use std::sync::Arc;

/// How far a refund transfer's block time may lag the refund's creation and still count
/// (our clock and block times disagree by seconds). Tighter than a payment's: the merchant
/// sends a refund after creating it, so a transfer from earlier is not this refund.
pub const REFUND_SKEW_SECS: i64 = 10;

/// How long a refund waits for its transaction once a reorg took it out of its block and no
/// node shows it any more (not mined, not waiting to be): then it is taken as dropped and
/// the refund goes back to `pending`. A reorged transaction is still valid and usually
/// mined again within minutes; sent back to `pending` at once, the merchant would send the
/// refund a second time while the first is mined.
pub const REFUND_DROPPED_AFTER_SECS: i64 = 3 * 3600;

/// How stale a waiting refund transfer's `seen_at` may get before a check writes it again.
const SEEN_GRAIN_SECS: i64 = 3600;

/// What becomes of a refund transfer whose recorded block a reorg replaced.
enum AfterReorg {
    /// Mined again, still sending the refund: followed to its new block.
    Follow(VerifiedRefund),
    /// Not in a final block again yet: waited for; `seen` when a node shows it.
    Wait { seen: bool },
    /// It can no longer send the refund: the refund is pending again.
    Pending,
}

/// The rule for a refund transfer `t` whose block a reorg replaced, given the transaction
/// as the node shows it now (`tx`) at `head`. Mined again and still sending the refund, it
/// is followed (`follow_moves`; else its claims turned out to be another's, and the refund
/// is pending again). Mined again failed or no longer sending it, it is waited for until
/// that block is final (another shallow reorg could still mine it as it was). In the
/// mempool, it is waited for. Shown by no node, it is waited for until none has shown it
/// for [`REFUND_DROPPED_AFTER_SECS`] (one node's empty answer proves nothing).
#[allow(clippy::too_many_arguments)]
fn after_reorg(
    order: &PayOrder,
    payment: &Payment,
    r: &OrderRefund,
    t: &RefundTransfer,
    hash: &TxHash,
    tx: Option<&ChainTx>,
    follow_moves: bool,
    head: u64,
    now: Timestamp,
) -> AfterReorg {
    let Some(tx) = tx else {
        let last_seen = [t.reorged_at, t.seen_at].into_iter().flatten().max();
        let unseen = last_seen.map_or(0, |at| at.seconds_until(now));
        return if unseen >= REFUND_DROPPED_AFTER_SECS {
            AfterReorg::Pending
        } else {
            AfterReorg::Wait { seen: false }
        };
    };
    let Some(inclusion) = &tx.inclusion else {
        return AfterReorg::Wait { seen: true };
    };
    if !follow_moves {
        return AfterReorg::Pending;
    }
    match check_refund_tx(order, payment, r, hash, tx) {
        Ok(v) => AfterReorg::Follow(v),
        Err(_) if inclusion.confirmations_at(head) >= u64::from(t.required_confirmations) => {
            AfterReorg::Pending
        }
        Err(_) => AfterReorg::Wait { seen: true },
    }
}

/// The most refunds one confirmation check records as succeeded (see [`refunds_update`]).
pub const SUCCEEDED_PER_WRITE: usize = 16;

/// Why a refund was not created or its transfer not recorded. Each has a code the API shows.
#[derive(Debug, thiserror::Error)]
pub enum RefundError {
    #[error(
        "an order in status {0} with nothing received and confirmed has nothing to refund (a payment is refundable once confirmed)"
    )]
    NotRefundable(OrderStatus),
    /// Paid through an exchange: the money sits with the provider, not at an address the
    /// merchant sends from.
    #[error(
        "the order was paid through an exchange (payment.exchange_id): refunds of it are the provider's, to the payer's refund address"
    )]
    Routed,
    #[error("the refund exceeds what can still be refunded ({} {}: received, minus refunds succeeded or pending)", .available.ui, .symbol)]
    Exceeds { available: Amount, symbol: String },
    #[error("the order has no refund address; give `address` (on the chain the order was paid on)")]
    AddressRequired,
    #[error("{0}")]
    InvalidAddress(String),
    #[error("the refund amount must be more than zero")]
    ZeroAmount,
    #[error(
        "the order has {MAX_ORDER_REFUNDS} refunds (cancelled ones count), the most one order keeps; no more can be created for it, so send what is left to refund outside the API"
    )]
    TooMany,
    #[error("this order has no refund {0}")]
    NotFound(RefundId),
    #[error(
        "the refund is {0}; a transfer is recorded for a pending refund only (or one whose transaction a reorg took out of its block)"
    )]
    NotPending(RefundStatus),
    #[error("the refund is {0}; only a pending refund (no transfer recorded) can be cancelled")]
    NotCancellable(RefundStatus),
    #[error("the transaction sends {sent} to the refund address; the refund is {due}")]
    TooSmall { sent: String, due: String },
    #[error(
        "the refund transfer is not sent from the address the order was paid to ({0}); refunds are sent from there"
    )]
    WrongSender(String),
    #[error(
        "the transaction was mined before the refund was created; an older transfer cannot be this refund"
    )]
    MinedBeforeRefund,
    /// A transaction offered in place of one a reorg took out of its block that spends
    /// another nonce: both could be mined, and the refund sent twice.
    #[error(
        "the refund waits for its transaction {tx_hash}, which a reorg took out of its block and which can still be mined; only a transaction spending its nonce ({nonce} of {sender}) takes its place, as a wallet's speed-up sends it, or any once a final block has spent that nonce (a wallet's cancel): with another nonce both could be mined and the refund sent twice"
    )]
    NotAReplacement {
        tx_hash: String,
        sender: String,
        nonce: u64,
    },
    /// The hash is a payment of an order, or another refund's transfer.
    #[error("this transfer is already recorded as {0}; a transfer counts once, ever")]
    AlreadyUsed(&'static str),
    #[error(transparent)]
    Payment(#[from] PaymentError),
}

impl RefundError {
    pub fn code(&self) -> &'static str {
        match self {
            RefundError::NotRefundable(_) | RefundError::Routed => "ORDER_NOT_REFUNDABLE",
            RefundError::Exceeds { .. } => "REFUND_EXCEEDS_RECEIVED",
            RefundError::AddressRequired => "REFUND_ADDRESS_REQUIRED",
            RefundError::InvalidAddress(_) => "INVALID_ADDRESS",
            RefundError::ZeroAmount => "INVALID_AMOUNT",
            RefundError::TooMany => "TOO_MANY_REFUNDS",
            RefundError::NotFound(_) => "RESOURCE_NOT_FOUND",
            RefundError::NotPending(_) | RefundError::NotCancellable(_) => "REFUND_NOT_PENDING",
            RefundError::TooSmall { .. } => "REFUND_TX_TOO_SMALL",
            RefundError::WrongSender(_) => "WRONG_SENDER",
            RefundError::MinedBeforeRefund => "TX_BEFORE_REFUND",
            RefundError::NotAReplacement { .. } => "REFUND_TX_NOT_A_REPLACEMENT",
            RefundError::AlreadyUsed(_) => "TX_ALREADY_USED",
            RefundError::Payment(p) => p.code(),
        }
    }
}

impl From<VerifyError> for RefundError {
    fn from(e: VerifyError) -> Self {
        RefundError::Payment(e.into())
    }
}

impl From<StoreError> for RefundError {
    fn from(e: StoreError) -> Self {
        RefundError::Payment(e.into())
    }
}

/// What refunds of `order` may add up to before any is created: everything received and
/// confirmed on a COMPLETED, EXPIRED (paid late, or partly paid), CANCELLED or
/// PARTIAL_PAYMENT order; only the confirmed excess over the amount while an overpaid
/// order is still confirming; nothing otherwise. Only confirmed transfers count: money
/// refunded before its payment is final would be lost to the merchant if a reorg took the
/// payment away.
pub fn refundable_base(order: &PayOrder) -> RawAmount {
    let received = confirmed(&order.transfers);
    match order.status {
        OrderStatus::Completed
        | OrderStatus::Expired
        | OrderStatus::Cancelled
        | OrderStatus::PartialPayment => received,
        OrderStatus::AwaitingConfirmation | OrderStatus::OptimisticConfirmed if order.paid_over => {
            let required = order
                .payment
                .as_ref()
                .map(|p| p.input.amount.raw)
                .unwrap_or(received);
            received.saturating_sub(required)
        }
        _ => RawAmount::ZERO,
    }
}

/// What the order's refunds already take: succeeded, confirming and pending alike (a
/// pending refund holds its amount until it is sent or cancelled, so two refunds never
/// promise the same money).
pub fn committed(order: &PayOrder) -> RawAmount {
    order
        .refunds
        .iter()
        .filter(|r| r.status != RefundStatus::Cancelled)
        .fold(RawAmount::ZERO, |sum, r| {
            sum.checked_add(r.amount.raw).unwrap_or(sum)
        })
}

/// The write that cancels refund `refund_id` of `order` (with `refund.cancelled`): only a
/// pending one, whose transfer was never recorded. What it held may be refunded again.
pub fn cancel_refund(
    order: &PayOrder,
    refund_id: &RefundId,
    now: Timestamp,
) -> Result<OrderUpdate, RefundError> {
    let refund = order
        .refunds
        .iter()
        .find(|r| &r.id == refund_id)
        .ok_or_else(|| RefundError::NotFound(refund_id.clone()))?;
    if refund.status != RefundStatus::Pending {
        return Err(RefundError::NotCancellable(refund.status));
    }
    let mut next = order.clone();
    if let Some(r) = next.refunds.iter_mut().find(|r| &r.id == refund_id) {
        r.status = RefundStatus::Cancelled;
        r.cancelled_at = Some(now);
    }
    // What the refund held counts toward the amount again: if that covers it, the order
    // is paid after all (a waiting one; an expired one if in time), and waits for
    // confirmations (a new check series) as it would had a top-up covered it. Otherwise
    // a waiting order owes less.
    let mut paid = next.clone();
    if paid.payment.is_some() {
        tally(&mut paid);
    }
    let update = if paid_now(&paid) {
        order.transition(now, OrderStatus::AwaitingConfirmation, |o| {
            *o = paid;
            o.check_round = o.check_round.wrapping_add(1);
        })
    } else {
        retally(&mut next);
        order.edit(now, |o| *o = next.clone())
    };
    Ok(update
        .map_err(|_| RefundError::NotCancellable(refund.status))?
        .announcing_overpayment(order)
        .and_refund_event(EventType::RefundCancelled, refund_id))
}

/// An order waiting for a payment (partly paid, or sent back to AWAITING_PAYMENT by a
/// reorg) owes what its counted transfers, less what its refunds hold, leave short:
/// tallied again whenever a refund takes or gives back an amount, so its `remaining` (what
/// the payer is asked for, and what the scan matches transfers against) stays true. An
/// expired or cancelled order keeps the amount it was last short of: a refund there asks
/// nobody for money, and must not make the order a candidate for other payers' transfers.
fn retally(o: &mut PayOrder) {
    if matches!(
        o.status,
        OrderStatus::AwaitingPayment | OrderStatus::PartialPayment
    ) {
        tally(o);
    }
}

/// What may still be refunded: [`refundable_base`] minus [`committed`].
pub fn refundable(order: &PayOrder) -> RawAmount {
    refundable_base(order).saturating_sub(committed(order))
}

/// What the merchant asks for.
#[derive(Debug, Clone, Default)]
pub struct RefundRequest {
    /// Base units of the payment currency; all that may still be refunded when absent.
    pub amount: Option<RawAmount>,
    /// Where to send; the payment's refund address when absent.
    pub address: Option<String>,
    pub reason: String,
}

/// The most refunds one order keeps, cancelled ones included. Each is kept on the order,
/// which is one item (at most 400 KB on DynamoDB), as its transfers are (see
/// [`super::rules::MAX_ORDER_TRANSACTIONS`]): refunds without end, each with a reason of up to
/// 500 characters, would grow it until no write of it fits, and a payment then found for it
/// would fail the deposit scan of its whole chain at every run.
pub const MAX_ORDER_REFUNDS: usize = 50;

/// The write that creates a refund on `order` (with `refund.created`), and its id.
pub fn create_refund(
    order: &PayOrder,
    req: &RefundRequest,
    now: Timestamp,
) -> Result<(OrderUpdate, RefundId), RefundError> {
    let base = refundable_base(order);
    let Some(payment) = order.payment.as_ref().filter(|_| !base.is_zero()) else {
        return Err(RefundError::NotRefundable(order.status));
    };
    // The payer's money went to the exchange's deposit address, which the merchant cannot
    // send from: a refund there could never be sent, and would hold its amount forever.
    if payment.exchange_id.is_some() {
        return Err(RefundError::Routed);
    }
    if order.refunds.len() >= MAX_ORDER_REFUNDS {
        return Err(RefundError::TooMany);
    }
    let currency = payment.input.currency.clone();
    let available = base.saturating_sub(committed(order));
    let amount = req.amount.unwrap_or(available);
    if req.amount.is_some_and(|a| a.is_zero()) {
        return Err(RefundError::ZeroAmount);
    }
    if amount.is_zero() || amount > available {
        return Err(RefundError::Exceeds {
            available: Amount::new(available, currency.decimals),
            symbol: currency.symbol.clone(),
        });
    }
    let address = refund_address(payment, req.address.as_deref())?;
    let id = RefundId::generate();
    let amount = Amount::new(amount, currency.decimals);
    let refund = OrderRefund {
        id: id.clone(),
        status: RefundStatus::Pending,
        amount: amount.clone(),
        chain_id: currency.chain_id,
        address: address.clone(),
        reason: req.reason.clone(),
        created_at: now,
        instructions: RefundInstructions {
            chain_id: currency.chain_id,
            token: currency.address.clone(),
            from: payment.deposit_address().to_owned(),
            to: address,
            amount,
        },
        currency,
        transfer: None,
        succeeded_at: None,
        cancelled_at: None,
    };
    let update = order
        .edit(now, |o| {
            o.refunds.push(refund);
            // An order still taking payments now has that much more due.
            retally(o);
        })
        .map_err(|_| RefundError::NotRefundable(order.status))?
        .and_refund_event(EventType::RefundCreated, &id);
    Ok((update, id))
}

/// The refund address: the one given, else the payment's; valid on the payment's chain
/// and never the deposit address itself (a transfer there would look like a payment).
fn refund_address(payment: &Payment, given: Option<&str>) -> Result<String, RefundError> {
    let text = given
        .map(str::to_owned)
        .or_else(|| payment.refund.as_ref().map(|r| r.address.clone()))
        .ok_or(RefundError::AddressRequired)?;
    let family = payment.family();
    let address = Address::parse(family, text.trim()).map_err(|e| {
        RefundError::InvalidAddress(format!(
            "address is not an address of chain {}: {e}",
            payment.input.currency.chain_id
        ))
    })?;
    let address = address.to_string();
    if Address::same(family, &address, payment.deposit_address()) {
        return Err(RefundError::InvalidAddress(
            "the refund address is the order's own deposit address".into(),
        ));
    }
    Ok(address)
}

/// A refund transfer as verified on chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedRefund {
    pub inclusion: Inclusion,
    pub amount: RawAmount,
    pub claims: Vec<TxClaim>,
}

/// Checks that `tx` (the transaction `hash`) sends `refund`: mined and successful, in the
/// order's currency, to the refund address, from the deposit address the order was paid
/// to, at least the refund amount (more is accepted: the merchant may round up or send
/// more), and not mined before the refund was created.
pub fn check_refund_tx(
    order: &PayOrder,
    payment: &Payment,
    refund: &OrderRefund,
    hash: &TxHash,
    tx: &ChainTx,
) -> Result<VerifiedRefund, RefundError> {
    use super::PaymentMismatch as M;
    let Some(inclusion) = tx.inclusion.clone() else {
        return Err(VerifyError::Pending.into());
    };
    if !inclusion.success {
        return Err(VerifyError::Mismatch(M::TxFailed).into());
    }
    let family = payment.family();
    let currency = &payment.input.currency;
    let right_token = |t: &&crate::chains::Transfer| match (&currency.address, &t.token) {
        (None, None) => true,
        (Some(want), Some(got)) => Address::same(family, want, got),
        _ => false,
    };
    // Zero-value transfers send nothing and claim nothing, as for payments.
    let to_refund: Vec<_> = tx
        .transfers
        .iter()
        .filter(|t| Address::same(family, &t.to, &refund.address) && !t.amount.is_zero())
        .collect();
    let right: Vec<_> = to_refund.iter().copied().filter(right_token).collect();
    if right.is_empty() {
        let m = if to_refund.is_empty() {
            M::WrongRecipient
        } else {
            M::WrongToken
        };
        return Err(VerifyError::Mismatch(m).into());
    }
    let deposit = payment.deposit_address();
    let sent: Vec<_> = right
        .into_iter()
        .filter(|t| Address::same(family, &t.from, deposit))
        .collect();
    if sent.is_empty() {
        return Err(RefundError::WrongSender(deposit.to_owned()));
    }
    // Each transfer is claimed twice in the write that records it: as many as a payment
    // may bring keep that write inside one DynamoDB transaction.
    if sent.len() > super::MAX_PAYING_TRANSFERS {
        return Err(VerifyError::Mismatch(M::TooManyTransfers).into());
    }
    let block_time = i64::try_from(inclusion.timestamp).unwrap_or(i64::MAX);
    if block_time.saturating_add(REFUND_SKEW_SECS) < refund.created_at.unix() {
        return Err(RefundError::MinedBeforeRefund);
    }
    let mut amount = RawAmount::ZERO;
    let mut claims = Vec::new();
    let tx_hash = hash.to_string();
    for t in sent {
        amount = amount
            .checked_add(t.amount)
            .ok_or_else(|| ChainError::Malformed("transfer amounts overflow".into()))
            .map_err(VerifyError::from)?;
        let position = t.position.unwrap_or(NATIVE_VALUE_POSITION);
        let claim = TxClaim::for_refund(order, currency.chain_id, &tx_hash, position);
        if !claims.contains(&claim) {
            // Its payment-side twin too, in the same write (see `verify_transaction`).
            claims.push(claim.other_purpose());
            claims.insert(claims.len() - 1, claim);
        }
    }
    if amount < refund.amount.raw {
        return Err(RefundError::TooSmall {
            sent: amount.to_ui(currency.decimals),
            due: refund.amount.ui.clone(),
        });
    }
    Ok(VerifiedRefund {
        inclusion,
        amount,
        claims,
    })
}

/// The reader that answers for a refund transfer `hash`: the sandbox (as a transfer from
/// the deposit address to the refund address) for a sandbox hash on a test-mode order,
/// the order's chain otherwise.
fn refund_reader(
    s: &Settler,
    order: &PayOrder,
    payment: &Payment,
    address: &str,
    hash: &TxHash,
) -> Result<Arc<dyn TxReader>, ChainError> {
    if !order.livemode && sandbox::is_sandbox(hash) {
        return Ok(Arc::new(SandboxChain::for_refund(payment, address)));
    }
    reader_for(&s.chains, order, payment, hash)
}

/// Verifies `hash` as the transfer of refund `refund_id` of `order_id` and records it
/// (refund `confirming`, its claims in the same write), then queues a confirmation check.
/// Submitting the same transaction for the same refund again changes nothing.
pub async fn record_refund(
    s: &Settler,
    order_id: &OrderId,
    refund_id: &RefundId,
    hash: &TxHash,
    now: Timestamp,
) -> Result<PayOrder, RefundError> {
    let key = hash.to_string();
    for _ in 0..ATTEMPTS {
        let order = s
            .store
            .get_order(order_id)
            .await?
            .ok_or(StoreError::NotFound)?;
        let payment = order
            .payment
            .clone()
            .ok_or(PaymentError::NoPaymentDetails)?;
        let refund = order
            .refunds
            .iter()
            .find(|r| &r.id == refund_id)
            .cloned()
            .ok_or_else(|| RefundError::NotFound(refund_id.clone()))?;
        if refund.transfer.as_ref().is_some_and(|t| t.tx_hash == key) {
            return Ok(order);
        }
        // A refund cancelled after its transfer was sent is taken up again by that transfer,
        // if what it held is still free: else the money sent would be recorded nowhere (a
        // new refund refuses a transfer mined before it).
        let reinstated =
            refund.status == RefundStatus::Cancelled && refund.amount.raw <= refundable(&order);
        // A refund waiting for a transaction a reorg took out of its block takes another
        // one: the merchant replaced it (the same nonce, so only one of them can be mined).
        let replaced = refund.status == RefundStatus::Confirming
            && refund
                .transfer
                .as_ref()
                .is_some_and(|t| t.reorged_at.is_some());
        if refund.status != RefundStatus::Pending && !reinstated && !replaced {
            return Err(RefundError::NotPending(refund.status));
        }
        // The nonce the transaction waited for spends, which what takes its place must spend
        // too (see below): as recorded, or as a node shows the transaction now (transfers
        // recorded before nonces were kept).
        let mut waited_nonce = None;
        if replaced && let Some(original) = &refund.transfer {
            // Unless the transaction waited for is mined again and still sends the refund:
            // then it is the refund's, and the next check follows it.
            let hash = stored_hash(payment.family(), &original.tx_hash)?;
            let reader = refund_reader(s, &order, &payment, &refund.address, &hash)
                .map_err(VerifyError::from)?;
            let tx = reader.transaction(&hash).await.map_err(VerifyError::from)?;
            waited_nonce = original.sender_nonce.clone().or_else(|| {
                signed_by(tx.as_ref()?.sender_nonce.clone(), &refund.instructions.from)
            });
            if tx.is_some_and(|tx| check_refund_tx(&order, &payment, &refund, &hash, &tx).is_ok()) {
                return Err(RefundError::NotPending(refund.status));
            }
        }
        if order.transfers.iter().any(|t| t.tx_hash == key) {
            return Err(RefundError::AlreadyUsed("a payment of this order"));
        }
        if order
            .refunds
            .iter()
            .any(|r| r.transfer.as_ref().is_some_and(|t| t.tx_hash == key))
        {
            return Err(RefundError::AlreadyUsed("another refund of this order"));
        }
        let reader =
            refund_reader(s, &order, &payment, &refund.address, hash).map_err(VerifyError::from)?;
        let tx = reader
            .transaction(hash)
            .await
            .map_err(VerifyError::from)?
            .ok_or(VerifyError::NotFound)?;
        let verified = check_refund_tx(&order, &payment, &refund, hash, &tx)?;
        for claim in verified.claims.iter().filter(|c| c.refund) {
            // The payment side: held by any order (this one's own payment included), it
            // was a payment. Only this order's own refund twin may be there.
            match s.store.get_tx_claim(&claim.other_purpose().key()).await? {
                Some(owner) if &owner != order_id => {
                    return Err(RefundError::AlreadyUsed("a payment"));
                }
                _ => {}
            }
            match s.store.get_tx_claim(&claim.key()).await? {
                Some(owner) if &owner != order_id => {
                    return Err(RefundError::AlreadyUsed("a refund of another order"));
                }
                _ => {}
            }
        }
        let chain = payment.input.currency.chain_id;
        let org = s.store.get_organization(&order.organization_id).await?;
        let required = required_confirmations(
            order.confirmations,
            org.and_then(|o| o.confirmations(KeyMode::of(order.livemode), chain)),
            chain,
        );
        let head = reader.head().await.map_err(VerifyError::from)?;
        // In place of a transaction that can still be mined, only one spending its nonce
        // (a wallet's speed-up): then at most one of the two is ever mined. Or any, once a
        // final block has spent that nonce (a wallet's cancel, or the first mined failed):
        // the first can then never be mined. Solana and sandbox transfers have no nonce.
        if let Some(want) = &waited_nonce
            && tx.sender_nonce.as_ref() != Some(want)
        {
            let final_block = head.saturating_sub(u64::from(required).saturating_sub(1));
            let spent = reader
                .nonce_at(&want.sender, final_block)
                .await
                .map_err(VerifyError::from)?
                .is_some_and(|next| next > want.nonce);
            if !spent {
                return Err(RefundError::NotAReplacement {
                    tx_hash: refund
                        .transfer
                        .as_ref()
                        .map(|t| t.tx_hash.clone())
                        .unwrap_or_default(),
                    sender: want.sender.clone(),
                    nonce: want.nonce,
                });
            }
        }
        let transfer = RefundTransfer {
            tx_hash: key.clone(),
            amount: Amount::new(verified.amount, payment.input.currency.decimals),
            confirmations: verified.inclusion.confirmations_at(head),
            required_confirmations: required,
            block_number: verified.inclusion.block_number,
            block_hash: verified.inclusion.block_hash.clone(),
            detected_at: now,
            mined_at: verified.inclusion.mined_at(),
            sandbox: sandbox::is_sandbox(hash) && !order.livemode,
            reorged_at: None,
            seen_at: None,
            sender_nonce: signed_by(tx.sender_nonce.clone(), &refund.instructions.from),
        };
        let update = order
            .edit(now, |o| {
                if let Some(r) = o.refunds.iter_mut().find(|r| &r.id == refund_id) {
                    r.status = RefundStatus::Confirming;
                    r.transfer = Some(transfer);
                    r.cancelled_at = None;
                }
                // A reinstated refund holds its amount again.
                retally(o);
                // Confirmation checks start a new series (any older one is dropped).
                o.check_round = o.check_round.wrapping_add(1);
            })
            .map_err(|_| RefundError::NotPending(refund.status))?;
        let update = update.with_tx_claims(verified.claims);
        match s.store.update_order(&update).await {
            Ok(()) => {
                let order = update.order().clone();
                enqueue_check(s, &order.id, Some(order.check_round), 0)
                    .await
                    .map_err(PaymentError::from)?;
                return Ok(order);
            }
            Err(StoreError::VersionConflict { .. }) => continue,
            Err(StoreError::TxAlreadyClaimed { .. }) => {
                return Err(RefundError::AlreadyUsed("a refund of another order"));
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(PaymentError::Busy.into())
}

/// A transaction's sender and nonce, kept only when `from` (the address refunds are sent
/// from) signed it: a smart account's transfer is signed by an owner, bundler or relayer,
/// whose nonce says nothing of the account's transfers.
fn signed_by(nonce: Option<SenderNonce>, from: &str) -> Option<SenderNonce> {
    nonce.filter(|n| n.sender.eq_ignore_ascii_case(from))
}

/// Whether every counted transfer received is refunded by succeeded refunds.
pub fn fully_refunded(order: &PayOrder) -> bool {
    let received = counted(&order.transfers);
    let refunded = order
        .amount_refunded()
        .map(|a| a.raw)
        .unwrap_or(RawAmount::ZERO);
    !received.is_zero() && refunded >= received
}

/// The confirmation counts of the order's confirming refund transfers and the write they
/// call for: a final one `succeeded` (with `refund.succeeded`); one whose block was
/// replaced is followed to its new block when the same transaction was mined again on the
/// new branch and still sends the refund (`follow_moves`; its claims written again), is
/// waited for while it is in no block (`reorged_at`), and goes back to `pending` (its
/// transfer forgotten) only when it was mined again not sending it, or no node has shown it
/// for [`REFUND_DROPPED_AFTER_SECS`]. Once everything received is refunded, the order moves to REFUNDED
/// where the transition table allows it (COMPLETED, EXPIRED paid late). `None` when
/// nothing changed.
pub(crate) async fn refunds_update(
    s: &Settler,
    order: &PayOrder,
    now: Timestamp,
    follow_moves: bool,
) -> Result<Option<OrderUpdate>, super::AdvanceError> {
    let payment = order
        .payment
        .as_ref()
        .ok_or_else(|| StoreError::Corrupt(format!("order {} has no payment", order.id)))?;
    let family = payment.family();
    let mut refunds = order.refunds.clone();
    let mut heads = super::confirm::Heads::default();
    let mut succeeded = Vec::new();
    let mut claims = Vec::new();
    for r in refunds
        .iter_mut()
        .filter(|r| r.status == RefundStatus::Confirming)
    {
        let Some(t) = r.transfer.clone() else {
            continue;
        };
        let hash = stored_hash(family, &t.tx_hash)?;
        let reader = refund_reader(s, order, payment, &r.address, &hash)?;
        let tx = reader.transaction(&hash).await?;
        let current = tx.as_ref().and_then(|tx| tx.inclusion.clone());
        let head = heads.of(t.sandbox, &*reader).await?;
        match super::confirm::confirmation_check(
            &*reader,
            t.block_number,
            &t.block_hash,
            current.as_ref(),
            head,
            t.required_confirmations,
        )
        .await?
        {
            // One moved transaction followed per write (its claims and the order's items
            // fit one DynamoDB transaction); this one stays as recorded until the next check.
            ConfirmationCheck::Reorged if current.is_some() && !claims.is_empty() => {}
            ConfirmationCheck::Reorged => {
                // Sent back to pending while the transaction may still be mined, the
                // merchant would send the refund twice: see [`after_reorg`].
                let fate = after_reorg(
                    order,
                    payment,
                    r,
                    &t,
                    &hash,
                    tx.as_ref(),
                    follow_moves,
                    head,
                    now,
                );
                match (fate, r.transfer.as_mut()) {
                    (AfterReorg::Follow(v), Some(t)) => {
                        tracing::info!(order_id = %order.id, refund = %r.id, tx = %t.tx_hash, from = t.block_number, to = v.inclusion.block_number, "a reorg moved the refund's transaction to another block; following it there");
                        t.block_number = v.inclusion.block_number;
                        t.block_hash = v.inclusion.block_hash.clone();
                        t.mined_at = v.inclusion.mined_at();
                        t.in_block(v.inclusion.confirmations_at(head));
                        claims.extend(v.claims);
                    }
                    (AfterReorg::Wait { seen }, Some(t)) => {
                        if t.reorged_at.is_none() {
                            tracing::warn!(order_id = %order.id, refund = %r.id, tx = %t.tx_hash, block = t.block_number, "a reorg took the refund's transaction out of its block; waiting for it to be mined again");
                        }
                        t.reorged_at.get_or_insert(now);
                        t.confirmations = 0;
                        if seen {
                            t.seen_at = Some(Timestamp::noted(t.seen_at, now, SEEN_GRAIN_SECS));
                        }
                    }
                    _ => {
                        tracing::warn!(order_id = %order.id, refund = %r.id, tx = %t.tx_hash, "the refund's transaction no longer sends it (gone, failed or changed on the new branch); the refund is pending again");
                        r.status = RefundStatus::Pending;
                        r.transfer = None;
                    }
                }
            }
            // Each success is an event of its own, each an item of the write beside the
            // order: a few at a time keep the write within one DynamoDB transaction; the
            // rest succeed at the next check.
            ConfirmationCheck::Confirmed { .. } if succeeded.len() >= SUCCEEDED_PER_WRITE => {}
            ConfirmationCheck::Confirmed { confirmations } => {
                r.status = RefundStatus::Succeeded;
                r.succeeded_at = Some(now);
                if let Some(t) = r.transfer.as_mut() {
                    t.in_block(confirmations);
                }
                succeeded.push(r.id.clone());
            }
            ConfirmationCheck::Pending { confirmations } => {
                // (Back in its block, if the reorg was undone.)
                if let Some(t) = r.transfer.as_mut() {
                    t.in_block(confirmations);
                }
            }
            ConfirmationCheck::Unsure => {
                tracing::warn!(order_id = %order.id, tx = %t.tx_hash, "a refund transfer's block disagrees with the chain but shows no reorg; checking again later");
            }
        }
    }
    if refunds == order.refunds {
        return Ok(None);
    }
    let set = |o: &mut PayOrder| o.refunds = refunds.clone();
    let mut next = order.clone();
    set(&mut next);
    let update = if !succeeded.is_empty() && fully_refunded(&next) {
        match order.transition(now, OrderStatus::Refunded, set) {
            Ok(u) => u,
            // CANCELLED, PARTIAL_PAYMENT, EXPIRED paid in time: the status stays, the
            // refunds show what went back.
            Err(_) => order
                .edit(now, set)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        }
    } else {
        order
            .edit(now, set)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?
    };
    let update = update.with_tx_claims(claims);
    // One event for each refund that succeeded (the order's own event, if it became
    // REFUNDED, stays beside them).
    Ok(Some(succeeded.iter().fold(update, |u, id| {
        u.and_refund_event(EventType::RefundSucceeded, id)
    })))
}
