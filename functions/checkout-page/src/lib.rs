//! `GET /pay/{id}`: the hosted checkout page, the order's `hosted_url`. One self-contained
//! HTML document (its CSS and script inline; it loads nothing from elsewhere but the
//! merchant's logo) that reads the public order API and follows the order over
//! Server-Sent Events. An unknown id is a 404 page. Per-IP limit: views.

use payorders::checkout::view;
use payorders::http::public::{self, Limit};
use payorders::http::{self, ApiError, Body, Request, RequestExt, Response};
use payorders::runtime::Services;

/// The page; the order id is read from its own address.
pub const PAGE: &str = include_str!("checkout.html");
/// The page for an id that names no order.
pub const NOT_FOUND: &str = include_str!("not_found.html");

/// What the page may load: itself, the order API and its event stream, and images (the
/// merchant's logo, the QR code).
const CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
img-src 'self' https: data: blob:; connect-src 'self' https:; base-uri 'none'; form-action 'none'; \
frame-ancestors 'none'";

pub async fn handler(svc: &Services, req: Request) -> Result<Response<Body>, lambda_http::Error> {
    Ok(public::guarded(&*svc.store, Limit::Views, &req, |_| page(svc, &req)).await)
}

async fn page(svc: &Services, req: &Request) -> Result<Response<Body>, ApiError> {
    http::no_body(req)?;
    let params = req.path_parameters();
    match view::load_public_order(svc, params.first("id").unwrap_or_default()).await {
        Ok(_) => Ok(html(200, PAGE)),
        Err(e) if e.status == 404 => Ok(html(404, NOT_FOUND)),
        Err(e) => Err(e),
    }
}

fn html(status: u16, text: &'static str) -> Response<Body> {
    let mut resp = Response::new(Body::Text(text.to_owned()));
    *resp.status_mut() = status.try_into().expect("a valid status");
    let h = resp.headers_mut();
    let mut set = |k: &'static str, v: &'static str| {
        h.insert(k, v.parse().expect("a valid header"));
    };
    set("content-type", "text/html; charset=utf-8");
    set("content-security-policy", CSP);
    set("cache-control", "no-store");
    set("x-content-type-options", "nosniff");
    set("referrer-policy", "no-referrer");
    resp
}

/// The Lambda function: takes events from the Runtime API until the sandbox ends. Its own
/// binary runs it, and so does the bundle that packages it (`bundles/`), when the function's
/// `Handler` names it.
#[cfg(feature = "aws")]
pub async fn serve_lambda() -> Result<(), lambda_http::Error> {
    payorders::runtime::serve_http_with_services(handler).await
}
