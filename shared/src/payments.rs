//! Checking a transaction against an order's payment: which of its transfers pay the
//! deposit address in the right currency, and what the amount received means against the
//! locked amount and the order's underpayment tolerance; how many confirmations it
//! needs, whether it has them or was reorged away, and when to look again. Pure rules;
//! the functions that read chains and write orders call these.

use crate::chains::{ChainError, ChainTx, Inclusion, Transfer, TxReader};
use crate::model::{Address, ChainFamily, ChainId, Payment, RawAmount, TxClaim, TxHash};
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
/// Whether two texts name the same address on a chain of `family` (EVM: any case).
pub(crate) fn same(family: ChainFamily, a: &str, b: &str) -> bool {
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
    let family = payment.family();
    let deposit = payment.deposit_address();
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

/// Why a submitted transaction cannot be taken as a payment of the order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the chain does not know this transaction")]
    NotFound,
    #[error("the transaction is not mined yet")]
    Pending,
    #[error(transparent)]
    Mismatch(#[from] PaymentMismatch),
    #[error(transparent)]
    Chain(#[from] ChainError),
}

impl VerifyError {
    pub fn code(&self) -> &'static str {
        match self {
            VerifyError::NotFound => "TX_NOT_FOUND",
            VerifyError::Pending => "TX_PENDING",
            VerifyError::Mismatch(m) => m.code(),
            VerifyError::Chain(_) => "CHAIN_UNAVAILABLE",
        }
    }
}

/// A mined, successful transaction that pays an order: where it is, how much it brings
/// and the transfers it claims (each may pay one order, ever).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedPayment {
    pub inclusion: Inclusion,
    pub amount: RawAmount,
    pub claims: Vec<TxClaim>,
    /// The sender of the first paying transfer.
    pub from: Option<String>,
}

/// The log index under which a transaction's native value is claimed (it has no log).
pub const NATIVE_VALUE_CLAIM_INDEX: u64 = u64::MAX;

/// Reads `hash` on the payment's chain and checks it pays `payment`: mined, successful,
/// to the deposit address, in the right currency. Changes nothing; the caller claims the
/// transfers in the same write as the order update.
pub async fn verify_transaction(
    reader: &dyn TxReader,
    payment: &Payment,
    hash: &TxHash,
) -> Result<VerifiedPayment, VerifyError> {
    let tx = reader
        .transaction(hash)
        .await?
        .ok_or(VerifyError::NotFound)?;
    let Some(inclusion) = tx.inclusion.clone() else {
        return Err(VerifyError::Pending);
    };
    let paying = paying_transfers(payment, &tx)?;
    let chain_id = payment.input.currency.chain_id;
    let from = paying.first().map(|t| t.from.clone());
    let mut amount = RawAmount::ZERO;
    let mut claims: Vec<TxClaim> = Vec::new();
    for t in paying {
        amount = amount
            .checked_add(t.amount)
            .ok_or_else(|| ChainError::Malformed("transfer amounts overflow".into()))?;
        let claim = TxClaim {
            chain_id,
            tx_hash: hash.to_string(),
            log_index: t.log_index.unwrap_or(NATIVE_VALUE_CLAIM_INDEX),
        };
        if !claims.contains(&claim) {
            claims.push(claim);
        }
    }
    Ok(VerifiedPayment {
        inclusion,
        amount,
        claims,
        from,
    })
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

    /// A chain that knows one transaction, or none.
    struct OneTx(Option<ChainTx>);

    #[async_trait::async_trait]
    impl TxReader for OneTx {
        async fn transaction(&self, _: &TxHash) -> Result<Option<ChainTx>, ChainError> {
            Ok(self.0.clone())
        }
        async fn head(&self) -> Result<u64, ChainError> {
            Ok(7)
        }
        async fn block_hash(&self, _: u64) -> Result<Option<String>, ChainError> {
            Ok(None)
        }
    }

    #[tokio::test]
    async fn verification_sums_paying_transfers_and_names_each_failure() {
        let usdc = crate::testing::payment(
            "8453:0x833589fcd6edb6e08f4c7c32d4f71b54bda02913",
            1_000_000,
            DEPOSIT,
        );
        let hash = TxHash::parse(ChainFamily::Evm, &format!("0x{}", "ab".repeat(32))).unwrap();
        let verify = |tx: Option<ChainTx>| {
            let usdc = usdc.clone();
            async move { verify_transaction(&OneTx(tx), &usdc, &hash).await }
        };

        // Two Transfer logs to the deposit address (and one elsewhere): both count.
        let ok = verify(Some(tx(
            true,
            vec![
                transfer(Some(USDC), DEPOSIT, 600_000, Some(3)),
                transfer(Some(USDC), OTHER, 1, Some(4)),
                transfer(Some(USDC), DEPOSIT, 500_000, Some(5)),
            ],
        )))
        .await
        .unwrap();
        assert_eq!(ok.amount, RawAmount::from_u128(1_100_000));
        assert_eq!(ok.inclusion.block_number, 7);
        let keys: Vec<String> = ok.claims.iter().map(TxClaim::key).collect();
        assert_eq!(
            keys,
            [
                format!("8453#0x{}#3", "ab".repeat(32)),
                format!("8453#0x{}#5", "ab".repeat(32))
            ]
        );

        let pending = ChainTx {
            inclusion: None,
            transfers: vec![transfer(Some(USDC), DEPOSIT, 1_000_000, Some(0))],
        };
        let cases = [
            (None, "TX_NOT_FOUND"),
            (Some(pending), "TX_PENDING"),
            (
                Some(tx(false, vec![transfer(Some(USDC), DEPOSIT, 1, Some(0))])),
                "TX_FAILED",
            ),
            (
                Some(tx(true, vec![transfer(Some(USDC), OTHER, 1, Some(0))])),
                "WRONG_RECIPIENT",
            ),
            (
                Some(tx(true, vec![transfer(None, DEPOSIT, 1, None)])),
                "WRONG_TOKEN",
            ),
        ];
        for (tx, code) in cases {
            assert_eq!(verify(tx).await.unwrap_err().code(), code);
        }

        // The native value has no log: it is claimed under one fixed index.
        let eth = crate::testing::payment("8453:native", 1_000_000, DEPOSIT);
        let native = OneTx(Some(tx(true, vec![transfer(None, DEPOSIT, 9, None)])));
        let v = verify_transaction(&native, &eth, &hash).await.unwrap();
        assert_eq!(v.claims.len(), 1);
        assert_eq!(v.claims[0].log_index, NATIVE_VALUE_CLAIM_INDEX);
    }
}
