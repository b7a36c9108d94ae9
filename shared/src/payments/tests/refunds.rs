//! Refunds attacked the way money gets lost: too much, twice at once, an old transfer, the
//! payment itself, someone else's transfer, the wrong token, address or sender, one
//! transfer for two refunds or for a refund and a payment, and reorgs.

use super::*;

/// Where the customer gets their money back.
const CUSTOMER: &str = "0x1111111111111111111111111111111111111111";

fn raw(n: u128) -> RawAmount {
    RawAmount::from_u128(n)
}

fn ask(amount: Option<u128>, address: Option<&str>) -> RefundRequest {
    RefundRequest {
        amount: amount.map(raw),
        address: address.map(str::to_owned),
        reason: "customer asked".into(),
    }
}

impl Rig {
    /// An order of 25 USDC to `SHOP` paid with `paid` (one transfer), confirmed to
    /// COMPLETED when `paid` covers it.
    async fn paid(&self, org: &OrgId, paid: u128) -> PayOrder {
        let o = self.waiting(org, SHOP, 25_000_000).await;
        let tx = self.chain.mine(11, 5, &[(USDC, SHOP, paid)]);
        self.pay(&o.id, &tx).await.unwrap();
        self.chain.set_head(40);
        self.check(&o.id).await;
        self.get(&o.id).await
    }

    /// Creates a refund (one versioned write); its id.
    async fn refund(&self, id: &OrderId, req: RefundRequest) -> Result<RefundId, RefundError> {
        let order = self.get(id).await;
        let (u, rid) = create_refund(&order, &req, Timestamp::now())?;
        self.s.store.update_order(&u).await.unwrap();
        Ok(rid)
    }

    /// A refund of `amount` to `CUSTOMER`, and its transfer from `SHOP` mined at `block`
    /// (not submitted yet).
    async fn refund_sent(&self, id: &OrderId, amount: u128, block: u64) -> (RefundId, TxHash) {
        let rid = self
            .refund(id, ask(Some(amount), Some(CUSTOMER)))
            .await
            .unwrap();
        let tx = self
            .chain
            .mine_from(block, 0, SHOP, &[(USDC, CUSTOMER, amount)]);
        (rid, tx)
    }

    /// A paid order of 25 USDC refunded whole, its refund's transaction mined at block 41
    /// and recorded.
    async fn refunded_whole(&self) -> (PayOrder, RefundId, TxHash) {
        let o = self.paid(&OrgId::generate(), 25_000_000).await;
        let (rid, tx) = self.refund_sent(&o.id, 25_000_000, 41).await;
        assert_eq!(self.send_refund(&o.id, &rid, &tx).await, "OK");
        (o, rid, tx)
    }

    /// [`Self::refunded_whole`], whose transaction a reorg then drops back to the mempool: a
    /// check has the refund wait for it.
    async fn refund_waiting_after_reorg(&self) -> (PayOrder, RefundId, TxHash) {
        let (o, rid, tx) = self.refunded_whole().await;
        self.chain.reorg(41, &[&tx], 42);
        self.chain.to_mempool(&tx);
        assert_eq!(self.check(&o.id).await, Progress::Waiting);
        (o, rid, tx)
    }

    /// The merchant cancels refund `rid` of the order as it is stored now.
    async fn cancel_refund(&self, id: &OrderId, rid: &RefundId) {
        let u = cancel_refund(&self.get(id).await, rid, Timestamp::now()).unwrap();
        self.s.store.update_order(&u).await.unwrap();
    }

    async fn send_refund(&self, id: &OrderId, rid: &RefundId, hash: &TxHash) -> &'static str {
        match record_refund(&self.s, id, rid, hash, Timestamp::now()).await {
            Ok(_) => "OK",
            Err(e) => e.code(),
        }
    }
}

#[test]
fn what_each_order_may_refund() {
    let org = OrgId::generate();
    let mut o = crate::testing::order(&org, false, Timestamp::now());
    o.payment = Some(crate::testing::payment(
        &format!("{CHAIN}:{}", USDC.to_lowercase()),
        1_000,
        SHOP,
    ));
    let transfer = |amount: u128, status: TransferStatus| {
        crate::testing::transfer(&format!("0x{amount}"), amount, 6, status)
    };
    o.transfers = vec![
        transfer(1_200, TransferStatus::Confirmed),
        // Reorged away: never refundable.
        transfer(5_000, TransferStatus::Reorged),
    ];
    let with = |status: OrderStatus, over: bool| {
        let mut o = o.clone();
        o.status = status;
        o.paid_over = over;
        refundable(&o)
    };
    for s in [
        OrderStatus::Completed,
        OrderStatus::Expired,
        OrderStatus::Cancelled,
        OrderStatus::PartialPayment,
    ] {
        assert_eq!(with(s, false), raw(1_200), "{s}");
    }
    // Still confirming: only the excess over the amount.
    assert_eq!(with(OrderStatus::AwaitingConfirmation, true), raw(200));
    assert_eq!(with(OrderStatus::AwaitingConfirmation, false), raw(0));
    for s in [
        OrderStatus::Pending,
        OrderStatus::AwaitingPayment,
        OrderStatus::Refunded,
        OrderStatus::Failed,
    ] {
        assert_eq!(with(s, false), raw(0), "{s}");
    }
    // Nothing received: nothing to refund, whatever the status.
    let mut none = o.clone();
    none.transfers.clear();
    none.status = OrderStatus::Completed;
    assert_eq!(
        create_refund(&none, &ask(None, Some(CUSTOMER)), Timestamp::now())
            .unwrap_err()
            .code(),
        "ORDER_NOT_REFUNDABLE"
    );
    // Paid through an exchange: the money is the provider's to return, from an address the
    // merchant cannot send from; a refund created anyway could never succeed and would
    // hold its amount for good.
    let mut routed = o.clone();
    routed.status = OrderStatus::Completed;
    routed.payment.as_mut().unwrap().exchange_id = Some("cn-1".into());
    assert!(matches!(
        create_refund(&routed, &ask(None, Some(CUSTOMER)), Timestamp::now()),
        Err(RefundError::Routed)
    ));
    // The same order paid directly is refundable.
    routed.payment.as_mut().unwrap().exchange_id = None;
    assert!(create_refund(&routed, &ask(None, Some(CUSTOMER)), Timestamp::now()).is_ok());
}

/// A cancelled refund holds nothing: what it held may be refunded again, and on an order
/// still taking payments it is due again. Only a pending refund is cancelled.
#[tokio::test]
async fn a_cancelled_refund_holds_nothing() {
    let r = rig();
    let org = OrgId::generate();
    let o = r.paid(&org, 25_000_000).await;
    let rid = r.refund(&o.id, ask(None, Some(CUSTOMER))).await.unwrap();
    let held = r.get(&o.id).await;
    assert_eq!(refundable(&held), raw(0));
    let u = cancel_refund(&held, &rid, Timestamp::now()).unwrap();
    assert_eq!(u.order().refunds[0].status, RefundStatus::Cancelled);
    assert_eq!(refundable(u.order()), raw(25_000_000));
    r.s.store.update_order(&u).await.unwrap();
    let again = r.get(&o.id).await;
    assert!(matches!(
        cancel_refund(&again, &rid, Timestamp::now()),
        Err(RefundError::NotCancellable(RefundStatus::Cancelled))
    ));
    // A refund whose transfer is recorded is not cancelled.
    let second = r.refund(&o.id, ask(None, Some(CUSTOMER))).await.unwrap();
    let tx = r
        .chain
        .mine_from(41, 0, SHOP, &[(USDC, CUSTOMER, 25_000_000)]);
    assert_eq!(r.send_refund(&o.id, &second, &tx).await, "OK");
    assert!(matches!(
        cancel_refund(&r.get(&o.id).await, &second, Timestamp::now()),
        Err(RefundError::NotCancellable(RefundStatus::Confirming))
    ));
}

/// Cancelling a refund of a partly paid order gives its amount back to the order: if that
/// covers what is due, the order is paid after all (AWAITING_CONFIRMATION, a new check
/// series, `order.overpaid` when it is over) and completes, instead of staying
/// PARTIAL_PAYMENT with nothing due and nothing to move it on.
#[tokio::test]
async fn cancelling_a_refund_can_pay_a_partly_paid_order() {
    let r = rig();
    let org = OrgId::generate();
    let o = r.paid(&org, 20_000_000).await;
    assert_eq!(o.status, OrderStatus::PartialPayment);
    let rid = r
        .refund(&o.id, ask(Some(10_000_000), Some(CUSTOMER)))
        .await
        .unwrap();
    // 20 arrived, 10 promised back: 15 due. The customer sends 10 more: 5 due.
    let more = r.chain.mine(41, 5, &[(USDC, SHOP, 10_000_000)]);
    r.pay(&o.id, &more).await.unwrap();
    let before = r.get(&o.id).await;
    assert_eq!(before.status, OrderStatus::PartialPayment);
    let u = cancel_refund(&before, &rid, Timestamp::now()).unwrap();
    assert_eq!(u.order().status, OrderStatus::AwaitingConfirmation);
    assert!(u.order().paid_over, "30 for 25");
    assert_ne!(u.order().check_round, before.check_round);
    let types: Vec<EventType> = u.events().iter().map(|e| e.event_type).collect();
    assert_eq!(
        types,
        [
            EventType::OrderPaymentDetected,
            EventType::OrderOverpaid,
            EventType::RefundCancelled
        ]
    );
    r.s.store.update_order(&u).await.unwrap();
    r.chain.set_head(90);
    r.check(&o.id).await;
    assert_eq!(r.get(&o.id).await.status, OrderStatus::Completed);
}

/// A refund made while the order was partly paid outlives the status: a top-up pays the
/// order, a reorg takes part of it back (AWAITING_PAYMENT), the upkeep may expire it. What
/// the refund held still counts again once it is cancelled, there too: the order is paid
/// (in time) and waits for confirmations, instead of waiting for money it has, or staying
/// EXPIRED with a stale amount due.
#[tokio::test]
async fn cancelling_a_refund_pays_an_order_a_reorg_sent_back_or_that_expired() {
    for expire in [false, true] {
        let r = rig();
        let org = OrgId::generate();
        let o = r.paid(&org, 15_000_000).await;
        let rid = r
            .refund(&o.id, ask(Some(10_000_000), Some(CUSTOMER)))
            .await
            .unwrap();
        assert_eq!(
            r.get(&o.id).await.payment.unwrap().remaining.unwrap().raw,
            RawAmount::from_u128(20_000_000)
        );
        let ten = r.chain.mine(41, 5, &[(USDC, SHOP, 10_000_000)]);
        r.pay(&o.id, &ten).await.unwrap();
        let rest = r.chain.mine(42, 5, &[(USDC, SHOP, 15_000_000)]);
        r.pay(&o.id, &rest).await.unwrap();
        assert_eq!(r.get(&o.id).await.status, OrderStatus::AwaitingConfirmation);
        // A reorg takes the last transfer away for good: 25 arrived, 10 held, 10 due.
        r.chain.reorg(42, &[], 42);
        r.check(&o.id).await;
        let back = r.get(&o.id).await;
        assert_eq!(back.status, OrderStatus::AwaitingPayment);
        let due = |o: &PayOrder| o.payment.as_ref().unwrap().remaining.clone();
        assert_eq!(due(&back).unwrap().raw, RawAmount::from_u128(10_000_000));
        if expire {
            let later = back.expires_at.plus_seconds(60);
            expire_orders(&*r.s.store, later, 10).await.unwrap();
            assert_eq!(r.get(&o.id).await.status, OrderStatus::Expired);
        }
        // The refund is cancelled: the 25 that arrived, all mined in time, pay the order.
        let before = r.get(&o.id).await;
        let u = cancel_refund(&before, &rid, Timestamp::now()).unwrap();
        assert_eq!(
            u.order().status,
            OrderStatus::AwaitingConfirmation,
            "expired: {expire}"
        );
        assert_eq!(due(u.order()), None);
        assert_ne!(u.order().check_round, before.check_round);
        r.s.store.update_order(&u).await.unwrap();
        r.chain.set_head(90);
        r.check(&o.id).await;
        assert_eq!(r.get(&o.id).await.status, OrderStatus::Completed);
    }
}

/// A refund of a cancelled order paid late asks nobody for money: the order's amount due
/// stays as it was, so the deposit scan does not take it for an order still owed an exact
/// amount and hand it the next payer's transfer of that amount.
#[tokio::test]
async fn a_refund_of_a_cancelled_order_leaves_nothing_due_on_it() {
    let r = rig();
    let org = OrgId::generate();
    let cancelled = r.waiting(&org, SHOP, 25_000_000).await;
    r.cancel(&cancelled.id).await;
    let late = r.chain.mine(11, 5, &[(USDC, SHOP, 25_000_000)]);
    r.pay(&cancelled.id, &late).await.unwrap();
    r.chain.set_head(40);
    r.check(&cancelled.id).await;
    r.refund(&cancelled.id, ask(None, Some(CUSTOMER)))
        .await
        .unwrap();
    let refunded = r.get(&cancelled.id).await;
    assert_eq!(refunded.payment.as_ref().unwrap().still_due(), None);
    // Another order for the same amount at the shared address: the scan gives it its payer's
    // transfer.
    let next = r.waiting(&org, SHOP, 25_000_000).await;
    let paid = r.chain.mine(41, 5, &[(USDC, SHOP, 25_000_000)]);
    let chain = ChainId::new(CHAIN).unwrap();
    scan_chain(&r.s, chain, Timestamp::now()).await.unwrap();
    let got = r.get(&next.id).await;
    assert_eq!(got.status, OrderStatus::AwaitingConfirmation);
    assert_eq!(got.transfers[0].tx_hash, paid.to_string());
    assert_eq!(r.get(&cancelled.id).await.transfers.len(), 1);
}

/// A cancel's write and the check it queues are two steps: a process killed between them
/// leaves the order paid after all (AWAITING_CONFIRMATION) with no check queued. The
/// upkeep queues one once the order is stale, and the order still completes.
#[tokio::test]
async fn a_cancel_killed_before_its_check_is_queued_still_completes() {
    let r = rig();
    let org = OrgId::generate();
    let o = r.paid(&org, 20_000_000).await;
    let rid = r
        .refund(&o.id, ask(Some(5_000_000), Some(CUSTOMER)))
        .await
        .unwrap();
    // 20 arrived, 5 promised back, 5 more: still 5 short until the refund is withdrawn.
    let more = r.chain.mine(41, 5, &[(USDC, SHOP, 5_000_000)]);
    r.pay(&o.id, &more).await.unwrap();
    assert_eq!(r.get(&o.id).await.status, OrderStatus::PartialPayment);
    r.sent.0.lock().unwrap().clear();
    // The cancel's write, and nothing after it.
    r.cancel_refund(&o.id, &rid).await;
    assert_eq!(r.get(&o.id).await.status, OrderStatus::AwaitingConfirmation);
    assert!(r.sent.0.lock().unwrap().is_empty());
    assert_eq!(r.requeue_at(Timestamp::now().plus_seconds(3_600)).await, 1);
    let msg = r.last_queued();
    assert_eq!(msg.order_id, o.id);
    r.chain.set_head(90);
    assert_eq!(r.check_in(&o.id, msg.round).await, Progress::Settled);
    assert_eq!(r.get(&o.id).await.status, OrderStatus::Completed);
}

/// A refund transfer's transaction is held to what a payment's is: zero-value transfers
/// count for nothing (however many), and more than MAX_PAYING_TRANSFERS real ones are
/// refused, since each is claimed twice in the one write that records them (a DynamoDB
/// transaction holds 100 items: past that, the refund could never be recorded).
#[tokio::test]
async fn a_refund_transaction_of_many_or_empty_transfers_is_held_to_a_payment_s_limits() {
    let r = rig();
    let org = OrgId::generate();
    let o = r.paid(&org, 25_000_000).await;
    let rid = r
        .refund(&o.id, ask(Some(10_000_000), Some(CUSTOMER)))
        .await
        .unwrap();
    let zeros = vec![(USDC, CUSTOMER, 0u128); 60];
    let empty = r.chain.mine_from(41, 0, SHOP, &zeros);
    assert_eq!(r.send_refund(&o.id, &rid, &empty).await, "WRONG_RECIPIENT");
    let split = vec![(USDC, CUSTOMER, 10_000_000u128 / 40); 40];
    let many = r.chain.mine_from(42, 0, SHOP, &split);
    assert_eq!(
        r.send_refund(&o.id, &rid, &many).await,
        "TOO_MANY_TRANSFERS"
    );
    let mut one_and_dust = vec![(USDC, CUSTOMER, 0u128); 60];
    one_and_dust.push((USDC, CUSTOMER, 10_000_000));
    let good = r.chain.mine_from(43, 0, SHOP, &one_and_dust);
    assert_eq!(r.send_refund(&o.id, &rid, &good).await, "OK");
    let back = r.get(&o.id).await;
    assert_eq!(back.refunds[0].status, RefundStatus::Confirming);
}

/// A refund cancelled after its transfer was sent is taken up again when that transfer is
/// submitted, while what it held is still free; once refunded otherwise, it is not.
#[tokio::test]
async fn a_cancelled_refund_is_reinstated_by_its_own_transfer() {
    let r = rig();
    let org = OrgId::generate();
    let o = r.paid(&org, 25_000_000).await;
    let (rid, sent) = r.refund_sent(&o.id, 10_000_000, 41).await;
    r.cancel_refund(&o.id, &rid).await;
    assert_eq!(r.send_refund(&o.id, &rid, &sent).await, "OK");
    let back = r.get(&o.id).await;
    assert_eq!(back.refunds[0].status, RefundStatus::Confirming);
    assert!(back.refunds[0].cancelled_at.is_none());
    assert_eq!(refundable(&back), raw(15_000_000), "it holds its 10 again");

    // Cancelled, then everything refunded by another refund: nothing left to take it up.
    let o2 = r.paid(&org, 25_000_000).await;
    let (first, late) = r.refund_sent(&o2.id, 10_000_000, 42).await;
    r.cancel_refund(&o2.id, &first).await;
    r.refund(&o2.id, ask(None, Some(CUSTOMER))).await.unwrap();
    assert_eq!(
        r.send_refund(&o2.id, &first, &late).await,
        "REFUND_NOT_PENDING"
    );
}

/// Many refunds final at once succeed a bounded number per write (each is an event, an
/// item of the write): the rest at the next check.
#[tokio::test]
async fn refunds_succeed_a_bounded_number_per_write() {
    let r = rig();
    let org = OrgId::generate();
    let o = r.paid(&org, 25_000_000).await;
    let n = SUCCEEDED_PER_WRITE + 1;
    for i in 0..n {
        let (rid, tx) = r.refund_sent(&o.id, 1_000_000, 41 + i as u64).await;
        assert_eq!(r.send_refund(&o.id, &rid, &tx).await, "OK");
    }
    r.chain.set_head(200);
    let succeeded = |o: &PayOrder| {
        o.refunds
            .iter()
            .filter(|x| x.status == RefundStatus::Succeeded)
            .count()
    };
    r.check(&o.id).await;
    assert_eq!(succeeded(&r.get(&o.id).await), SUCCEEDED_PER_WRITE);
    r.check(&o.id).await;
    assert_eq!(succeeded(&r.get(&o.id).await), n);
}

/// A COMPLETED order of a new organization paid 1,000 base units of USDC, confirmed.
fn completed_with_1_000() -> PayOrder {
    let org = OrgId::generate();
    let mut o = crate::testing::order(&org, false, Timestamp::now());
    let mut p = crate::testing::payment(&format!("{CHAIN}:{}", USDC.to_lowercase()), 1_000, SHOP);
    p.received = Some(Amount::new(raw(1_000), 6));
    o.payment = Some(p);
    o.status = OrderStatus::Completed;
    o.transfers = vec![crate::testing::transfer(
        "0x1",
        1_000,
        6,
        TransferStatus::Confirmed,
    )];
    o
}

/// An order keeps at most MAX_ORDER_REFUNDS refunds, cancelled ones included: created and
/// cancelled without end (each with a long reason), they would grow the order past what one
/// write can hold, and the deposit scan of its chain would fail on it at every run.
#[test]
fn an_order_keeps_a_bounded_number_of_refunds_cancelled_ones_included() {
    use crate::payments::refunds::{MAX_ORDER_REFUNDS, cancel_refund};
    let mut o = completed_with_1_000();
    let now = Timestamp::now();
    for i in 0..MAX_ORDER_REFUNDS {
        // Reasons as long as they may be, and unlike each other (deflate gains little).
        let mut r = ask(Some(1), Some(CUSTOMER));
        r.reason = (0..500)
            .map(|j| char::from_u32(0x4E00 + ((i * 7919 + j * 104_729) % 20_000) as u32).unwrap())
            .collect();
        let (u, id) = create_refund(&o, &r, now).unwrap();
        o = cancel_refund(u.order(), &id, now).unwrap().order().clone();
    }
    let refused = create_refund(&o, &ask(Some(1), Some(CUSTOMER)), now).unwrap_err();
    assert_eq!(refused.code(), "TOO_MANY_REFUNDS");
    // What they keep stays well within one DynamoDB item (400 KB) once packed.
    let packed = crate::store::packed::pack(&serde_json::to_vec(&o).unwrap());
    assert!(packed.len() < 200_000, "{} bytes", packed.len());
}

#[test]
fn a_refund_never_exceeds_what_is_left_and_needs_an_address() {
    let o = completed_with_1_000();
    let now = Timestamp::now();
    let code = |o: &PayOrder, r: RefundRequest| create_refund(o, &r, now).unwrap_err().code();
    assert_eq!(
        code(&o, ask(Some(1_001), Some(CUSTOMER))),
        "REFUND_EXCEEDS_RECEIVED"
    );
    assert_eq!(code(&o, ask(Some(0), Some(CUSTOMER))), "INVALID_AMOUNT");
    assert_eq!(code(&o, ask(None, None)), "REFUND_ADDRESS_REQUIRED");
    assert_eq!(code(&o, ask(None, Some("0x12"))), "INVALID_ADDRESS");
    // Back to the deposit address would look like a payment: refused.
    assert_eq!(
        code(&o, ask(None, Some(&SHOP.to_lowercase()))),
        "INVALID_ADDRESS"
    );

    // 400 now: pending, it holds its amount.
    let (u, id) = create_refund(&o, &ask(Some(400), Some(CUSTOMER)), now).unwrap();
    let after = u.order();
    assert_eq!(u.event().unwrap().event_type, EventType::RefundCreated);
    assert_eq!(after.status, OrderStatus::Completed);
    let r = &after.refunds[0];
    assert_eq!((r.id.clone(), r.status), (id, RefundStatus::Pending));
    assert_eq!(r.instructions.from, SHOP);
    assert_eq!(r.instructions.to, CUSTOMER);
    assert_eq!(
        r.instructions.token.as_deref().map(str::to_lowercase),
        Some(USDC.to_lowercase())
    );
    assert_eq!(r.instructions.amount.raw, raw(400));
    assert_eq!(refundable(after), raw(600));
    assert_eq!(
        code(after, ask(Some(601), Some(CUSTOMER))),
        "REFUND_EXCEEDS_RECEIVED"
    );
    // Without an amount: all that is left, to the payment's refund address.
    let mut with_address = after.clone();
    with_address.payment.as_mut().unwrap().refund = Some(Refund {
        address: CUSTOMER.into(),
    });
    let (u, _) = create_refund(&with_address, &ask(None, None), now).unwrap();
    assert_eq!(u.order().refunds[1].amount.raw, raw(600));
    assert_eq!(u.order().refunds[1].address, CUSTOMER);
    assert_eq!(
        code(u.order(), ask(None, Some(CUSTOMER))),
        "REFUND_EXCEEDS_RECEIVED"
    );
    // Nothing succeeded yet: nothing shows as refunded.
    assert_eq!(u.order().amount_refunded().unwrap().raw, raw(0));
    assert_eq!(u.order().api_view()["amount_refunded"]["raw"], "0");
}

#[tokio::test]
async fn two_refunds_created_at_once_never_exceed_what_was_received() {
    let r = rig();
    let org = OrgId::generate();
    let o = r.paid(&org, 25_000_000).await;
    assert_eq!(o.status, OrderStatus::Completed);
    // Both built from the same version: 15 + 15 > 25. The second write loses its version.
    let now = Timestamp::now();
    let (a, _) = create_refund(&o, &ask(Some(15_000_000), Some(CUSTOMER)), now).unwrap();
    let (b, _) = create_refund(&o, &ask(Some(15_000_000), Some(CUSTOMER)), now).unwrap();
    let (ra, rb) = tokio::join!(r.s.store.update_order(&a), r.s.store.update_order(&b));
    assert_eq!(
        [ra.is_ok(), rb.is_ok()].iter().filter(|ok| **ok).count(),
        1,
        "{ra:?} {rb:?}"
    );
    // Retried on the new version, it is refused.
    assert_eq!(
        r.refund(&o.id, ask(Some(15_000_000), Some(CUSTOMER)))
            .await
            .unwrap_err()
            .code(),
        "REFUND_EXCEEDS_RECEIVED"
    );
    let now = r.get(&o.id).await;
    assert_eq!(now.refunds.len(), 1);
    assert_eq!(refundable(&now), raw(10_000_000));
}

#[tokio::test]
async fn only_confirmed_money_is_refunded() {
    let r = rig();
    let org = OrgId::generate();
    // 10 of 25 USDC paid, not final yet: the customer asks for it back at once.
    let o = r.waiting(&org, SHOP, 25_000_000).await;
    let tx = r.chain.mine(11, 5, &[(USDC, SHOP, 10_000_000)]);
    r.pay(&o.id, &tx).await.unwrap();
    let partial = r.get(&o.id).await;
    assert_eq!(partial.status, OrderStatus::PartialPayment);
    assert_eq!(refundable(&partial), raw(0));
    // Its confirmations are followed: a check was queued in its series.
    let queued = r.sent.0.lock().unwrap().last().cloned().unwrap();
    assert_eq!(
        (queued.order_id, queued.round),
        (o.id.clone(), Some(partial.check_round))
    );
    assert_eq!(
        r.refund(&o.id, ask(None, Some(CUSTOMER)))
            .await
            .unwrap_err()
            .code(),
        "ORDER_NOT_REFUNDABLE"
    );
    // A reorg takes it away before it is final: nothing was promised back, nothing lost.
    r.chain.reorg(11, &[], 11);
    r.check(&o.id).await;
    let gone = r.get(&o.id).await;
    assert_eq!(gone.transfers[0].status, TransferStatus::Reorged);
    assert_eq!(refundable(&gone), raw(0));
    // Paid again and followed to final (a partial payment is checked too): refundable.
    let again = r.chain.mine(12, 5, &[(USDC, SHOP, 10_000_000)]);
    r.pay(&o.id, &again).await.unwrap();
    r.chain.set_head(40);
    r.check(&o.id).await;
    let final_ = r.get(&o.id).await;
    assert_eq!(final_.status, OrderStatus::PartialPayment);
    assert_eq!(refundable(&final_), raw(10_000_000));
    r.refund(&o.id, ask(None, Some(CUSTOMER))).await.unwrap();
}

#[tokio::test]
async fn a_refunded_partial_payment_no_longer_counts_toward_the_amount() {
    let r = rig();
    let org = OrgId::generate();
    // 10 of 25 USDC paid; the customer asks for them back and the merchant refunds them.
    let o = r.paid(&org, 10_000_000).await;
    assert_eq!(o.status, OrderStatus::PartialPayment);
    let rid = r.refund(&o.id, ask(None, Some(CUSTOMER))).await.unwrap();
    // All 25 are due again, and the order says so at once.
    let due = r.get(&o.id).await;
    let remaining = |o: &PayOrder| o.payment.as_ref().unwrap().remaining.as_ref().unwrap().raw;
    assert_eq!(remaining(&due), raw(25_000_000));
    let back = r
        .chain
        .mine_from(41, 5, SHOP, &[(USDC, CUSTOMER, 10_000_000)]);
    assert_eq!(r.send_refund(&o.id, &rid, &back).await, "OK");
    // The customer then sends the 15 that were "remaining" before the refund: that pays
    // 15 of 25, not the order.
    let rest = r.chain.mine(42, 5, &[(USDC, SHOP, 15_000_000)]);
    let rec = r.pay(&o.id, &rest).await.unwrap();
    assert_eq!(rec.order.status, OrderStatus::PartialPayment);
    assert_eq!(remaining(&rec.order), raw(10_000_000));
    // What arrived is still shown as arrived.
    assert_eq!(received(&rec.order), raw(25_000_000));
    // The last 10 complete it: 35 arrived, 10 went back, 25 kept.
    let last = r.chain.mine(43, 5, &[(USDC, SHOP, 10_000_000)]);
    let rec = r.pay(&o.id, &last).await.unwrap();
    assert_eq!(rec.order.status, OrderStatus::AwaitingConfirmation);
    assert!(rec.order.payment.as_ref().unwrap().remaining.is_none());
    assert!(
        !rec.order.paid_over,
        "35 arrived against 25, but 10 went back"
    );
}

/// Two refunds whose transfers become final in the same check are two `refund.succeeded`
/// events, each naming its refund (as `refund.created` does): a merchant handling refunds
/// per event misses none.
#[tokio::test]
async fn refunds_final_in_one_check_are_an_event_each() {
    let r = rig();
    let org = OrgId::generate();
    let o = r.paid(&org, 25_000_000).await;
    let mut ids = Vec::new();
    for (block, amount) in [(41, 10_000_000), (42, 15_000_000)] {
        let (id, tx) = r.refund_sent(&o.id, amount, block).await;
        assert_eq!(r.send_refund(&o.id, &id, &tx).await, "OK");
        ids.push(id);
    }
    r.chain.set_head(120);
    r.check(&o.id).await;
    assert_eq!(r.get(&o.id).await.status, OrderStatus::Refunded);
    let events = r.events(&org).await;
    let about = |t: EventType| -> Vec<Option<RefundId>> {
        let mut v: Vec<_> = events
            .iter()
            .filter(|e| e.event_type == t)
            .map(|e| e.refund_id.clone())
            .collect();
        v.sort_by_key(|id| id.as_ref().map(|i| i.to_string()));
        v
    };
    let mut want: Vec<Option<RefundId>> = ids.iter().cloned().map(Some).collect();
    want.sort_by_key(|id| id.as_ref().map(|i| i.to_string()));
    assert_eq!(about(EventType::RefundCreated), want);
    assert_eq!(about(EventType::RefundSucceeded), want);
    // The order's own events name no refund.
    assert!(
        events
            .iter()
            .filter(|e| e.event_type == EventType::OrderRefunded)
            .all(|e| e.refund_id.is_none())
    );
}

#[tokio::test]
async fn partial_then_full_refund_confirmed_to_refunded() {
    let r = rig();
    let org = OrgId::generate();
    let o = r.paid(&org, 25_000_000).await;
    let (first, tx) = r.refund_sent(&o.id, 10_000_000, 41).await;
    assert_eq!(r.send_refund(&o.id, &first, &tx).await, "OK");
    // The same transfer for the same refund again: nothing changes.
    let v = r.get(&o.id).await.version;
    assert_eq!(r.send_refund(&o.id, &first, &tx).await, "OK");
    assert_eq!(r.get(&o.id).await.version, v);
    let confirming = r.get(&o.id).await;
    assert_eq!(confirming.refunds[0].status, RefundStatus::Confirming);
    assert!(confirming.awaits_check());
    // A check is queued in the order's live series.
    let last = r.sent.0.lock().unwrap().last().cloned().unwrap();
    assert_eq!(last.round, Some(confirming.check_round));

    r.chain.set_head(80);
    assert_eq!(r.check(&o.id).await, Progress::Settled);
    let partly = r.get(&o.id).await;
    assert_eq!(partly.refunds[0].status, RefundStatus::Succeeded);
    assert_eq!(partly.status, OrderStatus::Completed);
    assert_eq!(partly.amount_refunded().unwrap().raw, raw(10_000_000));

    let rest = r.refund(&o.id, ask(None, Some(CUSTOMER))).await.unwrap();
    let tx2 = r
        .chain
        .mine_from(81, 0, SHOP, &[(USDC, CUSTOMER, 15_000_000)]);
    assert_eq!(r.send_refund(&o.id, &rest, &tx2).await, "OK");
    r.chain.set_head(120);
    assert_eq!(r.check(&o.id).await, Progress::Settled);
    let done = r.get(&o.id).await;
    assert_eq!(done.status, OrderStatus::Refunded);
    assert_eq!(done.amount_refunded().unwrap().raw, raw(25_000_000));
    let types: Vec<EventType> = r.events(&org).await.iter().map(|e| e.event_type).collect();
    assert!(types.contains(&EventType::OrderRefunded), "{types:?}");
    assert_eq!(
        types
            .iter()
            .filter(|t| **t == EventType::RefundSucceeded)
            .count(),
        2
    );
    assert_eq!(
        types
            .iter()
            .filter(|t| **t == EventType::RefundCreated)
            .count(),
        2
    );
    // Nothing is left to refund.
    assert_eq!(
        r.refund(&o.id, ask(None, Some(CUSTOMER)))
            .await
            .unwrap_err()
            .code(),
        "ORDER_NOT_REFUNDABLE"
    );
}

#[tokio::test]
async fn refund_transfers_that_are_not_this_refund_are_refused() {
    let r = rig();
    let org = OrgId::generate();
    let o = r.paid(&org, 25_000_000).await;
    let payment_tx = TxHash::parse(ChainFamily::Evm, &o.transfers[0].tx_hash).unwrap();
    // A transfer from the deposit address to the customer sent before the refund exists.
    let early = r
        .chain
        .mine_from(41, 60, SHOP, &[(USDC, CUSTOMER, 10_000_000)]);
    let rid = r
        .refund(&o.id, ask(Some(10_000_000), Some(CUSTOMER)))
        .await
        .unwrap();
    let cases = [
        // The payment itself.
        (payment_tx, "TX_ALREADY_USED"),
        (early, "TX_BEFORE_REFUND"),
        (
            r.chain.mine_from(42, 0, SHOP, &[(USDC, OTHER, 10_000_000)]),
            "WRONG_RECIPIENT",
        ),
        (
            r.chain
                .mine_from(42, 0, SHOP, &[(OTHER, CUSTOMER, 10_000_000)]),
            "WRONG_TOKEN",
        ),
        (
            r.chain
                .mine_from(42, 0, SHOP, &[(USDC, CUSTOMER, 9_999_999)]),
            "REFUND_TX_TOO_SMALL",
        ),
        // Someone else paid the customer: not the merchant's refund.
        (
            r.chain
                .mine_from(42, 0, OTHER, &[(USDC, CUSTOMER, 10_000_000)]),
            "WRONG_SENDER",
        ),
    ];
    for (tx, want) in cases {
        assert_eq!(r.send_refund(&o.id, &rid, &tx).await, want, "{tx}");
    }
    assert_eq!(r.get(&o.id).await.refunds[0].status, RefundStatus::Pending);
    // An unknown refund id.
    let good = r
        .chain
        .mine_from(43, 0, SHOP, &[(USDC, CUSTOMER, 12_000_000)]);
    assert_eq!(
        r.send_refund(&o.id, &RefundId::generate(), &good).await,
        "RESOURCE_NOT_FOUND"
    );
    // More than due is accepted; the same transfer for a second refund is not.
    assert_eq!(r.send_refund(&o.id, &rid, &good).await, "OK");
    let second = r
        .refund(&o.id, ask(Some(1_000_000), Some(CUSTOMER)))
        .await
        .unwrap();
    assert_eq!(
        r.send_refund(&o.id, &second, &good).await,
        "TX_ALREADY_USED"
    );
    // Nor for a refund of another order of the organization.
    let other = r.paid(&org, 25_000_000).await;
    let theirs = r
        .refund(&other.id, ask(Some(1_000_000), Some(CUSTOMER)))
        .await
        .unwrap();
    assert_eq!(
        r.send_refund(&other.id, &theirs, &good).await,
        "TX_ALREADY_USED"
    );
    // A refund transfer never pays an order whose deposit address is the refund address.
    let at_customer = r.waiting(&org, CUSTOMER, 12_000_000).await;
    assert_eq!(code(r.pay(&at_customer.id, &good).await), "TX_ALREADY_USED");
    // And a payment transfer is never a refund (claimed for the payment first).
    let pays = r.waiting(&org, CUSTOMER, 5_000_000).await;
    let paid_tx = r
        .chain
        .mine_from(44, 0, SHOP, &[(USDC, CUSTOMER, 5_000_000)]);
    assert_eq!(code(r.pay(&pays.id, &paid_tx).await), "OK");
    let third = r
        .refund(&o.id, ask(Some(1_000_000), Some(CUSTOMER)))
        .await
        .unwrap();
    assert_eq!(
        r.send_refund(&o.id, &third, &paid_tx).await,
        "TX_ALREADY_USED"
    );
}

/// A reorg that takes a refund's transaction out of its block leaves the transaction valid,
/// and it is usually mined again soon: the refund waits for it (`confirming`, its transfer
/// shown `reorged`), whether the node shows it waiting in the mempool or not at all, and
/// follows it once it is mined again. Sent back to `pending` at once, as it was, the
/// merchant would send the money a second time while the first transaction is mined.
#[tokio::test]
async fn a_refund_transfer_a_reorg_drops_is_waited_for_not_sent_back() {
    let r = rig();
    let (o, _, tx) = r.refunded_whole().await;
    // The reorg drops it; the node answering does not know it.
    r.chain.reorg(41, &[&tx], 42);
    r.chain.hide(&tx);
    assert_eq!(r.check(&o.id).await, Progress::Waiting);
    let waiting = r.get(&o.id).await;
    let refund = &waiting.refunds[0];
    assert_eq!(refund.status, RefundStatus::Confirming);
    let t = refund.transfer.as_ref().unwrap();
    assert_eq!(t.tx_hash, tx.to_string());
    assert!(t.reorged_at.is_some());
    assert_eq!(t.confirmations, 0);
    let shown = crate::transactions::refund_view(&waiting, refund, t);
    assert_eq!(shown["status"], "reorged");
    assert_eq!(waiting.status, OrderStatus::Completed);
    // What it holds stays held: no second refund of that money meanwhile.
    assert!(matches!(
        r.refund(&o.id, ask(Some(1_000_000), Some(CUSTOMER))).await,
        Err(RefundError::Exceeds { .. })
    ));
    // Back in the mempool, shown pending: still waited for, from the same time.
    r.chain.show_all();
    r.chain.to_mempool(&tx);
    assert_eq!(r.check(&o.id).await, Progress::Waiting);
    let still = r.get(&o.id).await;
    assert_eq!(still.refunds[0].status, RefundStatus::Confirming);
    assert_eq!(
        still.refunds[0].transfer.as_ref().unwrap().reorged_at,
        t.reorged_at
    );
    // Mined again: followed to its new block, and final.
    r.chain.mine_again(&tx, 44);
    r.check(&o.id).await;
    let back = r.get(&o.id).await;
    let t = back.refunds[0].transfer.as_ref().unwrap();
    assert_eq!((t.block_number, t.reorged_at), (44, None));
    r.chain.set_head(90);
    r.check(&o.id).await;
    let done = r.get(&o.id).await;
    assert_eq!(done.refunds[0].status, RefundStatus::Succeeded);
    assert_eq!(done.status, OrderStatus::Refunded);
}

/// A reorged refund transaction no node has shown for [`REFUND_DROPPED_AFTER_SECS`] is taken
/// for dropped: the refund is pending again, to be sent and submitted again. Meanwhile a
/// replacement (the merchant's wallet sent the same nonce again) is taken as its transfer.
#[tokio::test]
async fn a_refund_transfer_dropped_for_good_is_sent_again_or_replaced() {
    for replace in [false, true] {
        let r = rig();
        let (o, rid, _) = r.refunded_whole().await;
        let original = r.get(&o.id).await.refunds[0].transfer.clone().unwrap();
        r.chain.reorg(41, &[], 42);
        let now = Timestamp::now();
        let round = Some(r.get(&o.id).await.check_round);
        let at = |secs: i64| now.plus_seconds(secs);
        advance(&r.s, None, &o.id, round, at(0)).await.unwrap();
        // A second before the time is up it still waits.
        advance(&r.s, None, &o.id, round, at(REFUND_DROPPED_AFTER_SECS - 1))
            .await
            .unwrap();
        assert_eq!(
            r.get(&o.id).await.refunds[0].status,
            RefundStatus::Confirming
        );
        let again = r
            .chain
            .mine_from(43, 0, SHOP, &[(USDC, CUSTOMER, 25_000_000)]);
        if replace {
            r.chain.spend_nonce_of(&again, &original);
            assert_eq!(r.send_refund(&o.id, &rid, &again).await, "OK");
            let t = r.get(&o.id).await.refunds[0].transfer.clone().unwrap();
            assert_eq!((t.tx_hash, t.reorged_at), (again.to_string(), None));
        } else {
            advance(&r.s, None, &o.id, round, at(REFUND_DROPPED_AFTER_SECS))
                .await
                .unwrap();
            let back = r.get(&o.id).await;
            assert_eq!(back.refunds[0].status, RefundStatus::Pending);
            assert!(back.refunds[0].transfer.is_none());
            assert_eq!(back.status, OrderStatus::Completed);
            assert_eq!(r.send_refund(&o.id, &rid, &again).await, "OK");
        }
        r.chain.set_head(90);
        r.check(&o.id).await;
        assert_eq!(
            r.get(&o.id).await.status,
            OrderStatus::Refunded,
            "{replace}"
        );
    }
}

/// While a refund waits for a transaction a reorg took out of its block, that transaction can
/// still be mined. A transaction spending another nonce offered in its place could be mined
/// beside it, and the customer refunded twice with one refund recorded: it is refused
/// (`REFUND_TX_NOT_A_REPLACEMENT`, naming the nonce to spend), and the refund goes on
/// waiting for the first. One spending the same nonce (a wallet's speed-up or cancel) takes
/// its place; whichever of the two is mined, only one can be.
#[tokio::test]
async fn a_waiting_refund_takes_in_its_transactions_place_only_one_spending_its_nonce() {
    let r = rig();
    let (o, rid, tx) = r.refund_waiting_after_reorg().await;
    let recorded = r.get(&o.id).await.refunds[0].transfer.clone().unwrap();
    let nonce = recorded
        .sender_nonce
        .clone()
        .expect("an EVM transfer's nonce is kept");
    assert_eq!(nonce.sender, SHOP);
    // Another transaction of the whole refund, with the shop's next nonce: refused.
    let second = r
        .chain
        .mine_from(43, 0, SHOP, &[(USDC, CUSTOMER, 25_000_000)]);
    let refused = crate::payments::record_refund(&r.s, &o.id, &rid, &second, Timestamp::now())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), "REFUND_TX_NOT_A_REPLACEMENT");
    let message = refused.to_string();
    assert!(
        message.contains(&tx.to_string())
            && message.contains(&format!("nonce ({} of {SHOP})", nonce.nonce)),
        "{message}"
    );
    let still = r.get(&o.id).await.refunds[0].clone();
    assert_eq!(still.status, RefundStatus::Confirming);
    assert_eq!(still.transfer.as_ref().unwrap().tx_hash, tx.to_string());
    // The first is mined again after all: followed, and the refund succeeds once.
    r.chain.mine_again(&tx, 44);
    r.check(&o.id).await;
    r.chain.set_head(90);
    r.check(&o.id).await;
    let done = r.get(&o.id).await;
    assert_eq!(done.refunds[0].status, RefundStatus::Succeeded);
    assert_eq!(
        done.refunds[0].transfer.as_ref().unwrap().tx_hash,
        tx.to_string()
    );
    assert_eq!(done.status, OrderStatus::Refunded);

    // Again, now with a speed-up: the same nonce, a higher fee, another hash.
    let r = rig();
    let (o, rid, tx) = r.refund_waiting_after_reorg().await;
    let faster = r
        .chain
        .mine_from(43, 0, SHOP, &[(USDC, CUSTOMER, 25_000_000)]);
    let original = r.get(&o.id).await.refunds[0].transfer.clone().unwrap();
    r.chain.spend_nonce_of(&faster, &original);
    r.chain.hide(&tx);
    assert_eq!(r.send_refund(&o.id, &rid, &faster).await, "OK");
    let t = r.get(&o.id).await.refunds[0].transfer.clone().unwrap();
    assert_eq!((t.tx_hash, t.reorged_at), (faster.to_string(), None));
    r.chain.set_head(90);
    r.check(&o.id).await;
    assert_eq!(r.get(&o.id).await.status, OrderStatus::Refunded);

    // A cancel: the same nonce, sending nothing. Once it is final the first can never be
    // mined, and a new transaction (its own nonce) is taken; not before.
    let r = rig();
    let (o, rid, tx) = r.refund_waiting_after_reorg().await;
    let original = r.get(&o.id).await.refunds[0].transfer.clone().unwrap();
    let cancel = r.chain.mine_from(43, 0, SHOP, &[]);
    r.chain.spend_nonce_of(&cancel, &original);
    r.chain.hide(&tx);
    let again = r
        .chain
        .mine_from(44, 0, SHOP, &[(USDC, CUSTOMER, 25_000_000)]);
    assert_eq!(
        r.send_refund(&o.id, &rid, &again).await,
        "REFUND_TX_NOT_A_REPLACEMENT",
        "the cancel's block is not final yet"
    );
    r.chain.set_head(90);
    assert_eq!(r.send_refund(&o.id, &rid, &again).await, "OK");
    r.check(&o.id).await;
    assert_eq!(r.get(&o.id).await.status, OrderStatus::Refunded);

    // A transfer signed by another account than the deposit address (a smart account's
    // owner, a relayer): its nonce says nothing of the account's transfers, and is not kept.
    let r = rig();
    let o = r.paid(&OrgId::generate(), 25_000_000).await;
    let (rid, relayed) = r.refund_sent(&o.id, 25_000_000, 41).await;
    r.chain.sign_as(&relayed, OTHER);
    assert_eq!(r.send_refund(&o.id, &rid, &relayed).await, "OK");
    let kept = r.get(&o.id).await.refunds[0].transfer.clone().unwrap();
    assert_eq!(kept.sender_nonce, None);

    // A transfer recorded before nonces were kept: the nonce is read from the transaction
    // waited for, while a node shows it.
    let r = rig();
    let (o, rid, tx) = r.refunded_whole().await;
    let older = r
        .get(&o.id)
        .await
        .edit(Timestamp::now(), |o| {
            o.refunds[0].transfer.as_mut().unwrap().sender_nonce = None;
        })
        .unwrap();
    r.s.store.update_order(&older).await.unwrap();
    r.chain.reorg(41, &[&tx], 42);
    r.chain.to_mempool(&tx);
    assert_eq!(r.check(&o.id).await, Progress::Waiting);
    let second = r
        .chain
        .mine_from(43, 0, SHOP, &[(USDC, CUSTOMER, 25_000_000)]);
    assert_eq!(
        r.send_refund(&o.id, &rid, &second).await,
        "REFUND_TX_NOT_A_REPLACEMENT"
    );
}

/// The wait for a reorged refund transaction counts from when a node last showed it: one
/// that sat in the mempool for hours is not dropped by one node's empty answer. Mined again
/// failed, it is waited for until that block is final (a second shallow reorg can mine it
/// as it was). And a "replacement" is refused while the transaction waited for is mined
/// again and still sends the refund.
#[tokio::test]
async fn a_waiting_refund_transfer_is_given_up_only_when_it_cannot_send_the_refund() {
    let r = rig();
    let (o, rid, tx) = r.refunded_whole().await;
    r.chain.reorg(41, &[&tx], 42);
    r.chain.to_mempool(&tx);
    let round = Some(r.get(&o.id).await.check_round);
    let t = Timestamp::now();
    let check = async |secs: i64| {
        advance(&r.s, None, &o.id, round, t.plus_seconds(secs))
            .await
            .unwrap();
        let o = r.get(&o.id).await;
        (o.refunds[0].status, o.refunds[0].transfer.clone())
    };
    // In the mempool for hours: seen, and waited for.
    for hour in 0..5 {
        let (status, transfer) = check(hour * 3600).await;
        assert_eq!(status, RefundStatus::Confirming);
        assert_eq!(transfer.unwrap().seen_at, Some(t.plus_seconds(hour * 3600)));
    }
    // Then a node that does not know it: still waited for, until none has shown it for
    // the whole wait.
    r.chain.hide(&tx);
    let last_seen = 4 * 3600;
    let (status, _) = check(last_seen + REFUND_DROPPED_AFTER_SECS - 1).await;
    assert_eq!(status, RefundStatus::Confirming);
    // Mined again, failed: waited for until that block is final.
    r.chain.show_all();
    r.chain.mine_again(&tx, 44);
    r.chain.fail_again(&tx);
    let (status, transfer) = check(last_seen + REFUND_DROPPED_AFTER_SECS).await;
    assert_eq!(status, RefundStatus::Confirming);
    assert!(transfer.unwrap().reorged_at.is_some());
    // A second reorg mines it as it was: followed, and nothing else is taken as its transfer.
    r.chain.reorg(44, &[&tx], 45);
    r.chain.mine_again(&tx, 45);
    let (status, transfer) = check(last_seen + REFUND_DROPPED_AFTER_SECS).await;
    let transfer = transfer.unwrap();
    assert_eq!(status, RefundStatus::Confirming);
    assert_eq!((transfer.block_number, transfer.reorged_at), (45, None));
    // Out again, back to the mempool: waited for. Mined again before a check has seen it,
    // it is the refund's: a replacement submitted then is refused.
    r.chain.reorg(45, &[&tx], 46);
    r.chain.to_mempool(&tx);
    let (_, transfer) = check(last_seen + REFUND_DROPPED_AFTER_SECS).await;
    assert!(transfer.unwrap().reorged_at.is_some());
    r.chain.mine_again(&tx, 46);
    let other = r
        .chain
        .mine_from(47, 0, SHOP, &[(USDC, CUSTOMER, 25_000_000)]);
    assert_eq!(
        r.send_refund(&o.id, &rid, &other).await,
        "REFUND_NOT_PENDING"
    );
    // Mined again failed, and that block final: the refund is pending again.
    r.chain.reorg(46, &[&tx], 48);
    r.chain.fail_again(&tx);
    r.chain.set_head(90);
    let (status, transfer) = check(last_seen + REFUND_DROPPED_AFTER_SECS).await;
    assert_eq!((status, transfer), (RefundStatus::Pending, None));
}

/// A reorg usually mines a transaction again in another block: the refund's transfer is
/// followed there and stays `confirming` (then `succeeded`), not sent back to `pending`,
/// which would have the merchant send the money a second time.
#[tokio::test]
async fn a_refund_transfer_moved_by_a_reorg_is_followed_not_sent_back() {
    let r = rig();
    let (o, _, tx) = r.refunded_whole().await;
    r.chain.reorg(41, &[&tx], 43);
    r.check(&o.id).await;
    let moved = r.get(&o.id).await;
    assert_eq!(moved.refunds[0].status, RefundStatus::Confirming);
    let t = moved.refunds[0].transfer.as_ref().unwrap();
    assert_eq!(
        (t.tx_hash.as_str(), t.block_number),
        (tx.to_string().as_str(), 43)
    );
    assert_eq!(moved.status, OrderStatus::Completed);
    r.chain.set_head(90);
    r.check(&o.id).await;
    let done = r.get(&o.id).await;
    assert_eq!(done.refunds[0].status, RefundStatus::Succeeded);
    assert_eq!(done.status, OrderStatus::Refunded);
}

#[tokio::test]
async fn a_late_payment_refunded_in_full_makes_the_expired_order_refunded() {
    let r = rig();
    let org = OrgId::generate();
    let o = r.waiting_until(&org, SHOP, 25_000_000, 1).await;
    expire_orders(&*r.s.store, Timestamp::now().plus_seconds(5), 100)
        .await
        .unwrap();
    assert_eq!(r.get(&o.id).await.status, OrderStatus::Expired);
    // Mined after the expiry, by the chain's clock: a late payment.
    let late = r.chain.mine(12, -10, &[(USDC, SHOP, 25_000_000)]);
    r.pay(&o.id, &late).await.unwrap();
    r.chain.set_head(40);
    r.check(&o.id).await;
    let paid = r.get(&o.id).await;
    assert!(paid.paid_late);
    assert_eq!(paid.status, OrderStatus::Expired);
    let rid = r.refund(&o.id, ask(None, Some(CUSTOMER))).await.unwrap();
    assert_eq!(r.get(&o.id).await.refunds[0].amount.raw, raw(25_000_000));
    // Sent a little later than the refund was created (the chain's clock runs ahead here).
    let back = r
        .chain
        .mine_from(41, -10, SHOP, &[(USDC, CUSTOMER, 25_000_000)]);
    assert_eq!(r.send_refund(&o.id, &rid, &back).await, "OK");
    r.chain.set_head(80);
    r.check(&o.id).await;
    let done = r.get(&o.id).await;
    assert_eq!(done.status, OrderStatus::Refunded);
    assert!(
        r.events(&org)
            .await
            .iter()
            .any(|e| e.event_type == EventType::OrderRefunded)
    );
}

/// One transfer from the deposit address of order A to the deposit address of order B of
/// the same organization, submitted as A's refund and as B's payment at the same moment:
/// exactly one of them takes it (their claims are written with each other's twin, in the
/// same write as the order).
#[tokio::test]
async fn a_transfer_submitted_as_a_refund_and_a_payment_at_once_counts_once() {
    for _ in 0..10 {
        let r = rig();
        let org = OrgId::generate();
        let a = r.paid(&org, 25_000_000).await;
        let b = r.waiting(&org, CUSTOMER, 10_000_000).await;
        let (rid, tx) = r.refund_sent(&a.id, 10_000_000, 41).await;
        let (refunded, paid) = tokio::join!(r.send_refund(&a.id, &rid, &tx), r.pay(&b.id, &tx));
        let mut outcomes = [refunded, code(paid)];
        outcomes.sort_unstable();
        assert_eq!(outcomes, ["OK", "TX_ALREADY_USED"]);
        let refund_took_it = r.get(&a.id).await.refunds[0].transfer.is_some();
        let payment_took_it = !r.get(&b.id).await.transfers.is_empty();
        assert!(refund_took_it != payment_took_it, "exactly one holds it");
    }
}
