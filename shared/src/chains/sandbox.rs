//! The sandbox chain: simulated transfers for test mode, so `simulate-payment` runs the
//! same verification and confirmation steps as a real payment.
//!
//! A sandbox transaction carries everything about itself in its hash, so any function can
//! read it back without shared state: the hash starts with the marker `SBX1`, then the
//! amount (16 bytes), the time it was "mined" in milliseconds (8 bytes) and 4 random bytes.
//! On Solana the 32 bytes are followed by 32 zero bytes to make a 64-byte signature.
//! The transfer always pays the order's deposit address in the order's currency. Blocks
//! are [`BLOCK_MS`] long, so confirmations grow by one a second.
//!
//! Only test-mode orders ever resolve a hash on the sandbox chain.

use super::{ChainError, ChainTx, Inclusion, Transfer, TxReader};
use crate::model::{ChainFamily, Payment, RawAmount, Timestamp, TxHash};
use alloy_primitives::{B256, U256};
use async_trait::async_trait;
use sha2::{Digest, Sha256};

const MARKER: &[u8; 4] = b"SBX1";
/// How long a sandbox block lasts.
pub const BLOCK_MS: u64 = 1_000;
/// Who sends sandbox transfers.
const EVM_PAYER: &str = "0x5a4d000000000000000000000000000000005a4d";
const SOLANA_PAYER: &str = "11111111111111111111111111111111";

/// A sandbox transfer as its hash encodes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Encoded {
    amount: u128,
    mined_ms: u64,
}

fn decode(hash: &TxHash) -> Option<Encoded> {
    let bytes: &[u8] = match hash {
        TxHash::Evm(h) => h.as_slice(),
        TxHash::Solana(s) => {
            if s[32..].iter().any(|b| *b != 0) {
                return None;
            }
            &s[..32]
        }
    };
    if &bytes[..4] != MARKER {
        return None;
    }
    Some(Encoded {
        amount: u128::from_be_bytes(bytes[4..20].try_into().ok()?),
        mined_ms: u64::from_be_bytes(bytes[20..28].try_into().ok()?),
    })
}

/// Whether `hash` names a sandbox transaction.
pub fn is_sandbox(hash: &TxHash) -> bool {
    decode(hash).is_some()
}

/// A new sandbox transaction of `amount` mined `at`, on a chain of `family`.
pub fn new_transaction(
    family: ChainFamily,
    amount: RawAmount,
    at: Timestamp,
) -> Result<TxHash, ChainError> {
    let amount: u128 = amount
        .value()
        .try_into()
        .map_err(|_| ChainError::Malformed("sandbox amounts are limited to 128 bits".into()))?;
    let mut bytes = [0u8; 32];
    bytes[..4].copy_from_slice(MARKER);
    bytes[4..20].copy_from_slice(&amount.to_be_bytes());
    bytes[20..28].copy_from_slice(&((at.unix_micros() / 1000) as u64).to_be_bytes());
    getrandom::fill(&mut bytes[28..]).map_err(|e| ChainError::Rpc(e.to_string()))?;
    Ok(match family {
        ChainFamily::Evm => TxHash::Evm(B256::from(bytes)),
        ChainFamily::Solana => {
            let mut sig = [0u8; 64];
            sig[..32].copy_from_slice(&bytes);
            TxHash::Solana(sig)
        }
    })
}

fn block_of(ms: u64) -> u64 {
    ms / BLOCK_MS
}

fn block_hash_of(number: u64) -> String {
    let digest = Sha256::new()
        .chain_update(b"payorders-sandbox-block")
        .chain_update(number.to_be_bytes())
        .finalize();
    format!("{:#x}", B256::from_slice(&digest))
}

/// The sandbox chain as one order's payment (or one of its refunds) sees it.
pub struct SandboxChain {
    token: Option<String>,
    from: String,
    to: String,
}

impl SandboxChain {
    /// Transfers from a sandbox payer to the payment's deposit address.
    pub fn for_payment(payment: &Payment) -> Self {
        let family = payment.family();
        Self {
            token: payment.input.currency.address.clone(),
            from: match family {
                ChainFamily::Evm => EVM_PAYER,
                ChainFamily::Solana => SOLANA_PAYER,
            }
            .to_owned(),
            to: payment.deposit_address().to_owned(),
        }
    }

    /// Transfers from the payment's deposit address to `refund_address` (a simulated
    /// refund the merchant sent).
    pub fn for_refund(payment: &Payment, refund_address: &str) -> Self {
        Self {
            token: payment.input.currency.address.clone(),
            from: payment.deposit_address().to_owned(),
            to: refund_address.to_owned(),
        }
    }
}

#[async_trait]
impl TxReader for SandboxChain {
    async fn transaction(&self, hash: &TxHash) -> Result<Option<ChainTx>, ChainError> {
        let Some(tx) = decode(hash) else {
            return Ok(None);
        };
        let block_number = block_of(tx.mined_ms);
        Ok(Some(ChainTx {
            inclusion: Some(Inclusion {
                success: true,
                block_number,
                block_hash: block_hash_of(block_number),
                timestamp: tx.mined_ms / 1000,
            }),
            transfers: vec![Transfer {
                position: self.token.as_ref().map(|_| 0),
                token: self.token.clone(),
                from: self.from.clone(),
                to: self.to.clone(),
                amount: RawAmount::new(U256::from(tx.amount)),
            }],
            sender_nonce: None,
        }))
    }

    async fn head(&self) -> Result<u64, ChainError> {
        Ok(block_of((Timestamp::now().unix_micros() / 1000) as u64))
    }

    async fn block_hash(&self, number: u64) -> Result<Option<String>, ChainError> {
        Ok((number <= self.head().await?).then(|| block_hash_of(number)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_sandbox_hash_reads_back_as_a_transfer_to_the_deposit() {
        let deposit = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";
        let payment = crate::testing::payment(
            "8453:0x833589fcd6edb6e08f4c7c32d4f71b54bda02913",
            5_000_000,
            deposit,
        );
        let now = Timestamp::now();
        let hash = new_transaction(ChainFamily::Evm, RawAmount::from_u128(1_234_567), now).unwrap();
        assert!(is_sandbox(&hash));
        let again = TxHash::parse(ChainFamily::Evm, &hash.to_string()).unwrap();
        assert_eq!(again, hash);
        let other =
            new_transaction(ChainFamily::Evm, RawAmount::from_u128(1_234_567), now).unwrap();
        assert_ne!(other, hash, "each simulated transaction is distinct");

        let chain = SandboxChain::for_payment(&payment);
        let tx = chain.transaction(&hash).await.unwrap().unwrap();
        let inc = tx.inclusion.unwrap();
        assert!(inc.success);
        assert_eq!(
            inc.block_number,
            (now.unix_micros() / 1000) as u64 / BLOCK_MS
        );
        assert_eq!(
            chain.block_hash(inc.block_number).await.unwrap(),
            Some(inc.block_hash)
        );
        assert_eq!(tx.transfers.len(), 1);
        assert_eq!(tx.transfers[0].to, deposit);
        assert_eq!(tx.transfers[0].amount, RawAmount::from_u128(1_234_567));
        assert_eq!(
            tx.transfers[0].token.as_deref(),
            payment.input.currency.address.as_deref()
        );
        assert!(chain.head().await.unwrap() >= inc.block_number);

        let real = TxHash::parse(ChainFamily::Evm, &format!("0x{}", "ab".repeat(32))).unwrap();
        assert!(!is_sandbox(&real));
        assert_eq!(chain.transaction(&real).await.unwrap(), None);

        let sol = new_transaction(ChainFamily::Solana, RawAmount::from_u128(9), now).unwrap();
        let parsed = TxHash::parse(ChainFamily::Solana, &sol.to_string()).unwrap();
        assert!(is_sandbox(&parsed));
    }
}
