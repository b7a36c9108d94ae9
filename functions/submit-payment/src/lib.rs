//! `POST /pay-orders/{id}/payments {tx_hash, chain_id?}`, and seed 000's
//! `GET /pay-orders/{id}/process?tx_hash=`: the payer (or the merchant for them) names the
//! transaction that paid the order. It is verified on the order's chain (recipient, token,
//! success, amount) and recorded with its claim in one write: AWAITING_CONFIRMATION when it
//! covers the amount within the order's tolerance, PARTIAL_PAYMENT with the remainder when
//! it does not. A transaction that does not pay this order is a 422 with a precise code and
//! changes nothing. Submitting the same transaction again answers the order as it is.

use payorders::http::{self, ApiError, Body, Params, Request, Response, render};
use payorders::payments::Settler;
use payorders::runtime::Services;
use payorders::*;
use serde::Deserialize;

/// The body of `POST /pay-orders/{id}/payments`, and the query of `GET …/process`
/// (`tx_hash` only). The hash is read for the order's chain once the order is loaded.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SubmitPayment {
    tx_hash: Option<String>,
    chain_id: Option<ChainId>,
}

impl Params for SubmitPayment {
    fn code(field: &str) -> &'static str {
        match field {
            "chain_id" => "INVALID_CHAIN_ID",
            _ => "INVALID_TX_HASH",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
pub struct ProcessQuery {
    tx_hash: Option<String>,
}

impl Params for ProcessQuery {
    fn code(_field: &str) -> &'static str {
        "INVALID_TX_HASH"
    }
}

fn required(hash: Option<String>) -> Result<String, ApiError> {
    hash.ok_or_else(|| ApiError::invalid("MISSING_TX_HASH", "tx_hash", "tx_hash is required"))
}

pub async fn handler(
    svc: &Services,
    settler: &Settler,
    req: Request,
) -> Result<Response<Body>, lambda_http::Error> {
    Ok(http::limits::serve_limited(&*svc.store, &req, |rid| submit(svc, settler, &req, rid)).await)
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
        let q: ProcessQuery = http::request::query(req)?;
        let hash = required(q.tx_hash)?;
        let order = http::load_own_order(&*svc.store, &ctx, &id).await?;
        let paid = http::pay(settler, order, &hash, None, http::Submitter::Merchant).await?;
        return Ok(http::json(
            200,
            &render::order_view(&paid, &http::links(req)),
        ));
    }
    http::idempotent(&*svc.store, &ctx, req, &rid, || async {
        let body: SubmitPayment = http::request::signed_json(&*svc.store, &ctx, req, false).await?;
        let hash = required(body.tx_hash)?;
        let order = http::load_own_order(&*svc.store, &ctx, &id).await?;
        // The answer is kept for the Idempotency-Key by the payment's own write.
        let links = http::links(req);
        http::pay_answering(settler, order, &hash, body.chain_id, |paid| {
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
