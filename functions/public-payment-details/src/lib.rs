//! `POST /public/pay-orders/{id}/payment-details {source_currency}`: the customer chooses
//! what to pay in, under the same rule and with the same answers as the merchant's
//! payment-details ([`payorders::checkout::details`]); the answer is the public view. No
//! key, no signature, no `Idempotency-Key` (choosing twice is refused with
//! `ORDER_NOT_PENDING`, so a retry cannot pay twice). Also the path's CORS preflight.

use payorders::Timestamp;
use payorders::checkout::details::{self, PaymentDetailsRequest};
use payorders::checkout::view;
use payorders::http::public::{self, Limit};
use payorders::http::{self, ApiError, Body, Params, Request, RequestExt, Response};
use payorders::registry::CurrencyRef;
use payorders::runtime::Services;
use serde::Deserialize;

/// The body of `POST /public/pay-orders/{id}/payment-details`: the merchant route's without
/// `refund_address`. Whoever holds the order's link may call this route, and a refund
/// address set here, before the payer chose, would send a failed exchange's refund to them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PublicPaymentDetailsRequest {
    /// What the payer pays in: `{"chain_id", "address"}` (`address` null for the native coin).
    pub source_currency: Option<CurrencyRef>,
}

impl Params for PublicPaymentDetailsRequest {
    fn code(_field: &str) -> &'static str {
        "INVALID_CURRENCY"
    }
}

pub async fn handler(svc: &Services, req: Request) -> Result<Response<Body>, lambda_http::Error> {
    if req.method() == "OPTIONS" {
        return Ok(public::preflight(&req));
    }
    Ok(public::guarded(&*svc.store, Limit::Views, &req, |_| {
        choose_and_show(svc, &req)
    })
    .await)
}

async fn choose_and_show(svc: &Services, req: &Request) -> Result<Response<Body>, ApiError> {
    let params = req.path_parameters();
    let id = params.first("id").unwrap_or_default();
    let body: PublicPaymentDetailsRequest = http::request::json(req, false)?;
    let order = view::load_public_order(svc, id).await?;
    let body = PaymentDetailsRequest {
        source_currency: body.source_currency,
        refund_address: None,
    };
    let order = details::choose(svc, &order, body, None).await?;
    let merchant = view::Merchant::for_org(svc, &order.organization_id).await?;
    let v = view::public_view(&order, &merchant, &[], &http::links(req), Timestamp::now());
    Ok(http::json(200, &v))
}

/// The Lambda function: takes events from the Runtime API until the sandbox ends. Its own
/// binary runs it, and so does the bundle that packages it (`bundles/`), when the function's
/// `Handler` names it.
#[cfg(feature = "aws")]
pub async fn serve_lambda() -> Result<(), lambda_http::Error> {
    payorders::runtime::serve_http_with_services(handler).await
}
