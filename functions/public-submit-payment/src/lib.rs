//! `POST /public/pay-orders/{id}/payments {tx_hash}`: the customer's wallet names the
//! transaction it just sent (the checkout page's "Pay in wallet"), so the order need not
//! wait for the deposit scan. The same verification and recording as the merchant's
//! `POST /pay-orders/{id}/payments` ([`payorders::http::pay`]): a hash proves nothing by
//! itself; the transfer is read from the chain and must pay this order. The answer is the
//! public view. Per-IP limit: views. Also the path's CORS preflight.

use payorders::Timestamp;
use payorders::checkout::view;
use payorders::http::public::{self, Limit};
use payorders::http::{self, ApiError, Body, Params, Request, RequestExt, Response};
use payorders::payments::Settler;
use payorders::runtime::Services;
use serde::Deserialize;

/// The body of `POST /public/pay-orders/{id}/payments`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PublicSubmitPayment {
    /// The transaction that paid the order, on the order's chain.
    tx_hash: String,
}

impl Params for PublicSubmitPayment {
    fn code(_field: &str) -> &'static str {
        "INVALID_TX_HASH"
    }
}

pub async fn handler(
    svc: &Services,
    settler: &Settler,
    req: Request,
) -> Result<Response<Body>, lambda_http::Error> {
    if req.method() == "OPTIONS" {
        return Ok(public::preflight(&req));
    }
    Ok(public::guarded(&*svc.store, Limit::Views, &req, |_| {
        submit(svc, settler, &req)
    })
    .await)
}

async fn submit(
    svc: &Services,
    settler: &Settler,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    let params = req.path_parameters();
    let body: PublicSubmitPayment = http::request::json(req, false)?;
    let order = view::load_public_order(svc, params.first("id").unwrap_or_default()).await?;
    let paid = http::pay(settler, order, &body.tx_hash, None, http::Submitter::Payer).await?;
    let merchant = view::Merchant::for_org(svc, &paid.organization_id).await?;
    let v = view::public_view(&paid, &merchant, &[], &http::links(req), Timestamp::now());
    Ok(http::json(200, &v))
}

/// The Lambda function: takes events from the Runtime API until the sandbox ends. Its own
/// binary runs it, and so does the bundle that packages it (`bundles/`), when the function's
/// `Handler` names it.
#[cfg(feature = "aws")]
pub async fn serve_lambda() -> Result<(), lambda_http::Error> {
    payorders::runtime::serve_http_with_settler(handler).await
}
