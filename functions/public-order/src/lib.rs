//! `GET /public/pay-orders/{id}`: what the customer may see of an order (no key: the
//! unguessable id is the capability), and the CORS preflight of that path. The view is
//! the domain's ([`payorders::checkout::view`]); per-IP limit: views.

use payorders::checkout::view;
use payorders::http::public::{self, Limit};
use payorders::http::{self, ApiError, Body, Request, RequestExt, Response};
use payorders::runtime::Services;

pub async fn handler(svc: &Services, req: Request) -> Result<Response<Body>, lambda_http::Error> {
    if req.method() == "OPTIONS" {
        return Ok(public::preflight(&req));
    }
    Ok(public::guarded(&*svc.store, Limit::Views, &req, |_| get(svc, &req)).await)
}

async fn get(svc: &Services, req: &Request) -> Result<Response<Body>, ApiError> {
    http::no_body(req)?;
    let params = req.path_parameters();
    let id = params.first("id").unwrap_or_default();
    let (_, v) = view::load_view(svc, id, &http::links(req)).await?;
    let mut resp = http::json(200, &v);
    resp.headers_mut()
        .insert("cache-control", "no-store".parse().expect("a valid header"));
    Ok(resp)
}

/// The Lambda function: takes events from the Runtime API until the sandbox ends. Its own
/// binary runs it, and so does the bundle that packages it (`bundles/`), when the function's
/// `Handler` names it.
#[cfg(feature = "aws")]
pub async fn serve_lambda() -> Result<(), lambda_http::Error> {
    payorders::runtime::serve_http_with_services(handler).await
}
