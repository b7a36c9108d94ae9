//! `POST /pay-orders/{id}/simulate-payment {amount?}` (test-mode keys only; live is 403):
//! mines a transfer on the sandbox chain to the order's deposit address, of `amount` (a
//! decimal in the payment currency) or by default of what is still due, and submits it
//! through the same path as a real transaction. Its confirmations grow by one a second
//! (see `payorders::chains::sandbox`), and the confirmation step completes the order.

use payorders::chains::sandbox;
use payorders::http::{self, ApiError, Body, Request, Response};
use payorders::payments::{PaymentError, Settler};
use payorders::runtime::Services;
use payorders::*;
use serde_json::Value;

pub async fn handler(
    svc: &Services,
    settler: &Settler,
    req: Request,
) -> Result<Response<Body>, lambda_http::Error> {
    Ok(http::serve(&req, |rid| simulate(svc, settler, &req, rid)).await)
}

async fn simulate(
    svc: &Services,
    settler: &Settler,
    req: &Request,
    rid: String,
) -> Result<Response<Body>, ApiError> {
    let ctx = http::auth(req)?;
    if ctx.livemode() {
        return Err(ApiError::forbidden(
            "TEST_MODE_ONLY",
            "simulated payments are for test-mode keys only",
        ));
    }
    let id = http::path_id(req, "id", "pay order", OrderId::parse)?;
    http::idempotent(&*svc.store, &ctx, req, &rid, || async {
        let body = http::signed_json(&*svc.store, &ctx, req, true, &["amount"]).await?;
        let order = get_order::load_own_order(&*svc.store, &ctx, &id).await?;
        let payment = order
            .payment
            .as_ref()
            .ok_or_else(|| submit_payment::api_error(PaymentError::NoPaymentDetails))?;
        let decimals = payment.input.currency.decimals;
        let amount = match body.get("amount") {
            None | Some(Value::Null) => payment
                .remaining
                .as_ref()
                .map(|r| r.raw)
                .unwrap_or(payment.input.amount.raw),
            Some(Value::String(ui)) => RawAmount::from_ui(ui, decimals).map_err(|e| {
                ApiError::invalid(
                    "INVALID_AMOUNT",
                    "amount",
                    format!(
                        "amount must be a positive decimal with at most {decimals} decimals: {e}"
                    ),
                )
            })?,
            Some(_) => {
                return Err(ApiError::invalid(
                    "INVALID_AMOUNT",
                    "amount",
                    "amount must be a decimal string, e.g. \"12.5\"",
                ));
            }
        };
        let hash = sandbox::new_transaction(payment.family(), amount, Timestamp::now())
            .map_err(|e| ApiError::invalid("INVALID_AMOUNT", "amount", e.to_string()))?;
        submit_payment::pay(settler, &order, &hash.to_string(), None).await
    })
    .await
}
