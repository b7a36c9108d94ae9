//! `POST /pay-orders/{id}/payments {tx_hash, chain_id?}`, and seed 000's
//! `GET /pay-orders/{id}/process?tx_hash=`: the payer (or the merchant for them) names the
//! transaction that paid the order. It is verified on the order's chain (recipient, token,
//! success, amount) and recorded with its claim in one write: AWAITING_CONFIRMATION when it
//! covers the amount within the order's tolerance, PARTIAL_PAYMENT with the remainder when
//! it does not. A transaction that does not pay this order is a 422 with a precise code and
//! changes nothing. Submitting the same transaction again answers the order as it is.

use payorders::http::{self, ApiError, Body, Request, Response, render};
use payorders::payments::VerifyError;
use payorders::payments::{self, PaymentError, Settler};
use payorders::runtime::Services;
use payorders::*;
use serde_json::Value;

pub async fn handler(
    svc: &Services,
    settler: &Settler,
    req: Request,
) -> Result<Response<Body>, lambda_http::Error> {
    Ok(http::serve(&req, |rid| submit(svc, settler, &req, rid)).await)
}

async fn submit(
    svc: &Services,
    settler: &Settler,
    req: &Request,
    rid: String,
) -> Result<Response<Body>, ApiError> {
    let ctx = http::auth(req)?;
    let id = http::path_id(req, "id", "pay order", OrderId::parse)?;
    if req.method() == "GET" {
        http::no_body(req)?;
        let q = http::query(req, &["tx_hash"])?;
        let hash = q.get("tx_hash").ok_or_else(|| {
            ApiError::invalid("MISSING_TX_HASH", "tx_hash", "tx_hash is required")
        })?;
        let order = get_order::load_own_order(&*svc.store, &ctx, &id).await?;
        return pay(settler, &order, hash, None).await;
    }
    http::idempotent(&*svc.store, &ctx, req, &rid, || async {
        let body =
            http::signed_json(&*svc.store, &ctx, req, false, &["tx_hash", "chain_id"]).await?;
        let hash = match body.get("tx_hash") {
            Some(Value::String(h)) => h.clone(),
            None | Some(Value::Null) => {
                return Err(ApiError::invalid(
                    "MISSING_TX_HASH",
                    "tx_hash",
                    "tx_hash is required",
                ));
            }
            Some(_) => {
                return Err(ApiError::invalid(
                    "INVALID_TX_HASH",
                    "tx_hash",
                    "tx_hash must be a string",
                ));
            }
        };
        let chain =
            match body.get("chain_id") {
                None | Some(Value::Null) => None,
                Some(v) => Some(v.as_u64().and_then(|n| ChainId::new(n).ok()).ok_or_else(
                    || {
                        ApiError::invalid(
                            "INVALID_CHAIN_ID",
                            "chain_id",
                            "chain_id must be a positive integer chain id",
                        )
                    },
                )?),
            };
        let order = get_order::load_own_order(&*svc.store, &ctx, &id).await?;
        pay(settler, &order, &hash, chain).await
    })
    .await
}

/// Verifies and records `hash` for `order`; shared with simulate-payment.
pub async fn pay(
    settler: &Settler,
    order: &PayOrder,
    hash: &str,
    chain: Option<ChainId>,
) -> Result<Response<Body>, ApiError> {
    let payment = order
        .payment
        .as_ref()
        .ok_or_else(|| api_error(PaymentError::NoPaymentDetails))?;
    let order_chain = payment.input.currency.chain_id;
    if chain.is_some_and(|c| c != order_chain) {
        return Err(api_error(PaymentError::WrongChain(order_chain)).with_param("chain_id"));
    }
    let hash = payments::parse_hash(payment, hash).map_err(api_error)?;
    let recorded = payments::record_payment(settler, &order.id, &hash, Timestamp::now())
        .await
        .map_err(api_error)?;
    Ok(http::json(200, &render::order(&recorded.order)))
}

/// The one mapping of pipeline errors to API errors.
pub fn api_error(e: PaymentError) -> ApiError {
    let code = e.code();
    let message = e.to_string();
    match e {
        PaymentError::InvalidHash(_) => ApiError::invalid(code, "tx_hash", message),
        PaymentError::WrongChain(_) | PaymentError::AlreadyUsed => {
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
