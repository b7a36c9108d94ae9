//! The payment pipeline driven by random histories (proptest). Two orders of one
//! organization share a merchant address (one with a payment tolerance), and an order of
//! another organization (with a short late-payment window) is paid at it too. Anyone
//! sends transfers of any size there, one at a time or two in one transaction, and the
//! address itself may send one that refunds the customer and pays itself at once; payers
//! submit any transaction to any order (now and then recorded on a copy of the order read
//! before the last step, as the API records on the copy it read), and the scan finds them; blocks are mined; shallow reorgs drop transactions, mine them
//! again elsewhere, or mine them again failed; the node misses a transaction or answers
//! from blocks behind, or the provider goes down; queued checks are delivered, twice, or
//! lost; the clock runs out, and the upkeep expires orders and queues lost checks again;
//! merchants cancel orders, create, send and cancel refunds, and submit any transaction as
//! a refund's transfer; and two of these requests or messages run at once (the same
//! transfer submitted twice, a check while a payment is recorded, a cancel or a refund
//! while the scan records), interleaving at their writes.
//!
//! After every step the orders must agree with the chain and with each other: what an
//! order says it received is what its counted transfers add up to, and a waiting order's
//! amount due is what is still due; a transfer once recorded is never dropped; money from
//! before an order never pays it; one organization never uses a transaction twice (two
//! payments, or a payment and a refund); a confirmed transfer or succeeded refund is final
//! on the chain; an order waits for confirmations only when paid, is complete only with
//! final transfers that pay it, does not stay expired when paid in time, and goes back
//! nowhere from a final status; refunds never take more than arrived and is final;
//! `paid_late` holds exactly while a late payment counts. At the end the world settles
//! (the node catches up, blocks are mined, the scan, every queued check and the upkeep
//! run) and nothing may be left waiting for a confirmation.
//!
//! `PROPTEST_CASES=N` runs N histories (64 in `make test`, about 3 s).

use super::*;
use crate::store::StoreError;
use proptest::prelude::*;

/// Confirmations Base Sepolia needs (the registry's); reorgs stay shallower, so a
/// transfer once final stays final.
const FINAL: u64 = 3;

/// Where refunds go.
const CUSTOMER: &str = "0x1111111111111111111111111111111111111111";

/// The amounts a transfer may bring (6 decimals): dust, parts of an order, an order, more.
/// (24.8 is 25 short by less than B's 1 % underpayment tolerance.)
const AMOUNTS: [u128; 7] = [
    1, 10_000_000, 12_500_000, 15_000_000, 24_800_000, 25_000_000, 30_000_000,
];

#[derive(Debug, Clone)]
enum Op {
    /// Someone sends `AMOUNTS[amount]` USDC to the shared address, mined in a new block.
    Send { amount: usize },
    /// One transaction from the shared address itself sends `AMOUNTS[back]` to the
    /// customer and `AMOUNTS[to_self]` back to the address: it looks like a refund and
    /// like a payment at once (submitted as either, it must count as one of them only).
    SendBoth { back: usize, to_self: usize },
    /// One transaction from a payer sends `AMOUNTS[a]` and `AMOUNTS[b]` to the shared
    /// address in two transfers (a wallet's batch, or a contract splitting a payment): it is
    /// one payment of their sum, to one order of each organization at most.
    SendSplit { a: usize, b: usize },
    /// A payer submits the `tx`-th transaction sent so far to order `to` (A, B or C). With
    /// `stale`, the route records it on the copy of the order it read before the last step
    /// (the API reads the order to check its owner, then records on that copy): a copy
    /// gone stale must cost a retry from a fresh read, never a write over what changed.
    Submit { tx: usize, to: usize, stale: bool },
    /// The deposit scan runs.
    Scan,
    /// `n` more blocks are mined, the first with the transactions waiting in the mempool.
    Blocks { n: u64 },
    /// The last `depth` blocks are replaced; of the transactions in them, those whose bit
    /// is set in `keep` are mined again on the new branch (and revert there if their bit is
    /// set in `fail`: the state they ran against changed); of the others, those whose bit is
    /// set in `pool` wait in the mempool (the node shows them pending) until more blocks
    /// are mined, and the rest are gone for good.
    Reorg {
        depth: u64,
        keep: u8,
        fail: u8,
        pool: u8,
    },
    /// A reorg replaces the block of the `back`-th most recent transaction (0 the last) and
    /// those after it, when that is shallower than finality: that transaction goes back to
    /// the mempool (`pool`) or is gone for good, the others in those blocks are mined again
    /// in the new branch's last block. (Reorgs aimed at what was just sent: a payment, a
    /// refund.)
    Drop { back: usize, pool: bool },
    /// The node stops showing the `tx`-th transaction (lagging, or load-balanced).
    Lag { tx: usize },
    /// The node answering is `n` blocks behind the chain: an older head, no newer blocks
    /// (a transaction's receipt it may still show, from another node).
    Behind { n: u64 },
    /// The node shows everything again, and the provider is back if it was down.
    CatchUp,
    /// The provider goes down: every request fails until it is back.
    Outage,
    /// The `i`-th queued confirmation-check message is delivered (and deleted, unless
    /// `again`: SQS delivers it twice).
    Deliver { i: usize, again: bool },
    /// Enough blocks to make everything recorded final are mined, and every queued check
    /// is delivered once.
    Quiet,
    /// The `i`-th queued confirmation-check message is lost.
    Lose { i: usize },
    /// Five minutes pass (orders are paid within 15).
    Later,
    /// The upkeep runs: expiry, then lost checks queued again.
    Upkeep,
    /// The merchant cancels order `which` (refused unless it may be).
    Cancel { which: usize },
    /// The merchant refunds `AMOUNTS[part]` of order `which` to the customer, or all that
    /// may still be refunded when `part` is past the end (refused unless it may).
    Refund { which: usize, part: usize },
    /// The merchant sends refund `r` of order `which` (its amount, or one unit short) from
    /// the shared address, mined in a new block, and submits it.
    SendRefund { which: usize, r: usize, short: bool },
    /// The `tx`-th transaction (payments and refunds alike) is submitted as the transfer
    /// of refund `r` of order `which`.
    SubmitRefund { which: usize, r: usize, tx: usize },
    /// The merchant cancels refund `r` of order `which` (refused unless pending).
    CancelRefund { which: usize, r: usize },
    /// Two requests or messages handled at once (each interleaves with the other at its
    /// writes): the same transfer submitted twice, a check while a payment is recorded, a
    /// cancel while the scan records…
    Together(Box<Op>, Box<Op>),
}

/// What may run at the same time as something else: requests and messages.
fn concurrent_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..64usize, 0..3usize, prop::bool::weighted(0.3))
            .prop_map(|(tx, to, stale)| Op::Submit { tx, to, stale }),
        2 => Just(Op::Scan),
        3 => (0..4usize).prop_map(|i| Op::Deliver { i, again: true }),
        1 => (0..3usize).prop_map(|which| Op::Cancel { which }),
        2 => (0..3usize, 0..AMOUNTS.len() + 3).prop_map(|(which, part)| Op::Refund { which, part }),
        1 => (0..3usize, 0..3usize, 0..64usize)
            .prop_map(|(which, r, tx)| Op::SubmitRefund { which, r, tx }),
        1 => (0..3usize, 0..3usize).prop_map(|(which, r)| Op::CancelRefund { which, r }),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..AMOUNTS.len()).prop_map(|amount| Op::Send { amount }),
        1 => (0..AMOUNTS.len(), 0..AMOUNTS.len())
            .prop_map(|(back, to_self)| Op::SendBoth { back, to_self }),
        1 => (0..AMOUNTS.len(), 0..AMOUNTS.len()).prop_map(|(a, b)| Op::SendSplit { a, b }),
        3 => (0..64usize, 0..3usize, prop::bool::weighted(0.3))
            .prop_map(|(tx, to, stale)| Op::Submit { tx, to, stale }),
        2 => Just(Op::Scan),
        3 => (1..=3u64).prop_map(|n| Op::Blocks { n }),
        // (Now and then one of the transactions mined again fails.)
        2 => (1..FINAL, any::<u8>(), any::<u8>(), any::<u8>()).prop_map(
            |(depth, keep, fail, pool)| Op::Reorg { depth, keep, fail: fail & 0x11, pool }
        ),
        2 => (0..3usize, any::<bool>()).prop_map(|(back, pool)| Op::Drop { back, pool }),
        1 => (0..64usize).prop_map(|tx| Op::Lag { tx }),
        1 => Just(Op::CatchUp),
        1 => (1..=4u64).prop_map(|n| Op::Behind { n }),
        1 => Just(Op::Outage),
        4 => (0..4usize, prop::bool::weighted(0.1)).prop_map(|(i, again)| Op::Deliver { i, again }),
        1 => (0..4usize).prop_map(|i| Op::Lose { i }),
        2 => Just(Op::Quiet),
        2 => Just(Op::Later),
        1 => Just(Op::Upkeep),
        1 => (0..3usize).prop_map(|which| Op::Cancel { which }),
        3 => (0..3usize, 0..AMOUNTS.len() + 3).prop_map(|(which, part)| Op::Refund { which, part }),
        3 => (0..3usize, 0..3usize, prop::bool::weighted(0.2))
            .prop_map(|(which, r, short)| Op::SendRefund { which, r, short }),
        1 => (0..3usize, 0..3usize, 0..64usize)
            .prop_map(|(which, r, tx)| Op::SubmitRefund { which, r, tx }),
        1 => (0..3usize, 0..3usize).prop_map(|(which, r)| Op::CancelRefund { which, r }),
        3 => (concurrent_op(), concurrent_op())
            .prop_map(|(a, b)| Op::Together(Box::new(a), Box::new(b))),
        // The same transfer submitted twice at once, to one order or to two.
        2 => (0..64usize, 0..3usize, 0..3usize).prop_map(|(tx, a, b)| Op::Together(
            Box::new(Op::Submit { tx, to: a, stale: false }),
            Box::new(Op::Submit { tx, to: b, stale: false }),
        )),
    ]
}

impl Rig {
    /// The order as `change` leaves it, written.
    async fn change(&self, id: &OrderId, change: impl FnOnce(&mut PayOrder)) -> PayOrder {
        let u = self.get(id).await.edit(Timestamp::now(), change).unwrap();
        self.s.store.update_order(&u).await.unwrap();
        u.order().clone()
    }
}

/// What a reorg does to a transaction in the blocks it replaces.
enum Fate {
    /// Mined again on the new branch (failed: the state it ran against changed).
    Again { failed: bool },
    /// Back in the mempool: the node shows it pending until more blocks are mined.
    Pool,
    /// Gone for good (replaced, or dropped by every node).
    Gone,
}

/// One history's world: the rig, its orders, the transactions sent, the clock.
struct World {
    r: Rig,
    /// A and B of one organization, sharing its address; C of another organization, paid
    /// at the same address.
    orders: [OrderId; 3],
    sent: Vec<TxHash>,
    now: Timestamp,
    /// Each block's branch: a reorg gives the blocks it replaces hashes of a new fork.
    fork: u8,
    /// What each order looked like after the last step, and after the one before.
    last: [PayOrder; 3],
    older: [PayOrder; 3],
    /// The transactions recorded on each order as late payments: mined after it expired
    /// and recorded on it expired, or recorded on it cancelled.
    late: [Vec<String>; 3],
}

impl World {
    async fn new(b_amount: u128) -> World {
        let r = rig();
        // The address got money before these orders: it pays none of them.
        let old = vec![
            r.chain.mine(5, 3_600, &[(USDC, SHOP, 25_000_000)]),
            r.chain.mine(6, 3_000, &[(USDC, SHOP, b_amount)]),
        ];
        let org = OrgId::generate();
        let a = r.waiting_until(&org, SHOP, 25_000_000, 900).await;
        let b = r.waiting_until(&org, SHOP, b_amount, 900).await;
        let c = r
            .waiting_until(&OrgId::generate(), SHOP, 25_000_000, 900)
            .await;
        // B takes 1 % less than its amount and calls 5 % more an overpayment; C stops
        // taking late payments 20 minutes after its time ran out.
        let b = r
            .change(&b.id, |o| {
                o.payment_tolerance.underpayment_bps = 100;
                o.payment_tolerance.overpayment_threshold_bps = 500;
            })
            .await;
        let c = r
            .change(&c.id, |o| o.late_payment_window = Some(1_200))
            .await;
        World {
            orders: [a.id.clone(), b.id.clone(), c.id.clone()],
            older: [a.clone(), b.clone(), c.clone()],
            last: [a, b, c],
            late: Default::default(),
            r,
            sent: old,
            now: Timestamp::now().plus_seconds(5),
            fork: 0,
        }
    }

    fn head(&self) -> u64 {
        *self.r.chain.head.lock().unwrap()
    }

    fn tx(&self, i: usize) -> Option<TxHash> {
        (!self.sent.is_empty()).then(|| self.sent[i % self.sent.len()])
    }

    /// Mines a transaction from `from` with `transfers` in a new block at the clock's time,
    /// and keeps it among those sent.
    fn send(&mut self, from: &str, transfers: &[(&str, &str, u128)]) -> TxHash {
        let age = Timestamp::now().unix() - self.now.unix();
        let tx = self
            .r
            .chain
            .mine_from(self.head() + 1, age, from, transfers);
        self.sent.push(tx);
        tx
    }

    /// Refund `r` (modulo how many there are) of `o`, if it has any.
    fn refund_of(o: &PayOrder, r: usize) -> Option<&OrderRefund> {
        o.refunds.get(r % o.refunds.len().max(1))
    }

    /// Runs `op`: the steps that change the world itself here, the others by [`Self::act`].
    async fn run(&mut self, op: &Op) {
        match *op {
            Op::Send { amount } => {
                self.send(PAYER, &[(USDC, SHOP, AMOUNTS[amount])]);
            }
            Op::SendBoth { back, to_self } => {
                let both = [
                    (USDC, CUSTOMER, AMOUNTS[back]),
                    (USDC, SHOP, AMOUNTS[to_self]),
                ];
                self.send(SHOP, &both);
            }
            Op::SendSplit { a, b } => {
                self.send(PAYER, &[(USDC, SHOP, AMOUNTS[a]), (USDC, SHOP, AMOUNTS[b])]);
            }
            Op::Reorg {
                depth,
                keep,
                fail,
                pool,
            } => self.reorg(depth, |i, _| {
                let bit = 1 << (i % 8);
                if keep & bit != 0 {
                    Fate::Again {
                        failed: fail & bit != 0,
                    }
                } else if pool & bit != 0 {
                    Fate::Pool
                } else {
                    Fate::Gone
                }
            }),
            Op::Drop { back, pool } => self.drop_tx(back, pool),
            Op::Later => self.now = self.now.plus_seconds(300),
            Op::SendRefund { which, r, short } => {
                let o = self.r.get(&self.orders[which]).await;
                let Some(refund) = Self::refund_of(&o, r) else {
                    return;
                };
                let amount = u128::try_from(refund.amount.raw.value()).unwrap() - u128::from(short);
                let tx = self.send(SHOP, &[(USDC, CUSTOMER, amount)]);
                self.submit_refund(which, &refund.id, &tx).await;
            }
            _ => self.act(op).await,
        }
    }

    /// Runs a step that changes only the store, the chain's node and the queue.
    async fn act(&self, op: &Op) {
        let chain = &self.r.chain;
        match op {
            Op::Send { .. }
            | Op::SendBoth { .. }
            | Op::SendSplit { .. }
            | Op::Reorg { .. }
            | Op::Drop { .. }
            | Op::Later
            | Op::SendRefund { .. } => {
                unreachable!("run by World::run")
            }
            Op::Upkeep => {
                upkeep(&self.r.s, self.now).await.unwrap();
            }
            Op::Together(a, b) => {
                tokio::join!(Box::pin(self.act(a)), Box::pin(self.act(b)));
            }
            &Op::Submit { tx, to, stale } => {
                let Some(tx) = self.tx(tx) else { return };
                let id = &self.orders[to];
                let recorded = if stale {
                    record_payment_on(&self.r.s, self.older[to].clone(), &tx, self.now).await
                } else {
                    record_payment(&self.r.s, id, &tx, self.now).await
                };
                if let Err(e) = recorded {
                    assert!(
                        !matches!(
                            e,
                            PaymentError::Store(_) | PaymentError::Queue(_) | PaymentError::Busy
                        ),
                        "submitting {tx} to {id}: {e:?}"
                    );
                }
            }
            Op::Scan => {
                let chain_id = ChainId::new(CHAIN).unwrap();
                match scan_chain(&self.r.s, chain_id, self.now).await {
                    // A sighted transaction the lagging node cannot show fails the run.
                    Ok(_) | Err(ScanError::Chain(_)) => {}
                    Err(e) => panic!("scan: {e:?}"),
                }
            }
            &Op::Blocks { n } => {
                let block = self.head() + 1;
                chain.set_head(self.head() + n);
                let hash = chain.blocks.lock().unwrap()[&block].clone();
                for tx in chain.txs.lock().unwrap().values_mut() {
                    if tx.inclusion.is_none() {
                        tx.inclusion = Some(Inclusion {
                            success: true,
                            block_number: block,
                            block_hash: hash.clone(),
                            timestamp: self.now.unix() as u64,
                        });
                    }
                }
            }
            &Op::Lag { tx } => {
                if let Some(tx) = self.tx(tx) {
                    chain.hide(&tx);
                }
            }
            &Op::Behind { n } => *chain.behind.lock().unwrap() = n,
            Op::CatchUp => {
                chain.show_all();
                *chain.down.lock().unwrap() = false;
                *chain.behind.lock().unwrap() = 0;
            }
            Op::Outage => *chain.down.lock().unwrap() = true,
            &Op::Deliver { i, again } => {
                let msg = {
                    let mut queued = self.r.sent.0.lock().unwrap();
                    if queued.is_empty() {
                        return;
                    }
                    let i = i % queued.len();
                    if again {
                        queued[i].clone()
                    } else {
                        queued.remove(i)
                    }
                };
                // What the confirm-payment function does with a message: one that fails
                // (the chain could not be read) is delivered again later.
                let progress =
                    match advance(&self.r.s, None, &msg.order_id, msg.round, self.now).await {
                        Ok(p) => p,
                        Err(AdvanceError::Chain(_)) => {
                            if !again {
                                self.r.sent.0.lock().unwrap().push(msg);
                            }
                            return;
                        }
                        Err(e) => panic!("check of {}: {e:?}", msg.order_id),
                    };
                if progress == Progress::Waiting {
                    enqueue_check(&self.r.s, &msg.order_id, msg.round, msg.attempt + 1)
                        .await
                        .unwrap();
                }
            }
            Op::Quiet => {
                chain.set_head(self.head() + FINAL);
                let queued = self.r.sent.0.lock().unwrap().len();
                for _ in 0..queued {
                    Box::pin(self.act(&Op::Deliver { i: 0, again: false })).await;
                }
            }
            &Op::Lose { i } => {
                let mut queued = self.r.sent.0.lock().unwrap();
                if !queued.is_empty() {
                    let i = i % queued.len();
                    queued.remove(i);
                }
            }
            &Op::Cancel { which } => {
                let o = self.r.get(&self.orders[which]).await;
                if let Ok(u) = o.transition(self.now, OrderStatus::Cancelled, |_| {}) {
                    self.write(&u).await;
                }
            }
            &Op::Refund { which, part } => {
                let o = self.r.get(&self.orders[which]).await;
                let req = RefundRequest {
                    amount: AMOUNTS.get(part).map(|a| RawAmount::from_u128(*a)),
                    address: Some(CUSTOMER.into()),
                    reason: "customer asked".into(),
                };
                if let Ok((u, _)) = create_refund(&o, &req, self.now) {
                    self.write(&u).await;
                }
            }
            &Op::SubmitRefund { which, r, tx } => {
                let o = self.r.get(&self.orders[which]).await;
                let (Some(refund), Some(tx)) = (Self::refund_of(&o, r), self.tx(tx)) else {
                    return;
                };
                self.submit_refund(which, &refund.id, &tx).await;
            }
            &Op::CancelRefund { which, r } => {
                let o = self.r.get(&self.orders[which]).await;
                let Some(refund) = Self::refund_of(&o, r) else {
                    return;
                };
                if let Ok(u) = cancel_refund(&o, &refund.id, self.now) {
                    self.write(&u).await;
                }
            }
        }
    }

    /// A merchant's change of an order, written on the version it read: a change made
    /// meanwhile refuses it (the API answers 409 CONCURRENT_UPDATE).
    async fn write(&self, u: &OrderUpdate) {
        match self.r.s.store.update_order(u).await {
            Ok(()) | Err(StoreError::VersionConflict { .. }) => {}
            Err(e) => panic!("writing {}: {e:?}", u.order().id),
        }
    }

    async fn submit_refund(&self, which: usize, refund: &RefundId, tx: &TxHash) {
        let id = &self.orders[which];
        if let Err(e) = record_refund(&self.r.s, id, refund, tx, self.now).await {
            assert!(
                !matches!(
                    e,
                    RefundError::Payment(
                        PaymentError::Store(_) | PaymentError::Queue(_) | PaymentError::Busy
                    )
                ),
                "refund {refund} of {id} by {tx}: {e:?}"
            );
        }
    }

    /// Replaces the last `depth` blocks with a new branch of the same height; each
    /// transaction in them meets the fate `fate` gives it (by its place among those sent):
    /// mined again in the new branch's last block at the clock's time, back in the
    /// mempool, or gone.
    fn reorg(&mut self, depth: u64, fate: impl Fn(usize, &TxHash) -> Fate) {
        let chain = &self.r.chain;
        let head = self.head();
        let from = head + 1 - depth.min(head);
        self.fork += 1;
        let mut blocks = chain.blocks.lock().unwrap();
        for b in from..=head {
            blocks.insert(b, block_hash(b, self.fork));
        }
        let mut txs = chain.txs.lock().unwrap();
        for (i, hash) in self.sent.iter().enumerate() {
            let key = hash.to_string();
            let Some(inclusion) = txs.get_mut(&key).and_then(|t| t.inclusion.as_mut()) else {
                continue;
            };
            if inclusion.block_number < from {
                continue;
            }
            match fate(i, hash) {
                Fate::Again { failed } => {
                    inclusion.block_number = head;
                    inclusion.block_hash = blocks[&head].clone();
                    // The new block's time: a move can carry a payment past an order's
                    // expiry.
                    inclusion.timestamp = self.now.unix() as u64;
                    inclusion.success = !failed;
                }
                Fate::Pool => txs.get_mut(&key).unwrap().inclusion = None,
                Fate::Gone => {
                    txs.remove(&key);
                }
            }
        }
    }

    /// The reorg of [`Op::Drop`].
    fn drop_tx(&mut self, back: usize, pool: bool) {
        let Some(target) = self.sent.iter().rev().nth(back).copied() else {
            return;
        };
        let head = self.head();
        let block = match self.r.chain.txs.lock().unwrap().get(&target.to_string()) {
            Some(ChainTx {
                inclusion: Some(i), ..
            }) if head + 1 - i.block_number < FINAL => i.block_number,
            _ => return,
        };
        self.reorg(head + 1 - block, |_, h| match h == &target {
            true if pool => Fate::Pool,
            true => Fate::Gone,
            false => Fate::Again { failed: false },
        });
    }

    /// Where `t` is on the chain as it really is (whatever the node shows): its block, if
    /// the block it was recorded in is still on the chain and still holds it.
    fn on_chain(&self, t: &ReceivedTransfer) -> bool {
        let txs = self.r.chain.txs.lock().unwrap();
        let blocks = self.r.chain.blocks.lock().unwrap();
        let Some(i) = txs.get(&t.tx_hash).and_then(|tx| tx.inclusion.as_ref()) else {
            return false;
        };
        i.block_number == t.block_number
            && i.block_hash == t.block_hash
            && blocks.get(&t.block_number) == Some(&t.block_hash)
    }

    /// The invariants every step must keep; `step` names the history so far.
    /// Runs `op`, then checks the invariants (`step` is the history so far).
    async fn apply(&mut self, op: &Op, step: &str) {
        self.run(op).await;
        self.check_invariants(step, op).await;
    }

    /// The invariants every step must keep; `op` is the step just run, `step` the history.
    async fn check_invariants(&mut self, step: &str, op: &Op) {
        // A transfer is recorded by a submission or the scan; a check only follows it.
        let recording = matches!(op, Op::Submit { .. } | Op::Scan | Op::Together(..));
        // Of two things at once the model cannot tell which came first (a cancel or the
        // payment, the scan's record or a check's follow), so whether a transfer they
        // brought back is late is taken from the order; alone, it is worked out here.
        let together = matches!(op, Op::Together(..));
        let now = [
            self.r.get(&self.orders[0]).await,
            self.r.get(&self.orders[1]).await,
            self.r.get(&self.orders[2]).await,
        ];
        let mut lates = std::mem::take(&mut self.late);
        for ((o, before), late) in now.iter().zip(&self.last).zip(&mut lates) {
            let counted: Vec<&ReceivedTransfer> = o
                .transfers
                .iter()
                .filter(|t| t.status != TransferStatus::Reorged)
                .collect();
            let sum = counted
                .iter()
                .fold(RawAmount::ZERO, |s, t| s.checked_add(t.amount.raw).unwrap());
            let payment = o.payment.as_ref().unwrap();
            let required = payment.input.amount.raw;
            // What refunds hold (pending, sent or done) does not pay the order.
            let held = o
                .refunds
                .iter()
                .filter(|r| r.status != RefundStatus::Cancelled)
                .fold(RawAmount::ZERO, |s, r| s.checked_add(r.amount.raw).unwrap());
            let covers = |sum: RawAmount| {
                !matches!(
                    assess(required, sum, o.payment_tolerance),
                    Assessment::Partial { .. }
                )
            };
            let covered = covers(sum.saturating_sub(held));
            let ctx = || format!("{step}\norder {} ({}): {:#?}", o.id, o.status, o.transfers);
            // What the order says it received is what its counted transfers add up to.
            if !o.transfers.is_empty() {
                assert_eq!(payment.received.as_ref().unwrap().raw, sum, "{}", ctx());
            }
            // A transaction is on an order once.
            let mut hashes: Vec<&str> = o.transfers.iter().map(|t| t.tx_hash.as_str()).collect();
            hashes.sort_unstable();
            hashes.dedup();
            assert_eq!(hashes.len(), o.transfers.len(), "{}", ctx());
            // Money that reached the address before the order pays nothing.
            assert!(
                counted
                    .iter()
                    .all(|t| !self.sent[..2].iter().any(|h| h.to_string() == t.tx_hash)),
                "{} counts a transfer from before it",
                ctx()
            );
            // A transfer once recorded stays on the order (reorged away at worst).
            for t in &before.transfers {
                assert!(
                    o.transfers.iter().any(|u| u.tx_hash == t.tx_hash),
                    "{} lost {}",
                    ctx(),
                    t.tx_hash
                );
            }
            // A confirmed transfer is on the chain, deep enough.
            for t in counted
                .iter()
                .filter(|t| t.status == TransferStatus::Confirmed)
            {
                assert!(
                    self.on_chain(t),
                    "{} confirmed off chain: {}",
                    ctx(),
                    t.tx_hash
                );
                assert!(self.head() + 1 - t.block_number >= FINAL, "{}", ctx());
            }
            match o.status {
                OrderStatus::Completed => {
                    // Refunds made once it was complete do not undo it.
                    // (Two at once may complete it and refund it in one step.)
                    let one_change = !matches!(op, Op::Together(..) | Op::Quiet);
                    let completing = before.status != OrderStatus::Completed && one_change;
                    assert!(
                        covers(sum) && (covered || !completing),
                        "{} completed without the amount",
                        ctx()
                    );
                    assert!(
                        counted
                            .iter()
                            .all(|t| t.status == TransferStatus::Confirmed),
                        "{} completed before its transfers were final",
                        ctx()
                    );
                    // (A step of several changes may pass through AWAITING_CONFIRMATION.)
                    assert!(
                        !one_change
                            || matches!(
                                before.status,
                                OrderStatus::Completed | OrderStatus::AwaitingConfirmation
                            ),
                        "{} completed from {}",
                        ctx(),
                        before.status
                    );
                }
                OrderStatus::AwaitingConfirmation => {
                    assert!(covered, "{} waits for confirmations, short", ctx());
                }
                OrderStatus::AwaitingPayment | OrderStatus::PartialPayment => {
                    assert!(!covered, "{} paid in full, still waits for payment", ctx());
                }
                OrderStatus::Expired => assert!(
                    !(covered
                        && !counted.is_empty()
                        && counted
                            .iter()
                            .all(|t| !t.late && o.mined_in_time(t.mined_at))),
                    "{} paid in time, still expired",
                    ctx()
                ),
                _ => {}
            }
            // While it waits for a payment, what it says is still due is what is.
            let waiting = matches!(
                o.status,
                OrderStatus::AwaitingPayment | OrderStatus::PartialPayment
            );
            if waiting && !o.transfers.is_empty() {
                assert_eq!(
                    payment.remaining.is_none(),
                    covered,
                    "{} remaining {:?}",
                    ctx(),
                    payment.remaining
                );
            }
            // Final statuses stay, but for REFUNDED once all received is refunded; an
            // expired one moves only when paid in time.
            let refunded = o.status == OrderStatus::Refunded;
            match before.status {
                OrderStatus::Completed | OrderStatus::Cancelled | OrderStatus::Refunded => {
                    assert!(o.status == before.status || refunded, "{}", ctx());
                }
                OrderStatus::Expired => assert!(
                    matches!(
                        o.status,
                        OrderStatus::Expired
                            | OrderStatus::AwaitingConfirmation
                            | OrderStatus::Refunded
                    ),
                    "{}",
                    ctx()
                ),
                _ => {}
            }
            if refunded {
                assert!(fully_refunded(o), "{} refunded in part", ctx());
            }
            // Refunds: never more than what arrived and is final; a refund succeeded only
            // with its transfer final on the chain, bringing the customer its amount; a
            // transaction is a payment or one refund's transfer, never both.
            let confirmed = sum_of(&o.transfers, |t| t.status == TransferStatus::Confirmed);
            assert!(
                held <= confirmed,
                "{} refunds {held:?} of {confirmed:?}: {:#?}",
                ctx(),
                o.refunds
            );
            for r in &o.refunds {
                let was = before.refunds.iter().find(|b| b.id == r.id);
                if let Some(was) = was.filter(|b| {
                    matches!(b.status, RefundStatus::Succeeded | RefundStatus::Cancelled)
                }) {
                    // A cancelled refund is taken up again only by a transfer sent for it.
                    assert!(
                        r.status == was.status
                            || (was.status == RefundStatus::Cancelled
                                && r.status == RefundStatus::Confirming),
                        "{} refund {} went from {} to {}",
                        ctx(),
                        r.id,
                        was.status,
                        r.status
                    );
                }
                // Back to pending only once its transaction can no longer send it (gone from
                // the chain, or mined again failed in a final block): one that may still be
                // mined is waited for, or the merchant would send the refund twice.
                if let Some(sent) = was
                    .filter(|b| {
                        b.status == RefundStatus::Confirming && r.status == RefundStatus::Pending
                    })
                    .and_then(|b| b.transfer.as_ref())
                {
                    let txs = self.r.chain.txs.lock().unwrap();
                    let hidden = self.r.chain.hidden.lock().unwrap().contains(&sent.tx_hash);
                    let head = self.head();
                    let may_send = txs.get(&sent.tx_hash).is_some_and(|tx| {
                        tx.inclusion
                            .as_ref()
                            .is_none_or(|i| i.success || head + 1 - i.block_number < FINAL)
                    });
                    assert!(
                        !may_send || hidden,
                        "{} refund {} pending again while {} may still send it",
                        ctx(),
                        r.id,
                        sent.tx_hash
                    );
                }
                let Some(t) = &r.transfer else {
                    assert!(
                        matches!(r.status, RefundStatus::Pending | RefundStatus::Cancelled),
                        "{} refund {} {} without a transfer",
                        ctx(),
                        r.id,
                        r.status
                    );
                    continue;
                };
                assert!(
                    t.amount.raw >= r.amount.raw,
                    "{} refund {} short",
                    ctx(),
                    r.id
                );
                if r.status == RefundStatus::Succeeded {
                    let txs = self.r.chain.txs.lock().unwrap();
                    let blocks = self.r.chain.blocks.lock().unwrap();
                    let tx = txs
                        .get(&t.tx_hash)
                        .unwrap_or_else(|| panic!("{} refund {} succeeded off chain", ctx(), r.id));
                    let i = tx.inclusion.as_ref().unwrap();
                    assert_eq!(i.block_number, t.block_number, "{}", ctx());
                    assert_eq!(
                        blocks.get(&t.block_number),
                        Some(&t.block_hash),
                        "{}",
                        ctx()
                    );
                    assert!(self.head() + 1 - t.block_number >= FINAL, "{}", ctx());
                    assert!(
                        tx.transfers
                            .iter()
                            .any(|x| x.to.eq_ignore_ascii_case(CUSTOMER)
                                && x.from.eq_ignore_ascii_case(SHOP)
                                && x.amount >= r.amount.raw),
                        "{} refund {} by a transfer that does not send it",
                        ctx(),
                        r.id
                    );
                }
                if r.status != RefundStatus::Cancelled {
                    assert!(
                        !counted.iter().any(|c| c.tx_hash == t.tx_hash),
                        "{} {} is a payment and a refund",
                        ctx(),
                        t.tx_hash
                    );
                    let twice = o.refunds.iter().filter(|q| {
                        q.status != RefundStatus::Cancelled
                            && q.transfer.as_ref().is_some_and(|q| q.tx_hash == t.tx_hash)
                    });
                    assert_eq!(twice.count(), 1, "{} {} refunds twice", ctx(), t.tx_hash);
                }
            }
            // A payment recorded on an expired order (mined after its time ran out), or on
            // a cancelled one, is late; `paid_late` says that one still counts.
            let was_counted = |t: &ReceivedTransfer| {
                before
                    .transfers
                    .iter()
                    .any(|b| b.tx_hash == t.tx_hash && b.status != TransferStatus::Reorged)
            };
            for t in counted.iter().filter(|t| recording && !was_counted(t)) {
                late.retain(|h| h != &t.tx_hash);
                // (The scan expires an order past its time before it records on it.)
                let is_late = if together {
                    t.late
                } else {
                    o.status == OrderStatus::Cancelled
                        || (o.status == OrderStatus::Expired && !o.mined_in_time(t.mined_at))
                };
                if is_late {
                    late.push(t.tx_hash.clone());
                }
            }
            let paid_late = counted.iter().any(|t| late.contains(&t.tx_hash));
            assert_eq!(o.paid_late, paid_late, "{} paid_late {:?}", ctx(), late);
        }
        // In one organization a transaction is one order's payment or one refund's
        // transfer: A and B never both count it, as a payment or as a refund.
        let uses = |o: &PayOrder| -> Vec<String> {
            let payments = o
                .transfers
                .iter()
                .filter(|t| t.status != TransferStatus::Reorged)
                .map(|t| t.tx_hash.clone());
            let refunds = o
                .refunds
                .iter()
                .filter(|r| r.status != RefundStatus::Cancelled)
                .filter_map(|r| Some(r.transfer.as_ref()?.tx_hash.clone()));
            payments.chain(refunds).collect()
        };
        let (a, b) = (uses(&now[0]), uses(&now[1]));
        if let Some(tx) = a.iter().find(|t| b.contains(t)) {
            panic!(
                "{step}\n{tx} used by both orders:\n{:#?}\n{:#?}",
                now[0], now[1]
            );
        }
        self.older = std::mem::replace(&mut self.last, now);
        self.late = lates;
    }

    /// The node catches up and the chain goes on; the scan runs, every queued check is
    /// delivered, and the upkeep runs (queuing again the checks that were lost), until
    /// nothing is left to do.
    async fn settle(&mut self, step: &str) {
        self.act(&Op::CatchUp).await;
        for round in 0..8 {
            self.apply(&Op::Blocks { n: FINAL }, step).await;
            self.apply(&Op::Scan, step).await;
            // Each check either settles its order or queues one more; a series that never
            // settles would be a check that never ends. (A refund whose transaction a
            // reorg dropped for good waits hours for it: the clock jumps once, midway.)
            for _ in 0..50 {
                if self.r.sent.0.lock().unwrap().is_empty() {
                    break;
                }
                self.apply(&Op::Deliver { i: 0, again: false }, step).await;
            }
            assert!(
                round < 4 || self.r.sent.0.lock().unwrap().is_empty(),
                "{step}\nchecks never end"
            );
            if round == 3 {
                self.now = self.now.plus_seconds(REFUND_DROPPED_AFTER_SECS);
            }
            self.apply(&Op::Later, step).await;
            self.apply(&Op::Upkeep, step).await;
        }
        for o in &self.last {
            assert!(
                !matches!(
                    o.status,
                    OrderStatus::AwaitingConfirmation | OrderStatus::OptimisticConfirmed
                ),
                "{step}\norder {} still waits for confirmations: {:#?}",
                o.id,
                o.transfers
            );
            assert!(
                o.transfers
                    .iter()
                    .all(|t| t.status != TransferStatus::Confirming),
                "{step}\norder {} still has a transfer confirming: {:#?}",
                o.id,
                o.transfers
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(64),
        // No seed files: a seed replays a history only under the strategy that drew it.
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Random histories of two orders sharing a merchant address (B asks 10 or 25 USDC).
    /// In half of them A starts paid and complete, so refunds (and their reorgs) come early.
    #[test]
    fn random_histories_keep_the_money_rules(
        b_amount in prop_oneof![Just(10_000_000u128), Just(25_000_000u128)],
        a_paid in any::<bool>(),
        ops in prop::collection::vec(op(), 1..60),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let mut w = World::new(b_amount).await;
            let mut step = String::new();
            let start = [
                Op::Send { amount: 5 },
                Op::Submit { tx: 2, to: 0, stale: false },
                Op::Quiet,
            ];
            let ops = start.iter().filter(|_| a_paid).chain(&ops);
            for op in ops {
                step.push_str(&format!("{op:?}\n"));
                w.apply(op, &step).await;
            }
            step.push_str("(settle)\n");
            w.settle(&step).await;
        });
    }
}
