//! Refunds of a pay order: money the merchant sends back from the address the order was
//! paid to (non-custodial: the service never holds funds). Refunds live inside the order
//! document, so every refund write is the order's versioned write and two refunds created
//! at once cannot together exceed what was received.

use super::{Amount, ChainId, Currency, RefundId, Timestamp};
use serde::{Deserialize, Serialize};

wire_enum!(
    /// Where a refund is: `pending` (waiting for the merchant's transfer), `confirming`
    /// (the transfer is recorded: gaining confirmations, or waited for after a reorg), `succeeded` (final on chain),
    /// `cancelled` (the merchant withdrew it while pending; it holds nothing any more).
    /// A refund whose transfer a reorg took out of its block stays `confirming` while the
    /// transaction can still be mined (it usually is, again, soon after): back to
    /// `pending` only once it is mined again failed or no longer sending the refund, or no
    /// node has shown it for 3 hours.
    RefundStatus {
        Pending = "pending",
        Confirming = "confirming",
        Succeeded = "succeeded",
        Cancelled = "cancelled",
    }
);

/// What the merchant must send for a refund: `amount.raw` base units of `currency`
/// (`token` is its contract, `null` for the native coin) on `chain_id`, to `to`, from `from`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RefundInstructions {
    pub chain_id: ChainId,
    pub token: Option<String>,
    /// The address the order was paid to: the refund is sent from there.
    pub from: String,
    pub to: String,
    pub amount: Amount,
}

/// The account that sent a transaction and the nonce it spent (EVM). Two transactions of one
/// account with one nonce cannot both be mined: a wallet's "speed up" or "cancel" sends the
/// same nonce again for that reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SenderNonce {
    pub sender: String,
    pub nonce: u64,
}

/// The refund transfer the merchant submitted, as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RefundTransfer {
    pub tx_hash: String,
    /// What the transaction sent to the refund address in the order's currency.
    pub amount: Amount,
    pub confirmations: u64,
    pub required_confirmations: u32,
    pub block_number: u64,
    pub block_hash: String,
    pub detected_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mined_at: Option<Timestamp>,
    /// A simulated transfer on the sandbox chain (test mode only).
    #[serde(default)]
    pub sandbox: bool,
    /// When a reorg took the transaction out of the block above, while it is in no final
    /// block again (`block_number` and `block_hash` are where it was): the refund waits for
    /// it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reorged_at: Option<Timestamp>,
    /// About when a node last showed the transaction while the refund waits for it (in the
    /// mempool, or mined again not final): written at most once an hour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seen_at: Option<Timestamp>,
    /// The account that sent the transaction and its nonce (EVM; absent on Solana and the
    /// sandbox). While a reorg has the refund wait for the transaction, another one takes its
    /// place only if it spends this same nonce, so that the two cannot both be mined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_nonce: Option<SenderNonce>,
}

impl RefundTransfer {
    /// In a block again with `confirmations` (followed there, back where it was, or final):
    /// no longer waited for after a reorg.
    pub fn in_block(&mut self, confirmations: u64) {
        self.confirmations = confirmations;
        self.reorged_at = None;
        self.seen_at = None;
    }
}

/// One refund of an order (`re_…`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OrderRefund {
    pub id: RefundId,
    pub status: RefundStatus,
    /// How much is refunded, in the currency the order was paid in.
    pub amount: Amount,
    pub currency: Currency,
    pub chain_id: ChainId,
    /// Where the refund goes.
    pub address: String,
    pub reason: String,
    pub created_at: Timestamp,
    /// Exactly what to send.
    pub instructions: RefundInstructions,
    /// The refund transfer, once submitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer: Option<RefundTransfer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub succeeded_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancelled_at: Option<Timestamp>,
}
