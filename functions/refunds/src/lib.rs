//! Refunds of a pay order (non-custodial: the merchant sends them from the address the
//! order was paid to):
//!
//! - `POST /pay-orders/{id}/refunds {amount?, address?, reason}` (signed): creates a
//!   `pending` refund of `amount` (all that is left by default) to `address` (the
//!   payment's refund address by default), with exactly what to send;
//! - `GET /pay-orders/{id}/refunds`: the order's refunds, oldest first;
//! - `POST /pay-orders/{id}/refunds/{refund_id}/transactions {tx_hash}`: the merchant's
//!   refund transfer, verified on chain and recorded (`confirming`), then followed by the
//!   confirmation checks to `succeeded` (REFUNDED once everything received is refunded);
//! - `POST /pay-orders/{id}/refunds/{refund_id}/cancel` (signed): withdraws a `pending`
//!   refund (`cancelled`), so what it held may be refunded again;
//! - `POST /pay-orders/{id}/refunds/{refund_id}/simulate` (test-mode keys only): the same
//!   with a transfer mined on the sandbox chain.

use payorders::chains::sandbox;
use payorders::http::{self, ApiError, Body, Params, Request, Response};
use payorders::payments::{
    PaymentError, RefundError, RefundRequest, Settler, cancel_refund, create_refund, parse_hash,
    record_refund,
};
use payorders::runtime::Services;
use payorders::store::StoreError;
use payorders::*;
use serde::Deserialize;
use serde_json::{Value, json};

const MAX_REASON: usize = 500;
/// Re-reads after a concurrent write before giving up with a 409.
const ATTEMPTS: usize = 4;

/// The body of `POST /pay-orders/{id}/refunds`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateRefund {
    /// A decimal string in the currency the order was paid in (e.g. `"12.5"`); all that
    /// may still be refunded when absent.
    amount: Option<String>,
    /// Where to send the refund, on the chain the order was paid on; the payment's refund
    /// address when absent.
    address: Option<String>,
    /// Why (at most 500 characters).
    reason: String,
}

impl Params for CreateRefund {
    fn code(field: &str) -> &'static str {
        match field {
            "amount" => "INVALID_AMOUNT",
            "address" => "INVALID_ADDRESS",
            _ => "INVALID_REASON",
        }
    }
}

/// The body of `POST /pay-orders/{id}/refunds/{refund_id}/transactions`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SubmitRefundTransaction {
    /// The hash of the refund transfer, on the order's chain.
    tx_hash: Option<String>,
}

impl Params for SubmitRefundTransaction {
    fn code(_field: &str) -> &'static str {
        "INVALID_TX_HASH"
    }
}

pub async fn handler(
    svc: &Services,
    settler: &Settler,
    req: Request,
) -> Result<Response<Body>, lambda_http::Error> {
    Ok(http::limits::serve_limited(&*svc.store, &req, |rid| route(svc, settler, &req, rid)).await)
}

async fn route(
    svc: &Services,
    settler: &Settler,
    req: &Request,
    rid: String,
) -> Result<Response<Body>, ApiError> {
    let ctx = http::auth(req)?;
    let id = http::path_id(req, "id", "pay order", OrderId::parse)?;
    let segments = http::path_segments(req);
    let last = segments.last().copied().unwrap_or_default();
    match (req.method().as_str(), segments.len(), last) {
        ("GET", 3, _) => {
            http::no_body(req)?;
            let order = http::load_own_order(&*svc.store, &ctx, &id).await?;
            let data: Vec<Value> = order.refunds.iter().map(|r| view(&order, r)).collect();
            Ok(http::json(
                200,
                &json!({"object": "list", "data": data, "has_more": false, "next_cursor": null}),
            ))
        }
        ("POST", 3, _) => {
            ctx.require_signed("creating a refund")?;
            http::idempotent(&*svc.store, &ctx, req, &rid, || create(svc, &ctx, req, &id)).await
        }
        ("POST", 5, "transactions") => {
            let refund = http::path_id(req, "refund_id", "refund", RefundId::parse)?;
            http::idempotent(&*svc.store, &ctx, req, &rid, || async {
                let body: SubmitRefundTransaction =
                    http::request::signed_json(&*svc.store, &ctx, req, false).await?;
                let hash = body.tx_hash.ok_or_else(|| {
                    ApiError::invalid("MISSING_TX_HASH", "tx_hash", "tx_hash is required")
                })?;
                let order = http::load_own_order(&*svc.store, &ctx, &id).await?;
                submit(settler, &order, &refund, &hash).await
            })
            .await
        }
        ("POST", 5, "cancel") => {
            ctx.require_signed("cancelling a refund")?;
            let refund = http::path_id(req, "refund_id", "refund", RefundId::parse)?;
            http::idempotent(&*svc.store, &ctx, req, &rid, || async {
                let _: http::request::NoFields =
                    http::request::signed_json(&*svc.store, &ctx, req, true).await?;
                cancel(svc, settler, &ctx, &id, &refund).await
            })
            .await
        }
        ("POST", 5, "simulate") => {
            if ctx.livemode() {
                return Err(ApiError::forbidden(
                    "TEST_MODE_ONLY",
                    "simulated refunds are for test-mode keys only",
                ));
            }
            let refund = http::path_id(req, "refund_id", "refund", RefundId::parse)?;
            http::idempotent(&*svc.store, &ctx, req, &rid, || async {
                // No body, or an empty object: the refund says what to send.
                let _: http::request::NoFields =
                    http::request::signed_json(&*svc.store, &ctx, req, true).await?;
                let order = http::load_own_order(&*svc.store, &ctx, &id).await?;
                let r = own_refund(&order, &refund)?;
                let family = order
                    .payment
                    .as_ref()
                    .ok_or_else(|| refund_error(PaymentError::NoPaymentDetails.into()))?
                    .family();
                let hash = sandbox::new_transaction(family, r.amount.raw, Timestamp::now())
                    .map_err(|e| ApiError::invalid("INVALID_AMOUNT", "amount", e.to_string()))?;
                submit(settler, &order, &refund, &hash.to_string()).await
            })
            .await
        }
        _ => Err(ApiError::not_found("route")),
    }
}

async fn create(
    svc: &Services,
    ctx: &payorders::auth::AuthContext,
    req: &Request,
    id: &OrderId,
) -> Result<Response<Body>, ApiError> {
    let body: CreateRefund = http::request::signed_json(&*svc.store, ctx, req, false).await?;
    if body.reason.trim().is_empty() || body.reason.chars().count() > MAX_REASON {
        return Err(ApiError::invalid(
            "INVALID_REASON",
            "reason",
            "reason must be a non-empty string of at most 500 characters",
        ));
    }
    let (_, _, resp) = write_refund(svc, ctx, id, 201, "refund", |order| {
        let amount = match (&body.amount, order.payment.as_ref()) {
            (Some(ui), Some(p)) => {
                let decimals = p.input.currency.decimals;
                Some(RawAmount::from_ui(ui, decimals).map_err(|e| {
                    ApiError::invalid(
                        "INVALID_AMOUNT",
                        "amount",
                        format!(
                            "amount must be a positive decimal with at most {decimals} decimals: {e}"
                        ),
                    )
                })?)
            }
            _ => None,
        };
        let ask = RefundRequest {
            amount,
            address: body.address.clone(),
            reason: body.reason.clone(),
        };
        create_refund(order, &ask, Timestamp::now()).map_err(refund_error)
    })
    .await?;
    Ok(http::kept(resp))
}

async fn cancel(
    svc: &Services,
    settler: &Settler,
    ctx: &payorders::auth::AuthContext,
    id: &OrderId,
    refund: &RefundId,
) -> Result<Response<Body>, ApiError> {
    let (read, written, resp) = write_refund(svc, ctx, id, 200, "cancellation", |order| {
        let update = cancel_refund(order, refund, Timestamp::now()).map_err(refund_error)?;
        Ok((update, refund.clone()))
    })
    .await?;
    // A partly paid order that the freed amount pays in full starts its checks.
    let o = written.order();
    if o.check_round != read.check_round {
        payorders::payments::enqueue_check(settler, &o.id, Some(o.check_round), 0)
            .await
            .map_err(|e| refund_error(PaymentError::from(e).into()))?;
    }
    Ok(http::kept(resp))
}

/// Writes a change of one of the order's refunds, decided on the order as read: its answer
/// (`status`, the refund as written) is kept for the Idempotency-Key by the same write, so
/// a retry after a crash replays it and never changes the order twice. Another write that
/// came first (perhaps another refund's) has the change decided again on what it left.
/// The order as read and the write made.
async fn write_refund(
    svc: &Services,
    ctx: &payorders::auth::AuthContext,
    id: &OrderId,
    status: u16,
    what: &str,
    decide: impl Fn(&PayOrder) -> Result<(OrderUpdate, RefundId), ApiError>,
) -> Result<(PayOrder, OrderUpdate, Response<Body>), ApiError> {
    for _ in 0..ATTEMPTS {
        let order = http::load_own_order(&*svc.store, ctx, id).await?;
        let (update, refund) = decide(&order)?;
        let resp = http::json(
            status,
            &view(update.order(), own_refund(update.order(), &refund)?),
        );
        let update = update.completing(http::completion(&resp));
        match svc.store.update_order(&update).await {
            Ok(()) => return Ok((order, update, resp)),
            Err(StoreError::VersionConflict { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::conflict(
        "CONCURRENT_UPDATE",
        format!("the order kept changing; retry the {what}"),
    ))
}

async fn submit(
    settler: &Settler,
    order: &PayOrder,
    refund: &RefundId,
    hash: &str,
) -> Result<Response<Body>, ApiError> {
    own_refund(order, refund)?;
    let payment = order
        .payment
        .as_ref()
        .ok_or_else(|| refund_error(PaymentError::NoPaymentDetails.into()))?;
    let hash = parse_hash(payment, hash).map_err(|e| refund_error(e.into()))?;
    let order = record_refund(settler, &order.id, refund, &hash, Timestamp::now())
        .await
        .map_err(refund_error)?;
    let r = own_refund(&order, refund)?;
    Ok(http::json(200, &view(&order, r)))
}

fn own_refund<'a>(order: &'a PayOrder, id: &RefundId) -> Result<&'a OrderRefund, ApiError> {
    order
        .refunds
        .iter()
        .find(|r| &r.id == id)
        .ok_or_else(|| ApiError::not_found("refund").with_param("refund_id"))
}

/// A refund as the API shows it: `id` and `object` first, and its order's id.
pub fn view(order: &PayOrder, r: &OrderRefund) -> Value {
    let Value::Object(fields) = serde_json::to_value(r).expect("refunds serialize") else {
        unreachable!("a struct serializes to an object")
    };
    let mut out = serde_json::Map::new();
    out.insert("id".into(), json!(r.id));
    out.insert("object".into(), json!("refund"));
    out.insert("order_id".into(), json!(order.id));
    out.extend(fields.into_iter().filter(|(k, _)| k != "id"));
    Value::Object(out)
}

/// The one mapping of refund errors to API errors.
fn refund_error(e: RefundError) -> ApiError {
    let code = e.code();
    let message = e.to_string();
    match e {
        RefundError::Payment(p) => http::payment_error(p),
        RefundError::NotFound(_) => ApiError::not_found("refund").with_param("refund_id"),
        RefundError::InvalidAddress(_) => ApiError::invalid(code, "address", message),
        RefundError::ZeroAmount => ApiError::invalid(code, "amount", message),
        RefundError::NotPending(_) | RefundError::NotCancellable(_) => {
            ApiError::conflict(code, message)
        }
        RefundError::Exceeds { .. } => ApiError::unprocessable(code, message).with_param("amount"),
        RefundError::AddressRequired => {
            ApiError::unprocessable(code, message).with_param("address")
        }
        RefundError::NotRefundable(_) | RefundError::Routed | RefundError::TooMany => {
            ApiError::unprocessable(code, message)
        }
        RefundError::TooSmall { .. }
        | RefundError::WrongSender(_)
        | RefundError::MinedBeforeRefund
        | RefundError::NotAReplacement { .. }
        | RefundError::AlreadyUsed(_) => {
            ApiError::unprocessable(code, message).with_param("tx_hash")
        }
    }
}

/// The Lambda function: takes events from the Runtime API until the sandbox ends. Its own
/// binary runs it, and so does the bundle that packages it (`bundles/`), when the function's
/// `Handler` names it.
#[cfg(feature = "aws")]
pub async fn serve_lambda() -> Result<(), lambda_http::Error> {
    payorders::runtime::serve_http_with_settler(handler).await
}
