//! `POST /pay-orders/{id}/payment-details {source_currency, refund_address?}`: fixes how a
//! PENDING order is paid and moves it to AWAITING_PAYMENT with seed 002's `payment` object.
//! The rule is the domain's ([`payorders::checkout::details`]), shared with the customer's
//! public route; this handler adds what a merchant call has: the key, its organization and
//! mode, a signed body and `Idempotency-Key`.

use payorders::OrderId;
use payorders::http::{self, ApiError, Body, Request, Response, render};
use payorders::runtime::Services;

pub use payorders::checkout::details::PaymentDetailsRequest;

pub async fn handler(svc: &Services, req: Request) -> Result<Response<Body>, lambda_http::Error> {
    Ok(http::limits::serve_limited(&*svc.store, &req, |rid| details(svc, &req, rid)).await)
}

async fn details(svc: &Services, req: &Request, rid: String) -> Result<Response<Body>, ApiError> {
    let ctx = http::auth(req)?;
    let id = http::path_id(req, "id", "pay order", OrderId::parse)?;
    http::idempotent(&*svc.store, &ctx, req, &rid, || async {
        let body: PaymentDetailsRequest =
            http::request::signed_json(&*svc.store, &ctx, req, false).await?;
        let order = http::load_own_order(&*svc.store, &ctx, &id).await?;
        let links = http::links(req);
        let answer = |o: &payorders::PayOrder| http::json(200, &render::order_view(o, &links));
        // The answer is kept for the Idempotency-Key by the choice's own write.
        let keep = http::keeping(&answer);
        let order = payorders::checkout::details::choose(svc, &order, body, Some(&keep)).await?;
        Ok(http::kept(answer(&order)))
    })
    .await
}

/// The Lambda function: takes events from the Runtime API until the sandbox ends. Its own
/// binary runs it, and so does the bundle that packages it (`bundles/`), when the function's
/// `Handler` names it.
#[cfg(feature = "aws")]
pub async fn serve_lambda() -> Result<(), lambda_http::Error> {
    payorders::runtime::serve_http_with_services(handler).await
}
