//! The one mapping of payment pipeline errors to API errors, for every route that records
//! a payment (submit-payment, simulate-payment).

use super::ApiError;
use crate::payments::{PaymentError, VerifyError};

pub fn payment_error(e: PaymentError) -> ApiError {
    let code = e.code();
    let message = e.to_string();
    match e {
        PaymentError::InvalidHash(_) => ApiError::invalid(code, "tx_hash", message),
        PaymentError::WrongChain(_) | PaymentError::AlreadyUsed { .. } => {
            ApiError::unprocessable(code, message).with_param("tx_hash")
        }
        PaymentError::NoPaymentDetails => ApiError::unprocessable(code, message),
        PaymentError::NotPayable(_) | PaymentError::WindowClosed(_) | PaymentError::Busy => {
            ApiError::conflict(code, message)
        }
        PaymentError::Verify(VerifyError::Chain(_)) => {
            tracing::warn!(error = %e, "chain unavailable for a payment check");
            ApiError::unavailable(code, message)
        }
        PaymentError::Verify(_) => ApiError::unprocessable(code, message).with_param("tx_hash"),
        PaymentError::Store(s) => s.into(),
        PaymentError::Queue(q) => {
            tracing::error!(error = %q, "could not queue a confirmation check");
            ApiError::unavailable(
                "QUEUE_UNAVAILABLE",
                "the payment is recorded; its confirmation check could not be queued now and is queued again automatically within the hour",
            )
        }
    }
}

/// [`pay`] for a route under [`super::idempotent`]: answers `respond(order)` for the order as
/// recorded, and a new payment keeps that answer for the request's `Idempotency-Key` in its
/// own write ([`crate::payments::record_payment_keeping`]), so a retry after a crash replays
/// it instead of paying again.
pub async fn pay_answering(
    settler: &crate::payments::Settler,
    order: crate::model::PayOrder,
    hash: &str,
    chain: Option<crate::model::ChainId>,
    respond: impl Fn(&crate::model::PayOrder) -> lambda_http::Response<super::Body> + Sync,
) -> Result<lambda_http::Response<super::Body>, ApiError> {
    let keep = super::keeping(&respond);
    let (hash, order) = checked(order, hash, chain)?;
    let recorded = crate::payments::record_payment_keeping(
        settler,
        order,
        &hash,
        crate::model::Timestamp::now(),
        &keep,
    )
    .await
    .map_err(payment_error)?;
    // A new payment's order is the one its kept answer was made from.
    let resp = respond(&recorded.order);
    Ok(if recorded.new {
        super::kept(resp)
    } else {
        resp
    })
}

/// The hash parsed for `order`'s payment, if `chain` (when the caller named one) is the
/// order's.
fn checked(
    order: crate::model::PayOrder,
    hash: &str,
    chain: Option<crate::model::ChainId>,
) -> Result<(crate::model::TxHash, crate::model::PayOrder), ApiError> {
    let payment = order
        .payment
        .as_ref()
        .ok_or_else(|| payment_error(PaymentError::NoPaymentDetails))?;
    let order_chain = payment.input.currency.chain_id;
    if chain.is_some_and(|c| c != order_chain) {
        return Err(payment_error(PaymentError::WrongChain(order_chain)).with_param("chain_id"));
    }
    let hash = crate::payments::parse_hash(payment, hash).map_err(payment_error)?;
    Ok((hash, order))
}

/// Who submits a payment to [`pay`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Submitter {
    /// The merchant, with its key: told which of its orders a transfer already paid.
    Merchant,
    /// Anyone holding the order's id (the checkout page): not told which order a transfer
    /// already paid, since an order id is all a payer holds to see their order, and
    /// transfers to a shared merchant address are there for anyone to submit.
    Payer,
}

/// Verifies `hash` on `order`'s chain and records it, for a route that keeps no answer (the
/// checkout page's submit, the `process` GET); `chain`, if the caller named one, must be the
/// order's. Answers the order as recorded.
pub async fn pay(
    settler: &crate::payments::Settler,
    order: crate::model::PayOrder,
    hash: &str,
    chain: Option<crate::model::ChainId>,
    by: Submitter,
) -> Result<crate::model::PayOrder, ApiError> {
    let (hash, order) = checked(order, hash, chain)?;
    let recorded =
        crate::payments::record_payment_on(settler, order, &hash, crate::model::Timestamp::now())
            .await
            .map_err(|e| match e {
                PaymentError::AlreadyUsed { .. } if by == Submitter::Payer => {
                    payment_error(PaymentError::AlreadyUsed { order: None })
                }
                e => payment_error(e),
            })?;
    Ok(recorded.order)
}
