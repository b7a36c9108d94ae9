//! `POST /pay-orders/{id}/simulate-payment {amount?}` (test-mode keys only; live is 403):
//! mines a transfer on the sandbox chain to the order's deposit address, of `amount` (a
//! decimal in the payment currency) or by default of what is still due, and submits it
//! through the same path as a real transaction. Its confirmations grow by one a second
//! (see `payorders::chains::sandbox`), and the confirmation step completes the order.

use payorders::chains::sandbox;
use payorders::http::{self, ApiError, Body, Params, Request, Response, render};
use payorders::payments::{PaymentError, Settler};
use payorders::runtime::Services;
use payorders::*;
use serde::Deserialize;

/// The body of a simulated payment (may be empty). `amount` is read in the payment
/// currency's decimals once the order is loaded.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SimulatePayment {
    /// A decimal string, e.g. `"12.5"`.
    amount: Option<String>,
}

impl Params for SimulatePayment {
    fn code(_field: &str) -> &'static str {
        "INVALID_AMOUNT"
    }
}

pub async fn handler(
    svc: &Services,
    settler: &Settler,
    req: Request,
) -> Result<Response<Body>, lambda_http::Error> {
    Ok(
        http::limits::serve_limited(&*svc.store, &req, |rid| simulate(svc, settler, &req, rid))
            .await,
    )
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
        let body: SimulatePayment =
            http::request::signed_json(&*svc.store, &ctx, req, true).await?;
        let order = http::load_own_order(&*svc.store, &ctx, &id).await?;
        let payment = order
            .payment
            .as_ref()
            .ok_or_else(|| http::payment_error(PaymentError::NoPaymentDetails))?;
        let decimals = payment.input.currency.decimals;
        let amount = match body.amount {
            None => payment
                .remaining
                .as_ref()
                .map(|r| r.raw)
                .unwrap_or(payment.input.amount.raw),
            Some(ui) => RawAmount::from_ui(&ui, decimals).map_err(|e| {
                ApiError::invalid(
                    "INVALID_AMOUNT",
                    "amount",
                    format!(
                        "amount must be a positive decimal with at most {decimals} decimals: {e}"
                    ),
                )
            })?,
        };
        let hash = sandbox::new_transaction(payment.family(), amount, Timestamp::now())
            .map_err(|e| ApiError::invalid("INVALID_AMOUNT", "amount", e.to_string()))?;
        // Each simulated transaction is new, so its answer is kept for the Idempotency-Key
        // by the payment's own write: a retry after a crash replays it, never pays twice.
        let links = http::links(req);
        http::pay_answering(settler, order, &hash.to_string(), None, |paid| {
            http::json(200, &render::order_view(paid, &links))
        })
        .await
    })
    .await
}

/// The Lambda function: takes events from the Runtime API until the sandbox ends. Its own
/// binary runs it, and so does the bundle that packages it (`bundles/`), when the function's
/// `Handler` names it.
#[cfg(feature = "aws")]
pub async fn serve_lambda() -> Result<(), lambda_http::Error> {
    payorders::runtime::serve_http_with_settler(handler).await
}
