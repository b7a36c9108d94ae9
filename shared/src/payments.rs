//! Checking a transaction against an order's payment: which of its transfers pay the
//! deposit address in the right currency, and what the amount received means against the
//! locked amount and the order's underpayment tolerance; how many confirmations it
//! needs, whether it has them or was reorged away, and when to look again. Pure rules;
//! the functions that read chains and write orders call these.

use crate::chains::{ChainTx, Inclusion, Transfer};
use crate::model::{Address, ChainFamily, ChainId, Payment, RawAmount};
use crate::registry::registry;

/// Why a transaction does not pay an order. Each is a 422 with its code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PaymentMismatch {
    #[error("the transaction failed on chain")]
    TxFailed,
    #[error("the transaction sends nothing to the order's deposit address")]
    WrongRecipient,
    #[error("the transaction pays the deposit address in another currency")]
    WrongToken,
}

impl PaymentMismatch {
    pub fn code(&self) -> &'static str {
        match self {
            PaymentMismatch::TxFailed => "TX_FAILED",
            PaymentMismatch::WrongRecipient => "WRONG_RECIPIENT",
            PaymentMismatch::WrongToken => "WRONG_TOKEN",
        }
    }
}

/// Two addresses are the same account on a chain family (EVM case-insensitive).
fn same(family: ChainFamily, a: &str, b: &str) -> bool {
    match (Address::parse(family, a), Address::parse(family, b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

/// The transfers of `tx` that pay `payment`: to its deposit address, in its input currency.
pub fn paying_transfers<'a>(
    payment: &Payment,
    tx: &'a ChainTx,
) -> Result<Vec<&'a Transfer>, PaymentMismatch> {
    if tx.inclusion.as_ref().is_some_and(|i| !i.success) {
        return Err(PaymentMismatch::TxFailed);
    }
    let currency = &payment.input.currency;
    let family = registry()
        .chain(currency.chain_id)
        .map(|c| c.family)
        .unwrap_or(ChainFamily::Evm);
    let deposit = payment
        .steps
        .first()
        .map(|s| s.deposit_address.as_str())
        .unwrap_or(payment.recipient.as_str());
    let right_token = |t: &Transfer| match (&currency.address, &t.token) {
        (None, None) => true,
        (Some(want), Some(got)) => same(family, want, got),
        _ => false,
    };
    let to_us: Vec<&Transfer> = tx
        .transfers
        .iter()
        .filter(|t| same(family, &t.to, deposit))
        .collect();
    let paying: Vec<&Transfer> = to_us.iter().copied().filter(|t| right_token(t)).collect();
    match (paying.is_empty(), to_us.is_empty()) {
        (false, _) => Ok(paying),
        (true, false) => Err(PaymentMismatch::WrongToken),
        (true, true) => Err(PaymentMismatch::WrongRecipient),
    }
}

/// What the money received so far means for the order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assessment {
    /// Covers the amount; `over` when it exceeds it.
    Paid { over: bool },
    /// Short of the amount, but within the order's underpayment tolerance.
    PaidWithinTolerance,
    /// Short of the amount beyond the tolerance: this much is still due.
    Partial { remaining: RawAmount },
}

/// Assesses `received` (everything so far) against `required` with a tolerance in bps.
pub fn assess(required: RawAmount, received: RawAmount, underpayment_bps: u32) -> Assessment {
    if received >= required {
        return Assessment::Paid {
            over: received > required,
        };
    }
    let allowance = required
        .mul_bps(underpayment_bps.min(10_000))
        .unwrap_or(RawAmount::ZERO);
    if received >= required.saturating_sub(allowance) {
        Assessment::PaidWithinTolerance
    } else {
        Assessment::Partial {
            remaining: required.saturating_sub(received),
        }
    }
}

/// Confirmations a payment needs: the order's, else the organization's for the chain,
/// else the registry's default for the chain (at least one).
pub fn required_confirmations(order: Option<u32>, org: Option<u32>, chain: ChainId) -> u32 {
    order
        .or(org)
        .or_else(|| registry().chain(chain).ok().map(|c| c.confirmations))
        .unwrap_or(1)
        .max(1)
}

/// Where a recorded payment stands on the chain now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfirmationCheck {
    /// Deep enough: the payment is final.
    Confirmed { confirmations: u64 },
    /// Still in the recorded block, not deep enough yet: look again later.
    Pending { confirmations: u64 },
    /// The transaction is gone, failed, or sits in another block than the one recorded.
    Reorged,
}

/// Compares the inclusion recorded at submission with what the chain says now
/// (`current`: the transaction's inclusion today, `None` if unknown or pending) and counts
/// confirmations as head − block + 1.
pub fn check_confirmations(
    recorded: &Inclusion,
    current: Option<&Inclusion>,
    head: u64,
    required: u32,
) -> ConfirmationCheck {
    let Some(now) = current else {
        return ConfirmationCheck::Reorged;
    };
    if !now.success
        || now.block_number != recorded.block_number
        || !now.block_hash.eq_ignore_ascii_case(&recorded.block_hash)
    {
        return ConfirmationCheck::Reorged;
    }
    let confirmations = (head + 1).saturating_sub(now.block_number);
    if confirmations >= u64::from(required) {
        ConfirmationCheck::Confirmed { confirmations }
    } else {
        ConfirmationCheck::Pending { confirmations }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::*;

    const DEPOSIT: &str = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";
    const OTHER: &str = "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359";
    const USDC: &str = "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913";

    fn payment(currency_id: &str) -> Payment {
        let c = registry().currency_by_id(currency_id).unwrap();
        let amount = Amount::new(RawAmount::from_u128(1_000_000), c.decimals);
        Payment {
            route: "direct".into(),
            payment_rail: "CRYPTO".into(),
            input: PaymentInput {
                currency: c.clone(),
                amount: amount.clone(),
                breakdown: Breakdown {
                    base: amount.clone(),
                    fees: Fees {
                        protocol_fee: amount.clone(),
                        provider_fee: amount.clone(),
                        total_fee: amount.clone(),
                    },
                    gas: amount.clone(),
                    total: amount.clone(),
                },
            },
            output: PaymentOutput {
                currency: c,
                amount,
            },
            steps: vec![PaymentStep {
                kind: "deposit".into(),
                rail: "CRYPTO".into(),
                deposit_address: DEPOSIT.into(),
            }],
            recipient: DEPOSIT.into(),
            expires_at: Timestamp::now(),
            refund: None,
            derivation_index: None,
            exchange_id: None,
        }
    }

    fn transfer(token: Option<&str>, to: &str, amount: u128, log: Option<u64>) -> Transfer {
        Transfer {
            token: token.map(str::to_owned),
            from: OTHER.into(),
            to: to.into(),
            amount: RawAmount::from_u128(amount),
            log_index: log,
        }
    }

    fn tx(success: bool, transfers: Vec<Transfer>) -> ChainTx {
        ChainTx {
            inclusion: Some(Inclusion {
                success,
                block_number: 7,
                block_hash: "0xabc".into(),
            }),
            transfers,
        }
    }

    #[test]
    fn matching_by_recipient_and_token() {
        let usdc = payment("8453:0x833589fcd6edb6e08f4c7c32d4f71b54bda02913");
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
            got.iter().map(|t| t.log_index).collect::<Vec<_>>(),
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
        let eth = payment("8453:native");
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
    fn assessment_against_amount_and_tolerance() {
        let r = |n: u128| RawAmount::from_u128(n);
        assert_eq!(
            assess(r(1_000), r(1_000), 0),
            Assessment::Paid { over: false }
        );
        assert_eq!(
            assess(r(1_000), r(1_001), 0),
            Assessment::Paid { over: true }
        );
        assert_eq!(
            assess(r(1_000), r(999), 0),
            Assessment::Partial { remaining: r(1) }
        );
        // 1% tolerance: 990 passes, 989 does not.
        assert_eq!(
            assess(r(1_000), r(990), 100),
            Assessment::PaidWithinTolerance
        );
        assert_eq!(
            assess(r(1_000), r(989), 100),
            Assessment::Partial { remaining: r(11) }
        );
        assert_eq!(
            assess(r(1_000), r(0), 100),
            Assessment::Partial {
                remaining: r(1_000)
            }
        );
        // Tolerance cannot exceed the whole amount.
        assert_eq!(
            assess(r(1_000), r(0), 20_000),
            Assessment::PaidWithinTolerance
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
        };
        let recorded = at(100, "0xAB", true);
        let same = at(100, "0xab", true);
        assert_eq!(
            check_confirmations(&recorded, Some(&same), 100, 3),
            ConfirmationCheck::Pending { confirmations: 1 }
        );
        assert_eq!(
            check_confirmations(&recorded, Some(&same), 101, 3),
            ConfirmationCheck::Pending { confirmations: 2 }
        );
        assert_eq!(
            check_confirmations(&recorded, Some(&same), 102, 3),
            ConfirmationCheck::Confirmed { confirmations: 3 }
        );
        // A head behind the block (a lagging RPC node) counts as no confirmations.
        assert_eq!(
            check_confirmations(&recorded, Some(&same), 90, 1),
            ConfirmationCheck::Pending { confirmations: 0 }
        );
        for now in [
            None,
            Some(at(100, "0xcd", true)),
            Some(at(101, "0xab", true)),
            Some(at(100, "0xab", false)),
        ] {
            assert_eq!(
                check_confirmations(&recorded, now.as_ref(), 200, 3),
                ConfirmationCheck::Reorged,
                "{now:?}"
            );
        }
    }

    #[test]
    fn confirmation_delay_doubles_up_to_the_sqs_limit() {
        let delays: Vec<u32> = (0..8).map(|a| confirmation_delay(10, a)).collect();
        assert_eq!(delays, [10, 20, 40, 80, 160, 320, 640, 900]);
        assert_eq!(confirmation_delay(10, 40), 900);
        assert_eq!(confirmation_delay(0, 0), 1);
    }
}
