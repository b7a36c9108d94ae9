//! Pure payment rules: which transfers of a transaction pay an order, what the amount
//! received means against the locked amount and the tolerance, how many confirmations a
//! payment needs, whether it has them or was reorged away, and when to look again.

use crate::chains::{ChainTx, Inclusion, Transfer};
use crate::model::{
    Address, Amount, OrderStatus, PayOrder, Payment, PaymentTolerance, RawAmount, ReceivedTransfer,
    Timestamp, TransferStatus, counted, sum_of,
};

/// Why a transaction does not pay an order. Each is a 422 with its code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PaymentMismatch {
    #[error("the transaction failed on chain")]
    TxFailed,
    #[error(
        "the transaction was mined before this order's payment details were chosen; an older transfer cannot pay it"
    )]
    MinedBeforeOrder,
    #[error(
        "the transaction sends nothing to the order's deposit address (a native coin counts only when the transaction itself sends it there: value a contract passes on, as smart-contract wallets do, is not seen)"
    )]
    WrongRecipient,
    #[error("the transaction pays the deposit address in another currency")]
    WrongToken,
    #[error(
        "the transaction makes more than 32 transfers to the deposit address; one payment makes fewer"
    )]
    TooManyTransfers,
    #[error(
        "the order has recorded {} transactions, the most one order takes; past that only a transaction paying all that is still due is recorded",
        MAX_ORDER_TRANSACTIONS
    )]
    TooManyPayments,
}

impl PaymentMismatch {
    pub fn code(&self) -> &'static str {
        match self {
            PaymentMismatch::TxFailed => "TX_FAILED",
            PaymentMismatch::MinedBeforeOrder => "TX_BEFORE_ORDER",
            PaymentMismatch::WrongRecipient => "WRONG_RECIPIENT",
            PaymentMismatch::WrongToken => "WRONG_TOKEN",
            PaymentMismatch::TooManyTransfers => "TOO_MANY_TRANSFERS",
            PaymentMismatch::TooManyPayments => "TOO_MANY_PAYMENTS",
        }
    }
}

/// The most transfers to the deposit address that one transaction may pay with. Each is
/// claimed in the write that records the payment, and a DynamoDB transaction takes at most
/// 100 items: a transaction of many dust transfers (free to make with zero-value
/// `transferFrom` calls) must be refused as a payment, not fail every write, and with it
/// the deposit scan of its chain, for good.
pub const MAX_PAYING_TRANSFERS: usize = 32;

/// The most transactions one order records as payments. Each is kept on the order, which is
/// one item (at most 400 KB on DynamoDB) and is carried by each of its events: a stream of
/// tiny transfers, a few cents each on an L2, must be refused once this many are recorded,
/// not grow the order until no write of it fits, which would fail the deposit scan of its
/// whole chain at every run. No real sale takes a hundred top-ups. Past the limit one
/// more is recorded if it pays all that is still due, so dust cannot keep a payment out.
pub const MAX_ORDER_TRANSACTIONS: usize = 100;

/// The transfers of `tx` that pay `payment`: to its deposit address, in its input currency,
/// of more than nothing (a zero-value transfer, which anyone can emit to any address, pays
/// nothing and claims nothing), from anyone but that address (the merchant moving money
/// the address already had, say beside a refund in one transaction, pays no order).
pub fn paying_transfers<'a>(
    payment: &Payment,
    tx: &'a ChainTx,
) -> Result<Vec<&'a Transfer>, PaymentMismatch> {
    if tx.inclusion.as_ref().is_some_and(|i| !i.success) {
        return Err(PaymentMismatch::TxFailed);
    }
    let currency = &payment.input.currency;
    let family = payment.family();
    let deposit = payment.deposit_address();
    let right_token = |t: &Transfer| match (&currency.address, &t.token) {
        (None, None) => true,
        (Some(want), Some(got)) => Address::same(family, want, got),
        _ => false,
    };
    let to_us: Vec<&Transfer> = tx
        .transfers
        .iter()
        .filter(|t| {
            !t.amount.is_zero()
                && Address::same(family, &t.to, deposit)
                && !Address::same(family, &t.from, deposit)
        })
        .collect();
    let paying: Vec<&Transfer> = to_us.iter().copied().filter(|t| right_token(t)).collect();
    if paying.len() > MAX_PAYING_TRANSFERS {
        return Err(PaymentMismatch::TooManyTransfers);
    }
    match (paying.is_empty(), to_us.is_empty()) {
        (false, _) => Ok(paying),
        (true, false) => Err(PaymentMismatch::WrongToken),
        (true, true) => Err(PaymentMismatch::WrongRecipient),
    }
}

/// What the money received so far means for the order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assessment {
    /// Covers the amount; `over` when it exceeds it by more than the overpayment threshold.
    Paid { over: bool },
    /// Short of the amount, but within the order's underpayment tolerance.
    PaidWithinTolerance,
    /// Short of the amount beyond the tolerance: this much is still due.
    Partial { remaining: RawAmount },
}

/// Assesses `received` (everything so far) against `required` with the order's tolerance:
/// short by up to `underpayment_bps` is paid within tolerance; over by up to
/// `overpayment_threshold_bps` is paid, not overpaid.
pub fn assess(required: RawAmount, received: RawAmount, tolerance: PaymentTolerance) -> Assessment {
    if received >= required {
        let margin = required
            .mul_bps(tolerance.overpayment_threshold_bps.min(10_000))
            .unwrap_or(RawAmount::ZERO);
        let limit = required.checked_add(margin).unwrap_or(required);
        return Assessment::Paid {
            over: received > limit,
        };
    }
    let allowance = required
        .mul_bps(tolerance.underpayment_bps.min(10_000))
        .unwrap_or(RawAmount::ZERO);
    if received >= required.saturating_sub(allowance) {
        Assessment::PaidWithinTolerance
    } else {
        Assessment::Partial {
            remaining: required.saturating_sub(received),
        }
    }
}

pub use crate::model::required_confirmations;

/// Where a recorded payment stands on the chain now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfirmationCheck {
    /// Deep enough: the payment is final.
    Confirmed { confirmations: u64 },
    /// Still in the recorded block, not deep enough yet: look again later.
    Pending { confirmations: u64 },
    /// The node's answer disagrees with the record but proves nothing (the transaction is
    /// not found, or the node does not have the recorded block): a lagging or load-balanced
    /// RPC looks like this. Look again later; change nothing.
    Unsure,
    /// The recorded block is no longer on the chain: the transfer was reorged away.
    Reorged,
}

/// Whether `current` (the transaction's inclusion as the chain reports it now) is still
/// the successful inclusion recorded at `block_number` / `block_hash`.
pub fn still_included(block_number: u64, block_hash: &str, current: Option<&Inclusion>) -> bool {
    current.is_some_and(|now| {
        now.success
            && now.block_number == block_number
            && now.block_hash.eq_ignore_ascii_case(block_hash)
    })
}

/// Compares the inclusion recorded at submission (`block_number`, `block_hash`) with what
/// the chain says now and counts confirmations as head − block + 1. `current` is the
/// transaction's inclusion today (`None` if the node does not know it or it is pending);
/// `canonical` is the hash the node gives for the recorded height, read only when `current`
/// disagrees with the record (`None` if the node has no block there).
///
/// A reorg is declared only when the chain itself shows another block at the recorded
/// height: one "not found" from a node that is behind is not a reorg.
pub fn check_confirmations(
    block_number: u64,
    block_hash: &str,
    current: Option<&Inclusion>,
    canonical: Option<&str>,
    head: u64,
    required: u32,
) -> ConfirmationCheck {
    if !still_included(block_number, block_hash, current) {
        return match canonical {
            Some(h) if !h.eq_ignore_ascii_case(block_hash) => ConfirmationCheck::Reorged,
            _ => ConfirmationCheck::Unsure,
        };
    }
    let confirmations = crate::chains::confirmations(block_number, head);
    if confirmations >= u64::from(required) {
        ConfirmationCheck::Confirmed { confirmations }
    } else {
        ConfirmationCheck::Pending { confirmations }
    }
}

/// How far a block's timestamp may lag the time an order's payment details were chosen
/// and still pay it: block times and our clock disagree by a few seconds (Ethereum allows
/// a proposer's clock some drift; anvil stamps whole seconds), never by minutes.
pub const MINED_BEFORE_SKEW_SECS: i64 = 120;

/// Whether a transfer in a block stamped `block_time` (unix seconds) was mined before
/// `payable_since` (beyond [`MINED_BEFORE_SKEW_SECS`]): such a transfer pays nothing, so an
/// old transfer to a reused address can never complete a new order.
pub fn mined_before(block_time: u64, payable_since: Timestamp) -> bool {
    let block_time = i64::try_from(block_time).unwrap_or(i64::MAX);
    block_time.saturating_add(MINED_BEFORE_SKEW_SECS) < payable_since.unix()
}

/// Seconds before confirmation check number `attempt` (0 first): doubling from `base`,
/// capped at SQS's largest message delay (900 s).
pub fn confirmation_delay(base_secs: u32, attempt: u32) -> u32 {
    const SQS_MAX_DELAY: u32 = 900;
    base_secs
        .max(1)
        .saturating_mul(1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX))
        .min(SQS_MAX_DELAY)
}

/// What the transfers confirmed on chain add up to (what may be refunded).
pub(crate) fn confirmed(transfers: &[ReceivedTransfer]) -> RawAmount {
    sum_of(transfers, |t| t.status == TransferStatus::Confirmed)
}

/// Whether `order`, as tallied, is paid and now waits for confirmations: an order waiting
/// for a payment whose counted transfers (less what its refunds hold) cover the amount, or
/// an expired one they cover with transfers all mined by its expiry (the payer kept the
/// price lock). The one rule for a payment recorded, a refund cancelled, and a transfer
/// found again after a reorg.
pub(crate) fn paid_now(order: &PayOrder) -> bool {
    match order.status {
        OrderStatus::AwaitingPayment | OrderStatus::PartialPayment => {
            order.payment.as_ref().is_some_and(Payment::is_covered)
        }
        OrderStatus::Expired => order.facts().paid_in_time,
        _ => false,
    }
}

/// Whether a transfer mined at `mined_at`, recorded on `order` as it is now, is a late
/// payment: any payment to a cancelled order (the merchant called the sale off), or one
/// mined after an expired order's `expires_at` (an unknown block time counts as late).
/// When it was seen does not matter: the scan runs once a minute and a payer may submit
/// later.
pub(crate) fn recorded_late(order: &PayOrder, mined_at: Option<Timestamp>) -> bool {
    match order.status {
        OrderStatus::Cancelled => true,
        OrderStatus::Expired => !order.mined_in_time(mined_at),
        _ => false,
    }
}

/// An order paid late before transfers said whether they were late (or rewritten by a
/// version that did not know the flag) has its transfers flagged once, by
/// [`recorded_late`].
pub(crate) fn flag_late_of_old(order: &mut PayOrder) {
    if !order.paid_late || order.transfers.iter().any(|t| t.late) {
        return;
    }
    let late: Vec<bool> = order
        .transfers
        .iter()
        .map(|t| recorded_late(order, t.mined_at))
        .collect();
    for (t, late) in order.transfers.iter_mut().zip(late) {
        t.late = late;
    }
}

/// Sets `received`, `remaining` and the paid facts from the transfers that count. What the
/// order's refunds give back (or hold, until sent) does not count toward the amount: a
/// partial payment refunded and then topped up by the rest of the amount has not paid it,
/// nor overpaid it once the rest and the refunded part came. `received` still says what
/// arrived.
pub(crate) fn tally(order: &mut PayOrder) -> Assessment {
    let received = counted(&order.transfers);
    let kept = received.saturating_sub(super::refunds::committed(order));
    let tolerance = order.payment_tolerance;
    let payment = order
        .payment
        .as_mut()
        .expect("only orders with a payment are tallied");
    let decimals = payment.input.currency.decimals;
    let required = payment.input.amount.raw;
    let verdict = assess(required, kept, tolerance);
    payment.received = Some(Amount::new(received, decimals));
    payment.remaining = match verdict {
        Assessment::Partial { remaining } => Some(Amount::new(remaining, decimals)),
        _ => None,
    };
    order.paid_over = matches!(verdict, Assessment::Paid { over: true });
    flag_late_of_old(order);
    // Paid late while a late payment counts: one reorged away no longer makes it so.
    order.paid_late = order
        .transfers
        .iter()
        .any(|t| t.late && t.status != TransferStatus::Reorged);
    order.underpaid_within_tolerance = verdict == Assessment::PaidWithinTolerance;
    verdict
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::*;

    pub(crate) const DEPOSIT: &str = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";
    pub(crate) const OTHER: &str = "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359";
    pub(crate) const USDC: &str = "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913";

    pub(crate) fn transfer(
        token: Option<&str>,
        to: &str,
        amount: u128,
        log: Option<u64>,
    ) -> Transfer {
        Transfer {
            token: token.map(str::to_owned),
            from: OTHER.into(),
            to: to.into(),
            amount: RawAmount::from_u128(amount),
            position: log,
        }
    }

    pub(crate) fn tx(success: bool, transfers: Vec<Transfer>) -> ChainTx {
        ChainTx {
            inclusion: Some(Inclusion {
                success,
                block_number: 7,
                block_hash: "0xabc".into(),
                timestamp: Timestamp::now().unix() as u64,
            }),
            transfers,
            sender_nonce: None,
        }
    }

    #[test]
    fn matching_by_recipient_and_token() {
        let usdc = crate::testing::payment(
            "8453:0x833589fcd6edb6e08f4c7c32d4f71b54bda02913",
            1_000_000,
            DEPOSIT,
        );
        // Case does not matter for EVM addresses; several logs to us all count.
        let t = tx(
            true,
            vec![
                transfer(
                    Some(&USDC.to_lowercase()),
                    &DEPOSIT.to_lowercase(),
                    600_000,
                    Some(1),
                ),
                transfer(Some(USDC), OTHER, 5, Some(2)),
                transfer(Some(USDC), DEPOSIT, 400_000, Some(3)),
            ],
        );
        let got = paying_transfers(&usdc, &t).unwrap();
        assert_eq!(
            got.iter().map(|t| t.position).collect::<Vec<_>>(),
            [Some(1), Some(3)]
        );
        // Native ETH to us when USDC is due: wrong token. USDC elsewhere: wrong recipient.
        assert_eq!(
            paying_transfers(&usdc, &tx(true, vec![transfer(None, DEPOSIT, 1, None)])),
            Err(PaymentMismatch::WrongToken)
        );
        assert_eq!(
            paying_transfers(
                &usdc,
                &tx(true, vec![transfer(Some(USDC), OTHER, 1, Some(0))])
            ),
            Err(PaymentMismatch::WrongRecipient)
        );
        assert_eq!(
            paying_transfers(&usdc, &tx(true, vec![])),
            Err(PaymentMismatch::WrongRecipient)
        );
        // A failed transaction pays nothing, whatever its logs say.
        assert_eq!(
            paying_transfers(
                &usdc,
                &tx(false, vec![transfer(Some(USDC), DEPOSIT, 1, Some(0))])
            ),
            Err(PaymentMismatch::TxFailed)
        );
        // Native payments match the value transfer.
        let eth = crate::testing::payment("8453:native", 1_000_000, DEPOSIT);
        assert_eq!(
            paying_transfers(&eth, &tx(true, vec![transfer(None, DEPOSIT, 9, None)]))
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            paying_transfers(
                &eth,
                &tx(true, vec![transfer(Some(USDC), DEPOSIT, 9, Some(0))])
            ),
            Err(PaymentMismatch::WrongToken)
        );
        assert_eq!(PaymentMismatch::WrongToken.code(), "WRONG_TOKEN");
    }

    #[test]
    fn zero_value_transfers_pay_nothing_and_a_swarm_of_transfers_is_refused() {
        let usdc = crate::testing::payment(&format!("8453:{}", USDC.to_lowercase()), 10, DEPOSIT);
        // Zero-value logs to the deposit (anyone can emit them) are not paying transfers.
        let zeros = |n: u64| -> Vec<Transfer> {
            (0..n)
                .map(|i| transfer(Some(USDC), DEPOSIT, 0, Some(i)))
                .collect()
        };
        assert_eq!(
            paying_transfers(&usdc, &tx(true, zeros(3))),
            Err(PaymentMismatch::WrongRecipient)
        );
        let mut mixed = zeros(60);
        mixed.push(transfer(Some(USDC), DEPOSIT, 10, Some(60)));
        let t = tx(true, mixed);
        let got = paying_transfers(&usdc, &t).unwrap();
        assert_eq!(
            got.iter().map(|t| t.position).collect::<Vec<_>>(),
            [Some(60)]
        );
        // Up to MAX_PAYING_TRANSFERS paying transfers are one payment; more are refused.
        let dust = |n: u64| -> Vec<Transfer> {
            (0..n)
                .map(|i| transfer(Some(USDC), DEPOSIT, 1, Some(i)))
                .collect()
        };
        let max = MAX_PAYING_TRANSFERS as u64;
        assert_eq!(
            paying_transfers(&usdc, &tx(true, dust(max))).unwrap().len(),
            32
        );
        assert_eq!(
            paying_transfers(&usdc, &tx(true, dust(max + 1))),
            Err(PaymentMismatch::TooManyTransfers)
        );
        assert_eq!(
            PaymentMismatch::TooManyTransfers.code(),
            "TOO_MANY_TRANSFERS"
        );
    }

    #[test]
    fn money_the_deposit_address_sends_itself_pays_nothing() {
        let usdc = crate::testing::payment(&format!("8453:{}", USDC.to_lowercase()), 10, DEPOSIT);
        // One transaction from the deposit address: a refund to the customer and 10 back
        // to itself. The second is not a payment.
        let mut to_self = transfer(Some(USDC), &DEPOSIT.to_lowercase(), 10, Some(1));
        to_self.from = DEPOSIT.into();
        let refund = Transfer {
            from: DEPOSIT.into(),
            ..transfer(Some(USDC), OTHER, 10, Some(0))
        };
        assert_eq!(
            paying_transfers(&usdc, &tx(true, vec![refund, to_self.clone()])),
            Err(PaymentMismatch::WrongRecipient)
        );
        // From anyone else, the same transfer pays.
        to_self.from = OTHER.into();
        assert_eq!(
            paying_transfers(&usdc, &tx(true, vec![to_self]))
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn a_token_of_another_contract_pays_nothing_whatever_its_logs_say() {
        let usdc = crate::testing::payment(&format!("8453:{}", USDC.to_lowercase()), 10, DEPOSIT);
        // Anyone can deploy a contract that emits `Transfer(from, deposit, amount)` events
        // under any name and symbol: only the order's token contract counts.
        const FAKE: &str = "0x00000000000000000000000000000000DeaDBeef";
        let fake = tx(true, vec![transfer(Some(FAKE), DEPOSIT, 10, Some(0))]);
        assert_eq!(
            paying_transfers(&usdc, &fake),
            Err(PaymentMismatch::WrongToken)
        );
        // Beside a real transfer in the same transaction, only the real one is counted.
        let both = tx(
            true,
            vec![
                transfer(Some(FAKE), DEPOSIT, 1_000_000, Some(0)),
                transfer(Some(&USDC.to_lowercase()), DEPOSIT, 4, Some(1)),
            ],
        );
        let got = paying_transfers(&usdc, &both).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].amount, RawAmount::from_u128(4));
        assert_eq!(got[0].position, Some(1));
    }

    #[test]
    fn the_underpayment_allowance_rounds_in_the_merchants_favour() {
        let r = |n: u128| RawAmount::from_u128(n);
        let one_percent = PaymentTolerance {
            underpayment_bps: 100,
            ..Default::default()
        };
        // 1% of 999 is 9.99: 9 may be missing, never 10.
        assert_eq!(
            assess(r(999), r(990), one_percent),
            Assessment::PaidWithinTolerance
        );
        assert_eq!(
            assess(r(999), r(989), one_percent),
            Assessment::Partial { remaining: r(10) }
        );
        // Below 100 base units, 1% allows nothing to be missing.
        assert_eq!(
            assess(r(99), r(98), one_percent),
            Assessment::Partial { remaining: r(1) }
        );
    }

    #[test]
    fn assessment_against_amount_and_tolerance() {
        let r = |n: u128| RawAmount::from_u128(n);
        let under = |bps: u32| PaymentTolerance {
            underpayment_bps: bps,
            ..Default::default()
        };
        assert_eq!(
            assess(r(1_000), r(1_000), under(0)),
            Assessment::Paid { over: false }
        );
        assert_eq!(
            assess(r(1_000), r(1_001), under(0)),
            Assessment::Paid { over: true }
        );
        assert_eq!(
            assess(r(1_000), r(999), under(0)),
            Assessment::Partial { remaining: r(1) }
        );
        // 1% tolerance: 990 passes, 989 does not.
        assert_eq!(
            assess(r(1_000), r(990), under(100)),
            Assessment::PaidWithinTolerance
        );
        assert_eq!(
            assess(r(1_000), r(989), under(100)),
            Assessment::Partial { remaining: r(11) }
        );
        assert_eq!(
            assess(r(1_000), r(0), under(100)),
            Assessment::Partial {
                remaining: r(1_000)
            }
        );
        // Tolerance cannot exceed the whole amount.
        assert_eq!(
            assess(r(1_000), r(0), under(20_000)),
            Assessment::PaidWithinTolerance
        );
        // Over by up to the threshold (1%) is paid, not overpaid.
        let over = PaymentTolerance {
            overpayment_threshold_bps: 100,
            ..Default::default()
        };
        assert_eq!(
            assess(r(1_000), r(1_010), over),
            Assessment::Paid { over: false }
        );
        assert_eq!(
            assess(r(1_000), r(1_011), over),
            Assessment::Paid { over: true }
        );
    }

    #[test]
    fn confirmations_required_fall_back_from_order_to_org_to_registry() {
        let base = ChainId::new(8453).unwrap();
        assert_eq!(required_confirmations(Some(3), Some(20), base), 3);
        assert_eq!(required_confirmations(None, Some(20), base), 20);
        assert_eq!(required_confirmations(None, None, base), 10);
        assert_eq!(required_confirmations(Some(0), None, base), 1);
        assert_eq!(
            required_confirmations(None, None, ChainId::new(999_999).unwrap()),
            1
        );
    }

    #[test]
    fn confirmations_counted_and_reorgs_detected() {
        let at = |block: u64, hash: &str, success: bool| Inclusion {
            success,
            block_number: block,
            block_hash: hash.into(),
            timestamp: 0,
        };
        let check = |current: Option<Inclusion>, canonical: Option<&str>, head: u64| {
            check_confirmations(100, "0xAB", current.as_ref(), canonical, head, 3)
        };
        let same = at(100, "0xab", true);
        assert_eq!(
            check(Some(same.clone()), None, 100),
            ConfirmationCheck::Pending { confirmations: 1 }
        );
        assert_eq!(
            check(Some(same.clone()), None, 101),
            ConfirmationCheck::Pending { confirmations: 2 }
        );
        assert_eq!(
            check(Some(same.clone()), None, 102),
            ConfirmationCheck::Confirmed { confirmations: 3 }
        );
        // A head behind the block (a lagging RPC node) counts as no confirmations.
        assert_eq!(
            check(Some(same.clone()), None, 90),
            ConfirmationCheck::Pending { confirmations: 0 }
        );
        let disagreeing = [
            None,
            Some(at(100, "0xcd", true)),
            Some(at(101, "0xab", true)),
            Some(at(100, "0xab", false)),
        ];
        for now in disagreeing {
            // The chain shows another block at the recorded height: a reorg.
            assert_eq!(
                check(now.clone(), Some("0xcd"), 200),
                ConfirmationCheck::Reorged,
                "{now:?}"
            );
            // The recorded block is still there, or the node has no block at that height
            // (it is behind): one odd answer from a lagging RPC is not a reorg.
            assert_eq!(
                check(now.clone(), Some("0xab"), 200),
                ConfirmationCheck::Unsure
            );
            assert_eq!(check(now.clone(), None, 200), ConfirmationCheck::Unsure);
        }
    }

    #[test]
    fn transfers_mined_before_the_payment_details_pay_nothing() {
        let since = Timestamp::from_unix(1_800_000_000).unwrap();
        let t = since.unix() as u64;
        assert!(!mined_before(t, since));
        assert!(!mined_before(t + 3_600, since));
        // Within the clock skew: block times and our clock may disagree a little.
        assert!(!mined_before(t - MINED_BEFORE_SKEW_SECS as u64, since));
        assert!(mined_before(t - MINED_BEFORE_SKEW_SECS as u64 - 1, since));
        assert!(mined_before(0, since));
        assert!(!mined_before(u64::MAX, since));
    }

    /// A PENDING order of 25 USDC on Base with its payment details.
    fn order_of_25_usdc() -> PayOrder {
        let mut o = crate::testing::order(&OrgId::generate(), false, Timestamp::now());
        o.payment = Some(crate::testing::payment(
            "8453:0x833589fcd6edb6e08f4c7c32d4f71b54bda02913",
            25_000_000,
            DEPOSIT,
        ));
        o
    }

    #[test]
    fn paid_late_follows_the_late_transfers_and_older_orders_are_flagged_by_the_rule() {
        let mut o = order_of_25_usdc();
        let mut late = crate::testing::transfer("0x01", 5_000_000, 6, TransferStatus::Confirming);
        late.late = true;
        let on_time = crate::testing::transfer("0x02", 5_000_000, 6, TransferStatus::Confirming);
        o.transfers = vec![on_time.clone(), late];
        tally(&mut o);
        assert!(o.paid_late);
        o.transfers[1].status = TransferStatus::Reorged;
        tally(&mut o);
        assert!(!o.paid_late);
        // Paid late before transfers said whether they were late: flagged by the rule.
        o.status = OrderStatus::Expired;
        let mut mined_late =
            crate::testing::transfer("0x03", 5_000_000, 6, TransferStatus::Confirming);
        mined_late.mined_at = Some(o.expires_at.plus_seconds(1));
        let mut mined_in_time = on_time;
        mined_in_time.mined_at = Some(o.expires_at);
        o.transfers = vec![mined_in_time, mined_late];
        o.paid_late = true;
        tally(&mut o);
        assert!(o.paid_late);
        assert_eq!(
            o.transfers.iter().map(|t| t.late).collect::<Vec<_>>(),
            [false, true]
        );
        o.transfers[1].status = TransferStatus::Reorged;
        tally(&mut o);
        assert!(!o.paid_late);
        // On a cancelled order every payment was late; on one paid after all, none.
        for (status, late) in [
            (OrderStatus::Cancelled, true),
            (OrderStatus::AwaitingConfirmation, false),
        ] {
            o.status = status;
            o.transfers[1].status = TransferStatus::Confirming;
            o.transfers.iter_mut().for_each(|t| t.late = false);
            o.paid_late = true;
            tally(&mut o);
            assert_eq!(o.paid_late, late, "{status}");
        }
    }

    #[test]
    fn a_late_payment_never_counts_as_paid_in_time() {
        let mut o = order_of_25_usdc();
        o.status = OrderStatus::Expired;
        let mut t = crate::testing::transfer("0x01", 25_000_000, 6, TransferStatus::Confirming);
        t.mined_at = Some(o.expires_at);
        o.transfers = vec![t];
        tally(&mut o);
        assert!(paid_now(&o));
        // Recorded late, then a reorg moved it into a block stamped in time: still late.
        o.transfers[0].late = true;
        tally(&mut o);
        assert!(!paid_now(&o));
        assert!(o.paid_late);
    }

    #[test]
    fn confirmation_delay_doubles_up_to_the_sqs_limit() {
        let delays: Vec<u32> = (0..8).map(|a| confirmation_delay(10, a)).collect();
        assert_eq!(delays, [10, 20, 40, 80, 160, 320, 640, 900]);
        assert_eq!(confirmation_delay(10, 40), 900);
        assert_eq!(confirmation_delay(0, 0), 1);
    }
}
