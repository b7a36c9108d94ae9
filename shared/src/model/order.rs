//! Pay orders, and the only ways to build a write of one: [`PayOrder::transition`] checks
//! the transition table and attaches the event, [`PayOrder::edit`] changes anything but the
//! status; [`NewOrder`] pairs a new order with its
//! `order.created` event. Store adapters accept nothing else.

use super::{
    Amount, ChainId, Currency, Event, EventType, LATE_PAYMENT_WINDOW_SECS, OrderId, OrderMode,
    OrderRefund, OrderStatus, OrgId, OverpaymentAction, RawAmount, RefundStatus, Timestamp,
    TransitionError, TransitionFacts, check_transition,
};
use crate::store::IdempotencyCompletion;
use serde::{Deserialize, Serialize};

/// What the merchant receives (seed 002's `fulfillment`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Fulfillment {
    /// The amount in `asset`, once the asset is known.
    #[serde(default)]
    pub amount: Option<Amount>,
    #[serde(default)]
    pub asset: Option<Currency>,
    /// Fiat unit a SALE is priced in (`USD`).
    #[serde(default)]
    pub fiat_unit: Option<String>,
    /// The price in `fiat_unit`, as an exact decimal string.
    #[serde(default)]
    pub fiat_amount: Option<String>,
    /// USD per unit of `asset` locked for this order.
    #[serde(default)]
    pub rate_usd: Option<String>,
    #[serde(default)]
    pub recipient: Option<String>,
    #[serde(default)]
    pub custom_fee_bps: Option<u32>,
}

/// An amount's parts (seed 002's `breakdown`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Breakdown {
    pub base: Amount,
    pub fees: Fees,
    pub gas: Amount,
    pub total: Amount,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Fees {
    pub protocol_fee: Amount,
    /// The merchant's own fee (the order's `fulfillment.custom_fee_bps`), beside the
    /// protocol fee; shown by quotes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_fee: Option<Amount>,
    pub provider_fee: Amount,
    pub total_fee: Amount,
}

/// What the payer sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PaymentInput {
    pub currency: Currency,
    pub amount: Amount,
    pub breakdown: Breakdown,
}

/// What the merchant (or the deposit's recipient) receives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PaymentOutput {
    pub currency: Currency,
    pub amount: Amount,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PaymentStep {
    /// `deposit`: send `input.amount` of `input.currency` to `deposit_address`.
    pub kind: String,
    pub rail: String,
    pub deposit_address: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Refund {
    pub address: String,
}

/// How an order is to be paid, fixed by payment details (seed 002's `payment`): the locked
/// amounts, the route and where to send.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Payment {
    /// `direct` (the payer pays the destination) or the provider routing it.
    pub route: String,
    pub payment_rail: String,
    pub input: PaymentInput,
    pub output: PaymentOutput,
    pub steps: Vec<PaymentStep>,
    pub recipient: String,
    /// The amounts hold until then.
    pub expires_at: Timestamp,
    #[serde(default)]
    pub refund: Option<Refund>,
    /// The xpub index the destination address was derived at, when it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub derivation_index: Option<u32>,
    /// The provider's exchange id, on a routed payment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exchange_id: Option<String>,
    /// What the counted transfers add up to, once one arrived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received: Option<Amount>,
    /// What is still to be sent, while the order is partly paid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining: Option<Amount>,
    /// The first transaction that paid this order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_tx_hash: Option<String>,
    /// When these payment details were chosen: transfers mined before then pay nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Timestamp>,
}

wire_enum!(
    /// Where one received transfer is: mined and `confirming`, `confirmed`, or `reorged`
    /// (dropped from the chain by a reorganisation, so it no longer counts).
    TransferStatus {
        Confirming = "confirming",
        Confirmed = "confirmed",
        Reorged = "reorged",
    }
);

/// One transaction that paid (part of) an order, as seed 003 lists `payments`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReceivedTransfer {
    pub tx_hash: String,
    /// What the transaction sent to the deposit address in the order's currency.
    pub amount: Amount,
    pub status: TransferStatus,
    pub confirmations: u64,
    pub required_confirmations: u32,
    pub block_number: u64,
    pub block_hash: String,
    #[serde(default)]
    pub from_address: Option<String>,
    pub detected_at: Timestamp,
    #[serde(default)]
    pub confirmed_at: Option<Timestamp>,
    /// A simulated transfer on the sandbox chain (test mode only).
    #[serde(default)]
    pub sandbox: bool,
    /// The timestamp of the block it was mined in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mined_at: Option<Timestamp>,
    /// Recorded as a late payment: mined after the order expired (and recorded on it
    /// expired), or sent to it cancelled. Decided when it is recorded: a reorg that moves
    /// it to another block does not change it. The order is `paid_late` while one counts.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub late: bool,
}

/// What the transfers that count add up to: all but those reorged away.
pub(crate) fn counted(transfers: &[ReceivedTransfer]) -> RawAmount {
    sum_of(transfers, |t| t.status != TransferStatus::Reorged)
}

/// What the transfers `keep` keeps add up to.
pub(crate) fn sum_of(
    transfers: &[ReceivedTransfer],
    keep: impl Fn(&ReceivedTransfer) -> bool,
) -> RawAmount {
    transfers
        .iter()
        .filter(|t| keep(t))
        .fold(RawAmount::ZERO, |sum, t| {
            sum.checked_add(t.amount.raw).unwrap_or(sum)
        })
}

impl Payment {
    /// What the payer still has to send: what remains of a partial payment, else the whole
    /// amount while nothing is received; `None` once it is paid in full.
    pub fn still_due(&self) -> Option<RawAmount> {
        match (&self.remaining, &self.received) {
            (Some(r), _) => Some(r.raw),
            (None, Some(r)) if !r.raw.is_zero() => None,
            _ => Some(self.input.amount.raw),
        }
    }

    /// Whether what arrived (less what refunds hold) covers the amount, as last tallied.
    pub fn is_covered(&self) -> bool {
        self.received.is_some() && self.remaining.is_none()
    }

    /// Where the payer sends: the first step's deposit address, else the recipient.
    pub fn deposit_address(&self) -> &str {
        self.steps
            .first()
            .map(|s| s.deposit_address.as_str())
            .unwrap_or(self.recipient.as_str())
    }
}

/// How far from the amount a payment may fall and still count as paid exactly: below it by
/// up to `underpayment_bps`, above it by up to `overpayment_threshold_bps` (more than that
/// is an overpayment, handled as `overpayment_action` says).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PaymentTolerance {
    #[serde(default)]
    pub underpayment_bps: u32,
    #[serde(default)]
    pub overpayment_threshold_bps: u32,
    #[serde(default)]
    pub overpayment_action: OverpaymentAction,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PayOrder {
    pub id: OrderId,
    pub organization_id: OrgId,
    /// True for live-mode orders; test keys never see them.
    pub livemode: bool,
    pub mode: OrderMode,
    pub status: OrderStatus,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub expires_at: Timestamp,
    /// When the order became EXPIRED, if it ever did (kept if a payment mined in time,
    /// found after the expiry, pays it after all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expired_at: Option<Timestamp>,
    pub fulfillment: Fulfillment,
    /// Set by payment details; absent while PENDING.
    #[serde(default)]
    pub payment: Option<Payment>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<std::collections::HashMap<String, serde_json::Value>>))]
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    pub webhook_url: Option<String>,
    #[serde(default)]
    pub redirect_url: Option<String>,
    #[serde(default)]
    pub cancel_url: Option<String>,
    /// The merchant's nonce, unique per organization and mode.
    #[serde(default)]
    pub nonce: Option<String>,
    #[serde(default)]
    pub payment_tolerance: PaymentTolerance,
    /// Confirmations this order requires; falls back to the organization, then the registry.
    #[serde(default)]
    pub confirmations: Option<u32>,
    /// Seconds after `expires_at` that transfers to the order are still recorded (as late
    /// payments); unset on orders made before it was kept: the default 24 h.
    #[serde(default)]
    pub late_payment_window: Option<i64>,
    /// Facts beside the status (never statuses of their own).
    #[serde(default)]
    pub paid_over: bool,
    #[serde(default)]
    pub paid_late: bool,
    #[serde(default)]
    pub underpaid_within_tolerance: bool,
    /// Transactions that paid this order, in the order they were seen.
    #[serde(default)]
    pub transfers: Vec<ReceivedTransfer>,
    /// Refunds of this order, oldest first (see [`OrderRefund`]).
    #[serde(default)]
    pub refunds: Vec<OrderRefund>,
    /// Why the merchant cancelled the order, if they said.
    #[serde(default)]
    pub cancellation_reason: Option<String>,
    /// The `Idempotency-Key` the order was created with, if any.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub idempotency_key: Option<String>,
    /// Which series of confirmation checks is the live one: bumped when checks start and
    /// when the upkeep re-queues a stalled order, so a check message of an older series is
    /// dropped and at most one series runs per order.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub check_round: u32,
    /// Bumped by every write; each write is conditional on the version it read.
    pub version: u64,
}

impl PayOrder {
    /// The order as the API shows it (responses, event payloads): `id` and `object` first,
    /// internal bookkeeping left out.
    pub fn api_view(&self) -> serde_json::Value {
        serde_json::to_value(self.view(Vec::new())).expect("orders serialize")
    }

    /// The order as the API shows it, with `extra` entries after its own, serialized
    /// straight to the output ([`OrderView`]).
    pub fn view(&self, extra: Vec<(&'static str, serde_json::Value)>) -> OrderView<'_> {
        OrderView { order: self, extra }
    }

    /// Whether a transfer mined at `mined_at` was mined by the order's expiry (an unknown
    /// block time is not): what tells an on-time payment from a late one.
    pub fn mined_in_time(&self, mined_at: Option<Timestamp>) -> bool {
        mined_at.is_some_and(|m| m <= self.expires_at)
    }

    /// What the succeeded refunds add up to, once the order has a payment currency.
    pub fn amount_refunded(&self) -> Option<Amount> {
        let decimals = self.payment.as_ref()?.input.currency.decimals;
        let sum = self
            .refunds
            .iter()
            .filter(|r| r.status == RefundStatus::Succeeded)
            .fold(RawAmount::ZERO, |sum, r| {
                sum.checked_add(r.amount.raw).unwrap_or(sum)
            });
        Some(Amount::new(sum, decimals))
    }

    pub fn facts(&self) -> TransitionFacts {
        let counted = || {
            self.transfers
                .iter()
                .filter(|t| t.status != TransferStatus::Reorged)
        };
        let covered = self.payment.as_ref().is_some_and(Payment::is_covered);
        TransitionFacts {
            paid_late: self.paid_late,
            paid_in_time: covered
                && counted().next().is_some()
                && counted().all(|t| !t.late && self.mined_in_time(t.mined_at)),
        }
    }

    /// Transfers mined before this time pay nothing: when the payment details were chosen
    /// (the order's creation for orders written before that was recorded).
    pub fn payable_since(&self) -> Timestamp {
        self.payment
            .as_ref()
            .and_then(|p| p.created_at)
            .unwrap_or(self.created_at)
    }

    /// Until when transfers to the order are still watched and recorded: its expiry plus
    /// its late-payment monitoring window.
    pub fn watch_until(&self) -> Timestamp {
        self.expires_at
            .plus_seconds(self.late_payment_window.unwrap_or(LATE_PAYMENT_WINDOW_SECS))
    }

    /// Whether a transfer arriving `now` is recorded on this order: its status takes
    /// payments, and an expired order only inside its monitoring window.
    pub fn accepts_payment(&self, now: Timestamp) -> bool {
        self.status.accepts_payment() && now < self.watch_until()
    }

    /// Whether a confirmation check is outstanding: the status waits on one, the transfers
    /// of an order still taking payments (a partial payment, an expired or cancelled
    /// order's late payment) are still gaining confirmations (a late payment is followed
    /// to final, or reorged away, like any other), or a refund transfer is.
    pub fn awaits_check(&self) -> bool {
        self.refunds
            .iter()
            .any(|r| r.status == RefundStatus::Confirming)
            || self.status.awaits_confirmation()
            || (self.status.accepts_payment()
                && self
                    .transfers
                    .iter()
                    .any(|t| t.status == TransferStatus::Confirming))
    }

    /// The chain of the order's asset, once known.
    pub fn chain_id(&self) -> Option<ChainId> {
        self.fulfillment.asset.as_ref().map(|a| a.chain_id)
    }

    /// The id of the order's asset (`8453:0x…`), once known.
    pub fn currency_id(&self) -> Option<&str> {
        self.fulfillment.asset.as_ref().map(|a| a.id.as_str())
    }

    /// Builds the write of a status move to `to` (plus any other `change`): the move must be
    /// in the transition table, and the event of entering `to` is attached.
    pub fn transition(
        &self,
        now: Timestamp,
        to: OrderStatus,
        change: impl FnOnce(&mut PayOrder),
    ) -> Result<OrderUpdate, TransitionError> {
        let next = self.next_version(now, |o| {
            change(o);
            o.status = to;
            if to == OrderStatus::Expired && o.expired_at.is_none() {
                o.expired_at = Some(now);
            }
        });
        // The facts of the order as the change leaves it (a payment that arrives with the
        // change is what qualifies it).
        check_transition(self.status, to, next.facts())?;
        let events = to
            .event_type()
            .map(|t| Event::for_order(&next, t, now))
            .into_iter()
            .collect();
        Ok(OrderUpdate {
            order: next,
            expected_version: self.version,
            events,
            tx_claims: Vec::new(),
            idempotency: None,
        })
    }

    /// Builds the write of a change that keeps the status (a top-up, a fact). Moving the
    /// status this way is refused: that is what [`PayOrder::transition`] is for. The write
    /// carries no event unless one is added with [`OrderUpdate::with_event`].
    pub fn edit(
        &self,
        now: Timestamp,
        change: impl FnOnce(&mut PayOrder),
    ) -> Result<OrderUpdate, TransitionError> {
        let next = self.next_version(now, change);
        if next.status != self.status {
            return Err(TransitionError::NotAllowed {
                from: self.status,
                to: next.status,
            });
        }
        Ok(OrderUpdate {
            order: next,
            expected_version: self.version,
            events: Vec::new(),
            tx_claims: Vec::new(),
            idempotency: None,
        })
    }

    /// A copy with `change` applied and the bookkeeping (identity, version, times) kept
    /// out of the caller's hands.
    fn next_version(&self, now: Timestamp, change: impl FnOnce(&mut PayOrder)) -> PayOrder {
        let mut next = self.clone();
        change(&mut next);
        next.id = self.id.clone();
        next.organization_id = self.organization_id.clone();
        next.livemode = self.livemode;
        next.created_at = self.created_at;
        next.version = self.version + 1;
        next.updated_at = now;
        next
    }
}

/// The position under which an EVM transaction's native value is claimed (it has no log).
pub const NATIVE_VALUE_POSITION: u64 = u64::MAX;

/// Claim of one transfer: within one organization and mode, a transfer pays at most one
/// order, ever. The transfer is named by chain, transaction hash and its position inside
/// the transaction, which a reorg re-mining the transaction does not change (a log's
/// index in its block does). Claims of different organizations or modes never collide, so
/// no other tenant can block a transfer by submitting it first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxClaim {
    pub organization_id: OrgId,
    pub livemode: bool,
    pub chain_id: ChainId,
    /// Canonical text of the hash (lowercase hex for EVM, base58 for Solana).
    pub tx_hash: String,
    /// The transfer's position inside its transaction.
    pub position: u64,
    /// A refund transfer (out of the order's deposit address) rather than a payment: its
    /// claims live in their own namespace, so a transfer claimed as one is never taken for
    /// the other (each side also refuses a transfer the other side holds).
    #[serde(default)]
    pub refund: bool,
}

impl TxClaim {
    /// The claim of the transfer at `position` of `tx_hash` for `order`'s organization and mode.
    pub fn for_order(order: &PayOrder, chain_id: ChainId, tx_hash: &str, position: u64) -> Self {
        Self {
            organization_id: order.organization_id.clone(),
            livemode: order.livemode,
            chain_id,
            tx_hash: tx_hash.to_owned(),
            position,
            refund: false,
        }
    }

    /// The claim of the refund transfer at `position` of `tx_hash` for `order`'s
    /// organization and mode.
    pub fn for_refund(order: &PayOrder, chain_id: ChainId, tx_hash: &str, position: u64) -> Self {
        Self {
            refund: true,
            ..Self::for_order(order, chain_id, tx_hash, position)
        }
    }

    /// The same transfer claimed for the other purpose (payment ↔ refund).
    pub fn other_purpose(&self) -> Self {
        Self {
            refund: !self.refund,
            ..self.clone()
        }
    }

    /// The key under which the claim is stored: `org#mode#chain#hash#position`, and
    /// `…#refund-position` for a refund transfer.
    pub fn key(&self) -> String {
        format!(
            "{}#{}#{}#{}#{}{}",
            self.organization_id,
            super::KeyMode::of(self.livemode),
            self.chain_id,
            self.tx_hash,
            if self.refund { "refund-" } else { "" },
            self.position
        )
    }
}

/// A checked write of an existing order: the new state, the version it must replace, the
/// events of the change and any transfers it claims. Written atomically or not at all.
#[derive(Debug, Clone)]
pub struct OrderUpdate {
    order: PayOrder,
    expected_version: u64,
    /// The transition's event first, then any fact the change also announces.
    events: Vec<Event>,
    tx_claims: Vec<TxClaim>,
    /// The request's idempotency key, completed in the same transaction.
    idempotency: Option<IdempotencyCompletion>,
}

impl OrderUpdate {
    /// Completes the request's idempotency key in the same transaction as this change (see
    /// [`IdempotencyCompletion`]); `None` (no key) leaves the write as it was.
    pub fn completing(mut self, completion: Option<IdempotencyCompletion>) -> Self {
        self.idempotency = completion;
        self
    }

    pub fn idempotency(&self) -> Option<&IdempotencyCompletion> {
        self.idempotency.as_ref()
    }

    /// Adds an event to a write that does not change the status (e.g. a top-up); a write
    /// that already has its transition's event keeps just that.
    pub fn with_event(self, event_type: EventType) -> Self {
        if self.events.is_empty() {
            self.and_event(event_type)
        } else {
            self
        }
    }

    /// Adds an event beside the transition's (a fact the change also announces, such as
    /// `order.overpaid`), once per type.
    pub fn and_event(self, event_type: EventType) -> Self {
        self.with_event_about(event_type, None)
    }

    /// Adds `order.overpaid` when this write is the first to make the order overpaid
    /// (`before` is the order as read): announced beside the change, so the merchant can
    /// refund the excess.
    pub fn announcing_overpayment(self, before: &PayOrder) -> Self {
        if self.order.paid_over && !before.paid_over {
            self.and_event(EventType::OrderOverpaid)
        } else {
            self
        }
    }

    /// Adds an event about one of the order's refunds (`refund.created`,
    /// `refund.succeeded`), once per type and refund: two refunds that succeed in one
    /// write are two events.
    pub fn and_refund_event(self, event_type: EventType, refund: &super::RefundId) -> Self {
        self.with_event_about(event_type, Some(refund))
    }

    /// Adds an event of `event_type` (about `refund`, if given) unless the write has it.
    fn with_event_about(mut self, event_type: EventType, refund: Option<&super::RefundId>) -> Self {
        if !self
            .events
            .iter()
            .any(|e| e.event_type == event_type && e.refund_id.as_ref() == refund)
        {
            let mut event = Event::for_order(&self.order, event_type, self.order.updated_at);
            event.refund_id = refund.cloned();
            self.events.push(event);
        }
        self
    }

    /// Adds the claims of the transfers this write records.
    pub fn with_tx_claims(mut self, claims: impl IntoIterator<Item = TxClaim>) -> Self {
        self.tx_claims.extend(claims);
        self
    }

    pub fn with_tx_claim(mut self, claim: TxClaim) -> Self {
        self.tx_claims.push(claim);
        self
    }

    pub fn order(&self) -> &PayOrder {
        &self.order
    }

    pub fn expected_version(&self) -> u64 {
        self.expected_version
    }

    /// The first event: the transition's, or the one a status-keeping change announces.
    pub fn event(&self) -> Option<&Event> {
        self.events.first()
    }

    /// Every event the write records, in order.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    pub fn tx_claims(&self) -> &[TxClaim] {
        &self.tx_claims
    }
}

/// A new order and its `order.created` event.
#[derive(Debug, Clone)]
pub struct NewOrder {
    order: PayOrder,
    event: Event,
    /// The request's idempotency key, completed in the same transaction.
    idempotency: Option<IdempotencyCompletion>,
}

impl NewOrder {
    /// Refuses anything but a fresh PENDING order at version 1.
    pub fn new(order: PayOrder) -> Result<Self, TransitionError> {
        if order.status != OrderStatus::Pending || order.version != 1 {
            return Err(TransitionError::NotAllowed {
                from: OrderStatus::Pending,
                to: order.status,
            });
        }
        let event = Event::for_order(&order, EventType::OrderCreated, order.created_at);
        Ok(Self {
            order,
            event,
            idempotency: None,
        })
    }

    /// Completes the request's idempotency key in the same transaction as the order (see
    /// [`IdempotencyCompletion`]); `None` (no key) leaves the write as it was.
    pub fn completing(mut self, completion: Option<IdempotencyCompletion>) -> Self {
        self.idempotency = completion;
        self
    }

    pub fn idempotency(&self) -> Option<&IdempotencyCompletion> {
        self.idempotency.as_ref()
    }

    pub fn order(&self) -> &PayOrder {
        &self.order
    }

    pub fn event(&self) -> &Event {
        &self.event
    }
}

/// An order as the API shows it: `id` and `object` first, then its fields but the ones kept
/// for the store (`idempotency_key`, `check_round`), then `amount_refunded` once it has a
/// payment currency, then the `extra` entries the caller adds (links, an audit trail; none
/// may be named like a field). Written field by field to the output, never through a
/// `serde_json::Value`.
pub struct OrderView<'a> {
    order: &'a PayOrder,
    extra: Vec<(&'static str, serde_json::Value)>,
}

impl OrderView<'_> {
    /// Adds an entry after the others.
    pub fn push(&mut self, key: &'static str, value: serde_json::Value) {
        self.extra.push((key, value));
    }
}

impl Serialize for OrderView<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        super::view::record_fields(
            &mut map,
            &self.order.id,
            "pay_order",
            self.order,
            &["id", "idempotency_key", "check_round"],
        )?;
        if let Some(refunded) = self.order.amount_refunded() {
            map.serialize_entry("amount_refunded", &refunded)?;
        }
        for (key, value) in &self.extra {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::order as sample_order;

    #[test]
    fn the_api_view_puts_id_and_object_first_and_leaves_out_bookkeeping() {
        let mut o = sample_order(&OrgId::generate(), false, Timestamp::now());
        o.idempotency_key = Some("retry-1".into());
        o.check_round = 3;
        let stored = serde_json::to_value(&o).unwrap();
        // The entries the HTTP layer adds (links; get-order's audit trail).
        let extra = || {
            ["hosted_url", "payment_url", "qr_code_url", "audit_log"]
                .map(|k| (k, serde_json::json!(k)))
                .to_vec()
        };
        let text = serde_json::to_string(&o.view(extra())).unwrap();
        // Written straight out, it is the text the value path writes: the same keys in the
        // same order, none twice (a map keeps one of two equal keys, so it would differ).
        let through_value = serde_json::to_value(o.view(extra())).unwrap();
        assert_eq!(text, through_value.to_string());
        let read: serde_json::Value = serde_json::from_str(&text).unwrap();
        let keys: Vec<&str> = read
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        let mut want = vec!["id", "object"];
        want.extend(
            stored
                .as_object()
                .unwrap()
                .keys()
                .map(|k| k.as_str())
                .filter(|k| !["id", "idempotency_key", "check_round"].contains(k)),
        );
        want.extend(["hosted_url", "payment_url", "qr_code_url", "audit_log"]);
        assert_eq!(keys, want);
        assert_eq!(read["object"], "pay_order");
        assert_eq!(read["id"], stored["id"]);
        assert!(
            !text.contains("retry-1") && !text.contains("check_round"),
            "{text}"
        );
        // No payment currency yet: no refunded amount; the plain view has no extras.
        assert!(read.get("amount_refunded").is_none());
        let plain = o.api_view();
        assert_eq!(plain.as_object().unwrap().len(), keys.len() - 4);
    }

    #[test]
    fn transition_checks_the_table_and_attaches_the_event() {
        let now = Timestamp::now();
        let o = sample_order(&OrgId::generate(), false, now);
        let later = now.plus_seconds(5);
        let u = o
            .transition(later, OrderStatus::AwaitingPayment, |_| {})
            .unwrap();
        assert_eq!(u.expected_version(), 1);
        assert_eq!(u.order().version, 2);
        assert_eq!(u.order().updated_at, later);
        let ev = u.event().unwrap();
        assert_eq!(ev.event_type, EventType::OrderAwaitingPayment);
        assert_eq!(ev.data.object["status"], "AWAITING_PAYMENT");
        assert_eq!(ev.data.object["version"], 2);

        let err = o
            .transition(later, OrderStatus::Completed, |_| {})
            .unwrap_err();
        assert_eq!(
            err,
            TransitionError::NotAllowed {
                from: OrderStatus::Pending,
                to: OrderStatus::Completed
            }
        );
        // Staying put is not a transition either.
        assert!(o.transition(later, OrderStatus::Pending, |_| {}).is_err());
        // And `edit` cannot move the status behind the table's back.
        assert_eq!(
            o.edit(later, |o| o.status = OrderStatus::Completed)
                .unwrap_err(),
            TransitionError::NotAllowed {
                from: OrderStatus::Pending,
                to: OrderStatus::Completed
            }
        );
    }

    #[test]
    fn update_cannot_change_identity_and_plain_edits_carry_no_event() {
        let now = Timestamp::now();
        let o = sample_order(&OrgId::generate(), false, now);
        let u = o
            .edit(now, |o| {
                o.id = OrderId::generate();
                o.version = 99;
                o.livemode = true;
                o.metadata = Some(Default::default());
            })
            .unwrap();
        assert_eq!(u.order().id, o.id);
        assert_eq!(u.order().version, 2);
        assert!(!u.order().livemode);
        assert!(u.event().is_none());
        let u = u.with_event(EventType::OrderPartialPayment);
        assert_eq!(
            u.event().unwrap().event_type,
            EventType::OrderPartialPayment
        );
    }

    #[test]
    fn late_payments_are_watched_for_the_orders_own_window() {
        let now = Timestamp::now();
        let mut o = sample_order(&OrgId::generate(), false, now);
        // Orders made before the window was kept: the default 24 h.
        assert_eq!(o.late_payment_window, None);
        assert_eq!(
            o.watch_until(),
            o.expires_at.plus_seconds(LATE_PAYMENT_WINDOW_SECS)
        );
        o.late_payment_window = Some(600);
        assert_eq!(o.watch_until(), o.expires_at.plus_seconds(600));
        o.status = OrderStatus::Expired;
        assert!(o.accepts_payment(o.expires_at.plus_seconds(599)));
        assert!(!o.accepts_payment(o.expires_at.plus_seconds(600)));
        // No window: an expired order takes nothing more.
        o.late_payment_window = Some(0);
        assert!(!o.accepts_payment(o.expires_at));
    }

    #[test]
    fn new_order_must_be_fresh() {
        let now = Timestamp::now();
        let o = sample_order(&OrgId::generate(), true, now);
        let n = NewOrder::new(o.clone()).unwrap();
        assert_eq!(n.event().event_type, EventType::OrderCreated);
        assert!(n.event().livemode);
        let mut done = o.clone();
        done.status = OrderStatus::Completed;
        assert!(NewOrder::new(done).is_err());
        let mut v2 = o;
        v2.version = 2;
        assert!(NewOrder::new(v2).is_err());
    }
}
