//! Verifying a transaction against an order's payment on its chain: mined, successful,
//! to the deposit address, in the right currency; and which reader answers for a hash.

use super::rules::{mined_before, paying_transfers};
use super::{PaymentError, PaymentMismatch};
use crate::chains::sandbox::{self, SandboxChain};
use crate::chains::{ChainError, Chains, Inclusion, TxReader};
use crate::model::{ChainFamily, PayOrder, Payment, RawAmount, TxClaim, TxHash};
use std::sync::Arc;

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

pub use crate::model::NATIVE_VALUE_POSITION;

/// Reads `hash` on the payment's chain and checks it pays `order` (whose payment is
/// `payment`): mined, successful, to the deposit address, in the right currency, and not
/// mined before the payment details were chosen. Changes nothing; the caller claims the
/// transfers (for the order's organization and mode) in the same write as the order update.
pub async fn verify_transaction(
    reader: &dyn TxReader,
    order: &PayOrder,
    payment: &Payment,
    hash: &TxHash,
) -> Result<VerifiedPayment, VerifyError> {
    let tx = reader
        .transaction(hash)
        .await?
        .ok_or(VerifyError::NotFound)?;
    verify_read(order, payment, hash, &tx)
}

/// [`verify_transaction`] of a transaction already read (`tx`, the chain's answer for
/// `hash`): a caller that has it asks the node no second time, which might answer
/// otherwise (a load-balanced provider's other node).
pub fn verify_read(
    order: &PayOrder,
    payment: &Payment,
    hash: &TxHash,
    tx: &crate::chains::ChainTx,
) -> Result<VerifiedPayment, VerifyError> {
    let Some(inclusion) = tx.inclusion.clone() else {
        return Err(VerifyError::Pending);
    };
    let paying = paying_transfers(payment, tx)?;
    if mined_before(inclusion.timestamp, order.payable_since()) {
        return Err(PaymentMismatch::MinedBeforeOrder.into());
    }
    let chain_id = payment.input.currency.chain_id;
    let tx_hash = hash.to_string();
    let from = paying.first().map(|t| t.from.clone());
    let mut amount = RawAmount::ZERO;
    let mut claims: Vec<TxClaim> = Vec::new();
    for t in paying {
        amount = amount
            .checked_add(t.amount)
            .ok_or_else(|| ChainError::Malformed("transfer amounts overflow".into()))?;
        let position = t.position.unwrap_or(NATIVE_VALUE_POSITION);
        let claim = TxClaim::for_order(order, chain_id, &tx_hash, position);
        if !claims.contains(&claim) {
            // Its refund-side twin is taken by this order too, in the same write: a
            // transfer recorded as this payment can then never be recorded as another
            // order's refund, even by a request racing this one.
            claims.push(claim.other_purpose());
            claims.insert(claims.len() - 1, claim);
        }
    }
    Ok(VerifiedPayment {
        inclusion,
        amount,
        claims,
        from,
    })
}

/// Parses a submitted hash for the order's chain: `WRONG_CHAIN` if it is a hash of the
/// other chain family, `INVALID_TX_HASH` if it is no hash at all.
pub fn parse_hash(payment: &Payment, text: &str) -> Result<TxHash, PaymentError> {
    let (family, chain) = (payment.family(), payment.input.currency.chain_id);
    TxHash::parse(family, text.trim()).map_err(|_| {
        let other = match family {
            ChainFamily::Evm => ChainFamily::Solana,
            ChainFamily::Solana => ChainFamily::Evm,
        };
        if TxHash::parse(other, text.trim()).is_ok() {
            PaymentError::WrongChain(chain)
        } else {
            PaymentError::InvalidHash(chain)
        }
    })
}

/// A transfer's hash as stored on an order: one that does not parse is a corrupt record.
pub(crate) fn stored_hash(
    family: ChainFamily,
    text: &str,
) -> Result<TxHash, crate::store::StoreError> {
    TxHash::parse(family, text)
        .map_err(|e| crate::store::StoreError::Corrupt(format!("stored tx hash {text}: {e}")))
}

/// The reader that answers for `hash`: the sandbox chain for a sandbox hash on a test-mode
/// order, the order's chain otherwise. Live orders never see sandbox transactions.
pub fn reader_for(
    chains: &Chains,
    order: &PayOrder,
    payment: &Payment,
    hash: &TxHash,
) -> Result<Arc<dyn TxReader>, ChainError> {
    if !order.livemode && sandbox::is_sandbox(hash) {
        return Ok(Arc::new(SandboxChain::for_payment(payment)));
    }
    let reader: Arc<dyn TxReader> = chains.get(payment.input.currency.chain_id)?.clone();
    Ok(reader)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chains::ChainTx;
    use crate::model::*;
    use crate::payments::record::tests::awaiting;
    use crate::payments::rules::tests::{DEPOSIT, OTHER, USDC, transfer, tx};

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

    /// A test-mode order waiting for `payment`, its details chosen now.
    pub(crate) fn order_for(payment: &Payment) -> PayOrder {
        let mut o = crate::testing::order(&OrgId::generate(), false, Timestamp::now());
        o.payment = Some(payment.clone());
        o.status = OrderStatus::AwaitingPayment;
        o
    }

    #[tokio::test]
    async fn verification_sums_paying_transfers_and_names_each_failure() {
        let usdc = crate::testing::payment(
            "8453:0x833589fcd6edb6e08f4c7c32d4f71b54bda02913",
            1_000_000,
            DEPOSIT,
        );
        let order = order_for(&usdc);
        let hash = TxHash::parse(ChainFamily::Evm, &format!("0x{}", "ab".repeat(32))).unwrap();
        let verify = |tx: Option<ChainTx>| {
            let (usdc, order) = (usdc.clone(), order.clone());
            async move { verify_transaction(&OneTx(tx), &order, &usdc, &hash).await }
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
        // Claims are the organization's and mode's, by position inside the transaction.
        let keys: Vec<String> = ok.claims.iter().map(TxClaim::key).collect();
        let org = &order.organization_id;
        assert_eq!(
            keys,
            [
                format!("{org}#test#8453#0x{}#3", "ab".repeat(32)),
                // Each with its refund-side twin, taken in the same write.
                format!("{org}#test#8453#0x{}#refund-3", "ab".repeat(32)),
                format!("{org}#test#8453#0x{}#5", "ab".repeat(32)),
                format!("{org}#test#8453#0x{}#refund-5", "ab".repeat(32))
            ]
        );

        let pending = ChainTx {
            inclusion: None,
            transfers: vec![transfer(Some(USDC), DEPOSIT, 1_000_000, Some(0))],
            sender_nonce: None,
        };
        let mut old = tx(
            true,
            vec![transfer(Some(USDC), DEPOSIT, 1_000_000, Some(0))],
        );
        if let Some(i) = old.inclusion.as_mut() {
            i.timestamp = order.payable_since().unix() as u64 - 3_600;
        }
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
            // An hour older than the order's payment details: it pays nothing.
            (Some(old), "TX_BEFORE_ORDER"),
        ];
        for (tx, code) in cases {
            assert_eq!(verify(tx).await.unwrap_err().code(), code);
        }

        // The native value has no log: it is claimed under one fixed position.
        let eth = crate::testing::payment("8453:native", 1_000_000, DEPOSIT);
        let native = OneTx(Some(tx(true, vec![transfer(None, DEPOSIT, 9, None)])));
        let v = verify_transaction(&native, &order_for(&eth), &eth, &hash)
            .await
            .unwrap();
        // The native value's claim and its refund-side twin.
        assert_eq!(v.claims.len(), 2);
        assert_eq!(v.claims[0].position, NATIVE_VALUE_POSITION);
        assert_eq!(v.claims[1], v.claims[0].other_purpose());

        // Another organization, or the live mode of the same one, claims other keys.
        let mut live = order.clone();
        live.livemode = true;
        let mut other_org = order.clone();
        other_org.organization_id = OrgId::generate();
        let c = |o: &PayOrder| TxClaim::for_order(o, ChainId::new(8453).unwrap(), "0xab", 0).key();
        assert_ne!(c(&order), c(&live));
        assert_ne!(c(&order), c(&other_org));
    }

    #[tokio::test]
    async fn only_test_orders_read_sandbox_transactions() {
        let hash = crate::chains::sandbox::new_transaction(
            ChainFamily::Evm,
            RawAmount::from_u128(1_000),
            Timestamp::now(),
        )
        .unwrap();
        let chains = Chains::default();
        let test = awaiting(OrderStatus::AwaitingPayment);
        let payment = test.payment.clone().unwrap();
        let reader = reader_for(&chains, &test, &payment, &hash).unwrap();
        let tx = reader.transaction(&hash).await.unwrap().unwrap();
        assert_eq!(tx.transfers[0].to, DEPOSIT);
        let mut live = test.clone();
        live.livemode = true;
        // A live order asks the real chain (here: none configured) and never the sandbox.
        assert!(matches!(
            reader_for(&chains, &live, &payment, &hash),
            Err(ChainError::NotConfigured(_))
        ));
    }

    #[test]
    fn hashes_of_the_other_chain_family_are_the_wrong_chain() {
        let base = awaiting(OrderStatus::AwaitingPayment).payment.unwrap();
        assert!(parse_hash(&base, &format!("0x{}", "ab".repeat(32))).is_ok());
        assert!(matches!(
            parse_hash(&base, &"5".repeat(88)),
            Err(PaymentError::WrongChain(_))
        ));
        assert!(matches!(
            parse_hash(&base, "0x12"),
            Err(PaymentError::InvalidHash(_))
        ));
    }
}
