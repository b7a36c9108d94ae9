//! The transactions view: every verified transfer of an organization's orders (payments in,
//! refunds out), as one list.
//! Transfers are stored in their orders (each written with the order, under the order's
//! version guard), so this view reads orders, newest first, and lists their transfers;
//! a single transaction is found through its claims, as the payment rules record them.

use crate::model::{
    ChainId, KeyMode, OrderId, OrderRefund, OrgId, PayOrder, ReceivedTransfer, RefundStatus,
    RefundTransfer, Timestamp, TransferStatus, TxClaim, TxHash,
};
use crate::registry::registry;
use crate::store::{Cursor, ListWindow, OrderFilter, Page, Store, StoreResult};
use serde_json::{Value, json};

/// The most orders one page reads before it answers (with `has_more` and a cursor to go on).
pub const MAX_ORDERS_PER_PAGE: usize = 500;

/// Which way the money went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Into the merchant's address: a payment of an order.
    Payment,
    /// Out of it: a refund.
    Refund,
}

/// What a list keeps.
#[derive(Debug, Clone, Default)]
pub struct TransactionFilter {
    pub chain_id: Option<ChainId>,
    /// A currency id (`8453:0x…`).
    pub currency: Option<String>,
    pub direction: Option<Direction>,
    pub status: Option<TransferStatus>,
    pub order_id: Option<OrderId>,
    /// When the transfer was detected.
    pub created_gte: Option<Timestamp>,
    pub created_lte: Option<Timestamp>,
}

impl TransactionFilter {
    fn keeps(&self, direction: Direction, status: TransferStatus, detected_at: Timestamp) -> bool {
        self.direction.is_none_or(|d| d == direction)
            && self.status.is_none_or(|s| s == status)
            && self.created_gte.is_none_or(|g| detected_at >= g)
            && self.created_lte.is_none_or(|l| detected_at <= l)
    }
}

/// A refund transfer's status in a payment transfer's words: confirming until the refund
/// succeeded, then confirmed; reorged while a reorg has it out of its block (the refund
/// waits for it to be mined again). `None` for a refund with no transfer in flight.
fn refund_transfer_status(r: &OrderRefund) -> Option<TransferStatus> {
    match r.status {
        RefundStatus::Pending | RefundStatus::Cancelled => None,
        RefundStatus::Confirming if r.transfer.as_ref().is_some_and(|t| t.reorged_at.is_some()) => {
            Some(TransferStatus::Reorged)
        }
        RefundStatus::Confirming => Some(TransferStatus::Confirming),
        RefundStatus::Succeeded => Some(TransferStatus::Confirmed),
    }
}

/// A refund transfer of `order` as the API shows it.
pub fn refund_view(order: &PayOrder, r: &OrderRefund, t: &RefundTransfer) -> Value {
    json!({
        "object": "transaction",
        "direction": "refund",
        "chain_id": r.chain_id,
        "tx_hash": t.tx_hash,
        "status": refund_transfer_status(r),
        "confirmations": t.confirmations,
        "required_confirmations": t.required_confirmations,
        "block_number": t.block_number,
        "block_hash": t.block_hash,
        "from": r.instructions.from,
        "to": r.address,
        "amount": t.amount,
        "currency": r.currency,
        "order_id": order.id,
        "refund_id": r.id,
        "livemode": order.livemode,
        "sandbox": t.sandbox,
        "detected_at": t.detected_at,
        "mined_at": t.mined_at,
        "confirmed_at": r.succeeded_at,
    })
}

/// A payment transfer of `order` as the API shows it.
pub fn payment_view(order: &PayOrder, t: &ReceivedTransfer) -> Value {
    let payment = order.payment.as_ref();
    let currency = payment.map(|p| &p.input.currency);
    json!({
        "object": "transaction",
        "direction": "payment",
        "chain_id": currency.map(|c| c.chain_id),
        "tx_hash": t.tx_hash,
        "status": t.status,
        "confirmations": t.confirmations,
        "required_confirmations": t.required_confirmations,
        "block_number": t.block_number,
        "block_hash": t.block_hash,
        "from": t.from_address,
        "to": payment.map(|p| p.deposit_address()),
        "amount": t.amount,
        "currency": currency,
        "order_id": order.id,
        "livemode": order.livemode,
        "sandbox": t.sandbox,
        "detected_at": t.detected_at,
        "mined_at": t.mined_at,
        "confirmed_at": t.confirmed_at,
    })
}

/// The transactions of one order that `f` keeps, newest first. Its transfers, payments and
/// refunds alike, are in the payment's currency (the payer's, on a routed payment, not the
/// one the order settles in): the chain and currency filters match that.
pub fn transactions_of_order(order: &PayOrder, f: &TransactionFilter) -> Vec<Value> {
    let paid_in = order.payment.as_ref().map(|p| &p.input.currency);
    let chain_ok = f
        .chain_id
        .is_none_or(|c| paid_in.is_some_and(|p| p.chain_id == c));
    let currency_ok = f
        .currency
        .as_deref()
        .is_none_or(|c| paid_in.is_some_and(|p| p.id == c));
    if !(chain_ok && currency_ok) {
        return Vec::new();
    }
    let mut found: Vec<(Timestamp, Value)> = order
        .transfers
        .iter()
        .filter(|t| f.keeps(Direction::Payment, t.status, t.detected_at))
        .map(|t| (t.detected_at, payment_view(order, t)))
        .collect();
    for r in &order.refunds {
        if let (Some(t), Some(status)) = (&r.transfer, refund_transfer_status(r))
            && f.keeps(Direction::Refund, status, t.detected_at)
        {
            found.push((t.detected_at, refund_view(order, r, t)));
        }
    }
    found.sort_by_key(|(at, _)| std::cmp::Reverse(*at));
    found.into_iter().map(|(_, v)| v).collect()
}

/// A page of transactions, by their orders newest first (and newest first inside an
/// order). A page ends at an order's edge once it holds `limit` transactions (so it may
/// hold a few more), or after [`MAX_ORDERS_PER_PAGE`] orders; `next_cursor` goes on from
/// the last order read.
pub async fn list_transactions(
    store: &dyn Store,
    w: &ListWindow,
    f: &TransactionFilter,
) -> StoreResult<Page<Value>> {
    let want = w.limit.clamp(1, 100) as usize;
    let mut orders = ListWindow {
        limit: 100,
        // A transfer is detected after its order was created: later orders cannot hold one.
        created_gte: None,
        created_lte: f.created_lte,
        ..w.clone()
    };
    // Orders are filtered by the currency they settle in, transactions by the one they
    // were paid in (see [`transactions_of_order`]): the chain and currency filters apply
    // to each order read, not to the read.
    let order_filter = OrderFilter::default();
    let (mut data, mut read) = (Vec::new(), 0usize);
    loop {
        let page = store.list_orders(&orders, &order_filter).await?;
        for (i, order) in page.data.iter().enumerate() {
            data.extend(transactions_of_order(order, f));
            read += 1;
            let more_here = i + 1 < page.data.len() || page.has_more;
            if (data.len() >= want || read >= MAX_ORDERS_PER_PAGE) && more_here {
                let after = crate::store::keys::sort_key(order.created_at, order.id.as_str());
                return Ok(Page {
                    data,
                    has_more: true,
                    next_cursor: Some(Cursor::after(&after).encode()),
                });
            }
        }
        match page.next_cursor.as_deref().map(Cursor::decode) {
            Some(Ok(c)) if page.has_more => orders.cursor = Some(c),
            _ => {
                return Ok(Page {
                    data,
                    has_more: false,
                    next_cursor: None,
                });
            }
        }
    }
}

/// The transfers of transaction `hash` on `chain` to this organization's orders, in this
/// mode. `None` when the hash is not a transaction hash of that chain.
pub async fn find_transaction(
    store: &dyn Store,
    org: &OrgId,
    mode: KeyMode,
    chain: ChainId,
    hash: &str,
) -> StoreResult<Option<Vec<Value>>> {
    let Ok(info) = registry().chain(chain) else {
        return Ok(None);
    };
    let Ok(hash) = TxHash::parse(info.family, hash) else {
        return Ok(None);
    };
    let text = hash.to_string();
    // The claims a payment of this transaction made: its native value, or its token
    // transfers by their position inside the transaction.
    let positions = [crate::model::NATIVE_VALUE_POSITION, 0, 1, 2, 3];
    let mut orders: Vec<OrderId> = Vec::new();
    for position in positions {
        // A payment's claim (a refund's transfer holds its twin there too).
        let claim = TxClaim {
            organization_id: org.clone(),
            livemode: mode.is_live(),
            chain_id: chain,
            tx_hash: text.clone(),
            position,
            refund: false,
        };
        if let Some(o) = store.get_tx_claim(&claim.key()).await?
            && !orders.contains(&o)
        {
            orders.push(o);
        }
    }
    let mut found = Vec::new();
    for id in orders {
        let Some(order) = store.get_order(&id).await? else {
            continue;
        };
        if order.organization_id != *org || order.livemode != mode.is_live() {
            continue;
        }
        found.extend(
            transactions_of_order(&order, &TransactionFilter::default())
                .into_iter()
                .filter(|v| {
                    v["tx_hash"]
                        .as_str()
                        .is_some_and(|h| h.eq_ignore_ascii_case(&text))
                }),
        );
    }
    Ok(Some(found))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A routed payment is paid on one chain and settles on another: its transactions are
    /// the payer's, and the chain and currency filters find them there, where their rows
    /// say they are, not under the settlement's chain.
    #[test]
    fn a_routed_payment_s_transactions_are_filtered_by_the_payer_s_currency() {
        let mut o = crate::testing::order(&OrgId::generate(), false, Timestamp::now());
        assert_eq!(o.chain_id(), ChainId::new(8453).ok());
        o.payment = Some(crate::testing::payment(
            "1:native",
            1_000,
            "0x1111111111111111111111111111111111111111",
        ));
        let hash = format!("0x{}", "ab".repeat(32));
        o.transfers = vec![crate::testing::transfer(
            &hash,
            1_000,
            18,
            TransferStatus::Confirmed,
        )];
        let rows = |chain: Option<u64>, currency: Option<&str>| {
            let f = TransactionFilter {
                chain_id: chain.map(|c| ChainId::new(c).unwrap()),
                currency: currency.map(str::to_owned),
                ..TransactionFilter::default()
            };
            transactions_of_order(&o, &f)
        };
        let all = rows(None, None);
        assert_eq!(all.len(), 1);
        assert_eq!(all[0]["chain_id"], 1);
        assert_eq!(rows(Some(1), None).len(), 1);
        assert_eq!(rows(None, Some("1:native")).len(), 1);
        assert!(rows(Some(8453), None).is_empty());
        let settles_in = o.currency_id().unwrap().to_owned();
        assert!(rows(None, Some(&settles_in)).is_empty());
    }
}
